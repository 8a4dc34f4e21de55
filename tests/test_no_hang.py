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


def close_mid_batch(runner: poolkit.Runner, run: Callable[[], Any], first: threading.Event) -> Any:
    """Run ``run()`` (a batch on ``runner``) in a thread, close the runner from here once
    ``first`` is set, and return the batch's Results: every item, the unfinished ones
    Cancelled."""
    holder: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: holder.setdefault("r", run()), daemon=True)
    thread.start()
    assert first.wait(30)
    bounded(runner.close)
    thread.join(20)
    assert not thread.is_alive(), "the batch kept waiting after its runner was closed"
    results = holder["r"]
    cancelled = [r for r in results if isinstance(r, poolkit.Err)]
    assert cancelled
    assert all(isinstance(r.error, poolkit.Cancelled) for r in cancelled)
    return results


@pytest.mark.parametrize("mode", ["thread", "async", "process", "serial"])
def test_close_from_another_thread_ends_a_batch_in_flight(mode: str) -> None:
    """runner.close() while run_all runs: the batch returns, unfinished items Cancelled."""
    first = threading.Event()
    runner = poolkit.runner(mode, workers=2)
    results = close_mid_batch(
        runner,
        lambda: runner.run_all(time.sleep, [0.2] * 30, on_result=lambda _: first.set()),
        first,
    )
    assert len(results) == 30


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


def _ignore_sigterm_and_sleep(_: Any) -> None:
    import signal

    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    time.sleep(30)


def test_process_deadline_holds_when_the_function_ignores_sigterm() -> None:
    """A worker that ignores SIGTERM is killed: run_all returns within deadline + 0.5 s."""
    began = time.monotonic()
    results = bounded(
        lambda: poolkit.run_all(
            _ignore_sigterm_and_sleep, [1, 2], mode="process", workers=2, deadline=1.0
        )
    )
    assert time.monotonic() - began < 1.5 + 1.0  # generous: process start-up included
    assert all(isinstance(r.error, poolkit.DeadlineExceeded) for r in results)


async def _blocks_the_loop(_: Any) -> None:
    time.sleep(3)


async def _swallows_cancel(_: Any) -> None:
    while True:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            await asyncio.sleep(0.8)
            return


def test_async_deadline_holds_when_a_coroutine_blocks_the_loop() -> None:
    """An async def that blocks its loop: run_all still returns at its deadline."""
    began = time.monotonic()
    results = bounded(lambda: poolkit.run_all(_blocks_the_loop, [1], mode="async", deadline=1.0))
    assert time.monotonic() - began < 1.5
    assert isinstance(results[0].error, poolkit.DeadlineExceeded)


def test_async_timeout_on_a_blocked_loop_reports_stopped_false() -> None:
    """A coroutine blocking its loop cannot be cancelled: TaskTimeout.stopped is False."""
    began = time.monotonic()
    results = bounded(lambda: poolkit.run_all(_blocks_the_loop, [1], mode="async", timeout=0.5))
    assert time.monotonic() - began < 1.5
    error = results[0].error
    assert isinstance(error, poolkit.TaskTimeout)
    assert error.stopped is False


def test_async_timeout_holds_when_a_coroutine_swallows_its_cancel() -> None:
    """A coroutine that swallows CancelledError: the call returns at its timeout."""
    began = time.monotonic()
    results = bounded(lambda: poolkit.run_all(_swallows_cancel, [1], mode="async", timeout=0.5))
    assert time.monotonic() - began < 1.0 + 0.3
    assert isinstance(results[0].error, poolkit.TaskTimeout)


from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@given(
    mode=st.sampled_from(["serial", "thread", "async", "process"]),
    call=st.sampled_from(["run_all", "stream", "submit"]),
    action=st.sampled_from(["close", "cancel", "deadline"]),
    delay=st.floats(0.0, 0.3),
    count=st.integers(0, 12),
)
def test_random_cuts_never_hang(
    mode: str, call: str, action: str, delay: float, count: int
) -> None:
    """Close the runner, fire the token or pass a deadline at a random moment: every call
    returns within its bound and every item has exactly one Result."""
    token = poolkit.CancelToken()
    options: dict[str, Any] = {"cancel": token} if action == "cancel" else {}
    if action == "deadline":
        options["deadline"] = max(delay, 0.01)
    runner = poolkit.runner(mode, workers=2, **options)
    items = [0.05] * count
    timer = threading.Timer(delay, runner.close if action == "close" else token.cancel)
    try:
        timer.start()

        def work() -> list[Any]:
            if call == "run_all":
                return list(runner.run_all(time.sleep, items))
            if call == "stream":
                with runner.stream(time.sleep, items) as results:
                    return list(results)
            futures = []
            for item in items:
                try:
                    futures.append(runner.submit(time.sleep, item))
                except RuntimeError:  # submitted after the close: refused, not lost
                    futures.append(None)
            return [f.result(20) if f is not None else None for f in futures]

        try:
            results = bounded(work, 30)
        except RuntimeError:  # the call began after the runner was closed: refused at once
            if action != "close":
                raise
            return
        assert len(results) == count
        if call != "submit":
            assert sorted(r.index for r in results) == list(range(count))
    finally:
        timer.cancel()
        bounded(runner.close, 30)


def test_a_long_lived_cancel_token_keeps_no_listener_per_batch() -> None:
    """A caller's token used by many batches is linked to each only while it runs."""
    token = poolkit.CancelToken()
    with poolkit.runner("thread", workers=2) as r:
        for _ in range(50):
            r.run_all(abs, [-1, -2], cancel=token)
            list(r.stream(abs, [-3], cancel=token))
    assert token._listeners == []
    token.cancel()  # and cancelling it afterwards touches no finished batch
