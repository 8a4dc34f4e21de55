"""``check_invariants``: poolkit's promises, asserted with messages a person can read."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

from poolkit import Err, Ok, Retry, TaskTimeout, WorkerCrashed

from ._faults import Crash, FaultPlan, Hang, Raise, Return

__all__ = ["check_invariants", "expected_outcome"]


def expected_outcome(
    script: Sequence[Any], retry: Retry | None, *, timeout: float | None = None
) -> tuple[type[BaseException] | None, int]:
    """(error type or None for Ok, attempts) that a script must produce under ``retry``."""
    attempt = 1
    while True:
        outcome = script[attempt - 1] if attempt <= len(script) else Return()
        error: BaseException
        if isinstance(outcome, Return):
            return None, attempt
        if isinstance(outcome, Hang):
            if timeout is None or outcome.seconds <= timeout:
                return None, attempt
            error = TaskTimeout(timeout, stopped=False)
        elif isinstance(outcome, Crash):
            error = WorkerCrashed(exitcode=outcome.exitcode, pid=None)
        else:
            assert isinstance(outcome, Raise)
            error = outcome.make()
        if retry is None or not retry.should_retry(error, attempt):
            return type(error), attempt
        attempt += 1


def check_invariants(
    results: Sequence[Ok[Any] | Err],
    items: Sequence[Any],
    plan: FaultPlan,
    policy: Retry | None = None,
    *,
    timeout: float | None = None,
    key: Any = None,
) -> None:
    """Assert one Result per item, in order, with the attempts and error types the plan implies.

    ``policy`` is the batch's ``Retry`` (None: no retry) and ``timeout`` its per-attempt
    timeout, if any. ``key`` is the same item-to-plan-key function given to ``faulty``
    (default: the item). Raises ``AssertionError`` listing every broken promise.
    """
    retry = policy
    problems: list[str] = []
    if len(results) != len(items):
        problems.append(f"{len(items)} items gave {len(results)} results (expected one per item)")
    for position, (result, item) in enumerate(zip(results, items, strict=False)):
        where = f"item #{position} ({item!r})"
        if result.index != position:
            problems.append(
                f"{where}: result has index {result.index}, expected {position} (order)"
            )
        if result.item != item:
            problems.append(f"{where}: result carries item {result.item!r}")
        plan_key: Hashable = item if key is None else key(item)
        want_error, want_attempts = expected_outcome(plan.get(plan_key, ()), retry, timeout=timeout)
        if want_error is None and not isinstance(result, Ok):
            problems.append(f"{where}: expected Ok, got {result!r}")
        elif want_error is not None and not (
            isinstance(result, Err) and isinstance(result.error, want_error)
        ):
            problems.append(f"{where}: expected Err({want_error.__name__}), got {result!r}")
        if result.attempts != want_attempts:
            problems.append(f"{where}: expected {want_attempts} attempt(s), got {result.attempts}")
    if problems:
        shown = "\n  ".join(problems[:20])
        more = f"\n  … and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise AssertionError(f"poolkit's promises broken:\n  {shown}{more}")
