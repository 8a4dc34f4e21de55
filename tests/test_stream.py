"""stream: lazy, ordered or as completed, and closing it stops everything."""

from __future__ import annotations

import threading
import time
import weakref

import pytest
from hypothesis import given
from hypothesis import strategies as st

import poolkit

from .conftest import live_children, poolkit_threads, wait_until
from .helpers import aboxed, boxed, identity


def _jitter(x: tuple[int, float]) -> int:
    time.sleep(x[1])
    return x[0]


@given(st.lists(st.floats(0, 0.003), max_size=30), st.sampled_from(["thread", "async", "serial"]))
def test_unordered_yields_each_index_once(delays: list[float], mode: str) -> None:
    """ordered=False yields every index exactly once."""
    items = list(enumerate(delays))
    with poolkit.stream(_jitter, items, mode=mode, workers=4) as results:
        indexes = [r.index for r in results]
    assert sorted(indexes) == list(range(len(items)))


@given(st.lists(st.floats(0, 0.003), max_size=30), st.sampled_from(["thread", "async"]))
def test_ordered_yields_in_input_order(delays: list[float], mode: str) -> None:
    """ordered=True yields the Results in input order."""
    items = list(enumerate(delays))
    with poolkit.stream(_jitter, items, mode=mode, workers=4, ordered=True) as results:
        assert [r.unwrap() for r in results] == list(range(len(items)))


@given(st.integers(0, 20), st.sampled_from(["thread", "async", "process"]))
def test_closing_early_leaves_nothing_running(stop_after: int, mode: str) -> None:
    """Breaking out of a stream stops workers: no poolkit thread or child process remains."""
    threads_before = set(poolkit_threads())
    stream = poolkit.stream(identity, range(10**9), mode=mode, workers=2)
    for n, _ in enumerate(stream):
        if n >= stop_after:
            break
    stream.close()
    assert wait_until(lambda: not set(poolkit_threads()) - threads_before), poolkit_threads()
    assert wait_until(lambda: not live_children()), live_children()


def test_closing_cancels_running_calls() -> None:
    """Closing a stream of slow calls returns at once; pending items never start."""
    started: list[int] = []
    lock = threading.Lock()

    def slow(x: int) -> int:
        with lock:
            started.append(x)
        time.sleep(0.2)
        return x

    begin = time.monotonic()
    with poolkit.stream(slow, range(100), mode="thread", workers=2) as results:
        next(results)
    assert time.monotonic() - begin < 2.0
    count = len(started)
    time.sleep(0.3)  # not synchronisation: checks that nothing more started meanwhile
    assert len(started) == count <= 6


def test_stream_memory_stays_bounded() -> None:
    """A long generator streamed through holds only a bounded number of tasks."""
    import gc

    from poolkit._core._task import Task

    marker = object()
    items = ((marker, n) for n in range(200_000))
    with poolkit.stream(identity, items, mode="thread", workers=4) as results:
        for n, _ in enumerate(results):
            if n == 100_000:
                live = sum(
                    1
                    for o in gc.get_objects()
                    if isinstance(o, Task) and isinstance(o.item, tuple) and o.item[0] is marker
                )
                assert live <= 16 * 4 + 4, live  # the default max_in_flight, 16 x workers


@pytest.mark.parametrize("mode", ["thread", "async", "serial"])
def test_stream_is_an_iterator_and_context_manager(mode: str) -> None:
    """stream returns an iterator usable in for and with."""
    stream = poolkit.stream(identity, [1, 2, 3], mode=mode, ordered=True)
    assert iter(stream) is stream
    with stream as same:
        assert [r.value for r in same] == [1, 2, 3]
    assert list(stream) == []


@pytest.mark.parametrize("sized", [True, False], ids=["sized", "iterator"])
@pytest.mark.parametrize("mode", ["serial", "thread", "process", "async"])
def test_a_result_let_go_is_freed_before_the_next_is_asked_for(mode: str, sized: bool) -> None:
    """stream keeps no reference to what it yielded: a consumer that drops each Result
    holds one value at a time, however large (CPython's test_free_reference, for
    stream). The bulk lane (a sized input) and the per-item lane alike. (Process mode's
    collector thread may still be finishing with the message that carried it: a
    moment's grace, not a retention.)"""
    fn = aboxed if mode == "async" else boxed
    items = range(300) if sized else iter(range(300))
    held: list[int] = []
    with poolkit.stream(fn, items, mode=mode, workers=2) as results:
        for result in results:
            ref = weakref.ref(result.value)
            n = result.value.n
            del result
            if ref() is not None and not wait_until(lambda r=ref: r() is None, timeout=2):
                held.append(n)
                break
    assert held == []


@pytest.mark.parametrize("sized", [True, False], ids=["sized", "iterator"])
def test_astream_lets_go_of_what_it_yielded(sized: bool) -> None:
    """The same for ``astream``, on the caller's loop."""
    import asyncio

    async def main() -> list[int]:
        held: list[int] = []
        items = range(300) if sized else iter(range(300))
        async with poolkit.astream(aboxed, items, workers=4) as results:
            async for result in results:
                ref = weakref.ref(result.value)
                n = result.value.n
                del result
                if ref() is not None:
                    held.append(n)
                    break
        return held

    assert asyncio.run(main()) == []
