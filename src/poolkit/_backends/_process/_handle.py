"""The parent's handle on one process-mode worker: start it, talk to it, stop it."""

from __future__ import annotations

import multiprocessing
import time
from collections import deque
from multiprocessing.context import BaseContext
from typing import Any

from ._child import worker_main
from ._wire import STRIDE, KnownFunctions
from ._work import Piece

__all__ = [
    "WorkerHandle",
    "default_start_method",
    "kill_all",
    "preload_worker_module",
]


def preload_worker_module() -> None:
    """Start the forkserver with poolkit and the user's ``__main__`` already imported.

    Each worker then forks ready (80 ms -> 16 ms), and a script's top level runs once in
    the forkserver instead of once in every worker. Python 3.11's forkserver asks for
    a ``main_path`` that ``spawn.get_preparation_data`` never produces (it says
    ``init_main_from_path``), so its ``'__main__'`` preload does nothing: we pass the
    path under the name it expects while it starts. Only before the forkserver starts;
    a preload list the user set is kept.
    """
    try:
        from multiprocessing import forkserver, spawn

        server = forkserver._forkserver
        if getattr(server, "_forkserver_pid", None) is not None:
            return
        modules = list(getattr(server, "_preload_modules", None) or ["__main__"])
        if "poolkit._backends._process._child" not in modules:
            server.set_forkserver_preload([*modules, "poolkit._backends._process._child"])
        original = spawn.get_preparation_data

        def with_main_path(name: str) -> dict[str, Any]:
            data: dict[str, Any] = original(name)
            if "init_main_from_path" in data and "main_path" not in data:
                data["main_path"] = data["init_main_from_path"]
            return data

        spawn.get_preparation_data = with_main_path
        try:
            server.ensure_running()
        finally:
            spawn.get_preparation_data = original
    except Exception:  # a Python without these internals: start-up is merely slower
        pass


def default_start_method() -> str:
    """forkserver where it exists (fork is unsafe in a process with threads), else spawn."""
    methods = multiprocessing.get_all_start_methods()
    return "forkserver" if "forkserver" in methods else "spawn"


class WorkerHandle:
    """One worker process, its two pipes, and what the parent has sent it."""

    __slots__ = (
        "born",
        "budget",
        "chunks",
        "dying",
        "functions",
        "gone",
        "pid",
        "process",
        "ready",
        "results",
        "slot",
        "spoke",
        "tasks",
        "terminated_at",
    )

    def __init__(
        self,
        context: BaseContext,
        slots: Any,
        slot: int,
        initializer: bytes | None,
        budget: int | None,
    ) -> None:
        self.slot = slot
        self.chunks: deque[Piece] = deque()  # sent, oldest first
        self.functions = KnownFunctions()  # what the child has loaded, in its LRU order
        self.dying = False  # being stopped on purpose
        self.gone = False  # its pipe broke: it died on its own; its sentinel will tell
        self.terminated_at = 0.0
        self.budget = budget  # items it may still take (max_tasks_per_child)
        self.spoke = False  # it has sent at least one result
        self.ready = False  # its initializer finished
        self.born = time.monotonic()
        tasks_r, self.tasks = context.Pipe(duplex=False)
        self.results, results_w = context.Pipe(duplex=False)
        for field in range(STRIDE):
            slots[STRIDE * slot + field] = 0
        self.process: Any = context.Process(  # type: ignore[attr-defined]
            target=worker_main,
            args=(tasks_r, results_w, slots, slot, initializer),
            name=f"poolkit-worker-{slot}",
            # not a daemon, so the function may start processes of its own (process mode
            # nested in process mode), as ProcessPoolExecutor's workers may; what is left
            # running at exit is killed by ``_pool``'s exit hook before multiprocessing
            # would wait for it
            daemon=False,
        )
        self.process.start()
        tasks_r.close()  # the child holds these ends now
        results_w.close()
        self.pid: int | None = self.process.pid

    def terminate(self) -> bool:
        """SIGTERM it (once); False when it was already being stopped."""
        if self.dying:
            return False
        self.dying = True
        self.terminated_at = time.monotonic()
        try:
            self.process.terminate()
        except Exception:
            pass
        return True

    def kill_if_overdue(self, now: float, grace: float) -> None:
        """SIGKILL it when a terminate() has not ended it within ``grace`` seconds."""
        if self.dying and now - self.terminated_at >= grace:
            try:
                self.process.kill()
            except Exception:
                pass

    def close_pipes(self) -> None:
        for connection in (self.tasks, self.results):
            try:
                connection.close()
            except Exception:
                pass


def kill_all(workers: list[WorkerHandle | None], alive: list[bool]) -> None:
    """Finalizer: a backend dropped without close() (or left to interpreter exit) still
    leaves no process behind. ``alive`` is cleared first, so the collector thread (a
    daemon, still running during exit) starts no replacement for what is killed here."""
    alive[0] = False
    for worker in list(workers):
        if worker is not None:
            try:
                worker.process.kill()
            except Exception:
                pass
