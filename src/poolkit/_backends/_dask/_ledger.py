"""Which items of each run dask mode has posted: each position exactly once.

An item's outcome can reach the client three ways (its chunk's result, a partial
result logged while the chunk ran, a probe of a suspect) and a stop can come at any
time; the ledger lets the first one through and drops the rest. Not thread-safe: the
backend calls it with its lock held.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from poolkit._core._attempt import copy_error
from poolkit._core._task import Run, RunDone

__all__ = ["RunLedger"]


class RunLedger:
    """Runs with items that have no outcome posted yet, and which those are.

    Example:
        >>> from poolkit._core._task import Job
        >>> class Replies(list):
        ...     put = list.append
        >>> replies = Replies()
        >>> run = Run(0, ["a", "b", "c"], Job(str.upper), replies)
        >>> ledger = RunLedger()
        >>> ledger.open(run)
        >>> ledger.post(run, 1, ["B"], None, [0.1])
        >>> ledger.post(run, 0, ["A", "B"], None, [0.1, 0.1])  # position 1 again: left out
        >>> [(d.position, d.values) for d in replies]
        [(1, ['B']), (0, ['A'])]
        >>> ledger.stretches(run, 0, 3)
        [(2, 3)]
    """

    def __init__(self) -> None:
        self._posted: dict[Run, _Posted] = {}

    def __bool__(self) -> bool:
        return bool(self._posted)

    def open(self, run: Run) -> None:
        self._posted[run] = _Posted(len(run.items))

    def unposted(self, run: Run, position: int) -> bool:
        """True while ``position`` of ``run`` waits for its outcome."""
        state = self._posted.get(run)
        return state is not None and not state.mask[position]

    def stretches(self, run: Run, lo: int, hi: int) -> list[tuple[int, int]]:
        """The stretches of ``run.items[lo:hi]`` with no outcome yet (none once stopped)."""
        state = self._posted.get(run)
        return [] if state is None else _zero_runs(state.mask, lo, hi)

    def post(
        self,
        run: Run,
        lo: int,
        values: list[Any],
        failed: dict[int, BaseException] | None,
        elapsed: Sequence[float],
    ) -> None:
        """Post the outcomes of ``run.items[lo:lo + len(values)]`` that have none yet."""
        state = self._posted.get(run)
        if state is None:
            return
        mask = state.mask
        hi = lo + len(values)
        for start, end in _zero_runs(mask, lo, hi):  # usually one: (lo, hi)
            part = failed
            if failed is not None:
                part = {k - (start - lo): e for k, e in failed.items() if start <= lo + k < end}
            whole = start == lo and end == hi
            run.reply.put(
                RunDone(
                    run,
                    start,
                    values if whole else values[start - lo : end - lo],
                    part or None,
                    elapsed if whole else elapsed[start - lo : end - lo],
                )
            )
            mask[start:end] = b"\x01" * (end - start)
            state.left -= end - start
        if state.left <= 0:
            del self._posted[run]

    def post_failed(self, run: Run, lo: int, hi: int, error: BaseException) -> None:
        """Every item of ``run.items[lo:hi]`` with no outcome yet failed with ``error``."""
        n = hi - lo
        self.post(run, lo, [None] * n, {k: copy_error(error) for k in range(n)}, [0.0] * n)

    def fail_all(self, error: BaseException) -> None:
        """Every item of every run with no outcome yet failed with ``error``."""
        for run, state in list(self._posted.items()):
            self.post_failed(run, 0, len(state.mask), error)

    def stop(self, run: Run) -> list[int] | None:
        """Forget ``run`` (nothing more of it is posted): the positions it had with no
        outcome, or None when it had none left."""
        state = self._posted.pop(run, None)
        if state is None:
            return None
        return [p for p, done in enumerate(state.mask) if not done]


class _Posted:
    __slots__ = ("left", "mask")

    def __init__(self, size: int) -> None:
        self.mask = bytearray(size)  # 1 where the outcome was posted
        self.left = size


def _zero_runs(posted: bytearray, lo: int, hi: int) -> list[tuple[int, int]]:
    """The maximal ``(start, end)`` stretches of ``posted[lo:hi]`` not posted yet.

    Example:
        >>> _zero_runs(bytearray(b"\\x01\\x00\\x00\\x01\\x00"), 0, 5)
        [(1, 3), (4, 5)]
    """
    stretches = []
    start = posted.find(0, lo, hi)
    while start != -1:
        end = posted.find(1, start, hi)
        end = hi if end == -1 else end
        stretches.append((start, end))
        start = posted.find(0, end, hi)
    return stretches
