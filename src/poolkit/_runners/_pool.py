"""``poolkit.runner(mode)``: the built-in runners, one per mode, backends loaded lazily."""

from __future__ import annotations

from typing import Any

from poolkit._core._backend import Backend
from poolkit._core._engine import Policies
from poolkit._validate import check_mode, check_workers, default_workers

from ._base import POLICY_NAMES, BackendRunner

__all__ = ["PoolRunner", "runner"]

# Options each mode takes besides ``workers`` and the policies.
_MODE_OPTIONS: dict[str, tuple[str, ...]] = {
    "serial": (),
    "thread": (),
    "async": (),
    "process": ("initializer", "initargs", "max_tasks_per_child", "start_method", "chunksize"),
    "dask": ("client", "address", "chunksize"),
}


class PoolRunner(BackendRunner):
    """The runner of a built-in mode; create it with ``poolkit.runner(mode, ...)``."""

    def __init__(self, mode: str, workers: int | None, options: dict[str, Any]) -> None:
        policies = {k: options.pop(k) for k in list(options) if k in POLICY_NAMES}
        super().__init__(policies)
        self._policies(policies)  # validate the runner's own policies now
        self.mode = mode
        self.workers = workers or default_workers(mode)
        self._options = options
        self._helper: Backend | None = None

    def _make_backend(self) -> Backend:
        mode, workers, options = self.mode, self.workers, self._options
        if mode == "serial":
            from poolkit._backends._serial import SerialBackend

            return SerialBackend()
        if mode == "thread":
            from poolkit._backends._thread import ThreadBackend

            return ThreadBackend(workers)
        if mode == "async":
            from poolkit._backends._async import AsyncBackend

            return AsyncBackend(workers, loop=options.get("loop"))
        if mode == "process":
            from poolkit._backends._process._pool import ProcessBackend

            return ProcessBackend(workers, **options)
        from poolkit._backends._dask import DaskBackend

        backend: Backend = DaskBackend(workers, **options)
        return backend

    def _backend_for(self, policies: Policies) -> Backend:
        # Serial mode runs calls inline, where nothing can interrupt them; when a limit
        # must hold during a call, it runs them on one helper thread instead.
        if self.mode == "serial" and (
            policies.timeout is not None or policies.deadline is not None or policies.cancel
        ):
            with self._lock:
                if self._closed:
                    raise RuntimeError("this serial runner is closed; create a new one")
                if self._helper is None:
                    from poolkit._backends._thread import ThreadBackend

                    self._helper = ThreadBackend(1, name="poolkit-serial-helper")
                return self._helper
        backend = self._get_backend()
        if self.mode == "dask":
            # Dask cannot tell when a task inside a chunk starts: with a timeout, send
            # items one per task so each attempt's clock starts when it is submitted.
            backend.single_items = policies.timeout is not None  # type: ignore[attr-defined]
        return backend

    def _close_backends(self) -> None:
        helper, self._helper = self._helper, None
        try:
            super()._close_backends()
        finally:
            if helper is not None:
                helper.close()


def runner(mode: str = "thread", workers: int | None = None, **options: Any) -> PoolRunner:
    """A Runner for ``mode`` that keeps its pool warm across calls.

    Use it as a context manager; ``close()`` stops its workers. ``options`` are the
    mode's own settings (process: ``initializer``, ``initargs``,
    ``max_tasks_per_child``, ``start_method``, ``chunksize``; dask: ``client``,
    ``address``) and default policies for every call (``retry``, ``timeout``,
    ``rate_limit``, …), which also apply to ``submit``.

    Example:
        >>> import poolkit
        >>> with poolkit.runner("thread", workers=4) as r:
        ...     first = r.run_all(str.upper, ["a", "b"]).values
        ...     second = r.submit(str.lower, "C").result().value
        >>> first, second
        (['A', 'B'], 'c')
    """
    mode = check_mode(mode)
    workers = check_workers(workers)
    accepted = _MODE_OPTIONS[mode]
    unknown = sorted(k for k in options if k not in accepted and k not in POLICY_NAMES)
    if unknown:
        takes = ", ".join(accepted) if accepted else "no options of its own"
        raise TypeError(
            f"mode {mode!r} got unexpected option(s) {', '.join(unknown)}; it takes {takes} "
            f"and the policies {', '.join(POLICY_NAMES)}"
        )
    if mode == "dask":
        from poolkit._backends._dask import require_dask

        require_dask()
    return PoolRunner(mode, workers, dict(options))
