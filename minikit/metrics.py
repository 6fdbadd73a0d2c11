"""Chapter 4 — metrics. Efficiency first: parameters, size on disk, latency, throughput, memory.

Latency is measured the way a learner would time a call: warm-up runs first (allocator and
thread-pool start-up are not the model's cost), then repeats, then percentiles.
"""

from __future__ import annotations

import gc
import os
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd
import psutil
import torch
from transformers import PreTrainedModel

from minikit.settings import quiet_transformers


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


def dummy_inputs(model: PreTrainedModel, batch_size: int, seq_len: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random token ids of full length (no padding): the worst case a max_length budget allows."""
    if batch_size < 1 or seq_len < 2:
        raise ValueError(f"batch_size={batch_size}, seq_len={seq_len}: need batch_size ≥ 1 and seq_len ≥ 2.")
    max_positions = getattr(model.config, "max_position_embeddings", 512)
    if seq_len > max_positions:
        raise ValueError(f"seq_len={seq_len} exceeds this model's {max_positions} positions.")
    generator = torch.Generator().manual_seed(seed)
    low = min(1000, model.config.vocab_size // 2)  # skip the special tokens at the start of BERT vocabularies
    ids = torch.randint(low, model.config.vocab_size, (batch_size, seq_len), generator=generator)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


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


def _release_freed_memory() -> None:
    """Hand freed heap pages back to the OS so the next RSS reading starts from what is in use."""
    gc.collect()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)  # glibc only; elsewhere the figure is an upper bound
    except (OSError, AttributeError):
        pass


class _PeakRSS:
    """Samples this process's resident memory in a background thread; ``peak_mb`` is above the start."""

    def __init__(self, interval_s: float = 0.002):
        self.interval_s = interval_s
        self._process = psutil.Process(os.getpid())
        self._stop = threading.Event()

    def __enter__(self) -> "_PeakRSS":
        _release_freed_memory()
        self.start = self.peak = self._process.memory_info().rss
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._process.memory_info().rss)
            time.sleep(self.interval_s)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._process.memory_info().rss)

    @property
    def peak_mb(self) -> float:
        return (self.peak - self.start) / 1e6


def profile_model(model: PreTrainedModel, name: str = "model", seq_len: int = 128, batch_size: int = 32,
                  repeats: int = 10, batch_repeats: int = 2) -> ModelProfile:
    """Measure one model: size, batch-1 latency p50/p95, throughput at ``batch_size``, peak memory."""
    model.eval()
    single = measure_latency(model, dummy_inputs(model, 1, seq_len), warmup=2, repeats=repeats)
    batch_inputs = dummy_inputs(model, batch_size, seq_len)
    with _PeakRSS() as rss:
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


def compare_models(names: Iterable[str] | None = None, seq_len: int = 128, batch_size: int = 32,
                   repeats: int = 10, batch_repeats: int = 2, seed: int = 0) -> pd.DataFrame:
    """Profile catalog architectures with random weights, one at a time; one row per model.

    Random weights cost exactly what trained ones do, so size and speed are real; accuracy is not.
    """
    from minikit.models import CATALOG, build_model

    rows = []
    for name in list(names) if names is not None else list(CATALOG):
        model = build_model(name, num_labels=5, seed=seed)
        rows.append(asdict(profile_model(model, name, seq_len, batch_size, repeats, batch_repeats)))
        del model
        gc.collect()
    return pd.DataFrame(rows)


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
