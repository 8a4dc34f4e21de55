"""Policies: small immutable objects, validated when built.

``Retry`` says which failures are tried again and how long to wait between
attempts (on tenacity's strategies), ``RateLimit`` caps attempt starts per second
(a token bucket), and ``CancelToken`` lets any thread stop a batch.
"""

from __future__ import annotations

import dataclasses
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    import tenacity


from ._errors import Cancelled, DeadlineExceeded

__all__ = ["POLICY_NAMES", "CancelToken", "Policies", "RateLimit", "Retry", "check_policies"]

ExceptionTypes: TypeAlias = type[BaseException] | tuple[type[BaseException], ...]
RetryOn: TypeAlias = ExceptionTypes | Callable[[BaseException], bool]
Backoff: TypeAlias = (
    "float | int | tenacity.wait.wait_base | Callable[[tenacity.RetryCallState], float]"
)

# Never retried, whatever ``on`` says.
_NEVER_RETRIED = (KeyboardInterrupt, SystemExit, Cancelled, DeadlineExceeded)


def _default_backoff() -> tenacity.wait.wait_base:
    # Exponential with full jitter: uniform(0, min(10, 0.1 * 2**n)) seconds.
    import tenacity  # imported when first needed: `import poolkit` stays fast

    return tenacity.wait_random_exponential(multiplier=0.1, max=10.0)


def _is_exception_types(on: object) -> bool:
    if isinstance(on, type):
        return issubclass(on, BaseException)
    return (
        isinstance(on, tuple)
        and len(on) > 0
        and all(isinstance(t, type) and issubclass(t, BaseException) for t in on)
    )


@dataclass(frozen=True, slots=True, repr=False)
class Retry:
    """Try a failed item again, up to ``attempts`` attempts in all.

    ``on`` picks the failures that are retried: exception types (matched with
    ``isinstance``), a predicate ``(exception) -> bool``, or a tenacity retry
    strategy (``retry_if_exception_type(...) | retry_if_exception_message(...)``, which
    sees each failure as a failed attempt). ``backoff`` is the wait
    before each retry: seconds as a number, or any tenacity wait strategy; the
    default is exponential with full jitter (0.1 s doubling, capped at 10 s).
    Waiting items do not occupy a worker. ``KeyboardInterrupt``, ``SystemExit``,
    ``Cancelled`` and ``DeadlineExceeded`` are never retried.

    Examples:
        >>> import tenacity
        >>> Retry(attempts=5, on=(ConnectionError, TimeoutError),
        ...       backoff=tenacity.wait_fixed(0.5)).attempts
        5
        >>> Retry(on=tenacity.retry_if_exception_message(match="busy")).should_retry(
        ...     OSError("busy, try later"), attempt=1)
        True
        >>> Retry(attempts=0)
        Traceback (most recent call last):
        ...
        ValueError: Retry(attempts=0): attempts must be an int >= 1 (1 means no retry)
    """

    attempts: int = 3
    on: RetryOn = Exception
    backoff: Backoff = field(default_factory=_default_backoff)

    def __post_init__(self) -> None:
        if isinstance(self.attempts, bool) or not isinstance(self.attempts, int):
            raise TypeError(
                f"Retry(attempts={self.attempts!r}): attempts must be an int >= 1, "
                f"not {type(self.attempts).__name__}"
            )
        if self.attempts < 1:
            raise ValueError(
                f"Retry(attempts={self.attempts}): attempts must be an int >= 1 (1 means no retry)"
            )
        if not (
            _is_exception_types(self.on) or (callable(self.on) and not isinstance(self.on, type))
        ):
            raise TypeError(
                f"Retry(on={self.on!r}): on must be an exception type, a non-empty tuple of "
                "exception types, a predicate (exception) -> bool or a tenacity retry strategy"
            )
        backoff = self.backoff
        if isinstance(backoff, bool) or not (isinstance(backoff, int | float) or callable(backoff)):
            raise TypeError(
                f"Retry(backoff={backoff!r}): backoff must be seconds (a number >= 0) "
                "or a tenacity wait strategy"
            )
        if isinstance(backoff, int | float) and backoff < 0:
            raise ValueError(f"Retry(backoff={backoff!r}): seconds must be >= 0")

    def __repr__(self) -> str:
        return (
            f"Retry(attempts={self.attempts}, on={_name(self.on)}, backoff={_name(self.backoff)})"
        )

    def should_retry(self, error: BaseException, attempt: int) -> bool:
        """True when ``error`` after attempt number ``attempt`` (1-based) gets another try.

        The predicate, if one was given, may raise; the caller turns that into the
        item's error.
        """
        if attempt >= self.attempts or isinstance(error, _NEVER_RETRIED):
            return False
        on = self.on
        if _is_exception_types(on):
            return isinstance(error, on)  # type: ignore[arg-type]
        if type(on).__module__.startswith("tenacity"):  # a strategy: it reads a call state
            return bool(on(_call_state(error, attempt)))  # type: ignore[operator]
        return bool(on(error))  # type: ignore[operator]

    def wait(self, error: BaseException, attempt: int) -> float:
        """Seconds to wait after attempt number ``attempt`` failed with ``error``."""
        backoff = self.backoff
        if isinstance(backoff, int | float):
            return float(backoff)
        return max(0.0, float(backoff(_call_state(error, attempt))))


def _call_state(error: BaseException, attempt: int) -> Any:
    """What tenacity's strategies read: attempt ``attempt`` failed with ``error``."""
    import tenacity

    state = tenacity.RetryCallState(None, None, (), {})  # type: ignore[arg-type]
    state.attempt_number = attempt
    future = tenacity.Future(attempt)
    future.set_exception(error)
    state.outcome = future
    return state


def _name(value: Any) -> str:
    """A readable name for an exception type, a tuple of them, or a strategy."""
    if isinstance(value, type):
        return value.__qualname__
    if isinstance(value, tuple):
        return "(" + ", ".join(_name(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    import tenacity

    if isinstance(value, tenacity.wait.wait_random_exponential):
        return f"wait_random_exponential(multiplier={value.multiplier}, max={value.max})"
    if isinstance(value, tenacity.wait.wait_base):
        settings = ", ".join(f"{k}={v!r}" for k, v in vars(value).items())
        return f"{type(value).__name__}({settings})"
    return getattr(value, "__qualname__", None) or repr(value)


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most ``per_second`` attempt starts per second across all workers.

    A token bucket holding up to ``burst`` tokens: a burst of ``burst`` starts may
    happen at once, then starts are spaced ``1 / per_second`` apart. Retries count.

    Examples:
        >>> RateLimit(per_second=10, burst=2).per_second
        10
        >>> RateLimit(per_second=0)
        Traceback (most recent call last):
        ...
        ValueError: RateLimit(per_second=0): per_second must be a number > 0
    """

    per_second: float
    burst: int = 1

    def __post_init__(self) -> None:
        if isinstance(self.per_second, bool) or not isinstance(self.per_second, int | float):
            raise TypeError(f"RateLimit(per_second={self.per_second!r}): must be a number > 0")
        if not self.per_second > 0:
            raise ValueError(
                f"RateLimit(per_second={self.per_second}): per_second must be a number > 0"
            )
        if isinstance(self.burst, bool) or not isinstance(self.burst, int) or self.burst < 1:
            raise ValueError(f"RateLimit(burst={self.burst!r}): burst must be an int >= 1")

    def bucket(self, now: float) -> TokenBucket:
        """A fresh bucket for one batch, full at time ``now``."""
        return TokenBucket(self.per_second, self.burst, now)


class TokenBucket:
    """The per-batch state of a ``RateLimit``.

    Examples:
        >>> b = RateLimit(per_second=2, burst=1).bucket(now=0.0)
        >>> b.take(0.0), b.take(0.0), b.take(0.5)
        (0.0, 0.5, 0.0)
    """

    __slots__ = ("_burst", "_rate", "_stamp", "_tokens")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)
        self._stamp = now

    def take(self, now: float) -> float:
        """Take a token if one is there (returns 0.0) or say how long until one is."""
        tokens = min(self._burst, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now
        if tokens >= 1.0 - 1e-9:
            self._tokens = tokens - 1.0
            return 0.0
        self._tokens = tokens
        return (1.0 - tokens) / self._rate


class CancelToken:
    """Stops a batch from any thread: ``token.cancel()``.

    Nothing new starts, running attempts are stopped, and every unfinished item
    becomes ``Err(Cancelled)``. A token stays cancelled; a batch started with a
    cancelled token cancels everything at once.

    Examples:
        >>> token = CancelToken()
        >>> token.cancelled
        False
        >>> token.cancel()
        >>> token.cancelled
        True
    """

    __slots__ = ("__weakref__", "_event", "_listeners", "_lock", "reason")

    def __init__(self) -> None:
        self.reason = "cancelled by its CancelToken"
        """What the Cancelled errors of the items it cut say."""
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._listeners: list[Callable[[], Any]] = []

    @property
    def cancelled(self) -> bool:
        """True once ``cancel()`` was called."""
        return self._event.is_set()

    def cancel(self) -> None:
        """Cancel every batch that uses this token. Safe from any thread."""
        self._cancel_because(self.reason)

    def _cancel_because(self, reason: str) -> None:
        with self._lock:
            if self._event.is_set():
                return
            self.reason = reason
            self._event.set()
            listeners = list(self._listeners)
        for wake in listeners:
            wake()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until cancelled (or ``timeout`` passes); return ``cancelled``."""
        return self._event.wait(timeout)

    def _subscribe(self, wake: Callable[[], Any]) -> Callable[[], None]:
        """Call ``wake`` on cancel; returns a function that unsubscribes."""
        with self._lock:
            self._listeners.append(wake)

        def unsubscribe() -> None:
            with self._lock:
                if wake in self._listeners:
                    self._listeners.remove(wake)

        return unsubscribe


@dataclass(frozen=True, slots=True)
class Policies:
    """The policies of one batch, already checked (what the engine reads)."""

    retry: Retry | None = None
    timeout: float | None = None
    deadline: float | None = None
    fail_fast: bool = False
    cancel: CancelToken | None = None
    rate_limit: RateLimit | None = None
    max_in_flight: int | None = None


POLICY_NAMES: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Policies))
"""The policy keywords every call and every runner takes (derived from ``Policies``)."""


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
    retry: object = None,
    timeout: object = None,
    deadline: object = None,
    fail_fast: object = False,
    cancel: object = None,
    rate_limit: object = None,
    max_in_flight: object = None,
) -> Policies:
    """Check policy values given as keywords; the ``Policies`` they make."""
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
