"""Drivers: run an Engine to its end, blocking (``drive``) or in an event loop (``adrive``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

from poolkit._results import Err, Ok

from ._engine import Engine
from ._inbox import AsyncInbox, SyncInbox
from ._task import OkRun

__all__ = ["adrive", "drive"]


def drive(engine: Engine, inbox: SyncInbox) -> Iterator[Ok[Any] | Err | OkRun]:
    """Yield Results as the engine produces them, waiting on ``inbox`` in between.

    Leaving early (``close()``, an exception, KeyboardInterrupt) aborts the engine,
    which stops whatever is still running.
    """
    out = engine.out
    pump = engine.pump
    deliver = engine.deliver
    get = inbox.get
    try:
        while True:
            wait = pump()
            while out:
                yield out.popleft()
            if engine.done:
                return
            deliver(get(wait))
    except BaseException:
        engine.abort()
        raise


async def adrive(engine: Engine, inbox: AsyncInbox) -> AsyncIterator[Ok[Any] | Err | OkRun]:
    """The same as ``drive``, awaiting the inbox inside a running event loop."""
    out = engine.out
    try:
        while True:
            wait = engine.pump()
            while out:
                yield out.popleft()
            if engine.done:
                return
            engine.deliver(await inbox.get(wait))
    except BaseException:
        engine.abort()
        raise
