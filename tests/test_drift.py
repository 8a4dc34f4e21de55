"""Regressions for the bugs that came from copies drifting apart (one home for each rule)."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

import poolkit
from poolkit.testing import Raise, TransientError, faulty

from .helpers import identity


def test_async_runner_never_runs_a_plain_function_on_its_loop() -> None:
    """A plain function whose id() once belonged to a coroutine function still runs off-loop."""
    on_loop = 0
    with poolkit.runner("async", workers=4) as r:
        for _ in range(200):

            async def coro(x: int) -> int:
                return x

            assert r.run_all(coro, [1]).values == [1]
            del coro

            def plain(x: int) -> str:
                return threading.current_thread().name

            names = r.run_all(plain, [1]).values
            on_loop += names == ["poolkit-async-loop"]
            del plain
    assert on_loop == 0


def test_arun_all_progress_counts_retries() -> None:
    """arun_all's progress counts retries, as run_all's does (one batch set-up for both)."""
    snapshots: list[poolkit.Progress] = []
    fn = faulty(identity, {0: [Raise(TransientError("t"))]})

    async def main() -> poolkit.Results[Any]:
        return await poolkit.arun_all(
            fn,
            [0, 1],
            mode="thread",
            retry=poolkit.Retry(2, on=TransientError, backoff=0),
            progress=snapshots.append,
        )

    results = asyncio.run(main())
    assert results.values == [0, 1]
    assert snapshots[-1].retries == 1


class ListRunner:
    """A Runner of the user's own: serial, in the calling thread."""

    def run_all(self, fn: Any, items: Any, **options: Any) -> poolkit.Results[Any]:
        return poolkit.run_all(fn, items, mode="serial", **options)

    def stream(self, fn: Any, items: Any, **options: Any) -> poolkit.ResultStream[Any]:
        return poolkit.stream(fn, items, mode="serial", **options)

    def submit(self, fn: Any, item: Any) -> Any:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self) -> ListRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def test_arun_all_and_astream_accept_a_users_runner() -> None:
    """arun_all/astream take the same Runner instances run_all takes."""
    runner = ListRunner()
    assert isinstance(runner, poolkit.Runner)

    async def main() -> tuple[list[Any], list[Any]]:
        results = await poolkit.arun_all(abs, [-1, -2], mode=runner)
        streamed = [r.value async for r in poolkit.astream(abs, [-3], mode=runner)]
        return results.values, streamed

    assert asyncio.run(main()) == ([1, 2], [3])


@pytest.mark.parametrize("mode", ["thread", "serial", "async"])
def test_none_switches_a_runner_default_off(mode: str) -> None:
    """r.run_all(..., timeout=None) has no timeout even when the runner has one."""
    with poolkit.runner(mode, workers=1, timeout=0.05) as r:
        results = r.run_all(time.sleep, [0.3], timeout=None)
        assert results.all_ok, results
        assert isinstance(r.run_all(time.sleep, [0.3])[0].error, poolkit.TaskTimeout)


@pytest.mark.parametrize(
    ("mode", "options", "message"),
    [
        ("process", {"chunksize": 0}, "chunksize"),
        ("process", {"start_method": "nope"}, "start_method"),
        ("process", {"max_tasks_per_child": 0}, "max_tasks_per_child"),
        ("thread", {"initializer": 3}, "initializer"),
        ("thread", {"initargs": "ab"}, "initargs"),
        ("thread", {"timeout": -1}, "timeout"),
        ("thread", {"chunksize": 4}, "unexpected option"),
    ],
)
def test_runner_options_are_checked_when_built(
    mode: str, options: dict[str, Any], message: str
) -> None:
    """A bad option fails poolkit.runner(...) at once, not at first use."""
    with pytest.raises((TypeError, ValueError), match=message):
        poolkit.runner(mode, **options)


def test_a_call_rejects_an_unknown_option() -> None:
    """A typo in a call's option is a TypeError that lists what a call takes."""
    with poolkit.runner("thread") as r, pytest.raises(TypeError, match="timeotu"):
        r.run_all(abs, [1], timeotu=1.0)  # type: ignore[call-arg]
