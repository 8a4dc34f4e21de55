"""Async mode: coroutines on an event loop; plain functions offloaded to threads.

The loop is either the caller's running loop (``arun_all``/``astream``) or one the
backend runs in a daemon thread of its own (``run_all``/``stream``/``submit``). A
coroutine attempt can really be stopped: its task is cancelled. A plain function
runs on poolkit's daemon threads and can only be abandoned, as in thread mode.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
from collections.abc import Sequence
from typing import Any

from poolkit._core._backend import Backend
from poolkit._core._call import is_async_callable
from poolkit._core._context import ATTEMPT
from poolkit._core._task import Task

from ._thread import ThreadBackend

__all__ = ["AsyncBackend"]


class AsyncBackend(Backend):
    """Runs up to ``workers`` attempts at once on an asyncio loop."""

    def __init__(self, workers: int, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.capacity = workers
        self.default_in_flight = 2 * workers
        self._own_thread: threading.Thread | None = None
        if loop is None:
            loop = asyncio.new_event_loop()
            self._own_thread = threading.Thread(
                target=loop.run_forever, name="poolkit-async-loop", daemon=True
            )
            self._own_thread.start()
        self._loop = loop
        self._loop_thread_id = (
            self._own_thread.ident if self._own_thread is not None else threading.get_ident()
        )
        self._threads = ThreadBackend(workers, name="poolkit-async-offload")
        self._async_fn: dict[int, bool] = {}

    def start(self, tasks: Sequence[Task]) -> None:
        coroutines: list[Task] = []
        offloaded: list[Task] = []
        for task in tasks:
            key = id(task.fn)
            is_async = self._async_fn.get(key)
            if is_async is None:
                is_async = self._async_fn[key] = is_async_callable(task.fn)
            (coroutines if is_async else offloaded).append(task)
        if offloaded:
            self._threads.start(offloaded)
        if coroutines:
            if threading.get_ident() == self._loop_thread_id:
                self._spawn(coroutines)
            else:
                self._loop.call_soon_threadsafe(self._spawn, coroutines)

    def can_stop(self, task: Task) -> bool:
        return self._async_fn.get(id(task.fn), False)

    def stop(self, tasks: Sequence[Task]) -> None:
        handles = [t.ticket for t in tasks if isinstance(t.ticket, asyncio.Task)]
        self._threads.stop([t for t in tasks if not isinstance(t.ticket, asyncio.Task)])
        if not handles:
            return
        if threading.get_ident() == self._loop_thread_id:
            _cancel_all(handles)
        else:
            self._loop.call_soon_threadsafe(_cancel_all, handles)

    def started_at(self, task: Task) -> float | None:
        return task.started

    def close(self) -> None:
        self._threads.close()
        if self._own_thread is not None:
            loop = self._loop

            async def _cancel_leftovers() -> None:
                leftovers = [t for t in asyncio.all_tasks(loop) if t is not asyncio.current_task()]
                _cancel_all(leftovers)
                if leftovers:
                    await asyncio.wait(leftovers, timeout=1.0)

            try:
                asyncio.run_coroutine_threadsafe(_cancel_leftovers(), loop).result(timeout=2.0)
            except Exception:
                pass
            loop.call_soon_threadsafe(loop.stop)
            self._own_thread.join(timeout=2.0)
            if not self._own_thread.is_alive():
                loop.close()
            self._own_thread = None

    def _spawn(self, tasks: list[Task]) -> None:
        create = self._loop.create_task
        for task in tasks:
            task.ticket = create(_run(task, task.attempts))


def _cancel_all(handles: list[asyncio.Task[Any]]) -> None:
    for handle in handles:
        handle.cancel()


async def _run(task: Task, number: int) -> None:
    if not task.running:
        return
    task.started = time.monotonic()
    ATTEMPT.set(number)
    try:
        value = task.fn(task.item)
        if inspect.isawaitable(value):
            value = await value
        message = (task, number, True, value)
    except asyncio.CancelledError:
        if task.running and task.attempts == number:
            # Cancelled by someone other than poolkit: report it as the item's error.
            task.reply.put((task, number, False, asyncio.CancelledError()))
        return
    except BaseException as error:
        message = (task, number, False, error)
    task.reply.put(message)
