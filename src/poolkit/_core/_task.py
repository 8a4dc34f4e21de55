"""The units of work that travel from the engine to a backend and back.

A ``Job`` is what a batch (or one ``submit``) runs: the function and how to call it,
decided once, shared by every item. A ``Task`` is one item's journey through its
attempts. A completion names the attempt it belongs to, so a late reply from an
abandoned attempt can never be taken for the current one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from ._attempt import is_async_callable

if TYPE_CHECKING:
    from concurrent.futures import Future

__all__ = ["Inbox", "Job", "Message", "Task"]


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

    @property
    def fn(self) -> Callable[..., Any]:
        """The function this task runs."""
        return self.job.fn

    def __repr__(self) -> str:
        return f"<Task #{self.index} attempt {self.attempts} item={self.item!r}>"
