"""run_all and stream behave the same in every mode."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import poolkit
from poolkit import Err, Ok

from .conftest import wait_until
from .helpers import Boom, async_double, double_or_raise, identity, nap


def _shape(results: poolkit.Results[Any]) -> list[tuple[int, Any, str | None, Any]]:
    return [
        (
            r.index,
            r.item,
            None if isinstance(r, Ok) else type(r.error).__name__,
            r.value if isinstance(r, Ok) else r.error.args,
        )
        for r in results
    ]


@given(st.lists(st.integers(-50, 50), max_size=40))
def test_every_mode_matches_serial(runners: Any, items: list[int]) -> None:
    """Random inputs, some raising: every mode gives serial mode's Results."""
    expected = _shape(runners["serial"].run_all(double_or_raise, items))
    for mode in ("thread", "process", "async"):
        assert _shape(runners[mode].run_all(double_or_raise, items)) == expected, mode


def test_async_functions_in_every_mode(mode: str) -> None:
    """An async def runs natively in async mode and on its own loop in the others."""
    results = poolkit.run_all(async_double, range(10), mode=mode, workers=2)
    assert [r.index for r in results] == list(range(10))
    assert results.values == [2 * x for x in range(10) if x % 7]
    assert all(isinstance(r.error, Boom) for r in results.errs)


def test_lambdas_and_closures_in_every_mode(mode: str) -> None:
    """Lambdas and closures work, process mode included."""
    offset = 10
    assert poolkit.run_all(lambda x: x + offset, [1, 2], mode=mode, workers=2).values == [11, 12]


def test_empty_input(mode: str) -> None:
    """No items, no results, no error."""
    assert list(poolkit.run_all(identity, [], mode=mode, workers=2)) == []


def test_generator_is_consumed_lazily(mode: str) -> None:
    """While every call blocks, exactly max_in_flight items are taken, no more."""
    taken: list[int] = []

    def items() -> Any:
        for n in range(100):
            taken.append(n)
            yield n

    if mode == "process":
        # calls cannot share an Event across processes: check after the first result
        # that no more than max_in_flight plus the finished ones were taken
        with poolkit.stream(
            nap, (0.2 for _ in items()), mode=mode, workers=2, max_in_flight=5
        ) as rs:
            next(rs)
            assert len(taken) <= 5 + 2
        return
    release = threading.Event()

    def blocked(x: int) -> int:
        release.wait(10)
        return x

    workers = 1 if mode == "serial" else 8
    expected = 1 if mode == "serial" else 5
    done: list[int] = []
    consumer = threading.Thread(
        target=lambda: done.append(
            len(poolkit.run_all(blocked, items(), mode=mode, workers=workers, max_in_flight=5))
        )
    )
    consumer.start()
    assert wait_until(lambda: len(taken) >= expected)
    time.sleep(0.1)  # not synchronisation: room for a wrong implementation to overreach
    assert len(taken) == expected
    release.set()
    consumer.join(30)
    assert done == [100]


def test_endless_generator_with_stream(mode: str) -> None:
    """An endless generator works with stream: take a few and close."""
    with poolkit.stream(identity, itertools.count(), mode=mode, workers=2, ordered=True) as results:
        assert [next(results).value for _ in range(5)] == [0, 1, 2, 3, 4]


def test_unhashable_items(mode: str) -> None:
    """Items need not be hashable."""
    items = [[1], {"a": 2}, [3, 4]]
    assert poolkit.run_all(len, items, mode=mode, workers=2).values == [1, 1, 2]


def test_items_iterator_raising_propagates(mode: str) -> None:
    """An exception from the items iterator propagates after outstanding work is stopped."""

    def items() -> Any:
        yield 1
        yield 2
        raise LookupError("the source broke")

    with pytest.raises(LookupError, match="the source broke"):
        poolkit.run_all(identity, items(), mode=mode, workers=2)


def test_other_base_exceptions_become_err(mode: str) -> None:
    """A BaseException other than KeyboardInterrupt/SystemExit becomes the item's Err."""

    class Odd(BaseException):
        pass

    def odd(x: int) -> int:
        if x == 1:
            raise Odd("odd")
        return x

    results = poolkit.run_all(odd, [0, 1, 2], mode="serial" if mode == "process" else mode)
    assert isinstance(results[1], Err)
    assert type(results[1].error).__name__ == "Odd"
    assert results.values == [0, 2]


@pytest.mark.parametrize("fatal", [KeyboardInterrupt, SystemExit])
def test_fatal_exceptions_from_fn_propagate(fatal: type[BaseException]) -> None:
    """KeyboardInterrupt or SystemExit raised by fn propagate from run_all."""

    def stop(x: int) -> int:
        if x == 3:
            raise fatal()
        return x

    for mode in ("serial", "thread", "async"):
        with pytest.raises(fatal):
            poolkit.run_all(stop, range(10), mode=mode, workers=2)


@pytest.mark.parametrize("fatal", [KeyboardInterrupt, SystemExit])
@pytest.mark.parametrize("kept", [False, True])
def test_fatal_exceptions_from_a_coroutine_propagate_and_start_nothing_more(
    fatal: type[BaseException], kept: bool
) -> None:
    """KeyboardInterrupt or SystemExit raised by a coroutine propagate from run_all, and
    its lane starts no other item before the engine hears of it (it went on to the
    next one, which could block the loop again: a second Ctrl-C needed)."""
    started: list[int] = []

    async def stop(x: int) -> int:
        started.append(x)
        if x == 3:
            raise fatal()
        await asyncio.sleep(0)
        return x

    def run() -> None:
        if kept:
            with poolkit.runner("async", workers=1) as runner:
                runner.run_all(stop, range(50))
        else:
            poolkit.run_all(stop, range(50), mode="async", workers=1)

    with pytest.raises(fatal):
        run()
    assert started == [0, 1, 2, 3]


def test_run_all_async_inside_a_running_loop_points_to_arun_all() -> None:
    """run_all(mode='async') in a running loop raises RuntimeError naming arun_all."""

    async def main() -> None:
        with pytest.raises(RuntimeError, match="arun_all"):
            poolkit.run_all(identity, [1], mode="async")

    asyncio.run(main())


def test_arun_all_and_astream() -> None:
    """arun_all and astream work inside a loop, in async and other modes."""

    async def main() -> None:
        results = await poolkit.arun_all(async_double, range(8))
        assert [r.index for r in results] == list(range(8))
        assert results.values == [2 * x for x in range(1, 8) if x % 7]
        threaded = await poolkit.arun_all(double_or_raise, range(5), mode="thread", workers=2)
        assert threaded.values == [2, 4, 6, 8]
        seen = [r.index async for r in poolkit.astream(async_double, range(6), ordered=True)]
        assert seen == list(range(6))
        async with poolkit.astream(async_double, itertools.count(1), ordered=True) as stream:
            first = await stream.__anext__()
            assert first.unwrap() == 2

    asyncio.run(main())


def test_runner_keeps_pool_warm_and_reuses_processes() -> None:
    """A process runner serves several calls with the same worker processes."""
    from .helpers import pid

    with poolkit.runner("process", workers=2) as runner:
        first = set(runner.run_all(pid, range(50)).values)
        second = set(runner.run_all(pid, range(50)).values)
    assert first
    assert first == second


def test_closed_runner_refuses_work(mode: str) -> None:
    """run_all and submit on a closed runner raise RuntimeError."""
    runner = poolkit.runner(mode, workers=1)
    runner.close()
    with pytest.raises(RuntimeError, match="closed"):
        runner.run_all(identity, [1])
    with pytest.raises(RuntimeError, match="closed"):
        runner.submit(identity, 1)
    runner.close()  # twice is fine


def test_executor_runner_adapts_any_executor() -> None:
    """ExecutorRunner runs batches on a borrowed executor and leaves it open."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as pool:
        with poolkit.ExecutorRunner(pool) as runner:
            results = runner.run_all(double_or_raise, range(10), retry=poolkit.Retry(2, backoff=0))
            assert results.values == [2 * x for x in range(1, 10) if x % 7]
            assert results[0].attempts == 2
        assert pool.submit(identity, 5).result() == 5
        assert poolkit.run_all(identity, [1, 2], mode=poolkit.ExecutorRunner(pool)).values == [1, 2]


def test_a_runner_of_your_own() -> None:
    """Any object with the Runner methods is accepted as mode."""

    class Recording:
        def __init__(self) -> None:
            self.inner = poolkit.runner("thread", workers=2)
            self.calls = 0

        def run_all(self, fn: Any, items: Any, **policies: Any) -> Any:
            self.calls += 1
            return self.inner.run_all(fn, items, **policies)

        def stream(self, fn: Any, items: Any, **policies: Any) -> Any:
            return self.inner.stream(fn, items, **policies)

        def submit(self, fn: Any, item: Any) -> Any:
            return self.inner.submit(fn, item)

        def close(self) -> None:
            self.inner.close()

        def __enter__(self) -> Any:
            return self

        def __exit__(self, *exc: object) -> None:
            self.close()

    with Recording() as mine:
        assert isinstance(mine, poolkit.Runner)
        assert poolkit.run_all(abs, [-3], mode=mine).values == [3]
        assert mine.calls == 1


def test_thread_mode_starts_threads_for_the_work_there_is() -> None:
    """A 3-item batch with workers=32 starts at most 3 threads (it started 32: the
    downloader paid for 256 thread starts per call)."""
    from .helpers import poolkit_threads

    before = poolkit_threads(None)  # threads other tests abandoned may still run
    results = poolkit.run_all(poolkit_threads, range(3), mode="thread", workers=32)
    assert results.all_ok
    assert max(results.values) - before <= 3, (before, results.values)
