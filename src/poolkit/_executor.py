"""``poolkit.Executor``: a drop-in ``concurrent.futures.Executor`` on a poolkit runner.

Futures are of the **value** (an item's error is the future's exception), as the
standard library's are. What poolkit adds is kept: in process mode a crash fails only
its own future (``WorkerCrashed``) and the executor stays usable; ``timeout=`` stops a
running call; ``retry=`` applies to each submit; ``map`` is lazy and bounded;
``Future.cancel()`` stops running work in process and async modes.
"""

from __future__ import annotations

import functools
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent import futures as cf
from concurrent.futures import Future
from types import TracebackType
from typing import Any, TypeVar

from ._core._waits import future_result
from ._errors import Cancelled
from ._results import Ok
from ._runners._pool import PoolRunner, runner

__all__ = ["Executor"]

T = TypeVar("T")

_STOPPABLE = ("process", "async")  # modes where a running call can really be stopped


class _ValueFuture(Future[Any]):
    """A Future of the value, completed from poolkit's Result; ``cancel()`` stops running work."""

    _stop: Callable[[], None] | None = None
    _can_stop = False

    def set_result(self, result: Any) -> None:
        if isinstance(result, Ok):
            super().set_result(result.value)
        else:
            super().set_exception(result.error)

    def cancel(self) -> bool:
        if super().cancel():
            return True
        if not self._can_stop:
            return False  # a thread cannot be stopped: as the standard library, refuse
        with self._condition:
            if self._state != "RUNNING":
                return self._state in ("CANCELLED", "CANCELLED_AND_NOTIFIED")
            self._state = "CANCELLED_AND_NOTIFIED"
            self._condition.notify_all()
        if self._stop is not None:
            self._stop()
        self._invoke_callbacks()  # type: ignore[attr-defined]
        return True


class Executor(cf.Executor):
    """A ``concurrent.futures.Executor`` that runs on a poolkit runner of any mode.

    ``mode`` and ``workers`` as for ``poolkit.runner``; ``options`` are that mode's
    options (``initializer``, ``initargs``, ``max_tasks_per_child``, …) and default
    policies for every submit (``retry``, ``timeout``, …).

    Examples:
        >>> import poolkit
        >>> with poolkit.Executor("thread", workers=2) as pool:
        ...     future = pool.submit(pow, 2, 10)
        ...     squares = list(pool.map(pow, [1, 2, 3], [2, 2, 2]))
        >>> future.result(), squares
        (1024, [1, 4, 9])
    """

    def __init__(self, mode: str = "thread", workers: int | None = None, **options: Any) -> None:
        self._runner: PoolRunner = runner(mode, workers, **options)
        self._lock = threading.Lock()
        self._shutdown = False

    @property
    def mode(self) -> str:
        """The mode this executor runs in."""
        return self._runner.mode

    @property
    def workers(self) -> int:
        """How many workers it runs."""
        return self._runner.workers

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        """Schedule ``fn(*args, **kwargs)``; a Future of its value.

        Raises RuntimeError after ``shutdown()``.
        """
        call = functools.partial(fn, **kwargs) if kwargs else fn
        future = _ValueFuture()
        future._can_stop = self._runner.mode in _STOPPABLE
        with self._lock:  # (a shutdown sees every future submitted before it)
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
            self._runner._submit(call, args, True, future)
        submitter = self._runner._submitter
        future._stop = lambda: submitter.stop(future, Cancelled("cancelled by Future.cancel()"))
        return future

    def map(
        self,
        fn: Callable[..., T],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int = 1,
        buffersize: int | None = None,
    ) -> Iterator[T]:
        """``fn`` over the zipped ``iterables``: values in order, lazily, at most
        ``buffersize`` (default ``16 * workers``) submitted and not yet yielded.

        An item's error is raised when the iteration reaches it; ``timeout`` counts
        from this call, as in the standard library. ``chunksize`` is accepted for
        compatibility; poolkit sizes process-mode chunks itself.
        """
        if buffersize is not None:
            if isinstance(buffersize, bool) or not isinstance(buffersize, int):
                raise TypeError(f"buffersize must be an int or None, not {buffersize!r}")
            if buffersize < 1:
                raise ValueError(f"buffersize must be None or >= 1, not {buffersize!r}")
        if chunksize < 1:
            raise ValueError("chunksize must be >= 1.")
        end = None if timeout is None else time.monotonic() + timeout
        # (16 per worker, as thread mode's max_in_flight: at 2 per worker the workers
        # waited for the next submit after almost every item)
        window = buffersize or 16 * self.workers
        arguments = zip(*iterables, strict=False)
        pending: deque[Future[T]] = deque(
            self.submit(fn, *args) for args in itertools.islice(arguments, window)
        )

        def results() -> Iterator[T]:
            try:
                while pending:
                    left = None if end is None else end - time.monotonic()
                    # wait (Ctrl-C always interrupts it: see ``_waits``); an item's
                    # error is raised here
                    future_result(pending[0], left)
                    for args in itertools.islice(arguments, 1):
                        pending.append(self.submit(fn, *args))
                    # no name here holds the value while the caller has it
                    yield pending.popleft().result()
            finally:
                for future in pending:
                    future.cancel()

        return results()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """No new submits; with ``cancel_futures`` pending ones are cancelled (and running
        ones stopped in process and async modes); with ``wait`` return when all is done.
        """
        with self._lock:
            self._shutdown = True
            live = self._runner._unfinished_futures()
        if cancel_futures:
            for future in live:
                future.cancel()
        if wait:
            self._runner.close()
        else:
            threading.Thread(target=self._runner.close, name="poolkit-shutdown").start()

    def __enter__(self) -> Executor:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.shutdown(wait=True)

    def __repr__(self) -> str:
        state = "shut down" if self._shutdown else "running"
        return f"<poolkit.Executor mode={self.mode!r} workers={self.workers} {state}>"
