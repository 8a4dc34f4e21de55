"""submit returns a concurrent.futures.Future of a Result, in every mode."""

from __future__ import annotations

import concurrent.futures as cf
import threading
from typing import Any

import poolkit
from poolkit import Err, Ok

from .helpers import Boom, double_or_raise, nap


def test_the_classic_futures_lesson(mode: str) -> None:
    """done(), add_done_callback(), result() and as_completed() work as in the stdlib."""
    seen: list[int] = []
    lock = threading.Lock()

    def remember(future: cf.Future[Ok[int] | Err]) -> None:
        with lock:
            seen.append(future.result().index)

    with poolkit.runner(mode, workers=2) as runner:
        futures = [runner.submit(double_or_raise, x) for x in range(1, 9)]
        for future in futures:
            future.add_done_callback(remember)
        finished = list(cf.as_completed(futures, timeout=30))
        assert len(finished) == 8
        assert all(f.done() for f in futures)
        results = [f.result() for f in futures]
    assert [r.unwrap_or(None) for r in results] == [2, 4, 6, 8, 10, 12, None, 16]
    assert isinstance(results[6], Err)
    assert isinstance(results[6].error, Boom)
    done, not_done = cf.wait(futures, timeout=1)
    assert len(done) == 8
    assert not not_done
    assert sorted(seen) == list(range(8))


def test_cancel_before_start() -> None:
    """A future cancelled before its attempt starts is cancelled; the others run."""
    with poolkit.runner("thread", workers=1) as runner:
        blocker = runner.submit(nap, 0.3)
        waiting = runner.submit(nap, 0.0)
        assert waiting.cancel()
        assert blocker.result(timeout=10).is_ok()
        assert waiting.cancelled()
        runner.submit(nap, 0.0).result(timeout=10)  # the source has moved past the cancelled one
        assert runner._submitter._futures == {}  # nothing kept for a future that never ran


def test_runner_policies_apply_to_submit() -> None:
    """Policies given to poolkit.runner apply to submit."""
    with poolkit.runner("thread", workers=2, timeout=0.2) as runner:
        result = runner.submit(nap, 5).result(timeout=5)
    assert isinstance(result, Err)
    assert isinstance(result.error, poolkit.TaskTimeout)


def test_close_waits_for_submitted_work(mode: str) -> None:
    """Leaving the runner's with block finishes submitted work first."""
    with poolkit.runner(mode, workers=2) as runner:
        futures = [runner.submit(double_or_raise, x) for x in (1, 2, 3)]
    assert [f.result(timeout=0).unwrap() for f in futures] == [2, 4, 6]


def _interrupt(_: Any) -> None:
    raise KeyboardInterrupt


def test_when_the_engine_stops_every_queued_submit_completes() -> None:
    """A KeyboardInterrupt from one submit ends the engine: the submits queued behind it
    (in the threads' queue, not yet taken) complete with that error, none hangs."""
    with poolkit.runner("thread", workers=1) as r:
        futures = [r.submit(_interrupt, 0)] + [r.submit(abs, n) for n in range(20)]
        outcomes = []
        for future in futures:
            try:
                outcomes.append(future.result(timeout=30))
            except KeyboardInterrupt:
                outcomes.append("interrupted")
    assert outcomes[0] == "interrupted"
    assert all(o == "interrupted" or o.value == n for n, o in enumerate(outcomes[1:]))
