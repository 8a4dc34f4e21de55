"""``poolkit.runner(mode)``: the built-in runners, one per mode, backends loaded by name."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, overload

from poolkit._backends import load
from poolkit._core._backend import Backend
from poolkit._options import (
    AnyRunnerOptions,
    AsyncOptions,
    DaskOptions,
    ProcessOptions,
    RunnerOptions,
    check_mode,
    check_mode_options,
    check_workers,
    default_workers,
)
from poolkit._policies import POLICY_NAMES, Policies

from ._base import BackendRunner

if TYPE_CHECKING:
    import asyncio

    from typing_extensions import Unpack

__all__ = ["PoolRunner", "one_call_runner", "runner"]


class PoolRunner(BackendRunner):
    """The runner of a built-in mode; create it with ``poolkit.runner(mode, ...)``."""

    def __init__(
        self,
        mode: str,
        workers: int | None,
        options: dict[str, Any],
        *,
        loop: asyncio.AbstractEventLoop | None = None,
        one_call: bool = False,
    ) -> None:
        options = dict(options)
        policies = {k: options.pop(k) for k in list(options) if k in POLICY_NAMES}
        check_mode_options(mode, options)
        if mode == "process" and options.get("initializer") is not None:
            # what cannot reach the workers is an error now, not at the first batch
            from poolkit._backends._pickling import pickle_initializer

            pickle_initializer(options["initializer"], tuple(options.get("initargs", ())))
        super().__init__(policies)
        self.mode = mode
        self._workers_given = workers is not None
        self.workers = workers or default_workers(mode)
        self._options = options
        self._loop = loop  # async mode inside arun_all/astream: the caller's running loop
        self._one_call = one_call  # made, used once and closed by run_all or stream
        self._helper: Backend | None = None
        self._serial_state: dict[str, Any] = {}

    def _make_backend(self) -> Backend:
        backend_class = load(self.mode)
        extra: dict[str, Any] = {}
        if self.mode == "async":
            extra["loop"] = self._loop
            extra["one_call"] = self._one_call
        elif self.mode == "serial":
            extra["state"] = self._serial_state
        elif self.mode == "dask":
            extra["follow_cluster"] = not self._workers_given
        backend: Backend = backend_class(self.workers, **self._options, **extra)
        return backend

    def _backend_for(self, policies: Policies) -> Backend:
        # Serial mode runs calls inline, where nothing can interrupt them; when a limit
        # must hold during a call, it runs them on one helper thread instead (same
        # worker state, so serial mode still has one worker).
        if self.mode == "serial" and (
            policies.timeout is not None or policies.deadline is not None or policies.cancel
        ):
            with self._lock:
                self._check_open()
                if self._helper is None:
                    state = self._serial_state
                    self._helper = load("thread")(
                        1,
                        name="poolkit-serial-helper",
                        states=lambda _: state,
                        **self._options,
                    )
                return self._helper
        return self._get_backend()

    def _close_backends(self) -> None:
        helper, self._helper = self._helper, None
        try:
            super()._close_backends()
        finally:
            if helper is not None:
                helper.close()


@overload
def runner(
    mode: Literal["process"], workers: int | None = ..., **options: Unpack[ProcessOptions]
) -> PoolRunner: ...
@overload
def runner(
    mode: Literal["dask"], workers: int | None = ..., **options: Unpack[DaskOptions]
) -> PoolRunner: ...
@overload
def runner(
    mode: Literal["async"], workers: int | None = ..., **options: Unpack[AsyncOptions]
) -> PoolRunner: ...
@overload
def runner(
    mode: Literal["serial", "thread"] = ...,
    workers: int | None = ...,
    **options: Unpack[RunnerOptions],
) -> PoolRunner: ...
@overload
def runner(
    mode: str, workers: int | None = ..., **options: Unpack[AnyRunnerOptions]
) -> PoolRunner: ...
def runner(mode: str = "thread", workers: int | None = None, **options: Any) -> PoolRunner:
    """A Runner for ``mode`` that keeps its pool warm across calls.

    Use it as a context manager; ``close()`` stops its workers. ``options`` are the
    mode's own settings (every mode: ``initializer``, ``initargs``; process:
    ``max_tasks_per_child``, ``start_method``, ``chunksize``, ``initializer_timeout``;
    dask: ``client``, ``address``, ``security``, ``chunksize``, ``resources``,
    ``placement``, ``priority``) and default policies for every call (``retry``,
    ``timeout``, ``rate_limit``, …), which also apply to ``submit``. Everything is
    checked here, before any worker starts.

    Examples:
        >>> import poolkit
        >>> with poolkit.runner("thread", workers=4) as r:
        ...     first = r.run_all(str.upper, ["a", "b"]).values
        ...     second = r.submit(str.lower, "C").result().value
        >>> first, second
        (['A', 'B'], 'c')
    """
    return _build(mode, workers, options, one_call=False)


def one_call_runner(mode: str, workers: int | None, options: dict[str, Any]) -> PoolRunner:
    """The runner that ``run_all`` or ``stream`` makes, uses for one call and closes.

    Nobody else holds it, so async mode may run its loop in the caller's thread while
    the call waits (``AsyncBackend(one_call=True)``): no loop thread to start and join.
    """
    return _build(mode, workers, options, one_call=True)


def _build(mode: str, workers: int | None, options: dict[str, Any], one_call: bool) -> PoolRunner:
    mode = check_mode(mode)
    workers = check_workers(workers)
    if mode == "dask":
        from poolkit._backends._dask import require_dask

        require_dask()
    return PoolRunner(mode, workers, dict(options), one_call=one_call)
