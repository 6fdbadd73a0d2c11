"""Chapter 7's distillation objectives side by side, at equal steps: labels only, logits (KD), and logits plus
hidden states or attention maps.

The same student (``select_layers`` of the teacher's layers, spread out) trains with the same config
and seed under each objective, and each run is scored on the teacher's **test** split. What changes is
only the loss: ``alpha=1`` is the student's own cross-entropy (no teacher); ``alpha < 1`` adds the
teacher's softened logits (Hinton et al., 2015); ``hidden_weight > 0`` adds the mean squared error
between paired hidden states (TinyBERT's intermediate-layer loss; ``distillation.hidden_state_loss``);
``attention_weight > 0`` adds the KL divergence between paired attention distributions (MiniLM's;
``distillation.attention_loss``).
Only results are cached (kind ``kd-variants``): a student per setting would add ~60 MB each.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Sequence

import pandas as pd

from minikit import cache
from minikit.distillation import QUICK_DISTILL, check_kd, distill
from minikit.loop import TrainConfig
from minikit.models import encoder_layers
from minikit.stats import scored
from minikit.students import select_layers, spread_layers
from minikit.training import correct_per_example

HIDDEN_WEIGHTS = (0.1, 1.0, 10.0)  # the knob's stops; 0 is logits-only KD
ATTENTION_WEIGHTS = (1.0, 10.0)  # at the start, on headlines: KD loss ≈ 1.2, attention KL ≈ 0.15, hidden MSE ≈ 0.08
LABELS_ONLY, LOGITS = "labels only (no teacher)", "logits (KD)"
VARIANTS_KIND = "kd-variants"
VARIANTS_FILE = "variants.json"


def variant_name(alpha: float, hidden_weight: float, attention_weight: float = 0.0) -> str:
    """How a setting is shown: labels only, logits (KD), logits + hidden states × w, or logits + attention maps × w."""
    if alpha == 1 and hidden_weight == 0 and attention_weight == 0:
        return LABELS_ONLY
    extra = [f"hidden states × {hidden_weight:g}"] * (hidden_weight > 0)
    extra += [f"attention maps × {attention_weight:g}"] * (attention_weight > 0)
    if not extra:
        return LOGITS
    return " + ".join(["labels" if alpha == 1 else "logits", *extra])  # alpha = 1 puts no weight on the logits


def kd_variants(teacher, layers: int = 3, hidden_weights: Sequence[float] = HIDDEN_WEIGHTS, alpha: float = 0.5,
                temperature: float = 2.0, config: TrainConfig | None = None, progress: bool = False,
                attention_weights: Sequence[float] = ATTENTION_WEIGHTS) -> pd.DataFrame:
    """Train the same ``layers``-layer student under each objective; one row per run, scored on the test split.

    ``teacher`` is a ``FineTuned`` (``get_baseline``). Rows: labels only, logits, then logits + hidden
    states at each of ``hidden_weights``, then logits + attention maps at each of ``attention_weights``;
    columns variant, alpha, hidden_weight, attention_weight, accuracy, n, low and high (95 % Wilson), steps,
    seconds and ``correct`` (per test example, for paired comparisons).
    ``config`` defaults to chapter 7's quick runs (``QUICK_DISTILL``). Cached as results only.
    """
    if not all(hasattr(teacher, name) for name in ("model", "tokenizer", "splits")):
        raise TypeError(f"The teacher is a {type(teacher).__name__}; the runs need a fine-tuned model with its data. "
                        "Fix: pass minikit.get_baseline(dataset=...) (or fine_tune(...)'s result), not its .model.")
    config = config or TrainConfig(**QUICK_DISTILL)
    check_kd(alpha, temperature)
    if alpha >= 1:
        raise ValueError(f"alpha={alpha!r}: the compared objectives put weight 1 − α on the teacher's logits, and "
                         "α = 1 leaves none (that is the labels-only row, always included). Fix: pass 0 ≤ alpha < 1.")
    for name, weights, key in (("hidden_weights", hidden_weights, "hidden_weight"),
                               ("attention_weights", attention_weights, "attention_weight")):
        if isinstance(weights, (int, float)):
            raise ValueError(f"{name}={weights!r}: expected a list of weights. Fix: pass e.g. {name}=[{weights!r}].")
        for weight in weights:
            try:
                check_kd(alpha, temperature, **{key: weight})
            except ValueError as error:
                raise ValueError(f"{name}={list(weights)!r}: {error} Fix: pass {name} ≥ 0.") from None
    n_teacher = len(encoder_layers(teacher.model))
    if not (isinstance(layers, int) and 1 <= layers <= n_teacher):
        raise ValueError(f"layers={layers!r}: expected a whole number from 1 to {n_teacher} (the teacher's depth). "
                         f"Fix: pass layers between 1 and {n_teacher}.")
    settings = [(1.0, 0.0), (alpha, 0.0)] + [(alpha, float(w)) for w in hidden_weights if w > 0]
    attention = [float(w) for w in attention_weights if w > 0]
    runs = [(a, w, 0.0) for a, w in settings] + [(alpha, 0.0, w) for w in attention]
    test = teacher.splits["test"]
    parts = {"teacher": cache.model_sha256(teacher.model), "data": cache.splits_sha256(teacher.splits),
             "layers": layers, "settings": settings, "temperature": temperature, "config": config,
             **({"attention": attention} if attention else {})}

    def build(folder: Path) -> None:
        student = select_layers(teacher.model, spread_layers(n_teacher, layers))
        rows = []
        for a, weight, maps in runs:
            start = time.perf_counter()
            run = distill(student, teacher, alpha=a, temperature=temperature, hidden_weight=weight,
                          attention_weight=maps, config=config, progress=progress, cache=False)
            correct = correct_per_example(run.model.eval(), run.tokenizer, test, config.max_length,
                                          truncation=config.truncation)
            rows.append({"variant": variant_name(a, weight, maps), "alpha": a, "hidden_weight": weight,
                         "attention_weight": maps, "correct": correct, "steps": run.result.steps,
                         "seconds": round(time.perf_counter() - start, 1)})
            del run
        (folder / VARIANTS_FILE).write_text(json.dumps(rows))

    folder = cache.load_or_build(VARIANTS_KIND, parts, build)
    table = pd.DataFrame(json.loads((folder / VARIANTS_FILE).read_text()))
    table = table.assign(**scored(table["correct"]))
    return table[["variant", "alpha", "hidden_weight", "attention_weight", "accuracy", "n", "low", "high", "steps",
                  "seconds", "correct"]]


DEPTHS = (1, 2, 3)  # depth_runs' student depths (the teacher has 6 layers)


def depth_runs(teacher, depths: Sequence[int] = DEPTHS, alpha: float = 0.5, temperature: float = 2.0,
               config: TrainConfig | None = None, progress: bool = False) -> pd.DataFrame:
    """Labels only against logits (KD) at each student depth: ``kd_variants`` without hidden states, per depth.

    The same quick run and seed at every depth, the teacher's layers spread out (``spread_layers``).
    One row per (layers, variant), with ``kd_variants``' columns and ``layers``; each depth is cached
    as results only.
    """
    if isinstance(depths, int) or not depths:
        raise ValueError(f"depths={depths!r}: expected a list of student depths. Fix: pass e.g. depths={list(DEPTHS)}.")
    frames = [kd_variants(teacher, layers=d, hidden_weights=(), alpha=alpha, temperature=temperature, config=config,
                          progress=progress, attention_weights=()).assign(layers=d) for d in depths]
    return pd.concat(frames, ignore_index=True)


__all__ = ["ATTENTION_WEIGHTS", "DEPTHS", "HIDDEN_WEIGHTS", "LABELS_ONLY", "LOGITS", "VARIANTS_KIND", "depth_runs",
           "kd_variants", "variant_name"]
