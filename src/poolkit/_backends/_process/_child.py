"""The body of a process-mode worker (runs in the child process).

The messages are described in ``_wire.py``. Before each item the child writes its
start time, then its mark (chunk and position), into its slot of shared memory, so
the parent knows which item was running if the child dies, and when it started (for
timeouts).
Results are sent when a chunk ends, or earlier when the last send is more than
``FLUSH_AFTER`` seconds old.
"""

from __future__ import annotations

import os
import pickle
import signal
import threading
import time
from array import array
from multiprocessing.connection import Connection
from queue import SimpleQueue
from typing import Any

from poolkit._backends._pickling import dumps, load_function, pack_error
from poolkit._core import _attempt
from poolkit._core._attempt import ATTEMPT, WorkerContext, awaited
from poolkit._core._task import Job
from poolkit._quote import describe

from ._buffers import close_mapping, load_items
from ._wire import HALT, INLINE, MARK, STRIDE, TIME, KnownFunctions, mark

__all__ = ["FLUSH_AFTER", "worker_main"]

FLUSH_AFTER = 0.08  # twice the target chunk: a chunk on time goes back in one message


def worker_main(
    tasks: Connection,
    results: Connection,
    slots: Any,
    slot: int,
    initializer: bytes | None,
) -> None:
    """Run chunks until told to stop, or until the parent goes away. ``initializer`` is
    ``(initializer, initargs)``, pickled with cloudpickle (see ``pickle_initializer``)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides what Ctrl-C stops
    _attempt.IN_WORKER_PROCESS = True
    WorkerContext(slot).enter()
    inbox: SimpleQueue[Any] = SimpleQueue()
    threading.Thread(target=_read, args=(tasks, inbox), daemon=True).start()
    threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True).start()
    if initializer is not None:
        try:
            _initialize(initializer)
        except BaseException as error:
            results.send_bytes(dumps(("init_failed", pack_error(error))))
            return
    results.send_bytes(dumps(("ready",)))
    functions = KnownFunctions()
    outbox = _Outbox(results)
    time_at = STRIDE * slot + TIME
    mark_at = STRIDE * slot + MARK
    halt_at = STRIDE * slot + HALT
    last_done = 0  # the mark of the last item finished, negated (0: none yet)
    monotonic = time.monotonic
    while True:
        message = inbox.get()
        if message is None:
            return
        if message[0] == "fn":
            functions.add(message[1], _load_job(message[2]))
            continue
        _, key, seq, numbers, blob, where = message
        functions.use(key)
        job = functions[key]
        try:
            items, mapping = load_items(blob, where)
        except BaseException as error:  # user data: a class of __main__, a bad __setstate__
            results.send_bytes(dumps(("unloadable", seq, pack_error(error))))
            continue
        base = mark(seq, 0)
        # The per-item path of process mode, kept lean: no call but the item's own, and
        # the outcome appended to the outbox's columns in place (see _Outbox).
        fn, star = job.fn, job.star
        first = numbers if type(numbers) is int else 0
        if first and ATTEMPT.get() != first:
            ATTEMPT.set(first)
        outbox.begin(seq)
        add_value = outbox.values.append
        add_began, add_ran = outbox.began.append, outbox.ran.append
        began = monotonic()  # an item begins where the previous one ended
        for position, item in enumerate(items):
            slots[time_at] = began
            slots[mark_at] = base + position
            if slots[halt_at]:  # a cut: the parent counts this item as never started
                slots[mark_at] = last_done
                break
            if not first:
                ATTEMPT.set(numbers[position])
            try:
                value = fn(*item) if star else fn(item)
                if type(value) in INLINE:
                    add_value(value)
                else:
                    outbox.add_other(awaited(value))
            except BaseException as error:  # the engine decides what it means
                outbox.add_failure(error)
            ended = monotonic()
            # Finished: the time to send the result back is not the attempt's.
            slots[mark_at] = last_done = -(base + position)
            add_began(began)
            add_ran(ended - began)
            outbox.done = position + 1  # last: the outcome is whole (the poller may send it now)
            began = ended
        outbox.end()
        item = value = None  # (still bound after the loop)
        del message, items, blob  # nothing of a finished chunk stays alive
        close_mapping(mapping)


class _Outbox:
    """The outcomes of the current chunk, in columns, on their way to the parent.

    The main loop appends each outcome to ``values``, ``began`` and ``ran`` itself (no
    call, no lock: this is the per-item path), then counts it in ``done``, last. What
    is counted is whole, and is sent by a flush: by the main loop when the chunk ends,
    or earlier by a poller thread, awake while a chunk runs, once the oldest outcome
    not sent is FLUSH_AFTER seconds old, so a fast item's result never waits long for a
    slow neighbour in its chunk, and a chunk that takes the time it was sized for goes
    back in one message. Only flushes (and the rare failures and pickled values) take
    the lock.
    """

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self._lock = threading.Lock()
        self._seq = 0
        self.values: list[Any] = []
        self.began = array("d")
        self.ran = array("d")
        self.done = 0  # outcomes whole in the columns
        self._sent = 0  # outcomes of the chunk sent already
        self._failed: dict[int, Any] = {}  # column index: the packed error
        self._pickled: list[int] = []  # column indexes whose value is pickled bytes
        self._active = False  # a chunk runs
        self._wake = threading.Event()
        threading.Thread(target=self._poll, daemon=True).start()

    def begin(self, seq: int) -> None:
        """(Main loop.) A chunk begins: its outcomes go in fresh columns."""
        self._seq = seq
        self._active = True
        self._wake.set()

    def add_other(self, value: Any) -> None:
        """(Main loop.) Append a value that is not sent as it is: pickled here, so that a
        result that cannot be pickled is that item's error, not the chunk's."""
        try:
            data = dumps(value)  # cloudpickle as the fallback, as for items
        except Exception as error:
            self.add_failure(
                pickle.PicklingError(
                    f"the item's result ({type(value).__name__}) could not be pickled to "
                    f"send it back from the worker process: {describe(error)}"
                )
            )
            return
        with self._lock:
            self._pickled.append(len(self.values))
            self.values.append(data)

    def add_failure(self, error: BaseException) -> None:
        """(Main loop.) Append an item's error."""
        packed = pack_error(error)
        with self._lock:
            self._failed[len(self.values)] = packed
            self.values.append(None)

    def end(self) -> None:
        """(Main loop.) The chunk ended: send what is left, and start empty columns."""
        with self._lock:
            self._active = False
            self._send_locked()
            self.values, self.began, self.ran = [], array("d"), array("d")
            self.done = self._sent = 0
            self._failed, self._pickled = {}, []

    def _send_locked(self) -> None:
        start, stop = self._sent, self.done
        if start == stop:
            return
        values = self.values[start:stop]
        self.values[start:stop] = [None] * (stop - start)  # the parent has them now
        failed = {i - start: self._failed.pop(i) for i in list(self._failed) if i < stop}
        pickled = [i - start for i in self._pickled if start <= i < stop]
        ran = self.ran[start:stop]
        message = (
            "results",
            self._seq,
            start,
            values,
            pickled or None,
            failed or None,
            self.began[start:stop].tobytes(),
            ran.tobytes(),
            sum(ran),
        )
        self._sent = stop
        self._connection.send_bytes(dumps(message))

    def _poll(self) -> None:
        monotonic = time.monotonic
        while True:
            self._wake.wait()
            self._wake.clear()
            while True:
                # (under the lock: ``end`` swaps the columns, which are read here)
                with self._lock:
                    if not self._active:
                        break
                    sent, done = self._sent, self.done
                    due = FLUSH_AFTER
                    if done > sent:  # the oldest outcome waiting: when did it come?
                        due += self.began[sent] + self.ran[sent] - monotonic()
                        if due <= 0:
                            self._send_locked()
                            continue
                time.sleep(max(due, 0.001))


# Module globals the initializer (re)bound, by the module's ``__name__``: what it sets
# with ``global`` is what the functions of its module see (see ``_share_initialized``).
_initialized: dict[Any, dict[str, Any]] = {}


def _initialize(blob: bytes) -> None:
    """Load and run the initializer, noting which globals of its module it bound."""
    initializer, initargs = load_function(blob)
    function = getattr(initializer, "func", initializer)  # (a functools.partial)
    space = getattr(function, "__globals__", None)
    before = dict(space) if isinstance(space, dict) else None
    initializer(*initargs)
    if before is not None and isinstance(space, dict):
        bound = {k: v for k, v in space.items() if k not in before or before[k] is not v}
        if bound:
            _initialized[space.get("__name__")] = bound


def _share_initialized(fn: Any) -> None:
    """Let a function sent by value (a script's, a notebook's: its globals are a copy
    taken in the parent) see the globals the initializer bound in this worker, as the
    same function imported in the worker would (``global MODEL`` in the initializer,
    ``MODEL`` in the function: the standard library's pattern)."""
    function = getattr(fn, "func", fn)
    space = getattr(function, "__globals__", None)
    if isinstance(space, dict):
        bound = _initialized.get(space.get("__name__"))
        if bound:
            space.update(bound)


def _load_job(blob: bytes) -> Job:
    """The Job, or one whose function raises why it could not be loaded in this process."""
    try:
        job: Job = load_function(blob)
        if _initialized:
            _share_initialized(job.fn)
        return job
    except BaseException as error:
        problem = RuntimeError(
            "the worker process could not load the function: "
            f"{describe(error)} (is its module importable in the worker?)"
        )

        def cannot_load(*item: Any) -> Any:
            raise problem

        return Job(cannot_load, star=True)


def _read(tasks: Connection, inbox: SimpleQueue[Any]) -> None:
    """Move messages from the pipe to ``inbox``; exit the process when the parent is gone."""
    try:
        while True:
            message = pickle.loads(tasks.recv_bytes())
            inbox.put(message)
            if message is None:
                return
    except (EOFError, OSError):
        os._exit(0)  # the parent died or closed the pipe: nobody wants our results
    except BaseException:  # never left hanging: the parent sees a death and replaces us
        os._exit(70)


def _watch_parent(parent: int) -> None:
    """Exit when the parent is gone (a fork child may hold its own pipe's write end)."""
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(0)
