"""Chapter 4 — the Benchmark: several variants of one model measured side by side in one run.

Quality and efficiency of each variant on the same texts, with the same threads, in one process,
so the ratios between rows are the course's performance figures. Drawn by ``charts.benchmark_chart``.
"""

from __future__ import annotations

import datetime as dt
import json
import tempfile
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import torch
import transformers

from minikit.budget import NoVariantFitsError, Pick, pick_variant  # noqa: F401  (re-exported: chapter 10 calls benchmark.pick_variant)
from minikit.cache import file_sha256, load_or_build, model_sha256, texts_sha256, tokenizer_sha256
from minikit.metrics import accuracy, macro_f1
from minikit.models import forward_arguments
from minikit.profiling import (
    ENERGY_ESTIMATE,
    ENERGY_MEASURED,
    ENERGY_UNAVAILABLE,
    RAPL_ROOT,
    count_parameters,
    energy_reading,
    estimate_energy_j,
    forward_flops,
    measure_latency,
    size_on_disk_mb,
)
from minikit.stats import paired_comparison, wilson_interval
from minikit.system import PeakRSS, cpu_identity, machine_description
from minikit.timing import cached_timing, measure_quietly

if TYPE_CHECKING:
    import pandas as pd


def _bits(correct: str) -> np.ndarray:  # a row's "1"/"0" string as booleans
    return np.frombuffer(correct.encode(), dtype=np.uint8) == ord("1")


# Benchmark: several variants of one model, measured side by side in one run

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
    load_warning: str = ""  # why the machine was not quiet while this row was timed ("" when it was; never cached)
    correct: str = ""  # "1"/"0" per evaluation example (right/wrong), for paired tests; read by Benchmark.correct


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

    By default ONNX Runtime's idle worker threads keep spinning for a while after each run, to answer the next run
    sooner. Timed in alternation with a PyTorch model, that spinning takes the cores the PyTorch call needs:
    measured on 2 cores, it doubled MiniLM-L6's float32 batch-1 latency (16 → 35 ms) and so inflated every ONNX
    Runtime speedup. A session made here waits instead, as the served model's does (``server.load_served_model``,
    one rule for both: ``python bench/onnx_session.py`` measures the two settings' latency and CPU per request).
    ``threads`` sets the intra-op threads (default: ONNX Runtime's, one per core).
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
    from transformers import PreTrainedModel

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
                        fingerprint=lambda: model_sha256(model))
    if hasattr(model, "get_inputs") and hasattr(model, "run"):  # an onnxruntime.InferenceSession
        if size_mb is None and path is None:
            raise ValueError(f"Variant {name!r} is an ONNX Runtime session, which does not know its file. "
                             "Fix: bench.add(name, session, path='model.onnx') or size_mb=...")
        size, how = (size_mb, "given") if size_mb is not None else (Path(path).stat().st_size / 1e6, ".onnx file")
        params = _onnx_parameter_counts(path) if path is not None else None
        fingerprint = (lambda: file_sha256(Path(path))) if path is not None else None
        return _Variant(name, "onnxruntime", _onnx_predict(model), size, how, params, config, fingerprint=fingerprint)
    if callable(model):
        if size_mb is None:
            raise ValueError(f"Variant {name!r} is a plain callable, whose size cannot be measured. "
                             "Fix: bench.add(name, fn, size_mb=...) with the size of what you would ship.")
        return _Variant(name, "callable", lambda batch: _logits_array(model(batch)), size_mb, "given", None, config)
    raise TypeError(f"Variant {name!r} is a {type(model).__name__}. Expected a torch model, an onnxruntime "
                    "InferenceSession, a path to a .onnx file, or a callable(batch dict) -> logits.")


# Bump when the Benchmark measures differently: cached runs taken the old way are then measured again.
_BENCH_METHOD = 3  # 2: rows keep which examples each variant got right; 3: cached only when quiet, stamped (timing.py)


def _version(package: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _versions() -> dict[str, str]:
    return {"torch": torch.__version__, "transformers": transformers.__version__,
            "onnxruntime": _version("onnxruntime")}


@dataclass(frozen=True)
class _BenchInputs:
    batches: list[Batch]  # the evaluation examples, sorted by length, each batch padded to its longest
    labels: np.ndarray  # true labels in the same (sorted) order
    order: np.ndarray  # order[i]: the evaluation row of sorted position i
    single: Batch  # 1 × max_length: latency
    full: Batch  # batch_size × max_length: throughput, memory, energy


class Benchmark:
    """Measure several variants of one model side by side: quality, size, speed, memory, energy.

    All variants see the same inputs: accuracy on the same examples (batched by length), timing on real texts
    padded or truncated to exactly ``max_length`` tokens, so every variant sees identical shapes. Timing
    alternates variants in rounds (A B, then B A, …) so that drift of the machine hits all alike; in each round
    a variant runs ``burst`` timed calls back to back after one untimed call, as a served model does (called one
    at a time in turn, a small model would always start with the other model's weights in the CPU caches, which
    it never does in service). ``run()`` again measures only the variants added since, and times the baseline
    again beside them: a row's speedup uses the baseline timed in its run.

    ``cache=True`` keeps each run's rows in the cache, keyed by everything that sets them (each variant's
    weights or .onnx file, its tokenizer, the data, every setting, torch's threads, the versions and this
    machine): the same run again is read back (``measured_at`` says when it was measured) instead of taking its
    seconds again; ``run(refresh=True)`` measures anew. A run timed while the machine was loaded (``timing.py``)
    is timed again once; still loaded, its rows say why in ``load_warning`` and it is not cached. Cached rows
    expire with this boot of this machine unless the calibration probe re-validates them. A run with a plain callable is never cached (its code
    cannot be fingerprinted).
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

        A session needs ``path=`` (its file gives size and parameters) or ``size_mb=``; pass the path itself rather
        than your own session, so the session is made with ``benchmark_session_options()`` (a session whose threads
        spin slows the variants timed beside it). A callable (given a dict of int64 NumPy arrays, returning logits)
        needs ``size_mb=``. ``config=`` (a transformers config) lets a non-torch variant get a FLOP-based energy
        estimate. A torch model is put in eval mode (dropout off), as inference would run it. ``tokenizer=`` gives a
        variant its own tokenizer (a pruned vocabulary): it reads the same texts, encoded its way, and is timed on
        them at the same ``max_length``.
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
        def measure() -> tuple[list[dict], str]:
            rows = self._measure(timed, new, base)
            return [asdict(r) for r in rows], rows[0].load_warning

        timing = cached_timing("benchmarks", parts, measure, refresh=refresh)  # a loaded run is not cached
        self.rows.extend(replace(BenchResult(**row), run=self._runs) for row in timing.payload)
        return self.results

    def score(self) -> pd.DataFrame:
        """Accuracy of every variant added, without timing anything: name, accuracy, macro_f1, n_eval.

        With ``cache=True`` each variant's scores (and which examples it got right) are kept in the
        cache (kind ``bench-quality``, keyed like a run's rows without the timing settings and the core
        count: ``system.cpu_identity``) and never expire: they do not depend on the machine's load.
        ``run()`` reads them back, so ``minikit build`` scores a chapter's variants ahead and the
        notebook's run only times them. Memory is not kept: ``run()`` measures each variant's peak in
        its own process, with one batch.
        """
        import pandas as pd

        rows = []
        for v in self._variants.values():
            acc, f1, _, _ = self._scored(v)
            rows.append({"name": v.name, "accuracy": acc, "macro_f1": f1,
                         "n_eval": len(self._inputs(v.tokenizer).labels)})
        return pd.DataFrame(rows, columns=["name", "accuracy", "macro_f1", "n_eval"])

    def _scored(self, v: _Variant) -> tuple[float, float, float, str]:
        """``_quality`` of ``v``: with ``cache=True`` and a fingerprint, its scores from the cache, its memory now."""
        if not self.cache or v.fingerprint is None:
            return self._quality(v, self._inputs(v.tokenizer))
        tok = self.tokenizer if v.tokenizer is None else v.tokenizer
        parts = {"method": _BENCH_METHOD, "data": self._data_parts(), "weights": v.fingerprint(), "kind": v.kind,
                 "tokenizer": tokenizer_sha256(tok), "max_length": self.max_length, "batch_size": self.batch_size,
                 "cpu": cpu_identity(), "versions": _versions()}

        def build(folder: Path) -> None:
            acc, f1, _, correct = self._quality(v, self._inputs(v.tokenizer))
            (folder / "quality.json").write_text(json.dumps([acc, f1, correct]))

        stored = json.loads((load_or_build("bench-quality", parts, build) / "quality.json").read_text())
        with PeakRSS() as rss:  # this process's memory for one batch: the build's process is not this one
            v.predict(self._inputs(v.tokenizer).full)
        return float(stored[0]), float(stored[1]), max(rss.peak_mb, 0.0), str(stored[-1])

    def _data_parts(self) -> dict:
        subset = self._inputs(None)  # the evaluation rows: same seed and n_eval, same rows
        return {"rows": self.dataset.num_rows, "n_eval": self.n_eval, "seed": self.seed,
                "labels": texts_sha256(subset.labels.tolist()), "texts": texts_sha256(self.dataset["text"])}

    def _measure(self, timed: list[_Variant], new: list[_Variant], base: _Variant | None) -> list[BenchResult]:
        quality = {v.name: self._scored(v) for v in new}
        def timings() -> tuple[dict, dict]:
            return self._time(timed, "single", self.repeats, self.warmup), self._time(timed, "full", self.batch_repeats, 1)

        # Timed again (a bounded number of times) while the machine was loaded; still loaded, the rows say so.
        (single, full), check = measure_quietly(timings, round_ms=lambda t: self._round_drift(t[0]))
        reference = float(np.percentile(single[base.name][0], 50)) if base is not None else float("nan")
        measured_at = dt.datetime.now().astimezone().isoformat(timespec="seconds")
        return [replace(self._row(v, quality[v.name], single[v.name][0], *full[v.name], reference,
                                  len(self._inputs(v.tokenizer).labels)), measured_at=measured_at,
                        load_warning=check.warning) for v in new]

    def _round_drift(self, single: dict[str, tuple[np.ndarray, Any]]) -> list[float]:
        """Each variant's median per round (``burst`` calls) over its overall median: how the machine drifted."""
        return [float(np.median(ms[i:i + self.burst]) / np.median(ms))
                for ms, _ in single.values() for i in range(0, len(ms), self.burst)]

    def _cache_parts(self, timed: list[_Variant], new: list[_Variant]) -> dict | None:
        """Everything that sets this run's numbers; None when a variant cannot be fingerprinted (a callable)."""
        if any(v.fingerprint is None for v in timed):
            return None
        data = self._data_parts()
        tokenizers: dict[int, str] = {}
        for v in timed:
            tok = self.tokenizer if v.tokenizer is None else v.tokenizer
            if id(tok) not in tokenizers:
                tokenizers[id(tok)] = tokenizer_sha256(tok)
        return {
            "method": _BENCH_METHOD, "data": data,
            "variants": [{"name": v.name, "weights": v.fingerprint(), "new": v in new, "kind": v.kind,
                          "tokenizer": tokenizers[id(self.tokenizer if v.tokenizer is None else v.tokenizer)]}
                         for v in timed],
            "settings": {"max_length": self.max_length, "repeats": self.repeats, "warmup": self.warmup,
                         "batch_size": self.batch_size, "batch_repeats": self.batch_repeats, "burst": self.burst},
            "torch_threads": torch.get_num_threads(), "machine": machine_description(),
            "versions": _versions(),
        }

    def correct(self, name: str) -> np.ndarray:
        """Which evaluation examples variant ``name`` got right (booleans, in the evaluation rows' order)."""
        row = next((r for r in reversed(self.rows) if r.name == name), None)
        if row is None:
            raise ValueError(f"No measured variant named {name!r}. Measured: {[r.name for r in self.rows]}. "
                             "Fix: add it and run().")
        return _bits(row.correct)

    @property
    def results(self) -> pd.DataFrame:
        """Every row so far, with its accuracy's 95 % interval, and against the baseline its ratios and paired test.

        accuracy_low / accuracy_high: the Wilson interval of ``accuracy`` on its ``n_eval`` examples. size_ratio =
        size / baseline size (below 1: smaller). speedup = the baseline's batch-1 p50 from the same run / this p50
        (the baseline row's p50 if it was not timed in that run). accuracy_delta is in percentage points; delta_low
        / delta_high are its 95 % interval from the paired comparison on the same examples
        (``stats.paired_comparison``), p_value McNemar's exact test, and change "better", "worse" or "cannot tell (n
        = …)".
        """
        import pandas as pd
        table = pd.DataFrame([asdict(r) for r in self.rows], columns=[f.name for f in fields(BenchResult)])
        correct = table.pop("correct")
        intervals = np.array([wilson_interval(round(a * n), n) for a, n in zip(table["accuracy"], table["n_eval"])])
        table.insert(3, "accuracy_low", intervals[:, 0] if len(table) else [])
        table.insert(4, "accuracy_high", intervals[:, 1] if len(table) else [])
        base = table[table["name"] == self.baseline]
        b = base.iloc[0] if not base.empty else pd.Series(np.nan, index=table.columns)
        base_bits = correct[base.index[0]] if not base.empty else ""
        paired = [paired_comparison(_bits(c), _bits(base_bits)) if c and len(c) == len(base_bits) and i != base.index[0]
                  else None for i, c in zip(table.index, correct)]  # None: the baseline, or not its examples
        return table.assign(
            size_ratio=table["size_mb"] / b["size_mb"],
            speedup=table["baseline_p50_ms"].fillna(b["latency_p50_ms"]) / table["latency_p50_ms"],
            accuracy_delta=(table["accuracy"] - b["accuracy"]) * 100,
            delta_low=[p.low if p else np.nan for p in paired], delta_high=[p.high if p else np.nan for p in paired],
            p_value=[p.p_value if p else np.nan for p in paired],
            change=["baseline" if n == self.baseline else p.change if p else "" for n, p in zip(table["name"], paired)])

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
                labels=labels[order], order=order, single={k: v[:1] for k, v in full.items()}, full=full,
            )
        return self._data[id(tokenizer)]

    def _quality(self, v: _Variant, data: _BenchInputs) -> tuple[float, float, float, str]:
        """(accuracy, macro F1, extra peak memory in MB, right/wrong per example in row order) of one variant."""
        with PeakRSS() as rss:
            v.predict(data.full)  # the first batch forward: one-off allocations (arenas, caches) count
        predictions = np.concatenate([v.predict(batch).argmax(-1) for batch in data.batches])
        right = np.empty(len(predictions), dtype=np.uint8)
        right[data.order] = predictions == data.labels  # in row order: another tokenizer sorts the rows otherwise
        return (accuracy(data.labels, predictions), macro_f1(data.labels, predictions, self.num_labels),
                max(rss.peak_mb, 0.0), (right + ord("0")).tobytes().decode())

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

    def _row(self, v: _Variant, quality: tuple[float, float, float, str], single_ms: np.ndarray, full_ms: np.ndarray,
             joules: float | None, reference_ms: float, n_eval: int) -> BenchResult:
        acc, f1, extra_mb, correct = quality
        params, nonzero = v.params if v.params is not None else (float("nan"), float("nan"))
        energy, source = self._energy(v, joules, len(full_ms) * self.batch_size)
        return BenchResult(
            name=v.name, kind=v.kind, accuracy=acc, macro_f1=f1, n_eval=n_eval,
            params_m=params / 1e6, nonzero_params_m=nonzero / 1e6, size_mb=v.size_mb, size_source=v.size_source,
            seq_len=self.max_length, latency_p50_ms=float(np.percentile(single_ms, 50)),
            latency_p95_ms=float(np.percentile(single_ms, 95)), batch_size=self.batch_size,
            throughput=float(self.batch_size / (np.median(full_ms) / 1e3)), peak_memory_mb=v.size_mb + extra_mb,
            energy_mj_per_example=energy, energy_source=source, run=self._runs, baseline_p50_ms=reference_ms,
            correct=correct,
        )


__all__ = ["BenchResult", "Benchmark", "NoVariantFitsError", "Pick", "benchmark_session_options", "pick_variant"]
