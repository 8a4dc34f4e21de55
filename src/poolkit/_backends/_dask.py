"""Dask mode: items run as tasks on a Dask distributed cluster.

Small items travel in chunks (one Dask task per chunk, one Result per item inside).
A running Dask task cannot be interrupted, so a timeout or a stop abandons it
(``TaskTimeout.stopped`` is False) and cancels what has not started. Dask reports
``KilledWorker`` for every task queued on a worker that died, not only for the one
that killed it; so the items of such tasks become suspects: new work waits, what runs
finishes, and each suspect runs alone on the cluster. One that kills its worker then
is the culprit (``WorkerCrashed``); the others just succeed.

With no ``client`` or ``address``, a ``LocalCluster`` of ``workers`` processes is
started and closed with the runner; it is configured with ``allowed-failures: 0`` so
a crashing item is reported at once instead of killing three more workers first.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from poolkit._core._attempt import WorkerContext, copy_error, initializer_failure, run_attempt
from poolkit._core._backend import Backend
from poolkit._core._task import Job, Task
from poolkit._errors import PoolkitError, WorkerCrashed

from ._chunks import ChunkSizer
from ._pickling import pack_error, unpack_error

__all__ = ["DaskBackend", "require_dask"]

log = logging.getLogger("poolkit")

# A Dask task costs about a millisecond of scheduling; a chunk of 0.2 s makes that
# negligible while a deadline or a lost worker throws away little finished work.
_TARGET_CHUNK_SECONDS = 0.2
_MAX_CHUNK = 1024
_FETCH_TIMEOUT = 30.0  # fetching a finished task's outcome; longer means the scheduler is gone
_LOST = object()  # _outcome: the task's result was lost with its worker; send it again
_WATCH_EVERY = 1.0  # how often a busy backend checks that the cluster still has workers


def require_dask() -> None:
    """Raise a helpful ImportError when the dask extra is missing."""
    try:
        import distributed  # noqa: F401
    except ImportError as error:
        raise ImportError(
            "mode='dask' needs Dask distributed: pip install 'poolkit[dask]'"
        ) from error


def run_chunk(
    job: Job,
    entries: list[tuple[int, Any, int]],
    initializer: Callable[..., Any] | None = None,
    initargs: tuple[Any, ...] = (),
) -> list[Any]:
    """Runs on a Dask worker: one (seq, ok, value or packed error, seconds) per item."""
    _enter_worker(initializer, initargs)
    done: list[Any] = []
    for seq, item, number in entries:
        began = time.monotonic()
        ok, payload = run_attempt(job, item, number)
        if isinstance(payload, StopChunk):  # poolkit gave up on this task: free the thread
            break
        done.append((seq, ok, payload if ok else pack_error(payload), time.monotonic() - began))
    return done


class StopChunk(BaseException):
    """Raised by poolkit inside a worker thread whose task it abandoned (on_timeout)."""


def _enter_worker(initializer: Callable[..., Any] | None, initargs: tuple[Any, ...]) -> None:
    """This Dask worker's WorkerContext; its initializer runs the first time only."""
    from distributed import get_worker

    worker: Any = get_worker()
    context = getattr(worker, "_poolkit_context", None)
    if context is None:
        name = worker.name
        context = WorkerContext(name if isinstance(name, int) else 0)
        worker._poolkit_context = context
        if initializer is not None:
            context.enter()
            broken = initializer_failure(initializer, initargs)
            if broken is not None:
                raise broken
    context.enter()


class DaskBackend(Backend):
    """Runs attempts as Dask tasks; see the module docstring."""

    def __init__(
        self,
        workers: int,
        *,
        client: Any = None,
        address: str | None = None,
        security: Any = None,
        chunksize: int | None = None,
        initializer: Callable[..., Any] | None = None,
        initargs: Sequence[Any] = (),
        resources: dict[str, float] | None = None,
        placement: Sequence[str] | str | None = None,
        priority: int = 0,
        no_workers_timeout: float = 10.0,
        follow_cluster: bool = False,
        on_timeout: str = "interrupt",
    ) -> None:
        require_dask()
        self._on_timeout = on_timeout  # checked with the other options (_options)
        self._initializer = initializer
        self._initargs = tuple(initargs)
        self._submit_options: dict[str, Any] = {"priority": priority}
        if resources is not None:
            self._submit_options["resources"] = resources
        if placement is not None:
            self._submit_options["workers"] = placement
        import dask
        import distributed

        if client is not None and address is not None:
            raise ValueError("give dask mode a client= or an address=, not both")
        self._cluster: Any = None
        self._owns_client = client is None
        if client is None and address is None:
            with dask.config.set(
                {
                    "distributed.scheduler.allowed-failures": 0,
                    "distributed.scheduler.worker-saturation": float("inf"),
                }
            ):
                self._cluster = distributed.LocalCluster(  # type: ignore[no-untyped-call]
                    n_workers=workers,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=None,
                    silence_logs=50,
                )
            client = distributed.Client(self._cluster)  # type: ignore[no-untyped-call]
        elif client is None:
            client = distributed.Client(address, security=security)  # type: ignore[no-untyped-call]
        self._client = client
        self._killed_worker = distributed.scheduler.KilledWorker
        self.workers = workers
        self.capacity = 1 << 30
        # room for every chunk in flight at the largest size: a Dask task costs
        # milliseconds, so small items must travel in large chunks
        self.default_in_flight = _MAX_CHUNK * workers
        self._sizer = ChunkSizer(
            chunksize, target=_TARGET_CHUNK_SECONDS, largest=_MAX_CHUNK, first=2
        )
        self._lock = threading.RLock()
        self._seq = itertools.count(1)
        self._live: dict[Any, Any] = {}  # dask future key -> future
        self._queued: deque[Task] = deque()
        self._room = 2 * workers  # Dask tasks in flight: enough to keep every worker fed
        self._suspects: deque[tuple[Task, int]] = deque()  # items of killed tasks, to probe
        self._probes: dict[Any, str | None] = {}  # a probe's future key -> its worker
        self._tasks_of: dict[Any, list[Task]] = {}  # dask future key -> its tasks
        self._closed = False
        self._no_workers_timeout = no_workers_timeout
        # workers= not given for a cluster of the user's: keep as many tasks in flight as
        # the cluster has threads (twice), and follow it as workers come and go.
        self._follow = follow_cluster and self._cluster is None
        if self._follow:
            self._resize(self._cluster_threads())
        threading.Thread(target=self._watch_workers, name="poolkit-dask-watch", daemon=True).start()

    def start(self, tasks: Sequence[Task]) -> None:
        with self._lock:
            self._queued.extend(tasks)
        self._dispatch()

    def _dispatch(self) -> None:
        """Send queued items as chunks while the cluster has room; probe suspects alone."""
        while True:
            with self._lock:
                if self._suspects or self._probes:
                    # Quarantine: no chunk runs while suspects are probed, each alone on
                    # a worker of its own, so a death is that probe's own.
                    if len(self._live) > len(self._probes) or not self._suspects:
                        return
                    room, address = self._free_worker()
                    if not room:
                        return  # every worker has a probe: wait for one to end
                    task, number = self._suspects.popleft()
                    if not (task.running and task.attempts == number):
                        continue
                    self._submit([task], True, address)
                    continue
                queued = self._queued
                if not queued or len(self._live) >= self._room:
                    return
                # Dask cannot tell when a task inside a chunk starts: with a timeout,
                # items go one per task so each attempt's clock is exact.
                job = queued[0].job
                single = job.timeout is not None
                size = 1 if single else self._sizer.size(job, len(queued), self._room)
                chunk = [queued.popleft()]
                while queued and len(chunk) < size and queued[0].job is job:
                    chunk.append(queued.popleft())
                chunk = [t for t in chunk if t.running]
                if chunk:
                    self._submit(chunk, False)

    def _free_worker(self) -> tuple[bool, str | None]:
        """(room for one more probe, the address of a worker with no probe on it); the
        address is None when the cluster does not say which workers it has (then one
        probe runs at a time, unpinned)."""
        addresses = sorted(self._workers_now())
        if not addresses:
            return not self._probes, None
        taken = set(self._probes.values())
        free = [a for a in addresses if a not in taken]
        return (True, free[0]) if free else (False, None)

    def _submit(self, chunk: list[Task], probe: bool, address: str | None = None) -> None:
        """Submit one Dask task for ``chunk`` (called with the lock held); a probe is
        pinned to the worker at ``address``, so Dask cannot retry it on another."""
        entries = [(next(self._seq), task, task.attempts) for task in chunk]
        options = dict(self._submit_options)
        if address is not None:
            options.update(workers=[address], allow_other_workers=False)
        try:
            future = self._client.submit(
                run_chunk,
                chunk[0].job,
                [(seq, task.item, n) for seq, task, n in entries],
                self._initializer,
                self._initargs,
                pure=False,
                **options,
            )
        except Exception as error:
            for _, task, number in entries:
                task.reply.put((task, number, False, error))
            return
        now = time.monotonic()
        for _, task, _ in entries:
            task.ticket = future
            task.started = now  # its clock starts when it reaches the cluster, not before
        self._live[future.key] = future
        self._tasks_of[future.key] = [task for _, task, _ in entries]
        if probe:
            self._probes[future.key] = address
        future.add_done_callback(lambda f: self._finished(f, entries, probe))

    def _finished(self, future: Any, entries: list[tuple[int, Task, int]], probe: bool) -> None:
        with self._lock:
            self._live.pop(future.key, None)
            self._tasks_of.pop(future.key, None)
            self._probes.pop(future.key, None)
            for _, task, _ in entries:
                if task.ticket is future:
                    task.ticket = None  # nothing of poolkit's pins the future on the cluster
        try:
            self._deliver(future, entries, probe)
        finally:
            self._dispatch()

    def _deliver(self, future: Any, entries: list[tuple[int, Task, int]], probe: bool) -> None:
        done = self._outcome(future)
        if done is _LOST:
            # The worker holding its result died before we fetched it. Dask may compute
            # it again, or not soon (a worker without a nanny): send the items again.
            with self._lock:
                self._queued.extendleft(
                    t for _, t, n in reversed(entries) if t.running and t.attempts == n
                )
            return
        if isinstance(done, self._killed_worker):
            live = [(t, n) for _, t, n in entries if t.running and t.attempts == n]
            if probe:  # it ran alone and its worker died: it is the culprit
                worker = getattr(getattr(done, "last_worker", None), "address", None)
                where = f" on worker {worker}" if worker else ""
                for task, number in live:
                    crash = WorkerCrashed(
                        exitcode=None, pid=None, detail=f"Dask reports{where}: {done}"
                    )
                    task.reply.put((task, number, False, crash))
            else:  # every task queued on a dead worker is reported: find the one
                with self._lock:
                    self._suspects.extend(live)
            return
        if isinstance(done, BaseException):
            for _, task, number in entries:
                task.reply.put((task, number, False, copy_error(done)))
            return
        by_seq = {seq: (task, number) for seq, task, number in entries}
        replies = []
        now = time.monotonic()
        with self._lock:
            self._sizer.observe(entries[0][1].job, len(done), sum(seconds for *_, seconds in done))
        for seq, ok, payload, seconds in done:
            task, number = by_seq[seq]
            # elapsed leaves out the wait inside the chunk: the item began `seconds` ago
            # by the worker's own clock (a duration, so clocks of other machines agree)
            task.started = now - seconds
            replies.append((task, number, ok, payload if ok else unpack_error(payload)))
        _send_replies(replies)

    def _outcome(self, future: Any) -> Any:
        """A finished task's results (a list), why there are none (an exception), or
        ``_LOST``.

        However a future ends, its items get a Result: one poolkit cancelled itself is
        stale to the engine (ignored); one Dask cancelled (the scheduler was lost,
        ``client.restart()``) ends its items with an error that says so. Fetching is
        bounded: with the scheduler gone it could wait forever. ``exception()`` comes
        first, not ``result()``: raising would put this frame, and so the future, into
        the traceback of the exception Dask keeps for the future, a cycle that pins the
        task on the cluster.
        """
        if future.cancelled():
            return _lost(f"it ended as {future.status!r}")
        give_up = time.monotonic() + _FETCH_TIMEOUT
        while True:
            if future.status == "lost":
                return _LOST
            try:
                error = future.exception(timeout=1.0)
                if error is not None:
                    return error if isinstance(error, self._killed_worker) else _explained(error)
                done: list[Any] = future.result(timeout=1.0)
                return done
            except TimeoutError:
                if time.monotonic() > give_up:
                    return _lost(f"its outcome did not come within {_FETCH_TIMEOUT:g} s")
            except Exception as problem:
                return _lost(f"fetching its outcome raised {problem!r}")

    def started_at(self, task: Task) -> float | None:
        """When the attempt was sent to the cluster (None while it waits in poolkit's queue)."""
        return task.started

    def _watch_workers(self) -> None:
        """End the batch with a clear error when the cluster has no worker for too long."""
        empty_since: float | None = None
        while True:
            time.sleep(_WATCH_EVERY)
            with self._lock:
                if self._closed:
                    return
                busy = bool(self._live or self._queued or self._suspects)
            if not busy:
                empty_since = None
                continue
            self._blame_lost_probes()
            count = self._cluster_threads()
            if self._follow and count:
                self._resize(count)
            if count:
                empty_since = None
                continue
            now = time.monotonic()
            empty_since = empty_since or now
            if now - empty_since >= self._no_workers_timeout:
                self._fail_all(
                    PoolkitError(
                        f"the Dask cluster has had no workers for {self._no_workers_timeout:g} s "
                        "(they died or never started: check that poolkit and your modules "
                        "import on the workers); the batch cannot go on"
                    )
                )
                empty_since = None

    def _blame_lost_probes(self) -> None:
        """A probe pinned to a worker that is gone killed it: name the culprit now,
        before Dask waits for that worker to come back (or retries it elsewhere)."""
        with self._lock:
            pinned = {key: a for key, a in self._probes.items() if a is not None}
        if not pinned:
            return
        present = self._workers_now()
        if not present:
            return  # unknown (or none at all: the no-workers watch handles that)
        for key, address in pinned.items():
            if address in present:
                continue
            with self._lock:
                future = self._live.pop(key, None)
                tasks = self._tasks_of.pop(key, [])
                self._probes.pop(key, None)
            if future is None:
                continue
            for task in tasks:
                crash = WorkerCrashed(
                    exitcode=None,
                    pid=None,
                    detail=f"worker {address} died running this item alone",
                )
                task.reply.put((task, task.attempts, False, crash))
            try:
                future.cancel()
            except Exception:
                pass
        self._dispatch()

    def _workers_now(self) -> set[str]:
        """The workers' addresses, asked of the scheduler now (its cached copy lags a
        restarted worker by seconds, and a probe pinned to a dead address never runs)."""
        try:
            return set(self._client.ncores())
        except Exception:
            return set()

    def _cluster_threads(self) -> int:
        """How many threads the cluster's workers have now (0 when none, or unknown)."""
        try:
            workers = self._client.scheduler_info().get("workers", {})
            return sum(int(w.get("nthreads", 1)) for w in workers.values())
        except Exception:
            return 0

    def _resize(self, threads: int) -> None:
        if threads:
            with self._lock:
                self.workers = threads
                self._room = 2 * threads
                self.default_in_flight = _MAX_CHUNK * threads
            self._dispatch()

    def _fail_all(self, error: BaseException) -> None:
        with self._lock:
            live = list(self._live.values())
            self._live.clear()
            queued = list(self._queued) + [t for t, _ in self._suspects]
            self._queued.clear()
            self._suspects.clear()
            held = {id(t): t for t in queued}
            for future in live:
                for task in self._tasks_of.pop(future.key, []):
                    held[id(task)] = task
        for task in held.values():  # first: the cancels below must find these items ended
            task.reply.put((task, task.attempts, False, copy_error(error)))
        for future in live:
            try:
                future.cancel()
            except Exception:
                pass

    def stop(self, tasks: Sequence[Task]) -> None:
        """Cancel the tasks' futures and free the worker threads still running them.

        A cancelled Dask task keeps running in its worker thread, and that thread takes
        no new task until it returns. So, in a thread of its own (this is the engine's
        thread), poolkit then either raises ``TaskTimeout`` inside the worker threads
        running them (``on_timeout="interrupt"``, the default: it takes effect at the
        next Python bytecode, not inside a blocking C call such as ``time.sleep``) or
        restarts those workers through their nannies (``"restart-worker"``: stops
        anything, costs the worker's other tasks, which Dask runs again).
        """
        futures = {id(t.ticket): t.ticket for t in tasks if t.ticket is not None}
        keys = {future.key for future in futures.values()}
        for future in futures.values():
            try:
                future.cancel()
            except Exception:
                pass
        if keys:
            threading.Thread(
                target=self._free_workers, args=(keys,), name="poolkit-dask-stop", daemon=True
            ).start()

    def _free_workers(self, keys: set[Any]) -> None:
        try:
            running = self._client.run(_running_keys, list(keys))
            busy = [address for address, found in running.items() if found]
            if not busy:
                return
            if self._on_timeout == "restart-worker":
                self._client.restart_workers(busy)
            else:
                self._client.run(_interrupt, list(keys), workers=busy)
        except Exception as error:  # the task stays abandoned, as before
            log.debug("dask mode: could not free the workers of %s: %r", keys, error)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            live = list(self._live.values())
            self._live.clear()
        if live:
            try:
                self._client.cancel(live)
            except Exception:
                pass
        if self._owns_client:
            self._client.close()
        if self._cluster is not None:
            self._cluster.close()


def _explained(error: BaseException) -> BaseException:
    """A cluster's failure to load a task, said plainly: which module is missing where.

    (User code's own exceptions never come here: ``run_chunk`` returns them as results.)
    """
    cause: BaseException | None = error
    while cause is not None and not isinstance(cause, ImportError):
        cause = cause.__cause__ or cause.__context__
    if cause is None:
        return error
    explained = PoolkitError(
        f"the Dask cluster could not load the task: {cause}. poolkit and the modules of "
        "your function and items must be importable on the scheduler and every worker "
        "(the same environment, client.upload_file, or a PipInstall plugin)"
    )
    explained.__cause__ = error
    return explained


def _lost(how: str) -> PoolkitError:
    """The error of items whose Dask task was lost to the cluster, not to the item."""
    return PoolkitError(
        f"Dask lost this task ({how}): the scheduler connection was lost or the cluster "
        "was restarted"
    )


def _running_keys(keys: list[Any], dask_worker: Any = None) -> list[Any]:
    """On a worker: which of ``keys`` one of its threads is running now."""
    wanted = set(keys)
    return [key for key in dict(dask_worker.active_threads).values() if key in wanted]


def _interrupt(keys: list[Any], dask_worker: Any = None) -> int:
    """On a worker: raise TaskTimeout in the threads running ``keys``; how many."""
    import ctypes

    wanted = set(keys)
    hit = 0
    for ident, key in dict(dask_worker.active_threads).items():
        if key in wanted:
            hit += ctypes.pythonapi.PyThreadState_SetAsyncExc(
                ctypes.c_ulong(ident), ctypes.py_object(StopChunk)
            )
    return hit


def _send_replies(results: Iterable[tuple[Task, int, bool, Any]]) -> None:
    """Hand ``(task, attempt, ok, value)`` results to their batches, one put per batch
    (the engine wakes once per chunk, not once per item)."""
    groups: dict[int, tuple[Any, list[Any]]] = {}
    for result in results:
        reply = result[0].reply
        group = groups.get(id(reply))
        if group is None:
            group = groups[id(reply)] = (reply, [])
        group[1].append(result)
    for reply, messages in groups.values():
        reply.put(messages)


backend_class = DaskBackend
