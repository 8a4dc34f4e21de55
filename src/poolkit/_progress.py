"""The progress display: a one-line bar on stderr, or a callable of the user's."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

__all__ = ["Progress", "ProgressBar", "make_progress"]


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


class ProgressBar:
    """Draws a Progress snapshot as one line on a terminal, redrawn in place.

    Examples:
        >>> import io
        >>> bar = ProgressBar(io.StringIO(), width=60)
        >>> bar.format(Progress(done=5, total=10, ok=4, err=1, retries=2, elapsed=2.0))
        '[########.......]  5/10  ok 4  err 1  retry 2  2.5/s  eta 2s'
    """

    def __init__(self, stream: TextIO, width: int | None = None) -> None:
        self._stream = stream
        self._width = width
        self._line = ""

    def __call__(self, progress: Progress) -> None:
        self._line = self.format(progress)
        end = "\n" if progress.finished else ""
        self._stream.write(f"\r\x1b[2K{self._line}{end}")
        self._stream.flush()
        if progress.finished:
            self._line = ""

    def clear(self) -> None:
        """Erase the bar's line (so other output starts on a clean line)."""
        if self._line:
            self._stream.write("\r\x1b[2K")
            self._stream.flush()

    def redraw(self) -> None:
        """Draw the last bar again, after other output was written."""
        if self._line:
            sys.stdout.flush()
            self._stream.write(f"\r\x1b[2K{self._line}")
            self._stream.flush()

    def format(self, p: Progress) -> str:
        counts = f"ok {p.ok}  err {p.err}" + (f"  retry {p.retries}" if p.retries else "")
        rate = f"{p.rate:,.1f}/s"
        if p.total is None:
            return f"{p.done} done  {counts}  {rate}  {p.elapsed:.1f}s"
        eta = "" if p.eta is None or p.finished else f"  eta {p.eta:.0f}s"
        tail = f"{p.done:>{len(str(p.total))}}/{p.total}  {counts}  {rate}{eta}"
        width = self._width or _terminal_width(self._stream)
        bar_width = max(10, width - len(tail) - 3)
        filled = round(bar_width * p.done / p.total) if p.total else bar_width
        return f"[{'#' * filled}{'.' * (bar_width - filled)}] {tail}"[: max(width, 20)]


def _terminal_width(stream: TextIO) -> int:
    try:
        columns = os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError, AttributeError):
        return 79
    return columns - 1 if columns > 20 else 79  # a terminal of unknown size reports 0


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
    if progress is True and "ipykernel" in sys.modules:  # a notebook: tqdm's widget
        from tqdm.auto import tqdm

        return _Tqdm(tqdm(total=total, unit="item"), owned=True)
    if progress is True or (isinstance(progress, str) and progress == "force"):
        stream = sys.stderr
        if progress is True and not (hasattr(stream, "isatty") and stream.isatty()):
            return None
        return _Counter(total, ProgressBar(stream), interval=0.1)
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
