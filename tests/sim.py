"""A scripted backend and a manual clock: the engine driven with no threads and no sleeps.

As httpx tests its client through ``MockTransport``, these tests drive poolkit's engine
(which does no I/O) through a backend whose every start, stop and completion the test
decides, on a clock that moves only when the test says so.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from poolkit import Err, Ok
from poolkit._core._backend import Backend
from poolkit._core._engine import Engine, Hooks, Source
from poolkit._core._task import Job, OkRun, Run, RunDone, Task
from poolkit._policies import Policies


class ManualClock:
    """A clock that moves only when ``advance`` is called."""

    def __init__(self, start: float = 100.0) -> None:
        self.t = start

    def now(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        assert seconds >= 0
        self.t += seconds


class Outbox:
    """The engine's inbox in a simulation: completions wait here until delivered."""

    def __init__(self) -> None:
        self.messages: list[Any] = []

    def put(self, message: Any) -> None:
        self.messages.append(message)

    def take(self) -> list[Any]:
        messages, self.messages = self.messages, []
        return messages


@dataclass
class Attempt:
    """One attempt the engine started on the scripted backend."""

    task: Task
    number: int
    started: float
    running_from: float | None  # None while "queued inside the backend"
    stopped: bool = False


@dataclass
class ScriptedBackend(Backend):
    """Records what the engine asks; the test completes attempts when it likes."""

    clock: ManualClock
    capacity: int = 2
    default_in_flight: int = 4
    stoppable: bool = True
    queued_start: bool = False  # attempts begin "queued" (started_at None) until run()
    runs: bool = False  # takes Runs too (the engine's bulk lane)
    queues: bool = False  # attempts beyond capacity wait in the backend (thread mode)
    attempts: list[Attempt] = field(default_factory=list)
    live: dict[tuple[int, int], Attempt] = field(default_factory=dict)
    in_runs: dict[int, tuple[Run, int]] = field(default_factory=dict)  # index -> run, position

    def takes_runs(self, job: Job) -> bool:
        return self.runs

    def start_run(self, run: Run) -> None:
        now = self.clock.now()
        for position, item in enumerate(run.items):
            index = run.first + position
            task = Task(index, item, run.job, run.reply)
            task.attempts = 1
            attempt = Attempt(task, 1, now, None if self.queued_start else now)
            self.attempts.append(attempt)
            self.live[(index, 1)] = attempt
            self.in_runs[index] = (run, position)

    def stop_runs(self, runs: Sequence[Run]) -> list[list[tuple[int, bool]]]:
        answers = []
        for run in runs:
            unfinished = []
            for position in range(len(run.items)):
                attempt = self.live.pop((run.first + position, 1), None)
                if attempt is not None:
                    attempt.stopped = True
                    unfinished.append((position, attempt.running_from is not None))
            answers.append(unfinished)
        return answers

    def start(self, tasks: Sequence[Task]) -> None:
        singles = [key for key in self.live if not (key[1] == 1 and key[0] in self.in_runs)]
        if not self.queues:
            assert len(singles) + len(tasks) <= self.capacity, "engine exceeded capacity"
        now = self.clock.now()
        for task in tasks:
            attempt = Attempt(task, task.attempts, now, None if self.queued_start else now)
            self.attempts.append(attempt)
            self.live[(task.index, task.attempts)] = attempt

    def stop(self, tasks: Sequence[Task]) -> None:
        for task in tasks:
            attempt = self.live.pop((task.index, task.attempts), None)
            if attempt is not None:
                attempt.stopped = True

    def can_stop(self, task: Task) -> bool:
        return self.stoppable

    def started_at(self, task: Task) -> float | None:
        attempt = self.live.get((task.index, task.attempts))
        return None if attempt is None else attempt.running_from

    def run(self, index: int, number: int) -> None:
        """The attempt leaves the backend's queue and begins running now."""
        self.live[(index, number)].running_from = self.clock.now()

    def finish(self, index: int, number: int, ok: bool, payload: Any) -> None:
        """Post the attempt's completion (it stays on record; the engine may ignore it)."""
        attempt = self.live.pop((index, number), None)
        if number == 1 and index in self.in_runs:
            if attempt is None:
                return  # a run's stopped item posts nothing (stop_runs' promise)
            run, position = self.in_runs[index]
            elapsed = array("d", [self.clock.now() - attempt.started])
            done = RunDone(
                run, position, [payload if ok else None], None if ok else {0: payload}, elapsed
            )
            run.reply.put(done)
            return
        task = attempt.task if attempt is not None else self.find(index)
        task.reply.put((task, number, ok, payload))

    def find(self, index: int) -> Task:
        return next(a.task for a in self.attempts if a.task.index == index)

    def starts(self, index: int) -> list[float]:
        return [a.started for a in self.attempts if a.task.index == index]


class Sim:
    """An engine over ``items`` with a scripted backend and a manual clock."""

    def __init__(
        self,
        items: Any,
        policies: Policies,
        *,
        capacity: int = 2,
        ordered: bool = False,
        stoppable: bool = True,
        queued_start: bool = False,
        hooks: Hooks | None = None,
        runs: bool = False,
        queues: bool = False,
    ) -> None:
        self.clock = ManualClock()
        self.backend = ScriptedBackend(
            self.clock,
            capacity=capacity,
            stoppable=stoppable,
            queued_start=queued_start,
            runs=runs,
            queues=queues,
        )
        self.outbox = Outbox()
        self.source = Source(items, Job(lambda x: x), self.outbox)
        self.engine = Engine(
            self.source, self.backend, policies, ordered=ordered, hooks=hooks, clock=self.clock
        )
        self.results: list[Ok[Any] | Err] = []
        self.wake: float | None = None
        self.step()

    def step(self) -> float | None:
        """Deliver what is waiting, pump, collect Results; returns seconds until wake."""
        self.engine.deliver(self.outbox.take())
        self.wake = self.engine.pump()
        while self.engine.out:
            output = self.engine.out.popleft()
            if isinstance(output, OkRun):
                self.results.extend(output.results())
            else:
                self.results.append(output)
        return self.wake

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.step()

    def advance_to_wake(self) -> None:
        assert self.wake is not None, "the engine asked never to be woken"
        self.advance(self.wake)

    def finish(self, index: int, number: int, value: Any = None, error: Any = None) -> None:
        if error is None:
            self.backend.finish(index, number, True, index if value is None else value)
        else:
            self.backend.finish(index, number, False, error)
        self.step()

    def by_index(self) -> dict[int, Ok[Any] | Err]:
        return {r.index: r for r in self.results}
