"""Fault plans and the ``faulty`` wrapper that follows them."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

from poolkit import WorkerCrashed

# The one private import of the testing kit: which attempt a worker runs, and whether
# it runs in a worker process (where a simulated crash may really exit).
from poolkit._core import _attempt as _context

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
    "current_attempt",
    "faulty",
]


class TransientError(Exception):
    """A failure that a retry policy is expected to retry (for tests)."""


class FatalError(Exception):
    """A failure that a retry policy is expected not to retry (for tests)."""


@dataclass(frozen=True, slots=True)
class Return:
    """The attempt calls the wrapped function and returns what it returns."""


@dataclass(frozen=True, slots=True, eq=False)
class Raise:
    """The attempt raises ``error`` (a fresh copy each time).

    Two Raise outcomes are equal when their errors have the same type and arguments.
    """

    error: BaseException

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Raise):
            return NotImplemented
        return (type(self.error), self.error.args) == (type(other.error), other.error.args)

    def __hash__(self) -> int:
        return hash((type(self.error), self.error.args))

    def make(self) -> BaseException:
        try:
            return type(self.error)(*self.error.args)
        except Exception:
            return self.error


@dataclass(frozen=True, slots=True)
class Hang:
    """The attempt sleeps ``seconds`` (set it past the batch's timeout), then returns."""

    seconds: float = 60.0


@dataclass(frozen=True, slots=True)
class Crash:
    """The attempt kills its worker process with ``os._exit(exitcode)``.

    In a process-mode worker that is a real death; in the other modes (where it would
    kill your test run) it raises ``WorkerCrashed`` instead, so results agree.
    """

    exitcode: int = 13


Outcome: TypeAlias = Return | Raise | Hang | Crash
FaultPlan: TypeAlias = Mapping[Hashable, Sequence[Outcome]]
"""For each item (or item key), the outcome of attempt 1, 2, …; attempts past the
end of the script, and items not in the plan, return normally."""


def current_attempt() -> int:
    """The number (1-based) of the attempt running in this worker.

    Examples:
        >>> import poolkit
        >>> poolkit.run_all(lambda _: current_attempt(), [None], mode="serial").values
        [1]
    """
    return _context.ATTEMPT.get()


class Faulty:
    """A picklable wrapper that follows a fault plan; build it with ``faulty``."""

    def __init__(
        self,
        fn: Callable[[Any], Any],
        plan: FaultPlan,
        key: Callable[[Any], Hashable] | None = None,
    ) -> None:
        self.fn = fn
        self.plan = {k: tuple(v) for k, v in plan.items()}
        self.key = key

    def outcome(self, item: Any, attempt: int) -> Outcome:
        """What attempt number ``attempt`` of ``item`` does."""
        script = self.plan.get(item if self.key is None else self.key(item), ())
        return script[attempt - 1] if attempt <= len(script) else Return()

    def __call__(self, item: Any) -> Any:
        outcome = self.outcome(item, current_attempt())
        if isinstance(outcome, Raise):
            raise outcome.make()
        if isinstance(outcome, Hang):
            time.sleep(outcome.seconds)
        elif isinstance(outcome, Crash):
            if _context.IN_WORKER_PROCESS:
                os._exit(outcome.exitcode)
            raise WorkerCrashed(exitcode=outcome.exitcode, pid=None, detail="simulated crash")
        return self.fn(item)

    def __repr__(self) -> str:
        return f"faulty({self.fn!r}, <plan for {len(self.plan)} items>)"


def faulty(
    fn: Callable[[Any], Any], plan: FaultPlan, *, key: Callable[[Any], Hashable] | None = None
) -> Faulty:
    """Wrap ``fn`` so each item follows ``plan`` (looked up by ``key(item)``, or the item).

    Examples:
        >>> f = faulty(str, {1: [Raise(ValueError("no")), Return()]})
        >>> f.outcome(1, 1), f.outcome(1, 2), f.outcome(2, 1)
        (Raise(error=ValueError('no')), Return(), Return())
    """
    return Faulty(fn, plan, key)
