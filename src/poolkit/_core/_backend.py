"""What the engine needs from a backend (thread pool, process pool, event loop, …)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

from ._task import Task

__all__ = ["Backend"]


class Backend(ABC):
    """Runs attempts and posts ``(task, number, ok, payload)`` to ``task.reply``.

    The engine calls ``start``, ``stop`` and ``started_at`` from its own thread only;
    a backend may post completions from any thread.
    """

    #: How many attempts the engine may hand over at once.
    capacity: int = 1
    #: Default bound on items taken from the input and not yet finished.
    default_in_flight: int = 2
    #: True when attempts handed over beyond ``capacity`` simply wait in the backend's
    #: queue, each starting when a worker frees up (``started_at`` tells when). The
    #: engine then hands work over in bulk when no limit needs exact start times
    #: (no timeout, no rate limit), instead of one item per completion.
    queues: bool = False

    @abstractmethod
    def start(self, tasks: Sequence[Task]) -> None:
        """Begin one attempt of each task (``task.attempts`` is its number). Never blocks."""

    @abstractmethod
    def stop(self, tasks: Sequence[Task]) -> None:
        """Stop (or abandon) these attempts; their completions, if any, are ignored."""

    def can_stop(self, task: Task) -> bool:
        """True when ``stop`` really ends the running call (not just abandons it)."""
        return False

    def started_at(self, task: Task) -> float | None:
        """When the attempt began running, or None while it is still queued."""
        return task.dispatched

    def halt(self, tasks: Sequence[Task]) -> None:  # noqa: B027 - optional hook
        """A cut is coming: start nothing more for these attempts' workers (before ``stop``)."""

    def has_started(self, task: Task) -> bool:
        """True when the attempt began running at some point (a cut counts it as run)."""
        return self.started_at(task) is not None

    def close(self) -> None:  # noqa: B027 - optional hook, most backends have nothing to release
        """Release workers. Calls stuck in threads are abandoned, never waited for."""
