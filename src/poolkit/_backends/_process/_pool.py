"""Process mode: worker processes that survive their own deaths.

Small items are sent in chunks (sized so a chunk takes about ``_TARGET_CHUNK_SECONDS``)
but crash, timeout and retry still act per item: each worker writes the ``seq`` and
start time of the item it runs into shared memory, so when a worker dies the parent
knows exactly which item killed it. That item gets ``WorkerCrashed``; the rest of its
chunk runs again on another worker; the dead worker is replaced. A timed-out or
stopped item's worker is terminated (then killed after a grace period) and replaced.

Threads in the parent: the engine's thread calls ``start``/``stop``; one collector
thread per backend reads results and watches the workers' sentinels. One lock guards
the shared state. ``_handle.py`` starts and stops the processes; ``_child.py``
is what runs inside them.
"""

from __future__ import annotations

import itertools
import multiprocessing
import multiprocessing.connection
import pickle
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from multiprocessing.context import BaseContext
from typing import Any

from poolkit._backends._pickling import dumps, unpack_error, why_unpicklable
from poolkit._core._attempt import copy_error
from poolkit._core._backend import Backend
from poolkit._core._task import Task
from poolkit._errors import PoolkitError, WorkerCrashed

from ._handle import WorkerHandle, default_start_method, kill_all, preload_worker_module
from ._wire import FunctionTable

__all__ = ["Entry", "ProcessBackend"]

_TARGET_CHUNK_SECONDS = 0.01
_MAX_CHUNK = 512
_GRACE = 0.3  # seconds between terminate() and kill() of a worker being stopped
_CHUNKS_AHEAD = 2  # chunks queued per worker, so it never waits for the parent
_BOOT_FAILURES = 3  # workers dying in a row before saying anything: the pool is broken


class Entry:
    """One attempt sent to a worker, by ``seq`` (unique per backend)."""

    __slots__ = ("number", "seq", "task", "worker")

    def __init__(self, seq: int, task: Task, number: int) -> None:
        self.seq = seq
        self.task = task
        self.number = number
        self.worker: WorkerHandle | None = None


class ProcessBackend(Backend):
    """Runs attempts in ``workers`` processes; see the module docstring."""

    def __init__(
        self,
        workers: int,
        *,
        initializer: Callable[..., Any] | None = None,
        initargs: Sequence[Any] = (),
        max_tasks_per_child: int | None = None,
        start_method: str | None = None,
        chunksize: int | None = None,
    ) -> None:
        if initializer is not None and not callable(initializer):
            raise TypeError(f"initializer={initializer!r}: expected a callable or None")
        if max_tasks_per_child is not None and (
            isinstance(max_tasks_per_child, bool)
            or not isinstance(max_tasks_per_child, int)
            or max_tasks_per_child < 1
        ):
            raise ValueError(
                f"max_tasks_per_child={max_tasks_per_child!r}: expected an int >= 1 or None"
            )
        if chunksize is not None and (
            isinstance(chunksize, bool) or not isinstance(chunksize, int) or chunksize < 1
        ):
            raise ValueError(f"chunksize={chunksize!r}: expected an int >= 1 or None (adaptive)")
        method = start_method or default_start_method()
        if method not in multiprocessing.get_all_start_methods():
            methods = multiprocessing.get_all_start_methods()
            raise ValueError(f"start_method={method!r}: expected one of {methods}")
        self.capacity = 1 << 30  # the engine's max_in_flight is the real bound
        # Enough items in flight to batch small tasks into chunks worth sending.
        self.default_in_flight = 64 * workers
        self._workers_wanted = workers
        self._context: BaseContext = multiprocessing.get_context(method)
        if method == "forkserver":
            preload_worker_module()
        self._initializer = initializer
        self._initargs = tuple(initargs)
        self._max_tasks = max_tasks_per_child
        self._chunksize = chunksize
        self._slots: Any = self._context.RawArray("d", 2 * workers)
        self._lock = threading.RLock()
        self._workers: list[WorkerHandle | None] = [None] * workers
        self._pending: deque[Entry] = deque()
        self._entries: dict[int, Entry] = {}
        self._seq = itertools.count(1)
        self._functions = FunctionTable()
        self._item_seconds: float | None = None
        self._broken: BaseException | None = None
        self._boot_failures = 0  # workers in a row that died before sending anything
        self._closed = False
        self._wake_r, self._wake_w = self._context.Pipe(duplex=False)
        self._collector: threading.Thread | None = None
        self._finalizer = weakref.finalize(self, kill_all, self._workers)

    # -- the engine's interface -------------------------------------------------------

    def start(self, tasks: Sequence[Task]) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError("this process runner is closed")
            job: Any = None
            refused: BaseException | None = None
            entries = self._entries
            pending = self._pending
            seq = self._seq
            for task in tasks:
                if task.job is not job:
                    job = task.job
                    blob = self._functions.get(job)[1]
                    refused = blob if isinstance(blob, Exception) else self._broken
                if refused is not None:
                    task.reply.put((task, task.attempts, False, copy_error(refused)))
                    continue
                entry = Entry(next(seq), task, task.attempts)
                task.ticket = entry
                entries[entry.seq] = entry
                pending.append(entry)
            self._ensure_workers()
            self._dispatch()

    def stop(self, tasks: Sequence[Task]) -> None:
        with self._lock:
            stopping: set[WorkerHandle] = set()
            for task in tasks:
                entry = task.ticket
                if not isinstance(entry, Entry) or self._entries.get(entry.seq) is not entry:
                    continue
                del self._entries[entry.seq]
                if entry.worker is None:
                    try:
                        self._pending.remove(entry)
                    except ValueError:
                        pass
                else:
                    stopping.add(entry.worker)
            for worker in stopping:
                self._terminate(worker)

    def can_stop(self, task: Task) -> bool:
        return True

    def started_at(self, task: Task) -> float | None:
        entry = task.ticket
        if not isinstance(entry, Entry) or entry.worker is None:
            return None
        slots, at = self._slots, 2 * entry.worker.slot
        if slots[at] != entry.seq:
            return None  # not yet started, or finished with its result on the way
        started = float(slots[at + 1])
        return started if slots[at] == entry.seq else None

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            workers = [w for w in self._workers if w is not None]
        for worker in workers:
            if worker.dying or any(self._entries.get(e.seq) is e for c in worker.chunks for e in c):
                worker.process.kill()  # busy with work nobody waits for any more
                continue
            try:
                worker.tasks.send_bytes(dumps(None))
            except OSError:
                pass
        deadline = time.monotonic() + 2.0
        for worker in workers:
            worker.process.join(max(0.0, deadline - time.monotonic()))
        for worker in workers:
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join(1.0)
        self._wake()
        if self._collector is not None and self._collector is not threading.current_thread():
            self._collector.join(5.0)
        for worker in workers:
            worker.close_pipes()
        self._wake_r.close()
        self._wake_w.close()
        self._finalizer.detach()

    # -- workers ----------------------------------------------------------------------

    def _ensure_workers(self) -> None:
        for slot, worker in enumerate(self._workers):
            if worker is None and not self._closed and self._broken is None:
                self._workers[slot] = WorkerHandle(
                    self._context,
                    self._slots,
                    slot,
                    self._initializer,
                    self._initargs,
                    self._max_tasks,
                )
                self._wake()
        if self._collector is None:
            self._collector = threading.Thread(
                target=self._collect, name="poolkit-process-collector", daemon=True
            )
            self._collector.start()

    # -- sending work -----------------------------------------------------------------

    def _chunk_size(self, with_room: int) -> int:
        if self._chunksize is not None:
            return self._chunksize
        fair = -(-len(self._pending) // with_room)
        if self._item_seconds is None:
            return max(1, min(fair, 8))
        by_time = int(_TARGET_CHUNK_SECONDS / max(self._item_seconds, 1e-7))
        return max(1, min(fair, by_time, _MAX_CHUNK))

    def _dispatch(self) -> None:
        pending = self._pending
        while pending:
            ready = [
                w
                for w in self._workers
                if w is not None
                and not w.dying
                and len(w.chunks) < _CHUNKS_AHEAD
                and (w.budget is None or w.budget > 0)
            ]
            if not ready:
                return
            size = self._chunk_size(len(ready))
            for worker in sorted(ready, key=lambda w: len(w.chunks)):
                if not pending:
                    return
                self._send_chunk(worker, size)

    def _send_chunk(self, worker: WorkerHandle, size: int) -> None:
        pending = self._pending
        if worker.budget is not None:
            size = min(size, worker.budget)
        job = pending[0].task.job
        key, blob = self._functions.get(job)
        chunk: list[Entry] = []
        while pending and len(chunk) < size and pending[0].task.job is job:
            chunk.append(pending.popleft())
        try:
            if key in worker.functions:
                worker.functions.use(key)
            else:
                worker.tasks.send_bytes(dumps(("fn", key, blob)))
                worker.functions.add(key, True)
            message = self._pack(key, chunk)
            if not chunk:
                return
            worker.tasks.send_bytes(message)
        except (OSError, ValueError):  # the worker is gone; its sentinel will tell
            pending.extendleft(reversed(chunk))
            self._terminate(worker)
            return
        for entry in chunk:
            entry.worker = worker
        worker.chunks.append(chunk)
        if worker.budget is not None:
            worker.budget -= len(chunk)
            if worker.budget <= 0:  # max_tasks_per_child reached: it retires after this chunk
                try:
                    worker.tasks.send_bytes(dumps(None))
                except OSError:
                    pass

    def _pack(self, key: bytes, chunk: list[Entry]) -> bytes:
        """The chunk message; items that cannot be pickled are failed and left out."""
        body = [(e.seq, e.task.item, e.number) for e in chunk]
        try:
            return dumps(("chunk", key, body))
        except Exception:
            pass
        for entry in list(chunk):
            reason = why_unpicklable(entry.task.item)
            if reason is not None:
                chunk.remove(entry)
                del self._entries[entry.seq]
                error = TypeError(
                    f"process mode could not pickle item #{entry.task.index} "
                    f"({type(entry.task.item).__name__}) to send it to a worker: {reason}"
                )
                entry.task.reply.put((entry.task, entry.number, False, error))
        return dumps(("chunk", key, [(e.seq, e.task.item, e.number) for e in chunk]))

    # -- the collector thread ---------------------------------------------------------

    def _collect(self) -> None:
        wait = multiprocessing.connection.wait
        while True:
            with self._lock:
                if self._closed and not any(self._workers):
                    return
                live = [w for w in self._workers if w is not None]
                watch: dict[Any, tuple[str, WorkerHandle | None]] = {self._wake_r: ("wake", None)}
                for w in live:
                    watch[w.results] = ("results", w)
                    watch[w.process.sentinel] = ("died", w)
                timeout = self._grace_timeout(live)
            if self._closed:
                return
            try:
                ready = wait(list(watch), timeout)
            except OSError:
                continue
            with self._lock:
                for handle in ready:
                    kind, worker = watch[handle]
                    if kind == "wake":
                        _drain(self._wake_r)
                    elif kind == "results" and worker is not None:
                        self._receive(worker)
                for handle in ready:
                    kind, worker = watch[handle]
                    if kind == "died" and worker is not None:
                        self._buried(worker)
                self._kill_overdue()
                if not self._closed:
                    self._ensure_workers()
                    self._dispatch()

    def _grace_timeout(self, live: list[WorkerHandle]) -> float | None:
        dying = [w.terminated_at + _GRACE for w in live if w.dying]
        return max(0.0, min(dying) - time.monotonic()) if dying else None

    def _kill_overdue(self) -> None:
        now = time.monotonic()
        for worker in self._workers:
            if worker is not None:
                worker.kill_if_overdue(now, _GRACE)

    def _receive(self, worker: WorkerHandle) -> None:
        try:
            while worker.results.poll():
                message = worker.results.recv_bytes()
                self._handle(worker, _loads(message))
        except (EOFError, OSError):
            pass  # it died; its sentinel says so
        except Exception as error:  # a result that cannot be unpickled here
            self._fail_chunk(worker, error)

    def _handle(self, worker: WorkerHandle, message: tuple[Any, ...]) -> None:
        if message[0] == "init_failed":
            cause = unpack_error(message[1])
            broken = PoolkitError(
                f"the worker initializer {self._initializer!r} raised "
                f"{type(cause).__name__}: {cause}; no item can run"
            )
            broken.__cause__ = cause
            self._broken = broken
            self._fail_everything(broken)
            return
        worker.spoke = True
        self._boot_failures = 0
        _, done, busy = message
        if done:
            per_item = busy / len(done)
            previous = self._item_seconds
            self._item_seconds = per_item if previous is None else 0.7 * previous + 0.3 * per_item
        replies: dict[int, tuple[Any, list[Any]]] = {}
        entries = self._entries
        for seq, ok, payload in done:
            entry = entries.pop(seq, None)
            if entry is None:
                continue  # stopped by the engine meanwhile
            task = entry.task
            value = payload if ok else unpack_error(payload)
            group = replies.get(id(task.reply))
            if group is None:
                group = replies[id(task.reply)] = (task.reply, [])
            group[1].append((task, entry.number, ok, value))
        for reply, messages in replies.values():
            reply.put(messages)
        self._forget_finished(worker)

    def _forget_finished(self, worker: WorkerHandle) -> None:
        # Exact, not by comparing seqs: items sent again after a crash keep their old seq,
        # so seqs are not monotonic across a worker's chunks.
        entries = self._entries
        chunks = worker.chunks
        while chunks and all(entries.get(e.seq) is not e for e in chunks[0]):
            chunks.popleft()

    def _buried(self, worker: WorkerHandle) -> None:
        """A worker exited: blame the item it was running, send the rest elsewhere."""
        self._receive(worker)  # results it sent before dying still count
        worker.process.join(1.0)
        exitcode = worker.process.exitcode
        running = self._slots[2 * worker.slot]
        if running != 0:
            self._boot_failures = 0
        live = [e for chunk in worker.chunks for e in chunk if self._entries.get(e.seq) is e]
        if not worker.dying and live and all(e.seq != running for e in live):
            # It died before starting any of its items (at start-up, or in a C extension
            # loaded by the function): blame the first one, so a batch always progresses.
            running = live[0].seq
        retry: list[Entry] = []
        for chunk in worker.chunks:
            for entry in chunk:
                if self._entries.get(entry.seq) is not entry:
                    continue
                if entry.seq == running and not worker.dying:
                    del self._entries[entry.seq]
                    crash = WorkerCrashed(exitcode=exitcode, pid=worker.pid)
                    entry.task.reply.put((entry.task, entry.number, False, crash))
                else:
                    entry.worker = None
                    retry.append(entry)
        self._pending.extendleft(reversed(retry))
        worker.close_pipes()
        self._workers[worker.slot] = None
        if running == 0 and not worker.spoke and not worker.dying:  # never began an item
            self._boot_failures += 1
            if self._boot_failures >= _BOOT_FAILURES and self._broken is None:
                self._broken = PoolkitError(
                    f"worker processes die at start-up ({_BOOT_FAILURES} in a row, last exit "
                    f"code {exitcode}); in a script, start process mode under "
                    "`if __name__ == '__main__':`, and check that the function's module "
                    "imports cleanly in a fresh interpreter"
                )
                self._fail_everything(self._broken)

    def _terminate(self, worker: WorkerHandle) -> None:
        if worker.terminate():
            self._wake()

    def _fail_chunk(self, worker: WorkerHandle, error: Exception) -> None:
        for chunk in worker.chunks:
            for entry in chunk:
                if self._entries.pop(entry.seq, None) is entry:
                    entry.task.reply.put((entry.task, entry.number, False, copy_error(error)))
        worker.chunks.clear()

    def _fail_everything(self, error: BaseException) -> None:
        for entry in list(self._entries.values()):
            entry.task.reply.put((entry.task, entry.number, False, copy_error(error)))
        self._entries.clear()
        self._pending.clear()
        for worker in self._workers:
            if worker is not None:
                worker.chunks.clear()
                self._terminate(worker)

    def _wake(self) -> None:
        try:
            self._wake_w.send_bytes(b"")
        except OSError:
            pass


def _loads(blob: bytes) -> tuple[Any, ...]:
    message: tuple[Any, ...] = pickle.loads(blob)
    return message


def _drain(connection: Any) -> None:
    while connection.poll():
        connection.recv_bytes()
