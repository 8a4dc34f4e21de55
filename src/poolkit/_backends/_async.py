"""Async mode: coroutines on an event loop; plain functions offloaded to threads.

The loop is either the caller's running loop (``arun_all``/``astream``) or the
backend's own: run in a daemon thread of its own (``stream``, ``submit``, a kept
runner), started when first needed, or, for a one-call ``run_all`` whose engine runs
on the loop, in the caller's thread while it waits (``run_hosted``). A
coroutine attempt can really be stopped: its task is cancelled. A plain function
runs on poolkit's daemon threads and can only be abandoned, as in thread mode.
Whether a batch's function is a coroutine function is decided once, in its ``Job``.

The loop is one worker for ``worker_state()`` and the ``initializer`` (run once, on
the loop, before the first attempt); ``worker_id()`` is the concurrency slot
(0 … workers-1) the attempt holds.

Runs (the engine's bulk lane, for coroutine functions) are served by long-lived lane
coroutines, each holding one of the ``workers`` slots and taking the next position of
the oldest run until none is left: no asyncio task per item. A lane holds the lock only
to take a position; it writes the outcome into the run's columns (``_Cursor``), and
what finished is posted once per loop iteration, in stretches of consecutive positions.
Tasks (retries, and batches with a timeout) take slots too, and a lane gives its slot
up between items when one is waiting, so at most ``workers`` attempts run at any moment.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from array import array
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Future, InvalidStateError
from inspect import isawaitable
from types import CoroutineType
from typing import Any, TypeVar

from poolkit._core._attempt import (
    ATTEMPT,
    WorkerContext,
    copy_error,
    initializer_failure,
    run_attempt_async,
)
from poolkit._core._backend import Backend
from poolkit._core._task import Job, Run, RunDone, Task

from ._hosted import run_hosted
from ._thread import ThreadBackend

__all__ = ["AsyncBackend"]

R = TypeVar("R")


class AsyncBackend(Backend):
    """Runs up to ``workers`` attempts at once on an asyncio loop."""

    def __init__(
        self,
        workers: int,
        *,
        loop: asyncio.AbstractEventLoop | None = None,
        initializer: Callable[..., Any] | None = None,
        initargs: Sequence[Any] = (),
        one_call: bool = False,
    ) -> None:
        self.capacity = workers
        self.default_in_flight = 2 * workers
        # Runs: lanes never wait for the engine. On poolkit's own loop the engine runs in
        # another thread, which may wait a whole GIL switch interval (5 ms) to run: what
        # is in flight must outlast that.
        self.default_run_in_flight = 32 * workers if loop is not None else max(128 * workers, 4096)
        self._own_loop = loop is None
        self._one_call = one_call
        self._thread: threading.Thread | None = None  # poolkit's loop thread, once started
        self._thread_lock = threading.Lock()
        self._closed = False
        # The loop's heartbeat (is it free to cancel?), on poolkit's loop thread, while
        # attempts hold slots: an idle runner's loop has no timer to wake it.
        self._last_tick = time.monotonic()
        self._beats = False  # the loop thread is started: attempts arm the heartbeat
        self._ticking = False  # a tick is scheduled
        # The thread running the loop now: the caller's (arun_all), poolkit's loop
        # thread, or the caller's while a one-call run_all hosts it; None when idle.
        self._loop_thread_id: int | None = None if loop is None else threading.get_ident()
        self._loop = loop or asyncio.new_event_loop()
        self._state: dict[str, Any] = {}
        self._workers = workers
        self._free_ids = list(range(workers - 1, -1, -1))
        self._busy = 0  # slots held, by lanes and by task attempts
        self._waiters: deque[asyncio.Future[None]] = deque()  # tasks waiting for a slot
        self._cursors: deque[_Cursor] = deque()  # runs with positions not yet taken
        self._open: set[_Cursor] = set()  # runs with outcomes not yet posted
        self._lock = threading.Lock()  # cursors are read by the engine's thread too
        self._post_due = False  # a _post_all is scheduled (read and written on the loop)
        self._lanes: list[list[Any]] = []  # each lane's [cursor, position, task] now
        self._starting = 0  # lanes created that have not run yet (on the loop)
        self._initializer = initializer
        self._initargs = tuple(initargs)
        self._broken: BaseException | None = None
        self._hosted: set[asyncio.Task[Any] | None] = set()  # drivers run_at_home runs
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
            self._on_loop(self._spawn, coroutines)

    def takes_runs(self, job: Job) -> bool:
        return job.is_async

    def run_at_home(self, job: Job, make: Callable[[], Awaitable[R]]) -> Future[R] | None:
        """On poolkit's own loop, for coroutine functions (on the caller's loop,
        ``arun_all`` already drives its engine beside the attempts). A one-call
        backend whose loop nobody runs yet runs it right here, in the caller's thread,
        and returns the Future done."""
        if not self._own_loop or not job.is_async:
            return None
        if self._one_call and self._thread is None and self._loop_thread_id is None:
            return self._host(make)
        self._start_thread()
        return self._run_threadsafe(make)

    def _run_threadsafe(self, make: Callable[[], Awaitable[R]]) -> Future[R]:
        """``asyncio.run_coroutine_threadsafe(make(), loop)``, except that what ``make()``
        raises always reaches the Future: asyncio re-raises ``KeyboardInterrupt`` and
        ``SystemExit`` in the loop's thread, which ends it before the Future is done
        (a caller waiting on it then waited for ever). Cancelling the Future cancels
        the coroutine."""
        loop = self._loop
        hosted = self._hosted
        future: Future[R] = Future()

        def settle(ok: bool, outcome: Any) -> None:
            if not future.done():
                with contextlib.suppress(InvalidStateError):  # cancelled meanwhile
                    if ok:
                        future.set_result(outcome)
                    else:
                        future.set_exception(outcome)

        async def at_home() -> None:
            task = asyncio.current_task()
            hosted.add(task)
            try:
                value = await make()
            except BaseException as error:  # every one goes to the caller, none stays here
                settle(False, error)
                return
            finally:
                hosted.discard(task)
            settle(True, value)

        def begin() -> None:
            task = loop.create_task(at_home())

            def cancel_with(settled: Future[R]) -> None:
                if settled.cancelled():
                    with contextlib.suppress(RuntimeError):  # the loop is closed: nothing runs
                        loop.call_soon_threadsafe(task.cancel)

            future.add_done_callback(cancel_with)

        loop.call_soon_threadsafe(begin)
        return future

    def _host(self, make: Callable[[], Awaitable[R]]) -> Future[R]:
        """Run ``make()`` on the loop in this thread (Ctrl-C: see ``run_hosted``)."""

        async def main() -> R:
            return await make()

        done: Future[R] = Future()
        self._loop_thread_id = threading.get_ident()
        try:
            done.set_result(run_hosted(self._loop, main()))
        finally:
            self._loop_thread_id = None
        return done

    def _on_loop(self, fn: Callable[..., object], *args: Any) -> None:
        """Call ``fn(*args)`` on the loop: now on the loop's thread, else soon (starting
        poolkit's loop thread when nobody runs the loop)."""
        if threading.get_ident() == self._loop_thread_id:
            fn(*args)
            return
        if self._thread is None and self._own_loop:
            self._start_thread()
        self._loop.call_soon_threadsafe(fn, *args)

    def _start_thread(self) -> None:
        """Run poolkit's own loop in a daemon thread of its own, once (not while a
        one-call ``run_all`` runs it in the caller's thread)."""
        with self._thread_lock:
            if self._thread is not None or self._loop_thread_id is not None or self._closed:
                return
            self._beats = True  # (before the thread runs anything)
            thread = threading.Thread(
                target=_run_loop, args=(self._loop,), name="poolkit-async-loop", daemon=True
            )
            thread.start()
            self._thread = thread
            self._loop_thread_id = thread.ident

    def start_run(self, run: Run) -> None:
        if self._initializer is not None:
            self._initialize()
        cursor = _Cursor(run)
        with self._lock:
            self._cursors.append(cursor)
            self._open.add(cursor)
        self._on_loop(self._open_lanes)

    def stop_runs(self, runs: Sequence[Run]) -> list[list[tuple[int, bool]]]:
        answers: list[list[tuple[int, bool]]] = []
        lanes: list[tuple[list[Any], _Cursor, int]] = []
        with self._lock:  # all at once: a lane let go of one run cannot start another
            for run in runs:
                cursor = next((c for c in self._open if c.run is run), None)
                if cursor is None or cursor.stopped:
                    answers.append([])
                    continue
                self._post_locked(cursor)  # what finished keeps its outcome
                cursor.stopped = True
                self._open.discard(cursor)
                # (a lane may finish one meanwhile, outside the lock: it stays unposted)
                unposted = cursor.unposted()
                state = cursor.state
                lanes += [
                    (here, cursor, here[1])
                    for here in self._lanes
                    if here[0] is cursor and state[here[1]] != _POSTED
                ]
                unfinished = [(p, True) for p in unposted]
                unfinished += [(p, False) for p in range(cursor.next, cursor.size)]
                cursor.next = cursor.size
                answers.append(unfinished)
        if lanes:
            self._on_loop(self._cancel_lanes, lanes)
        return answers

    def _cancel_lanes(self, lanes: list[tuple[list[Any], _Cursor, int]]) -> None:
        """(On the loop.) Cancel each lane still on the item it was stopped at (one that
        moved on meanwhile runs someone else's item now)."""
        for here, cursor, position in lanes:
            if here[0] is cursor and here[1] == position:
                here[2].cancel()

    def can_stop(self, task: Task) -> bool:
        """A coroutine can be cancelled, unless it blocks its loop (then it is abandoned)."""
        if not task.job.is_async:
            return False
        # (no loop thread: the engine runs on the loop, so the loop is not blocked)
        return self._thread is None or time.monotonic() - self._last_tick < _BLOCKED

    def _tick(self) -> None:
        self._last_tick = time.monotonic()
        if self._busy:
            self._loop.call_later(_TICK, self._tick)
        else:
            self._ticking = False

    def _hold_slot(self) -> None:
        """(On the loop.) Take one of the ``workers`` slots, arming the heartbeat."""
        self._busy += 1
        if self._beats and not self._ticking:
            self._ticking = True
            self._tick()

    def stop(self, tasks: Sequence[Task]) -> None:
        handles = [t.ticket for t in tasks if t.job.is_async and t.ticket is not None]
        self._threads.stop([t for t in tasks if not t.job.is_async])
        if not handles:
            return
        self._on_loop(_cancel_all, handles)

    def started_at(self, task: Task) -> float | None:
        return task.started

    def close(self) -> None:
        """Cancel what still runs and stop the loop, never waiting long on a blocked one.

        A coroutine that blocks the loop (``time.sleep`` in an ``async def``) or swallows
        its cancellation cannot be stopped: the loop's daemon thread is left to finish
        it and then closes the loop itself; ``close`` returns at once either way.
        """
        self._threads.close()
        if self._closed:
            return
        self._closed = True
        if self._thread is not None:
            self._loop.call_soon_threadsafe(_shut_down, self._loop, self._hosted)
            self._thread.join(timeout=_CLOSE_WAIT)
        elif self._own_loop and not self._loop.is_closed():
            self._shut_down_here()

    def _shut_down_here(self) -> None:
        """``close`` for a loop no thread runs: run it here until what is left has
        ended (a coroutine that swallows its cancellation: at most ``_CLOSE_WAIT``)."""
        loop = self._loop
        self._loop_thread_id = threading.get_ident()
        try:
            if asyncio.all_tasks(loop):
                loop.call_soon(_shut_down, loop, set())
                give_up = loop.call_later(_CLOSE_WAIT, loop.stop)
                loop.run_forever()
                give_up.cancel()
        finally:
            self._loop_thread_id = None
            loop.close()

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
            self._on_loop(run)
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
        await self._acquire()
        worker = self._free_ids.pop() if self._free_ids else 0
        try:
            if not task.running or task.attempts != number:
                return
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
            task.reply.put((task, number, ok, payload))
        finally:
            self._free_ids.append(worker)
            self._release()

    # -- slots: at most ``workers`` attempts at once, lanes and tasks together ----------

    async def _acquire(self) -> None:
        if self._busy < self._workers and not self._waiters:
            self._hold_slot()
            return
        waiter = self._loop.create_future()
        self._waiters.append(waiter)
        try:
            await waiter  # the slot is handed over by _release
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._release()  # handed over just as we were cancelled: pass it on
            raise

    def _release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot passes to it
                return
        self._busy -= 1
        self._open_lanes()

    # -- runs -------------------------------------------------------------------------

    def _open_lanes(self) -> None:
        """Start lanes while slots are free and runs have positions no lane will take
        (on the loop): one lane per position left at most, counting the lanes started
        and not yet running, which will take theirs."""
        with self._lock:
            left = sum(c.end - c.next for c in self._cursors) - self._starting
        while left > 0 and self._busy < self._workers and not self._waiters:
            self._hold_slot()
            self._starting += 1
            left -= 1
            self._loop.create_task(self._lane())

    async def _lane(self) -> None:
        """Take the next position of the oldest run, run it, until none is left or a
        task waits for the slot. (``run_attempt_async``'s body, inlined: this is the
        per-item path of async mode, and a run's items are all on their first attempt.)

        Only taking a position holds the lock; an outcome is written into the cursor's
        columns without it, its state byte last, and ``_post_all`` posts it (see
        ``_Cursor``)."""
        self._starting -= 1
        worker = self._free_ids.pop() if self._free_ids else 0
        WorkerContext(worker, self._state).enter()
        ATTEMPT.set(1)
        here: list[Any] = [None, -1, asyncio.current_task()]  # cursor, position, this lane
        with self._lock:
            self._lanes.append(here)
        lock = self._lock
        acquire, release = lock.acquire, lock.release  # (cheaper than ``with``, per item)
        monotonic = time.monotonic
        cursors = self._cursors
        waiters = self._waiters
        count = 0
        broken: BaseException | None = None
        serving: _Cursor | None = None
        items: list[Any] = []
        fn: Callable[..., Any] = len
        star = False
        values: list[Any] = []
        seconds = array("d")
        state = bytearray()
        began = monotonic()  # an item begins where the lane's previous one ended
        try:
            while True:
                acquire()
                try:
                    if waiters:
                        return
                    cursor = serving
                    # (the run served is the oldest with positions left, while it has any:
                    # runs are appended, and older ones are spent)
                    if cursor is None or cursor.next >= cursor.end:
                        while cursors and cursors[0].next >= cursors[0].end:
                            cursors.popleft()
                        if not cursors:
                            return
                        cursor = cursors[0]
                        here[0] = cursor
                    position = cursor.next
                    cursor.next = position + 1
                    here[1] = position
                finally:
                    release()
                if cursor is not serving:
                    serving, items, fn, star = cursor, cursor.run.items, cursor.fn, cursor.star
                    values, seconds, state = cursor.values, cursor.seconds, cursor.state
                    broken = self._broken  # (the initializer ran before any run was taken)
                try:
                    count += 1
                    if count & 255 == 0:  # a coroutine that never suspends must not starve the loop
                        await asyncio.sleep(0)
                        began = monotonic()
                    if broken is not None:
                        raise copy_error(broken)
                    value = fn(*items[position]) if star else fn(items[position])
                    if type(value) is CoroutineType or (
                        type(value) not in _PLAIN and isawaitable(value)
                    ):
                        value = await value
                    values[position] = value
                except asyncio.CancelledError:
                    with lock:
                        if cursor.stopped:  # poolkit's own cancel: go on with another item
                            uncancel = getattr(here[2], "uncancel", None)
                            if uncancel is not None:
                                uncancel()
                            began = monotonic()
                            continue
                        cursor.failed[position] = asyncio.CancelledError()
                        state[position] = _DONE
                        self._post_soon()
                    raise
                except BaseException as error:  # the engine decides what it means
                    cursor.failed[position] = error
                    if isinstance(error, _ENDS_THE_BATCH):
                        # (Ctrl-C in a coroutine that blocked the loop: the next item
                        # must not block it again before the engine hears of this)
                        with lock:
                            cursor.end = min(cursor.end, cursor.next)
                ended = monotonic()
                seconds[position] = ended - began
                began = ended
                state[position] = _DONE  # last: a post that sees it sees the outcome too
                if not self._post_due:
                    self._post_soon()
        finally:
            with lock:
                here[0] = None
                self._lanes.remove(here)
            self._free_ids.append(worker)
            self._release()

    def _post_soon(self) -> None:
        """(On the loop.) Post the outcomes gathered at the end of this loop iteration."""
        self._post_due = True
        self._loop.call_soon(self._post_all)

    def _post_all(self) -> None:
        with self._lock:
            self._post_due = False
            for cursor in list(self._open):
                self._post_locked(cursor)

    def _post_locked(self, cursor: _Cursor) -> None:
        """(Lock held.) Post what the cursor has, in groups of consecutive positions."""
        for done in cursor.drain():
            cursor.run.reply.put(done)
        if cursor.finished():
            self._open.discard(cursor)


# A position's state in ``_Cursor.state``: not finished, finished and not posted, posted.
_PENDING, _DONE, _POSTED = 0, 1, 2


class _Cursor:
    """A run being served: the next position to take, and the outcomes in columns.

    Lanes write position ``p``'s outcome into ``values[p]`` (or ``failed[p]``) and
    ``seconds[p]``, then set ``state[p]`` to ``_DONE``; ``drain`` posts each stretch of
    ``_DONE`` positions, found with ``bytearray.find``, and marks them ``_POSTED``. No
    object is made per item, and none is sorted.
    """

    __slots__ = (
        "end",
        "failed",
        "fn",
        "low",
        "next",
        "posted",
        "run",
        "seconds",
        "size",
        "star",
        "state",
        "stopped",
        "values",
    )

    def __init__(self, run: Run) -> None:
        self.run = run
        self.size = size = len(run.items)
        self.fn = run.job.fn
        self.star = run.job.star
        self.next = 0  # the next position to take
        self.end = self.size  # lanes take positions below this one
        self.low = 0  # every position below is posted
        self.stopped = False
        self.posted = 0
        self.values: list[Any] = [None] * size
        self.seconds = array("d", bytes(8 * size))
        self.state = bytearray(size)
        self.failed: dict[int, BaseException] = {}

    def finished(self) -> bool:
        return self.stopped or self.posted == self.size

    def unposted(self) -> list[int]:
        """(Lock held, after ``drain``.) Positions taken whose outcome was never posted."""
        state = self.state
        return [p for p in range(self.low, self.next) if state[p] != _POSTED]

    def drain(self) -> list[RunDone]:
        """RunDone messages for the outcomes not posted yet, one per stretch of
        consecutive finished positions."""
        state = self.state
        taken = self.next
        messages: list[RunDone] = []
        start = state.find(_DONE, self.low, taken)
        while start != -1:
            end = _stretch_end(state, start, taken)
            count = end - start
            failed = None
            if self.failed:
                failed = {
                    p - start: self.failed.pop(p) for p in list(self.failed) if start <= p < end
                } or None
            values = self.values[start:end]
            self.values[start:end] = [None] * count  # the Results hold them from now on
            messages.append(RunDone(self.run, start, values, failed, self.seconds[start:end]))
            state[start:end] = _POSTED_BYTES * count
            self.posted += count
            if start == self.low:
                low = end
                while low < taken and state[low] == _POSTED:  # stretches posted past a gap
                    low += 1
                self.low = low
            start = state.find(_DONE, end, taken)
        return messages


_POSTED_BYTES = bytes([_POSTED])
_ENDS_THE_BATCH = (KeyboardInterrupt, SystemExit)


def _stretch_end(state: bytearray, start: int, stop: int) -> int:
    """The end of the stretch of ``_DONE`` positions that begins at ``start``."""
    end = stop
    for other in (_PENDING, _POSTED):
        found = state.find(other, start, end)
        if found != -1:
            end = found
    return end


_PLAIN = frozenset({int, float, str, bytes, bool, type(None), tuple, list, dict})


_TICK = 0.05  # the heartbeat of poolkit's own loop
_CLOSE_WAIT = 0.25  # close waits this long at most for what is left to end
_BLOCKED = 0.25  # a loop silent for this long is blocked by a call: its tasks cannot be cancelled


def _run_loop(loop: asyncio.AbstractEventLoop) -> None:
    """The loop thread: run until stopped, then close the loop from this same thread."""
    try:
        loop.run_forever()
    finally:
        loop.close()


def _shut_down(loop: asyncio.AbstractEventLoop, spared: set[asyncio.Task[Any] | None]) -> None:
    """Cancel every task but the ``spared`` (drivers, which end their batch themselves);
    stop the loop when the last one has ended (at once when none)."""
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
        if task not in spared:
            task.cancel()


def _cancel_all(handles: list[asyncio.Task[Any]]) -> None:
    for handle in handles:
        handle.cancel()


backend_class = AsyncBackend
