"""What dask mode runs on a Dask worker: chunks of items, and the helpers poolkit calls
there to free a worker thread whose task it abandoned.

A chunk that runs long tells what it has finished so far, without waiting for its
end: every ``PARTIAL_EVERY`` seconds it logs the new outcomes as a Dask event on the
batch's topic, which the client follows. (Its final result still carries every
outcome; the client posts each item once. An event bigger than ``PARTIAL_BYTES`` is
not sent: the scheduler keeps recent events, and large values belong in results.)

Everything here is imported by the workers (by reference, through pickle), so it needs
poolkit installed on them and nothing of the client's.
"""

from __future__ import annotations

import pickle
import time
from array import array
from collections.abc import Callable
from typing import Any

from poolkit._backends._pickling import pack_error
from poolkit._core._attempt import WorkerContext, initializer_failure, run_attempt
from poolkit._core._task import Job

__all__ = ["StopChunk", "interrupt", "run_chunk", "run_piece", "running_keys"]

PARTIAL_EVERY = 0.25
PARTIAL_BYTES = 64 * 1024


class StopChunk(BaseException):
    """Raised by poolkit inside a worker thread whose task it abandoned (on_timeout)."""


class _Partial:
    """Logs a long chunk's outcomes as they come (see the module docstring)."""

    __slots__ = ("_key", "_last", "_topic", "_worker", "sent")

    def __init__(self, topic: str | None) -> None:
        from distributed import get_worker

        self._topic = topic
        self._worker: Any = get_worker() if topic is not None else None
        self._key = None if self._worker is None else self._worker.get_current_task()
        self._last = time.monotonic()
        self.sent = 0  # outcomes logged so far

    def due(self, now: float) -> bool:
        return self._topic is not None and now - self._last >= PARTIAL_EVERY

    def send(self, now: float, first: int, outcomes: Any) -> None:
        """Log ``outcomes`` (from position ``first`` of the chunk)."""
        self._last = now
        blob = pickle.dumps((self._key, first, outcomes), protocol=pickle.HIGHEST_PROTOCOL)
        if len(blob) <= PARTIAL_BYTES:
            self._worker.log_event(self._topic, blob)


def run_chunk(
    job: Job,
    entries: list[tuple[int, Any, int]],
    initializer: Callable[..., Any] | None = None,
    initargs: tuple[Any, ...] = (),
    topic: str | None = None,
) -> list[Any]:
    """Items on their own attempts (the per-item lane): one ``(seq, ok, value or packed
    error, seconds)`` per item."""
    _enter_worker(initializer, initargs)
    partial = _Partial(topic)
    done: list[Any] = []
    clock = time.monotonic
    for seq, item, number in entries:
        began = clock()
        ok, payload = run_attempt(job, item, number)
        if isinstance(payload, StopChunk):  # poolkit gave up on this task: free the thread
            break
        now = clock()
        done.append((seq, ok, payload if ok else pack_error(payload), now - began))
        if partial.due(now) and len(done) < len(entries):
            partial.send(now, partial.sent, done[partial.sent :])
            partial.sent = len(done)
    return done


def run_piece(
    job: Job,
    items: list[Any],
    initializer: Callable[..., Any] | None = None,
    initargs: tuple[Any, ...] = (),
    topic: str | None = None,
) -> tuple[list[Any], dict[int, Any], array[float]]:
    """Consecutive items on their first attempt (the bulk lane): their values, the
    packed errors of the ones that failed by offset, and each one's seconds."""
    _enter_worker(initializer, initargs)
    partial = _Partial(topic)
    values: list[Any] = []
    failed: dict[int, Any] = {}
    seconds = array("d")  # compact on the wire, and as Results keeps it
    clock = time.monotonic
    for offset, item in enumerate(items):
        began = clock()
        ok, payload = run_attempt(job, item, 1)
        if ok:
            values.append(payload)
        elif isinstance(payload, StopChunk):
            break
        else:
            values.append(None)
            failed[offset] = pack_error(payload)
        now = clock()
        seconds.append(now - began)
        if partial.due(now) and offset + 1 < len(items):
            first = partial.sent
            news = {k - first: e for k, e in failed.items() if k >= first}
            partial.send(now, first, (values[first:], news, seconds[first:]))
            partial.sent = offset + 1
    return values, failed, seconds


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


def running_keys(keys: list[Any], dask_worker: Any = None) -> list[Any]:
    """Which of ``keys`` one of this worker's threads is running now."""
    wanted = set(keys)
    return [key for key in dict(dask_worker.active_threads).values() if key in wanted]


def interrupt(keys: list[Any], dask_worker: Any = None) -> int:
    """Raise StopChunk in this worker's threads running ``keys``; how many."""
    import ctypes

    wanted = set(keys)
    hit = 0
    for ident, key in dict(dask_worker.active_threads).items():
        if key in wanted:
            hit += ctypes.pythonapi.PyThreadState_SetAsyncExc(
                ctypes.c_ulong(ident), ctypes.py_object(StopChunk)
            )
    return hit
