"""Build the course site from the executed notebooks' stored outputs (``make site``); nothing is executed.

    python tools/build_site.py [--notebooks DIR] [--out DIR]

Pages: a home page (README.md), the course map (README's "The notebooks" and "The course map"), one page
per chapter (``DIR/[0-9]*.ipynb``, in course order), the glossary and the source texts
(``GLOSSARY.md``, ``SOURCES.md``: from DIR when it has them, else from ``notebooks/``). The sources are
staged in a temporary folder with the Sphinx configuration ``tools/site/conf.py`` (Sphinx + myst-nb,
Furo theme, MathJax copied from the ``jupyter-server-mathjax`` package), then built into DIR_OUT
(default ``_site/``), a folder of static files that needs no network to be read.

A notebook with an error output is refused before anything is built: the message names the notebook
and the cell. Links to files that are not pages of the site (``LICENSE``, ``minikit/claims.py``) are
shown as their text. Cells tagged ``solution`` are folded on the page (myst-nb's ``hide-input``).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONF = Path(__file__).resolve().parent / "site" / "conf.py"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
REFERENCE_PAGES = ("GLOSSARY.md", "SOURCES.md")
# The README's part that becomes the course map page: from this heading up to the next one listed.
COURSE_MAP_FROM, COURSE_MAP_TO = "## The notebooks", "## Measured so far"
_LINK = re.compile(r"(?<!!)\[((?:[^\[\]]|\[[^\[\]]*\])+)\]\(([^()\s]+)\)")  # [label](target), not ![image](…)
_MATHJAX_PARTS = ("MathJax.js", "config/TeX-AMS-MML_HTMLorMML-full.js", "extensions", "jax", "fonts")


class SiteError(Exception):
    """The site cannot be built from these notebooks; the message says why and how to fix it."""


def course_notebooks(folder: Path) -> list[Path]:
    """The chapters in ``folder`` in course order (``01_…``, ``03_…``, ``03b_…``, ``10_…``)."""
    return sorted(folder.glob("[0-9]*.ipynb"))


def error_outputs(path: Path) -> list[str]:
    """One line per cell of the notebook at ``path`` that stores an error output (cells numbered from 1)."""
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    found = []
    for number, cell in enumerate(cells, start=1):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                count = cell.get("execution_count")
                where = ", ".join(part for part in (f"In [{count}]" if count else "", f"id {cell.get('id')}"
                                                    if cell.get("id") else "") if part)
                first_line = [line for line in "".join(cell.get("source", "")).splitlines()  # not nbval's markers
                              if line.strip() and not line.startswith("# NBVAL")][:1]
                found.append(f"cell {number} ({where}) `{first_line[0] if first_line else ''}`: "
                             f"{output.get('ename', 'Error')}: {output.get('evalue', '')}"[:300])
    return found


def chart_outputs(path: Path) -> list[int]:
    """The cell number (from 1) of every output of the notebook that shows a chart or widget: one entry
    per output carrying a widget view or an image, so a page must show at least that many images."""
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    return [number for number, cell in enumerate(cells, start=1) for output in cell.get("outputs", [])
            if any(mime == WIDGET_VIEW or mime.startswith("image/") for mime in output.get("data", {}))]


def check_notebooks(folder: Path) -> list[Path]:
    """The chapters in ``folder``; raises SiteError when there are none or any stores an error output."""
    notebooks = course_notebooks(folder)
    if not notebooks:
        raise SiteError(f"No notebook named like 01_….ipynb in {folder}. Fix: pass the folder that holds the "
                        "course's executed notebooks (make site SITE_NOTEBOOKS=notebooks).")
    problems = {path: error_outputs(path) for path in notebooks}
    problems = {path: lines for path, lines in problems.items() if lines}
    if problems:
        listing = "\n".join(f"  {path}: {line}" for path, lines in problems.items() for line in lines)
        raise SiteError(
            f"{len(problems)} notebook(s) store an error output, which the site would show instead of the "
            f"lesson:\n{listing}\nFix: run each named notebook again from the top until no cell fails, save it "
            "with its outputs, then build the site again.")
    return notebooks


def _readme_parts(readme: str) -> tuple[str, str]:
    """The README as the home page, and its notebook table and course map as a page of their own."""
    start, end = readme.find(f"\n{COURSE_MAP_FROM}\n"), readme.find(f"\n{COURSE_MAP_TO}\n")
    if start < 0 or end < start:
        raise SiteError(f"README.md has no section '{COURSE_MAP_FROM}' followed by '{COURSE_MAP_TO}', which "
                        "the course map page is made of. Fix: restore those headings, or change COURSE_MAP_FROM "
                        "and COURSE_MAP_TO in tools/build_site.py.")
    course_map = "# The course map\n" + readme[start:end]
    return readme, course_map


def _unlink_missing(markdown: str, page: Path, site: Path) -> str:
    """Links in a page's Markdown to files that are not in the staged site become plain text."""
    def replace(match: re.Match) -> str:
        label, target = match.groups()
        if re.match(r"^[a-z][a-z0-9+.-]*:|^#", target):  # https:, mailto:, an anchor on this page
            return match.group(0)
        path = (page.parent / target.split("#")[0]).resolve()
        return match.group(0) if path.is_file() and path.suffix in {".md", ".ipynb"} else label
    return _LINK.sub(replace, markdown)


def _toctree(caption: str, entries: list[str]) -> str:
    return "\n```{toctree}\n:hidden:\n:caption: " + caption + "\n\n" + "\n".join(entries) + "\n```\n"


def _mathjax_folder() -> Path:
    try:
        import jupyter_server_mathjax
    except ImportError as error:
        raise SiteError("The site's maths needs the jupyter-server-mathjax package (MathJax, served from the "
                        "site). Fix: pip install -e '.[site]' (make setup installs it).") from error
    return Path(jupyter_server_mathjax.__file__).parent / "static"


def stage(notebooks: list[Path], stage_dir: Path) -> None:
    """Lay out the site's sources in ``stage_dir``: pages, notebooks, conf.py, MathJax."""
    pages = stage_dir / "notebooks"
    pages.mkdir(parents=True)
    for path in notebooks:
        nb = json.loads(path.read_text(encoding="utf-8"))
        for cell in nb["cells"]:  # a solution is folded on the page, as in JupyterLab
            tags = cell.setdefault("metadata", {}).setdefault("tags", [])
            if "solution" in tags and "hide-input" not in tags:
                tags.append("hide-input")
        (pages / path.name).write_text(json.dumps(nb, ensure_ascii=False), encoding="utf-8")
    for name in REFERENCE_PAGES:
        source = notebooks[0].parent / name
        shutil.copy2(source if source.is_file() else ROOT / "notebooks" / name, pages / name)
    home, course_map = _readme_parts((ROOT / "README.md").read_text(encoding="utf-8"))
    chapters = [f"notebooks/{path.stem}" for path in notebooks]
    reference = [f"notebooks/{Path(name).stem}" for name in REFERENCE_PAGES]
    (stage_dir / "index.md").write_text(
        home + _toctree("The course", ["course_map", *chapters]) + _toctree("Reference", reference), encoding="utf-8")
    (stage_dir / "course_map.md").write_text(course_map, encoding="utf-8")

    for page in [stage_dir / "index.md", stage_dir / "course_map.md", *(pages / name for name in REFERENCE_PAGES)]:
        page.write_text(_unlink_missing(page.read_text(encoding="utf-8"), page, stage_dir), encoding="utf-8")
    for page in pages.glob("*.ipynb"):
        nb = json.loads(page.read_text(encoding="utf-8"))
        for cell in nb["cells"]:
            if cell["cell_type"] == "markdown":
                source = "".join(cell["source"])
                cell["source"] = _unlink_missing(source, page, stage_dir)
        page.write_text(json.dumps(nb, ensure_ascii=False), encoding="utf-8")

    shutil.copy2(CONF, stage_dir / "conf.py")
    mathjax, target = _mathjax_folder(), stage_dir / "_static" / "mathjax"
    for part in _MATHJAX_PARTS:
        (target / part).parent.mkdir(parents=True, exist_ok=True)
        copy = shutil.copytree if (mathjax / part).is_dir() else shutil.copy2
        copy(mathjax / part, target / part)


def build(notebook_folder: Path, out: Path) -> Path:
    """Check, stage and build the site into ``out`` (replaced); returns the home page's path."""
    notebooks = check_notebooks(notebook_folder)
    with tempfile.TemporaryDirectory(prefix="minikit-site-") as tmp:
        source, html = Path(tmp) / "source", Path(tmp) / "html"
        stage(notebooks, source)
        # -W: a warning (a broken link, a missing page) fails the build; --keep-going lists them all. Sphinx
        # builds in the temporary folder: myst-nb writes notebook copies beside its output (jupyter_execute/).
        command = [sys.executable, "-m", "sphinx", "-b", "html", "-q", "-W", "--keep-going",
                   "-d", str(Path(tmp) / "doctrees"), str(source), str(html)]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            raise SiteError(f"Sphinx failed (exit {result.returncode}):\n{result.stderr.strip()[-4000:]}")
        shutil.rmtree(html / "_sources", ignore_errors=True)  # empty: the pages' sources are not published
        (html / ".nojekyll").touch()  # GitHub Pages: serve _static/ and _images/ as they are
        shutil.rmtree(out, ignore_errors=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(html, out)
    return out / "index.html"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--notebooks", type=Path, default=ROOT / "notebooks",
                        help="the folder of executed notebooks (default: notebooks/)")
    parser.add_argument("--out", type=Path, default=ROOT / "_site", help="the site's folder (default: _site/)")
    args = parser.parse_args(argv)
    began = time.monotonic()
    try:
        home = build(args.notebooks, args.out)
    except SiteError as error:
        print(f"make site: {error}", file=sys.stderr)
        return 1
    print(f"The site is in {args.out}/ ({time.monotonic() - began:.0f} s): open {home}, or serve it with "
          f"`python -m http.server -d {args.out}`.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
