"""``Runner.submit``: single items fed to an engine on a coordinator thread.

The runner's policies apply to each submit: an engine is built when work arrives, and
when a batch-wide cut (deadline, fail-fast, cancel) ends it, what was queued gets its
Result from that cut and the next submit gets a fresh engine, so its deadline counts
from then and a future always completes. Closing the runner stops the coordinator
after what was submitted has finished.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, InvalidStateError
from typing import Any

from poolkit._policies import Policies

from ._backend import Backend
from ._drive import drive
from ._engine import Engine, StopOne
from ._inbox import SyncInbox
from ._task import Job, OkRun, Task
from ._waits import wait_event

__all__ = ["Submitter"]

_ABORT_WAIT = 1.0  # seconds an interrupted close gives the coordinator to report


class _QueueSource:
    """A Source fed by ``submit``: ``pull`` never blocks, ``exhausted`` once closed and empty."""

    sized = False  # items arrive one submit at a time: never the engine's bulk lane

    def __init__(self, forget: Callable[[int], None], *, queued: bool) -> None:
        self.queue: deque[Task] = deque()
        self._forget = forget
        self._queued = queued  # the backend queues what it is handed (``Backend.queues``)
        self.closed = False
        self.exhausted = False

    def pull(self) -> Task | None:
        queue = self.queue
        while queue:
            task = queue.popleft()
            future = task.future
            assert future is not None
            if self._queued:
                # handed over in bulk, it may wait in the backend's queue: running (and
                # no longer cancellable) once a worker takes it, as ThreadPoolExecutor's
                if not future.cancelled():
                    task.claim = future.set_running_or_notify_cancel
                    return task
            elif future.set_running_or_notify_cancel():
                return task
            self._forget(task.index)  # cancelled before it started: no Result comes
        if self.closed:
            self.exhausted = True
        return None

    def rest(self) -> Iterator[Task]:
        """What was queued when the engine was cut short: each gets the cut's Result."""
        self.exhausted = True
        while self.queue:
            task = self.queue.popleft()
            assert task.future is not None
            if task.future.set_running_or_notify_cancel():
                yield task
            else:
                self._forget(task.index)


class Submitter:
    """Runs submitted items through an Engine on a daemon coordinator thread."""

    def __init__(self, backend: Backend, policies: Policies) -> None:
        self._backend = backend
        self._policies = policies
        self._inbox = SyncInbox()
        self._futures: dict[int, Future[Any]] = {}
        self._lock = threading.Lock()
        self._source = _QueueSource(self._forget, queued=backend.queues)
        self._count = 0
        self._thread: threading.Thread | None = None
        # Set while no coordinator runs. (Not ``Thread.join``: on Python 3.11 a join
        # that Ctrl-C interrupts marks the thread stopped for good, though it runs on.)
        self._idle = threading.Event()
        self._idle.set()
        # the task behind each unfinished future (for ``stop``); an entry leaves with its
        # Result: a weak dict cannot do it, the task holds its future
        self.tasks: dict[Future[Any], Task] = {}

    def submit(self, job: Job, item: Any, future: Future[Any] | None = None) -> Future[Any]:
        """Queue ``job`` on ``item``; ``set_result`` of the Future is called with its Result."""
        if future is None:
            future = Future()
        with self._lock:
            if self._source.closed:
                raise RuntimeError("cannot submit: this runner is closed; create a new one")
            index = self._count
            self._count += 1
            self._futures[index] = future
            task = Task(index, item, job, self._inbox, future)
            self._source.queue.append(task)
            self.tasks[future] = task
            if self._thread is None:
                self._idle.clear()
                self._thread = threading.Thread(
                    target=self._coordinate, name="poolkit-submit", daemon=True
                )
                self._thread.start()
        self._inbox.put(None)
        return future

    def close(self, timeout: float | None = None) -> None:
        """Let submitted items finish, then stop the coordinator."""
        with self._lock:
            self._source.closed = True
        self._wake_and_wait(timeout)

    def abort(self, error: BaseException, timeout: float = _ABORT_WAIT) -> None:
        """End every unfinished submit now: cancel what has not started, stop what runs
        (``Err(error)``), and give the coordinator ``timeout`` seconds to report them."""
        with self._lock:
            futures = list(self._futures.values())
            self._source.closed = True
        for future in futures:
            if not future.cancel():
                self.stop(future, error)
        self._wake_and_wait(timeout)

    def _wake_and_wait(self, timeout: float | None) -> None:
        """Wake the coordinator, then wait up to ``timeout`` seconds for it to end (never
        from the coordinator itself; Ctrl-C always interrupts the wait: see ``_waits``)."""
        self._inbox.put(None)
        if threading.current_thread() is not self._thread:
            wait_event(self._idle, timeout)

    def unfinished(self) -> list[Future[Any]]:
        """The futures submitted whose Result has not come yet."""
        with self._lock:
            return list(self._futures.values())

    def stop(self, future: Future[Any], error: BaseException) -> None:
        """End the item behind ``future`` now, stopping its running attempt if it has one."""
        task = self.tasks.get(future)
        if task is not None:
            self._inbox.put(StopOne(task, error))

    def _forget(self, index: int) -> None:
        with self._lock:
            future = self._futures.pop(index, None)
            if future is not None:
                self.tasks.pop(future, None)

    def _coordinate(self) -> None:
        try:
            self._serve()
        finally:  # (however it ends: ``close`` waits for this)
            with self._lock:
                self._thread = None
                self._idle.set()

    def _serve(self) -> None:
        source = self._source
        while True:
            with self._lock:
                if not source.queue:
                    if source.closed:
                        return
                    idle = True
                else:
                    idle = False
                    source.exhausted = False
            if idle:  # an engine starts when work arrives: its deadline counts from then
                self._inbox.get(None)
                continue
            self._run_engine()

    def _run_engine(self) -> None:
        futures = self._futures
        try:
            engine = Engine(
                self._source,  # type: ignore[arg-type]
                self._backend,
                self._policies,
            )
            for result in drive(engine, self._inbox):
                assert not isinstance(result, OkRun)  # its source is unsized: no bulk lane
                with self._lock:
                    future = futures.pop(result.index, None)
                    if future is not None:
                        self.tasks.pop(future, None)
                if future is not None:
                    try:
                        future.set_result(result)
                    except InvalidStateError:  # cancelled while running, meanwhile
                        pass
                # not kept while waiting for the next one: the caller may drop its value
                del result, future
        except BaseException as error:  # the engine itself failed: fail what it held
            with self._lock:
                # running, pulled and not taken by a worker yet, or still queued: all fail
                unfinished = [f for f in futures.values() if not f.done()]
                futures.clear()
                self.tasks.clear()
                self._source.queue.clear()
            for future in unfinished:
                try:
                    if not future.running() and not future.set_running_or_notify_cancel():
                        continue  # cancelled: nothing to report
                except RuntimeError:  # a worker took it meanwhile: it is running
                    pass
                if not future.done():
                    try:
                        future.set_exception(error)
                    except InvalidStateError:  # finished meanwhile
                        pass
