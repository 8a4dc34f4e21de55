"""The architecture, checked: no import cycles, and no import against the layers.

The layers read API -> runners -> core <- backends, with the value modules
(results, errors, policies, options, progress, streams) at the bottom. Imports inside
functions (lazy loading) and under ``TYPE_CHECKING`` are not edges of the graph.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import poolkit

ROOT = Path(poolkit.__file__).parent
VALUES = {
    "_errors",
    "_results",
    "_summary",
    "_policies",
    "_options",
    "_progress",
    "_shared",
    "_shm",
    "_stream",
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _top_level_imports(path: Path) -> set[str]:
    """poolkit modules imported at import time (not in functions, not for type checking)."""
    tree = ast.parse(path.read_text())
    package = (
        _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    )
    found: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("poolkit")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            if target.startswith("poolkit"):
                found.add(target)
                found |= {f"{target}.{a.name}" for a in node.names}
    modules = {_module_name(p) for p in ROOT.rglob("*.py")}
    return {name for name in found if name in modules} - {_module_name(path)}


GRAPH = {_module_name(p): _top_level_imports(p) for p in ROOT.rglob("*.py")}


def _layer(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "package"
    head = parts[1]
    if head in VALUES:
        return "values"
    return head  # _core, _backends, _runners, _api, download, testing, _cli, ...


FORBIDDEN = {
    "values": {"_core", "_backends", "_runners", "_api"},
    "_core": {"_backends", "_runners", "_api"},
    "_backends": {"_runners", "_api"},
    "_runners": {"_api"},
}


def test_no_import_against_the_layers() -> None:
    """The core never imports a backend or a runner; backends never import runners."""
    wrong = [
        f"{module} imports {target}"
        for module, targets in GRAPH.items()
        for target in targets
        if _layer(target) in FORBIDDEN.get(_layer(module), set())
    ]
    assert not wrong, "\n".join(sorted(wrong))


def test_consumers_use_public_names() -> None:
    """The downloader imports only poolkit's public names (it is an example of using them)."""
    wrong = [
        f"{module} imports {target}"
        for module, targets in GRAPH.items()
        if module.startswith("poolkit.download")
        for target in targets
        if not target.startswith("poolkit.download") and target != "poolkit"
    ]
    assert not wrong, "\n".join(wrong)


def test_no_import_cycle() -> None:
    """The import graph of poolkit's modules has no cycle (package __init__ re-exports aside)."""
    graph = {m: {t for t in ts if not poolkit_package(t, m)} for m, ts in GRAPH.items()}
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                cycle = [*path[path.index(target) :], target]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target)
        path.pop()
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)


def poolkit_package(target: str, module: str) -> bool:
    """An import of a package's own __init__ by one of its submodules is not a cycle edge."""
    return module.startswith(target + ".")


def test_the_checker_sees_a_cycle() -> None:
    """The cycle check fails on a graph with a cycle (so the test above can fail)."""
    from collections.abc import Callable

    check: Callable[[], None] = test_no_import_cycle
    saved = dict(GRAPH)
    try:
        GRAPH["poolkit._core._engine"] = {"poolkit._core._drive"}
        GRAPH["poolkit._core._drive"] = {"poolkit._core._engine"}
        with pytest.raises(AssertionError, match="import cycle"):
            check()
    finally:
        GRAPH.clear()
        GRAPH.update(saved)


def test_the_testing_kit_uses_public_names() -> None:
    """poolkit.testing imports public names, except the one seam it documents (_attempt)."""
    wrong = [
        f"{module} imports {target}"
        for module, targets in GRAPH.items()
        if module.startswith("poolkit.testing")
        for target in targets
        if not target.startswith("poolkit.testing")
        and target not in ("poolkit", "poolkit._core", "poolkit._core._attempt")
    ]
    assert not wrong, "\n".join(wrong)
