"""``python -m minikit build``: every trained artifact the chapters load, built once, ahead of the notebooks.

Each ``Step`` calls the very functions a chapter calls, with the same arguments, so it writes the
cache entries the notebook would write (same kinds, same keys). One setting differs: the steps that
train a whole encoder turn activation checkpointing on: on 1 CPU the baseline's step peaked at 1.33 GB
of anonymous memory instead of 1.51 (Binder's build pod has 2 GB), for ~35 % more time in those steps
(README, "For instructors"); it changes no number, so it is not part of any key (tested in test_training
and test_multitask). After a build, a notebook trains nothing, and with ``MINIKIT_NO_TRAIN=1`` it could not (``minikit.cache``). Steps run in dependency
order; each one's entries land in the cache whole or not at all, so Ctrl-C loses at most the step in
progress and the same command resumes. A step whose entries are cached loads them and moves on; an
entry whose code or inputs changed has another key, so it is built again, never loaded stale.

It stores no timings: latencies belong to the machine and session that run the notebook
(``Benchmark``, ``compare_models``, the lab's measurements and the exit latency curve are left to
the chapters). What it prints at the end (seconds, MB, peak memory) is this run's, not stored.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import pandas as pd
import psutil

from minikit import cache, qat
from minikit import quantization as Q
from minikit import static_int8 as S
from minikit.benchmark import Benchmark
from minikit import distillation as D
from minikit import early_exit as A
from minikit import multitask as M
from minikit.cache import NO_TRAIN_VARIABLE, TrainingForbiddenError
from minikit.data import prepare_dataset
from minikit.distill_variants import depth_runs, kd_variants
from minikit.distillation import QUICK_DISTILL, distill
from minikit.errors import MinikitError
from minikit.lab import Lab, Recipe
from minikit.models import encoder_layers
from minikit.pruning_sweep import PruningSweep
from minikit.settings import get_settings, setup
from minikit.students import select_layers, spread_layers
from minikit.system import cpu_identity, prove_writable, release_freed_memory
from minikit.tasks import CHAPTER_CONFIG, chapter_tasks
from minikit.loading import BBC_HEADLINES
from minikit.training import BBC_NEWS, DEFAULT_MODEL, TrainConfig, domain_adapt, fine_tune, get_baseline

# Every notebook of the course, in course order (its file name starts with the chapter).
CHAPTERS = ("01", "02", "03", "03b", "04", "05", "06", "07", "08", "09", "10")


class BuildError(MinikitError, ValueError):
    """The build cannot run as asked (unknown chapter, a cache folder that cannot be written); says the fix."""


class _Course:
    """What several steps start from, loaded once per build: the prepared corpus, the baseline, the tasks."""

    def __init__(self, progress: bool) -> None:
        self.progress = progress
        self._values: dict[str, Any] = {}

    def _get(self, name: str, make: Callable[[], Any]) -> Any:
        if name not in self._values:
            self._values[name] = make()
        return self._values[name]

    @property
    def splits(self):
        return self._get("splits", lambda: prepare_dataset("bbc-news")[0])

    @property
    def baseline(self):
        return self._get("baseline", lambda: get_baseline(progress=self.progress))

    @property
    def hard_baseline(self):
        return self._get("hard_baseline", lambda: get_baseline(dataset=BBC_HEADLINES, progress=self.progress))

    @property
    def tasks(self):
        return self._get("tasks", chapter_tasks)

    @property
    def lab(self):
        return self._get("lab", lambda: Lab(self.baseline, progress=self.progress))

    def forget(self) -> None:
        self._values.clear()


@dataclass(frozen=True)
class Step:
    """One trained artifact: the chapter that first needs it, the others that load it, and how to build it."""

    name: str
    chapter: str
    run: Callable[[_Course], None]
    also: tuple[str, ...] = ()  # later chapters that load it

    @property
    def chapters(self) -> tuple[str, ...]:
        return (self.chapter, *self.also)


# --- the steps: each one the calls of its chapter, with the chapter's arguments ----------------


def _corpus(course: _Course) -> None:
    course.splits  # chapter 2 ends with prepare_dataset("bbc-news"); every later chapter starts from it


def _lean(config):
    """``config`` with activation checkpointing on: the same cache entry, less memory (see the module's docstring)."""
    return replace(config, activation_checkpointing=True)


def _baseline(course: _Course) -> None:
    # chapter 3's full fine-tune is get_baseline(), i.e. fine_tune(DEFAULT_MODEL, BBC_NEWS, TrainConfig())
    fine_tune(DEFAULT_MODEL, BBC_NEWS, _lean(TrainConfig()), progress=course.progress)


def _linear_probe(course: _Course) -> None:
    fine_tune("minilm-l6", "bbc-news", TrainConfig(method="linear-probe"), progress=course.progress)


def _adapted(course: _Course) -> Path:
    return domain_adapt("minilm-l6", course.splits["train"]["text"], progress=course.progress)


def _low_data(course: _Course) -> None:
    fine_tune("minilm-l6", "bbc-news", _lean(TrainConfig(train_fraction=0.1, epochs=2)), progress=course.progress)


def _low_data_adapted(course: _Course) -> None:
    fine_tune("minilm-l6", "bbc-news", _lean(TrainConfig(train_fraction=0.1, epochs=2)), init_dir=_adapted(course),
              progress=course.progress)


def _multitask(fraction: float | None) -> Callable[[_Course], None]:
    def run(course: _Course) -> None:
        topic, headline = course.tasks
        tasks = [topic if fraction is None else topic.with_fraction(fraction), headline]
        M.multitask_row(M.get_multitask(tasks=tasks, config=_lean(CHAPTER_CONFIG), progress=course.progress), "topic",
                        len(topic.splits["train"]))

    return run


def _single_task_rows(course: _Course) -> None:
    """Chapter 3b scores chapter 3's single-task runs on its own test split (their predictions are cached)."""
    topic, _ = course.tasks
    full_rows = len(topic.splits["train"])
    M.single_task_row(course.baseline, topic, full_rows)
    for epochs in (1, 2):
        run = fine_tune("minilm-l6", "bbc-news", _lean(TrainConfig(train_fraction=0.1, epochs=epochs)),
                        progress=course.progress)
        M.single_task_row(run, topic, full_rows)


def _hard_baseline(course: _Course) -> None:
    # the harder task's baseline: get_baseline(dataset=BBC_HEADLINES), i.e. the same recipe on the headlines
    fine_tune(DEFAULT_MODEL, BBC_HEADLINES, _lean(TrainConfig()), progress=course.progress)


def _pruning_accuracies(course: _Course) -> None:
    """Chapter 5's explorer's settings as its notebook builds it, then every slider stop's accuracy."""
    PruningSweep.of(course.baseline).build_accuracies()


def _hard_pruning_accuracies(course: _Course) -> None:
    """Chapter 5's comparison on the harder task: every slider stop over all its validation headlines."""
    PruningSweep.of(course.hard_baseline, n_examples=None).build_accuracies()


def _qat_runs(course: _Course) -> None:
    """Chapter 6's QAT section: PTQ, its control and QAT at every bit width and both granularities, on headlines."""
    qat.chapter_runs(course.hard_baseline)


def _quantization_scores(course: _Course) -> None:
    """Chapter 6's Benchmark variants, made as its sections 7 and 9 make them, scored on test (accuracy only).

    The notebook's ``bench.run()`` then reads each variant's accuracy back (kind ``bench-quality``) and
    only times them, on the machine that runs it. A marker entry (kind ``bench-scores``, keyed by the
    model, the data and the CPU model) records that the step ran, so ``--list`` looks it up instead of
    exporting and calibrating again, and says "missing" where the notebook would score anew.
    """
    model, tokenizer, splits = course.baseline.model, course.baseline.tokenizer, course.baseline.splits
    parts = {"model": cache.model_sha256(model), "tokenizer": cache.tokenizer_sha256(tokenizer),
             "splits": cache.splits_sha256(splits), "cpu": cpu_identity()}
    cache.load_or_build("bench-scores", parts, lambda folder: _score_chapter_6(model, tokenizer, splits, folder))


def _score_chapter_6(model, tokenizer, splits, folder: Path) -> None:
    torch_int8_linear, torch_int8 = Q.dynamic_int8(model), Q.dynamic_int8(model, embeddings=True)
    with tempfile.TemporaryDirectory(prefix="minikit-06-") as workdir:
        encoded = tokenizer(splits["validation"]["text"][:16], truncation=True, max_length=128, padding=True,
                            return_tensors="pt")
        real = {k: encoded[k] for k in ("input_ids", "attention_mask")}
        fp32_onnx = Q.export_onnx(model, Path(workdir) / "model.onnx", inputs=real)
        int8_onnx = Q.quantize_onnx(fp32_onnx, Path(workdir) / "model.int8.onnx", model, inputs=real)
        static_onnx = S.quantize_static_onnx(fp32_onnx, Path(workdir) / "model.static.onnx", model, tokenizer,
                                             splits["train"], inputs=real)
        bench = Benchmark(splits["test"], tokenizer, max_length=128, batch_size=16, cache=True)
        bench.add("fp32 (PyTorch)", model)
        for name, path in (("fp32 ONNX", fp32_onnx), ("int8 ONNX", int8_onnx), ("static int8 ONNX", static_onnx)):
            bench.add(name, path, config=model.config)
        bench.add("int8 Linear", torch_int8_linear).add("int8 + embeddings", torch_int8)
        (folder / "scores.json").write_text(bench.score().to_json(orient="records"))


def _static_exclusion(course: _Course) -> None:
    """Chapter 6's static int8 nodes kept float or not, each setting scored on test."""
    S.exclusion_runs(course.baseline)


def _kd_variants(course: _Course) -> None:
    """Chapter 7's objectives at equal steps, on the harder task (its teacher: the headline baseline)."""
    kd_variants(course.hard_baseline)


def _kd_depths(course: _Course) -> None:
    """Chapter 7's depth chart on the harder task: labels only against logits at 1, 2 and 3 student layers."""
    depth_runs(course.hard_baseline)


def _teacher_logits(course: _Course) -> None:
    D.teacher_logits(course.baseline, course.splits["validation"]["text"])


def _student(use_teacher: bool) -> Callable[[_Course], None]:
    def run(course: _Course) -> None:
        D.get_student(course.baseline, use_teacher=use_teacher, progress=course.progress)

    return run


def _distillation_knobs(course: _Course) -> None:
    """The first setting of chapter 7's α/depth explorer (``DistillationExplorer(teacher, alpha=0.5, layers=2)``)."""
    teacher = course.baseline
    layers = spread_layers(len(encoder_layers(teacher.model)), 2)
    distill(select_layers(teacher.model, layers), teacher, alpha=0.5, temperature=2.0,
            config=TrainConfig(**QUICK_DISTILL), progress=course.progress)


def lab_recipes():
    """The recipes chapter 9 measures (its cell 7), the dashboard's first one among them."""
    return [Recipe(), Recipe(bits=8), Recipe(vocabulary=True), Recipe(vocabulary=True, bits=8),
            Recipe(depth=2, ffn_pruned=0.5, vocabulary=True), Recipe(depth=2, ffn_pruned=0.5, vocabulary=True, bits=8)]


def _lab(course: _Course) -> None:
    lab = course.lab
    for recipe in lab_recipes():
        if recipe.is_baseline:
            continue
        if recipe.bits == 8:
            lab.onnx_int8(recipe)  # the float model (trained if the recipe trains), then its int8 export
        else:
            lab.build(recipe)


def _early_exit(course: _Course) -> None:
    A.get_early_exit(course.baseline, progress=course.progress)


STEPS: tuple[Step, ...] = (
    Step("prepared BBC News corpus", "02", _corpus, ("03", "03b", "04", "05", "06", "07", "08", "09", "10")),
    Step("fine-tuned baseline", "03", _baseline, ("03b", "04", "05", "06", "07", "08", "09", "10")),
    Step("linear probe", "03", _linear_probe),
    Step("domain-adapted encoder", "03", _adapted),
    Step("10 % of labels, 2 epochs", "03", _low_data, ("03b",)),
    Step("10 % of labels, 2 epochs, domain-adapted", "03", _low_data_adapted),
    Step("multi-task, all labels", "03b", _multitask(None)),
    Step("multi-task, 10 % of topic labels", "03b", _multitask(0.1)),
    Step("single-task runs scored on 3b's split", "03b", _single_task_rows),
    Step("chapter 5's pruning accuracies (every slider stop)", "05", _pruning_accuracies),
    Step("fine-tuned baseline, bbc-headlines (the harder task)", "05", _hard_baseline, ("06", "07")),
    Step("chapter 5's pruning accuracies on bbc-headlines", "05", _hard_pruning_accuracies),
    Step("chapter 6's Benchmark accuracies (no timings)", "06", _quantization_scores),
    Step("static int8: which nodes stay float (results only)", "06", _static_exclusion),
    Step("PTQ against QAT on bbc-headlines (results only)", "06", _qat_runs),
    Step("teacher logits (validation)", "07", _teacher_logits),
    Step("student, distilled", "07", _student(True), ("08", "09", "10")),
    Step("student, no teacher", "07", _student(False)),
    Step("α/depth explorer's first run", "07", _distillation_knobs),
    Step("distillation objectives at equal steps, bbc-headlines (results only)", "07", _kd_variants),
    Step("labels against logits at 1-3 student layers, bbc-headlines (results only)", "07", _kd_depths),
    Step("compression-lab recipes", "09", _lab),
    Step("early-exit heads", "10", _early_exit),
)


def steps_for(chapters: Sequence[str] | None = None) -> list[Step]:
    """The steps a set of chapters needs (all steps if None), in build order."""
    if chapters is None:
        return list(STEPS)
    wanted = set(chapters)
    return [step for step in STEPS if wanted & set(step.chapters)]


def course_map() -> pd.DataFrame:
    """Which chapter loads which trained artifact: one row per chapter, the artifacts it loads in build order."""
    rows = []
    for chapter in CHAPTERS:
        needs = [step.name for step in STEPS if chapter in step.chapters]
        rows.append({"chapter": chapter, "artifacts": ", ".join(needs) if needs else "(none: it trains nothing)"})
    return pd.DataFrame(rows)


def course_map_markdown() -> str:
    """The course map as README shows it: one row per artifact, the chapter that trains it, the ones that load it."""
    lines = ["| step | trained artifact | trained for | also loaded by |", "|---|---|---|---|"]
    for index, step in enumerate(STEPS, 1):
        also = ", ".join(step.also) if step.also else "–"
        lines.append(f"| {index} | {step.name} | {step.chapter} | {also} |")
    untrained = [chapter for chapter in CHAPTERS if not any(chapter in step.chapters for step in STEPS)]
    if untrained:
        lines.append(f"\nChapters that load no trained artifact: {', '.join(untrained)}.")
    return "\n".join(lines)


def parse_chapters(values: Sequence[str] | None) -> list[str] | None:
    """``--only 07``, ``--only 7,9``, ``--only 03b_multi_task``: the chapters named; BuildError lists the known ones."""
    if not values:
        return None
    found = []
    for value in ",".join(values).split(","):
        text = value.strip().lower().removesuffix(".ipynb")
        head = text.split("_")[0]
        if head.isdigit() or (head[:-1].isdigit() and head.endswith("b")):
            digits = head.rstrip("b")
            head = f"{int(digits):02d}" + ("b" if head.endswith("b") else "") if digits else head
        if head not in CHAPTERS:
            raise BuildError(f"--only {value.strip()!r} is not a chapter of the course. Known chapters: "
                             f"{', '.join(CHAPTERS)} (e.g. --only 07, or --only 03,03b).")
        if head not in found:
            found.append(head)
    return found


def writable_cache() -> Path:
    """The cache folder, created if needed, after proving a file can be written there (before any work)."""
    folder = get_settings().cache_dir
    try:
        prove_writable(folder)
    except OSError as problem:
        raise BuildError(f"Cannot write the minikit cache at {folder}: {problem.strerror or problem}. Fix: set "
                         "MINIKIT_CACHE to a folder you can write to, e.g. "
                         "MINIKIT_CACHE=~/minikit-cache python -m minikit build") from None
    return folder


@contextlib.contextmanager
def _training_allowed(allowed: bool) -> Iterator[None]:
    """MINIKIT_NO_TRAIN as asked for the duration (the build trains; ``--list`` only looks)."""
    before = os.environ.get(NO_TRAIN_VARIABLE)
    if allowed:
        os.environ.pop(NO_TRAIN_VARIABLE, None)
    else:
        os.environ[NO_TRAIN_VARIABLE] = "1"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(NO_TRAIN_VARIABLE, None)
        else:
            os.environ[NO_TRAIN_VARIABLE] = before


class _PeakMemory:
    """This process's peak resident memory (all pages, and anonymous ones as the notebook budgets judge)."""

    def __init__(self, interval_s: float = 0.05) -> None:
        self._process, self._interval = psutil.Process(os.getpid()), interval_s
        self._stop = threading.Event()
        self.peak_rss = self.peak_anon = 0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        info = self._process.memory_info()
        self.peak_rss, self.peak_anon = max(self.peak_rss, info.rss), max(self.peak_anon, info.rss - info.shared)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            time.sleep(self._interval)

    def __enter__(self) -> "_PeakMemory":
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()


def _entry_names() -> dict[str, float]:
    table = cache.entries()
    return dict(zip(table["kind"] + "/" + table["key"], table["size_mb"]))


@dataclass
class BuildResult:
    """One row per step: artifact, chapter, status (built / cached / missing), seconds, MB added, peak MB."""

    table: pd.DataFrame
    peak_rss_mb: float
    peak_anon_mb: float
    seconds: float
    cache_dir: Path
    cache_mb: float = field(default=0.0)


def build(chapters: Sequence[str] | None = None, progress: bool = True, threads: int | None = None,
          dry_run: bool = False, steps: Sequence[Step] | None = None, out=sys.stdout) -> BuildResult:
    """Build (or, with ``dry_run``, only look for) every artifact ``chapters`` need; all chapters if None.

    Returns the table the command prints. ``steps`` replaces the course's steps (tests).
    """
    chosen = steps_for(chapters) if steps is None else list(steps)
    folder = writable_cache()
    setup(threads=threads)
    course = _Course(progress)
    rows = []
    start = time.perf_counter()
    with _PeakMemory() as whole, _training_allowed(not dry_run):
        for index, step in enumerate(chosen, 1):
            if not dry_run:
                print(f"[{index}/{len(chosen)}] chapter {step.chapter}: {step.name}", file=out, flush=True)
            before = _entry_names()
            began = time.perf_counter()
            status, missing = "cached", ""
            with _PeakMemory() as memory:
                try:
                    step.run(course)
                except TrainingForbiddenError as forbidden:  # only with dry_run: this step would train
                    status, missing = "to build", str(forbidden).split(" is not in the cache")[0].split(", and ")[-1]
            added = {name: mb for name, mb in _entry_names().items() if name not in before}
            if added:
                status = "built"
            rows.append({"artifact": step.name, "chapter": step.chapter,
                         "also": " ".join(step.also), "status": status,
                         "seconds": round(time.perf_counter() - began, 1), "MB": round(sum(added.values()), 1),
                         "peak MB": round(memory.peak_rss / 1e6), "peak anon MB": round(memory.peak_anon / 1e6),
                         "missing": missing})
            # Each step starts from what it loads itself (the baseline loads from the cache in ~1 s): what one
            # step held must not add to the next one's training peak (Binder's build pod has 2 GB).
            course.forget()
            release_freed_memory()  # collects, then trims the heap
            if not dry_run:
                print(f"    {status} in {rows[-1]['seconds']:.0f} s", file=out, flush=True)
    sizes = _entry_names()
    table = pd.DataFrame(rows, columns=["artifact", "chapter", "also", "status", "seconds", "MB", "peak MB",
                                        "peak anon MB", "missing"])
    return BuildResult(table, whole.peak_rss / 1e6, whole.peak_anon / 1e6, time.perf_counter() - start, folder,
                       round(sum(sizes.values()), 1))


def main(args: argparse.Namespace) -> int:
    """The ``build`` command (``python -m minikit build``, ``minikit build``, ``make build``)."""
    chapters = parse_chapters(args.only)
    if args.list:
        result = build(chapters, progress=False, threads=args.threads, dry_run=True)
        table = result.table[["artifact", "chapter", "also", "status", "missing"]]
        print(table.to_string(index=False))
        todo = int((table["status"] == "to build").sum())
        print(f"\n{len(table) - todo} of {len(table)} steps cached in {result.cache_dir}; "
              + (f"`python -m minikit build{' --only ' + ','.join(chapters) if chapters else ''}` builds the other {todo}."
                 if todo else "nothing to build."))
        return 0
    result = build(chapters, progress=not args.no_progress, threads=args.threads)
    print()
    print(result.table[["artifact", "chapter", "status", "seconds", "MB", "peak MB", "peak anon MB"]].to_string(index=False))
    built = int((result.table["status"] == "built").sum())
    print(f"\n{built} step(s) built, {len(result.table) - built} already cached; {result.seconds / 60:.1f} min; "
          f"peak memory {result.peak_rss_mb:.0f} MB ({result.peak_anon_mb:.0f} MB anonymous); "
          f"cache {result.cache_dir}: {result.cache_mb:.0f} MB in all.")
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--only", action="append", metavar="CHAPTER",
                        help=f"build what these chapters need ({', '.join(CHAPTERS)}; repeat or separate with commas)")
    parser.add_argument("--list", action="store_true", help="show each step and whether it is cached; build nothing")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: MINIKIT_THREADS or all cores)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars (logs, CI)")


__all__ = ["BuildError", "BuildResult", "CHAPTERS", "STEPS", "Step", "build", "course_map", "lab_recipes",
           "main", "parse_chapters", "steps_for", "writable_cache"]
