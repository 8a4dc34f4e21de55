"""``BackendRunner``: the one runner base behind every built-in runner.

``run_all``, ``stream``, ``arun_all`` and ``astream`` share one set-up (``_plan``):
arguments checked, the runner's default policies merged with the call's, hooks and
progress wired, the backend chosen. Only the driving differs (blocking or awaiting).

A call's options override the runner's defaults key by key; an option passed as
``None`` switches the default off for that call. "Not given" is simply an absent key.
"""

from __future__ import annotations

import dataclasses
import threading
import weakref
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator, Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, TypeVar, overload

from poolkit._core._backend import Backend
from poolkit._core._batch import Plan, abatch, acollect, batch, collect
from poolkit._core._engine import Hooks
from poolkit._core._observe import Observer
from poolkit._core._task import Job
from poolkit._errors import Cancelled
from poolkit._options import (
    CALL_OPTION_NAMES,
    CallOptions,
    check_callable,
    check_hook,
    check_items,
    engine_may_leave_caller,
)
from poolkit._policies import POLICY_NAMES, CancelToken, Policies, check_policies
from poolkit._progress import make_progress
from poolkit._results import Err, Ok, Results
from poolkit._stream import AsyncResultStream, ResultStream

if TYPE_CHECKING:
    from concurrent.futures import Future

    from typing_extensions import Unpack

__all__ = ["BackendRunner"]

A = TypeVar("A")
T = TypeVar("T")


class BackendRunner:
    """A Runner over one of poolkit's backends (the base of every built-in runner)."""

    mode: str = "custom"
    workers: int = 1

    def __init__(self, defaults: dict[str, Any] | None = None) -> None:
        self._defaults = dict(defaults or {})
        unknown = sorted(set(self._defaults) - set(POLICY_NAMES))
        if unknown:
            raise TypeError(
                f"unexpected option(s) {', '.join(unknown)}; the policies are "
                f"{', '.join(POLICY_NAMES)}"
            )
        check_policies(**self._defaults)  # a runner's defaults are checked when it is built
        self._lock = threading.Lock()
        self._backend: Backend | None = None
        self._closed = False
        self._submitter: Any = None
        self._last_job: Callable[[], Job | None] = _no_job
        self._batches: weakref.WeakSet[CancelToken] = weakref.WeakSet()

    # -- subclasses provide the backend -----------------------------------------------

    def _make_backend(self) -> Backend:
        raise NotImplementedError

    def _backend_for(self, policies: Policies) -> Backend:
        """The backend that runs a batch with these policies (serial mode may differ)."""
        return self._get_backend()

    def _get_backend(self) -> Backend:
        with self._lock:
            self._check_open()
            if self._backend is None:
                self._backend = self._make_backend()
            return self._backend

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"this {self.mode} runner is closed; create a new one")

    # -- the Runner interface ---------------------------------------------------------

    @overload
    def run_all(
        self,
        fn: Callable[[A], Awaitable[T]],
        items: Iterable[A],
        *,
        star: Literal[False] = ...,
        **options: Unpack[CallOptions],
    ) -> Results[T]: ...
    @overload
    def run_all(
        self,
        fn: Callable[[A], T],
        items: Iterable[A],
        *,
        star: Literal[False] = ...,
        **options: Unpack[CallOptions],
    ) -> Results[T]: ...
    @overload
    def run_all(
        self,
        fn: Callable[..., Awaitable[T]],
        items: Iterable[tuple[Any, ...]],
        *,
        star: Literal[True],
        **options: Unpack[CallOptions],
    ) -> Results[T]: ...
    @overload
    def run_all(
        self,
        fn: Callable[..., T],
        items: Iterable[tuple[Any, ...]],
        *,
        star: Literal[True],
        **options: Unpack[CallOptions],
    ) -> Results[T]: ...
    def run_all(
        self, fn: Callable[..., Any], items: Iterable[Any], *, star: bool = False, **options: Any
    ) -> Results[Any]:
        """Run ``fn`` over ``items`` with this runner's workers; see ``poolkit.run_all``.

        Examples:
            >>> import poolkit
            >>> with poolkit.runner("thread", workers=2, timeout=5.0) as r:
            ...     r.run_all(pow, [(2, 3), (3, 2)], star=True, timeout=None).values
            [8, 9]
        """
        return collect(self._plan(fn, items, star, False, options))

    @overload
    def stream(
        self,
        fn: Callable[[A], Awaitable[T]],
        items: Iterable[A],
        *,
        ordered: bool = ...,
        star: Literal[False] = ...,
        **options: Unpack[CallOptions],
    ) -> ResultStream[T]: ...
    @overload
    def stream(
        self,
        fn: Callable[[A], T],
        items: Iterable[A],
        *,
        ordered: bool = ...,
        star: Literal[False] = ...,
        **options: Unpack[CallOptions],
    ) -> ResultStream[T]: ...
    @overload
    def stream(
        self,
        fn: Callable[..., Awaitable[T]],
        items: Iterable[tuple[Any, ...]],
        *,
        ordered: bool = ...,
        star: Literal[True],
        **options: Unpack[CallOptions],
    ) -> ResultStream[T]: ...
    @overload
    def stream(
        self,
        fn: Callable[..., T],
        items: Iterable[tuple[Any, ...]],
        *,
        ordered: bool = ...,
        star: Literal[True],
        **options: Unpack[CallOptions],
    ) -> ResultStream[T]: ...
    def stream(
        self,
        fn: Callable[..., Any],
        items: Iterable[Any],
        *,
        ordered: bool = False,
        star: bool = False,
        **options: Any,
    ) -> ResultStream[Any]:
        """Results as they complete; see ``poolkit.stream``."""
        plan = self._plan(fn, items, star, ordered, options)

        def generate() -> Generator[Ok[Any] | Err, None, None]:
            yield from batch(plan)
            plan.observer.raise_hook_error(())

        return ResultStream(generate())

    @overload
    async def arun_all(
        self,
        fn: Callable[[A], Awaitable[T]],
        items: Iterable[A],
        *,
        star: Literal[False] = ...,
        **options: Unpack[CallOptions],
    ) -> Results[T]: ...
    @overload
    async def arun_all(
        self,
        fn: Callable[[A], T],
        items: Iterable[A],
        *,
        star: Literal[False] = ...,
        **options: Unpack[CallOptions],
    ) -> Results[T]: ...
    @overload
    async def arun_all(
        self,
        fn: Callable[..., Awaitable[T]],
        items: Iterable[tuple[Any, ...]],
        *,
        star: Literal[True],
        **options: Unpack[CallOptions],
    ) -> Results[T]: ...
    @overload
    async def arun_all(
        self,
        fn: Callable[..., T],
        items: Iterable[tuple[Any, ...]],
        *,
        star: Literal[True],
        **options: Unpack[CallOptions],
    ) -> Results[T]: ...
    async def arun_all(
        self, fn: Callable[..., Any], items: Iterable[Any], *, star: bool = False, **options: Any
    ) -> Results[Any]:
        """``run_all`` awaited inside a running event loop; see ``poolkit.arun_all``."""
        return await acollect(self._plan(fn, items, star, False, options))

    @overload
    def astream(
        self,
        fn: Callable[[A], Awaitable[T]],
        items: Iterable[A],
        *,
        ordered: bool = ...,
        star: Literal[False] = ...,
        **options: Unpack[CallOptions],
    ) -> AsyncResultStream[T]: ...
    @overload
    def astream(
        self,
        fn: Callable[[A], T],
        items: Iterable[A],
        *,
        ordered: bool = ...,
        star: Literal[False] = ...,
        **options: Unpack[CallOptions],
    ) -> AsyncResultStream[T]: ...
    @overload
    def astream(
        self,
        fn: Callable[..., Awaitable[T]],
        items: Iterable[tuple[Any, ...]],
        *,
        ordered: bool = ...,
        star: Literal[True],
        **options: Unpack[CallOptions],
    ) -> AsyncResultStream[T]: ...
    @overload
    def astream(
        self,
        fn: Callable[..., T],
        items: Iterable[tuple[Any, ...]],
        *,
        ordered: bool = ...,
        star: Literal[True],
        **options: Unpack[CallOptions],
    ) -> AsyncResultStream[T]: ...
    def astream(
        self,
        fn: Callable[..., Any],
        items: Iterable[Any],
        *,
        ordered: bool = False,
        star: bool = False,
        **options: Any,
    ) -> AsyncResultStream[Any]:
        """``stream`` inside a running event loop; see ``poolkit.astream``."""
        plan = self._plan(fn, items, star, ordered, options)

        async def generate() -> AsyncGenerator[Ok[Any] | Err, None]:
            box: list[Ok[Any] | Err] = []  # nothing holds a Result once it is out
            async for result in abatch(plan):
                box.append(result)
                del result
                yield box.pop()
            plan.observer.raise_hook_error(())

        return AsyncResultStream(generate())

    def submit(self, fn: Callable[..., T], item: Any, *, star: bool = False) -> Future[Ok[T] | Err]:
        """Run ``fn(item)`` on this runner's workers; the Future's result is its Result.

        The runner's own policies (``retry``, ``timeout``, ``deadline``, … given to
        ``poolkit.runner``) apply to each submit on its own; a future always completes.
        ``future.cancel()`` works until the attempt starts.
        """
        return self._submit(fn, item, star, None)

    def _submit(
        self, fn: Callable[..., Any], item: Any, star: bool, future: Future[Any] | None
    ) -> Future[Any]:
        """``submit``, completing ``future`` (a Future of the Result when None)."""
        check_callable(fn)
        submitter = self._submitter or self._open_submitter()
        # One Job for a run of submits of one function (deciding whether it is a
        # coroutine function costs more than the rest of a submit); held weakly, so
        # the runner never keeps a function alive once its submits are done.
        job = self._last_job()
        if job is None or job.fn is not fn or job.star is not star:
            job = Job(fn, star=star, timeout=submitter._policies.timeout)
            self._last_job = weakref.ref(job)
        return submitter.submit(job, item, future)  # type: ignore[no-any-return]

    def _unfinished_futures(self) -> list[Future[Any]]:
        """The futures of submits not finished yet (for ``Executor.shutdown``)."""
        submitter = self._submitter
        return [] if submitter is None else submitter.unfinished()

    def _open_submitter(self) -> Any:
        from poolkit._core._submit import Submitter

        policies = self._policies({})
        backend = self._backend_for(policies)
        with self._lock:
            self._check_open()
            if self._submitter is None:
                self._submitter = Submitter(backend, policies)
            return self._submitter

    def close(self) -> None:
        """Finish submitted work, then stop the workers. Safe to call twice."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            submitter, self._submitter = self._submitter, None
            batches = list(self._batches)
        for token in batches:
            token._cancel_because("cancelled: the runner was closed while the batch ran")
        try:
            if submitter is not None:
                submitter.close()
        except BaseException:  # interrupted (Ctrl-C) waiting for the submits: end them now
            if submitter is not None:
                submitter.abort(Cancelled("cancelled: closing the runner was interrupted"))
            raise
        finally:
            self._close_backends()

    def _close_backends(self) -> None:
        backend, self._backend = self._backend, None
        if backend is not None:
            backend.close()

    @property
    def closed(self) -> bool:
        """True once ``close()`` was called."""
        return self._closed

    def __enter__(self) -> BackendRunner:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<poolkit runner mode={self.mode!r} workers={self.workers} {state}>"

    # -- shared by every call ---------------------------------------------------------

    def _policies(self, given: dict[str, Any]) -> Policies:
        """The runner's defaults with the call's policies on top (an explicit None wins)."""
        return check_policies(**{**self._defaults, **given})

    def _plan(
        self,
        fn: Callable[..., Any],
        items: Iterable[Any],
        star: bool,
        ordered: bool,
        options: dict[str, Any],
    ) -> Plan:
        """Check a call's arguments and build what its batch needs (before any work)."""
        check_callable(fn)
        check_items(items)
        if not isinstance(star, bool):
            raise TypeError(f"star={star!r}: expected True (call fn(*item)) or False")
        unknown = sorted(set(options) - set(CALL_OPTION_NAMES))
        if unknown:
            raise TypeError(
                f"unexpected keyword argument(s) {', '.join(unknown)}; a call takes "
                f"{', '.join(CALL_OPTION_NAMES)} (mode options go to poolkit.runner)"
            )
        given = dict(options)
        progress = given.pop("progress", False)
        on_result = check_hook("on_result", given.pop("on_result", None))
        on_start = check_hook("on_start", given.pop("on_start", None))
        on_retry = check_hook("on_retry", given.pop("on_retry", None))
        policies = self._policies(given)
        backend = self._backend_for(policies)
        observer = Observer(on_result, make_progress(progress, items))
        hooks = Hooks(on_start=on_start, on_retry=observer.wrap_on_retry(on_retry))
        job = Job(fn, star=star, timeout=policies.timeout)
        # Every batch has a token of its own that close() fires, so closing the runner
        # ends the batches in flight (their unfinished items are Cancelled); the
        # caller's token, if any, fires it too.
        token = CancelToken()
        with self._lock:
            self._check_open()
            self._batches.add(token)
        release = _nothing
        caller = policies.cancel
        if caller is not None:
            release = caller._subscribe(lambda: token._cancel_because(caller.reason))
            if caller.cancelled:
                token._cancel_because(caller.reason)
        # (a sized input only: an iterator's own code runs where the engine pulls it,
        # which must stay the caller's thread)
        at_home = hasattr(items, "__len__") and engine_may_leave_caller(
            {**self._defaults, **options}
        )
        policies = dataclasses.replace(policies, cancel=token)
        return Plan(backend, job, items, policies, observer, hooks, ordered, release, at_home)


def _nothing() -> None:
    pass


def _no_job() -> Job | None:
    return None
