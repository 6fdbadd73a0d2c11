"""Chapter 4 — efficiency: parameters, size on disk, latency, throughput, memory, energy; the size-class claims.

Latency is measured the way a learner would time a call: warm-up runs first (allocator and
thread-pool start-up are not the model's cost), then repeats, then percentiles. Energy is read
from RAPL where the machine allows it, otherwise estimated from FLOPs.
"""

from __future__ import annotations

import contextlib
import gc
import re
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Sequence

import numpy as np
import torch
import transformers

from minikit import claims
from minikit.claims import size_class_of
from minikit.models import CATALOG, build_model, dummy_inputs, get_card
from minikit.settings import quiet_transformers
from minikit.system import PeakRSS, machine_description
from minikit.table_checks import fit_exponent, profile_problems
from minikit.timing import SuspectTimingWarning, cached_timing, measure_quietly

if TYPE_CHECKING:
    import pandas as pd
    from transformers import PreTrainedModel


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


def _is_linear(module: torch.nn.Module) -> bool:
    return isinstance(module, torch.nn.Linear) or type(module).__name__ == "Linear"  # torch's dynamic int8 Linear too


def time_by_kind(model: torch.nn.Module, inputs: dict[str, torch.Tensor], warmup: int = 2,
                 repeats: int = 5) -> dict[str, float]:
    """Milliseconds per forward pass in the Linear layers, in attention, and in everything else (median of repeats).

    Linear: the weight matrix multiplies with their bias add. Attention: what the self-attention
    modules (those with an ``attention_head_size``) spend besides their own Linear layers: scores,
    softmax, the weighted sum, which have no weights. Other: the rest of the pass (embeddings,
    LayerNorm, GELU, residual adds, dtype conversions, Python). Timed with forward hooks, so each
    Linear layer's time includes a few microseconds of hook overhead.
    """
    attentions = [m for m in model.modules() if isinstance(getattr(m, "attention_head_size", None), int)]
    inside = {id(m) for a in attentions for m in a.modules() if _is_linear(m)}
    kinds = {id(m): "linear" for m in model.modules() if _is_linear(m)} | {id(m): "attention" for m in attentions}
    started: dict[int, float] = {}
    spent = {"linear": 0.0, "attention": 0.0}

    def before(module, *_):
        started[id(module)] = time.perf_counter()

    def after(module, *_):
        seconds = time.perf_counter() - started[id(module)]
        spent[kinds[id(module)]] += seconds
        if id(module) in inside:
            spent["attention"] -= seconds  # the attention module's own Q, K, V projections count as Linear

    modules = [m for m in model.modules() if id(m) in kinds]
    hooks = [h for m in modules for h in (m.register_forward_pre_hook(before), m.register_forward_hook(after))]
    rows = []
    try:
        with torch.inference_mode():
            for i in range(warmup + repeats):
                spent.update(linear=0.0, attention=0.0)
                start = time.perf_counter()
                model(**inputs)
                total = time.perf_counter() - start
                if i >= warmup:
                    rows.append((spent["linear"], spent["attention"], total - spent["linear"] - spent["attention"]))
    finally:
        for h in hooks:
            h.remove()
    linear, attention, other = (1e3 * float(np.median(column)) for column in zip(*rows))
    return {"linear_ms": linear, "attention_ms": attention, "other_ms": other}


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
# Bump when profile_model or compare_models measure differently: tables taken the old way are then
# measured again instead of being shown beside new ones as if comparable.
_PROFILES_METHOD = 2  # 2: cached only when measured on a quiet machine, and only for this boot (timing.py)
_ARCHITECTURE_FIELDS = ("family", "layers", "hidden", "heads", "ffn", "vocab")


def _profiles_table(rows: list[dict[str, Any]], measured_at: str, load_warning: str) -> pd.DataFrame:
    """The rows as a table: ModelProfile's columns in order, then ``measured_at`` and ``load_warning``."""
    import pandas as pd
    table = pd.DataFrame(rows, columns=[f.name for f in fields(ModelProfile)])
    return table.assign(measured_at=measured_at, load_warning=load_warning)


def compare_models(names: Iterable[str] | None = None, seq_len: int = 128, batch_size: int = 32,
                   repeats: int = 10, batch_repeats: int = 2, seed: int = 0, refresh: bool = False) -> pd.DataFrame:
    """Profile catalog architectures with random weights, one at a time; one row per model.

    Random weights cost exactly what trained ones do, so size and speed are real; accuracy is not.

    Measuring every model takes a minute or two, so the table is measured once and then read from
    the cache (kind ``"profiles"``); the ``measured_at`` column says when its numbers were taken.
    A table measured while the machine was loaded is measured once more; still loaded, it is shown
    with the reason in ``load_warning`` and not cached. A cached table lasts this boot of this
    machine, or longer where the calibration probe re-validates it (``timing.cached_timing``).
    The cache key holds everything that changes them: the names and their architectures, every
    argument, torch's thread count, the torch and transformers versions and this machine
    (``machine_description()``). ``refresh=True`` measures again and replaces the cached table.
    """
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

    def rows() -> list[dict[str, Any]]:
        measured = []
        for name in names:
            model = build_model(name, num_labels=5, seed=seed)
            measured.append(asdict(profile_model(model, name, seq_len, batch_size, repeats, batch_repeats)))
            del model
            gc.collect()
        return measured

    def measure() -> tuple[list[dict[str, Any]], str]:
        measured, check = measure_quietly(rows)
        return measured, check.warning

    # JSON keeps every float exactly (shortest repr), so the cached table equals the measured one.
    timing = cached_timing(PROFILES_KIND, parts, measure, refresh=refresh)
    table = _profiles_table(timing.payload, timing.measured_at, timing.load_warning)
    for problem in profile_problems(table, "compare_models"):  # said where the table is shown, not only in tests
        warnings.warn(problem, SuspectTimingWarning, stacklevel=2)
    return table


def size_class_table(profiles: pd.DataFrame) -> pd.DataFrame:
    """Set the source's size-class latency claims beside this machine's batch-1 measurements.

    "≈ X ms" counts as holding when the measured median is within a factor of 2 of X. The 500 M+
    class is too big for a 2 GB notebook, so its figure is extrapolated from a log-log fit over
    the measured models and labelled as such. A fit whose exponent is not positive (bigger models
    measured faster: timings taken under load) is flagged in the ``how`` column and with a
    ``SuspectTimingWarning``, and its extrapolation does not count as holding.
    """
    import pandas as pd

    measured = profiles.assign(size_class=[size_class_of(p) for p in profiles["params_m"]])
    slope = fit_exponent(profiles["params_m"], profiles["latency_p50_ms"])
    intercept = float(np.mean(np.log(profiles["latency_p50_ms"]) - slope * np.log(profiles["params_m"])))
    rising = slope > 0
    if not rising:
        warnings.warn(f"The size-class fit says latency ∝ params^{slope:.2f}: bigger models measured faster, "
                      "which no arithmetic explains. The timings are suspect (a busy machine?): measure again on a "
                      "quiet machine with compare_models(refresh=True).", SuspectTimingWarning, stacklevel=2)
    rows = []
    for claim in claims.SIZE_CLASSES.itertuples():
        members = measured[measured["size_class"] == claim.size_class]
        if len(members):
            ms, how = float(members["latency_p50_ms"].median()), "measured: " + ", ".join(members["name"])
        else:
            ms = float(np.exp(intercept + slope * np.log(claim.params_lo_m)))
            how = f"{'' if rising else '⚠ suspect '}fit: ∝ params^{slope:.2f}, extrapolated to {claim.params_lo_m:.0f} M"
        if not len(members) and not rising:
            holds = False  # an extrapolation along a falling fit tells nothing
        elif claim.claim.startswith(">"):
            holds = ms > claim.claimed_ms
        else:
            holds = claim.claimed_ms / 2 <= ms <= claim.claimed_ms * 2
        rows.append({"size class": claim.size_class, "claim": claim.claim, "this machine (ms)": round(ms, 1),
                     "how": how, "holds here": bool(holds)})
    return pd.DataFrame(rows)


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
# Depth at batch 1: what two measured rows show, read from the rows, never assumed
# ================================================================================================


def depth_at_batch_1(profiles: pd.DataFrame, a: str, b: str) -> str:
    """One sentence on what rows ``a`` and ``b`` of ``profiles`` (``compare_models``) show about depth at batch 1.

    The faster model is the one with the lower p50. When the gap is within the timings' own spread
    (p95 − p50 of either row) the rows cannot tell, and the sentence says so; otherwise it says whether
    the deeper model (layers from a ``layers`` column, else the catalog) was the slower one or not.
    """
    rows = profiles.set_index("name")
    p50 = rows["latency_p50_ms"]
    p95 = rows["latency_p95_ms"] if "latency_p95_ms" in rows else p50
    faster, slower = sorted((a, b), key=lambda n: p50[n])
    gap = p50[slower] - p50[faster]
    if gap <= max(p95[n] - p50[n] for n in (a, b)):
        return (f"The gap ({gap:.1f} ms) is within the spread of the timings (p95 − p50): these rows cannot tell "
                "which model is faster. Measure again on a quiet machine.")
    depth = {n: int(rows.loc[n, "layers"]) if "layers" in rows else CATALOG[n].layers if n in CATALOG else None
             for n in (a, b)}
    if None in depth.values() or depth[a] == depth[b]:
        return f"{faster} is {p50[slower] / p50[faster]:.1f}× faster here."
    deep, shallow = sorted((a, b), key=depth.get, reverse=True)
    layers = f"{depth[deep]} layers against {depth[shallow]}"
    if faster == shallow:
        return (f"The deeper model ({deep}, {layers}) is the slower one here: at batch 1 its layers run one after "
                "another, and that depth costs time the parameter count does not show.")
    return (f"Here the deeper model ({deep}, {layers}) was the faster one: on this machine its depth cost less "
            "time than the wider layers of the other, so the layer count alone does not predict latency.")
