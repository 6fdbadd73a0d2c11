"""minikit.static_int8 on a tiny random BERT with the embedded tokenizer: static int8 (QDQ) against PyTorch, the
op types kept in float, and every bad calibration set or setting refused with its fix."""

from __future__ import annotations

import datasets
import numpy as np
import pandas as pd
import onnx
import pytest
import torch
from helpers import make_splits

import minikit
from minikit.errors import DataError, OnnxMismatchError
from minikit.quantization import INT8_TOLERANCE, check_onnx, export_onnx
from minikit import static_int8
from minikit.static_int8 import FLOAT_OP_TYPES, calibration_texts, float_kept_nodes, quantize_static_onnx


@pytest.fixture(scope="module")
def splits() -> datasets.DatasetDict:
    return make_splits()


@pytest.fixture(scope="module")
def setup(tokenizer, splits, tmp_path_factory):
    """(model, its float ONNX file, real tokenized inputs with a padded row) for a 3-topic tiny BERT."""
    from transformers import BertConfig

    config = BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                        vocab_size=tokenizer.vocab_size, max_position_embeddings=128)
    model = minikit.build_model(config, num_labels=3, seed=0)
    model.config.id2label = dict(enumerate(splits["train"].features["label"].names))
    encoded = tokenizer(splits["validation"]["text"][:6], padding=True, return_tensors="pt")
    inputs = {k: encoded[k] for k in ("input_ids", "attention_mask")}
    return model, export_onnx(model, tmp_path_factory.mktemp("static") / "model.onnx"), inputs


def _dequantized_inputs(path, op_types) -> int:
    graph = onnx.load(str(path)).graph
    dequantized = {o for n in graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    return sum(i in dequantized for n in graph.node if n.op_type in op_types for i in n.input)


def test_static_int8_is_smaller_and_agrees_with_pytorch(setup, tokenizer, splits, tmp_path):
    model, fp32, inputs = setup
    out = quantize_static_onnx(fp32, tmp_path / "static.onnx", model, tokenizer, splits["train"], inputs=inputs)
    graph = onnx.load(str(out)).graph
    assert sum(n.op_type == "QuantizeLinear" for n in graph.node) > 0  # QDQ format: activations quantized
    assert sum(n.op_type == "DequantizeLinear" for n in graph.node) > 0
    assert out.stat().st_size < 0.7 * fp32.stat().st_size  # the embedding table and the weights are int8
    gap = check_onnx(out, model, inputs, INT8_TOLERANCE)
    assert 0 < gap  # int8 really rounded something, and stayed within the course's int8 tolerance


def test_the_float_op_types_stay_float_unless_asked(setup, tokenizer, splits, tmp_path):
    model, fp32, inputs = setup
    kept = quantize_static_onnx(fp32, tmp_path / "kept.onnx", model, tokenizer, splits["train"]["text"])
    present = float_kept_nodes(kept, FLOAT_OP_TYPES)
    assert set(present) >= {"LayerNormalization", "Softmax", "Erf"}  # what an unfused BERT export holds
    graph = onnx.load(str(kept)).graph
    assert present == {t: sum(n.op_type == t for n in graph.node) for t in present}  # all of them kept float
    assert _dequantized_inputs(kept, FLOAT_OP_TYPES) == 0
    everything = quantize_static_onnx(fp32, tmp_path / "all.onnx", model, tokenizer, splits["train"],
                                      keep_float=(), check=False)
    assert _dequantized_inputs(everything, ("LayerNormalization",)) > 0  # quantized when nothing is kept
    assert float_kept_nodes(everything, FLOAT_OP_TYPES)["LayerNormalization"] == 0


def test_a_check_beyond_tolerance_is_refused_with_the_fix(setup, tokenizer, splits, tmp_path):
    model, fp32, inputs = setup
    with pytest.raises(OnnxMismatchError, match="keep LayerNorm/Softmax/GELU in float"):
        quantize_static_onnx(fp32, tmp_path / "s.onnx", model, tokenizer, splits["train"], inputs=inputs,
                             tolerance=(0.0, 0.0))
    assert (tmp_path / "s.onnx").is_file()  # written, for inspection, but refused


@pytest.mark.parametrize("calibration, message", [
    ([], "empty"),
    ((t for t in ()), "empty"),
    ([1, 2, 3], "not texts .*item 0, a int"),
    (["a text", None], "item 1, a NoneType"),
    (["  "], "blank"),
    ("one text", "not a list of texts"),
    (42, "not a list of texts"),
])
def test_bad_calibration_texts_are_refused(setup, calibration, message):
    with pytest.raises(DataError, match=message):
        calibration_texts(calibration, setup[0])


def test_a_calibration_set_of_another_task_or_split_is_refused(setup, splits, tokenizer, tmp_path):
    model, fp32, _ = setup
    other = datasets.Dataset.from_dict(
        {"text": ["great film", "dull film"], "label": [0, 1]},
        features=datasets.Features({"text": datasets.Value("string"),
                                    "label": datasets.ClassLabel(names=["negative", "positive"])}))
    with pytest.raises(DataError, match=r"another task.*\['negative', 'positive'\].*Fix"):
        quantize_static_onnx(fp32, tmp_path / "s.onnx", model, tokenizer, other)
    with pytest.raises(DataError, match=r"DatasetDict.*splits\['train'\]"):
        calibration_texts(splits, model)
    test_split = datasets.Dataset.from_dict(splits["test"].to_dict(), features=splits["test"].features,
                                            split=datasets.Split.TEST)
    with pytest.raises(DataError, match="test split"):
        calibration_texts(test_split, model)
    with pytest.raises(DataError, match="no 'text'"):
        calibration_texts(splits["train"].rename_column("text", "body"), model)
    assert not (tmp_path / "s.onnx").exists()  # refused before any work


def test_label_names_unknown_to_the_model_compare_the_class_count(tiny_bert_config, splits):
    model = minikit.build_model(tiny_bert_config(), num_labels=3, seed=0)  # LABEL_0…LABEL_2: names unknown
    assert len(calibration_texts(splits["train"], model, n=5)) == 5
    model4 = minikit.build_model(tiny_bert_config(), num_labels=4, seed=0)
    with pytest.raises(DataError, match="another task"):
        calibration_texts(splits["train"], model4)


@pytest.mark.parametrize("bits", [4, 16, 8.5, True])
def test_bits_other_than_8_are_refused(setup, tokenizer, splits, tmp_path, bits):
    model, fp32, _ = setup
    with pytest.raises(ValueError, match="int8 only. Fix: bits=8"):
        quantize_static_onnx(fp32, tmp_path / "s.onnx", model, tokenizer, splits["train"], bits=bits)


@pytest.mark.parametrize("keep, error, message", [
    (["LayerNorm"], ValueError, r"\['LayerNorm'\].*not ONNX or ONNX Runtime operator types"),
    (["softmax"], ValueError, "case-sensitive"),
    ("Softmax", TypeError, r"a list of ONNX operator types, e\.g\. \['Softmax'\]"),
])
def test_unknown_float_op_types_are_refused(setup, tokenizer, splits, tmp_path, keep, error, message):
    model, fp32, _ = setup
    with pytest.raises(error, match=message):
        quantize_static_onnx(fp32, tmp_path / "s.onnx", model, tokenizer, splits["train"], keep_float=keep)


def test_a_missing_onnx_file_says_to_export_first(setup, tokenizer, splits, tmp_path):
    with pytest.raises(FileNotFoundError, match="export_onnx"):
        quantize_static_onnx(tmp_path / "none.onnx", tmp_path / "s.onnx", setup[0], tokenizer, splits["train"])


def test_calibration_reads_only_the_first_n_texts(setup, splits):
    texts = calibration_texts(splits["train"], setup[0], n=7)
    assert texts == list(splits["train"]["text"])[:7]
    assert len(calibration_texts(splits["train"]["text"], setup[0], n=None)) == len(splits["train"])


def test_a_fused_graph_is_quantized_too(tokenizer, splits, tmp_path):
    """onnxruntime.transformers.optimizer's fused graph (Attention, SkipLayerNormalization…): contrib ops whose
    outputs ONNX's shape inference cannot type; without symbolic shape inference they get no ranges."""
    from onnxruntime.transformers.optimizer import optimize_model
    from transformers import BertConfig

    config = BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                        vocab_size=tokenizer.vocab_size, max_position_embeddings=128, attn_implementation="eager")
    model = minikit.build_model(config, num_labels=3, seed=0)
    model.config._attn_implementation = "eager"  # the fuser recognises the eager attention's graph
    with torch.no_grad():  # distinct LayerNorm and bias vectors, as trained ones are (equal ones are shared in ONNX)
        for p in model.parameters():
            if p.dim() == 1:
                p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())) * 0.1)
    fused = optimize_model(str(export_onnx(model, tmp_path / "model.onnx")), model_type="bert", num_heads=2,
                           hidden_size=32)
    fused.save_model_to_file(str(tmp_path / "fused.onnx"))
    fused_ops = {n.op_type for n in onnx.load(str(tmp_path / "fused.onnx")).graph.node}
    assert {"Attention", "SkipLayerNormalization"} <= fused_ops
    encoded = tokenizer(splits["validation"]["text"][:6], padding=True, return_tensors="pt")
    inputs = {k: encoded[k] for k in ("input_ids", "attention_mask")}
    out = quantize_static_onnx(tmp_path / "fused.onnx", tmp_path / "static.onnx", model, tokenizer, splits["train"],
                               inputs=inputs)
    assert 0 < check_onnx(out, model, inputs, INT8_TOLERANCE)
    assert sum(n.op_type == "QuantizeLinear" for n in onnx.load(str(out)).graph.node) > 0


def test_exclusion_settings_quantize_one_group_at_a_time():
    from minikit.static_int8 import KEPT_ALL, KEPT_NONE, OP_GROUPS, exclusion_settings

    settings = exclusion_settings()
    assert settings[KEPT_ALL] == FLOAT_OP_TYPES and settings[KEPT_NONE] == ()
    for group, types in OP_GROUPS.items():  # quantized alone: its op types leave the list, the others stay
        kept = settings[f"{group} quantized"]
        assert not set(kept) & set(types) and set(kept) | set(types) == set(FLOAT_OP_TYPES)
    assert set().union(*OP_GROUPS.values()) == set(FLOAT_OP_TYPES)  # every op type kept float belongs to a group


def test_exclusion_runs_score_each_setting_and_are_cached(setup, tokenizer, splits, tmp_path, monkeypatch):
    from minikit import static_int8 as S

    monkeypatch.setenv("MINIKIT_CACHE", str(tmp_path / "cache"))
    model, _, _ = setup
    baseline = type("Tuned", (), {"model": model, "tokenizer": tokenizer, "splits": splits})()
    runs = S.exclusion_runs(baseline, n_calibration=8).set_index("setting")
    assert list(runs.index) == ["float32 (ONNX)", *S.exclusion_settings()]
    with torch.inference_mode():  # the float export's predictions are the model's own
        enc = tokenizer(list(splits["test"]["text"]), padding=True, return_tensors="pt")
        expected = (model(**enc).logits.argmax(-1).numpy() == splits["test"]["label"]).astype(int).tolist()
    assert runs.loc["float32 (ONNX)", "correct"] == expected and runs.loc["float32 (ONNX)", "max_logit_gap"] < 1e-3
    assert (runs["n"] == len(splits["test"])).all() and runs["accuracy"].between(runs["low"], runs["high"]).all()
    graph_ops = {n.op_type for n in onnx.load(str(setup[1])).graph.node} & set(FLOAT_OP_TYPES)
    assert runs.loc[S.KEPT_ALL, "float_nodes"] > runs.loc["LayerNorm quantized", "float_nodes"] > 0
    assert runs.loc[S.KEPT_NONE, "float_nodes"] == 0 and graph_ops
    for group in S.OP_GROUPS:  # each group quantized alone: fewer nodes float, a calibrated step at its inputs
        row = runs.loc[f"{group} quantized"]
        assert 0 < row["float_nodes"] < runs.loc[S.KEPT_ALL, "float_nodes"] and row["input_step"] > 0, group
    assert np.isnan(runs.loc[S.KEPT_ALL, "input_step"]) and np.isnan(runs.loc[S.KEPT_NONE, "input_step"])
    assert runs.loc[S.KEPT_NONE, "max_logit_gap"] > 0  # int8 rounded something
    monkeypatch.setattr(S, "quantize_static_onnx", lambda *a, **k: pytest.fail("a cached run quantized again"))
    again = S.exclusion_runs(baseline, n_calibration=8).set_index("setting")
    assert again["correct"].tolist() == runs["correct"].tolist()


def test_activation_spread_measures_layernorm_and_gelu_inputs(setup, tokenizer, splits):
    from minikit.static_int8 import activation_spread

    model = setup[0]
    texts = list(splits["validation"]["text"])[:3]
    spread = activation_spread(model, tokenizer, texts)
    first = []  # the first LayerNorm's own input, captured by hand: its step is one of the nodes' steps
    hook = next(m for m in model.modules() if isinstance(m, torch.nn.LayerNorm)).register_forward_hook(
        lambda m, a, o: first.append(a[0].flatten()))
    with torch.inference_mode():
        for text in texts:
            model(**tokenizer(text, return_tensors="pt"))
    hook.remove()
    x = torch.cat(first)
    own_step = (max(float(x.max()), 0.0) - min(float(x.min()), 0.0)) / 255
    pooled_step = (spread.loc["LayerNorm input", "max"] - spread.loc["LayerNorm input", "min"]) / 255
    assert spread.loc["LayerNorm input", "median step"] <= max(own_step, spread.loc["LayerNorm input", "median step"])
    assert own_step < pooled_step and own_step <= spread.loc["LayerNorm input", "largest step"] + 1e-9
    for bad in ("one text", []):
        with pytest.raises(ValueError, match="non-empty list of texts. Fix"):
            activation_spread(model, tokenizer, bad)
    assert list(spread.index) == ["LayerNorm input", "GELU input"]
    assert spread.loc["LayerNorm input", "nodes"] == 2 * 2 + 1 and spread.loc["GELU input", "nodes"] == 2
    assert (spread["min"] < 0).all() and (spread["max"] > 0).all()
    assert (spread["largest step"] <= (spread["max"] - spread["min"]) / 255 + 1e-9).all()  # each node's own range
    assert (spread["median step"] <= spread["largest step"]).all()
    assert spread["share below one step"].between(0, 1).all()


def test_most_harmful_group_names_the_largest_gap():
    from minikit.quantization_checks import most_harmful_group
    from minikit.static_int8 import KEPT_ALL

    runs = pd.DataFrame({"setting": [KEPT_ALL, "LayerNorm quantized", "Softmax quantized", "GELU quantized"],
                         "max_logit_gap": [0.2, 0.3, 0.9, 0.5]})
    assert most_harmful_group("softmax", runs).passed  # case does not matter
    wrong = most_harmful_group("GELU", runs)
    assert not wrong.passed and "Not GELU" in wrong.message
    assert not most_harmful_group("Attention", runs).passed
    assert "exclusion_runs" in most_harmful_group("Softmax", runs.drop(index=2)).message  # a table without the row
    assert "exclusion_runs" in most_harmful_group("Softmax", [1, 2]).message


def test_exclusion_runs_refuse_a_bare_model(setup):
    from minikit.static_int8 import exclusion_runs

    with pytest.raises(TypeError, match=r"got a BertForSequenceClassification.*Fix: pass minikit.get_baseline"):
        exclusion_runs(setup[0])


@pytest.mark.parametrize("n", [1, 2, 7, 1000, 1001])
def test_the_histogram_median_is_torch_median_of_the_half_values(n):
    x = (torch.randn(n, generator=torch.Generator().manual_seed(n)) * 5).abs().half()
    x[: n // 3] = 0  # zeros and repeats too
    histogram = torch.bincount(x.view(torch.int16).long(), minlength=static_int8._HALF_PATTERNS)
    assert static_int8._lower_median(histogram) == float(x.median())


def test_activation_spread_matches_a_by_hand_pass_that_holds_every_activation(setup, tokenizer, splits):
    model = setup[0]
    texts = list(splits["validation"]["text"])[:3]
    held = {"LayerNorm input": {}, "GELU input": {}}
    hooks = [m.register_forward_hook(lambda m, a, o: held["LayerNorm input"].setdefault(id(m), []).append(
        a[0].flatten().clone())) for m in model.modules() if isinstance(m, torch.nn.LayerNorm)]
    hooks += [layer.intermediate.intermediate_act_fn.register_forward_hook(
        lambda m, a, o: held["GELU input"].setdefault(id(m), []).append(a[0].flatten().clone()))
        for layer in minikit.models.encoder_layers(model)]
    with torch.inference_mode():
        for text in texts:
            model(**tokenizer(text, truncation=True, max_length=128, return_tensors="pt"))
    for hook in hooks:
        hook.remove()
    spread = static_int8.activation_spread(model, tokenizer, texts)
    for kind, nodes in held.items():
        values = [torch.cat(v) for v in nodes.values()]
        steps = [(max(float(x.max()), 0.0) - min(float(x.min()), 0.0)) / 255 for x in values]
        below = sum(int((x.abs() < step).sum()) for x, step in zip(values, steps)) / sum(x.numel() for x in values)
        median = float(torch.cat([x.abs().half() for x in values]).median())
        row = spread.loc[kind]
        assert row["nodes"] == len(values) and row["largest step"] == pytest.approx(max(steps))
        assert row["median step"] == pytest.approx(float(np.median(steps)))
        assert row["share below one step"] == pytest.approx(below) and row["median |x|"] == median
