"""The student edition: the course's notebooks with every solution replaced by a stub (``make student``).

As nbgrader's student version and fastbook's ``clean/`` folder do, ``python -m minikit student`` reads every
chapter in ``notebooks/`` and writes it to ``student/`` (git-ignored), with each cell tagged ``solution``
replaced:

- an implement-it solution (``def kd_loss_solution(…)``, which the next cells hand to ``minikit.check.use``)
  becomes one line binding the same name to minikit's own implementation, the one the check compares the
  learner's function with (``minikit.check.reference``): the cells after the exercise still run, on minikit's
  code until the learner's function passes;
- any other code solution becomes a comment (the learner's answer cell and its check stay as they are: an
  unanswered check says "not answered yet");
- a markdown model answer becomes a note that it is in the instructor edition.

Every output is removed (the learner runs the notebook), so no solution's output is left either. The
edition is written only when every notebook converts: a stored error output, or a solution cell whose
names later cells use and that has no reference to stand in for it, stops the build with the notebook
and the cell named. Last, every line of every solution is looked for in the result (a leak stops it too).
"""

from __future__ import annotations

import argparse
import json
import shutil
import symtable
import sys
from pathlib import Path
from typing import Sequence

from minikit import implement_it
from minikit.errors import MinikitError

SOLUTION_TAG = "solution"
STUB_TAG = "student-stub"  # the student edition's cells that stand where a solution was
INSTRUCTOR = "the instructor edition (`notebooks/`)"
MODEL_ANSWER_STUB = (f"**Model answer:** in {INSTRUCTOR}. Write your own answer first; your instructor has "
                     "the model one.")
MARKDOWN_STUB = f"*The solution is in {INSTRUCTOR}.*"
CODE_STUB = (f"# The solution is in {INSTRUCTOR}.\n"
             "# Its exercise's cell above checks your own answer (\"Not answered yet\" until you give one).")


class EditionError(MinikitError, ValueError):
    """A notebook that cannot be turned into its student edition; the message names the notebook and the cell."""


def _is_solution(cell: dict) -> bool:
    return SOLUTION_TAG in cell.get("metadata", {}).get("tags", [])


def _source(cell: dict) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def _where(name: str, index: int, cell: dict) -> str:
    return f"{name}, cell {index}" + (f" (id {cell['id']})" if cell.get("id") else "")


def _names(source: str) -> tuple[set[str], set[str]]:
    """(names a cell binds at top level, names it reads from the notebook's globals), by Python's own symbol tables."""
    code = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!")))
    top = symtable.symtable(code, "<cell>", "exec")
    bound = {s.get_name() for s in top.get_symbols() if s.is_assigned() or s.is_imported()}
    read: set[str] = set()

    def walk(table: symtable.SymbolTable, module: bool) -> None:
        read.update(s.get_name() for s in table.get_symbols() if s.is_referenced() and (module or s.is_global()))
        for child in table.get_children():
            walk(child, False)

    walk(top, True)
    return bound, read - bound


def _implement_it_checks() -> dict[str, object]:
    known = {}
    for name in implement_it.__all__:
        check = getattr(implement_it, name)
        try:
            implement_it.reference(check)
        except MinikitError:
            continue
        known[name] = check
    return known


def _code_stub(name: str, cells: list[dict], index: int, checks: dict[str, object]) -> str:
    """The stub for code solution ``index``: a comment, plus a reference for each name later cells need from it."""
    cell = cells[index]
    try:
        bound, _ = _names(_source(cell))
    except SyntaxError as error:
        raise EditionError(f"{_where(name, index, cell)}: a solution cell that is not valid Python ({error.msg}, "
                           f"line {error.lineno}), so the student edition cannot tell what later cells need from "
                           "it. Fix the cell.") from None
    needed: dict[str, int] = {}  # name -> the first later cell that reads it
    for later in range(index + 1, len(cells)):
        other = cells[later]
        if other["cell_type"] != "code" or _is_solution(other):
            continue
        try:
            _, reads = _names(_source(other))
        except SyntaxError:
            continue
        for used in sorted(bound & reads):
            needed.setdefault(used, later)
    lines = []
    for used, later in needed.items():
        exercise = used.removesuffix("_solution")
        if not used.endswith("_solution") or exercise not in checks:
            raise EditionError(
                f"{_where(name, index, cell)}: the solution defines `{used}`, which cell {later} uses, and the "
                "student edition has nothing to put in its place (only an implement-it exercise's "
                "`<check>_solution` function has one: minikit.check.reference). Move what later cells need "
                "out of the solution cell, or untag it if it is not a solution.")
        lines.append(f"{used} = minikit.check.reference(minikit.check.{exercise})")
    if not lines:
        return CODE_STUB
    exercises = ", ".join(f"`{used.removesuffix('_solution')}`" for used in needed)
    return (f"# The solution is in {INSTRUCTOR}; write yours in the exercise's cell above.\n"
            f"# Until your {exercises} passes its check, the cells below run minikit's own implementation\n"
            "# (the one the check compares yours with).\n" + "\n".join(lines))


def _stub(cell: dict, source: str) -> dict:
    metadata = {k: v for k, v in cell.get("metadata", {}).items() if k not in ("execution", "jupyter", "tags")}
    metadata["tags"] = [t for t in cell.get("metadata", {}).get("tags", []) if t != SOLUTION_TAG] + [STUB_TAG]
    stub = {"cell_type": cell["cell_type"], "metadata": metadata, "source": source.splitlines(keepends=True)}
    if cell.get("id"):
        stub["id"] = cell["id"]
    if cell["cell_type"] == "code":
        stub.update(execution_count=None, outputs=[])
    return stub


def _clean(cell: dict) -> dict:
    """A non-solution cell as the learner gets it: no outputs, no execution times."""
    cell = dict(cell, metadata={k: v for k, v in cell.get("metadata", {}).items() if k != "execution"})
    if cell["cell_type"] == "code":
        cell.update(execution_count=None, outputs=[])
    return cell


def solution_lines(cell: dict) -> set[str]:
    """A solution cell's lines worth looking for in a student edition: every line with 8 characters or more."""
    return {line.strip() for line in _source(cell).splitlines() if len(line.strip()) >= 8}


def student_notebook(notebook: dict, name: str) -> dict:
    """The student edition of one notebook (a parsed ``.ipynb``); ``name`` is how errors refer to it."""
    cells = notebook.get("cells", [])
    for index, cell in enumerate(cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                raise EditionError(
                    f"{_where(name, index, cell)}: its stored output is an error ({output.get('ename')}: "
                    f"{output.get('evalue')}). Fix the cell and run the notebook again (make execute), then "
                    "make student.")
    checks = _implement_it_checks()
    out = []
    for index, cell in enumerate(cells):
        if not _is_solution(cell):
            out.append(_clean(cell))
        elif cell["cell_type"] == "code":
            out.append(_stub(cell, _code_stub(name, cells, index, checks)))
        elif cell["cell_type"] == "markdown":
            out.append(_stub(cell, MODEL_ANSWER_STUB if "**Model answer" in _source(cell) else MARKDOWN_STUB))
        else:
            raise EditionError(f"{_where(name, index, cell)}: a {cell['cell_type']} cell tagged `solution`; the "
                               "student edition stubs only code and markdown cells. Make it one of those.")
    metadata = {k: v for k, v in notebook.get("metadata", {}).items() if k not in ("widgets", "minikit")}
    student = dict(notebook, cells=out, metadata=metadata)
    _no_leak(notebook, student, name)
    return student


def _no_leak(full: dict, student: dict, name: str) -> None:
    """Every solution line that no other cell of the full notebook has must be absent from the student edition."""
    kept = set().union(*(solution_lines(c) for c in full["cells"] if not _is_solution(c)))
    text = "\n".join(_source(c) for c in student["cells"])
    for index, cell in enumerate(full["cells"]):
        if _is_solution(cell):
            leaked = sorted(line for line in solution_lines(cell) - kept if line in text)
            if leaked:
                raise EditionError(f"{_where(name, index, cell)}: the student edition still holds a line of this "
                                   f"solution: {leaked[0]!r}. Report this as a bug of minikit.editions.")


def write_student_edition(source: Path | str = "notebooks", out: Path | str = "student",
                          force: bool = False) -> list[Path]:
    """Write the student edition of every chapter in ``source`` (``[0-9]*.ipynb``) to ``out``; the paths written.

    The Markdown files beside the notebooks (glossary, sources) are copied, so the chapters' links work.
    Nothing is written unless every notebook converts. A notebook already in ``out`` that differs from the
    one this would write (a learner's answers, say) is never replaced silently: it raises, unless ``force``.
    """
    source, out = Path(source), Path(out)
    paths = sorted(source.glob("[0-9]*.ipynb"))
    if not paths:
        raise EditionError(f"{source} holds no chapter notebooks ([0-9]*.ipynb). Run this from the course's root "
                           "folder, or pass the folder of the notebooks.")
    if out.resolve() == source.resolve():
        raise EditionError(f"The student edition would overwrite the notebooks in {source}: choose another folder.")
    editions = {}
    for path in paths:
        try:
            notebook = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise EditionError(f"{path}: not a notebook, its JSON does not parse ({error}).") from None
        editions[path.name] = student_notebook(notebook, str(path))
    texts = {name: json.dumps(notebook, indent=1, ensure_ascii=False) + "\n" for name, notebook in editions.items()}
    changed = sorted(old.name for old in out.glob("*.ipynb")
                     if texts.get(old.name) != old.read_text(encoding="utf-8", errors="replace"))
    if changed and not force:
        raise EditionError(f"{out} already holds notebooks that differ from the student edition ({', '.join(changed)}): "
                           "perhaps your own answers. Nothing was written. Choose another folder (--out DIR), or "
                           "replace them, answers lost, with --force (force=True).")
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.ipynb"):
        old.unlink()
    written = []
    for file_name, text in texts.items():
        target = out / file_name
        target.write_text(text, encoding="utf-8")
        written.append(target)
    for markdown in source.glob("*.md"):
        shutil.copyfile(markdown, out / markdown.name)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m minikit student [--notebooks DIR] [--out DIR]``."""
    parser = argparse.ArgumentParser(prog="python -m minikit student", description=__doc__.split("\n\n")[0])
    parser.add_argument("--notebooks", default="notebooks", help="the full edition's folder (default notebooks)")
    parser.add_argument("--out", default="student", help="where to write the student edition (default student)")
    parser.add_argument("--force", action="store_true",
                        help="replace notebooks in --out that differ from the edition (a learner's answers are lost)")
    args = parser.parse_args(argv)
    try:
        written = write_student_edition(args.notebooks, args.out, force=args.force)
    except EditionError as problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    print(f"Wrote the student edition of {len(written)} notebooks to {args.out}/ (solutions replaced by stubs, "
          "outputs removed).")
    return 0
