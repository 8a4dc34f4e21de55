"""Quoting a user's objects in poolkit's messages, logs and notes: never raises.

A user's ``__repr__`` or ``__str__`` may raise; the message that quotes it must still
be written, and the batch must not fail for it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["describe", "short_repr", "text_of"]


def text_of(error: BaseException) -> str:
    """``str(error)``, even for an exception whose ``__str__`` raises.

    Example:
        >>> class Mute(Exception):
        ...     def __str__(self):
        ...         raise RuntimeError("no")
        >>> text_of(Mute())
        '<str() raised RuntimeError>'
    """
    try:
        return str(error)
    except Exception as failure:
        return f"<str() raised {type(failure).__name__}>"


def describe(error: BaseException) -> str:
    """``"Type: message"`` for messages that quote a user's exception.

    Example:
        >>> describe(KeyError("k"))
        "KeyError: 'k'"
    """
    return f"{type(error).__name__}: {text_of(error)}"


def short_repr(value: Any, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters, even when that ``repr`` raises.

    Example:
        >>> short_repr("x" * 100, limit=10)
        "'xxxxxx..."
        >>> class Mute:
        ...     def __repr__(self):
        ...         raise RuntimeError("no")
        >>> short_repr(Mute())
        '<Mute object: repr() raised RuntimeError>'
    """
    try:
        text = repr(value)
    except Exception as failure:
        text = f"<{type(value).__name__} object: repr() raised {type(failure).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."
