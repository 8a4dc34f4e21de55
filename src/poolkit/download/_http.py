"""What the downloader decides about HTTP: schemes, statuses, redirects, Retry-After."""

from __future__ import annotations

import datetime
import email.utils
import time
from urllib.parse import urlsplit, urlunsplit

__all__ = [
    "ALLOWED_SCHEMES",
    "BadURL",
    "ConnectFailed",
    "DownloadError",
    "FetchError",
    "HTTPStatusError",
    "ReadTimedOut",
    "TooLarge",
    "TooManyRedirects",
    "UnsafeURL",
    "carry_credentials",
    "check_url",
    "redact",
    "retry_after_seconds",
]

ALLOWED_SCHEMES = ("http", "https")
_DEFAULT_PORTS = {"http": 80, "https": 443}


class FetchError(Exception):
    """Base of every download failure: the same types in every mode.

    ``url`` is the URL that failed (credentials removed from messages); ``transient``
    says whether a retry may help. The client library's own exception (requests or
    aiohttp), when there is one, is the ``__cause__``.

    Examples:
        >>> error = ConnectFailed("could not connect to http://h/: refused", "http://h/")
        >>> isinstance(error, FetchError), error.transient
        (True, True)
    """

    transient = False

    def __init__(self, message: str, url: str = "") -> None:
        super().__init__(message)
        self.url = url

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (str(self), self.url))


class BadURL(FetchError, ValueError):
    """A URL (or redirect target) that is malformed, not http(s), or has no host."""


UnsafeURL = BadURL  # the first release's name


class ConnectFailed(FetchError, ConnectionError):
    """The connection could not be made, or broke before the whole body arrived."""

    transient = True


class ReadTimedOut(FetchError, TimeoutError):
    """The server sent nothing for ``timeout`` seconds (or took longer than the attempt)."""

    transient = True


class TooManyRedirects(FetchError):
    """More redirects than allowed."""


class TooLarge(FetchError):
    """The decoded body grew past ``max_bytes``; the download was stopped."""


DownloadError = FetchError  # the first release's name


class HTTPStatusError(FetchError):
    """The server answered with an error status (``.status``, ``.reason``).

    ``transient`` is True for 429 and 5xx (worth retrying), ``retry_after`` the seconds
    the server asked to wait, if it said.
    """

    def __init__(
        self, status: int, reason: str, url: str, retry_after: float | None = None
    ) -> None:
        self.status = status
        self.reason = reason
        self.retry_after = retry_after
        wait = f", retry after {retry_after:g} s" if retry_after is not None else ""
        super().__init__(f"HTTP {status} {reason} for {redact(url)}{wait}", url)
        self.transient = status == 429 or status >= 500

    def __reduce__(self) -> tuple[object, ...]:
        return (HTTPStatusError, (self.status, self.reason, self.url, self.retry_after))


def redact(url: str) -> str:
    """``url`` without credentials, for messages and summaries (never raises).

    Examples:
        >>> redact("https://user:secret@example.org/x?q=1")
        'https://***@example.org/x?q=1'
        >>> redact("http://[::1")
        'http://[::1'
    """
    try:
        parts = urlsplit(url)
        if parts.username is None and parts.password is None:
            return url
        host = parts.hostname or ""
        if parts.port:
            host = f"{host}:{parts.port}"
    except ValueError:  # malformed: nothing to redact reliably, keep what precedes "@"
        return url.split("@", 1)[-1] if "@" in url else url
    return urlunsplit(parts._replace(netloc=f"***@{host}"))


def check_url(url: str) -> str:
    """Return ``url`` when it is a well-formed http(s) URL with a host; raise BadURL."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - a malformed port or IPv6 literal raises here
    except ValueError as error:
        raise BadURL(f"{redact(url)!r} is not a valid URL: {error}", url) from error
    if parts.scheme.lower() not in ALLOWED_SCHEMES:
        raise BadURL(f"refusing {redact(url)!r}: only http and https URLs are fetched", url)
    if not parts.hostname:
        raise BadURL(f"refusing {redact(url)!r}: the URL has no host", url)
    return url


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or _DEFAULT_PORTS.get(scheme)


def carry_credentials(source: str, target: str) -> bool:
    """May Authorization/Cookie headers follow a redirect from ``source`` to ``target``?

    Only within one origin: the same scheme, host and port (default ports filled in).

    Examples:
        >>> carry_credentials("http://h/a", "http://h:80/b"), carry_credentials("http://h/", "http://h:8080/")
        (True, False)
    """
    return _origin(source) == _origin(target)


def retry_after_seconds(value: str | None, *, cap: float) -> float | None:
    """Seconds to wait from a Retry-After header (seconds or an HTTP date), capped.

    A date without a zone (asctime) is UTC, as RFC 9110 says; a value that is neither
    (garbage, a negative number) is ignored: None, and the usual backoff applies.

    Examples:
        >>> retry_after_seconds("120", cap=30), retry_after_seconds("soon", cap=30)
        (30.0, None)
        >>> retry_after_seconds("\u00b2", cap=30) is None
        True
    """
    if not value:
        return None
    value = value.strip()
    try:
        if value.isascii() and value.isdigit():
            return float(min(float(value), cap))
        when = email.utils.parsedate_to_datetime(value)
        if when.tzinfo is None:
            when = when.replace(tzinfo=datetime.UTC)
        return float(max(0.0, min(when.timestamp() - time.time(), cap)))
    except (TypeError, ValueError, OverflowError, IndexError):
        return None
