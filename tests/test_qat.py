"""Quantization-aware training (minikit.qat): the straight-through estimator by hand, and the QAT copy's life cycle."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from minikit import qat
from minikit.quantization import fake_quantize, quantize_tensor


def test_the_straight_through_gradient_by_hand():
    # 2 bits, symmetric, one scale for the tensor: integers −1, 0, 1 and scale = max|w| / 1 = 1.0.
    w = torch.tensor([[0.4, -1.0, 0.7]], requires_grad=True)
    c = torch.tensor([[1.0, 2.0, 3.0]])
    rounded = qat.ste_quantize(w, bits=2, granularity="per-tensor")
    assert rounded.tolist() == [[0.0, -1.0, 1.0]]  # 0.4 → 0, −1 → −1, 0.7 → 1: forward is the rounded weight
    (c * rounded).sum().backward()
    assert w.grad.tolist() == c.tolist()  # d/dw Σ c·q(w) through the STE: c itself, as if q were the identity
    plain = torch.tensor([[0.4, -1.0, 0.7]], requires_grad=True)
    (c * quantize_tensor(plain, 2, "per-tensor")).sum().backward()
    assert plain.grad.abs().sum() == 0  # without the STE, rounding passes no gradient: nothing would train


def test_prepared_copy_rounds_in_the_forward_and_trains(random_bert4):
    batch = {"input_ids": torch.randint(5, 100, (2, 12)), "attention_mask": torch.ones(2, 12, dtype=torch.long)}
    prepared = qat.prepare_qat(random_bert4, bits=4)
    assert qat.is_prepared(prepared) and not qat.is_prepared(random_bert4)  # the model passed in is untouched
    reference = fake_quantize(random_bert4, bits=4).eval()
    with torch.no_grad():
        torch.testing.assert_close(prepared.eval()(**batch).logits, reference(**batch).logits)
    before = prepared.classifier.parametrizations.weight.original.detach().clone()
    optimizer = torch.optim.SGD(prepared.parameters(), lr=0.5)
    prepared.train()
    loss = torch.nn.functional.cross_entropy(prepared(**batch).logits, torch.tensor([0, 1]))
    loss.backward()
    optimizer.step()
    assert not torch.equal(prepared.classifier.parametrizations.weight.original, before)  # the float original moved
    converted = qat.convert(prepared)
    assert not qat.is_prepared(converted)
    baked = converted.classifier.weight
    torch.testing.assert_close(baked, quantize_tensor(prepared.classifier.parametrizations.weight.original.detach(), 4))
    assert len(torch.unique(baked[0])) <= 2 ** 4 - 1  # a 4-bit symmetric grid: at most 15 values per row


@pytest.mark.parametrize("bits", [1, 16, 4.0, True, "4"])
def test_unsupported_bits_are_refused_with_the_fix(random_bert4, bits):
    with pytest.raises(ValueError, match=r"QAT simulates whole bit widths from 2 to 8\. Fix: pass one of"):
        qat.prepare_qat(random_bert4, bits=bits)


def test_convert_needs_a_prepared_model(random_bert4):
    with pytest.raises(ValueError, match="no QAT rounding.*Fix: pass the model prepare_qat returned"):
        qat.convert(random_bert4)


def test_ptq_vs_qat_scores_every_method_on_test_and_is_cached(tokenizer, tiny_bert_config, cache_root, monkeypatch):
    """The runs table: float32 and the control unrounded, then PTQ, the control and QAT at each bit width;
    per-example correctness on the test split that agrees with the accuracy; a second call trains nothing."""
    from types import SimpleNamespace

    from helpers import FAST_CONFIG, make_splits, random_classifier

    from minikit import stats

    splits = make_splits(24, 9)
    model = random_classifier(tiny_bert_config).eval()
    baseline = SimpleNamespace(model=model, tokenizer=tokenizer, splits=splits)
    config = dataclasses.replace(FAST_CONFIG, train_fraction=0.5)
    runs = qat.ptq_vs_qat(baseline, bits=(8, 2), config=config)
    assert list(zip(runs.bits, runs.method)) == [(32, "float32"), (32, qat.CONTROL), (8, "PTQ"), (8, qat.CONTROL),
                                                 (8, "QAT"), (2, "PTQ"), (2, qat.CONTROL), (2, "QAT")]
    assert (runs.n == len(splits["test"])).all()
    for row in runs.itertuples():
        assert row.accuracy == sum(row.correct) / row.n
    assert (runs.loc[runs.method == "PTQ", "steps"] == 0).all()
    trained = runs.loc[runs.method.isin(["QAT", qat.CONTROL]), "steps"]
    assert trained.nunique() == 1 and trained.iloc[0] > 0  # the control takes QAT's steps, no more, no fewer
    float32 = runs[runs.method == "float32"].correct.iloc[0]
    ptq8 = runs[(runs.bits == 8) & (runs.method == "PTQ")].correct.iloc[0]
    predicted = baseline_predictions(model, tokenizer, splits["test"], config.max_length)
    labels = splits["test"]["label"]
    assert float32 == [int(p == y) for p, y in zip(predicted, labels)]  # per example, in the test split's order
    assert stats.paired_comparison(ptq8, float32).n == len(splits["test"])

    def no_training(*args, **kwargs):
        raise AssertionError("trained again")

    monkeypatch.setattr(qat, "train_classifier", no_training)
    again = qat.ptq_vs_qat(baseline, bits=(8, 2), config=config)
    assert again.drop(columns="seconds").equals(runs.drop(columns="seconds"))


def baseline_predictions(model, tokenizer, split, max_length: int) -> list[int]:
    from minikit.training import predict_logits
    return predict_logits(model.eval(), tokenizer, split, max_length).argmax(axis=1).tolist()


def test_ptq_vs_qat_refuses_bits_qat_cannot_simulate():
    with pytest.raises(ValueError, match="Fix: pass one of"):
        qat.ptq_vs_qat(object(), bits=(8, 16))
