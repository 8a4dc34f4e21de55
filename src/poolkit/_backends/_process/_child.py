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
from poolkit._core._attempt import WorkerContext, run_attempt
from poolkit._core._task import Job

from ._buffers import close_mapping, load_items
from ._wire import HALT, INLINE, MARK, STRIDE, TIME, KnownFunctions, mark

__all__ = ["FLUSH_AFTER", "worker_main"]

FLUSH_AFTER = 0.02  # twice the target chunk: a chunk on time goes back in one message


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
    add = outbox.add
    while True:
        message = inbox.get()
        if message is None:
            outbox.flush()
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
            outbox.flush()
            results.send_bytes(dumps(("unloadable", seq, pack_error(error))))
            continue
        number = numbers if type(numbers) is int else 0
        base = mark(seq, 0)
        outbox.begin(seq)
        for position, item in enumerate(items):
            began = monotonic()
            slots[time_at] = began
            slots[mark_at] = base + position
            if slots[halt_at]:  # a cut: the parent counts this item as never started
                slots[mark_at] = last_done
                break
            ok, payload = run_attempt(job, item, number or numbers[position])
            # Finished: the time to send the result back is not the attempt's.
            slots[mark_at] = last_done = -(base + position)
            add(ok, payload, began, monotonic() - began)
            del item, payload
        outbox.flush()
        item = None  # (still bound after a halt)
        del message, items, blob  # nothing of a finished chunk stays alive
        close_mapping(mapping)


class _Outbox:
    """Finished outcomes of the current chunk on their way to the parent.

    The main loop flushes at the end of each chunk. A poller thread, awake only while
    work flows, sends what is waiting once its oldest outcome is FLUSH_AFTER seconds
    old, so a fast item's result never waits long for a slow neighbour in its chunk,
    and a chunk that takes the time it was sized for goes back in one message.
    """

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self._lock = threading.Lock()
        self._seq = 0
        self._start = 0  # the chunk position of the first outcome waiting
        self._values: list[Any] = []
        self._pickled: list[int] | None = None
        self._failed: dict[int, Any] | None = None
        self._began = array("d")
        self._ran = array("d")
        self._added = 0
        self._since: float | None = None
        self._asleep = True
        self._wake = threading.Event()
        threading.Thread(target=self._poll, daemon=True).start()

    def begin(self, seq: int) -> None:
        """Outcomes added from now on are chunk ``seq``'s, from its first item."""
        with self._lock:
            self._seq = seq
            self._start = 0

    def add(self, ok: bool, payload: Any, began: float, ran: float) -> None:
        with self._lock:
            values = self._values
            if not values:
                self._since = began + ran  # when the oldest outcome waiting came
            if not ok:
                if self._failed is None:
                    self._failed = {}
                self._failed[len(values)] = pack_error(payload)
                values.append(None)
            elif type(payload) in INLINE:
                values.append(payload)
            else:
                self._add_pickled(payload)
            self._began.append(began)
            self._ran.append(ran)
            self._added += 1
        if self._asleep:
            self._asleep = False
            self._wake.set()

    def _add_pickled(self, value: Any) -> None:
        values = self._values
        try:
            data = dumps(value)  # cloudpickle as the fallback, as for items
        except Exception as error:
            problem = pickle.PicklingError(
                f"the item's result ({type(value).__name__}) could not be pickled to send "
                f"it back from the worker process: {type(error).__name__}: {error}"
            )
            if self._failed is None:
                self._failed = {}
            self._failed[len(values)] = pack_error(problem)
            values.append(None)
            return
        if self._pickled is None:
            self._pickled = []
        self._pickled.append(len(values))
        values.append(data)

    def flush(self) -> None:
        with self._lock:
            values = self._values
            if not values:
                return
            ran = self._ran
            message = (
                "results",
                self._seq,
                self._start,
                values,
                self._pickled,
                self._failed,
                self._began.tobytes(),
                ran.tobytes(),
                sum(ran),
            )
            self._start += len(values)
            self._since = None
            self._values, self._pickled, self._failed = [], None, None
            self._began, self._ran = array("d"), array("d")
            self._connection.send_bytes(dumps(message))

    def _poll(self) -> None:
        seen = 0
        while True:
            since = self._since
            due = FLUSH_AFTER if since is None else since + FLUSH_AFTER - time.monotonic()
            time.sleep(max(due, 0.001))
            since = self._since
            if since is not None and time.monotonic() - since >= FLUSH_AFTER * 0.99:
                self.flush()
            if self._added == seen:  # nothing happened for a whole period: sleep
                self._asleep = True
                self._wake.clear()
                if self._added == seen:
                    self._wake.wait()
            seen = self._added


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
            f"{type(error).__name__}: {error} (is its module importable in the worker?)"
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
