"""Chapter 9, the compression lab: chapters 5–8 combined, each combination measured, one Pareto chart.

A ``Recipe`` is four knobs, applied in this order:

1. **depth** — keep 6 layers (the fine-tuned model), or start a student from 4, 2 or 1 of its
   layers (``students.select_layers``, ``layers_for``);
2. **ffn_pruned** — remove that fraction (0 to 90 %) of each feed-forward block's neurons
   (chapter 5's structured pruning, ``pruning.prune_ffn_neurons``);
3. **vocabulary** — keep only the tokens the training split uses at least 20 times, plus every
   single character (chapter 7's ``prune_vocabulary``); no retraining needed;
4. **bits** — 32 (float, PyTorch), 8 (int8 ONNX Runtime, the served format of chapter 8) or 4
   (*simulated*: chapter 6's ``fake_quantize`` rounds every Linear weight and embedding table to
   4 bits per output channel; the size is what packing them would take, ``quantized_size_mb``,
   but the model still runs as float32 PyTorch, so its latency is float speed, not a 4-bit kernel's).

Then the model learns again after its surgery: a student is distilled from the fine-tuned
model (chapter 7's recipe: 2 epochs, the teacher's softened logits), a 6-layer model with
pruned neurons gets chapter 5's short recovery fine-tune. Quantization comes last, on the
trained weights (4 bits too: post-training rounding per channel, no QAT; on bbc-headlines it left
the baseline's test accuracy within one headline). So the 2-layer, half-FFN, pruned-vocabulary
recipe *is* chapter 7's student, and the lab reads it from the cache.

``Lab.measure(recipe)`` times the recipe beside the fine-tuned baseline in one ``Benchmark`` run
on the test split and keeps the result in the cache (kind ``lab``), keyed by the baseline, the
recipe, the benchmark settings and this machine: ``Lab.results()`` reads back every recipe
ever measured here, so the Pareto chart grows across sessions (and across learners sharing a
cache). Size and latency are reported as a share of the baseline timed in the same run, which
is what the source's claim (−70 % size, −40 % latency, < 2 points lost) is about.
"""

from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from minikit import cache, system, timing
from minikit.benchmark import Benchmark
from minikit.cache import load_model_dir, save_model_dir
from minikit.charts import lab_pareto_chart
from minikit.claims import COMPRESSION_CLAIM
from minikit.deployment import export_for_serving
from minikit.distillation import STUDENT_CONFIG, STUDENT_LAYERS, distill
from minikit.models import encoder_layers
from minikit.pruning import RECOVERY_CONFIG, layer_parts, prune_ffn_neurons, recover
from minikit.quantization import fake_quantize, quantized_size_mb
from minikit.students import corpus_token_ids, prune_vocabulary, select_layers, spread_layers
from minikit.training import FineTuned, get_baseline

DEPTHS = (6, 4, 2, 1)
FFN_FRACTIONS = (0.0, 0.25, 0.5, 0.75, 0.9)
BITS = (32, 8, 4)
# bits=4: chapter 6's post-training rounding, per output channel (per token row for embeddings), symmetric.
# Embeddings too, as the int8 ONNX export quantizes its Gather tables: else ~half the "4-bit" model stays float.
FOUR_BIT = {"bits": 4, "granularity": "per-channel", "symmetric": True, "include_embeddings": True}
RUNTIMES = {32: "PyTorch float32", 8: "ONNX Runtime int8",
            4: "PyTorch float32, weights rounded to 4 bits (simulated: packed size, float speed)"}
VOCAB_MIN_COUNT = 20  # chapter 7's student keeps tokens seen this often (plus every character)
BASELINE = "fine-tuned fp32"
# Bump when a recipe is built or measured differently: every cached lab result is then measured anew.
LAB_METHOD = 3  # 2: rows keep the accuracy's interval and the paired change; 3: only quiet rows, stamped (timing.py)
BENCH_SETTINGS = {"max_length": 128, "repeats": 20, "batch_size": 16, "batch_repeats": 2}


@dataclass(frozen=True)
class Recipe:
    """One combination of the lab's four knobs (see the module docstring for the order they apply in)."""

    depth: int = 6
    ffn_pruned: float = 0.0
    vocabulary: bool = False
    bits: int = 32

    def __post_init__(self) -> None:
        for knob, value, choices in (("depth", self.depth, DEPTHS), ("ffn_pruned", self.ffn_pruned, FFN_FRACTIONS),
                                     ("bits", self.bits, BITS)):
            if isinstance(value, bool) or not any(value == c for c in choices):
                raise ValueError(f"Recipe({knob}={value!r}): the lab offers {knob} in {choices}. "
                                 f"Fix: pick one of those values.")
        if not isinstance(self.vocabulary, (bool, np.bool_)):
            raise ValueError(f"Recipe(vocabulary={self.vocabulary!r}): expected True (prune the vocabulary) or False.")
        object.__setattr__(self, "ffn_pruned", float(self.ffn_pruned))
        object.__setattr__(self, "vocabulary", bool(self.vocabulary))

    @property
    def is_baseline(self) -> bool:
        return self == Recipe()

    @property
    def trains(self) -> str | None:
        """What this recipe trains before it can be measured: "distillation", "recovery" or None."""
        if self.depth < 6:
            return "distillation"
        return "recovery" if self.ffn_pruned else None

    @property
    def name(self) -> str:
        if self.is_baseline:
            return BASELINE
        parts = [f"{self.depth} layer{'s' if self.depth > 1 else ''}"]
        if self.ffn_pruned:
            parts.append(f"FFN −{self.ffn_pruned:.0%}")
        if self.vocabulary:
            parts.append("vocab pruned")
        parts.append({32: "fp32", 8: "int8 ONNX", 4: "4-bit weights (simulated)"}[self.bits])
        return " · ".join(parts)


class Lab:
    """Build, measure and chart ``Recipe``s of one fine-tuned model (default: the course baseline).

    Every trained model, exported file and measurement goes through the cache, so a recipe costs
    its seconds once: distillation about 1–2 minutes on 2 cores, recovery about 40 s, the int8
    export a few seconds, the measurement 10–20 s. The 4-bit copy is rounded anew at each
    measurement (a second), not stored.
    """

    def __init__(self, teacher: FineTuned | None = None, progress: bool = True):
        self.teacher = get_baseline(progress=progress) if teacher is None else teacher
        if self.teacher.cache_dir is None:
            raise ValueError("The lab keys its results by the fine-tuned model's cache entry, and this one was trained "
                             "with cache=False. Fix: fine_tune(..., cache=True) (the default), or get_baseline().")

        n_layers = len(encoder_layers(self.teacher.model))
        if n_layers != max(DEPTHS):
            raise ValueError(f"The lab's depth knob offers {DEPTHS} layers of a {max(DEPTHS)}-layer model (the "
                             f"course's MiniLM-L6); this model has {n_layers}. Fix: fine-tune a 6-layer model "
                             "(minikit.get_baseline()) for the lab.")
        self.base_id = Path(self.teacher.cache_dir).name
        self.progress = progress
        self._bench = None
        self._loaded: dict[Recipe, dict] = {}  # rows timed on a loaded machine: shown this session, never cached
        self._train_texts = list(self.teacher.splits["train"]["text"])
        self._vocab_size: int | None = None

    def __repr__(self) -> str:
        return f"Lab(baseline {self.base_id}, {len(self.results())} recipe(s) measured on this machine)"

    # --- building ----------------------------------------------------------------------------

    def _start(self, recipe: Recipe):
        """(model, tokenizer) after the surgery of ``recipe``, before any training."""
        model, tokenizer = self.teacher.model, self.teacher.tokenizer
        layers = layers_for(recipe.depth)
        model = copy.deepcopy(model) if layers is None else select_layers(model, layers)
        if recipe.ffn_pruned:
            model = prune_ffn_neurons(model, recipe.ffn_pruned)
        if recipe.vocabulary:
            pruned = prune_vocabulary(model, tokenizer, self._train_texts, min_count=VOCAB_MIN_COUNT)
            model, tokenizer = pruned.model, pruned.tokenizer
        return model, tokenizer

    def build(self, recipe: Recipe):
        """(model, tokenizer) in float for ``recipe``, trained as it needs (cached); the bits knob is not applied."""
        recipe = _as_recipe(recipe)
        if recipe.is_baseline:
            return self.teacher.model, self.teacher.tokenizer
        model, tokenizer = self._start(replace(recipe, bits=32))
        if recipe.trains == "distillation":  # chapter 7's recipe; (2, 0.5, True) is get_student() itself
            student = distill(model, self.teacher, tokenizer=tokenizer, config=STUDENT_CONFIG, progress=self.progress)
            return student.model.eval(), student.tokenizer
        if recipe.trains == "recovery":
            parts = {"baseline": self.base_id, "recipe": asdict(replace(recipe, bits=32)), "recovery": RECOVERY_CONFIG,
                     "method": LAB_METHOD}

            def build(folder: Path) -> None:
                recover(model, tokenizer, self.teacher.splits, RECOVERY_CONFIG, progress=self.progress)
                save_model_dir(model, tokenizer, folder)

            entry = cache.load_or_build("lab-models", parts, build)
            model, tokenizer = load_model_dir(entry)
        return model.eval(), tokenizer

    def onnx_int8(self, recipe: Recipe) -> Path:
        """The int8 ONNX Runtime folder (chapter 8's ``export_for_serving``) of ``recipe`` at 32 bits; cached."""
        recipe = _as_recipe(recipe)
        return self._onnx_int8(recipe, *self.build(replace(recipe, bits=32)))

    def _onnx_int8(self, recipe: Recipe, model, tokenizer) -> Path:
        parts = {"baseline": self.base_id, "recipe": asdict(replace(recipe, bits=8)), "method": LAB_METHOD}
        texts = list(self.teacher.splits["validation"]["text"][:16])

        def build(folder: Path) -> None:
            export_for_serving(model, tokenizer, folder / "served", max_length=BENCH_SETTINGS["max_length"],
                               texts=texts, name=recipe.name)

        return cache.load_or_build("lab-models", parts, build) / "served"

    # --- measuring ---------------------------------------------------------------------------

    def _parts(self, recipe: Recipe) -> dict:
        parts = {"baseline": self.base_id, "recipe": asdict(recipe), "bench": BENCH_SETTINGS,
                 "machine": system.machine_description(), "threads": torch.get_num_threads(), "method": LAB_METHOD}
        if recipe.bits == 4:
            parts["four_bit"] = FOUR_BIT  # the rounding it simulates: another setting is another measurement
        return parts

    def is_measured(self, recipe: Recipe) -> bool:
        recipe = _as_recipe(recipe)
        return recipe in self._loaded or self._stored_row(recipe) is not None

    def _stored_row(self, recipe: Recipe) -> dict | None:
        """The cached row of ``recipe``, if it was measured in this boot or the probe re-validates it."""
        entry = cache.find("lab", self._parts(recipe))
        row = json.loads((entry / "row.json").read_text()) if entry is not None else None
        return row if row is not None and timing.still_valid(row) else None

    def measure(self, recipe: Recipe, refresh: bool = False) -> pd.Series:
        """``recipe`` built (cached) and timed beside the baseline in one Benchmark run; its row of ``results``.

        A recipe measured before on this machine is read back (``measured_at`` says when);
        ``refresh=True`` measures it again and replaces the stored row. A row timed while the
        machine was loaded (``load_warning`` says why) is shown in this session but not cached.
        """
        recipe = _as_recipe(recipe)
        if refresh or not self.is_measured(recipe):
            row = self._benchmark(recipe)
            self._loaded.pop(recipe, None)
            if row["load_warning"]:
                self._loaded[recipe] = row
            else:
                def write(folder: Path) -> None:
                    (folder / "row.json").write_text(json.dumps(timing.stamped(row), indent=1))

                cache.load_or_build("lab", self._parts(recipe), write, rebuild=True)
        table = self.results()
        return table[table["recipe"] == recipe].iloc[0]

    def _benchmark(self, recipe: Recipe) -> dict:
        # One Benchmark per Lab: the baseline's accuracy is scored once, and timed again beside every recipe.
        if self._bench is None or recipe.name in self._bench._variants:
            self._bench = Benchmark(self.teacher.splits["test"], self.teacher.tokenizer, baseline=BASELINE,
                                    **BENCH_SETTINGS)
            self._bench.add(BASELINE, self.teacher.model)
        bench = self._bench
        if not recipe.is_baseline:
            model, tokenizer = self.build(replace(recipe, bits=32))  # built once: the int8 file is exported from it
            if recipe.bits == 8:
                folder = self._onnx_int8(recipe, model, tokenizer)
                bench.add(recipe.name, folder / "model.onnx", config=model.config, tokenizer=tokenizer)
            elif recipe.bits == 4:  # timed as the float model it is; sized as the packed 4-bit file it stands for
                rounded, packed_mb = simulate_4bit(model)
                bench.add(recipe.name, rounded, tokenizer=tokenizer, size_mb=packed_mb)
            else:
                bench.add(recipe.name, model, tokenizer=tokenizer)
        table = bench.run()
        row = table[table["name"] == recipe.name].iloc[-1]
        base = table[table["name"] == BASELINE].iloc[0]
        return {**json.loads(row.to_json()), "baseline_accuracy": float(base["accuracy"]),
                "baseline_size_mb": float(base["size_mb"]),
                "measured_at": row["measured_at"]}

    def results(self) -> pd.DataFrame:
        """Every recipe measured on this machine (same threads) for this baseline, with Pareto flags.

        Columns: the four knobs, name, runtime (what was timed, ``RUNTIMES``: bits=4 is float32
        PyTorch), accuracy with its 95 % interval (accuracy_low, accuracy_high) on n_eval test examples,
        size_mb, latency_p50_ms, size_pct and latency_pct (of the baseline timed in the same run),
        points (accuracy change) with its paired 95 % interval (points_low, points_high) and change
        ("better", "worse" or "cannot tell (n = …)"), pareto_size / pareto_latency (no other recipe is
        at least as accurate and smaller / faster), beats_claim (smaller and faster than the claim, and
        the whole interval within its points), measured_at, load_warning (why the machine was not quiet:
        such rows live only in this session). A cached row counts while it is from this boot of this
        machine, or the calibration probe re-validates it.
        """
        machine, threads = system.machine_description(), torch.get_num_threads()
        found: dict[Recipe, dict] = {}
        for _, entry in cache.entries("lab").iterrows():
            parts = entry["parts"]
            if (parts.get("baseline"), parts.get("machine"), parts.get("threads"), parts.get("bench"),
                    parts.get("method")) != (self.base_id, machine, threads, BENCH_SETTINGS, LAB_METHOD):
                continue
            row_file = Path(entry["path"]) / "row.json"
            row = json.loads(row_file.read_text()) if row_file.is_file() else None
            if row is not None and timing.still_valid(row):
                found[Recipe(**parts["recipe"])] = row
        rows = []
        for recipe, row in {**found, **self._loaded}.items():
            rows.append({"recipe": recipe, **asdict(recipe), "name": recipe.name, "runtime": RUNTIMES[recipe.bits],
                         "accuracy": row["accuracy"],
                         "accuracy_low": row["accuracy_low"], "accuracy_high": row["accuracy_high"],
                         "n_eval": row["n_eval"], "macro_f1": row["macro_f1"], "size_mb": row["size_mb"],
                         "latency_p50_ms": row["latency_p50_ms"], "peak_memory_mb": row["peak_memory_mb"],
                         "size_pct": 100 * row["size_mb"] / row["baseline_size_mb"],
                         "latency_pct": 100 / row["speedup"] if row["speedup"] else np.nan,
                         "speedup": row["speedup"],
                         "points": round(100 * (row["accuracy"] - row["baseline_accuracy"]), 6) + 0.0,
                         # the paired interval on the same test articles; the baseline's own row has none
                         "points_low": 0.0 if recipe.is_baseline else row["delta_low"],
                         "points_high": 0.0 if recipe.is_baseline else row["delta_high"],
                         "change": "" if recipe.is_baseline else row["change"],
                         "measured_at": row["measured_at"], "load_warning": row.get("load_warning", "")})
        columns = ["recipe", "depth", "ffn_pruned", "vocabulary", "bits", "name", "runtime", "accuracy", "accuracy_low",
                   "accuracy_high", "n_eval", "macro_f1", "size_mb", "latency_p50_ms", "peak_memory_mb", "size_pct",
                   "latency_pct", "speedup", "points", "points_low", "points_high", "change", "measured_at",
                   "load_warning"]
        table = pd.DataFrame(rows, columns=columns).sort_values(["size_pct", "name"]).reset_index(drop=True)
        return mark_fronts(table)

    # --- on paper ----------------------------------------------------------------------------

    def vocabulary_size(self) -> int:
        """Tokens kept by the vocabulary knob (counted once from the training split)."""
        if self._vocab_size is None:
            self._vocab_size = len(corpus_token_ids(self.teacher.tokenizer, self._train_texts, True, VOCAB_MIN_COUNT))
        return self._vocab_size

    def parameter_table(self) -> pd.DataFrame:
        """The baseline's parameters by part (``each`` × ``count`` = ``params``) and the knob each scales with."""
        model = self.teacher.model
        word = model.get_input_embeddings().weight.numel()
        layers = layer_parts(model)
        ffn = sum(p.numel() for up, down in layers[0].ffn for p in (up.weight, up.bias, down.weight)
                  if p is not None)
        total = sum(p.numel() for p in model.parameters())
        per_layer = sum(p.numel() for p in _layer_module(model, 0).parameters())
        n = len(layers)
        table = pd.DataFrame([
            {"part": "word embeddings", "each": word, "count": 1, "scales with": "vocabulary"},
            {"part": "feed-forward neurons", "each": ffn, "count": n, "scales with": "depth × (1 − ffn_pruned)"},
            {"part": "rest of a layer (attention, norms)", "each": per_layer - ffn, "count": n, "scales with": "depth"},
            {"part": "other (positions, pooler, head)", "each": total - word - n * per_layer, "count": 1,
             "scales with": "nothing"},
        ])
        return table.assign(params=table["each"] * table["count"])[["part", "each", "count", "params", "scales with"]]

    def predicted_size_mb(self, recipe: Recipe) -> float:
        """Size from arithmetic alone: parameters kept × bytes each (int8: 1 byte per matrix entry, 4 bits: ½).

        int8 ONNX and packed 4-bit weights keep biases and norms in float32 and add a scale per
        output channel, which this ignores; the notebook compares it with the measured size.
        """
        recipe = _as_recipe(recipe)
        each = self.parameter_table().set_index("part")["each"]
        vocab_rows = self.teacher.model.get_input_embeddings().num_embeddings
        word = each["word embeddings"] * (self.vocabulary_size() / vocab_rows if recipe.vocabulary else 1.0)
        layer = each["feed-forward neurons"] * (1 - recipe.ffn_pruned) + each["rest of a layer (attention, norms)"]
        params = word + recipe.depth * layer + each["other (positions, pooler, head)"]
        return float(params * recipe.bits / 8 / 1e6)

    def chart(self, current: Recipe | None = None, predicted_mb: float | None = None,
              results: pd.DataFrame | None = None, base_mb: float | None = None):
        """The Pareto chart of ``results`` (default: ``results()``; see ``charts.lab_pareto_chart``).

        ``base_mb`` is the baseline's predicted size (default: counted now), for ``predicted_mb``'s percentage.
        """
        if predicted_mb is not None and base_mb is None:
            base_mb = self.predicted_size_mb(Recipe())
        predicted_pct = None if predicted_mb is None else 100 * predicted_mb / base_mb
        return lab_pareto_chart(self.results() if results is None else results, COMPRESSION_CLAIM,
                                current=None if current is None else current.name, predicted_size_pct=predicted_pct)


def layers_for(depth: int) -> list[int] | None:
    """The fine-tuned model's layers a student of ``depth`` starts from; None keeps all 6.

    2 layers: chapter 7's choice, (0, 4), which its sweep found best; 4 layers: spread from the
    bottom, (0, 1, 3, 4); 1 layer: the bottom one, (0,), which reads the embeddings it was trained
    on (issue 24's grid, bench/distill_candidates.py --grid limit, bbc-news validation, FFN −50 %:
    layer 0 gave 95.2 %, layer 2 91.6 %).
    """
    if depth == 6:
        return None
    return list(STUDENT_LAYERS) if depth == len(STUDENT_LAYERS) else spread_layers(6, depth)


def simulate_4bit(model) -> tuple[torch.nn.Module, float]:
    """(a copy of ``model`` with its weights rounded to 4 bits, the MB they would take packed): the bits=4 recipe.

    ``quantization.fake_quantize`` with ``FOUR_BIT``: the copy stays float32, so it runs at float
    speed; ``quantization.quantized_size_mb`` counts each rounded matrix at ½ byte per entry plus
    a float32 scale per channel, and everything else (biases, norms) at its own width.
    """
    return fake_quantize(model, **FOUR_BIT), quantized_size_mb(model, **FOUR_BIT)


def mark_fronts(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` (rows of ``Lab.results``) with pareto_size, pareto_latency and beats_claim set among its own rows.

    A simulated 4-bit row runs as float32: its speed and memory are not a 4-bit model's, so it joins no
    latency front and beats no claim, and its memory is left blank. It counts on the size front.
    """
    table = table.copy()
    table["pareto_size"] = pareto_front(table["size_pct"], table["points"])
    real = table["bits"] != 4
    table["pareto_latency"] = False
    table.loc[real, "pareto_latency"] = pareto_front(table.loc[real, "latency_pct"], table.loc[real, "points"])
    table.loc[~real, "peak_memory_mb"] = np.nan
    claim = COMPRESSION_CLAIM
    # Beats it only where the whole interval of the accuracy change is above the points the claim allows.
    table["beats_claim"] = (real & (table["size_pct"] <= claim.size_pct)
                            & (table["latency_pct"] <= claim.latency_pct) & (table["points_low"] > -claim.points))
    return table


def pareto_front(cost, points) -> np.ndarray:
    """True for each row that no other row beats: at least as accurate and as cheap, better in one."""
    cost, points = np.asarray(cost, dtype=float), np.asarray(points, dtype=float)
    keep = np.ones(len(cost), dtype=bool)
    for i in range(len(cost)):
        better = (cost <= cost[i]) & (points >= points[i]) & ((cost < cost[i]) | (points > points[i]))
        keep[i] = not better.any()
    return keep


def _layer_module(model, i: int) -> torch.nn.Module:
    return encoder_layers(model)[i]


def _as_recipe(recipe) -> Recipe:
    if isinstance(recipe, Recipe):
        return recipe
    if isinstance(recipe, dict):
        return Recipe(**recipe)
    raise TypeError(f"Expected a Recipe (e.g. Recipe(depth=2, bits=8)), got {type(recipe).__name__}: {recipe!r}.")


__all__ = ["BITS", "DEPTHS", "FFN_FRACTIONS", "FOUR_BIT", "Lab", "RUNTIMES", "Recipe", "layers_for", "mark_fronts",
           "pareto_front", "simulate_4bit"]
