"""Shared-memory segments: write parts into one, map one, read its parts as views.

Used by ``poolkit.shared`` and by process mode's large buffers. The process that
creates a segment owns it and unlinks it; a process that maps one only closes its
mapping (multiprocessing's resource tracker, which the workers share with their
parent, unlinks what a parent that died left behind).
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["attach", "create", "parts", "unlink"]


def create(pieces: Sequence[Any]) -> tuple[Any, list[int]]:
    """A new segment holding ``pieces`` (bytes-like) one after another, and their sizes.

    The segment has a ``name`` to ``attach`` it by, and is removed by ``unlink``."""
    sizes = [memoryview(piece).nbytes for piece in pieces]
    if sys.platform.startswith("linux"):
        return _Written(pieces, max(1, sum(sizes))), sizes
    from multiprocessing.shared_memory import SharedMemory

    memory: Any = SharedMemory(create=True, size=max(1, sum(sizes)))
    at = 0
    for piece, size in zip(pieces, sizes, strict=True):
        memory.buf[at : at + size] = piece
        at += size
    return memory, sizes


class _Written:
    """A segment written with ``pwrite`` and never mapped by the process that made it.

    Copying 50 MB into a fresh mapping faults in its pages one by one (63 ms here);
    writing it to the segment's file descriptor lets the kernel allocate and copy in
    bulk (33 ms), and the maker has no mapping to undo. Linux only: elsewhere a POSIX
    shared-memory object can only be mapped. Named and tracked as ``SharedMemory``
    names and tracks its own, so workers attach it the same way, and the resource
    tracker unlinks it if this process dies first.
    """

    __slots__ = ("_path", "name")

    def __init__(self, pieces: Sequence[Any], size: int) -> None:
        import _posixshmem  # type: ignore[import-not-found]
        from multiprocessing import resource_tracker

        while True:
            name = "psm_" + secrets.token_hex(5)  # SharedMemory's own form of name
            # Tracked before it exists: killed at any point from here on, this process
            # leaves nothing (the tracker's unlink of a name never made is harmless).
            resource_tracker.register("/" + name, "shared_memory")
            try:
                fd = _posixshmem.shm_open("/" + name, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
            except BaseException as error:
                resource_tracker.unregister("/" + name, "shared_memory")
                if isinstance(error, FileExistsError):
                    continue  # someone else's: another name
                raise
            break
        self.name = name
        self._path: str | None = "/" + name
        try:
            os.ftruncate(fd, size)
            at = 0
            for piece in pieces:
                view = memoryview(piece).cast("B")
                done = 0
                while done < len(view):
                    done += os.pwrite(fd, view[done:], at + done)
                at += len(view)
        except BaseException:
            self.unlink()
            raise
        finally:
            os.close(fd)

    def close(self) -> None:
        """Nothing to unmap (``SharedMemory``'s interface)."""

    def unlink(self) -> None:
        """Remove the segment (workers that mapped it keep their mappings)."""
        import _posixshmem
        from multiprocessing import resource_tracker

        path, self._path = self._path, None
        if path is None:
            raise FileNotFoundError(f"shared memory {self.name!r} was unlinked already")
        try:
            _posixshmem.shm_unlink(path)
        finally:
            resource_tracker.unregister(path, "shared_memory")


def attach(name: str) -> Any:
    """Map the segment ``name`` (created by another process)."""
    from multiprocessing.shared_memory import SharedMemory

    return SharedMemory(name=name)


def parts(memory: Any, sizes: Sequence[int], start: int = 0) -> list[memoryview]:
    """Views of the parts of ``sizes`` bytes laid one after another from ``start``."""
    views = []
    at = start
    for size in sizes:
        views.append(memory.buf[at : at + size])
        at += size
    return views


def unlink(memory: Any) -> None:
    """Unmap and remove a segment this process created (once; again is harmless)."""
    try:
        memory.close()
    except BufferError:  # a view of it is still alive here: the name goes all the same
        pass
    try:
        memory.unlink()
    except FileNotFoundError:
        pass
