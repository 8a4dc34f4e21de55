"""Helpers shared by the benchmarks: timing side by side and printing ratios."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def best_of(run: Callable[[], object], repeat: int = 3) -> float:
    """The fastest of ``repeat`` runs, in seconds (the least disturbed measurement)."""
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        run()
        times.append(time.perf_counter() - began)
    return min(times)


def report(title: str, rows: list[tuple[str, float]], unit: str, per: int = 1) -> list[str]:
    """Print a table of ``rows`` (name, seconds) as per-item cost and ratio to the first row."""
    base = rows[0][1]
    lines = [f"\n## {title}\n", f"| runner | {unit} | ratio to {rows[0][0]} |", "|---|---|---|"]
    for name, seconds in rows:
        value = seconds / per * (1e6 if unit == "us/item" else 1)
        lines.append(f"| {name} | {value:.2f} | {seconds / base:.2f}x |")
    print("\n".join(lines), flush=True)
    return lines


def median(values: list[float]) -> float:
    return statistics.median(values)
