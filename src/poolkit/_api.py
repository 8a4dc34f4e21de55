"""The public calls: ``run_all``, ``stream``, ``arun_all`` and ``astream``.

Each checks its arguments, opens a runner (or takes the one given as ``mode``) and
delegates; the runner builds and drives the batch. Nothing here knows a backend.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, Literal, TypeVar, overload

from ._options import CallOptions, ModeSetup, ProgressArg, check_mode, check_workers
from ._policies import CancelToken, RateLimit, Retry
from ._results import Err, Ok, Results
from ._runners._base import BackendRunner
from ._runners._pool import PoolRunner, one_call_runner
from ._runners._protocol import Runner
from ._stream import AsyncResultStream, ResultStream

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["arun_all", "astream", "run_all", "stream"]

A = TypeVar("A")
T = TypeVar("T")

Mode = str | Runner


class _Options(CallOptions, ModeSetup, total=False):
    """Every keyword the one-call functions take besides mode, workers, star, ordered."""


def _open(mode: Mode, workers: int | None, options: dict[str, Any]) -> tuple[Any, bool]:
    """The runner for ``mode`` and whether this call owns (and must close) it.

    ``options`` loses the mode options it holds (they go to the runner).
    """
    check_workers(workers)
    setup = {k: options.pop(k) for k in list(options) if k in ModeSetup.__optional_keys__}
    if isinstance(mode, str):
        return one_call_runner(mode, workers, setup), True
    if isinstance(mode, Runner):
        if workers is not None or setup:
            raise TypeError(
                "workers= and mode options go to poolkit.runner(...), not to a call that "
                "is given a Runner instance"
            )
        return mode, False
    check_mode(mode)
    raise AssertionError("unreachable")


def _dynamic(runner_: Any) -> Any:
    """A runner whose methods this module calls with options it already checked."""
    return runner_


def _refuse_running_loop(mode: Mode, call: str, instead: str) -> None:
    """A blocking call in async mode would block this thread's running loop: refuse."""
    if mode != "async" and not (isinstance(mode, BackendRunner) and mode.mode == "async"):
        return
    import asyncio

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise RuntimeError(
        f"poolkit.{call}() in async mode was called while an event loop is running in this "
        f"thread, which it would block; use `{instead}` there instead"
    )


@overload
def run_all(
    fn: Callable[[A], Awaitable[T]],
    items: Iterable[A],
    *,
    mode: Mode = ...,
    workers: int | None = ...,
    star: Literal[False] = ...,
    **options: Unpack[_Options],
) -> Results[T]: ...
@overload
def run_all(
    fn: Callable[[A], T],
    items: Iterable[A],
    *,
    mode: Mode = ...,
    workers: int | None = ...,
    star: Literal[False] = ...,
    **options: Unpack[_Options],
) -> Results[T]: ...
@overload
def run_all(
    fn: Callable[..., Awaitable[T]],
    items: Iterable[tuple[Any, ...]],
    *,
    mode: Mode = ...,
    workers: int | None = ...,
    star: Literal[True],
    **options: Unpack[_Options],
) -> Results[T]: ...
@overload
def run_all(
    fn: Callable[..., T],
    items: Iterable[tuple[Any, ...]],
    *,
    mode: Mode = ...,
    workers: int | None = ...,
    star: Literal[True],
    **options: Unpack[_Options],
) -> Results[T]: ...
def run_all(
    fn: Callable[..., Any],
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
    progress: ProgressArg = False,
    on_result: Callable[[Any], object] | None = None,
    star: bool = False,
    **options: Any,
) -> Results[Any]:
    """Run ``fn`` over every item; return one Result per item, in input order.

    ``mode`` is ``"serial"``, ``"thread"``, ``"process"``, ``"async"``, ``"dask"`` or a
    Runner. Items are taken lazily, at most ``max_in_flight`` unfinished at a time.
    Exceptions become ``Err``; ``KeyboardInterrupt`` and ``SystemExit`` propagate after
    the workers are stopped. ``star=True`` calls ``fn(*item)``. Also accepts the hooks
    ``on_start(item, attempt)`` and ``on_retry(item, attempt, error, wait)``, and the
    mode's options (``initializer``, ``initargs``, … see ``poolkit.runner``).

    Examples:
        >>> import poolkit
        >>> results = poolkit.run_all(lambda x: 1 / x, [1, 0, 4], mode="thread", workers=2)
        >>> [r.is_ok() for r in results]
        [True, False, True]
        >>> results.values
        [1.0, 0.25]
    """
    _refuse_running_loop(mode, "run_all", "await poolkit.arun_all(...)")
    given = _given(locals(), options)
    runner_, owned = _open(mode, workers, given)
    try:
        results: Results[Any] = runner_.run_all(fn, items, star=star, **given)
        return results
    finally:
        if owned:
            runner_.close()


_DEFAULTS: dict[str, Any] = {
    name: default
    for name, default in (run_all.__kwdefaults__ or {}).items()
    if name not in ("mode", "workers", "star")
}
"""run_all's policy and hook defaults, read from its signature (never restated)."""


def _given(arguments: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    """The call's options that differ from run_all's documented defaults, plus ``options``."""
    given = {k: arguments[k] for k, default in _DEFAULTS.items() if arguments[k] is not default}
    given.update(options)
    return given


@overload
def stream(
    fn: Callable[[A], Awaitable[T]],
    items: Iterable[A],
    *,
    ordered: bool = ...,
    mode: Mode = ...,
    workers: int | None = ...,
    star: Literal[False] = ...,
    **options: Unpack[_Options],
) -> ResultStream[T]: ...
@overload
def stream(
    fn: Callable[[A], T],
    items: Iterable[A],
    *,
    ordered: bool = ...,
    mode: Mode = ...,
    workers: int | None = ...,
    star: Literal[False] = ...,
    **options: Unpack[_Options],
) -> ResultStream[T]: ...
@overload
def stream(
    fn: Callable[..., Awaitable[T]],
    items: Iterable[tuple[Any, ...]],
    *,
    ordered: bool = ...,
    mode: Mode = ...,
    workers: int | None = ...,
    star: Literal[True],
    **options: Unpack[_Options],
) -> ResultStream[T]: ...
@overload
def stream(
    fn: Callable[..., T],
    items: Iterable[tuple[Any, ...]],
    *,
    ordered: bool = ...,
    mode: Mode = ...,
    workers: int | None = ...,
    star: Literal[True],
    **options: Unpack[_Options],
) -> ResultStream[T]: ...
def stream(
    fn: Callable[..., Any],
    items: Iterable[Any],
    *,
    ordered: bool = False,
    mode: Mode = "thread",
    workers: int | None = None,
    star: bool = False,
    **options: Any,
) -> ResultStream[Any]:
    """Results as they complete (``ordered=True``: in input order, still lazy).

    Takes the same options as ``run_all``. Memory stays flat however long ``items``
    is. Leaving the loop early and closing the stream (or leaving its ``with`` block)
    cancels what is outstanding and stops the workers.

    Examples:
        >>> import poolkit
        >>> squares = poolkit.stream(lambda x: x * x, range(10**9), ordered=True)
        >>> with squares:
        ...     first = [next(squares).value for _ in range(3)]
        >>> first
        [0, 1, 4]
    """
    _refuse_running_loop(mode, "stream", "async for r in poolkit.astream(...)")
    runner_, owned = _open(mode, workers, options)
    try:
        results: ResultStream[Any] = runner_.stream(
            fn, items, ordered=ordered, star=star, **options
        )
    except BaseException:
        if owned:
            runner_.close()
        raise
    if owned:
        results._on_close = runner_.close  # a one-shot runner stops with its stream
    return results


def _open_async(mode: Mode, workers: int | None, options: dict[str, Any]) -> tuple[Any, bool]:
    """``_open`` for the async calls: async mode runs on the caller's running loop."""
    if mode == "async":
        import asyncio

        setup = {k: options.pop(k) for k in list(options) if k in ModeSetup.__optional_keys__}
        loop = asyncio.get_running_loop()
        return PoolRunner("async", check_workers(workers), setup, loop=loop), True
    return _open(mode, workers, options)


@overload
def astream(
    fn: Callable[[A], Awaitable[T]],
    items: Iterable[A],
    *,
    ordered: bool = ...,
    mode: Mode = ...,
    workers: int | None = ...,
    star: Literal[False] = ...,
    **options: Unpack[_Options],
) -> AsyncResultStream[T]: ...
@overload
def astream(
    fn: Callable[[A], T],
    items: Iterable[A],
    *,
    ordered: bool = ...,
    mode: Mode = ...,
    workers: int | None = ...,
    star: Literal[False] = ...,
    **options: Unpack[_Options],
) -> AsyncResultStream[T]: ...
@overload
def astream(
    fn: Callable[..., Awaitable[T]],
    items: Iterable[tuple[Any, ...]],
    *,
    ordered: bool = ...,
    mode: Mode = ...,
    workers: int | None = ...,
    star: Literal[True],
    **options: Unpack[_Options],
) -> AsyncResultStream[T]: ...
@overload
def astream(
    fn: Callable[..., T],
    items: Iterable[tuple[Any, ...]],
    *,
    ordered: bool = ...,
    mode: Mode = ...,
    workers: int | None = ...,
    star: Literal[True],
    **options: Unpack[_Options],
) -> AsyncResultStream[T]: ...
def astream(
    fn: Callable[..., Any],
    items: Iterable[Any],
    *,
    ordered: bool = False,
    mode: Mode = "async",
    workers: int | None = None,
    star: bool = False,
    **options: Any,
) -> AsyncResultStream[Any]:
    """``stream`` for code already inside an event loop: ``async for r in astream(...)``.

    The default mode is ``"async"``: coroutine functions run on the running loop, plain
    functions on worker threads. Other modes run as usual while the loop stays free.

    Examples:
        >>> import asyncio, poolkit
        >>> async def double(x):
        ...     await asyncio.sleep(0)
        ...     return 2 * x
        >>> async def main():
        ...     return sorted([r.value async for r in poolkit.astream(double, [1, 2, 3])])
        >>> asyncio.run(main())
        [2, 4, 6]
    """
    runner_, owned = _open_async(mode, workers, options)
    try:
        results: AsyncResultStream[Any]
        if isinstance(runner_, BackendRunner):
            results = _dynamic(runner_).astream(fn, items, ordered=ordered, star=star, **options)
        else:
            sync = runner_.stream(fn, items, ordered=ordered, star=star, **options)
            results = AsyncResultStream(_in_thread(sync), sync.close)
    except BaseException:
        if owned:
            runner_.close()
        raise
    if owned:
        results._on_close = runner_.close
    return results


async def _in_thread(results: ResultStream[Any]) -> AsyncIterator[Ok[Any] | Err]:
    """A Runner of the user's own, streamed from a worker thread so the loop stays free."""
    import asyncio

    done = object()
    while (result := await asyncio.to_thread(next, results, done)) is not done:
        yield result  # type: ignore[misc]


@overload
async def arun_all(
    fn: Callable[[A], Awaitable[T]],
    items: Iterable[A],
    *,
    mode: Mode = ...,
    workers: int | None = ...,
    star: Literal[False] = ...,
    **options: Unpack[_Options],
) -> Results[T]: ...
@overload
async def arun_all(
    fn: Callable[[A], T],
    items: Iterable[A],
    *,
    mode: Mode = ...,
    workers: int | None = ...,
    star: Literal[False] = ...,
    **options: Unpack[_Options],
) -> Results[T]: ...
@overload
async def arun_all(
    fn: Callable[..., Awaitable[T]],
    items: Iterable[tuple[Any, ...]],
    *,
    mode: Mode = ...,
    workers: int | None = ...,
    star: Literal[True],
    **options: Unpack[_Options],
) -> Results[T]: ...
@overload
async def arun_all(
    fn: Callable[..., T],
    items: Iterable[tuple[Any, ...]],
    *,
    mode: Mode = ...,
    workers: int | None = ...,
    star: Literal[True],
    **options: Unpack[_Options],
) -> Results[T]: ...
async def arun_all(
    fn: Callable[..., Any],
    items: Iterable[Any],
    *,
    mode: Mode = "async",
    workers: int | None = None,
    star: bool = False,
    **options: Any,
) -> Results[Any]:
    """``run_all`` for code already inside an event loop: ``await arun_all(...)``.

    Same options and promises as ``run_all``; the default mode is ``"async"``. A
    Runner of your own runs on a worker thread, so the loop stays free.

    Examples:
        >>> import asyncio, poolkit
        >>> async def main():
        ...     return (await poolkit.arun_all(abs, [-1, -2])).values
        >>> asyncio.run(main())
        [1, 2]
    """
    import asyncio

    runner_, owned = _open_async(mode, workers, options)
    try:
        if isinstance(runner_, BackendRunner):
            return await _dynamic(runner_).arun_all(fn, items, star=star, **options)  # type: ignore[no-any-return]
        return await asyncio.to_thread(lambda: runner_.run_all(fn, items, star=star, **options))
    finally:
        if owned:
            runner_.close()
