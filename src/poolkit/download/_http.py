"""What the downloader decides about HTTP: schemes, statuses, redirects, Retry-After."""

from __future__ import annotations

import email.utils
import time
from urllib.parse import urlsplit, urlunsplit

__all__ = [
    "ALLOWED_SCHEMES",
    "DownloadError",
    "HTTPStatusError",
    "TooLarge",
    "TooManyRedirects",
    "UnsafeURL",
    "carry_credentials",
    "check_url",
    "redact",
    "retry_after_seconds",
]

ALLOWED_SCHEMES = ("http", "https")


class DownloadError(Exception):
    """Base of the downloader's own errors."""


class UnsafeURL(DownloadError, ValueError):
    """A URL (or redirect target) that is not http or https, or has no host."""


class TooManyRedirects(DownloadError):
    """More redirects than allowed."""


class TooLarge(DownloadError):
    """The decoded body grew past ``max_bytes``; the download was stopped."""


class HTTPStatusError(DownloadError):
    """The server answered with an error status.

    ``transient`` is True for 429 and 5xx (worth retrying), ``retry_after`` the seconds
    the server asked to wait, if it said.
    """

    def __init__(
        self, status: int, reason: str, url: str, retry_after: float | None = None
    ) -> None:
        self.status = status
        self.reason = reason
        self.url = url
        self.retry_after = retry_after
        self.transient = status == 429 or status >= 500
        wait = f", retry after {retry_after:g} s" if retry_after is not None else ""
        super().__init__(f"HTTP {status} {reason} for {redact(url)}{wait}")

    def __reduce__(self) -> tuple[object, ...]:
        return (HTTPStatusError, (self.status, self.reason, self.url, self.retry_after))


def redact(url: str) -> str:
    """``url`` without credentials, for messages and summaries.

    Example:
        >>> redact("https://user:secret@example.org/x?q=1")
        'https://***@example.org/x?q=1'
    """
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"***@{host}"))


def check_url(url: str) -> str:
    """Return ``url`` when it is http(s) with a host; raise UnsafeURL otherwise."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in ALLOWED_SCHEMES:
        raise UnsafeURL(f"refusing {redact(url)!r}: only http and https URLs are fetched")
    if not parts.hostname:
        raise UnsafeURL(f"refusing {redact(url)!r}: the URL has no host")
    return url


def carry_credentials(source: str, target: str) -> bool:
    """May Authorization/Cookie headers follow a redirect from ``source`` to ``target``?

    Only to the same host, and never from https down to http.
    """
    a, b = urlsplit(source), urlsplit(target)
    if (a.hostname or "").lower() != (b.hostname or "").lower():
        return False
    return not (a.scheme == "https" and b.scheme == "http")


def retry_after_seconds(value: str | None, *, cap: float) -> float | None:
    """Seconds to wait from a Retry-After header (seconds or an HTTP date), capped.

    Example:
        >>> retry_after_seconds("120", cap=30), retry_after_seconds("soon", cap=30)
        (30.0, None)
    """
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(min(float(value), cap))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return float(max(0.0, min(when.timestamp() - time.time(), cap)))
