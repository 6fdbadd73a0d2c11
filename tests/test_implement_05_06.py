"""The implement-it checks of chapters 5 and 6: the reference solutions pass, realistic mistakes fail by name."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from minikit import check
from minikit.practice import NOT_WRITTEN
from minikit.pruning import magnitude_prune, magnitude_threshold
from minikit.quantization import quantize_tensor

# --- 05: the magnitude mask ---------------------------------------------------------------------


def mask_solution(weight, sparsity):
    scores = weight.abs().flatten()
    k = round(sparsity * scores.numel())
    if k == 0:
        return torch.ones_like(weight, dtype=torch.bool)
    cut = scores.kthvalue(k).values  # the k-th smallest |w|: it and everything below it go
    return weight.abs() > cut


def test_magnitude_mask_passes_the_solution_and_agrees_with_magnitude_prune(random_bert4):
    assert check.magnitude_mask(mask_solution)
    pruned = magnitude_prune(random_bert4, 0.6, scope="layer")
    for (_, m), (_, p) in zip(_linears(random_bert4), _linears(pruned)):
        assert torch.equal(m.weight * mask_solution(m.weight, 0.6), p.weight)


def _linears(model):
    return [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear) and ".encoder." in f".{n}"]


def test_magnitude_mask_fails_without_abs_on_the_first_case():
    def no_abs(weight, sparsity):
        k = round(sparsity * weight.numel())
        if k == 0:
            return torch.ones_like(weight, dtype=torch.bool)
        return weight > weight.flatten().kthvalue(k).values

    result = check.magnitude_mask(no_abs)
    assert not result and result.message.startswith("Case 1 of 6, a 4×6 weight at 50 % sparsity") and \
        "values differ" in result.message


def test_magnitude_mask_fails_when_exactly_k_go_despite_ties():
    def exactly_k(weight, sparsity):  # argsort: ties at the cut are split, not all pruned
        k = round(sparsity * weight.numel())
        mask = torch.ones(weight.numel(), dtype=torch.bool)
        mask[weight.abs().flatten().argsort()[:k]] = False
        return mask.reshape(weight.shape)

    result = check.magnitude_mask(exactly_k)
    assert not result and "Case 4 of 6, ties" in result.message


def test_magnitude_mask_fails_with_truncated_k_and_names_the_rounding_case():
    def truncated(weight, sparsity):
        k = int(sparsity * weight.numel())  # 4.8 -> 4, where magnitude_threshold rounds to 5
        if k == 0:
            return torch.ones_like(weight, dtype=torch.bool)
        return weight.abs() > weight.abs().flatten().kthvalue(k).values

    result = check.magnitude_mask(truncated)
    assert not result and "Case 3 of 6" in result.message and "k = round(0.4 × 12) = 5" in result.message


def test_magnitude_mask_stub_raising_at_sparsity_0_and_in_place_edits_are_named():
    def stub(weight, sparsity):
        raise NotImplementedError

    def kth_without_zero_rule(weight, sparsity):  # kthvalue(0) raises: sparsity 0 is its own case
        return weight.abs() > weight.abs().flatten().kthvalue(round(sparsity * weight.numel())).values

    def in_place(weight, sparsity):
        weight[~mask_solution(weight, sparsity)] = 0
        return weight != 0

    assert check.magnitude_mask(stub).message == NOT_WRITTEN
    assert "⏳ Not answered yet" in repr(check.magnitude_mask(stub))
    raised = check.magnitude_mask(kth_without_zero_rule)
    assert not raised and "Case 2 of 6, sparsity 0" in raised.message and "raised" in raised.message
    assert "Traceback" not in raised.message and "minikit" not in raised.message.split("raised")[1]
    assert "changed its argument number 1 in place" in check.magnitude_mask(in_place).message


def test_magnitude_threshold_is_what_the_mask_cuts_at():
    w = torch.tensor([[0.5, -0.5, 0.5, 0.1], [0.2, -0.2, 0.9, 0.5]])
    assert magnitude_threshold([w], 0.5) == 0.5
    assert mask_solution(w, 0.5).sum() == 1  # only 0.9 survives: the ties at 0.5 all go


# --- 05: slicing feed-forward neurons -----------------------------------------------------------


def slice_solution(up, down, keep):
    new_up = nn.Linear(up.in_features, len(keep))
    new_down = nn.Linear(len(keep), down.out_features)
    with torch.no_grad():
        new_up.weight.copy_(up.weight[keep])
        new_up.bias.copy_(up.bias[keep])
        new_down.weight.copy_(down.weight[:, keep])
        new_down.bias.copy_(down.bias)
    return new_up, new_down


def test_slice_ffn_passes_the_solution_and_equals_masking_the_dropped_neurons():
    assert check.slice_ffn(slice_solution)
    torch.manual_seed(0)
    up, down, keep = nn.Linear(8, 32), nn.Linear(32, 8), torch.tensor([0, 3, 4, 9, 17, 31])
    x = torch.randn(5, 8)
    mask = torch.zeros(32)
    mask[keep] = 1
    new_up, new_down = slice_solution(up, down, keep)
    with torch.no_grad():
        assert torch.allclose(new_down(torch.relu(new_up(x))), down(torch.relu(up(x)) * mask), atol=1e-6)


def test_slice_ffn_fails_when_the_up_bias_is_left_whole_or_the_down_bias_is_sliced():
    def up_bias_whole(up, down, keep):
        new_up, new_down = slice_solution(up, down, keep)
        new_up.bias = nn.Parameter(up.bias.detach().clone())
        return new_up, new_down

    def down_bias_sliced(up, down, keep):
        new_up, new_down = slice_solution(up, down, keep)
        new_down.bias = nn.Parameter(down.bias.detach()[keep[keep < len(down.bias)]].clone())
        return new_up, new_down

    whole = check.slice_ffn(up_bias_whole)
    assert not whole and "Case 1 of 3" in whole.message and "new_up.bias: expected shape (4,), got shape (10,)" \
        in whole.message
    sliced = check.slice_ffn(down_bias_sliced)
    assert not sliced and "new_down.bias" in sliced.message


def test_slice_ffn_fails_when_rows_and_columns_are_swapped():
    def columns_of_up(up, down, keep):  # slices the wrong axis: up's inputs, down's outputs
        new_up, new_down = nn.Linear(up.in_features, up.out_features), nn.Linear(down.in_features, down.out_features)
        keep_in = keep[keep < up.in_features]
        new_up.weight = nn.Parameter(up.weight.detach()[:, keep_in].clone())
        new_down.weight = nn.Parameter(down.weight.detach()[keep_in].clone())
        return new_up, new_down

    result = check.slice_ffn(columns_of_up)
    assert not result and result.message.startswith("Case 1 of 3") and "new_up" in result.message


def test_slice_ffn_fails_on_a_wrong_return_type_and_in_place_edits():
    def one_layer(up, down, keep):
        return slice_solution(up, down, keep)[0]

    def in_place(up, down, keep):
        up.weight = nn.Parameter(up.weight.detach()[keep])
        up.bias = nn.Parameter(up.bias.detach()[keep])
        down.weight = nn.Parameter(down.weight.detach()[:, keep])
        return up, down

    assert "expected a pair (new_up, new_down) of nn.Linear layers, got Linear" in check.slice_ffn(one_layer).message
    assert "in place" in check.slice_ffn(in_place).message


# --- 06: per-channel linear quantization --------------------------------------------------------


def quantizer(symmetric_qmax=lambda bits: 2 ** (bits - 1) - 1, asymmetric_qmax=lambda bits: 2 ** bits - 1,
              clamp=True):
    """A per-row linear_quantize; its arguments plant the mistakes the check must catch."""
    def linear_quantize(w, bits, symmetric):
        lo = w.amin(dim=1, keepdim=True).clamp(max=0)
        hi = w.amax(dim=1, keepdim=True).clamp(min=0)
        if symmetric:
            qmin, qmax = -symmetric_qmax(bits), symmetric_qmax(bits)
            scale = torch.maximum(-lo, hi) / qmax
            zero_point = torch.zeros_like(scale)
        else:
            qmin, qmax = 0, asymmetric_qmax(bits)
            scale = (hi - lo) / (qmax - qmin)
            zero_point = qmin - torch.round(lo / scale)
        q = torch.round(w / scale) + zero_point
        return (torch.clamp(q, qmin, qmax) if clamp else q), scale, zero_point

    return linear_quantize


quantize_solution = quantizer()


def test_linear_quantize_passes_the_solution_and_dequantizes_to_quantize_tensor():
    assert check.linear_quantize(quantize_solution)
    flat = lambda w, b, s: tuple(v.flatten() if i else v for i, v in enumerate(quantize_solution(w, b, s)))  # noqa: E731
    assert check.linear_quantize(flat)  # scale and zero point of shape (rows,) pass too
    w = torch.randn(16, 12, generator=torch.Generator().manual_seed(1))
    for bits, symmetric in [(8, True), (3, False)]:
        q, scale, zero_point = quantize_solution(w, bits, symmetric)
        assert torch.allclose((q - zero_point) * scale, quantize_tensor(w, bits, "per-channel", symmetric))


def test_linear_quantize_fails_on_the_wrong_axis():
    def per_tensor(w, bits, symmetric):
        q, scale, zero_point = quantize_solution(w.reshape(1, -1), bits, symmetric)
        return q.reshape(w.shape), scale.expand(len(w), 1), zero_point.expand(len(w), 1)

    def per_column(w, bits, symmetric):
        q, scale, zero_point = quantize_solution(w.T, bits, symmetric)
        return q.T, scale.T, zero_point.T

    tensor = check.linear_quantize(per_tensor)
    assert not tensor and tensor.message.startswith("Case 1 of 6, a 4×6 weight whose rows have very different ranges")
    column = check.linear_quantize(per_column)
    assert not column and column.message.startswith("Case 1 of 6") and "q: " in column.message


def test_linear_quantize_fails_without_the_clamp_on_the_tie_case():
    result = check.linear_quantize(quantizer(clamp=False))
    assert not result and "Case 5 of 6" in result.message and "got 16, expected 15" in result.message


def test_linear_quantize_fails_with_one_level_too_many():
    symmetric = check.linear_quantize(quantizer(symmetric_qmax=lambda bits: 2 ** (bits - 1)))  # −128…128 at 8 bits
    assert not symmetric and "Case 1 of 6" in symmetric.message and "q: " in symmetric.message
    asymmetric = check.linear_quantize(quantizer(asymmetric_qmax=lambda bits: 2 ** bits))  # 0…16 at 4 bits
    assert not asymmetric and "Case 3 of 6" in asymmetric.message


def test_linear_quantize_stub_and_wrong_return():
    def stub(w, bits, symmetric):
        raise NotImplementedError

    assert check.linear_quantize(stub).message == NOT_WRITTEN
    only_q = check.linear_quantize(lambda w, bits, symmetric: quantize_solution(w, bits, symmetric)[0])
    assert not only_q and "expected a tuple of 3 items" in only_q.message
    swapped = check.linear_quantize(lambda w, bits, symmetric: quantize_solution(w, bits, symmetric)[::-1])
    assert not swapped and "q: " in swapped.message


@pytest.mark.parametrize("name", ["magnitude_mask", "slice_ffn", "linear_quantize"])
def test_the_checks_are_exported_by_minikit_check(name):
    assert callable(getattr(check, name)) and getattr(check, name).implement_it


# --- 06 quantization-aware training: the straight-through estimator ----------------------------------


def test_straight_through_passes_the_solution_and_minikits_own():
    from minikit import qat
    assert check.straight_through(lambda w, bits: w + (quantize_tensor(w, bits) - w).detach())
    assert check.straight_through(lambda w, bits: qat.ste_quantize(w, bits))


def test_straight_through_fails_by_name_on_the_realistic_mistakes():
    plain = check.straight_through(lambda w, bits: quantize_tensor(w, bits))
    assert not plain and "gradient with respect to w is zero" in plain.message
    unrounded = check.straight_through(lambda w, bits: w * 1.0)
    assert not unrounded and "not the rounded weight" in unrounded.message
    backwards = check.straight_through(lambda w, bits: quantize_tensor(w, bits).detach() + 0 * w)
    assert not backwards and "zero everywhere" in backwards.message
    doubled = check.straight_through(lambda w, bits: 2 * w + (quantize_tensor(w, bits) - 2 * w).detach())
    assert not doubled and "should be 1 for every weight" in doubled.message
