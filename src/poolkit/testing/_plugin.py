"""The pytest plugin: run a test under every mode available here.

Fixtures:
    ``poolkit_mode``: the name of each mode ("serial", "thread", "process", "async",
    and "dask" when the extra is installed and ``--poolkit-dask`` is given).
    ``poolkit_runner``: a runner of that mode, closed after the test.

Example (in your tests)::

    def test_my_task(poolkit_runner):
        results = poolkit_runner.run_all(my_task, [1, 2, 3])
        assert results.all_ok
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from typing import Any

import pytest

LOCAL_MODES = ("serial", "thread", "process", "async")


def pytest_addoption(parser: Any) -> None:
    group = parser.getgroup("poolkit")
    group.addoption(
        "--poolkit-dask",
        action="store_true",
        default=False,
        help="also run poolkit_mode/poolkit_runner tests in dask mode (starts a LocalCluster)",
    )


def available_modes(config: Any) -> list[str]:
    """The modes this machine can run; dask only when installed and asked for."""
    modes = list(LOCAL_MODES)
    if config.getoption("--poolkit-dask", False) and importlib.util.find_spec("distributed"):
        modes.append("dask")
    return modes


def pytest_generate_tests(metafunc: Any) -> None:
    if "poolkit_mode" in metafunc.fixturenames:
        metafunc.parametrize("poolkit_mode", available_modes(metafunc.config))


@pytest.fixture
def poolkit_runner(poolkit_mode: str) -> Iterator[Any]:
    """A poolkit runner for ``poolkit_mode`` (2 workers), closed after the test."""
    import poolkit

    with poolkit.runner(poolkit_mode, workers=2) as runner:
        yield runner
