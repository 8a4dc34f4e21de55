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
from typing import TYPE_CHECKING, Any

from poolkit._backends._chunks import send_replies
from poolkit._backends._pickling import unpack_error
from poolkit._core._task import Task
from poolkit._errors import PoolkitError, WorkerCrashed

from ._handle import FINISHED, Entry, WorkerHandle
from ._wire import SEQ, STRIDE, unpack_value

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
                f"the worker initializer {pool.initializer!r} did not finish within "
                f"{limit} s (initializer_timeout, or the attempt timeout); no item can run"
            )
            pool.fail_everything(pool.broken)


def receive(pool: ProcessBackend, worker: WorkerHandle) -> None:
    """Read and handle every message ``worker`` has sent so far."""
    try:
        while worker.results.poll():
            message: tuple[Any, ...] = pickle.loads(worker.results.recv_bytes())
            _handle(pool, worker, message)
    except (EOFError, OSError):
        pass  # it died; its sentinel says so
    except BaseException as error:  # a message that cannot be loaded: poolkit's own bug
        log.error("process mode: a message from worker %s could not be read: %r", worker.pid, error)
        pool.terminate(worker)


def _handle(pool: ProcessBackend, worker: WorkerHandle, message: tuple[Any, ...]) -> None:
    kind = message[0]
    if kind == "init_failed":
        cause = unpack_error(message[1])
        broken = PoolkitError(
            f"the worker initializer {pool.initializer!r} raised "
            f"{type(cause).__name__}: {cause}; no item can run"
        )
        broken.__cause__ = cause
        pool.broken = broken
        pool.fail_everything(broken)
    elif kind == "ready":
        worker.ready = True
    elif kind == "unloadable":
        _unloadable(pool, worker, message[1], unpack_error(message[2]))
    else:
        _results(pool, worker, message[1], message[2])


def _results(pool: ProcessBackend, worker: WorkerHandle, done: list[Any], busy: float) -> None:
    """A chunk's results: ``done`` holds (seq, ok, kind, payload, began) per item."""
    worker.spoke = True
    pool.boot_failures = 0
    entries = pool.entries
    first = entries.get(done[0][0]) if done else None
    if first is not None:
        pool.sizer.observe(first.task.job, len(done), busy)
    replies = []
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
                ok, value = False, load_failure(task, "result", error)
        else:
            value = unpack_error(payload)
        replies.append((task, entry.number, ok, value))
    send_replies(replies)
    # Exact, not by comparing seqs: items sent again after a crash keep their old seq,
    # so seqs are not monotonic across a worker's chunks.
    chunks = worker.chunks
    while chunks and all(entries.get(e.seq) is not e for e in chunks[0]):
        chunks.popleft()


def _bury(pool: ProcessBackend, worker: WorkerHandle) -> None:
    """A worker exited: blame the item it was running, send the rest elsewhere."""
    receive(pool, worker)  # results it sent before dying still count
    worker.process.join(1.0)
    exitcode = worker.process.exitcode
    running = pool.slots[STRIDE * worker.slot + SEQ]  # < 0: that item had finished
    if running != 0:
        pool.boot_failures = 0
    retry: list[Entry] = []
    for chunk in worker.chunks:
        for entry in chunk:
            if pool.entries.get(entry.seq) is not entry:
                continue
            # A worker killed by close() (or by a stop) charges nobody: its items end
            # as the engine says (Cancelled), not as WorkerCrashed.
            if entry.seq == running and not worker.dying and not pool.closed:
                del pool.entries[entry.seq]
                crash = WorkerCrashed(exitcode=exitcode, pid=worker.pid)
                entry.task.reply.put((entry.task, entry.number, False, crash))
            else:
                entry.worker = None
                retry.append(entry)
    pool.pending.extendleft(reversed(retry))
    worker.close_pipes()
    if not pool.closed:  # (once closing, close() owns the process objects)
        try:
            worker.process.close()  # its file descriptors now, not at the next full GC
        except ValueError:
            pass  # still running (join timed out); the finalizer kills it
    pool.workers[worker.slot] = None
    if running == 0 and not worker.spoke and not worker.dying:  # never began an item
        pool.start_up_failed(f"last exit code {exitcode}")


def _unloadable(
    pool: ProcessBackend, worker: WorkerHandle, seqs: list[int], error: BaseException
) -> None:
    """A chunk's items could not be loaded in the worker: find the one that cannot."""
    live = [e for e in (pool.entries.get(seq) for seq in seqs) if e is not None]
    for chunk in list(worker.chunks):
        if any(e.seq in seqs for e in chunk):
            worker.chunks.remove(chunk)
    if len(seqs) == 1:
        for entry in live:
            del pool.entries[entry.seq]
            failure = load_failure(entry.task, "item", error)
            entry.task.reply.put((entry.task, entry.number, False, failure))
        return
    for entry in live:  # each alone now, so only the culprit fails
        entry.worker = None
        entry.alone = True
    pool.pending.extendleft(reversed(live))


def load_failure(task: Task, what: str, error: BaseException) -> BaseException:
    """Why an item (loaded in the worker) or its result (loaded here) could not be loaded."""
    where = "in the worker process" if what == "item" else "in the parent process"
    kind = type(task.item).__name__ if what == "item" else "result"
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
