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
import logging
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
from ._wire import HALT, SEQ, STRIDE, TIME, FunctionTable, unpack_value

__all__ = ["Entry", "ProcessBackend"]

log = logging.getLogger("poolkit")

_TARGET_CHUNK_SECONDS = 0.01
_MAX_CHUNK = 512
_GRACE = 0.3  # seconds between terminate() and kill() of a worker being stopped
_CHUNKS_AHEAD = 2  # chunks queued per worker, so it never waits for the parent
_POLL = 1.0  # the collector looks at least this often whether its runner was dropped
_BOOT_FAILURES = 3  # workers dying in a row before saying anything: the pool is broken


FINISHED = object()  # a task's ticket once its attempt's result came back


class Entry:
    """One attempt sent to a worker, by ``seq`` (unique per backend)."""

    __slots__ = ("alone", "number", "seq", "task", "worker")

    def __init__(self, seq: int, task: Task, number: int) -> None:
        self.seq = seq
        self.task = task
        self.number = number
        self.worker: WorkerHandle | None = None
        self.alone = False  # sent in a chunk of its own (its chunk could not be loaded)


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
        initializer_timeout: float | None = None,
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
        self._init_limit = initializer_timeout
        self._attempt_limit: float | None = None  # the latest batch's timeout, for start-up
        self._slots: Any = self._context.RawArray("d", STRIDE * workers)
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
        self._alive = [True]  # cleared by the finalizer: no more workers after that
        self._finalizer = weakref.finalize(self, kill_all, self._workers, self._alive)

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
                    self._attempt_limit = job.timeout
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
        slots, at = self._slots, STRIDE * entry.worker.slot
        if slots[at + SEQ] != entry.seq:
            return None  # not yet started, or finished with its result on the way
        started = float(slots[at + TIME])
        return started if slots[at + SEQ] == entry.seq else None

    def halt(self, tasks: Sequence[Task]) -> None:
        """Tell the workers running these attempts to start nothing more (a cut comes)."""
        for task in tasks:
            entry = task.ticket
            if isinstance(entry, Entry) and entry.worker is not None:
                self._slots[STRIDE * entry.worker.slot + HALT] = 1

    def has_started(self, task: Task) -> bool:
        """True once the attempt began running in its worker (finished ones included)."""
        entry = task.ticket
        if entry is FINISHED:
            return True
        if not isinstance(entry, Entry) or entry.worker is None:
            return False
        running = abs(self._slots[STRIDE * entry.worker.slot + SEQ])
        for chunk in entry.worker.chunks:  # sent in this order, and run in it
            for sent in chunk:
                if sent is entry:
                    return bool(running)
                if sent.seq == running:
                    return False
        return False

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
            try:
                worker.process.close()
            except ValueError:
                pass
        self._wake_r.close()
        self._wake_w.close()
        self._finalizer.detach()

    # -- workers ----------------------------------------------------------------------

    def _ensure_workers(self) -> None:
        for slot, worker in enumerate(self._workers):
            if worker is None and not self._closed and self._broken is None and self._alive[0]:
                try:
                    self._workers[slot] = WorkerHandle(
                        self._context,
                        self._slots,
                        slot,
                        self._initializer,
                        self._initargs,
                        self._max_tasks,
                    )
                except Exception as error:  # e.g. the forkserver died importing __main__
                    self._start_up_failed(f"starting one raised {type(error).__name__}")
                    continue
                self._wake()
        if self._collector is None:
            self._collector = threading.Thread(
                target=_collect,
                args=(weakref.ref(self),),
                name="poolkit-process-collector",
                daemon=True,
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
                and not w.gone
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
        if pending[0].alone:
            size = 1
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
            # Not _terminate(): it died on its own, and the item it was running must
            # be charged for it (a stop on purpose charges nobody). It takes no more work.
            worker.gone = True
            pending.extendleft(reversed(chunk))
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
        try:
            items = dumps([e.task.item for e in chunk])
            return dumps(("chunk", key, [(e.seq, e.number) for e in chunk], items))
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
        items = dumps([e.task.item for e in chunk])
        return dumps(("chunk", key, [(e.seq, e.number) for e in chunk], items))

    # -- the collector thread ---------------------------------------------------------

    def _watch(self) -> tuple[dict[Any, tuple[str, WorkerHandle | None]], float | None] | None:
        """What the collector waits on, and for how long; None once it should stop."""
        with self._lock:
            if self._closed:
                return None
            live = [w for w in self._workers if w is not None]
            watch: dict[Any, tuple[str, WorkerHandle | None]] = {self._wake_r: ("wake", None)}
            for w in live:
                watch[w.results] = ("results", w)
                watch[w.process.sentinel] = ("died", w)
            return watch, self._grace_timeout(live)

    def _react(self, watch: dict[Any, tuple[str, WorkerHandle | None]], ready: list[Any]) -> None:
        """One round of the collector: results first, then deaths, then new work."""
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

    def _init_limit_now(self) -> float | None:
        """How long an initializer may take: initializer_timeout, else the attempt timeout."""
        if self._initializer is None:
            return None
        return self._init_limit if self._init_limit is not None else self._attempt_limit

    def _grace_timeout(self, live: list[WorkerHandle]) -> float | None:
        due = [w.terminated_at + _GRACE for w in live if w.dying]
        limit = self._init_limit_now()
        if limit is not None:
            due += [w.born + limit for w in live if not w.ready and not w.dying]
        return max(0.0, min(due) - time.monotonic()) if due else None

    def _kill_overdue(self) -> None:
        now = time.monotonic()
        limit = self._init_limit_now()
        for worker in self._workers:
            if worker is None:
                continue
            worker.kill_if_overdue(now, _GRACE)
            if (
                limit is not None
                and not worker.ready
                and not worker.dying
                and now >= worker.born + limit
                and self._broken is None
            ):
                self._broken = PoolkitError(
                    f"the worker initializer {self._initializer!r} did not finish within "
                    f"{limit} s (initializer_timeout, or the attempt timeout); no item can run"
                )
                self._fail_everything(self._broken)

    def _receive(self, worker: WorkerHandle) -> None:
        try:
            while worker.results.poll():
                message = worker.results.recv_bytes()
                self._handle(worker, _loads(message))
        except (EOFError, OSError):
            pass  # it died; its sentinel says so
        except BaseException as error:  # a message that cannot be loaded: poolkit's own bug
            log.error(
                "process mode: a message from worker %s could not be read: %r", worker.pid, error
            )
            self._terminate(worker)

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
        if message[0] == "ready":
            worker.ready = True
            return
        if message[0] == "unloadable":
            self._unloadable(worker, message[1], unpack_error(message[2]))
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
        for seq, ok, kind, payload, began in done:
            entry = entries.pop(seq, None)
            if entry is None:
                continue  # stopped by the engine meanwhile
            task = entry.task
            task.started = began
            task.ticket = FINISHED  # no Task <-> Entry cycle outlives the attempt
            if ok:
                try:
                    value = unpack_value(kind, payload)
                except BaseException as error:  # user code (__setstate__) may raise anything
                    ok, value = False, _load_failure(task, "result", error)
            else:
                value = unpack_error(payload)
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
        running = self._slots[STRIDE * worker.slot + SEQ]  # < 0: that item had finished
        if running != 0:
            self._boot_failures = 0
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
        if not self._closed:  # (once closing, close() owns the process objects)
            try:
                worker.process.close()  # its file descriptors now, not at the next full GC
            except ValueError:
                pass  # still running (join timed out); the finalizer kills it
        self._workers[worker.slot] = None
        if running == 0 and not worker.spoke and not worker.dying:  # never began an item
            self._start_up_failed(f"last exit code {exitcode}")

    def _start_up_failed(self, how: str) -> None:
        """One more worker died (or could not start) before its first item."""
        self._boot_failures += 1
        if self._boot_failures >= _BOOT_FAILURES and self._broken is None:
            self._broken = PoolkitError(
                f"worker processes die at start-up ({_BOOT_FAILURES} in a row, {how}); in a "
                "script, start process mode under `if __name__ == '__main__':`, and check "
                "that the function's module imports cleanly in a fresh interpreter"
            )
            self._fail_everything(self._broken)

    def _unloadable(self, worker: WorkerHandle, seqs: list[int], error: BaseException) -> None:
        """A chunk's items could not be loaded in the worker: find the one that cannot."""
        entries = [self._entries.get(seq) for seq in seqs]
        live = [e for e in entries if e is not None]
        for chunk in list(worker.chunks):
            if any(e.seq in seqs for e in chunk):
                worker.chunks.remove(chunk)
        if len(seqs) == 1:
            for entry in live:
                del self._entries[entry.seq]
                failure = _load_failure(entry.task, "item", error)
                entry.task.reply.put((entry.task, entry.number, False, failure))
            return
        for entry in live:  # each alone now, so only the culprit fails
            entry.worker = None
            entry.alone = True
        self._pending.extendleft(reversed(live))

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


def _collect(backend_ref: weakref.ref[ProcessBackend]) -> None:
    """The collector thread: reads results, watches sentinels, kills what overstays.

    It holds the backend only by a weak reference between rounds, so a runner dropped
    without ``close()`` is garbage-collected and its finalizer stops the workers.
    """
    wait = multiprocessing.connection.wait
    while True:
        backend = backend_ref()
        step = None if backend is None else backend._watch()
        if step is None:
            return
        watch, timeout = step
        del backend
        try:
            ready = wait(list(watch), _POLL if timeout is None else min(timeout, _POLL))
        except OSError:
            continue
        backend = backend_ref()
        if backend is None:
            return
        try:
            backend._react(watch, ready)
        except BaseException as error:  # nothing may kill the collector
            log.error("process mode: the collector met %r; carrying on", error)
        del backend


def _loads(blob: bytes) -> tuple[Any, ...]:
    message: tuple[Any, ...] = pickle.loads(blob)
    return message


def _drain(connection: Any) -> None:
    while connection.poll():
        connection.recv_bytes()


def _load_failure(task: Task, what: str, error: BaseException) -> BaseException:
    """Why an item (loaded in the worker) or its result (loaded here) could not be loaded."""
    where = "in the worker process" if what == "item" else "in the parent process"
    subject = task.item if what == "item" else None
    kind = type(subject).__name__ if what == "item" else "result"
    hint = (
        "; a class defined in __main__ under `python -c`, in a REPL or a notebook cannot "
        "be imported by a worker: define it in a module"
        if what == "item"
        else ""
    )
    problem = pickle.UnpicklingError(
        f"process mode could not load item #{task.index}'s {what} ({kind}) {where}: "
        f"{type(error).__name__}: {error}{hint}"
    )
    problem.__cause__ = error
    return problem
