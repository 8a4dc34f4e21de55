"""Dask mode, as a package: the client side (``_backend``: chunks, probes, the
cluster watch), the ledger that posts each item of a run once (``_ledger``) and what
runs on a Dask worker (``_worker``).

The client side is imported on first use only: a Dask worker imports ``_worker``, and
needs none of it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["DaskBackend", "backend_class", "require_dask"]


def __getattr__(name: str) -> Any:
    if name in ("DaskBackend", "backend_class"):
        from ._backend import DaskBackend

        return DaskBackend
    if name == "require_dask":
        from ._backend import require_dask

        return require_dask
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
