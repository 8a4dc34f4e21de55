"""Which attempt of which item the current worker is running (read by poolkit.testing)."""

from __future__ import annotations

from contextvars import ContextVar

__all__ = ["ATTEMPT"]

ATTEMPT: ContextVar[int] = ContextVar("poolkit_attempt", default=1)
"""The 1-based number of the attempt being run in this thread or task."""

IN_WORKER_PROCESS = False
"""True inside a process-mode worker, where a simulated crash may really exit."""
