"""Graph fusion in the int8 path (issue 24): fused where the fuser can, unfused with a notice where it cannot,
and every file checked against PyTorch."""

from __future__ import annotations

import json
import logging
import warnings

import pytest
import torch
from transformers import BertConfig, DistilBertConfig, MobileBertConfig

import minikit
from minikit import onnx_graph
from minikit import deployment
from minikit.deployment import export_for_serving
from minikit.models import CATALOG
from minikit.onnx_graph import FusionNotice, export_int8, fusion_table, op_counts
from minikit.quantization import EXPORT_TOLERANCE, INT8_TOLERANCE, check_onnx

CONFIGS = {
    "bert": lambda: BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                               vocab_size=1000, max_position_embeddings=128),
    "distilbert": lambda: DistilBertConfig(dim=32, n_layers=2, n_heads=2, hidden_dim=64, vocab_size=1000,
                                           max_position_embeddings=128),
    "mobilebert": lambda: MobileBertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                           intermediate_size=32, embedding_size=16, intra_bottleneck_size=16,
                                           true_hidden_size=16, vocab_size=1000, max_position_embeddings=128),
}


def _model(family: str):
    return minikit.build_model(CONFIGS[family](), num_labels=3, seed=0).eval()


def _inputs(seed: int = 1) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 1000, (3, 24), generator=generator)
    mask = torch.ones_like(ids)
    mask[-1, 12:] = 0  # a padded row: the fused Attention's mask path is checked too
    return {"input_ids": ids, "attention_mask": mask}


def test_every_catalog_family_has_an_optimizer_model_type():
    assert {card.family for card in CATALOG.values()} <= set(onnx_graph.OPTIMIZER_MODEL_TYPES)


@pytest.mark.parametrize("family", ["bert", "distilbert"])
def test_fused_int8_agrees_with_pytorch(family, tmp_path):
    model, inputs = _model(family), _inputs()
    attention = model.config._attn_implementation
    with warnings.catch_warnings():
        warnings.simplefilter("error", FusionNotice)  # these fuse: no notice
        graph = export_int8(model, tmp_path / "model.onnx", inputs)
    assert model.config._attn_implementation == attention  # eager was for the export only
    assert graph.fused and graph.notice is None
    assert graph.fused_ops["Attention"] == 2 and graph.fused_ops["SkipLayerNormalization"] == 4
    after = op_counts(graph.path)
    assert after["QAttention"] == 2 and "Softmax" not in after and "Softmax" in graph.ops_before  # int8 Attention
    assert after.get("MatMulInteger", 0) + after.get("DynamicQuantizeMatMul", 0) > 0  # the other matrices too
    gap = check_onnx(graph.path, model, inputs, INT8_TOLERANCE)
    assert gap > 0  # rounded, yet within INT8_TOLERANCE (check_onnx raises otherwise)


def test_op_counts_shrink_with_fusion(tmp_path):
    model, inputs = _model("bert"), _inputs()
    graph = export_int8(model, tmp_path / "fused.onnx", inputs, quantize=False)
    assert check_onnx(graph.path, model, inputs, EXPORT_TOLERANCE) < 1e-4
    table = fusion_table(graph.ops_before, graph.ops_after)
    assert table.loc["all nodes", "after"] < table.loc["all nodes", "before"]
    for op in ("Attention", "SkipLayerNormalization", "BiasGelu", "EmbedLayerNormalization"):
        assert table.loc[op, "before"] == 0 and table.loc[op, "after"] >= 1
    assert table.loc["Erf", "after"] == 0 < table.loc["Erf", "before"]  # GELU's Erf went into BiasGelu


def test_unfusable_mobilebert_falls_back_with_a_notice(tmp_path):
    model, inputs = _model("mobilebert"), _inputs()
    with pytest.warns(FusionNotice, match=r"MobileBert.*no pattern to fuse"):
        graph = export_int8(model, tmp_path / "model.onnx", inputs)
    assert not graph.fused and graph.fused_ops == {} and "mobilebert" in graph.notice
    assert not set(onnx_graph.FUSED_OP_TYPES) & set(op_counts(graph.path))
    check_onnx(graph.path, model, inputs, INT8_TOLERANCE)


def test_a_fuser_failure_falls_back(tmp_path, monkeypatch):
    import onnxruntime.transformers.optimizer as optimizer

    def broken(*args, **kwargs):
        raise RuntimeError("planted failure")

    monkeypatch.setattr(optimizer, "optimize_model", broken)
    model, inputs = _model("bert"), _inputs()
    with pytest.warns(FusionNotice, match="optimizer failed.*planted failure"):
        graph = export_int8(model, tmp_path / "model.onnx", inputs)
    assert not graph.fused
    check_onnx(graph.path, model, inputs, INT8_TOLERANCE)


def _pruned_minilm_shape(plan):
    config = CONFIGS["bert"]()
    config.num_attention_heads, config.hidden_size = 12, 384  # MiniLM's 12 heads of 32
    model = minikit.build_model(config, num_labels=3, seed=0).eval()
    return minikit.pruning.prune_heads(model, plan).eval()


def test_heads_pruned_evenly_are_fused(tmp_path, caplog):
    """Six of twelve heads pruned in every layer: the fuser is told the 6 heads (192 wide) each layer has now, not
    the config's 12 (told 12, its fused graph's logits were wrong and the check caught it)."""
    model, inputs = _pruned_minilm_shape({0: [0, 1, 2, 3, 4, 5], 1: [1, 3, 5, 7, 9, 11]}), _inputs()
    with warnings.catch_warnings():
        warnings.simplefilter("error", FusionNotice)
        graph = export_int8(model, tmp_path / "model.onnx", inputs)
    assert graph.fused and graph.fused_ops["Attention"] == 2
    check_onnx(graph.path, model, inputs, INT8_TOLERANCE)
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]  # the fuser's advice is quiet


def test_heads_pruned_unevenly_fall_back_instead_of_failing(tmp_path):
    """4 heads left in one layer and 8 in the other: no single head count fits, the fused graph fails to load in
    ONNX Runtime, and the export falls back to the unfused graph with a notice; its answers stay right."""
    model, inputs = _pruned_minilm_shape({0: [0, 1, 2, 3], 1: [0, 1, 2, 3, 4, 5, 6, 7]}), _inputs()
    with pytest.warns(FusionNotice, match="BertForSequenceClassification.*unfused.*ONNX Runtime cannot run"):
        graph = export_int8(model, tmp_path / "model.onnx", inputs)
    assert not graph.fused and "cannot run the fused graph" in graph.notice
    check_onnx(graph.path, model, inputs, INT8_TOLERANCE)


def test_a_fused_graph_failing_the_int8_check_falls_back_to_the_unfused_export(tmp_path, monkeypatch):
    from minikit.errors import OnnxMismatchError

    model, inputs = _model("bert"), _inputs()
    real, calls = onnx_graph.quantize_onnx, []

    def quantize(onnx_path, *args, **kwargs):
        calls.append(op_counts(onnx_path))
        if len(calls) == 1:  # the fused graph: as if its int8 copy disagreed with PyTorch
            raise OnnxMismatchError("largest |logit difference| 9.9 (stand-in)")
        return real(onnx_path, *args, **kwargs)

    monkeypatch.setattr(onnx_graph, "quantize_onnx", quantize)
    with pytest.warns(FusionNotice, match="unfused: its int8 copy failed the check.*stand-in"):
        graph = export_int8(model, tmp_path / "model.onnx", inputs)
    assert "Attention" in calls[0] and "Attention" not in calls[1]  # the fused graph first, then the unfused one
    unfused = export_int8(model, tmp_path / "unfused.onnx", inputs, fuse=False, quantize=False)
    assert not graph.fused and graph.ops_before == calls[1] == unfused.ops_before  # the same graph as fuse=False
    check_onnx(graph.path, model, inputs, INT8_TOLERANCE)


def test_unknown_architecture_is_exported_unfused(tmp_path, monkeypatch):
    monkeypatch.setattr(onnx_graph, "OPTIMIZER_MODEL_TYPES", {})
    model = _model("bert")
    with pytest.warns(FusionNotice, match="no optimizer model_type for 'bert'"):
        graph = export_int8(model, tmp_path / "model.onnx", _inputs())
    assert not graph.fused


def test_served_manifest_records_the_fusion(tokenizer, tmp_path):
    config = CONFIGS["bert"]()
    config.vocab_size = len(tokenizer)
    model = minikit.build_model(config, num_labels=3, seed=0)
    folder = export_for_serving(model, tokenizer, tmp_path / "served", max_length=64)
    graph = json.loads((folder / "manifest.json").read_text())["graph"]
    assert graph["fused"] and graph["fused_ops"]["Attention"] == 2 and graph["nodes_after"] < graph["nodes_before"]
    unfused = export_for_serving(model, tokenizer, tmp_path / "unfused", max_length=64, fuse=False)
    assert json.loads((unfused / "manifest.json").read_text())["graph"]["fused"] is False


def test_fusion_comparison_counts_and_times_both_graphs(tokenizer, tmp_path):
    from datasets import Dataset

    config = CONFIGS["bert"]()
    config.vocab_size = len(tokenizer)
    model = minikit.build_model(config, num_labels=3, seed=0)
    folder = export_for_serving(model, tokenizer, tmp_path / "served", max_length=32)
    data = Dataset.from_dict({"text": ["Shares fell.", "The striker scored twice.", "Oil prices rose."] * 2,
                              "label": [0, 1, 2] * 2})
    ops, table = deployment.fusion_comparison(model, tokenizer, folder, data, tmp_path, repeats=2, cache=False)
    assert ops.loc["QAttention", "after"] == 2 and ops.loc["QAttention", "before"] == 0 and (ops["change"] != 0).all()
    assert table.index.tolist() == ["int8 unfused", "int8 fused"]
    assert table.loc["int8 fused", "accuracy"] == table.loc["int8 unfused", "accuracy"]  # same answers, other graph
