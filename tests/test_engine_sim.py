"""The engine proven by simulation: a scripted backend, a manual clock, no threads, no sleeps.

Exact tests first (backoff, rate limit, timeouts, deadline, fail-fast, cancel, order,
stale completions, max_in_flight), then a randomized simulation of thousands of
schedules that checks every invariant after each; a failure prints its seed.
"""

from __future__ import annotations

import os
import random
import time
from typing import Any

import pytest

import poolkit
from poolkit import Cancelled, DeadlineExceeded, Err, Ok, TaskTimeout
from poolkit._core._engine import Hooks
from poolkit._policies import Policies

from .sim import Sim


class Transient(Exception):
    """A failure the simulated retry policy retries."""


class Fatal(Exception):
    """A failure it does not."""


def test_backoff_schedules_the_retry_exactly() -> None:
    """A fixed backoff of 0.5 s starts attempt 2 exactly 0.5 s after attempt 1 failed."""
    sim = Sim([0], Policies(retry=poolkit.Retry(3, on=Transient, backoff=0.5)))
    sim.advance(0.2)
    sim.finish(0, 1, error=Transient())
    assert sim.wake == pytest.approx(0.5)
    sim.advance(0.4999)
    assert len(sim.backend.starts(0)) == 1
    sim.advance(0.0001)
    assert sim.backend.starts(0) == [pytest.approx(100.0), pytest.approx(100.7)]
    sim.finish(0, 2, value="done")
    assert sim.results == [Ok("done", 0, 0, 2, pytest.approx(0.7))]


def test_a_waiting_retry_holds_no_worker() -> None:
    """While item 0 backs off, item 1 takes the only worker."""
    sim = Sim([0, 1], Policies(retry=poolkit.Retry(2, on=Transient, backoff=5.0)), capacity=1)
    sim.finish(0, 1, error=Transient())
    assert [a.task.index for a in sim.backend.attempts] == [0, 1]


def test_rate_limit_spaces_starts() -> None:
    """RateLimit(per_second=4, burst=2): two at once, then one every 0.25 s."""
    limit = poolkit.RateLimit(per_second=4, burst=2)
    sim = Sim(range(5), Policies(rate_limit=limit, max_in_flight=5), capacity=5)
    for _ in range(3):
        sim.advance_to_wake()
    starts = [a.started - 100.0 for a in sim.backend.attempts]
    assert starts == pytest.approx([0.0, 0.0, 0.25, 0.5, 0.75])


def test_timeout_ends_the_attempt_at_the_limit() -> None:
    """An attempt still running at its limit ends as TaskTimeout and is stopped."""
    sim = Sim([0], Policies(timeout=1.0))
    sim.advance(0.999)
    assert not sim.results
    sim.advance(0.001)
    (result,) = sim.results
    assert isinstance(result, Err)
    assert isinstance(result.error, TaskTimeout)
    assert result.error.stopped
    assert sim.backend.attempts[0].stopped


def test_timeout_counts_from_the_real_start() -> None:
    """An attempt queued inside its backend is looked at again when it could first
    expire (not polled); its clock starts when it runs."""
    sim = Sim([0], Policies(timeout=1.0), queued_start=True)
    sim.advance(0.6)
    sim.advance(0.6)  # 1.2 s after hand-over, but not started yet
    assert not sim.results
    assert sim.wake == pytest.approx(1.0)  # a full timeout after it was seen queued
    sim.backend.run(0, 1)
    started = sim.clock.now()
    while not sim.results:
        sim.advance_to_wake()
    assert sim.clock.now() == pytest.approx(started + 1.0)


def test_a_queueing_backend_gets_work_in_bulk_with_a_timeout_too() -> None:
    """Thread mode queues attempts, so a timeout (counted from the real start) does not
    need them handed over one per completion (which made thread mode with ``timeout=``
    2.5x slower per item); a rate limit, which times each start, still does."""
    timed = Sim(range(10), Policies(timeout=1.0, max_in_flight=8), queued_start=True, queues=True)
    assert len(timed.backend.attempts) == 8
    timed.backend.run(0, 1)
    timed.advance(1.0)  # only the attempt that ran has used its time
    assert [type(r.error) for r in timed.results if isinstance(r, Err)] == [TaskTimeout]
    limited = Sim(
        range(10),
        Policies(rate_limit=poolkit.RateLimit(per_second=100, burst=10), max_in_flight=8),
        queues=True,
    )
    assert len(limited.backend.attempts) == 2  # its capacity
    started: list[Any] = []
    hooked = Sim(
        range(10),
        Policies(max_in_flight=8),
        queues=True,
        hooks=Hooks(on_start=lambda item, attempt: started.append(item)),
    )
    # on_start is called as an attempt starts: not for items queued inside the backend
    assert len(hooked.backend.attempts) == 2
    assert started == [0, 1]


def test_stale_completion_of_an_abandoned_attempt_is_ignored() -> None:
    """A late reply of attempt 1 (timed out) does not end attempt 2."""
    sim = Sim([0], Policies(timeout=1.0, retry=poolkit.Retry(2, on=TaskTimeout, backoff=0)))
    sim.advance(1.0)
    assert len(sim.backend.starts(0)) == 2
    sim.finish(0, 1, value="late")
    assert not sim.results
    sim.finish(0, 2, value="fresh")
    assert [r.value for r in sim.results if isinstance(r, Ok)] == ["fresh"]


def test_deadline_cuts_everything_unfinished() -> None:
    """At the deadline, running and never-started items are DeadlineExceeded."""
    sim = Sim(range(4), Policies(deadline=2.0), capacity=1)
    sim.finish(0, 1)
    sim.advance(2.0)
    outcomes = {r.index: (type(r).__name__, r.attempts) for r in sim.results}
    assert outcomes == {0: ("Ok", 1), 1: ("Err", 1), 2: ("Err", 0), 3: ("Err", 0)}
    assert all(isinstance(r.error, DeadlineExceeded) for r in sim.results if isinstance(r, Err))
    assert sim.engine.done


def test_fail_fast_cancels_the_rest() -> None:
    """After the first Err nothing starts and the rest are Cancelled."""
    sim = Sim(range(5), Policies(fail_fast=True), capacity=2)
    sim.finish(0, 1, error=Fatal())
    assert len(sim.backend.attempts) == 2
    errors = [type(r.error).__name__ for r in sim.results if isinstance(r, Err)]
    assert sorted(errors) == ["Cancelled"] * 4 + ["Fatal"]


def test_cancel_token() -> None:
    """A cancelled token cuts the batch at the next pump."""
    token = poolkit.CancelToken()
    sim = Sim(range(3), Policies(cancel=token), capacity=1)
    token.cancel()
    sim.step()
    assert len(sim.results) == 3
    assert all(isinstance(r.error, Cancelled) for r in sim.results if isinstance(r, Err))


def test_ordered_output_waits_for_the_earlier_item() -> None:
    """ordered=True holds item 1's Result until item 0's is out."""
    sim = Sim(range(2), Policies(), capacity=2, ordered=True)
    sim.finish(1, 1)
    assert sim.results == []
    sim.finish(0, 1)
    assert [r.index for r in sim.results] == [0, 1]


def test_max_in_flight_bounds_what_is_taken() -> None:
    """No more than max_in_flight items are taken and unfinished at once."""
    taken: list[int] = []

    def items() -> Any:
        for i in range(10):
            taken.append(i)
            yield i

    sim = Sim(items(), Policies(max_in_flight=3), capacity=10)
    assert len(taken) == 3
    sim.finish(0, 1)
    assert len(taken) == 4


# -- the randomized simulation --------------------------------------------------------

SCHEDULES = int(os.environ.get("POOLKIT_SIM_SCHEDULES", "10000"))


def _policies(rng: random.Random) -> tuple[Policies, poolkit.CancelToken | None]:
    retry = None
    if rng.random() < 0.6:
        backoff = rng.choice([0.0, 0.1, 0.5])
        on = rng.choice([Transient, (Transient, TaskTimeout)])
        retry = poolkit.Retry(rng.randint(1, 3), on=on, backoff=backoff)
    cancel = poolkit.CancelToken() if rng.random() < 0.2 else None
    rate = None
    if rng.random() < 0.3:
        rate = poolkit.RateLimit(per_second=rng.choice([2, 5, 20]), burst=rng.randint(1, 3))
    policies = Policies(
        retry=retry,
        timeout=rng.choice([None, None, 0.3, 1.0]),
        deadline=rng.choice([None, None, 0.5, 2.0, 5.0]),
        fail_fast=rng.random() < 0.2,
        cancel=cancel,
        rate_limit=rate,
        max_in_flight=rng.choice([None, 1, 2, 5]),
    )
    return policies, cancel


def simulate(seed: int) -> None:
    """One random schedule; raises AssertionError naming what broke."""
    rng = random.Random(seed)
    count = rng.randint(0, 8)
    policies, cancel = _policies(rng)
    ordered = rng.random() < 0.3
    sized = rng.random() < 0.5
    items: Any = list(range(count)) if sized else iter(range(count))
    stoppable = rng.random() < 0.5
    runs = rng.random() < 0.5  # a backend with the bulk lane (used when the batch allows)
    sim = Sim(
        items,
        policies,
        capacity=rng.randint(1, 4),
        ordered=ordered,
        stoppable=stoppable,
        runs=runs,
        queued_start=runs and policies.timeout is None and rng.random() < 0.3,
    )
    bound = policies.max_in_flight or sim.engine._max_in_flight
    cancel_at = rng.uniform(0, 3) if cancel is not None else None
    # each (item, attempt): "ok", "transient", "fatal" or "hang"
    script = {
        (i, n): rng.choice(["ok", "ok", "transient", "fatal", "hang"])
        for i in range(count)
        for n in range(1, 4)
    }
    if policies.timeout is None and policies.deadline is None and cancel is None:
        script = {k: ("ok" if v == "hang" else v) for k, v in script.items()}
    cut_seen_at_start = None  # number of starts when the first cut Result came out
    late: list[tuple[int, int]] = []
    for _ in range(500):
        if sim.engine.done:
            break
        assert sim.source.taken - len(sim.results) <= bound, "max_in_flight exceeded"
        if cut_seen_at_start is None and any(
            isinstance(r, Err) and isinstance(r.error, (Cancelled, DeadlineExceeded))
            for r in sim.results
        ):
            cut_seen_at_start = len(sim.backend.attempts)
        if cancel_at is not None and cancel is not None and sim.clock.now() - 100 >= cancel_at:
            cancel.cancel()
            cancel_at = None
            sim.step()
            continue
        runnable = [k for k in sim.backend.live if script[k] != "hang"]
        choice = rng.random()
        if runnable and choice < 0.6:
            index, number = rng.choice(runnable)
            sim.advance(rng.choice([0.0, 0.01, 0.1]))
            if (index, number) not in sim.backend.live:
                continue
            outcome = script[(index, number)]
            if outcome == "ok":
                sim.finish(index, number, value=index)
            else:
                sim.finish(index, number, error=Transient() if outcome == "transient" else Fatal())
        elif late and choice < 0.7:  # a stale reply from an attempt the engine gave up on
            index, number = late.pop()
            sim.finish(index, number, value="stale")
        else:
            wake = sim.wake if sim.wake is not None else 0.25
            sim.advance(min(max(wake, 0.0), rng.choice([0.05, 0.3, 1.0])))
        late.extend((a.task.index, a.number) for a in sim.backend.attempts if a.stopped)
        late = list(dict.fromkeys(late))[-5:]
    assert sim.engine.done, "the schedule did not finish"
    _check(sim, count, sized, policies, ordered, cut_seen_at_start)


def _check(
    sim: Sim,
    count: int,
    sized: bool,
    policies: Policies,
    ordered: bool,
    cut_at: int | None,
) -> None:
    indexes = [r.index for r in sim.results]
    assert len(indexes) == len(set(indexes)), f"an item got two Results: {indexes}"
    if sized:
        assert sorted(indexes) == list(range(count)), f"missing Results: {indexes}"
    else:
        assert sorted(indexes) == list(range(sim.source.taken)), f"missing Results: {indexes}"
    if ordered:
        assert indexes == sorted(indexes), f"out of order: {indexes}"
    limit = policies.retry.attempts if policies.retry else 1
    starts: dict[int, int] = {}
    for attempt in sim.backend.attempts:
        starts[attempt.task.index] = starts.get(attempt.task.index, 0) + 1
    for result in sim.results:
        assert result.attempts <= limit, f"{result} ran more attempts than the policy allows"
        assert result.attempts == starts.get(result.index, 0) or (
            isinstance(result, Err) and result.attempts == starts.get(result.index, 0) - 1
        ), f"{result}: attempts disagree with the {starts.get(result.index, 0)} starts"
        if isinstance(result, Ok):
            assert result.value == result.item, result
    if cut_at is not None:
        assert len(sim.backend.attempts) <= cut_at, "an attempt started after the batch was cut"
    rate = policies.rate_limit
    if rate is not None:
        times = sorted(a.started for a in sim.backend.attempts)
        for i, first in enumerate(times):
            for j in range(i, len(times)):
                allowed = rate.burst + (times[j] - first) * rate.per_second + 1e-6
                assert j - i + 1 <= allowed, "rate limit exceeded"


def test_randomized_schedules_keep_every_invariant() -> None:
    """Thousands of random schedules, policies and outcomes; every invariant after each."""
    began = time.monotonic()
    for seed in range(SCHEDULES):
        try:
            simulate(seed)
        except AssertionError as error:
            raise AssertionError(
                f"schedule seed={seed} broke an invariant (rerun: simulate({seed})): {error}"
            ) from error
    assert time.monotonic() - began < 600  # bounded, whatever the machine


def test_a_retryable_failure_posted_after_fail_fast_is_cancelled_in_a_run() -> None:
    """Bulk lane: item 1 fails for good and item 0's retryable failure comes in just
    after it (a thread posted it while the cut was being made). Item 0 is Cancelled,
    as it is in the per-item lane, where it would wait in backoff at the cut (it was
    its own TransientError: the lanes disagreed)."""
    policies = Policies(
        fail_fast=True, retry=poolkit.Retry(2, on=ValueError, backoff=30), max_in_flight=8
    )
    sim = Sim([0, 1], policies, runs=True)
    sim.backend.finish(1, 1, False, KeyError("for good"))
    sim.backend.finish(0, 1, False, ValueError("again, please"))
    sim.step()
    results = sim.by_index()
    assert isinstance(results[1].error, KeyError)
    assert isinstance(results[0].error, Cancelled), results[0]
    assert results[0].attempts == 1
