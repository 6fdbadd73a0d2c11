"""Every chart or widget stored in a notebook has a static image beside it, and no notebook is over 800 KB.

A widget view alone shows nothing without a kernel (GitHub, nbviewer, nbconvert, the course site):
each such output must also hold ``image/svg+xml`` or ``image/png`` (``minikit.static_views`` adds
it when the notebook runs). ``MINIKIT_NOTEBOOKS`` (a folder or one .ipynb) checks other notebooks,
e.g. executed scratch copies; run as a script, it checks the paths it is given:

    python tests/test_notebook_static_views.py /tmp/out.ipynb
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
MAX_NOTEBOOK_KB = 800
IMAGES = ("image/svg+xml", "image/png")
LIVE = re.compile(r"^application/vnd\.(jupyter\.widget-view|vega(lite)?\.v\d+)\+json$")
CHART_TEXT = re.compile(r"altair\.|JupyterChart|^alt\.\w+Chart\(|^[HV]?Box\(children=")  # a chart or widget's repr


def notebook_paths() -> list[Path]:
    """The notebooks to check: ``MINIKIT_NOTEBOOKS`` (a folder or a notebook) or the course's."""
    where = Path(os.environ.get("MINIKIT_NOTEBOOKS", NOTEBOOKS))
    return [where] if where.suffix == ".ipynb" else sorted(where.glob("*.ipynb"))


def problems(path: Path) -> list[str]:
    """One line per chart or widget output of ``path`` with no static image, and one if the file is too large."""
    found = []
    size_kb = path.stat().st_size / 1000
    if size_kb > MAX_NOTEBOOK_KB:
        found.append(f"{path.name}: {size_kb:.0f} KB, over the {MAX_NOTEBOOK_KB} KB limit. Fix: make its charts "
                     "smaller (aggregate the data) or show fewer of them.")
    for index, cell in enumerate(json.loads(path.read_text())["cells"]):
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            text = "".join(data.get("text/plain", ""))
            live = [mime for mime in data if LIVE.match(mime)]
            if not (live or CHART_TEXT.search(text)) or any(image in data for image in IMAGES):
                continue
            what = f"an output with a live view ({live[0]})" if live else "a chart or widget shown as text"
            found.append(f"{path.name} cell {index} (id {cell.get('id', '?')}): {what} with no image/svg+xml or "
                         f"image/png; its text: {text[:120]!r}. Fix: re-execute the notebook with minikit.setup() "
                         "run first (make execute).")
    return found


@pytest.mark.parametrize("path", notebook_paths(), ids=lambda p: p.name)
def test_every_chart_and_widget_has_a_static_image(path):
    found = problems(path)
    assert not found, "\n".join(found)


def test_the_check_catches_a_bare_widget_view_and_a_large_file(tmp_path):
    view = {"application/vnd.jupyter.widget-view+json": {"model_id": "m"}, "text/plain": "VBox(children=(…"}
    cells = [{"cell_type": "code", "id": "bare", "source": "w", "outputs": [{"output_type": "execute_result",
                                                                             "data": view}]},
             {"cell_type": "code", "id": "ok", "source": "w", "outputs": [{"output_type": "display_data",
                                                                           "data": {**view, "image/svg+xml": "<svg/>"}}]},
             {"cell_type": "code", "id": "text", "source": "c", "outputs": [{"output_type": "execute_result", "data": {
                 "text/plain": "<altair.jupyter.jupyter_chart.JupyterChart object at 0x7f>"}}]},
             {"cell_type": "markdown", "id": "pad", "source": "x" * 900_000}]
    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps({"cells": cells}))
    found = problems(path)
    assert len(found) == 3
    assert "over the 800 KB limit" in found[0]
    assert "nb.ipynb cell 0 (id bare)" in found[1] and "widget-view" in found[1]
    assert "cell 2 (id text)" in found[2] and "shown as text" in found[2]


if __name__ == "__main__":
    paths = [Path(p) for p in sys.argv[1:]] or notebook_paths()
    lines = [line for path in paths for line in problems(path)]
    for path in paths:
        print(f"{path.name}: {path.stat().st_size / 1000:.0f} KB")
    print("\n".join(lines) or f"{len(paths)} notebook(s): every chart and widget has a static image")
    sys.exit(1 if lines else 0)
