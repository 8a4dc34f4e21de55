"""A backend over any ``concurrent.futures.Executor`` (the engine of ``ExecutorRunner``).

The executor is borrowed, not owned. A running call cannot be stopped through the
Executor interface, so a timeout or a stop abandons it (``TaskTimeout.stopped`` is
False); a queued one is cancelled.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Executor, Future
from typing import Any

from poolkit._core._attempt import run_attempt
from poolkit._core._backend import Backend
from poolkit._core._task import Task

__all__ = ["ExecutorBackend"]


class ExecutorBackend(Backend):
    """Hands each attempt to ``executor.submit``; at most ``workers`` at once."""

    def __init__(self, executor: Executor, workers: int) -> None:
        self._executor = executor
        self.capacity = workers
        self.default_in_flight = 2 * workers

    def start(self, tasks: Sequence[Task]) -> None:
        submit = self._executor.submit
        for task in tasks:
            number = task.attempts
            try:
                future = submit(run_attempt, task.job, task.item, number)
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
            ok, payload = future.result()
            task.reply.put((task, self.number, ok, payload))
        else:  # the executor failed the call itself (a broken pool, a pickling error)
            task.reply.put((task, self.number, False, error))
