"""Process mode: the time from a worker's death to its replacement serving items again,
and the happy-path cost of crash safety (see bench_overhead for the latter).

Run: python benchmarks/bench_recovery.py
"""

from __future__ import annotations

import os
from functools import partial
import statistics
import sys
import time

sys.path.insert(0, __file__.rsplit("/", 1)[0])

import poolkit


def record(deaths_file: str, x: int) -> tuple[int, float]:
    """Crash on every 50th item (after noting the time); else say who ran it and when."""
    if x % 50 == 49:
        with open(deaths_file, "a") as log:
            log.write(f"{time.time()}\n")
        os._exit(1)
    time.sleep(0.002)
    return os.getpid(), time.time()


def main() -> list[str]:
    deaths_file = f"/tmp/poolkit-bench-deaths-{os.getpid()}"
    try:
        with poolkit.runner("process", workers=2) as runner:
            runner.run_all(abs, [1, 2])
            results = runner.run_all(partial(record, deaths_file), range(500), max_in_flight=8)
        with open(deaths_file) as log:
            deaths = sorted(float(line) for line in log)
    finally:
        if os.path.exists(deaths_file):
            os.unlink(deaths_file)
    first_seen: dict[int, float] = {}
    for value in results.values:
        pid, when = value
        first_seen[pid] = min(first_seen.get(pid, when), when)
    starts = sorted(first_seen.values())
    gaps = []
    for death in deaths:
        later = [s for s in starts if s > death]
        if later:
            gaps.append(later[0] - death)
    crashed = sum(isinstance(r.error, poolkit.WorkerCrashed) for r in results.errs)
    lines = [
        "\n## Process mode: recovery from a worker's death\n",
        f"{crashed} deaths in 500 items (2 workers): the first item served by each "
        f"replacement starts {statistics.median(gaps) * 1000:.0f} ms (median, max "
        f"{max(gaps) * 1000:.0f} ms) after the death.",
    ]
    print("\n".join(lines), flush=True)
    return lines


if __name__ == "__main__":
    main()
