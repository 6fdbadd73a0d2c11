"""Refresh the notebooks' stored outputs: build, then run every notebook in course order, stamped (``make execute``).

    python tools/execute_notebooks.py                         # build, then every notebook, in place
    python tools/execute_notebooks.py notebooks/04_metrics.ipynb
    python tools/execute_notebooks.py --cache DIR --no-build --out /tmp/executed notebooks/04_metrics.ipynb

Steps: ``python -m minikit build`` (every trained artifact, cached; quick when already built); a copy of
that built cache made of hard links, so a timing or a result a previous run cached is not shown as this
run's; then each notebook, one at a time in course order (01, 02, 03, 03b, 04 … 10), in a fresh kernel
on that one copy (as a learner goes through the course), with ``MINIKIT_NO_TRAIN=1`` (a missing artifact is
an error, never a silent training run) and no widget state stored. Before each notebook the machine must be
quiet: the share of CPU time other processes take (from /proc/stat over 2 s; the load average where there is
no /proc/stat) must stay under ``--max-busy``; else the tool waits up to ``--wait`` seconds, then refuses
(``--allow-busy`` runs anyway, with a warning, and the stamp records it).

Each executed notebook gets a stamp in its metadata, under ``minikit``: the minikit version, a hash of its
code cells' sources, when it ran and how busy the machine was. ``tests/test_notebook_stamps.py`` fails
when a notebook has no stamp or its code changed since (``stamp_problem``). A notebook whose run raised is
not written: its stored outputs stay as they were, and the tool names the cell and exits non-zero.

This is a maintainer's tool: it needs nbclient and nbformat (``pip install -e .[test]``); the minikit
package itself does not.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Sequence

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
STAMP_KEY = "minikit"
REFRESH = "make execute NOTEBOOKS={path}"  # the one command that refreshes one notebook's outputs
CELL_TIMEOUT_S = 900


# --- the stamp -----------------------------------------------------------------------------------


def _source(cell: dict) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def code_hash(notebook: dict) -> str:
    """sha256 of the notebook's code cells' sources, in order: prose, outputs and metadata do not count."""
    sources = [_source(cell) for cell in notebook.get("cells", []) if cell.get("cell_type") == "code"]
    return hashlib.sha256(json.dumps(sources, ensure_ascii=False).encode("utf-8")).hexdigest()


def minikit_version() -> str:
    """The minikit version of this checkout (minikit/__init__.py's ``__version__``), read without importing it."""
    for line in (ROOT / "minikit" / "__init__.py").read_text(encoding="utf-8").splitlines():
        if line.startswith("__version__"):
            return line.split("=", 1)[1].strip().strip("\"'")
    raise RuntimeError("minikit/__init__.py has no __version__ line.")


def stamp(notebook: dict, machine: dict[str, Any]) -> dict:
    """The notebook with its stamp set (in place, and returned): version, code hash, when, how busy the machine was."""
    notebook.setdefault("metadata", {})[STAMP_KEY] = {
        "version": minikit_version(),
        "code_sha256": code_hash(notebook),
        "executed_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine,
    }
    return notebook


def stamp_problem(path: Path, root: Path = ROOT) -> str | None:
    """None when ``path``'s stored outputs come from its current code, else what is wrong and the command to fix it."""
    path = Path(path)
    notebook = json.loads(path.read_text(encoding="utf-8"))
    shown = path.relative_to(root) if path.is_relative_to(root) else path
    fix = f"Refresh its outputs with `{REFRESH.format(path=shown)}`."
    found = notebook.get("metadata", {}).get(STAMP_KEY)
    if not isinstance(found, dict) or "code_sha256" not in found:
        return f"{shown} has no `{STAMP_KEY}` stamp: its outputs were not produced by make execute. {fix}"
    if found["code_sha256"] != code_hash(notebook):
        return (f"{shown}: its code cells changed after its outputs were produced (executed "
                f"{found.get('executed_at', 'at an unknown time')}), so the stored outputs may not be this code's. {fix}")
    if found.get("version") != minikit_version():
        return (f"{shown}: its outputs come from minikit {found.get('version')}, this checkout is minikit "
                f"{minikit_version()}. {fix}")
    return None


# --- a quiet machine -------------------------------------------------------------------------------


def busy_share(seconds: float = 2.0) -> float:
    """The share of all cores' time other processes spend busy over ``seconds`` (0 = idle, 1 = every core busy).

    Measured by ``minikit.timing`` (from /proc/stat while this tool sleeps, so it is the other processes'
    load now; where there is no /proc/stat, the 1-minute load average, which also counts this tool's last run).
    """
    from minikit.timing import others_cores_now

    others = others_cores_now(seconds)
    if others is None:
        raise SystemExit("Cannot tell how busy this machine is: it has neither /proc/stat nor a load average, "
                         "and this tool needs one of them (Linux or macOS).")
    return others / (os.cpu_count() or 1)


def wait_until_quiet(max_busy: float, wait_s: float, allow_busy: bool,
                     measure: Callable[[], float] = busy_share, say: Callable[[str], None] = print,
                     poll_s: float = 5.0) -> dict[str, Any]:
    """The machine's state before a run, once quiet; waits up to ``wait_s``; refuses (SystemExit) unless ``allow_busy``."""
    deadline = time.monotonic() + wait_s
    while True:
        busy = measure()
        if busy <= max_busy or time.monotonic() >= deadline:
            break
        say(f"  the machine is busy ({busy:.0%} of the CPU in use by other processes); waiting for it to quiet down")
        time.sleep(min(poll_s, max(0.0, deadline - time.monotonic())))
    quiet = busy <= max_busy
    state = {"cores": os.cpu_count(), "busy_share": round(busy, 3),
             "load_average": [round(x, 2) for x in os.getloadavg()], "quiet": quiet}
    if not quiet:
        message = (f"The machine is not quiet: {busy:.0%} of its CPU time goes to other processes (the limit is "
                   f"{max_busy:.0%}; load average {state['load_average'][0]:.2f} on {state['cores']} cores), so the "
                   "timings the notebooks store would measure the other processes too.")
        if not allow_busy:
            raise SystemExit(message + " Fix: stop them and run again, or pass --allow-busy (make execute "
                             "ALLOW_BUSY=1) to run anyway; the stamp then records quiet: false.")
        say("WARNING: " + message + " Running anyway (--allow-busy).")
    return state


# --- running ------------------------------------------------------------------------------------


def course_order(paths: Sequence[Path]) -> list[Path]:
    """The notebooks in course order: by file name, so 03_… comes before 03b_… ('_' sorts before 'b')."""
    return sorted(paths, key=lambda p: p.name)


def resolve(names: Sequence[str]) -> list[Path]:
    """The notebooks named (all of notebooks/ when none), in course order; a clear error for a wrong name."""
    if not names:
        return course_order(list(NOTEBOOKS.glob("*.ipynb")))
    paths = []
    for name in names:
        path = Path(name) if Path(name).exists() else NOTEBOOKS / name
        if not path.is_file() or path.suffix != ".ipynb":
            known = ", ".join(p.name for p in course_order(list(NOTEBOOKS.glob("*.ipynb"))))
            raise SystemExit(f"{name!r} is not a notebook file. Give a path such as notebooks/04_metrics.ipynb; "
                             f"the notebooks are: {known}.")
        paths.append(path.resolve())
    return course_order(paths)


def _hard_link_copy(built: Path) -> Path:
    """A throw-away copy of a built cache, made of hard links (entries are never changed in place), no lock files."""
    if not built.is_dir():
        raise SystemExit(f"The cache {built} is not a folder. Fix: run `MINIKIT_CACHE={built} python -m minikit "
                         "build` first, or leave out --cache.")
    dest = Path(tempfile.mkdtemp(prefix="minikit-execute-")) / "cache"
    try:
        shutil.copytree(built, dest, copy_function=os.link, ignore=shutil.ignore_patterns("*.lock", ".*"))
    except OSError:  # another file system: a real copy
        shutil.rmtree(dest, ignore_errors=True)
        shutil.copytree(built, dest, ignore=shutil.ignore_patterns("*.lock", ".*"))
    return dest


def _built_cache(cache: str | None, build: bool) -> Path:
    """Where the built cache is: ``--cache``, else MINIKIT_CACHE, else minikit's default; built first unless told not."""
    env = dict(os.environ, **({"MINIKIT_CACHE": cache} if cache else {}))
    if build:
        print("$ python -m minikit build", flush=True)
        subprocess.run([sys.executable, "-m", "minikit", "build", "--no-progress"], cwd=ROOT, env=env, check=True)
    where = subprocess.run([sys.executable, "-c", "from minikit.settings import cache_dir; print(cache_dir())"],
                           cwd=ROOT, env=env, check=True, capture_output=True, text=True)
    return Path(where.stdout.strip())


def execute(path: Path, out: Path, machine: dict[str, Any]) -> float:
    """Run one notebook top to bottom in a fresh kernel (in its own folder) and write it, stamped, to ``out``."""
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(path, as_version=4)
    began = time.perf_counter()
    NotebookClient(notebook, timeout=CELL_TIMEOUT_S, kernel_name="python3", store_widget_state=False,
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    seconds = time.perf_counter() - began
    stamp(notebook, dict(machine, seconds=round(seconds, 1)))
    out.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, out)
    return seconds


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tools/execute_notebooks.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", help="notebooks to run (default: every one in notebooks/)")
    parser.add_argument("--out", help="write the executed notebooks into this folder instead of in place")
    parser.add_argument("--cache", help="the built cache to use (default: MINIKIT_CACHE or minikit's default)")
    parser.add_argument("--no-build", action="store_true", help="skip `python -m minikit build` (the cache is built)")
    parser.add_argument("--max-busy", type=float, default=0.25,
                        help="the most CPU other processes may take before a notebook runs, 0–1 (default 0.25)")
    parser.add_argument("--wait", type=float, default=120.0, help="seconds to wait for a quiet machine (default 120)")
    parser.add_argument("--allow-busy", action="store_true", help="run on a busy machine anyway (with a warning)")
    args = parser.parse_args(argv)
    paths = resolve(args.notebooks)
    wait_until_quiet(args.max_busy, args.wait, args.allow_busy)  # before the build, too: it may train
    cache = _hard_link_copy(_built_cache(args.cache, build=not args.no_build))
    os.environ.update(MINIKIT_CACHE=str(cache), MINIKIT_NO_TRAIN="1")  # the kernels inherit these
    failed = []
    try:
        for path in paths:
            machine = wait_until_quiet(args.max_busy, args.wait, args.allow_busy)
            out = Path(args.out) / path.name if args.out else path
            print(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path} …", end=" ", flush=True)
            try:
                seconds = execute(path, out, machine)
            except Exception as error:  # nbclient's CellExecutionError names the cell and the traceback
                failed.append(path.name)
                print(f"FAILED, not written (its stored outputs are unchanged):\n{error}", file=sys.stderr)
                continue
            print(f"{seconds:.0f} s → {out}", flush=True)
    finally:
        shutil.rmtree(cache.parent, ignore_errors=True)
    if failed:
        print(f"{len(failed)} notebook(s) failed: {', '.join(failed)}.", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
