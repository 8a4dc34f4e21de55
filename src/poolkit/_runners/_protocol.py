"""``poolkit.Runner``: what ``mode=`` accepts besides a mode name."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

from poolkit._results import Err, Ok, Results
from poolkit._stream import ResultStream

if TYPE_CHECKING:
    from concurrent.futures import Future

    from typing_extensions import Unpack

    from poolkit._options import CallOptions

__all__ = ["Runner"]

T = TypeVar("T")


@runtime_checkable
class Runner(Protocol):
    """Anything that runs batches: ``run_all``, ``stream``, ``submit``, ``close``.

    ``poolkit.runner(mode)`` and ``poolkit.ExecutorRunner(executor)`` return Runners;
    your own class is one when it has these methods (the docs' "Runners and futures"
    page shows a complete one in under 40 lines). ``arun_all``/``astream`` run a
    Runner of your own on a worker thread, so your loop stays free.

    Examples:
        >>> import poolkit
        >>> with poolkit.runner("thread", workers=2) as r:
        ...     isinstance(r, poolkit.Runner), r.run_all(len, ["ab", "c"]).values
        (True, [2, 1])
    """

    def run_all(
        self, fn: Callable[[Any], T], items: Iterable[Any], **options: Unpack[CallOptions]
    ) -> Results[T]:
        """Run ``fn`` over ``items``; one Result per item, in input order."""
        ...

    def stream(
        self, fn: Callable[[Any], T], items: Iterable[Any], **options: Unpack[CallOptions]
    ) -> ResultStream[T]:
        """Results as they complete (``ordered=True``: in input order)."""
        ...

    def submit(self, fn: Callable[[Any], T], item: Any) -> Future[Ok[T] | Err]:
        """Run ``fn(item)``; the Future's result is its Result."""
        ...

    def close(self) -> None:
        """Stop the workers; the runner cannot be used afterwards."""
        ...

    def __enter__(self) -> Any: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
