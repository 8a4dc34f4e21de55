"""The units of work that travel from the engine to a backend and back.

A ``Job`` is what a batch (or one ``submit``) runs: the function and how to call it,
decided once, shared by every item. A ``Task`` is one item's journey through its
attempts. A completion names the attempt it belongs to, so a late reply from an
abandoned attempt can never be taken for the current one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

from poolkit._quote import short_repr
from poolkit._results import Ok

from ._attempt import is_async_callable

if TYPE_CHECKING:
    from concurrent.futures import Future

__all__ = ["Inbox", "Job", "Message", "OkRun", "Run", "RunDone", "Task"]


class Inbox(Protocol):
    """Where backends post completions; ``put`` is safe from any thread."""

    def put(self, message: Any, /) -> None: ...


Message = tuple["Task", int, bool, Any]
"""A completion: (task, attempt number, ok, value or exception).

Backends may also post a list of messages at once, or ``None`` to wake the engine.
"""


class Job:
    """How every item of one batch is run: ``fn(item)``, or ``fn(*item)`` when ``star``.

    ``is_async`` is decided here, once per batch, never cached by the function's
    ``id()`` (which a later function may reuse). ``timeout`` is the batch's attempt
    limit, for backends that must send items one at a time to honour it exactly.

    Examples:
        >>> Job(divmod, star=True).call((7, 2))
        (3, 1)
    """

    __slots__ = ("__weakref__", "fn", "is_async", "star", "timeout")

    def __init__(
        self, fn: Callable[..., Any], *, star: bool = False, timeout: float | None = None
    ) -> None:
        self.fn = fn
        self.star = star
        self.is_async = is_async_callable(fn)
        self.timeout = timeout

    def call(self, item: Any) -> Any:
        """Call the function on one item (a coroutine comes back un-awaited)."""
        return self.fn(*item) if self.star else self.fn(item)

    def __getstate__(self) -> tuple[Any, ...]:
        return (self.fn, self.star, self.is_async, self.timeout)

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        self.fn, self.star, self.is_async, self.timeout = state

    def __repr__(self) -> str:
        return f"<Job {self.fn!r}{' star' if self.star else ''}>"


class Task:
    """One item's journey through its attempts (one object per item, reused per attempt).

    ``attempts`` is the number of the current (or last) attempt; a completion whose
    attempt number differs, or that arrives when ``running`` is False, is stale (the
    engine already gave up on that attempt) and is ignored. ``ticket`` belongs to the
    backend running the attempt; a backend must check that a ticket it reads is for
    the attempt it means (see the thread backend's ``_Slot``).
    """

    __slots__ = (
        "attempts",
        "claim",
        "dispatched",
        "first_start",
        "future",
        "index",
        "item",
        "job",
        "reply",
        "running",
        "started",
        "ticket",
    )

    def __init__(
        self,
        index: int,
        item: Any,
        job: Job,
        reply: Inbox,
        future: Future[Any] | None = None,
    ) -> None:
        self.index = index
        self.item = item
        self.job = job
        self.reply = reply
        self.future = future
        self.attempts = 0
        self.first_start = 0.0
        self.dispatched = 0.0
        self.started: float | None = None
        self.running = False
        self.ticket: Any = None
        # A submit's, when its Future must turn running only once a worker takes it (a
        # backend that queues): the backend calls it then, and skips the attempt when
        # it returns False (the Future was cancelled while queued).
        self.claim: Callable[[], bool] | None = None

    @property
    def fn(self) -> Callable[..., Any]:
        """The function this task runs."""
        return self.job.fn

    def __repr__(self) -> str:
        return f"<Task #{self.index} attempt {self.attempts} item={short_repr(self.item)}>"


class Run:
    """Consecutive input items handed to a backend at once: the engine's bulk lane.

    When no limit needs each item's own start (no timeout, no rate limit, no
    ``on_start`` hook) and a backend can take them (``Backend.runs``), the engine hands
    items over in runs instead of one ``Task`` each: item ``first + k`` of the input is
    ``items[k]``, on its first attempt. The backend reports them with ``RunDone``
    messages; an item that fails leaves the run as a ``Task`` of its own (retries,
    fail-fast and errors then act on it as on any other item).
    """

    __slots__ = ("dispatched", "first", "items", "job", "remaining", "reply")

    def __init__(self, first: int, items: list[Any], job: Job, reply: Inbox) -> None:
        self.first = first
        self.items = items
        self.job = job
        self.reply = reply
        self.remaining = len(items)  # items with no outcome yet
        self.dispatched = 0.0

    def __repr__(self) -> str:
        return f"<Run #{self.first}..{self.first + len(self.items) - 1}>"


class RunDone:
    """Outcomes of ``run.items[position : position + len(values)]``, posted by a backend.

    ``values[k]`` is the value of item ``position + k``, unless ``k`` is a key of
    ``failed`` (then the value is None and ``failed[k]`` is the exception).
    ``elapsed[k]`` is how long that item ran.
    """

    __slots__ = ("elapsed", "failed", "position", "run", "values")

    def __init__(
        self,
        run: Run,
        position: int,
        values: list[Any],
        failed: dict[int, BaseException] | None,
        elapsed: Any,
    ) -> None:
        self.run = run
        self.position = position
        self.values = values
        self.failed = failed
        self.elapsed = elapsed


class OkRun:
    """Consecutive ``Ok`` Results of first attempts, as the engine's bulk lane emits them.

    Kept in columns until someone needs the Results one by one (``results()``), so
    ``run_all`` places a whole run in its ``Results`` without an object per item.
    """

    __slots__ = ("elapsed", "first", "items", "values")

    def __init__(self, first: int, items: list[Any], values: list[Any], elapsed: Any) -> None:
        self.first = first
        self.items = items
        self.values = values
        self.elapsed = elapsed

    def results(self) -> Iterator[Ok[Any]]:
        """The run's Results, one ``Ok`` each."""
        first = self.first
        for k, value in enumerate(self.values):
            yield Ok(value, self.items[k], first + k, 1, self.elapsed[k])

    def hand_over(self) -> Iterator[Ok[Any]]:
        """``results()``, letting go of each value as its Result is yielded (``stream``:
        once the consumer drops a Result, nothing here holds its value)."""
        first, items, values, elapsed = self.first, self.items, self.values, self.elapsed
        box: list[Ok[Any]] = []
        for k in range(len(values)):
            box.append(Ok(values[k], items[k], first + k, 1, elapsed[k]))
            values[k] = None
            yield box.pop()
