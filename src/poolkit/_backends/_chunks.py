"""Chunk sizes, shared by the backends that send items in chunks (process and dask).

Both send small items several to a message (one pickle, one task), yet report each
item on its own. How big a chunk is: a size the user fixed, else as many items as take
about ``target`` seconds by the measured duration per item, never more than a fair
share of what waits, so every worker gets some (unless that share would take less than
an eighth of ``target``: then splitting costs more than it saves).
"""

from __future__ import annotations

from collections import OrderedDict

__all__ = ["ChunkSizer"]


class ChunkSizer:
    """Chunk sizes from the measured duration of one item, per batch (``job``).

    Each batch is measured afresh (a runner's next batch may run another function), so
    its first chunks hold ``first`` items until the first chunk comes back.

    Example:
        >>> sizer, job = ChunkSizer(None, target=0.01, largest=512, first=8), object()
        >>> sizer.size(job, waiting=1000, workers=2)  # nothing measured yet
        8
        >>> sizer.observe(job, items=100, seconds=0.01)  # 100 µs per item
        >>> sizer.size(job, waiting=1000, workers=2)
        100
        >>> sizer.size(job, waiting=8, workers=4)  # 2 each would not be worth a message
        8
    """

    __slots__ = ("_first", "_fixed", "_largest", "_seconds", "_target")

    _KEEP = 16  # batches remembered (several may share a runner at once)

    def __init__(self, fixed: int | None, *, target: float, largest: int, first: int) -> None:
        self._fixed = fixed
        self._target = target
        self._largest = largest
        self._first = first
        self._seconds: OrderedDict[int, tuple[object, float]] = OrderedDict()

    def size(self, job: object, waiting: int, workers: int) -> int:
        """How many of ``waiting`` items of ``job`` the next chunk takes, when what waits
        is shared in ``workers`` chunks (count each worker once per chunk it holds
        ahead: then the chunks shrink as a batch ends, and its workers finish together).
        """
        if self._fixed is not None:
            return self._fixed
        fair = -(-waiting // max(1, workers))
        seconds = self.item_seconds(job)
        if seconds is None:
            return max(1, min(fair, self._first))
        by_time = int(self._target / max(seconds, 1e-7))
        # A fair share smaller than an eighth of the target is not worth a message of
        # its own: sending it would cost more than running it (the tail of a batch of
        # tiny items went out one item per chunk).
        worth = min(waiting, int(self._target / 8 / max(seconds, 1e-7)))
        return max(1, min(max(fair, worth), by_time, self._largest))

    def least(self, job: object) -> int:
        """The smallest chunk of ``job`` worth a message of its own while every worker
        has work: an eighth of ``target`` (``first`` until measured, the fixed size if
        any).

        Example:
            >>> sizer, job = ChunkSizer(None, target=0.2, largest=1024, first=2), object()
            >>> sizer.least(job)
            2
            >>> sizer.observe(job, items=1000, seconds=0.001)
            >>> sizer.least(job)
            1024
        """
        if self._fixed is not None:
            return self._fixed
        seconds = self.item_seconds(job)
        if seconds is None:
            return self._first
        return max(1, min(int(self._target / 8 / max(seconds, 1e-7)), self._largest))

    def item_seconds(self, job: object) -> float | None:
        """The moving average of one item's duration in ``job``; None until measured."""
        known = self._seconds.get(id(job))
        return known[1] if known is not None and known[0] is job else None

    def observe(self, job: object, items: int, seconds: float) -> None:
        """``items`` items of ``job`` ran in ``seconds`` (measured where they ran)."""
        if items <= 0:
            return
        per_item = seconds / items
        previous = self.item_seconds(job)
        average = per_item if previous is None else 0.7 * previous + 0.3 * per_item
        # the job itself is kept with its figure, so a new job at a reused id is unknown
        self._seconds[id(job)] = (job, average)
        self._seconds.move_to_end(id(job))
        while len(self._seconds) > self._KEEP:
            self._seconds.popitem(last=False)
