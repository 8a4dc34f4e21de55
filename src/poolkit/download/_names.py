"""File names for downloaded URLs that cannot leave the destination folder."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from pathlib import PurePosixPath
from urllib.parse import unquote, urlsplit

__all__ = ["MAX_NAME", "content_disposition_name", "distinct_name", "file_name_for", "sanitize"]

MAX_NAME = 255  # bytes, UTF-8 encoded: what common file systems allow in one name
# Letters and digits of any script stay (after NFKC); separators, controls, spaces and
# bidi overrides do not.
_UNSAFE = re.compile(r"[^\w.()+,=@~-]+")
# Names Windows reserves whatever the extension; refused everywhere so that a folder of
# downloads can be copied to any system.
_DEVICES = {
    "con",
    "prn",
    "aux",
    "nul",
    *(f"com{n}" for n in range(10)),
    *(f"lpt{n}" for n in range(10)),
}


def sanitize(name: str) -> str:
    """A single, safe path component made of ``name``: never empty, ``.``/``..``, or a device.

    Examples:
        >>> sanitize("../../etc/passwd"), sanitize("CON.txt"), sanitize("  ")
        ('etc_passwd', '_CON.txt', 'download')
    """
    name = unicodedata.normalize("NFKC", name)
    name = _UNSAFE.sub("_", name.replace("/", "_").replace("\\", "_"))
    name = name.strip("._ ") or "download"
    stem = name.split(".", 1)[0].lower()
    if stem in _DEVICES:
        name = "_" + name
    if len(name.encode()) > MAX_NAME:
        stem, dot, suffix = name.rpartition(".")
        keep = "." + suffix if dot and len(suffix) <= 10 else ""
        name = _cut(stem if keep else name, MAX_NAME - len(keep.encode())).rstrip("._") + keep
    return name


def _cut(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` UTF-8 bytes, never inside a character."""
    return text.encode()[:limit].decode("utf-8", "ignore")


def file_name_for(url: str) -> str:
    """The file name for ``url``: readable, safe, and distinct for distinct URLs.

    The last path segment (or the host) gives the readable part; a short hash of the
    whole URL (query string included) keeps distinct URLs apart, since the readable
    part alone collides across paths (``/a/index.html`` and ``/b/index.html``).

    Examples:
        >>> file_name_for("https://host/wiki/PHP")
        'PHP-b8185d7729.html'
        >>> file_name_for("http://127.0.0.1:8000/").startswith("index-")
        True
        >>> file_name_for("https://host/search?q=1") != file_name_for("https://host/search?q=2")
        True
    """
    parts = urlsplit(url)
    segment = PurePosixPath(unquote(parts.path)).name
    return distinct_name(sanitize(segment) if segment else "index.html", url)


def distinct_name(name: str, url: str) -> str:
    """``name`` with a short hash of ``url`` before its extension: distinct URLs never
    collide, whether the name came from the URL or from the server.

    Examples:
        >>> distinct_name("report.pdf", "http://h/a") != distinct_name("report.pdf", "http://h/b")
        True
    """
    stem, dot, suffix = name.rpartition(".")
    if not dot or not stem or len(suffix) > 10:
        stem, suffix = name, "html"
    digest = hashlib.sha256(url.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    tail = f"-{digest}.{sanitize(suffix)}"
    return sanitize(_cut(stem, MAX_NAME - len(tail.encode())) + tail)


def content_disposition_name(header: str | None) -> str | None:
    """The sanitized file name a Content-Disposition header offers, if any.

    Examples:
        >>> content_disposition_name('attachment; filename="../../x.sh"')
        'x.sh'
        >>> content_disposition_name("attachment; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf")
        'résumé.pdf'
    """
    if not header:
        return None
    extended = re.search(r"filename\*\s*=\s*([^']*)'[^']*'([^;]+)", header, re.IGNORECASE)
    if extended:
        raw = unquote(extended.group(2).strip(), encoding=extended.group(1) or "utf-8")
    else:
        plain = re.search(r'filename\s*=\s*"([^"]*)"|filename\s*=\s*([^;]+)', header, re.IGNORECASE)
        if not plain:
            return None
        raw = (plain.group(1) if plain.group(1) is not None else plain.group(2)).strip()
    raw = PurePosixPath(raw.replace("\\", "/")).name
    return sanitize(raw) if raw else None
