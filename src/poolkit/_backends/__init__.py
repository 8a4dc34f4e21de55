"""Backends: one module per mode, loaded by name, never imported by ``poolkit._core``.

Each module ends with ``backend_class = ...``; ``load(mode)`` imports it on first use,
so ``import poolkit`` pays for none of them (as anyio loads its backends).
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["load"]


def load(mode: str) -> Any:
    """The backend class of a built-in mode (``mode`` is one of ``MODES``)."""
    from poolkit._options import MODES  # here: a worker process imports none of it

    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}")
    module = importlib.import_module(f"{__name__}._{mode}")
    return module.backend_class
