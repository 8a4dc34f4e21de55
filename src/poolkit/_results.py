"""The outcome of one item (``Ok``/``Err``) and of a batch (``Results``)."""

from __future__ import annotations

import threading
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Literal, NoReturn, TypeAlias, TypeVar, overload

from poolkit._errors import add_note_anyway
from poolkit._quote import short_repr

if TYPE_CHECKING:
    from ._summary import Summary

__all__ = ["Err", "Ok", "Result", "Results"]

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)
D = TypeVar("D")


@dataclass(frozen=True, slots=True, match_args=False, repr=False)
class Ok(Generic[T_co]):
    """An item whose function returned ``value``.

    Fields: ``value``, ``item`` (the input), ``index`` (its position in the input),
    ``attempts`` (how many attempts ran) and ``elapsed`` (seconds from the first
    attempt's start to the result, backoff included).

    Examples:
        >>> r = Ok(4, item=2, index=0, attempts=1, elapsed=0.01)
        >>> match r:
        ...     case Ok(value):
        ...         print(value)
        4
        >>> r.unwrap(), r.is_ok()
        (4, True)
    """

    value: T_co
    item: Any = None
    index: int = 0
    attempts: int = 1
    elapsed: float = 0.0

    __match_args__ = ("value",)

    def is_ok(self) -> Literal[True]:
        """True: this is an ``Ok``."""
        return True

    def is_err(self) -> Literal[False]:
        """False: this is not an ``Err``."""
        return False

    def unwrap(self) -> T_co:
        """Return the value."""
        return self.value

    def unwrap_or(self, default: object) -> T_co:
        """Return the value (``default`` is used only by ``Err``)."""
        return self.value

    def __repr__(self) -> str:
        return (
            f"Ok({self.value!r}, item={self.item!r}, index={self.index}, "
            f"attempts={self.attempts}, elapsed={self.elapsed:.6f})"
        )


@dataclass(frozen=True, slots=True, match_args=False, repr=False, eq=False)
class Err:
    """An item that failed with ``error`` (the exception instance).

    Fields as for ``Ok``: ``item``, ``index``, ``attempts``, ``elapsed``. An item that
    never started (cut short by a deadline, fail-fast or cancel) has ``attempts == 0``.

    Examples:
        >>> r = Err(ValueError("bad"), item="x", index=3, attempts=2, elapsed=0.5)
        >>> match r:
        ...     case Err(error):
        ...         print(type(error).__name__)
        ValueError
        >>> r.unwrap_or(None) is None
        True
    """

    error: BaseException
    item: Any = None
    index: int = 0
    attempts: int = 1
    elapsed: float = 0.0

    __match_args__ = ("error",)

    def is_ok(self) -> Literal[False]:
        """False: this is not an ``Ok``."""
        return False

    def is_err(self) -> Literal[True]:
        """True: this is an ``Err``."""
        return True

    def unwrap(self) -> NoReturn:
        """Raise the error."""
        raise self.error

    def unwrap_or(self, default: D) -> D:
        """Return ``default``."""
        return default

    def __eq__(self, other: object) -> bool:
        # Exceptions compare by identity; two Errs are equal when they failed the same way.
        if not isinstance(other, Err):
            return NotImplemented
        return (
            type(self.error) is type(other.error)
            and self.error.args == other.error.args
            and (self.item, self.index, self.attempts) == (other.item, other.index, other.attempts)
        )

    def __hash__(self) -> int:
        return hash((type(self.error), self.index, self.attempts))

    def __repr__(self) -> str:
        return (
            f"Err({self.error!r}, item={self.item!r}, index={self.index}, "
            f"attempts={self.attempts}, elapsed={self.elapsed:.6f})"
        )


Result: TypeAlias = Ok[T] | Err
"""The outcome of one item: ``Ok[T] | Err``."""


_COUNTING = array("q")  # 0, 1, 2, …: the index column of runs is copied from it
_GROWING = threading.Lock()


def _positions(first: int, end: int) -> array[int]:
    """``array("q", range(first, end))`` at memcpy speed: a slice of ``_COUNTING``,
    grown (doubling) as larger batches come (building one from a range costs ~80 ns
    per item, a large share of a trivial item's whole cost in the bulk lane)."""
    if end > len(_COUNTING):
        with _GROWING:  # two batches in two threads must not both append the same numbers
            have = len(_COUNTING)
            if end > have:
                _COUNTING.extend(range(have, max(end, 2 * have, 4096)))
    return _COUNTING[first:end]


class Results(Sequence[Ok[T] | Err]):
    """The Results of a batch, one per item, in input order.

    Stored by column (values, items, and compact arrays of indexes, attempts and
    times), so a million Results cost a fraction of a million ``Ok`` objects; each
    ``Ok``/``Err`` is made when you read it (equal to the one ``on_result`` saw, not
    the same object).

    Examples:
        >>> import poolkit
        >>> rs = poolkit.run_all(lambda x: 10 // x, [1, 0, 5], mode="serial")
        >>> rs.values
        [10, 2]
        >>> [type(e.error).__name__ for e in rs.errs]
        ['ZeroDivisionError']
        >>> rs.all_ok
        False
    """

    __slots__ = ("_attempts", "_elapsed", "_errors", "_index", "_items", "_values", "wall_time")

    def __init__(self, results: Sequence[Ok[T] | Err] = (), *, wall_time: float = 0.0) -> None:
        self._values: list[Any] = []
        self._items: list[Any] = []
        self._index = array("q")
        self._attempts = array("I")
        self._elapsed = array("d")
        self._errors: dict[int, BaseException] = {}
        self.wall_time = wall_time
        """Seconds from the start of the batch to its end."""
        for result in results:
            self._append(result)

    def _append(self, result: Ok[T] | Err) -> None:
        if isinstance(result, Ok):
            self._values.append(result.value)
        elif isinstance(result, Err):
            self._errors[len(self._values)] = result.error
            self._values.append(None)
        else:
            raise TypeError(f"Results holds Ok and Err, not {type(result).__name__}")
        self._items.append(result.item)
        self._index.append(result.index)
        self._attempts.append(result.attempts)
        self._elapsed.append(result.elapsed)

    def _place(self, result: Ok[T] | Err) -> None:
        """Put ``result`` at its own index: a batch's results arrive out of order, and
        the room left before it is filled by the results still to come."""
        position = result.index
        count = len(self._values)
        if position == count:  # in order: the common case
            self._append(result)
            return
        if position > count:
            self._make_room(position + 1 - count)
        if isinstance(result, Ok):
            self._values[position] = result.value
            self._errors.pop(position, None)
        else:
            self._values[position] = None
            self._errors[position] = result.error
        self._items[position] = result.item
        self._index[position] = result.index
        self._attempts[position] = result.attempts
        self._elapsed[position] = result.elapsed

    def _make_room(self, room: int) -> None:
        """``room`` more places at the end, to be filled by results still to come."""
        self._values.extend([None] * room)
        self._items.extend([None] * room)
        self._index.extend(array("q", [0]) * room)
        self._attempts.extend(array("I", [0]) * room)
        self._elapsed.extend(array("d", [0.0]) * room)

    def _place_run(
        self, first: int, items: list[Any], values: list[Any], elapsed: Sequence[float]
    ) -> None:
        """Put consecutive first-attempt Oks at ``first …`` in one step (the bulk lane)."""
        count = len(values)
        end = first + count
        size = len(self._values)
        if type(elapsed) is not array:
            elapsed = array("d", elapsed)
        if first == size:  # in order: the common case
            self._values.extend(values)
            self._items.extend(items)
            self._index.extend(_positions(first, end))
            self._attempts.extend(array("I", [1]) * count)
            self._elapsed.extend(elapsed)
            return
        if end > size:
            self._make_room(end - size)
        self._values[first:end] = values
        self._items[first:end] = items
        self._index[first:end] = _positions(first, end)
        self._attempts[first:end] = array("I", [1]) * count
        self._elapsed[first:end] = elapsed
        if self._errors:
            for position in range(first, end):
                self._errors.pop(position, None)

    def _at(self, position: int) -> Ok[T] | Err:
        fields = (
            self._items[position],
            self._index[position],
            self._attempts[position],
            self._elapsed[position],
        )
        error = self._errors.get(position)
        if error is None:
            return Ok(self._values[position], *fields)
        return Err(error, *fields)

    @overload
    def __getitem__(self, index: int) -> Ok[T] | Err: ...
    @overload
    def __getitem__(self, index: slice) -> Results[T]: ...
    def __getitem__(self, index: int | slice) -> Ok[T] | Err | Results[T]:
        if isinstance(index, slice):
            part: Results[T] = Results(wall_time=self.wall_time)
            positions = range(len(self._values))[index]
            part._values = self._values[index]
            part._items = self._items[index]
            part._index = self._index[index]
            part._attempts = self._attempts[index]
            part._elapsed = self._elapsed[index]
            part._errors = {
                new: self._errors[old] for new, old in enumerate(positions) if old in self._errors
            }
            return part
        count = len(self._values)
        position = index + count if index < 0 else index
        if not 0 <= position < count:
            raise IndexError("Results index out of range")
        return self._at(position)

    def __len__(self) -> int:
        return len(self._values)

    def __iter__(self) -> Iterator[Ok[T] | Err]:
        at = self._at
        return (at(position) for position in range(len(self._values)))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Results | list):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        count = len(self._values)
        failed = len(self._errors)
        return f"<Results: {count} items, {count - failed} ok, {failed} err>"

    @property
    def oks(self) -> list[Ok[T]]:
        """The ``Ok`` results, in input order."""
        errors, at = self._errors, self._at
        return [at(p) for p in range(len(self._values)) if p not in errors]  # type: ignore[misc]

    @property
    def errs(self) -> list[Err]:
        """The ``Err`` results, in input order."""
        at = self._at
        return [at(p) for p in sorted(self._errors)]  # type: ignore[misc]

    @property
    def values(self) -> list[T]:
        """The values of the ``Ok`` results, in input order."""
        if not self._errors:
            return list(self._values)
        errors = self._errors
        return [v for p, v in enumerate(self._values) if p not in errors]

    def pairs(self) -> list[tuple[Any, T]]:
        """``(item, value)`` of each ``Ok``, in input order.

        Use it instead of ``zip(items, results.values)``, which mispairs as soon as
        one item failed (``values`` leaves the failures out).

        Examples:
            >>> import poolkit
            >>> poolkit.run_all(lambda x: 10 // x, [1, 0, 5], mode="serial").pairs()
            [(1, 10), (5, 2)]
        """
        errors = self._errors
        return [
            (item, value)
            for p, (item, value) in enumerate(zip(self._items, self._values, strict=True))
            if p not in errors
        ]

    @property
    def all_ok(self) -> bool:
        """True when every item succeeded (and for an empty batch)."""
        return not self._errors

    def raise_errors(self) -> None:
        """Raise an ``ExceptionGroup`` of the errors when any item failed.

        Examples:
            >>> Results([Ok(1)]).raise_errors() is None
            True
        """
        failed = self.errs
        if not failed:
            return
        errors = []
        for result in failed:
            add_note_anyway(
                result.error, f"poolkit: item #{result.index} ({short_repr(result.item)}) failed"
            )
            errors.append(result.error)
        exceptions = [e for e in errors if isinstance(e, Exception)]
        message = f"{len(errors)} of {len(self)} items failed"
        if len(exceptions) == len(errors):
            raise ExceptionGroup(message, exceptions)
        raise BaseExceptionGroup(message, errors)

    def summary(self) -> Summary:
        """Counts by outcome and error type, attempts, wall time, rate and latency.

        ``str()`` of the summary is a readable table.

        Examples:
            >>> s = Results([Ok(1, elapsed=0.1), Err(KeyError("k"), elapsed=0.3)]).summary()
            >>> s.ok, s.err, s.errors_by_type
            (1, 1, {'KeyError': 1})
        """
        from ._summary import Summary

        return Summary.of(list(self), wall_time=self.wall_time)
