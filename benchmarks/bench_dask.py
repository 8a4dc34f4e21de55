"""Dask mode, interleaved on one LocalCluster of 2: per-task overhead
against the hand-made floor (client.map over 64-item chunks) and joblib's dask backend
at 20,000 items, against one task per item at 2,000, and the CPU-bound speed-up.
Needs the dask extra. Run: python benchmarks/bench_dask.py
"""

from __future__ import annotations

import sys
import time
from typing import Any

sys.path.insert(0, __file__.rsplit("/", 1)[0])

import poolkit
from _common import interleaved, medians, report_spread
from bench_cpu import burn, calibrate

N = 20_000


def trivial(x: int) -> int:
    return x


class Payload:
    """A large read-only object that counts how often this process pickles it."""

    pickled = 0

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __reduce__(self) -> tuple[object, ...]:
        Payload.pickled += 1
        return (Payload, (self.data,))


def size_plus(payload: Payload, x: int) -> int:
    return len(payload.data) + x


def scatter_table(runner: object, client: object, megabytes: int = 50) -> list[str]:
    """One large object used by every item: captured in the function, or scattered
    once with broadcast=True and passed by its Future. Copies pickled by this process
    and seconds, median of 3 interleaved rounds."""
    from functools import partial

    payload = Payload(b"x" * (megabytes << 20))
    before = Payload.pickled
    shared = client.scatter(payload, broadcast=True)  # type: ignore[attr-defined]
    by_scatter = Payload.pickled - before
    items = range(40)
    counts: dict[str, list[int]] = {"captured": [], "scattered": []}

    def captured() -> None:
        before = Payload.pickled
        runner.run_all(partial(size_plus, payload), items)  # type: ignore[attr-defined]
        counts["captured"].append(Payload.pickled - before)

    def scattered() -> None:
        before = Payload.pickled
        runner.run_all(size_plus, [(shared, x) for x in items], star=True)  # type: ignore[attr-defined]
        counts["scattered"].append(Payload.pickled - before)

    mids = medians(interleaved({"captured": captured, "scattered": scattered}, rounds=3))
    lines = [
        f"\n## Dask: one {megabytes} MB object used by 40 items (LocalCluster of 2)\n",
        "| how the object travels | copies pickled per batch | seconds, median of 3 |",
        "|---|---|---|",
        f"| captured in the function (`functools.partial`) | {max(counts['captured'])} | "
        f"{mids['captured']:.2f} |",
        f"| `client.scatter(obj, broadcast=True)`, its Future in each item | "
        f"{max(counts['scattered'])} (the scatter itself: {by_scatter}) | "
        f"{mids['scattered']:.2f} |",
    ]
    print("\n".join(lines), flush=True)
    return lines


def chunk_of(xs: list[int]) -> list[int]:
    return [trivial(x) for x in xs]


def main() -> list[str]:
    try:
        import distributed
    except ImportError:
        print("dask is not installed: pip install 'poolkit[dask]'")
        return []
    lines: list[str] = []
    with poolkit.runner("dask", workers=2) as runner:
        client = runner._get_backend()._client  # the same cluster for every candidate
        client.gather(client.map(trivial, range(10)))
        runner.run_all(trivial, range(10))
        chunks = [list(range(i, min(i + 64, N))) for i in range(0, N, 64)]
        candidates: dict[str, Any] = {
            "client.map over 64-item chunks (hand-made)": lambda: client.gather(
                client.map(chunk_of, chunks, pure=False)
            ),
            "poolkit dask, defaults": lambda: runner.run_all(trivial, range(N)),
        }
        try:
            import joblib

            def by_joblib() -> object:
                with joblib.parallel_config(backend="dask"):
                    return joblib.Parallel()(joblib.delayed(trivial)(i) for i in range(N))

            by_joblib()
            candidates["joblib, dask backend"] = by_joblib
        except Exception as error:  # joblib missing, or too old for parallel_config
            print(f"(joblib's dask backend skipped: {error!r})")
        times = interleaved(candidates, rounds=5)
        lines += report_spread(
            f"Dask: per-task overhead ({N:,} trivial items, LocalCluster of 2)",
            times,
            N,
            "client.map over 64-item chunks (hand-made)",
        )
        few = 2_000
        per_item = interleaved(
            {
                "client.map + gather, one task per item": lambda: client.gather(
                    client.map(trivial, range(few), pure=False)
                ),
                "poolkit dask, defaults": lambda: runner.run_all(trivial, range(few)),
            },
            rounds=3,
        )
        lines += report_spread(
            f"Dask: against one task per item ({few:,} trivial items)",
            per_item,
            few,
            "client.map + gather, one task per item",
        )
        n = calibrate(0.005)
        work = [n] * 100
        mids = medians(
            interleaved(
                {
                    "serial": lambda: [burn(x) for x in work],
                    "ours": lambda: runner.run_all(burn, work),
                },
                rounds=3,
            )
        )
        line = (
            f"\nCPU-bound, 100 items of ~5 ms: serial {mids['serial']:.2f} s, poolkit dask "
            f"{mids['ours']:.2f} s: {mids['serial'] / mids['ours']:.2f}x (medians of 3)."
        )
        print(line)
        lines.append(line)
        lines += scatter_table(runner, client)
    _ = distributed, time
    return lines


if __name__ == "__main__":
    main()
