"""Waits in the main thread that Ctrl-C always interrupts.

Python runs a signal's handler (``KeyboardInterrupt`` for Ctrl-C) in the main thread,
between bytecodes. A blocking wait on a lock or a queue ends early only when the signal
interrupts that very wait. A signal that lands a moment before the wait blocks (the main
thread preempted between its last check and the wait, as happens on a busy machine),
or on another thread, is only noted: the main thread blocks on, and the
``KeyboardInterrupt`` waits with it until the wait ends by itself (behind a hung item:
never). So a wait in the main thread goes in slices of ``SLICE`` seconds, back in
Python between two, where a signal that came meanwhile is handled.

Other threads never run signal handlers, so they wait in one piece.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import wait as wait_futures
from queue import Empty, SimpleQueue
from typing import TypeVar

__all__ = ["SLICE", "future_result", "join", "queue_get", "wait_event"]

T = TypeVar("T")

SLICE = 0.1  # seconds: how late a Ctrl-C that no wait noticed is raised, at most


def _in_slices(wait: Callable[[float | None], bool], timeout: float | None) -> bool:
    """``wait(timeout)``, in slices of ``SLICE`` seconds in the main thread; ``wait(t)``
    waits up to ``t`` seconds (None: for ever) and tells whether its wait is over."""
    if (timeout is not None and timeout <= SLICE) or (
        threading.get_ident() != threading.main_thread().ident
    ):
        return wait(timeout)
    end = None if timeout is None else time.monotonic() + timeout
    while True:
        step = SLICE if end is None else min(SLICE, end - time.monotonic())
        if step <= 0:
            return False
        if wait(step):
            return True


def queue_get(queue: SimpleQueue[T], timeout: float | None) -> T:
    """``queue.get(timeout=timeout)``, in slices in the main thread; raises ``Empty``
    when ``timeout`` passes first.

    Example:
        >>> q = SimpleQueue(); q.put("x")
        >>> queue_get(q, None)
        'x'
    """
    got: list[T] = []

    def take(seconds: float | None) -> bool:
        try:
            got.append(queue.get(timeout=seconds))
        except Empty:
            return False
        return True

    if _in_slices(take, timeout):
        return got[0]
    raise Empty


def future_result(future: Future[T], timeout: float | None = None) -> T:
    """``future.result(timeout)``, waiting in slices in the main thread.

    Example:
        >>> done: Future[int] = Future(); done.set_result(3)
        >>> future_result(done)
        3
    """
    # (``wait``, not ``result(step)``: an item's own TimeoutError is no expiry)
    over = _in_slices(lambda seconds: bool(wait_futures((future,), seconds).done), timeout)
    return future.result(None if over else 0)


def join(thread: threading.Thread, timeout: float | None = None) -> None:
    """``thread.join(timeout)``, in slices in the main thread. (On Python 3.11, a join
    that Ctrl-C interrupts marks the thread stopped for good: never join it again.)

    Example:
        >>> ran = []
        >>> worker = threading.Thread(target=ran.append, args=(1,)); worker.start()
        >>> join(worker); ran
        [1]
    """

    def joined(seconds: float | None) -> bool:
        thread.join(seconds)
        return not thread.is_alive()

    _in_slices(joined, timeout)


def wait_event(event: threading.Event, timeout: float | None = None) -> bool:
    """``event.wait(timeout)``, in slices in the main thread.

    Example:
        >>> ready = threading.Event(); ready.set()
        >>> wait_event(ready)
        True
    """
    return _in_slices(event.wait, timeout)
