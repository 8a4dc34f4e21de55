"""One batch from start to end: a Source, an Engine, a driver, and the Observer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Generator
from typing import Any

from poolkit._results import Err, Ok

from ._backend import Backend
from ._drive import adrive, drive
from ._engine import Engine, Hooks, Policies, Source
from ._inbox import AsyncInbox, SyncInbox
from ._observe import Observer

__all__ = ["Collector", "abatch", "batch"]


def batch(
    backend: Backend,
    fn: Callable[[Any], Any],
    items: Any,
    policies: Policies,
    *,
    ordered: bool,
    observer: Observer,
    hooks: Hooks,
) -> Generator[Ok[Any] | Err, None, None]:
    """Yield the batch's Results (as completed, or in input order when ``ordered``)."""
    inbox = SyncInbox()
    engine, unsubscribe = _engine(inbox, backend, fn, items, policies, ordered, observer, hooks)
    try:
        if observer.idle:
            yield from drive(engine, inbox)
        else:
            for result in drive(engine, inbox):
                observer(result)
                yield result
    finally:
        unsubscribe()
        observer.close()


async def abatch(
    backend: Backend,
    fn: Callable[[Any], Any],
    items: Any,
    policies: Policies,
    *,
    ordered: bool,
    observer: Observer,
    hooks: Hooks,
) -> AsyncIterator[Ok[Any] | Err]:
    """The same as ``batch``, inside the running event loop."""
    inbox = AsyncInbox(asyncio.get_running_loop())
    engine, unsubscribe = _engine(inbox, backend, fn, items, policies, ordered, observer, hooks)
    try:
        async for result in adrive(engine, inbox):
            observer(result)
            yield result
    finally:
        unsubscribe()
        observer.close()


def _engine(
    inbox: SyncInbox | AsyncInbox,
    backend: Backend,
    fn: Callable[[Any], Any],
    items: Any,
    policies: Policies,
    ordered: bool,
    observer: Observer,
    hooks: Hooks,
) -> tuple[Engine, Callable[[], None]]:
    """The batch's engine, and how to stop its CancelToken from waking it."""
    engine = Engine(
        Source(items, fn, inbox),
        backend,
        policies,
        ordered=ordered,
        hooks=hooks,
        hook_errors=observer.errors,
    )
    cancel = policies.cancel
    if cancel is None:
        return engine, _nothing
    return engine, cancel._subscribe(lambda: inbox.put(None))


def _nothing() -> None:
    pass


class Collector:
    """Places Results by index, whatever order they arrive in."""

    __slots__ = ("slots",)

    def __init__(self) -> None:
        self.slots: list[Any] = []

    def add(self, result: Ok[Any] | Err) -> None:
        index = result.index
        slots = self.slots
        if index >= len(slots):
            slots.extend([None] * (index + 1 - len(slots)))
        slots[index] = result
