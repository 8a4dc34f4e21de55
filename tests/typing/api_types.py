"""Checked by mypy --strict (make typecheck): the static types users see."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from typing import assert_type

import poolkit
from poolkit import Err, Ok, Result, Results


def to_text(x: int) -> str:
    return str(x)


def add(a: int, b: int) -> int:
    return a + b


async def fetch(x: int) -> bytes:
    return b"x" * x


def check() -> None:
    results = poolkit.run_all(to_text, [1, 2, 3])
    assert_type(results, Results[str])
    first = results[0]
    assert_type(first, Ok[str] | Err)
    if isinstance(first, Ok):
        assert_type(first.value, str)
    assert_type(results.values, list[str])
    match first:
        case Ok(value):
            assert_type(value, str)
        case Err(error):
            assert_type(error, BaseException)

    assert_type(poolkit.run_all(fetch, [1], mode="async"), Results[bytes])

    fn: Callable[[int], str] = to_text
    assert_type(poolkit.run_all(fn, range(3), mode="process", workers=2), Results[str])

    for r in poolkit.stream(to_text, [1, 2], ordered=True):
        assert_type(r, Ok[str] | Err)

    with poolkit.runner("thread", workers=2) as runner:
        future = runner.submit(to_text, 1)
        assert_type(future, Future[Ok[str] | Err])
        one: Result[str] = future.result()
        assert_type(one.unwrap_or(None), str | None)


async def check_async() -> None:
    results = await poolkit.arun_all(fetch, [1, 2])
    assert_type(results, Results[bytes])
    async for r in poolkit.astream(fetch, [3]):
        assert_type(r, Ok[bytes] | Err)


def check_runner_methods() -> None:
    with poolkit.runner("thread", workers=2) as runner:
        assert_type(runner.run_all(fetch, [1]), Results[bytes])  # an async fn's value type
        assert_type(runner.run_all(to_text, [1], timeout=None), Results[str])
        assert_type(runner.stream(to_text, [1], ordered=True), poolkit.ResultStream[str])
        runner.run_all(to_text, [1], timeotu=1.0)  # type: ignore[call-overload]
    poolkit.run_all(to_text, [1], retyr=None)  # type: ignore[call-overload]
    poolkit.runner("process", chunksize=2, start_methd="fork")  # type: ignore[call-overload]
    assert_type(poolkit.run_all(add, [(7, 2)], star=True), Results[int])
    runner_: poolkit.Runner = poolkit.runner("thread")
    del runner_
