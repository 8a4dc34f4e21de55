"""Hypothesis strategies for fault plans and awkward inputs (needs hypothesis)."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

from ._faults import Crash, FatalError, Hang, Outcome, Raise, Return, TransientError

__all__ = ["fault_plans", "items"]


def fault_plans(
    keys: Sequence[Hashable] = tuple(range(10)),
    *,
    max_attempts: int = 3,
    fault_probability: float = 0.3,
    kinds: Sequence[str] = ("transient", "fatal"),
    hang_seconds: float = 30.0,
) -> Any:
    """A strategy of plans for ``keys`` (default: the items 0-9), a script per key.

    Each script has up to ``max_attempts`` outcomes.

    Each attempt is a fault with ``fault_probability``, else a return (which ends the
    script). ``kinds`` picks the faults: ``"transient"`` (raises TransientError),
    ``"fatal"`` (FatalError), ``"hang"`` (sleeps ``hang_seconds``), ``"crash"``.

    Examples:
        >>> from hypothesis import given
        >>> @given(fault_plans([1, 2, 3], kinds=("transient",)))
        ... def test(plan):
        ...     assert set(plan) <= {1, 2, 3}
        >>> test()
    """
    from hypothesis import strategies as st

    if not 0.0 <= fault_probability <= 1.0:
        raise ValueError(f"fault_probability={fault_probability}: expected a number in [0, 1]")
    faults: dict[str, Outcome] = {
        "transient": Raise(TransientError("transient fault")),
        "fatal": Raise(FatalError("fatal fault")),
        "hang": Hang(hang_seconds),
        "crash": Crash(13),
    }
    unknown = set(kinds) - set(faults)
    if unknown:
        raise ValueError(
            f"unknown fault kinds {sorted(unknown)}; expected some of {sorted(faults)}"
        )
    if not keys:
        return st.just({})
    scale = 1000
    threshold = round(fault_probability * scale)
    fault = st.sampled_from([faults[kind] for kind in kinds])
    ok: Any = st.just(Return())

    def attempt_from(roll: int) -> Any:
        return fault if roll < threshold else ok

    attempt = st.integers(0, scale - 1).flatmap(attempt_from)
    script = st.lists(attempt, min_size=1, max_size=max_attempts).map(_until_first_return)
    plans = st.dictionaries(st.sampled_from(list(keys)), script, max_size=len(keys))
    return plans.map(_without_empty_scripts)


def _until_first_return(script: list[Outcome]) -> tuple[Outcome, ...]:
    for position, outcome in enumerate(script):
        if isinstance(outcome, Return):
            return tuple(script[:position])
    return tuple(script)


def _without_empty_scripts(
    plan: dict[Hashable, tuple[Outcome, ...]],
) -> dict[Hashable, tuple[Outcome, ...]]:
    return {key: script for key, script in plan.items() if script}


def items(kind: str = "hashable", *, max_size: int = 50) -> Any:
    """A strategy of inputs: ``"hashable"`` (ints and strings), ``"unhashable"`` (lists and
    dicts), ``"huge"`` (a range of up to 10**9 items, never materialised) or
    ``"generator"`` (a one-shot generator).

    Examples:
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
            st.lists(st.integers(), max_size=3)
            | st.dictionaries(st.text(max_size=3), st.integers()),
            max_size=max_size,
        )
    if kind == "huge":
        return st.integers(10**6, 10**9).map(range)
    if kind == "generator":
        return st.lists(st.integers(), max_size=max_size).map(lambda xs: (x for x in xs))
    raise ValueError(
        f"items(kind={kind!r}): expected 'hashable', 'unhashable', 'huge' or 'generator'"
    )
