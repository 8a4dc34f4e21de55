"""poolkit.Executor against the behaviours CPython's test_concurrent_futures checks.

Each test names the standard-library behaviour it mirrors (ThreadPoolExecutor and
ProcessPoolExecutor), run in thread and process modes. Where poolkit deliberately
differs, the test says so (and docs/executor.md lists the differences).
"""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import os
import threading
import time
import tracemalloc
import weakref
from collections.abc import Callable
from concurrent import futures
from typing import Any

import pytest

import poolkit

from .conftest import wait_until
from .crashers import exit_on

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(params=["thread", "process"])
def executor(request: pytest.FixtureRequest) -> Any:
    """A two-worker poolkit.Executor in each mode."""
    with poolkit.Executor(request.param, workers=2) as pool:
        yield pool


def mul(x: int, y: int) -> int:
    return x * y


def capture(*args: Any, **kwargs: Any) -> tuple[Any, Any]:
    return args, kwargs


def fail(message: str) -> None:
    raise ZeroDivisionError(message)


def test_is_an_executor(executor: poolkit.Executor) -> None:
    """It is a concurrent.futures.Executor (usable wherever one is expected)."""
    assert isinstance(executor, futures.Executor)


def test_submit(executor: poolkit.Executor) -> None:
    """ExecutorTest.test_submit: submit(pow, 2, 8) gives 256."""
    assert executor.submit(pow, 2, 8).result(timeout=30) == 256


def test_submit_keyword(executor: poolkit.Executor) -> None:
    """ExecutorTest.test_submit_keyword: keyword arguments reach the function."""
    future = executor.submit(capture, 1, 2, a=3)
    assert future.result(timeout=30) == ((1, 2), {"a": 3})
    assert executor.submit(mul, 2, y=8).result(timeout=30) == 16


def test_map(executor: poolkit.Executor) -> None:
    """ExecutorTest.test_map: several iterables zipped, values in order."""
    assert list(executor.map(pow, range(10), range(10))) == list(map(pow, range(10), range(10)))


def test_map_exception(executor: poolkit.Executor) -> None:
    """ExecutorTest.test_map_exception: the error is raised when iteration reaches it."""
    results = executor.map(divmod, [1, 1, 1, 1], [2, 3, 0, 5])
    assert next(results) == (0, 1)
    assert next(results) == (0, 1)
    with pytest.raises(ZeroDivisionError):
        next(results)


def test_map_timeout(executor: poolkit.Executor) -> None:
    """ExecutorTest.test_map_timeout: TimeoutError once the timeout (from the call) passes."""
    results = executor.map(time.sleep, [0, 0, 6], timeout=1.5)
    assert [next(results), next(results)] == [None, None]
    with pytest.raises(TimeoutError):
        next(results)


def test_map_is_lazy_and_bounded() -> None:
    """Deliberate difference: map never reads all its input first (the stdlib's does)."""
    taken = 0

    def numbers() -> Any:
        nonlocal taken
        for i in range(10**9):
            taken += 1
            yield i

    with poolkit.Executor("thread", workers=2) as pool:
        results = pool.map(abs, numbers(), buffersize=4)
        assert [next(results) for _ in range(10)] == list(range(10))
        assert taken <= 10 + 4
        results.close()


class Dummy:
    """An object to watch with a weakref."""


def make_dummy(_: int) -> Dummy:
    return Dummy()


def test_free_reference(executor: poolkit.Executor) -> None:
    """CPython's test_free_reference: neither map nor a finished submit keeps a value
    the caller has dropped (map held each one, and the executor every submit's task:
    2.5 KB per submit for the executor's lifetime)."""
    for value in executor.map(make_dummy, range(10)):
        ref = weakref.ref(value)
        del value
        assert wait_until(lambda ref=ref: (gc.collect(), ref())[1] is None)
    future = executor.submit(make_dummy, 0)
    ref = weakref.ref(future.result())
    del future
    assert wait_until(lambda: (gc.collect(), ref())[1] is None)


def test_a_long_lived_executor_does_not_grow() -> None:
    """Memory after 2,000 more submits is what it was: finished work is let go."""
    with poolkit.Executor("thread", workers=2) as pool:
        for i in range(2000):
            pool.submit(abs, i).result()
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            for i in range(2000):
                pool.submit(abs, i).result()
            gc.collect()
            grown = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
    assert grown < 200 * 1024, f"{grown / 2000:.0f} bytes kept per submit"


@pytest.mark.parametrize(
    ("buffersize", "error"),
    [(0, ValueError), (-1, ValueError), (1.5, TypeError), ("2", TypeError)],
)
def test_map_buffersize_validation(buffersize: Any, error: type[Exception]) -> None:
    """As CPython's: raised by the call to map, before anything is submitted."""
    with (
        poolkit.Executor("thread", workers=2) as pool,
        pytest.raises(error, match="buffersize must be"),
    ):
        pool.map(abs, range(4), buffersize=buffersize)


def test_exception_is_the_futures_exception(executor: poolkit.Executor) -> None:
    """Future.exception() is the item's error; result() raises it."""
    future = executor.submit(fail, "zero")
    assert isinstance(future.exception(timeout=30), ZeroDivisionError)
    with pytest.raises(ZeroDivisionError, match="zero"):
        future.result()


def test_submit_after_shutdown_raises(executor: poolkit.Executor) -> None:
    """ExecutorShutdownTest.test_run_after_shutdown: RuntimeError after shutdown."""
    executor.shutdown()
    with pytest.raises(RuntimeError):
        executor.submit(pow, 2, 5)


def test_shutdown_waits_for_submitted_work(executor: poolkit.Executor) -> None:
    """ExecutorShutdownTest: shutdown(wait=True) returns once submitted work is done."""
    pending = [executor.submit(time.sleep, 0.1) for _ in range(4)]
    executor.shutdown(wait=True)
    assert all(f.done() for f in pending)


def test_shutdown_no_wait() -> None:
    """ExecutorShutdownTest.test_shutdown_no_wait: returns at once, work still finishes."""
    pool = poolkit.Executor("thread", workers=2)
    pending = [pool.submit(time.sleep, 0.2) for _ in range(3)]
    began = time.monotonic()
    pool.shutdown(wait=False)
    assert time.monotonic() - began < 0.2
    assert all(f.result(timeout=30) is None for f in pending)


def test_cancel_futures(executor: poolkit.Executor) -> None:
    """ExecutorShutdownTest.test_cancel_futures: pending futures are cancelled."""
    pending = [executor.submit(time.sleep, 0.5) for _ in range(20)]
    executor.shutdown(wait=True, cancel_futures=True)
    cancelled = [f for f in pending if f.cancelled()]
    assert len(cancelled) >= 15
    assert all(f.done() for f in pending)


def test_as_completed(executor: poolkit.Executor) -> None:
    """AsCompletedTests: every future is yielded once it completes."""
    pending = {executor.submit(mul, i, 2) for i in range(6)}
    done = set(futures.as_completed(pending, timeout=30))
    assert done == pending
    assert sorted(f.result() for f in done) == [0, 2, 4, 6, 8, 10]


def test_wait_first_completed(executor: poolkit.Executor) -> None:
    """WaitTests.test_first_completed: the quick future is done, the slow one not."""
    quick = executor.submit(mul, 21, 2)
    slow = executor.submit(time.sleep, 3)
    done, not_done = futures.wait([quick, slow], timeout=30, return_when=futures.FIRST_COMPLETED)
    assert done == {quick}
    assert not_done == {slow}


def test_wait_first_exception(executor: poolkit.Executor) -> None:
    """WaitTests.test_first_exception: returns when a future raises."""
    bad = executor.submit(fail, "x")
    slow = executor.submit(time.sleep, 3)
    done, not_done = futures.wait([bad, slow], timeout=30, return_when=futures.FIRST_EXCEPTION)
    assert bad in done
    assert slow in not_done


def test_wait_all_completed(executor: poolkit.Executor) -> None:
    """WaitTests.test_all_completed: every future is done."""
    pending = [executor.submit(mul, 2, i) for i in range(4)] + [executor.submit(fail, "x")]
    done, not_done = futures.wait(pending, timeout=30, return_when=futures.ALL_COMPLETED)
    assert done == set(pending)
    assert not not_done


def test_done_callback(executor: poolkit.Executor) -> None:
    """FutureTests.test_done_callback_with_result: the callback sees the finished future."""
    seen: list[Any] = []
    called = threading.Event()

    def callback(future: futures.Future[Any]) -> None:
        seen.append(future.result())
        called.set()

    executor.submit(mul, 6, 7).add_done_callback(callback)
    assert called.wait(30)
    assert seen == [42]


def test_cancel_a_pending_future() -> None:
    """FutureTests: a future that has not started can be cancelled."""
    with poolkit.Executor("thread", workers=1) as pool:
        blocker = pool.submit(time.sleep, 0.5)
        queued = pool.submit(pow, 2, 2)
        assert queued.cancel()
        assert queued.cancelled()
        blocker.result(timeout=30)


def test_cancel_running_future_in_thread_mode_is_refused() -> None:
    """As the stdlib: a running call in a thread cannot be stopped, so cancel() is False."""
    with poolkit.Executor("thread", workers=1) as pool:
        started = threading.Event()
        running = pool.submit(lambda: (started.set(), time.sleep(0.3)))
        assert started.wait(30)
        assert not running.cancel()
        running.result(timeout=30)


@pytest.mark.parametrize("mode", ["process", "async"])
def test_cancel_running_future_stops_it(mode: str) -> None:
    """Deliberate difference (as pebble): cancel() on running work stops it."""

    async def asleep(seconds: float) -> None:
        await asyncio.sleep(seconds)

    fn = time.sleep if mode == "process" else asleep
    with poolkit.Executor(mode, workers=1) as pool:
        running = pool.submit(fn, 20)
        deadline = time.monotonic() + 30
        while not running.running() and time.monotonic() < deadline:
            time.sleep(0.01)
        began = time.monotonic()
        assert running.cancel()
        assert running.cancelled()
        assert pool.submit(pow, 2, 3).result(timeout=30) == 8  # the worker is free again
        assert time.monotonic() - began < 10


def test_a_crash_fails_only_its_future() -> None:
    """Deliberate difference: no BrokenProcessPool; the executor stays usable."""
    with poolkit.Executor("process", workers=2) as pool:
        bad = pool.submit(exit_on(1), 1)
        good = [pool.submit(abs, -i) for i in range(5)]
        with pytest.raises(poolkit.WorkerCrashed):
            bad.result(timeout=30)
        assert [f.result(timeout=30) for f in good] == [0, 1, 2, 3, 4]
        assert pool.submit(abs, -9).result(timeout=30) == 9


def test_timeout_stops_a_running_call_in_process_mode() -> None:
    """timeout= ends the call (the worker is replaced), as TaskTimeout."""
    with poolkit.Executor("process", workers=1, timeout=0.5) as pool:
        with pytest.raises(poolkit.TaskTimeout):
            pool.submit(time.sleep, 30).result(timeout=30)
        assert pool.submit(abs, -1).result(timeout=30) == 1


def test_retry_applies_to_each_submit(tmp_path: Any) -> None:
    """retry= gives each submit its attempts."""
    marker = tmp_path / "seen"

    def flaky() -> str:
        if not marker.exists():
            marker.write_text("x")
            raise ConnectionError("first time")
        return "ok"

    with poolkit.Executor("thread", workers=1, retry=poolkit.Retry(2, backoff=0)) as pool:
        assert pool.submit(flaky).result(timeout=30) == "ok"


def test_max_tasks_per_child() -> None:
    """ProcessPoolExecutorTest.test_max_tasks_per_child: workers are replaced after N tasks."""
    with poolkit.Executor("process", workers=1, max_tasks_per_child=2) as pool:
        pids = [pool.submit(os.getpid).result(timeout=30) for _ in range(4)]
    assert len(set(pids)) == 2


def init_marker(value: str) -> None:
    poolkit.worker_state()["marker"] = value


def read_marker() -> str:
    return str(poolkit.worker_state()["marker"])


def test_initializer(executor: poolkit.Executor) -> None:
    """InitializerMixin.test_initializer: every worker ran it before its first task."""
    mode = executor.mode
    executor.shutdown()
    with poolkit.Executor(mode, workers=2, initializer=init_marker, initargs=("set",)) as pool:
        assert {pool.submit(read_marker).result(timeout=30) for _ in range(4)} == {"set"}


def test_run_in_executor_returns_the_value(executor: poolkit.Executor) -> None:
    """asyncio's loop.run_in_executor(executor, fn, *args) returns the value."""

    async def main() -> int:
        return await asyncio.get_running_loop().run_in_executor(executor, pow, 3, 3)

    assert asyncio.run(main()) == 27


def test_serial_async_and_thread_modes_work_too() -> None:
    """The executor runs in every local mode."""
    for mode in ("serial", "async"):
        with poolkit.Executor(mode, workers=2) as pool:
            assert list(pool.map(mul, [1, 2], [3, 4])) == [3, 8]


def _pool_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("poolkit-thread")]


def test_idle_thread_reuse() -> None:
    """CPython's test_idle_thread_reuse: one item after another runs on one thread (each
    submit started a new thread while one sat idle, up to ``workers``)."""
    with poolkit.Executor("thread", workers=5) as pool:
        before = set(_pool_threads())
        assert pool.submit(mul, 21, 2).result() == 42
        assert pool.submit(mul, 6, 7).result() == 42
        assert pool.submit(mul, 3, 14).result() == 42
        assert len(set(_pool_threads()) - before) == 1
    with poolkit.runner("thread", workers=5) as runner:
        before = set(_pool_threads())
        for item in range(3):
            assert runner.run_all(abs, [item]).values == [item]
        assert len(set(_pool_threads()) - before) == 1


def _worker_processes() -> list[Any]:
    return [p for p in multiprocessing.active_children() if p.name.startswith("poolkit-")]


def test_idle_process_reuse_one() -> None:
    """CPython's test_idle_process_reuse_one: one item after another on a 4-worker pool
    starts one process (all four started with the first item)."""
    # (only this pool's: an earlier test's workers may still be on their way out)
    before = set(multiprocessing.active_children())

    def mine() -> list[str]:
        return [p for p in _worker_processes() if p not in before]

    with poolkit.Executor("process", workers=4) as pool:
        assert pool.submit(mul, 21, 2).result(timeout=60) == 42
        assert pool.submit(mul, 6, 7).result(timeout=60) == 42
        assert pool.submit(mul, 3, 14).result(timeout=60) == 42
        assert len(mine()) == 1
        # a batch of slow items still starts as many as its chunks can use (trivial
        # ones go in chunks: a few processes serve them best)
        assert list(pool.map(time.sleep, [0.2] * 8)) == [None] * 8
        assert len(mine()) == 4


def test_a_queued_submit_can_be_cancelled_until_a_thread_takes_it() -> None:
    """As with ThreadPoolExecutor: ``cancel()`` succeeds for every submit no thread has
    taken yet (thread mode handed submits to its queue in bulk, marking them all
    running, so none of them could be cancelled)."""
    release = threading.Event()
    began = threading.Semaphore(0)

    def hold(_: int) -> None:
        began.release()
        release.wait(60)

    with poolkit.Executor("thread", workers=2) as pool:
        futures = [pool.submit(hold, n) for n in range(20)]
        for _ in range(2):
            assert began.acquire(timeout=30)
        cancelled = [f.cancel() for f in futures]
        release.set()
    assert cancelled.count(True) == 18
    assert sum(f.cancelled() for f in futures) == 18


def test_a_runner_does_not_keep_a_submitted_function_alive() -> None:
    """Submits of one function share its Job, which is held weakly: once they are done
    and the caller drops the function, nothing in the runner keeps it (or what its
    closure holds)."""

    def adder(extra: int) -> Callable[[int], int]:
        def add(x: int) -> int:
            return x + extra

        return add

    add_one = adder(1)
    held = weakref.ref(add_one)
    with poolkit.runner("thread", workers=2) as r:
        assert [r.submit(add_one, n).result(timeout=30).value for n in range(3)] == [1, 2, 3]
        del add_one
        assert wait_until(lambda: (gc.collect(), held())[1] is None)
