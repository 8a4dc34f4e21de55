"""Process mode keeps its promises at the boundary: loading, crashes, start-up, lifetime."""

from __future__ import annotations

import gc
import logging
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

import poolkit

from .boundary import (
    ExitsOnLoad,
    FrozenError,
    FrozenReducible,
    LoadsBadly,
    MuteError,
    SlottedError,
    TwoArgError,
    big,
    crash_once_every_tenth,
    init_mute,
    item_or_bad_result,
    raise_frozen,
    raise_frozen_reducible,
    raise_mute,
    raise_with_parts,
    record_and_fail,
)
from .conftest import alive, wait_until
from .crashers import exit_on
from .test_no_hang import bounded

pytestmark = pytest.mark.timeout(120)


@pytest.mark.parametrize("bad", [LoadsBadly(), ExitsOnLoad()], ids=["raises", "sys.exit"])
@pytest.mark.parametrize("timeout", [None, 5.0])
def test_an_item_that_cannot_be_loaded_in_the_worker_fails_alone(
    bad: Any, timeout: float | None
) -> None:
    """The item is Err(UnpicklingError) naming its type; its chunk-mates succeed; no hang."""
    items = [1, 2, bad, 4, 5, 6]
    results = bounded(
        lambda: poolkit.run_all(abs_or_self, items, mode="process", workers=2, timeout=timeout)
    )
    assert [r.value for r in results if r.is_ok()] == [1, 2, 4, 5, 6]
    error = results[2].error
    assert isinstance(error, pickle.UnpicklingError)
    assert type(bad).__name__ in str(error)
    assert "__main__" in str(error)  # the hint


def abs_or_self(x: Any) -> Any:
    return abs(x) if isinstance(x, int) else x


def test_a_result_that_cannot_be_loaded_in_the_parent_fails_only_its_item() -> None:
    """SystemExit from a result's __setstate__: that item's Err; the collector lives on."""
    results = bounded(
        lambda: poolkit.run_all(item_or_bad_result, range(8), mode="process", workers=1)
    )
    assert [r.index for r in results if r.is_err()] == [3]
    assert isinstance(results[3].error, pickle.UnpicklingError)
    assert [r.value for r in results if r.is_ok()] == [0, 1, 2, 4, 5, 6, 7]


def test_a_frozen_dataclass_exception_arrives_as_itself() -> None:
    """An exception refusing attribute assignment never crashes the worker, and arrives
    with its type and fields (it used to arrive as a RemoteError)."""
    (result,) = poolkit.run_all(raise_frozen, [7], mode="process", workers=1)
    assert result.attempts == 1
    assert type(result.error) is FrozenError
    assert result.error.code == 7
    assert isinstance(result.error.__cause__, poolkit.RemoteTraceback)


def test_an_exception_that_pickles_but_refuses_its_cause_fails_once() -> None:
    """A frozen exception with its own __reduce__ loads in the parent, then refused the
    remote traceback as __cause__: that raised on the collector thread, the worker was
    stopped and the item ran again and again until the deadline."""
    results = bounded(
        lambda: poolkit.run_all(
            raise_frozen_reducible, range(4), mode="process", workers=2, deadline=60
        )
    )
    assert [r.attempts for r in results] == [1, 1, 1, 1]
    assert [type(r.error) for r in results.errs] == [FrozenReducible]
    assert results.values == [0, 2, 3]


def test_exceptions_whose_init_cannot_be_rerun_keep_their_type_and_attributes() -> None:
    """``__init__(self, a, b)`` passing one message up, and a slotted exception: each
    arrives as itself, attributes included, in process mode as in thread mode."""
    for mode in ("process", "thread"):
        results = poolkit.run_all(raise_with_parts, [0, 1], mode=mode, workers=1)
        two, slotted = (r.error for r in results)
        assert type(two) is TwoArgError, mode
        assert (str(two), two.b) == ("boom", 2), mode
        assert type(slotted) is SlottedError, mode
        assert str(slotted) == "slotted 5", mode


def test_items_that_ran_are_never_reported_as_not_started(tmp_path: Path) -> None:
    """With fail_fast, attempts == 0 only for items that never ran."""
    log = tmp_path / "ran"
    for _ in range(3):
        log.write_text("")
        results = poolkit.run_all(
            record_and_fail(str(log)), range(400), mode="process", workers=2, fail_fast=True
        )
        ran = {int(line) for line in log.read_text().split()}
        wrong = [r.index for r in results if r.attempts == 0 and r.index in ran]
        assert not wrong, f"items that ran reported attempts == 0: {wrong[:10]}"


def test_sending_a_big_result_back_does_not_count_against_the_timeout() -> None:
    """The attempt ends when the function returns, not when its 150 MB result arrives."""
    (result,) = poolkit.run_all(big, [150], mode="process", workers=1, timeout=0.3)
    assert result.is_ok(), result
    assert len(result.value) == 150_000_000


def test_every_crashing_item_is_charged_exactly_once(tmp_path: Path) -> None:
    """100 items, every 10th crashes once, retried on WorkerCrashed: each charged once."""
    retry = poolkit.Retry(attempts=2, on=poolkit.WorkerCrashed, backoff=0)
    for trial in range(8):
        directory = tmp_path / str(trial)
        directory.mkdir()
        results = poolkit.run_all(
            crash_once_every_tenth(str(directory)),
            range(100),
            mode="process",
            workers=2,
            retry=retry,
        )
        assert results.all_ok
        charged = {r.index: r.attempts for r in results if r.index % 10 == 0}
        assert charged == dict.fromkeys(range(0, 100, 10), 2), f"trial {trial}: {charged}"


def _init_hang() -> None:
    time.sleep(60)


@pytest.mark.parametrize("bound", ["initializer_timeout", "timeout"])
def test_a_hanging_initializer_is_bounded(bound: str) -> None:
    """An initializer that never returns: a clear PoolkitError for every item, promptly."""
    options: dict[str, Any] = {"initializer": _init_hang, bound: 1.0}
    began = time.monotonic()
    results = bounded(lambda: poolkit.run_all(abs, range(4), mode="process", workers=2, **options))
    assert time.monotonic() - began < 15
    for result in results:
        assert isinstance(result.error, poolkit.PoolkitError)
        assert "initializer" in str(result.error)


def test_a_script_without_the_main_guard_gets_one_clear_error(tmp_path: Path) -> None:
    """A script that forgets `if __name__ == "__main__":` gets a handful of tracebacks,
    then every item fails with one PoolkitError that says what to do."""
    script = tmp_path / "unguarded.py"
    script.write_text(
        textwrap.dedent(
            """
            import poolkit
            results = poolkit.run_all(abs, range(200), mode="process", workers=2)
            print("ERRORS", sum(r.is_err() for r in results))
            print("MESSAGE", results[0].error if results[0].is_err() else "")
            """
        )
    )
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=100, cwd=tmp_path
    )
    assert done.stderr.count("Traceback") <= 6, done.stderr[-2000:]
    assert "ERRORS 200" in done.stdout, done.stdout + done.stderr[-2000:]
    assert "__name__" in done.stdout


def test_a_dropped_runner_stops_its_workers() -> None:
    """A process runner dropped without close() is collected and its workers stop."""
    r = poolkit.runner("process", workers=2)
    pids = set(r.run_all(lambda _: os.getpid(), range(20)).values)
    assert pids
    del r
    gc.collect()
    assert wait_until(lambda: not any(alive(p) for p in pids), timeout=15)


def test_fork_workers_exit_when_the_parent_is_killed(tmp_path: Path) -> None:
    """start_method='fork': SIGKILL the parent and its workers go too."""
    script = tmp_path / "parent.py"
    script.write_text(
        textwrap.dedent(
            """
            import os, sys, time, poolkit
            if __name__ == "__main__":
                r = poolkit.runner("process", workers=2, start_method="fork")
                pids = set(r.run_all(lambda _: os.getpid(), range(20)).values)
                print(" ".join(map(str, pids)), flush=True)
                time.sleep(60)
            """
        )
    )
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        pids = [int(p) for p in parent.stdout.readline().split()]
        assert pids
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(10)
        assert wait_until(lambda: not any(alive(p) for p in pids), timeout=10)
    finally:
        parent.kill()
        parent.wait(10)
        if parent.stdout is not None:
            parent.stdout.close()


def test_replaced_workers_leak_no_file_descriptors() -> None:
    """One crash per batch on one runner, 60 times: open fds stay flat."""
    with poolkit.runner("process", workers=1) as r:
        r.run_all(exit_on(0), [0, 1])
        before = len(os.listdir("/proc/self/fd"))
        for _ in range(60):
            r.run_all(exit_on(0), [0, 1])
        after = len(os.listdir("/proc/self/fd"))
    assert after - before < 10


def test_a_redefined_main_function_reaches_warm_workers(tmp_path: Path) -> None:
    """A function of __main__ redefined, or whose globals changed, is not the old one."""
    script = tmp_path / "redefine.py"
    script.write_text(
        textwrap.dedent(
            """
            import poolkit
            OFFSET = 1
            def f(x):
                return x + OFFSET
            if __name__ == "__main__":
                with poolkit.runner("process", workers=1) as r:
                    first = r.run_all(f, [0]).values
                    OFFSET = 10
                    second = r.run_all(f, [0]).values
                    def f(x):
                        return x - 100
                    third = r.run_all(f, [0]).values
                print(first, second, third)
            """
        )
    )
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=100
    )
    assert done.stdout.strip() == "[1] [10] [-100]", done.stdout + done.stderr


def test_elapsed_is_the_items_own_time_not_its_wait_in_the_chunk() -> None:
    """Eight 0.1 s items in one chunk: each reports about 0.1 s, as in thread mode."""
    results = poolkit.run_all(time.sleep, [0.1] * 8, mode="process", workers=1, chunksize=8)
    assert results.all_ok
    assert max(r.elapsed for r in results) < 0.5  # the last waited 0.7 s behind the others


def _rss_kb(pid: int | str = "self") -> int:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _takes(blob: bytes, x: int) -> int:
    return x + len(blob)


def test_a_warm_runner_does_not_keep_every_function() -> None:
    """200 calls with a fresh partial over 1 MB: parent and worker memory stay bounded."""
    import functools

    with poolkit.runner("process", workers=1) as r:
        (worker,) = set(r.run_all(lambda _: os.getpid(), [0]).values)
        r.run_all(functools.partial(_takes, b"w" * 1_000_000), [0])
        parent_before, worker_before = _rss_kb(), _rss_kb(worker)
        for n in range(200):
            blob = bytes([n % 256]) * 1_000_000
            assert r.run_all(functools.partial(_takes, blob), [1]).values == [1_000_001]
            del blob
        gc.collect()
        parent_growth = (_rss_kb() - parent_before) / 1024
        worker_growth = (_rss_kb(worker) - worker_before) / 1024
    assert parent_growth < 80, f"the parent grew {parent_growth:.0f} MB"
    assert worker_growth < 60, f"the worker grew {worker_growth:.0f} MB"


def test_a_scripts_top_level_runs_once_in_the_forkserver_not_in_every_worker(
    tmp_path: Path,
) -> None:
    """A script that counts its own top-level runs: the parent's and the forkserver's,
    never one per worker (Python 3.11's '__main__' preload needs the main path)."""
    log = tmp_path / "runs.log"
    script = tmp_path / "counted.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import os
            with open({str(log)!r}, "a") as handle:
                handle.write(f"{{os.getpid()}} {{__name__}}\\n")
            import poolkit

            def work(x):
                return 2 * x

            if __name__ == "__main__":
                print(poolkit.run_all(work, range(8), mode="process", workers=2).values)
            """
        )
    )
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=100
    )
    assert done.returncode == 0, done.stderr
    assert "[0, 2, 4, 6, 8, 10, 12, 14]" in done.stdout
    runs = log.read_text().split("\n")[:-1]
    assert len(runs) == 2, runs  # __main__ in the parent, __mp_main__ once in the forkserver


def test_a_worker_releases_a_finished_chunks_items(tmp_path: Path) -> None:
    """After a chunk ends, the worker keeps none of its items alive while it waits."""
    from .boundary import Tracked, number_of

    os.environ["POOLKIT_TEST_PARENT"] = str(os.getpid())
    with poolkit.runner("process", workers=1, chunksize=5) as r:
        items = [Tracked(str(tmp_path), n) for n in range(5)]
        assert r.run_all(number_of, items).values == [0, 1, 2, 3, 4]
        # the worker is now idle, waiting for its next chunk
        assert wait_until(lambda: len(list(tmp_path.glob("released-*"))) == 5, timeout=10)


MAIN_CLASSES = """
import poolkit
from dataclasses import dataclass

@dataclass
class Point:
    x: int

def make(x):
    return Point(x)

def is_point(p):
    match p:
        case Point(x=x):
            return x
    return "not a Point"

def run():
    with poolkit.runner("process", workers=2) as r:
        made = r.run_all(make, range(3))
        made.raise_errors()
        print(all(type(r.value) is Point for r in made), [r.value.x for r in made])
        print(r.run_all(is_point, [Point(5), Point(6)]).values)
"""


@pytest.mark.parametrize("how", ["script", "-c"])
def test_a_class_of_main_crosses_both_ways_as_itself(tmp_path: Path, how: str) -> None:
    """A result that is an instance of a class defined in the script comes back as that
    class (it failed: "not the same object as __main__.Point"), and an item of it is an
    instance of the class the function sees (``match``/``isinstance`` failed)."""
    code = MAIN_CLASSES + '\nif __name__ == "__main__":\n    run()\n'
    script = tmp_path / "points.py"
    script.write_text(code)
    command = [str(script)] if how == "script" else ["-c", code]
    done = subprocess.run(
        [sys.executable, *command], capture_output=True, text=True, timeout=100, cwd=tmp_path
    )
    assert done.stdout.split("\n")[:2] == ["True [0, 1, 2]", "[5, 6]"], done.stdout + done.stderr


MAIN_GLOBALS = """
import poolkit

MODEL = None
SETTINGS = {"scale": 1}


def load_model(name):
    global MODEL, LOADED_BY
    MODEL = f"model:{name}"
    LOADED_BY = "initializer"  # a global the script itself never defined


def predict(x):
    return MODEL, LOADED_BY, SETTINGS["scale"] * x


def run():
    SETTINGS["scale"] = 10  # set by the parent after import: sent with the function
    with poolkit.runner("process", workers=2, initializer=load_model, initargs=("m",)) as r:
        results = r.run_all(predict, range(3))
        results.raise_errors()
        print(results.values)
"""


@pytest.mark.parametrize("how", ["script", "-c", "exec"])
def test_globals_set_by_the_initializer_are_seen_by_the_function(tmp_path: Path, how: str) -> None:
    """The classic pattern (the standard library's docs, joblib's and mpire's users): an
    initializer sets a module global once per worker and the function reads it. The
    function saw the value the parent had (None); and an initializer defined where the
    worker cannot import it (``python -c``, code run by ``exec``, a notebook) failed
    every worker at start-up with a PicklingError."""
    main = '\nif __name__ == "__main__":\n    run()\n'
    if how == "exec":
        code = f"exec(compile({MAIN_GLOBALS + 'run()'!r}, 'cell', 'exec'), {{'__name__': 'cell'}})"
        code = "if __name__ == '__main__':\n    " + code
    else:
        code = MAIN_GLOBALS + main
    script = tmp_path / "model.py"
    script.write_text(code)
    command = [str(script)] if how == "script" else ["-c", code]
    done = subprocess.run(
        [sys.executable, *command], capture_output=True, text=True, timeout=100, cwd=tmp_path
    )
    expected = str([("model:m", "initializer", 10 * x) for x in range(3)])
    assert done.stdout.strip() == expected, done.stdout + done.stderr[-2000:]


def test_an_initializer_that_cannot_be_sent_is_a_clear_error_at_once() -> None:
    """initargs that no pickler can send: a TypeError naming them when the runner is
    made (it was three dead workers and a start-up error on every item)."""
    import threading

    with pytest.raises(TypeError, match=r"initargs=.*cannot be sent to the worker processes"):
        poolkit.runner("process", workers=2, initializer=print, initargs=(threading.Lock(),))


def test_a_failure_taking_in_outcomes_fails_those_items_instead_of_rerunning_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Any exception while the collector takes in a chunk's outcomes (here a stand-in for
    a poolkit bug: rebuilding the item's error raises) ends those items with an Err that
    says so. It used to stop the worker and run the items again, failing the same way on
    every worker until the deadline."""
    from poolkit._backends._process import _collector

    def broken(package: Any) -> BaseException:
        raise RuntimeError("cannot rebuild")

    monkeypatch.setattr(_collector, "unpack_error", broken)
    results = bounded(
        lambda: poolkit.run_all(
            raise_frozen_reducible, range(4), mode="process", workers=2, deadline=60
        )
    )
    assert [r.attempts for r in results] == [1, 1, 1, 1]
    [bad] = results.errs
    assert isinstance(bad.error, poolkit.PoolkitError)
    assert "bug in poolkit" in str(bad.error)
    assert isinstance(bad.error.__cause__, RuntimeError)
    assert results.values == [0, 2, 3]


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_an_exception_whose_str_raises_is_the_items_err_not_a_crash(
    mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Packing the error for the parent called str() on it: the exception escaped the
    worker's loop and the worker died, so the item was reported as WorkerCrashed. With
    debug logging on, the engine's log line called repr() on it and the batch failed."""
    caplog.set_level(logging.DEBUG, logger="poolkit")
    results = bounded(lambda: poolkit.run_all(raise_mute, range(3), mode=mode, workers=1))
    assert [r.attempts for r in results] == [1, 1, 1]
    [bad] = results.errs
    assert type(bad.error) is MuteError
    assert results.values == [0, 2]
    with pytest.raises(ExceptionGroup):
        results.raise_errors()


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_an_initializer_error_whose_str_raises_still_explains(mode: str) -> None:
    """The message that quotes the initializer's error survives an error without str()."""
    with poolkit.runner(mode, workers=1, initializer=init_mute) as runner:
        results = bounded(lambda: runner.run_all(raise_mute, range(2)))
    assert all(isinstance(r.error, poolkit.PoolkitError) for r in results)
    assert all("MuteError: <str() raised RuntimeError>" in str(r.error) for r in results)
