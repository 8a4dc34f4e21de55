"""poolkit.testing tested on itself: plans are followed, strategies shrink, fixtures work."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st

import poolkit
from poolkit.testing import (
    Crash,
    FatalError,
    Hang,
    Raise,
    Return,
    TransientError,
    check_invariants,
    current_attempt,
    expected_outcome,
    fault_plans,
    faulty,
    items,
)

from .helpers import identity

RETRY = poolkit.Retry(attempts=3, on=TransientError, backoff=0)


def test_a_plan_is_followed_exactly(poolkit_runner: Any) -> None:
    """Attempt counts and exception types follow the script, in every mode."""
    plan = {
        0: [Raise(TransientError("a")), Raise(TransientError("b"))],
        1: [Raise(FatalError("c"))],
        2: [Raise(TransientError("d")), Raise(TransientError("e")), Raise(TransientError("f"))],
        3: [Crash(5)],
    }
    results = poolkit_runner.run_all(faulty(identity, plan), range(5), retry=RETRY)
    assert [r.attempts for r in results] == [3, 1, 3, 1, 1]
    assert [type(r.error).__name__ for r in results.errs] == [
        "FatalError",
        "TransientError",
        "WorkerCrashed",
    ]
    check_invariants(results, list(range(5)), plan, RETRY)


def test_current_attempt_inside_workers(poolkit_mode: str) -> None:
    """current_attempt() tells the worker which attempt it runs."""
    plan = {0: [Raise(TransientError("x"))]}
    results = poolkit.run_all(
        faulty(lambda _: current_attempt(), plan), [0, 1], mode=poolkit_mode, retry=RETRY
    )
    assert results.values == [2, 1]


def test_expected_outcome() -> None:
    """The expected outcome of a script under a policy."""
    assert expected_outcome([], RETRY) == (None, 1)
    assert expected_outcome([Raise(TransientError())], RETRY) == (None, 2)
    assert expected_outcome([Raise(FatalError())], RETRY) == (FatalError, 1)
    assert expected_outcome([Raise(TransientError())] * 5, RETRY) == (TransientError, 3)
    assert expected_outcome([Hang(10)], RETRY, timeout=1)[0] is poolkit.TaskTimeout
    assert expected_outcome([Hang(0.1), Return()], None, timeout=1) == (None, 1)


def test_check_invariants_reports_broken_promises() -> None:
    """check_invariants names the item and the promise it broke."""
    plan = {1: [Raise(TransientError("t"))]}
    good = poolkit.run_all(faulty(identity, plan), [0, 1], retry=RETRY)
    check_invariants(good, [0, 1], plan, RETRY)
    no_retry = poolkit.run_all(faulty(identity, plan), [0, 1])
    with pytest.raises(AssertionError, match=r"item #1 \(1\): expected Ok"):
        check_invariants(no_retry, [0, 1], plan, RETRY)
    with pytest.raises(AssertionError, match="2 items gave 1 results"):
        check_invariants(good[:1], [0, 1], plan, RETRY)


class _WrongRetry(poolkit.Retry):
    """A deliberately wrong policy: it never retries an item whose key is 3 or more."""

    def should_retry(self, error: BaseException, attempt: int) -> bool:  # type: ignore[override]
        return False


def test_strategies_shrink_to_a_small_counterexample() -> None:
    """Against a wrong retry implementation, hypothesis finds a minimal plan."""

    def breaks_promises(plan: dict[Any, Any]) -> bool:
        results = poolkit.run_all(
            faulty(identity, plan),
            range(6),
            mode="serial",
            retry=_WrongRetry(attempts=3, on=TransientError, backoff=0),
        )
        try:
            check_invariants(results, list(range(6)), plan, RETRY)
        except AssertionError:
            return True
        return False

    smallest = find(
        fault_plans(list(range(6)), kinds=("transient", "fatal")),
        breaks_promises,
        settings=settings(database=None, max_examples=200, suppress_health_check=list(HealthCheck)),
    )
    assert len(smallest) == 1
    [script] = smallest.values()
    assert script == (Raise(TransientError("transient fault")),)


@given(fault_plans(["a", "b"], max_attempts=2, fault_probability=1.0, kinds=("crash", "hang")))
def test_fault_plans_respect_their_settings(plan: dict[Any, Any]) -> None:
    """Probability 1 gives only faults of the kinds asked for, up to max_attempts."""
    for script in plan.values():
        assert 1 <= len(script) <= 2
        assert all(isinstance(o, Crash | Hang) for o in script)


@given(items("unhashable"), items("generator"), items("huge"))
def test_items_strategies(unhashable: list[Any], generator: Any, huge: range) -> None:
    """The items strategies give what they say."""
    assert all(isinstance(x, list | dict) for x in unhashable)
    assert iter(generator) is generator
    assert len(huge) >= 10**6


def test_bad_strategy_arguments() -> None:
    """fault_plans and items reject bad arguments."""
    with pytest.raises(ValueError, match="unknown fault kinds"):
        fault_plans([1], kinds=("meteor",))
    with pytest.raises(ValueError, match="fault_probability"):
        fault_plans([1], fault_probability=2)
    with pytest.raises(ValueError, match="items"):
        items("weird")


def test_fixtures_parametrize_over_modes(request: pytest.FixtureRequest, poolkit_mode: str) -> None:
    """poolkit_mode runs this test once per local mode."""
    assert poolkit_mode in ("serial", "thread", "process", "async", "dask")
    assert request.node.callspec.params["poolkit_mode"] == poolkit_mode


@given(st.integers(0, 3))
def test_faulty_is_picklable(n: int) -> None:
    """A faulty wrapper survives pickling (for process and dask modes)."""
    import pickle

    wrapped = faulty(identity, {n: [Raise(FatalError("x"))]})
    clone = pickle.loads(pickle.dumps(wrapped))
    assert clone.outcome(n, 1) == Raise(FatalError("x"))
    assert clone.outcome(n + 1, 1) == Return()
