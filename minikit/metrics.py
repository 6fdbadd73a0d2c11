"""Chapter 4 — metrics. Efficiency first: parameters, size on disk, latency, throughput, memory.

Latency is measured the way a learner would time a call: warm-up runs first (allocator and
thread-pool start-up are not the model's cost), then repeats, then percentiles.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import hashlib
import io
import json
import re
import tempfile
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
import pandas as pd
import torch
import transformers
from transformers import PreTrainedModel

from minikit.cache import load_or_build
from minikit.models import dummy_inputs, forward_arguments
from minikit.settings import quiet_transformers
from minikit.system import PeakRSS, machine_description


@dataclass(frozen=True)
class ModelProfile:
    """Efficiency figures of one model at one input shape, measured on this machine."""

    name: str
    params_m: float  # millions of parameters
    size_mb: float  # weights as saved (safetensors, fp32 unless the model is smaller)
    seq_len: int
    latency_p50_ms: float  # batch 1
    latency_p95_ms: float
    batch_size: int
    throughput: float  # examples per second at batch_size
    peak_memory_mb: float  # weights + the largest extra resident memory seen during a batch forward


def count_parameters(model: torch.nn.Module, nonzero: bool = False) -> int:
    """Number of parameters (or of non-zero ones), shared tensors counted once."""
    seen, total = set(), 0
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        total += int(torch.count_nonzero(p)) if nonzero else p.numel()
    return total


def size_on_disk_mb(model: PreTrainedModel) -> float:
    """Megabytes of the weight files ``save_pretrained`` writes (what you would ship)."""
    with tempfile.TemporaryDirectory() as tmp, quiet_transformers():
        model.save_pretrained(tmp)
        weights = [p for p in Path(tmp).iterdir() if p.suffix in {".safetensors", ".bin"}]
        return sum(p.stat().st_size for p in weights) / 1e6


def measure_latency(model: torch.nn.Module, inputs: dict[str, torch.Tensor], warmup: int = 3,
                    repeats: int = 20) -> np.ndarray:
    """Wall-clock milliseconds of ``repeats`` forward passes after ``warmup`` untimed ones."""
    if repeats < 1 or warmup < 0:
        raise ValueError(f"repeats={repeats}, warmup={warmup}: need repeats ≥ 1 and warmup ≥ 0.")
    times = []
    with torch.inference_mode():
        for i in range(warmup + repeats):
            start = time.perf_counter()
            model(**inputs)
            if i >= warmup:
                times.append((time.perf_counter() - start) * 1e3)
    return np.array(times)


def median_latency_ms(model: torch.nn.Module, inputs: dict[str, torch.Tensor], warmup: int = 3,
                      repeats: int = 20) -> float:
    """The median of ``measure_latency``'s milliseconds: one number, robust to a stray slow pass."""
    return float(np.median(measure_latency(model, inputs, warmup, repeats)))


def profile_model(model: PreTrainedModel, name: str = "model", seq_len: int = 128, batch_size: int = 32,
                  repeats: int = 10, batch_repeats: int = 2) -> ModelProfile:
    """Measure one model: size, batch-1 latency p50/p95, throughput at ``batch_size``, peak memory."""
    model.eval()
    single = measure_latency(model, dummy_inputs(model, 1, seq_len), warmup=2, repeats=repeats)
    batch_inputs = dummy_inputs(model, batch_size, seq_len)
    with PeakRSS() as rss:
        batch = measure_latency(model, batch_inputs, warmup=1, repeats=batch_repeats)
    weights_mb = sum(p.numel() * p.element_size() for p in model.parameters()) / 1e6
    return ModelProfile(
        name=name,
        params_m=count_parameters(model) / 1e6,
        size_mb=size_on_disk_mb(model),
        seq_len=seq_len,
        latency_p50_ms=float(np.percentile(single, 50)),
        latency_p95_ms=float(np.percentile(single, 95)),
        batch_size=batch_size,
        throughput=float(batch_size / (np.median(batch) / 1e3)),
        peak_memory_mb=weights_mb + max(rss.peak_mb, 0.0),
    )


PROFILES_KIND = "profiles"  # cache kind of compare_models' tables
_PROFILES_FILE = "profiles.json"
# Bump when profile_model or compare_models measure differently: tables taken the old way are then
# measured again instead of being shown beside new ones as if comparable.
_PROFILES_METHOD = 1
_ARCHITECTURE_FIELDS = ("family", "layers", "hidden", "heads", "ffn", "vocab")


def _profiles_table(payload: dict[str, Any]) -> pd.DataFrame:
    """The stored rows as a table: ModelProfile's columns in order, then ``measured_at``."""
    columns = [f.name for f in fields(ModelProfile)]
    table = pd.DataFrame(payload["rows"], columns=columns)
    table["measured_at"] = payload["measured_at"]
    return table


def compare_models(names: Iterable[str] | None = None, seq_len: int = 128, batch_size: int = 32,
                   repeats: int = 10, batch_repeats: int = 2, seed: int = 0, refresh: bool = False) -> pd.DataFrame:
    """Profile catalog architectures with random weights, one at a time; one row per model.

    Random weights cost exactly what trained ones do, so size and speed are real; accuracy is not.

    Measuring every model takes a minute or two, so the table is measured once and then read from
    the cache (kind ``"profiles"``); the ``measured_at`` column says when its numbers were taken.
    The cache key holds everything that changes them: the names and their architectures, every
    argument, torch's thread count, the torch and transformers versions and this machine
    (``machine_description()``). ``refresh=True`` measures again and replaces the cached table.
    """
    from minikit.models import CATALOG, build_model, get_card

    names = list(names) if names is not None else list(CATALOG)
    cards = [get_card(name) for name in names]  # an unknown name fails here, before any measuring
    parts = {
        "names": names,
        "architectures": [{f: getattr(card, f) for f in _ARCHITECTURE_FIELDS} for card in cards],
        "seq_len": seq_len, "batch_size": batch_size, "repeats": repeats, "batch_repeats": batch_repeats,
        "seed": seed, "num_labels": 5, "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__, "transformers": transformers.__version__,
        "machine": machine_description(), "method": _PROFILES_METHOD,
    }

    def measure(folder: Path) -> None:
        rows = []
        for name in names:
            model = build_model(name, num_labels=5, seed=seed)
            rows.append(asdict(profile_model(model, name, seq_len, batch_size, repeats, batch_repeats)))
            del model
            gc.collect()
        measured_at = dt.datetime.now().astimezone().isoformat(timespec="seconds")
        # JSON keeps every float exactly (shortest repr), so the cached table equals the measured one.
        (folder / _PROFILES_FILE).write_text(json.dumps({"measured_at": measured_at, "rows": rows}, indent=1))

    entry = load_or_build(PROFILES_KIND, parts, measure, rebuild=refresh)
    return _profiles_table(json.loads((entry / _PROFILES_FILE).read_text()))


def size_class_table(profiles: pd.DataFrame) -> pd.DataFrame:
    """Set the source's size-class latency claims beside this machine's batch-1 measurements.

    "≈ X ms" counts as holding when the measured median is within a factor of 2 of X. The 500 M+
    class is too big for a 2 GB notebook, so its figure is extrapolated from a log-log fit over
    the measured models and labelled as such.
    """
    from minikit.charts import SIZE_CLASS_CLAIMS, size_class_of

    measured = profiles.assign(size_class=[size_class_of(p) for p in profiles["params_m"]])
    slope, intercept = np.polyfit(np.log(profiles["params_m"]), np.log(profiles["latency_p50_ms"]), 1)
    rows = []
    for claim in SIZE_CLASS_CLAIMS.itertuples():
        members = measured[measured["size_class"] == claim.size_class]
        if len(members):
            ms, how = float(members["latency_p50_ms"].median()), "measured: " + ", ".join(members["name"])
        else:
            ms = float(np.exp(intercept + slope * np.log(claim.params_lo_m)))
            how = f"extrapolated to {claim.params_lo_m:.0f} M (fit: latency ∝ params^{slope:.2f})"
        if claim.claim.startswith(">"):
            holds = ms > claim.claimed_ms
        else:
            holds = claim.claimed_ms / 2 <= ms <= claim.claimed_ms * 2
        rows.append({"size class": claim.size_class, "claim": claim.claim, "this machine (ms)": round(ms, 1),
                     "how": how, "holds here": bool(holds)})
    return pd.DataFrame(rows)


# ================================================================================================
# Quality: a confusion matrix, and precision, recall and F1 read off it
# ================================================================================================


def _as_labels(y, name: str) -> np.ndarray:
    """Class ids as a 1-D int64 array; a 2-D input (probabilities, logits) is a common slip."""
    y = np.asarray(y.detach().cpu() if isinstance(y, torch.Tensor) else y)
    if y.ndim != 1:
        raise ValueError(f"{name} has shape {y.shape}; expected one class id per example, shape (N,). "
                         "Fix: for probabilities or logits pass .argmax(-1).")
    if y.size and not np.issubdtype(y.dtype, np.integer) and not np.all(y == np.round(y)):
        raise ValueError(f"{name} holds non-integer values such as {y[y != np.round(y)][0]!r}; "
                         "expected class ids 0, 1, 2, … Fix: pass predicted ids, not scores.")
    return y.astype(np.int64)


def _same_length(y_true: np.ndarray, y_pred: np.ndarray) -> None:
    if len(y_true) != len(y_pred):
        raise ValueError(f"y_true has {len(y_true)} labels but y_pred has {len(y_pred)}. "
                         "Fix: pass one prediction per example, in the same order.")
    if len(y_true) == 0:
        raise ValueError("y_true and y_pred are empty: there is nothing to score.")


def confusion_matrix(y_true, y_pred, num_labels: int) -> np.ndarray:
    """Counts of (true class, predicted class): ``cm[i, j]`` = examples of class i predicted as j."""
    y_true, y_pred = _as_labels(y_true, "y_true"), _as_labels(y_pred, "y_pred")
    _same_length(y_true, y_pred)
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        if y.min() < 0 or y.max() >= num_labels:
            raise ValueError(f"{name} holds class ids {y.min()}…{y.max()} but num_labels={num_labels}. "
                             f"Fix: ids must be 0…{num_labels - 1}, or pass the right num_labels.")
    cm = np.zeros((num_labels, num_labels), dtype=np.int64)
    np.add.at(cm, (y_true, y_pred), 1)  # one count per (true, predicted) pair
    return cm


def _divide(a, b) -> np.ndarray:
    """a / b, and 0 where b is 0: scikit-learn's default zero_division, without its warning."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return np.divide(a, b, out=np.zeros_like(a), where=b != 0)


def per_class_scores(cm: np.ndarray) -> pd.DataFrame:
    """Precision, recall, F1 and support of every class, read off a confusion matrix.

    A class that is never predicted has precision 0 (0/0 is taken as 0, as scikit-learn does by
    default), so it pulls the macro average down instead of vanishing from it.
    """
    cm = np.asarray(cm)
    tp = np.diag(cm)
    precision = _divide(tp, cm.sum(axis=0))  # of all examples predicted as c, the share that are c
    recall = _divide(tp, cm.sum(axis=1))  # of all examples that are c, the share found
    f1 = _divide(2 * precision * recall, precision + recall)  # harmonic mean: low if either is low
    return pd.DataFrame({"precision": precision, "recall": recall, "f1": f1, "support": cm.sum(axis=1)})


def accuracy(y_true, y_pred) -> float:
    """Share of examples whose predicted class is the true class."""
    y_true, y_pred = _as_labels(y_true, "y_true"), _as_labels(y_pred, "y_pred")
    _same_length(y_true, y_pred)
    return float(np.mean(y_true == y_pred))


def subset_accuracy(model: torch.nn.Module, batches: Iterable[dict[str, torch.Tensor]], labels) -> float:
    """Accuracy of ``model``'s argmax over ``batches`` (model inputs, e.g. ``data.fixed_subset``'s) against ``labels``.

    The model runs in eval mode (no dropout); its training flag is restored after.
    """
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        predicted = np.concatenate([model(**batch).logits.argmax(-1).numpy() for batch in batches])
    model.train(was_training)
    return float(np.mean(predicted == np.asarray(labels)))


def macro_f1(y_true, y_pred, num_labels: int | None = None) -> float:
    """Unweighted mean of the per-class F1 scores: a rare class counts as much as a common one.

    Without ``num_labels`` the classes are those occurring in y_true or y_pred (as scikit-learn
    does); with it, a class occurring in neither counts too, with F1 0.
    """
    y_true, y_pred = _as_labels(y_true, "y_true"), _as_labels(y_pred, "y_pred")
    _same_length(y_true, y_pred)
    present = np.union1d(y_true, y_pred)
    f1 = per_class_scores(confusion_matrix(y_true, y_pred, num_labels or int(present.max()) + 1))["f1"]
    return float(f1.mean() if num_labels else f1.iloc[present].mean())


def classification_report(y_true, y_pred, label_names: Sequence[str]) -> pd.DataFrame:
    """Per-class precision, recall, F1 and support, then accuracy, macro and weighted averages.

    Laid out like scikit-learn's report: the accuracy row holds accuracy in the ``f1`` column
    (precision and recall are NaN there) and the total number of examples as support.
    ``label_names`` may be a list or a ``datasets.ClassLabel``.
    """
    names = list(getattr(label_names, "names", label_names))
    table = per_class_scores(confusion_matrix(y_true, y_pred, len(names)))
    table.index = pd.Index(names, name="class")
    scores, support = table[["precision", "recall", "f1"]], table["support"]
    total = int(support.sum())
    macro = [*scores.mean(), total]
    weighted = [*scores.mul(support, axis=0).sum() / total, total]
    table.loc["accuracy"] = [np.nan, np.nan, accuracy(y_true, y_pred), total]
    table.loc["macro avg"] = macro
    table.loc["weighted avg"] = weighted
    return table.astype({"support": int})


@dataclass(frozen=True)
class ThresholdScores:
    """One-vs-rest scores of one class at one decision threshold."""

    cls: int
    threshold: float
    precision: float  # 0 when nothing passes the threshold (0/0 taken as 0)
    recall: float
    f1: float
    predicted: int  # examples with p(cls) ≥ threshold
    positives: int  # examples whose true class is cls


def _check_probs(probs, y_true, cls: int) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(probs.detach().cpu() if isinstance(probs, torch.Tensor) else probs, dtype=float)
    y = _as_labels(y_true, "y_true")
    if p.ndim != 2 or len(p) != len(y):
        raise ValueError(f"probs has shape {p.shape} for {len(y)} labels; expected (N, num_labels) = "
                         f"({len(y)}, C). Fix: pass one row of class probabilities per example.")
    if p.size and (p.min() < -1e-6 or p.max() > 1 + 1e-6):  # float32 softmax may overshoot by an ulp
        raise ValueError(f"probs range from {p.min():.3g} to {p.max():.3g}; thresholds need probabilities "
                         "in [0, 1]. Fix: these look like logits, pass torch.softmax(logits, -1).")
    if not 0 <= cls < p.shape[1]:
        raise ValueError(f"cls={cls} but probs has {p.shape[1]} classes. Fix: pick a class id 0…{p.shape[1] - 1}.")
    return p, y


def class_probabilities(probs, y_true, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """``probs`` and ``y_true`` as arrays, after checking that ``probs`` is (N, num_classes)."""
    p, y = np.asarray(probs), np.asarray(y_true)
    if p.ndim != 2 or p.shape[1] != num_classes:
        raise ValueError(f"probs has shape {p.shape} but there are {num_classes} label names. "
                         "Fix: pass probabilities of shape (N, number of classes) and those classes' names.")
    return p, y


def precision_recall_at_threshold(probs, y_true, cls: int, threshold: float) -> ThresholdScores:
    """Precision and recall of ``cls`` when "p(cls) ≥ threshold" means "predict cls" (one-vs-rest).

    Unlike argmax, one threshold per class can flag an example for several classes or none: a
    high threshold trades recall for precision.
    """
    p, y = _check_probs(probs, y_true, cls)
    predicted, actual = p[:, cls] >= threshold, y == cls
    tp = int(np.sum(predicted & actual))
    precision, recall = float(_divide(tp, predicted.sum())), float(_divide(tp, actual.sum()))
    f1 = float(_divide(2 * precision * recall, precision + recall))
    return ThresholdScores(int(cls), float(threshold), precision, recall, f1, int(predicted.sum()), int(actual.sum()))


def precision_recall_curve_table(probs, y_true, cls: int, thresholds: Sequence[float] | None = None) -> pd.DataFrame:
    """``precision_recall_at_threshold`` over many thresholds (default 0, 0.01, …, 1): one row each."""
    if thresholds is None:
        thresholds = np.round(np.linspace(0.0, 1.0, 101), 2)
    return pd.DataFrame([asdict(precision_recall_at_threshold(probs, y_true, cls, t)) for t in thresholds])


def misclassified(texts: Sequence[str], ids: Sequence[str], y_true, y_pred, probs, label_names: Sequence[str],
                  k: int | None = 20, snippet_chars: int = 160) -> pd.DataFrame:
    """The ``k`` most confident mistakes (all with k=None): id, true, predicted, confidence, p_true, text.

    ``confidence`` is the probability of the predicted class, ``p_true`` that of the true class.
    Confident mistakes come first: they are where label errors and truly ambiguous texts hide.
    """
    names = list(getattr(label_names, "names", label_names))
    y_true, y_pred = _as_labels(y_true, "y_true"), _as_labels(y_pred, "y_pred")
    _same_length(y_true, y_pred)
    p, _ = _check_probs(probs, y_true, 0)
    if not len(texts) == len(ids) == len(y_true):
        raise ValueError(f"{len(texts)} texts, {len(ids)} ids and {len(y_true)} labels: pass one of each per example.")
    rows = np.flatnonzero(y_true != y_pred)
    table = pd.DataFrame({
        "id": [ids[i] for i in rows],
        "true": [names[y_true[i]] for i in rows],
        "predicted": [names[y_pred[i]] for i in rows],
        "confidence": p[rows, y_pred[rows]],
        "p_true": p[rows, y_true[rows]],
        "text": [_snippet(texts[i], snippet_chars) for i in rows],
    })
    table = table.sort_values("confidence", ascending=False, kind="stable").reset_index(drop=True)
    return table if k is None else table.head(k)


def _snippet(text: str, n: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 1].rstrip() + "…"


# ================================================================================================
# Energy: measured with RAPL where the machine allows it, otherwise an estimate from FLOPs
# ================================================================================================

RAPL_ROOT = Path("/sys/class/powercap")
ENERGY_MEASURED = "rapl"
ENERGY_ESTIMATE = "estimate (FLOPs × J/FLOP)"
ENERGY_UNAVAILABLE = "unavailable"

# Basis: a 28 W laptop CPU package (e.g. a 4-core Intel i7-1165G7 at its TDP) running BERT-sized
# fp32 matrix multiplies at ~110 GFLOP/s achieved (about a third of its AVX-512 peak):
# 28 J/s ÷ 1.1e11 FLOP/s ≈ 2.5e-10 J/FLOP. Trust it to a factor of ~3, not better; it ignores
# idle power, memory traffic, and any saving from int8 arithmetic.
JOULES_PER_FLOP = 2.5e-10


def read_rapl_uj(root: str | Path = RAPL_ROOT) -> dict[str, tuple[int, int]] | None:
    """RAPL package counters as {zone: (energy_uj, max_energy_range_uj)}, or None if unreadable.

    Only top-level zones (``intel-rapl:N``) are read: sub-zones (cores, DRAM) are already inside
    their package, and a "psys" zone (whole platform) would count the package twice. RAPL is
    often root-only (kernels patched after the Platypus attack) and absent in VMs and containers.
    """
    zones = sorted(p for p in Path(root).glob("intel-rapl:*") if re.fullmatch(r"intel-rapl:\d+", p.name))
    counters = {}
    try:
        for zone in zones:
            name_file = zone / "name"
            if name_file.is_file() and name_file.read_text().strip() == "psys":
                continue
            energy, max_range = (int((zone / f).read_text()) for f in ("energy_uj", "max_energy_range_uj"))
            counters[zone.name] = (energy, max_range)
    except (OSError, ValueError):  # permission denied, a vanished file, or junk in it
        return None
    return counters or None


def rapl_joules(before: dict[str, tuple[int, int]] | None, after: dict[str, tuple[int, int]] | None) -> float | None:
    """Joules between two ``read_rapl_uj`` snapshots, summed over zones; None if either is None.

    A counter that went down has wrapped past ``max_energy_range_uj`` back to 0; one wrap per
    reading is all that can be seen, so keep readings shorter than the wrap period (minutes).
    """
    if before is None or after is None or before.keys() != after.keys():
        return None
    total_uj = 0
    for zone, (start, max_range) in before.items():
        end = after[zone][0]
        total_uj += end - start if end >= start else max_range - start + end
    return total_uj / 1e6


@dataclass
class EnergyReading:
    """What ``energy_reading`` measured; filled in when the ``with`` block ends (so not frozen)."""

    joules: float | None = None  # None where RAPL is absent or unreadable
    seconds: float = 0.0
    source: str = ENERGY_UNAVAILABLE  # "rapl" once measured


@contextlib.contextmanager
def energy_reading(root: str | Path = RAPL_ROOT) -> Iterator[EnergyReading]:
    """Measure the CPU package energy of a block: ``with energy_reading() as e: ...`` then ``e.joules``.

    RAPL counts the whole package, every process and idle power included: run on a quiet
    machine and compare readings with each other rather than reading one as "the model's".
    """
    reading = EnergyReading()
    before, start = read_rapl_uj(root), time.perf_counter()
    try:
        yield reading
    finally:
        reading.seconds = time.perf_counter() - start
        reading.joules = rapl_joules(before, read_rapl_uj(root))
        reading.source = ENERGY_MEASURED if reading.joules is not None else ENERGY_UNAVAILABLE


@dataclass(frozen=True)
class EnergyEstimate:
    """Energy estimated from arithmetic, not measured; ``source`` says so wherever it is shown."""

    joules: float
    flops: float
    joules_per_flop: float
    source: str = ENERGY_ESTIMATE


def estimate_energy_j(flops: float, joules_per_flop: float = JOULES_PER_FLOP) -> EnergyEstimate:
    """An *estimate*: FLOPs × joules per FLOP (see ``JOULES_PER_FLOP`` for the constant's basis).

    It sees arithmetic only, so an int8 copy of a model gets the same figure as the fp32 one;
    only a measurement (RAPL) can show what quantization saves.
    """
    if flops < 0 or joules_per_flop <= 0:
        raise ValueError(f"flops={flops}, joules_per_flop={joules_per_flop}: need flops ≥ 0 and joules_per_flop > 0.")
    return EnergyEstimate(joules=flops * joules_per_flop, flops=float(flops), joules_per_flop=joules_per_flop)


def _config_value(config, names: Sequence[str]) -> int:
    for name in names:
        value = getattr(config, name, None)
        if value is not None:
            return int(value)
    raise ValueError(f"{type(config).__name__} has none of {list(names)}. Fix: pass a BERT-style encoder config "
                     "(BertConfig, DistilBertConfig, MobileBertConfig, …) or count its FLOPs by hand.")


def forward_flops(config, seq_len: int = 128, batch_size: int = 1) -> int:
    """FLOPs of one encoder forward pass (2 per multiply-add), from the config's sizes alone.

    Per layer and token: Q, K, V and output projections 4·H², the FFN 2·H·F, attention scores and
    weighted sum 2·T·H (multiply-adds). Embedding look-ups, softmax, LayerNorm, GELU and the
    classifier head are left out (under 2 % here). Heads do not change the count. MobileBERT is
    an approximation: its bottlenecks and stacked FFNs are counted, its trigram embedding is not
    (5.3 GFLOP at 128 tokens against the paper's 5.7; BERT-base: 22.3 against 22.5).
    """
    if seq_len < 1 or batch_size < 1:
        raise ValueError(f"seq_len={seq_len}, batch_size={batch_size}: both must be at least 1.")
    layers = _config_value(config, ["num_hidden_layers", "n_layers"])
    hidden = _config_value(config, ["hidden_size", "dim"])
    ffn = _config_value(config, ["intermediate_size", "hidden_dim"])
    t = seq_len
    if getattr(config, "use_bottleneck", False):  # MobileBERT: a narrow block inside a wide residual stream
        inner = _config_value(config, ["intra_bottleneck_size"])
        n_ffn = _config_value(config, ["num_feedforward_networks"])
        per_token = 2 * hidden * inner + hidden * inner + 3 * inner * inner  # bottlenecks in, V, Q, K, out proj
        per_token += n_ffn * 2 * inner * ffn + inner * hidden  # stacked FFNs, bottleneck out
        attention = 2 * t * inner
    else:
        per_token = 4 * hidden * hidden + 2 * hidden * ffn
        attention = 2 * t * hidden  # Q·Kᵀ and weights·V: T×T×H multiply-adds each, per sequence
    return int(2 * batch_size * layers * t * (per_token + attention))


# ================================================================================================
# Benchmark: several variants of one model, measured side by side in one run
# ================================================================================================

Batch = dict[str, np.ndarray]  # tokenizer outputs as int64 arrays, (B, T) each


@dataclass(frozen=True)
class BenchResult:
    """One variant's row in a ``Benchmark``: its quality and its costs on this machine."""

    name: str
    kind: str  # "torch", "onnxruntime" or "callable"
    accuracy: float
    macro_f1: float
    n_eval: int  # examples scored
    params_m: float  # millions; NaN where unknown (a plain callable, a session without path=)
    nonzero_params_m: float
    size_mb: float
    size_source: str  # "save_pretrained", "torch.save" (quantized torch), ".onnx file" or "given"
    seq_len: int  # every timed input is padded/truncated to exactly this many tokens
    latency_p50_ms: float  # batch 1
    latency_p95_ms: float
    batch_size: int
    throughput: float  # examples per second at batch_size
    peak_memory_mb: float  # size_mb + the largest extra resident memory during one batch forward
    energy_mj_per_example: float  # at batch_size
    energy_source: str  # "rapl" (measured), "estimate (FLOPs × J/FLOP)" or "unavailable"
    run: int  # which call of run() measured this row
    baseline_p50_ms: float  # the baseline's batch-1 p50 timed in the same run: the speedup's numerator
    measured_at: str = ""  # ISO time of the measurement (earlier than this run's when read from the cache)


@dataclass(frozen=True)
class _Variant:
    name: str
    kind: str
    predict: Callable[[Batch], np.ndarray]  # a batch → logits (B, C) as a NumPy array
    size_mb: float
    size_source: str
    params: tuple[int, int] | None  # (all, non-zero)
    config: Any  # a transformers config where known: the FLOP estimate needs it
    tokenizer: Any = None  # its own tokenizer (e.g. a pruned vocabulary); None: the benchmark's
    # Computes the sha256 of its weights or .onnx file, only when a cached run asks (so with cache=False it
    # costs nothing); None: cannot be cached (a callable).
    fingerprint: Callable[[], str] | None = None

    def __call__(self, **batch: np.ndarray) -> np.ndarray:  # the calling convention of measure_latency
        return self.predict(batch)


def _logits_array(out) -> np.ndarray:
    out = getattr(out, "logits", out)
    if isinstance(out, (tuple, list)):
        out = out[0]
    if isinstance(out, torch.Tensor):
        out = out.detach().float().cpu().numpy()
    return np.asarray(out)


def _torch_predict(model: torch.nn.Module) -> Callable[[Batch], np.ndarray]:
    accepted = forward_arguments(model)
    device = next(model.parameters(), torch.empty(0)).device

    def predict(batch: Batch) -> np.ndarray:
        with torch.inference_mode():
            inputs = {k: torch.from_numpy(v).to(device) for k, v in batch.items() if k in accepted}
            return _logits_array(model(**inputs))

    return predict


def benchmark_session_options(threads: int | None = None):
    """ONNX Runtime session options for timing beside other variants: worker threads do not spin.

    By default ONNX Runtime's idle worker threads keep spinning for a while after each run, to
    answer the next run sooner. Timed in alternation with a PyTorch model, that spinning takes
    the cores the PyTorch call needs: measured on 2 cores, it doubled MiniLM-L6's float32 batch-1
    latency (16 → 35 ms) and so inflated every ONNX Runtime speedup. A session made here waits
    instead. ``threads`` sets the intra-op threads (default: ONNX Runtime's, one per core).
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads is not None:
        options.intra_op_num_threads = threads
    return options


def _onnx_predict(session) -> Callable[[Batch], np.ndarray]:
    dtypes = {i.name: np.int32 if i.type == "tensor(int32)" else np.int64 for i in session.get_inputs()}
    outputs = [o.name for o in session.get_outputs()]
    output = "logits" if "logits" in outputs else outputs[0]

    def predict(batch: Batch) -> np.ndarray:
        missing = set(dtypes) - set(batch) - {"token_type_ids"}
        if missing:
            raise ValueError(f"The ONNX model needs inputs {sorted(missing)}; the tokenizer gives {sorted(batch)}. "
                             "Fix: export with input_names matching the tokenizer's outputs.")
        # token_type_ids are all zeros for one-sentence inputs, so a tokenizer without them still works.
        feeds = {name: batch.get(name, np.zeros_like(batch["input_ids"])).astype(dtype, copy=False)
                 for name, dtype in dtypes.items()}
        return session.run([output], feeds)[0]

    return predict


def _torch_size_mb(model: torch.nn.Module) -> tuple[float, str]:
    """Size as shipped: save_pretrained's safetensors, else torch.save of the state dict.

    safetensors cannot hold torch.ao's packed int8 weights, so dynamically quantized models
    (and plain ``nn.Module``s) take the second way.
    """
    if isinstance(model, PreTrainedModel):
        try:
            return size_on_disk_mb(model), "save_pretrained"
        except Exception:  # the error for packed tensors differs between versions; any failure falls back
            pass
    with tempfile.TemporaryDirectory() as tmp:
        file = Path(tmp) / "state_dict.pt"
        torch.save(model.state_dict(), file)
        return file.stat().st_size / 1e6, "torch.save"


def _torch_parameter_counts(model: torch.nn.Module) -> tuple[int, int]:
    """(all, non-zero) parameters, including the packed weights of torch.ao quantized modules.

    ``model.parameters()`` does not list packed weights, so ``count_parameters`` alone would
    report a dynamically quantized BERT as its embeddings only.
    """
    total, nonzero = count_parameters(model), count_parameters(model, nonzero=True)
    for module in model.modules():
        if not type(module).__module__.startswith("torch.ao.nn.quantized"):
            continue
        for get in (getattr(module, "weight", None), getattr(module, "bias", None)):
            tensor = get() if callable(get) else None
            if isinstance(tensor, torch.Tensor):
                tensor = tensor.dequantize() if tensor.is_quantized else tensor
                total, nonzero = total + tensor.numel(), nonzero + int(torch.count_nonzero(tensor))
    return total, nonzero


def _onnx_parameter_counts(path: str | Path) -> tuple[int, int]:
    """(all, non-zero) elements of an ONNX file's initializers: the weights, plus a few constants."""
    import onnx
    from onnx import numpy_helper

    arrays = [numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer]
    return sum(a.size for a in arrays), sum(int(np.count_nonzero(a)) for a in arrays)


def _torch_fingerprint(model: torch.nn.Module) -> str:
    """sha256 of the model's class and ``torch.save``d state dict (quantized weights too); ~0.1 s per 90 MB."""
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return hashlib.sha256(type(model).__qualname__.encode() + buffer.getvalue()).hexdigest()


def _file_fingerprint(path: str | Path) -> str:
    from minikit.cache import file_sha256

    return file_sha256(Path(path))


def _tokenizer_fingerprint(tokenizer) -> str:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    text = backend.to_str() if backend is not None else json.dumps(sorted(tokenizer.get_vocab().items()))
    return hashlib.sha256(text.encode()).hexdigest()


def _make_variant(name: str, model, size_mb: float | None, path: str | Path | None, config) -> _Variant:
    if isinstance(model, (str, Path)):
        import onnxruntime as ort

        path = Path(model)
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist. Fix: pass the path of an exported .onnx file.")
        model = ort.InferenceSession(str(path), benchmark_session_options(), providers=["CPUExecutionProvider"])
    if isinstance(model, torch.nn.Module):
        model.eval()  # dropout off: a benchmark measures inference
        size, how = (size_mb, "given") if size_mb is not None else _torch_size_mb(model)
        return _Variant(name, "torch", _torch_predict(model), size, how, _torch_parameter_counts(model),
                        config if config is not None else getattr(model, "config", None),
                        fingerprint=lambda: _torch_fingerprint(model))
    if hasattr(model, "get_inputs") and hasattr(model, "run"):  # an onnxruntime.InferenceSession
        if size_mb is None and path is None:
            raise ValueError(f"Variant {name!r} is an ONNX Runtime session, which does not know its file. "
                             "Fix: bench.add(name, session, path='model.onnx') or size_mb=...")
        size, how = (size_mb, "given") if size_mb is not None else (Path(path).stat().st_size / 1e6, ".onnx file")
        params = _onnx_parameter_counts(path) if path is not None else None
        fingerprint = (lambda: _file_fingerprint(path)) if path is not None else None
        return _Variant(name, "onnxruntime", _onnx_predict(model), size, how, params, config, fingerprint=fingerprint)
    if callable(model):
        if size_mb is None:
            raise ValueError(f"Variant {name!r} is a plain callable, whose size cannot be measured. "
                             "Fix: bench.add(name, fn, size_mb=...) with the size of what you would ship.")
        return _Variant(name, "callable", lambda batch: _logits_array(model(batch)), size_mb, "given", None, config)
    raise TypeError(f"Variant {name!r} is a {type(model).__name__}. Expected a torch model, an onnxruntime "
                    "InferenceSession, a path to a .onnx file, or a callable(batch dict) -> logits.")


# Bump when the Benchmark measures differently: cached runs taken the old way are then measured again.
_BENCH_METHOD = 1


def _version(package: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


@dataclass(frozen=True)
class _BenchInputs:
    batches: list[Batch]  # the evaluation examples, sorted by length, each batch padded to its longest
    labels: np.ndarray  # true labels in the same (sorted) order
    single: Batch  # 1 × max_length: latency
    full: Batch  # batch_size × max_length: throughput, memory, energy


class Benchmark:
    """Measure several variants of one model side by side: quality, size, speed, memory, energy.

    All variants see the same inputs: accuracy on the same examples (batched by length), timing
    on real texts padded or truncated to exactly ``max_length`` tokens, so every variant sees
    identical shapes. Timing alternates variants in rounds (A B, then B A, …) so that drift of
    the machine hits all alike; in each round a variant runs ``burst`` timed calls back to back
    after one untimed call, as a served model does (called one at a time in turn, a small model
    would always start with the other model's weights in the CPU caches, which it never does in
    service). ``run()`` again measures only the variants added since, and
    times the baseline again beside them: a row's speedup uses the baseline timed in its run.

    ``cache=True`` keeps each run's rows in the cache, keyed by everything that sets them (each
    variant's weights or .onnx file, its tokenizer, the data, every setting, torch's threads, the
    versions and this machine): the same run again is read back (``measured_at`` says when it
    was measured) instead of taking its seconds again; ``run(refresh=True)`` measures anew. A run
    with a plain callable is never cached (its code cannot be fingerprinted).
    """

    def __init__(self, dataset, tokenizer, max_length: int = 128, baseline: str | None = None,
                 n_eval: int | None = None, repeats: int = 20, warmup: int = 3, batch_size: int = 32,
                 batch_repeats: int = 3, seed: int = 0, rapl_root: str | Path = RAPL_ROOT, burst: int = 5,
                 cache: bool = False):
        missing = {"text", "label"} - set(dataset.column_names)
        if missing:
            raise ValueError(f"The dataset has columns {dataset.column_names}, not {sorted(missing)}. "
                             "Fix: pass a split of prepare_dataset(), e.g. splits['test'].")
        if len(dataset) == 0 or (n_eval is not None and n_eval < 1):
            raise ValueError(f"{len(dataset)} examples, n_eval={n_eval}: need at least one example to score.")
        if repeats < 1 or batch_repeats < 1 or batch_size < 1 or burst < 1:
            raise ValueError(f"repeats={repeats}, batch_repeats={batch_repeats}, batch_size={batch_size}, "
                             f"burst={burst}: all must be at least 1.")
        self.dataset, self.tokenizer, self.max_length = dataset, tokenizer, max_length
        self.n_eval, self.repeats, self.warmup = n_eval, repeats, warmup
        self.batch_size, self.batch_repeats, self.seed, self.rapl_root = batch_size, batch_repeats, seed, rapl_root
        self.burst, self.cache = burst, cache
        label = dataset.features["label"]
        self.num_labels = getattr(label, "num_classes", None) or int(max(dataset["label"])) + 1
        self.rows: list[BenchResult] = []
        self._baseline = baseline
        self._variants: dict[str, _Variant] = {}
        self._data: dict[int, _BenchInputs] = {}  # per tokenizer (by id): most benchmarks have one
        self._runs = 0

    def __repr__(self) -> str:
        return (f"Benchmark({len(self._variants)} variant(s), {len(self.rows)} measured, baseline={self.baseline!r}, "
                f"max_length={self.max_length}, n_eval={self.n_eval}, repeats={self.repeats})")

    @property
    def baseline(self) -> str | None:
        """The variant the ratios compare against: the one named, else the first added."""
        return self._baseline or next(iter(self._variants), None)

    def add(self, name: str, model, *, size_mb: float | None = None, path: str | Path | None = None,
            config=None, tokenizer=None) -> "Benchmark":
        """Register a variant: a torch model, an ONNX Runtime session (or .onnx path), or a callable.

        A session needs ``path=`` (its file gives size and parameters) or ``size_mb=``; pass the path
        itself rather than your own session, so the session is made with
        ``benchmark_session_options()`` (a session whose threads spin slows the variants timed
        beside it). A callable
        (given a dict of int64 NumPy arrays, returning logits) needs ``size_mb=``. ``config=`` (a
        transformers config) lets a non-torch variant get a FLOP-based energy estimate. A torch
        model is put in eval mode (dropout off), as inference would run it. ``tokenizer=`` gives a
        variant its own tokenizer (a pruned vocabulary): it reads the same texts, encoded its way,
        and is timed on them at the same ``max_length``.
        """
        if name in self._variants:
            raise ValueError(f"A variant named {name!r} was already added. Fix: give this one another name.")
        variant = _make_variant(name, model, size_mb, path, config)
        self._variants[name] = replace(variant, tokenizer=tokenizer) if tokenizer is not None else variant
        return self

    def run(self, refresh: bool = False) -> pd.DataFrame:
        """Measure the variants not measured yet (timing the baseline beside them); returns ``results``.

        With ``cache=True``, a run whose variants, data, settings and machine were all measured
        before is read from the cache (its rows keep their ``measured_at``); ``refresh=True``
        measures it again and replaces the cached rows.
        """
        done = {row.name for row in self.rows}
        new = [v for v in self._variants.values() if v.name not in done]
        if not new:
            return self.results
        self._runs += 1
        base = self._variants.get(self.baseline)
        timed = new if base is None or base.name not in done else [base, *new]
        parts = self._cache_parts(timed, new) if self.cache else None
        if parts is None:
            self.rows.extend(self._measure(timed, new, base))
            return self.results
        def build(folder: Path) -> None:
            rows = [asdict(r) for r in self._measure(timed, new, base)]
            (folder / "rows.json").write_text(json.dumps(rows, indent=1))

        entry = load_or_build("benchmarks", parts, build, rebuild=refresh)
        rows = json.loads((entry / "rows.json").read_text())
        self.rows.extend(replace(BenchResult(**row), run=self._runs) for row in rows)
        return self.results

    def _measure(self, timed: list[_Variant], new: list[_Variant], base: _Variant | None) -> list[BenchResult]:
        quality = {v.name: self._quality(v, self._inputs(v.tokenizer)) for v in new}
        single = self._time(timed, "single", self.repeats, self.warmup)
        full = self._time(timed, "full", self.batch_repeats, 1)
        reference = float(np.percentile(single[base.name][0], 50)) if base is not None else float("nan")
        measured_at = dt.datetime.now().astimezone().isoformat(timespec="seconds")
        return [replace(self._row(v, quality[v.name], single[v.name][0], *full[v.name], reference,
                                  len(self._inputs(v.tokenizer).labels)), measured_at=measured_at) for v in new]

    def _cache_parts(self, timed: list[_Variant], new: list[_Variant]) -> dict | None:
        """Everything that sets this run's numbers; None when a variant cannot be fingerprinted (a callable)."""
        if any(v.fingerprint is None for v in timed):
            return None
        subset = self._inputs(None)  # the evaluation rows: same seed and n_eval, same rows
        data = hashlib.sha256(json.dumps([self.dataset.num_rows, self.n_eval, self.seed,
                                          subset.labels.tolist()]).encode())
        data.update("\x1f".join(self.dataset["text"]).encode())
        tokenizers: dict[int, str] = {}
        for v in timed:
            tok = self.tokenizer if v.tokenizer is None else v.tokenizer
            if id(tok) not in tokenizers:
                tokenizers[id(tok)] = _tokenizer_fingerprint(tok)
        return {
            "method": _BENCH_METHOD, "data": data.hexdigest(),
            "variants": [{"name": v.name, "weights": v.fingerprint(), "new": v in new, "kind": v.kind,
                          "tokenizer": tokenizers[id(self.tokenizer if v.tokenizer is None else v.tokenizer)]}
                         for v in timed],
            "settings": {"max_length": self.max_length, "repeats": self.repeats, "warmup": self.warmup,
                         "batch_size": self.batch_size, "batch_repeats": self.batch_repeats, "burst": self.burst},
            "torch_threads": torch.get_num_threads(), "machine": machine_description(),
            "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                         "onnxruntime": _version("onnxruntime")},
        }

    @property
    def results(self) -> pd.DataFrame:
        """Every row so far, plus size_ratio, speedup and accuracy_delta against the baseline.

        size_ratio = size / baseline size (below 1: smaller). speedup = the baseline's batch-1 p50
        from the same run / this p50 (the baseline row's p50 if it was not timed in that run).
        accuracy_delta is in percentage points.
        """
        table = pd.DataFrame([asdict(r) for r in self.rows], columns=[f.name for f in fields(BenchResult)])
        base = table[table["name"] == self.baseline]
        if base.empty:
            return table.assign(size_ratio=np.nan, speedup=np.nan, accuracy_delta=np.nan)
        b = base.iloc[0]
        return table.assign(
            size_ratio=table["size_mb"] / b["size_mb"],
            speedup=table["baseline_p50_ms"].fillna(b["latency_p50_ms"]) / table["latency_p50_ms"],
            accuracy_delta=(table["accuracy"] - b["accuracy"]) * 100,
        )

    def chart(self):
        """Accuracy vs latency and accuracy vs size, baseline marked (see ``charts.benchmark_chart``)."""
        from minikit.charts import benchmark_chart

        return benchmark_chart(self.results, self.baseline)

    # --- the measurements ---------------------------------------------------------------------

    def _encode(self, tokenizer, texts: list[str], padding: bool | str) -> Batch:
        enc = tokenizer(texts, truncation=True, max_length=self.max_length, padding=padding, return_tensors="np")
        return {k: np.asarray(v, dtype=np.int64) for k, v in enc.items()}

    def _inputs(self, tokenizer=None) -> _BenchInputs:
        tokenizer = self.tokenizer if tokenizer is None else tokenizer
        if id(tokenizer) not in self._data:
            n = len(self.dataset) if self.n_eval is None else min(self.n_eval, len(self.dataset))
            # A random subset: loaders may sort rows by class, and the first n would then be one class.
            rows = np.sort(np.random.default_rng(self.seed).permutation(len(self.dataset))[:n])
            subset = self.dataset.select(rows)
            texts, labels = list(subset["text"]), np.asarray(subset["label"])
            encoded = tokenizer(texts, truncation=True, max_length=self.max_length)["input_ids"]
            lengths = [len(ids) for ids in encoded]
            order = np.argsort(lengths, kind="stable")  # similar lengths share a batch: little padding
            chunks = [order[i:i + self.batch_size] for i in range(0, n, self.batch_size)]
            full = self._encode(tokenizer, [texts[i % n] for i in range(self.batch_size)], padding="max_length")
            self._data[id(tokenizer)] = _BenchInputs(
                batches=[self._encode(tokenizer, [texts[i] for i in chunk], padding=True) for chunk in chunks],
                labels=labels[order], single={k: v[:1] for k, v in full.items()}, full=full,
            )
        return self._data[id(tokenizer)]

    def _quality(self, v: _Variant, data: _BenchInputs) -> tuple[float, float, float]:
        """(accuracy, macro F1, extra peak memory in MB) of one variant."""
        with PeakRSS() as rss:
            v.predict(data.full)  # the first batch forward: one-off allocations (arenas, caches) count
        predictions = np.concatenate([v.predict(batch).argmax(-1) for batch in data.batches])
        return (accuracy(data.labels, predictions), macro_f1(data.labels, predictions, self.num_labels),
                max(rss.peak_mb, 0.0))

    def _time(self, variants: list[_Variant], which: str, repeats: int,
              warmup: int) -> dict[str, tuple[np.ndarray, float | None]]:
        """{name: (milliseconds per call, RAPL joules or None)}; calls alternate A B, B A, A B, …

        ``which`` is "single" (batch 1) or "full" (batch_size): each variant gets those inputs
        encoded by its own tokenizer, with the same shape.

        A few calls per variant per round (``burst``, after one untimed call), so a burst of load
        from another process, or a CPU warming up and throttling, falls on every variant alike
        instead of on one of them, while each variant is timed with its own weights in cache.
        """
        inputs = {v.name: getattr(self._inputs(v.tokenizer), which) for v in variants}
        for v in variants:
            measure_latency(v, inputs[v.name], warmup=warmup, repeats=1)
        times: dict[str, list[np.ndarray]] = {v.name: [] for v in variants}
        joules: dict[str, float | None] = {v.name: 0.0 for v in variants}
        done = 0
        for r in range(-(-repeats // self.burst)):
            calls = min(self.burst, repeats - done)
            done += calls
            for v in variants if r % 2 == 0 else variants[::-1]:
                measure_latency(v, inputs[v.name], warmup=0, repeats=1)  # untimed: back in the caches
                with energy_reading(self.rapl_root) as reading:
                    times[v.name].append(measure_latency(v, inputs[v.name], warmup=0, repeats=calls))
                spent = joules[v.name]
                joules[v.name] = None if spent is None or reading.joules is None else spent + reading.joules
        return {name: (np.concatenate(times[name]), joules[name]) for name in times}

    def _energy(self, v: _Variant, joules: float | None, examples: int) -> tuple[float, str]:
        """Millijoules per example and where the figure comes from."""
        if joules is not None:
            return joules / examples * 1e3, ENERGY_MEASURED
        try:
            flops = forward_flops(v.config, self.max_length) if v.config is not None else None
        except ValueError:  # not a BERT-style config
            flops = None
        if flops is None:
            return float("nan"), ENERGY_UNAVAILABLE
        return estimate_energy_j(flops).joules * 1e3, ENERGY_ESTIMATE

    def _row(self, v: _Variant, quality: tuple[float, float, float], single_ms: np.ndarray, full_ms: np.ndarray,
             joules: float | None, reference_ms: float, n_eval: int) -> BenchResult:
        acc, f1, extra_mb = quality
        params, nonzero = v.params if v.params is not None else (float("nan"), float("nan"))
        energy, source = self._energy(v, joules, len(full_ms) * self.batch_size)
        return BenchResult(
            name=v.name, kind=v.kind, accuracy=acc, macro_f1=f1, n_eval=n_eval,
            params_m=params / 1e6, nonzero_params_m=nonzero / 1e6, size_mb=v.size_mb, size_source=v.size_source,
            seq_len=self.max_length, latency_p50_ms=float(np.percentile(single_ms, 50)),
            latency_p95_ms=float(np.percentile(single_ms, 95)), batch_size=self.batch_size,
            throughput=float(self.batch_size / (np.median(full_ms) / 1e3)), peak_memory_mb=v.size_mb + extra_mb,
            energy_mj_per_example=energy, energy_source=source, run=self._runs, baseline_p50_ms=reference_ms,
        )


# ================================================================================================
# Interpretability: which tokens pushed the logit up or down
# ================================================================================================


def _target_id(model: torch.nn.Module, target: int | str | None, logits: torch.Tensor) -> int:
    if target is None:
        return int(logits.argmax())
    if isinstance(target, str):
        label2id = dict(getattr(model.config, "label2id", {}) or {})
        if target not in label2id:
            raise ValueError(f"target={target!r} is not one of this model's labels {list(label2id)}. "
                             "Fix: pass a label name from that list or a class id.")
        return int(label2id[target])
    if not 0 <= int(target) < len(logits):
        raise ValueError(f"target={target} but the model has {len(logits)} classes. Fix: pick 0…{len(logits) - 1}.")
    return int(target)


def _logit_gradient(model: torch.nn.Module, embeds: torch.Tensor, extra: dict[str, torch.Tensor],
                    target: int) -> torch.Tensor:
    """d logit[target] / d embeddings for a batch of embedded copies of one text, shape (S, T, E)."""
    embeds = embeds.detach().requires_grad_(True)
    batch = {k: v.expand(len(embeds), -1) for k, v in extra.items()}
    with torch.enable_grad():
        logit = model(inputs_embeds=embeds, **batch).logits[:, target].sum()  # copies are independent
        return torch.autograd.grad(logit, embeds)[0]  # autograd.grad leaves the weights' .grad alone


def _word_ids(enc, tokens: list[str]) -> list[int | None]:
    """Word index of each token (None for special tokens); WordPiece's '##' marks where no fast tokenizer."""
    try:
        return list(enc.word_ids(0))
    except (ValueError, AttributeError):
        word, ids = -1, []
        for t in tokens:
            word += not t.startswith("##")
            ids.append(word)
        return ids


def _merge_subwords(table: pd.DataFrame, word_ids: list[int | None], tokenizer) -> pd.DataFrame:
    """One row per word: its pieces' attributions summed; each special token stays a row of its own."""
    starts = [i == 0 or w is None or w != word_ids[i - 1] for i, w in enumerate(word_ids)]
    group = np.cumsum(starts)
    return table.groupby(group, sort=False).agg(
        token=("token", lambda pieces: tokenizer.convert_tokens_to_string(list(pieces))),
        position=("position", "first"), attribution=("attribution", "sum"), special=("special", "first"),
    ).reset_index(drop=True)


def token_attributions(model: torch.nn.Module, tokenizer, text: str, target: int | str | None = None,
                       method: str = "grad_x_input", steps: int = 20, max_length: int = 128,
                       merge_subwords: bool = False) -> pd.DataFrame:
    """How much each token pushed one class's logit: token, position, attribution, normalised, special.

    Taken on the word embeddings (``model.get_input_embeddings()``), summed over their width;
    ``target`` defaults to the predicted class. "grad_x_input" is one backward pass.
    "integrated_gradients" averages gradients along a straight line from a baseline (every
    non-special token replaced by [PAD]) to the text, with the midpoint rule over ``steps``; its
    attributions add up to logit(text) − logit(baseline), and ``df.attrs["delta"]`` says how far
    the sum is from that. Attributions explain a logit, not a probability. ``normalised`` is
    attribution / max |attribution|.
    """
    if method not in {"grad_x_input", "integrated_gradients"}:
        raise ValueError(f"method={method!r}: expected 'grad_x_input' or 'integrated_gradients'.")
    if steps < 1:
        raise ValueError(f"steps={steps}: integrated gradients needs at least 1 step (20–50 is usual).")
    enc = tokenizer(text, truncation=True, max_length=max_length, return_tensors="pt")
    device = next(model.parameters()).device
    ids = enc["input_ids"].to(device)  # (1, T)
    extra = {k: v.to(device) for k, v in enc.items() if k != "input_ids" and k in forward_arguments(model)}
    special = torch.tensor(tokenizer.get_special_tokens_mask(ids[0].tolist(), already_has_special_tokens=True),
                           dtype=torch.bool, device=device)
    was_training = model.training
    model.eval()  # dropout would make attributions random
    try:
        embed = model.get_input_embeddings()
        with torch.no_grad():
            x = embed(ids)  # (1, T, E)
            logits = model(inputs_embeds=x, **extra).logits[0]
        target = _target_id(model, target, logits)
        info = {"target": target, "label": model.config.id2label.get(target, str(target)), "method": method,
                "logit": float(logits[target])}
        if method == "grad_x_input":
            scores = (_logit_gradient(model, x, extra, target) * x).sum(-1)[0]  # (T,)
        else:
            pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
            with torch.no_grad():
                base = embed(torch.where(special, ids[0], pad)[None])  # (1, T, E)
                base_logit = float(model(inputs_embeds=base, **extra).logits[0, target])
            alphas = (torch.arange(steps, device=device) + 0.5) / steps  # midpoints of equal slices of the path
            grads = torch.cat([_logit_gradient(model, base + a[:, None, None] * (x - base), extra, target)
                               for a in alphas.split(16)])  # (steps, T, E), 16 copies per forward pass
            scores = ((x - base) * grads.mean(0, keepdim=True)).sum(-1)[0]
            info.update(baseline_logit=base_logit, delta=float(scores.sum()) - (info["logit"] - base_logit))
    finally:
        model.train(was_training)
    tokens = tokenizer.convert_ids_to_tokens(ids[0].tolist())
    table = pd.DataFrame({"token": tokens, "position": range(len(tokens)),
                          "attribution": scores.detach().cpu().double().numpy(), "special": special.cpu().numpy()})
    if merge_subwords:
        table = _merge_subwords(table, _word_ids(enc, tokens), tokenizer)
    peak = table["attribution"].abs().max()
    table.insert(3, "normalised", table["attribution"] / peak if peak > 0 else 0.0)
    table.attrs.update(info)
    return table
