"""Where process mode's parent spends CPU during a CPU-bound batch, thread by thread.

On 2 cores every millisecond the parent runs is taken from the two workers. This reads
each parent thread's CPU time and number of times it ran (``/proc/self/task/*/schedstat``,
Linux) around a few warm batches of equal items, beside the same batches sent by a
``ProcessPoolExecutor`` in one chunk per worker (the floor), whose parent does almost
nothing. Not part of ``make bench``: a probe for the parent's per-message cost (session
11 measured about 8-9 ms for the collector and 3 ms for the main thread per batch of
0.8 s of work, about 65 wakes each, at every item size; 1-3 ms for the floor).

Run: python benchmarks/probe_parent_cpu.py [batches]
"""

from __future__ import annotations

import glob
import os
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor

sys.path.insert(0, __file__.rsplit("/", 1)[0])

import poolkit
from bench_cpu import burn, calibrate

SIZES = [(0.0001, 8000), (0.001, 800), (0.01, 80)]  # about 0.8 s of work each


def _per_thread() -> dict[int, tuple[int, int]]:
    """Per thread id: nanoseconds on a CPU, and times it was scheduled in."""
    found = {}
    for task in glob.glob(f"/proc/{os.getpid()}/task/*"):
        try:
            with open(f"{task}/schedstat") as stats:
                ran, _, slices = stats.read().split()
        except OSError:
            continue  # it ended meanwhile
        found[int(task.rsplit("/", 1)[1])] = (int(ran), int(slices))
    return found


def measure(run: Callable[[], object], batches: int) -> tuple[float, dict[str, tuple[float, int]]]:
    """Wall ms per batch, and per thread name: CPU ms and wakes per batch."""
    run()
    before = _per_thread()
    began = time.perf_counter()
    for _ in range(batches):
        run()
    wall = (time.perf_counter() - began) * 1000 / batches
    after = _per_thread()
    names = {t.native_id: t.name for t in threading.enumerate()}
    spent: dict[str, tuple[float, int]] = {}
    for tid, (ran, slices) in after.items():
        if tid in before and ran - before[tid][0] > 100_000:
            name = names.get(tid, str(tid))
            spent[name] = (
                (ran - before[tid][0]) / 1e6 / batches,
                (slices - before[tid][1]) // batches,
            )
    return wall, spent


def main(batches: int = 5) -> None:
    per_ms = calibrate(0.001)
    with (
        ProcessPoolExecutor(2) as pool,
        poolkit.runner("process", workers=2) as runner,
    ):
        for seconds, count in SIZES:
            work = [max(1, int(per_ms * seconds * 1000))] * count
            runs: dict[str, Callable[[], object]] = {
                "floor": lambda w=work: list(pool.map(burn, w, chunksize=len(w) // 2)),
                "poolkit": lambda w=work: runner.run_all(burn, w),
            }
            for name, run in runs.items():
                wall, spent = measure(run, batches)
                threads = ", ".join(
                    f"{thread} {ms:.1f} ms / {wakes} wakes" for thread, (ms, wakes) in spent.items()
                )
                size = f"{seconds * 1000:g} ms x {count}"
                print(f"{size}, {name}: {wall:.0f} ms per batch; {threads}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
