"""Thread mode: a pool of daemon threads fed from one queue.

A thread stuck in a call cannot be killed. When the engine gives up on such a call
(timeout, deadline, cancel) the thread is abandoned: a new thread takes its place so
the batch goes on at full width, and the abandoned one exits when its call returns.
Threads are daemons, so a stuck call never holds the interpreter's exit.

Each thread is one worker: it runs the ``initializer`` once, in its own
``WorkerContext`` (its ``worker_id`` and ``worker_state``); a replacement takes the
id of the thread it replaces.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from queue import SimpleQueue
from typing import Any

from poolkit._core._attempt import WorkerContext, copy_error, initializer_failure, run_attempt
from poolkit._core._backend import Backend
from poolkit._core._task import Task

__all__ = ["ThreadBackend"]


class _Slot:
    """One worker thread's seat and the attempt it runs now (``task``, ``number``).

    Only its own thread writes ``task``/``number``, so ``stop()`` can tell whether the
    thread is still on the attempt being stopped: a handle belongs to one attempt.
    """

    __slots__ = ("abandoned", "context", "number", "task")

    def __init__(self, context: WorkerContext) -> None:
        self.abandoned = False
        self.context = context
        self.task: Task | None = None
        self.number = 0


class ThreadBackend(Backend):
    """Runs attempts on up to ``workers`` daemon threads, started as work arrives."""

    def __init__(
        self,
        workers: int,
        *,
        name: str = "poolkit-thread",
        initializer: Callable[..., Any] | None = None,
        initargs: Sequence[Any] = (),
        states: Callable[[int], dict[str, Any]] | None = None,
    ) -> None:
        self.capacity = workers
        self.default_in_flight = 4 * workers
        self.queues = True
        self._name = name
        self._initializer = initializer
        self._initargs = tuple(initargs)
        self._states = states  # a worker's state dict by id (default: one per thread)
        self._work: SimpleQueue[tuple[Task, int] | None] = SimpleQueue()
        self._lock = threading.Lock()
        self._threads: dict[threading.Thread, _Slot] = {}
        self._free_ids = list(range(workers - 1, -1, -1))
        self._broken: BaseException | None = None
        self._closed = False

    def start(self, tasks: Sequence[Task]) -> None:
        put = self._work.put
        for task in tasks:
            put((task, task.attempts))
        if self._free_ids:
            self._grow()

    def stop(self, tasks: Sequence[Task]) -> None:
        for task in tasks:
            slot = task.ticket
            if (
                isinstance(slot, _Slot)
                and slot.task is task
                and slot.number == task.attempts
                and not slot.abandoned
            ):
                slot.abandoned = True
                with self._lock:
                    if not self._closed:
                        self._spawn(slot.context.id)
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
        """Start threads for the work waiting in the queue, up to ``workers`` in all: a
        3-item batch starts 3 threads, not ``workers``. (An idle thread may take an item
        meanwhile, so this errs towards one thread too many, never too few.)"""
        with self._lock:
            wanted = self._work.qsize()
            while wanted > 0 and self._free_ids and not self._closed:
                self._spawn(self._free_ids.pop())
                wanted -= 1

    def _spawn(self, worker_id: int) -> None:
        state = None if self._states is None else self._states(worker_id)
        slot = _Slot(WorkerContext(worker_id, state))
        thread = threading.Thread(
            target=self._work_loop,
            args=(slot,),
            name=f"{self._name}-{worker_id}",
            daemon=True,
        )
        self._threads[thread] = slot
        thread.start()

    def _initialize(self) -> None:
        """Run the initializer in this thread; a failure breaks the backend for good."""
        if self._initializer is not None and self._broken is None:
            self._broken = initializer_failure(self._initializer, self._initargs)

    def _work_loop(self, slot: _Slot) -> None:
        slot.context.enter()
        self._initialize()
        get = self._work.get
        monotonic = time.monotonic
        try:
            while not slot.abandoned:
                work = get()
                if work is None:
                    return
                task, number = work
                if not task.running or task.attempts != number:  # given up while queued
                    continue
                slot.task, slot.number = task, number
                task.ticket = slot
                task.started = monotonic()
                if self._broken is None:
                    ok, payload = run_attempt(task.job, task.item, number)
                else:
                    ok, payload = False, copy_error(self._broken)
                slot.task = None
                task.reply.put((task, number, ok, payload))
                del task, work, payload
        finally:
            with self._lock:
                self._threads.pop(threading.current_thread(), None)


backend_class = ThreadBackend
