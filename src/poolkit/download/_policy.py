"""Which download failures are retried, and how long to wait (Retry-After first)."""

from __future__ import annotations

import ssl

import requests
import tenacity

import poolkit

from ._http import FetchError, HTTPStatusError

__all__ = ["RetryAfterWait", "is_transient", "retry_policy"]


def is_transient(error: BaseException) -> bool:
    """Connection errors, timeouts, a body cut short, 429 and 5xx; never other 4xx or TLS."""
    if isinstance(error, FetchError):
        return error.transient
    if isinstance(error, requests.exceptions.SSLError | ssl.SSLError):
        return False
    if isinstance(
        error,
        requests.ConnectionError
        | requests.Timeout
        | requests.exceptions.ChunkedEncodingError
        | poolkit.TaskTimeout
        | ConnectionError
        | TimeoutError,
    ):
        return True
    try:
        import aiohttp
    except ImportError:  # pragma: no cover - the async extra is optional
        return False
    if isinstance(error, aiohttp.ClientSSLError):
        return False
    return isinstance(error, aiohttp.ClientConnectionError | aiohttp.ClientPayloadError)


class RetryAfterWait(tenacity.wait.wait_base):
    """Wait what the server asked (Retry-After, already capped), else exponential jitter."""

    def __init__(self, max_backoff: float = 10.0) -> None:
        self._fallback = tenacity.wait_random_exponential(multiplier=0.25, max=max_backoff)

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        outcome = retry_state.outcome
        error = outcome.exception() if outcome is not None else None
        if isinstance(error, HTTPStatusError) and error.retry_after is not None:
            return error.retry_after
        return float(self._fallback(retry_state))


def retry_policy(retries: int, max_backoff: float = 10.0) -> poolkit.Retry | None:
    """``retries`` more attempts for transient failures (None when retries is 0)."""
    if retries == 0:
        return None
    return poolkit.Retry(attempts=retries + 1, on=is_transient, backoff=RetryAfterWait(max_backoff))
