"""Retry, timeout, deadline, fail-fast, cancel and rate limit, the same in every mode."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import tenacity
from hypothesis import given

import poolkit
from poolkit import Err, Ok
from poolkit.testing import (
    FatalError,
    Hang,
    Raise,
    TransientError,
    check_invariants,
    fault_plans,
    faulty,
)

from .conftest import wait_until
from .helpers import identity, nap

NO_WAIT = poolkit.Retry(attempts=3, on=(TransientError, poolkit.TaskTimeout), backoff=0)


@given(fault_plans(list(range(12)), max_attempts=4, kinds=("transient", "fatal")))
def test_fault_plans_are_followed_in_every_mode(runners: Any, plan: Any) -> None:
    """Random scripts of transient/fatal faults: one Result per item, exact attempts and types."""
    items = list(range(12))
    for mode, runner in runners.items():
        results = runner.run_all(faulty(identity, plan), items, retry=NO_WAIT)
        try:
            check_invariants(results, items, plan, NO_WAIT)
        except AssertionError as error:
            raise AssertionError(f"in {mode} mode: {error}") from None


@given(fault_plans(list(range(6)), max_attempts=2, kinds=("transient", "hang"), hang_seconds=5))
def test_hangs_time_out_and_are_retried(runners: Any, plan: Any) -> None:
    """Hangs past the timeout become TaskTimeout, retried when on matches, in bounded time."""
    items = list(range(6))
    for mode in ("thread", "process", "async"):
        began = time.monotonic()
        results = runners[mode].run_all(faulty(identity, plan), items, retry=NO_WAIT, timeout=0.3)
        check_invariants(results, items, plan, NO_WAIT, timeout=0.3)
        assert time.monotonic() - began < 6, mode


def test_retry_counts_attempts_and_elapsed(mode: str) -> None:
    """A retried item reports every attempt and the backoff in elapsed."""
    plan = {1: [Raise(TransientError("a")), Raise(TransientError("b"))]}
    retry = poolkit.Retry(attempts=3, on=TransientError, backoff=0.1)
    results = poolkit.run_all(faulty(identity, plan), [0, 1], mode=mode, workers=2, retry=retry)
    assert results[0] == Ok(0, item=0, index=0, attempts=1, elapsed=results[0].elapsed)
    assert results[1].attempts == 3
    assert results[1].is_ok()
    assert results[1].elapsed >= 0.2


def test_not_retried_when_on_does_not_match(mode: str) -> None:
    """An error outside on is final after one attempt."""
    plan = {0: [Raise(FatalError("no"))]}
    retry = poolkit.Retry(attempts=5, on=TransientError, backoff=0)
    [result] = poolkit.run_all(faulty(identity, plan), [0], mode=mode, retry=retry)
    assert isinstance(result, Err)
    assert isinstance(result.error, FatalError)
    assert result.attempts == 1


def test_retry_predicate_and_predicate_that_raises() -> None:
    """on= takes a predicate; one that raises gives the item that error, not a crash."""
    plan = {0: [Raise(TransientError("x"))], 1: [Raise(TransientError("x"))]}
    retry = poolkit.Retry(attempts=2, on=lambda e: "x" in str(e), backoff=0)
    assert poolkit.run_all(faulty(identity, plan), [0, 1], retry=retry).values == [0, 1]

    def broken(error: BaseException) -> bool:
        raise LookupError("predicate broke")

    [result] = poolkit.run_all(faulty(identity, plan), [0], retry=poolkit.Retry(2, on=broken))
    assert isinstance(result, Err)
    assert isinstance(result.error, LookupError)
    assert isinstance(result.error.__context__, TransientError)


def test_tenacity_wait_strategies() -> None:
    """Retry accepts tenacity wait strategies, combined with + too."""
    retry = poolkit.Retry(attempts=3, backoff=tenacity.wait_fixed(0.05) + tenacity.wait_fixed(0.01))
    assert retry.wait(ValueError(), 1) == pytest.approx(0.06)
    exp = poolkit.Retry(backoff=tenacity.wait_exponential(multiplier=1, max=4))
    assert [exp.wait(ValueError(), n) for n in (1, 2, 3, 4)] == [1, 2, 4, 4]
    default = poolkit.Retry()
    assert all(0 <= default.wait(ValueError(), n) <= 10 for n in range(1, 20))


@pytest.mark.parametrize("mode", ["serial", "thread", "process", "async"])
def test_tenacity_retry_strategies_pick_what_is_retried(mode: str) -> None:
    """``on`` takes tenacity's retry strategies, combined too (they were taken for a
    predicate and failed the item with AttributeError: no ``outcome``)."""
    on = tenacity.retry_if_exception_type(TransientError) | tenacity.retry_if_exception_message(
        match="busy"
    )
    plan = {
        0: [Raise(TransientError()), Raise(TransientError())],
        1: [Raise(OSError("busy"))],
        2: [Raise(FatalError())],
    }
    results = poolkit.run_all(
        faulty(identity, plan),
        range(3),
        mode=mode,
        retry=poolkit.Retry(attempts=3, on=on, backoff=0),
    )
    assert [(r.is_ok(), r.attempts) for r in results] == [(True, 3), (True, 2), (False, 1)]
    assert isinstance(results[2].error, FatalError)


def test_never_retried_errors() -> None:
    """Cancelled and DeadlineExceeded are never retried, even with on=BaseException."""
    retry = poolkit.Retry(attempts=9, on=BaseException)
    assert not retry.should_retry(poolkit.Cancelled("x"), 1)
    assert not retry.should_retry(poolkit.DeadlineExceeded("x"), 1)
    assert not retry.should_retry(KeyboardInterrupt(), 1)
    assert retry.should_retry(poolkit.TaskTimeout(1, stopped=True), 1)
    assert poolkit.Retry(on=Exception).should_retry(poolkit.WorkerCrashed(exitcode=1, pid=1), 1)
    assert not poolkit.Retry(on=ValueError).should_retry(poolkit.TaskTimeout(1, stopped=True), 1)


def test_waiting_retries_do_not_hold_workers() -> None:
    """While one item backs off for a long time, the only worker serves the others."""
    plan = {0: [Raise(TransientError("wait"))]}
    retry = poolkit.Retry(attempts=2, on=TransientError, backoff=1.0)
    order: list[Any] = []
    results = poolkit.run_all(
        faulty(identity, plan),
        range(5),
        mode="thread",
        workers=1,
        retry=retry,
        on_result=lambda r: order.append(r.index),
    )
    assert results.all_ok
    assert order == [1, 2, 3, 4, 0]


def test_timeout_in_every_mode(mode: str) -> None:
    """A hung attempt is TaskTimeout within timeout + 0.5 s; stopped says whether it was killed."""
    began = time.monotonic()
    results = poolkit.run_all(nap, [0.0, 30.0, 0.0], mode=mode, workers=2, timeout=0.3)
    took = time.monotonic() - began
    assert took < 0.3 + 0.5 + (1.0 if mode == "process" else 0.0)  # process start-up
    error = results[1].error if isinstance(results[1], Err) else None
    assert isinstance(error, poolkit.TaskTimeout)
    assert error.stopped is (mode == "process")
    assert results.values == [0.0, 0.0]


def test_async_timeout_cancels_the_coroutine() -> None:
    """In async mode a timed-out coroutine is cancelled (stopped=True)."""
    import asyncio

    cancelled = threading.Event()

    async def hang(_: Any) -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    [result] = poolkit.run_all(hang, [1], mode="async", timeout=0.2)
    assert isinstance(result, Err)
    assert isinstance(result.error, poolkit.TaskTimeout)
    assert result.error.stopped
    assert wait_until(cancelled.is_set, 5)


def test_thread_timeout_keeps_full_width() -> None:
    """After a thread is abandoned, the batch still runs at full width."""
    began = time.monotonic()
    results = poolkit.run_all(nap, [30.0, 30.0] + [0.2] * 4, mode="thread", workers=2, timeout=0.3)
    assert time.monotonic() - began < 2.0
    assert [type(r.error).__name__ for r in results.errs] == ["TaskTimeout", "TaskTimeout"]
    assert len(results.values) == 4


def test_deadline_in_every_mode(mode: str) -> None:
    """Past the deadline: finished items keep results, the rest are DeadlineExceeded."""
    items = [0.0, 0.0, 30.0, 30.0, 30.0, 30.0, 30.0]
    began = time.monotonic()
    results = poolkit.run_all(nap, items, mode=mode, workers=2, deadline=0.5)
    took = time.monotonic() - began
    assert took < 0.5 + 0.5 + (1.0 if mode == "process" else 0.0)
    assert len(results) == len(items)
    assert results.values == [0.0, 0.0]
    assert all(isinstance(r.error, poolkit.DeadlineExceeded) for r in results.errs)
    # the items that were running when the deadline passed count their attempt; the rest never ran
    running = 1 if mode == "serial" else 2
    assert sorted(r.attempts for r in results.errs) == [0] * (5 - running) + [1] * running


def test_deadline_cuts_backoff_short() -> None:
    """An item waiting for a retry when the deadline passes is DeadlineExceeded at once."""
    plan = {0: [Raise(TransientError("x"))]}
    began = time.monotonic()
    [result] = poolkit.run_all(
        faulty(identity, plan),
        [0],
        retry=poolkit.Retry(2, on=TransientError, backoff=30),
        deadline=0.3,
    )
    assert time.monotonic() - began < 1.5
    assert isinstance(result, Err)
    assert isinstance(result.error, poolkit.DeadlineExceeded)
    assert result.attempts == 1


def test_deadline_with_a_generator_stops_reading() -> None:
    """A plain iterator is not read past the deadline; what was taken gets its Err."""
    results = poolkit.run_all(nap, iter([30.0] * 100), mode="thread", workers=2, deadline=0.2)
    assert 2 <= len(results) <= 16 * 2  # thread mode's default max_in_flight, 16 x workers
    assert all(isinstance(r.error, poolkit.DeadlineExceeded) for r in results)


def test_fail_fast_in_every_mode(mode: str) -> None:
    """After the first final Err, nothing new starts and the rest are Cancelled."""
    plan = {1: [Raise(FatalError("stop"))]}
    items = [0.0, 0.05] + [30.0] * 6

    def task(x: float) -> float:
        return nap(x)

    began = time.monotonic()
    results = poolkit.run_all(
        faulty(task, plan, key=lambda x: 1 if x == 0.05 else 0),
        items,
        mode=mode,
        workers=2,
        fail_fast=True,
    )
    assert time.monotonic() - began < 3.0
    assert len(results) == len(items)
    assert isinstance(results[1].error, FatalError) if isinstance(results[1], Err) else False
    rest = list(results[2:])
    assert all(isinstance(r, Err) and isinstance(r.error, poolkit.Cancelled) for r in rest)


def test_fail_fast_during_backoff() -> None:
    """An item in backoff when fail-fast triggers is Cancelled."""
    plan = {0: [Raise(TransientError("t"))], 1: [Raise(FatalError("f"))]}
    results = poolkit.run_all(
        faulty(identity, plan),
        [0, 1],
        mode="thread",
        workers=2,
        fail_fast=True,
        retry=poolkit.Retry(2, on=TransientError, backoff=30),
    )
    assert isinstance(results[0], Err)
    assert isinstance(results[0].error, poolkit.Cancelled)
    assert results[0].attempts == 1


def test_cancel_token_from_another_thread(mode: str) -> None:
    """token.cancel() from another thread stops the batch promptly."""
    token = poolkit.CancelToken()
    timers: list[threading.Timer] = []
    cancelled_at: list[float] = []

    def cancel_soon(result: Any) -> None:
        def cancel() -> None:
            cancelled_at.append(time.monotonic())
            token.cancel()

        timers.append(threading.Timer(0.1, cancel))
        timers[-1].start()

    results = poolkit.run_all(
        nap, [0.0] + [30.0] * 5, mode=mode, workers=2, cancel=token, on_result=cancel_soon
    )
    for timer in timers:
        timer.join()
    assert time.monotonic() - cancelled_at[0] < 0.5
    assert results.values == [0.0]
    assert all(isinstance(r.error, poolkit.Cancelled) for r in results.errs)
    assert len(results) == 6


def test_cancelled_token_cancels_everything_at_once() -> None:
    """A batch started with a cancelled token starts nothing."""
    token = poolkit.CancelToken()
    token.cancel()
    results = poolkit.run_all(identity, range(5), cancel=token)
    assert [r.attempts for r in results] == [0] * 5
    assert all(isinstance(r.error, poolkit.Cancelled) for r in results)


def test_rate_limit_holds_in_real_time() -> None:
    """End to end, with real threads: 6 starts at 10/s, burst 1, take at least 0.5 s.

    The exact property (no window ever over the allowance) is proven on a manual clock
    in test_engine_sim.py; this only checks that real time is wired to it.
    """
    began = time.monotonic()
    poolkit.run_all(identity, range(6), mode="thread", workers=8, rate_limit=10)
    assert time.monotonic() - began >= 0.5 - 0.02


def test_rate_limit_counts_retries() -> None:
    """Retries take tokens too."""
    plan = {n: [Raise(TransientError("t"))] for n in range(4)}
    began = time.monotonic()
    poolkit.run_all(
        faulty(identity, plan),
        range(4),
        retry=poolkit.Retry(2, on=TransientError, backoff=0),
        rate_limit=poolkit.RateLimit(per_second=20, burst=1),
    )
    assert time.monotonic() - began >= 7 / 20 - 0.02


def test_token_bucket_exact_with_injected_time() -> None:
    """The bucket's arithmetic, with time passed in instead of read from a clock."""
    bucket = poolkit.RateLimit(per_second=4, burst=2).bucket(now=0.0)
    assert [bucket.take(0.0), bucket.take(0.0)] == [0.0, 0.0]
    assert bucket.take(0.0) == pytest.approx(0.25)
    assert bucket.take(0.25) == 0.0
    assert bucket.take(10.0) == 0.0
    assert bucket.take(10.0) == 0.0
    assert bucket.take(10.0) == pytest.approx(0.25)


def test_retry_and_timeout_combine(mode: str) -> None:
    """A timed-out attempt is retried when on includes TaskTimeout."""
    plan = {0: [Hang(30)]}
    retry = poolkit.Retry(attempts=2, on=poolkit.TaskTimeout, backoff=0)
    [result] = poolkit.run_all(faulty(identity, plan), [0], mode=mode, retry=retry, timeout=0.3)
    assert result == Ok(0, item=0, index=0, attempts=2, elapsed=result.elapsed)


class _MuteRepr:
    """An item whose __repr__ raises."""

    def __init__(self, value: int) -> None:
        self.value = value

    def __repr__(self) -> str:
        raise RuntimeError("no repr")


def _fails_on_one(item: _MuteRepr) -> int:
    if item.value == 1:
        raise ValueError("one")
    return item.value


@pytest.mark.parametrize("mode", ["serial", "thread", "async"])
def test_an_item_whose_repr_raises_is_retried_reported_and_summarised(mode: str) -> None:
    """The retry's log line quoted the item with repr(): run_all raised the item's
    RuntimeError instead of returning. Notes and the summary quote it safely too."""
    results = poolkit.run_all(
        _fails_on_one,
        [_MuteRepr(n) for n in range(3)],
        mode=mode,
        workers=2,
        retry=poolkit.Retry(attempts=2, on=ValueError, backoff=0),
    )
    assert results.values == [0, 2]
    assert [r.attempts for r in results] == [1, 2, 1]
    with pytest.raises(ExceptionGroup) as caught:
        results.raise_errors()
    [note] = caught.value.exceptions[0].__notes__
    assert "repr() raised RuntimeError" in note
    assert "items" in str(results.summary())
