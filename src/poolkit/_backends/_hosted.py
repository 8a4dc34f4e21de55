"""Running a coroutine on an event loop in the caller's thread, with Ctrl-C that ends it.

A one-call ``run_all`` in async mode runs poolkit's loop in the caller's thread (no
loop thread to start and join). Python's own Ctrl-C, a ``KeyboardInterrupt`` raised
wherever the main thread happens to be, could land in the middle of poolkit's or
asyncio's bookkeeping; ``asyncio.Runner`` instead cancels its main task, which a
coroutine that blocks the loop never lets happen, so it takes a second Ctrl-C.
``run_hosted`` does both, by where the signal lands.

While it runs, the signal also wakes the loop (``signal.set_wakeup_fd``): a Ctrl-C
that lands on another thread, or a moment before the loop blocks in ``select``,
interrupts no wait, and would wait with the loop for its next timer (see
``poolkit._core._waits``).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import threading
from collections.abc import Coroutine
from types import FrameType
from typing import Any, TypeVar

__all__ = ["run_hosted"]

R = TypeVar("R")


def run_hosted(loop: asyncio.AbstractEventLoop, main: Coroutine[Any, Any, R]) -> R:
    """Run ``main`` on ``loop`` in this thread until it ends; return its result.

    When Ctrl-C comes (main thread, Python's default SIGINT handler in place) while
    only the loop's machinery runs (waiting for I/O, asyncio's or poolkit's own code),
    ``main`` is cancelled, so it ends its batch cleanly, and then ``KeyboardInterrupt``
    is raised here. When it comes while user code runs on the loop (a coroutine that
    blocks it, ``time.sleep`` in an ``async def``), it is raised in that code, as
    Python would raise it: the lane running it reports it and the engine stops the
    batch and re-raises it. A second Ctrl-C is raised wherever it lands.

    Example:
        >>> import asyncio
        >>> loop = asyncio.new_event_loop()
        >>> async def answer():
        ...     await asyncio.sleep(0)
        ...     return 42
        >>> run_hosted(loop, answer())
        42
        >>> loop.close()
    """
    task = loop.create_task(main)
    try:
        if (
            threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler
        ):
            return loop.run_until_complete(task)  # Ctrl-C is someone else's business here
        return _run_interruptible(loop, task)
    finally:
        if task.done() and not task.cancelled():
            task.exception()  # raised from here: never logged as "never retrieved"


def _run_interruptible(loop: asyncio.AbstractEventLoop, task: asyncio.Task[R]) -> R:
    here = sys._getframe()
    interrupted = False

    def on_sigint(signum: int, frame: FrameType | None) -> None:
        nonlocal interrupted
        if interrupted or _user_code_runs(frame, here):
            raise KeyboardInterrupt
        interrupted = True
        loop.call_soon_threadsafe(task.cancel)

    signal.signal(signal.SIGINT, on_sigint)
    wake_r, wake_w = socket.socketpair()
    try:
        wake_r.setblocking(False)
        wake_w.setblocking(False)
        loop.add_reader(wake_r.fileno(), _drain, wake_r)
        previous = signal.set_wakeup_fd(wake_w.fileno(), warn_on_full_buffer=False)
        try:
            return loop.run_until_complete(task)
        finally:
            signal.set_wakeup_fd(previous)
            loop.remove_reader(wake_r.fileno())
    finally:
        wake_r.close()
        wake_w.close()
        signal.signal(signal.SIGINT, signal.default_int_handler)
        if interrupted:
            raise KeyboardInterrupt from None  # (in place of main's CancelledError)


def _drain(wake_r: socket.socket) -> None:
    """Read what signals wrote (their handler runs in Python, not from here)."""
    try:
        while wake_r.recv(4096):
            pass
    except (BlockingIOError, InterruptedError):
        pass


def _user_code_runs(frame: FrameType | None, stop: FrameType) -> bool:
    """True when a frame between ``frame`` and ``stop`` (the loop's runner) is user
    code: neither poolkit's (its ``testing`` kit, which runs faults given to it, counts
    as user code) nor the standard library's (asyncio, selectors, weakref sets, …)."""
    while frame is not None and frame is not stop:
        name = frame.f_code.co_filename
        if name.startswith(_POOLKIT):
            if name.startswith(_TESTING):
                return True
        elif not name.startswith(_STDLIB) or _INSTALLED in name:
            return True  # (a system Python keeps site-packages under the stdlib's dir)
        frame = frame.f_back
    return frame is None  # not under the loop at all: Python's own behaviour


_POOLKIT = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
_TESTING = os.path.join(_POOLKIT, "testing") + os.sep
_STDLIB = os.path.dirname(os.path.abspath(os.__file__)) + os.sep
_INSTALLED = "-packages" + os.sep
