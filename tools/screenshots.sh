#!/bin/sh
# Screenshots of the built docs with headless Chromium, to check how pages render
# (docstring examples as code, one signature per function). Needs `chromium`.
# Usage: make screenshots   (writes .venv/screenshots/*.png)
set -eu
site=${1:-.venv/site}
out=${2:-.venv/screenshots}
browser=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
if [ -z "$browser" ]; then
    echo "no chromium found: install it (apt-get install chromium) to take screenshots" >&2
    exit 1
fi
mkdir -p "$out"
for page in api lesson concurrency benchmarks; do
    "$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars \
        --window-size=1280,2400 --screenshot="$out/$page.png" \
        "file://$(pwd)/$site/$page/index.html" >/dev/null 2>&1
    echo "$out/$page.png"
done
