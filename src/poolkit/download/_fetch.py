"""Fetching one URL with requests: one Session per worker thread, streamed, bounded."""

from __future__ import annotations

import threading

import requests

from ._page import FetchOptions, Page
from ._transfer import CHUNK, USER_AGENT, Transfer

__all__ = ["Fetcher"]

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
                    for chunk in response.iter_content(CHUNK):  # decoded: bombs count in full
                        transfer.feed(chunk)
                    return transfer.finish()
        finally:
            transfer.close()
