"""Cold start, interleaved: a fresh interpreter importing poolkit, and a fresh script
running 2 items in process mode, against ProcessPoolExecutor with forkserver and fork.

Each script counts how often its top level runs (the parent, plus any worker that
re-imports it), so the table also shows that poolkit's workers do not run it again.
Run: python benchmarks/bench_cold.py   (or make bench)
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, __file__.rsplit("/", 1)[0])

from _common import interleaved, report_spread

SCRIPTS = {
    "ProcessPoolExecutor(2), forkserver": """
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
def f(x):
    return x * 2
if __name__ == "__main__":
    ctx = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(2, mp_context=ctx) as pool:
        assert list(pool.map(f, [1, 2])) == [2, 4]
""",
    "ProcessPoolExecutor(2), fork": """
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
def f(x):
    return x * 2
if __name__ == "__main__":
    ctx = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(2, mp_context=ctx) as pool:
        assert list(pool.map(f, [1, 2])) == [2, 4]
""",
    "poolkit.run_all process (2)": """
import poolkit
def f(x):
    return x * 2
if __name__ == "__main__":
    assert poolkit.run_all(f, [1, 2], mode="process", workers=2).values == [2, 4]
""",
}
COUNT = "open({log!r}, 'a').write('x')\n"


def main() -> list[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    python = sys.executable

    def run(*args: str) -> None:
        subprocess.run([python, *args], check=True, env=env, timeout=120)

    with tempfile.TemporaryDirectory() as folder:
        paths = {}
        logs = {}
        for number, (name, body) in enumerate(SCRIPTS.items()):
            logs[name] = Path(folder, f"runs-{number}.log")
            paths[name] = Path(folder, f"script_{number}.py")
            paths[name].write_text(COUNT.format(log=str(logs[name])) + body)
        imports = {
            "python -c pass (the floor)": lambda: run("-c", "pass"),
            "python -c 'import concurrent.futures'": lambda: run("-c", "import concurrent.futures"),
            "python -c 'import poolkit'": lambda: run("-c", "import poolkit"),
        }
        run("-c", "import poolkit, poolkit._api")  # compile the bytecode once
        lines = report_spread(
            "Cold start: a fresh interpreter importing",
            interleaved(imports, rounds=11),
            1,
            "python -c 'import concurrent.futures'",
            "python -c pass (the floor)",
            unit="ms",
        )
        scripts = {name: (lambda p=path: run(str(p))) for name, path in paths.items()}
        for path in paths.values():
            run(str(path))  # bytecode, and the forkserver's first start
        for log in logs.values():
            log.write_text("")
        rounds = 7
        lines += report_spread(
            "Cold start: a fresh script running 2 items in worker processes",
            interleaved(scripts, rounds=rounds),
            1,
            "ProcessPoolExecutor(2), forkserver",
            "ProcessPoolExecutor(2), fork",
            unit="ms",
        )
        runs = {name: len(log.read_text()) / rounds for name, log in logs.items()}
    lines.append("\nTimes the script's top level ran per call (parent included):\n")
    lines += [f"- {name}: {count:g}" for name, count in runs.items()]
    print("\n".join(lines[-len(runs) - 1 :]), flush=True)
    return lines


if __name__ == "__main__":
    main()
