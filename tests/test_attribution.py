"""Token attributions by integrated gradients (minikit.attribution)."""

from __future__ import annotations

import pytest
from helpers import tiny_bert
from transformers import DistilBertConfig

import minikit
from minikit.attribution import token_attributions

# --- attributions ---------------------------------------------------------------------------------

TEXT = "Unbelievable results: the economy grew faster than expected."


def test_token_attributions_one_row_per_token(tokenizer, bench_models):
    model = bench_models[0]
    table = token_attributions(model, tokenizer, TEXT)
    tokens = tokenizer.convert_ids_to_tokens(tokenizer(TEXT)["input_ids"])
    assert list(table["token"]) == tokens and list(table["position"]) == list(range(len(tokens)))
    assert list(table.columns[:4]) == ["token", "position", "attribution", "normalised"]
    assert table["normalised"].abs().max() == pytest.approx(1.0)
    assert table.attrs["target"] == int(model(**tokenizer(TEXT, return_tensors="pt")).logits.argmax())
    assert all(p.grad is None for p in model.parameters())  # attributions leave the weights' .grad alone


def test_integrated_gradients_completeness(tokenizer):
    # Large random weights make the model far from linear, so completeness is a real test.
    model = tiny_bert(tokenizer, 32, seed=3, initializer_range=0.5)
    table = token_attributions(model, tokenizer, TEXT, target=1, method="integrated_gradients", steps=64)
    difference = table.attrs["logit"] - table.attrs["baseline_logit"]
    assert abs(difference) > 1e-2
    assert table["attribution"].sum() == pytest.approx(difference, rel=0.02)
    assert table.loc[table["special"], "attribution"].abs().max() == 0.0  # special tokens are their own baseline
    coarse = token_attributions(model, tokenizer, TEXT, target=1, method="integrated_gradients", steps=2)
    assert abs(coarse.attrs["delta"]) > abs(table.attrs["delta"])  # more steps, closer to the difference


def test_token_attributions_distilbert_and_merged_words(tokenizer):
    config = DistilBertConfig(dim=32, n_layers=2, n_heads=2, hidden_dim=64, vocab_size=tokenizer.vocab_size,
                              max_position_embeddings=64)
    model = minikit.build_model(config, num_labels=3, seed=0).train()
    pieces = token_attributions(model, tokenizer, "Unbelievably, tokenization works.", target="LABEL_2")
    words = token_attributions(model, tokenizer, "Unbelievably, tokenization works.", target="LABEL_2", merge_subwords=True)
    assert model.training  # put back as it was
    assert len(words) < len(pieces) and "tokenization" in list(words["token"])
    assert words["attribution"].sum() == pytest.approx(pieces["attribution"].sum(), abs=1e-6)
    assert pieces.attrs["target"] == 2
    with pytest.raises(ValueError, match="labels"):
        token_attributions(model, tokenizer, "x", target="sport")
