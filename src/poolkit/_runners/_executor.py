"""``ExecutorRunner``: any ``concurrent.futures.Executor`` as a poolkit runner."""

from __future__ import annotations

import os
from concurrent.futures import Executor
from typing import Any

from poolkit._backends._executor import ExecutorBackend
from poolkit._core._backend import Backend

from ._base import BackendRunner

__all__ = ["ExecutorRunner"]


class ExecutorRunner(BackendRunner):
    """Adapts any ``concurrent.futures.Executor`` (loky, a Dask client's executor, mpi4py…).

    ``workers`` is how many calls poolkit keeps in the executor at once (default: the
    executor's ``_max_workers`` when it has one, else the CPU count). poolkit's
    policies all apply; the executor is borrowed, not owned: it is not shut down when
    the runner closes. A running call cannot be stopped through the Executor
    interface, so a timeout abandons it (``TaskTimeout.stopped`` is False).

    Examples:
        >>> from concurrent.futures import ThreadPoolExecutor
        >>> import poolkit
        >>> with ThreadPoolExecutor(2) as pool, poolkit.ExecutorRunner(pool) as r:
        ...     r.run_all(abs, [-1, -2]).values
        [1, 2]
    """

    mode = "executor"

    def __init__(self, executor: Executor, *, workers: int | None = None, **policies: Any) -> None:
        if not isinstance(executor, Executor):
            raise TypeError(f"ExecutorRunner({executor!r}): expected a concurrent.futures.Executor")
        super().__init__(policies)
        self._executor = executor
        width = workers or getattr(executor, "_max_workers", None) or os.cpu_count() or 1
        self.workers = int(width)

    def _make_backend(self) -> Backend:
        return ExecutorBackend(self._executor, self.workers)
