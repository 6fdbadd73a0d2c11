"""The student edition runs top to bottom with no error (issue 26): tests/run_all.sh's "student edition" step.

Not collected by the package step (its name does not start with ``test_``): it runs every chapter, so it
needs a built cache. tests/run_all.sh runs it as
``MINIKIT_BUILT_CACHE=DIR MINIKIT_NO_TRAIN=1 python -m pytest tests/student_notebooks.py``.

The student edition is built into a temporary folder with ``minikit.editions`` (as ``make student`` does),
then each chapter runs in a fresh kernel, on the session's one copy of the built cache (the root
conftest.py makes it), with nbclient: a cell that raises fails the test and names the cell. Every
exercise is left unanswered, as a learner first opens it: each check must say "not answered yet", and
each implement-it exercise's next cells must run on minikit's own implementation.

The chapters run in course order, or last chapter first with ``MINIKIT_NOTEBOOK_ORDER=reverse``, as
tests/run_all.sh runs them: that one pass also shows the course runs in any order on a shared cache
(chapter 10 first finds only what the build made), which a separate reverse-order nbval pass used to show.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from minikit import editions

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
ALL = sorted(NOTEBOOKS.glob("[0-9]*.ipynb"))
if os.environ.get("MINIKIT_NOTEBOOK_ORDER", "course") == "reverse":  # validated by the root conftest.py
    ALL.reverse()
TIMEOUT_S = 900  # a cell; the whole course takes a few minutes with a built cache


@pytest.fixture(scope="module")
def student(tmp_path_factory) -> Path:
    if not os.environ.get("MINIKIT_BUILT_CACHE"):
        pytest.skip("needs MINIKIT_BUILT_CACHE (a cache made by `python -m minikit build`), as tests/run_all.sh sets")
    out = tmp_path_factory.mktemp("student")
    editions.write_student_edition(NOTEBOOKS, out)
    return out


def _text(cell) -> str:
    return "\n".join("".join(o.get("text", "")) + "".join(o.get("data", {}).get("text/plain", ""))
                     for o in cell.get("outputs", []))


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.stem)
def test_the_student_edition_runs_top_to_bottom(student, path):
    notebook = nbformat.read(student / path.name, as_version=4)
    client = NotebookClient(notebook, timeout=TIMEOUT_S, kernel_name="python3",
                            resources={"metadata": {"path": str(student)}})
    began = time.perf_counter()
    try:
        client.execute()
    except CellExecutionError as error:
        pytest.fail(f"student/{path.name}: a cell raised:\n{str(error)[:3000]}")
    seconds = time.perf_counter() - began
    print(f"student/{path.name}: {len(notebook.cells)} cells in {seconds:.0f} s")
    cells = notebook.cells
    for index, cell in enumerate(cells):
        source = cell.source
        if cell.cell_type == "code" and re.search(r"^answer = None", source, re.M):
            assert "Not answered yet" in _text(cell), f"{path.name} cell {index}: an unanswered check said " \
                f"{_text(cell)[:200]!r}"
        if cell.cell_type == "code" and "minikit.check.use(" in source:
            assert "minikit's own implementation" in _text(cell), f"{path.name} cell {index}: {_text(cell)[:200]!r}"
