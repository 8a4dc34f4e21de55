"""Saving a body atomically inside the destination folder."""

from __future__ import annotations

import os
import tempfile
import threading
from pathlib import Path
from typing import BinaryIO

__all__ = [
    "PartialFile",
    "remove_leftovers",
    "remove_partials",
    "resolve_inside",
    "writable_folder",
]

_PARTIAL_PREFIX = ".poolkit-"
_PARTIAL_SUFFIX = ".part"
_live: set[str] = set()
_UMASK = os.umask(0o022)  # read once (setting it back at once): files get 0666 & ~umask
os.umask(_UMASK)
_live_lock = threading.Lock()


def writable_folder(folder: Path) -> Path:
    """``folder``, created if needed; ValueError (before any download) when it cannot be."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise ValueError(f"{str(folder)!r} exists and is not a folder") from None
    except OSError as error:
        raise ValueError(f"{str(folder)!r} cannot be created ({error.strerror})") from None
    if not folder.is_dir():
        raise ValueError(f"{str(folder)!r} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"{str(folder)!r} is not writable")
    return folder


def resolve_inside(dest: Path, name: str) -> Path:
    """``dest / name``, refusing anything that would land outside ``dest``."""
    root = dest.resolve()
    target = (root / name).resolve()
    if target.parent != root:
        raise ValueError(f"refusing to write {name!r}: it would land outside {root}")
    return target


class PartialFile:
    """A temporary file next to its target, renamed into place by ``commit()``.

    Until committed it is removed on ``discard()`` (and by ``remove_partials`` after an
    interruption), so a failed download never leaves a partial file under its real name.
    """

    def __init__(self, dest: Path, run: str = "") -> None:
        prefix = f"{_PARTIAL_PREFIX}{run}-" if run else _PARTIAL_PREFIX
        handle, name = tempfile.mkstemp(prefix=prefix, suffix=_PARTIAL_SUFFIX, dir=dest)
        os.fchmod(handle, 0o666 & ~_UMASK)  # as curl and wget: the umask decides, not 0600
        self.path = name
        self.file: BinaryIO = os.fdopen(handle, "wb")
        with _live_lock:
            _live.add(name)

    def write(self, chunk: bytes) -> None:
        self.file.write(chunk)

    def commit(self, target: Path, *, overwrite: bool) -> bool:
        """Move into place; False (and nothing written) when target exists and not overwrite."""
        self.file.close()
        try:
            if overwrite:
                os.replace(self.path, target)
            else:
                try:
                    os.link(self.path, target)  # atomic, and fails if target exists
                except FileExistsError:
                    return False
                except OSError:  # a file system without hard links
                    if target.exists():
                        return False
                    os.replace(self.path, target)
            return True
        finally:
            self.discard()

    def discard(self) -> None:
        if not self.file.closed:
            self.file.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        with _live_lock:
            _live.discard(self.path)


def remove_partials() -> None:
    """Remove every partial file this process still has open (after an interruption)."""
    with _live_lock:
        names = list(_live)
        _live.clear()
    for name in names:
        try:
            os.unlink(name)
        except OSError:
            pass


def remove_leftovers(dest: Path, run: str) -> None:
    """Remove the partial files of download run ``run`` in ``dest``, whoever wrote them.

    Worker processes own their partial files; when they are killed (Ctrl-C, a
    timeout) they cannot clean up, so the parent removes them by their run's tag.
    """
    for path in dest.glob(f"{_PARTIAL_PREFIX}{run}-*{_PARTIAL_SUFFIX}"):
        try:
            path.unlink()
        except OSError:
            pass
