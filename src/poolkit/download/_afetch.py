"""Fetching one URL with aiohttp (the ``poolkit[async]`` extra), same rules as ``_fetch``."""

from __future__ import annotations

import asyncio
from typing import Any

import poolkit

from ._http import BadURL, ConnectFailed, FetchError, ReadTimedOut, redact
from ._page import FetchOptions, Page
from ._transfer import CHUNK, USER_AGENT, Transfer

__all__ = ["AsyncFetcher"]


class AsyncFetcher:
    """``await fetcher(url) -> Page`` over one aiohttp session (open it with ``async with``)."""

    def __init__(self, options: FetchOptions, connections: int, limit: float | None = None) -> None:
        self.options = options
        self._connections = connections
        self._limit = limit  # seconds for a whole attempt, body included (None: none)
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
            auto_decompress=False,  # the Transfer undoes Content-Encoding, as in every mode
        )
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._session.close()

    async def __call__(self, url: str) -> Page:
        transfer = Transfer(url, self.options)
        kept = transfer.already_there()
        if kept is not None:
            return kept
        # The attempt limit is held here, not by poolkit's engine: a batch with a
        # timeout would run one asyncio task per URL; without, long-lived lanes serve
        # the URLs. Nothing here blocks the loop, so the limit always fires, and it
        # fails the attempt as the engine's timer would.
        scope = asyncio.timeout(self._limit)
        try:
            async with scope:
                return await self._fetch(transfer)
        except FetchError:
            raise
        except (TimeoutError, OSError, ValueError) as error:
            if scope.expired():
                assert self._limit is not None
                raise poolkit.TaskTimeout(self._limit, stopped=True) from None
            raise _translate(error, transfer.original, self.options.timeout) from error
        except Exception as error:
            import aiohttp

            if isinstance(error, aiohttp.ClientError):
                raise _translate(error, transfer.original, self.options.timeout) from error
            raise
        finally:
            transfer.close()

    async def _fetch(self, transfer: Transfer) -> Page:
        while True:
            async with self._session.get(
                transfer.url, headers=transfer.headers, allow_redirects=False
            ) as response:
                if not transfer.respond(response.status, response.reason or "", response.headers):
                    continue
                async for chunk in response.content.iter_chunked(CHUNK):
                    transfer.feed(chunk)
                return transfer.finish()


def _translate(error: BaseException, url: str, timeout: float) -> FetchError:
    """aiohttp's exception as the downloader's own (the same types as with requests)."""
    import aiohttp

    where = redact(url)
    if isinstance(error, aiohttp.InvalidURL | ValueError):
        return BadURL(f"{where} is not a valid URL: {error}", url)
    if isinstance(error, aiohttp.ClientSSLError):
        failed = ConnectFailed(f"{where}: TLS failed: {error}", url)
        failed.transient = False
        return failed
    if isinstance(error, aiohttp.ConnectionTimeoutError):
        return ConnectFailed(f"{where}: could not connect (timed out)", url)
    if isinstance(error, aiohttp.ServerTimeoutError | asyncio.TimeoutError):
        return ReadTimedOut(f"{where}: no data for {timeout:g} s (timed out)", url)
    if isinstance(error, aiohttp.ClientConnectorError):
        reason = "connection refused" if "refused" in str(error).lower() else str(error)[:200]
        return ConnectFailed(f"{where}: connection failed: {reason}", url)
    return ConnectFailed(f"{where}: connection failed: {type(error).__name__}: {error}", url)
