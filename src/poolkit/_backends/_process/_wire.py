"""What crosses the pipes between the parent and a worker, and the functions both know.

Parent -> child, pickled tuples on the task pipe:
    ("fn", key, blob)                   the cloudpickled Job known from now on as ``key``
    ("chunk", key, [(seq, n)...], items)  run these items with Job ``key``; ``items``
                                        is the pickled list of items, loaded by the
                                        child's main loop, so an item that cannot be
                                        loaded fails its chunk's items, never the
                                        thread that reads the pipe
    None                                finish and exit
Child -> parent, on the result pipe:
    ("ready",)                          the initializer finished
    ("results", [(seq, ok, kind, data, started)...], busy_seconds)
                                        ``kind`` 0: ``data`` is the value itself (simple
                                        scalars); 1: its pickled bytes, loaded one by one
                                        so one bad result fails only its own item;
                                        ``started``: when the item began (the system-wide
                                        monotonic clock), so ``elapsed`` leaves out the
                                        time it waited in its chunk
    ("unloadable", [seq...], error_package)
                                        the chunk's items could not be loaded
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

__all__ = [
    "HALT",
    "KEPT",
    "SEQ",
    "STRIDE",
    "TIME",
    "FunctionTable",
    "KnownFunctions",
    "pack_value",
    "unpack_value",
]

KEPT = 16  # functions a worker keeps loaded; more would only hold memory of old batches

# Each worker's slot of shared memory: the seq of the item it runs (negative once that
# item finished), when it started, and a halt flag the parent raises before a cut so
# the worker starts nothing more (an item it starts after that would be "never started"
# to the engine, yet would have run).
STRIDE = 3
SEQ, TIME, HALT = 0, 1, 2


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
                blob = cloudpickle.dumps(job, pickle.HIGHEST_PROTOCOL)
                key = hashlib.blake2b(blob, digest_size=16).digest()
                known = (key, blob)
            except Exception as error:
                problem = TypeError(
                    f"process mode could not pickle the function {job.fn!r}: "
                    f"{type(error).__name__}: {error}"
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


_INLINE = (int, float, str, bool, type(None))  # values that pickle and load without surprises


def pack_value(value: Any) -> tuple[int, Any]:
    """``(kind, data)`` of a result, as the child sends it; raises when it cannot pickle."""
    if type(value) in _INLINE:
        return 0, value
    return 1, pickle.dumps(value, pickle.HIGHEST_PROTOCOL)


def unpack_value(kind: int, data: Any) -> Any:
    """The value back in the parent; raises (anything) when it cannot be loaded."""
    return data if kind == 0 else pickle.loads(data)
