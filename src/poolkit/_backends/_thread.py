"""Thread mode: a pool of daemon threads fed from one queue.

A thread stuck in a call cannot be killed. When the engine gives up on such a call
(timeout, deadline, cancel) the thread is abandoned: a new thread takes its place so
the batch goes on at full width, and the abandoned one exits when its call returns.
Threads are daemons, so a stuck call never holds the interpreter's exit.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from queue import SimpleQueue

from poolkit._core._backend import Backend
from poolkit._core._call import call
from poolkit._core._context import ATTEMPT
from poolkit._core._task import Task

__all__ = ["ThreadBackend"]


class _Slot:
    """One worker thread's seat; ``abandoned`` once the engine gave up on its call."""

    __slots__ = ("abandoned",)

    def __init__(self) -> None:
        self.abandoned = False


class ThreadBackend(Backend):
    """Runs attempts on ``workers`` daemon threads, started on first use."""

    def __init__(self, workers: int, *, name: str = "poolkit-thread") -> None:
        self.capacity = workers
        self.default_in_flight = 4 * workers
        self._name = name
        self._work: SimpleQueue[Task | None] = SimpleQueue()
        self._lock = threading.Lock()
        self._threads: dict[threading.Thread, _Slot] = {}
        self._closed = False

    def start(self, tasks: Sequence[Task]) -> None:
        if len(self._threads) < self.capacity:
            self._grow()
        put = self._work.put
        for task in tasks:
            task.ticket = None
            put(task)

    def stop(self, tasks: Sequence[Task]) -> None:
        for task in tasks:
            slot = task.ticket
            if isinstance(slot, _Slot) and not slot.abandoned:
                slot.abandoned = True
                with self._lock:
                    self._spawn()
            # A task still in the queue is skipped by the thread that takes it.

    def started_at(self, task: Task) -> float | None:
        return task.started

    def close(self) -> None:
        with self._lock:
            self._closed = True
            healthy = [t for t, slot in self._threads.items() if not slot.abandoned]
            count = len(self._threads)
        for _ in range(count):
            self._work.put(None)
        for thread in healthy:
            if thread is not threading.current_thread():
                thread.join(timeout=5.0)

    def _grow(self) -> None:
        with self._lock:
            while len(self._threads) < self.capacity and not self._closed:
                self._spawn()

    def _spawn(self) -> None:
        slot = _Slot()
        thread = threading.Thread(
            target=self._work_loop,
            args=(slot,),
            name=f"{self._name}-{len(self._threads)}",
            daemon=True,
        )
        self._threads[thread] = slot
        thread.start()

    def _work_loop(self, slot: _Slot) -> None:
        get = self._work.get
        monotonic = time.monotonic
        set_attempt = ATTEMPT.set
        try:
            while not slot.abandoned:
                task = get()
                if task is None:
                    return
                number = task.attempts
                task.ticket = slot
                if not task.running:  # given up while queued
                    continue
                task.started = monotonic()
                set_attempt(number)
                try:
                    message = (task, number, True, call(task.fn, task.item))
                except BaseException as error:  # handed to the engine, which decides
                    message = (task, number, False, error)
                task.ticket = None  # done: a later stop() must not abandon this thread
                task.reply.put(message)
                del task, message
        finally:
            with self._lock:
                self._threads.pop(threading.current_thread(), None)
