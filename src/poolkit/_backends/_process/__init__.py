"""Process mode, as a package: the parent's pool (``_pool``), the handle on one worker
(``_handle``), the child's main loop (``_child``) and the wire format (``_wire``).
"""

from __future__ import annotations

from ._pool import ProcessBackend

__all__ = ["ProcessBackend", "backend_class"]

backend_class = ProcessBackend
