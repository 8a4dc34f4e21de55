"""Bad arguments fail before any work starts, with messages that say what is accepted."""

from __future__ import annotations

from typing import Any

import pytest

import poolkit

from .helpers import identity


def _never(_: Any) -> None:
    raise AssertionError("no work may start for bad arguments")


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"mode": "gpu"}, ValueError, "unknown mode 'gpu'; expected one of 'serial'"),
        ({"workers": 0}, ValueError, "workers=0: expected an int >= 1"),
        ({"workers": 2.5}, TypeError, "workers=2.5: expected an int"),
        ({"timeout": 0}, ValueError, "timeout=0: expected seconds as a number > 0"),
        ({"timeout": -1.0}, ValueError, "timeout=-1.0"),
        ({"timeout": "5"}, TypeError, "timeout='5'"),
        ({"deadline": 0}, ValueError, "deadline=0"),
        ({"retry": 3}, TypeError, "retry=3: expected poolkit.Retry"),
        ({"cancel": True}, TypeError, "cancel=True: expected a poolkit.CancelToken"),
        ({"rate_limit": "fast"}, TypeError, "rate_limit='fast'"),
        ({"max_in_flight": 0}, ValueError, "max_in_flight=0"),
        ({"fail_fast": "yes"}, TypeError, "fail_fast='yes'"),
        ({"on_result": 5}, TypeError, "on_result=5: expected a callable"),
        ({"progress": "loud"}, TypeError, "progress='loud'"),
        ({"chunksize": 4}, TypeError, "mode 'thread' got unexpected option"),
    ],
)
def test_bad_arguments(kwargs: dict[str, Any], error: type[Exception], message: str) -> None:
    """Each bad argument raises the right error type with a helpful message."""
    with pytest.raises(error, match=message.replace("(", r"\(").replace(".", r"\.")):
        poolkit.run_all(_never, [1], **kwargs)


def test_fn_not_callable() -> None:
    """A non-callable fn is a TypeError naming it."""
    with pytest.raises(TypeError, match="fn=42 is not callable"):
        poolkit.run_all(42, [1])  # type: ignore[call-overload]


def test_items_not_iterable() -> None:
    """Non-iterable items is a TypeError naming them."""
    with pytest.raises(TypeError, match="items=7 is not iterable"):
        poolkit.run_all(identity, 7)  # type: ignore[call-overload]


def test_policy_objects_validate_when_built() -> None:
    """Retry and RateLimit reject bad values at construction."""
    with pytest.raises(ValueError, match="attempts must be an int >= 1"):
        poolkit.Retry(attempts=0)
    with pytest.raises(TypeError, match="on must be an exception type"):
        poolkit.Retry(on="ValueError")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="backoff must be"):
        poolkit.Retry(backoff="slow")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="per_second must be a number > 0"):
        poolkit.RateLimit(per_second=-1)
    with pytest.raises(ValueError, match="burst must be an int >= 1"):
        poolkit.RateLimit(per_second=1, burst=0)


def test_process_options_are_checked() -> None:
    """Process mode rejects bad options with their names."""
    with pytest.raises(ValueError, match="max_tasks_per_child=0"):
        poolkit.run_all(_never, [1], mode="process", max_tasks_per_child=0)
    with pytest.raises(ValueError, match="start_method='teleport'"):
        poolkit.run_all(_never, [1], mode="process", start_method="teleport")


def test_runner_instance_rejects_workers() -> None:
    """workers= belongs to poolkit.runner, not to a call given a Runner."""
    with poolkit.runner("serial") as r, pytest.raises(TypeError, match=r"poolkit\.runner"):
        poolkit.run_all(identity, [1], mode=r, workers=3)
