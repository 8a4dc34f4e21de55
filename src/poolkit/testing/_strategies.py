"""Hypothesis strategies for fault plans and awkward inputs (needs hypothesis)."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

from ._faults import Crash, FatalError, Hang, Outcome, Raise, Return, TransientError

__all__ = ["fault_plans", "items"]


def fault_plans(
    keys: Sequence[Hashable],
    *,
    max_attempts: int = 3,
    fault_probability: float = 0.3,
    kinds: Sequence[str] = ("transient", "fatal"),
    hang_seconds: float = 30.0,
) -> Any:
    """A strategy of plans for ``keys``: per key, a script of up to ``max_attempts`` outcomes.

    Each attempt is a fault with ``fault_probability``, else a return (which ends the
    script). ``kinds`` picks the faults: ``"transient"`` (raises TransientError),
    ``"fatal"`` (FatalError), ``"hang"`` (sleeps ``hang_seconds``), ``"crash"``.

    Example:
        >>> from hypothesis import given
        >>> @given(fault_plans([1, 2, 3], kinds=("transient",)))
        ... def test(plan):
        ...     assert set(plan) <= {1, 2, 3}
        >>> test()
    """
    from hypothesis import strategies as st

    if not 0.0 <= fault_probability <= 1.0:
        raise ValueError(f"fault_probability={fault_probability}: expected a number in [0, 1]")
    makers = {
        "transient": lambda: Raise(TransientError("transient fault")),
        "fatal": lambda: Raise(FatalError("fatal fault")),
        "hang": lambda: Hang(hang_seconds),
        "crash": lambda: Crash(13),
    }
    unknown = set(kinds) - set(makers)
    if unknown:
        raise ValueError(f"unknown fault kinds {sorted(unknown)}; expected some of {sorted(makers)}")
    scale = 1000
    threshold = round(fault_probability * scale)
    fault = st.sampled_from(list(kinds)).map(lambda kind: makers[kind]())

    def outcome_or_stop(roll: int) -> Any:
        return fault if roll < threshold else st.just(Return())

    attempt = st.integers(0, scale - 1).flatmap(outcome_or_stop)

    def trim(script: list[Outcome]) -> tuple[Outcome, ...]:
        for position, outcome in enumerate(script):
            if isinstance(outcome, Return):
                return tuple(script[:position])
        return tuple(script)

    script = st.lists(attempt, min_size=1, max_size=max_attempts).map(trim)
    return st.dictionaries(st.sampled_from(list(keys)), script, max_size=len(keys)).map(
        lambda plan: {k: v for k, v in plan.items() if v}
    ) if keys else st.just({})


def items(kind: str = "hashable", *, max_size: int = 50) -> Any:
    """A strategy of inputs: ``"hashable"`` (ints and strings), ``"unhashable"`` (lists and
    dicts), ``"huge"`` (a range of up to 10**9 items, never materialised) or
    ``"generator"`` (a one-shot generator).

    Example:
        >>> from hypothesis import given
        >>> @given(items("unhashable"))
        ... def test(xs):
        ...     assert isinstance(xs, list)
        >>> test()
    """
    from hypothesis import strategies as st

    if kind == "hashable":
        return st.lists(st.integers() | st.text(max_size=5), max_size=max_size)
    if kind == "unhashable":
        return st.lists(
            st.lists(st.integers(), max_size=3) | st.dictionaries(st.text(max_size=3), st.integers()),
            max_size=max_size,
        )
    if kind == "huge":
        return st.integers(10**6, 10**9).map(range)
    if kind == "generator":
        return st.lists(st.integers(), max_size=max_size).map(lambda xs: (x for x in xs))
    raise ValueError(f"items(kind={kind!r}): expected 'hashable', 'unhashable', 'huge' or 'generator'")


