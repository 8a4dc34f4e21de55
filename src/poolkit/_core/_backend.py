"""What the engine needs from a backend (thread pool, process pool, event loop, …)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

from ._task import Job, Run, Task

if TYPE_CHECKING:
    from concurrent.futures import Future

R = TypeVar("R")

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
    #: engine then hands work over in bulk, instead of one item per completion, unless
    #: a rate limit needs the engine to time each start itself.
    queues: bool = False
    #: The default bound on items in flight in the bulk lane (None: ``default_in_flight``).
    default_run_in_flight: int | None = None

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

    def takes_runs(self, job: Job) -> bool:
        """True when the backend takes Runs of ``job`` (``start_run``/``stop_runs``): the
        engine's bulk lane, used when no limit needs each item's own start (see ``Run``)."""
        return False

    def start_run(self, run: Run) -> None:
        """Begin the items of ``run``; post ``RunDone`` messages to ``run.reply``."""
        raise NotImplementedError(f"{type(self).__name__} does not take runs")

    def stop_runs(self, runs: Sequence[Run]) -> list[list[tuple[int, bool]]]:
        """Stop what is left of ``runs``, all at once: nothing more of them is posted, and
        no item of one starts while another is being stopped.

        Returns, per run, the positions in ``run.items`` with no outcome posted yet,
        each with whether it had begun running (a cut counts its attempt).
        """
        raise NotImplementedError(f"{type(self).__name__} does not take runs")

    def run_at_home(self, job: Job, make: Callable[[], Awaitable[R]]) -> Future[R] | None:
        """Run ``make()`` on the event loop where ``job``'s attempts run, when the backend
        has one of its own in a thread of its own; None (``make`` not called) otherwise.

        A driver run there wakes no other thread per completion. ``close`` lets what
        runs there finish rather than cancelling it."""
        return None

    def close(self) -> None:  # noqa: B027 - optional hook, most backends have nothing to release
        """Release workers. Calls stuck in threads are abandoned, never waited for."""
