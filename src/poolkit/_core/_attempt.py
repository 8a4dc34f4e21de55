"""One attempt, run the same way by every backend, and what a running call can ask.

``run_attempt`` is the single body of an attempt: thread, serial, process, dask and
the executor adapter all call it (async mode awaits ``run_attempt_async``). It never
raises: the outcome goes back to the engine, which decides what it means.

A worker (a thread, a process, an event loop, a Dask worker) enters a ``WorkerContext``
once; ``poolkit.worker_state()`` and ``poolkit.worker_id()`` read it from inside a call.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from poolkit._errors import PoolkitError, set_anyway
from poolkit._quote import describe, short_repr

if TYPE_CHECKING:
    from ._task import Job

__all__ = [
    "ATTEMPT",
    "WorkerContext",
    "awaited",
    "copy_error",
    "initializer_failure",
    "is_async_callable",
    "run_attempt",
    "run_attempt_async",
    "worker_id",
    "worker_state",
]

ATTEMPT: ContextVar[int] = ContextVar("poolkit_attempt", default=1)
"""The 1-based number of the attempt being run in this thread or task."""

IN_WORKER_PROCESS = False
"""True inside a process-mode worker, where a simulated crash may really exit."""


class WorkerContext:
    """A worker's identity and its private state dict."""

    __slots__ = ("id", "state")

    def __init__(self, worker_id: int, state: dict[str, Any] | None = None) -> None:
        self.id = worker_id
        self.state: dict[str, Any] = {} if state is None else state

    def enter(self) -> None:
        """Make this the current worker of the calling thread (or asyncio task)."""
        _WORKER.set(self)


_WORKER: ContextVar[WorkerContext | None] = ContextVar("poolkit_worker", default=None)
_OUTSIDE = WorkerContext(0)  # calls made outside any poolkit worker share this one


def worker_state() -> dict[str, Any]:
    """A dict private to the worker running the current call.

    Per thread in thread mode, per process in process mode, per event loop in async
    mode, per Dask worker in dask mode, per runner in serial mode. Use it to open a
    connection or load a model once per worker (often in an ``initializer``).

    Examples:
        >>> import poolkit
        >>> def count(x):
        ...     state = poolkit.worker_state()
        ...     state["calls"] = state.get("calls", 0) + 1
        ...     return state["calls"]
        >>> poolkit.run_all(count, range(3), mode="serial").values
        [1, 2, 3]
    """
    return (_WORKER.get() or _OUTSIDE).state


def worker_id() -> int:
    """The index (0 … workers-1) of the worker running the current call.

    Examples:
        >>> import poolkit
        >>> ids = poolkit.run_all(lambda _: poolkit.worker_id(), range(4), workers=2).values
        >>> set(ids) <= {0, 1}
        True
    """
    return (_WORKER.get() or _OUTSIDE).id


_NOT_COROUTINES = frozenset({int, float, str, bytes, bool, type(None), tuple, list, dict})


def run_attempt(job: Job, item: Any, number: int) -> tuple[bool, Any]:
    """Run one attempt in the calling thread: ``(True, value)`` or ``(False, exception)``.

    A coroutine function (or one that returns a coroutine) runs to completion on a
    fresh event loop, so every synchronous worker can run ``async def`` functions.
    """
    if ATTEMPT.get() != number:  # (set costs a Token each time: most items are first attempts)
        ATTEMPT.set(number)
    try:
        value = job.fn(*item) if job.star else job.fn(item)
        # the ABC check costs ~0.3 us, a tenth of a trivial item's whole cost: common
        # result types skip it
        if type(value) not in _NOT_COROUTINES:
            value = awaited(value)
        return True, value
    except BaseException as error:  # the engine decides what it means
        return False, error


def awaited(value: Any) -> Any:
    """``value``, or, when it is a coroutine, its result run to completion on a fresh
    event loop (so every synchronous worker runs ``async def`` functions)."""
    if isinstance(value, Coroutine):
        import asyncio

        return asyncio.run(value)
    return value


async def run_attempt_async(job: Job, item: Any, number: int) -> tuple[bool, Any]:
    """``run_attempt`` for a coroutine function, on the running loop.

    ``asyncio.CancelledError`` propagates: the caller tells poolkit's own cancels apart.
    """
    import asyncio
    import inspect

    ATTEMPT.set(number)
    try:
        value = job.fn(*item) if job.star else job.fn(item)
        if inspect.isawaitable(value):
            value = await value
        return True, value
    except asyncio.CancelledError:
        raise
    except BaseException as error:
        return False, error


def is_async_callable(fn: Any) -> bool:
    """True for ``async def`` functions, partials of them and objects with an async ``__call__``."""
    import inspect

    while hasattr(fn, "func") and hasattr(fn, "args"):  # functools.partial
        fn = fn.func
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - looking for an async __call__, not callability
    )


def initializer_failure(
    initializer: Callable[..., Any], initargs: tuple[Any, ...]
) -> PoolkitError | None:
    """Run a worker's initializer; None when it worked, else the error every item gets."""
    try:
        initializer(*initargs)
    except BaseException as error:
        broken = PoolkitError(
            f"the worker initializer {short_repr(initializer, 200)} raised "
            f"{describe(error)}; no item can run"
        )
        broken.__cause__ = error
        return broken
    return None


def copy_error(error: BaseException) -> BaseException:
    """A fresh instance per item, so tracebacks of different items do not mix."""
    try:
        clone = type(error)(*error.args)
    except Exception:
        return error
    set_anyway(clone, "__cause__", error.__cause__)
    return clone
