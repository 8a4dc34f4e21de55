"""Argument checks, run before any work starts, with messages that say what is accepted."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import Any

from ._core._engine import Policies
from ._policies import CancelToken, RateLimit, Retry

__all__ = [
    "MODES",
    "check_callable",
    "check_items",
    "check_policies",
    "check_workers",
    "default_workers",
]

MODES = ("serial", "thread", "process", "async", "dask")


def check_mode(mode: object) -> str:
    if isinstance(mode, str) and mode in MODES:
        return mode
    raise ValueError(
        f"unknown mode {mode!r}; expected one of {', '.join(repr(m) for m in MODES)} "
        "or a Runner instance (poolkit.runner(...) or poolkit.ExecutorRunner(...))"
    )


def check_workers(workers: object) -> int | None:
    if workers is None:
        return None
    if isinstance(workers, bool) or not isinstance(workers, int):
        raise TypeError(f"workers={workers!r}: expected an int >= 1 or None for the default")
    if workers < 1:
        raise ValueError(f"workers={workers}: expected an int >= 1 or None for the default")
    return workers


def default_workers(mode: str) -> int:
    cpus = os.cpu_count() or 1
    return {"serial": 1, "thread": min(32, cpus + 4), "async": 64}.get(mode, cpus)


def check_callable(fn: object) -> Callable[[Any], Any]:
    if not callable(fn):
        raise TypeError(f"fn={fn!r} is not callable; expected a function of one argument")
    return fn


def check_items(items: object) -> None:
    try:
        iter(items)  # type: ignore[call-overload]
    except TypeError:
        raise TypeError(
            f"items={items!r} is not iterable; expected a list, a generator or any iterable"
        ) from None


def _seconds(name: str, value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name}={value!r}: expected seconds as a number > 0, or None")
    if not value > 0 or math.isnan(value):
        raise ValueError(f"{name}={value!r}: expected seconds as a number > 0, or None")
    return float(value)


def check_policies(
    *,
    retry: object,
    timeout: object,
    deadline: object,
    fail_fast: object,
    cancel: object,
    rate_limit: object,
    max_in_flight: object,
) -> Policies:
    if retry is not None and not isinstance(retry, Retry):
        raise TypeError(f"retry={retry!r}: expected poolkit.Retry(attempts=..., on=...) or None")
    if not isinstance(fail_fast, bool):
        raise TypeError(f"fail_fast={fail_fast!r}: expected True or False")
    if cancel is not None and not isinstance(cancel, CancelToken):
        raise TypeError(f"cancel={cancel!r}: expected a poolkit.CancelToken() or None")
    if isinstance(rate_limit, int | float) and not isinstance(rate_limit, bool):
        rate_limit = RateLimit(per_second=rate_limit)
    if rate_limit is not None and not isinstance(rate_limit, RateLimit):
        raise TypeError(
            f"rate_limit={rate_limit!r}: expected poolkit.RateLimit(per_second=...), "
            "a number of starts per second, or None"
        )
    if max_in_flight is not None:
        if isinstance(max_in_flight, bool) or not isinstance(max_in_flight, int):
            raise TypeError(f"max_in_flight={max_in_flight!r}: expected an int >= 1 or None")
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight={max_in_flight}: expected an int >= 1 or None")
    return Policies(
        retry=retry,
        timeout=_seconds("timeout", timeout),
        deadline=_seconds("deadline", deadline),
        fail_fast=fail_fast,
        cancel=cancel,
        rate_limit=rate_limit,
        max_in_flight=max_in_flight,
    )


def check_hook(name: str, hook: object) -> Callable[..., Any] | None:
    if hook is not None and not callable(hook):
        raise TypeError(f"{name}={hook!r}: expected a callable or None")
    return hook
