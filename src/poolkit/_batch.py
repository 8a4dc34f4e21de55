"""One batch from start to end: a Source, an Engine, a driver, and the Observer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from typing import Any

from ._backend import Backend
from ._drive import adrive, drive
from ._engine import Engine, Hooks, Policies, Source
from ._inbox import AsyncInbox, SyncInbox
from ._observe import Observer
from ._results import Err, Ok

__all__ = ["abatch", "batch", "collect"]


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
    engine = Engine(
        Source(items, fn, inbox),
        backend,
        policies,
        ordered=ordered,
        hooks=hooks,
        hook_errors=observer.errors,
    )
    cancel = policies.cancel
    unsubscribe = cancel._subscribe(lambda: inbox.put(None)) if cancel is not None else None
    try:
        if observer.idle:
            yield from drive(engine, inbox)
        else:
            for result in drive(engine, inbox):
                observer(result)
                yield result
    finally:
        if unsubscribe is not None:
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
    loop = asyncio.get_running_loop()
    inbox = AsyncInbox(loop)
    engine = Engine(
        Source(items, fn, inbox),
        backend,
        policies,
        ordered=ordered,
        hooks=hooks,
        hook_errors=observer.errors,
    )
    cancel = policies.cancel
    unsubscribe = cancel._subscribe(lambda: inbox.put(None)) if cancel is not None else None
    try:
        async for result in adrive(engine, inbox):
            observer(result)
            yield result
    finally:
        if unsubscribe is not None:
            unsubscribe()
        observer.close()


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


def collect(results: Iterator[Ok[Any] | Err]) -> list[Ok[Any] | Err]:
    """Drain ``results`` into a list in input order."""
    collector = Collector()
    add = collector.add
    for result in results:
        add(result)
    return collector.slots
