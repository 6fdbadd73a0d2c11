"""Every course widget's knobs: seconds from a knob move to the chart and label redrawn, uncached and cached.

    python bench/knobs.py                        # all widgets, all cores torch sees
    python bench/knobs.py --threads 2            # the course's 2-core laptop
    python bench/knobs.py --only 05 06           # some chapters (02 03b 04 05 06 07 08 09 10)
    python bench/knobs.py --train                # also time chapter 7's α moves that train (~10 s+ each)

Each widget is built as its notebook builds it (the trained models come from the cache: run
``python -m minikit build`` first, or set ``MINIKIT_CACHE`` to a built cache), and each knob is
moved in-process the way JupyterLab moves it: ``knob.value = v``, which runs the widget's own
observer (``Explorer._on_knob`` → ``update``) synchronously; the time until it returns is the
time until the chart data and the label hold the new setting (no browser: Vega's drawing is not
included). A walk visits settings never seen (``uncached``); the same walk again is ``cached``.
For knobs that only redraw, both walks do the same work.

Targets (issue 24): a cheap knob's median ≤ 1 s uncached and ≤ 0.1 s cached. Knobs that measure
(chapter 8's load test) or train (chapter 7's α) are printed but not held to them. Inputs whose
computation is not a knob's cost (chapter 4's test-set probabilities, chapter 10's measured
curve and results) are made up at the notebook's sizes: a redraw's cost depends on the sizes only.
The load average is printed: other work on the machine slows every figure.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import pandas as pd

TARGET_UNCACHED_S, TARGET_CACHED_S = 1.0, 0.1


@dataclass
class Knob:
    """One knob of one widget, the values of a learner's walk, and whether the targets apply."""

    widget: str
    name: str
    control: object  # an ipywidgets ValueWidget
    walk: Sequence
    cheap: bool = True  # False: the knob measures or trains; reported, not held to the targets


def move(control, value) -> float:
    """Seconds for ``control.value = value`` to return: its observers (update, redraw) run in that call."""
    start = time.perf_counter()
    control.value = value
    return time.perf_counter() - start


def time_knob(knob: Knob, rounds: int) -> tuple[list[float], list[float]]:
    """(uncached, cached) seconds: the walk once over settings never seen, then ``rounds`` more times."""
    uncached = [move(knob.control, v) for v in knob.walk]
    cached = [move(knob.control, v) for _ in range(rounds) for v in knob.walk]
    return uncached, cached


def report(knob: Knob, uncached: list[float], cached: list[float]) -> dict:
    row = {"widget": knob.widget, "knob": knob.name, "moves": len(uncached),
           "uncached_s": statistics.median(uncached), "cached_s": statistics.median(cached),
           "max_uncached_s": max(uncached), "cheap": knob.cheap}
    if knob.cheap:
        row["meets"] = row["uncached_s"] <= TARGET_UNCACHED_S and row["cached_s"] <= TARGET_CACHED_S
    return row


# --- the widgets, built as their notebooks build them --------------------------------------------


def _baseline():
    import minikit
    return minikit.get_baseline(progress=False)


def ch02() -> list[Knob]:
    import minikit
    b = _baseline()
    e = minikit.widgets.TruncationExplorer(minikit.token_lengths(b.splits["train"]["text"], b.tokenizer), 128)
    return [Knob("02 TruncationExplorer", "max_length", e.slider, [160, 192, 256, 320, 384, 448, 64, 96])]


def ch03b() -> list[Knob]:
    import minikit
    from minikit import multitask
    b = _baseline()
    table = multitask.multitask_runs("topic", full_rows=len(b.splits["train"]))
    if table.empty:
        raise RuntimeError("no multi-task run in the cache (python -m minikit build --only 03b)")
    single = table.iloc[[0]].assign(kind="single-task", run="single-task (made up for the bench)")
    e = minikit.widgets.MultiTaskExplorer(pd.concat([single, table], ignore_index=True))
    runs = list(e.dropdown.options)
    walk = (runs[1:] + runs[:1]) * max(1, 6 // len(runs))
    return [Knob("03b MultiTaskExplorer", "run", e.dropdown, walk)]


def ch04() -> list[Knob]:
    import minikit
    b = _baseline()
    test, names = b.splits["test"], b.splits["test"].features["label"].names
    rng = np.random.default_rng(0)
    y = np.asarray(test["label"])
    logits = rng.normal(size=(len(y), len(names))) + 3 * np.eye(len(names))[y]  # the notebook's sizes
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    e = minikit.widgets.ThresholdExplorer(probs, y, names)
    return [Knob("04 ThresholdExplorer", "threshold", e.slider, [0.55, 0.6, 0.7, 0.8, 0.9, 0.3, 0.2, 0.4]),
            Knob("04 ThresholdExplorer", "class", e.dropdown, [1, 2, 3, 0][: len(names)] * 2)]


def ch05() -> list[Knob]:
    """The explorer as chapter 5 builds it; twice: accuracies from the build (as a learner gets them) and live."""
    from minikit import pruning
    from minikit.compression_widgets import PruningExplorer
    b = _baseline()
    importance = pruning.head_importance(b.model, pruning.importance_batches(b.tokenizer, b.splits["train"]))
    knobs = []
    for use_built, name in [(True, "05 PruningExplorer"), (False, "05 PruningExplorer, no build")]:
        e = PruningExplorer(b.model, b.tokenizer, b.splits["validation"], importance=importance, use_built=use_built)
        if use_built and not e.built:
            print(f"{name}: no built accuracies for this model (`python -m minikit build --only 05`): measured live")
        knobs += [Knob(name, "sparsity", e.slider, [0.55, 0.6, 0.7, 0.8, 0.3, 0.4]),
                  Knob(name, "method", e.method, ["per-layer magnitude", "heads", "FFN neurons", "layers",
                                                  "global magnitude"])]
    return knobs


def ch06() -> list[Knob]:
    from minikit.compression_widgets import QuantizationExplorer
    b = _baseline()
    e = QuantizationExplorer(b.model, b.tokenizer, b.splits["validation"])
    return [Knob("06 QuantizationExplorer", "bits", e.slider, [7, 6, 5, 4, 3, 2]),
            Knob("06 QuantizationExplorer", "scales", e.granularity, ["per-tensor", "per-channel"]),
            Knob("06 QuantizationExplorer", "grid", e.symmetry, [False, True])]


def ch07() -> list[Knob]:
    from minikit import distillation as D
    from minikit.compression_widgets import TemperatureExplorer
    b = _baseline()
    names = [b.model.config.id2label[i] for i in range(b.model.config.num_labels)]
    val = b.splits["validation"]
    e = TemperatureExplorer(D.teacher_logits(b, val["text"]), val["text"], val["label"], names)
    return [Knob("07 TemperatureExplorer", "temperature", e.slider, [1.0, 1.5, 3.0, 5.0, 8.0, 0.5]),
            Knob("07 TemperatureExplorer", "article", e.picker, e.examples[1:] + e.examples[:1])]


class _Reread:
    """A stand-in knob for chapter 7's α: each move empties the explorer's memory, so the run is read from disk."""

    def __init__(self, explorer, layers: int):
        self.explorer, self.layers = explorer, layers

    @property
    def value(self) -> float:
        return self.explorer.alpha.value

    @value.setter
    def value(self, alpha: float) -> None:
        self.explorer.cache.clear()
        self.explorer.update(alpha, self.layers)


def ch07_alpha(train: bool) -> list[Knob]:
    """Chapter 7's α/depth explorer on the run ``minikit build`` made; a new α value (it trains) only with ``train``."""
    from minikit.compression_widgets import DistillationExplorer
    start = time.perf_counter()
    e = DistillationExplorer(_baseline(), alpha=0.5, layers=2)
    first = e.current
    print(f"  07 DistillationExplorer built in {time.perf_counter() - start:.1f} s; first run (α 0.5, 2 layers) "
          f"{'from the cache' if first.from_cache else f'TRAINED in {first.seconds:.0f} s'}")
    knobs = [Knob("07 DistillationExplorer", "α, built run from disk", _Reread(e, 2), [0.5, 0.5, 0.5], cheap=False)]
    if train:  # 0.75 trains (uncached), then 0.5 and 0.75 come back from the explorer's memory (cached)
        knobs.append(Knob("07 DistillationExplorer", "α, a new value (trains)", e.alpha, [0.75, 0.5], cheap=False))
    return knobs


def ch08() -> list[Knob]:
    import minikit

    def echo(texts: Sequence[str]) -> list[dict]:  # the widget's and server's own cost, not a model's
        return [{"label": "x", "score": 1.0} for _ in texts]

    e = minikit.widgets.BatchingExplorer(echo, [f"article {i}" for i in range(32)], clients=16, requests=160)
    return [Knob("08 BatchingExplorer (echo model)", "max batch (load test)", e.batch, [8, 4, 1, 32], cheap=False)]


def ch09() -> list[Knob]:
    import minikit
    from minikit.lab import Lab, Recipe
    e = minikit.widgets.LabDashboard(Lab(), Recipe(depth=2, ffn_pruned=0.5, vocabulary=True, bits=8))
    options = [v for _, v in e.ffn.options]
    return [Knob("09 LabDashboard", "FFN pruned", e.ffn, [v for v in options if v != 0.5] + [0.5]),
            Knob("09 LabDashboard", "bits", e.bits, [v for _, v in e.bits.options if v != 8] + [8]),
            Knob("09 LabDashboard", "depth", e.depth, [v for _, v in e.depth.options if v != 2] + [2])]


def ch10() -> list[Knob]:
    import minikit
    from minikit.early_exit import MAX_PROB_GRID
    grid = [float(t) for t in MAX_PROB_GRID]
    n = len(grid)
    curve = pd.DataFrame({"threshold": grid, "mean_ms": np.linspace(3, 16, n), "full_ms": 16.0,
                          "speedup": 16 / np.linspace(3, 16, n), "mean_layers_timed": np.linspace(1, 6, n),
                          "accuracy": np.linspace(0.95, 0.98, n), "mean_layers": np.linspace(1, 6, n)})
    e = minikit.widgets.EarlyExitExplorer(curve, threshold=grid[-2])
    results = pd.DataFrame({"name": [f"variant {i}" for i in range(8)], "accuracy": np.linspace(0.97, 0.985, 8),
                            "latency_p50_ms": np.linspace(2, 16, 8), "peak_memory_mb": np.linspace(30, 300, 8)})
    p = minikit.widgets.BudgetPicker(results, latency_budget_ms=6.0, memory_budget_mb=400)
    return [Knob("10 EarlyExitExplorer", "threshold", e.slider, grid[:-2] + grid[-1:] + grid[-2:-1]),
            Knob("10 BudgetPicker", "latency budget", p.latency, [3.0, 4.0, 8.0, 12.0, 1.0, 6.0]),
            Knob("10 BudgetPicker", "memory budget", p.memory, [100.0, 200.0, 50.0, 300.0, 400.0])]


FAMILIES: dict[str, Callable[..., list[Knob]]] = {
    "02": ch02, "03b": ch03b, "04": ch04, "05": ch05, "06": ch06, "07": ch07, "07a": ch07_alpha, "08": ch08,
    "09": ch09, "10": ch10}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    parser.add_argument("--rounds", type=int, default=3, help="cached walks to time")
    parser.add_argument("--only", nargs="*", default=list(FAMILIES), help=f"chapters, of {list(FAMILIES)}")
    parser.add_argument("--train", action="store_true", help="time chapter 7's α moves that train a run")
    args = parser.parse_args()

    import torch

    import minikit

    minikit.setup(threads=args.threads)
    print(f"torch threads: {torch.get_num_threads()}, cpu count: {os.cpu_count()}, "
          f"load average: {os.getloadavg()[0]:.2f}")
    rows = []
    for chapter in args.only:
        start = time.perf_counter()
        try:
            knobs = FAMILIES[chapter](args.train) if chapter == "07a" else FAMILIES[chapter]()
        except Exception as err:  # one widget that cannot be built (an unbuilt cache) does not stop the others
            print(f"  {chapter}: not built ({type(err).__name__}: {str(err)[:200]})")
            continue
        print(f"  {chapter}: widgets built in {time.perf_counter() - start:.1f} s")
        rows += [report(knob, *time_knob(knob, args.rounds)) for knob in knobs]
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    print(f"\nmedian seconds per move; target ≤ {TARGET_UNCACHED_S} s uncached, ≤ {TARGET_CACHED_S} s cached")
    print(f"{'widget':34s} {'knob':28s} {'moves':>5s} {'uncached':>9s} {'cached':>8s} {'max unc.':>9s}  target")
    for r in rows:
        verdict = ("met" if r["meets"] else "MISSED") if r["cheap"] else "n/a (measures or trains)"
        print(f"{r['widget']:34s} {r['knob']:28s} {r['moves']:5d} {r['uncached_s']:9.3f} {r['cached_s']:8.3f} "
              f"{r['max_uncached_s']:9.3f}  {verdict}")


if __name__ == "__main__":
    main()
