"""Module-level task functions (picklable by reference for process mode)."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from typing import Any


class Boom(Exception):
    """An error raised by test functions."""


def double_or_raise(x: int) -> int:
    """2x, or Boom for multiples of 7."""
    if x % 7 == 0:
        raise Boom(f"boom {x}")
    return 2 * x


def identity(x: Any) -> Any:
    """Return the item."""
    return x


def nap(seconds: float) -> float:
    """Sleep, then return the seconds slept."""
    time.sleep(seconds)
    return seconds


def mixed(x: int) -> Any:
    """By ``x % 3``: raise ValueError(x), return ``[x]`` (pickled on its way back), or
    return ``x``; a negative ``x`` sleeps ``-x`` seconds first."""
    if x < 0:
        time.sleep(-x)
        return x
    if x % 3 == 0:
        raise ValueError(x)
    return [x] if x % 3 == 1 else x


def record_thread(_: Any) -> str:
    """The name of the thread running the call."""
    return threading.current_thread().name


def pid(_: Any) -> int:
    """The pid of the process running the call."""
    return os.getpid()


async def async_double(x: int) -> int:
    """2x, asynchronously."""
    import asyncio

    await asyncio.sleep(0)
    if x % 7 == 0:
        raise Boom(f"boom {x}")
    return 2 * x


async def asleep(seconds: float) -> float:
    """Sleep asynchronously, then return the seconds slept."""
    import asyncio

    await asyncio.sleep(seconds)
    return seconds


class CountingBlob:
    """A large payload that counts how often this process pickles it."""

    pickled = 0

    def __init__(self, size: int) -> None:
        self.data = b"x" * size

    def __reduce__(self) -> tuple[Any, ...]:
        CountingBlob.pickled += 1
        return (CountingBlob, (len(self.data),))

    def __len__(self) -> int:
        return len(self.data)


def size_plus(pair: tuple[Any, int]) -> int:
    """len(pair[0]) + pair[1]."""
    return len(pair[0]) + pair[1]


def poolkit_threads(_: Any) -> int:
    """How many of poolkit's thread-mode workers exist now."""
    import threading

    return sum(t.name.startswith("poolkit-thread") for t in threading.enumerate())


def spin(seconds: float) -> float:
    """Busy-loop in Python for ``seconds`` (no blocking C call), then return them."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass
    return seconds


class Box:
    """A value a test can watch with a weak reference (ints and strs cannot be)."""

    __slots__ = ("__weakref__", "n")

    def __init__(self, n: int) -> None:
        self.n = n


def boxed(n: int) -> Box:
    return Box(n)


async def aboxed(n: int) -> Box:
    await asyncio.sleep(0)
    return Box(n)
