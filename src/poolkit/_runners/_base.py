"""Runners: a pool kept warm across calls, with ``run_all``, ``stream`` and ``submit``."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Generator, Iterable
from concurrent.futures import Future
from types import TracebackType
from typing import Any, Protocol, TypeVar, runtime_checkable

from poolkit._core._backend import Backend
from poolkit._core._batch import Collector, batch
from poolkit._core._engine import Hooks, Policies
from poolkit._core._observe import Observer
from poolkit._progress import make_progress
from poolkit._results import Err, Ok, Results
from poolkit._stream import ResultStream
from poolkit._validate import check_callable, check_hook, check_items, check_policies

__all__ = ["BackendRunner", "Runner"]

T = TypeVar("T")

POLICY_NAMES = (
    "retry",
    "timeout",
    "deadline",
    "fail_fast",
    "cancel",
    "rate_limit",
    "max_in_flight",
)


@runtime_checkable
class Runner(Protocol):
    """What ``mode=`` accepts besides a mode name: anything that runs batches.

    ``poolkit.runner(mode)`` and ``poolkit.ExecutorRunner(executor)`` return Runners;
    your own class is one when it has these methods (the docs' "Runners and futures"
    page shows a complete one in under 40 lines).

    Example:
        >>> import poolkit
        >>> with poolkit.runner("thread", workers=2) as r:
        ...     isinstance(r, poolkit.Runner), r.run_all(len, ["ab", "c"]).values
        (True, [2, 1])
    """

    def run_all(self, fn: Callable[[Any], T], items: Iterable[Any], **policies: Any) -> Results[T]:
        """Run ``fn`` over ``items``; one Result per item, in input order."""
        ...

    def stream(
        self, fn: Callable[[Any], T], items: Iterable[Any], **policies: Any
    ) -> ResultStream[T]:
        """Results as they complete (``ordered=True``: in input order)."""
        ...

    def submit(self, fn: Callable[[Any], T], item: Any) -> Future[Ok[T] | Err]:
        """Run ``fn(item)``; the Future's result is its Result."""
        ...

    def close(self) -> None:
        """Stop the workers; the runner cannot be used afterwards."""
        ...

    def __enter__(self) -> Any: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class BackendRunner:
    """A Runner over one of poolkit's backends (the base of every built-in runner)."""

    mode: str = "custom"
    workers: int = 1

    def __init__(self, defaults: dict[str, Any] | None = None) -> None:
        self._defaults = dict(defaults or {})
        self._lock = threading.Lock()
        self._backend: Backend | None = None
        self._closed = False
        self._submitter: Any = None

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

    def run_all(
        self,
        fn: Callable[[Any], T],
        items: Iterable[Any],
        *,
        progress: Any = False,
        on_result: Callable[[Ok[T] | Err], Any] | None = None,
        on_start: Callable[[Any, int], Any] | None = None,
        on_retry: Callable[[Any, int, BaseException, float], Any] | None = None,
        **policies: Any,
    ) -> Results[T]:
        """Run ``fn`` over ``items`` with this runner's workers; see ``poolkit.run_all``."""
        started = time.monotonic()
        backend, checked, observer, hooks = self._prepare(
            fn, items, progress, on_result, on_start, on_retry, policies
        )
        results = batch(backend, fn, items, checked, ordered=False, observer=observer, hooks=hooks)
        collector = Collector()  # results arrive as they complete; it places them by index
        add = collector.add
        try:
            for result in results:
                add(result)
        finally:
            results.close()
        final: Results[T] = Results(collector.slots, wall_time=time.monotonic() - started)
        observer.raise_hook_error(final)
        return final

    def stream(
        self,
        fn: Callable[[Any], T],
        items: Iterable[Any],
        *,
        ordered: bool = False,
        progress: Any = False,
        on_result: Callable[[Ok[T] | Err], Any] | None = None,
        on_start: Callable[[Any, int], Any] | None = None,
        on_retry: Callable[[Any, int, BaseException, float], Any] | None = None,
        **policies: Any,
    ) -> ResultStream[T]:
        """Results as they complete; see ``poolkit.stream``."""
        return self._open_stream(
            fn, items, ordered, progress, on_result, on_start, on_retry, policies
        )

    def submit(self, fn: Callable[[Any], T], item: Any) -> Future[Ok[T] | Err]:
        """Run ``fn(item)`` on this runner's workers; the Future's result is its Result.

        The runner's own policies (``retry``, ``timeout``, ``rate_limit`` given to
        ``poolkit.runner``) apply. ``future.cancel()`` works until the attempt starts.
        """
        check_callable(fn)
        with self._lock:
            self._check_open()
            if self._submitter is None:
                from poolkit._core._submit import Submitter

                policies = self._policies({})
                self._submitter = Submitter(lambda: self._backend_for(policies), policies)
            submitter = self._submitter
        return submitter.submit(fn, item)  # type: ignore[no-any-return]

    def close(self) -> None:
        """Finish submitted work, then stop the workers. Safe to call twice."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            submitter, self._submitter = self._submitter, None
        try:
            if submitter is not None:
                submitter.close()
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

    # -- shared by run_all, stream and the async calls --------------------------------

    def _policies(self, given: dict[str, Any]) -> Policies:
        unknown = sorted(set(given) - set(POLICY_NAMES))
        if unknown:
            raise TypeError(
                f"unexpected keyword argument(s) {', '.join(unknown)}; the policies are "
                f"{', '.join(POLICY_NAMES)}"
            )
        merged: dict[str, Any] = dict.fromkeys(POLICY_NAMES)
        merged["fail_fast"] = False
        merged.update(self._defaults)
        merged.update({k: v for k, v in given.items() if v is not None or k not in self._defaults})
        return check_policies(**merged)

    def _prepare(
        self,
        fn: Callable[[Any], Any],
        items: Iterable[Any],
        progress: Any,
        on_result: Any,
        on_start: Any,
        on_retry: Any,
        policies: dict[str, Any],
    ) -> tuple[Backend, Policies, Observer, Hooks]:
        """Check a call's arguments and build what its batch needs (before any work)."""
        check_callable(fn)
        check_items(items)
        checked = self._policies(policies)
        observer = Observer(check_hook("on_result", on_result), make_progress(progress, items))
        hooks = Hooks(
            on_start=check_hook("on_start", on_start),
            on_retry=observer.wrap_on_retry(check_hook("on_retry", on_retry)),
        )
        return self._backend_for(checked), checked, observer, hooks

    def _open_stream(
        self,
        fn: Callable[[Any], T],
        items: Iterable[Any],
        ordered: bool,
        progress: Any,
        on_result: Any,
        on_start: Any,
        on_retry: Any,
        policies: dict[str, Any],
    ) -> ResultStream[T]:
        backend, checked, observer, hooks = self._prepare(
            fn, items, progress, on_result, on_start, on_retry, policies
        )

        def generate() -> Generator[Ok[T] | Err, None, None]:
            yield from batch(
                backend, fn, items, checked, ordered=ordered, observer=observer, hooks=hooks
            )
            observer.raise_hook_error(())

        return ResultStream(generate())
