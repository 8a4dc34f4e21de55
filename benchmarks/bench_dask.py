"""Dask mode, interleaved on one LocalCluster of 2: per-task overhead against client.map
(one task per item) and the hand-made floor (client.map over 64-item chunks), and the
CPU-bound speed-up. Needs the dask extra. Run: python benchmarks/bench_dask.py
"""

from __future__ import annotations

import sys
import time

sys.path.insert(0, __file__.rsplit("/", 1)[0])

import poolkit
from _common import interleaved, medians, report_spread
from bench_cpu import burn, calibrate

N = 5_000


def trivial(x: int) -> int:
    return x


def chunk_of(xs: list[int]) -> list[int]:
    return [trivial(x) for x in xs]


def main() -> list[str]:
    try:
        import distributed
    except ImportError:
        print("dask is not installed: pip install 'poolkit[dask]'")
        return []
    lines: list[str] = []
    with poolkit.runner("dask", workers=2) as runner:
        client = runner._get_backend()._client  # the same cluster for every candidate
        client.gather(client.map(trivial, range(10)))
        runner.run_all(trivial, range(10))
        chunks = [list(range(i, min(i + 64, N))) for i in range(0, N, 64)]
        times = interleaved(
            {
                "client.map + gather, one task per item": lambda: client.gather(
                    client.map(trivial, range(N), pure=False)
                ),
                "client.map over 64-item chunks (hand-made)": lambda: client.gather(
                    client.map(chunk_of, chunks, pure=False)
                ),
                "poolkit dask, defaults": lambda: runner.run_all(trivial, range(N)),
            },
            rounds=3,
        )
        lines += report_spread(
            f"Dask: per-task overhead ({N:,} trivial items, LocalCluster of 2)",
            times,
            N,
            "client.map + gather, one task per item",
            "client.map over 64-item chunks (hand-made)",
        )
        n = calibrate(0.005)
        work = [n] * 100
        mids = medians(
            interleaved(
                {
                    "serial": lambda: [burn(x) for x in work],
                    "ours": lambda: runner.run_all(burn, work),
                },
                rounds=3,
            )
        )
        line = (
            f"\nCPU-bound, 100 items of ~5 ms: serial {mids['serial']:.2f} s, poolkit dask "
            f"{mids['ours']:.2f} s: {mids['serial'] / mids['ours']:.2f}x (medians of 3)."
        )
        print(line)
        lines.append(line)
    _ = distributed, time
    return lines


if __name__ == "__main__":
    main()
