"""Process mode survives its workers: crashes, hard timeouts, pickling, clean shutdown."""

from __future__ import annotations

import os
import pickle
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from typing import Any

import pytest
from hypothesis import given

import poolkit
from poolkit import Err, Ok, WorkerCrashed
from poolkit.testing import (
    Crash,
    FatalError,
    Raise,
    TransientError,
    check_invariants,
    fault_plans,
    faulty,
)

from .conftest import alive, live_children, wait_until
from .crashers import exit_on, oom_on, segfault_on, sigkill_on
from .helpers import identity, mixed, nap, pid
from .test_no_hang import bounded


@pytest.mark.parametrize(
    ("make", "signal_or_code"),
    [(exit_on, 3), (sigkill_on, -9), (segfault_on, -11), (oom_on, None)],
    ids=["os._exit", "sigkill", "segfault", "out-of-memory"],
)
def test_a_crash_costs_exactly_one_item(make: Any, signal_or_code: int | None) -> None:
    """199 Ok and 1 WorkerCrashed, with the exit code or signal, and no leftover process."""
    began = time.monotonic()
    results = poolkit.run_all(make(117), range(200), mode="process", workers=2)
    assert time.monotonic() - began < 30
    assert len(results.oks) == 199
    [crashed] = results.errs
    assert crashed.index == 117
    if signal_or_code is None:
        # RLIMIT_AS makes allocation fail inside Python: a MemoryError, or a death
        assert isinstance(crashed.error, MemoryError | WorkerCrashed)
    else:
        assert isinstance(crashed.error, WorkerCrashed)
    if signal_or_code is not None:
        assert crashed.error.exitcode == signal_or_code
        assert str(abs(signal_or_code)) in str(crashed.error)
    assert results.values == [x for x in range(200) if x != 117]
    assert wait_until(lambda: not live_children())


def test_crash_is_retried_when_on_matches() -> None:
    """A crashed item is retried when on includes WorkerCrashed, and then succeeds."""
    plan = {5: [Crash(7)]}
    retry = poolkit.Retry(attempts=2, on=WorkerCrashed, backoff=0)
    results = poolkit.run_all(
        faulty(identity, plan), range(20), mode="process", workers=2, retry=retry
    )
    assert results.all_ok
    assert results[5].attempts == 2


def test_stress_random_crashes_with_retries() -> None:
    """2,000 items, 5% crash once at random, 2 workers, retries on WorkerCrashed: all Ok."""
    rng = random.Random(7)
    plan = {n: [Crash(9)] for n in range(2000) if rng.random() < 0.05}
    retry = poolkit.Retry(attempts=2, on=WorkerCrashed, backoff=0)
    began = time.monotonic()
    results = poolkit.run_all(
        faulty(identity, plan), range(2000), mode="process", workers=2, retry=retry
    )
    assert time.monotonic() - began < 120
    assert results.all_ok
    assert len(results) == 2000
    assert sorted(r.index for r in results if r.attempts == 2) == sorted(plan)


@given(
    fault_plans(
        list(range(20)),
        max_attempts=2,
        kinds=("transient", "fatal", "crash", "hang"),
        hang_seconds=10,
    )
)
def test_random_crashes_hangs_and_errors(process_runner: Any, plan: Any) -> None:
    """Random mixes of crash, hang, raise and return: one Result per item, right types."""
    retry = poolkit.Retry(attempts=2, on=(TransientError, WorkerCrashed), backoff=0)
    items = list(range(20))
    results = process_runner.run_all(faulty(identity, plan), items, retry=retry, timeout=0.5)
    check_invariants(results, items, plan, retry, timeout=0.5)


def test_timeout_kills_and_replaces_the_worker() -> None:
    """A timed-out item's worker is stopped and replaced; other items are untouched."""
    with poolkit.runner("process", workers=2) as runner:
        before = set(runner.run_all(_slow_pid, range(20)).values)
        results = runner.run_all(nap, [0.01] * 10 + [30.0] + [0.01] * 10, timeout=0.5)
        # items long enough that both workers, the replacement included, must serve
        after = set(runner.run_all(_slow_pid, range(40)).values)
    assert (
        isinstance(results[10].error, poolkit.TaskTimeout)
        if isinstance(results[10], Err)
        else False
    )
    assert results[10].error.stopped  # type: ignore[union-attr]
    assert len(results.values) == 20
    assert len(after) == 2
    assert len(before & after) == 1


def _slow_pid(_: Any) -> int:
    time.sleep(0.02)
    return os.getpid()


def _unpicklable_result(_: Any) -> Any:
    return threading.Lock()


class _Odd(Exception):
    def __init__(self, a: int, b: int) -> None:
        super().__init__(f"odd {a} {b}")


def _raise_odd(_: Any) -> None:
    raise _Odd(1, 2)


class _Unpicklable(Exception):
    def __reduce__(self) -> Any:
        raise TypeError("not today")


def _raise_unpicklable(_: Any) -> None:
    raise _Unpicklable("bad")


def test_unpicklable_things_become_errs(process_runner: Any) -> None:
    """Unpicklable fn, item, result or exception: that item's Err says what and why."""
    results = process_runner.run_all(identity, [1, threading.Lock(), 3])
    assert results.values == [1, 3]
    error = results[1].error  # type: ignore[union-attr]
    assert isinstance(error, TypeError)
    assert "could not pickle item #1" in str(error)

    [bad_result] = process_runner.run_all(_unpicklable_result, [1])
    assert isinstance(bad_result, Err)
    assert isinstance(bad_result.error, pickle.PicklingError)
    assert "result" in str(bad_result.error)
    assert "lock" in str(bad_result.error)

    lock = threading.Lock()
    results = process_runner.run_all(lambda x: (lock, x), [1, 2])
    assert all("could not pickle the function" in str(r.error) for r in results.errs)
    assert len(results.errs) == 2

    [odd] = process_runner.run_all(_raise_odd, [1])
    assert isinstance(odd, Err)
    assert type(odd.error) is _Odd  # its __init__ cannot be re-run: it travels by parts
    assert str(odd.error) == "odd 1 2"
    assert "_raise_odd" in str(odd.error.__cause__)

    [unp] = process_runner.run_all(_raise_unpicklable, [1])
    assert isinstance(unp, Err)
    assert isinstance(unp.error, poolkit.RemoteError)


def test_remote_traceback_is_attached(process_runner: Any) -> None:
    """A rebuilt exception keeps its type and carries the remote traceback as __cause__."""
    from .helpers import Boom, double_or_raise

    [result] = process_runner.run_all(double_or_raise, [7])
    assert isinstance(result, Err)
    assert isinstance(result.error, Boom)
    assert isinstance(result.error.__cause__, poolkit.RemoteTraceback)
    assert "double_or_raise" in result.error.__cause__.text


def _broken_initializer() -> None:
    raise ValueError("no database")


def test_initializer_that_raises() -> None:
    """Every item gets an Err naming the initializer's error; no hang, no start-up storm."""
    began = time.monotonic()
    results = poolkit.run_all(
        identity, range(50), mode="process", workers=2, initializer=_broken_initializer
    )
    assert time.monotonic() - began < 10
    assert len(results.errs) == 50
    assert all("no database" in str(r.error) for r in results.errs)
    assert isinstance(results[0].error.__cause__, ValueError)  # type: ignore[union-attr]


_STATE: dict[str, int] = {}


def _init(value: int) -> None:
    _STATE["value"] = value


def _read_state(_: Any) -> int:
    return _STATE["value"]


def test_initializer_and_max_tasks_per_child() -> None:
    """initializer/initargs run once per worker; max_tasks_per_child recycles workers."""
    assert (
        poolkit.run_all(
            _read_state, range(4), mode="process", workers=2, initializer=_init, initargs=(42,)
        ).values
        == [42] * 4
    )
    pids = poolkit.run_all(pid, range(30), mode="process", workers=2, max_tasks_per_child=5).values
    assert len(set(pids)) >= 6
    assert all(pids.count(p) <= 5 for p in set(pids))


def _big_then_die(x: int) -> bytes:
    if x == 1:
        os._exit(5)
    return b"x" * (30 * 2**20)


def test_large_payload_and_a_dying_worker() -> None:
    """Tens of MB in and out while a worker dies: Errs, never a deadlock."""
    payload = b"y" * (30 * 2**20)
    results = poolkit.run_all(lambda b: len(b), [payload, payload], mode="process", workers=2)
    assert results.values == [len(payload)] * 2
    results = poolkit.run_all(_big_then_die, [0, 1, 2], mode="process", workers=2)
    assert [r.is_ok() for r in results] == [True, False, True]


def test_runner_context_manager_stops_workers() -> None:
    """Leaving a runner's with block stops its processes."""
    with poolkit.runner("process", workers=2) as runner:
        pids = set(runner.run_all(pid, range(10)).values)
    assert wait_until(lambda: all(not alive(p) for p in pids))


def _run_script(code: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_runner_left_to_interpreter_exit_does_not_hang() -> None:
    """A process runner never closed still lets the interpreter exit at once."""
    began = time.monotonic()
    done = _run_script("""
        import poolkit
        if __name__ == "__main__":
            r = poolkit.runner("process", workers=2)
            print(r.run_all(abs, [-1, -2]).values)
    """)
    assert done.returncode == 0, done.stderr
    assert "[1, 2]" in done.stdout
    assert time.monotonic() - began < 20


def test_a_busy_runner_left_to_interpreter_exit_does_not_hang(tmp_path: Any) -> None:
    """Workers are not daemons (they may start processes of their own); one busy in a
    long call when the interpreter exits is killed, not waited for."""
    flag = tmp_path / "started"
    began = time.monotonic()
    done = _run_script(f"""
        import os, time, weakref
        class Anything:
            pass
        keep = Anything()
        weakref.finalize(keep, print)  # finalizers' exit hook now runs after multiprocessing's
        import poolkit
        def busy(path):
            open(path, "w").close()
            time.sleep(300)
        if __name__ == "__main__":
            r = poolkit.runner("process", workers=1)
            r.submit(busy, {str(flag)!r})
            while not os.path.exists({str(flag)!r}):  # until the worker is in the call
                time.sleep(0.01)
            print("leaving")
    """)
    assert done.returncode == 0, done.stderr
    assert "leaving" in done.stdout
    assert time.monotonic() - began < 30


def nested_sum(n: int) -> int:
    """Process mode inside a process-mode worker."""
    return sum(poolkit.run_all(abs, range(-n, 0), mode="process", workers=2).values)


def test_process_mode_nests_in_a_worker() -> None:
    """A worker may start a process pool of its own, as ProcessPoolExecutor's workers
    may since Python 3.9 (it failed every inner item: daemonic processes are not
    allowed to have children, reported as a start-up failure)."""
    before = set(live_children())
    results = poolkit.run_all(nested_sum, [3, 4], mode="process", workers=2)
    assert results.values == [6, 10], results.errs
    assert wait_until(lambda: set(live_children()) <= before)


def test_workers_exit_when_the_parent_is_killed() -> None:
    """SIGKILL the parent mid-batch: its workers notice and exit within seconds."""
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent("""
            import os, sys, time, poolkit
            def work(x):
                os.write(1, f"{os.getpid()}\\n".encode())  # one write: lines never interleave
                time.sleep(60)
            if __name__ == "__main__":
                poolkit.run_all(work, range(4), mode="process", workers=2)
        """),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert parent.stdout is not None
    with parent:
        workers = {int(parent.stdout.readline()), int(parent.stdout.readline())}
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
    assert wait_until(lambda: not any(alive(w) for w in workers), timeout=10), workers


def test_submit_in_process_mode_and_crash() -> None:
    """submit returns a Future of a Result; a crash fails only its own future."""
    with poolkit.runner("process", workers=2) as runner:
        futures = [runner.submit(exit_on(3), x) for x in range(6)]
        results = [f.result(timeout=30) for f in futures]
    assert [isinstance(r, Ok) for r in results] == [True, True, True, False, True, True]


RETRY_TRANSIENT = poolkit.Retry(attempts=3, on=TransientError, backoff=0)


def test_runs_keep_every_promise_per_item() -> None:
    """A long sized input goes over in runs (no object per item), yet an item that fails
    in the middle of one is retried alone and every item gets its own exact Result."""
    items = list(range(3000))
    plan = {i: [Raise(TransientError("once"))] for i in range(0, 3000, 97)}
    plan[5] = [Raise(FatalError("final"))]
    plan[2000] = [Raise(TransientError("a")), Raise(TransientError("b"))]
    results = poolkit.run_all(
        faulty(identity, plan), items, mode="process", workers=2, retry=RETRY_TRANSIENT
    )
    check_invariants(results, items, plan, RETRY_TRANSIENT)
    assert results[2000] == Ok(
        2000, item=2000, index=2000, attempts=3, elapsed=results[2000].elapsed
    )
    assert all(r.elapsed >= 0 for r in results)


def test_a_deadline_keeps_what_finished_inside_a_run() -> None:
    """Cut mid-run: items done keep their Ok; the one running per worker counts its
    attempt; the ones never started say attempts == 0."""
    results = poolkit.run_all(nap, [0.05] * 200, mode="process", workers=2, deadline=1.5)
    assert len(results) == 200
    assert len(results.oks) >= 4, "finished items were thrown away by the cut"
    assert all(isinstance(e.error, poolkit.DeadlineExceeded) for e in results.errs)
    assert sum(e.attempts == 1 for e in results.errs) <= 2  # at most one running per worker
    assert all(r.attempts == 1 and r.elapsed >= 0.04 for r in results.oks)


def test_a_batch_ends_in_small_chunks_so_the_workers_finish_together() -> None:
    """The chunks shrink toward the end of a batch (guided by what is left for all the
    workers, not by how many are ready): the last items go out in small chunks, so no
    worker is left with a whole chunk to run while the others idle. (Each chunk was
    sized for the one ready worker, so the last went out as big as the rest.)"""
    with poolkit.runner("process", workers=2) as runner:
        runner.run_all(identity, [0, 1])  # started
        backend: Any = runner._backend  # a spy on the sizes it sends
        sent: list[int] = []
        send_chunk = backend._send_chunk

        def spy(worker: Any, size: int) -> None:
            waiting = sum(len(piece) for piece in backend.pending)
            send_chunk(worker, size)
            sent.append(waiting - sum(len(piece) for piece in backend.pending))

        backend._send_chunk = spy
        results = runner.run_all(nap, [0.002] * 400)
    assert results.values == [0.002] * 400
    assert sum(sent) == 400
    tail, covered = [], 0
    for size in reversed(sent):  # the chunks that carried the last 10% of the items
        if covered >= 40:
            break
        tail.append(size)
        covered += size
    assert len(tail) >= 4, f"the last 40 items went out in chunks of {tail[::-1]}"
    assert sent[-1] <= 5, sent


def test_a_fast_result_does_not_wait_for_its_slow_chunk_mate() -> None:
    """Two items in one chunk, 0 s and 3 s: the first result comes back while the
    second still runs (the worker flushes finished results after 20 ms)."""
    with poolkit.runner("process", workers=1, chunksize=2) as runner:
        runner.run_all(nap, [0.0])  # warm
        began = time.monotonic()
        with runner.stream(nap, [0.0, 3.0]) as results:
            first = next(results)
            waited = time.monotonic() - began
            assert first.index == 0
            assert waited < 2.0, f"the first result waited {waited:.2f} s for its chunk-mate"


def test_a_result_does_not_wait_for_a_slow_chunk_neighbour() -> None:
    """One chunk of 40 quick items and one of 30 s: the quick results come back long
    before the slow item ends (the worker's poller sends what finished)."""
    with poolkit.runner("process", workers=1, chunksize=41) as runner:
        started = time.monotonic()
        results = runner.stream(nap, [0.0] * 40 + [30.0])
        first = bounded(lambda: next(results), 25)
        waited = time.monotonic() - started
        results.close()  # the slow item is stopped with the stream
    assert isinstance(first, poolkit.Ok)
    assert waited < 15, f"the first result waited {waited:.1f} s for its chunk's slow item"


def test_what_the_poller_sends_mid_chunk_keeps_each_outcome() -> None:
    """Errors, pickled values and plain ones, sent in pieces while the chunk's last item
    still runs: each result is its own item's, exactly once."""
    items = [*range(30), -1, *range(31, 61), -30]  # the poller sends twice, at least
    with poolkit.runner("process", workers=1, chunksize=len(items)) as runner:
        results = runner.stream(mixed, items)
        early = bounded(lambda: [next(results) for _ in range(61)])
        results.close()
    assert sorted(r.index for r in early) == list(range(61))
    for r in early:
        if r.index == 30:
            assert r.value == -1
        elif r.index % 3 == 0:
            assert isinstance(r, poolkit.Err)
            assert isinstance(r.error, ValueError)
            assert r.error.args == (r.index,)
        else:
            assert r.value == ([r.index] if r.index % 3 == 1 else r.index)
