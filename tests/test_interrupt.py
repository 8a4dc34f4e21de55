"""Ctrl-C: a real SIGINT to a process running run_all propagates promptly, leaving nothing."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

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


LOST_SIGNAL = textwrap.dedent("""
    import asyncio, os, signal, sys, threading, time, poolkit

    MARK = sys.argv[3]
    SENT = []

    def nap(x):
        open(MARK, "a").close()
        time.sleep(30)

    async def anap(x):
        open(MARK, "a").close()
        await asyncio.sleep(30)

    def main_thread_sleeps():
        with open(f"/proc/self/task/{threading.main_thread().native_id}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "S"

    def ctrl_c_from_another_thread():
        # The signal is handled by this thread, so the main thread's wait is not
        # interrupted: the same as a Ctrl-C that lands a moment before a wait blocks.
        end = time.monotonic() + 20
        while time.monotonic() < end and not (os.path.exists(MARK) and main_thread_sleeps()):
            time.sleep(0.01)  # (polling a condition, with a bound)
        SENT.append(time.monotonic())
        signal.pthread_kill(threading.get_ident(), signal.SIGINT)

    if __name__ == "__main__":
        how, mode = sys.argv[1], sys.argv[2]
        fn = anap if mode == "async" else nap
        threading.Thread(target=ctrl_c_from_another_thread, daemon=True).start()
        try:
            if how == "run_all":
                poolkit.run_all(fn, range(4), mode=mode, workers=2)
            elif how == "kept runner":
                poolkit.runner(mode, workers=2).run_all(fn, range(4))
            elif how == "stream":
                for _ in poolkit.stream(fn, iter(range(4)), mode=mode, workers=2):
                    pass
            elif how == "Executor.shutdown":
                executor = poolkit.Executor(mode=mode, workers=4)
                futures = [executor.submit(fn, x) for x in range(4)]
                executor.shutdown(wait=True)
            else:
                list(poolkit.Executor(mode=mode, workers=2).map(fn, range(4)))
        except KeyboardInterrupt:
            print(f"interrupted after {time.monotonic() - SENT[0]:.2f} s", flush=True)
            os._exit(0)  # (not waiting for the interpreter to stop the hung calls)
""")


@pytest.mark.parametrize(
    ("how", "mode"),
    [
        *(("run_all", m) for m in ("thread", "process", "async")),
        ("kept runner", "async"),  # the engine on the runner's loop, the caller waits
        ("stream", "thread"),
        ("Executor.map", "thread"),
        ("Executor.shutdown", "thread"),  # waiting for the submits to finish
    ],
)
def test_a_ctrl_c_no_wait_noticed_still_interrupts(how: str, mode: str, tmp_path: Path) -> None:
    """A SIGINT that lands just before the main thread blocks (a busy machine preempts
    it there) or on another thread interrupts no wait: it is only noted. The main
    thread blocked on until the hung items ended (30 s); it now raises within a slice
    of its wait. (A thread handles the signal here, which leaves the main thread
    exactly so, every time.)"""
    mark = tmp_path / "started"
    done = subprocess.run(
        [sys.executable, "-c", LOST_SIGNAL, how, mode, str(mark)],
        capture_output=True,
        text=True,
        timeout=25,
    )
    assert "interrupted after" in done.stdout, done.stderr
    took = float(done.stdout.split()[2])
    # (Executor.shutdown: then the submits are ended, not waited for: it took 5 s, the
    # threads in a call had to end, and 20 s before that, 5 s each one after another)
    assert took < 3.0, f"Ctrl-C reached the caller {took:.2f} s after it came"
