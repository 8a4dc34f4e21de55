"""Shared test set-up: a stable hypothesis profile, warm runners, and leak checks."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

import poolkit

settings.register_profile(
    "ci",
    derandomize=True,
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    print_blob=True,
)
settings.register_profile("dev", max_examples=100, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# A test run a shell without job control starts in the background (``make test &``)
# has SIGINT ignored, and so would every child the Ctrl-C tests start, their Ctrl-C
# ignored: a handled SIGINT here is reset to the default in them.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

LOCAL_MODES = ("serial", "thread", "process", "async")


def wait_until(predicate: object, timeout: float = 10.0) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` passes (for cleanup checks only)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.01)
    return bool(predicate())  # type: ignore[operator]


def live_children() -> list[int]:
    """Pids of this process's running children (from /proc), multiprocessing's helpers aside."""
    me = str(os.getpid())
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        state, parent = fields[0], fields[1]
        if parent != me or state in ("Z", "X"):
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                command = handle.read()
        except OSError:
            continue
        # multiprocessing's forkserver and resource tracker live as long as the test run
        if b"forkserver" not in command and b"resource_tracker" not in command:
            found.append(int(entry))
    return found


def poolkit_threads() -> list[threading.Thread]:
    """poolkit's threads still alive, except ones stuck in an abandoned call."""
    return [t for t in threading.enumerate() if t.name.startswith("poolkit-") and t.is_alive()]


def _poolkit_workers() -> set[int]:
    return {
        p.pid for p in multiprocessing.active_children() if p.name.startswith("poolkit-") and p.pid
    }


@pytest.fixture(autouse=True)
def _no_leftover_workers(request: pytest.FixtureRequest) -> Iterator[None]:
    """After every test: no poolkit worker process that the test started is left running."""
    before = _poolkit_workers()
    yield
    if {"process_runner", "runners"} & set(request.fixturenames):
        return
    assert wait_until(lambda: not (_poolkit_workers() - before)), (
        "a poolkit worker outlived its test"
    )


@pytest.fixture(scope="session")
def process_runner() -> Iterator[poolkit.Runner]:
    """One warm process pool for the tests that do not test pool life itself."""
    with poolkit.runner("process", workers=2) as runner:
        yield runner


@pytest.fixture(scope="session")
def runners() -> Iterator[dict[str, poolkit.Runner]]:
    """One warm runner per local mode, shared by the examples of the property tests."""
    with (
        poolkit.runner("serial") as serial,
        poolkit.runner("thread", workers=4) as thread,
        poolkit.runner("process", workers=2) as process,
        poolkit.runner("async", workers=8) as aio,
    ):
        yield {"serial": serial, "thread": thread, "process": process, "async": aio}


def alive(pid: int) -> bool:
    """True while process ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


@pytest.fixture(params=LOCAL_MODES)
def mode(request: pytest.FixtureRequest) -> str:
    """Each local mode in turn."""
    return str(request.param)
