"""What crosses the pipes between the parent and a worker, and the functions both know.

Parent -> child, pickled tuples on the task pipe:
    ("fn", key, blob)                   the cloudpickled Job known from now on as ``key``
    ("chunk", key, [(seq, item, n)...]) run these items with Job ``key``
    None                                finish and exit
Child -> parent, on the result pipe:
    ("results", [(seq, ok, payload)...], busy_seconds)
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

__all__ = ["KEPT", "FunctionTable", "KnownFunctions"]

KEPT = 16  # functions a worker keeps loaded; more would only hold memory of old batches


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
