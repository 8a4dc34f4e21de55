"""``Page``: what downloading one URL gives, and the options every fetcher shares."""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["FetchOptions", "Page"]


@dataclass(frozen=True, slots=True)
class Page:
    """One downloaded URL.

    ``bytes`` is the size of the decoded body; ``path`` is where it was saved (None when
    ``dest`` was not given: then ``content`` holds the body). ``skipped`` is True when the
    file was already there and ``overwrite`` was off: it was kept, and nothing was fetched.

    Examples:
        >>> Page("http://h/x", "http://h/x", 200, 3, 0.1, content=b"abc").bytes
        3
    """

    url: str
    final_url: str
    status: int | None
    bytes: int
    elapsed: float
    path: Path | None = None
    content: builtins.bytes | None = field(default=None, repr=False)
    skipped: bool = False


@dataclass(frozen=True, slots=True)
class FetchOptions:
    """Settings shared by the synchronous and the asynchronous fetcher."""

    dest: Path | None
    timeout: float
    max_bytes: int
    overwrite: bool
    verify: bool
    headers: Mapping[str, str]
    max_redirects: int = 10
    retry_after_cap: float = 60.0
    keep_content: bool = True
    run: str = ""  # tags this run's partial files, so the parent can remove them all

    @property
    def connect_timeout(self) -> float:
        return min(10.0, self.timeout)
