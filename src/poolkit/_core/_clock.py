"""The one seam through which poolkit reads time, so tests can control it."""

from __future__ import annotations

import time
from typing import Protocol

__all__ = ["MONOTONIC", "Clock"]


class Clock(Protocol):
    """Where the engine gets "now" (seconds, monotonic)."""

    def now(self) -> float: ...


class _Monotonic:
    __slots__ = ()

    def now(self) -> float:
        return time.monotonic()


MONOTONIC: Clock = _Monotonic()
