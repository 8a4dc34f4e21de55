"""Dask mode against a real LocalCluster and a cluster started with the dask CLI."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import poolkit
from poolkit.testing import TransientError, check_invariants, fault_plans, faulty

from .boundary import SlottedError, TwoArgError, raise_with_parts
from .conftest import wait_until
from .crashers import exit_on
from .helpers import Boom, double_or_raise, identity, nap

distributed = pytest.importorskip("distributed")

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning", "ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def dask_runner() -> Iterator[Any]:
    """One small LocalCluster (2 worker processes) for the module."""
    with poolkit.runner("dask", workers=2) as runner:
        yield runner


@settings(max_examples=10)
@given(st.lists(st.integers(-20, 20), max_size=30))
def test_dask_matches_serial(dask_runner: Any, items: list[int]) -> None:
    """The same Results as serial mode: values, error types, order, indexes."""

    def shape(results: Any) -> list[Any]:
        return [
            (r.index, r.is_ok(), r.value if r.is_ok() else type(r.error).__name__) for r in results
        ]

    expected = shape(poolkit.run_all(double_or_raise, items, mode="serial"))
    assert shape(dask_runner.run_all(double_or_raise, items)) == expected


@settings(max_examples=8)
@given(fault_plans(list(range(10)), max_attempts=3, kinds=("transient", "fatal")))
def test_dask_follows_fault_plans(dask_runner: Any, plan: Any) -> None:
    """Random fault plans: one Result per item, exact attempts and types."""
    retry = poolkit.Retry(attempts=3, on=TransientError, backoff=0)
    items = list(range(10))
    results = dask_runner.run_all(faulty(identity, plan), items, retry=retry)
    check_invariants(results, items, plan, retry)


def test_remote_exceptions_keep_type_and_traceback(dask_runner: Any) -> None:
    """Exceptions come back with their type and the remote traceback."""
    [result] = dask_runner.run_all(double_or_raise, [7])
    assert isinstance(result, poolkit.Err)
    assert isinstance(result.error, Boom)
    assert isinstance(result.error.__cause__, poolkit.RemoteTraceback)
    two, slotted = (r.error for r in dask_runner.run_all(raise_with_parts, [0, 1]))
    assert type(two) is TwoArgError  # its __init__ cannot be re-run: it travels by parts
    assert two.b == 2
    assert type(slotted) is SlottedError
    assert str(slotted) == "slotted 5"


def test_timeout_abandons_and_deadline_cuts(dask_runner: Any) -> None:
    """A timeout abandons a running Dask task (stopped=False); a deadline returns promptly."""
    results = dask_runner.run_all(nap, [0.0, 10.0, 0.0], timeout=0.5)
    error = results[1].error  # type: ignore[union-attr]
    assert isinstance(error, poolkit.TaskTimeout)
    assert not error.stopped
    began = time.monotonic()
    results = dask_runner.run_all(nap, [0.0] + [10.0] * 4, deadline=0.5)
    assert time.monotonic() - began < 2
    assert len(results) == 5
    assert all(isinstance(r.error, poolkit.DeadlineExceeded) for r in results.errs)


def test_fail_fast_and_cancel(dask_runner: Any) -> None:
    """fail_fast and a CancelToken cut a dask batch short: the rest are Cancelled."""
    results = dask_runner.run_all(double_or_raise, [1, 7] + [8] * 30, fail_fast=True)
    assert isinstance(results[1].error, Boom)  # type: ignore[union-attr]
    assert len(results) == 32
    assert all(r.is_ok() or isinstance(r.error, Boom | poolkit.Cancelled) for r in results)
    token = poolkit.CancelToken()
    token.cancel()
    cancelled = dask_runner.run_all(identity, range(5), cancel=token)
    assert all(isinstance(r.error, poolkit.Cancelled) for r in cancelled)


def test_lazy_bounded_consumption(dask_runner: Any) -> None:
    """An endless generator streams through dask mode."""
    import itertools

    with dask_runner.stream(identity, itertools.count(), ordered=True) as results:
        assert [next(results).value for _ in range(50)] == list(range(50))


def test_a_crashing_item_is_worker_crashed(dask_runner: Any) -> None:
    """A worker that dies under an item gives that item, and only it, WorkerCrashed."""
    results = dask_runner.run_all(exit_on(7), range(20))
    assert [r.index for r in results.errs] == [7], [repr(r.error) for r in results.errs]
    assert isinstance(results[7].error, poolkit.WorkerCrashed)  # type: ignore[union-attr]


def test_large_argument_scattered_once(dask_runner: Any) -> None:
    """A big object scattered once and referenced by its Future in each item is sent once."""
    from .helpers import CountingBlob, size_plus

    client = dask_runner._get_backend()._client
    blob = CountingBlob(5_000_000)
    CountingBlob.pickled = 0
    shared = client.scatter(blob, broadcast=True)
    by_scatter = CountingBlob.pickled
    results = dask_runner.run_all(size_plus, [(shared, x) for x in range(40)])
    assert results.values == [5_000_000 + x for x in range(40)]
    assert CountingBlob.pickled == by_scatter  # running 40 items pickled it no more
    CountingBlob.pickled = 0
    dask_runner.run_all(size_plus, [(blob, x) for x in range(4)])
    assert CountingBlob.pickled >= 1  # sent with the items when not scattered


def test_submit_in_dask_mode(dask_runner: Any) -> None:
    """submit returns a Future of a Result."""
    assert dask_runner.submit(double_or_raise, 4).result(timeout=30).unwrap() == 8


def test_client_is_used_and_not_closed() -> None:
    """client= uses the user's Client and leaves it open."""
    with (
        distributed.LocalCluster(
            n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        results = poolkit.run_all(double_or_raise, [1, 2], mode="dask", client=client)
        assert results.values == [2, 4]
        assert client.status == "running"


def _dask_cli(*args: str) -> list[str]:
    script = Path(sys.executable).parent / "dask"
    return [str(script), *args]


@contextlib.contextmanager
def dask_cli_cluster(tmp_path: Path, workers: int) -> Iterator[tuple[str, list[Any]]]:
    """A scheduler and ``workers`` workers (no nanny) started with the dask CLI on
    127.0.0.1, as subprocesses stopped by pid; yields (address, processes): the
    workers, then the scheduler last."""
    scheduler_file = tmp_path / "scheduler.json"
    root = str(Path(__file__).resolve().parents[1])  # workers import tests.helpers
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    quiet: dict[str, Any] = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "env": env}
    scheduler = subprocess.Popen(
        _dask_cli(
            "scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--no-dashboard",
            "--scheduler-file",
            str(scheduler_file),
        ),
        **quiet,
    )
    started: list[subprocess.Popen[bytes]] = []
    try:
        # (the file exists before the scheduler has written it: read it until it parses)
        assert wait_until(lambda: _address_in(scheduler_file) is not None, timeout=30)
        for _ in range(workers):
            started.append(
                subprocess.Popen(
                    _dask_cli(
                        "worker",
                        "--scheduler-file",
                        str(scheduler_file),
                        "--nthreads",
                        "1",
                        "--no-nanny",
                        "--no-dashboard",
                        "--host",
                        "127.0.0.1",
                    ),
                    **quiet,
                )
            )
        address = _address_in(scheduler_file)
        assert address is not None
        with distributed.Client(address) as probe:
            probe.wait_for_workers(workers, timeout=30)
        yield address, [*started, scheduler]
    finally:
        for process in [*started, scheduler]:
            process.kill()
        for process in [*started, scheduler]:
            process.wait(10)


def _address_in(scheduler_file: Path) -> str | None:
    """The scheduler's address, once its file is written whole."""
    import json

    try:
        address: str = json.loads(scheduler_file.read_text())["address"]
    except (OSError, ValueError, KeyError):
        return None
    return address


def test_cluster_from_the_dask_command_line(tmp_path: Path) -> None:
    """A scheduler and two workers started with the dask CLI; one worker killed mid-batch."""
    with dask_cli_cluster(tmp_path, 2) as (address, workers):
        retry = poolkit.Retry(attempts=3, on=poolkit.WorkerCrashed, backoff=0)
        with poolkit.runner("dask", address=address) as runner:
            stream = runner.stream(nap, [0.05] * 60, retry=retry)
            results = []
            for n, result in enumerate(stream):
                results.append(result)
                if n == 5:
                    os.kill(workers[0].pid, signal.SIGKILL)
    assert len(results) == 60
    odd = [r for r in results if not (r.is_ok() or isinstance(r.error, poolkit.WorkerCrashed))]
    assert not odd, odd[:3]
    assert sum(r.is_ok() for r in results) >= 55


def test_missing_extra_message() -> None:
    """Without dask installed, mode='dask' names the extra to install."""
    code = (
        "import sys; sys.modules['distributed'] = None\n"
        "import poolkit\n"
        "try:\n    poolkit.run_all(abs, [1], mode='dask')\n"
        "except ImportError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "poolkit[dask]" in out.stdout


def test_timeout_clock_starts_on_the_cluster_not_in_poolkits_queue(dask_runner: Any) -> None:
    """20 items of 0.4 s, timeout=1.0, 2 workers: every item is Ok, as in thread mode."""
    results = dask_runner.run_all(nap, [0.4] * 20, timeout=1.0)
    assert results.all_ok, results.summary()


def test_a_cluster_with_no_workers_left_ends_the_batch(tmp_path: Path) -> None:
    """A scheduler and one worker (no nanny) from the dask CLI; the worker is killed
    mid-batch: the batch ends with a clear error instead of waiting forever."""
    import threading

    box: dict[str, Any] = {}
    with (
        dask_cli_cluster(tmp_path, 1) as (address, workers),
        poolkit.runner("dask", address=address, no_workers_timeout=2.0) as r,
    ):
        thread = threading.Thread(
            target=lambda: box.setdefault("r", r.run_all(nap, [0.5] * 20)), daemon=True
        )
        thread.start()
        time.sleep(1.0)  # a moment into the batch (fault injection, not synchronization)
        os.kill(workers[0].pid, signal.SIGKILL)
        thread.join(60)
        assert not thread.is_alive(), "the batch waited forever for workers"
    results = box["r"]
    assert len(results) == 20
    errors = {f"{type(r.error).__name__}: {r.error}" for r in results if r.is_err()}
    assert any("no workers" in e for e in errors), errors


def test_two_batches_on_one_runner_keep_their_own_timeout_rule(dask_runner: Any) -> None:
    """A batch without a timeout cannot switch off another batch's one-item-per-task rule
    (it was a flag on the shared backend): the timed batch's items never wait in a chunk."""
    import threading

    box: dict[str, Any] = {}
    timed = threading.Thread(
        target=lambda: box.setdefault("r", dask_runner.run_all(nap, [0.3] * 12, timeout=2.0))
    )
    timed.start()
    for _ in range(5):
        dask_runner.run_all(nap, [0.0] * 100)
    timed.join(120)
    assert box["r"].all_ok, box["r"].summary()


def test_elapsed_is_the_items_own_time_not_its_wait_in_the_chunk() -> None:
    """Eight 0.1 s items in one chunk on one worker: each reports about 0.1 s."""
    with poolkit.runner("dask", workers=1, chunksize=8) as r:
        results = r.run_all(nap, [0.1] * 8)
    assert results.all_ok
    assert max(res.elapsed for res in results) < 0.5  # the last waited 0.7 s in its chunk


def _consume_killing(stream: Any, after: int, kill: Any) -> list[Any]:
    """Read a stream to its end, calling ``kill()`` once ``after`` results have come."""
    results = []
    for n, result in enumerate(stream):
        results.append(result)
        if n + 1 == after:
            kill()
    return results


def _scheduler_pid(processes: list[Any]) -> int:
    pid: int = processes[-1].pid
    return pid


def test_scheduler_killed_mid_batch_ends_the_batch(tmp_path: Path) -> None:
    """The scheduler is SIGKILLed after 3 results: every item still gets a Result, the
    batch ends within a bound, and the errors say what happened."""
    from .test_no_hang import bounded

    with dask_cli_cluster(tmp_path, 2) as (address, processes):
        scheduler_pid = _scheduler_pid(processes)
        runner = poolkit.runner("dask", address=address, no_workers_timeout=3.0)
        try:
            stream = runner.stream(nap, [0.2] * 40)
            results = bounded(
                lambda: _consume_killing(stream, 3, lambda: os.kill(scheduler_pid, 9)), 90
            )
        finally:
            bounded(runner.close, 60)
    assert len(results) == 40
    assert sorted(r.index for r in results) == list(range(40))
    failed = [r for r in results if r.is_err()]
    assert failed, "no item noticed the scheduler's death"
    messages = " ".join(str(r.error) for r in failed)
    assert "scheduler" in messages or "no workers" in messages, messages[:300]


def test_client_restart_mid_batch_gives_every_item_a_result() -> None:
    """client.restart() cancels poolkit's futures: their items end with an error that
    says so (they were dropped and the batch waited forever)."""
    from .test_no_hang import bounded

    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        stream = poolkit.stream(nap, [0.2] * 40, mode="dask", client=client)
        results = bounded(lambda: _consume_killing(stream, 3, client.restart), 120)
    assert sorted(r.index for r in results) == list(range(40))
    failed = [r for r in results if r.is_err()]
    assert failed, "the restart cancelled nothing"
    assert all(
        "cancelled" in str(r.error) or "restart" in str(r.error) or "no workers" in str(r.error)
        for r in failed
    ), {str(r.error) for r in failed}


def test_futures_are_released_when_the_batch_ends() -> None:
    """After a batch with a crashing item on the user's client, no future of poolkit's
    stays pinned on the cluster (a KilledWorker traceback held them)."""
    import gc

    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        results = poolkit.run_all(exit_on(7), range(20), mode="dask", client=client)
        assert len(results) == 20
        assert isinstance(results[7].error, poolkit.WorkerCrashed)
        gc.collect()
        assert wait_until(lambda: not client.futures, timeout=30), list(client.futures)[:5]


@pytest.mark.parametrize(("on_timeout", "work"), [("interrupt", "spin"), ("restart-worker", "nap")])
def test_a_timed_out_task_does_not_hold_the_next_batch(on_timeout: str, work: str) -> None:
    """One worker thread; an item runs 60 s and times out after 1 s: the next batch
    does not wait behind the abandoned call (it took the full 60 s)."""
    from .helpers import spin

    fn = spin if work == "spin" else nap
    with poolkit.runner("dask", workers=1, on_timeout=on_timeout) as r:
        first = r.run_all(fn, [60.0], timeout=1.0)
        assert isinstance(first[0].error, poolkit.TaskTimeout)
        began = time.monotonic()
        second = r.run_all(identity, range(4))
        took = time.monotonic() - began
    assert second.values == [0, 1, 2, 3]
    assert took < 40, f"the second batch waited {took:.0f} s behind the abandoned call"


def test_on_timeout_is_checked_when_the_runner_is_built() -> None:
    with pytest.raises(ValueError, match="on_timeout"):
        poolkit.runner("dask", workers=1, on_timeout="kill-everything")  # type: ignore[typeddict-item]


def test_workers_that_cannot_import_the_function_say_what_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The function lives in a module only this process can import (the workers run in
    another environment): every item ends, and the error names the missing module."""
    from .test_no_hang import bounded

    (tmp_path / "only_here_mod.py").write_text("def double(x):\n    return 2 * x\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import only_here_mod  # type: ignore[import-not-found]

    with dask_cli_cluster(tmp_path, 1) as (address, _):
        results = bounded(
            lambda: poolkit.run_all(
                only_here_mod.double, range(4), mode="dask", address=address, no_workers_timeout=5
            ),
            90,
        )
    assert len(results) == 4
    assert not results.oks
    assert all("only_here_mod" in str(r.error) for r in results.errs), {
        str(r.error) for r in results.errs
    }


def test_a_deadline_keeps_the_work_finished_before_it(dask_runner: Any) -> None:
    """After a batch of trivial items, 40 items of 0.5 s with deadline=2 on 2 workers:
    the items finished before the deadline are Ok (0 were: the runner sized the new
    batch's chunks by the old batch's speed, 10 slow items a chunk, all thrown away)."""
    dask_runner.run_all(identity, range(200))
    results = dask_runner.run_all(nap, [0.5] * 40, deadline=2.0)
    assert len(results.oks) >= 3, results.summary()
    late = [r for r in results.errs if not isinstance(r.error, poolkit.DeadlineExceeded)]
    assert not late, late[:3]


def test_one_bad_item_costs_few_worker_deaths(tmp_path: Path) -> None:
    """On a user's cluster (nannies, Dask's default allowed-failures of 3), one item that
    kills its worker: Dask's own retries of its chunk cost 4 deaths, and poolkit's probe
    then costs one more, not four (the probe is pinned to one worker and the culprit
    is named when that worker is gone). The innocent suspects are Ok."""
    from .crashers import exit_on_noting
    from .test_no_hang import bounded

    deaths = tmp_path / "deaths.log"
    with (
        distributed.LocalCluster(
            n_workers=3, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        results = bounded(
            lambda: poolkit.run_all(
                exit_on_noting(7, str(deaths)), range(30), mode="dask", client=client
            ),
            120,
        )
    assert [r.index for r in results.errs] == [7], [repr(r.error) for r in results.errs]
    assert isinstance(results[7].error, poolkit.WorkerCrashed)
    count = len(deaths.read_text().splitlines())
    assert count <= 5, f"{count} worker deaths for one bad item"


def test_a_deadline_keeps_what_finished_inside_a_running_chunk(dask_runner: Any) -> None:
    """40 items of 0.3 s in chunks of 10, deadline=2 s: the items that finished inside
    the running chunks before the deadline are Ok (none were: a chunk's results came
    only at its end, 3 s in), in the bulk lane (a list) and per item (a generator)."""
    for items in ([0.3] * 40, (0.3 for _ in range(40))):
        with poolkit.runner("dask", workers=2, chunksize=10) as runner:
            runner.run_all(identity, range(4))  # the cluster is up before the clock runs
            results = runner.run_all(nap, items, deadline=2.0)
        assert len(results) == 40
        assert len(results.oks) >= 2, results.summary()
        assert all(isinstance(r.error, poolkit.DeadlineExceeded) for r in results.errs)


def test_small_items_go_in_few_dask_tasks(dask_runner: Any) -> None:
    """20,000 trivial items: chunks grow to the largest size and stay there (items that
    came back a few at a time went out as tasks of two while every worker was busy:
    about 50 tasks, each a round trip of milliseconds)."""
    dask_runner.run_all(identity, range(100))
    client = dask_runner._get_backend()._client
    with distributed.get_task_stream(client) as stream:
        results = dask_runner.run_all(identity, range(20_000))
    assert results.all_ok
    assert results.values == list(range(20_000))
    # a new batch is measured afresh: chunks of 2 until the first comes back (3 per
    # worker in flight), then chunks of up to 1024 (a chunk never spans two of the
    # engine's runs, so a run's remainder may go alone), and a tail: 26-32 here
    assert len(stream.data) <= 2 * (20_000 // 1024) + 6, len(stream.data)


def test_an_adaptive_cluster_sees_the_queued_work_and_grows() -> None:
    """An adaptive cluster of 0 to 4 workers and 40 items of 0.5 s: the scheduler sees
    enough of the batch to grow to at least 3 workers (it stayed at 1: poolkit kept 2
    tasks per thread in flight, too little queued work to scale on)."""
    from .test_no_hang import bounded

    with (
        distributed.LocalCluster(
            n_workers=0, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        cluster.adapt(minimum=0, maximum=4)
        most = [0]
        done = threading.Event()

        def watch() -> None:
            while not done.wait(0.2):
                most[0] = max(most[0], len(client.scheduler_info()["workers"]))

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        try:
            results = bounded(
                lambda: poolkit.run_all(nap, [0.5] * 40, mode="dask", client=client), 120
            )
        finally:
            done.set()
            watcher.join(10)
    assert results.all_ok, results.summary()
    assert most[0] >= 3, f"the cluster grew to {most[0]} workers"
