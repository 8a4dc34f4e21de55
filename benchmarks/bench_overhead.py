"""Per-task overhead on a trivial function: poolkit against the standard library, the
peers and the hand-tuned floor, interleaved.

Run: python benchmarks/bench_overhead.py   (or make bench)
"""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor, wait
from typing import Any

sys.path.insert(0, __file__.rsplit("/", 1)[0])

import poolkit
from _common import interleaved, report_spread


def trivial(x: int) -> int:
    return x


async def atrivial(x: int) -> int:
    return x


LEAST = 0.1  # seconds: a runner's turn in a round lasts at least this (see interleaved)
_LEAST_NOTE = (
    f"\nA runner's turn in a round lasts at least {LEAST:g} s: a shorter batch runs back"
    " to back as many times as that takes, and its time is their mean."
)


def thread_table(n: int) -> list[str]:
    """Thread mode against warm ThreadPoolExecutor(4).map, interleaved, at size n.

    A 1,000-item batch takes about 2 ms, shorter than this machine's scheduling
    hiccups: each turn lasts at least ``LEAST`` seconds (see ``interleaved``)."""
    with ThreadPoolExecutor(4) as pool, poolkit.runner("thread", workers=4) as runner:
        list(pool.map(trivial, range(100)))
        runner.run_all(trivial, range(100))
        candidates: dict[str, Callable[[], object]] = {
            "ThreadPoolExecutor(4).map": lambda: list(pool.map(trivial, range(n))),
            "poolkit thread (4), warm runner": lambda: runner.run_all(trivial, range(n)),
            "poolkit thread (4), max_in_flight=4096": lambda: runner.run_all(
                trivial, range(n), max_in_flight=4096
            ),
            "poolkit thread (4), timeout=10 (per-item lane)": lambda: runner.run_all(
                trivial, range(n), timeout=10
            ),
            "poolkit thread (4), a generator (per-item lane)": lambda: runner.run_all(
                trivial, (x for x in range(n))
            ),
            "poolkit.run_all thread (4), cold": lambda: poolkit.run_all(
                trivial, range(n), mode="thread", workers=4
            ),
        }
        times = interleaved(candidates, rounds=11, warmup=1, least=LEAST)
    lines = report_spread(
        f"Thread mode, trivial function, 4 workers, N = {n:,}",
        times,
        n,
        "ThreadPoolExecutor(4).map",
    )
    lines.append(_LEAST_NOTE)
    return lines


def async_table(n: int) -> list[str]:
    """Async mode on a coroutine that suspends once, against gather + Semaphore and the
    hand-tuned floor: 64 long-lived worker tasks pulling from one iterator."""

    async def suspends(x: int) -> int:
        await asyncio.sleep(0)
        return x

    async def gather() -> None:
        semaphore = asyncio.Semaphore(64)

        async def one(x: int) -> int:
            async with semaphore:
                return await suspends(x)

        await asyncio.gather(*(one(x) for x in range(n)))

    async def worker_tasks() -> None:
        source = iter(range(n))
        out: list[int] = []

        async def worker() -> None:
            for x in source:
                out.append(await suspends(x))

        await asyncio.gather(*(worker() for _ in range(64)))

    async def ours() -> None:
        await poolkit.arun_all(suspends, range(n), workers=64)

    candidates = {
        "asyncio.gather + Semaphore(64)": lambda: asyncio.run(gather()),
        "64 worker tasks on one iterator (hand-tuned)": lambda: asyncio.run(worker_tasks()),
        "poolkit arun_all (64)": lambda: asyncio.run(ours()),
        "poolkit.run_all async (64)": lambda: poolkit.run_all(
            suspends, range(n), mode="async", workers=64
        ),
    }
    times = interleaved(candidates, rounds=11, warmup=1, least=LEAST)
    lines = report_spread(
        f"Async mode, a coroutine that suspends once, N = {n:,}",
        times,
        n,
        "asyncio.gather + Semaphore(64)",
        "64 worker tasks on one iterator (hand-tuned)",
    )
    lines.append(_LEAST_NOTE)
    return lines


def executor_table(n: int) -> list[str]:
    """poolkit.Executor against ThreadPoolExecutor, 4 threads: a submit per item, then
    every future waited for; and ``map``."""
    with ThreadPoolExecutor(4) as pool, poolkit.Executor("thread", workers=4) as ours:

        def submits(executor: Any) -> None:
            futures = [executor.submit(trivial, x) for x in range(n)]
            wait(futures)

        for executor in (pool, ours):
            submits(executor)
        candidates: dict[str, Callable[[], object]] = {
            "ThreadPoolExecutor(4): submit each, wait": lambda: submits(pool),
            "poolkit.Executor thread (4): submit each, wait": lambda: submits(ours),
            "ThreadPoolExecutor(4).map": lambda: list(pool.map(trivial, range(n))),
            "poolkit.Executor thread (4).map": lambda: list(ours.map(trivial, range(n))),
        }
        times = interleaved(candidates, rounds=7, warmup=1)
    return report_spread(
        f"Executor: a submit per item, and map, trivial function, 4 threads, N = {n:,}",
        times,
        n,
        "ThreadPoolExecutor(4): submit each, wait",
    )


def process_table(n: int) -> list[str]:
    """Process mode (2 workers, warm) against ProcessPoolExecutor and the peers."""
    candidates: dict[str, Callable[[], object]] = {}
    closers: list[Callable[[], object]] = []
    pool = ProcessPoolExecutor(2)
    closers.append(pool.shutdown)
    list(pool.map(trivial, range(100)))
    if n <= 20_000:  # one message per item: 1.4 s a round at 20k, too slow beyond
        candidates["ProcessPoolExecutor(2).map"] = lambda: list(pool.map(trivial, range(n)))
    candidates["ProcessPoolExecutor(2).map, chunksize=N/8 (hand-tuned)"] = lambda: list(
        pool.map(trivial, range(n), chunksize=n // 8)
    )
    runner = poolkit.runner("process", workers=2)
    closers.append(runner.close)
    runner.run_all(trivial, range(100))
    candidates["poolkit process (2), defaults"] = lambda: runner.run_all(trivial, range(n))
    candidates["poolkit process (2), max_in_flight=4096"] = lambda: runner.run_all(
        trivial, range(n), max_in_flight=4096
    )
    if importlib.util.find_spec("joblib"):
        import joblib

        parallel = joblib.Parallel(n_jobs=2)
        parallel.__enter__()
        closers.append(lambda: parallel.__exit__(None, None, None))
        parallel(joblib.delayed(trivial)(x) for x in range(100))
        candidates["joblib (loky, auto batching)"] = lambda: parallel(
            joblib.delayed(trivial)(x) for x in range(n)
        )
    if importlib.util.find_spec("mpire"):
        from mpire import WorkerPool

        mpire_pool = WorkerPool(n_jobs=2, keep_alive=True)
        closers.append(mpire_pool.terminate)
        mpire_pool.map(trivial, range(100))
        candidates["mpire WorkerPool(2).map"] = lambda: mpire_pool.map(trivial, range(n))
    if importlib.util.find_spec("pebble"):
        from pebble import ProcessPool

        pebble_pool = ProcessPool(max_workers=2)
        closers.append(pebble_pool.close)
        list(pebble_pool.map(trivial, range(100)).result())
        candidates["pebble ProcessPool(2).map, chunksize=N/8"] = lambda: list(
            pebble_pool.map(trivial, range(n), chunksize=n // 8).result()
        )
    try:
        times = interleaved(candidates, rounds=7, warmup=1, least=LEAST)
    finally:
        for close in closers:
            close()
    baseline = (
        "ProcessPoolExecutor(2).map"
        if "ProcessPoolExecutor(2).map" in times
        else "ProcessPoolExecutor(2).map, chunksize=N/8 (hand-tuned)"
    )
    return report_spread(
        f"Process mode, trivial function, 2 workers, warm, N = {n:,}",
        times,
        n,
        baseline,
        "ProcessPoolExecutor(2).map, chunksize=N/8 (hand-tuned)",
    )


def main() -> list[str]:
    lines = [
        "\n## Per-task overhead on a trivial function\n",
        "What poolkit adds per item, with the work itself as small as it gets. The tables below",
        "give each mode against the standard library and, where one exists, the hand-tuned floor.",
        "Every runner of a table runs once, untimed, before the timed rounds (the first run of",
        "a size grows the heap, for the standard library as for poolkit).",
    ]
    for n in (1_000, 20_000, 200_000):
        lines += thread_table(n)
    for n in (1_000, 20_000):
        lines += async_table(n)
    for n in (20_000, 200_000):
        lines += process_table(n)
    lines += executor_table(20_000)
    return lines


if __name__ == "__main__":
    main()
