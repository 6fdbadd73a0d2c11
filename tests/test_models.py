"""Chapter 1 — the model catalog, random-weight builds, and where load_model finds weights."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
from safetensors import safe_open
from torch import nn
from transformers import (
    BertConfig,
    BertModel,
    DistilBertConfig,
    MobileBertConfig,
)

import minikit
from minikit.models import CATALOG, dummy_inputs, encoder_layers, get_card, head_parameters

# name: (hub_id, family, layers, hidden, heads, ffn)
EXPECTED_CATALOG = {
    "minilm-l6": ("sentence-transformers/all-MiniLM-L6-v2", "bert", 6, 384, 12, 1536),
    "minilm-l12": ("microsoft/MiniLM-L12-H384-uncased", "bert", 12, 384, 12, 1536),
    "distilbert": ("distilbert/distilbert-base-uncased", "distilbert", 6, 768, 12, 3072),
    "tinybert-4": ("huawei-noah/TinyBERT_General_4L_312D", "bert", 4, 312, 12, 1200),
    "tinybert-6": ("huawei-noah/TinyBERT_General_6L_768D", "bert", 6, 768, 12, 3072),
    "mobilebert": ("google/mobilebert-uncased", "mobilebert", 24, 512, 4, 512),
    "bert-base": ("google-bert/bert-base-uncased", "bert", 12, 768, 12, 3072),
}


# --- catalog -----------------------------------------------------------------------------------------


def test_catalog_has_the_seven_models():
    assert set(CATALOG) == set(EXPECTED_CATALOG)
    assert minikit.DEFAULT_MODEL == "minilm-l6"


@pytest.mark.parametrize("name", sorted(EXPECTED_CATALOG))
def test_catalog_architecture_numbers(name):
    card = CATALOG[name]
    assert card.name == name
    assert (card.hub_id, card.family, card.layers, card.hidden, card.heads, card.ffn) == EXPECTED_CATALOG[name]
    assert card.vocab == 30522
    assert card.hidden % card.heads == 0
    assert card.published and card.source  # every card cites a quality fact and its paper


def test_only_minilm_l6_is_embedded():
    assert [name for name, card in CATALOG.items() if card.embedded] == ["minilm-l6"]


def test_list_models_table():
    table = minikit.list_models()
    assert isinstance(table, pd.DataFrame)
    assert list(table.index) == list(CATALOG)
    assert table.loc["bert-base", "layers"] == 12
    assert table.loc["tinybert-4", "hidden"] == 312
    assert {"hub_id", "family", "layers", "hidden", "heads", "ffn", "vocab", "embedded"} <= set(table.columns)


@pytest.mark.parametrize(
    "alias, expected",
    [("MiniLM-L6", "minilm-l6"), ("bert-base-uncased", "bert-base"), ("distilbert-base-uncased", "distilbert"),
     ("all-MiniLM-L6-v2", "minilm-l6"), ("google-bert/bert-base-uncased", "bert-base"),
     ("huawei-noah/TinyBERT_General_4L_312D", "tinybert-4")],
)
def test_get_card_accepts_aliases_and_hub_ids(alias, expected):
    assert get_card(alias).name == expected


@pytest.mark.parametrize("name", sorted(EXPECTED_CATALOG))
def test_card_config_carries_the_numbers(name):
    card = CATALOG[name]
    config = card.config(num_labels=5)
    assert config.num_labels == 5
    assert config.vocab_size == card.vocab
    if card.family == "distilbert":
        assert isinstance(config, DistilBertConfig)
        assert (config.n_layers, config.dim, config.n_heads, config.hidden_dim) == (6, 768, 12, 3072)
    else:
        assert isinstance(config, MobileBertConfig if card.family == "mobilebert" else BertConfig)
        assert (config.num_hidden_layers, config.hidden_size, config.num_attention_heads,
                config.intermediate_size) == (card.layers, card.hidden, card.heads, card.ffn)


# --- build_model -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, published_m", [("tinybert-4", 14.4), ("minilm-l6", 22.7), ("bert-base", 109.5)])
def test_build_model_parameter_counts_near_published(name, published_m):
    model = minikit.build_model(name, num_labels=2)
    params_m = minikit.count_parameters(model) / 1e6
    assert params_m == pytest.approx(published_m, rel=0.01)
    assert not model.training  # returned in eval mode


def test_build_model_mobilebert_architecture():
    model = minikit.build_model("mobilebert", num_labels=2)
    assert type(model).__name__ == "MobileBertForSequenceClassification"
    assert model.config.num_hidden_layers == 24
    # The paper's 25.3 M counts the pre-training heads; the encoder plus a 2-way head is ~24.8 M.
    assert minikit.count_parameters(model) / 1e6 == pytest.approx(24.8, rel=0.02)


def test_build_model_seed_makes_weights_repeatable():
    a = minikit.build_model("tinybert-4", seed=3)
    b = minikit.build_model("tinybert-4", seed=3)
    c = minikit.build_model("tinybert-4", seed=4)
    wa, wb, wc = (m.classifier.weight for m in (a, b, c))
    assert torch.equal(wa, wb)
    assert not torch.equal(wa, wc)


def test_build_model_from_catalog_name_has_num_labels():
    model = minikit.build_model("tinybert-4", num_labels=7)
    assert model.config.num_labels == 7
    assert model.classifier.out_features == 7


@pytest.mark.parametrize("family", ["bert", "distilbert", "mobilebert"])
def test_build_model_from_config_forward_shape(family, tiny_bert_config, tiny_distilbert_config,
                                                tiny_mobilebert_config, random_ids):
    make = {"bert": tiny_bert_config, "distilbert": tiny_distilbert_config, "mobilebert": tiny_mobilebert_config}
    model = minikit.build_model(make[family](), num_labels=3, seed=0)
    expected_class = {"bert": "BertForSequenceClassification",
                      "distilbert": "DistilBertForSequenceClassification",
                      "mobilebert": "MobileBertForSequenceClassification"}[family]
    assert type(model).__name__ == expected_class
    assert not model.training
    ids = random_ids(4, 12)
    with torch.inference_mode():
        logits = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
    assert logits.shape == (4, 3)
    assert torch.isfinite(logits).all()


def test_build_model_from_config_parameter_count(tiny_bert_config):
    # H=32, F=64, V=1000, P=128 positions, 2 token types, L=2 layers, 3 labels.
    h, f, v, p, layers, labels = 32, 64, 1000, 128, 2, 3
    embeddings = (v + p + 2) * h + 2 * h
    layer = 4 * h * h + 4 * h + 2 * h + h * f + f + f * h + h + 2 * h
    pooler = h * h + h
    head = h * labels + labels
    model = minikit.build_model(tiny_bert_config(), num_labels=labels)
    assert minikit.count_parameters(model) == embeddings + layers * layer + pooler + head


def test_build_model_keeps_num_labels_of_a_config(tiny_bert_config, random_ids):
    # PACKAGE BUG: build_model(config) without num_labels= silently replaces the config's own
    # num_labels (5 here) with the default 2, and writes that into the caller's config object.
    config = tiny_bert_config(num_labels=5)
    model = minikit.build_model(config)
    assert model(input_ids=random_ids(1, 8)).logits.shape == (1, 5)
    assert config.num_labels == 5, "build_model changed the caller's config"


# --- resolve_model_source / load_model -----------------------------------------------------------------


def test_resolve_embedded():
    kind, location = minikit.resolve_model_source("minilm-l6")
    assert kind == "embedded"
    assert (Path(location) / "config.json").is_file()
    assert (Path(location) / "model.safetensors").is_file()
    assert minikit.resolve_model_source("all-MiniLM-L6-v2") == (kind, location)


@pytest.fixture(scope="module")
def embedded_model():
    return minikit.load_model("minilm-l6", num_labels=5)


def test_load_embedded_model(embedded_model):
    model, tokenizer = embedded_model
    assert type(model).__name__ == "BertForSequenceClassification"
    assert model.config.num_labels == 5
    assert model.classifier.out_features == 5
    assert not model.training
    assert minikit.count_parameters(model) / 1e6 == pytest.approx(22.7, rel=0.01)
    batch = tokenizer(["Shares rose sharply today.", "The match ended in a draw."], padding=True,
                      return_tensors="pt")
    with torch.inference_mode():
        logits = model(**batch).logits
    assert logits.shape == (2, 5)


def test_embedded_model_has_the_trained_weights(embedded_model):
    model, _ = embedded_model
    _, location = minikit.resolve_model_source("minilm-l6")
    with safe_open(str(Path(location) / "model.safetensors"), framework="pt") as f:
        key = next(k for k in f.keys() if k.endswith("embeddings.word_embeddings.weight"))
        stored = f.get_tensor(key)
    assert torch.equal(model.bert.embeddings.word_embeddings.weight.detach(), stored)


def test_load_tokenizer_default_is_embedded(tokenizer):
    assert tokenizer.vocab_size == 30522
    ids = tokenizer("hello world")["input_ids"]
    assert ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id


def _save_tiny_base_model(directory: Path, tokenizer, seed: int = 0) -> BertModel:
    config = BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                        vocab_size=tokenizer.vocab_size, max_position_embeddings=128)
    torch.manual_seed(seed)
    model = BertModel(config)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return model


def test_local_directory_resolves_and_loads(tmp_path, tokenizer):
    saved = _save_tiny_base_model(tmp_path / "tiny", tokenizer)
    kind, location = minikit.resolve_model_source(str(tmp_path / "tiny"))
    assert (kind, Path(location)) == ("local", tmp_path / "tiny")
    model, tok = minikit.load_model(str(tmp_path / "tiny"), num_labels=4)
    assert model.config.num_labels == 4
    assert model.classifier.out_features == 4
    assert torch.equal(model.bert.embeddings.word_embeddings.weight, saved.embeddings.word_embeddings.weight)
    batch = tok(["a short text", "another one"], padding=True, return_tensors="pt")
    with torch.inference_mode():
        assert model(**batch).logits.shape == (2, 4)
    assert minikit.load_tokenizer(str(tmp_path / "tiny"))("hello")["input_ids"] == tokenizer("hello")["input_ids"]


def test_local_directory_wins_over_the_hub_for_a_catalog_name(tmp_path, tokenizer, monkeypatch):
    _save_tiny_base_model(tmp_path / "distilbert", tokenizer)
    monkeypatch.chdir(tmp_path)
    assert minikit.resolve_model_source("distilbert") == ("local", "distilbert")


def test_local_classifier_reloaded_with_other_num_labels(tmp_path, tokenizer, tiny_bert_config):
    # PACKAGE BUG: load_model promises "a fresh classification head of num_labels outputs", but a
    # directory that already holds a classifier (e.g. a fine-tuned model saved with
    # save_pretrained) with a different label count fails with a RuntimeError from transformers
    # ("You set `ignore_mismatched_sizes` to `False`...") instead of getting a new head.
    classifier = minikit.build_model(tiny_bert_config(vocab_size=tokenizer.vocab_size), num_labels=2, seed=0)
    classifier.save_pretrained(tmp_path / "clf")
    tokenizer.save_pretrained(tmp_path / "clf")
    model, _ = minikit.load_model(str(tmp_path / "clf"), num_labels=4)
    assert model.classifier.out_features == 4


def _fake_hub_snapshot(cache: Path, repo_id: str, tokenizer, commit: str = "0123456789abcdef" * 2 + "01234567"):
    """Lay out a repo the way huggingface_hub does: refs/main → commit, snapshots/<commit>/files."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    saved = _save_tiny_base_model(snapshot, tokenizer)
    return snapshot, saved


def test_hub_cache_for_a_catalog_name(hub_cache, tokenizer):
    snapshot, saved = _fake_hub_snapshot(hub_cache, "huawei-noah/TinyBERT_General_4L_312D", tokenizer)
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in snapshot.iterdir()}
    assert minikit.resolve_model_source("tinybert-4") == ("hub-cache", "huawei-noah/TinyBERT_General_4L_312D")
    model, tok = minikit.load_model("tinybert-4", num_labels=3)  # offline: HF_HUB_OFFLINE=1
    assert model.config.hidden_size == 32  # the cached (tiny) weights, not the real TinyBERT
    assert model.config.num_labels == 3
    assert torch.equal(model.bert.encoder.layer[0].output.dense.weight, saved.encoder.layer[0].output.dense.weight)
    with torch.inference_mode():
        assert model(**tok(["cached offline"], return_tensors="pt")).logits.shape == (1, 3)


def test_hub_cache_for_an_org_model_id(hub_cache, tokenizer):
    _fake_hub_snapshot(hub_cache, "some-org/tiny-bert", tokenizer)
    assert minikit.resolve_model_source("some-org/tiny-bert") == ("hub-cache", "some-org/tiny-bert")
    model, _ = minikit.load_model("some-org/tiny-bert", num_labels=2)
    assert model.classifier.out_features == 2


def test_offline_and_not_cached(hub_cache):
    with pytest.raises(minikit.ModelNotAvailableError) as info:
        minikit.resolve_model_source("bert-base")
    message = str(info.value)
    assert "google-bert/bert-base-uncased" in message
    assert "HF_HUB_OFFLINE" in message
    assert "build_model('bert-base')" in message
    assert "minilm-l6" in message  # suggests the embedded model
    assert isinstance(info.value, OSError) and isinstance(info.value, minikit.MinikitError)
    with pytest.raises(minikit.ModelNotAvailableError, match="HF_HUB_OFFLINE"):
        minikit.load_model("bert-base")
    with pytest.raises(minikit.ModelNotAvailableError, match="HF_HUB_OFFLINE"):
        minikit.resolve_model_source("some-org/not-cached")


def test_unknown_name():
    with pytest.raises(minikit.UnknownNameError) as info:
        minikit.resolve_model_source("gpt-17")
    message = str(info.value)
    assert "'gpt-17'" in message
    for name in EXPECTED_CATALOG:
        assert name in message
    assert "local directory" in message
    assert isinstance(info.value, ValueError)
    with pytest.raises(minikit.UnknownNameError):
        minikit.build_model("gpt-17")
    with pytest.raises(minikit.UnknownNameError):
        minikit.load_model("gpt-17")


def test_directory_without_config(tmp_path):
    (tmp_path / "weights-only").mkdir()
    (tmp_path / "weights-only" / "model.safetensors").write_bytes(b"")
    with pytest.raises(minikit.ModelNotAvailableError) as info:
        minikit.resolve_model_source(str(tmp_path / "weights-only"))
    assert "has no config.json" in str(info.value)
    assert "save_pretrained" in str(info.value)
    with pytest.raises(minikit.ModelNotAvailableError, match="config.json"):
        minikit.load_model(str(tmp_path / "weights-only"))


@pytest.mark.parametrize("name", ["./nope", "../nope/model", "~/surely-not-a-minikit-model-dir"])
def test_missing_path(tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(minikit.ModelNotAvailableError) as info:
        minikit.resolve_model_source(name)
    assert "does not exist" in str(info.value)
    assert "nope" in str(info.value) or "surely-not" in str(info.value)


@pytest.mark.parametrize("num_labels", [0, -1])
def test_num_labels_must_be_positive(num_labels):
    with pytest.raises(ValueError, match=rf"num_labels={num_labels}"):
        minikit.load_model("minilm-l6", num_labels=num_labels)


# --- finding the head and the layers ------------------------------------------------------------


def test_encoder_layers_bert_distilbert_mobilebert(tokenizer, tiny_bert_config, tiny_distilbert_config,
                                                   tiny_mobilebert_config):
    cases = [(tiny_bert_config(num_hidden_layers=3), "BertLayer", 3),
             (tiny_distilbert_config(n_layers=3), "TransformerBlock", 3),
             # each MobileBERT layer holds its own list of 3 FFN blocks: more than the 2 layers
             (tiny_mobilebert_config(num_feedforward_networks=4), "MobileBertLayer", 2)]
    for config, layer_type, n in cases:
        model = minikit.build_model(config, num_labels=3, seed=0)
        layers = encoder_layers(model)
        assert len(layers) == n and {type(layer).__name__ for layer in layers} == {layer_type}
        assert all(any(layer is m for m in model.base_model.modules()) for layer in layers)
        head = {id(p) for p in head_parameters(model)}
        assert head and not head & {id(p) for p in model.base_model.parameters()}


def test_encoder_layers_says_when_there_are_none():
    with pytest.raises(ValueError, match=r"no encoder layers in Sequential.*nn.ModuleList"):
        encoder_layers(nn.Sequential(nn.Linear(2, 2), nn.ReLU()))


def test_dummy_inputs_shapes(tiny_model):
    inputs = dummy_inputs(tiny_model, batch_size=3, seq_len=17)
    assert set(inputs) == {"input_ids", "attention_mask"}
    assert inputs["input_ids"].shape == (3, 17)
    assert inputs["attention_mask"].shape == (3, 17)
    assert inputs["input_ids"].dtype == torch.long
    assert torch.all(inputs["attention_mask"] == 1)
    assert int(inputs["input_ids"].max()) < tiny_model.config.vocab_size
    assert int(inputs["input_ids"].min()) >= 0
    again = dummy_inputs(tiny_model, batch_size=3, seq_len=17)
    assert torch.equal(inputs["input_ids"], again["input_ids"])  # seeded
    other = dummy_inputs(tiny_model, batch_size=3, seq_len=17, seed=1)
    assert not torch.equal(inputs["input_ids"], other["input_ids"])


def test_dummy_inputs_run_through_the_model(tiny_model):
    with torch.inference_mode():
        logits = tiny_model(**dummy_inputs(tiny_model, 2, 128)).logits  # max_position_embeddings = 128
    assert logits.shape == (2, 3)


def test_dummy_inputs_too_long(tiny_model):
    with pytest.raises(ValueError, match=r"seq_len=129 exceeds this model's 128 positions"):
        dummy_inputs(tiny_model, 1, 129)


@pytest.mark.parametrize("batch_size, seq_len", [(0, 8), (1, 1), (-1, 8)])
def test_dummy_inputs_bad_sizes(tiny_model, batch_size, seq_len):
    with pytest.raises(ValueError, match="need batch_size ≥ 1 and seq_len ≥ 2"):
        dummy_inputs(tiny_model, batch_size, seq_len)


def test_dummy_inputs_small_vocabulary(tiny_bert_config):
    # PACKAGE BUG: dummy_inputs draws ids with torch.randint(1000, vocab_size): for a model whose
    # vocabulary has ≤ 1000 tokens (the tiny configs a learner builds) it raises
    # "RuntimeError: random_ expects 'from' to be less than 'to'", and so does profile_model.
    model = minikit.build_model(tiny_bert_config(vocab_size=1000), seed=0)
    inputs = dummy_inputs(model, 2, 8)
    assert inputs["input_ids"].shape == (2, 8)
    assert int(inputs["input_ids"].max()) < 1000
