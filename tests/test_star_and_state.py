"""Several arguments per call (star=True), per-worker state and the initializer, in every mode."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import poolkit


def add(x: int, y: int) -> int:
    return x + y


async def aadd(x: int, y: int) -> int:
    await asyncio.sleep(0)
    return x + y


def test_star_calls_fn_with_the_tuple(mode: str) -> None:
    """star=True calls fn(*item); Result.item stays the tuple."""
    pairs = [(1, 2), (3, 4)]
    results = poolkit.run_all(add, pairs, mode=mode, workers=2, star=True)
    assert results.values == [3, 7]
    assert [r.item for r in results] == pairs


def test_star_in_stream_and_async_calls() -> None:
    """stream, arun_all, astream and a runner's methods take star=True too."""
    pairs = [(1, 1), (2, 2)]
    assert sorted(r.value for r in poolkit.stream(add, pairs, star=True)) == [2, 4]

    async def main() -> tuple[list[Any], list[Any]]:
        done = await poolkit.arun_all(aadd, pairs, star=True)
        streamed = [r.value async for r in poolkit.astream(aadd, pairs, star=True, ordered=True)]
        return done.values, streamed

    assert asyncio.run(main()) == ([2, 4], [2, 4])
    with poolkit.runner("thread", workers=2) as r:
        assert r.run_all(add, pairs, star=True).values == [2, 4]
        assert r.submit(add, (5, 5), star=True).result().value == 10


def test_without_star_a_tuple_is_one_argument() -> None:
    """Without star, the tuple is passed as it is (and add(tuple) fails)."""
    results = poolkit.run_all(add, [(1, 2)], mode="serial")
    assert isinstance(results[0].error, TypeError)


def _init(tag: str) -> None:
    state = poolkit.worker_state()
    state["tag"] = tag
    state["inits"] = state.get("inits", 0) + 1


def _probe(_: Any) -> tuple[str, int, int]:
    state = poolkit.worker_state()
    state["calls"] = state.get("calls", 0) + 1
    return state["tag"], state["inits"], poolkit.worker_id()


def test_initializer_and_worker_state_in_every_mode(mode: str) -> None:
    """The initializer runs once per worker, before its calls, and fills worker_state()."""
    with poolkit.runner(mode, workers=2, initializer=_init, initargs=("ready",)) as r:
        values = r.run_all(_probe, range(20)).values
        values += r.run_all(_probe, range(20)).values
    assert {tag for tag, _, _ in values} == {"ready"}
    assert {inits for _, inits, _ in values} == {1}  # never twice in one worker
    assert {wid for _, _, wid in values} <= {0, 1}


def test_worker_state_is_private_per_thread() -> None:
    """In thread mode each thread has its own dict."""

    def mine(_: Any) -> int:
        return id(poolkit.worker_state())

    import threading

    barrier = threading.Barrier(2)

    def both(x: Any) -> int:
        barrier.wait(timeout=30)
        return mine(x)

    ids = poolkit.run_all(both, range(2), mode="thread", workers=2).values
    assert len(set(ids)) == 2


def _boom() -> None:
    raise RuntimeError("no database")


def test_a_failing_initializer_fails_every_item(mode: str) -> None:
    """An initializer that raises: every item is Err(PoolkitError) naming it, no hang."""
    results = poolkit.run_all(abs, range(3), mode=mode, workers=2, initializer=_boom)
    assert len(results) == 3
    for result in results:
        assert isinstance(result.error, poolkit.PoolkitError)
        assert "initializer" in str(result.error)


def test_worker_id_outside_a_worker() -> None:
    """Outside poolkit's workers, worker_id() is 0 and worker_state() a dict."""
    assert poolkit.worker_id() == 0
    assert isinstance(poolkit.worker_state(), dict)


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_one_session_per_worker(mode: str) -> None:
    """The docs' example: open one resource per worker and reuse it."""

    def fetch(x: int) -> int:
        state = poolkit.worker_state()
        if "session" not in state:
            state["session"] = object()
            state["opened"] = 0
        state["opened"] += 0
        return id(state["session"])

    sessions = poolkit.run_all(fetch, range(40), mode=mode, workers=2).values
    assert 1 <= len(set(sessions)) <= 2
