"""The student edition (``make student``, minikit.editions) and the full edition's folded solutions (issue 26).

The student edition is built from the stored notebooks into a temporary folder (nothing is executed here;
tests/student_notebooks.py runs it top to bottom in CI's notebook steps):

- every cell tagged ``solution`` became a stub, and no line of any solution is left in it;
- no outputs are left (so no solution's output either);
- each implement-it stub binds minikit's reference implementation, and that reference passes its own check;
- a notebook with an error output, or a solution the tool cannot stub, stops the build, naming the cell.

In the full edition every solution is folded for real: code solutions have their code and outputs
collapsed (JupyterLab's ``jupyter.source_hidden`` / ``outputs_hidden``), markdown answers sit inside
``<details>``, and no ``<details>`` folds only a sentence pointing at open solution cells.
"""

from __future__ import annotations

import ast
import copy
import json
import re
from pathlib import Path

import pytest

import minikit.check
from minikit import editions, implement_it
from minikit.practice import use

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
ALL = sorted(NOTEBOOKS.glob("[0-9]*.ipynb"))


def source(cell: dict) -> str:
    return "".join(cell["source"])


def is_solution(cell: dict) -> bool:
    return "solution" in cell.get("metadata", {}).get("tags", [])


def load(path: Path) -> dict:
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def student(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("student")
    written = editions.write_student_edition(NOTEBOOKS, out)
    assert sorted(p.name for p in written) == [p.name for p in ALL]
    return out


def test_every_chapter_has_solutions_to_hide():
    for path in ALL:
        assert any(is_solution(c) for c in load(path)["cells"]), f"{path.name}: no cell tagged `solution`"


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.stem)
def test_every_solution_became_a_stub_and_none_of_its_lines_is_left(student, path):
    full, mine = load(path), load(student / path.name)
    assert [c.get("id") for c in mine["cells"]] == [c.get("id") for c in full["cells"]]
    kept = {line.strip() for c in full["cells"] if not is_solution(c) for line in source(c).splitlines()}
    text = "\n".join(source(c) for c in mine["cells"])
    for index, (before, after) in enumerate(zip(full["cells"], mine["cells"])):
        if not is_solution(before):
            assert source(after) == source(before), f"{path.name} cell {index}: a cell that is no solution changed"
            continue
        assert editions.STUB_TAG in after["metadata"]["tags"] and not is_solution(after), \
            f"{path.name} cell {index}: a solution cell that is not marked as a stub"
        assert "instructor edition" in source(after), f"{path.name} cell {index}: the stub does not say where it is"
        assert not after["metadata"].get("jupyter", {}).get("source_hidden"), f"{path.name} cell {index}: a hidden stub"
        lines = {line.strip() for line in source(before).splitlines() if len(line.strip()) >= 8} - kept
        assert lines, f"{path.name} cell {index}: a solution with no line of its own to look for"
        leaked = [line for line in lines if line in text]
        assert not leaked, f"{path.name} cell {index}: solution lines left in the student edition: {leaked}"
    for index, cell in enumerate(mine["cells"]):
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None, f"{path.name} cell {index}: an output"
    assert "widgets" not in mine["metadata"]


def test_the_markdown_files_the_chapters_link_to_are_copied(student):
    for markdown in NOTEBOOKS.glob("*.md"):
        assert (student / markdown.name).read_text() == markdown.read_text()


def test_each_implement_it_stub_binds_a_reference_that_passes_its_check(student):
    bound = {}
    for path in ALL:
        for cell in load(student / path.name)["cells"]:
            for node in ast.parse(source(cell)).body if cell["cell_type"] == "code" else []:
                if isinstance(node, ast.Assign) and "minikit.check.reference(" in ast.unparse(node.value):
                    bound[node.targets[0].id] = ast.unparse(node.value)
    assert {name.removesuffix("_solution") for name in bound} == set(implement_it.__all__)
    for name, call in bound.items():
        check = getattr(minikit.check, name.removesuffix("_solution"))
        assert call == f"minikit.check.reference(minikit.check.{check.__name__})"
        result = check(minikit.check.reference(check))
        assert result.passed, f"minikit's reference for {check.__name__} fails its own check: {result.message}"


def test_use_says_which_function_runs(capsys):
    check = minikit.check.exit_layer

    def stub(layer_logits, threshold):
        raise NotImplementedError

    fallback = minikit.check.reference(check)
    assert use(stub, fallback, check) is fallback
    assert "minikit's own implementation" in capsys.readouterr().out
    assert use(fallback, fallback, check) is fallback
    assert "run your function" in capsys.readouterr().out
    with pytest.raises(ValueError, match="not an implement-it check"):
        minikit.check.reference(minikit.check.encoder_layer_params)


def _small_notebook() -> dict:
    """Chapter 5's notebook, whose exercises include an implement-it one (magnitude_mask)."""
    return load(next(p for p in ALL if p.name.startswith("05_")))


def test_an_error_output_stops_the_build_and_names_the_cell(tmp_path):
    notebook = _small_notebook()
    index = next(i for i, c in enumerate(notebook["cells"]) if c["cell_type"] == "code" and not is_solution(c))
    notebook["cells"][index]["outputs"] = [{"output_type": "error", "ename": "NameError", "evalue": "name 'x'",
                                            "traceback": []}]
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "05_pruning.ipynb").write_text(json.dumps(notebook))
    with pytest.raises(editions.EditionError, match=rf"05_pruning\.ipynb, cell {index} .*NameError"):
        editions.write_student_edition(tmp_path / "in", tmp_path / "out")
    assert not (tmp_path / "out").exists(), "a failed build wrote a partial edition"
    assert editions.main(["--notebooks", str(tmp_path / "in"), "--out", str(tmp_path / "out")]) == 2


def test_a_solution_whose_names_later_cells_need_stops_the_build():
    notebook = _small_notebook()
    cells = notebook["cells"]
    index = max(i for i, c in enumerate(cells) if is_solution(c) and c["cell_type"] == "code")  # an answer's solution
    cells[index]["source"] = ["threshold_found = 0.5\n"]
    cells.append({"cell_type": "code", "id": "uses-it", "metadata": {}, "execution_count": None, "outputs": [],
                  "source": ["print(threshold_found)\n"]})
    with pytest.raises(editions.EditionError, match=rf"ch05, cell {index} .*`threshold_found`.*cell {len(cells) - 1}"):
        editions.student_notebook(notebook, "ch05")


def test_a_solution_function_with_no_reference_stops_the_build():
    notebook = _small_notebook()
    cells = notebook["cells"]
    index = next(i for i, c in enumerate(cells) if "def magnitude_mask_solution" in source(c))
    renamed = copy.deepcopy(notebook)
    for cell in renamed["cells"]:
        cell["source"] = [re.sub(r"\bmagnitude_mask_solution\b", "my_mask_solution", source(cell))]
    with pytest.raises(editions.EditionError, match=rf"cell {index} .*`my_mask_solution`"):
        editions.student_notebook(renamed, "ch05")
    # untouched, the same notebook converts, and the stub binds the reference
    stub = source(editions.student_notebook(notebook, "ch05")["cells"][index])
    assert "magnitude_mask_solution = minikit.check.reference(minikit.check.magnitude_mask)" in stub


def test_a_raw_cell_tagged_solution_stops_the_build():
    notebook = _small_notebook()
    notebook["cells"].append({"cell_type": "raw", "id": "raw", "metadata": {"tags": ["solution"]}, "source": ["x"]})
    with pytest.raises(editions.EditionError, match=r"a raw cell tagged `solution`"):
        editions.student_notebook(notebook, "ch05")


def test_the_student_edition_refuses_to_overwrite_the_notebooks(tmp_path):
    with pytest.raises(editions.EditionError, match="overwrite"):
        editions.write_student_edition(NOTEBOOKS, NOTEBOOKS)
    with pytest.raises(editions.EditionError, match="no chapter notebooks"):
        editions.write_student_edition(tmp_path, tmp_path / "out")


def test_a_learners_edited_student_notebook_is_never_replaced_silently(tmp_path):
    out = tmp_path / "student"
    editions.write_student_edition(NOTEBOOKS, out)
    assert editions.write_student_edition(NOTEBOOKS, out)  # unchanged: writing again is harmless
    answered = out / ALL[0].name
    answered.write_text(answered.read_text().replace("None", "42", 1))
    with pytest.raises(editions.EditionError, match=f"{ALL[0].name}.*--force"):
        editions.write_student_edition(NOTEBOOKS, out)
    assert "42" in answered.read_text()  # the learner's answer is still there
    editions.write_student_edition(NOTEBOOKS, out, force=True)
    editions.write_student_edition(NOTEBOOKS, tmp_path / "fresh")
    assert answered.read_text() == (tmp_path / "fresh" / ALL[0].name).read_text()


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.stem)
def test_the_full_edition_folds_its_solutions_for_real(path):
    for index, cell in enumerate(load(path)["cells"]):
        text = source(cell)
        if cell["cell_type"] == "markdown" and "<details" in text:
            assert is_solution(cell), f"{path.name} cell {index}: a <details> that is not a solution folds nothing"
        if not is_solution(cell):
            continue
        if cell["cell_type"] == "code":
            hidden = cell["metadata"].get("jupyter", {})
            assert hidden.get("source_hidden") is True and hidden.get("outputs_hidden") is True, \
                f"{path.name} cell {index}: a code solution whose code or outputs are not collapsed"
        else:
            assert text.startswith("<details>") and text.rstrip().endswith("</details>"), \
                f"{path.name} cell {index}: a markdown solution not folded in <details>"
            assert "</summary>\n\n" in text, f"{path.name} cell {index}: no blank line after </summary> (no markdown)"
