"""Peak memory streaming a long generator: poolkit.stream against ThreadPoolExecutor.map.

Each runs in its own process so peaks do not mix. Executor.map takes the whole input
first; poolkit takes at most max_in_flight items at a time.
Run: python benchmarks/bench_memory.py [items] [poolkit-only items]   (or make bench)
"""

from __future__ import annotations

import subprocess
import sys

CHILD = """
import sys, time
from concurrent.futures import ThreadPoolExecutor
import poolkit

def f(x):
    return x

n, which = int(sys.argv[1]), sys.argv[2]
began = time.perf_counter()
first = None
if which == "stdlib":
    with ThreadPoolExecutor(4) as pool:
        for i, _ in enumerate(pool.map(f, (x for x in range(n)))):
            if first is None:
                first = time.perf_counter() - began
else:
    for i, _ in enumerate(poolkit.stream(f, (x for x in range(n)), mode="thread", workers=4)):
        if first is None:
            first = time.perf_counter() - began
total = time.perf_counter() - began
# VmHWM, not ru_maxrss: the latter keeps the parent's peak across fork and exec
with open("/proc/self/status") as status:
    peak = next(int(line.split()[1]) for line in status if line.startswith("VmHWM"))
print(peak / 1024, first, total)
"""


def measure(which: str, items: int) -> tuple[float, float, float]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(items), which], capture_output=True, text=True, check=True
    ).stdout.split()
    return float(out[0]), float(out[1]), float(out[2])


RETAINED = """
import sys, tracemalloc
import poolkit
def f(x):
    return x
n, which = int(sys.argv[1]), sys.argv[2]
tracemalloc.start()
if which == "list":
    kept = [f(x) for x in range(n)]
else:
    kept = poolkit.run_all(f, range(n), mode=which, workers=4)
    assert len(kept) == n
current, _ = tracemalloc.get_traced_memory()
print(current / n)
"""


def retained(items: int = 1_000_000) -> list[str]:
    """Bytes retained per result (tracemalloc), each in a fresh interpreter."""
    lines = [
        f"\n## Memory retained per result ({items:,} items, tracemalloc)\n",
        "| what is kept | bytes per item |",
        "|---|---|",
    ]
    for name, which in [
        ("a plain list of the values", "list"),
        ("poolkit.run_all serial: Results", "serial"),
        ("poolkit.run_all thread: Results", "thread"),
    ]:
        out = subprocess.run(
            [sys.executable, "-c", RETAINED, str(items), which],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        lines.append(f"| {name} | {float(out):.0f} |")
    print("\n".join(lines), flush=True)
    return lines


def main(items: int = 1_000_000, poolkit_only: int = 4_000_000) -> list[str]:
    lines = [
        "\n## Streaming a generator through 4 threads: peak memory\n",
        "| runner | items | peak RSS (MB) | first result (s) | total (s) |",
        "|---|---|---|---|---|",
    ]
    runs = [("ThreadPoolExecutor(4).map", "stdlib", items), ("poolkit.stream", "poolkit", items)]
    if poolkit_only:
        runs.append(("poolkit.stream", "poolkit", poolkit_only))
    for name, which, count in runs:
        rss, first, total = measure(which, count)
        lines.append(f"| {name} | {count:,} | {rss:.0f} | {first:.3f} | {total:.1f} |")
    print("\n".join(lines), flush=True)
    return lines + retained()


if __name__ == "__main__":
    main(*(int(arg) for arg in sys.argv[1:3]))
