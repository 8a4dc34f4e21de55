"""Shared-memory segments: write parts into one, map one, read its parts as views.

Used by ``poolkit.shared`` and by process mode's large buffers. The process that
creates a segment owns it and unlinks it; a process that maps one only closes its
mapping (multiprocessing's resource tracker, which the workers share with their
parent, unlinks what a parent that died left behind).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["attach", "create", "parts", "unlink"]


def create(pieces: Sequence[Any]) -> tuple[Any, list[int]]:
    """A new segment holding ``pieces`` (bytes-like) one after another, and their sizes."""
    from multiprocessing.shared_memory import SharedMemory

    sizes = [memoryview(piece).nbytes for piece in pieces]
    memory: Any = SharedMemory(create=True, size=max(1, sum(sizes)))
    at = 0
    for piece, size in zip(pieces, sizes, strict=True):
        memory.buf[at : at + size] = piece
        at += size
    return memory, sizes


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
