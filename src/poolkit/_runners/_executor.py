"""``ExecutorRunner``: any ``concurrent.futures.Executor`` as a poolkit runner.

The executor is borrowed, not owned: closing the runner leaves it running. A
running call cannot be stopped through the Executor interface, so a timeout or a
stop abandons it (``TaskTimeout.stopped`` is False); a queued one is cancelled.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import Executor, Future
from typing import Any

from poolkit._core._backend import Backend
from poolkit._core._call import call
from poolkit._core._task import Task

from ._base import BackendRunner

__all__ = ["ExecutorRunner"]


class _ExecutorBackend(Backend):
    def __init__(self, executor: Executor, workers: int) -> None:
        self._executor = executor
        self.capacity = workers
        self.default_in_flight = 2 * workers

    def start(self, tasks: Sequence[Task]) -> None:
        submit = self._executor.submit
        for task in tasks:
            number = task.attempts
            try:
                future = submit(call, task.fn, task.item)
            except Exception as error:  # e.g. a broken or shut-down pool
                task.reply.put((task, number, False, error))
                continue
            task.ticket = future
            future.add_done_callback(_Reply(task, number))

    def stop(self, tasks: Sequence[Task]) -> None:
        for task in tasks:
            if isinstance(task.ticket, Future):
                task.ticket.cancel()


class _Reply:
    __slots__ = ("number", "task")

    def __init__(self, task: Task, number: int) -> None:
        self.task = task
        self.number = number

    def __call__(self, future: Future[Any]) -> None:
        task = self.task
        if future.cancelled():
            return
        error = future.exception()
        if error is None:
            task.reply.put((task, self.number, True, future.result()))
        else:
            task.reply.put((task, self.number, False, error))


class ExecutorRunner(BackendRunner):
    """Adapts any ``concurrent.futures.Executor`` (loky, a Dask client's executor, mpi4py…).

    ``workers`` is how many calls poolkit keeps in the executor at once (default: the
    executor's ``_max_workers`` when it has one, else the CPU count). poolkit's
    policies all apply; the executor is not shut down when the runner closes.

    Example:
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
        self._policies(policies)
        self._executor = executor
        width = workers or getattr(executor, "_max_workers", None) or os.cpu_count() or 1
        self.workers = int(width)

    def _make_backend(self) -> Backend:
        return _ExecutorBackend(self._executor, self.workers)
