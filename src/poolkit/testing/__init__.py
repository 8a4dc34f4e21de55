"""Test your task functions under faults, in every mode.

- ``faulty(fn, plan)`` wraps ``fn`` so each item follows a script of outcomes, one per
  attempt: ``Return()``, ``Raise(error)``, ``Hang(seconds)`` or ``Crash(exitcode)``.
- ``fault_plans(keys)`` is a hypothesis strategy of such plans.
- ``check_invariants(results, items, plan, policy)`` asserts poolkit's promises for a
  batch run with a plan, with messages that say which item broke which promise.
- The pytest plugin (installed with poolkit) gives the fixtures ``poolkit_mode`` and
  ``poolkit_runner``, parametrized over every mode available here.

Examples:
    >>> import poolkit
    >>> from poolkit.testing import Raise, TransientError, faulty, check_invariants
    >>> plan = {2: (Raise(TransientError("blip")),)}
    >>> retry = poolkit.Retry(attempts=2, on=TransientError, backoff=0)
    >>> results = poolkit.run_all(faulty(abs, plan), [1, 2, 3], mode="thread", retry=retry)
    >>> check_invariants(results, [1, 2, 3], plan, retry)
    >>> results[1].attempts
    2
"""

from __future__ import annotations

from ._faults import (
    Crash,
    FatalError,
    FaultPlan,
    Faulty,
    Hang,
    Outcome,
    Raise,
    Return,
    TransientError,
    current_attempt,
    faulty,
)
from ._invariants import check_invariants, expected_outcome
from ._strategies import fault_plans, items

__all__ = [
    "Crash",
    "FatalError",
    "FaultPlan",
    "Faulty",
    "Hang",
    "Outcome",
    "Raise",
    "Return",
    "TransientError",
    "check_invariants",
    "current_attempt",
    "expected_outcome",
    "fault_plans",
    "faulty",
    "items",
]
