"""The whole course without Jupyter: ``python -m minikit report`` (or the ``minikit`` command); ``build`` too.

It fine-tunes, prunes, quantizes, distils and exports, measures every variant side by side in
one ``Benchmark`` run on the test split, and writes to the output folder:

- ``report.html`` — self-contained (charts are inline SVG, no script, no network): the results
  table, the ratios against the float32 baseline, the source's claim and our targets checked,
  accuracy-vs-cost charts, the baseline's training curve, the machine and the command;
- ``results.json`` — the same numbers for a program (one object per variant, plus the run);
- ``results.csv`` — the table alone.

Every trained model goes through the cache, so an interrupted run (Ctrl-C) loses at most the
step it was in, and the same command resumes from there.
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import html
import json
import sys
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import pandas as pd

from minikit import benchmark, build, charts, deployment, students, system
from minikit import distillation as D
from minikit import quantization as Q
from minikit.cache import load_model_dir, load_or_build, save_model_dir
from minikit.claims import COMPRESSION_CLAIM as CLAIM
from minikit.errors import DataWarning, MinikitError
from minikit.loading import BBC_NEWS, load_dataset
from minikit.models import DEFAULT_MODEL, encoder_layers, resolve_model_source
from minikit.pruning import RECOVERY_CONFIG, prune_ffn_neurons, recover
from minikit.settings import cache_dir, setup
from minikit.training import TrainConfig, fine_tune

STEPS = ("fine-tune", "prune", "quantize", "distil", "export", "benchmark", "write")
PRUNE_FRACTION = 0.5  # of each feed-forward block's neurons (chapter 5's structured pruning)
# This course's own targets (issue 5), final variant vs baseline; the source's claim is minikit.claims'.
TARGETS = {"smaller": 0.90, "speedup": 4.0, "points": 1.0}
BASELINE, FINAL = "baseline fp32 (PyTorch)", "student int8 (ONNX Runtime)"


class ReportError(MinikitError, ValueError):
    """The report cannot run as asked (e.g. an output folder that cannot be written); the message says the fix."""


@dataclass(frozen=True)
class Report:
    """Where the report went, and what it measured."""

    out_dir: Path
    html: Path
    json: Path
    csv: Path
    table: pd.DataFrame  # Benchmark.results: one row per variant
    seconds: dict  # per step


def writable_folder(out: str | Path) -> Path:
    """Create ``out`` if needed and prove a file can be written there, before hours of work depend on it."""
    folder = Path(out).expanduser()
    if folder.exists() and not folder.is_dir():
        raise ReportError(f"--out {folder} is a file, not a folder. Fix: give a folder path (it is created if needed).")
    try:
        system.prove_writable(folder)
    except OSError as problem:
        raise ReportError(f"Cannot write the report to {folder}: {problem.strerror or problem}. "
                          "Fix: choose a folder you can write to, e.g. --out ./minikit-report.") from None
    return folder


def _check_inputs(model: str | Path, dataset: str | Path) -> None:
    """Fail on an unknown model or dataset name in a second, not after the first training."""
    if not Path(str(model)).expanduser().is_dir():
        resolve_model_source(str(model))  # UnknownNameError lists the known names
    with warnings.catch_warnings():
        if str(dataset) == BBC_NEWS:  # its one cp1252 file is known (chapter 2 shows it)
            warnings.simplefilter("ignore", DataWarning)
        load_dataset(str(dataset))  # UnknownNameError / FileNotFoundError / DataError, each with its fix


def _student(baseline, config: TrainConfig, progress: bool):
    """The course's student for the embedded default; for another model, the same recipe scaled to its depth."""
    n = len(encoder_layers(baseline.model))
    if n == 6 and config == TrainConfig():
        return D.get_student(baseline, progress=progress)
    layers = students.spread_layers(n, max(1, round(n / 3)))
    min_count = D.STUDENT_MIN_COUNT if len(baseline.splits["train"]) >= 1000 else 1
    start = D.student_start(baseline, layers=layers, min_count=min_count)
    student_config = replace(config, epochs=max(config.epochs, D.STUDENT_CONFIG.epochs),
                             activation_checkpointing=False)
    return D.distill(start.model, baseline, tokenizer=start.tokenizer, config=student_config, progress=progress)


def _pruned(baseline, config: TrainConfig, progress: bool):
    """Half of each feed-forward block pruned (chapter 5), then a short recovery fine-tune; cached."""
    # With activation checkpointing, as the fine-tune above: this process holds the baseline beside it.
    recovery = replace(RECOVERY_CONFIG, max_length=config.max_length, seed=config.seed, activation_checkpointing=True)
    parts = {"baseline": Path(baseline.cache_dir).name, "ffn_fraction": PRUNE_FRACTION, "recovery": recovery}

    def build(folder: Path) -> None:
        model = prune_ffn_neurons(copy.deepcopy(baseline.model), PRUNE_FRACTION)
        recover(model, baseline.tokenizer, baseline.splits, recovery, progress=progress)
        save_model_dir(model, baseline.tokenizer, folder)

    model, _ = load_model_dir(load_or_build("pruned", parts, build))
    return model.eval()


def _svg(chart) -> str:
    import vl_convert as vlc

    return vlc.vegalite_to_svg(chart.to_json())


def _claims(table: pd.DataFrame) -> pd.DataFrame:
    row = table.set_index("name").loc[FINAL]
    smaller, speedup, lost = 1 - row["size_ratio"], row["speedup"], -row["accuracy_delta"] + 0.0
    return pd.DataFrame([
        {"measure": "size", "measured": f"{smaller:.1%} smaller",
         "source's claim": f"≥ {CLAIM.smaller:.0%} smaller", "claim holds": smaller >= CLAIM.smaller,
         "our target": f"≥ {TARGETS['smaller']:.0%} smaller", "target met": smaller >= TARGETS["smaller"]},
        {"measure": "latency, batch 1", "measured": f"{speedup:.2f}× faster ({1 - 1 / speedup:.0%} less)",
         "source's claim": f"≥ {CLAIM.faster:.0%} less", "claim holds": 1 - 1 / speedup >= CLAIM.faster,
         "our target": f"≥ {TARGETS['speedup']:g}×", "target met": speedup >= TARGETS["speedup"]},
        {"measure": "accuracy", "measured": f"{-lost:+.2f} points",
         "source's claim": f"< {CLAIM.points:g} points lost", "claim holds": lost < CLAIM.points,
         "our target": f"≤ {TARGETS['points']:g} point lost", "target met": lost <= TARGETS["points"]},
    ])


def _write(folder: Path, table: pd.DataFrame, baseline, run: dict) -> tuple[Path, Path, Path]:
    csv_path, json_path, html_path = folder / "results.csv", folder / "results.json", folder / "report.html"
    table.to_csv(csv_path, index=False)
    claims = _claims(table)
    payload = {**run, "baseline": BASELINE, "final": FINAL,
               "variants": json.loads(table.to_json(orient="records")),
               "claims": json.loads(claims.to_json(orient="records"))}
    json_path.write_text(json.dumps(payload, indent=1, ensure_ascii=False))
    shown = table[["name", "accuracy", "macro_f1", "params_m", "size_mb", "latency_p50_ms", "latency_p95_ms",
                   "throughput", "peak_memory_mb", "size_ratio", "speedup", "accuracy_delta"]]
    formats = {"accuracy": "{:.2%}", "macro_f1": "{:.3f}", "params_m": "{:.1f}", "size_mb": "{:.2f}",
               "latency_p50_ms": "{:.2f}", "latency_p95_ms": "{:.2f}", "throughput": "{:.0f}",
               "peak_memory_mb": "{:.0f}", "size_ratio": "{:.3f}", "speedup": "{:.2f}×", "accuracy_delta": "{:+.2f}"}
    results_html = shown.style.format(formats).hide(axis="index").to_html()
    claims_html = claims.replace({True: "✓", False: "✗"}).style.hide(axis="index").to_html()
    steps = "".join(f"<li>{html.escape(k)}: {v:.0f} s</li>" for k, v in run["seconds"].items())
    machine = ", ".join(f"{k} {v}" for k, v in run["machine"].items())
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>minikit report: {html.escape(run['model'])} on {html.escape(run['dataset'])}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}}
table{{border-collapse:collapse;margin:1em 0}}td,th{{border-bottom:1px solid #ddd;padding:4px 10px;text-align:right}}
th{{background:#f4f4f4}}td:first-child,th:first-child{{text-align:left}}code{{background:#f4f4f4;padding:1px 4px}}</style>
</head><body>
<h1>minikit report: {html.escape(run['model'])} on {html.escape(run['dataset'])}</h1>
<p>Every variant measured side by side in one <code>Benchmark</code> run on the test split
({int(table['n_eval'].iloc[0])} examples): accuracy, size, batch-1 latency at {int(table['seq_len'].iloc[0])} tokens
(p50, p95), throughput at batch {int(table['batch_size'].iloc[0])}, peak memory. Ratios are against
<b>{html.escape(BASELINE)}</b>; the compressed model is <b>{html.escape(FINAL)}</b>.</p>
<h2>Results</h2>{results_html}
<h2>Claims and targets (compressed model vs baseline)</h2>{claims_html}
<h2>Accuracy against cost</h2>{_svg(charts.benchmark_chart(table, BASELINE))}
<h2>Fine-tuning the baseline</h2>{_svg(charts.training_chart(baseline.result.history, "Fine-tuning the baseline"))}
<h2>How this was made</h2>
<ul><li>command: <code>{html.escape(run['command'])}</code></li><li>created: {html.escape(run['created'])}</li>
<li>machine: {html.escape(machine)}; torch threads {run['threads']}</li>
<li>versions: {html.escape(', '.join(f'{k} {v}' for k, v in run['versions'].items()))}</li>{steps}</ul>
</body></html>
"""
    html_path.write_text(page, encoding="utf-8")
    return html_path, json_path, csv_path


def run_report(model: str | Path = DEFAULT_MODEL, dataset: str | Path = BBC_NEWS, out: str | Path = "minikit-report",
               threads: int | None = None, config: TrainConfig = TrainConfig(), repeats: int = 30,
               progress: bool = True, command: str | None = None) -> Report:
    """Fine-tune ``model`` on ``dataset``, compress it four ways, measure all, write the report to ``out``.

    ``config`` is the fine-tuning recipe (the default is chapter 3's); students are distilled with
    the course's recipe. Cached throughout: a second run with the same arguments only measures.
    """
    from importlib import metadata

    import torch


    folder = writable_folder(out)
    _check_inputs(model, dataset)
    setup(threads=threads)
    seconds: dict[str, float] = {}
    bar = _steps_bar(progress)

    def step(name: str):
        bar.set_description(f"minikit report: {name}")
        seconds[name] = time.perf_counter()

    def done(name: str):
        seconds[name] = time.perf_counter() - seconds[name]
        bar.update(1)

    step("fine-tune")
    # With activation checkpointing: this process goes on to hold the baseline, a pruned copy and a teacher
    # with its student, and keeping every activation as well would lift its peak over 1.5 GB. Same model,
    # same cache entry as get_baseline().
    baseline = fine_tune(str(model), str(dataset), replace(config, activation_checkpointing=True), progress=progress)
    done("fine-tune")
    step("prune")
    pruned = _pruned(baseline, config, progress)
    done("prune")
    step("quantize")
    int8_torch = Q.dynamic_int8(baseline.model)
    check_texts = list(baseline.splits["validation"]["text"][:16])
    int8_folder = deployment.export_for_serving(baseline.model, baseline.tokenizer, folder / "baseline-int8",
                                                max_length=config.max_length, texts=check_texts, name="baseline-int8")
    done("quantize")
    step("distil")
    student = _student(baseline, config, progress)
    done("distil")
    step("export")
    served = deployment.export_for_serving(student.model, student.tokenizer, folder / "served",
                                           max_length=config.max_length, texts=check_texts, name="student-int8")
    done("export")
    step("benchmark")
    bench = benchmark.Benchmark(baseline.splits["test"], baseline.tokenizer, max_length=config.max_length,
                                baseline=BASELINE, repeats=repeats, batch_size=16, batch_repeats=2)
    bench.add(BASELINE, baseline.model)
    bench.add(f"pruned FFN {PRUNE_FRACTION:.0%} (PyTorch)", pruned)
    bench.add("int8 dynamic (PyTorch)", int8_torch)
    bench.add("int8 (ONNX Runtime)", int8_folder / "model.onnx", config=baseline.model.config)
    bench.add("student fp32 (PyTorch)", student.model, tokenizer=student.tokenizer)
    bench.add(FINAL, served / "model.onnx", config=student.model.config, tokenizer=student.tokenizer)
    table = bench.run()
    done("benchmark")
    step("write")
    run = {"model": str(model), "dataset": str(dataset), "command": command or _command(),
           "created": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
           "machine": system.machine_description(), "threads": torch.get_num_threads(),
           "versions": {p: metadata.version(p) for p in ("torch", "transformers", "onnxruntime", "minikit")},
           "seconds": {k: round(v, 1) for k, v in seconds.items() if k != "write"}}
    html_path, json_path, csv_path = _write(folder, table, baseline, run)
    done("write")
    bar.close()
    return Report(folder, html_path, json_path, csv_path, table, run["seconds"])


def _steps_bar(progress: bool):
    from tqdm.auto import tqdm

    return tqdm(total=len(STEPS), desc="minikit report", disable=not progress, position=0, leave=True,
                bar_format="{desc}: step {n_fmt}/{total_fmt} [{elapsed}]")


def _command() -> str:
    return " ".join(["python -m minikit", *sys.argv[1:]]) if sys.argv and sys.argv[0] else "run_report()"


# --------------------------------------------------------------------------------------------
# The command line
# --------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m minikit", description="The minikit course without Jupyter.")
    commands = parser.add_subparsers(dest="command", required=True)
    report = commands.add_parser("report", help="fine-tune, prune, quantize, distil, export, measure; write a report",
                                 description=__doc__.split("\n\n")[1] if __doc__ else None)
    report.add_argument("--model", default=DEFAULT_MODEL, help="a catalog name or a local model folder "
                        f"(default {DEFAULT_MODEL}, embedded)")
    report.add_argument("--dataset", default=BBC_NEWS, help=f"a dataset name or a CSV/JSONL file (default {BBC_NEWS})")
    report.add_argument("--out", default="minikit-report", help="output folder (created if needed)")
    report.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    report.add_argument("--no-progress", action="store_true", help="no progress bars (logs, CI)")

    build_parser = commands.add_parser("build", help="train every artifact the chapters load, once, into the cache",
                                       description=build.__doc__.split("\n\n")[0] if build.__doc__ else None)
    build.add_arguments(build_parser)
    args = parser.parse_args(argv)
    if args.command == "build":
        try:
            return build.main(args)
        except KeyboardInterrupt:
            print(f"\nInterrupted. Every step finished so far is cached in {cache_dir()}; run the same command "
                  "again to resume from there.", file=sys.stderr)
            return 130
        except MinikitError as problem:
            print(f"error: {problem}", file=sys.stderr)
            return 2
    try:
        result = run_report(args.model, args.dataset, args.out, threads=args.threads, progress=not args.no_progress,
                            command=" ".join(["python -m minikit", *(argv if argv is not None else sys.argv[1:])]))
    except KeyboardInterrupt:
        print(f"\nInterrupted. Every step finished so far is cached in {cache_dir()}; run the same command "
              "again to resume from there.", file=sys.stderr)
        return 130
    except (MinikitError, FileNotFoundError, ValueError) as problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    print(f"wrote {result.html}, {result.json} and {result.csv}")
    print(result.table[["name", "accuracy", "size_mb", "latency_p50_ms", "size_ratio", "speedup",
                        "accuracy_delta"]].round(3).to_string(index=False))
    return 0


__all__ = ["Report", "ReportError", "STEPS", "TARGETS", "main", "run_report", "writable_folder"]
