"""Chapter 5's knob settings as models: (method, amount) → a pruned model, and its accuracy on a fixed subset.

``compression_widgets.PruningExplorer`` draws these settings (sizes, latency, a heatmap); this module
holds what a setting *is* and what it scores, below the widgets, so that ``minikit build`` can score
every slider stop ahead of the notebook (``PruningSweep.build_accuracies``). The accuracy pass, 64
articles through the encoder, is most of a new setting's cost; the stored table is keyed by the
model's weights and the subset's tokens, and an explorer on the same ones reads it.
"""

from __future__ import annotations

import copy
import hashlib
import json
import numbers
from pathlib import Path
from typing import Sequence

import pandas as pd

from minikit import cache, pruning, stats
from minikit.data import fixed_subset
from minikit.metrics import subset_accuracy
from minikit.models import encoder_layers

PRUNING_METHODS = {  # knob value → what the slider's fraction removes
    "global magnitude": "the smallest |w| of all encoder weights, ranked together",
    "per-layer magnitude": "the smallest |w| of every Linear layer, the same share in each",
    "heads": "the least important attention heads (every layer keeps one)",
    "FFN neurons": "the feed-forward neurons with the smallest weights",
    "layers": "whole encoder layers, middle ones first (at least one stays)",
}
SLIDER_STOPS = tuple(round(0.05 * i, 2) for i in range(20))  # the explorer's slider: 0 … 95 %
ACCURACY_KIND = "pruning-accuracy"  # cache kind: one accuracy per setting, for one model and subset (`minikit build`)
ACCURACY_FILE = "accuracy.json"


def key_text(key: tuple) -> str:
    """A setting's key as the stored table's text (JSON); integers of any kind become ints, anything else refuses."""
    def integer(value):
        if isinstance(value, numbers.Integral):
            return int(value)
        raise TypeError(f"{value!r} ({type(value).__name__}) in a pruning setting's key: expected str, float or int.")

    return json.dumps(key, default=integer)


class PruningSweep:
    """Settings of chapter 5's knobs on one model, and their accuracy on a fixed validation subset.

    Magnitude pruning is applied in place to one working copy, from the original weights
    (``pruning.magnitude_mask_``: the zeros of ``magnitude_prune``, without a copy per setting);
    structured methods build a pruned copy with ``pruning``'s functions. ``importance`` (a
    ``pruning.head_importance`` table) ranks heads; by default the weight-norm proxy. With
    ``use_built``, accuracies that ``build_accuracies`` stored for this model and subset are read
    (``built``: setting → accuracy) instead of measured; the numbers are the same.
    """

    def __init__(self, model, tokenizer, dataset, n_examples: int = 64, max_length: int = 64,
                 importance: pd.DataFrame | None = None, batch_size: int = 32, seed: int = 0,
                 use_built: bool = True):
        if n_examples < 1 or len(dataset) == 0:
            raise ValueError(f"n_examples={n_examples} of {len(dataset)} examples: need at least one to score. "
                             "Fix: pass n_examples ≥ 1 and a dataset with rows.")
        self.model = model.eval()
        self.work = copy.deepcopy(model).eval()
        self.originals = [m.weight for _, _, m in pruning.encoder_linears(model)]  # never written
        self.targets = [m.weight for _, _, m in pruning.encoder_linears(self.work)]
        self.importance = importance if importance is not None else pruning.head_importance(model)
        self.num_layers = len(encoder_layers(model))
        self.batches, self.labels = fixed_subset(tokenizer, dataset, n_examples, max_length, batch_size, seed)
        self.n_examples, self.max_length = len(self.labels), max_length
        self._parts = {"model": cache.model_sha256(model), "subset": _subset_sha256(self.batches, self.labels)}
        found = cache.find(ACCURACY_KIND, self._parts) if use_built else None
        self.built: dict[str, float] = json.loads((found / ACCURACY_FILE).read_text()) if found else {}

    @classmethod
    def of(cls, baseline, n_examples: int | None = 64, **kwargs):
        """The sweep of a fine-tuned baseline (``get_baseline``) as chapter 5 builds it: its validation split, heads
        ranked by ``head_importance`` on ``importance_batches`` of its training split; ``n_examples=None`` scores
        the whole split. ``minikit build`` and the notebook call this, so they key the same stored accuracies."""
        model, tokenizer, splits = baseline.model, baseline.tokenizer, baseline.splits
        importance = pruning.head_importance(model, pruning.importance_batches(tokenizer, splits["train"]))
        n = len(splits["validation"]) if n_examples is None else n_examples
        return cls(model, tokenizer, splits["validation"], n_examples=n, importance=importance, **kwargs)

    def _checked(self, method: str, amount: float) -> float:
        if method not in PRUNING_METHODS:
            raise ValueError(f"method={method!r}: expected one of {', '.join(map(repr, PRUNING_METHODS))}.")
        return round(pruning.check_fraction(amount, "amount"), 4)

    def _key(self, method: str, amount: float) -> tuple:
        """The setting as it acts on the model: slider values that remove the same thing share a key."""
        if amount == 0:
            return ("none",)  # every method at 0 is the unpruned model
        if method in ("global magnitude", "per-layer magnitude"):
            return method, round(amount, 4)
        if method == "heads":
            heads = pruning.least_important_heads(self.importance, amount)
            return method, tuple((layer, tuple(h)) for layer, h in heads.items())
        if method == "FFN neurons":
            return method, round(amount, 4)
        return method, tuple(pruning.layers_to_drop(self.num_layers, amount))

    def _pruned(self, method: str, key: tuple):
        """The model for a setting and the original index of each of its layers.

        Magnitude methods mask the working copy in place; the others build a pruned copy.
        """
        if key == ("none",):
            method, key = "global magnitude", ("global magnitude", 0.0)  # a threshold of -1 keeps every weight
        if method in ("global magnitude", "per-layer magnitude"):
            scope = "global" if method == "global magnitude" else "layer"
            pruning.magnitude_mask_(self.targets, self.originals, key[1], scope)
            return self.work, list(range(self.num_layers))
        if method == "heads":
            return pruning.prune_heads(self.model, dict(key[1])), list(range(self.num_layers))
        if method == "FFN neurons":
            return pruning.prune_ffn_neurons(self.model, key[1]), list(range(self.num_layers))
        dropped = set(key[1])
        kept = [i for i in range(self.num_layers) if i not in dropped]
        return pruning.drop_layers(self.model, sorted(dropped)), kept

    def accuracy(self, model=None) -> float:
        """Accuracy of ``model`` (default: the unpruned model) on the fixed subset."""
        return subset_accuracy(self.model if model is None else model, self.batches, self.labels)

    def _setting_accuracy(self, key: tuple, model) -> float:
        """The built accuracy of a setting if there is one, else ``model``'s, measured now."""
        built = self.built.get(key_text(key))
        return self.accuracy(model) if built is None else built

    def accuracies(self, methods: Sequence[str] | None = None,
                   amounts: Sequence[float] = SLIDER_STOPS) -> pd.DataFrame:
        """One row per (method, amount): the accuracy on the subset, with n and its 95 % Wilson interval.

        Built accuracies are read (``build_accuracies``); a setting the entry lacks is measured now.
        """
        rows = []
        for method in methods or list(PRUNING_METHODS):
            for amount in amounts:
                key = self._key(method, self._checked(method, amount))
                built = self.built.get(key_text(key))
                accuracy = built if built is not None else self.accuracy(self._pruned(method, key)[0])
                low, high = stats.wilson_interval(round(accuracy * self.n_examples), self.n_examples)
                rows.append({"method": method, "amount": amount, "accuracy": accuracy, "low": low, "high": high,
                             "n": self.n_examples})
        return pd.DataFrame(rows)

    def build_accuracies(self, amounts: Sequence[float] = SLIDER_STOPS,
                         methods: Sequence[str] | None = None) -> Path:
        """Measure the accuracy of every (method, amount) setting and store them in the cache (``minikit build``).

        The entry is keyed by this model's weights and this subset's tokens; later sweeps and
        explorers on the same ones read it (``use_built``). Only the accuracy pass runs here, and
        only for settings the entry lacks (other amounts, or heads ranked by another importance):
        they are added to it, and the settings already there are kept.
        """
        settings = {self._key(m, self._checked(m, a)): m for m in (methods or list(PRUNING_METHODS)) for a in amounts}
        found = cache.find(ACCURACY_KIND, self._parts)
        table: dict[str, float] = json.loads((found / ACCURACY_FILE).read_text()) if found else {}
        missing = {key: method for key, method in settings.items() if key_text(key) not in table}
        if found and not missing:
            self.built = table
            return found

        def write(folder: Path) -> None:
            added = {key_text(key): self.accuracy(self._pruned(method, key)[0]) for key, method in missing.items()}
            (folder / ACCURACY_FILE).write_text(json.dumps({**table, **added}, indent=0, sort_keys=True))

        folder = cache.load_or_build(ACCURACY_KIND, self._parts, write, rebuild=found is not None)
        self.built = json.loads((folder / ACCURACY_FILE).read_text())
        return folder


def _subset_sha256(batches: Sequence[dict], labels) -> str:
    """sha256 of the subset's token ids, masks and labels: what an accuracy pass reads."""
    digest = hashlib.sha256()
    for batch in batches:
        for name in sorted(batch):
            digest.update(f"{name}{tuple(batch[name].shape)}".encode() + batch[name].numpy().tobytes())
    digest.update(json.dumps([int(label) for label in labels]).encode())
    return digest.hexdigest()[:16]


__all__ = ["ACCURACY_FILE", "ACCURACY_KIND", "PRUNING_METHODS", "PruningSweep", "SLIDER_STOPS", "key_text"]
