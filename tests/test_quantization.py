"""minikit.quantization on tiny random BERT, DistilBERT and MobileBERT classifiers, checked against torch."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from helpers import ARCHS
from torch import nn

import minikit
from minikit.benchmark import _torch_parameter_counts, _torch_size_mb
from minikit.quantization import (
    INT8_TOLERANCE,
    Int8Embedding,
    OnnxMismatchError,
    check_onnx,
    cpu_half_support,
    dynamic_int8,
    export_onnx,
    fake_quantize,
    half_precision,
    linear_working_copy,
    quantization_error_table,
    quantization_grid,
    quantization_params,
    quantize_embeddings,
    quantize_onnx,
    quantize_tensor,
    quantized_size_mb,
    requantize_linears,
    typical_row,
)


@pytest.fixture(params=ARCHS)
def make_model(request):
    config = request.getfixturevalue(f"tiny_{request.param}_config")

    def make(seed: int = 0, **overrides):
        return minikit.build_model(config(**overrides), num_labels=3, seed=seed)

    return make


@pytest.fixture
def inputs(random_ids) -> dict[str, torch.Tensor]:
    ids = random_ids(3, 12)
    mask = torch.ones_like(ids)
    mask[2, 7:] = 0
    return {"input_ids": ids, "attention_mask": mask}


def logits(model, inputs) -> torch.Tensor:
    with torch.no_grad():
        return model(**inputs).logits.float()


def weights(seed: int = 0) -> torch.Tensor:
    w = torch.randn(16, 40, generator=torch.Generator().manual_seed(seed)) * 0.05
    w[3] += 0.02  # a row that is all positive-ish, so asymmetric grids differ from symmetric ones
    w[5] *= 10  # an outlier row: per-tensor scales suffer from it, per-channel ones do not
    return w


# --- the formula ----------------------------------------------------------------------------------


@pytest.mark.parametrize("bits", [2, 4, 8])
@pytest.mark.parametrize("granularity", ["per-tensor", "per-channel"])
@pytest.mark.parametrize("symmetric", [True, False])
def test_quantize_tensor_matches_torch_fake_quantize(bits, granularity, symmetric):
    w = weights()
    scale, zero_point, qmin, qmax = quantization_params(w, bits, granularity, symmetric)
    if granularity == "per-channel":
        expected = torch.fake_quantize_per_channel_affine(w, scale, zero_point.int(), 0, qmin, qmax)
    else:
        expected = torch.fake_quantize_per_tensor_affine(w, float(scale), int(zero_point), qmin, qmax)
    ours = quantize_tensor(w, bits, granularity, symmetric)
    torch.testing.assert_close(ours, expected, atol=1e-6, rtol=0)
    rows = ours if granularity == "per-channel" else ours.reshape(1, -1)
    levels = 2 ** bits - (1 if symmetric else 0)  # symmetric gives one level up to centre the grid
    assert max(len(torch.unique(r)) for r in rows) <= levels
    assert (ours - w).abs().max() <= scale.max() / 2 + 1e-6  # never more than half a step off


def test_more_bits_and_per_channel_scales_mean_less_error():
    w = weights()
    err = {(b, g): (quantize_tensor(w, b, g) - w).norm().item()
           for b in (2, 4, 8) for g in ("per-tensor", "per-channel")}
    assert err[(2, "per-channel")] > err[(4, "per-channel")] > err[(8, "per-channel")]
    assert all(err[(b, "per-channel")] < err[(b, "per-tensor")] for b in (2, 4, 8))


@pytest.mark.parametrize("granularity", ["per-tensor", "per-channel"])
@pytest.mark.parametrize("symmetric", [True, False])
def test_the_grid_holds_every_quantized_value_and_zero(granularity, symmetric):
    w = weights()
    grid = quantization_grid(w, 3, granularity, symmetric, channel=5)
    assert len(grid) == (7 if symmetric else 8) and np.all(np.diff(grid) > 0)
    assert np.isclose(grid, 0, atol=1e-7).any()  # zero stays exactly representable
    row = quantize_tensor(w, 3, granularity, symmetric)[5].numpy()
    assert all(np.isclose(grid, v, atol=1e-6).any() for v in row)
    with pytest.raises(ValueError, match="channels 0…15"):
        quantization_grid(w, 3, "per-channel", channel=16)


@pytest.mark.parametrize("bits", [0, 1, 9, 16, 32, 4.0, True, "8"])
def test_bits_outside_the_supported_set_are_refused(tiny_model, bits):
    with pytest.raises(ValueError, match=r"bits=.*from 2 to 8"):
        fake_quantize(tiny_model, bits)
    with pytest.raises(ValueError, match=r"bits="):
        quantize_tensor(weights(), bits)


def test_unknown_granularity_is_refused(tiny_model):
    with pytest.raises(ValueError, match="granularity='per-row'.*'per-tensor'.*'per-channel'"):
        fake_quantize(tiny_model, 8, "per-row")


# --- simulated N-bit copies -----------------------------------------------------------------------


def test_fake_quantize_returns_a_copy_close_at_8_bits(make_model, inputs):
    model = make_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ref = logits(model, inputs)
    gaps = {b: (logits(fake_quantize(model, b), inputs) - ref).abs().max().item() for b in (2, 8)}
    assert gaps[8] < 0.02 * ref.abs().max().item() + 1e-4 and gaps[2] > gaps[8]
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    q = fake_quantize(model, 4)
    linear = next(m for m in q.modules() if isinstance(m, nn.Linear))
    assert len(torch.unique(linear.weight[0])) <= 15
    embedding = q.get_input_embeddings().weight
    assert torch.equal(embedding, model.get_input_embeddings().weight)  # left alone unless asked
    q = fake_quantize(model, 4, include_embeddings=True)
    assert len(torch.unique(q.get_input_embeddings().weight[7])) <= 15


def test_packed_size_falls_with_bits(tiny_bert_config):
    model = minikit.build_model(tiny_bert_config(vocab_size=100), num_labels=3, seed=0)
    fp32 = sum(t.numel() * t.element_size() for t in model.state_dict().values()) / 1e6
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    weights_mb = sum(m.weight.numel() * 4 for m in linears) / 1e6
    scales_mb = sum(m.out_features * 4 for m in linears) / 1e6
    sizes = [quantized_size_mb(model, b) for b in (2, 4, 8)]
    assert sizes[0] < sizes[1] < sizes[2] < fp32
    assert sizes[2] == pytest.approx(fp32 - 0.75 * weights_mb + scales_mb)  # 32 → 8 bits, plus a scale per row
    assert sizes[1] == pytest.approx(fp32 - 0.875 * weights_mb + scales_mb)
    assert quantized_size_mb(model, 8, include_embeddings=True) < sizes[2]


def test_error_table_gains_about_6_db_per_bit(make_model):
    model = make_model()
    t4, t8 = quantization_error_table(model, 4), quantization_error_table(model, 8)
    n_linear = sum(isinstance(m, nn.Linear) for m in model.modules())
    n_embedding = sum(isinstance(m, nn.Embedding) for m in model.modules())
    assert len(t4) == n_linear + n_embedding
    assert set(t4["kind"]) == {"linear", "embedding"} and set(t4["layer"]) == {-1, 0, 1}
    gain = (t8["sqnr_db"] - t4["sqnr_db"]) / 4
    assert gain.between(4.5, 7).all()
    assert (t4["relative_error"] > t8["relative_error"]).all()
    assert len(quantization_error_table(model, 8, include_embeddings=False)) == n_linear


def test_typical_row_is_the_median_range():
    w = torch.tensor([[0.0, 1.0], [0.0, 5.0], [0.0, 3.0], [-1.0, 1.0], [0.0, 0.5]])  # ranges 1, 5, 3, 2, 0.5
    assert typical_row(w) == 3  # sorted ranges 0.5, 1, 2, 3, 5: the middle one, 2, is row 3


def test_working_copy_shares_all_but_the_linear_weights(make_model):
    model = make_model()
    work, originals = linear_working_copy(model)
    linears = {name: m for name, m in model.named_modules() if isinstance(m, nn.Linear)}
    assert list(originals) == list(linears) and all(originals[n] is m.weight for n, m in linears.items())
    assert not work.training
    mine, theirs = work.state_dict(keep_vars=True), model.state_dict(keep_vars=True)
    linear_weights = {f"{n}.weight" for n in linears}
    assert all((mine[k] is theirs[k]) != (k in linear_weights) for k in theirs)  # shared unless a Linear weight
    assert all(torch.equal(mine[k], theirs[k]) for k in linear_weights)


@pytest.mark.parametrize("bits, granularity, symmetric", [(8, "per-channel", True), (3, "per-tensor", False)])
def test_requantize_in_place_is_fake_quantize_and_its_error_table(make_model, inputs, bits, granularity, symmetric):
    model = make_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    work, originals = linear_working_copy(model)
    requantize_linears(work, originals, 2, "per-tensor", True)  # a setting before: the next starts from the originals
    errors = requantize_linears(work, originals, bits, granularity, symmetric)
    torch.testing.assert_close(logits(work, inputs), logits(fake_quantize(model, bits, granularity, symmetric), inputs),
                               rtol=0, atol=0)
    table = quantization_error_table(model, bits, granularity, symmetric, include_embeddings=False)
    assert list(errors.columns) == list(table.columns) and list(errors["name"]) == list(table["name"])
    assert list(errors["layer"]) == list(table["layer"]) and list(errors["params"]) == list(table["params"])
    np.testing.assert_allclose(errors["relative_error"], table["relative_error"], rtol=1e-12)
    np.testing.assert_allclose(errors["sqnr_db"], table["sqnr_db"], rtol=1e-12)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # the model is untouched
    with pytest.raises(ValueError, match="bits=16"):
        requantize_linears(work, originals, 16)


# --- real int8 and half precision in PyTorch ------------------------------------------------------


def test_dynamic_int8_is_smaller_close_and_quiet(make_model, inputs):
    model = make_model()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        q = dynamic_int8(model)
    assert not [w for w in caught if "deprecat" in str(w.message).lower()], [str(w.message)[:80] for w in caught]
    assert not any(isinstance(m, nn.Linear) for m in q.modules())
    assert any(isinstance(m, nn.Linear) for m in model.modules())  # the original is untouched
    ref = logits(model, inputs)
    torch.testing.assert_close(logits(q, inputs), ref, atol=0.05 * ref.abs().max().item() + 1e-3, rtol=0)
    assert _torch_size_mb(q)[0] < _torch_size_mb(model)[0]
    assert _torch_parameter_counts(q)[0] == minikit.count_parameters(model)  # the Benchmark still counts them all


def test_int8_embeddings_shrink_the_saved_file(make_model, inputs):
    model = make_model()
    q = quantize_embeddings(model)
    assert isinstance(q.get_input_embeddings(), Int8Embedding)
    assert q.get_input_embeddings().weight.dtype == torch.int8
    assert minikit.count_parameters(q) == minikit.count_parameters(model)
    embedding_mb = sum(m.weight.numel() * 4 for m in model.modules() if isinstance(m, nn.Embedding)) / 1e6
    saved = minikit.size_on_disk_mb(model) - minikit.size_on_disk_mb(q)  # save_pretrained: a real file
    assert saved == pytest.approx(0.75 * embedding_mb, rel=0.05)  # 4 bytes → 1, plus a scale per row
    ref = logits(model, inputs)
    torch.testing.assert_close(logits(q, inputs), ref, atol=0.02 * ref.abs().max().item() + 1e-4, rtol=0)
    both = dynamic_int8(model, embeddings=True)
    assert _torch_size_mb(both)[0] < _torch_size_mb(dynamic_int8(model))[0]


@pytest.mark.parametrize("dtype", ["bfloat16", "fp16"])
def test_half_precision_halves_the_size(tiny_bert_config, inputs, dtype):
    model = minikit.build_model(tiny_bert_config(), num_labels=3, seed=0)
    half = half_precision(model, dtype)
    assert {p.dtype for p in half.parameters()} == {torch.bfloat16 if dtype == "bfloat16" else torch.float16}
    assert minikit.size_on_disk_mb(half) == pytest.approx(minikit.size_on_disk_mb(model) / 2, rel=0.05)
    ref = logits(model, inputs)
    torch.testing.assert_close(logits(half, inputs), ref, atol=0.05 * ref.abs().max().item() + 1e-3, rtol=0)
    assert set(cpu_half_support()) == {"float16", "bfloat16"}
    assert all(isinstance(v, bool) for v in cpu_half_support().values())
    with pytest.raises(ValueError, match="dtype='int4'.*'float16'.*'bfloat16'"):
        half_precision(model, "int4")


# --- ONNX Runtime ---------------------------------------------------------------------------------


def test_onnx_export_and_int8_match_pytorch(make_model, inputs, tmp_path):
    model = make_model()
    fp32 = export_onnx(model, tmp_path / "model.onnx")
    assert check_onnx(fp32, model, inputs) < 1e-4
    int8 = quantize_onnx(fp32, tmp_path / "model-int8.onnx", model, inputs)
    assert int8.stat().st_size < 0.7 * fp32.stat().st_size
    assert check_onnx(int8, model, inputs, INT8_TOLERANCE) > 0  # int8 really rounded something


def test_onnx_outputs_that_disagree_are_refused(tiny_model, tmp_path):
    path = export_onnx(tiny_model, tmp_path / "model.onnx")
    other = minikit.build_model(tiny_model.config, seed=1)
    with pytest.raises(OnnxMismatchError, match="differ from the PyTorch model's by up to .*Do not use this file"):
        check_onnx(path, other)
    with pytest.raises(OnnxMismatchError):  # an int8 file held to float tolerance fails: it rounded
        quantize_onnx(path, tmp_path / "int8.onnx", tiny_model, tolerance=(0.0, 0.0))
    assert issubclass(OnnxMismatchError, minikit.MinikitError)
