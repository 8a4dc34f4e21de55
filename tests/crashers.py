"""Functions that kill their worker process in various ways (process-mode tests)."""

from __future__ import annotations

import os
import signal
import time
from typing import Any


def exit_on(bad: int, code: int = 3) -> Any:
    """A function that calls os._exit(code) on item ``bad``."""

    def run(x: int) -> int:
        if x == bad:
            os._exit(code)
        return x

    return run


def sigkill_on(bad: int) -> Any:
    """A function whose process is SIGKILLed (as from outside) on item ``bad``."""

    def run(x: int) -> int:
        if x == bad:
            os.kill(os.getpid(), signal.SIGKILL)
            time.sleep(10)
        return x

    return run


def segfault_on(bad: int) -> Any:
    """A function that segfaults on item ``bad``."""

    def run(x: int) -> int:
        if x == bad:
            import ctypes

            ctypes.string_at(0)
        return x

    return run


def oom_on(bad: int) -> Any:
    """A function that runs out of memory (RLIMIT_AS) on item ``bad``."""

    def run(x: int) -> int:
        if x == bad:
            import resource

            resource.setrlimit(resource.RLIMIT_AS, (512 * 2**20, 512 * 2**20))
            hog = []
            while True:
                hog.append(bytearray(64 * 2**20))
        return x

    return run


def exit_on_noting(bad: int, deaths: str) -> Any:
    """Like ``exit_on``, but first appends a line to the file ``deaths`` (counting them)."""

    def run(x: int) -> int:
        if x == bad:
            with open(deaths, "a") as log:
                log.write("died\n")
            os._exit(3)
        return x

    return run
