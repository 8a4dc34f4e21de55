"""CPU-bound speed-up over a plain loop, by item size, interleaved: process mode warm and
cold, ProcessPoolExecutor, joblib and mpire; and the speed-up by worker count.

Run: python benchmarks/bench_cpu.py   (or make bench)
"""

from __future__ import annotations

import importlib.util
import multiprocessing
import os
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor

sys.path.insert(0, __file__.rsplit("/", 1)[0])

import poolkit
from _common import interleaved, ratio

# (seconds per item, items): about 0.8 s of serial work each
SIZES = [(0.0001, 8000), (0.001, 800), (0.01, 80), (0.1, 8)]
ROUNDS = 17  # this VM's cores change speed by +-20% from second to second: more rounds
REFERENCE = "2 forked processes, half each, no pool (the reference)"
WARM = "poolkit process (2), warm"


def burn(n: int) -> int:
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


def calibrate(target: float = 0.005) -> int:
    """The ``n`` for which ``burn(n)`` takes about ``target`` seconds here."""
    n = 10_000
    while True:
        began = time.perf_counter()
        burn(n)
        took = time.perf_counter() - began
        if took > 0.01:
            return max(1, int(n * target / took))
        n *= 2


def _serial(work: list[int]) -> None:
    for x in work:
        burn(x)


class _Reference:
    """Two forked processes, started before the timing, that each burn their half of
    the batch on one word from the parent and answer once. No pool, no per-item
    message, no result: what the machine gives two busy processes at that moment."""

    def __init__(self, workers: int = 2) -> None:
        context = multiprocessing.get_context("fork")
        self._pipes = []
        self._processes = []
        for _ in range(workers):
            ours, theirs = context.Pipe()
            process = context.Process(target=_reference_child, args=(theirs,), daemon=True)
            process.start()
            theirs.close()
            self._pipes.append(ours)
            self._processes.append(process)

    def run(self, work: list[int]) -> None:
        share = len(work) // len(self._pipes)
        for pipe in self._pipes:
            pipe.send((work[0], share))
        for pipe in self._pipes:
            pipe.recv()

    def close(self) -> None:
        for pipe in self._pipes:
            pipe.send(None)
        for process in self._processes:
            process.join(5)


def _reference_child(pipe: multiprocessing.connection.Connection) -> None:
    while (order := pipe.recv()) is not None:
        n, count = order
        for _ in range(count):
            burn(n)
        pipe.send(True)


def speedup_table() -> tuple[list[str], dict[str, dict[float, float]]]:
    """Speed-up over serial by item size; returns the table and the medians."""
    per_ms = calibrate(0.001)
    pool = ProcessPoolExecutor(2)
    list(pool.map(burn, [1, 1]))
    runner = poolkit.runner("process", workers=2)
    runner.run_all(burn, [1, 1])
    reference = _Reference(2)
    closers: list[Callable[[], object]] = [pool.shutdown, runner.close, reference.close]
    extra: dict[str, Callable[[list[int]], object]] = {}
    if importlib.util.find_spec("joblib"):
        import joblib

        parallel = joblib.Parallel(n_jobs=2)
        parallel.__enter__()
        closers.append(lambda: parallel.__exit__(None, None, None))
        extra["joblib (loky)"] = lambda w: parallel(joblib.delayed(burn)(x) for x in w)
    if importlib.util.find_spec("mpire"):
        from mpire import WorkerPool

        mpire_pool = WorkerPool(n_jobs=2, keep_alive=True)
        closers.append(mpire_pool.terminate)
        extra["mpire WorkerPool(2)"] = lambda w: mpire_pool.map(burn, w)
    speedups: dict[str, dict[float, float]] = {}
    spreads: dict[str, dict[float, tuple[float, float]]] = {}
    against_reference: dict[float, float] = {}
    try:
        for seconds, count in SIZES:
            work = [max(1, int(per_ms * seconds * 1000))] * count
            candidates: dict[str, Callable[[], object]] = {
                "serial": lambda w=work: _serial(w),
                REFERENCE: lambda w=work: reference.run(w),
                "ProcessPoolExecutor(2).map": lambda w=work: list(pool.map(burn, w)),
                # the floor: one message per worker's share, known in advance
                "ProcessPoolExecutor(2).map, chunksize=N/2 (hand-tuned)": lambda w=work: list(
                    pool.map(burn, w, chunksize=max(1, len(w) // 2))
                ),
                WARM: lambda w=work: runner.run_all(burn, w),
                "poolkit process (2), cold run_all": lambda w=work: poolkit.run_all(
                    burn, w, mode="process", workers=2
                ),
            }
            for name, run in extra.items():
                candidates[name] = lambda w=work, run=run: run(w)
            times = interleaved(candidates, rounds=ROUNDS)
            # each round's speed-up against that same round's serial run: a machine that
            # slows down for a while slows both, and drifts out of the ratio
            for name, took in times.items():
                ups = [s / t for s, t in zip(times["serial"], took, strict=True)]
                speedups.setdefault(name, {})[seconds] = statistics.median(ups)
                spreads.setdefault(name, {})[seconds] = (min(ups), max(ups))
            # poolkit against the reference run in the same round: the machine's mood cancels
            shares = [c / w for c, w in zip(times[REFERENCE], times[WARM], strict=True)]
            against_reference[seconds] = statistics.median(shares)
    finally:
        for close in closers:
            close()
    head = "| runner | " + " | ".join(f"{s * 1000:g} ms x {c}" for s, c in SIZES) + " |"
    lines = [
        f"\n## CPU-bound: speed-up over a plain loop on {os.cpu_count()} cores, by item size\n",
        f"Median (min-max) of {ROUNDS} interleaved rounds, each round's run against the same"
        " round's plain loop; higher is better; 2.00x is the ideal on 2 cores. The first"
        " row is the same work in two processes that never talk (each burns half the"
        " batch on one message): what the machine gave two busy processes in that round,"
        " with no pool at all.\n",
        head,
        "|---|" + "---|" * len(SIZES),
    ]
    for name, by_size in speedups.items():
        if name != "serial":
            cells = [
                f"{ratio(by_size[s])} ({spreads[name][s][0]:.2f}-{spreads[name][s][1]:.2f})"
                for s, _ in SIZES
            ]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append(
        f"\n{WARM} against that reference, round by round (its time over poolkit's;"
        " above 1.00x, poolkit was faster): "
        + ", ".join(f"{against_reference[s]:.2f}x ({s * 1000:g} ms)" for s, _ in SIZES)
        + "."
    )
    print("\n".join(lines), flush=True)
    return lines, speedups


def by_workers() -> tuple[list[str], list[tuple[int, float, float, float]]]:
    """Speed-up by worker count for 5 ms items: median, min and max of 3 rounds."""
    n = calibrate(0.005)
    work = [n] * 160
    points = []
    for workers in (1, 2, 3, 4):
        with poolkit.runner("process", workers=workers) as runner:
            runner.run_all(burn, [1] * workers)
            times = interleaved(
                {"serial": lambda: _serial(work), "ours": lambda r=runner: r.run_all(burn, work)},
                rounds=3,
            )
        ups = [s / o for s, o in zip(times["serial"], times["ours"], strict=True)]
        points.append((workers, statistics.median(ups), min(ups), max(ups)))
    lines = [
        "\n## CPU-bound speed-up by worker count (process mode, warm, 160 items of 5 ms)\n",
        "| workers | speed-up, median (min-max) |",
        "|---|---|",
    ] + [f"| {w} | {m:.2f}x ({lo:.2f}-{hi:.2f}) |" for w, m, lo, hi in points]
    print("\n".join(lines), flush=True)
    return lines, points


if __name__ == "__main__":
    speedup_table()
    by_workers()
