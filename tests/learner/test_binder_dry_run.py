"""A Binder dry-run: build the course from ``binder/`` only, as repo2docker does, run the notebooks in it.

repo2docker, given a ``binder/`` folder, reads nothing else at the root: it installs Python from
``runtime.txt``, runs ``pip install -r requirements.txt``, runs ``postBuild`` from the repository
root, and starts every process through ``start``. This test does the same in a fresh virtual
environment (no Docker, no conda). ``postBuild`` runs the real ``python -m minikit build``: under
``make test`` it runs on a copy of the cache the course's build made earlier in the same CI run, and
must find everything there (nothing is trained twice; this also proves the two environments key the
artifacts alike). Then it executes notebooks, each in a fresh kernel through ``binder/start``, with
``bench/notebook_budgets.py``: by default chapter 2, which is what proves the build; every notebook's
budget is already measured during nbval's runs (see ``conftest.py``), so running them all again here
would only cost CI time. Their time and memory here go to ``artifacts/binder/notebook_budgets.json``
and must stay within the same budgets, scaled to the machine the same way.

Differences from mybinder.org, on purpose:

* an index URL in ``requirements.txt`` that does not answer here (PyTorch's CPU wheel index, on
  CI's closed network) is dropped, and pip's own configured indexes supply the same pinned wheel;
  the file actually used is saved as ``artifacts/binder/requirements.txt``;
* ``MINIKIT_THREADS`` is set to this machine's cores (``start`` would default to 1): the time
  budgets are for 2 cores, which is what CI has.

The build runs while the package tests run: ``make test`` starts it in its own process
(``python -m tests.learner.binder_build FOLDER``) beside them and hands FOLDER over in
``MINIKIT_BINDER_BUILD``, so the test only waits for it; run alone, the test starts it in a thread
when collection ends (``conftest.py``). The notebooks run in the test itself, last, on an
otherwise idle machine.

``BINDER_NOTEBOOKS="all"`` runs every notebook; ``BINDER_NOTEBOOKS="01_model_selection 04_metrics"``
runs those. Build logs, ``pip freeze`` and step timings go to ``artifacts/binder/``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from .course import ARTIFACTS, ROOT, course_notebooks

BINDER = ROOT / "binder"
OUT = ARTIFACTS / "binder"
BUDGETS_JSON = OUT / "notebook_budgets.json"
# One notebook proves the environment (imports, data, tokenizer, charts, widgets); nbval runs them all,
# and CI has no time for a second copy. 02 is the cheapest that touches every library.
DEFAULT_NOTEBOOKS = "02_preprocessing"
_RUNNING: set[subprocess.Popen] = set()  # steps in progress: stopped if the session ends before the test runs
INDEX_OPTION = re.compile(r"^\s*(--extra-index-url|--index-url|-i|--find-links|-f)[\s=]+(\S+)")


def _python_for_runtime() -> tuple[str, str]:
    """The interpreter ``runtime.txt`` asks for (``python-3.11`` → ``python3.11``), or this one, with a note."""
    spec = (BINDER / "runtime.txt").read_text().strip() if (BINDER / "runtime.txt").exists() else ""
    version = spec.removeprefix("python-")
    # Not the test run's own virtual environment's interpreter: the build starts from a bare Python.
    own_bin = Path(sys.prefix) / "bin"
    search = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep)
                             if sys.prefix == sys.base_prefix or Path(p).resolve() != own_bin.resolve())
    found = shutil.which(f"python{version}", path=search) if version else None
    if found:
        return found, f"runtime.txt asks for {spec}: using {found}"
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    return sys.executable, f"runtime.txt asks for {spec or 'nothing'}; python{version} not found, using Python {here}"


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/", timeout=5):
            return True
    except Exception:  # DNS failure, refused, timeout, HTTP error: not usable from here
        return False


def _requirements_as_used(dest: Path) -> tuple[Path, list[str]]:
    """Copy requirements.txt, dropping index lines whose URL does not answer from this machine."""
    kept, notes = [], []
    for line in (BINDER / "requirements.txt").read_text().splitlines():
        match = INDEX_OPTION.match(line)
        if match and match[2].startswith(("http://", "https://")) and not _answers(match[2]):
            notes.append(f"dropped `{line.strip()}`: {match[2]} does not answer here; pip's configured "
                         "indexes provide the pinned wheels instead")
            kept.append(f"# {line}  (dropped by the dry-run: unreachable here)")
        else:
            kept.append(line)
    dest.write_text("\n".join(kept) + "\n")
    return dest, notes


def _run(command: list[str], log: Path, timeout: float, check: bool = True, **kwargs) -> tuple[float, int | str]:
    """Run a step, appending its output to ``log``; return (seconds, exit code); fail with the log's tail if ``check``."""
    start = time.monotonic()
    with open(log, "a") as out:
        out.write(f"\n$ {' '.join(command)}\n")
        out.flush()
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, **kwargs)
        _RUNNING.add(process)
        try:
            code = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # the step and everything it started (kernels)
            process.wait()
            code = f"killed after {timeout:.0f} s"
        finally:
            _RUNNING.discard(process)
    if check and code != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:])
        pytest.fail(f"Binder dry-run step failed ({code}): {' '.join(command)}\n{tail}", pytrace=False)
    return time.monotonic() - start, code


def _selected_notebooks() -> list[Path]:
    everything = course_notebooks()
    wanted = (os.environ.get("BINDER_NOTEBOOKS") or DEFAULT_NOTEBOOKS).split()
    if wanted == ["all"]:
        return everything
    chosen = [path for path in everything if path.stem in wanted or path.name in wanted]
    missing = set(wanted) - {path.stem for path in chosen} - {path.name for path in chosen}
    if missing:
        pytest.fail(f"BINDER_NOTEBOOKS names {sorted(missing)}, which are not in notebooks/.", pytrace=False)
    return chosen


def _environment(base: Path) -> dict[str, str]:
    """The build's and the run's environment: this one, minus anything pointing at the test run's own venv."""
    env_dir = base / "binder-env"
    env = {key: value for key, value in os.environ.items()
           if key not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "JUPYTER_PATH", "PIP_REQUIRE_VIRTUALENV"}}
    env.update(PATH=f"{env_dir / 'bin'}{os.pathsep}{env['PATH']}", VIRTUAL_ENV=str(env_dir),
               PIP_DISABLE_PIP_VERSION_CHECK="1",
               # No user kernelspec or config may stand in for the environment's own "python3" kernel.
               JUPYTER_DATA_DIR=str(base / "jupyter-data"), JUPYTER_CONFIG_DIR=str(base / "jupyter-config"),
               JUPYTER_RUNTIME_DIR=str(base / "jupyter-runtime"))
    return env


class BinderBuild:
    """The build (venv, requirements.txt, postBuild, checks of what it produced), in a thread or in the foreground.

    ``tests/learner/conftest.py`` starts it in a thread as soon as collection ends when this test is
    selected, so that the ~90 s of pip work overlaps the package tests instead of adding to CI's
    time; the notebook run, which measures the budgets, still waits for an idle machine at the end.
    ``result()`` waits for it and re-raises its failure in the test. ``binder_build.py`` runs it in
    the foreground (``background=False``) in a process of its own.
    """

    def __init__(self, base: Path | None = None, background: bool = True) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="minikit-binder-")) if base is None else Path(base)
        self.env_dir = self.base / "binder-env"
        self.report: dict = {"seconds": {}, "notes": []}
        self.started = time.monotonic()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._build, name="binder-build", daemon=True)
        if background:
            self._thread.start()
        else:
            self._build()

    def _build(self) -> None:
        try:
            self._steps()
        except BaseException as err:  # pytest.fail raises a BaseException; the test re-raises it
            self._error = err

    def _steps(self) -> None:
        """The environment: a venv and requirements.txt (pip work, in the background beside the package tests)."""
        OUT.mkdir(parents=True, exist_ok=True)
        log = OUT / "build.log"
        log.write_text("")
        report = self.report
        python, note = _python_for_runtime()
        report["notes"].append(note)
        requirements, notes = _requirements_as_used(OUT / "requirements.txt")
        report["notes"] += notes
        env = _environment(self.base)
        report["seconds"]["venv"], _ = _run([python, "-m", "venv", str(self.env_dir)], log, 300)
        report["seconds"]["requirements"], _ = _run(
            [str(self.env_dir / "bin" / "python"), "-m", "pip", "install", "-r", str(requirements)], log, 1200,
            cwd=ROOT, env=env)
        report["build_finished_after_s"] = round(time.monotonic() - self.started, 1)

    def result(self) -> None:
        waited = time.monotonic()
        if self._thread.is_alive():
            self._thread.join()
        self.report["waited_for_build_s"] = round(time.monotonic() - waited, 1)
        if self._error is not None:
            raise self._error

    def remove(self) -> None:
        if self._thread.is_alive():
            self._thread.join()
        shutil.rmtree(self.base, ignore_errors=True)  # ~2 GB; its logs and `pip freeze` are in artifacts/binder/


def post_build(base: Path, env_dir: Path, report: dict, env: dict[str, str]) -> str:
    """``postBuild`` as repo2docker runs it (from the repository root, in the environment), then checks of the result.

    It installs minikit and runs the real ``python -m minikit build``. It runs after the course's own
    build (``make test``), on a copy of that cache, so it must find every artifact there and train
    nothing: what the image would hold is what the notebooks were tested on, built once per CI run.
    Returns what the build printed.
    """
    log = OUT / "postBuild.log"
    log.write_text("")
    env_python = str(env_dir / "bin" / "python")
    report["seconds"]["postBuild"], _ = _run(["bash", str(BINDER / "postBuild")], log, 3600, cwd=ROOT, env=env)
    student = sorted(p.name for p in (ROOT / "student").glob("[0-9]*.ipynb"))
    assert student == sorted(p.name for p in (ROOT / "notebooks").glob("[0-9]*.ipynb")), \
        f"binder/postBuild did not write the student edition of every notebook to student/: {student}"
    # What the build produced: minikit from this repository, CPU-only torch, a consistent set,
    # and a "python3" kernel that is the environment's own interpreter.
    probe = subprocess.run([env_python, "-c", (
        "import json, sys, torch, minikit; from jupyter_client.kernelspec import KernelSpecManager as K;"
        "print(json.dumps({'python': sys.version.split()[0], 'minikit': minikit.__file__,"
        "'torch': torch.__version__, 'cuda': torch.version.cuda,"
        "'kernel': K().get_kernel_spec('python3').resource_dir}))")],
        cwd=base, env=env, capture_output=True, text=True, timeout=300)
    assert probe.returncode == 0, f"the Binder environment cannot import the course:\n{probe.stderr[-3000:]}"
    built = json.loads(probe.stdout.strip().splitlines()[-1])
    report["environment"] = built
    assert Path(built["minikit"]).resolve().is_relative_to(ROOT), f"minikit imported from {built['minikit']}"
    assert built["cuda"] is None, f"binder/requirements.txt gave a CUDA build of torch ({built['torch']})"
    assert Path(built["kernel"]).resolve().is_relative_to(env_dir.resolve()), (
        f"the python3 kernel comes from {built['kernel']}, not from the Binder environment")
    freeze = subprocess.run([env_python, "-m", "pip", "freeze"], env=env, capture_output=True, text=True)
    (OUT / "pip-freeze.txt").write_text(freeze.stdout)
    check = subprocess.run([env_python, "-m", "pip", "check"], env=env, capture_output=True, text=True)
    assert check.returncode == 0, f"pip check finds broken requirements in the Binder environment:\n{check.stdout}"
    return log.read_text(errors="replace")


RESULT = "result.json"  # what binder_build.py writes into its folder when the build has ended, well or not
PREBUILT_WAIT_S = 1500  # the build's own steps time out after 20 minutes each


class PrebuiltBinder:
    """A build that another process runs into ``base`` (``binder_build.py``, started by ``make test``).

    Same interface as BinderBuild: ``result()`` waits for ``base/result.json`` and turns a failed
    build into the test's failure, with the build's own message.
    """

    def __init__(self, base: Path) -> None:
        self.base, self.env_dir = Path(base), Path(base) / "binder-env"
        self.report: dict = {"seconds": {}, "notes": [f"built by another process into {base} (MINIKIT_BINDER_BUILD)"]}

    def result(self) -> None:
        waited, done = time.monotonic(), self.base / RESULT
        while not done.exists():
            if time.monotonic() - waited > PREBUILT_WAIT_S:
                pytest.fail(f"MINIKIT_BINDER_BUILD={self.base}: no {RESULT} after {PREBUILT_WAIT_S} s. The build "
                            "process (python -m tests.learner.binder_build) died or was never started; see "
                            f"{OUT / 'build.log'}, or unset MINIKIT_BINDER_BUILD to build in the test.", pytrace=False)
            time.sleep(1)
        built = json.loads(done.read_text())
        self.report.update({k: v for k, v in built["report"].items() if k != "notes"})
        self.report["notes"] += built["report"].get("notes", [])
        self.report["waited_for_build_s"] = round(time.monotonic() - waited, 1)
        if not built["ok"]:
            pytest.fail(f"The Binder build failed:\n{built['error']}", pytrace=False)

    def remove(self) -> None:
        shutil.rmtree(self.base, ignore_errors=True)


_BUILD: BinderBuild | PrebuiltBinder | None = None


def stop_build() -> None:
    """At the session's end: stop a build whose test never ran (-x, Ctrl-C) and remove its folder."""
    for process in list(_RUNNING):
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if _BUILD is not None:
        _BUILD.remove()


def start_build() -> BinderBuild | PrebuiltBinder:
    """Start the build once (the conftest calls it early; the test calls it if nobody did), or take over the one
    ``make test`` started in another process (``MINIKIT_BINDER_BUILD`` names its folder)."""
    global _BUILD
    if _BUILD is None:
        prebuilt = os.environ.get("MINIKIT_BINDER_BUILD")
        _BUILD = PrebuiltBinder(Path(prebuilt)) if prebuilt else BinderBuild()
    return _BUILD


@pytest.mark.binder
def test_binder_dry_run() -> None:
    build = start_build()
    report, env_dir = build.report, build.env_dir
    env_python = str(env_dir / "bin" / "python")
    try:
        build.result()
        env = _environment(build.base)  # now: the session's MINIKIT_CACHE is set after collection
        # The run a Binder learner would do (through `start`), measured against the budgets.
        notebooks = _selected_notebooks()
        run_env = dict(env, MINIKIT_THREADS=os.environ.get("MINIKIT_THREADS") or str(os.cpu_count() or 1))
        report["minikit_threads"] = run_env["MINIKIT_THREADS"]
        report["minikit_cache"] = run_env.get("MINIKIT_CACHE", "(user cache)")
        printed = post_build(build.base, env_dir, report, run_env)
        summary = [line for line in printed.splitlines() if "step(s) built" in line]
        assert summary, f"binder/postBuild did not run `python -m minikit build` to its end:\n{printed[-3000:]}"
        report["postBuild_minikit_build"] = summary[-1]
        if os.environ.get("MINIKIT_BUILT_CACHE"):  # make test built the course already: nothing may train twice
            assert summary[-1].startswith("0 step(s) built"), (
                f"binder/postBuild's `minikit build` trained again on the cache `make test` built: {summary[-1]} "
                "(a cache key that differs between the two environments?)")
        BUDGETS_JSON.unlink(missing_ok=True)
        budget_log = OUT / "notebooks.log"
        budget_log.write_text("")
        command = ["bash", str(BINDER / "start"), env_python, str(ROOT / "bench" / "notebook_budgets.py"),
                   "--json", str(BUDGETS_JSON), *map(str, notebooks)]
        load_before = os.getloadavg()[0]
        report["seconds"]["notebooks"], code = _run(command, budget_log, 3600, check=False, cwd=ROOT, env=run_env)
        # The run's own kernel accounts for about MINIKIT_THREADS of the load; more means other
        # processes competed for the cores, and the times are not the notebooks' alone.
        report["load_average"] = {"cores": os.cpu_count(), "before": round(load_before, 2),
                                  "after_1min": round(os.getloadavg()[0], 2), "after_5min": round(os.getloadavg()[1], 2)}
        assert BUDGETS_JSON.exists(), (f"bench/notebook_budgets.py wrote no results ({code}):\n"
                                       + "\n".join(budget_log.read_text(errors="replace").splitlines()[-40:]))
        rows = json.loads(BUDGETS_JSON.read_text())
        report["budgets"] = rows
    finally:
        report["seconds"] = {step: round(seconds, 1) for step, seconds in report["seconds"].items()}
        (OUT / "dry_run.json").write_text(json.dumps(report, indent=2))
        build.remove()

    table = "\n".join(
        f"  {row['notebook']:<24} {row['seconds']:>7.1f} s (budget {row['time_budget_s']} s × {row['scale']:.2f}: "
        f"{row['time_verdict']})  "
        f"{row['peak_mb']:>5} MB (budget {row['memory_budget_mb']} MB)"
        + (f"  ERROR {row['error']}" if row["error"] else "") for row in rows)
    load = report["load_average"]
    if load["after_5min"] > (load["cores"] or 1) + 0.5:
        table += (f"\n  Note: load average {load['after_5min']} on {load['cores']} cores during the run: other "
                  "processes competed for the CPU, so these times overstate the notebooks' own.")
    print(f"\nBinder dry-run: {report['seconds']}\n{table}")
    assert [row["notebook"] for row in rows] == [path.stem for path in notebooks], "not every notebook was run"
    problems = [f"{row['notebook']}: {row['error']}" for row in rows if row["error"]]
    problems += [f"{row['notebook']}: no time budget; add one to TIME_BUDGET_S in bench/notebook_budgets.py"
                 for row in rows if row["time_budget_s"] is None]
    problems += [f"{row['notebook']}: {row['seconds']} s, more than twice its {row['time_budget_s']} s budget × "
                 f"{row['scale']:.2f} (this machine's calibration)"
                 for row in rows if row["time_budget_s"] is not None and row["time_verdict"] == "FAIL"]
    problems += [f"{row['notebook']}: peak {row['peak_mb']} MB, over the {row['memory_budget_mb']} MB budget"
                 for row in rows if row["peak_mb"] > row["memory_budget_mb"]]
    assert not problems, "In the Binder environment:\n" + "\n".join(problems) + f"\n{table}"
    assert code == 0, f"bench/notebook_budgets.py exited {code}; see {budget_log}"
