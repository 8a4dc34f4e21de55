"""Per-task overhead on a trivial function: poolkit against the standard library and peers.

Run: python benchmarks/bench_overhead.py   (or make bench)
"""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

sys.path.insert(0, __file__.rsplit("/", 1)[0])

import poolkit
from _common import best_of, interleaved, report, report_spread

N = 20_000


def trivial(x: int) -> int:
    return x


async def atrivial(x: int) -> int:
    return x


def thread_table(n: int) -> list[str]:
    """Thread mode against warm ThreadPoolExecutor(4).map, interleaved, at size n."""
    with ThreadPoolExecutor(4) as pool, poolkit.runner("thread", workers=4) as runner:
        list(pool.map(trivial, range(100)))
        runner.run_all(trivial, range(100))
        candidates = {
            "ThreadPoolExecutor(4).map": lambda: list(pool.map(trivial, range(n))),
            "poolkit thread (4), warm runner": lambda: runner.run_all(trivial, range(n)),
            "poolkit.run_all thread (4), cold": lambda: poolkit.run_all(
                trivial, range(n), mode="thread", workers=4
            ),
        }
        times = interleaved(candidates, rounds=11)
    return report_spread(f"Thread mode, N = {n:,}", times, n, "ThreadPoolExecutor(4).map")


def async_rows() -> list[tuple[str, float]]:
    async def gather() -> None:
        semaphore = asyncio.Semaphore(64)

        async def one(x: int) -> int:
            async with semaphore:
                return await atrivial(x)

        await asyncio.gather(*(one(x) for x in range(N)))

    async def ours_in_loop() -> None:
        await poolkit.arun_all(atrivial, range(N), workers=64)

    stdlib = best_of(lambda: asyncio.run(gather()))
    ours = best_of(lambda: poolkit.run_all(atrivial, range(N), mode="async", workers=64))
    in_loop = best_of(lambda: asyncio.run(ours_in_loop()))
    return [
        ("asyncio.gather + Semaphore(64)", stdlib),
        ("poolkit async (run_all)", ours),
        ("poolkit arun_all", in_loop),
    ]


def process_rows() -> list[tuple[str, float]]:
    rows = []
    with ProcessPoolExecutor(2) as pool:
        list(pool.map(trivial, range(100)))
        rows.append(
            (
                "ProcessPoolExecutor(2).map chunksize=1",
                best_of(lambda: list(pool.map(trivial, range(N))), repeat=1),
            )
        )
        rows.append(
            (
                "ProcessPoolExecutor(2).map chunksize=N/8 (hand-tuned)",
                best_of(lambda: list(pool.map(trivial, range(N), chunksize=N // 8))),
            )
        )
    with poolkit.runner("process", workers=2) as runner:
        runner.run_all(trivial, range(100))
        rows.append(
            ("poolkit process (2), defaults", best_of(lambda: runner.run_all(trivial, range(N))))
        )
        rows.append(
            (
                "poolkit process (2), max_in_flight=2048",
                best_of(lambda: runner.run_all(trivial, range(N), max_in_flight=2048)),
            )
        )
    if importlib.util.find_spec("joblib"):
        import joblib

        with joblib.Parallel(n_jobs=2) as parallel:
            parallel(joblib.delayed(trivial)(x) for x in range(100))
            rows.append(
                (
                    "joblib (loky, auto batching)",
                    best_of(lambda: parallel(joblib.delayed(trivial)(x) for x in range(N))),
                )
            )
    if importlib.util.find_spec("loky"):
        from loky import get_reusable_executor

        executor = get_reusable_executor(max_workers=2)
        list(executor.map(trivial, range(100)))
        rows.append(
            (
                "loky executor(2).map, chunksize=N/8",
                best_of(lambda: list(executor.map(trivial, range(N), chunksize=N // 8))),
            )
        )
    if importlib.util.find_spec("pebble"):
        from pebble import ProcessPool

        with ProcessPool(max_workers=2) as pool:
            list(pool.map(trivial, range(100)).result())
            rows.append(
                (
                    "pebble ProcessPool(2).map, chunksize=N/8",
                    best_of(lambda: list(pool.map(trivial, range(N), chunksize=N // 8).result())),
                )
            )
    if importlib.util.find_spec("mpire"):
        from mpire import WorkerPool

        with WorkerPool(n_jobs=2, keep_alive=True) as pool:
            pool.map(trivial, range(100))
            rows.append(("mpire WorkerPool(2).map", best_of(lambda: pool.map(trivial, range(N)))))
    return rows


def main() -> list[str]:
    lines = ["# Per-task overhead (trivial function, 20,000 items)"]
    for n in (1_000, 20_000, 200_000):
        lines += thread_table(n)
    lines += report("Async mode", async_rows(), "us/item", N)
    lines += report("Process mode", process_rows(), "us/item", N)
    return lines


if __name__ == "__main__":
    main()
