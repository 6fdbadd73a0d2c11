"""Every stored notebook's outputs come from its current code: each carries the stamp `make execute` writes.

tools/execute_notebooks.py (``make execute``) runs the notebooks and stamps each one's metadata with the
minikit version and a hash of its code cells. A notebook with no stamp, or whose code cells changed since,
fails here, naming the notebook and the command that refreshes it. The other tests prove that on copies.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
STORED = sorted((ROOT / "notebooks").glob("*.ipynb"))


def _tool():
    """tools/execute_notebooks.py as a module (tools/ is not a package); it imports nbclient only to run."""
    spec = importlib.util.spec_from_file_location("execute_notebooks", ROOT / "tools" / "execute_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tool = _tool()
MACHINE = {"cores": 2, "busy_share": 0.01, "load_average": [0.1, 0.1, 0.1], "quiet": True}


@pytest.mark.parametrize("path", STORED, ids=[p.name for p in STORED])
def test_stored_outputs_come_from_the_current_code(path):
    problem = tool.stamp_problem(path)
    assert problem is None, problem


def _write(notebook: dict, path: Path) -> Path:
    path.write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def test_the_stamp_check_fails_on_an_edited_copy(tmp_path):
    notebook = json.loads((ROOT / "notebooks" / "04_metrics.ipynb").read_text(encoding="utf-8"))
    notebook["metadata"].pop(tool.STAMP_KEY, None)
    copy = _write(notebook, tmp_path / "04_metrics.ipynb")

    missing = tool.stamp_problem(copy)
    assert "04_metrics.ipynb has no `minikit` stamp" in missing
    assert f"make execute NOTEBOOKS={copy}" in missing  # the command that refreshes it

    stamped = tool.stamp(notebook, MACHINE)["metadata"]["minikit"]
    assert stamped["version"] == tool.minikit_version() and stamped["machine"] == MACHINE
    assert tool.stamp_problem(_write(notebook, copy)) is None

    prose = next(c for c in notebook["cells"] if c["cell_type"] == "markdown")
    prose["source"] = ["A reworded paragraph.\n"]
    assert tool.stamp_problem(_write(notebook, copy)) is None  # prose does not make outputs stale

    code = next(c for c in notebook["cells"] if c["cell_type"] == "code")
    code["source"] = ["".join(code["source"]) + "\nprint('an edit after the run')"]
    stale = tool.stamp_problem(_write(notebook, copy))
    assert "04_metrics.ipynb: its code cells changed after its outputs were produced" in stale
    assert stamped["executed_at"] in stale and f"make execute NOTEBOOKS={copy}" in stale

    tool.stamp(notebook, MACHINE)
    notebook["metadata"]["minikit"]["version"] = "0.0.1"
    assert "outputs come from minikit 0.0.1" in tool.stamp_problem(_write(notebook, copy))


def test_the_message_names_the_notebook_by_its_path_in_the_repository(tmp_path):
    (tmp_path / "notebooks").mkdir()
    notebook = json.loads(STORED[0].read_text(encoding="utf-8"))
    notebook["metadata"].pop(tool.STAMP_KEY, None)
    copy = _write(notebook, tmp_path / "notebooks" / STORED[0].name)
    problem = tool.stamp_problem(copy, root=tmp_path)
    assert problem.startswith(f"notebooks/{STORED[0].name} has no") and \
        f"`make execute NOTEBOOKS=notebooks/{STORED[0].name}`" in problem


def test_the_code_hash_counts_code_cells_only_and_their_order():
    a = {"cells": [{"cell_type": "code", "source": ["x = 1\n", "y = 2"]}, {"cell_type": "code", "source": "z = 3"}]}
    same = {"cells": [{"cell_type": "code", "source": "x = 1\ny = 2", "outputs": [{"text": "out"}]},
                      {"cell_type": "markdown", "source": "prose"}, {"cell_type": "code", "source": ["z = 3"]}]}
    swapped = {"cells": list(reversed(a["cells"]))}
    assert tool.code_hash(a) == tool.code_hash(same) != tool.code_hash(swapped)


def test_course_order_puts_03_before_03b_and_10_last():
    names = [p.name for p in tool.course_order([Path(n) for n in
                                                ("10_x.ipynb", "03b_y.ipynb", "04_z.ipynb", "03_w.ipynb", "01_v.ipynb")])]
    assert names == ["01_v.ipynb", "03_w.ipynb", "03b_y.ipynb", "04_z.ipynb", "10_x.ipynb"]
    assert [p.name for p in tool.resolve([])] == [p.name for p in STORED]


def test_a_wrong_notebook_name_is_a_clear_error():
    with pytest.raises(SystemExit, match="'notebooks/99_nothing.ipynb' is not a notebook file.*04_metrics.ipynb"):
        tool.resolve(["notebooks/99_nothing.ipynb"])


def test_a_busy_machine_is_refused_unless_allowed():
    said = []
    with pytest.raises(SystemExit, match=r"not quiet: 80% .*--allow-busy"):
        tool.wait_until_quiet(0.25, 0, False, measure=lambda: 0.8, say=said.append)
    state = tool.wait_until_quiet(0.25, 0, True, measure=lambda: 0.8, say=said.append)
    assert state["quiet"] is False and state["busy_share"] == 0.8 and said[-1].startswith("WARNING")
    readings = iter([0.9, 0.1])  # busy, then quiet after one wait
    state = tool.wait_until_quiet(0.25, 30, False, measure=lambda: next(readings), say=said.append, poll_s=0)
    assert state["quiet"] is True and "waiting" in said[-1]
    assert 0.0 <= tool.busy_share(0.2) <= 1.0
