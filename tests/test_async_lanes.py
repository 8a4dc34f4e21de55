"""Async mode's bulk lane: long-lived lanes serve runs of a sized input, on a real loop.

The lanes and the per-item tasks (retries) share the ``workers`` slots; a cut cancels
what runs and keeps what finished; a cancel aimed at a lane that moved on never hits
the next item it runs.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import poolkit
from poolkit import Cancelled, DeadlineExceeded, Err, Ok

from .helpers import asleep, async_double
from .test_no_hang import bounded, close_mid_batch


class Gauge:
    """Counts coroutines running at once (one event loop: no lock needed)."""

    def __init__(self) -> None:
        self.now = 0
        self.most = 0

    async def __call__(self, x: int) -> int:
        self.now += 1
        self.most = max(self.most, self.now)
        try:
            await asyncio.sleep(0.002)
            if x % 7 == 3 and poolkit.worker_state().setdefault(("failed", x), True):
                poolkit.worker_state()[("failed", x)] = False
                raise ValueError("once")  # retried: through the per-item lane
            return x
        finally:
            self.now -= 1


def test_lanes_and_retries_never_exceed_workers() -> None:
    """300 items, every 7th failing once: at most `workers` run at any moment, all Ok."""
    gauge = Gauge()
    retry = poolkit.Retry(attempts=2, on=ValueError, backoff=0)
    results = poolkit.run_all(gauge, list(range(300)), mode="async", workers=3, retry=retry)
    assert results.values == list(range(300))
    assert gauge.most == 3
    assert {r.attempts for r in results if r.index % 7 == 3} == {2}


def test_a_cut_cancels_what_runs_and_keeps_what_finished() -> None:
    """A deadline mid-run: finished items keep Ok, the running ones are really
    cancelled (attempts 1), the rest never started (attempts 0)."""
    cancelled: list[int] = []

    async def slow(x: int) -> int:
        try:
            await asyncio.sleep(0.05 if x < 8 else 30)
        except asyncio.CancelledError:
            cancelled.append(x)
            raise
        return x

    began = time.monotonic()
    results = poolkit.run_all(slow, list(range(40)), mode="async", workers=4, deadline=1.0)
    assert time.monotonic() - began < 10
    assert [r.index for r in results.oks] == list(range(8))
    cut = results.errs
    assert all(isinstance(e.error, DeadlineExceeded) for e in cut)
    running = sorted(e.index for e in cut if e.attempts == 1)
    assert len(running) == 4
    assert all(e.attempts == 0 for e in cut if e.index not in running)
    assert bounded(lambda: _wait_for(lambda: sorted(cancelled) == running), 10)


def _wait_for(condition: Any) -> bool:
    deadline = time.monotonic() + 5
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_the_next_batch_is_not_hit_by_the_previous_cut() -> None:
    """A warm runner: a batch cut by its deadline, then another batch at once; none of
    the second batch's items is cancelled by what the cut sent to the lanes."""

    async def nap(x: float) -> float:
        await asyncio.sleep(x)
        return x

    with poolkit.runner("async", workers=4) as runner:
        for _ in range(5):
            first = runner.run_all(nap, [0.001] * 40 + [5.0] * 8, deadline=0.2)
            assert any(isinstance(r, Err) for r in first)
            second = runner.run_all(nap, [0.001] * 200)
            assert all(isinstance(r, Ok) for r in second), [r for r in second if r.is_err()]


def test_a_coroutine_that_never_suspends_does_not_starve_the_loop() -> None:
    """100,000 items that never await: a cancel still ends the batch promptly."""
    token = poolkit.CancelToken()

    async def busy(x: int) -> int:
        if x == 1000:
            token.cancel()
        return x

    results = bounded(lambda: poolkit.run_all(busy, range(100_000), mode="async", cancel=token))
    assert len(results) == 100_000
    assert any(isinstance(r, Err) and isinstance(r.error, Cancelled) for r in results)


def test_arun_all_serves_runs_on_the_callers_loop() -> None:
    """The same lanes under arun_all (the engine on the loop's own thread); each lane
    holds one worker id."""

    async def which(x: int) -> tuple[int, int]:
        await asyncio.sleep(0)
        return x, poolkit.worker_id()

    async def main() -> Any:
        return await poolkit.arun_all(which, range(5000), workers=16)

    results = asyncio.run(main())
    assert [v[0] for v in results.values] == list(range(5000))
    assert {v[1] for v in results.values} <= set(range(16))


def test_the_loops_heartbeat_beats_from_the_first_attempt_on_a_new_thread() -> None:
    """The heartbeat of the backend's own loop is armed by the first attempt on a
    freshly started loop thread, so that attempt can be cancelled. (Its first tick
    once ran before the backend had stored its loop, raising in the loop and
    stopping the heartbeat for good: a loop with no heartbeat looks blocked, and its
    tasks uncancellable.)"""
    for _ in range(20):
        with poolkit.runner("async", workers=2) as runner:
            result = runner.run_all(asleep, [30.0], timeout=0.2)[0]
        assert isinstance(result, Err)
        assert isinstance(result.error, poolkit.TaskTimeout)
        assert result.error.stopped, "the loop looked blocked: its coroutine was abandoned"


def _voluntary_switches(thread: threading.Thread) -> int:
    with open(f"/proc/self/task/{thread.native_id}/status") as status:
        line = next(x for x in status if x.startswith("voluntary_ctxt_switches"))
    return int(line.split()[1])


@pytest.mark.skipif(not os.path.exists("/proc/self/task"), reason="reads /proc")
def test_an_idle_kept_async_runner_leaves_its_loop_asleep() -> None:
    """Between batches, nothing wakes the loop thread of a kept async runner (its
    heartbeat ticked 20 times a second for as long as the runner lived), and after
    the idle time its coroutines can still be cancelled."""
    with poolkit.runner("async", workers=2) as runner:
        assert runner.run_all(async_double, [1, 2]).values == [2, 4]
        loop_thread = next(t for t in threading.enumerate() if t.name == "poolkit-async-loop")
        time.sleep(0.2)  # not synchronisation: the last tick of the batch comes and goes
        before = _voluntary_switches(loop_thread)
        time.sleep(0.5)  # not synchronisation: the idle time being measured
        woke = _voluntary_switches(loop_thread) - before
        late = runner.run_all(asleep, [30.0], timeout=0.2)[0]
    assert woke <= 2, f"the idle loop woke {woke} times in 0.5 s"
    assert isinstance(late, Err)
    assert isinstance(late.error, poolkit.TaskTimeout)
    assert late.error.stopped


def test_a_slow_item_does_not_hold_back_the_outcomes_after_it() -> None:
    """Outcomes are posted as they finish, past an unfinished position: item 0 waits
    until every other item has been yielded by ``stream``."""
    release = threading.Event()

    async def held(x: int) -> int:
        if x == 0:
            while not release.is_set():
                await asyncio.sleep(0.005)
        return x

    def consume() -> list[int]:
        seen: list[int] = []
        for result in poolkit.stream(held, range(200), mode="async", workers=4):
            seen.append(result.value)
            if len(seen) == 199:
                release.set()
        return seen

    seen = bounded(consume)
    assert seen[-1] == 0
    assert sorted(seen) == list(range(200))


def test_failures_scattered_through_a_run_keep_their_places() -> None:
    """Oks and Errs mixed inside one run, finishing out of order: each Result is its
    own item's, in every stretch the lanes post."""

    async def mixed(x: int) -> int:
        await asyncio.sleep((x * 7919 % 13) / 5000)
        if x % 5 == 2:
            raise ValueError(x)
        return x * 10

    results = poolkit.run_all(mixed, range(1000), mode="async", workers=16)
    for r in results:
        if r.index % 5 == 2:
            assert isinstance(r, Err)
            assert r.error.args == (r.index,)
            assert r.attempts == 1
        else:
            assert isinstance(r, Ok)
            assert r.value == r.index * 10
    assert [r.item for r in results] == list(range(1000))


async def _scripted(step: tuple[int, int, bool]) -> int:
    """Suspends ``suspends`` times, then returns ``value`` or raises with it."""
    value, suspends, fails = step
    for _ in range(suspends):
        await asyncio.sleep(0)
    if fails:
        raise ValueError(value)
    return value


_STEPS = st.lists(st.tuples(st.integers(0, 99), st.integers(0, 3), st.booleans()), max_size=60)


@given(steps=_STEPS, workers=st.integers(1, 8))
def test_the_lanes_give_serial_modes_results(
    steps: list[tuple[int, int, bool]], workers: int
) -> None:
    """Random coroutines finishing out of order, some raising: the lanes' Results are
    serial mode's, item for item (values, errors, attempts, order)."""

    def shape(results: poolkit.Results[Any]) -> list[Any]:
        return [
            (r.index, r.attempts, r.value if isinstance(r, Ok) else r.error.args) for r in results
        ]

    expected = shape(poolkit.run_all(_scripted, steps, mode="serial"))
    assert shape(poolkit.run_all(_scripted, steps, mode="async", workers=workers)) == expected

    async def main() -> poolkit.Results[Any]:
        return await poolkit.arun_all(_scripted, steps, workers=workers)

    assert shape(asyncio.run(main())) == expected


@given(steps=_STEPS, workers=st.integers(1, 8))
def test_a_fail_fast_cut_leaves_one_result_per_item(
    steps: list[tuple[int, int, bool]], workers: int
) -> None:
    """fail_fast cuts the lanes at a random point: still exactly one Result per item, in
    order; every Ok is the item's own value; nothing after the cut starts."""
    results = poolkit.run_all(_scripted, steps, mode="async", workers=workers, fail_fast=True)
    assert [r.index for r in results] == list(range(len(steps)))
    for r, (value, _, fails) in zip(results, steps, strict=True):
        if isinstance(r, Ok):
            assert r.value == value
            assert not fails
        elif isinstance(r.error, Cancelled):
            assert r.attempts in (0, 1)
        else:
            assert r.error.args == (value,)


# -- run_all of a coroutine function drives its engine on poolkit's own loop ---------


_ONCE = poolkit.Retry(attempts=2, on=ValueError, backoff=0)


async def fails_once(x: int) -> int:
    """Raises ValueError on its first attempt at 1, on any loop (state is per loop)."""
    await asyncio.sleep(0)
    if x == 1 and poolkit.worker_state().setdefault("failed", True):
        poolkit.worker_state()["failed"] = False
        raise ValueError("once")
    return x


@pytest.mark.parametrize("hook", ["on_result", "on_start", "on_retry", "progress"])
def test_a_coroutine_batchs_hooks_run_in_the_calling_thread(hook: str) -> None:
    """With a hook, the engine stays in the caller's thread, where the hooks run."""
    caller = threading.get_ident()
    threads: set[int] = set()

    def record(*_: Any) -> None:
        threads.add(threading.get_ident())

    if hook == "progress":
        options: dict[str, Any] = {"progress": record}
    else:
        options = {hook: record}
    # (not in ``bounded``, which would make another thread the caller; pytest-timeout
    # bounds it)
    results = poolkit.run_all(fails_once, range(4), mode="async", workers=2, retry=_ONCE, **options)
    assert results.values == [0, 1, 2, 3]
    assert threads == {caller}


def test_a_runner_closed_from_another_thread_ends_a_coroutine_batch() -> None:
    """runner.close() while run_all runs coroutines (no hook, so the engine runs on the
    runner's loop): run_all returns every item, the unfinished ones Cancelled."""
    first = threading.Event()

    async def nap(x: int) -> int:
        first.set()
        await asyncio.sleep(0.2)
        return x

    runner = poolkit.runner("async", workers=2)
    results = close_mid_batch(runner, lambda: runner.run_all(nap, range(30)), first)
    assert len(results) == 30


def test_a_coroutine_batch_with_a_backoff_and_errors_on_a_kept_runner() -> None:
    """Retries with a backoff, errors and a second batch on the same loop: every item
    once, in order, the loop's worker state kept between batches."""
    retry = poolkit.Retry(attempts=2, on=ValueError, backoff=0.01)
    with poolkit.runner("async", workers=3) as runner:
        first = bounded(lambda: runner.run_all(fails_once, range(50), retry=retry))
        assert first.values == list(range(50))
        assert first[1].attempts == 2
        second = bounded(lambda: runner.run_all(fails_once, range(50), retry=None))
        assert second.values == list(range(50))  # failed once per loop, not per batch


@pytest.mark.parametrize("kept", [False, True])
def test_a_small_batch_starts_no_more_lanes_than_it_has_items(kept: bool) -> None:
    """3 items at workers=64: at most 3 lanes run (64 were started, each an asyncio
    task, costing more than the items themselves)."""
    seen: list[int] = []

    async def count(x: int) -> int:
        seen.append(len(asyncio.all_tasks()))
        await asyncio.sleep(0)
        return x

    if kept:
        with poolkit.runner("async", workers=64) as runner:
            results = bounded(lambda: runner.run_all(count, range(3)))
    else:
        results = bounded(lambda: poolkit.run_all(count, range(3), mode="async", workers=64))
    assert results.values == [0, 1, 2]
    assert max(seen) <= 3 + 1  # the lanes, and the task that drives the batch


def test_run_all_of_coroutines_leaves_the_threads_event_loop_alone() -> None:
    """run_all(mode="async") of coroutines (its engine on poolkit's loop): the event
    loop this thread had set stays set and open."""
    mine = asyncio.new_event_loop()
    asyncio.set_event_loop(mine)
    try:
        results = bounded(
            lambda: poolkit.run_all(fails_once, range(5), mode="async", workers=2, retry=_ONCE)
        )
        assert results.values == list(range(5))
        assert asyncio.get_event_loop_policy().get_event_loop() is mine
        assert not mine.is_closed()
    finally:
        asyncio.set_event_loop(None)
        mine.close()


def test_a_generator_given_to_a_coroutine_batch_runs_in_the_calling_thread() -> None:
    """The items iterator runs in the caller's thread, as documented, even when nothing
    else keeps the engine there (it ran on poolkit's loop thread, where a generator
    that blocks would block every coroutine)."""
    caller = threading.get_ident()
    threads: set[int] = set()

    def numbers() -> Any:
        for i in range(20):
            threads.add(threading.get_ident())
            yield i

    results = poolkit.run_all(fails_once, numbers(), mode="async", workers=4, retry=_ONCE)
    assert results.values == list(range(20))
    assert threads == {caller}


def test_a_one_call_run_all_runs_the_loop_in_the_callers_thread() -> None:
    """run_all(mode="async") of coroutines on a sized input starts no loop thread: the
    loop runs in the caller's thread while the call waits (starting and joining a loop
    thread was most of the cost of a 1,000-item call), and nothing is left after it."""
    caller = threading.get_ident()
    before = set(threading.enumerate())
    seen: set[int] = set()
    alive_during: set[str] = set()

    async def where(x: int) -> int:
        seen.add(threading.get_ident())
        alive_during.update(t.name for t in threading.enumerate())
        await asyncio.sleep(0)
        return x

    results = poolkit.run_all(where, range(200), mode="async", workers=8, retry=_ONCE)
    assert results.values == list(range(200))
    assert seen == {caller}
    # (threads an earlier test abandoned in a hung call may still be ending: not ours)
    started = {name for name in alive_during if name.startswith("poolkit")}
    assert started <= {t.name for t in before}, started
    assert set(threading.enumerate()) <= before


@pytest.mark.parametrize("thread", [False, True])
def test_closing_an_async_backend_twice_is_harmless(thread: bool) -> None:
    """close() is idempotent, whether the loop got a thread or never ran."""
    from poolkit._backends._async import AsyncBackend

    backend = AsyncBackend(2)
    if thread:
        backend._start_thread()
    backend.close()
    backend.close()
    if not thread:  # (a loop thread closes its loop itself, as it ends)
        assert backend._loop.is_closed()
