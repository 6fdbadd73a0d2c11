"""minikit.distillation on tiny random models and a hand-made three-topic dataset (seconds, not minutes)."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from helpers import FAST, model_inputs  # noqa: E402  (shared test data)
from torch import nn

import minikit
from minikit import distillation
from minikit.distillation import (
    LAYER_MAPS,
    _Distiller,
    attention_loss,
    check_kd,
    check_logits,
    confidence_spread,
    distill,
    distillation_loss,
    entropy_bits,
    hidden_state_loss,
    layer_pairs,
    softened_distribution,
    softened_table,
    teacher_logits,
    train_without_teacher,
)
from minikit.attention import attention_dropouts, eager_attention
from minikit.models import encoder_layers
from minikit.students import prune_vocabulary, select_layers, smaller_student
from minikit.training import FineTuned, TrainConfig

# Each test gets a MINIKIT_CACHE of its own (conftest.cache_root).
pytestmark = pytest.mark.usefixtures("cache_root")


# --- the loss -----------------------------------------------------------------------------------


def _hand_loss(s, t, y, alpha, T):
    """The formula with numpy, one example at a time."""
    def softmax(z):
        e = np.exp(z - z.max())
        return e / e.sum()

    total = 0.0
    for si, ti, yi in zip(s, t, y):
        ce = -np.log(softmax(si)[yi])
        p_t, p_s = softmax(ti / T), softmax(si / T)
        kl = np.sum(p_t * (np.log(p_t) - np.log(p_s)))
        total += alpha * ce + (1 - alpha) * T ** 2 * kl
    return total / len(s)


@pytest.mark.parametrize("alpha, temperature", [(0.5, 2.0), (0.0, 1.0), (0.9, 4.0), (0.3, 0.5)])
def test_distillation_loss_equals_the_hand_computation(alpha, temperature):
    s = np.array([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3], [-2.0, 3.0, 0.0]])
    t = np.array([[3.0, 1.0, -2.0], [1.0, 0.0, -1.0], [0.0, 4.0, 1.0]])
    y = np.array([0, 2, 1])
    got = distillation_loss(torch.tensor(s), torch.tensor(t), torch.tensor(y), alpha, temperature)
    assert got.item() == pytest.approx(_hand_loss(s, t, y, alpha, temperature), rel=1e-10)


def test_alpha_one_is_cross_entropy_and_a_student_equal_to_its_teacher_has_no_soft_loss():
    g = torch.Generator().manual_seed(0)
    s, t, y = torch.randn(8, 5, generator=g), torch.randn(8, 5, generator=g), torch.randint(0, 5, (8,), generator=g)
    assert torch.equal(distillation_loss(s, t, y, alpha=1.0, temperature=3.0), F.cross_entropy(s, y))
    assert distillation_loss(s, s, y, alpha=0.0, temperature=3.0).item() == pytest.approx(0.0, abs=1e-6)
    # T² keeps the soft term's gradient about the same size when T grows (for large T it tends to a constant)
    grads = []
    for T in (10.0, 40.0):
        z = s.clone().requires_grad_(True)
        distillation_loss(z, t, y, alpha=0.0, temperature=T).backward()
        grads.append(z.grad.norm().item())
    assert grads[1] == pytest.approx(grads[0], rel=0.1)


@pytest.mark.parametrize("kwargs, says", [
    ({"alpha": -0.1}, r"alpha=-0.1: expected a weight in \[0, 1\]"),
    ({"alpha": 1.5}, r"alpha=1.5"),
    ({"alpha": float("nan")}, r"alpha=nan"),
    ({"alpha": True}, r"alpha=True"),
    ({"temperature": 0}, r"temperature=0: expected a number > 0"),
    ({"temperature": -2.0}, r"temperature=-2.0"),
    ({"temperature": float("inf")}, r"temperature=inf"),
])
def test_bad_alpha_or_temperature_says_what_and_the_range(kwargs, says):
    s = torch.zeros(2, 3)
    with pytest.raises(ValueError, match=says):
        distillation_loss(s, s, torch.tensor([0, 1]), **kwargs)


def test_hidden_state_loss_is_mse_over_real_tokens_only():
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(2, 5, 4, generator=g), torch.randn(2, 5, 4, generator=g)
    mask = torch.ones(2, 5, dtype=torch.long)
    assert hidden_state_loss([s], [t], mask).item() == pytest.approx(F.mse_loss(s, t).item())
    mask[1, 3:] = 0
    changed = s.clone()
    changed[1, 3:] = 100.0  # padding positions: not scored
    assert hidden_state_loss([changed], [t], mask).item() == pytest.approx(hidden_state_loss([s], [t], mask).item())
    projection = nn.Linear(4, 6)
    target = projection(s).detach()
    assert hidden_state_loss([s, s], [target, target], mask, projection).item() == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="same number"):
        hidden_state_loss([s], [t, t], mask)


def _hand_attention_kl(s, t, mask):
    """KL(teacher ‖ student) per head and real query row, with numpy, one row at a time, then averaged."""
    total, rows = 0.0, 0
    for b in range(s.shape[0]):
        for h in range(s.shape[1]):
            for q in np.flatnonzero(mask[b]):
                p, r = t[b, h, q], s[b, h, q]
                keep = p > 0  # 0 · log 0 counts as 0
                total += np.sum(p[keep] * (np.log(p[keep]) - np.log(r[keep])))
                rows += 1
    return total / rows


def test_attention_loss_is_kl_per_head_and_real_query_row():
    g = torch.Generator().manual_seed(0)
    mask = torch.ones(2, 5, dtype=torch.long)
    mask[1, 3:] = 0
    keys = torch.where(mask[:, None, None, :].bool(), 0.0, float("-inf"))  # padding keys get probability 0

    def maps():
        return torch.softmax(torch.randn(2, 3, 5, 5, generator=g) + keys, dim=-1)

    s, t = maps(), maps()
    expected = _hand_attention_kl(s.numpy().astype(np.float64), t.numpy().astype(np.float64), mask.numpy())
    assert attention_loss([s], [t], mask).item() == pytest.approx(expected, rel=1e-5)
    assert attention_loss([t, s], [t, t], mask).item() == pytest.approx(expected / 2, rel=1e-5)  # mean over pairs
    assert attention_loss([s], [s], mask).item() == pytest.approx(0.0, abs=1e-6)
    changed = s.clone()
    changed[1, :, 3:] = 1 / 5  # padding query rows: not scored
    assert attention_loss([changed], [t], mask).item() == pytest.approx(expected, rel=1e-5)
    live = s.clone().requires_grad_(True)
    attention_loss([live], [t], mask).backward()
    assert torch.isfinite(live.grad).all() and live.grad.abs().sum() > 0  # zeros at padding keys: no NaN
    with pytest.raises(ValueError, match="same number, paired layer by layer. Fix"):
        attention_loss([s], [t, t], mask)
    for empty in ((), [None]):  # what SDPA returns, and a missing map
        with pytest.raises(ValueError, match=r"no attention maps.*Fix: .*minikit.attention.eager_attention"):
            attention_loss([s], empty, mask)
    with pytest.raises(ValueError, match="Fix: build the student with the teacher's num_attention_heads"):
        attention_loss([s[:, :2]], [t], mask)


@pytest.mark.parametrize("family", ["bert", "distilbert"])
def test_hidden_and_attention_losses_on_tiny_random_models(family, tiny_bert_config, tiny_distilbert_config):
    config = (tiny_bert_config if family == "bert" else tiny_distilbert_config)(
        **({"num_hidden_layers": 4} if family == "bert" else {"n_layers": 4}))
    teacher = minikit.build_model(config, num_labels=3, seed=0)
    student = select_layers(teacher, [1, 3])  # pairs: student layer 0 with teacher 1, 1 with 3
    ids = torch.randint(5, 1000, (2, 6), generator=torch.Generator().manual_seed(1))
    mask = torch.tensor([[1] * 6, [1] * 4 + [0] * 2])
    with eager_attention(teacher), eager_attention(student):
        theirs = teacher(input_ids=ids, attention_mask=mask, output_hidden_states=True, output_attentions=True)
        ours = student(input_ids=ids, attention_mask=mask, output_hidden_states=True, output_attentions=True)
    assert teacher.config._attn_implementation == "sdpa" == student.config._attn_implementation  # restored
    # The embeddings are the teacher's, so the student's first layer input is the teacher's: student layer 0 is
    # teacher layer 1 applied to the embeddings, which is not teacher layer 1's output (that read layer 0's).
    same = hidden_state_loss([ours.hidden_states[0]], [theirs.hidden_states[0]], mask)
    assert same.item() == pytest.approx(0.0, abs=1e-10)
    hidden = hidden_state_loss([ours.hidden_states[1], ours.hidden_states[2]],
                               [theirs.hidden_states[2], theirs.hidden_states[4]], mask)
    maps = attention_loss([ours.attentions[0], ours.attentions[1]], [theirs.attentions[1], theirs.attentions[3]], mask)
    assert hidden.item() > 0 and maps.item() > 0
    assert attention_loss(list(theirs.attentions), list(theirs.attentions), mask).item() == pytest.approx(0, abs=1e-6)
    (hidden + maps).backward()
    grads = [p.grad for p in encoder_layers(student)[0].parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads) and any(g.abs().sum() > 0 for g in grads)


def test_softened_distribution_flattens_as_temperature_rises(teacher):
    text = "the striker scored twice"
    base = softened_distribution(teacher.model, teacher.tokenizer, text, temperature=1.0)
    assert list(base.columns) == ["label", "logit", "probability"] and len(base) == 3
    expected = torch.softmax(torch.tensor(base["logit"].values), 0).numpy()
    np.testing.assert_allclose(base["probability"], expected, rtol=1e-6)
    probs = [softened_distribution(teacher.model, teacher.tokenizer, text, T)["probability"].values
             for T in (0.5, 1.0, 4.0, 50.0)]
    entropies = [-np.sum(p * np.log(p)) for p in probs]
    assert entropies == sorted(entropies) and entropies[-1] == pytest.approx(np.log(3), abs=0.01)
    with pytest.raises(ValueError, match="temperature=0"):
        softened_distribution(teacher.model, teacher.tokenizer, text, temperature=0)


# --- teacher logits and distill -----------------------------------------------------------------


def test_teacher_logits_are_computed_once(teacher, monkeypatch):
    first = teacher_logits(teacher)
    assert first.shape == (36, 3)
    np.testing.assert_allclose(first, minikit.training.predict_logits(teacher.model, teacher.tokenizer,
                                                                      teacher.splits["train"]), rtol=1e-6)
    monkeypatch.setattr(distillation, "predict_logits", lambda *a, **k: pytest.fail("computed again"))
    teacher.tokenizer(["a call that leaves padding and truncation set"], padding="max_length", max_length=16,
                      truncation=True)  # state of the tokenizer object, not part of what it is: same key
    np.testing.assert_array_equal(teacher_logits(teacher), first)
    assert len(minikit.cache.entries("teacher-logits")) == 1


def test_distill_learns_and_a_second_call_loads_it(teacher):
    student = select_layers(teacher.model, [0, 2])
    before = copy.deepcopy(student.state_dict())
    config = TrainConfig(**{**FAST, "epochs": 4})
    seen = []
    first = distill(student, teacher, alpha=0.5, temperature=2.0, config=config, callback=seen.append, progress=False)
    history = first.result.history
    assert not first.from_cache and first.cache_dir.parent.name == "distilled"
    assert history["train_loss"].iloc[-3:].mean() < history["train_loss"].iloc[:3].mean()
    assert seen and seen[-1].equals(history)
    assert first.result.best_val_accuracy > 0.5 and 0 <= first.test_accuracy <= 1  # chance is 1/3
    assert all(torch.equal(v, before[k]) for k, v in student.state_dict().items())  # trained a copy
    assert len(encoder_layers(first.model)) == 2

    seen.clear()
    second = distill(student, teacher, alpha=0.5, temperature=2.0, config=config, callback=seen.append, progress=False)
    assert second.from_cache and second.cache_dir == first.cache_dir and len(seen) == 1
    pd.testing.assert_frame_equal(second.result.history, history)
    assert second.test_accuracy == first.test_accuracy
    ids = model_inputs(teacher.tokenizer, ["the team won the match"])
    with torch.no_grad():
        torch.testing.assert_close(second.model(**ids).logits, first.model.cpu()(**ids).logits)

    # the no-teacher baseline: same student and data, labels only; a separate entry
    alone = train_without_teacher(student, teacher, config=config, progress=False)
    assert not alone.from_cache and alone.cache_dir != first.cache_dir
    assert not alone.result.history["train_loss"].equals(history["train_loss"])
    assert distill(student, teacher, alpha=1.0, temperature=7.0, config=config, progress=False).from_cache  # T unused


def test_distill_with_hidden_matching_a_narrower_pruned_student(teacher):
    narrow = smaller_student(teacher.model, num_layers=2, hidden_size=16, intermediate_size=32, init="random")
    pruned = prune_vocabulary(narrow, teacher.tokenizer, list(teacher.splits["train"]["text"]), keep_characters=False)
    result = distill(pruned.model, teacher, tokenizer=pruned.tokenizer, alpha=0.5, hidden_weight=1.0,
                     config=TrainConfig(**{**FAST, "epochs": 2}), progress=False, cache=False)
    assert result.cache_dir is None and result.tokenizer is pruned.tokenizer
    assert np.isfinite(result.result.history["train_loss"]).all()
    assert result.model.get_input_embeddings().num_embeddings == pruned.new_vocab_size


def test_distill_with_attention_maps_trains_under_eager_attention_and_restores_it(teacher):
    student = select_layers(teacher.model, [1, 3])
    seen = []
    original = _Distiller.forward

    def spy(self, input_ids, attention_mask, labels=None):
        if self.training and labels is not None:
            seen.append((self.student.config._attn_implementation, teacher.model.config._attn_implementation))
        return original(self, input_ids, attention_mask, labels)

    config = TrainConfig(**{**FAST, "epochs": 2})
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_Distiller, "forward", spy)
        result = distill(student, teacher, alpha=0.5, attention_weight=1.0, config=config, progress=False)
    assert seen and set(seen) == {("eager", "eager")}
    assert teacher.model.config._attn_implementation == "sdpa" == result.model.config._attn_implementation
    assert np.isfinite(result.result.history["train_loss"]).all()
    logits_only = distill(student, teacher, alpha=0.5, config=config, progress=False)
    assert logits_only.cache_dir != result.cache_dir  # a separate entry
    assert not logits_only.result.history["train_loss"].equals(result.result.history["train_loss"])
    assert distill(student, teacher, alpha=0.5, attention_weight=1.0, config=config, progress=False).from_cache


def test_distiller_pairs_each_student_layer_with_its_teacher_layer(teacher, tiny_bert_config):
    """A student of the teacher's first two layers, at step 0, matches them exactly: both terms are 0.

    Hidden dropout is off and attention dropout high (0.5), so any term above 0 at the first step is a wrong
    pairing (an off-by-one between hidden_states and attentions) or attention dropout left on in training.
    """
    config = tiny_bert_config(vocab_size=teacher.tokenizer.vocab_size, num_hidden_layers=4, hidden_dropout_prob=0.0,
                              attention_probs_dropout_prob=0.5)
    model = minikit.build_model(config, num_labels=3, seed=0)
    dropouts = attention_dropouts(model)
    sharp = FineTuned(model, teacher.tokenizer, teacher.splits, teacher.result, float("nan"), None, False)
    seen = {"hidden": [], "maps": []}
    real_hidden, real_maps = distillation.hidden_state_loss, distillation.attention_loss

    def hidden_spy(*args, **kwargs):
        seen["hidden"].append(real_hidden(*args, **kwargs).item())
        return real_hidden(*args, **kwargs)

    def maps_spy(*args, **kwargs):
        seen["maps"].append(real_maps(*args, **kwargs).item())
        return real_maps(*args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(distillation, "hidden_state_loss", hidden_spy)
        patch.setattr(distillation, "attention_loss", maps_spy)
        distill(select_layers(model, [0, 1]), sharp, alpha=0.5, hidden_weight=1.0, attention_weight=1.0,
                config=TrainConfig(**{**FAST, "epochs": 1}), progress=False, cache=False)
    assert seen["hidden"][0] == pytest.approx(0.0, abs=1e-10) and seen["maps"][0] == pytest.approx(0.0, abs=1e-6)
    assert max(seen["hidden"]) > 0 and max(seen["maps"]) > 0  # the student moves away from its copies as it trains
    assert all(d.p == 0.5 for d in dropouts)  # the teacher's own rates, untouched


def test_layer_pairs_copied_uniform_and_last(tiny_bert_config):
    teacher = minikit.build_model(tiny_bert_config(num_hidden_layers=6), num_labels=3, seed=0)
    student = select_layers(teacher, [0, 2, 4])
    assert layer_pairs(student, teacher) == [(0, 0), (1, 2), (2, 4)]  # each with its source
    assert layer_pairs(select_layers(teacher, [1, 5]), teacher) == [(0, 1), (1, 5)]
    assert layer_pairs(student, teacher, "uniform") == [(0, 1), (1, 3), (2, 5)]  # TinyBERT's: last with last
    assert layer_pairs(student, teacher, "last") == [(2, 5)]  # MiniLM's
    fresh = minikit.build_model(tiny_bert_config(num_hidden_layers=3), num_labels=3, seed=0)  # no teacher_layers
    assert layer_pairs(fresh, teacher) == [(0, 0), (1, 2), (2, 4)]
    assert set(LAYER_MAPS) == {"copied", "uniform", "last"}
    with pytest.raises(ValueError, match=r"layer_map='first': expected one of .*Fix: pass \"copied\""):
        layer_pairs(student, teacher, "first")


def test_distill_with_the_last_layer_map_pairs_only_the_last_layers(teacher):
    seen = []
    real = distillation.attention_loss

    def spy(student_maps, teacher_maps, mask):
        seen.append(len(student_maps))
        return real(student_maps, teacher_maps, mask)

    student = select_layers(teacher.model, [0, 2])
    config = TrainConfig(**{**FAST, "epochs": 1})
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(distillation, "attention_loss", spy)
        last = distill(student, teacher, attention_weight=1.0, layer_map="last", config=config, progress=False)
    assert seen and set(seen) == {1}  # one pair: the student's last layer with the teacher's
    copied = distill(student, teacher, attention_weight=1.0, config=config, progress=False)
    assert copied.cache_dir != last.cache_dir
    with pytest.raises(ValueError, match="layer_map='middle'"):
        distill(student, teacher, hidden_weight=1.0, layer_map="middle", progress=False)


def test_distill_says_when_student_and_teacher_do_not_fit(teacher, tiny_bert_config):
    five = minikit.build_model(tiny_bert_config(vocab_size=teacher.tokenizer.vocab_size), num_labels=5, seed=0)
    with pytest.raises(ValueError, match="num_labels=5, the teacher 3"):
        distill(five, teacher, progress=False)
    pruned = prune_vocabulary(teacher.model, teacher.tokenizer, ["the team"], keep_characters=False)
    with pytest.raises(ValueError, match="tokenizer=pruned.tokenizer"):
        distill(pruned.model, teacher, progress=False)
    with pytest.raises(ValueError, match="hidden_weight=-1"):
        distill(teacher.model, teacher, hidden_weight=-1, progress=False)
    with pytest.raises(ValueError, match="attention_weight=-1"):
        distill(teacher.model, teacher, attention_weight=-1, progress=False)
    one_head = smaller_student(teacher.model, num_layers=2, num_attention_heads=1)
    with pytest.raises(ValueError, match="num_attention_heads=1, the teacher 2.*Fix: build the student with num_attention_heads=2"):
        distill(one_head, teacher, attention_weight=1.0, progress=False)


# --- soft labels from logits: what chapter 7's temperature explorer draws ------------------------------


def test_check_kd_accepts_the_ranges_and_names_what_is_wrong():
    assert check_kd(0.0, 0.5) is None and check_kd(1.0, 4.0, hidden_weight=2.0) is None
    for args, name in [((1.5, 2.0), "alpha=1.5"), ((0.5, 0.0), "temperature=0.0"), ((0.5, float("nan")), "temperature"),
                       ((0.5, 2.0, -1.0), "hidden_weight=-1.0"), ((0.5, 2.0, 0.0, -1.0), "attention_weight=-1.0")]:
        with pytest.raises(ValueError, match=name):
            check_kd(*args)


def test_entropy_bits_by_hand():
    assert entropy_bits(np.array([0.5, 0.5])) == 1.0
    assert entropy_bits(np.array([1.0, 0.0, 0.0])) == 0.0  # 0 · log 0 counts as 0
    assert entropy_bits(np.full(4, 0.25)) == 2.0
    assert entropy_bits(np.array([0.25, 0.75])) == pytest.approx(0.5 + 0.75 * np.log2(4 / 3))


def test_confidence_spread_goes_from_sure_to_unsure():
    logits = np.array([[10.0 - i, 0.0, 0.0] for i in range(7)])  # row i is less sure than row i - 1
    assert confidence_spread(logits, 3) == [0, 3, 6]  # quantiles 0, 0.5, 1 of the order
    shuffled = [4, 0, 6, 2, 5, 1, 3]  # shuffled[k] is the original row at position k
    assert confidence_spread(logits[shuffled], 3) == [shuffled.index(0), shuffled.index(3), shuffled.index(6)]
    assert sorted(confidence_spread(logits[:2], 6)) == [0, 1]  # never more than there are rows


def test_softened_table_and_check_logits():
    table = softened_table(np.array([0.0, np.log(3.0)]), ["a", "b"], 1, 1.0)
    assert list(table.columns) == ["label", "probability", "probability_t1", "is_true"]
    np.testing.assert_allclose(table["probability"], [0.25, 0.75])
    np.testing.assert_allclose(table["probability_t1"], [0.25, 0.75])
    assert table["is_true"].tolist() == [False, True] and table["label"].tolist() == ["a", "b"]
    with pytest.raises(ValueError, match="temperature=0"):
        softened_table(np.zeros(2), ["a", "b"], 0, 0)
    logits, labels = check_logits([[1, 2], [3, 4]], ["x", "y"], [0, 1])
    assert logits.dtype == np.float64 and logits.shape == (2, 2) and labels.tolist() == [0, 1]
    for bad in ([1, 2], [[1, 2]]):
        with pytest.raises(ValueError, match="expected logits of shape"):
            check_logits(bad, ["x", "y"], [0, 1])


def test_student_start_keeps_the_layers_and_prunes_the_vocabulary(teacher):
    start = distillation.student_start(teacher, layers=(1, 3), min_count=1)
    assert len(encoder_layers(start.model)) == 2 and start.new_vocab_size < start.old_vocab_size
    assert start.model.get_input_embeddings().num_embeddings == len(start.tokenizer)


def test_chapter_7_checks_recompute_the_answers(teacher):  # kd_loss is an implement-it check: test_implement_07_08
    student = select_layers(teacher.model, [0, 2])
    assert minikit.check.student_parameters(minikit.count_parameters(student), teacher.model, student)
    layer = minikit.count_parameters(encoder_layers(teacher.model)[0])
    one_layer = minikit.check.student_parameters(minikit.count_parameters(student) + layer, teacher.model, student)
    assert "one encoder layer" in one_layer.message and f"{layer:,}" not in one_layer.message
    high = minikit.check.student_parameters(minikit.count_parameters(student) + 12_345, teacher.model, student)
    assert "Too many" in high.message and "12,345" not in high.message
    logits = [2.0, 0.5, -1.0]
    p = lambda T: np.exp(np.array(logits) / T).max() / np.exp(np.array(logits) / T).sum()  # noqa: E731
    lo, hi = 0.01, 100.0
    for _ in range(60):
        mid = (lo * hi) ** 0.5
        lo, hi = (mid, hi) if p(mid) > 0.5 else (lo, mid)
    assert minikit.check.temperature_for_top(lo, logits, share=0.5)
    assert "higher" in minikit.check.temperature_for_top(lo / 2, logits, share=0.5).message
    assert "never crosses" in minikit.check.temperature_for_top(1.0, [1.0, 1.0, 1.0], share=0.5).message
