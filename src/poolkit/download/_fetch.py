"""Fetching one URL with requests: one Session per worker thread, streamed, bounded."""

from __future__ import annotations

import threading

import requests
import urllib3

from ._http import BadURL, ConnectFailed, FetchError, ReadTimedOut, redact
from ._page import FetchOptions, Page
from ._transfer import CHUNK, USER_AGENT, Transfer

__all__ = ["Fetcher", "translate"]

_local = threading.local()


def _session() -> requests.Session:
    session: requests.Session | None = getattr(_local, "session", None)
    if session is None:
        session = requests.Session()
        session.headers["User-Agent"] = USER_AGENT
        session.trust_env = False  # no proxy or .netrc credentials slipped in from the environment
        _local.session = session
    return session


class Fetcher:
    """``fetcher(url) -> Page``: a picklable callable for poolkit's workers."""

    def __init__(self, options: FetchOptions) -> None:
        self.options = options

    def __call__(self, url: str) -> Page:
        transfer = Transfer(url, self.options)
        kept = transfer.already_there()
        if kept is not None:
            return kept
        timeouts = (self.options.connect_timeout, self.options.timeout)
        try:
            return self._fetch(transfer, timeouts)
        except (requests.RequestException, urllib3.exceptions.HTTPError) as error:
            raise translate(error, transfer.original, self.options.timeout) from error
        finally:
            transfer.close()

    def _fetch(self, transfer: Transfer, timeouts: tuple[float, float]) -> Page:
        while True:
            with _session().get(
                transfer.url,
                headers=transfer.headers,
                stream=True,
                allow_redirects=False,
                timeout=timeouts,
                verify=self.options.verify,
            ) as response:
                if not transfer.respond(
                    response.status_code, response.reason or "", response.headers
                ):
                    continue
                # raw bytes: the Transfer undoes Content-Encoding itself, in every mode
                for chunk in response.raw.stream(CHUNK, decode_content=False):
                    transfer.feed(chunk)
                return transfer.finish()


def translate(error: BaseException, url: str, timeout: float) -> FetchError:
    """requests' exception as the downloader's own (the same types in every mode)."""
    where = redact(url)
    if isinstance(error, requests.exceptions.InvalidURL | requests.exceptions.MissingSchema):
        return BadURL(f"{where} is not a valid URL: {error}", url)
    if isinstance(error, requests.exceptions.ReadTimeout | urllib3.exceptions.ReadTimeoutError):
        return ReadTimedOut(f"{where}: no data for {timeout:g} s (timed out)", url)
    if isinstance(error, requests.exceptions.SSLError):
        failed = ConnectFailed(f"{where}: TLS failed: {_reason(error)}", url)
        failed.transient = False
        return failed
    if "BadStatusLine" in repr(error):  # not HTTP: refused, as aiohttp's answer is
        failed = ConnectFailed(f"{where}: invalid HTTP status line", url)
        failed.transient = False
        return failed
    if isinstance(error, requests.exceptions.ConnectTimeout):
        return ConnectFailed(f"{where}: could not connect (timed out)", url)
    if isinstance(error, requests.ConnectionError | requests.exceptions.ChunkedEncodingError):
        return ConnectFailed(f"{where}: connection failed: {_reason(error)}", url)
    return ConnectFailed(f"{where}: {type(error).__name__}: {_reason(error)}", url)


def _reason(error: BaseException) -> str:
    """The innermost useful text of a requests/urllib3 error chain."""
    text = str(error)
    for known in ("Connection refused", "Name or service not known", "Connection reset"):
        if known in text:
            return known.lower()
    return text[:200]
