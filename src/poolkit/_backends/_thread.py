"""Thread mode: a pool of daemon threads fed from one queue.

A thread stuck in a call cannot be killed. When the engine gives up on such a call
(timeout, deadline, cancel) the thread is abandoned: a new thread takes its place so
the batch goes on at full width, and the abandoned one exits when its call returns.
Threads are daemons, so a stuck call never holds the interpreter's exit.

Each thread is one worker: it runs the ``initializer`` once, in its own
``WorkerContext`` (its ``worker_id`` and ``worker_state``); a replacement takes the
id of the thread it replaces.

Runs (the engine's bulk lane) are shared by the threads through a ``_Cursor``: each
thread claims the next block of consecutive items, runs them and posts one
``RunDone`` for the block. A block holds about ``_BLOCK_SECONDS`` of work by the
measured duration per item (one item until measured, so slow items go one at a time),
never more than a fair share of what is left.
"""

from __future__ import annotations

import threading
import time
from array import array
from collections.abc import Callable, Sequence
from queue import Empty, SimpleQueue
from typing import Any

from poolkit._core._attempt import WorkerContext, copy_error, initializer_failure, run_attempt
from poolkit._core._backend import Backend
from poolkit._core._task import Job, Run, RunDone, Task
from poolkit._core._waits import join
from poolkit._errors import Cancelled

__all__ = ["ThreadBackend"]

_BLOCK_SECONDS = 0.001
_CANCELLED_QUEUED = "cancelled by Future.cancel() before a thread took it"
_CLOSE_WAIT = 5.0  # close waits this long, at most, for its threads (one in a call) to end
_FLUSH_SECONDS = 0.05  # a finished result waits at most about this for its block
_LARGEST_BLOCK = 256


class _Slot:
    """One worker thread's seat and the attempt it runs now (``task``, ``number``).

    Only its own thread writes ``task``/``number``, so ``stop()`` can tell whether the
    thread is still on the attempt being stopped: a handle belongs to one attempt.
    """

    __slots__ = ("abandoned", "at", "block", "context", "number", "task")

    def __init__(self, context: WorkerContext) -> None:
        self.abandoned = False
        self.context = context
        self.task: Task | None = None
        self.number = 0
        # in a run: the block it claimed and the position it is on
        self.block: _Block | None = None
        self.at = -1


class _Block:
    """Consecutive items of a run claimed by one thread, and their outcomes so far.

    The thread appends ``elapsed`` and ``failed`` before ``values``: whoever reads
    ``len(values)`` (a stop) finds the other two complete up to there.
    """

    __slots__ = ("cursor", "elapsed", "failed", "hi", "lo", "sent", "since", "values")

    def __init__(self, cursor: _Cursor, lo: int, hi: int, since: float) -> None:
        self.cursor = cursor
        self.lo = lo
        self.hi = hi
        self.values: list[Any] = []
        self.elapsed = array("d")  # as Results keeps it: placed without a conversion
        self.failed: dict[int, BaseException] = {}
        self.sent = 0  # outcomes already posted (by the flusher, while the block runs)
        self.since = since  # when it was claimed, or last flushed

    def take(self, count: int | None = None) -> RunDone | None:
        """(Lock held.) Its outcomes not posted yet, up to the first ``count`` (all so
        far when None), as one message; they count as posted from now on."""
        n = len(self.values) if count is None else count
        s = self.sent
        if n <= s:
            return None
        failed = {k - s: e for k, e in self.failed.items() if s <= k < n} or None
        self.sent = n
        values = self.values[s:n]
        self.values[s:n] = [None] * (n - s)  # posted: the Results hold them from now on
        return RunDone(self.cursor.run, self.lo + s, values, failed, self.elapsed[s:n])


class _Cursor:
    """A run shared by the threads: the next position to claim, and the measured
    seconds per item (None until a block comes back)."""

    __slots__ = ("next", "posted", "run", "seconds", "stopped")

    def __init__(self, run: Run) -> None:
        self.run = run
        self.next = 0
        self.posted = 0
        self.seconds: float | None = None
        self.stopped = False


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
        # (the per-item lane: a generator, a timeout. With 4 items per thread in flight
        # the engine woke to refill after every few completions; 16 halves the cost of a
        # trivial item, and stays a small, flat bound on what is taken ahead)
        self.default_in_flight = 16 * workers
        self.queues = True
        self._name = name
        self._initializer = initializer
        self._initargs = tuple(initargs)
        self._states = states  # a worker's state dict by id (default: one per thread)
        self._workers = workers
        self.default_run_in_flight = 256 * workers
        self._work: SimpleQueue[tuple[Task, int] | _Cursor | None] = SimpleQueue()
        self._cursors: dict[Run, _Cursor] = {}
        self._lock = threading.Lock()
        self._threads: dict[threading.Thread, _Slot] = {}
        self._free_ids = list(range(workers - 1, -1, -1))
        # a token per time a thread went to wait for work; ``_grow`` takes one per piece
        # of work before it starts a thread (more tokens than idle threads only after
        # one exits, when no work comes any more)
        self._idle = threading.Semaphore(0)
        self._broken: BaseException | None = None
        self._closed = False
        self._flusher: threading.Thread | None = None  # started with the first run
        self._serving = threading.Event()  # set while runs may be served
        self._stopping = threading.Event()  # set by close

    def start(self, tasks: Sequence[Task]) -> None:
        put = self._work.put
        for task in tasks:
            put((task, task.attempts))
        self._grow(len(tasks))

    def takes_runs(self, job: Job) -> bool:
        return True

    def start_run(self, run: Run) -> None:
        cursor = _Cursor(run)
        with self._lock:
            self._cursors[run] = cursor
            if self._flusher is None and not self._closed:
                self._flusher = threading.Thread(
                    target=self._flush_loop, name=f"poolkit-flush ({self._name})", daemon=True
                )
                self._flusher.start()
            self._serving.set()
        # one handle per thread that could share it: each claims blocks until none is left
        handles = min(self._workers, len(run.items))
        for _ in range(handles):
            self._work.put(cursor)
        self._grow(handles)

    def stop_runs(self, runs: Sequence[Run]) -> list[list[tuple[int, bool]]]:
        """Stop claiming blocks of ``runs`` and drop their unposted outcomes; a thread
        in a call of one is abandoned (replaced), as ``stop`` does."""
        answers: list[list[tuple[int, bool]]] = []
        with self._lock:
            cursors = [self._cursors.pop(run, None) for run in runs]
            for cursor in cursors:
                if cursor is not None:
                    cursor.stopped = True
            for run, cursor in zip(runs, cursors, strict=True):
                if cursor is None:
                    answers.append([])
                    continue
                # positions below ``next`` were claimed: posted, unless a thread holds
                # their block now; what it finished is posted now (an item finished
                # before the cut keeps its result), the rest begun up to where it is
                unfinished: list[tuple[int, bool]] = []
                for slot in list(self._threads.values()):
                    block = slot.block
                    if block is None or block.cursor is not cursor:
                        continue
                    lo, hi, at = block.lo, block.hi, slot.at
                    finished = len(block.values)
                    message = block.take(finished)
                    if message is not None:
                        run.reply.put(message)
                    unfinished += [(p, p <= at) for p in range(lo + finished, hi)]
                    if lo + finished <= at < hi and not slot.abandoned:
                        slot.abandoned = True  # in a call: let it go, start another
                        if not self._closed:
                            self._spawn(slot.context.id)
                unfinished += [(p, False) for p in range(cursor.next, len(run.items))]
                unfinished.sort()
                answers.append(unfinished)
        return answers

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
            flusher = self._flusher
        self._stopping.set()
        self._serving.set()
        for _ in range(count):
            self._work.put(None)
        # One wait for them all (it was 5 s each: 20 s for four threads in a call)
        end = time.monotonic() + _CLOSE_WAIT
        for thread in [flusher, *healthy]:
            if thread is not None and thread is not threading.current_thread():
                join(thread, max(0.0, end - time.monotonic()))

    def _grow(self, added: int) -> None:
        """After ``added`` pieces of work were queued: each goes to an idle thread, or
        else to a new one, up to ``workers`` threads in all. A 3-item batch starts 3
        threads, not ``workers``, and one item after another reuses one thread."""
        while added > 0 and self._idle.acquire(blocking=False):
            added -= 1  # a thread waiting in ``get`` takes it
        if added <= 0 or not self._free_ids:
            return
        with self._lock:
            while added > 0 and self._free_ids and not self._closed:
                self._spawn(self._free_ids.pop())
                added -= 1

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
        idle = self._idle
        monotonic = time.monotonic
        try:
            while not slot.abandoned:
                try:
                    work = get(block=False)
                except Empty:  # about to wait: count as idle, for ``_grow`` to reuse
                    idle.release()
                    work = get()
                if work is None:
                    return
                if type(work) is _Cursor:
                    self._run_blocks(slot, work)
                    del work
                    continue
                assert isinstance(work, tuple)
                task, number = work
                if not task.running or task.attempts != number:  # given up while queued
                    continue
                if task.claim is not None:  # a submit's Future: running from now on
                    claimed = task.claim()
                    task.claim = None  # (nothing here may keep the Future, nor its value)
                    if not claimed:  # cancelled while it waited in the queue
                        task.reply.put((task, number, False, Cancelled(_CANCELLED_QUEUED)))
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

    def _run_blocks(self, slot: _Slot, cursor: _Cursor) -> None:
        """Claim and run blocks of ``cursor``'s run until none is left (or it stops)."""
        run = cursor.run
        items = run.items
        job = run.job
        end = len(items)
        clock = time.monotonic
        lock = self._lock
        while not slot.abandoned:
            with lock:
                lo = cursor.next
                if cursor.stopped or lo >= end or self._closed:
                    return  # (closed: the engine's cancel reports what is left)
                hi = min(end, lo + self._block_size(cursor, end - lo))
                cursor.next = hi
                slot.at = lo - 1
                block = slot.block = _Block(cursor, lo, hi, clock())
            values, elapsed, failed = block.values, block.elapsed, block.failed
            for position in range(lo, hi):
                slot.at = position  # before the check: stop_runs reads it after setting stopped
                if cursor.stopped:
                    break
                began = clock()
                if self._broken is None:
                    ok, payload = run_attempt(job, items[position], 1)
                else:
                    ok, payload = False, copy_error(self._broken)
                elapsed.append(clock() - began)
                if ok:
                    values.append(payload)
                    del payload
                    continue
                failed[position - block.lo] = payload
                values.append(None)
                del payload
                if position + 1 < hi:
                    # a failure goes out at once, not after the rest of its block: a
                    # slow neighbour must not hold back fail-fast or a retry
                    with lock:
                        if cursor.stopped or slot.abandoned:
                            return
                        self._post_block(block)
                        block = slot.block = _Block(cursor, position + 1, hi, clock())
                    values, elapsed, failed = block.values, block.elapsed, block.failed
            with lock:
                slot.block = None
                if cursor.stopped or slot.abandoned:
                    return  # stop_runs posted or reported these positions already
                self._post_block(block)

    def _post_block(self, block: _Block) -> None:
        """(Lock held.) Post a finished block's outcomes; learn the time per item."""
        cursor = block.cursor
        elapsed = block.elapsed
        took = sum(elapsed) / len(elapsed)
        known = cursor.seconds
        cursor.seconds = took if known is None else 0.7 * known + 0.3 * took
        self._post_finished(block)

    def _post_finished(self, block: _Block) -> None:
        """(Lock held.) Post what ``block`` finished and has not posted yet."""
        cursor, run = block.cursor, block.cursor.run
        message = block.take()
        if message is not None:
            cursor.posted += len(message.values)
            run.reply.put(message)
        if cursor.posted >= len(run.items):  # all posted: nothing left to stop
            self._cursors.pop(run, None)

    def _flush_loop(self) -> None:
        """While runs are served: every ``_FLUSH_SECONDS``, post what each block has
        finished, so an item's result never waits for a slow neighbour in its block
        (a thread stuck in a call cannot post for itself)."""
        while True:
            self._serving.wait()
            with self._lock:
                if self._closed:
                    return
                if not self._cursors:
                    self._serving.clear()
                    continue
                now = time.monotonic()
                for slot in self._threads.values():
                    block = slot.block
                    if (
                        block is None
                        or block.cursor.stopped
                        or now - block.since < _FLUSH_SECONDS
                        or len(block.values) <= block.sent
                    ):
                        continue
                    block.since = now
                    self._post_finished(block)
            self._stopping.wait(_FLUSH_SECONDS)

    def _block_size(self, cursor: _Cursor, left: int) -> int:
        """How many items the next block of ``cursor`` takes, ``left`` being unclaimed."""
        seconds = cursor.seconds
        if seconds is None:
            return 1
        by_time = int(_BLOCK_SECONDS / max(seconds, 1e-8))
        fair = -(-left // (2 * self._workers))
        return max(1, min(by_time, fair, _LARGEST_BLOCK))


backend_class = ThreadBackend
