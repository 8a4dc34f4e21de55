"""The public namespace: complete, sorted, documented."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import poolkit
import poolkit.testing


def test_all_is_sorted_and_complete() -> None:
    """__all__ is sorted and names every public attribute of the package."""
    assert poolkit.__all__ == sorted(poolkit.__all__)
    for name in poolkit.__all__:  # names load on first use (PEP 562)
        getattr(poolkit, name)
    assert set(poolkit.__all__) <= set(dir(poolkit))
    public = {n for n in vars(poolkit) if n.isidentifier() and not n.startswith("_")}
    submodules = {m.name for m in pkgutil.iter_modules(poolkit.__path__)}
    assert public - submodules - {"annotations"} == set(poolkit.__all__)


def test_contract_names_exist() -> None:
    """Every name the contract promises is exported."""
    for name in (
        "run_all",
        "stream",
        "arun_all",
        "astream",
        "runner",
        "Runner",
        "ExecutorRunner",
        "Ok",
        "Err",
        "Result",
        "Results",
        "Retry",
        "RateLimit",
        "CancelToken",
        "PoolkitError",
        "TaskTimeout",
        "DeadlineExceeded",
        "Cancelled",
        "WorkerCrashed",
        "HookError",
    ):
        assert name in poolkit.__all__, name


def test_every_public_name_has_a_docstring() -> None:
    """Every exported class and function is documented."""
    for module in (poolkit, poolkit.testing):
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isclass(obj) or inspect.isfunction(obj):
                assert (obj.__doc__ or "").strip(), f"{module.__name__}.{name}"


def test_error_tree() -> None:
    """The error classes subclass PoolkitError and the builtins users catch."""
    for error in (
        poolkit.TaskTimeout,
        poolkit.DeadlineExceeded,
        poolkit.Cancelled,
        poolkit.WorkerCrashed,
        poolkit.HookError,
    ):
        assert issubclass(error, poolkit.PoolkitError)
    assert issubclass(poolkit.TaskTimeout, TimeoutError)
    assert issubclass(poolkit.DeadlineExceeded, TimeoutError)


def test_version_and_private_modules() -> None:
    """__version__ comes from metadata; private modules are underscored."""
    assert poolkit.__version__
    for info in pkgutil.iter_modules(poolkit.__path__):
        assert info.name.startswith("_") or info.name in {"testing", "download"}, info.name
        if info.name != "__main__":  # importing it runs the command line
            importlib.import_module(f"poolkit.{info.name}")


def test_importing_poolkit_does_not_import_dask() -> None:
    """dask stays unimported until dask mode is used."""
    import subprocess
    import sys

    code = "import sys, poolkit; print('distributed' in sys.modules or 'dask' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_import_is_lazy() -> None:
    """``import poolkit`` loads no engine, backend or runner until a name is used, and a
    process-mode worker loads none of the parent's side (cold start, issue 17)."""
    import subprocess
    import sys

    code = (
        "import sys, poolkit, poolkit._backends._process._child\n"
        "heavy = [m for m in sys.modules if m.startswith(('poolkit._api', 'poolkit._runners',"
        " 'poolkit._core._engine', 'poolkit._backends._process._pool', 'poolkit._options',"
        " 'poolkit._policies'))]\n"
        "assert not heavy, heavy\n"
        "assert 'tenacity' not in sys.modules and 'asyncio' not in sys.modules\n"
        "poolkit.run_all\n"
        "assert 'poolkit._api' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
