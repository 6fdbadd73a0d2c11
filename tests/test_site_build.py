"""The course site's builder, tools/build_site.py, without building a site or starting a browser.

The site itself is built and read in headless Chromium by tests/learner/test_site.py.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def build_site():
    """tools/build_site.py as a module (tools/ is not a package)."""
    spec = importlib.util.spec_from_file_location("build_site", ROOT / "tools" / "build_site.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _notebook(path: Path, cells: list[dict]) -> Path:
    nb = {"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    path.write_text(json.dumps(nb, indent=1), encoding="utf-8")
    return path


def _code(source: str, count: int, outputs: list[dict], cell_id: str) -> dict:
    return {"cell_type": "code", "id": cell_id, "metadata": {}, "source": source,
            "execution_count": count, "outputs": outputs}


ERROR = {"output_type": "error", "ename": "ValueError", "evalue": "sparsity must be in [0, 1), got 1.5",
         "traceback": ["ValueError: sparsity must be in [0, 1), got 1.5"]}
WIDGET = {"output_type": "display_data", "metadata": {},
          "data": {"application/vnd.jupyter.widget-view+json": {"model_id": "abc", "version_major": 2,
                                                                 "version_minor": 0},
                   "text/plain": "JupyterChart(...)"}}


def test_a_notebook_with_an_error_output_is_refused_naming_it_and_its_cell(build_site, tmp_path, capsys):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    _notebook(folder / "01_fine.ipynb", [_code("print('ok')", 1, [], "a1")])
    bad = _notebook(folder / "02_broken.ipynb", [
        {"cell_type": "markdown", "id": "m1", "metadata": {}, "source": "# Chapter 2"},
        _code("import minikit", 1, [], "c1"),
        _code("# NBVAL_CHECK_OUTPUT\nminikit.prune(model, sparsity=1.5)\nmore()", 7, [ERROR], "c2"),
    ])
    out = tmp_path / "site"

    assert build_site.main(["--notebooks", str(folder), "--out", str(out)]) == 1

    message = capsys.readouterr().err
    assert str(bad) in message and "01_fine" not in message
    assert "cell 3 (In [7], id c2) `minikit.prune(model, sparsity=1.5)`" in message  # its first line of code
    assert "ValueError: sparsity must be in [0, 1), got 1.5" in message
    assert "Fix:" in message
    assert not out.exists()  # refused before anything was built


def test_a_folder_without_notebooks_is_refused(build_site, tmp_path):
    with pytest.raises(build_site.SiteError, match="No notebook named like 01_"):
        build_site.check_notebooks(tmp_path)


def test_chart_outputs_counts_widget_views_and_images(build_site, tmp_path):
    image = {"output_type": "display_data", "metadata": {}, "data": {"image/png": "iVBORw0KGgo=", "text/plain": "x"}}
    both = {"output_type": "execute_result", "execution_count": 3, "metadata": {},
            "data": {**WIDGET["data"], "image/svg+xml": "<svg/>"}}
    text = {"output_type": "stream", "name": "stdout", "text": "hello"}
    path = _notebook(tmp_path / "01_x.ipynb", [_code("a", 1, [WIDGET, text], "a"), _code("b", 2, [text], "b"),
                                               _code("c", 3, [image, both], "c")])
    # one entry per output (an output with a widget view and its fallback image counts once)
    assert build_site.chart_outputs(path) == [1, 3, 3]


def test_links_to_files_outside_the_site_become_text(build_site, tmp_path):
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "01_a.ipynb").write_text("{}")
    (tmp_path / "notebooks" / "GLOSSARY.md").write_text("# Glossary")
    page = tmp_path / "index.md"
    text = ("[ch 1](notebooks/01_a.ipynb), [logits](notebooks/GLOSSARY.md#logits), [`LICENSE`](LICENSE), "
            "[claims](minikit/claims.py), [web](https://example.org/a), [here](#two-commands), ![img](x.png)")
    assert build_site._unlink_missing(text, page, tmp_path) == (
        "[ch 1](notebooks/01_a.ipynb), [logits](notebooks/GLOSSARY.md#logits), `LICENSE`, "
        "claims, [web](https://example.org/a), [here](#two-commands), ![img](x.png)")


def test_the_readme_has_the_sections_the_course_map_page_is_made_of(build_site):
    home, course_map = build_site._readme_parts((ROOT / "README.md").read_text(encoding="utf-8"))
    assert course_map.startswith("# The course map\n\n## The notebooks")
    assert "<!-- course map: generated" in course_map and build_site.COURSE_MAP_TO not in course_map
    with pytest.raises(build_site.SiteError, match="no section '## The notebooks'"):
        build_site._readme_parts("# A README without them\n")
