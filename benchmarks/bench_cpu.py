"""CPU-bound speed-up: 200 pure-Python items of about 5 ms, process mode against serial.

Run: python benchmarks/bench_cpu.py   (or make bench)
"""

from __future__ import annotations

import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor

sys.path.insert(0, __file__.rsplit("/", 1)[0])

import poolkit
from _common import best_of, report

ITEMS = 200


def burn(n: int) -> int:
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


def calibrate(target: float = 0.005) -> int:
    n = 10_000
    while True:
        began = time.perf_counter()
        burn(n)
        took = time.perf_counter() - began
        if took > 0.002:
            return int(n * target / took)
        n *= 2


def main() -> list[str]:
    n = calibrate()
    work = [n] * ITEMS
    serial = best_of(lambda: [burn(x) for x in work], repeat=2)
    rows = [("serial (a plain loop)", serial)]
    with ProcessPoolExecutor(2) as pool:
        list(pool.map(burn, [1, 1]))
        rows.append(("ProcessPoolExecutor(2).map", best_of(lambda: list(pool.map(burn, work)), 2)))
    rows.append(
        (
            "poolkit process (2), cold start",
            best_of(lambda: poolkit.run_all(burn, work, mode="process", workers=2), 2),
        )
    )
    with poolkit.runner("process", workers=2) as runner:
        runner.run_all(burn, [1, 1])
        rows.append(
            ("poolkit process (2), warm runner", best_of(lambda: runner.run_all(burn, work), 2))
        )
    lines = report(f"CPU-bound: {ITEMS} items of ~5 ms on {os.cpu_count()} cores", rows, "seconds")
    speedups = [
        f"| speed-up over serial: {name} | {serial / secs:.2f}x |" for name, secs in rows[1:]
    ]
    print("\n".join(speedups))
    return lines + speedups


if __name__ == "__main__":
    main()
