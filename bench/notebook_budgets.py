"""Run each notebook top to bottom in a fresh kernel; record wall time and the kernel's peak memory.

    python bench/notebook_budgets.py                     # every notebook, in course order
    python bench/notebook_budgets.py notebooks/02_*.ipynb --json budgets.json

Prints one row per notebook with its budget and exits non-zero when a budget is exceeded.
Peak memory is the kernel process tree's memory, sampled every 50 ms, in two figures: ``peak_mb``,
the anonymous resident memory (heap, tensors: what the kernel cannot give back, and what a memory
limit cannot reclaim), which the budget judges; and ``peak_rss_mb``, all resident pages, which adds
file-backed ones shared with other processes and dropped under memory pressure (the ~350 MB of
torch's libraries, memory-mapped weights and Arrow files).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

import nbformat
import psutil
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
MEMORY_BUDGET_MB = 1500  # Binder gives ~2 GB; leave room for JupyterLab itself
# Seconds, warm cache (artifacts a notebook needs already built). Set by each chapter's issue.
TIME_BUDGET_S = {
    "01_model_selection": 120,
    "02_preprocessing": 120,
    "03_fine_tuning": 60,
    "03b_multi_task": 60,
    "04_metrics": 60,
    "05_pruning": 120,
    "06_quantization": 120,
    "07_distillation": 180,
    "08_deployment": 180,
    "09_compression_lab": 120,
    "10_adaptive_inference": 120,
}
# Seconds with a cold cache (the notebook trains what it needs), where the chapter's issue sets one;
# CI's nbval run is cold for the first notebook that needs each artifact (see conftest.py).
COLD_TIME_BUDGET_S = {
    # Issue 3 asks for 240 s. Not met: the notebook fine-tunes four models and adapts one encoder,
    # 306-396 s in CI's runs on 2 cores, and the full fine-tune alone (157 s) is at the CPU's
    # compute limit. The budget leaves room for a slower CI machine; it guards against regressions.
    "03_fine_tuning": 540,
    # Issue 9 asks for 5 minutes cold: 03b trains two multi-task runs and a one-epoch single-task run.
    "03b_multi_task": 300,
    "04_metrics": 240,
    # Issue 5 sets warm budgets only. Cold, 07 trains two students (2 epochs each) and computes the
    # teacher's logits: 321 s measured on 2 quiet cores; 08 then trains the distilled one if 07 did not.
    "07_distillation": 420,
    "08_deployment": 300,
    # Cold, 10 computes every layer's features on the three splits (~40 s) and its latency curve
    # (~15 s); with chapter 7's student not cached either, it distils it first (~3 min).
    # Cold, 09 exports and times its six recipes (~1 min); with chapter 7's student not cached
    # either, it distils it first (~3 min).
    "09_compression_lab": 420,
    "10_adaptive_inference": 420,
}


def _tree_memory(pid: int) -> tuple[int, int]:
    """(anonymous, all) resident bytes of a process and its children; (0, 0) once it is gone."""
    try:
        proc = psutil.Process(pid)
        infos = [p.memory_info() for p in [proc, *proc.children(recursive=True)]]
    except psutil.Error:  # gone, or a zombie between two samples
        return 0, 0
    # On Linux `shared` is the resident file-backed and shared-memory pages (RssFile + RssShmem).
    return sum(m.rss - m.shared for m in infos), sum(m.rss for m in infos)


def run_notebook(path: Path, timeout: int = 1200) -> dict:
    """Execute one notebook in a fresh kernel (cwd = its folder); return time, peak MB and errors."""
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}})
    peak, stop = [0, 0], threading.Event()
    error = None
    start = time.perf_counter()
    with client.setup_kernel():
        pid = client.km.provisioner.process.pid

        def sample() -> None:
            while not stop.is_set():
                anon, rss = _tree_memory(pid)
                peak[0], peak[1] = max(peak[0], anon), max(peak[1], rss)
                time.sleep(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            for index, cell in enumerate(nb.cells):
                client.execute_cell(cell, index)
        except Exception as err:  # a failing cell is a result to report, not a crash of the bench
            error = f"{type(err).__name__}: {str(err)[:300]}"
        finally:
            stop.set()
            sampler.join()
    seconds = time.perf_counter() - start
    name = path.stem
    return {
        "notebook": name,
        "seconds": round(seconds, 1),
        "peak_mb": round(peak[0] / 1e6),
        "peak_rss_mb": round(peak[1] / 1e6),
        "time_budget_s": TIME_BUDGET_S.get(name),
        "memory_budget_mb": MEMORY_BUDGET_MB,
        "error": error,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--json", type=Path, help="also write the rows to this JSON file")
    args = parser.parse_args()
    paths = args.notebooks or sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))
    rows, failed = [], False
    for path in paths:
        row = run_notebook(path.resolve())
        over_time = row["time_budget_s"] is not None and row["seconds"] > row["time_budget_s"]
        over_mem = row["peak_mb"] > MEMORY_BUDGET_MB
        row["within_budget"] = not (over_time or over_mem or row["error"])
        failed |= not row["within_budget"]
        rows.append(row)
        print(f"{row['notebook']:<24} {row['seconds']:>7.1f} s (budget {row['time_budget_s']} s)  "
              f"{row['peak_mb']:>5} MB (budget {MEMORY_BUDGET_MB} MB)  "
              f"{'ok' if row['within_budget'] else 'OVER BUDGET'}{'  ' + row['error'] if row['error'] else ''}",
              flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
