"""Quantization-aware training (minikit.qat): the straight-through estimator by hand, and the QAT copy's life cycle."""

from __future__ import annotations

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
