"""Async mode: coroutines on an event loop; plain functions offloaded to threads.

The loop is either the caller's running loop (``arun_all``/``astream``) or one the
backend runs in a daemon thread of its own (``run_all``/``stream``/``submit``). A
coroutine attempt can really be stopped: its task is cancelled. A plain function
runs on poolkit's daemon threads and can only be abandoned, as in thread mode.
Whether a batch's function is a coroutine function is decided once, in its ``Job``.

The loop is one worker for ``worker_state()`` and the ``initializer`` (run once, on
the loop, before the first attempt); ``worker_id()`` is the concurrency slot
(0 … workers-1) the attempt holds.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from poolkit._core._attempt import (
    WorkerContext,
    copy_error,
    initializer_failure,
    run_attempt_async,
)
from poolkit._core._backend import Backend
from poolkit._core._task import Task

from ._thread import ThreadBackend

__all__ = ["AsyncBackend"]


class AsyncBackend(Backend):
    """Runs up to ``workers`` attempts at once on an asyncio loop."""

    def __init__(
        self,
        workers: int,
        *,
        loop: asyncio.AbstractEventLoop | None = None,
        initializer: Callable[..., Any] | None = None,
        initargs: Sequence[Any] = (),
    ) -> None:
        self.capacity = workers
        self.default_in_flight = 2 * workers
        self._own_thread: threading.Thread | None = None
        if loop is None:
            loop = asyncio.new_event_loop()
            self._own_thread = threading.Thread(
                target=_run_loop, args=(loop,), name="poolkit-async-loop", daemon=True
            )
            self._own_thread.start()
            loop.call_soon_threadsafe(self._tick)
        self._loop = loop
        self._loop_thread_id = (
            self._own_thread.ident if self._own_thread is not None else threading.get_ident()
        )
        self._last_tick = time.monotonic()  # the loop's heartbeat: is it free to cancel?
        self._state: dict[str, Any] = {}
        self._free_ids = list(range(workers - 1, -1, -1))
        self._initializer = initializer
        self._initargs = tuple(initargs)
        self._broken: BaseException | None = None
        self._threads = ThreadBackend(
            workers, name="poolkit-async-offload", states=lambda _: self._state
        )

    def start(self, tasks: Sequence[Task]) -> None:
        if self._initializer is not None:
            self._initialize()
        coroutines = [t for t in tasks if t.job.is_async]
        if len(coroutines) < len(tasks):
            plain = [t for t in tasks if not t.job.is_async]
            if self._broken is not None:  # the loop's initializer failed: nothing can run
                for task in plain:
                    task.reply.put((task, task.attempts, False, copy_error(self._broken)))
            else:
                self._threads.start(plain)
        if coroutines:
            if threading.get_ident() == self._loop_thread_id:
                self._spawn(coroutines)
            else:
                self._loop.call_soon_threadsafe(self._spawn, coroutines)

    def can_stop(self, task: Task) -> bool:
        """A coroutine can be cancelled, unless it blocks its loop (then it is abandoned)."""
        if not task.job.is_async:
            return False
        return self._own_thread is None or time.monotonic() - self._last_tick < _BLOCKED

    def _tick(self) -> None:
        self._last_tick = time.monotonic()
        self._loop.call_later(_TICK, self._tick)

    def stop(self, tasks: Sequence[Task]) -> None:
        handles = [t.ticket for t in tasks if t.job.is_async and t.ticket is not None]
        self._threads.stop([t for t in tasks if not t.job.is_async])
        if not handles:
            return
        if threading.get_ident() == self._loop_thread_id:
            _cancel_all(handles)
        else:
            self._loop.call_soon_threadsafe(_cancel_all, handles)

    def started_at(self, task: Task) -> float | None:
        return task.started

    def close(self) -> None:
        """Cancel what still runs and stop the loop, never waiting long on a blocked one.

        A coroutine that blocks the loop (``time.sleep`` in an ``async def``) or swallows
        its cancellation cannot be stopped: the loop's daemon thread is left to finish
        it and then closes the loop itself; ``close`` returns at once either way.
        """
        self._threads.close()
        if self._own_thread is not None:
            self._loop.call_soon_threadsafe(_shut_down, self._loop)
            self._own_thread.join(timeout=0.25)
            self._own_thread = None

    def _initialize(self) -> None:
        """Run the initializer once per loop, on the loop's thread, before any attempt."""
        initializer, self._initializer = self._initializer, None
        assert initializer is not None

        done = threading.Event()

        def run() -> None:
            WorkerContext(0, self._state).enter()
            self._broken = initializer_failure(initializer, self._initargs)
            done.set()

        if threading.get_ident() == self._loop_thread_id:
            run()
        else:
            self._loop.call_soon_threadsafe(run)
            done.wait()

    def _spawn(self, tasks: list[Task]) -> None:
        create = self._loop.create_task
        for task in tasks:
            number = task.attempts
            handle = create(self._run(task, number))
            if task.attempts == number:  # the ticket is this attempt's, never a later one's
                task.ticket = handle

    async def _run(self, task: Task, number: int) -> None:
        if not task.running or task.attempts != number:
            return
        worker = self._free_ids.pop() if self._free_ids else 0
        WorkerContext(worker, self._state).enter()  # this asyncio task's own context
        task.started = time.monotonic()
        try:
            if self._broken is not None:
                ok, payload = False, copy_error(self._broken)
            else:
                ok, payload = await run_attempt_async(task.job, task.item, number)
        except asyncio.CancelledError:
            if task.running and task.attempts == number:
                # Cancelled by someone other than poolkit: report it as the item's error.
                task.reply.put((task, number, False, asyncio.CancelledError()))
            return
        finally:
            self._free_ids.append(worker)
        task.reply.put((task, number, ok, payload))


_TICK = 0.05  # the heartbeat of poolkit's own loop
_BLOCKED = 0.25  # a loop silent for this long is blocked by a call: its tasks cannot be cancelled


def _run_loop(loop: asyncio.AbstractEventLoop) -> None:
    """The loop thread: run until stopped, then close the loop from this same thread."""
    try:
        loop.run_forever()
    finally:
        loop.close()


def _shut_down(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel every task; stop the loop when the last one has ended (at once when none)."""
    leftovers = [t for t in asyncio.all_tasks(loop) if not t.done()]
    if not leftovers:
        loop.stop()
        return
    remaining = len(leftovers)

    def one_done(_: object) -> None:
        nonlocal remaining
        remaining -= 1
        if remaining == 0:
            loop.stop()

    for task in leftovers:
        task.add_done_callback(one_done)
        task.cancel()


def _cancel_all(handles: list[asyncio.Task[Any]]) -> None:
    for handle in handles:
        handle.cancel()


backend_class = AsyncBackend
