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
import pickle
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from poolkit._backends._chunks import ChunkSizer
from poolkit._backends._pickling import unpack_error
from poolkit._core._attempt import copy_error
from poolkit._core._backend import Backend
from poolkit._core._task import Job, Run, Task
from poolkit._errors import PoolkitError, WorkerCrashed

from ._ledger import RunLedger
from ._worker import interrupt, run_chunk, run_piece, running_keys

__all__ = ["DaskBackend", "require_dask"]

log = logging.getLogger("poolkit")

# A Dask task costs about a millisecond of scheduling; a chunk of 0.2 s makes that
# negligible while a deadline or a lost worker throws away little finished work.
_TARGET_CHUNK_SECONDS = 0.2
_MAX_CHUNK = 1024
_IN_FLIGHT_CHUNKS = 3  # per worker thread, at the largest size: one running, one
# queued behind it, one on its way back (fetching an outcome takes a round trip)
# On a cluster of the user's that poolkit follows (workers= not given), many more
# chunks go out, up to max_in_flight items: an adaptive cluster scales by the work
# queued on its scheduler, and with three chunks per thread it saw too little to grow.
_VISIBLE_CHUNKS = 50
_FETCHERS = 4  # threads fetching finished tasks' outcomes side by side
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
        self.default_in_flight = _IN_FLIGHT_CHUNKS * _MAX_CHUNK * workers
        self.default_run_in_flight = self.default_in_flight
        self._sizer = ChunkSizer(
            chunksize, target=_TARGET_CHUNK_SECONDS, largest=_MAX_CHUNK, first=2
        )
        self._lock = threading.RLock()
        self._fetchers = ThreadPoolExecutor(_FETCHERS, thread_name_prefix="poolkit-dask-fetch")
        self._seq = itertools.count(1)
        self._live: dict[Any, _Sent] = {}  # Dask future key -> what poolkit sent in it
        self._queued: deque[Task] = deque()  # attempts of the per-item lane
        self._ranges: deque[list[Any]] = deque()  # [run, lo, hi]: run items not sent yet
        self._range_items = 0
        self._ledger = RunLedger()  # run items with no outcome posted yet
        self._room = _IN_FLIGHT_CHUNKS * workers  # Dask tasks in flight
        # items of killed tasks, to probe one by one: (task, attempt) or (run, position)
        self._suspects: deque[tuple[Any, int]] = deque()
        self._probes: dict[Any, str | None] = {}  # a probe's future key -> its worker
        self._closed = False
        self._no_workers_timeout = no_workers_timeout
        # workers= not given for a cluster of the user's: keep as many tasks in flight as
        # the cluster has threads (three each), and follow it as workers come and go.
        self._follow = follow_cluster and self._cluster is None
        if self._follow:
            self._room = _VISIBLE_CHUNKS * workers
            self._resize(self._cluster_threads())
        # what long chunks finished so far comes as events on a topic of this backend's
        self._topic: str | None = f"poolkit-partial-{uuid.uuid4().hex}"
        try:
            client.subscribe_topic(self._topic, self._on_partial)
        except Exception as error:  # an old or limited cluster: results at chunk ends only
            log.debug("dask mode: no partial results (%r)", error)
            self._topic = None
        threading.Thread(target=self._watch_workers, name="poolkit-dask-watch", daemon=True).start()

    # -- handing work to the cluster -----------------------------------------------

    def start(self, tasks: Sequence[Task]) -> None:
        with self._lock:
            self._queued.extend(tasks)
        self._dispatch()

    def takes_runs(self, job: Job) -> bool:
        return True

    def start_run(self, run: Run) -> None:
        with self._lock:
            self._ledger.open(run)
            self._ranges.append([run, 0, len(run.items)])
            self._range_items += len(run.items)
        self._dispatch()

    def _dispatch(self) -> None:
        """Send queued items as chunks while the cluster has room; probe suspects alone."""
        while True:
            with self._lock:
                if self._closed:
                    return
                if self._suspects or self._probes:
                    if not self._probe_next():
                        return
                elif len(self._live) >= self._room:
                    return
                elif self._queued:
                    if not self._send_tasks():
                        return
                elif self._ranges:
                    if not self._send_range():
                        return
                else:
                    return

    def _probe_next(self) -> bool:
        """Quarantine: no chunk runs while suspects are probed, each alone on a worker of
        its own, so a death is that probe's own. False when nothing more can go now."""
        if len(self._live) > len(self._probes) or not self._suspects:
            return False
        room, address = self._free_worker()
        if not room:
            return False  # every worker has a probe: wait for one to end
        owner, number = self._suspects.popleft()
        if isinstance(owner, Task):
            if owner.running and owner.attempts == number:
                self._submit_tasks([owner], True, address)
        elif self._ledger.unposted(owner, number):
            self._submit_piece(owner, number, number + 1, True, address)
        return True

    def _send_tasks(self) -> bool:
        queued = self._queued
        job = queued[0].job
        # Dask cannot tell when a task inside a chunk starts: with a timeout, items go
        # one per task so each attempt's clock is exact.
        single = job.timeout is not None
        if single and len(self._live) >= self.workers:
            # nor when it waits in a worker's queue: an attempt with a timeout goes out
            # only to a free worker thread, so its clock, started now, is its own
            return False
        if not single and self._hold(job, len(queued)) and queued[-1].job is job:
            return False
        size = 1 if single else self._sizer.size(job, len(queued), _IN_FLIGHT_CHUNKS * self.workers)
        chunk = [queued.popleft()]
        while queued and len(chunk) < size and queued[0].job is job:
            chunk.append(queued.popleft())
        chunk = [t for t in chunk if t.running]
        if chunk:
            self._submit_tasks(chunk, False)
        return True

    def _send_range(self) -> bool:
        first = self._ranges[0]
        run, lo, hi = first
        if self._hold(run.job, self._range_items):
            return False
        size = self._sizer.size(run.job, self._range_items, _IN_FLIGHT_CHUNKS * self.workers)
        end = min(hi, lo + size)
        if end == hi:
            self._ranges.popleft()
        else:
            first[1] = end
        self._range_items -= end - lo
        self._submit_piece(run, lo, end, False)
        return True

    def _hold(self, job: Job, waiting: int) -> bool:
        """True when ``waiting`` items should wait to make a chunk worth its Dask task:
        every worker has work, and a few items that came back to poolkit's queue would
        otherwise go out a couple at a time, each chunk costing milliseconds of
        scheduling."""
        return len(self._live) >= self.workers and waiting < self._sizer.least(job)

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

    def _options(self, address: str | None) -> dict[str, Any]:
        """Dask's submit options; a probe is pinned to the worker at ``address``, so Dask
        cannot retry it on another."""
        options = dict(self._submit_options)
        if address is not None:
            options.update(workers=[address], allow_other_workers=False)
        return options

    def _submit_tasks(self, chunk: list[Task], probe: bool, address: str | None = None) -> None:
        """Submit one Dask task for ``chunk`` (called with the lock held)."""
        entries = [(next(self._seq), task, task.attempts) for task in chunk]
        try:
            future = self._client.submit(
                run_chunk,
                chunk[0].job,
                [(seq, task.item, n) for seq, task, n in entries],  # Dask finds Futures in them
                self._initializer,
                self._initargs,
                self._topic,
                pure=False,
                **self._options(address),
            )
        except Exception as error:
            for _, task, number in entries:
                task.reply.put((task, number, False, error))
            return
        now = time.monotonic()
        for _, task, _ in entries:
            task.ticket = future
            task.started = now  # its clock starts when it reaches the cluster, not before
        self._sent(_Sent(future, probe, address, entries=entries))

    def _submit_piece(
        self, run: Run, lo: int, hi: int, probe: bool, address: str | None = None
    ) -> None:
        """Submit one Dask task for ``run.items[lo:hi]`` (called with the lock held)."""
        try:
            future = self._client.submit(
                run_piece,
                run.job,
                run.items[lo:hi],
                self._initializer,
                self._initargs,
                self._topic,
                pure=False,
                **self._options(address),
            )
        except Exception as error:
            self._ledger.post_failed(run, lo, hi, error)
            return
        self._sent(_Sent(future, probe, address, run=run, lo=lo, hi=hi))

    def _sent(self, sent: _Sent) -> None:
        future = sent.future
        self._live[future.key] = sent
        if sent.probe:
            self._probes[future.key] = sent.address
        future.add_done_callback(lambda f: self._on_done(sent))

    # -- outcomes ---------------------------------------------------------------------

    def _on_done(self, sent: _Sent) -> None:
        # Dask runs done callbacks one at a time in one thread; fetching an outcome takes
        # a round trip to a worker, so the fetches run side by side in poolkit's own
        # threads (one at a time, they left the workers idle between chunks)
        try:
            self._fetchers.submit(self._finished, sent)
        except RuntimeError:  # closed: the runner is gone, nobody waits for these items
            pass

    def _finished(self, sent: _Sent) -> None:
        future = sent.future
        with self._lock:
            self._live.pop(future.key, None)
            self._probes.pop(future.key, None)
            for _, task, _ in sent.entries or ():
                if task.ticket is future:
                    task.ticket = None  # nothing of poolkit's pins the future on the cluster
        self._dispatch()  # its room first: the next chunk need not wait for this fetch
        try:
            done = self._outcome(future)
            if sent.run is None:
                self._deliver_tasks(sent, done)
            else:
                self._deliver_piece(sent, done)
        finally:
            self._dispatch()

    def _on_partial(self, event: tuple[float, Any]) -> None:
        """What a running chunk finished so far (a Dask event; in the client's loop)."""
        try:
            key, first, outcomes = pickle.loads(event[1])
            with self._lock:
                sent = self._live.get(key)
                if sent is None:
                    return
                if sent.run is not None:
                    values, packed, seconds = outcomes
                    failed = {k: unpack_error(e) for k, e in packed.items()} or None
                    self._ledger.post(sent.run, sent.lo + first, values, failed, seconds)
                    return
            self._reply(sent, outcomes)
        except Exception as error:  # the chunk's own result still brings these outcomes
            log.debug("dask mode: a partial result was not taken: %r", error)

    def _reply(self, sent: _Sent, done: list[Any]) -> None:
        """Hand ``(seq, ok, value or packed error, seconds)`` outcomes to their tasks."""
        assert sent.entries is not None
        by_seq = {seq: (task, number) for seq, task, number in sent.entries}
        replies = []
        now = time.monotonic()
        for seq, ok, payload, seconds in done:
            task, number = by_seq[seq]
            if not (task.running and task.attempts == number):
                continue  # taken already (from an event), or given up on
            # elapsed leaves out the wait inside the chunk: the item began `seconds` ago
            # by the worker's own clock (a duration, so clocks of other machines agree)
            task.started = now - seconds
            replies.append((task, number, ok, payload if ok else unpack_error(payload)))
        _send_replies(replies)

    def _deliver_tasks(self, sent: _Sent, done: Any) -> None:
        entries = sent.entries
        assert entries is not None
        live = [(t, n) for _, t, n in entries if t.running and t.attempts == n]
        if done is _LOST:
            # The worker holding its result died before we fetched it. Dask may compute
            # it again, or not soon (a worker without a nanny): send the items again.
            with self._lock:
                if sent.probe:  # still a suspect: probed again, alone
                    self._suspects.extendleft(reversed(live))
                else:
                    self._queued.extendleft(t for t, _ in reversed(live))
            return
        if isinstance(done, self._killed_worker):
            if sent.probe:  # it ran alone and its worker died: it is the culprit
                for task, number in live:
                    task.reply.put((task, number, False, _culprit(done)))
            else:  # every task queued on a dead worker is reported: find the one
                with self._lock:
                    self._suspects.extend(live)
            return
        if isinstance(done, BaseException):
            for _, task, number in entries:
                task.reply.put((task, number, False, copy_error(done)))
            return
        with self._lock:
            self._sizer.observe(entries[0][1].job, len(done), sum(seconds for *_, seconds in done))
        self._reply(sent, done)

    def _deliver_piece(self, sent: _Sent, done: Any) -> None:
        run, lo, hi = sent.run, sent.lo, sent.hi
        assert run is not None
        if done is _LOST:
            with self._lock:
                if sent.probe:  # still a suspect: probed again, alone
                    self._suspects.appendleft((run, lo))
                else:
                    self._requeue(run, lo, hi)
            return
        if isinstance(done, self._killed_worker):
            with self._lock:
                if sent.probe:
                    self._ledger.post_failed(run, lo, hi, _culprit(done))
                else:
                    self._suspects.extend(
                        (run, p) for p in range(lo, hi) if self._ledger.unposted(run, p)
                    )
            return
        if isinstance(done, BaseException):
            with self._lock:
                self._ledger.post_failed(run, lo, hi, done)
            return
        values, packed, seconds = done
        failed = {k: unpack_error(error) for k, error in packed.items()} if packed else None
        with self._lock:
            if values:
                self._sizer.observe(run.job, len(values), sum(seconds))
                self._ledger.post(run, lo, values, failed, seconds)
            if lo + len(values) < hi:  # stopped inside (interrupted): the rest never ran
                self._requeue(run, lo + len(values), hi)

    def _requeue(self, run: Run, lo: int, hi: int) -> None:
        """Send ``run.items[lo:hi]`` again, the ones with no outcome yet, first in line."""
        for start, end in reversed(self._ledger.stretches(run, lo, hi)):
            self._ranges.appendleft([run, start, end])
            self._range_items += end - start

    def _outcome(self, future: Any) -> Any:
        """A finished task's results, why there are none (an exception), or ``_LOST``.

        However a future ends, its items get a Result: one poolkit cancelled itself is
        stale to the engine (ignored); one Dask cancelled (the scheduler was lost,
        ``client.restart()``) ends its items with an error that says so. Fetching is
        bounded: with the scheduler gone it could wait forever. ``exception()`` comes
        before ``result()`` for a failed task: raising would put this frame, and so the
        future, into the traceback of the exception Dask keeps for the future, a cycle
        that pins the task on the cluster.
        """
        if future.cancelled():
            return _lost(f"it ended as {future.status!r}")
        give_up = time.monotonic() + _FETCH_TIMEOUT
        while True:
            if future.status in ("lost", "pending"):
                # done, then its result was lost with its worker (Dask resets such a
                # future to pending and may compute it again, or never, for a probe
                # pinned to that worker): poolkit sends its items again instead
                return _LOST
            try:
                if future.status == "finished":  # one round trip, not two
                    return future.result(timeout=1.0)
                error = future.exception(timeout=1.0)
                if error is not None:
                    return error if isinstance(error, self._killed_worker) else _explained(error)
                return future.result(timeout=1.0)
            except TimeoutError:
                if time.monotonic() > give_up:
                    return _lost(f"its outcome did not come within {_FETCH_TIMEOUT:g} s")
            except Exception as problem:
                if future.status in ("pending", "lost") and self._client.status == "running":
                    # the worker holding the result died during the fetch and Dask
                    # computes it again (its gather can raise then, even an
                    # UnboundLocalError): the cluster's loss, not the items'
                    return _LOST
                return _lost(f"fetching its outcome raised {problem!r}")

    def started_at(self, task: Task) -> float | None:
        """When the attempt was sent to the cluster (None while it waits in poolkit's queue)."""
        return task.started

    # -- watching the cluster -------------------------------------------------------

    def _watch_workers(self) -> None:
        """End the batch with a clear error when the cluster has no worker for too long."""
        empty_since: float | None = None
        while True:
            time.sleep(_WATCH_EVERY)
            with self._lock:
                if self._closed:
                    return
                busy = bool(self._live or self._queued or self._suspects or self._ranges)
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
            crash = WorkerCrashed(
                exitcode=None, pid=None, detail=f"worker {address} died running this item alone"
            )
            with self._lock:
                sent = self._live.pop(key, None)
                self._probes.pop(key, None)
                if sent is None:
                    continue
                if sent.run is not None:
                    self._ledger.post_failed(sent.run, sent.lo, sent.hi, crash)
            for _, task, number in sent.entries or ():
                task.reply.put((task, number, False, crash))
            try:
                sent.future.cancel()
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
                self._room = (_VISIBLE_CHUNKS if self._follow else _IN_FLIGHT_CHUNKS) * threads
                self.default_in_flight = _IN_FLIGHT_CHUNKS * _MAX_CHUNK * threads
                self.default_run_in_flight = self.default_in_flight
            self._dispatch()

    def _fail_all(self, error: BaseException) -> None:
        with self._lock:
            live = list(self._live.values())
            self._live.clear()
            self._probes.clear()
            held = {id(t): t for t in self._queued}
            held.update((id(t), t) for t, _ in self._suspects if isinstance(t, Task))
            self._queued.clear()
            self._suspects.clear()
            self._ranges.clear()
            self._range_items = 0
            for sent in live:
                held.update((id(t), t) for _, t, _ in sent.entries or ())
            # first: the cancels below must find these items ended
            self._ledger.fail_all(error)
        for task in held.values():
            task.reply.put((task, task.attempts, False, copy_error(error)))
        for sent in live:
            try:
                sent.future.cancel()
            except Exception:
                pass

    # -- stopping -----------------------------------------------------------------------

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
        self._cancel(list(futures.values()))

    def stop_runs(self, runs: Sequence[Run]) -> list[list[tuple[int, bool]]]:
        """Drop what is left of ``runs``: cancel their Dask tasks (freeing the worker
        threads as ``stop`` does) and post nothing more of them. An item counts as begun
        when its chunk had reached the cluster."""
        answers: list[list[tuple[int, bool]]] = []
        cancel: list[Any] = []
        with self._lock:
            stopping = set(runs)
            for run in runs:
                left = self._ledger.stop(run)
                if left is None:
                    answers.append([])
                    continue
                began = bytearray(len(run.items))
                for key, sent in list(self._live.items()):
                    if sent.run is run:
                        began[sent.lo : sent.hi] = b"\x01" * (sent.hi - sent.lo)
                        cancel.append(sent.future)
                        del self._live[key]
                        self._probes.pop(key, None)
                for owner, position in self._suspects:
                    if owner is run:
                        began[position] = 1
                answers.append([(p, bool(began[p])) for p in left])
            self._suspects = deque(s for s in self._suspects if s[0] not in stopping)
            kept = deque(r for r in self._ranges if r[0] not in stopping)
            self._range_items = sum(r[2] - r[1] for r in kept)
            self._ranges = kept
        self._cancel(cancel)
        self._dispatch()
        return answers

    def _cancel(self, futures: list[Any]) -> None:
        keys = {future.key for future in futures}
        for future in futures:
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
            running = self._client.run(running_keys, list(keys))
            busy = [address for address, found in running.items() if found]
            if not busy:
                return
            if self._on_timeout == "restart-worker":
                self._client.restart_workers(busy)
            else:
                self._client.run(interrupt, list(keys), workers=busy)
        except Exception as error:  # the task stays abandoned, as before
            log.debug("dask mode: could not free the workers of %s: %r", keys, error)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            live = [sent.future for sent in self._live.values()]
            self._live.clear()
        if live:
            try:
                self._client.cancel(live)
            except Exception:
                pass
        self._fetchers.shutdown(wait=True, cancel_futures=True)
        if self._topic is not None:
            try:
                self._client.unsubscribe_topic(self._topic)
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


class _Sent:
    """One Dask task poolkit submitted: attempts of the per-item lane (``entries``: seq,
    task, attempt) or the items ``lo:hi`` of a run."""

    __slots__ = ("address", "entries", "future", "hi", "lo", "probe", "run")

    def __init__(
        self,
        future: Any,
        probe: bool,
        address: str | None,
        *,
        entries: list[tuple[int, Task, int]] | None = None,
        run: Run | None = None,
        lo: int = 0,
        hi: int = 0,
    ) -> None:
        self.future = future
        self.probe = probe
        self.address = address
        self.entries = entries
        self.run = run
        self.lo = lo
        self.hi = hi


def _culprit(killed: BaseException) -> WorkerCrashed:
    """The error of an item that ran alone and whose worker died."""
    worker = getattr(getattr(killed, "last_worker", None), "address", None)
    where = f" on worker {worker}" if worker else ""
    return WorkerCrashed(exitcode=None, pid=None, detail=f"Dask reports{where}: {killed}")
