"""Big data in process mode: large arrays in, and one large read-only object for all.

Interleaved against ProcessPoolExecutor, joblib (which memory-maps large arrays) and
the hand-tuned floor: fork workers reading a global, which copies nothing.

Run: python benchmarks/bench_bigdata.py   (or make bench)
"""

from __future__ import annotations

import functools
import importlib.util
import multiprocessing
import sys
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np

sys.path.insert(0, __file__.rsplit("/", 1)[0])

import poolkit
from _common import interleaved, report_spread

ARRAYS: list[Any] = []  # the fork floor's global
TABLE: Any = None


def total(array: Any) -> float:
    return float(array.sum())


def total_of_shared(handle: Any) -> float:
    return float(handle.value.sum())


def total_of_global(i: int) -> float:
    return float(ARRAYS[i].sum())


def slice_of_global(i: int) -> float:
    return float(TABLE[i * 1000 : i * 1000 + 1000].sum())


def slice_of(table: Any, i: int) -> float:
    return float(table[i * 1000 : i * 1000 + 1000].sum())


def arrays_table(count: int, megabytes: int, rounds: int, *, fresh: bool) -> list[str]:
    """``count`` arrays of ``megabytes`` MB each, summed in 2 worker processes; ``fresh``:
    new arrays every round. joblib caches what it memory-mapped by the array's
    identity, so the same arrays again cost it almost nothing the second time (and an
    array changed in place in between is sent stale); poolkit copies each batch's
    arrays afresh, or shares them once when asked (``poolkit.shared``)."""
    global ARRAYS
    ARRAYS = [np.full(megabytes * 131_072, i, dtype=np.float64) for i in range(count)]
    sets = [ARRAYS]
    if fresh:
        sets = [
            [np.full(megabytes * 131_072, i + r, dtype=np.float64) for i in range(count)]
            for r in range(rounds)
        ]

    def each_round() -> Callable[[], list[Any]]:
        turns = iter(sets * rounds if not fresh else sets)
        return lambda: next(turns)

    fork = multiprocessing.get_context("fork")
    candidates: dict[str, Callable[[], object]] = {}
    closers: list[Callable[[], object]] = []
    pool = ProcessPoolExecutor(2)
    closers.append(pool.shutdown)
    list(pool.map(total, ARRAYS[:2]))
    arrays_for = each_round()
    candidates["ProcessPoolExecutor(2).map"] = lambda: list(pool.map(total, arrays_for()))
    floor = ProcessPoolExecutor(2, mp_context=fork)  # forked after ARRAYS exists
    closers.append(floor.shutdown)
    list(floor.map(total_of_global, range(2)))
    candidates["fork workers reading a global (the floor)"] = lambda: list(
        floor.map(total_of_global, range(count))
    )
    runner = poolkit.runner("process", workers=2)
    closers.append(runner.close)
    runner.run_all(total, ARRAYS[:2])
    ours_for = each_round()
    candidates["poolkit process (2)"] = lambda: runner.run_all(total, ours_for())
    if not fresh:  # the same arrays again: share them once, as joblib's cache does
        handles = [poolkit.shared(a) for a in ARRAYS]
        closers.append(lambda: [h.release() for h in handles])
        candidates["poolkit process (2), each array in poolkit.shared"] = lambda: runner.run_all(
            total_of_shared, handles
        )
    if importlib.util.find_spec("joblib"):
        import joblib

        parallel = joblib.Parallel(n_jobs=2)
        parallel.__enter__()
        closers.append(lambda: parallel.__exit__(None, None, None))
        parallel(joblib.delayed(total)(a) for a in ARRAYS[:2])
        joblib_for = each_round()
        candidates["joblib (loky, memory-maps large arrays)"] = lambda: parallel(
            joblib.delayed(total)(a) for a in joblib_for()
        )
    try:
        times = interleaved(candidates, rounds=rounds)
    finally:
        for close in closers:
            close()
    ARRAYS = []
    which = "new arrays every round" if fresh else "the same arrays every round"
    return report_spread(
        f"Big data in: {count} NumPy arrays of {megabytes} MB, summed, 2 workers, {which}",
        times,
        1,
        "ProcessPoolExecutor(2).map",
        "fork workers reading a global (the floor)",
        unit="ms",
    )


def shared_table(megabytes: int = 100, items: int = 100, rounds: int = 5) -> list[str]:
    """One large read-only array read by every item: sent once per worker, or with
    every batch."""
    global TABLE
    TABLE = np.arange(megabytes * 131_072, dtype=np.float64)
    table = TABLE
    fork = multiprocessing.get_context("fork")
    runner = poolkit.runner("process", workers=2)
    runner.run_all(slice_of_global, range(2))

    def forked() -> None:  # the floor: workers forked after the global exists
        with ProcessPoolExecutor(2, mp_context=fork) as pool:
            list(pool.map(slice_of_global, range(items)))

    def with_shared() -> None:
        handle = poolkit.shared(table)
        runner.run_all(lambda i: slice_of(handle.value, i), range(items))
        handle.release()

    def captured() -> None:
        runner.run_all(functools.partial(slice_of, table), range(items))

    candidates: dict[str, Callable[[], object]] = {
        "fork workers reading a global, pool included (the floor)": forked,
        "poolkit process (2), poolkit.shared, warm runner": with_shared,
        "poolkit process (2), captured in a partial, warm runner": captured,
    }
    try:
        times = interleaved(candidates, rounds=rounds)
    finally:
        runner.close()
    TABLE = None
    return report_spread(
        f"One {megabytes} MB read-only array read by {items} items, 2 workers",
        times,
        1,
        "poolkit process (2), captured in a partial, warm runner",
        "fork workers reading a global, pool included (the floor)",
        unit="ms",
    )


def main() -> list[str]:
    lines = arrays_table(8, 50, rounds=5, fresh=True)
    lines += arrays_table(8, 50, rounds=5, fresh=False)
    lines += arrays_table(200, 1, rounds=5, fresh=True)
    lines += shared_table()
    return lines


if __name__ == "__main__":
    print("\n".join(main()))
