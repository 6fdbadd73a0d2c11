"""Static int8 in ONNX Runtime: activations' scales fixed in advance from calibration texts (QDQ format).

``quantization.quantize_onnx`` makes the *dynamic* int8 copy: weights int8, each activation's scale
found at run time, batch by batch. Static int8 runs the float model once over a few of the task's
training texts (the calibration set), records each activation's range, and writes those scales
into the graph as QuantizeLinear → DequantizeLinear pairs (QDQ) around the operators it quantizes.
No range is computed at run time, but a range that the calibration texts did not cover is clipped.

Some operators must stay in float: LayerNorm divides by a variance that int8 rounds badly, and
Softmax/GELU squeeze a wide range into a narrow one (Optimum's DistilBERT NER benchmark fell from
F1 0.94 to 0.10 with them quantized). ``FLOAT_OP_TYPES`` lists them; ``keep_float=()`` quantizes
them too, to see why (``bench/int8_static_vs_dynamic.py`` measures both).
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from transformers import PreTrainedModel

from minikit import cache
from minikit.errors import DataError, OnnxMismatchError
from minikit.models import encoder_layers
from minikit.quantization import INT8_TOLERANCE, check_onnx, export_onnx, quiet_onnx_quantization_logs
from minikit.stats import scored
from minikit.system import cpu_identity, release_freed_memory

# Kept in float by default, unfused and fused (onnxruntime.transformers.optimizer) names alike.
FLOAT_OP_TYPES = ("LayerNormalization", "SkipLayerNormalization", "EmbedLayerNormalization", "Softmax", "Erf",
                  "Gelu", "BiasGelu", "FastGelu")
# Activations uint8, weights int8 (U8S8): the pairing x86 CPUs' int8 kernels are built for. On the student,
# 2 threads, under load, int8 activations (S8S8) ran 0.7–0.8× the speed of the float file, uint8 ones 1.0–1.5×.
CALIBRATION_SIZE = 128  # training texts read for the ranges: enough for MinMax on 5-class BBC News
_INPUTS = ("input_ids", "attention_mask")


def _known_op_types() -> set[str]:
    """Every operator type ONNX defines or ONNX Runtime has a kernel for (contrib ops such as BiasGelu too)."""
    import onnx
    from onnxruntime.capi import _pybind_state

    kernels = {k.op_name for k in _pybind_state.get_all_opkernel_def()}
    return kernels | {schema.name for schema in onnx.defs.get_all_schemas()}


def _check_keep_float(keep_float: Sequence[str]) -> tuple[str, ...]:
    if isinstance(keep_float, str):
        raise TypeError(f"keep_float={keep_float!r}: expected a list of ONNX operator types, e.g. "
                        f"[{keep_float!r}] or FLOAT_OP_TYPES.")
    unknown = [t for t in keep_float if t not in _known_op_types()]
    if unknown:
        raise ValueError(f"keep_float names {unknown}, which are not ONNX or ONNX Runtime operator types (they are "
                         "case-sensitive, e.g. 'LayerNormalization', 'Softmax', 'Erf'). Fix: use names from "
                         f"FLOAT_OP_TYPES {list(FLOAT_OP_TYPES)} or from the graph "
                         "(onnx.load(path).graph.node[i].op_type).")
    return tuple(keep_float)


def _model_labels(model: PreTrainedModel) -> list[str] | None:
    names = getattr(model.config, "id2label", None) or {}
    labels = [str(names.get(i, "")) for i in range(model.config.num_labels)]
    return None if all(n == f"LABEL_{i}" or not n for i, n in enumerate(labels)) else labels  # default names: unknown


def calibration_texts(calibration, model: PreTrainedModel, n: int | None = CALIBRATION_SIZE) -> list[str]:
    """The texts to calibrate on, checked: a list of strings, or a split (``splits["train"]``) of the model's task.

    Refused with the fix: an empty set, items that are not text, a whole DatasetDict, the test split,
    and a split whose label names are not the model's (``config.id2label``): another task's texts
    give another task's ranges. ``n`` keeps the first n texts (None: all).
    """
    import datasets

    if isinstance(calibration, datasets.DatasetDict):
        raise DataError(f"The calibration set is a DatasetDict with splits {list(calibration)}: pass one split of "
                        "training texts. Fix: calibration=splits['train'] (never 'test', which must stay unseen).")
    if isinstance(calibration, datasets.Dataset):
        if "text" not in calibration.column_names:
            raise DataError(f"The calibration split has columns {calibration.column_names}, no 'text'. Fix: pass a "
                            "split of prepare_dataset(), e.g. splits['train'], or a list of strings.")
        if str(calibration.split or "") == "test":
            raise DataError("The calibration set is the test split: its texts would leak into the model's scales. "
                            "Fix: calibrate on splits['train'].")
        feature = calibration.features.get("label")
        names, expected = list(getattr(feature, "names", None) or []), _model_labels(model)
        if names and (names != expected if expected else len(names) != model.config.num_labels):
            raise DataError(f"The calibration set is of another task: its labels are {names}, the model's "
                            f"{expected or f'{model.config.num_labels} classes'}. Fix: calibrate on the training "
                            "texts of the task the model was fine-tuned on (that task's splits['train']).")
        calibration = calibration["text"][:n] if n else calibration["text"]
    if isinstance(calibration, (str, bytes)) or not hasattr(calibration, "__iter__"):
        raise DataError(f"The calibration set is a {type(calibration).__name__}, not a list of texts. Fix: pass "
                        "splits['train'] or a list of training texts, e.g. splits['train']['text'][:128].")
    texts = list(calibration)[:n] if n else list(calibration)
    if not texts:
        raise DataError("The calibration set is empty: static int8 needs texts to measure each activation's range. "
                        f"Fix: pass splits['train'] (the first {CALIBRATION_SIZE} texts are used), or use "
                        "quantize_onnx (dynamic int8), which needs none.")
    bad = [(i, type(t).__name__) for i, t in enumerate(texts) if not isinstance(t, str) or not t.strip()]
    if bad:
        raise DataError(f"{len(bad)} of the {len(texts)} calibration items are not texts (first: item {bad[0][0]}, "
                        f"a {bad[0][1]}{' that is blank' if bad[0][1] == 'str' else ''}). Fix: pass the texts "
                        "themselves, e.g. splits['train']['text'][:128], not labels, ids or missing values.")
    return texts


class _TextReader:
    """onnxruntime's CalibrationDataReader over tokenized texts, one text per batch (no padding in the ranges)."""

    def __init__(self, tokenizer, texts: list[str], max_length: int, names: list[str]):
        self.tokenizer, self.texts, self.max_length, self.names = tokenizer, texts, max_length, names
        self.position = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.position >= len(self.texts):
            return None
        encoded = self.tokenizer(self.texts[self.position], truncation=True, max_length=self.max_length,
                                 return_tensors="np")
        self.position += 1
        return {k: np.asarray(encoded[k], dtype=np.int64) for k in self.names}

    def rewind(self) -> None:
        self.position = 0


def float_kept_nodes(path: str | Path, keep_float: Sequence[str] = FLOAT_OP_TYPES) -> dict[str, int]:
    """{op type: nodes of it in the graph whose inputs all stay float} for the op types in ``keep_float``.

    A node counts as kept in float when no input comes out of a DequantizeLinear (so no int8 ranges
    were imposed on it). Op types absent from the graph are left out.
    """
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    dequantized = {o for n in graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    counts: dict[str, list[bool]] = {}
    for node in graph.node:
        if node.op_type in keep_float:
            counts.setdefault(node.op_type, []).append(not any(i in dequantized for i in node.input))
    return {t: sum(flags) for t, flags in counts.items()}


def quantize_static_onnx(onnx_path: str | Path, out_path: str | Path, model: PreTrainedModel, tokenizer,
                         calibration, *, n_calibration: int | None = CALIBRATION_SIZE, max_length: int = 128,
                         keep_float: Sequence[str] = FLOAT_OP_TYPES, bits: int = 8, per_channel: bool = True,
                         inputs: dict[str, torch.Tensor] | None = None,
                         tolerance: tuple[float, float] = INT8_TOLERANCE, check: bool = True) -> Path:
    """Static int8 copy (QDQ, MinMax calibration) of an exported ONNX file, checked against ``model``.

    ``calibration``: the task's training texts (``splits["train"]`` or a list of strings; see
    ``calibration_texts``), the first ``n_calibration`` read at up to ``max_length`` tokens.
    Weights int8 with one scale per output channel (``per_channel``), activations uint8 with the
    calibrated scales (asymmetric); the op types in ``keep_float`` stay float (default ``FLOAT_OP_TYPES``).
    ``check=True`` compares logits with ``model`` (on ``inputs``, default the first 8 calibration
    texts) and raises ``OnnxMismatchError`` beyond ``tolerance``; the file is written either way.
    """
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType
    from onnxruntime.quantization import quantize_static
    from onnxruntime.quantization.registry import QDQRegistry

    if bits != 8 or isinstance(bits, bool):
        raise ValueError(f"bits={bits!r}: ONNX Runtime's static quantization here is int8 only. Fix: bits=8; for "
                         "fewer bits see the accuracy with quantization.fake_quantize(model, bits).")
    keep_float = _check_keep_float(keep_float)
    texts = calibration_texts(calibration, model, n_calibration)
    if not Path(onnx_path).is_file():
        raise FileNotFoundError(f"{onnx_path}: no such ONNX file. Fix: export the float model first, "
                                "quantization.export_onnx(model, path).")
    source = onnx.load(str(onnx_path))
    if any(n.domain == "com.microsoft" for n in source.graph.node):  # fused: the calibrator needs every tensor's type
        from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

        # in a scratch folder: on failure it writes sym_shape_infer_temp.onnx into the working directory
        with tempfile.TemporaryDirectory(prefix="minikit-shapes-") as scratch, contextlib.chdir(scratch):
            try:
                source = SymbolicShapeInference.infer_shapes(source, auto_merge=True, guess_output_rank=True)
            except Exception as error:  # its own failure type is a bare Exception
                raise ValueError(f"{Path(onnx_path).name}: the fused graph's tensors could not be typed ({error}), "
                                 "so they cannot be calibrated. Fix: quantize the unfused export statically "
                                 "(ONNX Runtime fuses the QDQ graph when it loads it) or use quantize_onnx.") from None
    graph = source.graph
    names = [i.name for i in graph.input if i.name in _INPUTS]
    present = {n.op_type for n in graph.node}
    op_types = sorted((present & (set(QDQRegistry) | set(FLOAT_OP_TYPES))) - set(keep_float))
    # onnxruntime is imported here, not at the top (heavy), so the reader gets its base class here too
    reader = type("Reader", (_TextReader, CalibrationDataReader), {})(tokenizer, texts, max_length, names)

    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    release_freed_memory()
    # np.errstate: ranges are computed for every tensor, quantized or not; the mask's all −inf ones
    # (never quantized) give NaN scales and a RuntimeWarning. check_onnx catches a broken scale that is used.
    with quiet_onnx_quantization_logs(), np.errstate(divide="ignore", invalid="ignore"):
        quantize_static(source, str(out_path), reader, quant_format=QuantFormat.QDQ,
                        op_types_to_quantize=op_types, per_channel=per_channel, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax,
                        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT,  # fused graphs need it
                                       "ActivationSymmetric": False, "WeightSymmetric": True})
    release_freed_memory()  # the calibration's sessions and ranges: hand their memory back before checking
    if check:
        if inputs is None:
            encoded = tokenizer(texts[:8], truncation=True, max_length=max_length, padding=True, return_tensors="pt")
            inputs = {k: encoded[k] for k in _INPUTS}
        try:
            check_onnx(out_path, model, inputs, tolerance)
        except OnnxMismatchError as error:
            kept = f"keep_float={list(keep_float)}" if keep_float else "nothing kept in float"
            raise OnnxMismatchError(f"Static int8 ({kept}, {len(texts)} calibration texts): {error} For static "
                                    f"int8, first keep LayerNorm/Softmax/GELU in float (keep_float=FLOAT_OP_TYPES), "
                                    "calibrate on more training texts, or use quantize_onnx (dynamic int8).") from None
    return out_path


# --- which nodes must stay float: chapter 6's measured demonstration ----------------------------------

EXCLUSION_KIND = "static-int8-exclusion"  # cache kind: results only, one row per keep_float setting
EXCLUSION_FILE = "runs.json"
OP_GROUPS = {"LayerNorm": ("LayerNormalization", "SkipLayerNormalization", "EmbedLayerNormalization"),
             "Softmax": ("Softmax",), "GELU": ("Erf", "Gelu", "BiasGelu", "FastGelu")}
KEPT_ALL = "LayerNorm, Softmax, GELU kept float"
KEPT_NONE = "nothing kept float"


def exclusion_settings() -> dict[str, tuple[str, ...]]:
    """{setting: keep_float}: all three groups kept float (the default), each group quantized alone, none kept."""
    settings = {KEPT_ALL: FLOAT_OP_TYPES}
    for group, types in OP_GROUPS.items():
        settings[f"{group} quantized"] = tuple(t for t in FLOAT_OP_TYPES if t not in types)
    settings[KEPT_NONE] = ()
    return settings


def _onnx_logits(path: Path, tokenizer, texts: list[str], max_length: int, batch_size: int = 16) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}
    out = []
    for start in range(0, len(texts), batch_size):
        encoded = tokenizer(texts[start:start + batch_size], truncation=True, max_length=max_length, padding=True,
                            return_tensors="np")
        out.append(session.run(None, {k: np.asarray(v, dtype=np.int64) for k, v in encoded.items() if k in names})[0])
    return np.concatenate(out)


def input_steps(path: str | Path, op_types: Sequence[str]) -> list[float]:
    """The int8 step (scale) of the calibrated activation (first input) of each node of ``op_types`` in a QDQ file."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path), load_external_data=False).graph
    values = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    scale_of = {o: n.input[1] for n in graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    return [float(values[scale_of[n.input[0]]]) for n in graph.node if n.op_type in op_types and n.input
            and scale_of.get(n.input[0]) in values and values[scale_of[n.input[0]]].size == 1]


def exclusion_runs(baseline, n_calibration: int = CALIBRATION_SIZE, max_length: int = 128):
    """Static int8 of ``baseline`` (a ``FineTuned``) under each ``exclusion_settings()``, scored on its test split.

    One row per setting, plus the float32 export: the op types kept float and how many nodes of them
    stay float, the largest |logit difference| from PyTorch on the first 16 validation texts, the
    median calibrated int8 step at the inputs of the group quantized (a single group's rows only:
    NaN for the float32 export, for all kept float and for nothing kept float), and per-example
    correctness on test with n, accuracy and its 95 % Wilson bounds. Calibrated on the first
    ``n_calibration`` training texts. Cached as results only (kind ``static-int8-exclusion``), keyed
    by the model, tokenizer, data, the CPU model (int8 kernels differ between CPUs) and the library
    versions: ``minikit build`` runs it.
    """
    import onnxruntime
    import pandas as pd

    import onnx
    import transformers

    if not all(hasattr(baseline, name) for name in ("model", "tokenizer", "splits")):
        raise TypeError(f"exclusion_runs takes a fine-tuned model with its data, got a {type(baseline).__name__}. "
                        "Fix: pass minikit.get_baseline() (or fine_tune(...)'s result), not its .model.")
    model, tokenizer, splits = baseline.model.eval(), baseline.tokenizer, baseline.splits
    settings = exclusion_settings()
    parts = {"model": cache.model_sha256(model), "tokenizer": cache.tokenizer_sha256(tokenizer),
             "splits": cache.splits_sha256(splits), "n_calibration": n_calibration, "max_length": max_length,
             "settings": {k: list(v) for k, v in settings.items()}, "cpu": cpu_identity(),
             "versions": {"torch": torch.__version__, "onnxruntime": onnxruntime.__version__,
                          "onnx": onnx.__version__, "transformers": transformers.__version__}}

    def build(folder: Path) -> None:
        encoded = tokenizer(splits["validation"]["text"][:16], truncation=True, max_length=max_length, padding=True,
                            return_tensors="pt")
        real = {k: encoded[k] for k in _INPUTS}
        with torch.inference_mode():
            reference = model(**real).logits.numpy()
        test, labels = list(splits["test"]["text"]), np.asarray(splits["test"]["label"])
        rows = []
        with tempfile.TemporaryDirectory(prefix="minikit-exclusion-") as tmp:
            fp32 = export_onnx(model, Path(tmp) / "model.onnx", inputs=real)
            files = {"float32 (ONNX)": (fp32, None)}
            for i, (name, keep) in enumerate(settings.items()):
                path = quantize_static_onnx(fp32, Path(tmp) / f"{i}.onnx", model, tokenizer, splits["train"],
                                            n_calibration=n_calibration, max_length=max_length, keep_float=keep,
                                            check=False)
                files[name] = (path, keep)
            for name, (path, keep) in files.items():
                gap = np.abs(_onnx_logits(path, tokenizer, list(splits["validation"]["text"][:16]), max_length)
                             - reference)
                predicted = _onnx_logits(path, tokenizer, test, max_length).argmax(axis=1)
                quantized = [t for group in OP_GROUPS.values() for t in group if keep is not None and t not in keep]
                steps = input_steps(path, quantized) if quantized and keep else []
                rows.append({"setting": name, "keep_float": [] if keep is None else list(keep),
                             "float_nodes": sum(float_kept_nodes(path).values()),
                             "max_logit_gap": float(gap.max()),
                             "input_step": float(np.median(steps)) if steps else float("nan"),
                             "size_mb": path.stat().st_size / 1e6,
                             "correct": (predicted == labels).astype(int).tolist()})
        (folder / EXCLUSION_FILE).write_text(json.dumps(rows))

    entry = cache.load_or_build(EXCLUSION_KIND, parts, build)
    table = pd.DataFrame(json.loads((entry / EXCLUSION_FILE).read_text()))
    return table.assign(**scored(table["correct"]))


_HALF_PATTERNS = 1 << 15  # the bit patterns of the float16 values ≥ 0 (sign bit clear), in the order of the values


def _lower_median(histogram: torch.Tensor) -> float:
    """``torch.median`` (the lower middle value) of the float16 values ≥ 0 that ``histogram`` counts by bit pattern."""
    middle = (int(histogram.sum()) - 1) // 2  # its index in the sorted values
    pattern = int(torch.searchsorted(histogram.cumsum(0), torch.tensor(middle), right=True))
    return float(torch.tensor(pattern, dtype=torch.int16).view(torch.float16))


def activation_spread(model: PreTrainedModel, tokenizer, texts: Sequence[str], max_length: int = 128):
    """What one calibrated int8 step does to the inputs of LayerNorm and of GELU, measured in PyTorch.

    Each LayerNorm and each GELU gets its own range, as MinMax calibration gives each tensor one
    scale: over ``texts`` (one forward each, no padding) its min and max, and its int8 step
    (range / 255). Per kind of input: how many such nodes, the widest range among them, the median
    and the largest step, the median |value|, and the share of values smaller than their node's step
    (within one step of zero). The GELU row is GELU's input x; ONNX's export quantizes the ``Erf``
    inside it, which reads x/√2: its steps are these divided by √2, the share is the same.
    """
    import pandas as pd

    if isinstance(texts, str) or not len(texts):
        raise ValueError(f"texts={texts!r:.60}: expected a non-empty list of texts. Fix: pass a few training "
                         "texts, e.g. splits['train']['text'][:16].")

    kinds = ("LayerNorm input", "GELU input")
    low: dict[tuple, float] = {}  # per (kind, module): the range pass 1 finds, including 0 as MinMax does
    high: dict[tuple, float] = {}
    below: dict[tuple, int] = {}  # pass 2: values within one step of zero, and how many values
    count: dict[tuple, int] = {}
    # pass 2: how many |x| take each float16 value (|x| ≥ 0, so its bit pattern orders it): an exact median of
    # the half-precision values, with no activation held between texts (Binder has 2 GB)
    histogram = {kind: torch.zeros(_HALF_PATTERNS, dtype=torch.long) for kind in kinds}
    second = [False]

    def keep(kind: str):
        def hook(module, args, out) -> None:
            x, key = args[0].detach().flatten().float(), (kind, id(module))
            if not second[0]:
                low[key] = min(low.get(key, 0.0), float(x.min()))
                high[key] = max(high.get(key, 0.0), float(x.max()))
                return
            x = x.abs()  # a copy: x shares its memory with the activation the model goes on with
            below[key] = below.get(key, 0) + int((x < (high[key] - low[key]) / 255).sum())
            count[key] = count.get(key, 0) + x.numel()
            histogram[kind] += torch.bincount(x.half().view(torch.int16).long(), minlength=_HALF_PATTERNS)
        return hook

    hooks = [m.register_forward_hook(keep(kinds[0])) for m in model.modules() if isinstance(m, torch.nn.LayerNorm)]
    for layer in encoder_layers(model):
        act = getattr(getattr(layer, "intermediate", None), "intermediate_act_fn", None)
        if isinstance(act, torch.nn.Module):
            hooks.append(act.register_forward_hook(keep(kinds[1])))
    # Two passes over the texts: the ranges first, then what falls below each node's step.
    try:
        with torch.inference_mode():
            for second[0] in (False, True):
                for text in texts:
                    model(**tokenizer(text, truncation=True, max_length=max_length, return_tensors="pt"))
    finally:
        for hook in hooks:
            hook.remove()
    rows = []
    for kind in kinds:
        keys = [key for key in low if key[0] == kind]
        if not keys:
            continue
        steps = [(high[key] - low[key]) / 255 for key in keys]
        median = _lower_median(histogram[kind])
        rows.append({"input": kind, "nodes": len(keys), "min": min(low[key] for key in keys),
                     "max": max(high[key] for key in keys), "median step": float(np.median(steps)),
                     "largest step": max(steps), "median |x|": median,
                     "share below one step": sum(below[key] for key in keys) / sum(count[key] for key in keys)})
    return pd.DataFrame(rows).set_index("input")

__all__ = ["CALIBRATION_SIZE", "EXCLUSION_KIND", "FLOAT_OP_TYPES", "KEPT_ALL", "KEPT_NONE", "OP_GROUPS",
           "activation_spread", "calibration_texts", "exclusion_runs", "exclusion_settings", "float_kept_nodes",
           "input_steps", "quantize_static_onnx"]
