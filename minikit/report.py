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
from typing import Any, Sequence

import datasets
import numpy as np
import pandas as pd

from minikit import benchmark, build, charts, deployment, students, system
from minikit import distillation as D
from minikit import quantization as Q
from minikit.cache import load_model_dir, load_or_build, save_model_dir
from minikit.claims import COMPRESSION_CLAIM as CLAIM
from minikit.data import prepare_dataset, stratified_subset
from minikit.errors import DataError, DataWarning, MinikitError, command_line, option
from minikit.loading import BBC_HEADLINES, BBC_NEWS, BUILT_IN_DATASETS
from minikit.models import DEFAULT_MODEL, encoder_layers, resolve_model_source
from minikit.pruning import RECOVERY_CONFIG, prune_ffn_neurons, recover
from minikit.settings import cache_dir, setup
from minikit.stats import FAILS, HOLDS, format_accuracy, loss_verdict, majority_correct, paired_comparison
from minikit.training import MIN_STEPS, RECIPE, TrainConfig, fine_tune

STEPS = ("fine-tune", "prune", "quantize", "distil", "export", "benchmark", "write")
PRUNE_FRACTION = 0.5  # of each feed-forward block's neurons (chapter 5's structured pruning)
STUDENT_MIN_STEPS = 3 * MIN_STEPS  # the student's floor on small data (see _student)
# This course's own targets (issue 5), final variant vs baseline; the source's claim is minikit.claims'.
TARGETS = {"smaller": 0.90, "speedup": 4.0, "points": 1.0}
BASELINE, FINAL = "baseline fp32 (PyTorch)", "student int8 (ONNX Runtime)"
# Issue 24's student at the machine's limit (distillation.LIMIT_*), the last row; the claims stay on FINAL,
# the course's compressed model that chapters 7-10 build and serve.
LIMIT = "student at the limit int8 (ONNX Runtime)"


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
    evidence: Evidence  # the baseline against the majority class: did it learn?
    claims: pd.DataFrame  # the source's claim and our targets: holds, fails, cannot tell (n = …) or no verdict
    quality: pd.DataFrame  # each accuracy with its interval and paired change; majority-class and chance rows
    steps: int  # optimizer steps the baseline took
    data_notes: list  # what loading and preparing changed in the data (duplicates removed, split adapted, …)


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


def _data(model: str | Path, dataset: str | Path, columns: dict, seed: int) -> tuple[Any, Any, list[str]]:
    """Fail on an unknown model, or data that cannot be used, in seconds, not after the first training.

    Returns (what to fine-tune on, its splits, what loading and preparing changed in the data: each
    DataWarning's text, for the report). The warnings are also shown as they happen; when preparing
    fails after some, the error says what came before it.
    """
    if not Path(str(model)).expanduser().is_dir():
        resolve_model_source(str(model))  # UnknownNameError lists the known names
    if str(dataset) in BUILT_IN_DATASETS:  # by name: the same cache entry as the chapters' baseline
        return str(dataset), prepare_dataset(str(dataset), seed=seed)[0], []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:  # UnknownNameError / FileNotFoundError / DataError, each with its fix
            splits, _ = prepare_dataset(str(dataset), seed=seed, **columns)
        except DataError as problem:
            if not _notes(caught):
                raise
            raise DataError(f"{problem} Before that: {' '.join(_notes(caught))}") from None
    for warning in caught:  # shown now, not minutes later with the report
        warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    return splits, splits, _notes(caught)


def _notes(caught: list) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, DataWarning)]


def _recipe(config: TrainConfig | None, train_rows: int) -> tuple[TrainConfig, bool]:
    """The fine-tuning recipe resolved for this many train rows, and whether the small-data floor raised it."""
    recipe = RECIPE if config is None else config
    resolved = recipe.resolved(train_rows)
    return resolved, resolved != replace(recipe, min_steps=None)


def _student(baseline, config: TrainConfig, small: bool, progress: bool, limit: bool = False):
    """The course's student for the embedded default; for another model or data, the same recipe scaled to its depth.

    ``limit=True``: issue 24's student at the limit (``distillation.LIMIT_*``), likewise scaled.
    On small data the student (a third of the layers and a new head) gets ``STUDENT_MIN_STEPS``: on
    data/examples/many_classes.csv (20 classes, 112 rows to train on) a 2-layer student reached 12.5 % of
    24 test rows in the baseline's 112 steps and 41.7 % in 336 (3e-4 instead of 1e-4 did no better); the
    baseline reached 87.5 %. The report says "worse" there: a 2-layer student needs more data.
    """
    n = len(encoder_layers(baseline.model))
    if n == 6 and config == TrainConfig() and len(baseline.splits["train"]) >= 1000:
        return (D.get_limit_student if limit else D.get_student)(baseline, progress=progress)
    kept, ffn, heads = ((D.LIMIT_LAYERS, D.LIMIT_FFN_FRACTION, D.LIMIT_HEADS_FRACTION) if limit
                        else (D.STUDENT_LAYERS, D.STUDENT_FFN_FRACTION, 0.0))
    layers = students.spread_layers(n, max(1, round(n * len(kept) / 6)))  # the default's share of a 6-layer model
    min_count = D.STUDENT_MIN_COUNT if len(baseline.splits["train"]) >= 1000 else 1
    start = D.student_start(baseline, layers=layers, min_count=min_count, ffn_fraction=ffn, heads_fraction=heads)
    recipe = D.LIMIT_CONFIG if limit else D.STUDENT_CONFIG
    student_config = replace(config, epochs=max(config.epochs, recipe.epochs), activation_checkpointing=False)
    if small:
        student_config = replace(student_config, min_steps=STUDENT_MIN_STEPS).resolved(len(baseline.splits["train"]))
    return D.distill(start.model, baseline, tokenizer=start.tokenizer, config=student_config, progress=progress)


def _pruned(baseline, config: TrainConfig, small: bool, progress: bool):
    """Half of each feed-forward block pruned (chapter 5), then a short recovery fine-tune; cached.

    On small data (``small``: the recipe's floor of optimizer steps raised the epochs) the recovery
    trains on the whole train split with the same floor, not on a quarter of it for a few steps.
    """
    # With activation checkpointing, as the fine-tune above: this process holds the baseline beside it.
    recovery = replace(RECOVERY_CONFIG, max_length=config.max_length, seed=config.seed, activation_checkpointing=True)
    if small:
        recovery = replace(recovery, train_fraction=1.0, min_steps=MIN_STEPS).resolved(len(baseline.splits["train"]))
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


@dataclass(frozen=True)
class Evidence:
    """What the test split supports: is the baseline clearly better than always answering the majority class?"""

    n: int  # test examples
    majority_label: str  # the training split's most frequent class
    majority: pd.Series  # right/wrong per test example when always answering it
    baseline_vs_majority: Any  # stats.PairedComparison
    learned: bool  # the baseline is clearly (95 % interval above 0) more accurate than the majority class
    tied: int = 1  # classes that share the largest training count: the majority class is the first of them

    @property
    def rule(self) -> str:
        """The majority-class baseline in words: "always 'sport'"."""
        return f"always {self.majority_label!r}" + (f", the first of {self.tied} tied classes" if self.tied > 1 else "")

    @property
    def summary(self) -> str:
        versus = self.baseline_vs_majority
        return (f"baseline {versus.points:+.1f} points against answering {self.rule} "
                f"[{versus.low:+.1f}, {versus.high:+.1f}], n = {self.n}")


def _evidence(bench: benchmark.Benchmark, baseline) -> Evidence:
    test, train = baseline.splits["test"], baseline.splits["train"]
    names = test.features["label"].names
    label, right = majority_correct(train["label"], test["label"])
    counts = np.bincount(np.asarray(train["label"]), minlength=len(names))
    base_right = bench.correct(BASELINE)
    if len(base_right) != len(right):  # the Benchmark scores every test example (n_eval=None), in order
        raise ReportError(f"The benchmark scored {len(base_right)} of {len(right)} test examples; expected all.")
    versus = paired_comparison(base_right, right)
    tied = int((counts == counts.max()).sum())  # more than 1: "the majority class" is the first of the largest
    return Evidence(len(right), names[label], pd.Series(right), versus, versus.change == "better", tied)


def quality_table(table: pd.DataFrame, evidence: Evidence, num_labels: int) -> pd.DataFrame:
    """Each variant's accuracy with its interval and its paired change against the baseline, plus the
    majority-class and chance rows: what the test split supports."""
    rows = []
    for _, row in table.iterrows():
        versus = "(the reference)" if row["name"] == BASELINE else (
            f"{row['accuracy_delta']:+.2f} [{row['delta_low']:+.2f}, {row['delta_high']:+.2f}], "
            f"p = {row['p_value']:.2g}: {row['change']}")
        n = int(row["n_eval"])
        rows.append({"model": row["name"], "accuracy, 95 % interval": format_accuracy(round(row["accuracy"] * n), n),
                     "points against the baseline, 95 % interval": versus})
    majority = evidence.baseline_vs_majority
    rows.append({"model": f"majority class ({evidence.rule})",
                 "accuracy, 95 % interval": format_accuracy(int(evidence.majority.sum()), evidence.n),
                 "points against the baseline, 95 % interval": f"{-majority.points:+.2f} [{-majority.high:+.2f}, "
                                                               f"{-majority.low:+.2f}], p = {majority.p_value:.2g}"})
    rows.append({"model": f"chance (a random guess among {num_labels})",
                 "accuracy, 95 % interval": f"{1 / num_labels:.2%} (expected)",
                 "points against the baseline, 95 % interval": ""})
    return pd.DataFrame(rows)


def _claims(table: pd.DataFrame, bench: benchmark.Benchmark, evidence: Evidence) -> pd.DataFrame:
    """The source's claim and our targets: "holds", "fails" or "cannot tell (n = …)"; none if nothing was learned."""
    row = table.set_index("name").loc[FINAL]
    smaller, speedup = 1 - row["size_ratio"], row["speedup"]
    paired = paired_comparison(bench.correct(FINAL), bench.correct(BASELINE))

    def verdict(holds: bool) -> str:
        return HOLDS if holds else FAILS

    lines = [
        {"measure": "size", "measured": f"{smaller:.1%} smaller",
         "source's claim": f"≥ {CLAIM.smaller:.0%} smaller", "claim": verdict(smaller >= CLAIM.smaller),
         "our target": f"≥ {TARGETS['smaller']:.0%} smaller", "target": verdict(smaller >= TARGETS["smaller"])},
        {"measure": "latency, batch 1", "measured": f"{speedup:.2f}× faster ({1 - 1 / speedup:.0%} less)",
         "source's claim": f"≥ {CLAIM.faster:.0%} less", "claim": verdict(1 - 1 / speedup >= CLAIM.faster),
         "our target": f"≥ {TARGETS['speedup']:g}×", "target": verdict(speedup >= TARGETS["speedup"])},
        {"measure": "accuracy", "measured": f"{paired.points:+.2f} points [{paired.low:+.2f}, {paired.high:+.2f}], "
                                            f"n = {paired.n}",
         "source's claim": f"< {CLAIM.points:g} points lost", "claim": loss_verdict(paired, CLAIM.points),
         "our target": f"≤ {TARGETS['points']:g} point lost",
         "target": loss_verdict(paired, TARGETS["points"], strict=False)},
    ]
    claims = pd.DataFrame(lines)
    if not evidence.learned:  # a compressed copy of a model that learned nothing "loses nothing": no verdict
        claims[["claim", "target"]] = "no verdict (see the warning)"
    return claims


def _mark(verdict: str) -> str:
    return {HOLDS: "✓ holds", FAILS: "✗ fails"}.get(verdict, verdict)


def warning_text(evidence: Evidence, steps: int) -> str:
    """What the report says at the top when the baseline is not clearly better than always answering one class."""
    return (f"The baseline did not learn anything the test split can show: {evidence.summary}; it trained for "
            f"{steps} optimizer steps. So this report gives no compression verdict: compressing a model that "
            "learned nothing 'loses nothing'. Do this: check that "
            f"{option('text_column', '<column>')} and {option('label_column', '<column>')} name the right columns "
            "and that the labels follow from the texts; add rows (the test split holds 15 % of them, and "
            f"{evidence.n} test examples cannot separate a model from the majority class unless it is nearly always "
            "right); aim for at least 30 rows per class.")


def _write(folder: Path, table: pd.DataFrame, baseline, run: dict, evidence: Evidence, claims: pd.DataFrame,
           quality: pd.DataFrame) -> tuple[Path, Path, Path]:
    csv_path, json_path, html_path = folder / "results.csv", folder / "results.json", folder / "report.html"
    table.to_csv(csv_path, index=False)
    warning = None if evidence.learned else warning_text(evidence, baseline.result.steps)
    payload = {**run, "baseline": BASELINE, "final": FINAL, "learned": evidence.learned, "warning": warning,
               "majority_class": {"label": evidence.majority_label, "tied_classes": evidence.tied,
                                  "accuracy": float(evidence.majority.mean()),
                                  "n": evidence.n, "baseline_against_it": str(evidence.baseline_vs_majority)},
               "chance": 1 / len(baseline.splits["test"].features["label"].names),
               "variants": json.loads(table.to_json(orient="records")),
               "claims": json.loads(claims.to_json(orient="records"))}
    json_path.write_text(json.dumps(payload, indent=1, ensure_ascii=False))
    shown = table[["name", "accuracy", "accuracy_low", "accuracy_high", "n_eval", "macro_f1", "params_m", "size_mb",
                   "latency_p50_ms", "latency_p95_ms", "throughput", "peak_memory_mb", "size_ratio", "speedup",
                   "accuracy_delta", "delta_low", "delta_high"]]
    formats = {"accuracy": "{:.2%}", "accuracy_low": "{:.1%}", "accuracy_high": "{:.1%}", "macro_f1": "{:.3f}",
               "params_m": "{:.1f}", "size_mb": "{:.2f}", "latency_p50_ms": "{:.2f}", "latency_p95_ms": "{:.2f}",
               "throughput": "{:.0f}", "peak_memory_mb": "{:.0f}", "size_ratio": "{:.3f}", "speedup": "{:.2f}×",
               "accuracy_delta": "{:+.2f}", "delta_low": "{:+.2f}", "delta_high": "{:+.2f}"}
    results_html = shown.style.format(formats, na_rep="–").hide(axis="index").to_html()  # the baseline's own Δ
    quality_html = quality.style.hide(axis="index").to_html()
    claims_html = claims.assign(claim=claims["claim"].map(_mark), target=claims["target"].map(_mark)) \
        .style.hide(axis="index").to_html()
    banner = "" if warning is None else f'<p class="warning"><b>Warning.</b> {html.escape(warning)}</p>'
    notes = "".join(f"<li>{html.escape(note)}</li>" for note in run["data_notes"])
    steps = "".join(f"<li>{html.escape(k)}: {v:.0f} s</li>" for k, v in run["seconds"].items())
    machine = ", ".join(f"{k} {v}" for k, v in run["machine"].items())
    graphs = "; ".join(f"{html.escape(n)}: " + (", ".join(f"{c} {op}" for op, c in g["fused_ops"].items()) if g["fused"]
                       else f"unfused ({html.escape(str(g['notice']))})") for n, g in run.get("onnx_graph", {}).items())
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>minikit report: {html.escape(run['model'])} on {html.escape(run['dataset'])}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}}
table{{border-collapse:collapse;margin:1em 0}}td,th{{border-bottom:1px solid #ddd;padding:4px 10px;text-align:right}}
th{{background:#f4f4f4}}td:first-child,th:first-child{{text-align:left}}code{{background:#f4f4f4;padding:1px 4px}}
.warning{{background:#fff3cd;border:1px solid #e0b400;padding:.8em 1em}}</style>
</head><body>
<h1>minikit report: {html.escape(run['model'])} on {html.escape(run['dataset'])}</h1>
{banner}
<p>Every variant measured side by side in one <code>Benchmark</code> run on the test split
({evidence.n} examples): accuracy, size, batch-1 latency at {int(table['seq_len'].iloc[0])} tokens
(p50, p95), throughput at batch {int(table['batch_size'].iloc[0])}, peak memory. Ratios are against
<b>{html.escape(BASELINE)}</b>; the compressed model is <b>{html.escape(FINAL)}</b> (the course's student);
<b>{html.escape(LIMIT)}</b> is a smaller student still, at the machine's limit. Every accuracy has its
95 % interval (Wilson); every change against the baseline is paired on the same examples (Newcombe's interval,
McNemar's exact test), and a change whose interval holds 0 is "cannot tell".
ONNX Runtime graphs fused before int8: {graphs or "none"}.</p>
<h2>What the test split supports</h2>{quality_html}
<h2>Claims and targets (compressed model vs baseline)</h2>{claims_html}
<p>A claim on accuracy holds only when its whole interval does; "cannot tell" means more test examples would
decide it. Size and latency are measured once, in this run: timings move ±30 % from run to run, and the
ratios measured side by side in one run are what count.</p>
<h2>Results</h2>{results_html}
<h2>Accuracy against cost</h2>{_svg(charts.benchmark_chart(table, BASELINE))}
<h2>Fine-tuning the baseline</h2>
<p>{run['recipe']}</p>{_svg(charts.training_chart(baseline.result.history, "Fine-tuning the baseline"))}
<h2>How this was made</h2>
<ul><li>command: <code>{html.escape(run['command'])}</code></li><li>created: {html.escape(run['created'])}</li>
<li>data: {html.escape(run['data'])}</li>{notes}
<li>machine: {html.escape(machine)}; torch threads {run['threads']}</li>
<li>versions: {html.escape(', '.join(f'{k} {v}' for k, v in run['versions'].items()))}</li>{steps}</ul>
</body></html>
"""
    html_path.write_text(page, encoding="utf-8")
    return html_path, json_path, csv_path


def run_report(model: str | Path = DEFAULT_MODEL, dataset: str | Path = BBC_NEWS, out: str | Path = "minikit-report",
               threads: int | None = None, config: TrainConfig | None = None, repeats: int = 30,
               progress: bool = True, command: str | None = None, text_column: str = "text",
               label_column: str = "label", labels: Sequence[str] | None = None, encoding: str = "utf-8",
               drop_empty: bool = False) -> Report:
    """Fine-tune ``model`` on ``dataset``, compress it four ways, measure all, write the report to ``out``.

    ``config`` is the fine-tuning recipe; None is the course's (``training.RECIPE``: chapter 3's, with
    at least ``MIN_STEPS`` optimizer steps on small data). Students are distilled with the course's
    recipe. ``text_column``, ``label_column``, ``labels``, ``encoding`` and ``drop_empty`` read a file
    (``load_dataset``'s). Cached throughout: a second run with the same arguments only measures.
    """
    from importlib import metadata

    import torch

    folder = writable_folder(out)
    columns = {"text_column": text_column, "label_column": label_column, "labels": labels, "encoding": encoding,
               "drop_empty": drop_empty}
    recipe = RECIPE if config is None else config
    data, splits, data_notes = _data(model, dataset, columns, recipe.seed)
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
    config, small = _recipe(config, len(stratified_subset(splits["train"], recipe.train_fraction, recipe.seed)))
    # With activation checkpointing: this process goes on to hold the baseline, a pruned copy and a teacher
    # with its student, and keeping every activation as well would lift its peak over 1.5 GB. Same model,
    # same cache entry as get_baseline().
    baseline = fine_tune(str(model), data, replace(config, activation_checkpointing=True), progress=progress)
    done("fine-tune")
    step("prune")
    pruned = _pruned(baseline, config, small, progress)
    done("prune")
    step("quantize")
    int8_torch = Q.dynamic_int8(baseline.model)
    check_texts = list(baseline.splits["validation"]["text"][:16])
    int8_folder = deployment.export_for_serving(baseline.model, baseline.tokenizer, folder / "baseline-int8",
                                                max_length=config.max_length, texts=check_texts, name="baseline-int8")
    done("quantize")
    step("distil")
    student = _student(baseline, config, small, progress)
    limit = _student(baseline, config, small, progress, limit=True)
    done("distil")
    step("export")
    served = deployment.export_for_serving(student.model, student.tokenizer, folder / "served",
                                           max_length=config.max_length, texts=check_texts, name="student-int8")
    limit_served = deployment.export_for_serving(limit.model, limit.tokenizer, folder / "served-limit",
                                                 max_length=config.max_length, texts=check_texts,
                                                 name="student-at-the-limit-int8")
    done("export")
    step("benchmark")
    bench = benchmark.Benchmark(baseline.splits["test"], baseline.tokenizer, max_length=config.max_length,
                                baseline=BASELINE, repeats=repeats, batch_size=16, batch_repeats=2)
    bench.add(BASELINE, baseline.model)
    bench.add(f"pruned FFN {PRUNE_FRACTION:.0%} (PyTorch)", pruned)
    bench.add("int8 dynamic, Linear only (PyTorch)", int8_torch)
    bench.add("int8 (ONNX Runtime)", int8_folder / "model.onnx", config=baseline.model.config)
    bench.add("student fp32 (PyTorch)", student.model, tokenizer=student.tokenizer)
    bench.add(FINAL, served / "model.onnx", config=student.model.config, tokenizer=student.tokenizer)
    bench.add(LIMIT, limit_served / "model.onnx", config=limit.model.config, tokenizer=limit.tokenizer)
    table = bench.run()
    evidence = _evidence(bench, baseline)
    done("benchmark")
    step("write")
    sizes = ", ".join(f"{name} {len(split)}" for name, split in baseline.splits.items())
    run = {"model": str(model), "dataset": str(dataset), "command": command or _command(),
           "created": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
           "data": f"{sizes} rows" + ("" if str(dataset) in BUILT_IN_DATASETS or Path(str(dataset)).is_dir()
                                      else f"; text column {text_column!r}, label column {label_column!r}"),
           "data_notes": data_notes,
           "recipe": (f"{baseline.result.steps} optimizer steps ({config.epochs} epoch(s) of batch {config.batch_size}"
                      f"{f'; raised to reach the small-data floor of {MIN_STEPS} steps' if small else ''}), "
                      f"learning rate {config.lr:g}, best validation accuracy {baseline.result.best_val_accuracy:.2%} "
                      f"on {len(baseline.splits['validation'])} examples."),
           "steps": baseline.result.steps, "small_data": small,
           "machine": system.machine_description(), "threads": torch.get_num_threads(),
           "versions": {p: metadata.version(p) for p in ("torch", "transformers", "onnxruntime", "minikit")},
           "seconds": {k: round(v, 1) for k, v in seconds.items() if k != "write"},
           # the ONNX rows' graphs: fused by onnxruntime's optimizer before int8, or why not (onnx_graph)
           "onnx_graph": {n: json.loads((f / deployment.MANIFEST_FILE).read_text())["graph"]
                          for n, f in (("int8 (ONNX Runtime)", int8_folder), (FINAL, served), (LIMIT, limit_served))}}
    claims = _claims(table, bench, evidence)
    quality = quality_table(table, evidence, len(baseline.splits["test"].features["label"].names))
    html_path, json_path, csv_path = _write(folder, table, baseline, run, evidence, claims, quality)
    done("write")
    bar.close()
    return Report(folder, html_path, json_path, csv_path, table, run["seconds"], evidence, claims, quality,
                  baseline.result.steps, data_notes)


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
    report.add_argument("--dataset", default=BBC_NEWS,
                        help=f"a built-in dataset ({', '.join(BUILT_IN_DATASETS)}; the harder task is "
                        f"{BBC_HEADLINES}), a CSV/TSV/JSONL/parquet file or a folder of class folders "
                        f"(default {BBC_NEWS})")
    report.add_argument("--text-column", default="text", help="the file's column with the texts (default text)")
    report.add_argument("--label-column", default="label", help="the file's column with the labels (default label)")
    report.add_argument("--labels", type=_label_list, default=None, metavar="A,B,…",
                        help="the label set, in order, comma-separated (default: the labels found, sorted)")
    report.add_argument("--encoding", default="utf-8", help="the file's text encoding (default utf-8)")
    report.add_argument("--drop-empty", action="store_true",
                        help="drop rows with an empty text or label (a warning says how many); default: stop")
    report.add_argument("--out", default="minikit-report", help="output folder (created if needed)")
    report.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    report.add_argument("--no-progress", action="store_true", help="no progress bars (logs, CI)")

    build_parser = commands.add_parser("build", help="train every artifact the chapters load, once, into the cache",
                                       description=build.__doc__.split("\n\n")[0] if build.__doc__ else None)
    build.add_arguments(build_parser)
    args = parser.parse_args(argv)
    if args.command == "build":
        try:
            with command_line():
                return build.main(args)
        except KeyboardInterrupt:
            print(f"\nInterrupted. Every step finished so far is cached in {cache_dir()}; run the same command "
                  "again to resume from there.", file=sys.stderr)
            return 130
        except (MinikitError, ValueError) as problem:
            print(f"error: {problem}", file=sys.stderr)
            return 2
    if args.no_progress:  # datasets' own bars too (a process of its own: no one else's bars to keep)
        datasets.disable_progress_bars()
    try:
        with command_line():  # an error's fix names --options, not Python arguments
            result = run_report(args.model, args.dataset, args.out, threads=args.threads,
                                progress=not args.no_progress,
                                command=" ".join(["python -m minikit", *(argv if argv is not None else sys.argv[1:])]),
                                text_column=args.text_column, label_column=args.label_column, labels=args.labels,
                                encoding=args.encoding, drop_empty=args.drop_empty)
    except KeyboardInterrupt:
        print(f"\nInterrupted. Every step finished so far is cached in {cache_dir()}; run the same command "
              "again to resume from there.", file=sys.stderr)
        return 130
    except (MinikitError, FileNotFoundError, ValueError) as problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    print(f"wrote {result.html}, {result.json} and {result.csv}")
    if result.data_notes:
        print(f"{len(result.data_notes)} note(s) on the data: shown above as they happened, and in the report")
    if not result.evidence.learned:
        print(f"WARNING: {_warning_for_cli(result)}")
    print(f"\nbaseline: {result.steps} optimizer steps; {result.evidence.summary}\n")
    print(result.quality.to_string(index=False))
    print()
    print(result.table[["name", "size_mb", "latency_p50_ms", "size_ratio", "speedup"]].round(3).to_string(index=False))
    print()
    print(result.claims[["measure", "measured", "source's claim", "claim", "our target", "target"]]
          .to_string(index=False))
    return 0


def _warning_for_cli(result: Report) -> str:
    with command_line():
        return warning_text(result.evidence, result.steps)


def _label_list(value: str) -> list[str]:
    """--labels a,b,c → ['a', 'b', 'c']; empty names are refused (a doubled comma is a typo, not a label)."""
    names = [name.strip() for name in value.split(",")]
    if not value.strip() or any(not name for name in names):
        raise argparse.ArgumentTypeError(f"{value!r} has an empty label name. Expected names separated by commas, "
                                         "e.g. --labels billing,login,shipping.")
    if len(set(names)) < len(names):
        raise argparse.ArgumentTypeError(f"{value!r} names a label twice. Give each label once.")
    return names


__all__ = ["Report", "ReportError", "STEPS", "TARGETS", "main", "run_report", "writable_folder"]
