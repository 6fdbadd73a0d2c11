"""The shape of the notebooks' exercises (issue 22), read from the stored notebooks (nothing is executed).

- Every technique chapter has an implement-it exercise: a stub the learner edits (``raise NotImplementedError``)
  that calls an implement-it check on the learner's function, then a solution cell that passes the same check,
  then a cell that runs the learner's function on the real thing through ``minikit.check.use``.
- The stub's stored output says "Not answered yet" (a check on a stub never raises), and the solution's says ✅.
- Every solution cell is tagged ``solution``, and its code is collapsed in JupyterLab (``source_hidden``).
- Every chapter asks one open "explain" question, with a model answer among the solutions.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from minikit import implement_it

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
ALL = sorted(NOTEBOOKS.glob("[0-9]*.ipynb"))
TECHNIQUE_CHAPTERS = ["03_", "04_", "05_", "06_", "07_", "08_", "10_"]
CHECK_CALL = re.compile(r"minikit\.check\.(\w+)\((\w+)\)")


def cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def source(cell: dict) -> str:
    return "".join(cell["source"])


def output_text(cell: dict) -> str:
    texts = []
    for out in cell.get("outputs", []):
        texts.append("".join(out.get("text", "")))
        texts.append("".join(out.get("data", {}).get("text/plain", "")))
    return "\n".join(texts)


def is_solution(cell: dict) -> bool:
    return "solution" in cell.get("metadata", {}).get("tags", [])


def implement_it_exercises(path: Path) -> list[tuple[int, str]]:
    """(cell index, check name) of every stub that calls an implement-it check on the learner's function."""
    found = []
    for i, cell in enumerate(cells(path)):
        text = source(cell)
        if cell["cell_type"] == "code" and "raise NotImplementedError" in text and not is_solution(cell):
            for name, _ in CHECK_CALL.findall(text):
                if name in implement_it.__all__:
                    found.append((i, name))
    return found


def test_the_implement_it_checks_are_the_ones_minikit_check_exports():
    import minikit.check

    assert len(implement_it.__all__) >= 7
    for name in implement_it.__all__:
        assert getattr(minikit.check, name) is getattr(implement_it, name)


@pytest.mark.parametrize("prefix", TECHNIQUE_CHAPTERS)
def test_each_technique_chapter_has_an_implement_it_exercise_whose_function_is_then_used(prefix):
    (path,) = [p for p in ALL if p.name.startswith(prefix)]
    exercises = implement_it_exercises(path)
    assert exercises, f"{path.name}: no implement-it exercise (a stub calling one of {implement_it.__all__})"
    nb = cells(path)
    for index, name in exercises:
        assert "Not answered yet" in output_text(nb[index]), f"{path.name} cell {index}: the stub's stored output"
        later = nb[index + 1:]
        solution = next((c for c in later if is_solution(c) and f"minikit.check.{name}(" in source(c)), None)
        assert solution is not None, f"{path.name}: no solution cell for the {name} exercise"
        assert "✅ Correct" in output_text(solution), f"{path.name}: the {name} solution does not pass its check"
        used = [c for c in later if not is_solution(c) and "minikit.check.use(" in source(c)
                and f"minikit.check.{name}" in source(c)]
        assert used, f"{path.name}: the learner's function for {name} is never used (minikit.check.use)"


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.stem)
def test_solution_cells_are_tagged_and_collapsed(path):
    for i, cell in enumerate(cells(path)):
        text = source(cell)
        if cell["cell_type"] == "code" and ("# Solution" in text or "**Model answer" in text):
            assert is_solution(cell), f"{path.name} cell {i} is a solution without the `solution` tag"
        if cell["cell_type"] == "code" and is_solution(cell):
            assert cell["metadata"].get("jupyter", {}).get("source_hidden") is True, \
                f"{path.name} cell {i}: a solution cell whose code is not collapsed (jupyter.source_hidden)"
            assert "NotImplementedError" not in text, f"{path.name} cell {i}: a stub tagged as a solution"


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.stem)
def test_each_chapter_asks_an_explain_question_with_a_model_answer(path):
    nb = cells(path)
    answers = [c for c in nb if c["cell_type"] == "markdown" and "**Model answer" in source(c)]
    assert answers, f"{path.name}: no model answer to an explain question"
    assert all(is_solution(c) for c in answers), f"{path.name}: a model answer not tagged `solution`"
