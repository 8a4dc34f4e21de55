"""Process mode, as a package: the parent's pool (``_pool``) and its collector thread
(``_collector``), the handle on one worker (``_handle``), the child's main loop
(``_child``) and the wire format (``_wire``).

The pool is imported on first use only: a worker process imports ``_child``, and
needs none of the parent's side.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ProcessBackend", "backend_class"]


def __getattr__(name: str) -> Any:
    if name in ("ProcessBackend", "backend_class"):
        from ._pool import ProcessBackend

        return ProcessBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
