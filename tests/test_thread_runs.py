"""Thread mode's bulk lane: threads claim blocks of a run and post each block at once."""

from __future__ import annotations

import threading
import time

import poolkit

from .conftest import wait_until
from .helpers import nap


def test_a_list_runs_in_blocks_with_one_result_each() -> None:
    """20,000 items, some failing: one Result each, in place, the failures retried."""
    seen: dict[int, int] = {}
    lock = threading.Lock()

    def fn(x: int) -> int:
        with lock:
            seen[x] = seen.get(x, 0) + 1
            first = seen[x] == 1
        if x % 997 == 0 and first:
            raise ValueError(x)
        return x * 2

    results = poolkit.run_all(
        fn, range(20_000), mode="thread", workers=4, retry=poolkit.Retry(2, on=ValueError)
    )
    assert [r.index for r in results] == list(range(20_000))
    assert results.all_ok
    assert results.values == [x * 2 for x in range(20_000)]
    assert all(r.attempts == (2 if r.index % 997 == 0 else 1) for r in results)


def test_a_deadline_keeps_items_finished_in_a_stuck_threads_block() -> None:
    """Fast items then slow ones, one thread: the block holding both is cut at the
    deadline, and the fast items it finished keep their results."""
    items = [0.0] * 6 + [30.0] * 4
    results = poolkit.run_all(nap, items, mode="thread", workers=1, deadline=0.5)
    assert [r.index for r in results.oks] == list(range(6))
    assert all(isinstance(r.error, poolkit.DeadlineExceeded) for r in results.errs)
    assert sorted(r.attempts for r in results.errs) == [0, 0, 0, 1]


def test_threads_stuck_in_a_cut_run_are_replaced() -> None:
    """Both threads of a runner stuck in calls of a run cut by its deadline: the next
    batch runs at full width at once, on new threads."""
    with poolkit.runner("thread", workers=2) as runner:
        cut = runner.run_all(nap, [30.0, 30.0], deadline=0.3)
        assert all(isinstance(r.error, poolkit.DeadlineExceeded) for r in cut)
        began = time.monotonic()
        results = runner.run_all(nap, [0.1] * 4)
        assert results.all_ok
        assert time.monotonic() - began < 10.0  # not behind the 30 s calls


def _fails_on_negative(x: float) -> float:
    if x < 0:
        raise ValueError(x)
    return nap(x)


def test_a_failure_is_posted_before_its_slow_block_neighbour_finishes() -> None:
    """One thread, a fast item, then a failing one and slow ones that share a block:
    fail-fast cuts the batch at once (the failure waited for its block's end, 30 s)."""
    began = time.monotonic()
    results = poolkit.run_all(
        _fails_on_negative,
        [0.0, -1.0, 30.0, 30.0, 30.0],
        mode="thread",
        workers=1,
        fail_fast=True,
    )
    assert time.monotonic() - began < 10.0
    assert isinstance(results[1].error, ValueError)
    assert all(isinstance(r.error, poolkit.Cancelled) for r in results[2:])


def test_a_result_does_not_wait_for_a_stuck_block_neighbour() -> None:
    """One thread, fast items with one stuck until released in the middle: once the
    first item is measured, a block takes half of what is left, so the stuck item
    shares a block with fast ones. Their results stream out while it is stuck (they
    waited for the end of their block)."""
    release = threading.Event()

    def work(x: int) -> int:
        if x == 100:
            release.wait(60)
        return x

    seen: list[int] = []
    with poolkit.runner("thread", workers=1) as runner:
        results = runner.stream(work, range(300))
        reader = threading.Thread(target=lambda: seen.extend(r.value for r in results))
        reader.start()
        try:
            assert wait_until(lambda: len(seen) >= 100, timeout=10.0), len(seen)
        finally:
            release.set()
            reader.join(10)
    assert sorted(seen) == list(range(300))
