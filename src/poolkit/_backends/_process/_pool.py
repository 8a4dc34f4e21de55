"""Process mode: worker processes that survive their own deaths.

Small items are sent in chunks (sized so a chunk takes about ``_TARGET_CHUNK_SECONDS``)
but crash, timeout and retry still act per item: each worker writes the ``seq`` and
start time of the item it runs into shared memory, so when a worker dies the parent
knows exactly which item killed it. That item gets ``WorkerCrashed``; the rest of its
chunk runs again on another worker; the dead worker is replaced. A timed-out or
stopped item's worker is terminated (then killed after a grace period) and replaced.

Threads in the parent: the engine's thread calls ``start``/``stop``; one ``Collector``
thread per backend (``_collector.py``) reads results and watches the workers'
sentinels. One lock guards the state they share, which is this class's attributes
without a leading underscore. ``_handle.py`` starts and stops the processes;
``_child.py`` is what runs inside them; ``_wire.py`` is what travels between them.
"""

from __future__ import annotations

import itertools
import multiprocessing
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from multiprocessing.context import BaseContext
from typing import Any

from poolkit._backends._chunks import ChunkSizer
from poolkit._backends._pickling import dumps, why_unpicklable
from poolkit._core._attempt import copy_error
from poolkit._core._backend import Backend
from poolkit._core._task import Task
from poolkit._errors import PoolkitError

from ._collector import Collector
from ._handle import (
    FINISHED,
    Entry,
    WorkerHandle,
    default_start_method,
    kill_all,
    preload_worker_module,
)
from ._wire import HALT, SEQ, STRIDE, TIME, FunctionTable

__all__ = ["ProcessBackend"]

_TARGET_CHUNK_SECONDS = 0.01
_MAX_CHUNK = 512
_CHUNKS_AHEAD = 2  # chunks queued per worker, so it never waits for the parent
_BOOT_FAILURES = 3  # workers dying in a row before saying anything: the pool is broken


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
        self.initializer = initializer
        self._initargs = tuple(initargs)
        self._max_tasks = max_tasks_per_child
        self.sizer = ChunkSizer(
            chunksize, target=_TARGET_CHUNK_SECONDS, largest=_MAX_CHUNK, first=8
        )
        self._init_limit = initializer_timeout
        self._attempt_limit: float | None = None  # the latest batch's timeout, for start-up
        self.slots: Any = self._context.RawArray("d", STRIDE * workers)
        self.lock = threading.RLock()
        self.workers: list[WorkerHandle | None] = [None] * workers
        self.pending: deque[Entry] = deque()
        self.entries: dict[int, Entry] = {}
        self._seq = itertools.count(1)
        self._functions = FunctionTable()
        self.broken: BaseException | None = None
        self.boot_failures = 0  # workers in a row that died before sending anything
        self.closed = False
        self.wake_r, self._wake_w = self._context.Pipe(duplex=False)
        self._collector: Collector | None = None
        self._alive = [True]  # cleared by the finalizer: no more workers after that
        self._finalizer = weakref.finalize(self, kill_all, self.workers, self._alive)

    # -- the engine's interface -------------------------------------------------------

    def start(self, tasks: Sequence[Task]) -> None:
        with self.lock:
            if self.closed:
                raise RuntimeError("this process runner is closed")
            job: Any = None
            refused: BaseException | None = None
            entries = self.entries
            pending = self.pending
            seq = self._seq
            for task in tasks:
                if task.job is not job:
                    job = task.job
                    self._attempt_limit = job.timeout
                    blob = self._functions.get(job)[1]
                    refused = blob if isinstance(blob, Exception) else self.broken
                if refused is not None:
                    task.reply.put((task, task.attempts, False, copy_error(refused)))
                    continue
                entry = Entry(next(seq), task, task.attempts)
                task.ticket = entry
                entries[entry.seq] = entry
                pending.append(entry)
            self.ensure_workers()
            self.dispatch()

    def stop(self, tasks: Sequence[Task]) -> None:
        with self.lock:
            stopping: set[WorkerHandle] = set()
            for task in tasks:
                entry = task.ticket
                if not isinstance(entry, Entry) or self.entries.get(entry.seq) is not entry:
                    continue
                del self.entries[entry.seq]
                if entry.worker is None:
                    try:
                        self.pending.remove(entry)
                    except ValueError:
                        pass
                else:
                    stopping.add(entry.worker)
            for worker in stopping:
                self.terminate(worker)

    def can_stop(self, task: Task) -> bool:
        return True

    def started_at(self, task: Task) -> float | None:
        entry = task.ticket
        if not isinstance(entry, Entry) or entry.worker is None:
            return None
        slots, at = self.slots, STRIDE * entry.worker.slot
        if slots[at + SEQ] != entry.seq:
            return None  # not yet started, or finished with its result on the way
        started = float(slots[at + TIME])
        return started if slots[at + SEQ] == entry.seq else None

    def halt(self, tasks: Sequence[Task]) -> None:
        """Tell the workers running these attempts to start nothing more (a cut comes)."""
        for task in tasks:
            entry = task.ticket
            if isinstance(entry, Entry) and entry.worker is not None:
                self.slots[STRIDE * entry.worker.slot + HALT] = 1

    def has_started(self, task: Task) -> bool:
        """True once the attempt began running in its worker (finished ones included)."""
        entry = task.ticket
        if entry is FINISHED:
            return True
        if not isinstance(entry, Entry) or entry.worker is None:
            return False
        running = abs(self.slots[STRIDE * entry.worker.slot + SEQ])
        for chunk in entry.worker.chunks:  # sent in this order, and run in it
            for sent in chunk:
                if sent is entry:
                    return bool(running)
                if sent.seq == running:
                    return False
        return False

    def close(self) -> None:
        with self.lock:
            if self.closed:
                return
            self.closed = True
            workers = [w for w in self.workers if w is not None]
        for worker in workers:
            if worker.dying or any(self.entries.get(e.seq) is e for c in worker.chunks for e in c):
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
        self.wake()
        if self._collector is not None and self._collector is not threading.current_thread():
            self._collector.join(5.0)
        for worker in workers:
            worker.close_pipes()
            try:
                worker.process.close()
            except ValueError:
                pass
        self.wake_r.close()
        self._wake_w.close()
        self._finalizer.detach()

    # -- workers ----------------------------------------------------------------------

    def ensure_workers(self) -> None:
        for slot, worker in enumerate(self.workers):
            if worker is None and not self.closed and self.broken is None and self._alive[0]:
                try:
                    self.workers[slot] = WorkerHandle(
                        self._context,
                        self.slots,
                        slot,
                        self.initializer,
                        self._initargs,
                        self._max_tasks,
                    )
                except Exception as error:  # e.g. the forkserver died importing __main__
                    self.start_up_failed(f"starting one raised {type(error).__name__}")
                    continue
                self.wake()
        if self._collector is None:
            self._collector = Collector(self)
            self._collector.start()

    # -- sending work -----------------------------------------------------------------

    def dispatch(self) -> None:
        pending = self.pending
        while pending:
            ready = [
                w
                for w in self.workers
                if w is not None
                and not w.dying
                and not w.gone
                and len(w.chunks) < _CHUNKS_AHEAD
                and (w.budget is None or w.budget > 0)
            ]
            if not ready:
                return
            size = self.sizer.size(pending[0].task.job, len(pending), len(ready))
            for worker in sorted(ready, key=lambda w: len(w.chunks)):
                if not pending:
                    return
                self._send_chunk(worker, size)

    def _send_chunk(self, worker: WorkerHandle, size: int) -> None:
        pending = self.pending
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
            # Not terminate(): it died on its own, and the item it was running must
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
                del self.entries[entry.seq]
                error = TypeError(
                    f"process mode could not pickle item #{entry.task.index} "
                    f"({type(entry.task.item).__name__}) to send it to a worker: {reason}"
                )
                entry.task.reply.put((entry.task, entry.number, False, error))
        items = dumps([e.task.item for e in chunk])
        return dumps(("chunk", key, [(e.seq, e.number) for e in chunk], items))

    # -- shared with the collector -------------------------------------------------

    def init_limit_now(self) -> float | None:
        """How long an initializer may take: initializer_timeout, else the attempt timeout."""
        if self.initializer is None:
            return None
        return self._init_limit if self._init_limit is not None else self._attempt_limit

    def start_up_failed(self, how: str) -> None:
        """One more worker died (or could not start) before its first item."""
        self.boot_failures += 1
        if self.boot_failures >= _BOOT_FAILURES and self.broken is None:
            self.broken = PoolkitError(
                f"worker processes die at start-up ({_BOOT_FAILURES} in a row, {how}); in a "
                "script, start process mode under `if __name__ == '__main__':`, and check "
                "that the function's module imports cleanly in a fresh interpreter"
            )
            self.fail_everything(self.broken)

    def terminate(self, worker: WorkerHandle) -> None:
        if worker.terminate():
            self.wake()

    def _fail_chunk(self, worker: WorkerHandle, error: Exception) -> None:
        for chunk in worker.chunks:
            for entry in chunk:
                if self.entries.pop(entry.seq, None) is entry:
                    entry.task.reply.put((entry.task, entry.number, False, copy_error(error)))
        worker.chunks.clear()

    def fail_everything(self, error: BaseException) -> None:
        for entry in list(self.entries.values()):
            entry.task.reply.put((entry.task, entry.number, False, copy_error(error)))
        self.entries.clear()
        self.pending.clear()
        for worker in self.workers:
            if worker is not None:
                worker.chunks.clear()
                self.terminate(worker)

    def wake(self) -> None:
        try:
            self._wake_w.send_bytes(b"")
        except OSError:
            pass
