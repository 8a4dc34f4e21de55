"""``Results.summary()``: a batch in numbers and as a readable table."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from poolkit._quote import short_repr

__all__ = ["Summary"]


def _percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of already sorted values (0.0 when there are none)."""
    if not sorted_values:
        return 0.0
    rank = max(1, round(fraction * len(sorted_values) + 0.5 - 1e-9))
    return sorted_values[min(rank, len(sorted_values)) - 1]


@dataclass(frozen=True, slots=True)
class Summary:
    """A batch in numbers; ``str(summary)`` is a table.

    Examples:
        >>> import poolkit
        >>> s = poolkit.run_all(abs, [-1, 2, -3], mode="serial").summary()
        >>> (s.total, s.ok, s.err)
        (3, 3, 0)
    """

    total: int
    ok: int
    err: int
    errors_by_type: dict[str, int]
    attempts_histogram: dict[int, int]
    wall_time: float
    items_per_second: float
    p50: float
    p90: float
    p99: float
    max: float
    slowest: list[tuple[int, Any, float]] = field(default_factory=list)
    """Up to five (index, item, elapsed) of the slowest items, slowest first."""

    @classmethod
    def of(cls, results: Sequence[Any], *, wall_time: float) -> Summary:
        """Compute the summary of ``results`` (Ok/Err objects)."""
        from ._results import Ok

        errors: Counter[str] = Counter()
        attempts: Counter[int] = Counter()
        latencies: list[float] = []
        ok = 0
        for r in results:
            attempts[r.attempts] += 1
            latencies.append(r.elapsed)
            if isinstance(r, Ok):
                ok += 1
            else:
                errors[type(r.error).__name__] += 1
        ordered = sorted(latencies)
        slowest = sorted(results, key=lambda r: r.elapsed, reverse=True)[:5]
        return cls(
            total=len(results),
            ok=ok,
            err=len(results) - ok,
            errors_by_type=dict(errors.most_common()),
            attempts_histogram=dict(sorted(attempts.items())),
            wall_time=wall_time,
            items_per_second=len(results) / wall_time if wall_time > 0 else 0.0,
            p50=_percentile(ordered, 0.50),
            p90=_percentile(ordered, 0.90),
            p99=_percentile(ordered, 0.99),
            max=ordered[-1] if ordered else 0.0,
            slowest=[(r.index, r.item, r.elapsed) for r in slowest],
        )

    def __str__(self) -> str:
        rows = [
            ("items", f"{self.total}  ({self.ok} ok, {self.err} err)"),
            ("wall time", f"{self.wall_time:.3f} s"),
            ("throughput", f"{self.items_per_second:,.1f} items/s"),
            (
                "latency",
                f"p50 {_ms(self.p50)}  p90 {_ms(self.p90)}  "
                f"p99 {_ms(self.p99)}  max {_ms(self.max)}",
            ),
            (
                "attempts",
                "  ".join(f"{n}x: {count}" for n, count in self.attempts_histogram.items()) or "-",
            ),
        ]
        for name, count in self.errors_by_type.items():
            rows.append((f"  {name}", str(count)))
        if self.slowest:
            rows.append(("slowest", ""))
            for index, item, elapsed in self.slowest[:3]:
                rows.append((f"  #{index}", f"{_ms(elapsed)}  {short_repr(item)}"))
        width = max(len(name) for name, _ in rows)
        return "\n".join(f"{name:<{width}}  {value}".rstrip() for name, value in rows)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms" if seconds < 10 else f"{seconds:.1f} s"
