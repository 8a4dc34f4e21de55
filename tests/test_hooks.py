"""Hooks, HookError, the progress display and logging-free observability."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
import threading
import time
from typing import Any

import pytest

import poolkit
from poolkit import Err, Ok
from poolkit.testing import FatalError, Raise, TransientError, faulty

from .helpers import identity

PLAN = {1: [Raise(TransientError("t"))], 3: [Raise(FatalError("f"))]}
RETRY = poolkit.Retry(attempts=2, on=TransientError, backoff=0)


def test_hook_order_and_thread(mode: str) -> None:
    """on_start, on_retry and on_result run in the calling thread, in a sensible order."""
    caller = threading.get_ident()
    events: list[tuple[str, Any, int]] = []
    threads: set[int] = set()

    def on_start(item: Any, attempt: int) -> None:
        threads.add(threading.get_ident())
        events.append(("start", item, attempt))

    def on_retry(item: Any, attempt: int, error: BaseException, wait: float) -> None:
        threads.add(threading.get_ident())
        assert isinstance(error, TransientError)
        assert wait == 0
        events.append(("retry", item, attempt))

    def on_result(result: Ok[Any] | Err) -> None:
        threads.add(threading.get_ident())
        events.append(("result", result.item, result.attempts))

    results = poolkit.run_all(
        faulty(identity, PLAN),
        range(5),
        mode=mode,
        workers=2,
        retry=RETRY,
        on_start=on_start,
        on_retry=on_retry,
        on_result=on_result,
    )
    assert threads == {caller}
    assert [r.is_ok() for r in results] == [True, True, True, False, True]
    assert events.count(("start", 1, 1)) == 1
    assert events.count(("start", 1, 2)) == 1
    assert events.index(("start", 1, 1)) < events.index(("retry", 1, 1))
    assert events.index(("retry", 1, 1)) < events.index(("start", 1, 2))
    assert events.index(("start", 1, 2)) < events.index(("result", 1, 2))
    assert sum(1 for e in events if e[0] == "result") == 5


def test_a_hook_that_raises_loses_nothing(mode: str) -> None:
    """The batch runs to its end; HookError names the hook, keeps the cause and the results."""
    seen: list[int] = []

    def bad(result: Ok[Any] | Err) -> None:
        seen.append(result.index)
        if result.index == 2:
            raise LookupError("hook broke")

    with pytest.raises(poolkit.HookError) as caught:
        poolkit.run_all(identity, range(6), mode=mode, workers=2, on_result=bad)
    error = caught.value
    assert "on_result" in str(error)
    assert error.hook == "on_result"
    assert isinstance(error.__cause__, LookupError)
    assert [r.value for r in error.results] == list(range(6))  # type: ignore[union-attr]
    assert sorted(seen) == list(range(6))


def test_hook_error_from_stream_comes_at_the_end() -> None:
    """In a stream, a hook's error is raised after the last Result."""

    def bad(_: Any) -> None:
        raise ValueError("x")

    got: list[Any] = []

    def consume() -> None:
        for r in poolkit.stream(identity, range(4), on_result=bad, ordered=True):
            got.append(r.value)

    with pytest.raises(poolkit.HookError):
        consume()
    assert got == [0, 1, 2, 3]


def test_progress_callable_gets_snapshots() -> None:
    """progress= accepts a callable fed Progress snapshots, retries counted."""
    snapshots: list[poolkit.Progress] = []
    poolkit.run_all(faulty(identity, PLAN), range(5), retry=RETRY, progress=snapshots.append)
    last = snapshots[-1]
    assert last.finished
    assert last.done == 5
    assert last.total == 5
    assert (last.ok, last.err, last.retries) == (4, 1, 1)
    assert [s.done for s in snapshots if not s.finished] == sorted(
        s.done for s in snapshots if not s.finished
    )


def test_progress_bar_is_silent_off_a_terminal(capfd: pytest.CaptureFixture[str]) -> None:
    """progress=True draws nothing when stderr is not a terminal."""
    poolkit.run_all(identity, range(3), progress=True)
    assert capfd.readouterr().err == ""


def test_progress_bar_on_a_pseudo_terminal() -> None:
    """On a terminal, the bar shows done/total, ok/err, retries and the rate."""
    code = (
        "import poolkit\n"
        "from poolkit.testing import faulty, Raise, TransientError, FatalError\n"
        "plan = {1: [Raise(TransientError('t'))], 3: [Raise(FatalError('f'))]}\n"
        "retry = poolkit.Retry(attempts=2, on=TransientError, backoff=0)\n"
        "poolkit.run_all(faulty(abs, plan), range(5), retry=retry, progress=True)\n"
        "print('done')\n"
    )
    text = _on_a_terminal(code)
    final = [line for line in re.split(r"[\r\n]", text) if "5/5" in line][-1]
    assert "5/5" in final
    assert "ok=4" in final  # tqdm's postfix
    assert "err=1" in final
    assert "retries=1" in final
    assert "/s" in final
    assert "done" in text


def _on_a_terminal(code: str) -> str:
    """Run ``code`` in a fresh interpreter on a pseudo-terminal; return what it drew."""
    leader, follower = pty.openpty()
    child = subprocess.Popen(
        [sys.executable, "-c", code],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        close_fds=True,
    )
    os.close(follower)
    captured = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        captured += chunk
    child.wait(30)
    os.close(leader)
    return captured.decode(errors="replace")


def test_summary_on_known_latencies() -> None:
    """summary() of a real batch reflects its latencies and errors."""
    results = poolkit.run_all(
        lambda x: time.sleep(x) or x, [0.0, 0.0, 0.3, -1.0], mode="thread", workers=4
    )
    summary = results.summary()
    assert (summary.ok, summary.err) == (3, 1)
    assert summary.errors_by_type == {"ValueError": 1}
    assert summary.max >= 0.3
    assert summary.slowest[0][1] == 0.3
    assert summary.wall_time >= 0.3


def test_logging(caplog: pytest.LogCaptureFixture) -> None:
    """One debug record per attempt, a warning per retry, nothing at INFO when all is well."""
    import logging

    with caplog.at_level(logging.INFO, logger="poolkit"):
        poolkit.run_all(identity, range(5))
    assert caplog.records == []
    with caplog.at_level(logging.DEBUG, logger="poolkit"):
        poolkit.run_all(faulty(identity, PLAN), range(5), retry=RETRY)
    debug = [r for r in caplog.records if r.levelno == logging.DEBUG]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(debug) == 6  # 5 items, one of them twice
    assert len(warnings) == 1
    assert "item #1 (1) attempt 1" in warnings[0].getMessage()  # names the item too


def test_progress_bar_steps_aside_for_on_result_prints() -> None:
    """Lines printed by on_result never share a line with the bar."""
    code = (
        "import poolkit\n"
        "poolkit.run_all(abs, range(5), mode='serial', progress='force',\n"
        "                on_result=lambda r: print(f'RESULT {r.index}', flush=True))\n"
    )
    lines = _on_a_terminal(code).split("\n")
    for line in lines:
        if "RESULT" in line:
            # what precedes the printed text on its line was erased first (tqdm's clear()
            # returns to the line start after blanking it)
            before = line.split("RESULT")[0]
            assert before.rsplit("\r", 1)[-1].strip() == "", repr(line)
    assert sum("RESULT" in line for line in lines) == 5


def test_progress_accepts_a_tqdm_instance_and_class() -> None:
    """progress= takes the user's own tqdm (instance or class); counts land on it."""
    import io

    from tqdm import tqdm

    stream = io.StringIO()
    bar = tqdm(file=stream, desc="mine")
    poolkit.run_all(abs, range(7), mode="serial", progress=bar)
    assert bar.n == 7
    assert bar.total == 7
    bar.close()
    assert "mine" in stream.getvalue()

    class Quiet(tqdm):  # type: ignore[misc]
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(file=io.StringIO(), **kwargs)

    poolkit.run_all(abs, range(3), mode="serial", progress=Quiet)


def test_library_is_silent_without_logging_configured() -> None:
    """The poolkit logger has a NullHandler: a retry prints nothing on stderr by itself."""
    import subprocess
    import sys

    code = (
        "import poolkit\n"
        "calls = []\n"
        "def flaky(x):\n"
        "    calls.append(x)\n"
        "    if len(calls) == 1: raise ConnectionError('once')\n"
        "    return x\n"
        "poolkit.run_all(flaky, [1], mode='serial', retry=poolkit.Retry(2, backoff=0))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    assert done.stderr == ""


def test_raise_errors_notes_slicing_and_pairs() -> None:
    """raise_errors notes item and index; slices are Results; pairs() pairs items with values."""
    results = poolkit.run_all(lambda x: 10 // x, [1, 0, 5], mode="serial")
    assert isinstance(results[1:], poolkit.Results)
    assert results.pairs() == [(1, 10), (5, 2)]
    with pytest.raises(ExceptionGroup) as caught:
        results.raise_errors()
    assert caught.value.exceptions[0].__notes__ == ["poolkit: item #1 (0) failed"]
    assert "attempts=3" in repr(poolkit.Retry())
    assert "object at" not in repr(poolkit.Retry())
