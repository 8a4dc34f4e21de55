"""Pickling for process and dask modes: fast for the common case, explicit when it fails.

Values go through the standard pickle first and cloudpickle when that fails (lambdas,
closures, classes defined in ``__main__``). Exceptions travel as a package that
survives anything: the pickled exception when it can be pickled, and always its type
name, message and traceback text, so the parent can rebuild a ``RemoteError`` when the
original cannot be rebuilt.
"""

from __future__ import annotations

import io
import pickle
import sys
import traceback
from typing import Any

import cloudpickle

from poolkit._errors import RemoteError, RemoteTraceback, set_anyway
from poolkit._quote import describe, text_of

__all__ = [
    "dumps",
    "load_function",
    "loads",
    "pack_error",
    "pickle_initializer",
    "unpack_error",
    "why_unpicklable",
]

loads = pickle.loads


def dumps(value: Any) -> bytes:
    """Pickle ``value`` (cloudpickle as the fallback); raises when neither can."""
    try:
        return pickle.dumps(value, pickle.HIGHEST_PROTOCOL)
    except Exception:
        return cloudpickle.dumps(value, pickle.HIGHEST_PROTOCOL)  # type: ignore[no-any-return]


def pickle_initializer(initializer: Any, initargs: tuple[Any, ...]) -> bytes | None:
    """``(initializer, initargs)`` for worker processes, with cloudpickle: a script's,
    a notebook's or ``exec``'d code's initializer is sent by value, as functions are.
    Raises TypeError, naming what cannot be sent, before any worker starts."""
    if initializer is None:
        return None
    try:
        return cloudpickle.dumps((initializer, initargs), pickle.HIGHEST_PROTOCOL)  # type: ignore[no-any-return]
    except Exception as error:
        raise TypeError(
            f"initializer={initializer!r} with initargs={initargs!r} cannot be sent to "
            f"the worker processes: {describe(error)}"
        ) from error


def load_function(blob: bytes) -> Any:
    """Load a function the parent sent with cloudpickle, and make the ``__main__``
    classes sent with it (by value) the ones this process's ``__main__`` names.

    The parent's script defines ``Point`` and ``make(x) -> Point``; ``make`` travels by
    value with its own copy of ``Point``, while an item or result that is a ``Point``
    travels by reference, as ``__main__.Point``. Unless that name means the copy the
    function uses, a result cannot be pickled back ("not the same object as
    __main__.Point") and an item fails ``isinstance(item, Point)`` in the function.

    Example:
        >>> import cloudpickle
        >>> Local = type("Local", (), {"__module__": "__main__"})
        >>> copy = load_function(cloudpickle.dumps(Local))
        >>> sys.modules["__main__"].Local is copy
        True
        >>> del sys.modules["__main__"].Local
    """
    loader = _NotingLoader(io.BytesIO(blob))
    value = loader.load()
    main = sys.modules.get("__main__")
    if main is not None:
        for rebuilt in loader.rebuilt:
            name = getattr(rebuilt, "__qualname__", "")
            if getattr(rebuilt, "__module__", None) == "__main__" and name.isidentifier():
                setattr(main, name, rebuilt)
    return value


# cloudpickle's constructors of classes sent by value (names private to cloudpickle: with
# another version they are simply not noted, and only the adoption above is lost)
_CLASS_MAKERS = frozenset({"_make_skeleton_class", "_make_skeleton_enum"})


class _NotingLoader(pickle.Unpickler):
    """An unpickler that notes each class cloudpickle rebuilds while loading."""

    def __init__(self, file: io.BytesIO) -> None:
        super().__init__(file)
        self.rebuilt: list[Any] = []

    def find_class(self, module: str, name: str) -> Any:
        found = super().find_class(module, name)
        if name in _CLASS_MAKERS and module.startswith("cloudpickle"):
            rebuilt = self.rebuilt

            def noting(*args: Any) -> Any:
                made = found(*args)
                rebuilt.append(made)
                return made

            return noting
        return found


def why_unpicklable(value: Any) -> str | None:
    """None when ``value`` pickles, else the reason it does not."""
    try:
        dumps(value)
    except Exception as error:
        return describe(error)
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
    return _pickled(error), name, text_of(error), text


def _pickled(error: BaseException) -> bytes | None:
    """The exception pickled so that it loads as itself, or None.

    Pickle rebuilds an exception by calling its class with ``error.args``, which fails
    for the common ``__init__(self, a, b)`` that passes one message up (``args`` then
    holds the message, not ``a, b``), and for a frozen dataclass. Those travel by parts
    instead: the class, ``args`` and ``__dict__``, put together without ``__init__``, as
    pickle does for plain objects (unless the class defines its own reduction). Each
    form is loaded here first, so what the parent gets loads, has the same type and
    says the same thing.
    """
    forms: list[object] = [error]
    kind = type(error)
    if kind.__reduce__ is BaseException.__reduce__ and kind.__reduce_ex__ is object.__reduce_ex__:
        forms.append(_ByParts(error))  # (a class with its own reduction has the last word)
    for form in forms:
        try:
            packed = dumps(form)
            loaded = pickle.loads(packed)
            if type(loaded) is type(error) and text_of(loaded) == text_of(error):
                return packed
        except BaseException:  # user code (__init__, __reduce__, __str__) may raise anything
            pass
    return None


class _ByParts:
    """Pickles as ``_from_parts(type(error), error.args, attributes)``: ``__dict__`` and
    the slots the class declares."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error

    def __reduce__(self) -> tuple[Any, ...]:
        error = self.error
        state = dict(getattr(error, "__dict__", {}))
        for kind in type(error).__mro__:
            for name in kind.__dict__.get("__slots__", ()):
                if name not in ("__dict__", "__weakref__") and hasattr(error, name):
                    state[name] = getattr(error, name)
        return (_from_parts, (type(error), error.args, state))


def _from_parts(
    kind: type[BaseException], args: tuple[Any, ...], state: dict[str, Any]
) -> BaseException:
    """An instance of ``kind`` with these ``args`` and attributes, ``__init__`` not run.

    Example:
        >>> class Odd(Exception):
        ...     def __init__(self, a, b):
        ...         super().__init__(f"odd {a} {b}")
        ...         self.a = a
        >>> error = _from_parts(Odd, ("odd 1 2",), {"a": 1})
        >>> type(error) is Odd, str(error), error.a
        (True, 'odd 1 2', 1)
    """
    error = kind.__new__(kind, *args)
    # object.__setattr__: past a frozen dataclass's __setattr__, into a slot if declared
    object.__setattr__(error, "args", args)
    for name, value in state.items():
        object.__setattr__(error, name, value)
    return error


def unpack_error(package: ErrorPackage) -> BaseException:
    """Rebuild the exception, or a RemoteError that carries what is known of it.

    Never raises: it runs on the thread that collects every item's outcome."""
    blob, name, message, text = package
    if blob is None:
        return RemoteError(name, message, text)
    try:
        error = pickle.loads(blob)
        if not isinstance(error, BaseException):
            return RemoteError(name, message, text)
        set_anyway(error, "__cause__", RemoteTraceback(text))
    except BaseException:  # user code (__setstate__) may raise anything, SystemExit too
        return RemoteError(name, message, text)
    return error
