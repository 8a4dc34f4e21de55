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

# Not `from typing import TYPE_CHECKING`: importing typing (and re with it) was most of
# `import poolkit`'s time; type checkers treat this name the same way.
TYPE_CHECKING = False

if TYPE_CHECKING:
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
    from ._shared import Shared, shared
    from ._stream import AsyncResultStream, ResultStream
    from ._summary import Summary

del TYPE_CHECKING  # not a public name

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
    "Shared",
    "Summary",
    "TaskTimeout",
    "WorkerCrashed",
    "arun_all",
    "astream",
    "run_all",
    "runner",
    "shared",
    "stream",
    "worker_id",
    "worker_state",
]

# Each public name is imported on first use (PEP 562), so ``import poolkit`` stays cheap
# and a worker process loads only what it runs. Type checkers read the imports above.
_WHERE = {
    "AsyncResultStream": "._stream",
    "CancelToken": "._policies",
    "Cancelled": "._errors",
    "DeadlineExceeded": "._errors",
    "Err": "._results",
    "Executor": "._executor",
    "ExecutorRunner": "._runners._executor",
    "HookError": "._errors",
    "Ok": "._results",
    "PoolkitError": "._errors",
    "Progress": "._progress",
    "RateLimit": "._policies",
    "RemoteError": "._errors",
    "RemoteTraceback": "._errors",
    "Result": "._results",
    "ResultStream": "._stream",
    "Results": "._results",
    "Retry": "._policies",
    "Runner": "._runners._protocol",
    "Shared": "._shared",
    "Summary": "._summary",
    "TaskTimeout": "._errors",
    "WorkerCrashed": "._errors",
    "arun_all": "._api",
    "astream": "._api",
    "run_all": "._api",
    "runner": "._runners._pool",
    "shared": "._shared",
    "stream": "._api",
    "worker_id": "._core._attempt",
    "worker_state": "._core._attempt",
}


def __getattr__(name: str) -> object:
    module = _WHERE.get(name)
    if module is not None:
        import importlib

        value = getattr(importlib.import_module(module, __name__), name)
        globals()[name] = value
        return value
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("poolkit")
        except PackageNotFoundError:  # running from a source tree
            from ._version import __version__

            return __version__
    raise AttributeError(f"module 'poolkit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
