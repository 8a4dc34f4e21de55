"""Serial mode: each attempt runs in the calling thread, one at a time.

With a ``timeout`` (or a deadline or cancel token that must stop a running call) the
runner uses a one-thread ThreadBackend instead, so the limit still holds; see
``poolkit._runners._pool``. Both share one worker state (serial mode has one worker).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from poolkit._core._attempt import (
    _WORKER,
    WorkerContext,
    copy_error,
    initializer_failure,
    run_attempt,
)
from poolkit._core._backend import Backend
from poolkit._core._task import Task

__all__ = ["SerialBackend"]


class SerialBackend(Backend):
    """Runs each attempt inline, in the engine's own thread."""

    capacity = 1
    default_in_flight = 2

    def __init__(
        self,
        workers: int = 1,
        *,
        initializer: Callable[..., Any] | None = None,
        initargs: Sequence[Any] = (),
        state: dict[str, Any] | None = None,
    ) -> None:
        self._context = WorkerContext(0, state)
        self._initializer = initializer
        self._initargs = tuple(initargs)
        self._broken: BaseException | None = None

    def start(self, tasks: Sequence[Task]) -> None:
        token = _WORKER.set(self._context)
        try:
            if self._initializer is not None:
                initializer, self._initializer = self._initializer, None
                self._broken = initializer_failure(initializer, self._initargs)
            for task in tasks:
                number = task.attempts
                task.started = time.monotonic()
                if self._broken is None:
                    ok, payload = run_attempt(task.job, task.item, number)
                else:
                    ok, payload = False, copy_error(self._broken)
                task.reply.put((task, number, ok, payload))
        finally:
            _WORKER.reset(token)

    def stop(self, tasks: Sequence[Task]) -> None:
        """Nothing runs between engine steps in serial mode, so nothing to stop."""


backend_class = SerialBackend
