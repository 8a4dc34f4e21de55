"""The docs' examples run as written: every python block of every page and the README.

A page's blocks run in order in one namespace, as a reader goes down the page (a page
that builds on its first example says so). A block whose first line is a comment
starting with ``# not run`` needs what a test cannot have (a Dask scheduler of your
own) and says so to the reader too. Blocks run in a scratch folder, so files they
write (``dest="pages/"``) land there.
"""

from __future__ import annotations

import logging
import re
import textwrap
from pathlib import Path

import pytest

DOCS = Path(__file__).parent.parent / "docs"
PAGES = sorted(p.name for p in DOCS.glob("*.md") if "```python" in p.read_text())
README = Path(__file__).parent.parent / "README.md"
_BLOCK = re.compile(r"^( *)```python\n(.*?)^\1```", re.S | re.M)


def _blocks(path: Path) -> list[str]:
    found = [textwrap.dedent(body) for _, body in _BLOCK.findall(path.read_text())]
    return [b for b in found if not b.lstrip().startswith("# not run")]


def test_every_page_with_examples_is_tested() -> None:
    """The list below cannot go stale: it is every page with a python block."""
    assert {"index.md", "policies.md", "runners.md", "downloader.md"} <= set(PAGES)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("page", PAGES)
def test_examples_run(page: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every python block of the page runs without error, top to bottom."""
    monkeypatch.chdir(tmp_path)
    blocks = _blocks(DOCS / page)
    assert blocks
    namespace = {"__name__": "docs_example"}
    # (a page may configure logging, as the observability page does: not for later tests)
    root, ours = logging.getLogger(), logging.getLogger("poolkit")
    saved = root.level, list(root.handlers), ours.level
    try:
        for number, block in enumerate(blocks):
            exec(compile(block, f"{page} (python block {number + 1})", "exec"), namespace)
    finally:
        root.setLevel(saved[0])
        root.handlers[:] = saved[1]
        ours.setLevel(saved[2])


def test_readme_example_runs() -> None:
    """The README's example runs as written."""
    (block,) = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    exec(compile(block, "README.md", "exec"), {"__name__": "readme_example"})
