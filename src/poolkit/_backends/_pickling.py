"""Pickling for process and dask modes: fast for the common case, explicit when it fails.

Values go through the standard pickle first and cloudpickle when that fails (lambdas,
closures, classes defined in ``__main__``). Exceptions travel as a package that
survives anything: the pickled exception when it can be pickled, and always its type
name, message and traceback text, so the parent can rebuild a ``RemoteError`` when the
original cannot be rebuilt.
"""

from __future__ import annotations

import pickle
import traceback
from typing import Any

import cloudpickle

from poolkit._errors import RemoteError, RemoteTraceback

__all__ = ["dumps", "loads", "pack_error", "unpack_error", "why_unpicklable"]

loads = pickle.loads


def dumps(value: Any) -> bytes:
    """Pickle ``value`` (cloudpickle as the fallback); raises when neither can."""
    try:
        return pickle.dumps(value, pickle.HIGHEST_PROTOCOL)
    except Exception:
        return cloudpickle.dumps(value, pickle.HIGHEST_PROTOCOL)  # type: ignore[no-any-return]


def why_unpicklable(value: Any) -> str | None:
    """None when ``value`` pickles, else the reason it does not."""
    try:
        dumps(value)
    except Exception as error:
        return f"{type(error).__name__}: {error}"
    return None


ErrorPackage = tuple[bytes | None, str, str, str]


def pack_error(error: BaseException) -> ErrorPackage:
    """What crosses the process boundary for an exception raised in a worker."""
    text = "".join(traceback.format_exception(error)).rstrip()
    kind = type(error)
    name = (
        f"{kind.__module__}.{kind.__qualname__}"
        if kind.__module__ != "builtins"
        else kind.__qualname__
    )
    # Nothing is assigned on ``error``: an exception that refuses attribute assignment
    # (a frozen dataclass) must still travel. Pickling leaves the traceback behind.
    blob: bytes | None
    try:
        packed = dumps(error)
        pickle.loads(packed)  # constructors that cannot be re-run fail here, not in the parent
        blob = packed
    except BaseException:  # user code (__reduce__, __setstate__) may raise anything
        blob = None
    return blob, name, str(error), text


def unpack_error(package: ErrorPackage) -> BaseException:
    """Rebuild the exception, or a RemoteError that carries what is known of it."""
    blob, name, message, text = package
    error: BaseException
    if blob is None:
        error = RemoteError(name, message, text)
    else:
        try:
            error = pickle.loads(blob)
        except BaseException:  # user code (__setstate__) may raise anything, SystemExit too
            error = RemoteError(name, message, text)
        if not isinstance(error, BaseException):
            error = RemoteError(name, message, text)
    if not isinstance(error, RemoteError):
        error.__cause__ = RemoteTraceback(text)
    return error
