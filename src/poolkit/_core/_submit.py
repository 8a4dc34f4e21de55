"""``Runner.submit``: single items fed to one long-lived engine on a coordinator thread."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import Any

from ._backend import Backend
from ._drive import drive
from ._engine import Engine, Policies
from ._inbox import SyncInbox
from ._task import Task

__all__ = ["Submitter"]


class _QueueSource:
    """A Source fed by ``submit``: ``pull`` never blocks, ``exhausted`` once closed and empty."""

    def __init__(self, futures: dict[int, Future[Any]]) -> None:
        self._queue: deque[Task] = deque()
        self._futures = futures  # the Submitter's, by index: a skipped one is forgotten here
        self.closed = False
        self.exhausted = False

    def push(self, task: Task) -> None:
        self._queue.append(task)

    def pull(self) -> Task | None:
        queue = self._queue
        while queue:
            task = queue.popleft()
            assert task.future is not None
            if task.future.set_running_or_notify_cancel():
                return task
            self._futures.pop(task.index, None)  # cancelled before it started: no Result comes
        if self.closed:
            self.exhausted = True
        return None

    def rest(self) -> Iterator[Task]:
        self.exhausted = True
        return iter(())


class Submitter:
    """Runs submitted items through an Engine on a daemon coordinator thread."""

    def __init__(self, backend: Callable[[], Backend], policies: Policies) -> None:
        self._make_backend = backend
        self._policies = policies
        self._inbox = SyncInbox()
        self._futures: dict[int, Future[Any]] = {}
        self._source = _QueueSource(self._futures)
        self._lock = threading.Lock()
        self._count = 0
        self._thread: threading.Thread | None = None

    def submit(self, fn: Callable[[Any], Any], item: Any) -> Future[Any]:
        future: Future[Any] = Future()
        with self._lock:
            if self._source.closed:
                raise RuntimeError("this runner is closed; create a new one")
            index = self._count
            self._count += 1
            self._futures[index] = future
            self._source.push(Task(index, item, fn, self._inbox, future))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._coordinate, name="poolkit-submit", daemon=True
                )
                self._thread.start()
        self._inbox.put(None)
        return future

    def close(self) -> None:
        """Let submitted items finish, then stop the coordinator."""
        with self._lock:
            self._source.closed = True
            thread = self._thread
        self._inbox.put(None)
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def _coordinate(self) -> None:
        engine = Engine(self._source, self._make_backend(), self._policies)  # type: ignore[arg-type]
        futures = self._futures
        try:
            for result in drive(engine, self._inbox):
                with self._lock:
                    future = futures.pop(result.index)
                future.set_result(result)
        except BaseException as error:  # the coordinator itself failed: fail what is left
            with self._lock:
                left = list(futures.values())
                futures.clear()
            for future in left:
                if not future.done():
                    future.set_exception(error)
