"""The unit of work that travels from the engine to a backend and back."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Protocol

__all__ = ["Inbox", "Message", "Task"]


class Inbox(Protocol):
    """Where backends post completions; ``put`` is safe from any thread."""

    def put(self, message: Any, /) -> None: ...


Message = tuple["Task", int, bool, Any]
"""A completion: (task, attempt number, ok, value or exception).

Backends may also post a list of messages at once, or ``None`` to wake the engine.
"""


class Task:
    """One item's journey through its attempts (one object per item, reused per attempt).

    ``attempts`` is the number of the current (or last) attempt; a completion whose
    attempt number differs, or that arrives when ``running`` is False, is stale (the
    engine already gave up on that attempt) and is ignored. ``ticket`` belongs to the
    backend running the attempt.
    """

    __slots__ = (
        "attempts",
        "dispatched",
        "first_start",
        "fn",
        "future",
        "index",
        "item",
        "reply",
        "running",
        "started",
        "ticket",
    )

    def __init__(
        self,
        index: int,
        item: Any,
        fn: Callable[[Any], Any],
        reply: Inbox,
        future: Future[Any] | None = None,
    ) -> None:
        self.index = index
        self.item = item
        self.fn = fn
        self.reply = reply
        self.future = future
        self.attempts = 0
        self.first_start = 0.0
        self.dispatched = 0.0
        self.started: float | None = None
        self.running = False
        self.ticket: Any = None

    def __repr__(self) -> str:
        return f"<Task #{self.index} attempt {self.attempts} item={self.item!r}>"
