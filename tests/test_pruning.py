"""minikit.pruning on tiny random BERT, DistilBERT and MobileBERT classifiers (seconds, not minutes)."""

from __future__ import annotations

import datasets
import numpy as np
import pytest
import torch
from helpers import ARCHS
from torch.nn.utils import prune

import minikit
from minikit.pruning import (
    check_fraction,
    csr_or_dense_bytes,
    drop_layers,
    encoder_linears,
    even_heads,
    head_importance,
    heads_per_layer,
    layer_parts,
    layers_to_drop,
    least_important_heads,
    magnitude_mask_,
    magnitude_prune,
    middle_out,
    prune_ffn_neurons,
    prune_heads,
    pruning_report,
    recover,
    removal_table,
    removed_share,
    restore_pruned_heads,
    sparsity_table,
    tensor_bytes,
)
from minikit.training import TrainConfig


@pytest.fixture(params=ARCHS)
def arch(request) -> str:
    return request.param


@pytest.fixture
def make_model(request, arch):
    """A factory of tiny random classifiers (3 labels) of the current architecture."""
    config = request.getfixturevalue(f"tiny_{arch}_config")

    def make(seed: int = 0, **overrides):
        return minikit.build_model(config(**overrides), num_labels=3, seed=seed)

    return make


@pytest.fixture
def inputs(random_ids) -> dict[str, torch.Tensor]:
    ids = random_ids(3, 12)
    mask = torch.ones_like(ids)
    mask[2, 7:] = 0  # one padded row
    return {"input_ids": ids, "attention_mask": mask}


def logits(model, inputs) -> torch.Tensor:
    with torch.no_grad():
        return model(**inputs).logits


def same_weights(a, b) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


# --- finding the parts ----------------------------------------------------------------------------


def test_layer_parts_finds_heads_and_feed_forward_blocks(make_model, arch):
    model = make_model()
    parts = layer_parts(model)
    assert len(parts) == 2
    ffn_blocks = {"bert": 1, "distilbert": 1, "mobilebert": 2}[arch]  # MobileBERT stacks its FFNs
    for p in parts:
        assert p.num_heads == 2
        assert {lin.out_features for lin in p.qkv} == {p.out.in_features} == {2 * p.head_size}
        assert len(p.ffn) == ffn_blocks
        assert all(up.out_features == 64 == down.in_features for up, down in p.ffn)
    assert heads_per_layer(model) == [2, 2]


# --- unstructured ---------------------------------------------------------------------------------


@pytest.mark.parametrize("scope", ["global", "layer"])
def test_magnitude_prune_reaches_the_sparsity_and_keeps_the_original(make_model, scope):
    model = make_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    pruned = magnitude_prune(model, 0.6, scope=scope)
    table = sparsity_table(pruned)
    overall = 1 - table["nonzero"].sum() / table["params"].sum()
    assert overall == pytest.approx(0.6, abs=len(table) / table["params"].sum())  # rounding: ≤ 1 weight per layer
    if scope == "layer":
        assert np.allclose(table["sparsity"], 0.6, atol=1 / table["params"].min())
    else:
        assert table["sparsity"].std() > 0  # global ranking spreads it unevenly
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # original untouched
    assert not any(k.endswith(("_orig", "_mask")) for k in pruned.state_dict())  # made permanent
    assert all(not m._forward_pre_hooks for m in pruned.modules())
    assert logits(pruned, {"input_ids": torch.ones(1, 4, dtype=torch.long)}).shape == (1, 3)


def test_global_magnitude_prune_matches_torch_global_unstructured(make_model):
    model = make_model()
    ours = magnitude_prune(model, 0.5)
    reference = magnitude_prune(model, 0.0)
    targets = [(m, "weight") for _, _, m in encoder_linears(reference)]
    prune.global_unstructured(targets, pruning_method=prune.L1Unstructured, amount=0.5)
    for (_, _, a), (b, _) in zip(encoder_linears(ours), targets):
        assert torch.equal(a.weight != 0, b.weight_mask.bool())


def test_pruned_weights_are_the_smallest(make_model):
    pruned, model = magnitude_prune(make_model(), 0.3), make_model()
    w_old = torch.cat([m.weight.flatten() for _, _, m in encoder_linears(model)])
    w_new = torch.cat([m.weight.flatten() for _, _, m in encoder_linears(pruned)])
    assert w_old[w_new == 0].abs().max() <= w_old[w_new != 0].abs().min()
    assert torch.equal(w_new[w_new != 0], w_old[w_new != 0])


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5, float("nan"), "0.5", True, None])
def test_sparsity_outside_0_1_is_refused(tiny_model, bad):
    with pytest.raises(ValueError, match=r"sparsity=.*fraction in \[0, 1\)"):
        magnitude_prune(tiny_model, bad)


def test_unknown_scope_is_refused(tiny_model):
    with pytest.raises(ValueError, match="scope='row'.*'global'.*'layer'"):
        magnitude_prune(tiny_model, 0.5, scope="row")


def test_report_counts_nonzeros_and_sparse_size_shrinks(tiny_bert_config):
    # A wide encoder and a small vocabulary, so the encoder's weights dominate the file.
    model = minikit.build_model(tiny_bert_config(vocab_size=200, hidden_size=64, intermediate_size=256),
                                num_labels=3, seed=0)
    dense, sparse = pruning_report(model), pruning_report(magnitude_prune(model, 0.9), "90 %")
    encoder = sum(m.weight.numel() for _, _, m in encoder_linears(model))
    assert dense.encoder_sparsity == 0 and sparse.encoder_sparsity == pytest.approx(0.9, abs=1e-4)
    assert sparse.params == dense.params
    assert dense.nonzero_params - sparse.nonzero_params == pytest.approx(0.9 * encoder, abs=10)
    assert sparse.dense_mb == pytest.approx(dense.dense_mb, rel=1e-3)  # zeros cost as much as any number
    assert dense.sparse_mb == pytest.approx(dense.dense_mb, rel=0.05)  # nothing to gain without zeros
    assert sparse.sparse_mb < 0.5 * sparse.dense_mb


# --- attention heads ------------------------------------------------------------------------------


def silence_head(model, layer: int, head: int):
    """A copy in which one head contributes nothing: its columns of the output projection are 0."""
    parts = layer_parts(model)[layer]
    d = parts.head_size
    with torch.no_grad():
        parts.out.weight[:, head * d:(head + 1) * d] = 0
    return model


def test_pruning_a_silent_head_leaves_outputs_unchanged(make_model, inputs):
    model = silence_head(make_model(), layer=0, head=1)
    pruned = prune_heads(model, {0: [1]})
    assert heads_per_layer(pruned) == [1, 2] and heads_per_layer(model) == [2, 2]
    torch.testing.assert_close(logits(pruned, inputs), logits(model, inputs), atol=1e-5, rtol=1e-4)
    parts = layer_parts(pruned)[0]
    assert all(lin.out_features == parts.head_size for lin in parts.qkv)
    assert minikit.count_parameters(pruned) < minikit.count_parameters(model)


def test_gradient_importance_of_a_silent_head_is_zero(make_model, inputs):
    model = silence_head(make_model(), layer=1, head=0)
    batch = {**inputs, "labels": torch.tensor([0, 1, 2])}
    grad = head_importance(model, [batch])
    proxy = head_importance(model)
    for table in (grad, proxy):
        assert list(table.columns) == ["layer", "head", "importance"] and len(table) == 4
    silent = grad.query("layer == 1 and head == 0")["importance"].item()
    assert silent == 0 and grad["importance"].drop(grad.index[2]).gt(0).all()
    assert all(p.grad is None for p in model.parameters())  # only the gates were differentiated
    with pytest.raises(ValueError, match="no 'labels'"):
        head_importance(model, [inputs])


def test_least_important_heads_keeps_one_per_layer():
    import pandas as pd

    table = pd.DataFrame({"layer": [0, 0, 1, 1], "head": [0, 1, 0, 1], "importance": [0.1, 0.2, 0.9, 0.05]})
    assert least_important_heads(table, 0.25) == {1: [1]}
    assert least_important_heads(table, 0.5) == {0: [0], 1: [1]}
    assert least_important_heads(table, 0.9) == {0: [0], 1: [1]}  # a third would empty a layer
    assert least_important_heads(table, 0.0) == {}
    with pytest.raises(ValueError, match="fraction"):
        least_important_heads(table, 1.0)


def test_even_heads_prunes_as_many_in_every_layer():
    import pandas as pd

    table = pd.DataFrame({"layer": [0, 0, 0, 0, 1, 1, 1, 1], "head": [0, 1, 2, 3] * 2,
                          "importance": [0.1, 0.2, 0.3, 0.4, 0.01, 0.02, 0.03, 0.9]})
    assert even_heads(table, 0.5) == {0: [0, 1], 1: [0, 1]}
    assert least_important_heads(table, 0.5) == {0: [0], 1: [0, 1, 2]}  # ranked across layers: uneven
    assert even_heads(table, 0.9) == {0: [0, 1, 2], 1: [0, 1, 2]}  # every layer keeps one head
    assert even_heads(table, 0.0) == {}


def test_a_head_pruned_model_round_trips_the_cache_folder(make_model, inputs, tokenizer, tmp_path):
    """Pruned twice (the config records both plans); save_pretrained's folder loads back only with the rebuild."""
    model = prune_heads(prune_heads(make_model(), {0: [1]}), {1: [0]})
    folder = minikit.cache.save_model_dir(model, tokenizer, tmp_path / "pruned")
    with pytest.raises(ValueError, match=r"heads were pruned.*rebuild=minikit.pruning.restore_pruned_heads"):
        minikit.cache.load_model_dir(folder)
    loaded, _ = minikit.cache.load_model_dir(folder, rebuild=restore_pruned_heads)
    assert heads_per_layer(loaded) == heads_per_layer(model) == [1, 1]
    torch.testing.assert_close(logits(loaded, inputs), logits(model, inputs))


@pytest.mark.parametrize("heads, says", [
    ({5: [0]}, r"Layer 5 does not exist: the model has layers 0…1"),
    ({0: [7]}, r"Head\(s\) \[7\] do not exist in layer 0, which has heads 0…1"),
    ({1: [0, 1]}, r"no attention head.*drop_layers"),
])
def test_pruning_a_head_that_does_not_exist_is_refused(make_model, heads, says):
    with pytest.raises(ValueError, match=says):
        prune_heads(make_model(), heads)


# --- feed-forward neurons and layers --------------------------------------------------------------


def test_pruning_silent_neurons_shrinks_the_ffn_and_keeps_outputs(make_model, inputs, tmp_path):
    model = make_model()
    with torch.no_grad():  # neurons 0–15 of every block contribute nothing: they must be the ones removed
        for parts in layer_parts(model):
            for up, down in parts.ffn:
                up.weight[:16], down.weight[:, :16] = 0, 0
    pruned = prune_ffn_neurons(model, 0.25)
    assert all(up.out_features == 48 == down.in_features for p in layer_parts(pruned) for up, down in p.ffn)
    torch.testing.assert_close(logits(pruned, inputs), logits(model, inputs), atol=1e-5, rtol=1e-4)
    assert getattr(pruned.config, "intermediate_size", getattr(pruned.config, "hidden_dim", None)) == 48
    pruned.save_pretrained(tmp_path)  # the config describes the new shapes, so it loads back
    reloaded = type(pruned).from_pretrained(tmp_path).eval()
    torch.testing.assert_close(logits(reloaded, inputs), logits(pruned, inputs))
    with pytest.raises(ValueError, match="fraction"):
        prune_ffn_neurons(model, -0.5)


def test_dropping_the_top_layer_returns_the_layer_below(make_model, inputs):
    model = make_model()
    pruned = drop_layers(model, [1])
    assert pruned.config.num_hidden_layers == 1 and model.config.num_hidden_layers == 2
    assert len(layer_parts(pruned)) == 1
    with torch.no_grad():
        full = model.base_model(**inputs, output_hidden_states=True).hidden_states
        short = pruned.base_model(**inputs).last_hidden_state
    torch.testing.assert_close(short, full[-2])
    assert logits(pruned, inputs).shape == (3, 3)
    with pytest.raises(ValueError, match=r"Layer\(s\) \[9\] do not exist"):
        drop_layers(model, [9])
    with pytest.raises(ValueError, match="no encoder"):
        drop_layers(model, [0, 1])


def test_structured_pruning_combines_and_saves_smaller(make_model):
    model = make_model()
    smaller = drop_layers(prune_ffn_neurons(prune_heads(model, {0: [0]}), 0.5), [1])
    assert minikit.count_parameters(smaller) < minikit.count_parameters(model)
    assert minikit.size_on_disk_mb(smaller) < minikit.size_on_disk_mb(model)


# --- recovery -------------------------------------------------------------------------------------


def test_recovery_fine_tune_keeps_pruned_weights_at_zero(tiny_bert_config, tokenizer):
    topics = {"sport": "the team won the match", "business": "shares fell on the market",
              "politics": "the minister called a vote"}
    features = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=list(topics))})

    def split(n: int) -> datasets.Dataset:
        return datasets.Dataset.from_list([{"text": f"{list(topics.values())[i % 3]} ({i})", "label": i % 3}
                                           for i in range(n)], features=features)

    splits = datasets.DatasetDict(train=split(12), validation=split(6))
    model = minikit.build_model(tiny_bert_config(vocab_size=tokenizer.vocab_size), num_labels=3, seed=0)
    pruned = magnitude_prune(model, 0.5)
    zeros = [m.weight == 0 for _, _, m in encoder_linears(pruned)]
    before = [m.weight.clone() for _, _, m in encoder_linears(pruned)]
    result = recover(pruned, tokenizer, splits, TrainConfig(epochs=1, batch_size=4, eval_every=3,
                                                             learning_rate=3e-3), progress=False)
    assert result.steps == 3
    after = [m.weight for _, _, m in encoder_linears(pruned)]
    assert all(torch.equal(w[z], torch.zeros_like(w[z])) for w, z in zip(after, zeros))
    assert any(not torch.equal(a, b) for a, b in zip(after, before))  # the rest did train
    assert not any(k.endswith(("_orig", "_mask")) for k in pruned.state_dict())


# --- the pieces chapter 5's explorer is built from ---------------------------------------------------


@pytest.mark.parametrize("value", [0, 0.25, np.float32(0.5)])
def test_check_fraction_returns_a_float(value):
    assert check_fraction(value, "amount") == float(value) and isinstance(check_fraction(value, "amount"), float)


@pytest.mark.parametrize("value", [1, 1.5, -0.1, True, "0.5", None])
def test_check_fraction_names_the_bad_argument(value):
    with pytest.raises(ValueError, match=r"amount=.*expected a fraction in \[0, 1\)"):
        check_fraction(value, "amount")


def test_csr_or_dense_bytes_by_hand():
    sparse = torch.zeros(4, 5)
    sparse[0, 1], sparse[2, 3], sparse[3, 0] = 1.0, -2.0, 3.0
    assert csr_or_dense_bytes(sparse) == 3 * (4 + 4) + (4 + 1) * 4  # 44 < 80 dense: CSR
    assert csr_or_dense_bytes(torch.ones(4, 5)) == 4 * 5 * 4  # CSR would be 20·8 + 20 = 180: dense
    assert csr_or_dense_bytes(torch.zeros(10)) == 40  # vectors stay dense, even all zeros
    assert csr_or_dense_bytes(torch.zeros(2, 2, dtype=torch.int64)) == 32  # integer matrices too
    assert csr_or_dense_bytes(torch.zeros(4, 5, dtype=torch.float16)) == (4 + 1) * 4  # only row pointers, < 40


def test_tensor_bytes_counts_shared_tensors_once_and_sparse_matrices_as_csr():
    linear = torch.nn.Linear(4, 2)  # weight 2×4, bias 2: 8 + 2 floats
    assert tensor_bytes(linear) == (8 + 2) * 4
    assert tensor_bytes(torch.nn.Sequential(linear, linear)) == (8 + 2) * 4  # the same module twice
    with torch.no_grad():
        linear.weight.zero_()
        linear.weight[1, 2] = 1.0
    assert tensor_bytes(linear) == 40  # dense: zeros cost as much as any number
    assert tensor_bytes(linear, sparse=True) == (1 * 8 + 3 * 4) + 2 * 4  # CSR weight (20 < 32) + dense bias


def test_magnitude_mask_zeroes_the_smallest_in_place_from_the_originals():
    a, b = torch.tensor([[1.0, -3.0], [0.5, 2.0]]), torch.tensor([[-4.0, 0.1, 5.0, 6.0]])
    wa, wb = torch.full_like(a, 9.0), torch.full_like(b, 9.0)  # whatever a previous setting left
    # global: |w| of all 8 sorted 0.1 0.5 1 2 3 4 5 6; half = 4 go, the cut is 2 (ties at the cut go too)
    magnitude_mask_([wa, wb], [a, b], 0.5)
    assert wa.tolist() == [[0.0, -3.0], [0.0, 0.0]] and wb.tolist() == [[-4.0, 0.0, 5.0, 6.0]]
    # per layer: a's cut is 1 (0.5, 1 go), b's is 4 (0.1, 4 go)
    magnitude_mask_([wa, wb], [a, b], 0.5, scope="layer")
    assert wa.tolist() == [[0.0, -3.0], [0.0, 2.0]] and wb.tolist() == [[0.0, 0.0, 5.0, 6.0]]
    magnitude_mask_([wa, wb], [a, b], 0.0)  # nothing pruned: the originals again
    assert torch.equal(wa, a) and torch.equal(wb, b)
    assert a.tolist() == [[1.0, -3.0], [0.5, 2.0]]  # originals are only read
    with pytest.raises(ValueError, match="scope='rows'"):
        magnitude_mask_([wa], [a], 0.5, scope="rows")


def test_middle_out_and_layers_to_drop_by_hand():
    assert middle_out(6) == [2, 3, 1, 4, 0, 5]  # distance from 2.5, ties to the lower index
    assert middle_out(5) == [2, 1, 3, 0, 4]
    assert layers_to_drop(6, 0.5) == [1, 2, 3]  # round(3) layers: 2, 3, 1
    assert layers_to_drop(4, 0.9) == [0, 1, 2]  # round(3.6) = 4, but one layer stays
    assert layers_to_drop(6, 0.0) == []
    with pytest.raises(ValueError, match="fraction=1"):
        layers_to_drop(6, 1)


def test_removal_table_and_share_against_counts(tiny_bert_config):
    model = minikit.build_model(tiny_bert_config(num_hidden_layers=4), num_labels=3, seed=0)
    original = sparsity_table(model)
    dense = removal_table(model, original)
    assert (dense["removed"] == 0).all() and (dense["nonzero"] == dense["params"]).all()
    assert removed_share(dense) == 0.0
    assert set(dense["role"]) == {"query", "key", "value", "attention-out", "ffn-up", "ffn-down"}

    dropped = removal_table(drop_layers(model, [1]), original, kept_layers=[0, 2, 3])
    gone = dropped.set_index("layer")["removed"]
    assert (gone.loc[1] == 1).all() and (gone.drop(index=1) == 0).all()
    assert removed_share(dropped) == 0.25  # 1 of 4 equal layers

    pruned = magnitude_prune(model, 0.5)
    total = int(original["params"].sum())
    assert removed_share(removal_table(pruned, original)) == pytest.approx(round(0.5 * total) / total, abs=1e-9)
