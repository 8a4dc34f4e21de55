"""The collector: the one thread of a process pool that listens to its workers.

Like CPython's ``_ExecutorManagerThread``, it waits on every worker's result pipe and
process sentinel at once, plus a wake-up pipe the pool writes to when it has news. In
each round it reads results first (handing them to their batches), then buries the
workers that died (blaming the item each was running, sending the rest of its chunks
elsewhere), then kills what overstayed, then lets the pool start replacements and send
waiting work. All of it under the pool's lock.

It holds the pool only by a weak reference between rounds, so a runner dropped without
``close()`` is garbage-collected and its finalizer stops the workers.
"""

from __future__ import annotations

import logging
import multiprocessing.connection
import pickle
import threading
import time
import weakref
from array import array
from typing import TYPE_CHECKING, Any

from poolkit._backends._pickling import unpack_error
from poolkit._errors import PoolkitError, WorkerCrashed
from poolkit._quote import describe, short_repr

from ._handle import WorkerHandle
from ._wire import MARK, STRIDE, split_mark
from ._work import Piece, Work

if TYPE_CHECKING:
    from ._pool import ProcessBackend

__all__ = ["GRACE", "Collector"]

log = logging.getLogger("poolkit")

GRACE = 0.3  # seconds between terminate() and kill() of a worker being stopped
_POLL = 1.0  # at least this often, look whether the pool was dropped

_Watch = dict[Any, tuple[str, WorkerHandle | None]]


class Collector(threading.Thread):
    """Reads results, watches sentinels, kills what overstays; see the module docstring."""

    def __init__(self, pool: ProcessBackend) -> None:
        super().__init__(name="poolkit-process-collector", daemon=True)
        self._pool = weakref.ref(pool)

    def run(self) -> None:
        wait = multiprocessing.connection.wait
        while True:
            pool = self._pool()
            step = None if pool is None else _watch(pool)
            if step is None:
                return
            watch, timeout = step
            del pool  # not kept alive while waiting
            try:
                ready = wait(list(watch), _POLL if timeout is None else min(timeout, _POLL))
            except OSError:
                continue
            pool = self._pool()
            if pool is None:
                return
            try:
                _react(pool, watch, ready)
            except BaseException as error:  # nothing may kill the collector
                log.error("process mode: the collector met %r; carrying on", error)
            del pool


def _watch(pool: ProcessBackend) -> tuple[_Watch, float | None] | None:
    """What to wait on, and for how long; None once the pool is closed."""
    with pool.lock:
        if pool.closed:
            return None
        live = [w for w in pool.workers if w is not None]
        watch: _Watch = {pool.wake_r: ("wake", None)}
        for w in live:
            watch[w.results] = ("results", w)
            watch[w.process.sentinel] = ("died", w)
        return watch, _next_deadline(pool, live)


def _react(pool: ProcessBackend, watch: _Watch, ready: list[Any]) -> None:
    """One round: results first, then deaths, then overdue kills, then new work."""
    with pool.lock:
        for handle in ready:
            kind, worker = watch[handle]
            if kind == "wake":
                while pool.wake_r.poll():
                    pool.wake_r.recv_bytes()
            elif kind == "results" and worker is not None:
                receive(pool, worker)
        for handle in ready:
            kind, worker = watch[handle]
            if kind == "died" and worker is not None:
                _bury(pool, worker)
        _kill_overdue(pool)
        if not pool.closed:
            pool.ensure_workers()
            pool.dispatch()


def _next_deadline(pool: ProcessBackend, live: list[WorkerHandle]) -> float | None:
    """Seconds until a stopped worker must be killed or an initializer is overdue."""
    due = [w.terminated_at + GRACE for w in live if w.dying]
    limit = pool.init_limit_now()
    if limit is not None:
        due += [w.born + limit for w in live if not w.ready and not w.dying]
    return max(0.0, min(due) - time.monotonic()) if due else None


def _kill_overdue(pool: ProcessBackend) -> None:
    now = time.monotonic()
    limit = pool.init_limit_now()
    for worker in pool.workers:
        if worker is None:
            continue
        worker.kill_if_overdue(now, GRACE)
        if (
            limit is not None
            and not worker.ready
            and not worker.dying
            and now >= worker.born + limit
            and pool.broken is None
        ):
            pool.broken = PoolkitError(
                f"the worker initializer {short_repr(pool.initializer, 200)} did not finish within "
                f"{limit} s (initializer_timeout, or the attempt timeout); no item can run"
            )
            pool.fail_everything(pool.broken)


def receive(pool: ProcessBackend, worker: WorkerHandle) -> None:
    """Read and handle every message ``worker`` has sent so far."""
    try:
        while worker.results.poll():
            message: tuple[Any, ...] = pickle.loads(worker.results.recv_bytes())
            try:
                _handle(pool, worker, message)
            except BaseException as error:  # poolkit's own bug: see _give_up
                log.error("process mode: a message from worker %s failed: %r", worker.pid, error)
                _give_up(pool, message, error)
    except (EOFError, OSError):
        pass  # it died; its sentinel says so
    except BaseException as error:  # a message that cannot be loaded: poolkit's own bug
        log.error("process mode: a message from worker %s could not be read: %r", worker.pid, error)
        pool.terminate(worker)


def _give_up(pool: ProcessBackend, message: tuple[Any, ...], error: BaseException) -> None:
    """Taking in a chunk's outcomes raised: those items end as an Err that says so.

    Never by running them again: a failure that depends on the outcome (it once did, on
    an exception the parent could not attach a traceback to) would fail again on every
    worker, for ever. Items the message had already posted are left as they are.
    """
    if message[0] != "results":
        return
    seq, start, count = message[1], message[2], len(message[3])
    piece = pool.sent.get(seq)
    if piece is None or piece.done >= start + count:
        return
    failure = PoolkitError(
        f"process mode could not take in this item's outcome from its worker "
        f"({describe(error)}); this is a bug in poolkit, please report it"
    )
    failure.__cause__ = error
    work = piece.work
    for position in range(piece.lo + start, piece.lo + start + count):
        if work.live(position, position + 1):
            work.fail(position, failure)
    piece.done = start + count
    if piece.done >= len(piece):
        pool.forget(piece)


def _handle(pool: ProcessBackend, worker: WorkerHandle, message: tuple[Any, ...]) -> None:
    kind = message[0]
    if kind == "init_failed":
        cause = unpack_error(message[1])
        broken = PoolkitError(
            f"the worker initializer {short_repr(pool.initializer, 200)} raised "
            f"{describe(cause)}; no item can run"
        )
        broken.__cause__ = cause
        pool.broken = broken
        pool.fail_everything(broken)
    elif kind == "ready":
        worker.ready = True
    elif kind == "unloadable":
        _unloadable(pool, message[1], unpack_error(message[2]))
    else:
        _results(pool, worker, *message[1:])


def _results(
    pool: ProcessBackend,
    worker: WorkerHandle,
    seq: int,
    start: int,
    values: list[Any],
    pickled: list[int] | None,
    failed: dict[int, Any] | None,
    began_bytes: bytes,
    ran_bytes: bytes,
    busy: float,
) -> None:
    """Outcomes of chunk ``seq``'s items ``start …``, in order (see ``_wire.py``)."""
    worker.spoke = True
    pool.boot_failures = 0
    piece = pool.sent.get(seq)
    if piece is None:
        return  # stopped by the engine meanwhile
    work = piece.work
    pool.sizer.observe(work.job, len(values), busy)
    errors = {k: unpack_error(package) for k, package in failed.items()} if failed else None
    for k in pickled or ():
        try:
            values[k] = pickle.loads(values[k])
        except BaseException as error:  # user code (__setstate__) may raise anything
            values[k] = None
            errors = errors or {}
            errors[k] = load_failure(work, piece.lo + start + k, "result", error)
    began, ran = array("d"), array("d")
    began.frombytes(began_bytes)
    ran.frombytes(ran_bytes)
    piece.done = start + len(values)
    if piece.done >= len(piece):
        pool.forget(piece)
    work.post(piece.lo + start, values, errors, began, ran)
    chunks = worker.chunks
    while chunks and pool.sent.get(chunks[0].seq) is not chunks[0]:
        chunks.popleft()


def _bury(pool: ProcessBackend, worker: WorkerHandle) -> None:
    """A worker exited: blame the item it was running, send the rest elsewhere."""
    receive(pool, worker)  # results it sent before dying still count
    worker.process.join(1.0)
    exitcode = worker.process.exitcode
    value = pool.slots[STRIDE * worker.slot + MARK]  # < 0: that item had finished
    running = split_mark(value) if value > 0 else None
    if value != 0:
        pool.boot_failures = 0
    again: list[Piece] = []
    for piece in worker.chunks:
        if pool.sent.get(piece.seq) is not piece:
            continue
        pool.forget(piece)
        work, lo = piece.work, piece.lo + piece.done
        # A worker killed by close() (or by a stop) charges nobody: its items end
        # as the engine says (Cancelled), not as WorkerCrashed.
        if running is not None and running[0] == piece.seq and not worker.dying and not pool.closed:
            culprit = piece.lo + running[1]
            if work.live(culprit, culprit + 1):
                crash = WorkerCrashed(exitcode=exitcode, pid=worker.pid)
                work.fail(culprit, crash)
            again += work.pieces(lo, culprit, alone=piece.alone)
            again += work.pieces(culprit + 1, piece.hi, alone=piece.alone)
        else:
            again += work.pieces(lo, piece.hi, alone=piece.alone)
    worker.chunks.clear()
    pool.pending.extendleft(reversed(again))
    worker.close_pipes()
    if not pool.closed:  # (once closing, close() owns the process objects)
        try:
            worker.process.close()  # its file descriptors now, not at the next full GC
        except ValueError:
            pass  # still running (join timed out); the finalizer kills it
    pool.workers[worker.slot] = None
    if value == 0 and not worker.spoke and not worker.dying:  # never began an item
        pool.start_up_failed(f"last exit code {exitcode}")


def _unloadable(pool: ProcessBackend, seq: int, error: BaseException) -> None:
    """A chunk's items could not be loaded in the worker: find the one that cannot."""
    piece = pool.sent.get(seq)
    if piece is None:
        return
    pool.forget(piece)
    if piece.worker is not None and piece in piece.worker.chunks:
        piece.worker.chunks.remove(piece)
    work = piece.work
    if len(piece) == 1:
        if work.live(piece.lo, piece.hi):
            work.fail(piece.lo, load_failure(work, piece.lo, "item", error))
        return
    alone = [  # each alone now, so only the culprit fails
        one
        for position in range(piece.lo, piece.hi)
        for one in work.pieces(position, position + 1, alone=True)
    ]
    pool.pending.extendleft(reversed(alone))


def load_failure(work: Work, position: int, what: str, error: BaseException) -> BaseException:
    """Why an item (loaded in the worker) or its result (loaded here) could not be loaded."""
    where = "in the worker process" if what == "item" else "in the parent process"
    kind = type(work.items[position]).__name__ if what == "item" else "result"
    hint = (
        "; a class defined in __main__ under `python -c`, in a REPL or a notebook cannot "
        "be imported by a worker: define it in a module"
        if what == "item"
        else ""
    )
    problem = pickle.UnpicklingError(
        f"process mode could not load item #{work.index(position)}'s {what} ({kind}) {where}: "
        f"{describe(error)}{hint}"
    )
    problem.__cause__ = error
    return problem
