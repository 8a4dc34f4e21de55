"""The progress display: a tqdm bar (a widget in notebooks), or a callable of the user's."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

__all__ = ["Progress", "make_progress"]


@dataclass(frozen=True, slots=True)
class Progress:
    """A snapshot handed to a ``progress=`` callable after each result and retry.

    Examples:
        >>> p = Progress(done=3, total=10, ok=2, err=1, retries=4, elapsed=1.5)
        >>> p.rate
        2.0
    """

    done: int
    total: int | None
    ok: int
    err: int
    retries: int
    elapsed: float
    finished: bool = False

    @property
    def rate(self) -> float:
        """Items finished per second so far."""
        return self.done / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def eta(self) -> float | None:
        """Seconds until the end at the current rate (None when the total is unknown)."""
        if self.total is None or self.rate <= 0:
            return None
        return max(0, self.total - self.done) / self.rate


class _Counter:
    """Counts results and retries and hands snapshots to ``render``."""

    def __init__(
        self, total: int | None, render: Callable[[Progress], Any], interval: float
    ) -> None:
        self._total = total
        self._render = render
        self._interval = interval
        self._started = time.monotonic()
        self._last = 0.0
        self._ok = self._err = self._retries = 0

    def update(self, ok: bool) -> None:
        if ok:
            self._ok += 1
        else:
            self._err += 1
        self._maybe_render()

    def retry(self) -> None:
        self._retries += 1
        self._maybe_render()

    def close(self) -> None:
        self._render(self._snapshot(finished=True))

    def suspend(self) -> None:
        """Take the bar off the screen while a hook may print."""
        clear = getattr(self._render, "clear", None)
        if clear is not None:
            clear()

    def resume(self) -> None:
        """Put the bar back after a hook printed."""
        redraw = getattr(self._render, "redraw", None)
        if redraw is not None:
            redraw()

    def _maybe_render(self) -> None:
        now = time.monotonic()
        if now - self._last >= self._interval:
            self._last = now
            self._render(self._snapshot(finished=False))

    def _snapshot(self, *, finished: bool) -> Progress:
        return Progress(
            done=self._ok + self._err,
            total=self._total,
            ok=self._ok,
            err=self._err,
            retries=self._retries,
            elapsed=time.monotonic() - self._started,
            finished=finished,
        )


class _Tqdm:
    """Counts results on a tqdm bar (a widget in notebooks): ok/err/retries in its postfix."""

    def __init__(self, bar: Any, owned: bool) -> None:
        self._bar = bar
        self._owned = owned
        self._ok = self._err = self._retries = 0

    def update(self, ok: bool) -> None:
        if ok:
            self._ok += 1
        else:
            self._err += 1
        self._bar.update(1)
        if not ok or self._retries:
            self._postfix()

    def retry(self) -> None:
        self._retries += 1
        self._postfix()

    def _postfix(self) -> None:
        self._bar.set_postfix(ok=self._ok, err=self._err, retries=self._retries, refresh=False)

    def suspend(self) -> None:
        self._bar.clear()

    def resume(self) -> None:
        self._bar.refresh()

    def close(self) -> None:
        self._postfix()
        if self._owned:
            self._bar.close()
        else:
            self._bar.refresh()


def make_progress(progress: Any, items: Any) -> Any:
    """The progress display for ``progress=``.

    ``True``: a ``tqdm.auto`` bar (a widget in a notebook, a bar on a terminal's
    stderr, nothing when stderr is not a terminal); ``"force"``: the bar even then;
    a tqdm class or instance of your own; or a callable taking ``poolkit.Progress``.
    """
    if progress is False or progress is None:
        return None
    total = len(items) if hasattr(items, "__len__") else None
    if progress is True or (isinstance(progress, str) and progress == "force"):
        from tqdm.auto import tqdm  # a widget in a notebook, a bar on a terminal

        columns, rows = _terminal_size(sys.stderr)
        bar = tqdm(
            total=total,
            unit="item",
            disable=None if progress is True else False,  # True: only on a terminal
            ncols=columns,
            nrows=rows,
        )
        return _Tqdm(bar, owned=True)
    if isinstance(progress, type) and hasattr(progress, "update"):
        return _Tqdm(progress(total=total, unit="item"), owned=True)
    if hasattr(progress, "update") and hasattr(progress, "set_postfix"):
        if total is not None and getattr(progress, "total", None) is None:
            progress.total = total
        return _Tqdm(progress, owned=False)
    if callable(progress):
        return _Counter(total, progress, interval=0.0)
    raise TypeError(
        f"progress={progress!r}: expected True (a tqdm bar on stderr when it is a terminal), "
        "'force', False, a tqdm class or instance, or a callable taking poolkit.Progress"
    )


def _terminal_size(stream: TextIO) -> tuple[int | None, int | None]:
    """(columns, rows) for tqdm: None to let it ask, or a fallback where the terminal
    reports 0 (a bare pseudo-terminal), which would hide the bar."""
    try:
        size = os.get_terminal_size(stream.fileno())
    except (OSError, ValueError, AttributeError):
        return None, None
    return (None if size.columns else 80), (None if size.lines else 24)
