"""Quality metrics, thresholds, mistakes, energy, the Benchmark and token attributions.

Metrics are checked against scikit-learn's; the Benchmark runs tiny random BERTs on a tiny
hand-made dataset, so its accuracies are chance, and timings are only checked for consistency
(other processes may share the machine), never for which variant is faster.
"""

from __future__ import annotations

import copy
import itertools
import warnings

import altair as alt
import datasets
import numpy as np
import pandas as pd
import pytest
import torch
from sklearn import metrics as skm
from transformers import BertConfig, DistilBertConfig

import minikit
from minikit import charts, widgets
from minikit.attribution import token_attributions
from minikit.benchmark import Benchmark
from minikit.metrics import (
    accuracy,
    class_probabilities,
    classification_report,
    confusion_matrix,
    macro_f1,
    misclassified,
    precision_recall_at_threshold,
    precision_recall_curve_table,
    subset_accuracy,
)
from minikit.profiling import (
    ENERGY_ESTIMATE,
    JOULES_PER_FLOP,
    energy_reading,
    estimate_energy_j,
    forward_flops,
    rapl_joules,
    read_rapl_uj,
)

LABELS = ["business", "entertainment", "politics", "sport", "tech"]


@pytest.fixture(scope="module")
def labels() -> tuple[np.ndarray, np.ndarray]:
    """300 random labels and predictions that are right 60 % of the time; "tech" (4) is never predicted."""
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 5, 300)
    y_pred = np.minimum(np.where(rng.random(300) < 0.6, y_true, rng.integers(0, 5, 300)), 3)
    return y_true, y_pred


@pytest.fixture(scope="module")
def probs() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 4, 200)
    logits = rng.normal(size=(200, 4)) + 1.5 * np.eye(4)[y]  # informative, far from perfect
    return np.exp(logits) / np.exp(logits).sum(1, keepdims=True), y


# --- quality metrics ------------------------------------------------------------------------------


def test_confusion_matrix_and_scores_match_sklearn(labels):
    y_true, y_pred = labels
    cm = confusion_matrix(y_true, y_pred, 5)
    np.testing.assert_array_equal(cm, skm.confusion_matrix(y_true, y_pred, labels=range(5)))
    assert cm[:, 4].sum() == 0 and cm.sum() == 300
    assert accuracy(y_true, y_pred) == pytest.approx(skm.accuracy_score(y_true, y_pred))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # ours: 0/0 is 0, silently
        ours = macro_f1(y_true, y_pred)
    assert ours == pytest.approx(skm.f1_score(y_true, y_pred, average="macro", zero_division=0))


def test_classification_report_matches_sklearn(labels):
    y_true, y_pred = labels
    report = classification_report(y_true, y_pred, LABELS)
    ref = skm.classification_report(y_true, y_pred, labels=range(5), target_names=LABELS, output_dict=True,
                                    zero_division=0)
    assert list(report.index) == LABELS + ["accuracy", "macro avg", "weighted avg"]
    assert list(report.columns) == ["precision", "recall", "f1", "support"]
    for row in LABELS + ["macro avg", "weighted avg"]:
        expected = [ref[row]["precision"], ref[row]["recall"], ref[row]["f1-score"]]
        assert report.loc[row, ["precision", "recall", "f1"]].tolist() == pytest.approx(expected), row
        assert report.loc[row, "support"] == ref[row]["support"]
    assert report.loc["accuracy", "f1"] == pytest.approx(ref["accuracy"])
    assert report.loc["tech", ["precision", "recall", "f1"]].tolist() == [0.0, 0.0, 0.0]  # never predicted


def test_hand_computed_example():
    y_true, y_pred = [0, 0, 1, 1, 2], [0, 1, 1, 1, 0]
    np.testing.assert_array_equal(confusion_matrix(y_true, y_pred, 3), [[1, 1, 0], [0, 2, 0], [1, 0, 0]])
    report = classification_report(y_true, y_pred, ["a", "b", "c"])
    # a: 1 of 2 predicted a is right, 1 of 2 true a found; b: 2 of 3 right, all found; c: never predicted.
    assert report["precision"].iloc[:3].tolist() == pytest.approx([1 / 2, 2 / 3, 0])
    assert report["recall"].iloc[:3].tolist() == pytest.approx([1 / 2, 1, 0])
    assert report["f1"].iloc[:3].tolist() == pytest.approx([1 / 2, 0.8, 0])
    assert report.loc["accuracy", "f1"] == pytest.approx(3 / 5) == accuracy(y_true, y_pred)
    assert macro_f1(y_true, y_pred) == pytest.approx(1.3 / 3)
    assert report.loc["weighted avg", "f1"] == pytest.approx((2 * 0.5 + 2 * 0.8 + 0) / 5)


def test_macro_f1_counts_a_class_absent_from_both_only_when_asked():
    y_true, y_pred = [0, 0, 1, 1], [0, 1, 1, 1]
    assert macro_f1(y_true, y_pred) == pytest.approx(skm.f1_score(y_true, y_pred, average="macro"))
    assert macro_f1(y_true, y_pred, num_labels=3) == pytest.approx(
        skm.f1_score(y_true, y_pred, labels=[0, 1, 2], average="macro", zero_division=0))


def test_metric_errors_say_what_was_given():
    with pytest.raises(ValueError, match=r"argmax"):
        accuracy([0, 1], np.eye(2))
    with pytest.raises(ValueError, match=r"num_labels=2"):
        confusion_matrix([0, 1], [0, 2], 2)
    with pytest.raises(ValueError, match=r"3 labels but y_pred has 2"):
        macro_f1([0, 1, 1], [0, 1])


# --- thresholds and mistakes ----------------------------------------------------------------------


@pytest.mark.parametrize("threshold", [0.0, 0.2, 0.5, 0.8, 1.0])
def test_threshold_precision_recall_match_sklearn(probs, threshold):
    p, y = probs
    scores = precision_recall_at_threshold(p, y, 2, threshold)
    flagged = p[:, 2] >= threshold
    assert scores.precision == pytest.approx(skm.precision_score(y == 2, flagged, zero_division=0))
    assert scores.recall == pytest.approx(skm.recall_score(y == 2, flagged, zero_division=0))
    assert scores.f1 == pytest.approx(skm.f1_score(y == 2, flagged, zero_division=0))
    assert (scores.predicted, scores.positives) == (flagged.sum(), (y == 2).sum())


def test_precision_recall_table(probs):
    p, y = probs
    table = precision_recall_curve_table(p, y, 1)
    assert len(table) == 101 and {"threshold", "precision", "recall", "f1"} <= set(table.columns)
    assert table["recall"].is_monotonic_decreasing  # a higher bar flags fewer examples
    assert table["recall"].iloc[0] == 1.0 and table["predicted"].iloc[-1] == 0
    with pytest.raises(ValueError, match="softmax"):
        precision_recall_at_threshold(np.log(p), y, 1, 0.5)


def test_misclassified_lists_confident_mistakes_first(probs):
    p, y = probs
    pred = p.argmax(1)
    texts = [f"article number {i} " + "word " * 100 for i in range(len(y))]
    ids = [f"doc/{i}" for i in range(len(y))]
    table = misclassified(texts, ids, y, pred, p, ["a", "b", "c", "d"], k=10, snippet_chars=40)
    assert list(table.columns) == ["id", "true", "predicted", "confidence", "p_true", "text"]
    assert len(table) == 10 and table["confidence"].is_monotonic_decreasing
    assert (table["true"] != table["predicted"]).all()
    assert table["text"].str.len().max() <= 40 and table["text"].iloc[0].endswith("…")
    first = int(table["id"].iloc[0].split("/")[1])
    assert table["confidence"].iloc[0] == pytest.approx(p[first].max())
    assert table["p_true"].iloc[0] == pytest.approx(p[first, y[first]])
    assert len(misclassified(texts, ids, y, pred, p, ["a", "b", "c", "d"], k=None)) == (pred != y).sum()


# --- FLOPs and energy -----------------------------------------------------------------------------


def test_forward_flops_of_minilm_is_about_2_9_gflop():
    config = minikit.models.get_card("minilm-l6").config(5)
    assert forward_flops(config, seq_len=128) == pytest.approx(2.9e9, rel=0.10)
    assert forward_flops(config, 128, batch_size=4) == 4 * forward_flops(config, 128)
    same_in_distilbert_names = DistilBertConfig(dim=384, n_layers=6, n_heads=12, hidden_dim=1536)
    assert forward_flops(same_in_distilbert_names) == forward_flops(config)
    mobilebert = forward_flops(minikit.models.get_card("mobilebert").config())
    assert mobilebert == pytest.approx(5.7e9, rel=0.15)  # the MobileBERT paper's figure at 128 tokens
    with pytest.raises(ValueError, match="num_hidden_layers"):
        forward_flops(object())


def _fake_zone(root, name: str, energy_uj, max_uj: int = 1_000_000, label: str = "package-0"):
    zone = root / name
    zone.mkdir(parents=True, exist_ok=True)
    (zone / "energy_uj").write_text(f"{energy_uj}\n")
    (zone / "max_energy_range_uj").write_text(f"{max_uj}\n")
    (zone / "name").write_text(label + "\n")
    return zone


def test_rapl_reader_on_a_fake_sysfs(tmp_path):
    _fake_zone(tmp_path, "intel-rapl:0", 100_000)
    _fake_zone(tmp_path, "intel-rapl:0:0", 50_000, label="core")  # inside package 0: not counted again
    _fake_zone(tmp_path, "intel-rapl:1", 7, label="psys")  # whole platform: would count twice
    assert read_rapl_uj(tmp_path) == {"intel-rapl:0": (100_000, 1_000_000)}
    with energy_reading(tmp_path) as reading:
        _fake_zone(tmp_path, "intel-rapl:0", 700_000)  # 600 000 µJ later
    assert reading.source == "rapl" and reading.joules == pytest.approx(0.6) and reading.seconds >= 0


def test_rapl_counter_wrap_and_unreadable(tmp_path):
    before, after = {"intel-rapl:0": (900_000, 1_000_000)}, {"intel-rapl:0": (150_000, 1_000_000)}
    assert rapl_joules(before, after) == pytest.approx(0.25)  # 100 000 to the wrap, 150 000 after it
    assert read_rapl_uj(tmp_path / "absent") is None
    zone = _fake_zone(tmp_path, "intel-rapl:0", 5)
    (zone / "energy_uj").unlink()
    (zone / "energy_uj").mkdir()  # reading it fails like a root-only file does for a user
    assert read_rapl_uj(tmp_path) is None
    with energy_reading(tmp_path) as reading:
        pass
    assert reading.joules is None and reading.source == "unavailable"


def test_energy_estimate_is_labelled():
    estimate = estimate_energy_j(2.9e9)
    assert estimate.joules == pytest.approx(2.9e9 * JOULES_PER_FLOP) and estimate.source == ENERGY_ESTIMATE
    assert "estimate" in estimate.source


# --- Benchmark ------------------------------------------------------------------------------------

TEXTS = ["the market rose sharply as shares gained", "profits fell and the bank cut jobs",
         "the film won three awards at the festival", "the band released a new album",
         "the minister called an early election", "parliament voted against the new bill",
         "the striker scored twice in the final", "the team lost the cup match"]


@pytest.fixture(scope="module")
def tiny_dataset() -> datasets.Dataset:
    names = ["business", "entertainment", "politics", "sport"]
    features = datasets.Features({"id": datasets.Value("string"), "text": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=names)})
    texts = TEXTS + [t.replace("the ", "a ") for t in TEXTS]
    return datasets.Dataset.from_dict({"id": [f"t{i}" for i in range(16)], "text": texts,
                                       "label": [i // 2 for i in range(8)] * 2}, features=features)


@pytest.fixture(scope="module")
def tok():
    return minikit.load_tokenizer()


def _tiny_bert(tok, hidden: int, seed: int, **overrides):
    config = BertConfig(hidden_size=hidden, num_hidden_layers=2, num_attention_heads=2, intermediate_size=2 * hidden,
                        vocab_size=tok.vocab_size, max_position_embeddings=64, **overrides)
    return minikit.build_model(config, num_labels=4, seed=seed)


@pytest.fixture(scope="module")
def bench_models(tok):
    """Two tiny BERTs; large initial weights make them predict different classes for different texts."""
    return _tiny_bert(tok, 32, seed=0, initializer_range=0.5), _tiny_bert(tok, 64, seed=1, initializer_range=0.5)


@pytest.fixture(scope="module")
def bench(tiny_dataset, tok, bench_models, tmp_path_factory):
    small, wide = bench_models
    bench = Benchmark(tiny_dataset, tok, max_length=32, baseline="small", repeats=6, batch_size=8,
                      rapl_root=tmp_path_factory.mktemp("no-rapl"))
    bench.add("small", small).add("wide", wide)
    bench.run()
    return bench


def test_benchmark_table_and_ratios(bench, bench_models, tiny_dataset):
    table = bench.results
    assert list(table["name"]) == ["small", "wide"] and len(table.columns) == 23
    for column in ["accuracy", "macro_f1", "params_m", "nonzero_params_m", "size_mb", "latency_p50_ms",
                   "latency_p95_ms", "throughput", "peak_memory_mb", "energy_mj_per_example", "energy_source",
                   "size_ratio", "speedup", "accuracy_delta"]:
        assert column in table.columns, column
    base, wide = table.iloc[0], table.iloc[1]
    assert (base["size_ratio"], base["speedup"], base["accuracy_delta"]) == (1.0, 1.0, 0.0)
    assert wide["speedup"] == pytest.approx(base["latency_p50_ms"] / wide["latency_p50_ms"])
    assert wide["size_ratio"] == pytest.approx(wide["size_mb"] / base["size_mb"])
    assert wide["accuracy_delta"] == pytest.approx(100 * (wide["accuracy"] - base["accuracy"]))
    assert base["size_mb"] == pytest.approx(minikit.size_on_disk_mb(bench_models[0]))
    assert base["params_m"] == pytest.approx(minikit.count_parameters(bench_models[0]) / 1e6)
    assert (table["n_eval"] == len(tiny_dataset)).all() and (table["seq_len"] == 32).all()
    assert (table["latency_p95_ms"] >= table["latency_p50_ms"]).all() and (table["throughput"] > 0).all()
    assert (table["peak_memory_mb"] >= table["size_mb"]).all()
    # No RAPL in the fake root: the energy is the labelled FLOP estimate.
    assert (table["energy_source"] == ENERGY_ESTIMATE).all()
    expected_mj = forward_flops(bench_models[0].config, 32) * JOULES_PER_FLOP * 1e3
    assert base["energy_mj_per_example"] == pytest.approx(expected_mj)


def test_benchmark_accuracy_is_the_models_own(bench, bench_models, tiny_dataset, tok):
    enc = tok(list(tiny_dataset["text"]), truncation=True, max_length=32, padding=True, return_tensors="pt")
    with torch.inference_mode():
        predictions = bench_models[0](**enc).logits.argmax(-1).numpy()
    assert bench.results.iloc[0]["accuracy"] == pytest.approx(accuracy(tiny_dataset["label"], predictions))


def test_benchmark_second_run_adds_onnx_quantized_and_callable(bench, bench_models, tmp_path):
    small = bench_models[0]
    path = tmp_path / "small.onnx"
    ids = torch.ones(2, 8, dtype=torch.long)
    names = ["input_ids", "attention_mask", "token_type_ids"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(small, (ids, ids, torch.zeros_like(ids)), str(path), input_names=names,
                          output_names=["logits"], dynamic_axes={n: {0: "batch", 1: "tokens"} for n in names},
                          dynamo=False)  # torch 2.13's default (dynamo) exporter needs onnxscript, not installed
        quantized = torch.ao.quantization.quantize_dynamic(bench_models[1], {torch.nn.Linear}, dtype=torch.qint8)
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    first = bench.results.copy()
    bench.add("small-onnx", session, path=path).add("wide-int8", quantized)
    bench.add("fn", lambda batch: small(**{k: torch.from_numpy(v) for k, v in batch.items()}).logits, size_mb=1.5)
    table = bench.run()
    assert list(table["name"]) == ["small", "wide", "small-onnx", "wide-int8", "fn"]
    pd.testing.assert_frame_equal(table.iloc[:2], first)  # measured rows are kept, not re-measured
    rows = table.set_index("name")
    assert (rows.loc[["small-onnx", "wide-int8", "fn"], "run"] == 2).all()
    assert rows.loc["small-onnx", "accuracy"] == rows.loc["small", "accuracy"] == rows.loc["fn", "accuracy"]
    assert rows.loc["small-onnx", "size_mb"] == pytest.approx(path.stat().st_size / 1e6)
    assert rows.loc["small-onnx", "params_m"] == pytest.approx(rows.loc["small", "params_m"], rel=0.01)
    # The baseline was timed again beside the new variants: their speedups use that timing.
    onnx_row = rows.loc["small-onnx"]
    assert onnx_row["speedup"] == pytest.approx(onnx_row["baseline_p50_ms"] / onnx_row["latency_p50_ms"])
    assert rows.loc["wide-int8", "size_source"] == "torch.save"  # safetensors cannot hold packed int8
    assert rows.loc["wide-int8", "params_m"] == pytest.approx(rows.loc["wide", "params_m"])
    assert rows.loc["wide-int8", "size_mb"] < rows.loc["wide", "size_mb"]
    assert np.isnan(rows.loc["fn", "params_m"]) and rows.loc["fn", "size_source"] == "given"
    assert rows.loc["small-onnx", "energy_source"] == "unavailable"  # no config given: no FLOP count
    assert len(bench.run()) == 5  # nothing new: nothing measured


def test_benchmark_add_errors(bench, tiny_dataset, tok):
    with pytest.raises(ValueError, match="already added"):
        bench.add("small", lambda b: None, size_mb=1.0)
    with pytest.raises(ValueError, match="size_mb"):
        Benchmark(tiny_dataset, tok).add("fn", lambda batch: batch["input_ids"])
    with pytest.raises(FileNotFoundError, match="missing.onnx"):
        Benchmark(tiny_dataset, tok).add("x", "missing.onnx")
    with pytest.raises(ValueError, match="columns"):
        Benchmark(tiny_dataset.remove_columns("label"), tok)


def test_benchmark_uses_rapl_when_readable(tiny_dataset, tok, bench_models, tmp_path):
    _fake_zone(tmp_path, "intel-rapl:0", 1000)  # a counter that does not move: 0 J, but measured
    bench = Benchmark(tiny_dataset, tok, max_length=16, n_eval=4, repeats=1, warmup=0, batch_size=2,
                      batch_repeats=1, rapl_root=tmp_path).add("small", bench_models[0])
    row = bench.run().iloc[0]
    assert row["energy_source"] == "rapl" and row["energy_mj_per_example"] == 0.0 and row["n_eval"] == 4


# --- attributions ---------------------------------------------------------------------------------

TEXT = "Unbelievable results: the economy grew faster than expected."


def test_token_attributions_one_row_per_token(tok, bench_models):
    model = bench_models[0]
    table = token_attributions(model, tok, TEXT)
    tokens = tok.convert_ids_to_tokens(tok(TEXT)["input_ids"])
    assert list(table["token"]) == tokens and list(table["position"]) == list(range(len(tokens)))
    assert list(table.columns[:4]) == ["token", "position", "attribution", "normalised"]
    assert table["normalised"].abs().max() == pytest.approx(1.0)
    assert table.attrs["target"] == int(model(**tok(TEXT, return_tensors="pt")).logits.argmax())
    assert all(p.grad is None for p in model.parameters())  # attributions leave the weights' .grad alone


def test_integrated_gradients_completeness(tok):
    # Large random weights make the model far from linear, so completeness is a real test.
    model = _tiny_bert(tok, 32, seed=3, initializer_range=0.5)
    table = token_attributions(model, tok, TEXT, target=1, method="integrated_gradients", steps=64)
    difference = table.attrs["logit"] - table.attrs["baseline_logit"]
    assert abs(difference) > 1e-2
    assert table["attribution"].sum() == pytest.approx(difference, rel=0.02)
    assert table.loc[table["special"], "attribution"].abs().max() == 0.0  # special tokens are their own baseline
    coarse = token_attributions(model, tok, TEXT, target=1, method="integrated_gradients", steps=2)
    assert abs(coarse.attrs["delta"]) > abs(table.attrs["delta"])  # more steps, closer to the difference


def test_token_attributions_distilbert_and_merged_words(tok):
    config = DistilBertConfig(dim=32, n_layers=2, n_heads=2, hidden_dim=64, vocab_size=tok.vocab_size,
                              max_position_embeddings=64)
    model = minikit.build_model(config, num_labels=3, seed=0).train()
    pieces = token_attributions(model, tok, "Unbelievably, tokenization works.", target="LABEL_2")
    words = token_attributions(model, tok, "Unbelievably, tokenization works.", target="LABEL_2", merge_subwords=True)
    assert model.training  # put back as it was
    assert len(words) < len(pieces) and "tokenization" in list(words["token"])
    assert words["attribution"].sum() == pytest.approx(pieces["attribution"].sum(), abs=1e-6)
    assert pieces.attrs["target"] == 2
    with pytest.raises(ValueError, match="labels"):
        token_attributions(model, tok, "x", target="sport")


# --- charts and the widget ------------------------------------------------------------------------


def test_charts_build(labels, probs, bench, tok, bench_models):
    y_true, y_pred = labels
    spec = charts.confusion_matrix_chart(confusion_matrix(y_true, y_pred, 5), LABELS).to_dict()
    assert len(spec["datasets"][next(iter(spec["datasets"]))]) == 25
    p, y = probs
    pr = charts.precision_recall_chart(precision_recall_curve_table(p, y, 0), threshold=0.3).to_dict()
    assert {"name": "threshold", "value": 0.3} in pr["params"]  # a slider can link to it
    assert isinstance(charts.benchmark_chart(bench.results, bench.baseline), alt.HConcatChart)
    attributions = token_attributions(bench_models[0], tok, TEXT)
    assert isinstance(charts.attribution_chart(attributions, top_k=5), alt.Chart)
    with pytest.raises(ValueError, match="label names"):
        charts.confusion_matrix_chart(np.zeros((3, 3)), LABELS)


def test_subset_accuracy_scores_argmax_in_eval_mode_and_restores_the_mode():
    modes = []

    class Echo(torch.nn.Module):  # its logits are the batch's "x"
        def forward(self, x):
            modes.append(self.training)
            return type("Out", (), {"logits": x})()

    model = Echo().train()
    batches = [{"x": torch.tensor([[1.0, 0.0], [0.0, 1.0]])}, {"x": torch.tensor([[0.2, 0.9]])}]
    assert subset_accuracy(model, batches, [0, 0, 1]) == pytest.approx(2 / 3)  # predicted 0, 1, 1
    assert subset_accuracy(model, batches, np.array([0, 1, 1])) == 1.0
    assert modes == [False] * 4 and model.training  # dropout off while scoring, training mode back after


def test_class_probabilities_checks_the_shape_against_the_names():
    p, y = class_probabilities([[0.2, 0.8], [0.6, 0.4]], [1, 0], 2)
    assert isinstance(p, np.ndarray) and p.shape == (2, 2) and y.tolist() == [1, 0]
    for probs, n in (([[0.2, 0.8]], 3), ([0.2, 0.8], 2)):
        with pytest.raises(ValueError, match=f"but there are {n} label names"):
            class_probabilities(probs, [1], n)


def test_threshold_explorer(probs):
    p, y = probs
    explorer = widgets.ThresholdExplorer(p, y, ["a", "b", "c", "d"])
    scores = explorer.update(2, 0.4)
    assert scores == precision_recall_at_threshold(p, y, 2, 0.4)
    assert (explorer.dropdown.value, explorer.slider.value) == (2, 0.4) and "precision" in explorer.label.value
    assert explorer.table.equals(precision_recall_curve_table(p, y, 2))
    explorer.slider.value = 0.7  # the chart's parameter follows the slider (re-linked after the class change)
    assert explorer.chart.params.threshold == 0.7 and "0.70" in explorer.label.value


def test_benchmark_times_each_variant_in_bursts_of_calls_and_counts_every_repeat(tiny_dataset, tok, bench_models):
    small, wide = bench_models
    bench = Benchmark(tiny_dataset, tok, max_length=32, repeats=7, batch_repeats=1, batch_size=4, burst=3)
    bench.add("small", small).add("wide", wide)
    calls = []
    for v in bench._variants.values():
        predict = v.predict
        object.__setattr__(v, "predict", lambda batch, predict=predict, name=v.name: (calls.append(name), predict(batch))[1])
    timed = bench._time(list(bench._variants.values()), "single", repeats=7, warmup=0)
    assert {name: len(t[0]) for name, t in timed.items()} == {"small": 7, "wide": 7}
    # one warm-up call each, then rounds of 3, 3, 1 timed calls, each after one untimed call, in the
    # order A B, B A, A B
    runs = [(name, len(list(group))) for name, group in itertools.groupby(calls)]
    assert runs == [("small", 1), ("wide", 1), ("small", 4), ("wide", 8), ("small", 6), ("wide", 2)]
    with pytest.raises(ValueError, match="burst=0"):
        Benchmark(tiny_dataset, tok, burst=0)


# --- Benchmark(cache=True) -------------------------------------------------------------------------


def _cached_bench(tiny_dataset, tok, tmp_path, **kwargs):
    return Benchmark(tiny_dataset, tok, max_length=32, baseline="small", repeats=3, batch_size=8, batch_repeats=1,
                     rapl_root=tmp_path, cache=True, **kwargs)


def test_cached_benchmark_reads_the_same_run_back_and_refresh_measures_again(tiny_dataset, tok, bench_models,
                                                                             tmp_path, monkeypatch):
    monkeypatch.setenv("MINIKIT_CACHE", str(tmp_path / "cache"))
    small, wide = bench_models
    first = _cached_bench(tiny_dataset, tok, tmp_path).add("small", small).add("wide", wide).run()
    assert first["measured_at"].str.len().min() > 0

    def refuse(*args, **kwargs):
        raise AssertionError("a cached run must not be timed again")

    monkeypatch.setattr(Benchmark, "_time", refuse)
    again = _cached_bench(tiny_dataset, tok, tmp_path).add("small", small).add("wide", wide).run()
    pd.testing.assert_frame_equal(again, first)
    with pytest.raises(AssertionError, match="must not be timed"):
        _cached_bench(tiny_dataset, tok, tmp_path).add("small", small).add("wide", wide).run(refresh=True)
    monkeypatch.undo()
    monkeypatch.setenv("MINIKIT_CACHE", str(tmp_path / "cache"))
    fresh = _cached_bench(tiny_dataset, tok, tmp_path).add("small", small).add("wide", wide).run(refresh=True)
    assert fresh["latency_p50_ms"].tolist() != first["latency_p50_ms"].tolist()
    assert len(minikit.cache.entries("benchmarks")) == 1  # replaced, not added


def test_cached_benchmark_key_follows_weights_settings_and_data(tiny_dataset, tok, bench_models, tmp_path,
                                                                monkeypatch):
    monkeypatch.setenv("MINIKIT_CACHE", str(tmp_path / "cache"))
    small, wide = bench_models
    _cached_bench(tiny_dataset, tok, tmp_path).add("small", small).add("wide", wide).run()
    changed = copy.deepcopy(wide)
    with torch.no_grad():
        next(changed.parameters()).add_(1e-3)  # one weight moved: another model
    _cached_bench(tiny_dataset, tok, tmp_path).add("small", small).add("wide", changed).run()
    _cached_bench(tiny_dataset, tok, tmp_path, n_eval=8).add("small", small).add("wide", wide).run()
    other_text = tiny_dataset.map(lambda row, i: {"text": row["text"] + "!" if i == 0 else row["text"]},
                                  with_indices=True)
    _cached_bench(other_text, tok, tmp_path).add("small", small).add("wide", wide).run()
    assert len(minikit.cache.entries("benchmarks")) == 4


def test_a_run_with_a_callable_is_never_cached(tiny_dataset, tok, bench_models, tmp_path, monkeypatch):
    monkeypatch.setenv("MINIKIT_CACHE", str(tmp_path / "cache"))
    small, _ = bench_models
    fixed = lambda batch: np.zeros((len(batch["input_ids"]), 4), dtype=np.float32)  # noqa: E731
    _cached_bench(tiny_dataset, tok, tmp_path).add("small", small).add("zeros", fixed, size_mb=1.0).run()
    assert len(minikit.cache.entries("benchmarks")) == 0
