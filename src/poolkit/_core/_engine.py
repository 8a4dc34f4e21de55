"""The engine: decides, for one batch, what starts when and what each item's Result is.

It does no I/O and never blocks: a driver (``_drive.py``) feeds it completions from
an inbox and asks it when it next needs to wake. Everything that makes poolkit's
promises hold in every mode lives here: lazy bounded consumption of the input,
retries scheduled outside the workers, per-attempt timeouts, the batch deadline,
fail-fast, cancellation, the rate limit, and exactly one Result per item.
"""

from __future__ import annotations

import heapq
import itertools
import logging
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from poolkit._errors import Cancelled, DeadlineExceeded, TaskTimeout, set_anyway
from poolkit._policies import Policies
from poolkit._quote import short_repr
from poolkit._results import Err, Ok

from ._backend import Backend
from ._clock import MONOTONIC, Clock
from ._task import Inbox, Job, OkRun, Run, RunDone, Task

__all__ = ["Engine", "Hooks", "Source", "StopOne"]

_FATAL = (KeyboardInterrupt, SystemExit)
log = logging.getLogger("poolkit")
log.addHandler(logging.NullHandler())  # a library is silent until its user configures logging


@dataclass(frozen=True, slots=True)
class Hooks:
    """Callbacks the engine calls in its own thread; the driver records what they raise."""

    on_start: Callable[[Any, int], Any] | None = None
    on_retry: Callable[[Any, int, BaseException, float], Any] | None = None


class Source:
    """Turns the user's items into Tasks, lazily.

    ``pull()`` returns the next Task, or None when nothing is available (``exhausted``
    tells whether anything ever will be). ``rest()`` yields the items never taken, for a
    sized input cut short (so that ``len(results) == len(items)``).
    """

    def __init__(self, items: Any, job: Job, reply: Inbox) -> None:
        self._iterator: Iterator[Any] = iter(items)
        self.sized = hasattr(items, "__len__")
        self.job = job
        self._reply = reply
        self.taken = 0
        self.exhausted = False

    def pull(self) -> Task | None:
        try:
            item = next(self._iterator)
        except StopIteration:
            self.exhausted = True
            return None
        task = Task(self.taken, item, self.job, self._reply)
        self.taken += 1
        return task

    def pull_run(self, most: int) -> Run | None:
        """The next ``most`` items (fewer at the end) as one Run; None when none are left."""
        items = list(itertools.islice(self._iterator, most))
        if len(items) < most:
            self.exhausted = True
        if not items:
            return None
        run = Run(self.taken, items, self.job, self._reply)
        self.taken += len(items)
        return run

    def rest(self) -> Iterator[Task]:
        """The tasks never taken, when the input is sized; nothing for a plain iterator."""
        self.exhausted = True
        if self.sized:
            for item in self._iterator:
                yield Task(self.taken, item, self.job, self._reply)
                self.taken += 1


class StopOne:
    """A message to the engine: end ``task`` now with ``Err(error)`` (stopping its attempt)."""

    __slots__ = ("error", "task")

    def __init__(self, task: Task, error: BaseException) -> None:
        self.task = task
        self.error = error


class Engine:
    """The state of one batch. Driven by ``pump()`` and ``deliver()``; results in ``out``."""

    def __init__(
        self,
        source: Source,
        backend: Backend,
        policies: Policies,
        *,
        ordered: bool = False,
        hooks: Hooks | None = None,
        hook_errors: list[tuple[str, BaseException]] | None = None,
        clock: Clock = MONOTONIC,
    ) -> None:
        self._source = source
        self._backend = backend
        self._capacity = backend.capacity
        if backend.queues and policies.rate_limit is None and (hooks is None or not hooks.on_start):
            # Bulk hand-over: the engine wakes per batch of completions, not per item. A
            # timeout counts from the start the worker reports (see ``_expire``); a rate
            # limit and an ``on_start`` hook need each start to be the engine's own.
            self._capacity = 1 << 30  # max_in_flight is the bound that matters
        self._retry = policies.retry
        self._timeout = policies.timeout
        self._fail_fast = policies.fail_fast
        self._cancel = policies.cancel
        # The bulk lane (see Run): only for a sized input, whose items all exist already;
        # a generator may be producing its items in answer to the results.
        self._bulk = (
            source.sized
            and backend.takes_runs(source.job)
            and policies.timeout is None
            and policies.rate_limit is None
            and (hooks is None or hooks.on_start is None)
            and not ordered
        )
        default_in_flight = backend.default_run_in_flight if self._bulk else None
        self._max_in_flight = (
            policies.max_in_flight or default_in_flight or backend.default_in_flight
        )
        # Runs are taken when this much room is free, not one item at a time.
        self._run_room = max(1, self._max_in_flight // 4)
        self._runs: set[Run] = set()
        self._now = clock.now
        now = self._now()
        self._deadline = policies.deadline
        self._deadline_at = None if policies.deadline is None else now + policies.deadline
        self._bucket = None if policies.rate_limit is None else policies.rate_limit.bucket(now)
        self._rate_wake: float | None = None
        hooks = hooks or Hooks()
        self._on_start = hooks.on_start
        self._on_retry = hooks.on_retry
        self.hook_errors = [] if hook_errors is None else hook_errors
        self._debug = log.isEnabledFor(logging.DEBUG)  # checked once: the per-item path stays lean

        self._ordered = ordered
        self._buffer: dict[int, Ok[Any] | Err] = {}
        self._next_out = 0
        self.out: deque[Ok[Any] | Err | OkRun] = deque()

        self._in_backend = 0
        self._live = 0  # taken and not yet finished (ordered: not yet emitted)
        self._running: set[Task] = set()
        self._ready: deque[Task] = deque()  # retries due now
        self._waiting: list[tuple[float, int, Task]] = []  # retries in backoff
        self._timers: list[tuple[float, int, Task, int]] = []  # attempt timeouts
        self._seq = itertools.count()
        self._stopped_by: Callable[[], BaseException] | None = None

    # -- the driver's interface -------------------------------------------------------

    @property
    def done(self) -> bool:
        """True when every item taken has its Result in ``out`` and no more will come."""
        return self._source.exhausted and self._live == 0

    def pump(self) -> float | None:
        """Do what is due now; return seconds until the engine must be pumped again."""
        now = self._now()
        if self._stopped_by is None:
            if self._cancel is not None and self._cancel.cancelled:
                reason = self._cancel.reason
                self._stop(lambda: Cancelled(reason), now)
            elif self._deadline_at is not None and now >= self._deadline_at:
                deadline = self._deadline
                self._stop(
                    lambda: DeadlineExceeded(f"the batch deadline of {deadline} s passed"), now
                )
        if self._timers:
            self._expire(now)
        if self._waiting:
            waiting = self._waiting
            while waiting and waiting[0][0] <= now:
                self._ready.append(heapq.heappop(waiting)[2])
        if self._stopped_by is None:
            self._fill(now)
        return self._wake_in(now)

    def deliver(self, messages: list[Any]) -> None:
        """Take completions posted by backends (tuples, lists of tuples, or None)."""
        now = self._now()
        for message in messages:
            if message is None:
                continue
            if type(message) is RunDone:
                self._run_done(message, now)
            elif type(message) is StopOne:
                self._stop_one(message.task, message.error, now)
            elif type(message) is list:
                for task, number, ok, payload in message:
                    self._complete(task, number, ok, payload, now)
            else:
                task, number, ok, payload = message
                self._complete(task, number, ok, payload, now)

    def abort(self) -> None:
        """Stop everything at once (the consumer left, or the caller was interrupted)."""
        running = list(self._running)
        self._running.clear()
        for task in running:
            task.running = False
        self._ready.clear()
        self._waiting.clear()
        self._timers.clear()
        self._source.exhausted = True
        if running:
            self._backend.stop(running)
        runs, self._runs = self._runs, set()
        if runs:
            self._backend.stop_runs(list(runs))

    # -- starting attempts ------------------------------------------------------------

    def _fill(self, now: float) -> None:
        if self._bulk:
            self._fill_runs(now)
        batch: list[Task] = []
        ready = self._ready
        source = self._source
        bucket = self._bucket
        timeout = self._timeout
        capacity = self._capacity
        self._rate_wake = None
        while self._in_backend < capacity:
            if ready:
                task = ready.popleft()
            elif not self._bulk and not source.exhausted and self._live < self._max_in_flight:
                pulled = source.pull()
                if pulled is None:
                    break
                task = pulled
                self._live += 1
            else:
                break
            if bucket is not None:
                wait = bucket.take(now)
                if wait > 0.0:
                    ready.appendleft(task)
                    self._rate_wake = now + wait
                    break
            task.attempts += 1
            if task.attempts == 1:
                task.first_start = now
            task.dispatched = now
            task.started = None
            task.running = True
            self._in_backend += 1
            self._running.add(task)
            if timeout is not None:
                heapq.heappush(self._timers, (now + timeout, next(self._seq), task, task.attempts))
            if self._on_start is not None:
                self._call_hook("on_start", self._on_start, task.item, task.attempts)
            batch.append(task)
        if batch:
            self._backend.start(batch)

    def _fill_runs(self, now: float) -> None:
        source = self._source
        while not source.exhausted:
            room = self._max_in_flight - self._live
            if room < self._run_room:
                return
            run = source.pull_run(room)
            if run is None:
                return
            run.dispatched = now
            self._live += len(run.items)
            self._runs.add(run)
            self._backend.start_run(run)

    def _wake_in(self, now: float) -> float | None:
        wake = self._deadline_at if self._stopped_by is None else None
        for candidate in (
            self._timers[0][0] if self._timers else None,
            self._waiting[0][0] if self._waiting else None,
            self._rate_wake if self._ready else None,
        ):
            if candidate is not None and (wake is None or candidate < wake):
                wake = candidate
        if self._ready and self._in_backend < self._capacity and self._rate_wake is None:
            return 0.0
        return None if wake is None else max(0.0, wake - now)

    # -- finishing attempts -----------------------------------------------------------

    def _complete(self, task: Task, number: int, ok: bool, payload: Any, now: float) -> None:
        if not task.running or task.attempts != number:
            return  # the engine gave up on this attempt already (timeout, stop)
        if number == 1:  # elapsed counts from when the item really began, not its hand-over
            started = task.started
            if started is not None and started > task.first_start:
                task.first_start = started
        # _end_attempt, inlined: this runs once per item
        task.running = False
        self._in_backend -= 1
        self._running.discard(task)
        if self._debug:
            outcome = "ok" if ok else f"failed: {short_repr(payload, 200)}"
            log.debug("item #%d attempt %d %s", task.index, number, outcome)
        if ok:
            result = Ok(payload, task.item, task.index, number, now - task.first_start)
            if self._ordered:
                self._finish(task, result)
            else:  # _finish's unordered path, inlined
                self.out.append(result)
                self._live -= 1
        else:
            if isinstance(payload, _FATAL):
                raise payload
            self._failed(task, payload, now)

    def _run_done(self, done: RunDone, now: float) -> None:
        run = done.run
        values = done.values
        count = len(values)
        run.remaining -= count
        if run.remaining <= 0:
            self._runs.discard(run)
        first = run.first + done.position
        items = run.items[done.position : done.position + count]
        failed = done.failed
        if self._debug:
            for k in range(count):
                outcome = (
                    f"failed: {short_repr(failed[k], 200)}" if failed and k in failed else "ok"
                )
                log.debug("item #%d attempt 1 %s", first + k, outcome)
        if not failed:
            self.out.append(OkRun(first, items, values, done.elapsed))
            self._live -= count
            return
        start = 0
        for k in sorted(failed):
            if k > start:
                self.out.append(
                    OkRun(first + start, items[start:k], values[start:k], done.elapsed[start:k])
                )
                self._live -= k - start
            start = k + 1
        if start < count:
            self.out.append(
                OkRun(first + start, items[start:], values[start:], done.elapsed[start:])
            )
            self._live -= count - start
        for k in sorted(failed):
            error = failed[k]
            if isinstance(error, _FATAL):
                raise error
            task = Task(first + k, items[k], run.job, run.reply)
            task.attempts = 1
            task.first_start = now - done.elapsed[k]
            if self._stopped_by is None:
                self._failed(task, error, now)
            else:  # it ran before the cut: no retry now. An error that would have been
                # retried is the cut's (as for an item waiting in backoff at the cut)
                if self._would_retry(error):
                    error = self._stopped_by()
                self._finish(task, Err(error, task.item, task.index, 1, done.elapsed[k]))

    def _end_attempt(self, task: Task) -> None:
        task.running = False
        self._in_backend -= 1
        self._running.discard(task)

    def _expire(self, now: float) -> None:
        timers = self._timers
        timeout = self._timeout
        assert timeout is not None
        while timers and timers[0][0] <= now:
            _, _, task, number = heapq.heappop(timers)
            if not task.running or task.attempts != number:
                continue
            started = self._backend.started_at(task)
            if started is None:  # still queued: whenever it starts, it ends no sooner
                heapq.heappush(timers, (now + timeout, next(self._seq), task, number))
                continue
            if started + timeout > now:
                heapq.heappush(timers, (started + timeout, next(self._seq), task, number))
                continue
            stopped = self._backend.can_stop(task)
            if self._debug:
                log.debug("item #%d attempt %d timed out after %s s", task.index, number, timeout)
            self._end_attempt(task)
            self._backend.stop([task])
            self._failed(task, TaskTimeout(timeout, stopped=stopped), now)

    def _would_retry(self, error: BaseException) -> bool:
        """True when the retry policy would run a first attempt failing so again."""
        try:
            return self._retry is not None and self._retry.should_retry(error, 1)
        except Exception:
            return False

    def _failed(self, task: Task, error: BaseException, now: float) -> None:
        retry = self._retry
        if retry is not None:
            try:
                again = retry.should_retry(error, task.attempts)
                wait = retry.wait(error, task.attempts) if again else 0.0
            except Exception as policy_error:
                set_anyway(policy_error, "__context__", error)
                error, again = policy_error, False
            if again:
                log.warning(
                    "item #%d (%s) attempt %d failed with %r; retrying in %.2f s",
                    task.index,
                    short_repr(task.item),
                    task.attempts,
                    error,
                    wait,
                )
                if self._on_retry is not None:
                    self._call_hook(
                        "on_retry", self._on_retry, task.item, task.attempts, error, wait
                    )
                if wait <= 0.0:
                    self._ready.append(task)
                else:
                    heapq.heappush(self._waiting, (now + wait, next(self._seq), task))
                return
        self._finish(task, Err(error, task.item, task.index, task.attempts, now - task.first_start))
        if self._fail_fast and self._stopped_by is None:
            self._stop(lambda: Cancelled("cancelled by fail_fast after another item failed"), now)

    def _finish(self, task: Task, result: Ok[Any] | Err) -> None:
        if not self._ordered:
            self.out.append(result)
            self._live -= 1
            return
        self._buffer[task.index] = result
        buffer = self._buffer
        while self._next_out in buffer:
            self.out.append(buffer.pop(self._next_out))
            self._next_out += 1
            self._live -= 1

    def _stop(self, make_error: Callable[[], BaseException], now: float) -> None:
        """Cut the batch short: every unfinished item gets ``make_error()``."""
        self._stopped_by = make_error
        running = sorted(self._running, key=lambda t: t.index)
        # An attempt still queued inside its backend never ran: it does not count.
        if running:
            self._backend.halt(running)
        never_ran = {t for t in running if not self._backend.has_started(t)}
        for task in running:
            self._end_attempt(task)
        if running:
            self._backend.stop(running)
        waiting = [entry[2] for entry in self._waiting]
        pending = sorted([*running, *self._ready, *waiting], key=lambda t: t.index)
        self._ready.clear()
        self._waiting.clear()
        self._timers.clear()
        for task in pending:
            attempts = task.attempts - (task in never_ran)
            elapsed = now - task.first_start if attempts else 0.0
            self._finish(task, Err(make_error(), task.item, task.index, attempts, elapsed))
        runs = sorted(self._runs, key=lambda r: r.first)
        answers = self._backend.stop_runs(runs) if runs else []
        for run, unfinished in zip(runs, answers, strict=True):
            for position, started in unfinished:
                elapsed = now - run.dispatched if started else 0.0
                index = run.first + position  # (the bulk lane is never ordered)
                self.out.append(
                    Err(make_error(), run.items[position], index, int(started), elapsed)
                )
                self._live -= 1
        self._runs.clear()
        for task in self._source.rest():
            self._live += 1
            self._finish(task, Err(make_error(), task.item, task.index, 0, 0.0))

    def _stop_one(self, task: Task, error: BaseException, now: float) -> None:
        """End one item now (``Future.cancel()`` on running work): stopped, ``Err(error)``."""
        if task.running:
            self._end_attempt(task)
            self._backend.stop([task])
        elif task in self._ready:
            self._ready.remove(task)
        elif any(entry[2] is task for entry in self._waiting):
            self._waiting = [entry for entry in self._waiting if entry[2] is not task]
            heapq.heapify(self._waiting)
        else:
            return  # finished already, or never taken
        elapsed = now - task.first_start if task.attempts else 0.0
        self._finish(task, Err(error, task.item, task.index, task.attempts, elapsed))

    def _call_hook(self, name: str, hook: Callable[..., Any], *args: Any) -> None:
        try:
            hook(*args)
        except Exception as error:
            self.hook_errors.append((name, error))
