"""Sanity checks on measurement tables, live or as stored in executed notebooks.

A latency table measured on a loaded machine looks like any other table. These checks catch the
shapes such a table takes (issue 26 found all of them in chapter 1's stored outputs):

- two catalog models of the same shape (layers × hidden) more than 2× apart in batch-1 latency;
- a p95 more than 5× its p50 (a few calls stalled: someone else had the CPU);
- latency that falls as parameters grow, across the catalog (a negative exponent in the size-class fit);
- a column the prose names ("the `measured_at` column says when") missing from every stored output;
- a stored table whose ``load_warning`` says it was timed on a busy machine (a table slowed evenly
  passes every check above: only the load check, made while measuring, sees it).

``profile_problems(table)`` checks one table; ``notebook_problems(folder)`` reads every stored
notebook's HTML tables and prose. Each problem is one sentence naming the notebook, the numbers
and the fix.
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from minikit.models import CATALOG

if TYPE_CHECKING:
    import pandas as pd

SAME_SHAPE_RATIO = 2.0  # same layers × hidden: the same arithmetic, so the same time give or take this
TAIL_RATIO = 5.0  # p95 / p50 above this: some calls waited for the CPU
FIX = "re-measure on a quiet machine (make execute, or compare_models(refresh=True))"


def _shape(name: str) -> tuple[int, int] | None:
    card = CATALOG.get(name)
    return None if card is None else (card.layers, card.hidden)


def fit_exponent(params_m, latency_ms) -> float:
    """The slope of log latency on log parameters: how latency grows with size (it should be above 0)."""
    return float(np.polyfit(np.log(np.asarray(params_m, float)), np.log(np.asarray(latency_ms, float)), 1)[0])


def profile_problems(table: pd.DataFrame, where: str = "the table") -> list[str]:
    """What is implausible in a latency table with name, latency_p50_ms (and params_m, latency_p95_ms) columns."""
    if "name" not in table.columns and table.index.name == "name":
        table = table.reset_index()
    if not {"name", "latency_p50_ms"} <= set(table.columns):
        return []
    table = table.dropna(subset=["latency_p50_ms"])
    problems = []
    shapes = table.assign(shape=[_shape(n) for n in table["name"]]).dropna(subset=["shape"])
    for shape, group in shapes.groupby("shape"):
        slow, fast = group.loc[group["latency_p50_ms"].idxmax()], group.loc[group["latency_p50_ms"].idxmin()]
        if slow["latency_p50_ms"] > SAME_SHAPE_RATIO * fast["latency_p50_ms"]:
            problems.append(f"{where}: {slow['name']} at {slow['latency_p50_ms']:.1f} ms is "
                            f"{slow['latency_p50_ms'] / fast['latency_p50_ms']:.1f}× {fast['name']} at "
                            f"{fast['latency_p50_ms']:.1f} ms, though both are {shape[0]}×{shape[1]} "
                            f"(layers × hidden; expected within {SAME_SHAPE_RATIO:g}×): {FIX}.")
    if "latency_p95_ms" in table.columns:
        for _, row in table.iterrows():
            if row["latency_p95_ms"] > TAIL_RATIO * row["latency_p50_ms"]:
                problems.append(f"{where}: {row['name']} has p95 {row['latency_p95_ms']:.1f} ms, "
                                f"{row['latency_p95_ms'] / row['latency_p50_ms']:.1f}× its p50 "
                                f"{row['latency_p50_ms']:.1f} ms (expected ≤ {TAIL_RATIO:g}×): {FIX}.")
    if "params_m" in table.columns and len(shapes) >= 3 and shapes["params_m"].nunique() >= 2:
        slope = fit_exponent(shapes["params_m"], shapes["latency_p50_ms"])
        if slope <= 0:
            problems.append(f"{where}: latency ∝ params^{slope:.2f} across {len(shapes)} catalog models: bigger "
                            f"models measured faster (expected a positive exponent): {FIX}.")
    return problems


# --- stored notebooks ------------------------------------------------------------------------------


class _Tables(HTMLParser):
    """The <table>s of pandas' HTML as lists of rows of cell texts; header rows flagged."""

    def __init__(self):
        super().__init__()
        self.tables: list[list[tuple[bool, list[str]]]] = []
        self._cell: list[str] | None = None
        self._head = False

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "thead":
            self._head = True
        elif tag == "tr" and self.tables:
            self.tables[-1].append((self._head, []))
        elif tag in ("th", "td") and self.tables and self.tables[-1]:
            self._cell = []

    def handle_endtag(self, tag):
        if tag == "thead":
            self._head = False
        elif tag in ("th", "td") and self._cell is not None:
            self.tables[-1][-1][1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def html_tables(html: str) -> list[pd.DataFrame]:
    """The DataFrames pandas rendered as HTML (an index named in a second header row becomes a column)."""
    import pandas as pd
    parser = _Tables()
    parser.feed(html)
    frames = []
    for rows in parser.tables:
        head = [cells for is_head, cells in rows if is_head]
        body = [cells for is_head, cells in rows if not is_head and not all(c in ("...", "…") for c in cells[1:])]
        if not head or not body:
            continue
        columns = list(head[0])
        if len(head) > 1 and head[1] and head[1][0] and not any(head[1][1:]):
            columns[0] = head[1][0]  # set_index("name"): the index's name sits alone on a second header row
        columns[0] = columns[0] or "index"
        frame = pd.DataFrame([cells for cells in body if len(cells) == len(columns)], columns=columns)
        frames.append(frame.apply(lambda col: pd.to_numeric(col, errors="coerce") if col.name != columns[0]
                                  and pd.to_numeric(col, errors="coerce").notna().all() else col))
    return frames


def _output_texts(cell: dict) -> list[str]:
    texts = []
    for out in cell.get("outputs", []):
        data = out.get("data", {})
        for text in (data.get("text/html"), data.get("text/plain"), out.get("text")):
            if text:
                texts.append("".join(text) if isinstance(text, list) else text)
    return texts


_NAMED_COLUMNS = re.compile(r"((?:`\w+`[\s,/]*(?:and|or)?\s*)+)\s*columns?\b")
_FIT = re.compile(r"params\^(-?[\d.]*)")  # the sign survives pandas cutting a long cell to "params^-0..."


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:  # cut short by pandas ("0...")
        return None


def notebook_problems(path: str | Path) -> list[str]:
    """What is implausible in one stored notebook's measurement tables, or missing from them, as sentences."""
    path = Path(path)
    cells = json.loads(path.read_text())["cells"]
    where = path.name
    problems = []
    outputs = [text for cell in cells if cell["cell_type"] == "code" for text in _output_texts(cell)]
    for i, cell in enumerate(cells):
        for html in (t for t in _output_texts(cell) if "<table" in t):
            for table in html_tables(html):
                problems += profile_problems(table, f"{where} cell {i}")
                warned = table["load_warning"].astype(str).str.strip() if "load_warning" in table.columns else []
                if any(w not in ("", "nan") for w in warned):
                    problems.append(f"{where} cell {i}: the table was timed on a busy machine (load_warning: "
                                    f"{next(w for w in warned if w not in ('', 'nan'))}): {FIX}.")
    seen = "\n".join(outputs)
    if "on a busy machine" in seen and "SuspectTimingWarning" in seen:
        problems.append(f"{where}: a stored output says timings were taken on a busy machine "
                        f"(SuspectTimingWarning): {FIX}.")
    for exponent in _FIT.findall(seen):
        if exponent.startswith("-") or _number(exponent) == 0:
            problems.append(f"{where}: the size-class fit says latency ∝ params^{exponent}: bigger models measured "
                            f"faster (expected a positive exponent): {FIX}.")
    for cell in cells:
        if cell["cell_type"] != "markdown":
            continue
        for phrase in _NAMED_COLUMNS.findall("".join(cell["source"])):
            for column in re.findall(r"`(\w+)`", phrase):
                if not re.search(rf"\b{re.escape(column)}\b", seen):
                    problems.append(f"{where}: the prose names a `{column}` column, but no stored output shows "
                                    f"one: make the prose and the table agree, then re-execute (make execute).")
    return list(dict.fromkeys(problems))  # a table stored as HTML and as text is one problem


def stored_problems(folder: str | Path) -> list[str]:
    """``notebook_problems`` of every notebook in ``folder`` (course order: by file name)."""
    paths = sorted(Path(folder).glob("*.ipynb"))
    if not paths:
        raise FileNotFoundError(f"No .ipynb files in {folder}. Fix: pass the course's notebooks folder.")
    return [problem for path in paths for problem in notebook_problems(path)]


__all__ = ["SAME_SHAPE_RATIO", "TAIL_RATIO", "fit_exponent", "html_tables", "notebook_problems", "profile_problems",
           "stored_problems"]
