"""Big data in process mode: large buffers through shared memory, ``poolkit.shared``.

Real NumPy arrays, real worker processes; every test also checks that no shared-memory
segment is left behind in /dev/shm.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import poolkit
from poolkit import WorkerCrashed

SHM = Path("/dev/shm")


def _segments() -> set[str]:
    return {p.name for p in SHM.iterdir() if p.name.startswith("psm_")} if SHM.exists() else set()


@pytest.fixture
def no_leftover_segments() -> Iterator[None]:
    before = _segments()
    yield
    left = _segments() - before
    assert not left, f"shared memory left behind: {sorted(left)}"


def how_it_arrived(array: Any) -> tuple[float, str]:
    """The array's sum, and what its memory belongs to in the worker."""
    owner = array
    while isinstance(owner, np.ndarray) and owner.base is not None:
        owner = owner.base
    if isinstance(owner, memoryview):
        owner = owner.obj
    return float(array.sum()), type(owner).__name__


def sum_or_die(array: Any) -> float:
    if array[0] == -1:
        os._exit(7)
    return float(array.sum())


@pytest.mark.usefixtures("no_leftover_segments")
def test_large_arrays_travel_through_shared_memory_zero_copy() -> None:
    """Arrays of 2 MB arrive mapped from shared memory (not unpickled from the pipe),
    small ones in the pickle; the values are exact and nothing is left in /dev/shm."""
    big = [np.full(250_000, i, dtype=np.float64) for i in range(6)]  # 2 MB each
    small = [np.full(10, i, dtype=np.float64) for i in range(3)]
    with poolkit.runner("process", workers=2) as runner:
        results = runner.run_all(how_it_arrived, big + small)
    sums = [value[0] for value in results.values]
    assert sums == [250_000.0 * i for i in range(6)] + [10.0 * i for i in range(3)]
    assert {value[1] for value in results.values[:6]} == {"mmap"}
    assert "mmap" not in {value[1] for value in results.values[6:]}


@pytest.mark.usefixtures("no_leftover_segments")
def test_a_crash_with_large_items_in_flight_leaves_no_segment() -> None:
    """The worker dies holding a chunk in shared memory: its item is charged, the
    others run again, and the parent unlinks the segment."""
    arrays = [np.full(200_000, i, dtype=np.float64) for i in range(8)]
    arrays[3][0] = -1
    results = poolkit.run_all(sum_or_die, arrays, mode="process", workers=2)
    assert isinstance(results[3].error, WorkerCrashed)
    assert [r.index for r in results.oks] == [0, 1, 2, 4, 5, 6, 7]


TABLE = None  # set per test: a Shared array captured by the function below


def lookup(i: int) -> tuple[float, bool]:
    """A value of the shared table, and whether the worker reads it in place."""
    assert TABLE is not None
    array = TABLE.value
    return float(array[i]), not array.flags.owndata


@pytest.mark.usefixtures("no_leftover_segments")
def test_shared_sends_one_object_once_and_releases_it() -> None:
    """poolkit.shared: every worker reads the same 8 MB array in place, over several
    batches; release() (or dropping it) unlinks its memory."""
    table = poolkit.shared(np.arange(1_000_000, dtype=np.float64))

    def read(i: int) -> tuple[float, bool]:
        array = table.value
        return float(array[i]), not array.flags.owndata

    with poolkit.runner("process", workers=2) as runner:
        for _ in range(3):
            results = runner.run_all(read, [0, 999_999, 12_345] * 4)
            assert [v[0] for v in results.values] == [0.0, 999_999.0, 12_345.0] * 4
            assert all(v[1] for v in results.values)
    assert table.value[5] == 5.0  # the parent's own copy is untouched
    table.release()


def test_shared_in_thread_and_serial_mode_is_the_object_itself() -> None:
    """Without processes there is nothing to send: .value is the very object."""
    data = {"k": [1, 2, 3]}
    wrapped = poolkit.shared(data)
    for mode in ("serial", "thread"):
        assert poolkit.run_all(lambda _: wrapped.value is data, [0], mode=mode).values == [True]


def test_the_docs_example_runs_as_written(tmp_path: Path) -> None:
    """docs/process.md's poolkit.shared example, run as a script."""
    import re
    import subprocess
    import sys

    page = (Path(__file__).parent.parent / "docs" / "process.md").read_text()
    (block,) = [b for b in re.findall(r"```python\n(.*?)```", page, re.S) if "shared(" in b]
    script = tmp_path / "example.py"
    script.write_text(block)
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["[499500.0, 1499500.0]"] * 3


KILLED_PARENT = """
import sys, time, numpy as np, poolkit

def hold(array):
    print("holding", flush=True)  # (the worker writes to the parent's stdout)
    time.sleep(60)

if __name__ == "__main__":
    table = poolkit.shared(np.ones(300_000))
    with poolkit.runner("process", workers=1) as runner:
        runner.run_all(lambda i: float(table.value[i]), [0])  # table's segment exists
        print("ready", flush=True)
        runner.run_all(hold, [np.ones(300_000)])  # and a chunk's, while the item runs
"""


@pytest.mark.skipif(not SHM.exists(), reason="needs /dev/shm")
def test_a_parent_killed_mid_batch_leaves_no_segment(tmp_path: Path) -> None:
    """SIGKILL the parent while a shared object and a chunk's large buffer are in shared
    memory: multiprocessing's resource tracker unlinks both."""
    import signal
    import subprocess
    import sys

    from .conftest import wait_until

    script = tmp_path / "killed.py"
    script.write_text(KILLED_PARENT)
    before = _segments()
    with subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as child:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        assert child.stdout.readline().strip() == "holding"  # the chunk's segment is whole
        assert len(_segments() - before) >= 2
        child.send_signal(signal.SIGKILL)
        child.communicate(timeout=30)
    assert wait_until(lambda: not (_segments() - before), timeout=30), (
        f"left behind: {sorted(_segments() - before)}"
    )
