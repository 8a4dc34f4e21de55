"""Large buffers through shared memory instead of the pipe (pickle protocol 5).

A chunk's items are pickled with protocol 5: an object that exposes its memory as a
``PickleBuffer`` (a NumPy array, for one) hands that buffer over out of band. Buffers
of at least ``LARGE`` bytes are copied once into one shared-memory segment per chunk,
and the worker loads the items straight from it, without copying again: a 50 MB array
costs one copy instead of a pickle, a trip through the pipe in 64 KB pieces and an
unpickle. Smaller buffers stay in the pickle, where they are cheaper.

The parent creates each segment and unlinks it once the chunk's outcomes are in, or
its worker is gone (``Segment.release``); a worker never unlinks. A segment left by a
parent that died is unlinked by multiprocessing's resource tracker.
"""

from __future__ import annotations

import pickle
from typing import Any

import cloudpickle

from poolkit import _shm
from poolkit._shared import pickling_for_local_workers

__all__ = ["LARGE", "Segment", "load_items", "pack_items"]

LARGE = 1 << 20  # bytes: a buffer this large goes through shared memory


class Segment:
    """The parent's handle on one chunk's shared memory."""

    __slots__ = ("_memory", "size")

    def __init__(self, memory: Any, size: int) -> None:
        self._memory = memory
        self.size = size  # bytes of buffers it holds

    def release(self) -> None:
        """Unmap and unlink it (a worker that mapped it keeps its mapping until it lets go)."""
        memory, self._memory = self._memory, None
        if memory is not None:
            _shm.unlink(memory)


def pack_items(items: list[Any]) -> tuple[bytes, tuple[str, list[int]] | None, Segment | None]:
    """``(pickled items, where their large buffers are, the segment)``; raises like
    ``dumps`` when an item cannot be pickled."""
    large: list[pickle.PickleBuffer] = []

    def out_of_band(buffer: pickle.PickleBuffer) -> bool:
        try:
            size = buffer.raw().nbytes
        except BufferError:  # not contiguous: it stays in the pickle
            return True
        if size < LARGE:
            return True
        large.append(buffer)
        return False

    with pickling_for_local_workers():  # a poolkit.shared item goes by reference
        try:
            blob = pickle.dumps(items, 5, buffer_callback=out_of_band)
        except Exception:
            large.clear()
            blob = cloudpickle.dumps(items, 5, buffer_callback=out_of_band)
    if not large:
        return blob, None, None
    memory, sizes = _shm.create([buffer.raw() for buffer in large])
    return blob, (memory.name, sizes), Segment(memory, sum(sizes))


def load_items(blob: bytes, where: tuple[str, list[int]] | None) -> tuple[list[Any], Any]:
    """The items, and the segment's mapping to close once they are dropped (or None)."""
    if where is None:
        items: list[Any] = pickle.loads(blob)
        return items, None
    name, sizes = where
    memory = _shm.attach(name)
    buffers = _shm.parts(memory, sizes)
    try:
        items = pickle.loads(blob, buffers=buffers)
    except BaseException:
        del buffers
        close_mapping(memory)
        raise
    return items, memory


def close_mapping(memory: Any) -> None:
    """Unmap a segment in the worker, unless something still holds a view of it (a value
    kept in worker state: then the mapping lives on, and the memory with it)."""
    if memory is None:
        return
    try:
        memory.close()
    except BufferError:
        _KEPT.append(memory)


_KEPT: list[Any] = []  # mappings still viewed by objects the function kept
