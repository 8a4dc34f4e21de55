"""poolkit's exceptions.

The tree::

    Exception
     └── PoolkitError
          ├── TaskTimeout (also TimeoutError)      one attempt ran past ``timeout``
          ├── DeadlineExceeded (also TimeoutError) the batch ran past ``deadline``
          ├── Cancelled                            fail-fast or a CancelToken stopped the item
          ├── WorkerCrashed                        the process running the item died
          ├── HookError                            a hook (``on_result``, ...) raised
          └── RemoteError                          a remote exception that could not be rebuilt here

``RemoteTraceback`` is attached as ``__cause__`` of an exception raised in another
process, so the traceback printed by Python shows where it was raised.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = [
    "Cancelled",
    "DeadlineExceeded",
    "HookError",
    "PoolkitError",
    "RemoteError",
    "RemoteTraceback",
    "TaskTimeout",
    "WorkerCrashed",
]


class PoolkitError(Exception):
    """Base class of every error poolkit itself produces.

    Examples:
        >>> issubclass(TaskTimeout, PoolkitError)
        True
    """


class TaskTimeout(PoolkitError, TimeoutError):
    """One attempt ran longer than ``timeout`` seconds.

    ``stopped`` is True when the running call was actually stopped (process mode
    kills the worker, async mode cancels the task) and False when it could only be
    abandoned (thread and dask modes: the call runs on, its result is ignored).

    Examples:
        >>> err = TaskTimeout(2.0, stopped=True)
        >>> str(err)
        'attempt timed out after 2.0 s (the call was stopped)'
    """

    def __init__(self, timeout: float, *, stopped: bool) -> None:
        how = "the call was stopped" if stopped else "the call was abandoned and may still run"
        super().__init__(f"attempt timed out after {timeout} s ({how})")
        self.timeout = timeout
        self.stopped = stopped

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_timeout, (self.timeout, self.stopped))


def _rebuild_timeout(timeout: float, stopped: bool) -> TaskTimeout:
    return TaskTimeout(timeout, stopped=stopped)


class DeadlineExceeded(PoolkitError, TimeoutError):
    """The batch's ``deadline`` passed before this item finished.

    Examples:
        >>> isinstance(DeadlineExceeded("deadline of 5 s passed"), TimeoutError)
        True
    """


class Cancelled(PoolkitError):
    """The item was cut short by ``fail_fast`` or a ``CancelToken``.

    Examples:
        >>> str(Cancelled("cancelled by fail_fast"))
        'cancelled by fail_fast'
    """


class WorkerCrashed(PoolkitError):
    """The worker process running the item died.

    ``exitcode`` is the process's exit status (negative for a signal, as in
    ``multiprocessing``), ``signal`` the signal number when it was killed by one,
    and ``pid`` the process id.

    Examples:
        >>> err = WorkerCrashed(exitcode=-9, pid=1234)
        >>> err.signal
        9
        >>> str(err)
        'worker process 1234 died while running the item (killed by signal 9, SIGKILL)'
    """

    def __init__(self, *, exitcode: int | None, pid: int | None, detail: str = "") -> None:
        self.exitcode = exitcode
        self.pid = pid
        self.signal = -exitcode if exitcode is not None and exitcode < 0 else None
        self.detail = detail
        super().__init__(self._describe())

    def _describe(self) -> str:
        import signal as _signal

        if self.signal is not None:
            try:
                name = _signal.Signals(self.signal).name
            except ValueError:
                name = "unknown signal"
            how = f"killed by signal {self.signal}, {name}"
        elif self.exitcode is not None:
            how = f"exit code {self.exitcode}"
        else:
            how = "lost"
        who = f"worker process {self.pid}" if self.pid is not None else "the worker"
        text = f"{who} died while running the item ({how})"
        return f"{text}: {self.detail}" if self.detail else text

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_crash, (self.exitcode, self.pid, self.detail))


def _rebuild_crash(exitcode: int | None, pid: int | None, detail: str) -> WorkerCrashed:
    return WorkerCrashed(exitcode=exitcode, pid=pid, detail=detail)


class HookError(PoolkitError):
    """A hook (``on_result``, ``on_start``, ``on_retry`` or a progress callable) raised.

    The batch still ran to its end: ``results`` holds the complete Results, and
    ``__cause__`` is the first exception the hook raised.

    Examples:
        >>> err = HookError("on_result", results=[])
        >>> str(err)
        'the on_result hook raised; the batch ran to its end and its results are in .results'
    """

    def __init__(self, hook: str, *, results: Sequence[Any]) -> None:
        super().__init__(
            f"the {hook} hook raised; the batch ran to its end and its results are in .results"
        )
        self.hook = hook
        self.results = results


class RemoteError(PoolkitError):
    """An exception raised in a worker process that could not be rebuilt here.

    It keeps what could be carried: the exception's type name, its message and the
    remote traceback text.

    Examples:
        >>> err = RemoteError("mymodule.OddError", "bad thing", "Traceback ...")
        >>> str(err)
        'mymodule.OddError: bad thing'
    """

    def __init__(self, type_name: str, message: str, traceback: str) -> None:
        super().__init__(f"{type_name}: {message}")
        self.type_name = type_name
        self.message = message
        self.traceback = traceback

    def __reduce__(self) -> tuple[Any, ...]:
        return (RemoteError, (self.type_name, self.message, self.traceback))


class RemoteTraceback(Exception):
    """The traceback text of an exception raised in another process.

    Attached as ``__cause__`` of the rebuilt exception so that printing it shows
    where the error happened.

    Examples:
        >>> RemoteTraceback("Traceback (most recent call last): ...").text
        'Traceback (most recent call last): ...'
    """

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return f'\n"""\n{self.text}\n"""'


def set_anyway(error: BaseException, name: str, value: Any) -> bool:
    """Set an attribute on a user's exception even past a ``__setattr__`` that refuses
    (a frozen dataclass refuses ``__cause__`` and ``__notes__`` too); False when even
    that fails. poolkit decorates exceptions it did not create; that must never raise.

    Example:
        >>> import dataclasses
        >>> @dataclasses.dataclass(frozen=True)
        ... class Frozen(Exception):
        ...     code: int
        >>> error = Frozen(7)
        >>> set_anyway(error, "__cause__", KeyError("why")), repr(error.__cause__)
        (True, "KeyError('why')")
    """
    try:
        object.__setattr__(error, name, value)
    except Exception:
        return False
    return True


def add_note_anyway(error: BaseException, note: str) -> None:
    """``error.add_note(note)``, once, even on an exception that refuses attributes.

    Example:
        >>> error = ValueError("bad")
        >>> add_note_anyway(error, "item #3"); add_note_anyway(error, "item #3")
        >>> error.__notes__
        ['item #3']
    """
    notes = getattr(error, "__notes__", None)
    if isinstance(notes, list):
        if note not in notes:
            notes.append(note)
        return
    try:
        error.add_note(note)
    except Exception:
        set_anyway(error, "__notes__", [note])
