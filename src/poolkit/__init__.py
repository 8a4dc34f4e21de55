"""poolkit: run a function over many items with threads, processes, asyncio or Dask.

One call, ``poolkit.run_all(fn, items, mode=...)``, one typed Result (``Ok``/``Err``)
per item, and retries, timeouts, deadlines and cancellation that behave the same in
every mode.

Examples:
    >>> import poolkit
    >>> results = poolkit.run_all(len, ["a", "bb", "ccc"], mode="thread")
    >>> results.values
    [1, 2, 3]
"""

from __future__ import annotations

from ._api import arun_all, astream, run_all, stream
from ._core._attempt import worker_id, worker_state
from ._errors import (
    Cancelled,
    DeadlineExceeded,
    HookError,
    PoolkitError,
    RemoteError,
    RemoteTraceback,
    TaskTimeout,
    WorkerCrashed,
)
from ._executor import Executor
from ._policies import CancelToken, RateLimit, Retry
from ._progress import Progress
from ._results import Err, Ok, Result, Results
from ._runners._executor import ExecutorRunner
from ._runners._pool import runner
from ._runners._protocol import Runner
from ._stream import AsyncResultStream, ResultStream
from ._summary import Summary

__all__ = [
    "AsyncResultStream",
    "CancelToken",
    "Cancelled",
    "DeadlineExceeded",
    "Err",
    "Executor",
    "ExecutorRunner",
    "HookError",
    "Ok",
    "PoolkitError",
    "Progress",
    "RateLimit",
    "RemoteError",
    "RemoteTraceback",
    "Result",
    "ResultStream",
    "Results",
    "Retry",
    "Runner",
    "Summary",
    "TaskTimeout",
    "WorkerCrashed",
    "arun_all",
    "astream",
    "run_all",
    "runner",
    "stream",
    "worker_id",
    "worker_state",
]


def __getattr__(name: str) -> str:
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("poolkit")
        except PackageNotFoundError:  # running from a source tree
            from ._version import __version__

            return __version__
    raise AttributeError(f"module 'poolkit' has no attribute {name!r}")
