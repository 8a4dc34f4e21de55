"""I/O throughput: 200 URLs from a local server answering in 50 ms, by mode and workers.

Ideal time = ceil(200 / workers) x 50 ms. Run: python benchmarks/bench_download.py
"""

from __future__ import annotations

import math
import sys
import time

sys.path.insert(0, __file__.rsplit("/", 1)[0])

from poolkit.download import download_all
from poolkit.download._server import local_server

URLS, LATENCY = 200, 0.05


def timed(urls: list[str], mode: str, workers: int) -> float:
    began = time.perf_counter()
    results = download_all(urls, mode=mode, workers=workers, retries=0, timeout=10)
    took = time.perf_counter() - began
    assert results.all_ok, results.errs[:3]
    return took


def main() -> tuple[list[str], list[tuple[str, int, float]]]:
    points: list[tuple[str, int, float]] = []
    lines = [
        f"\n## Downloader: {URLS} URLs, server latency {LATENCY * 1000:.0f} ms\n",
        "| mode | workers | seconds | ideal | ratio to ideal |",
        "|---|---|---|---|---|",
    ]
    with local_server(latency=LATENCY) as server:
        urls = [server.url(f"/delay/{LATENCY}?n={n}") for n in range(URLS)]
        timed(urls[:10], "thread", 4)  # warm up
        runs = [
            ("serial", 1),
            ("thread", 8),
            ("thread", 16),
            ("thread", 32),
            ("thread", 64),
            ("thread", 128),
            ("async", 16),
            ("async", 64),
            ("async", 128),
        ]
        for mode, workers in runs:
            subset = urls if mode != "serial" else urls[:40]
            took = timed(subset, mode, workers)
            ideal = math.ceil(len(subset) / workers) * LATENCY
            scale = URLS / len(subset)
            points.append((mode, workers, took * scale))
            lines.append(
                f"| {mode} | {workers} | {took * scale:.2f}"
                f"{' (40 URLs x 5)' if scale != 1 else ''} | {ideal * scale:.2f} | "
                f"{took / ideal:.2f}x |"
            )
    print("\n".join(lines), flush=True)
    return lines, points


if __name__ == "__main__":
    main()
