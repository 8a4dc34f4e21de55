"""The public calls: ``run_all``, ``stream``, ``arun_all`` and ``astream``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any, TypeVar, overload

from ._core._batch import Collector, abatch
from ._core._engine import Hooks
from ._core._observe import Observer
from ._policies import CancelToken, RateLimit, Retry
from ._progress import make_progress
from ._results import Err, Ok, Results
from ._runners._base import POLICY_NAMES, BackendRunner, Runner
from ._runners._pool import PoolRunner, runner
from ._stream import AsyncResultStream, ResultStream
from ._validate import (
    check_callable,
    check_hook,
    check_items,
    check_mode,
    check_workers,
)

__all__ = ["arun_all", "astream", "run_all", "stream"]

A = TypeVar("A")
T = TypeVar("T")

Mode = str | Runner


def _open(mode: Mode, workers: int | None, options: dict[str, Any]) -> tuple[Runner, bool]:
    """The runner for ``mode`` and whether this call owns (and must close) it."""
    if isinstance(mode, str):
        return runner(mode, workers, **options), True
    if isinstance(mode, Runner):
        if workers is not None or options:
            raise TypeError(
                "workers= and mode options go to poolkit.runner(...), not to a call that "
                "is given a Runner instance"
            )
        return mode, False
    check_mode(mode)
    raise AssertionError("unreachable")


def _refuse_running_loop(mode: Mode, call: str, instead: str) -> None:
    """Async mode cannot block a thread whose event loop is running: point to the async call."""
    if mode != "async":
        return
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise RuntimeError(
        f"poolkit.{call}(mode='async') was called while an event loop is running in this "
        f"thread, which it would block; use `{instead}` there instead"
    )


@overload
def run_all(
    fn: Callable[[A], Awaitable[T]],
    items: Iterable[A],
    *,
    mode: Mode = ...,
    workers: int | None = ...,
    retry: Retry | None = ...,
    timeout: float | None = ...,
    deadline: float | None = ...,
    fail_fast: bool = ...,
    cancel: CancelToken | None = ...,
    rate_limit: RateLimit | float | None = ...,
    max_in_flight: int | None = ...,
    progress: Any = ...,
    on_result: Callable[[Ok[T] | Err], Any] | None = ...,
    **options: Any,
) -> Results[T]: ...
@overload
def run_all(
    fn: Callable[[A], T],
    items: Iterable[A],
    *,
    mode: Mode = ...,
    workers: int | None = ...,
    retry: Retry | None = ...,
    timeout: float | None = ...,
    deadline: float | None = ...,
    fail_fast: bool = ...,
    cancel: CancelToken | None = ...,
    rate_limit: RateLimit | float | None = ...,
    max_in_flight: int | None = ...,
    progress: Any = ...,
    on_result: Callable[[Ok[T] | Err], Any] | None = ...,
    **options: Any,
) -> Results[T]: ...
def run_all(
    fn: Callable[[Any], Any],
    items: Iterable[Any],
    *,
    mode: Mode = "thread",
    workers: int | None = None,
    retry: Retry | None = None,
    timeout: float | None = None,
    deadline: float | None = None,
    fail_fast: bool = False,
    cancel: CancelToken | None = None,
    rate_limit: RateLimit | float | None = None,
    max_in_flight: int | None = None,
    progress: Any = False,
    on_result: Callable[[Any], Any] | None = None,
    **options: Any,
) -> Results[Any]:
    """Run ``fn`` over every item; return one Result per item, in input order.

    ``mode`` is ``"serial"``, ``"thread"``, ``"process"``, ``"async"``, ``"dask"`` or a
    Runner. Items are taken lazily, at most ``max_in_flight`` unfinished at a time.
    Exceptions become ``Err``; ``KeyboardInterrupt`` and ``SystemExit`` propagate after
    the workers are stopped. Also accepts the hooks ``on_start(item, attempt)`` and
    ``on_retry(item, attempt, error, wait)``, and the mode's options (see ``runner``).

    Example:
        >>> import poolkit
        >>> results = poolkit.run_all(lambda x: 1 / x, [1, 0, 4], mode="thread", workers=2)
        >>> [r.is_ok() for r in results]
        [True, False, True]
        >>> results.values
        [1.0, 0.25]
    """
    _refuse_running_loop(mode, "run_all", "await poolkit.arun_all(...)")
    hooks = {k: options.pop(k) for k in ("on_start", "on_retry") if k in options}
    check_workers(workers)
    runner_, owned = _open(mode, workers, options)
    try:
        return runner_.run_all(
            fn,
            items,
            retry=retry,
            timeout=timeout,
            deadline=deadline,
            fail_fast=fail_fast,
            cancel=cancel,
            rate_limit=rate_limit,
            max_in_flight=max_in_flight,
            progress=progress,
            on_result=on_result,
            **hooks,
        )
    finally:
        if owned:
            runner_.close()


@overload
def stream(
    fn: Callable[[A], Awaitable[T]],
    items: Iterable[A],
    *,
    ordered: bool = ...,
    mode: Mode = ...,
    workers: int | None = ...,
    **options: Any,
) -> ResultStream[T]: ...
@overload
def stream(
    fn: Callable[[A], T],
    items: Iterable[A],
    *,
    ordered: bool = ...,
    mode: Mode = ...,
    workers: int | None = ...,
    **options: Any,
) -> ResultStream[T]: ...
def stream(
    fn: Callable[[Any], Any],
    items: Iterable[Any],
    *,
    ordered: bool = False,
    mode: Mode = "thread",
    workers: int | None = None,
    **options: Any,
) -> ResultStream[Any]:
    """Results as they complete (``ordered=True``: in input order, still lazy).

    Takes the same options as ``run_all``. Memory stays flat however long ``items``
    is. Leaving the loop early and closing the stream (or leaving its ``with`` block)
    cancels what is outstanding and stops the workers.

    Example:
        >>> import poolkit
        >>> squares = poolkit.stream(lambda x: x * x, range(10**9), ordered=True)
        >>> with squares:
        ...     first = [next(squares).value for _ in range(3)]
        >>> first
        [0, 1, 4]
    """
    _refuse_running_loop(mode, "stream", "async for r in poolkit.astream(...)")
    check_workers(workers)
    per_call = {k: options.pop(k) for k in _CALL_OPTIONS if k in options}
    runner_, owned = _open(mode, workers, options)
    try:
        results = runner_.stream(fn, items, ordered=ordered, **per_call)
    except BaseException:
        if owned:
            runner_.close()
        raise
    if owned:
        results._on_close = runner_.close  # a one-shot runner stops with its stream
    return results


_CALL_OPTIONS = (*POLICY_NAMES, "progress", "on_result", "on_start", "on_retry")


class _AsyncBatch:
    """An async batch's parts: its Results generator, observer and clean-up."""

    def __init__(
        self,
        fn: Callable[[Any], Any],
        items: Iterable[Any],
        mode: Mode,
        workers: int | None,
        ordered: bool,
        options: dict[str, Any],
    ) -> None:
        per_call = {k: options.pop(k) for k in _CALL_OPTIONS if k in options}
        check_callable(fn)
        check_items(items)
        check_workers(workers)
        if mode == "async":
            if options:
                raise TypeError(
                    f"mode 'async' got unexpected option(s) {', '.join(sorted(options))}"
                )
            runner_: Runner = PoolRunner("async", workers, {"loop": asyncio.get_running_loop()})
            self.owned = True
        else:
            runner_, self.owned = _open(mode, workers, options)
        if not isinstance(runner_, BackendRunner):
            raise TypeError(
                "arun_all/astream need a poolkit runner (poolkit.runner or ExecutorRunner)"
            )
        self.runner = runner_
        try:
            progress = make_progress(per_call.pop("progress", False), items)
            self.observer = Observer(
                check_hook("on_result", per_call.pop("on_result", None)), progress
            )
            hooks = Hooks(
                on_start=check_hook("on_start", per_call.pop("on_start", None)),
                on_retry=check_hook("on_retry", per_call.pop("on_retry", None)),
            )
            policies = runner_._policies(per_call)
            backend = runner_._backend_for(policies)
        except BaseException:
            self.close()
            raise
        self.results = abatch(
            backend, fn, items, policies, ordered=ordered, observer=self.observer, hooks=hooks
        )

    def close(self) -> None:
        if self.owned:
            self.runner.close()


@overload
def astream(
    fn: Callable[[A], Awaitable[T]],
    items: Iterable[A],
    *,
    ordered: bool = ...,
    mode: Mode = ...,
    workers: int | None = ...,
    **options: Any,
) -> AsyncResultStream[T]: ...
@overload
def astream(
    fn: Callable[[A], T],
    items: Iterable[A],
    *,
    ordered: bool = ...,
    mode: Mode = ...,
    workers: int | None = ...,
    **options: Any,
) -> AsyncResultStream[T]: ...
def astream(
    fn: Callable[[Any], Any],
    items: Iterable[Any],
    *,
    ordered: bool = False,
    mode: Mode = "async",
    workers: int | None = None,
    **options: Any,
) -> AsyncResultStream[Any]:
    """``stream`` for code already inside an event loop: ``async for r in astream(...)``.

    The default mode is ``"async"``: coroutine functions run on the running loop, plain
    functions on worker threads. Other modes run as usual while the loop stays free.

    Example:
        >>> import asyncio, poolkit
        >>> async def double(x):
        ...     await asyncio.sleep(0)
        ...     return 2 * x
        >>> async def main():
        ...     return sorted([r.value async for r in poolkit.astream(double, [1, 2, 3])])
        >>> asyncio.run(main())
        [2, 4, 6]
    """
    parts = _AsyncBatch(fn, items, mode, workers, ordered, options)

    async def generate() -> AsyncIterator[Ok[Any] | Err]:
        async for result in parts.results:
            yield result
        parts.observer.raise_hook_error(())

    return AsyncResultStream(generate(), parts.close)  # type: ignore[arg-type]


@overload
async def arun_all(
    fn: Callable[[A], Awaitable[T]],
    items: Iterable[A],
    *,
    mode: Mode = ...,
    workers: int | None = ...,
    **options: Any,
) -> Results[T]: ...
@overload
async def arun_all(
    fn: Callable[[A], T],
    items: Iterable[A],
    *,
    mode: Mode = ...,
    workers: int | None = ...,
    **options: Any,
) -> Results[T]: ...
async def arun_all(
    fn: Callable[[Any], Any],
    items: Iterable[Any],
    *,
    mode: Mode = "async",
    workers: int | None = None,
    **options: Any,
) -> Results[Any]:
    """``run_all`` for code already inside an event loop: ``await arun_all(...)``.

    Same options and promises as ``run_all``; the default mode is ``"async"``.

    Example:
        >>> import asyncio, poolkit
        >>> async def main():
        ...     return (await poolkit.arun_all(abs, [-1, -2])).values
        >>> asyncio.run(main())
        [1, 2]
    """
    started = time.monotonic()
    parts = _AsyncBatch(fn, items, mode, workers, False, options)
    collector = Collector()
    try:
        async for result in parts.results:
            collector.add(result)
    finally:
        await parts.results.aclose()  # type: ignore[attr-defined]
        parts.close()
    final: Results[Any] = Results(collector.slots, wall_time=time.monotonic() - started)
    parts.observer.raise_hook_error(final)
    return final
