"""What the caller sees while a batch runs: ``on_result``, the progress display, hook errors."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from poolkit._errors import HookError
from poolkit._results import Ok

__all__ = ["Observer"]


class Observer:
    """Called with each Result in the calling thread; remembers the first hook error."""

    __slots__ = ("_on_result", "_progress", "errors")

    def __init__(self, on_result: Callable[[Any], Any] | None, progress: Any | None) -> None:
        self._on_result = on_result
        self._progress = progress
        self.errors: list[tuple[str, BaseException]] = []

    @property
    def idle(self) -> bool:
        """True when nothing needs to be told about results (the fast path)."""
        return self._on_result is None and self._progress is None

    def __call__(self, result: Any) -> None:
        if self._progress is not None:
            try:
                self._progress.update(isinstance(result, Ok))
            except Exception as error:
                self.errors.append(("progress", error))
                self._progress = None
        if self._on_result is not None:
            progress = self._progress
            if progress is not None:
                progress.suspend()  # what the hook prints must not land on the bar's line
            try:
                self._on_result(result)
            except Exception as error:
                self.errors.append(("on_result", error))
            if progress is not None:
                progress.resume()

    def wrap_on_retry(
        self, hook: Callable[[Any, int, BaseException, float], Any] | None
    ) -> Callable[[Any, int, BaseException, float], Any] | None:
        """The engine's on_retry: counts the retry on the progress display, then calls ``hook``."""
        if self._progress is None:
            return hook

        def on_retry(item: Any, attempt: int, error: BaseException, wait: float) -> None:
            if self._progress is not None:
                try:
                    self._progress.retry()
                except Exception as progress_error:
                    self.errors.append(("progress", progress_error))
                    self._progress = None
            if hook is not None:
                hook(item, attempt, error, wait)

        return on_retry

    def close(self) -> None:
        if self._progress is not None:
            try:
                self._progress.close()
            except Exception as error:
                self.errors.append(("progress", error))

    def raise_hook_error(self, results: Sequence[Any]) -> None:
        """Raise HookError for the first hook that raised, if any did."""
        if self.errors:
            name, first = self.errors[0]
            raise HookError(name, results=results) from first
