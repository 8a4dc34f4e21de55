"""Dask mode: per-task overhead against client.map + gather on the same LocalCluster of 2,
and the CPU-bound speed-up. Needs the dask extra. Run: python benchmarks/bench_dask.py
"""

from __future__ import annotations

import sys
import time

sys.path.insert(0, __file__.rsplit("/", 1)[0])

import poolkit
from _common import best_of, report
from bench_cpu import burn, calibrate

N = 2_000


def trivial(x: int) -> int:
    return x


def main() -> list[str]:
    try:
        import distributed
    except ImportError:
        print("dask is not installed: pip install 'poolkit[dask]'")
        return []
    lines: list[str] = []
    with poolkit.runner("dask", workers=2) as runner:
        client = runner._get_backend()._client  # the same cluster for both
        client.gather(client.map(trivial, range(10)))
        raw = best_of(lambda: client.gather(client.map(trivial, range(N), pure=False)), 2)
        ours = best_of(lambda: runner.run_all(trivial, range(N)), 2)
        lines += report(
            f"Dask: per-task overhead ({N:,} trivial items, LocalCluster of 2)",
            [("client.map + client.gather", raw), ("poolkit dask", ours)],
            "us/item",
            N,
        )
        n = calibrate()
        work = [n] * 100
        began = time.perf_counter()
        _ = [burn(x) for x in work]
        serial = time.perf_counter() - began
        parallel = best_of(lambda: runner.run_all(burn, work), 2)
        line = (
            f"| CPU-bound, 100 items of ~5 ms: serial {serial:.2f} s, "
            f"poolkit dask {parallel:.2f} s | {serial / parallel:.2f}x |"
        )
        print(line)
        lines.append(line)
    _ = distributed
    return lines


if __name__ == "__main__":
    main()
