"""What the process pool runs: units of work, and the pieces they are sent in.

The engine hands the pool either a ``Run`` (consecutive input items, the bulk lane)
or a list of ``Task`` attempts. Either becomes one ``Work``: a list of items with one
function, and a way to post outcomes back by position. A ``Piece`` is positions
``lo … hi-1`` of one Work, sent to one worker as one chunk; the pool splits Works into
pieces as workers are ready, and splits a piece again when it must (a crash in its
middle, an item that cannot be loaded).
"""

from __future__ import annotations

from array import array
from typing import TYPE_CHECKING, Any

from poolkit._core._task import Job, Run, RunDone, Task

if TYPE_CHECKING:
    from ._buffers import Segment
    from ._handle import WorkerHandle

__all__ = ["FINISHED", "Piece", "RunWork", "TaskWork", "Work"]

FINISHED = object()  # a task's ticket once its attempt's outcome was posted


class Work:
    """Items run by one Job, with their attempt numbers, posting outcomes by position."""

    __slots__ = ("items", "job")

    def __init__(self, job: Job, items: list[Any]) -> None:
        self.job = job
        self.items = items

    def numbers(self, lo: int, hi: int) -> int | list[int]:
        """The attempt numbers of positions ``lo … hi-1`` (an int when all are the same)."""
        return 1

    def index(self, position: int) -> int:
        """The input index of the item at ``position``."""
        raise NotImplementedError

    def live(self, lo: int, hi: int) -> bool:
        """True when some position in ``lo … hi-1`` still wants its outcome."""
        raise NotImplementedError

    def pieces(self, lo: int, hi: int, *, alone: bool = False) -> list[Piece]:
        """Pieces for the positions in ``lo … hi-1`` that still want their outcome."""
        return [Piece(self, lo, hi, alone=alone)] if lo < hi and self.live(lo, hi) else []

    def post(
        self,
        position: int,
        values: list[Any],
        failed: dict[int, BaseException] | None,
        began: array[float],
        ran: array[float],
    ) -> None:
        """Outcomes of positions ``position …``: ``values[k]`` or ``failed[k]``; each item
        began at ``began[k]`` (the system-wide monotonic clock) and ran ``ran[k]`` s."""
        raise NotImplementedError

    def fail(self, position: int, error: BaseException) -> None:
        """One position's outcome is ``error``."""
        self.post(position, [None], {0: error}, array("d", [0.0]), array("d", [0.0]))


class RunWork(Work):
    """A Run from the engine's bulk lane: every item on its first attempt."""

    __slots__ = ("run", "stopped")

    def __init__(self, run: Run) -> None:
        super().__init__(run.job, run.items)
        self.run = run
        self.stopped = False

    def index(self, position: int) -> int:
        return self.run.first + position

    def live(self, lo: int, hi: int) -> bool:
        return not self.stopped

    def post(
        self,
        position: int,
        values: list[Any],
        failed: dict[int, BaseException] | None,
        began: array[float],
        ran: array[float],
    ) -> None:
        if not self.stopped:
            self.run.reply.put(RunDone(self.run, position, values, failed, ran))


class TaskWork(Work):
    """Attempts of Tasks handed over one by one (the engine's per-item lane)."""

    __slots__ = ("_numbers", "reply", "settled", "tasks")

    def __init__(self, tasks: list[Task]) -> None:
        super().__init__(tasks[0].job, [t.item for t in tasks])
        self.tasks = tasks
        self._numbers = [t.attempts for t in tasks]
        self.reply = tasks[0].reply
        self.settled: set[int] = set()  # positions stopped, or posted already

    def numbers(self, lo: int, hi: int) -> int | list[int]:
        part = self._numbers[lo:hi]
        return part[0] if part.count(part[0]) == len(part) else part

    def index(self, position: int) -> int:
        return self.tasks[position].index

    def live(self, lo: int, hi: int) -> bool:
        settled = self.settled
        return not settled or any(p not in settled for p in range(lo, hi))

    def pieces(self, lo: int, hi: int, *, alone: bool = False) -> list[Piece]:
        settled = self.settled
        found: list[Piece] = []
        start = None
        for position in range(lo, hi + 1):
            wanted = position < hi and position not in settled
            if wanted and start is None:
                start = position
            elif not wanted and start is not None:
                found.append(Piece(self, start, position, alone=alone))
                start = None
        return found

    def post(
        self,
        position: int,
        values: list[Any],
        failed: dict[int, BaseException] | None,
        began: array[float],
        ran: array[float],
    ) -> None:
        messages = []
        for k, value in enumerate(values):
            at = position + k
            if at in self.settled:
                continue
            self.settled.add(at)
            task = self.tasks[at]
            task.started = began[k] or None
            task.ticket = FINISHED  # no Task <-> Work cycle outlives the attempt
            error = failed.get(k) if failed else None
            if error is None:
                messages.append((task, self._numbers[at], True, value))
            else:
                messages.append((task, self._numbers[at], False, error))
        if messages:
            self.reply.put(messages)


class Piece:
    """Positions ``lo … hi-1`` of ``work``, sent (or to be sent) to a worker as one chunk.

    ``seq`` names it on the wire (0 until sent). Outcomes come back in order, so
    ``done`` (how many from ``lo`` have been received) says which are known.
    """

    __slots__ = ("alone", "done", "hi", "lo", "segment", "seq", "work", "worker")

    def __init__(self, work: Work, lo: int, hi: int, *, alone: bool = False) -> None:
        self.work = work
        self.lo = lo
        self.hi = hi
        self.seq = 0
        self.done = 0
        self.worker: WorkerHandle | None = None
        self.alone = alone  # sent on its own (its chunk could not be loaded)
        self.segment: Segment | None = None  # shared memory holding its large buffers

    def __len__(self) -> int:
        return self.hi - self.lo

    def holds(self, work: Work, position: int) -> bool:
        """True when this piece is ``work``'s and ``position`` is in it, not yet received."""
        return self.work is work and self.lo + self.done <= position < self.hi

    def __repr__(self) -> str:
        return f"<Piece #{self.seq} {self.lo}..{self.hi} done={self.done}>"
