"""Calling the user's function the same way in every synchronous worker."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any

__all__ = ["call", "is_async_callable"]


def call(fn: Callable[[Any], Any], item: Any) -> Any:
    """``fn(item)``; a coroutine it returns is run to completion on a fresh event loop."""
    value = fn(item)
    if inspect.iscoroutine(value):
        return asyncio.run(value)
    return value


def is_async_callable(fn: Any) -> bool:
    """True for ``async def`` functions, partials of them and objects with an async ``__call__``."""
    while hasattr(fn, "func") and hasattr(fn, "args"):  # functools.partial
        fn = fn.func
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - looking for an async __call__, not callability
    )
