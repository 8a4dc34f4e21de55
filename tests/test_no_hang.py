"""No call ever hangs: abandoned attempts, closing with work in flight, submit after a cut.

Every call that could hang runs in a helper thread joined with a timeout, so a
regression fails the test instead of hanging the suite.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

import poolkit

pytestmark = pytest.mark.timeout(90)


def bounded(call: Callable[[], Any], seconds: float = 20.0) -> Any:
    """Run ``call`` in a thread; fail (not hang) when it takes longer than ``seconds``."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = call()
        except BaseException as error:
            box["error"] = error

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"the call did not return within {seconds} s"
    if "error" in box:
        raise box["error"]
    return box.get("value")


@pytest.mark.parametrize("mode", ["thread", "serial", "async"])
def test_late_abandoned_attempt_does_not_steal_the_next_attempts_handle(mode: str) -> None:
    """Attempt 1 of A returns late (0.8 s > timeout), attempt 2 hangs: the batch still ends."""
    release = threading.Event()
    attempts: dict[str, int] = {}
    lock = threading.Lock()

    def work(item: str) -> str:
        with lock:
            attempts[item] = attempts.get(item, 0) + 1
            number = attempts[item]
        if item == "A":
            if number == 1:
                time.sleep(0.8)
            else:
                release.wait(30)
        return item

    try:
        results = bounded(
            lambda: poolkit.run_all(
                work,
                ["A", "B"],
                mode=mode,
                workers=1,
                timeout=0.5,
                retry=poolkit.Retry(2, on=poolkit.TaskTimeout, backoff=0),
            )
        )
    finally:
        release.set()
    assert isinstance(results[0].error, poolkit.TaskTimeout)
    assert results[0].attempts == 2
    assert results[1].value == "B"


@pytest.mark.parametrize("mode", ["thread", "async", "process", "serial"])
def test_close_from_another_thread_ends_a_batch_in_flight(mode: str) -> None:
    """runner.close() while run_all runs: the batch returns, unfinished items Cancelled."""
    first = threading.Event()
    runner = poolkit.runner(mode, workers=2)
    holder: dict[str, Any] = {}

    def run() -> Any:
        return runner.run_all(time.sleep, [0.2] * 30, on_result=lambda _: first.set())

    thread = threading.Thread(target=lambda: holder.setdefault("r", run()), daemon=True)
    thread.start()
    assert first.wait(30)
    bounded(runner.close)
    thread.join(20)
    assert not thread.is_alive(), "the batch kept waiting after its runner was closed"
    results = holder["r"]
    assert len(results) == 30
    cancelled = [r for r in results if isinstance(r, poolkit.Err)]
    assert cancelled
    assert all(isinstance(r.error, poolkit.Cancelled) for r in cancelled)


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_close_ends_a_stream_in_flight(mode: str) -> None:
    """runner.close() while a stream is being read: the stream ends, nothing waits forever."""
    runner = poolkit.runner(mode, workers=2)
    results = runner.stream(time.sleep, [0.2] * 30)
    next(results)
    bounded(runner.close)
    rest = bounded(lambda: list(results))
    assert any(isinstance(r.error, poolkit.Cancelled) for r in rest if isinstance(r, poolkit.Err))


def test_submit_after_a_runner_deadline_fired() -> None:
    """Runner-level policies apply per submit: a later submit still completes."""
    with poolkit.runner("thread", workers=1, deadline=0.3) as r:
        cut = bounded(lambda: r.submit(time.sleep, 2).result())
        assert isinstance(cut.error, poolkit.DeadlineExceeded)
        later = bounded(lambda: r.submit(abs, -4).result())
        assert later.value == 4


def test_submit_after_a_cancel_token_fired() -> None:
    """With the runner's token cancelled, every submit completes as Cancelled."""
    token = poolkit.CancelToken()
    with poolkit.runner("thread", workers=1, cancel=token) as r:
        assert bounded(lambda: r.submit(abs, -1).result()).value == 1
        token.cancel()
        result = bounded(lambda: r.submit(abs, -2).result())
        assert isinstance(result.error, poolkit.Cancelled)


def test_submit_after_fail_fast_fired() -> None:
    """fail_fast on a runner does not leave later submits waiting forever."""
    with poolkit.runner("thread", workers=1, fail_fast=True) as r:
        assert bounded(lambda: r.submit(lambda _: 1 / 0, 0).result()).is_err()
        assert bounded(lambda: r.submit(abs, -3).result()).value == 3


def test_submit_after_a_function_raised_system_exit() -> None:
    """A submitted SystemExit fails that future; the next submit still works."""

    def leave(_: Any) -> None:
        raise SystemExit(3)

    with poolkit.runner("thread", workers=1) as r:
        future = r.submit(leave, 0)
        bounded(lambda: future.exception(30) or future.result(30))
        assert bounded(lambda: r.submit(abs, -5).result(30)).value == 5


def test_async_runner_instance_refused_inside_a_running_loop() -> None:
    """run_all(mode=<async runner>) inside a running loop raises instead of blocking it."""

    async def main() -> None:
        with poolkit.runner("async") as r, pytest.raises(RuntimeError, match="arun_all"):
            poolkit.run_all(abs, [1], mode=r)

    asyncio.run(main())
