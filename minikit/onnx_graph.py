"""ONNX Runtime graph fusion for the course's int8 path (issue 24): export, fuse, quantize, each checked.

``onnxruntime.transformers.optimizer.optimize_model`` rewrites a transformer encoder's graph: the
dozen nodes of one self-attention become one ``Attention`` node, a residual Add plus LayerNorm one
``SkipLayerNormalization``, a bias Add plus GELU one ``BiasGelu``, and the embeddings plus their
LayerNorm one ``EmbedLayerNormalization``. Fewer nodes means fewer passes over memory and fewer
kernel launches; at batch 1 on a CPU that is most of the time of a small model.

The fuser matches patterns, so the export must produce them: transformers' default SDPA attention
exports to a graph in which it fuses **no** Attention node, so ``export_fused`` exports with eager
attention (set for the export only: the caller's model keeps its own setting). Where the fuser
finds nothing (MobileBERT's NoNorm and bottlenecks) or fails, or the fused graph's logits move,
the unfused graph is used and a ``FusionNotice`` warning says which architecture and why: never a
wrong answer. Each file is checked against PyTorch (``quantization.check_onnx``) after fusion and
after int8.

``export_int8`` is the whole path (export → fuse → int8) that ``deployment.export_for_serving``
uses, and through it the lab's int8 recipes, ``minikit report`` and the Benchmark's ONNX rows.
``op_counts`` gives a graph's operator counts (op type → count), ``fusion_table`` them before and
after, side by side.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch
from transformers import PreTrainedModel

from minikit.attention import eager_attention
from minikit.errors import OnnxMismatchError
from minikit.quantization import (EXPORT_TOLERANCE, check_onnx, export_onnx, quantize_onnx,
                                  quiet_onnx_quantization_logs)

# Which optimizer ``model_type`` each catalog family (``minikit.models.CATALOG``'s ``family``, which is the
# transformers ``config.model_type``) maps to. ONNX Runtime's "bert" fuser covers BERT's layout, and DistilBERT's
# too (its exported graph has the same attention / residual-LayerNorm / GELU patterns). MobileBERT's layers (NoNorm
# instead of LayerNorm, bottleneck projections, ReLU) match none of its patterns: the fuser finds nothing and the
# unfused graph is kept, with a notice. A model_type not in this table is exported unfused, with a notice.
OPTIMIZER_MODEL_TYPES: dict[str, str] = {"bert": "bert", "distilbert": "bert", "mobilebert": "bert"}

# Operators only the fuser writes: their count says whether fusion did anything.
FUSED_OP_TYPES = ("Attention", "MultiHeadAttention", "EmbedLayerNormalization", "SkipLayerNormalization",
                  "SkipSimplifiedLayerNormalization", "BiasGelu", "FastGelu", "Gelu", "GemmFastGelu")


class FusionNotice(UserWarning):
    """The graph was left unfused (the fuser found nothing, failed, or moved the logits); the answers stay right."""


@dataclass
class FusedGraph:
    """What ``export_fused`` / ``export_int8`` wrote: the file, whether it is fused, and the op counts."""

    path: Path
    fused: bool
    ops_before: dict[str, int]  # the exported graph's operator counts (op type → count)
    ops_after: dict[str, int]  # the written file's (after fusion and int8, where they ran)
    fused_ops: dict[str, int] = field(default_factory=dict)  # the fused operators in it, e.g. {"Attention": 6, …}
    notice: str | None = None  # why the graph is unfused, where it is

    def manifest(self) -> dict:
        """The record a served folder's manifest keeps: fused or not, the fused op counts, the notice."""
        return {"fused": self.fused, "fused_ops": self.fused_ops, "notice": self.notice,
                "nodes_before": sum(self.ops_before.values()), "nodes_after": sum(self.ops_after.values())}


def op_counts(path: str | Path) -> dict[str, int]:
    """A graph's operator counts, op type → count, most frequent first."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    return dict(Counter(node.op_type for node in graph.node).most_common())


def fusion_table(before: dict[str, int], after: dict[str, int]) -> pd.DataFrame:
    """Op counts before and after fusion side by side (one row per op type), with a total row."""
    table = pd.DataFrame({"before": pd.Series(before, dtype=int), "after": pd.Series(after, dtype=int)})
    table = table.fillna(0).astype(int)
    table["change"] = table["after"] - table["before"]
    table = table.sort_values(["after", "before"], ascending=False)
    table.loc["all nodes"] = table.sum()
    table.index.name = "operator"
    return table


def optimizer_model_type(model: PreTrainedModel) -> str | None:
    """The ``optimize_model`` model_type for ``model`` (see ``OPTIMIZER_MODEL_TYPES``), or None if none fits."""
    return OPTIMIZER_MODEL_TYPES.get(getattr(model.config, "model_type", ""))


def _heads_and_hidden(model: PreTrainedModel) -> tuple[int, int]:
    """The head count and attention width the fuser is told: the config's, or, where every layer's attention had
    the same heads pruned (``pruning.prune_heads`` keeps the config's count), the heads each layer has now and
    their width. Heads pruned unevenly have no single answer: the config's is passed, and ``fuse_onnx`` falls back."""
    config = model.config
    heads = getattr(config, "num_attention_heads", None) or getattr(config, "n_heads", None)
    hidden = getattr(config, "hidden_size", None) or getattr(config, "dim", None)
    if not heads or not hidden:
        raise ValueError(f"{type(config).__name__} has no num_attention_heads/hidden_size (nor n_heads/dim).")
    now = {(int(m.num_attention_heads), int(m.all_head_size)) for m in model.modules()
           if hasattr(m, "num_attention_heads") and hasattr(m, "all_head_size")}  # BERT-style self-attention
    if len(now) == 1:
        return now.pop()
    return int(heads), int(hidden)


def _unfused(path: Path, ops: dict[str, int], model: PreTrainedModel, why: str) -> FusedGraph:
    notice = f"{type(model).__name__} ({getattr(model.config, 'model_type', '?')}): graph left unfused: {why}"
    warnings.warn(FusionNotice(notice + ". The unfused graph is used; its answers are checked against PyTorch."),
                  stacklevel=3)
    return FusedGraph(path, False, ops, ops, {}, notice)


def fuse_onnx(onnx_path: str | Path, out_path: str | Path, model: PreTrainedModel,
              inputs: dict[str, torch.Tensor] | None = None,
              tolerance: tuple[float, float] = EXPORT_TOLERANCE, opt_level: int = 1) -> FusedGraph:
    """Fuse an exported float graph with ONNX Runtime's transformer optimizer (CPU), checked against ``model``.

    ``opt_level=1`` keeps the saved graph free of ONNX Runtime's hardware-specific rewrites (those it
    applies again when a session loads the file). Where fusion fails, finds no fused operator, or its
    logits differ from PyTorch's beyond ``tolerance``, or that ONNX Runtime cannot load or run (attention
    heads pruned unevenly across layers: the fuser takes one head count), ``out_path`` gets the unfused
    graph and a ``FusionNotice`` warning says why.
    """
    from onnxruntime.transformers.optimizer import optimize_model

    onnx_path, out_path = Path(onnx_path), Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    before = op_counts(onnx_path)
    model_type = optimizer_model_type(model)
    if model_type is None:
        shutil.copyfile(onnx_path, out_path)
        return _unfused(out_path, before, model, f"no optimizer model_type for '{model.config.model_type}' "
                        f"(known: {', '.join(OPTIMIZER_MODEL_TYPES)})")
    heads, hidden = _heads_and_hidden(model)
    try:
        # the fuser prints its progress and logs advice (e.g. on pruned heads' widths) a learner cannot act on
        with contextlib.redirect_stdout(None), warnings.catch_warnings(), quiet_onnx_quantization_logs():
            warnings.simplefilter("ignore")
            optimized = optimize_model(str(onnx_path), model_type=model_type, num_heads=heads, hidden_size=hidden,
                                       opt_level=opt_level, use_gpu=False)
            optimized.save_model_to_file(str(out_path))
    except Exception as error:  # the fuser's own failure: keep the graph that works
        shutil.copyfile(onnx_path, out_path)
        return _unfused(out_path, before, model, f"the optimizer failed ({type(error).__name__}: {error})")
    after = op_counts(out_path)
    fused = {op: after[op] for op in FUSED_OP_TYPES if after.get(op, 0) > before.get(op, 0)}
    if not fused:
        shutil.copyfile(onnx_path, out_path)
        return _unfused(out_path, before, model, f"the '{model_type}' fuser found no pattern to fuse")
    try:
        check_onnx(out_path, model, inputs, tolerance)
    except OnnxMismatchError as error:
        shutil.copyfile(onnx_path, out_path)
        return _unfused(out_path, before, model, f"the fused graph's logits moved ({error})")
    except Exception as error:  # ONNX Runtime refuses to load or run the fused graph (e.g. heads pruned unevenly)
        shutil.copyfile(onnx_path, out_path)
        return _unfused(out_path, before, model, f"ONNX Runtime cannot run the fused graph ({type(error).__name__}: "
                        f"{str(error).strip()[:200]})")
    return FusedGraph(out_path, True, before, after, fused)


def export_fused(model: PreTrainedModel, path: str | Path, inputs: dict[str, torch.Tensor] | None = None,
                 tolerance: tuple[float, float] = EXPORT_TOLERANCE) -> FusedGraph:
    """Export ``model`` with eager attention (for this export only) and fuse it: ``fuse_onnx`` on ``export_onnx``."""
    path = Path(path)
    with tempfile.TemporaryDirectory() as tmp, eager_attention(model):
        exported = export_onnx(model, Path(tmp) / "exported.onnx", inputs, tolerance)
        return fuse_onnx(exported, path, model, inputs, tolerance)


def export_int8(model: PreTrainedModel, path: str | Path, inputs: dict[str, torch.Tensor] | None = None,
                fuse: bool = True, quantize: bool = True) -> FusedGraph:
    """The course's served graph: export, fuse (``fuse=True``), then dynamic int8 (``quantize=True``), each checked.

    ``fuse=False`` gives the graph as the course exported it before fusion (SDPA attention, unfused),
    for comparisons. If the fused graph fails the int8 check, that same unfused graph is quantized
    instead, with a ``FusionNotice``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        if fuse:
            graph = export_fused(model, Path(tmp) / "fused.onnx", inputs)
        else:
            exported = export_onnx(model, Path(tmp) / "float.onnx", inputs)
            ops = op_counts(exported)
            graph = FusedGraph(exported, False, ops, ops, {}, "fusion not asked for (fuse=False)")
        if not quantize:
            shutil.copyfile(graph.path, path)
        else:
            try:
                quantize_onnx(graph.path, path, model, inputs)
            except OnnxMismatchError as error:
                if not graph.fused:
                    raise
                exported = export_onnx(model, Path(tmp) / "float.onnx", inputs)  # as fuse=False exports it
                graph = _unfused(path, op_counts(exported), model, f"its int8 copy failed the check ({error})")
                quantize_onnx(exported, path, model, inputs)
        graph.path = path
        graph.ops_after = op_counts(path)
    return graph


__all__ = ["FUSED_OP_TYPES", "FusedGraph", "FusionNotice", "OPTIMIZER_MODEL_TYPES",
           "export_fused", "export_int8", "fuse_onnx", "fusion_table", "op_counts", "optimizer_model_type"]
