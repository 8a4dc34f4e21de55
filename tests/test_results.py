"""Ok, Err and Results: the types users match on."""

from __future__ import annotations

import dataclasses

import pytest

import poolkit
from poolkit import Err, Ok, Results


def test_ok_matches_by_position_and_keyword() -> None:
    """Ok(value) matches positionally and by keyword, and exposes its fields."""
    r = Ok(4, item=2, index=1, attempts=2, elapsed=0.5)
    match r:
        case Ok(value):
            assert value == 4
    match r:
        case Ok(value=v, item=i, index=n, attempts=a):
            assert (v, i, n, a) == (4, 2, 1, 2)
    assert r.is_ok()
    assert not r.is_err()
    assert r.unwrap() == 4
    assert r.unwrap_or(0) == 4


def test_err_matches_and_unwrap_raises_the_error() -> None:
    """Err(error) matches positionally; unwrap raises the very error."""
    error = KeyError("k")
    r = Err(error, item="x", index=0, attempts=3, elapsed=1.0)
    match r:
        case Ok():
            pytest.fail("an Err matched Ok")
        case Err(e):
            assert e is error
    with pytest.raises(KeyError) as caught:
        r.unwrap()
    assert caught.value is error
    assert r.unwrap_or("default") == "default"
    assert r.is_err()
    assert not r.is_ok()


def test_results_are_immutable() -> None:
    """Ok and Err are frozen."""
    with pytest.raises(dataclasses.FrozenInstanceError):
        Ok(1).value = 2  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        Err(ValueError()).error = KeyError()  # type: ignore[misc]


def test_results_sequence_helpers() -> None:
    """Results is a Sequence with oks, errs, values and all_ok in input order."""
    rs: Results[int] = Results([Ok(1, index=0), Err(ValueError("a"), index=1), Ok(3, index=2)])
    assert len(rs) == 3
    assert rs[0].unwrap() == 1
    assert rs[-1].index == 2
    assert [r.index for r in rs.oks] == [0, 2]
    assert [r.index for r in rs.errs] == [1]
    assert rs.values == [1, 3]
    assert not rs.all_ok
    assert Results([]).all_ok
    assert rs[0:2] == [rs[0], rs[1]]


def test_raise_errors_raises_an_exception_group() -> None:
    """raise_errors raises every error in one ExceptionGroup, and nothing when all is well."""
    rs: Results[int] = Results([Err(ValueError("a")), Ok(2), Err(KeyError("b"))])
    with pytest.raises(ExceptionGroup) as caught:
        rs.raise_errors()
    assert [type(e) for e in caught.value.exceptions] == [ValueError, KeyError]
    assert "2 of 3 items failed" in str(caught.value)
    assert Results([Ok(1)]).raise_errors() is None


@dataclasses.dataclass(frozen=True)
class _FrozenError(Exception):
    code: int


def _frozen_on_one(x: int) -> int:
    if x == 1:
        raise _FrozenError(x)
    return x


@pytest.mark.parametrize("mode", ["serial", "thread", "process", "async"])
def test_raise_errors_raises_the_group_when_an_error_refuses_attributes(mode: str) -> None:
    """A frozen dataclass exception refuses add_note: raise_errors raised that
    FrozenInstanceError instead of the ExceptionGroup. The note is added anyway."""
    rs = poolkit.run_all(_frozen_on_one, range(3), mode=mode, workers=2)
    with pytest.raises(ExceptionGroup) as caught:
        rs.raise_errors()
    [error] = caught.value.exceptions
    assert type(error) is _FrozenError
    assert error.__notes__ == ["poolkit: item #1 (1) failed"]
    with pytest.raises(ExceptionGroup):
        rs.raise_errors()  # twice: still one note
    assert error.__notes__ == ["poolkit: item #1 (1) failed"]


def test_summary_counts_and_latencies() -> None:
    """summary() counts outcomes and error types and computes latency percentiles."""
    latencies = [0.01 * n for n in range(1, 101)]
    rs = Results(
        [Ok(n, index=n, elapsed=lat, attempts=1 + n % 2) for n, lat in enumerate(latencies[:90])]
        + [Err(TimeoutError(), index=90 + n, elapsed=lat) for n, lat in enumerate(latencies[90:])],
        wall_time=2.0,
    )
    s = rs.summary()
    assert (s.total, s.ok, s.err) == (100, 90, 10)
    assert s.errors_by_type == {"TimeoutError": 10}
    assert s.p50 == pytest.approx(0.50)
    assert s.p90 == pytest.approx(0.90)
    assert s.p99 == pytest.approx(0.99)
    assert s.max == pytest.approx(1.00)
    assert s.items_per_second == pytest.approx(50.0)
    assert s.attempts_histogram == {1: 55, 2: 45}
    assert s.slowest[0][0] == 99
    text = str(s)
    assert "100  (90 ok, 10 err)" in text
    assert "TimeoutError" in text
    assert "p99" in text


def test_run_all_returns_results_with_wall_time() -> None:
    """run_all's Results knows its wall time, used by summary()."""
    rs = poolkit.run_all(abs, [-1, -2], mode="serial")
    assert rs.wall_time > 0
    assert rs.summary().items_per_second > 0


def test_a_result_retains_under_100_bytes() -> None:
    """100,000 Results of a batch keep under 100 bytes each (tracemalloc, in a fresh
    interpreter): they kept 171, an Ok object, a float and an int per item."""
    import subprocess
    import sys

    code = (
        "import tracemalloc, poolkit\n"
        # the modules a batch imports first are not the Results' memory
        "poolkit.run_all(abs, range(10), mode='serial')\n"
        "tracemalloc.start()\n"
        "kept = poolkit.run_all(abs, range(100_000), mode='serial')\n"
        "print(tracemalloc.get_traced_memory()[0] / len(kept))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert float(out.stdout) < 100, out.stdout
