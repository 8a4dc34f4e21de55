"""Serial mode: each attempt runs in the calling thread, one at a time.

With a ``timeout`` (or a deadline or cancel token that must stop a running call) the
runner uses a one-thread ThreadBackend instead, so the limit still holds; see
``_runner.py``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from poolkit._core._backend import Backend
from poolkit._core._call import call
from poolkit._core._context import ATTEMPT
from poolkit._core._task import Task

__all__ = ["SerialBackend"]


class SerialBackend(Backend):
    """Runs each attempt inline, in the engine's own thread."""

    capacity = 1
    default_in_flight = 2

    def start(self, tasks: Sequence[Task]) -> None:
        for task in tasks:
            number = task.attempts
            task.started = time.monotonic()
            ATTEMPT.set(number)
            try:
                message = (task, number, True, call(task.fn, task.item))
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as error:
                message = (task, number, False, error)
            task.reply.put(message)

    def stop(self, tasks: Sequence[Task]) -> None:
        """Nothing runs between engine steps in serial mode, so nothing to stop."""
