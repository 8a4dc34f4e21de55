"""How far apart process mode's workers finish a batch of equal CPU-bound items.

Each item reports its worker's pid and when it started and ended (``perf_counter`` is
system-wide on Linux); per batch, the spread is the gap between the workers' last
ends, the time one worker idles while another finishes its last chunk. Not part of
``make bench``: a probe for the chunk sizing (session 10 measured 12-22 ms before
guided chunk sizes, 1-3 ms after, at 800 items of 1 ms on 2 workers).

Run: python benchmarks/probe_chunk_tail.py [ms per item] [items] [batches]
"""

from __future__ import annotations

import os
import statistics
import sys
import time

sys.path.insert(0, __file__.rsplit("/", 1)[0])

import poolkit
from bench_cpu import burn, calibrate


def timed_burn(n: int) -> tuple[int, float, float]:
    """``burn(n)``, with this worker's pid, and when it began and ended."""
    began = time.perf_counter()
    burn(n)
    return os.getpid(), began, time.perf_counter()


def main() -> None:
    milliseconds = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 800
    batches = int(sys.argv[3]) if len(sys.argv) > 3 else 7
    work = [calibrate(milliseconds / 1000)] * count
    spreads, walls = [], []
    with poolkit.runner("process", workers=2) as runner:
        runner.run_all(burn, [1, 1])  # started
        for _ in range(batches):
            began = time.perf_counter()
            values = runner.run_all(timed_burn, work).values
            walls.append(time.perf_counter() - began)
            last_end: dict[int, float] = {}
            for pid, _, ended in values:
                last_end[pid] = max(last_end.get(pid, 0.0), ended)
            spreads.append(max(last_end.values()) - min(last_end.values()))
    print(
        f"{count} items of {milliseconds:g} ms, 2 workers, {batches} batches: the workers"
        f" finish {statistics.median(spreads) * 1000:.1f} ms apart (median; "
        f"{min(spreads) * 1000:.1f}-{max(spreads) * 1000:.1f}), batch"
        f" {statistics.median(walls) * 1000:.0f} ms"
    )


if __name__ == "__main__":
    main()
