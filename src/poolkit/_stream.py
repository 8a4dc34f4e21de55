"""The iterators that ``stream`` and ``astream`` return."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Generator, Iterator
from types import TracebackType
from typing import Generic, TypeVar

from ._results import Err, Ok

__all__ = ["AsyncResultStream", "ResultStream"]

T = TypeVar("T")


class ResultStream(Iterator[Ok[T] | Err], Generic[T]):
    """Results as they complete (or in input order). Closing it stops what is outstanding.

    Use it in a ``for`` loop, and in a ``with`` block (or call ``close()``) when you may
    leave the loop early: what is still running is cancelled and the workers stop.

    Examples:
        >>> import poolkit
        >>> with poolkit.stream(str.upper, ["a", "b"], mode="serial", ordered=True) as results:
        ...     [r.value for r in results]
        ['A', 'B']
    """

    __slots__ = ("_generator", "_on_close")

    def __init__(
        self,
        generator: Generator[Ok[T] | Err, None, None],
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self._generator = generator
        self._on_close = on_close

    def __iter__(self) -> ResultStream[T]:
        return self

    def __next__(self) -> Ok[T] | Err:
        try:
            return next(self._generator)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Cancel what is outstanding and stop the workers (safe to call twice)."""
        try:
            self._generator.close()
        finally:
            on_close, self._on_close = self._on_close, None
            if on_close is not None:
                on_close()

    def __enter__(self) -> ResultStream[T]:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


class AsyncResultStream(AsyncIterator[Ok[T] | Err], Generic[T]):
    """``astream``'s iterator: ``async for``, ``async with`` and ``aclose()``.

    Examples:
        >>> import asyncio, poolkit
        >>> async def main():
        ...     async with poolkit.astream(abs, [-2], ordered=True) as results:
        ...         return [r.value async for r in results]
        >>> asyncio.run(main())
        [2]
    """

    __slots__ = ("_generator", "_on_close")

    def __init__(
        self,
        generator: AsyncIterator[Ok[T] | Err],
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self._generator = generator
        self._on_close = on_close

    def __aiter__(self) -> AsyncResultStream[T]:
        return self

    async def __anext__(self) -> Ok[T] | Err:
        try:
            return await self._generator.__anext__()
        except StopAsyncIteration:
            self._finish()
            raise

    async def aclose(self) -> None:
        """Cancel what is outstanding and stop the workers."""
        try:
            aclose = getattr(self._generator, "aclose", None)
            if aclose is not None:
                await aclose()
        finally:
            self._finish()

    def _finish(self) -> None:
        on_close, self._on_close = self._on_close, None
        if on_close is not None:
            on_close()

    async def __aenter__(self) -> AsyncResultStream[T]:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
