"""What crosses the pipes between the parent and a worker, and the functions both know.

Parent -> child, pickled tuples on the task pipe:
    ("fn", key, blob)                   the cloudpickled Job known from now on as ``key``
    ("chunk", key, seq, numbers, items, where)
                                        run these items with Job ``key``: the chunk
                                        ``seq`` (a Piece); ``numbers`` are the attempt
                                        numbers (one int when all are the same);
                                        ``items`` is the pickled list of items (protocol
                                        5), loaded by the child's main loop, so an item
                                        that cannot be loaded fails its chunk, never the
                                        thread that reads the pipe; ``where``: None, or
                                        the shared memory holding its large buffers
                                        (``_buffers.py``)
    None                                finish and exit
Child -> parent, on the result pipe:
    ("ready",)                          the initializer finished
    ("results", seq, start, values, pickled, failed, began, ran, busy)
                                        outcomes of chunk ``seq``'s items ``start …``,
                                        in order: ``values`` (None where failed);
                                        ``pickled``: None, or the positions whose value
                                        is its pickled bytes, loaded one by one so one
                                        bad result fails only its own item; ``failed``:
                                        None or {k: error package}; ``began`` and
                                        ``ran``: array('d') bytes, when each item began
                                        (the system-wide monotonic clock) and how long
                                        it ran; ``busy``: their sum
    ("unloadable", seq, error_package)  the chunk's items could not be loaded
    ("init_failed", error_package)

A Job's key is a digest of its pickled bytes, so a function redefined in ``__main__``
(or one whose captured values changed) is a new key and reaches the workers anew.
Both sides keep the last ``KEPT`` functions in the same LRU order, so the parent
always knows which ones a worker still has, and a warm runner's memory stays bounded.
"""

from __future__ import annotations

import hashlib
import pickle
import weakref
from collections import OrderedDict
from typing import Any

import cloudpickle

from poolkit._core._task import Job
from poolkit._quote import describe, short_repr
from poolkit._shared import pickling_for_local_workers

__all__ = [
    "HALT",
    "INLINE",
    "KEPT",
    "MARK",
    "SPAN",
    "STRIDE",
    "TIME",
    "FunctionTable",
    "KnownFunctions",
    "mark",
    "split_mark",
]

KEPT = 16  # functions a worker keeps loaded; more would only hold memory of old batches

# Each worker's slot of shared memory: MARK, which item it runs (``mark(seq, position)``,
# negated once that item finished, 0 before its first), when that item started, and a
# halt flag the parent raises before a cut so the worker starts nothing more (an item
# it starts after that would be "never started" to the engine, yet would have run).
# One double holds both seq and position, so the parent never reads half of a change.
STRIDE = 3
MARK, TIME, HALT = 0, 1, 2
SPAN = 1 << 20  # positions per chunk the mark can tell apart (chunks hold far fewer)


def mark(seq: int, position: int) -> int:
    """The MARK of item ``position`` of chunk ``seq`` while it runs.

    Example:
        >>> split_mark(mark(7, 3))
        (7, 3)
    """
    return seq * SPAN + position


def split_mark(value: float) -> tuple[int, int]:
    """``(seq, position)`` of a MARK read from a slot (either sign)."""
    seq, position = divmod(int(abs(value)), SPAN)
    return seq, position


class FunctionTable:
    """The parent's side: each live Job's key and pickled bytes (or why it cannot pickle)."""

    def __init__(self) -> None:
        self._blobs: weakref.WeakKeyDictionary[Job, tuple[bytes, bytes | Exception]] = (
            weakref.WeakKeyDictionary()
        )

    def get(self, job: Job) -> tuple[bytes, bytes | Exception]:
        """``(key, blob)`` of ``job``; ``blob`` is a TypeError when it cannot be pickled."""
        known = self._blobs.get(job)
        if known is None:
            try:
                # cloudpickle always: it sends functions of __main__ by value, which a
                # worker could not import by name.
                with pickling_for_local_workers():  # a poolkit.shared goes by reference
                    blob = cloudpickle.dumps(job, pickle.HIGHEST_PROTOCOL)
                key = hashlib.blake2b(blob, digest_size=16).digest()
                known = (key, blob)
            except Exception as error:
                problem = TypeError(
                    f"process mode could not pickle the function {short_repr(job.fn, 200)}: "
                    f"{describe(error)}"
                )
                known = (b"", problem)
            self._blobs[job] = known
        return known


class KnownFunctions(OrderedDict[bytes, Any]):
    """The last ``KEPT`` functions, least recently used first (kept alike on both sides)."""

    def use(self, key: bytes) -> None:
        """Mark ``key`` as just used."""
        self.move_to_end(key)

    def add(self, key: bytes, value: Any) -> None:
        """Remember ``key`` (forgetting the least recently used beyond ``KEPT``)."""
        self[key] = value
        while len(self) > KEPT:
            self.popitem(last=False)


# Values sent as they are in a results message; any other value is pickled on its own.
INLINE = frozenset({int, float, str, bool, type(None), bytes})
