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


def interleaved(
    candidates: dict[str, Callable[[], object]], rounds: int = 7
) -> dict[str, list[float]]:
    """Time every candidate once per round, in turn, ``rounds`` times: each sees the same
    machine state (no candidate gets the quiet minute). Seconds per run, per candidate."""
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(rounds):
        for name, run in candidates.items():
            began = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - began)
    return times


def report_spread(
    title: str, times: dict[str, list[float]], per: int, baseline: str, floor: str | None = None
) -> list[str]:
    """A table of median us/item with min-max, ratio to ``baseline`` and to ``floor``."""
    base = statistics.median(times[baseline])
    ground = statistics.median(times[floor]) if floor else None
    head = f"| runner | us/item, median (min-max) | ratio to {baseline} |"
    head += f" ratio to the floor ({floor}) |" if floor else ""
    lines = [f"\n## {title}\n", head, "|---|---|---|" + ("---|" if floor else "")]
    for name, values in times.items():
        mid = statistics.median(values)
        row = (
            f"| {name} | {mid / per * 1e6:.2f} ({min(values) / per * 1e6:.2f}-"
            f"{max(values) / per * 1e6:.2f}) | {mid / base:.3f}x |"
        )
        if ground:
            row += f" {mid / ground:.2f}x |"
        lines.append(row)
    print("\n".join(lines), flush=True)
    return lines


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
