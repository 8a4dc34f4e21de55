"""One URL's transfer, without I/O: the rules both fetchers (requests, aiohttp) follow.

A fetcher sends a request for ``transfer.url`` with ``transfer.headers``, then hands the
response's status and headers to ``respond``: it says whether to follow a redirect
(the next URL, already checked) or to read the body; the fetcher then feeds the body
to ``feed`` chunk by chunk (decoded) and calls ``finish``. ``close`` always runs.
"""

from __future__ import annotations

import io
import time
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urljoin

from ._files import PartialFile, resolve_inside
from ._http import (
    HTTPStatusError,
    TooLarge,
    TooManyRedirects,
    carry_credentials,
    check_url,
    retry_after_seconds,
)
from ._names import content_disposition_name, file_name_for
from ._page import FetchOptions, Page

__all__ = ["CHUNK", "USER_AGENT", "Transfer"]

USER_AGENT = "poolkit-downloader/1 (+https://pypi.org/project/poolkit/)"
CHUNK = 64 * 1024
_REDIRECTS = (301, 302, 303, 307, 308)
_SENSITIVE = ("authorization", "cookie", "proxy-authorization")


class Transfer:
    """The state of downloading one URL (see the module docstring)."""

    def __init__(self, url: str, options: FetchOptions) -> None:
        self.original = url
        self.url = check_url(url)
        self.options = options
        self.headers = dict(options.headers)
        self.began = time.monotonic()
        self.target: Path | None = None
        self.status = 0
        self._hops = 0
        self._size = 0
        self._sink: PartialFile | io.BytesIO | None = None
        if options.dest is not None:
            self.target = resolve_inside(options.dest, file_name_for(url))

    def already_there(self) -> Page | None:
        """The Page of a file kept from before (no overwrite), or None to go ahead."""
        target = self.target
        if target is None or self.options.overwrite or not target.exists():
            return None
        return Page(self.url, self.url, None, target.stat().st_size, 0.0, target, skipped=True)

    def respond(self, status: int, reason: str, headers: Mapping[str, str]) -> bool:
        """Take a response's head; True means "read the body", False "request self.url"."""
        if status in _REDIRECTS and "Location" in headers:
            self._hops += 1
            if self._hops > self.options.max_redirects:
                raise TooManyRedirects(
                    f"more than {self.options.max_redirects} redirects from {self.original}"
                )
            following = check_url(urljoin(self.url, headers["Location"]))
            if not carry_credentials(self.url, following):
                self.headers = {
                    k: v for k, v in self.headers.items() if k.lower() not in _SENSITIVE
                }
            self.url = following
            return False
        if status >= 400:
            wait = retry_after_seconds(headers.get("Retry-After"), cap=self.options.retry_after_cap)
            raise HTTPStatusError(status, reason, self.url, wait)
        self.status = status
        self._open_body(headers)
        return True

    def _open_body(self, headers: Mapping[str, str]) -> None:
        options = self.options
        declared = headers.get("Content-Length", "")
        if (
            declared.isdigit()
            and "Content-Encoding" not in headers
            and int(declared) > options.max_bytes
        ):
            raise TooLarge(
                f"{self.url} declares {declared} bytes, more than max_bytes={options.max_bytes}"
            )
        if options.dest is None:
            self._sink = io.BytesIO()
            return
        offered = content_disposition_name(headers.get("Content-Disposition"))
        if offered is not None:
            self.target = resolve_inside(options.dest, offered)
        self._sink = PartialFile(options.dest)

    def feed(self, chunk: bytes) -> None:
        """Take the next decoded chunk of the body; stop a body larger than max_bytes."""
        self._size += len(chunk)
        if self._size > self.options.max_bytes:
            raise TooLarge(f"{self.url} sent more than max_bytes={self.options.max_bytes} bytes")
        assert self._sink is not None
        self._sink.write(chunk)

    def finish(self) -> Page:
        """The whole body arrived: keep it (in memory or renamed into place)."""
        elapsed = time.monotonic() - self.began
        sink = self._sink
        if isinstance(sink, io.BytesIO):
            return Page(
                self.original, self.url, self.status, self._size, elapsed, content=sink.getvalue()
            )
        assert sink is not None
        assert self.target is not None
        saved = sink.commit(self.target, overwrite=self.options.overwrite)
        return Page(
            self.original,
            self.url,
            self.status,
            self._size,
            elapsed,
            self.target,
            skipped=not saved,
        )

    def close(self) -> None:
        """Remove any partial file (a no-op after ``finish``)."""
        if isinstance(self._sink, PartialFile):
            self._sink.discard()
