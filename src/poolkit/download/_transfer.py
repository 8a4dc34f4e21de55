"""One URL's transfer, without I/O: the rules both fetchers (requests, aiohttp) follow.

A fetcher sends a request for ``transfer.url`` with ``transfer.headers``, then hands the
response's status and headers to ``respond``: it says whether to follow a redirect
(the next URL, already checked) or to read the body; the fetcher then feeds the raw
body to ``feed`` chunk by chunk and calls ``finish``. ``close`` always runs. Every
rule lives here, so the modes cannot disagree: statuses, redirects and credentials,
Content-Encoding layers (decoded here, all of them), the size limit, file names, and
when a transfer whose attempt has ended must stop writing.
"""

from __future__ import annotations

import io
import time
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

from ._files import PartialFile, resolve_inside
from ._http import (
    ConnectFailed,
    HTTPStatusError,
    ReadTimedOut,
    TooLarge,
    TooManyRedirects,
    carry_credentials,
    check_url,
    redact,
    retry_after_seconds,
)
from ._names import content_disposition_name, distinct_name, file_name_for
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
        # poolkit gives up on the attempt at timeout + 1 s (it cannot stop a thread): a
        # transfer still running then stops writing and removes its partial file.
        self._abandon_at = self.began + options.timeout + 1.0
        self._decoder: _Decoder | None = None
        self.target: Path | None = None
        self.status = 0
        self._hops = 0
        self._size = 0
        self._sink: PartialFile | io.BytesIO | None = None
        self._keep_content = options.keep_content or options.dest is not None
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
                    f"more than {self.options.max_redirects} redirects from "
                    f"{redact(self.original)}",
                    self.original,
                )
            following = check_url(urljoin(self.url, headers["Location"]))
            if not carry_credentials(self.url, following):
                self.headers = {
                    k: v for k, v in self.headers.items() if k.lower() not in _SENSITIVE
                }
            self.url = following
            return False
        if status < 100:  # not HTTP: what http.client calls a bad status line
            failed = ConnectFailed(
                f"{redact(self.url)}: invalid HTTP status line ({status})", self.original
            )
            failed.transient = False
            raise failed
        if status >= 400 or status < 200:
            wait = retry_after_seconds(headers.get("Retry-After"), cap=self.options.retry_after_cap)
            raise HTTPStatusError(status, reason or "unexpected status", self.url, wait)
        self.status = status
        self._open_body(headers)
        return True

    def _open_body(self, headers: Mapping[str, str]) -> None:
        options = self.options
        self._decoder = _Decoder(headers.get("Content-Encoding", ""))
        declared = headers.get("Content-Length", "")
        if (
            declared.isdigit()
            and "Content-Encoding" not in headers
            and int(declared) > options.max_bytes
        ):
            raise TooLarge(
                f"{redact(self.url)} declares {declared} bytes, more than "
                f"max_bytes={options.max_bytes}",
                self.original,
            )
        if options.dest is None:
            self._sink = io.BytesIO()
            return
        offered = content_disposition_name(headers.get("Content-Disposition"))
        if offered is not None:  # the server's name, as collision-proof as ours
            self.target = resolve_inside(options.dest, distinct_name(offered, self.original))
        self._sink = PartialFile(options.dest, options.run)

    def feed(self, raw: bytes) -> None:
        """Take the next raw chunk of the body; stop a body larger than max_bytes (decoded)."""
        assert self._decoder is not None
        self._keep(self._decoder.decode(raw))

    def _keep(self, chunk: bytes) -> None:
        if time.monotonic() > self._abandon_at:
            raise ReadTimedOut(
                f"{redact(self.original)}: the attempt's time ran out while reading "
                f"(timeout {self.options.timeout:g} s)",
                self.original,
            )
        self._size += len(chunk)
        if self._size > self.options.max_bytes:
            raise TooLarge(
                f"{redact(self.url)} sent more than max_bytes={self.options.max_bytes} bytes",
                self.original,
            )
        if self._sink is not None and self._keep_content:
            self._sink.write(chunk)

    def finish(self) -> Page:
        """The whole body arrived: keep it (in memory or renamed into place)."""
        assert self._decoder is not None
        self._keep(self._decoder.flush())
        elapsed = time.monotonic() - self.began
        sink = self._sink
        if isinstance(sink, io.BytesIO):
            content = sink.getvalue() if self._keep_content else None
            return Page(self.original, self.url, self.status, self._size, elapsed, content=content)
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


class _Decoder:
    """Undoes every Content-Encoding layer (``gzip, gzip`` included), last applied first."""

    def __init__(self, header: str) -> None:
        layers = [c.strip().lower() for c in header.split(",") if c.strip()]
        self._steps: list[Any] = []
        for coding in reversed(layers):
            if coding in ("gzip", "x-gzip"):
                self._steps.append(zlib.decompressobj(16 + zlib.MAX_WBITS))
            elif coding == "deflate":
                self._steps.append(_Deflate())
            elif coding == "identity":
                continue
            else:  # an encoding we cannot undo (br without brotli, ...): keep the bytes as sent
                self._steps = []
                return

    def decode(self, data: bytes) -> bytes:
        for step in self._steps:
            data = step.decompress(data)
        return data

    def flush(self) -> bytes:
        data = b""
        for step in self._steps:
            data = step.decompress(data) + step.flush()
        return data


class _Deflate:
    """``deflate`` as servers send it: zlib-wrapped, or (often) raw."""

    def __init__(self) -> None:
        self._inner: Any = None

    def decompress(self, data: bytes) -> bytes:
        if self._inner is None:
            if not data:
                return b""
            wrapped = (data[0] & 0x0F) == 8 and (
                data[0] * 256 + data[1] if len(data) > 1 else 0
            ) % 31 == 0
            self._inner = zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)
        return bytes(self._inner.decompress(data))

    def flush(self) -> bytes:
        return b"" if self._inner is None else bytes(self._inner.flush())
