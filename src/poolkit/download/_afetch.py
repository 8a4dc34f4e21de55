"""Fetching one URL with aiohttp (the ``poolkit[async]`` extra), same rules as ``_fetch``."""

from __future__ import annotations

from typing import Any

from ._page import FetchOptions, Page
from ._transfer import CHUNK, USER_AGENT, Transfer

__all__ = ["AsyncFetcher"]


class AsyncFetcher:
    """``await fetcher(url) -> Page`` over one aiohttp session (open it with ``async with``)."""

    def __init__(self, options: FetchOptions, connections: int) -> None:
        self.options = options
        self._connections = connections
        self._session: Any = None

    async def __aenter__(self) -> AsyncFetcher:
        import aiohttp

        timeout = aiohttp.ClientTimeout(
            total=None, connect=self.options.connect_timeout, sock_read=self.options.timeout
        )
        connector = aiohttp.TCPConnector(limit=self._connections, ssl=self.options.verify)
        self._session = aiohttp.ClientSession(
            timeout=timeout,
            connector=connector,
            headers={"User-Agent": USER_AGENT},
            trust_env=False,
            auto_decompress=True,
        )
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._session.close()

    async def __call__(self, url: str) -> Page:
        transfer = Transfer(url, self.options)
        kept = transfer.already_there()
        if kept is not None:
            return kept
        try:
            while True:
                async with self._session.get(
                    transfer.url, headers=transfer.headers, allow_redirects=False
                ) as response:
                    if not transfer.respond(
                        response.status, response.reason or "", response.headers
                    ):
                        continue
                    async for chunk in response.content.iter_chunked(CHUNK):
                        transfer.feed(chunk)
                    return transfer.finish()
        finally:
            transfer.close()
