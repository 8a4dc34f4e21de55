"""One batch from start to end: a Source, an Engine, a driver, and the Observer.

``Plan`` is everything a batch needs, built and checked before any work starts;
``batch`` and ``abatch`` run it, blocking or inside an event loop, through the same
engine set-up, so the two can never drift apart.
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Callable, Generator
from dataclasses import dataclass
from typing import Any

from poolkit._policies import Policies
from poolkit._results import Err, Ok, Results

from ._backend import Backend
from ._drive import adrive, drive
from ._engine import Engine, Hooks, Source
from ._inbox import AsyncInbox, SyncInbox
from ._observe import Observer
from ._task import Job, OkRun
from ._waits import future_result

__all__ = ["Collector", "Plan", "abatch", "acollect", "batch", "collect"]


@dataclass(frozen=True, slots=True)
class Plan:
    """A batch, ready to run: what runs, on what, under which policies, watched by whom."""

    backend: Backend
    job: Job
    items: Any
    policies: Policies
    observer: Observer
    hooks: Hooks
    ordered: bool = False
    release: Callable[[], None] = lambda: None
    """Undoes what linking the batch set up (called once its driving ends)."""
    at_home: bool = False
    """``collect`` may drive the engine on the backend's own loop (``run_at_home``):
    nothing in the batch needs the caller's thread (no hook, no progress, no iterator
    to pull: the input is sized), nor the engine awake while a coroutine blocks that
    loop (no deadline, timeout or token)."""


def batch(plan: Plan) -> Generator[Ok[Any] | Err, None, None]:
    """Yield the batch's Results (as completed, or in input order when ``ordered``)."""
    outputs = _outputs(plan)
    # Nothing here holds what was yielded once it is out (a local would, until the next
    # is asked for): a consumer that lets each Result go holds one value at a time.
    box: list[Ok[Any] | Err] = []
    try:
        for output in outputs:
            if type(output) is OkRun:
                yield from output.hand_over()
            else:
                box.append(output)  # type: ignore[arg-type]
                del output
                yield box.pop()
    finally:
        outputs.close()


def _outputs(plan: Plan) -> Generator[Ok[Any] | Err | OkRun, None, None]:
    """What the engine emits (Results, and runs of Oks from its bulk lane), observed."""
    inbox = SyncInbox()
    engine, unsubscribe = _engine(inbox, plan)
    observer = plan.observer
    try:
        if observer.idle:
            yield from drive(engine, inbox)
        else:
            box: list[Ok[Any] | Err | OkRun] = []
            for output in drive(engine, inbox):
                _observe(observer, output)
                box.append(output)
                del output  # (see batch)
                yield box.pop()
    finally:
        unsubscribe()
        plan.release()
        observer.close()


async def abatch(plan: Plan) -> AsyncIterator[Ok[Any] | Err]:
    """The same as ``batch``, inside the running event loop."""
    outputs = _aoutputs(plan)
    box: list[Ok[Any] | Err] = []  # (see batch)
    try:
        async for output in outputs:
            if type(output) is OkRun:
                run = output
                del output
                for result in run.hand_over():
                    box.append(result)
                    del result
                    yield box.pop()
            else:
                box.append(output)  # type: ignore[arg-type]
                del output
                yield box.pop()
    finally:
        await outputs.aclose()  # type: ignore[attr-defined]


async def _aoutputs(plan: Plan) -> AsyncIterator[Ok[Any] | Err | OkRun]:
    """``_outputs`` inside the running event loop."""
    import asyncio

    inbox = AsyncInbox(asyncio.get_running_loop())
    engine, unsubscribe = _engine(inbox, plan)
    observer = plan.observer
    idle = observer.idle
    try:
        box: list[Ok[Any] | Err | OkRun] = []  # (see batch)
        async for output in adrive(engine, inbox):
            if not idle:
                _observe(observer, output)
            box.append(output)
            del output
            yield box.pop()
    finally:
        unsubscribe()
        plan.release()
        observer.close()


def _observe(observer: Observer, output: Ok[Any] | Err | OkRun) -> None:
    if isinstance(output, OkRun):
        for result in output.results():
            observer(result)
    else:
        observer(output)


def _engine(inbox: SyncInbox | AsyncInbox, plan: Plan) -> tuple[Engine, Callable[[], None]]:
    """The batch's engine, and how to stop its CancelToken from waking it."""
    engine = Engine(
        Source(plan.items, plan.job, inbox),
        plan.backend,
        plan.policies,
        ordered=plan.ordered,
        hooks=plan.hooks,
        hook_errors=plan.observer.errors,
    )
    cancel = plan.policies.cancel
    if cancel is None:
        return engine, _nothing
    return engine, cancel._subscribe(lambda: inbox.put(None))


def _nothing() -> None:
    pass


class Collector:
    """Places Results by index, whatever order they arrive in; ``results()`` at the end."""

    __slots__ = ("_out", "_started")

    def __init__(self) -> None:
        self._out: Results[Any] = Results()
        self._started = time.monotonic()

    def add(self, output: Ok[Any] | Err | OkRun) -> None:
        if type(output) is OkRun:
            self._out._place_run(output.first, output.items, output.values, output.elapsed)
        else:
            self._out._place(output)  # type: ignore[arg-type]

    def results(self, observer: Observer) -> Results[Any]:
        """The batch's Results; raises HookError (holding them) if a hook raised."""
        final = self._out
        final.wall_time = time.monotonic() - self._started
        observer.raise_hook_error(final)
        return final


def collect(plan: Plan) -> Results[Any]:
    """Run a batch to its end and return its Results, in input order."""
    if plan.at_home:
        at_home = _collect_at_home(plan)
        if at_home is not None:
            return at_home
    collector = Collector()
    add = collector.add
    results = _outputs(plan)
    try:
        for result in results:
            add(result)
    finally:
        results.close()
    return collector.results(plan.observer)


def _collect_at_home(plan: Plan) -> Results[Any] | None:
    """``collect`` with the engine on the backend's own loop, beside the attempts, while
    the caller's thread waits; None when the backend has no loop of its own."""
    ended = threading.Event()

    async def driven() -> Results[Any]:
        try:
            return await acollect(plan)
        finally:
            ended.set()

    future = plan.backend.run_at_home(plan.job, driven)
    if future is None:
        return None
    try:
        return future_result(future)  # (Ctrl-C always interrupts it: see ``_waits``)
    except BaseException:
        # Interrupted (KeyboardInterrupt): the engine aborts on its loop, stopping what
        # runs. Wait for that a moment, never for a loop a coroutine blocks.
        future.cancel()
        ended.wait(_ABORT_WAIT)
        raise


_ABORT_WAIT = 0.25


async def acollect(plan: Plan) -> Results[Any]:
    """``collect`` inside the running event loop."""
    collector = Collector()
    results = _aoutputs(plan)
    try:
        async for result in results:
            collector.add(result)
    finally:
        await results.aclose()  # type: ignore[attr-defined]
    return collector.results(plan.observer)
