"""Process mode: worker processes that survive their own deaths.

What the engine hands over (a Run, or Tasks) becomes a ``Work`` (``_work.py``), sent
in pieces (chunks sized so one takes about ``_TARGET_CHUNK_SECONDS``), yet crash,
timeout and retry still act per item: each worker writes which item it runs (its
chunk and position) and when it started into shared memory, so when a worker dies
the parent knows exactly which item killed it. That item gets ``WorkerCrashed``; the
rest of its chunk runs again on another worker; the dead worker is replaced. A
timed-out or stopped item's worker is terminated (then killed after a grace period)
and replaced.

Threads in the parent: the engine's thread calls ``start``/``stop``; one ``Collector``
thread per backend (``_collector.py``) reads results and watches the workers'
sentinels. One lock guards the state they share, which is this class's attributes
without a leading underscore. ``_handle.py`` starts and stops the processes;
``_child.py`` is what runs inside them; ``_wire.py`` is what travels between them.
"""

from __future__ import annotations

import atexit
import itertools
import multiprocessing
import multiprocessing.util
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from multiprocessing.context import BaseContext
from typing import Any, TypeGuard

from poolkit._backends._chunks import ChunkSizer
from poolkit._backends._pickling import dumps, pickle_initializer, why_unpicklable
from poolkit._core._attempt import copy_error
from poolkit._core._backend import Backend
from poolkit._core._task import Job, Run, Task
from poolkit._errors import PoolkitError

from ._buffers import pack_items
from ._collector import Collector
from ._handle import WorkerHandle, default_start_method, kill_all, preload_worker_module
from ._wire import HALT, MARK, STRIDE, TIME, FunctionTable, mark, split_mark
from ._work import FINISHED, Piece, RunWork, TaskWork, Work

__all__ = ["ProcessBackend"]

_LIVE: weakref.WeakSet[ProcessBackend] = weakref.WeakSet()


def _kill_leftovers() -> None:
    """At exit, kill the workers of backends never closed: they are not daemons, and
    multiprocessing's own exit hook (registered before this one, so run after it)
    would wait for them forever."""
    for backend in list(_LIVE):
        backend._finalizer()


atexit.register(_kill_leftovers)


def _takes_work(worker: WorkerHandle | None) -> TypeGuard[WorkerHandle]:
    """A live worker that may be sent more items (not stopping, not retiring)."""
    return (
        worker is not None
        and not worker.dying
        and not worker.gone
        and (worker.budget is None or worker.budget > 0)
    )


# (each chunk wakes the parent's threads a few times, CPU taken from the workers on a
# small machine: 10 ms chunks of 1 ms items cost the parent 2.5x the CPU of 40 ms ones)
_TARGET_CHUNK_SECONDS = 0.04
_MAX_CHUNK = 2048
_CHUNK_BYTES = 8 << 20  # a chunk of items this large (pickled, buffers included) is enough
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
        # In runs: enough for every worker's chunks ahead at the largest chunk size.
        self.default_run_in_flight = 2 * (_CHUNKS_AHEAD + 1) * _MAX_CHUNK * workers
        self._workers_wanted = workers
        self._context: BaseContext = multiprocessing.get_context(method)
        if method == "forkserver":
            preload_worker_module()
        self.initializer = initializer
        self._initializer_blob = pickle_initializer(initializer, tuple(initargs))
        self._max_tasks = max_tasks_per_child
        self.sizer = ChunkSizer(
            chunksize, target=_TARGET_CHUNK_SECONDS, largest=_MAX_CHUNK, first=1
        )
        self._init_limit = initializer_timeout
        self._attempt_limit: float | None = None  # the latest batch's timeout, for start-up
        self.slots: Any = self._context.RawArray("d", STRIDE * workers)
        self.lock = threading.RLock()
        self.workers: list[WorkerHandle | None] = [None] * workers
        self.pending: deque[Piece] = deque()  # not sent yet, in the order to send them
        self.sent: dict[int, Piece] = {}  # by seq: sent, with outcomes still to come
        self._item_bytes = 0.0  # the size of one item in the last chunk sent
        self._seq = itertools.count(1)
        self._functions = FunctionTable()
        self.broken: BaseException | None = None
        self.boot_failures = 0  # workers in a row that died before sending anything
        self.closed = False
        self.wake_r, self._wake_w = self._context.Pipe(duplex=False)
        self._collector: Collector | None = None
        self._alive = [True]  # cleared by the finalizer: no more workers after that
        self._finalizer = weakref.finalize(self, kill_all, self.workers, self._alive)
        _LIVE.add(self)

    # -- the engine's interface -------------------------------------------------------

    def start(self, tasks: Sequence[Task]) -> None:
        with self.lock:
            if self.closed:
                raise RuntimeError("this process runner is closed")
            group: list[Task] = []
            for task in tasks:
                if group and task.job is not group[0].job:
                    self._take(TaskWork(group))
                    group = []
                group.append(task)
            if group:
                self._take(TaskWork(group))
            self.ensure_workers()
            self.dispatch()

    def takes_runs(self, job: Job) -> bool:
        return True

    def start_run(self, run: Run) -> None:
        with self.lock:
            if self.closed:
                raise RuntimeError("this process runner is closed")
            self._take(RunWork(run))
            self.ensure_workers()
            self.dispatch()

    def _take(self, work: Work) -> None:
        """Queue ``work``, or fail all of it when it cannot run."""
        self._attempt_limit = work.job.timeout
        blob = self._functions.get(work.job)[1]
        refused = blob if isinstance(blob, Exception) else self.broken
        if refused is not None:
            for position in range(len(work.items)):
                work.fail(position, copy_error(refused))
            return
        if isinstance(work, TaskWork):
            for position, task in enumerate(work.tasks):
                task.ticket = (work, position)
        self.pending.append(Piece(work, 0, len(work.items)))

    def stop(self, tasks: Sequence[Task]) -> None:
        with self.lock:
            for task in tasks:
                ticket = task.ticket
                if type(ticket) is tuple:
                    work, position = ticket
                    work.settled.add(position)
                    self._drop(work, position, position + 1)

    def stop_runs(self, runs: Sequence[Run]) -> list[list[tuple[int, bool]]]:
        with self.lock:
            # Found through their pieces: a Run <-> RunWork cycle would keep every
            # batch's function alive until the next full garbage collection.
            found = [
                [
                    p
                    for p in (*self.pending, *self.sent.values())
                    if isinstance(p.work, RunWork) and p.work.run is run
                ]
                for run in runs
            ]
            for pieces in found:  # first halt them all: no worker starts another
                for piece in pieces:
                    if piece.worker is not None:
                        self.slots[STRIDE * piece.worker.slot + HALT] = 1
            answers: list[list[tuple[int, bool]]] = []
            for pieces in found:
                answers.append(
                    [
                        (position, self._started(piece, position))
                        for piece in pieces
                        for position in range(piece.lo + piece.done, piece.hi)
                    ]
                )
                if pieces:
                    work = pieces[0].work
                    assert isinstance(work, RunWork)
                    work.stopped = True
                    self._drop(work, 0, len(work.items))
            return answers

    def _pieces_of(self, work: Work) -> list[Piece]:
        """``work``'s pieces with outcomes still to come, pending or sent."""
        return [p for p in (*self.pending, *self.sent.values()) if p.work is work]

    def _drop(self, work: Work, lo: int, hi: int) -> None:
        """Nobody wants positions ``lo … hi-1`` of ``work`` any more: unsend what is not
        needed, and stop the workers running any of them."""
        for piece in self._pieces_of(work):
            if piece.hi <= lo or hi <= piece.lo + piece.done:
                continue
            if piece.worker is None:  # not sent: keep only what is still wanted
                at = self.pending.index(piece)
                del self.pending[at]
                for part in reversed(work.pieces(piece.lo, piece.hi, alone=piece.alone)):
                    self.pending.insert(at, part)
            elif work.live(piece.lo + piece.done, piece.hi):
                self.terminate(piece.worker)  # its other items are sent again
            else:
                self.forget(piece)
                self.terminate(piece.worker)

    def can_stop(self, task: Task) -> bool:
        return True

    def started_at(self, task: Task) -> float | None:
        piece, position = self._find(task)
        if piece is None or piece.worker is None:
            return None
        slots, at = self.slots, STRIDE * piece.worker.slot
        running = mark(piece.seq, position - piece.lo)
        if slots[at + MARK] != running:
            return None  # not yet started, or finished with its result on the way
        started = float(slots[at + TIME])
        return started if slots[at + MARK] == running else None

    def halt(self, tasks: Sequence[Task]) -> None:
        """Tell the workers running these attempts to start nothing more (a cut comes)."""
        for task in tasks:
            piece, _ = self._find(task)
            if piece is not None and piece.worker is not None:
                self.slots[STRIDE * piece.worker.slot + HALT] = 1

    def has_started(self, task: Task) -> bool:
        """True once the attempt began running in its worker (finished ones included)."""
        if task.ticket is FINISHED:
            return True
        piece, position = self._find(task)
        return piece is not None and self._started(piece, position)

    def _find(self, task: Task) -> tuple[Piece | None, int]:
        """The piece holding ``task``'s attempt, and its position in its Work."""
        ticket = task.ticket
        if type(ticket) is not tuple:
            return None, 0
        work, position = ticket
        for piece in self._pieces_of(work):
            if piece.holds(work, position):
                return piece, position
        return None, position

    def _started(self, piece: Piece, position: int) -> bool:
        """True once the item at ``position`` (in ``piece``) began running."""
        worker = piece.worker
        if worker is None:
            return False
        if position < piece.lo + piece.done:
            return True
        value = self.slots[STRIDE * worker.slot + MARK]
        if value == 0:
            return False
        seq, running = split_mark(value)
        if seq == piece.seq:
            return position - piece.lo <= running
        # Chunks run in the order they were sent: ``piece`` ran if it comes before the
        # one the worker is on (a chunk no longer listed is done, so came before both).
        order = [sent.seq for sent in worker.chunks]
        if seq not in order or piece.seq not in order:
            return False
        return order.index(piece.seq) < order.index(seq)

    def close(self) -> None:
        with self.lock:
            if self.closed:
                return
            self.closed = True
            workers = [w for w in self.workers if w is not None]
        for worker in workers:
            if worker.dying or any(self.sent.get(p.seq) is p for p in worker.chunks):
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
        with self.lock:  # (the pieces stay listed: a batch still ending asks about them)
            for piece in self.sent.values():
                if piece.segment is not None:
                    piece.segment.release()
                    piece.segment = None
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
        """Start workers for the chunks waiting that no idle worker will take, up to
        ``workers`` processes in all: one item after another reuses one process (as
        ``ProcessPoolExecutor`` does), a batch starts as many as its chunks can use."""
        wanted = self._more_workers_wanted()
        for slot, worker in enumerate(self.workers):
            if wanted <= 0:
                break
            if worker is None and not self.closed and self.broken is None and self._alive[0]:
                wanted -= 1
                try:
                    self.workers[slot] = WorkerHandle(
                        self._context,
                        self.slots,
                        slot,
                        self._initializer_blob,
                        self._max_tasks,
                    )
                except Exception as error:  # e.g. the forkserver died importing __main__
                    self.start_up_failed(f"starting one raised {type(error).__name__}")
                    continue
                self.wake()
        if self._collector is None:
            self._collector = Collector(self)
            self._collector.start()

    def _more_workers_wanted(self) -> int:
        """(Lock held.) How many chunks of the work waiting no idle worker would take."""
        pending = self.pending
        if not pending:
            return 0
        idle = sum(1 for w in self.workers if _takes_work(w) and not w.chunks)
        waiting = sum(len(piece) for piece in pending)
        size = self.sizer.size(pending[0].work.job, waiting, self._workers_wanted)
        return -(-waiting // max(1, size)) - idle

    # -- sending work -----------------------------------------------------------------

    def dispatch(self) -> None:
        pending = self.pending
        while pending:
            ready = [w for w in self.workers if _takes_work(w) and len(w.chunks) < _CHUNKS_AHEAD]
            if not ready:
                return
            waiting = sum(len(piece) for piece in pending)
            # Guided by all the workers' chunks ahead, not by the ready ones (often one,
            # whose "fair share" was everything): the chunks shrink toward the end of a
            # batch, so no worker is left running a whole chunk while the others idle.
            shares = _CHUNKS_AHEAD * self._workers_wanted
            size = self.sizer.size(pending[0].work.job, waiting, shares)
            if self._item_bytes:  # large items: fewer per chunk, whatever their speed
                size = min(size, max(1, int(_CHUNK_BYTES / self._item_bytes)))
            for worker in sorted(ready, key=lambda w: len(w.chunks)):
                if not pending:
                    return
                self._send_chunk(worker, size)

    def _send_chunk(self, worker: WorkerHandle, size: int) -> None:
        pending = self.pending
        if worker.budget is not None:
            size = min(size, worker.budget)
        piece = pending.popleft()
        if len(piece) > size:  # send its first ``size`` items; the rest waits
            rest = Piece(piece.work, piece.lo + size, piece.hi)
            piece.hi = piece.lo + size
            pending.appendleft(rest)
        work = piece.work
        key, blob = self._functions.get(work.job)
        try:
            if key in worker.functions:
                worker.functions.use(key)
            else:
                worker.tasks.send_bytes(dumps(("fn", key, blob)))
                worker.functions.add(key, True)
            piece.seq = next(self._seq)
            message = self._pack(key, piece)
            if message is None:
                return
            worker.tasks.send_bytes(message)
            extra = piece.segment.size if piece.segment is not None else 0
            self._item_bytes = (len(message) + extra) / len(piece)
        except (OSError, ValueError):  # the worker is gone; its sentinel will tell
            # Not terminate(): it died on its own, and the item it was running must
            # be charged for it (a stop on purpose charges nobody). It takes no more work.
            worker.gone = True
            self.forget(piece)
            piece.seq = 0
            pending.appendleft(piece)
            return
        piece.worker = worker
        self.sent[piece.seq] = piece
        worker.chunks.append(piece)
        if worker.budget is not None:
            worker.budget -= len(piece)
            if worker.budget <= 0:  # max_tasks_per_child reached: it retires after this chunk
                try:
                    worker.tasks.send_bytes(dumps(None))
                except OSError:
                    pass

    def _pack(self, key: bytes, piece: Piece) -> bytes | None:
        """The chunk message; None when an item cannot be pickled (then each of the
        piece's items waits to be sent alone, and those that cannot pickle fail)."""
        work = piece.work
        numbers = work.numbers(piece.lo, piece.hi)
        try:
            blob, where, piece.segment = pack_items(work.items[piece.lo : piece.hi])
            return dumps(("chunk", key, piece.seq, numbers, blob, where))
        except Exception:
            pass
        alone = []
        for position in range(piece.lo, piece.hi):
            reason = why_unpicklable(work.items[position])
            if reason is None:
                alone.append(Piece(work, position, position + 1, alone=True))
                continue
            error = TypeError(
                f"process mode could not pickle item #{work.index(position)} "
                f"({type(work.items[position]).__name__}) to send it to a worker: {reason}"
            )
            work.fail(position, error)
        self.pending.extendleft(reversed(alone))
        return None

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

    def forget(self, piece: Piece) -> None:
        """``piece`` is done with (its outcomes are in, or it is dropped or sent again):
        release its shared memory."""
        if self.sent.get(piece.seq) is piece:
            del self.sent[piece.seq]
        if piece.segment is not None:
            piece.segment.release()
            piece.segment = None

    def fail_everything(self, error: BaseException) -> None:
        for piece in [*self.sent.values(), *self.pending]:
            for position in range(piece.lo + piece.done, piece.hi):
                if piece.work.live(position, position + 1):
                    piece.work.fail(position, copy_error(error))
        for piece in list(self.sent.values()):
            self.forget(piece)
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
