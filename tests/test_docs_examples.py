"""The docs' examples run as written (pages whose python blocks are all self-contained)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).parent.parent / "docs"
PAGES = ["executor.md", "concurrency.md", "lesson.md"]
README = Path(__file__).parent.parent / "README.md"


def _blocks(page: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", (DOCS / page).read_text(), re.S)


@pytest.mark.parametrize("page", PAGES)
def test_examples_run(page: str) -> None:
    """Every python block of the page runs without error."""
    blocks = _blocks(page)
    assert blocks
    for block in blocks:
        exec(compile(block, f"{page}", "exec"), {"__name__": "docs_example"})


def test_readme_example_runs() -> None:
    """The README's example runs as written."""
    (block,) = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    exec(compile(block, "README.md", "exec"), {"__name__": "readme_example"})
