"""Run each notebook top to bottom in a fresh kernel; record wall time and the kernel's peak memory.

    python bench/notebook_budgets.py                     # every notebook, in course order
    python bench/notebook_budgets.py notebooks/02_*.ipynb --json budgets.json

Prints one row per notebook with its budget and exits non-zero when a notebook fails, goes over the
memory budget, or takes more than twice its time budget scaled to this machine.

Time budgets are seconds on the machine they were set on. A machine 1.5× slower, or a loaded one,
takes longer for the same work, so a wall-clock cap alone would fail there: every run also times a
fixed workload (``calibrate()``: MiniLM-L6's shape, random weights, batch 1 at 128 tokens, with the
threads a kernel would use), and a budget is scaled by that workload's time over its time on the
reference machine (``CALIBRATION_REFERENCE_MS``). A notebook over its scaled budget is reported;
only one more than twice over it fails. Memory budgets are not scaled: they fail as they are.
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
FAIL_FACTOR = 2.0  # a notebook fails only beyond this many times its scaled time budget
# calibrate()'s median on the machine the budgets were set on (2-core CI-kind machine, 2 threads, quiet):
# 17.8, 18.3 and 18.7 ms in three runs on 2026-12-06, and 17.8 / 18.4 ms at the start / end of the notebook
# pass that measured the budgets below.
CALIBRATION_REFERENCE_MS = 18.3
# Seconds, warm cache (after `python -m minikit build`: every trained artifact a notebook loads is there),
# on the reference machine (the calibration below), with ~20-50 % room above the time measured.
TIME_BUDGET_S = {  # measured on a built cache, each notebook alone (MINIKIT_NO_TRAIN=1): 2026-12-06, seconds
    "01_model_selection": 75,  # 62 s: it times every catalog model (compare_models), which no build can store
    "02_preprocessing": 30,  # 17 s
    "03_fine_tuning": 30,  # 11 s
    "03b_multi_task": 30,  # 13 s
    "04_metrics": 45,  # 33 s
    "05_pruning": 45,  # 31 s
    "06_quantization": 60,  # 50 s
    "07_distillation": 45,  # 28 s
    "08_deployment": 45,  # 34 s
    "09_compression_lab": 60,  # 47 s
    "10_adaptive_inference": 60,  # 49 s
}
# Seconds with a cold cache (the notebook trains what it needs), where the chapter's issue sets one. CI
# builds first and runs the notebooks with MINIKIT_NO_TRAIN=1, so it never uses them; a notebook that
# trained in a run (this script on an empty cache, a learner's first run) is held to them.
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


def calibrate(repeats: int = 40) -> float:
    """Median milliseconds of one fixed forward pass (MiniLM-L6's shape, random weights, batch 1 × 128 tokens).

    It runs with the torch threads a notebook's kernel would use (``MINIKIT_THREADS``, else every core
    the OS reports), so it is slowed by whatever slows the notebooks: a slower CPU, a loaded machine,
    or a kernel pinned to fewer cores than it has threads.
    """
    import torch
    from transformers import BertConfig, BertModel

    from minikit.settings import get_settings

    before = torch.get_num_threads()
    torch.set_num_threads(get_settings().num_threads)
    try:
        torch.manual_seed(0)
        config = BertConfig(hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536)
        model = BertModel(config).eval()
        ids = torch.randint(1000, 20000, (1, 128), generator=torch.Generator().manual_seed(0))
        times = []
        with torch.inference_mode():
            for i in range(repeats + 5):
                start = time.perf_counter()
                model(input_ids=ids)
                if i >= 5:  # the first passes warm the allocator and the kernels
                    times.append(time.perf_counter() - start)
        times.sort()
        return 1000 * times[len(times) // 2]
    finally:
        torch.set_num_threads(before)


def scale_factor(calibration_ms: float) -> float:
    """How much slower this run's machine is than the reference (below 1: faster)."""
    return calibration_ms / CALIBRATION_REFERENCE_MS


def verdict(seconds: float, budget_s: float | None, scale: float) -> str:
    """'ok', 'over' (over the scaled budget: reported) or 'FAIL' (over FAIL_FACTOR × the scaled budget)."""
    if budget_s is None:
        return "FAIL"
    if seconds <= budget_s * scale:
        return "ok"
    return "over" if seconds <= FAIL_FACTOR * budget_s * scale else "FAIL"


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
    calibration_ms = calibrate()
    scale = scale_factor(calibration_ms)
    print(f"calibration: {calibration_ms:.1f} ms per pass here, {CALIBRATION_REFERENCE_MS} ms on the reference "
          f"machine: budgets × {scale:.2f}", flush=True)
    rows, failed = [], False
    for path in paths:
        row = run_notebook(path.resolve())
        row.update(calibration_ms=round(calibration_ms, 2), scale=round(scale, 3),
                   time_verdict=verdict(row["seconds"], row["time_budget_s"], scale))
        over_mem = row["peak_mb"] > MEMORY_BUDGET_MB
        row["within_budget"] = not (row["time_verdict"] == "FAIL" or over_mem or row["error"])
        failed |= not row["within_budget"]
        rows.append(row)
        scaled = "none" if row["time_budget_s"] is None else f"{row['time_budget_s'] * scale:.0f}"
        print(f"{row['notebook']:<24} {row['seconds']:>7.1f} s (budget {row['time_budget_s']} s, scaled {scaled} s: "
              f"{row['time_verdict']})  {row['peak_mb']:>5} MB (budget {MEMORY_BUDGET_MB} MB)  "
              f"{'ok' if row['within_budget'] else 'OVER BUDGET'}{'  ' + row['error'] if row['error'] else ''}",
              flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
