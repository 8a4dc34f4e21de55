"""Inboxes: where completions wait for the engine, for a blocking or an async driver."""

from __future__ import annotations

import threading
from collections import deque
from queue import Empty, SimpleQueue
from typing import TYPE_CHECKING, Any

from ._waits import queue_get

if TYPE_CHECKING:
    import asyncio

__all__ = ["AsyncInbox", "SyncInbox"]


class SyncInbox:
    """A thread-safe inbox read by a driver that blocks."""

    __slots__ = ("_queue", "put")

    def __init__(self) -> None:
        self._queue: SimpleQueue[Any] = SimpleQueue()
        self.put = self._queue.put

    def get(self, timeout: float | None) -> list[Any]:
        """Wait up to ``timeout`` seconds (None: forever) for messages; return all there are.
        (In the main thread, Ctrl-C always interrupts the wait: see ``_waits``.)"""
        queue = self._queue
        try:
            messages = [queue_get(queue, timeout)]
        except Empty:
            return []
        while not queue.empty():
            messages.append(queue.get_nowait())
        return messages


class AsyncInbox:
    """An inbox read by a coroutine on ``loop``; ``put`` is safe from any thread."""

    __slots__ = ("_items", "_loop", "_loop_thread", "_waiter")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._loop_thread = threading.get_ident()
        self._items: deque[Any] = deque()
        self._waiter: asyncio.Future[None] | None = None

    def put(self, message: Any) -> None:
        self._items.append(message)
        waiter = self._waiter
        if waiter is not None:
            if threading.get_ident() == self._loop_thread:
                _wake(waiter)
            else:
                self._loop.call_soon_threadsafe(_wake, waiter)

    async def get(self, timeout: float | None) -> list[Any]:
        """Wait up to ``timeout`` seconds (None: forever) for messages; return all there are."""
        items = self._items
        if not items:
            waiter = self._loop.create_future()
            self._waiter = waiter
            # Set the waiter before looking again: a put from another thread either sees it
            # or its item is seen here.
            if not items:
                timer = None if timeout is None else self._loop.call_later(timeout, _wake, waiter)
                try:
                    await waiter
                finally:
                    self._waiter = None
                    if timer is not None:
                        timer.cancel()
            self._waiter = None
        # popleft, not list()+clear(): another thread may append in between.
        pop = items.popleft
        return [pop() for _ in range(len(items))]


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
