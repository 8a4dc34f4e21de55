"""Ctrl-C: a real SIGINT to a process running run_all propagates promptly, leaving nothing."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time

import pytest

from .conftest import alive, wait_until

SCRIPT = textwrap.dedent("""
    import asyncio, os, sys, time, poolkit

    def nap(x):
        sys.stdout.write(f"pid {os.getpid()}\\n")
        sys.stdout.flush()
        time.sleep(30)

    async def anap(x):
        sys.stdout.write(f"pid {os.getpid()}\\n")
        sys.stdout.flush()
        await asyncio.sleep(30)

    async def block(x):
        sys.stdout.write(f"pid {os.getpid()}\\n")
        sys.stdout.flush()
        time.sleep(30)  # blocks the loop: no cancellation can reach it

    def flaky(x):
        sys.stdout.write(f"pid {os.getpid()}\\n")
        sys.stdout.flush()
        raise ConnectionError("try later")

    if __name__ == "__main__":
        mode, case = sys.argv[1], sys.argv[2]
        try:
            if case == "hung":
                poolkit.run_all(nap, range(4), mode=mode, workers=2)
            elif case == "coroutines":
                poolkit.run_all(anap, range(4), mode=mode, workers=2)
            elif case == "blocking":
                poolkit.run_all(block, range(4), mode=mode, workers=2)
            else:
                poolkit.run_all(flaky, range(2), mode=mode, workers=2,
                                retry=poolkit.Retry(attempts=2, backoff=30))
        except KeyboardInterrupt:
            print("interrupted", flush=True)
            raise
""")


@pytest.mark.parametrize(
    ("mode", "case"),
    [
        *((m, c) for m in ("serial", "thread", "async", "process") for c in ("hung", "backoff")),
        ("async", "coroutines"),  # the loop in the caller's thread, idle: cancelled
        ("async", "blocking"),  # the loop in the caller's thread, blocked by a coroutine
    ],
)
def test_sigint_propagates_promptly(mode: str, case: str) -> None:
    """KeyboardInterrupt leaves run_all within a second, the interpreter exits, no child lives."""
    with subprocess.Popen(
        [sys.executable, "-c", SCRIPT, mode, case],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as child:
        assert child.stdout is not None
        assert child.stderr is not None
        pids = {int(child.stdout.readline().split()[1])}
        if mode != "serial" and case in ("hung", "coroutines"):
            pids.add(int(child.stdout.readline().split()[1]))
        if case == "backoff":
            time.sleep(0.2)  # not synchronisation: lets the failed attempt enter its backoff
        sent = time.monotonic()
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=20)
        took = time.monotonic() - sent
    assert "interrupted" in out, err
    assert "KeyboardInterrupt" in err
    assert "never retrieved" not in err, err  # asyncio's log of a task left unread
    assert child.returncode != 0
    assert took < 2.0, f"exit took {took:.2f} s"  # under a second to raise, plus exit
    assert wait_until(lambda: not any(alive(p) for p in pids - {child.pid}), timeout=5)
