"""The course site (``make site``), built from the stored notebooks and read in headless Chromium.

The site is built once (``tools/build_site.py``, what ``make site`` runs, into a temporary folder) and
served on 127.0.0.1 by Python's http.server. The tests fail when

* a page has a console error or an uncaught exception, a request fails or answers ≥ 400, or the page
  asks for anything that is not on the site (a CDN, a web font): it must read the same offline;
* an image on a page does not load, or maths is left unrendered;
* a chapter's page shows fewer rendered images or SVGs in its outputs than its notebook stores charts
  and widgets (each output carrying a widget view or an image): a widget's live view cannot run on a
  static page, so each needs its static image (``image/svg+xml`` or ``image/png``) stored beside it;
* the navigation breaks: "next" from the course map through every chapter in course order to the
  glossary and the source texts, the sidebar's links, and a chapter's link to a glossary term.

``MINIKIT_SITE_NOTEBOOKS=DIR`` builds the site from another folder of executed notebooks.
Screenshots go to ``artifacts/site/``: ``<page>.png`` (the top of each page) and
``<chapter>-chart.png`` (its first chart), with ``site.json`` (build time, each page's findings).
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator
from urllib.parse import urlparse

import pytest

from .course import ARTIFACTS, NOTEBOOKS, ROOT

SHOTS = ARTIFACTS / "site"
SOURCE = Path(os.environ.get("MINIKIT_SITE_NOTEBOOKS", NOTEBOOKS)).resolve()
VIEWPORT = {"width": 1280, "height": 900}  # wide enough for Furo's sidebar


def _builder():
    spec = importlib.util.spec_from_file_location("build_site", ROOT / "tools" / "build_site.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build_site = _builder()
CHAPTERS = build_site.course_notebooks(SOURCE)


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def _build(source: Path, out: Path) -> float:
    """Build the site from ``source`` into ``out`` as `make site` does; returns the seconds it took."""
    began = time.monotonic()
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "build_site.py"), "--notebooks", str(source),
                             "--out", str(out)], capture_output=True, text=True, cwd=ROOT)
    if result.returncode != 0:
        pytest.fail(f"make site failed on {source}:\n{result.stderr[-4000:]}", pytrace=False)
    return time.monotonic() - began


@contextmanager
def _served(out: Path) -> Iterator[str]:
    """The folder served on 127.0.0.1 by http.server; yields its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(out)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Iterator[tuple[str, Path]]:
    """The site built from SOURCE by tools/build_site.py, served on 127.0.0.1: (base URL, folder)."""
    out = tmp_path_factory.mktemp("site") / "_site"
    seconds = _build(SOURCE, out)
    SHOTS.mkdir(parents=True, exist_ok=True)
    for old in SHOTS.glob("*.png"):
        old.unlink()
    _record("build", {"notebooks": str(SOURCE), "seconds": round(seconds, 1)})
    with _served(out) as base:
        yield base, out


def _record(key: str, value: object) -> None:
    path = SHOTS / "site.json"
    data = json.loads(path.read_text()) if path.exists() and key != "build" else {}
    data[key] = value
    SHOTS.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2))


class Visit:
    """A browser page that records everything that goes wrong while it loads."""

    def __init__(self, browser, base: str) -> None:
        self.context = browser.new_context(viewport=VIEWPORT)
        self.page = self.context.new_page()
        self.problems: list[str] = []
        host = urlparse(base).netloc

        def route(request_route) -> None:
            url = request_route.request.url
            if urlparse(url).netloc != host:
                self.problems.append(f"asked for {url}, which is not on the site (a CDN? a web font?)")
                request_route.abort()
            else:
                request_route.continue_()

        self.context.route("**/*", route)
        page = self.page
        page.on("console", lambda msg: self.problems.append(f"console error: {msg.text[:300]}")
                if msg.type == "error" else None)
        page.on("pageerror", lambda error: self.problems.append(f"uncaught exception: {str(error)[:300]}"))
        # A request the page cancels (it navigated on: ERR_ABORTED) did not fail; a missing file answers 404.
        page.on("requestfailed", lambda request: self.problems.append(f"request failed: {request.url} "
                                                                      f"({request.failure})")
                if urlparse(request.url).netloc == host and "ERR_ABORTED" not in (request.failure or "") else None)
        page.on("response", lambda response: self.problems.append(f"HTTP {response.status}: {response.url}")
                if response.status >= 400 else None)

    def open(self, url: str) -> None:
        self.page.goto(url, wait_until="networkidle")

    def close(self) -> None:
        self.context.close()


# What a page shows, read in the page: images that did not load, maths left as TeX, outputs' images.
MATHS = "span.math.nohighlight, div.math.nohighlight"  # a formula as Sphinx writes it
JS_PAGE_FACTS = """() => {
  const broken = [...document.images].filter(img => !img.complete || img.naturalWidth === 0).map(img => img.src);
  const maths = document.querySelectorAll('MATHS').length;  // Sphinx's, before MathJax adds its own .math spans
  const typeset = document.querySelectorAll('span.MathJax').length;  // each formula MathJax drew
  const mathErrors = document.querySelectorAll('.MathJax_Error, merror').length;
  const shown = [...document.querySelectorAll('.cell_output img, .cell_output svg')].filter(
      el => el.getBoundingClientRect().width > 0 && el.getBoundingClientRect().height > 0).length;
  return {broken, maths, typeset, mathErrors, shown, title: document.title};
}""".replace("MATHS", MATHS)


# MathJax 2 typesets after the page loaded; its "End" hook runs at once if it has already ended.
JS_MATHS_HOOK = """() => { if (window.MathJax && MathJax.Hub)
  MathJax.Hub.Register.StartupHook('End', () => { window.mathsDone = true; }); }"""
JS_MATHS_DONE = "() => !window.MathJax || !MathJax.Hub || window.mathsDone === true"


def _pages(out: Path) -> list[str]:
    return sorted(str(path.relative_to(out)) for path in out.rglob("*.html"))


@pytest.mark.browser
def test_every_page_loads_offline_without_errors(site, browser) -> None:
    base, out = site
    pages = _pages(out)
    expected = {"index.html", "course_map.html", "notebooks/GLOSSARY.html", "notebooks/SOURCES.html",
                *(f"notebooks/{path.stem}.html" for path in CHAPTERS)}
    assert expected <= set(pages), f"pages missing from the site: {sorted(expected - set(pages))}"
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    findings, failures = {}, []
    for name in pages:
        visit = Visit(browser, base)
        try:
            visit.open(base + name)
            visit.page.evaluate(JS_MATHS_HOOK)
            try:
                visit.page.wait_for_function(JS_MATHS_DONE, timeout=30_000)
            except PlaywrightTimeout:
                pass  # reported below, with the counts
            facts = visit.page.evaluate(JS_PAGE_FACTS)
            visit.page.screenshot(path=str(SHOTS / (name.replace("/", "_").removesuffix(".html") + ".png")))
        finally:
            visit.close()
        problems = list(visit.problems)
        problems += [f"image did not load: {src}" for src in facts["broken"]]
        if facts["maths"] and (facts["typeset"] < facts["maths"] or facts["mathErrors"]):
            problems.append(f"maths not rendered: {facts['maths']} formula(s), {facts['typeset']} typeset, "
                            f"{facts['mathErrors']} MathJax error(s)")
        findings[name] = {"title": facts["title"], "images_in_outputs": facts["shown"], "problems": problems}
        failures += [f"{name}: {problem}" for problem in problems]
    _record("pages", findings)
    assert not failures, f"{len(failures)} problem(s) on the site:\n  " + "\n  ".join(failures[:40])


def image_shortfall(page, notebook: Path) -> str | None:
    """Why the chapter page shows fewer images than its notebook stores charts and widgets, or None."""
    wanted = build_site.chart_outputs(notebook)
    shown = page.evaluate(JS_PAGE_FACTS)["shown"]
    if shown >= len(wanted):
        return None
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    bare = sorted({number for number, cell in enumerate(cells, start=1) for output in cell.get("outputs", [])
                   if build_site.WIDGET_VIEW in output.get("data", {})
                   and not any(mime.startswith("image/") for mime in output["data"])})
    return (f"{notebook.name}: the page shows {shown} image(s) or SVG(s) in its outputs, but the notebook stores "
            f"{len(wanted)} chart or widget output(s) (cells {', '.join(map(str, sorted(set(wanted))))}). "
            + (f"Cells {', '.join(map(str, bare))} store only a live widget view, which a static page cannot show: "
               "each needs a static image (image/svg+xml or image/png) in the same output. Fix: execute the "
               "notebook again with a minikit whose widgets store their static image (`make execute`), then "
               "build the site again."
               if bare else "Fix: look at the page's screenshot in artifacts/site/ for the output that is missing."))


@pytest.mark.browser
@pytest.mark.parametrize("notebook", CHAPTERS, ids=lambda path: path.stem)
def test_each_chart_of_a_chapter_is_drawn(site, browser, notebook: Path) -> None:
    base, _ = site
    visit = Visit(browser, base)
    try:
        visit.open(f"{base}notebooks/{notebook.stem}.html")
        shortfall = image_shortfall(visit.page, notebook)
        first = visit.page.locator(".cell_output img, .cell_output svg").first
        if first.count():
            first.scroll_into_view_if_needed()
            first.screenshot(path=str(SHOTS / f"{notebook.stem}-chart.png"))
    finally:
        visit.close()
    assert shortfall is None, shortfall


@pytest.mark.browser
def test_the_navigation_goes_through_the_course_in_order(site, browser) -> None:
    base, _ = site
    visit = Visit(browser, base)
    page = visit.page
    try:
        visit.open(base + "index.html")
        page.locator(".sidebar-tree a", has_text="The course map").first.click()
        page.wait_for_url("**/course_map.html")
        order = [f"notebooks/{path.stem}.html" for path in CHAPTERS] + ["notebooks/GLOSSARY.html",
                                                                        "notebooks/SOURCES.html"]
        for target in order:  # Furo's "next" link at the bottom of every page
            came_from = page.url
            with page.expect_navigation():
                page.locator("a.next-page").click()
            assert page.url == base + target, f"'next' on {came_from} led to {page.url}, expected {base + target}"
            assert page.locator("article h1").count() == 1, f"{page.url} has no title"
        assert page.locator("a.next-page").count() == 0, "the source texts should be the last page"

        # The sidebar reaches the reference pages from a chapter, and a chapter's glossary link lands on its term.
        chapter = f"{base}notebooks/{CHAPTERS[0].stem}.html"
        for label, url in (("Glossary", "notebooks/GLOSSARY.html"), ("source texts", "notebooks/SOURCES.html")):
            visit.open(chapter)
            page.locator(".sidebar-tree a", has_text=label).first.click()
            page.wait_for_url(base + url)
        visit.open(chapter)
        term = page.locator("article a[href*='GLOSSARY.html#']").first
        assert term.count(), f"{chapter} links no glossary term"
        term.click()
        page.wait_for_url("**/GLOSSARY.html#*")
        anchor = urlparse(page.url).fragment
        assert page.evaluate("(id) => document.getElementById(id) !== null", anchor), (
            f"the glossary has no entry #{anchor}, which {chapter} links to")
        page.screenshot(path=str(SHOTS / "navigation-glossary-term.png"))
    finally:
        visit.close()
    assert not visit.problems, "\n".join(visit.problems)


def _with_images(nb: dict, keep: bool) -> dict:
    """The notebook with every widget view's static image replaced by a synthetic SVG, or removed."""
    for number, cell in enumerate(nb["cells"], start=1):
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if build_site.WIDGET_VIEW in data:
                for mime in [mime for mime in data if mime.startswith("image/")]:
                    del data[mime]
                if keep:
                    data["image/svg+xml"] = (
                        '<svg xmlns="http://www.w3.org/2000/svg" width="320" height="60"><rect width="320" '
                        f'height="60" fill="#dde"/><text x="10" y="35">static image of cell {number}</text></svg>')
    return nb


@pytest.mark.browser
def test_the_image_check_fails_on_a_widget_without_its_static_image(tmp_path, browser) -> None:
    """The check above, on two copies of one chapter: with an SVG beside each widget view, and without."""
    chapter = next(path for path in CHAPTERS if build_site.chart_outputs(path))
    folder = tmp_path / "notebooks"
    folder.mkdir()
    for name, keep in (("01_with_images", True), ("02_without_images", False)):
        nb = _with_images(json.loads(chapter.read_text(encoding="utf-8")), keep)
        (folder / f"{name}.ipynb").write_text(json.dumps(nb), encoding="utf-8")
    _build(folder, tmp_path / "_site")
    verdicts = {}
    with _served(tmp_path / "_site") as base:
        for name in ("01_with_images", "02_without_images"):
            visit = Visit(browser, base)
            try:
                visit.open(f"{base}notebooks/{name}.html")
                verdicts[name] = image_shortfall(visit.page, folder / f"{name}.ipynb")
            finally:
                visit.close()
            assert not visit.problems, "\n".join(visit.problems)
    assert verdicts["01_with_images"] is None
    shortfall = verdicts["02_without_images"]
    assert shortfall is not None and "the page shows 0 image(s)" in shortfall, shortfall
    assert "store only a live widget view" in shortfall and "image/svg+xml" in shortfall, shortfall
