"""Helpers shared by the benchmarks: interleaved timing and honest tables.

Every table is measured the same way: each candidate runs once per round, in turn,
for several rounds (so no candidate gets the machine's quiet minute), and the table
shows the median with the min-max spread, the ratio to the standard library, the
ratio to the hand-tuned floor and which peer was best.
"""

from __future__ import annotations

import math
import os
import statistics
import time
from collections.abc import Callable


def interleaved(
    candidates: dict[str, Callable[[], object]],
    rounds: int = 7,
    warmup: int = 0,
    least: float = 0.0,
) -> dict[str, list[float]]:
    """Time every candidate once per round, in turn, ``rounds`` times: each sees the same
    machine state (no candidate gets the quiet minute), and the order rotates from round
    to round (no candidate always follows the same one). Seconds per run, per candidate.

    ``warmup`` untimed rounds come first, for every candidate alike: the first run of a
    size grows the process's heap and fills its caches, which no later run pays.

    ``least``: a candidate's turn in a round lasts at least about this many seconds: one
    whose run is shorter runs back to back as many times as that takes (counted from
    its last untimed run), and its time is their mean. A 2 ms run measured once
    measures this machine's scheduling hiccups, not the code."""
    repeats = dict.fromkeys(candidates, 1)
    for _ in range(max(warmup, 1 if least else 0)):
        for name, run in candidates.items():
            began = time.perf_counter()
            run()
            took = time.perf_counter() - began
            if least:
                repeats[name] = max(1, math.ceil(least / max(took, 1e-9)))
    times: dict[str, list[float]] = {name: [] for name in candidates}
    order = list(candidates.items())
    for round_ in range(rounds):
        # each round starts one candidate further on: no candidate always runs right
        # after the same neighbour (the CPU table's reference, always right after the
        # one-core serial loop, once came out 10-17% below the pools run after it)
        shift = round_ % len(order)
        for name, run in order[shift:] + order[:shift]:
            repeat = repeats[name]
            began = time.perf_counter()
            for _ in range(repeat):
                run()
            times[name].append((time.perf_counter() - began) / repeat)
    return times


def ratio(value: float) -> str:
    """A ratio with enough digits to mean something (never ``0.00x``)."""
    if value >= 0.1:
        return f"{value:.2f}x"
    if value >= 0.001:
        return f"{value:.3f}x"
    return f"{value:.1e}x"


def report_spread(
    title: str,
    times: dict[str, list[float]],
    per: int,
    baseline: str,
    floor: str | None = None,
    unit: str = "us/item",
) -> list[str]:
    """A table: median (min-max) per item, ratio to ``baseline`` and to ``floor``, and a
    line naming the best peer (the fastest runner that is neither poolkit nor a
    baseline) with poolkit's ratio to it.

    A ratio is the median of the per-round ratios (each round's time against the same
    round's baseline): a machine that slows down for a while slows both, and that
    drifts out of the ratio."""
    scale = {"us/item": 1e6, "ms": 1e3}.get(unit, 1.0)
    head = f"| runner | {unit}, median (min-max) | ratio to {baseline} |"
    head += f" ratio to the floor ({floor}) |" if floor else ""
    lines = [f"\n## {title}\n", head, "|---|---|---|" + ("---|" if floor else "")]
    for name, values in times.items():
        mid = statistics.median(values)
        row = (
            f"| {name} | {mid / per * scale:.2f} ({min(values) / per * scale:.2f}-"
            f"{max(values) / per * scale:.2f}) | {ratio(per_round(times, name, baseline))} |"
        )
        if floor:
            row += f" {ratio(per_round(times, name, floor))} |"
        lines.append(row)
    peers = {
        n: statistics.median(v)
        for n, v in times.items()
        if not n.startswith("poolkit") and n not in (baseline, floor)
    }
    ours = {n: statistics.median(v) for n, v in times.items() if n.startswith("poolkit")}
    rounds = len(next(iter(times.values())))
    if peers and ours:
        best = min(peers, key=peers.__getitem__)
        fastest = min(ours, key=ours.__getitem__)
        lines.append(
            f"\nBest peer: {best}. {fastest} takes {ratio(per_round(times, fastest, best))} "
            f"its time. {rounds} interleaved rounds; ratios are medians of per-round ratios."
        )
    else:
        lines.append(f"\n{rounds} interleaved rounds; ratios are medians of per-round ratios.")
    print("\n".join(lines), flush=True)
    return lines


def per_round(times: dict[str, list[float]], name: str, against: str) -> float:
    """The median over rounds of ``name``'s time divided by ``against``'s that round."""
    return statistics.median(
        mine / theirs for mine, theirs in zip(times[name], times[against], strict=True)
    )


def medians(times: dict[str, list[float]]) -> dict[str, float]:
    """The median of each candidate's times."""
    return {name: statistics.median(values) for name, values in times.items()}


def load_average() -> str:
    """The 1-minute load average, for the page's header."""
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except OSError:
        return "unknown"
