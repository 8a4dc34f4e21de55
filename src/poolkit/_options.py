"""The modes, the options each takes, and the checks run before any work starts.

This module is the one list of modes (``MODES``) and of option names: each mode's
options are a ``TypedDict`` (so a typo is a type error for mypy and pyright), and the
name lists the runtime checks use are derived from those TypedDicts, never copied.
Every message says what was wrong and what is accepted.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypedDict, get_args

from ._policies import POLICY_NAMES, CancelToken, RateLimit, Retry

if TYPE_CHECKING:
    from ._progress import Progress

__all__ = [
    "CALL_OPTION_NAMES",
    "MODES",
    "MODE_OPTIONS",
    "AnyRunnerOptions",
    "AsyncOptions",
    "CallOptions",
    "DaskOptions",
    "ExtraCallOptions",
    "ModeName",
    "OnTimeout",
    "PolicyOptions",
    "ProcessOptions",
    "ProgressArg",
    "RunnerOptions",
    "check_callable",
    "check_hook",
    "check_items",
    "check_mode",
    "check_mode_options",
    "check_workers",
    "default_workers",
    "engine_may_leave_caller",
]

ModeName = Literal["serial", "thread", "process", "async", "dask"]

ProgressArg = bool | Literal["force"] | Callable[["Progress"], object] | Any
"""``progress=``: True, False, "force", a tqdm class or instance, or a callable of Progress."""


class PolicyOptions(TypedDict, total=False):
    """The policies, accepted by every call and every runner (defaults for its calls)."""

    retry: Retry | None
    timeout: float | None
    deadline: float | None
    fail_fast: bool
    cancel: CancelToken | None
    rate_limit: RateLimit | float | None
    max_in_flight: int | None


class HookOptions(TypedDict, total=False):
    """The hooks a call takes (``on_start``/``on_retry`` are called in the engine's thread)."""

    on_start: Callable[[Any, int], object] | None
    on_retry: Callable[[Any, int, BaseException, float], object] | None


class CallOptions(PolicyOptions, HookOptions, total=False):
    """What one call on a runner takes besides ``fn``, ``items``, ``ordered`` and ``star``."""

    progress: ProgressArg
    on_result: Callable[[Any], object] | None


class WorkerSetup(TypedDict, total=False):
    """Per-worker set-up, taken by every mode."""

    initializer: Callable[..., object] | None
    initargs: Sequence[Any]


class ProcessSetup(WorkerSetup, total=False):
    """Process mode's own options."""

    max_tasks_per_child: int | None
    start_method: Literal["fork", "forkserver", "spawn"] | None
    chunksize: int | None
    initializer_timeout: float | None


OnTimeout = Literal["interrupt", "restart-worker"]
"""What dask mode does to the worker thread of a task it abandoned (see docs/dask.md)."""


class DaskSetup(WorkerSetup, total=False):
    """Dask mode's own options: where the cluster is, and how tasks are sent to it."""

    client: Any
    address: str | None
    security: Any
    chunksize: int | None
    resources: dict[str, float] | None
    placement: Sequence[str] | str | None
    priority: int
    no_workers_timeout: float
    on_timeout: OnTimeout


class ModeSetup(ProcessSetup, DaskSetup, total=False):
    """Every mode's own options, as the one-call functions accept them."""


class ExtraCallOptions(ModeSetup, HookOptions, total=False):
    """What ``run_all`` & co. take besides their named parameters."""


class RunnerOptions(PolicyOptions, WorkerSetup, total=False):
    """``poolkit.runner("serial" | "thread" | "async", ...)``'s options."""


AsyncOptions = RunnerOptions


class ProcessOptions(PolicyOptions, ProcessSetup, total=False):
    """``poolkit.runner("process", ...)``'s options."""


class DaskOptions(PolicyOptions, DaskSetup, total=False):
    """``poolkit.runner("dask", ...)``'s options."""


class AnyRunnerOptions(PolicyOptions, ModeSetup, total=False):
    """``poolkit.runner(mode, ...)``'s options when the mode is only known as a ``str``."""


_OPTIONS_OF: dict[str, type[Any]] = {
    "serial": WorkerSetup,
    "thread": WorkerSetup,
    "process": ProcessSetup,
    "async": WorkerSetup,
    "dask": DaskSetup,
}

MODES: tuple[str, ...] = tuple(_OPTIONS_OF)
"""The built-in modes, in the order the docs list them."""

MODE_OPTIONS: dict[str, tuple[str, ...]] = {
    mode: tuple(sorted(options.__optional_keys__)) for mode, options in _OPTIONS_OF.items()
}
"""Each mode's own option names (derived from its TypedDict; policies aside)."""

CALL_OPTION_NAMES: tuple[str, ...] = tuple(sorted(CallOptions.__optional_keys__))
"""Every keyword a call takes besides ``fn``, ``items`` and the mode."""

_TIED_TO_THE_CALLER = (
    *("on_result", "on_start", "on_retry", "progress"),
    *("timeout", "deadline", "cancel"),
)


def engine_may_leave_caller(options: dict[str, Any]) -> bool:
    """True when none of a call's ``options`` (with the runner's defaults) needs the
    engine in the caller's thread (a hook, a progress display) or awake while a
    coroutine blocks the event loop (a timeout, a deadline, a cancel token).

    Example:
        >>> engine_may_leave_caller({"retry": 3, "timeout": None})
        True
        >>> engine_may_leave_caller({"deadline": 5.0})
        False
    """
    return not any(options.get(name) for name in _TIED_TO_THE_CALLER)


def check_mode(mode: object) -> str:
    """The mode name, or a ValueError that lists the modes."""
    if isinstance(mode, str) and mode in MODES:
        return mode
    raise ValueError(
        f"unknown mode {mode!r}; expected one of {', '.join(repr(m) for m in MODES)} "
        "or a Runner instance (poolkit.runner(...) or poolkit.ExecutorRunner(...))"
    )


def check_workers(workers: object) -> int | None:
    """``workers`` as given (an int >= 1) or None for the mode's default."""
    if workers is None:
        return None
    if isinstance(workers, bool) or not isinstance(workers, int):
        raise TypeError(f"workers={workers!r}: expected an int >= 1 or None for the default")
    if workers < 1:
        raise ValueError(f"workers={workers}: expected an int >= 1 or None for the default")
    return workers


def default_workers(mode: str) -> int:
    """The default width: CPUs for CPU-bound modes, more for I/O-bound ones."""
    cpus = os.cpu_count() or 1
    return {"serial": 1, "thread": min(32, cpus + 4), "async": 64}.get(mode, cpus)


def check_callable(fn: object) -> Callable[..., Any]:
    """``fn`` when it is callable."""
    if not callable(fn):
        raise TypeError(f"fn={fn!r} is not callable; expected a function of one argument")
    return fn


def check_items(items: object) -> None:
    """Raise TypeError unless ``items`` is iterable."""
    try:
        iter(items)  # type: ignore[call-overload]
    except TypeError:
        raise TypeError(
            f"items={items!r} is not iterable; expected a list, a generator or any iterable"
        ) from None


def check_hook(name: str, hook: object) -> Callable[..., Any] | None:
    """``hook`` when it is None or callable."""
    if hook is not None and not callable(hook):
        raise TypeError(f"{name}={hook!r}: expected a callable or None")
    return hook


def _positive_int(name: str, value: object, none_means: str) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name}={value!r}: expected an int >= 1 or None ({none_means})")
    if value < 1:
        raise ValueError(f"{name}={value!r}: expected an int >= 1 or None ({none_means})")


def check_mode_options(mode: str, options: dict[str, Any]) -> None:
    """Check a mode's own options when the runner is built, not at first use."""
    accepted = MODE_OPTIONS[mode]
    unknown = sorted(k for k in options if k not in accepted)
    if unknown:
        raise TypeError(
            f"mode {mode!r} got unexpected option(s) {', '.join(unknown)}; it takes "
            f"{', '.join(accepted)} and the policies {', '.join(POLICY_NAMES)}"
        )
    check_hook("initializer", options.get("initializer"))
    initargs = options.get("initargs", ())
    if isinstance(initargs, str | bytes) or not isinstance(initargs, Sequence):
        raise TypeError(f"initargs={initargs!r}: expected a tuple of arguments for initializer")
    _positive_int("chunksize", options.get("chunksize"), "None: sized automatically")
    _positive_int("max_tasks_per_child", options.get("max_tasks_per_child"), "None: no limit")
    limit = options.get("initializer_timeout")
    if limit is not None and (
        isinstance(limit, bool) or not isinstance(limit, int | float) or not limit > 0
    ):
        raise ValueError(f"initializer_timeout={limit!r}: expected seconds > 0, or None")
    method = options.get("start_method")
    if method is not None:
        import multiprocessing  # only when asked: `import poolkit` stays fast

        available = multiprocessing.get_all_start_methods()
    if method is not None and method not in available:
        methods = ", ".join(repr(m) for m in available)
        raise ValueError(f"start_method={method!r}: expected one of {methods}, or None")
    if options.get("client") is not None and options.get("address") is not None:
        raise ValueError("give dask mode a client= or an address=, not both")
    on_timeout = options.get("on_timeout", "interrupt")
    if on_timeout not in get_args(OnTimeout):
        raise ValueError(
            f"on_timeout={on_timeout!r}: expected 'interrupt' (raise in the worker thread) "
            "or 'restart-worker' (restart it through its nanny)"
        )
