"""Objects that misbehave at the process boundary (module-level: importable by workers)."""

from __future__ import annotations

import dataclasses
import os
import sys
from typing import Any


def _refuse(*_: Any) -> Any:
    raise ValueError("this object refuses to be loaded")


class LoadsBadly:
    """Pickles fine; loading it raises ValueError."""

    def __reduce__(self) -> Any:
        return (_refuse, ())


class ExitsOnLoad:
    """Pickles fine; loading it raises SystemExit (a BaseException)."""

    def __reduce__(self) -> Any:
        return (sys.exit, (4,))


@dataclasses.dataclass(frozen=True)
class FrozenError(Exception):
    """An exception that refuses attribute assignment."""

    code: int


def raise_frozen(code: int) -> None:
    raise FrozenError(code)


@dataclasses.dataclass(frozen=True)
class FrozenReducible(Exception):
    """Frozen, with a __reduce__ that loads: only assigning __cause__ fails."""

    code: int

    def __reduce__(self) -> Any:
        return (FrozenReducible, (self.code,))


def raise_frozen_reducible(x: int) -> int:
    if x == 1:
        raise FrozenReducible(x)
    return x


class TwoArgError(Exception):
    """Its __init__ takes two arguments and passes one up: ``args`` cannot rebuild it."""

    def __init__(self, message: str, b: int) -> None:
        super().__init__(message)
        self.b = b


class SlottedError(Exception):
    """Keeps its field in a slot, which ``__dict__`` does not show."""

    __slots__ = ("x",)

    def __init__(self, x: int) -> None:
        super().__init__()
        self.x = x

    def __str__(self) -> str:
        return f"slotted {self.x}"


def raise_with_parts(x: int) -> None:
    if x == 0:
        raise TwoArgError("boom", 2)
    raise SlottedError(5)


def item_or_bad_result(x: int) -> Any:
    """x, except item 3, whose result cannot be loaded in the parent."""
    return ExitsOnLoad() if x == 3 else x


def big(megabytes: int) -> bytes:
    return b"x" * (megabytes * 1_000_000)


def record_and_fail(path: str) -> Any:
    """Writes the item to ``path`` (one line per run); item 0 fails."""

    def run(x: int) -> int:
        with open(path, "a") as handle:
            handle.write(f"{x}\n")
        if x == 0:
            raise RuntimeError("first")
        return x

    return run


def crash_once_every_tenth(directory: str) -> Any:
    """Items divisible by 10 kill their worker on their first attempt."""

    def run(x: int) -> int:
        marker = os.path.join(directory, str(x))
        if x % 10 == 0 and not os.path.exists(marker):
            open(marker, "w").close()
            os._exit(9)
        return x

    return run


class Tracked:
    """An item that leaves a file behind when the worker lets go of it."""

    def __init__(self, folder: str, n: int) -> None:
        self.folder = folder
        self.n = n

    def __del__(self) -> None:
        if os.getpid() != int(os.environ.get("POOLKIT_TEST_PARENT", "0")):
            open(os.path.join(self.folder, f"released-{self.n}"), "w").close()


def number_of(item: Tracked) -> int:
    return item.n


class MuteError(Exception):
    """Its ``__str__`` and ``__repr__`` raise."""

    def __str__(self) -> str:
        raise RuntimeError("no str")

    def __repr__(self) -> str:
        raise RuntimeError("no repr")


def raise_mute(x: int) -> int:
    if x == 1:
        raise MuteError()
    return x


def init_mute() -> None:
    raise MuteError()
