"""Chapter 5 — pruning: remove weights (unstructured) or whole heads, neurons and layers (structured).

Unstructured magnitude pruning sets the smallest weights to zero with ``torch.nn.utils.prune``:
the non-zero count drops and a sparse format can store the weights smaller, but a dense CPU
kernel multiplies zeros as fast as any other number, so latency stays. Structured pruning removes rows and columns
(``transformers.pytorch_utils.prune_linear_layer``) or whole layers: the matrices get smaller,
so the same dense kernels do less work. Every function returns a pruned copy; the model passed
in is left as it was. Layers, attention and feed-forward blocks are found through the model's
config, module types and the order its Linear layers run in, not through attribute paths, so
BERT, DistilBERT and MobileBERT all work.
"""

from __future__ import annotations

import copy
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn.utils import prune
from transformers import PreTrainedModel
from transformers.pytorch_utils import prune_linear_layer

from minikit.cache import PRUNED_HEADS_KEY  # the config's record of prune_heads' plans
from minikit.models import encoder_layers
from minikit.profiling import count_parameters, size_on_disk_mb
from minikit.training import TrainConfig, TrainResult, train_classifier

SCOPES = ("global", "layer")
# A short recovery run: a quarter of the train split (~46 steps at batch 8, so roughly a quarter
# of the baseline's fine-tuning time; not yet measured on minilm-l6) at half the baseline's
# learning rate, since the weights start close to good ones.
RECOVERY_CONFIG = TrainConfig(train_fraction=0.25, learning_rate=5e-5, eval_every=15)


# --------------------------------------------------------------------------------------------
# Finding the parts: encoder Linear layers, attention projections, feed-forward pairs
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class LayerParts:
    """The prunable pieces of one encoder layer, found by running it once (see ``layer_parts``)."""

    attention: nn.Module  # the self-attention module (the one with an ``attention_head_size``)
    qkv: tuple[nn.Linear, nn.Linear, nn.Linear]  # query, key, value projections: one row block per head
    out: nn.Linear  # the attention output projection: one column block per head
    ffn: tuple[tuple[nn.Linear, nn.Linear], ...]  # (up, down) per feed-forward block (MobileBERT has several)

    @property
    def head_size(self) -> int:
        return int(self.attention.attention_head_size)

    @property
    def num_heads(self) -> int:
        return self.qkv[0].out_features // self.head_size


def check_fraction(value, name: str) -> float:
    """``value`` as a float when it is a fraction in [0, 1); else a ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not 0 <= value < 1:
        raise ValueError(f"{name}={value!r}: expected a fraction in [0, 1), e.g. 0.5 to remove half. "
                         f"1 would remove everything; for a dense model pass 0.")
    return float(value)


def _ffn_size(config) -> int:
    for name in ("intermediate_size", "hidden_dim"):  # BERT/MobileBERT, DistilBERT
        if isinstance(getattr(config, name, None), int):
            return getattr(config, name)
    raise ValueError(f"{type(config).__name__} has no intermediate_size or hidden_dim, so the feed-forward "
                     "width is unknown. Fix: pass a BERT-style encoder (BERT, DistilBERT, MobileBERT, …).")


def layer_parts(model: PreTrainedModel) -> list[LayerParts]:
    """Attention projections and feed-forward pairs of every encoder layer, bottom to top.

    One forward pass on 4 tokens records the order in which each layer's Linear layers run:
    Q, K and V are the first three inside the attention module, the output projection is the
    next one that reads their width, and a feed-forward pair is two consecutive calls whose
    shared width is the config's intermediate size (MobileBERT's bottlenecks sit around them).
    """
    layers = encoder_layers(model)
    calls: list[list[nn.Linear]] = [[] for _ in layers]
    hooks = [m.register_forward_hook(lambda mod, _i, _o, i=i: calls[i].append(mod))
             for i, layer in enumerate(layers) for m in layer.modules() if isinstance(m, nn.Linear)]
    device = next(model.parameters()).device
    try:
        with torch.no_grad():
            model(input_ids=torch.ones((1, 4), dtype=torch.long, device=device))
    finally:
        for h in hooks:
            h.remove()
    ffn_size = _ffn_size(model.config)
    return [_parts_of(i, layer, trace, ffn_size) for i, (layer, trace) in enumerate(zip(layers, calls))]


def _parts_of(index: int, layer: nn.Module, trace: list[nn.Linear], ffn_size: int) -> LayerParts:
    attention = [m for m in layer.modules() if isinstance(getattr(m, "attention_head_size", None), int)]
    if len(attention) != 1:
        raise ValueError(f"Layer {index} ({type(layer).__name__}) has {len(attention)} modules with an "
                         "attention_head_size; expected exactly one self-attention module (BERT, DistilBERT, "
                         "MobileBERT). Fix: pass a BERT-style encoder without cross-attention.")
    inside = {id(m) for m in attention[0].modules()}
    qkv_at = [k for k, m in enumerate(trace) if id(m) in inside][:3]
    if len(qkv_at) < 3:
        raise ValueError(f"Layer {index}: found {len(qkv_at)} Linear projections in its attention, "
                         "expected 3 (Q, K, V).")
    qkv = tuple(trace[k] for k in qkv_at)
    after = [k for k in range(qkv_at[-1] + 1, len(trace)) if trace[k].in_features == qkv[0].out_features]
    if not after:
        raise ValueError(f"Layer {index}: no Linear layer reads the attention output of width {qkv[0].out_features}.")
    out_at = after[0]
    ffn, k = [], out_at + 1
    while k + 1 < len(trace):
        up, down = trace[k], trace[k + 1]
        if up.out_features == ffn_size == down.in_features:
            ffn.append((up, down))
            k += 2
        else:
            k += 1
    return LayerParts(attention[0], qkv, trace[out_at], tuple(ffn))


def _replace(root: nn.Module, old: nn.Module, new: nn.Module) -> None:
    """Put ``new`` where ``old`` sits in ``root`` (same parent, same attribute name)."""
    for name, module in root.named_modules():
        if module is old:
            parent, _, attr = name.rpartition(".")
            setattr(root.get_submodule(parent), attr, new)
            return
    raise ValueError(f"{type(old).__name__} is not a submodule of {type(root).__name__}.")


def encoder_linears(model: nn.Module) -> list[tuple[int, str, nn.Linear]]:
    """(layer index, name inside the layer, module) of every nn.Linear in the encoder layers.

    These are the weights pruning and the per-layer tables work on: embeddings, pooler and
    classifier head are left out (the head is tiny and the embedding look-up does no multiply).
    """
    return [(i, name, m) for i, layer in enumerate(encoder_layers(model))
            for name, m in layer.named_modules() if isinstance(m, nn.Linear)]


# --------------------------------------------------------------------------------------------
# Unstructured: magnitude pruning with torch.nn.utils.prune
# --------------------------------------------------------------------------------------------


def magnitude_threshold(weights: Iterable[torch.Tensor], sparsity: float) -> float:
    """The k-th smallest |w| over ``weights``, k = sparsity · (number of weights): prune |w| ≤ this.

    ``torch.kthvalue`` finds it in one pass (~0.3 s for minilm-l6's 21 M encoder weights on one
    core; ``prune.global_unstructured``'s topk takes ~1.5 s). Returns −1 when nothing is pruned.
    """
    scores = torch.cat([w.detach().abs().flatten() for w in weights])
    k = round(check_fraction(sparsity, "sparsity") * scores.numel())
    return float(torch.kthvalue(scores, k).values) if k > 0 else -1.0


def _check_scope(scope: str) -> None:
    if scope not in SCOPES:
        raise ValueError(f"scope={scope!r}: expected 'global' (rank all weights together) or 'layer' (same "
                         "sparsity in every Linear layer).")


def magnitude_prune(model: PreTrainedModel, sparsity: float, scope: str = "global") -> PreTrainedModel:
    """A copy with the ``sparsity`` share of encoder Linear weights of smallest |w| set to zero.

    ``scope="global"`` ranks all those weights together (layers that matter less lose more);
    ``"layer"`` gives every Linear layer the same sparsity. Biases, embeddings, pooler and head
    are kept. The masks go on with ``prune.custom_from_mask`` and are made permanent with
    ``prune.remove``, so the copy saves, counts and fine-tunes like a plain model.
    """
    sparsity = check_fraction(sparsity, "sparsity")
    _check_scope(scope)
    pruned = copy.deepcopy(model)
    modules = [m for _, _, m in encoder_linears(pruned)]
    global_cut = magnitude_threshold([m.weight for m in modules], sparsity) if scope == "global" else None
    for m in modules:
        cut = global_cut if global_cut is not None else magnitude_threshold([m.weight], sparsity)
        prune.custom_from_mask(m, "weight", mask=m.weight.detach().abs() > cut)  # ties at the cut go too
        prune.remove(m, "weight")  # weight = weight_orig * mask, then drop the mask and the hook
    return pruned


def magnitude_mask_(weights: Sequence[torch.Tensor], originals: Sequence[torch.Tensor], sparsity: float,
                    scope: str = "global") -> None:
    """Write each of ``originals`` into its tensor of ``weights`` with the smallest |w| zeroed, in place.

    The same zeros as ``magnitude_prune`` (ties at the cut go too), without copying the model:
    one working copy can follow a slider, each setting starting again from the originals, which
    are only read.
    """
    sparsity = check_fraction(sparsity, "sparsity")
    _check_scope(scope)
    global_cut = magnitude_threshold(originals, sparsity) if scope == "global" else None
    with torch.no_grad():
        for w, original in zip(weights, originals):
            cut = global_cut if global_cut is not None else magnitude_threshold([original], sparsity)
            w.copy_(original).masked_fill_(original.abs() <= cut, 0.0)


def sparsity_table(model: nn.Module) -> pd.DataFrame:
    """One row per encoder Linear layer: layer, module, role, params, nonzero, sparsity (for a heatmap).

    ``role`` is query/key/value/attention-out/ffn-up/ffn-down where ``layer_parts`` recognises the
    module, else "other" (MobileBERT's bottlenecks).
    """
    roles: dict[int, str] = {}
    for parts in layer_parts(model):
        roles.update({id(m): r for m, r in zip(parts.qkv, ("query", "key", "value"))})
        roles[id(parts.out)] = "attention-out"
        for up, down in parts.ffn:
            roles.update({id(up): "ffn-up", id(down): "ffn-down"})
    rows = []
    for layer, name, m in encoder_linears(model):
        nonzero = int(torch.count_nonzero(m.weight))
        rows.append({"layer": layer, "module": name, "role": roles.get(id(m), "other"), "params": m.weight.numel(),
                     "nonzero": nonzero, "sparsity": 1 - nonzero / m.weight.numel()})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# What a setting costs: parameters, dense size, sparse size
# --------------------------------------------------------------------------------------------


def csr_or_dense_bytes(t: torch.Tensor) -> int:
    """Bytes of ``t`` stored dense, or as CSR with int32 indices when ``t`` is a float matrix and that is smaller.

    CSR stores the value + a 4-byte column index per non-zero, and a 4-byte pointer per row (+ 1),
    so it only pays off above ~50 % sparsity for fp32 weights.
    """
    dense = t.numel() * t.element_size()
    if t.ndim != 2 or not t.is_floating_point():
        return dense
    csr = int(torch.count_nonzero(t)) * (t.element_size() + 4) + (t.shape[0] + 1) * 4
    return min(dense, csr)


def tensor_bytes(model: nn.Module, sparse: bool = False) -> int:
    """Bytes of the model's tensors in memory (a shared tensor counted once); ``sparse``: matrices as CSR where smaller."""
    tensors = {id(t): t for t in model.state_dict(keep_vars=True).values()}.values()
    return sum(csr_or_dense_bytes(t) if sparse else t.numel() * t.element_size() for t in tensors)


def _csr_or_dense(t: torch.Tensor) -> torch.Tensor:
    """A 2-D tensor as CSR with int32 indices when that is smaller (``csr_or_dense_bytes``), else as it is."""
    if csr_or_dense_bytes(t) >= t.numel() * t.element_size():
        return t
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "sparse CSR support is in beta"
        csr = t.detach().to_sparse_csr()
        return torch.sparse_csr_tensor(csr.crow_indices().int(), csr.col_indices().int(), csr.values(), t.shape)


def sparse_size_mb(model: nn.Module) -> float:
    """Megabytes of ``torch.save`` of the state dict with each matrix stored as CSR where that is smaller."""
    state = {k: _csr_or_dense(v) for k, v in model.state_dict().items()}
    with tempfile.TemporaryDirectory() as tmp:
        file = Path(tmp) / "sparse.pt"
        torch.save(state, file)
        return file.stat().st_size / 1e6


@dataclass(frozen=True)
class PruningReport:
    """What one pruning setting leaves: parameters, non-zeros and sizes (accuracy and latency: Benchmark)."""

    name: str
    params: int  # all parameters, zeros included
    nonzero_params: int
    encoder_sparsity: float  # share of zeros in the encoder's Linear weights (what pruning targets)
    dense_mb: float  # save_pretrained (safetensors): zeros cost as much as any other number
    sparse_mb: float  # torch.save with sparse matrices in CSR: what the zeros could save on disk


def pruning_report(model: PreTrainedModel, name: str = "model") -> PruningReport:
    """Count parameters and non-zeros and measure dense and sparse sizes of ``model``."""
    weights = [m.weight for _, _, m in encoder_linears(model)]
    total = sum(w.numel() for w in weights)
    zeros = sum(w.numel() - int(torch.count_nonzero(w)) for w in weights)
    return PruningReport(name, count_parameters(model), count_parameters(model, nonzero=True),
                         zeros / total if total else 0.0, size_on_disk_mb(model), sparse_size_mb(model))


# --------------------------------------------------------------------------------------------
# Structured: attention heads
# --------------------------------------------------------------------------------------------


def heads_per_layer(model: PreTrainedModel) -> list[int]:
    """How many attention heads each encoder layer has now (after any head pruning)."""
    return [parts.num_heads for parts in layer_parts(model)]


def importance_batches(tokenizer, split, n: int = 32, batch_size: int = 8, max_length: int = 128,
                       seed: int = 0) -> list[dict[str, torch.Tensor]]:
    """``n`` rows of ``split`` (shuffled with ``seed``), tokenized, in batches with ``labels``: for ``head_importance``.

    Chapter 5 scores heads on 32 *training* articles this way, so the validation split is not used to choose.
    """
    if not 1 <= n <= len(split) or batch_size < 1:
        raise ValueError(f"n={n}, batch_size={batch_size} with {len(split)} rows: need 1 ≤ n ≤ the rows and "
                         f"batch_size ≥ 1. Fix: pass n between 1 and {len(split)}, and batch_size ≥ 1.")
    sample = split.shuffle(seed=seed).select(range(n))
    enc = tokenizer(list(sample["text"]), truncation=True, max_length=max_length, padding=True, return_tensors="pt")
    labels = torch.tensor(sample["label"])
    return [{"input_ids": enc["input_ids"][i:i + batch_size], "attention_mask": enc["attention_mask"][i:i + batch_size],
             "labels": labels[i:i + batch_size]} for i in range(0, n, batch_size)]


def head_importance(model: PreTrainedModel,
                    batches: Iterable[Mapping[str, torch.Tensor]] | None = None) -> pd.DataFrame:
    """Importance of every attention head: a DataFrame with columns layer, head, importance.

    With ``batches`` (dicts of model inputs *with* ``labels``), importance is Michel et al.
    (2019): a gate ξ_h = 1 multiplies each head's output, and |∂loss/∂ξ_h| summed over the
    batches says how much the loss would move if the head were removed. Without batches, a
    weight-norm proxy that needs no data: the L2 norm of the head's rows in Q, K, V and its
    columns in the output projection. Either way, scores are divided by their layer's L2 norm
    so layers can be ranked together, as Michel et al. do.
    """
    all_parts = layer_parts(model)
    if batches is None:
        scores = [torch.stack([_head_weight_norm(p, h) for h in range(p.num_heads)]) for p in all_parts]
    else:
        scores = _head_gradients(model, all_parts, batches)
    rows = []
    for layer, s in enumerate(scores):
        s = s / s.norm().clamp_min(1e-12)
        rows += [{"layer": layer, "head": h, "importance": float(v)} for h, v in enumerate(s)]
    return pd.DataFrame(rows)


def _head_weight_norm(parts: LayerParts, head: int) -> torch.Tensor:
    rows = slice(head * parts.head_size, (head + 1) * parts.head_size)
    pieces = [lin.weight[rows] for lin in parts.qkv] + [parts.out.weight[:, rows].T]
    return torch.cat([p.detach().flatten() for p in pieces]).norm()


def _head_gradients(model: PreTrainedModel, all_parts: list[LayerParts], batches) -> list[torch.Tensor]:
    gates = [torch.ones(p.num_heads, requires_grad=True) for p in all_parts]

    def gate(gate_values: torch.Tensor, head_size: int):
        # The output projection's input is the heads side by side, (B, T, heads·head_size).
        return lambda _module, args: (args[0] * gate_values.repeat_interleave(head_size).to(args[0]), *args[1:])

    hooks = [p.out.register_forward_pre_hook(gate(g, p.head_size)) for p, g in zip(all_parts, gates)]
    was_training, seen = model.training, 0
    model.eval()  # dropout off: importance of the model as it runs
    try:
        with torch.enable_grad():
            for batch in batches:
                if "labels" not in batch:
                    raise ValueError(f"A batch has keys {sorted(batch)} but no 'labels': the gradient importance "
                                     "needs the loss. Fix: add labels, or pass batches=None for the weight proxy.")
                model(**batch).loss.backward(inputs=gates)  # only the gates' gradients, not the weights'
                seen += 1
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    if seen == 0:
        raise ValueError("batches was empty. Fix: pass a few batches (dicts with input_ids, attention_mask, labels).")
    return [g.grad.abs() for g in gates]


def least_important_heads(importance: pd.DataFrame, fraction: float) -> dict[int, list[int]]:
    """The ``fraction`` of all heads with the lowest importance, as {layer: [heads]}; every layer keeps one."""
    fraction = check_fraction(fraction, "fraction")
    n = round(fraction * len(importance))
    remaining = importance.groupby("layer")["head"].count().to_dict()
    chosen: dict[int, list[int]] = {}
    for row in importance.sort_values("importance", kind="stable").itertuples():
        if n == 0:
            break
        if remaining[row.layer] > 1:  # a layer without heads has nothing to attend with
            chosen.setdefault(int(row.layer), []).append(int(row.head))
            remaining[row.layer] -= 1
            n -= 1
    return {layer: sorted(heads) for layer, heads in sorted(chosen.items())}


def even_heads(importance: pd.DataFrame, fraction: float) -> dict[int, list[int]]:
    """The ``fraction`` of each layer's heads with the lowest importance, the same number in every layer.

    Unlike ``least_important_heads`` (ranked across layers), every layer keeps as many heads, which
    ONNX Runtime's attention fusion needs (``onnx_graph``: one head count for the whole graph).
    """
    fraction = check_fraction(fraction, "fraction")
    plan = {}
    for layer, group in importance.groupby("layer"):
        n = min(round(fraction * len(group)), len(group) - 1)  # a layer keeps one head
        if n:
            plan[int(layer)] = sorted(group.nsmallest(n, "importance", keep="first")["head"].astype(int).tolist())
    return plan


def prune_heads(model: PreTrainedModel, heads: Mapping[int, Iterable[int]]) -> PreTrainedModel:
    """A copy without the given attention heads, e.g. ``{0: [2, 5], 3: [0]}`` (layer: head indices).

    Each head's rows leave Q, K and V and its columns leave the output projection, so those
    matrices shrink. Indices count the heads a layer has now. A layer must keep one head (drop
    the whole layer with ``drop_layers`` instead). The config keeps its original head count and
    records the plan (``PRUNED_HEADS_KEY``), so ``cache.save_model_dir`` saves the copy and
    ``cache.load_model_dir(folder, rebuild=restore_pruned_heads)`` loads it back (``from_pretrained``
    alone cannot: the weights no longer have the config's shapes).
    """
    pruned = copy.deepcopy(model)
    all_parts = layer_parts(pruned)
    plan = {}
    for layer, chosen in heads.items():
        if not isinstance(layer, (int, np.integer)) or not 0 <= layer < len(all_parts):
            raise ValueError(f"Layer {layer!r} does not exist: the model has layers 0…{len(all_parts) - 1}.")
        n, chosen = all_parts[layer].num_heads, sorted(set(int(h) for h in chosen))
        bad = [h for h in chosen if not 0 <= h < n]
        if bad:
            raise ValueError(f"Head(s) {bad} do not exist in layer {layer}, which has heads 0…{n - 1}. "
                             "Fix: pick indices from head_importance(model).")
        if len(chosen) >= n:
            raise ValueError(f"Pruning heads {chosen} would leave layer {layer} with no attention head. "
                             f"Fix: keep at least one, or remove the layer with drop_layers(model, [{layer}]).")
        plan[layer] = chosen
    for layer, chosen in plan.items():
        _remove_heads(pruned, all_parts[layer], chosen)
    done = getattr(pruned.config, PRUNED_HEADS_KEY, None) or []  # earlier prunings, in order (JSON-safe pairs)
    setattr(pruned.config, PRUNED_HEADS_KEY, [*done, [[layer, heads] for layer, heads in plan.items()]])
    return pruned


def restore_pruned_heads(model: PreTrainedModel) -> PreTrainedModel:
    """``model`` (freshly built from a saved config) with the heads its config records as pruned removed again, in
    the order they were pruned, so that the saved weights fit it (``cache.load_model_dir``'s ``rebuild``)."""
    plans = getattr(model.config, PRUNED_HEADS_KEY, None) or []
    setattr(model.config, PRUNED_HEADS_KEY, [])
    for plan in plans:
        model = prune_heads(model, {int(layer): heads for layer, heads in plan})
    return model


def _remove_heads(root: nn.Module, parts: LayerParts, heads: list[int]) -> None:
    d, keep = parts.head_size, [h for h in range(parts.num_heads) if h not in heads]
    index = torch.cat([torch.arange(h * d, (h + 1) * d) for h in keep])  # the surviving heads' rows
    for lin in parts.qkv:
        _replace(root, lin, prune_linear_layer(lin, index, dim=0))
    _replace(root, parts.out, prune_linear_layer(parts.out, index, dim=1))
    for attr in ("num_attention_heads", "n_heads"):  # the attention reshapes with -1 heads; keep these honest
        if hasattr(parts.attention, attr):
            setattr(parts.attention, attr, len(keep))
    if hasattr(parts.attention, "all_head_size"):
        parts.attention.all_head_size = len(keep) * d


# --------------------------------------------------------------------------------------------
# Structured: feed-forward neurons and whole layers
# --------------------------------------------------------------------------------------------


def prune_ffn_neurons(model: PreTrainedModel, fraction: float) -> PreTrainedModel:
    """A copy whose feed-forward blocks lose the ``fraction`` of neurons with the smallest weights.

    A neuron is one row of the up projection and one column of the down projection; its score is
    the product of their L2 norms (a weight-magnitude proxy, no data needed). Every block keeps
    the same number, so the config's intermediate size is updated and the copy saves and loads
    with ``save_pretrained`` / ``from_pretrained``.
    """
    fraction = check_fraction(fraction, "fraction")
    pruned = copy.deepcopy(model)
    size = _ffn_size(pruned.config)
    keep_n = max(1, size - round(fraction * size))
    for parts in layer_parts(pruned):
        for up, down in parts.ffn:
            score = up.weight.detach().norm(dim=1) * down.weight.detach().norm(dim=0)  # (intermediate,)
            keep = score.topk(keep_n).indices.sort().values
            _replace(pruned, up, prune_linear_layer(up, keep, dim=0))
            _replace(pruned, down, prune_linear_layer(down, keep, dim=1))
    name = "intermediate_size" if hasattr(pruned.config, "intermediate_size") else "hidden_dim"
    setattr(pruned.config, name, keep_n)
    return pruned


def drop_layers(model: PreTrainedModel, layers: Iterable[int]) -> PreTrainedModel:
    """A copy without the given encoder layers (e.g. ``[1, 3, 5]``); ``num_hidden_layers`` is updated.

    The copy saves and loads with ``save_pretrained`` / ``from_pretrained``.
    """
    kept_from = encoder_layers(model)
    drop = sorted(set(int(i) for i in layers))
    bad = [i for i in drop if not 0 <= i < len(kept_from)]
    if bad:
        raise ValueError(f"Layer(s) {bad} do not exist: the model has layers 0…{len(kept_from) - 1}.")
    if len(drop) == len(kept_from):
        raise ValueError(f"Dropping all {len(drop)} layers would leave no encoder. Fix: keep at least one.")
    pruned = copy.deepcopy(model)
    old = encoder_layers(pruned)
    holder = next(m for m in pruned.modules()
                  if isinstance(m, nn.ModuleList) and len(m) == len(old) and all(a is b for a, b in zip(m, old)))
    kept = nn.ModuleList([layer for i, layer in enumerate(old) if i not in drop])
    _replace(pruned, holder, kept)
    pruned.config.num_hidden_layers = len(kept)  # DistilBertConfig maps this name to n_layers
    for module in pruned.modules():  # DistilBERT's Transformer keeps its own count
        if module is not kept and isinstance(getattr(module, "n_layers", None), int):
            module.n_layers = len(kept)
    return pruned


def middle_out(num_layers: int) -> list[int]:
    """Layer indices, middle ones first: dropping middle layers hurts a fine-tuned encoder least.

    (Measured on minilm-l6 without retraining: dropping layers 4 and 5 leaves ~30 % accuracy,
    dropping 2 and 3 leaves ~92 %; the first and last layers matter most.)
    """
    return sorted(range(num_layers), key=lambda i: (abs(i - (num_layers - 1) / 2), i))


def layers_to_drop(num_layers: int, fraction: float) -> list[int]:
    """The ``fraction`` of ``num_layers`` encoder layers to drop, middle ones first (``middle_out``), sorted.

    At least one layer stays, whatever the fraction.
    """
    count = min(round(check_fraction(fraction, "fraction") * num_layers), num_layers - 1)
    return sorted(middle_out(num_layers)[:count])


# --------------------------------------------------------------------------------------------
# What a setting removed, per layer and role
# --------------------------------------------------------------------------------------------


def removal_table(model: nn.Module, original: pd.DataFrame, kept_layers: Sequence[int] | None = None) -> pd.DataFrame:
    """Per layer and role of the unpruned model: params, nonzero (left in ``model``), removed (share gone).

    ``original`` is ``sparsity_table`` of the unpruned model; ``kept_layers[i]`` is the original
    index of ``model``'s layer i (after ``drop_layers``; default: every layer kept). Modules cut
    out entirely count as removed.
    """
    kept = list(range(len(encoder_layers(model)))) if kept_layers is None else list(kept_layers)
    nonzero = {(kept[i], name): int(torch.count_nonzero(m.weight)) for i, name, m in encoder_linears(model)}
    table = original[["layer", "module", "role", "params"]]
    table = table.assign(nonzero=[nonzero.get((r.layer, r.module), 0) for r in table.itertuples()])
    table = table.groupby(["layer", "role"], as_index=False)[["params", "nonzero"]].sum()
    return table.assign(removed=1 - table["nonzero"] / table["params"])


def removed_share(table: pd.DataFrame) -> float:
    """Share of the encoder's Linear weights gone (zeroed or cut out), from a ``removal_table``."""
    return float(1 - table["nonzero"].sum() / table["params"].sum())


# --------------------------------------------------------------------------------------------
# Recovery: a short fine-tune that keeps the zeros at zero
# --------------------------------------------------------------------------------------------


def recover(model: PreTrainedModel, tokenizer, splits, config: TrainConfig = RECOVERY_CONFIG,
            progress: bool = True) -> TrainResult:
    """Fine-tune a pruned model in place (``train_classifier``) while its pruned weights stay zero.

    Without care, training would regrow the zeros of unstructured pruning. So every encoder
    Linear weight that holds zeros gets a fixed mask (``prune.custom_from_mask``) for the run,
    made permanent again at the end. Structurally pruned models simply train as they are.
    """
    masked = []
    for _, _, m in encoder_linears(model):
        if bool((m.weight == 0).any()):
            prune.custom_from_mask(m, "weight", mask=m.weight.detach() != 0)
            masked.append(m)
    try:
        return train_classifier(model, tokenizer, splits, config, progress=progress)
    finally:
        for m in masked:
            prune.remove(m, "weight")


__all__ = [
    "LayerParts", "PRUNED_HEADS_KEY", "PruningReport", "RECOVERY_CONFIG", "check_fraction", "csr_or_dense_bytes",
    "drop_layers", "encoder_linears", "even_heads", "head_importance", "heads_per_layer", "importance_batches",
    "layer_parts", "layers_to_drop", "least_important_heads", "magnitude_mask_", "magnitude_prune",
    "magnitude_threshold", "middle_out", "prune_ffn_neurons", "prune_heads", "pruning_report", "recover",
    "removal_table", "removed_share", "restore_pruned_heads", "sparse_size_mb", "sparsity_table", "tensor_bytes",
]
