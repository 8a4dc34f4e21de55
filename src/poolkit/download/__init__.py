"""A robust URL downloader, built only on poolkit's public API.

``download_all(urls, mode=...)`` fetches every URL and returns one Result per URL: an
``Ok(Page)`` or an ``Err`` that says what happened (status, reason, URL). It is safe by
default: connect and read timeouts always set, only http and https (redirects
included, at most 10), a maximum body size enforced while streaming (decoded bytes, so
a compressed bomb is stopped too), TLS verification on, file names that cannot leave
``dest``, files written atomically, credentials never printed nor carried to another
host or from https to http, and retries only for transient failures.

Examples:
    >>> from poolkit.download import download_all
    >>> results = download_all(["ftp://example.org/x"], retries=0)
    >>> type(results[0].error).__name__
    'BadURL'
"""

from __future__ import annotations

import asyncio
import os
import secrets
import warnings
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import poolkit

from ._files import remove_leftovers, remove_partials, writable_folder
from ._http import (
    BadURL,
    ConnectFailed,
    DownloadError,
    FetchError,
    HTTPStatusError,
    ReadTimedOut,
    TooLarge,
    TooManyRedirects,
    UnsafeURL,
    redact,
)
from ._names import content_disposition_name, file_name_for, sanitize
from ._page import FetchOptions, Page
from ._policy import is_transient, retry_policy
from ._server import local_server

__all__ = [
    "BadURL",
    "ConnectFailed",
    "DownloadError",
    "FetchError",
    "HTTPStatusError",
    "Page",
    "ReadTimedOut",
    "TooLarge",
    "TooManyRedirects",
    "UnsafeURL",
    "content_disposition_name",
    "download_all",
    "file_name_for",
    "is_transient",
    "local_server",
    "redact",
    "sanitize",
]

DEFAULT_WORKERS = {"serial": 1, "thread": 16, "process": os.cpu_count() or 2, "async": 64}


def download_all(
    urls: Iterable[str],
    *,
    mode: str | poolkit.Runner = "thread",
    workers: int | None = None,
    dest: str | os.PathLike[str] | None = None,
    retries: int = 3,
    timeout: float = 30.0,
    deadline: float | None = None,
    rate: float | None = None,
    max_bytes: int = 100 * 2**20,
    overwrite: bool = False,
    insecure: bool = False,
    headers: Mapping[str, str] | None = None,
    progress: Any = False,
    on_result: Callable[[Any], Any] | None = None,
    retry_after_cap: float = 60.0,
    max_backoff: float = 10.0,
    keep_content: bool = True,
) -> poolkit.Results[Page]:
    """Download every URL; one Result per URL, in input order.

    Args:
        urls: the URLs (any iterable; read lazily).
        mode: ``"serial"``, ``"thread"``, ``"process"`` or ``"async"`` (aiohttp when the
            ``poolkit[async]`` extra is installed, else requests on threads); or a
            Runner (``poolkit.runner("thread", workers=64)``), whose workers and their
            HTTP connections are kept from one call to the next.
        workers: downloads at once (default: 16 threads, one process per CPU, 64 async;
            a Runner has its own).
        dest: a folder to save into; None keeps each body in ``Page.content``.
        retries: extra attempts for transient failures (connection errors, timeouts,
            429 and 5xx, honouring Retry-After up to 60 s); other 4xx are never retried.
        timeout: seconds for each attempt (connect within min(10, timeout)).
        deadline: seconds for the whole batch.
        rate: at most this many requests started per second.
        max_bytes: the largest body accepted (decoded), enforced while streaming.
        overwrite: replace files already in ``dest``; otherwise they are kept and their
            URLs skipped (``Page.skipped``), so a second run resumes the first.
        insecure: turn TLS verification off (warns).
        headers: extra request headers; ``Authorization`` and ``Cookie`` never follow a
            redirect to another host or from https to http.
        progress, on_result: as for ``poolkit.run_all``.
        retry_after_cap: the longest Retry-After honoured (seconds; as urllib3's Retry).
        max_backoff: the longest wait between retries when the server says nothing.
        keep_content: without ``dest``, keep each body in ``Page.content`` (False:
            bodies are counted and discarded while streaming, memory stays flat).

    Errors are the same in every mode: ``FetchError`` and its subclasses
    (``ConnectFailed``, ``ReadTimedOut``, ``TooLarge``, ``TooManyRedirects``,
    ``HTTPStatusError`` with ``.status``, ``BadURL``), the client library's own
    exception as ``__cause__``.

    Examples:
        >>> results = download_all([], mode="serial")
        >>> len(results)
        0
    """
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ValueError(f"retries={retries!r}: expected an int >= 0")
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
        raise ValueError(f"max_bytes={max_bytes!r}: expected an int >= 1")
    if not isinstance(timeout, int | float) or isinstance(timeout, bool) or timeout <= 0:
        raise ValueError(f"timeout={timeout!r}: expected seconds > 0")
    pool = mode if isinstance(mode, poolkit.Runner) else None
    if pool is not None and workers is not None:
        raise TypeError("workers= goes to poolkit.runner(...), not to a call given a Runner")
    if pool is None and mode not in DEFAULT_WORKERS:
        raise ValueError(
            f"mode={mode!r}: the downloader runs in {', '.join(map(repr, DEFAULT_WORKERS))}"
            " or on a poolkit Runner"
        )
    if insecure:
        warnings.warn("TLS verification is off: responses may be forged", stacklevel=2)
    try:
        folder = None if dest is None else writable_folder(Path(dest))
    except ValueError as error:
        raise ValueError(f"dest={error}") from None
    options = FetchOptions(
        dest=folder,
        timeout=float(timeout),
        max_bytes=max_bytes,
        overwrite=overwrite,
        verify=not insecure,
        headers=dict(headers or {}),
        retry_after_cap=float(retry_after_cap),
        keep_content=keep_content,
        run=secrets.token_hex(4),
    )
    policies: dict[str, Any] = {
        "retry": retry_policy(retries, max_backoff),
        # the attempt limit covers the whole request, body included, plus a little slack
        "timeout": float(timeout) + 1.0,
        "deadline": deadline,
        "rate_limit": rate,
        "progress": progress,
        "on_result": on_result,
    }
    try:
        if pool is None:
            assert isinstance(mode, str)
            policies["workers"] = workers or DEFAULT_WORKERS[mode]
            if mode == "async" and _has_aiohttp():
                return asyncio.run(_download_async(urls, options, policies))
        from ._fetch import Fetcher

        if pool is not None:
            return pool.run_all(Fetcher(options), urls, **policies)
        return poolkit.run_all(Fetcher(options), urls, mode=mode, **policies)
    except BaseException:
        remove_partials()
        raise
    finally:
        if folder is not None:  # what killed workers (Ctrl-C, timeouts) could not remove
            remove_leftovers(folder, options.run)


def _has_aiohttp() -> bool:
    try:
        import aiohttp  # noqa: F401
    except ImportError:
        return False
    return True


async def _download_async(
    urls: Iterable[str], options: FetchOptions, policies: dict[str, Any]
) -> poolkit.Results[Page]:
    from ._afetch import AsyncFetcher

    # the fetcher holds each attempt to the limit itself (see AsyncFetcher.__call__)
    limited = {**policies, "timeout": None}
    async with AsyncFetcher(options, policies["workers"], policies["timeout"]) as fetch:
        return await poolkit.arun_all(fetch, urls, mode="async", **limited)
