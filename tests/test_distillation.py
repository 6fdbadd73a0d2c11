"""minikit.distillation on tiny random models and a hand-made three-topic dataset (seconds, not minutes)."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from helpers import TOPICS, make_splits  # noqa: E402  (shared test data)
from tokenizers import Tokenizer
from tokenizers.models import BPE
from torch import nn
from transformers import PreTrainedTokenizerFast

import minikit
from minikit import distillation
from minikit.distillation import (
    check_kd,
    check_logits,
    confidence_spread,
    distill,
    distillation_loss,
    entropy_bits,
    hidden_state_loss,
    softened_distribution,
    softened_table,
    teacher_logits,
    train_without_teacher,
)
from minikit.metrics import soft_probabilities
from minikit.models import encoder_layers
from minikit.students import prune_vocabulary, select_layers, smaller_student, spread_layers
from minikit.training import FineTuned, TrainConfig, train_classifier

FAST = dict(epochs=3, batch_size=4, eval_every=3, learning_rate=3e-3, activation_checkpointing=False)


@pytest.fixture(autouse=True)
def cache_root(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIKIT_CACHE", str(tmp_path / "minikit-cache"))
    return tmp_path / "minikit-cache"


def _inputs(tokenizer, texts):
    enc = tokenizer(texts, return_tensors="pt", padding=True)
    return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}


@pytest.fixture(scope="module")
def teacher() -> FineTuned:
    """A 4-layer, 32-wide BERT trained ~1 s on the three topics: a teacher that knows something (2/3 val accuracy)."""
    torch.manual_seed(0)
    tokenizer = minikit.load_tokenizer()
    config = minikit.models.BertConfig(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=64,
                                       vocab_size=tokenizer.vocab_size, max_position_embeddings=128)
    model = minikit.build_model(config, num_labels=3, seed=0)
    splits = make_splits()
    result = train_classifier(model, tokenizer, splits, TrainConfig(**{**FAST, "epochs": 6}), progress=False)
    return FineTuned(model, tokenizer, splits, result, test_accuracy=float("nan"), cache_dir=None, from_cache=False)


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


# --- students -----------------------------------------------------------------------------------


@pytest.fixture
def teachers(tiny_bert_config, tiny_distilbert_config, tiny_mobilebert_config):
    """Random 4-layer classifiers of the three families."""
    return {"bert": minikit.build_model(tiny_bert_config(num_hidden_layers=4), num_labels=3, seed=0),
            "distilbert": minikit.build_model(tiny_distilbert_config(n_layers=4), num_labels=3, seed=0),
            "mobilebert": minikit.build_model(tiny_mobilebert_config(num_hidden_layers=4), num_labels=3, seed=0)}


@pytest.mark.parametrize("family", ["bert", "distilbert", "mobilebert"])
def test_select_layers_keeps_the_chosen_layers_and_copies_every_weight(teachers, family, random_ids):
    teacher = teachers[family]
    before = copy.deepcopy(teacher.state_dict())
    student = select_layers(teacher, [0, 2, 3])
    t_layers, s_layers = encoder_layers(teacher), encoder_layers(student)
    assert len(s_layers) == student.config.num_hidden_layers == 3 and len(t_layers) == 4
    assert student.config.teacher_layers == [0, 2, 3]
    for s, t in zip(s_layers, [t_layers[0], t_layers[2], t_layers[3]]):
        t_state = t.state_dict()
        assert all(torch.equal(v, t_state[k]) for k, v in s.state_dict().items())
        assert s.state_dict().keys() == t_state.keys()
    in_layers = {id(p) for layer in s_layers for p in layer.parameters()}
    outside = [name for name, p in student.named_parameters() if id(p) not in in_layers]
    t_params = dict(teacher.named_parameters())
    assert outside and all(torch.equal(p, t_params[n]) for n, p in student.named_parameters() if n in outside)
    # the weights are copies: training the student leaves the teacher as it was
    with torch.no_grad():
        next(student.parameters()).add_(1.0)
    assert all(torch.equal(v, before[k]) for k, v in teacher.state_dict().items())
    # keeping every layer gives the teacher back, logit for logit
    ids = random_ids(2, 10)
    with torch.no_grad():
        torch.testing.assert_close(select_layers(teacher, 4)(input_ids=ids).logits, teacher(input_ids=ids).logits,
                                   rtol=0, atol=0)


def test_select_layers_with_a_count_spreads_them_from_the_bottom(teachers):
    assert spread_layers(6, 3) == [0, 2, 4] and spread_layers(12, 6) == [0, 2, 4, 6, 8, 10]
    assert spread_layers(4, 4) == [0, 1, 2, 3] and spread_layers(6, 1) == [0]
    assert select_layers(teachers["bert"], 2).config.teacher_layers == [0, 2]


@pytest.mark.parametrize("layers, says", [
    ([0, 9], r"layer\(s\) \[9\] do not exist; the teacher has 4 layers \(0..3\)"),
    ([-1], r"layer\(s\) \[-1\] do not exist"),
    ([], r"non-empty list"),
    ([2, 0], r"each index once, bottom to top \(e.g. \[0, 2\]\)"),
    ([1, 1], r"each index once"),
    (["a"], r"non-empty list of layer indices"),
    (0, r"A student of 0 layers from a 4-layer teacher: expected a whole number from 1 to 4"),
    (5, r"5 layers"),
])
def test_bad_layers_say_what_is_wrong(teachers, layers, says):
    with pytest.raises(ValueError, match=says):
        select_layers(teachers["bert"], layers)


def test_smaller_student_takes_a_smaller_configuration(teachers):
    teacher = teachers["bert"]
    narrow = smaller_student(teacher, num_layers=2, hidden_size=16, intermediate_size=32, num_attention_heads=2)
    assert (narrow.config.num_hidden_layers, narrow.config.hidden_size, narrow.config.intermediate_size) == (2, 16, 32)
    assert len(encoder_layers(narrow)) == 2
    assert teacher.config.hidden_size == 32  # the teacher's config is not changed
    # same width, smaller feed-forward: attention weights start from the teacher, the FFN at random
    thin = smaller_student(teacher, num_layers=2, intermediate_size=16)
    t_attn = encoder_layers(teacher)[2].attention.self.query.weight
    assert torch.equal(encoder_layers(thin)[1].attention.self.query.weight, t_attn)
    assert encoder_layers(thin)[1].intermediate.dense.weight.shape == (16, 32)
    fresh = smaller_student(teacher, num_layers=2, intermediate_size=16, init="random")
    assert not torch.equal(encoder_layers(fresh)[1].attention.self.query.weight, t_attn)
    distil = smaller_student(teachers["distilbert"], num_layers=2, intermediate_size=48)
    assert distil.config.hidden_dim == 48 and distil.config.n_layers == 2
    with pytest.raises(ValueError, match=r"BertConfig has no field 'hidden_dim'"):
        smaller_student(teacher, hidden_dim=8)
    with pytest.raises(ValueError, match="init='copy'"):
        smaller_student(teacher, init="copy")
    with pytest.raises(ValueError, match="multiple of num_attention_heads"):
        smaller_student(teacher, hidden_size=30, num_attention_heads=4)


# --- vocabulary pruning -------------------------------------------------------------------------


@pytest.mark.parametrize("family", ["bert", "distilbert", "mobilebert"])
def test_vocabulary_pruning_keeps_the_logits_of_kept_tokens_and_shrinks_the_embedding(
        family, tokenizer, tiny_bert_config, tiny_distilbert_config, tiny_mobilebert_config, tmp_path):
    configs = {"bert": tiny_bert_config, "distilbert": tiny_distilbert_config, "mobilebert": tiny_mobilebert_config}
    make = configs[family]
    model = minikit.build_model(make(vocab_size=tokenizer.vocab_size), num_labels=3, seed=0)
    corpus = [text for texts in TOPICS.values() for text in texts]
    pruned = prune_vocabulary(model, tokenizer, corpus, keep_characters=False)
    used = {i for row in tokenizer(corpus)["input_ids"] for i in row}
    assert pruned.new_vocab_size == len(used | set(tokenizer.all_special_ids)) < 60
    rows = pruned.model.get_input_embeddings().weight.shape[0]
    assert rows == pruned.new_vocab_size == pruned.model.config.vocab_size
    assert model.get_input_embeddings().weight.shape[0] == tokenizer.vocab_size  # the original is left as it was
    width = model.get_input_embeddings().embedding_dim
    assert pruned.embedding_mb_before == pytest.approx(tokenizer.vocab_size * width * 4 / 1e6)
    assert pruned.mb_saved == pytest.approx((tokenizer.vocab_size - pruned.new_vocab_size) * width * 4 / 1e6)
    assert pruned.tokenizer.pad_token_id == 0 and len(pruned.tokenizer) == pruned.new_vocab_size

    texts = ["the striker scored twice", "the bank sold the stock in the final", "the party"]  # kept tokens only
    old, new = _inputs(tokenizer, texts), _inputs(pruned.tokenizer, texts)
    assert torch.equal(new["input_ids"], torch.from_numpy(pruned.remap(old["input_ids"])))
    with torch.no_grad():
        torch.testing.assert_close(pruned.model(**new).logits, model(**old).logits, rtol=0, atol=0)

    # a word it never saw: [UNK] without the characters, spelled out with them
    assert pruned.tokenizer.tokenize("zebra") == ["[UNK]"]
    spelled = prune_vocabulary(model, tokenizer, corpus)
    assert "[UNK]" not in spelled.tokenizer.tokenize("zebra") and spelled.new_vocab_size > 1000
    twice = prune_vocabulary(model, tokenizer, corpus, keep_characters=False, min_count=2)
    assert twice.tokenizer.convert_tokens_to_ids("the") != twice.tokenizer.unk_token_id  # used 6 times
    assert twice.tokenizer.tokenize("striker") == ["[UNK]"]  # used once
    assert twice.new_vocab_size < pruned.new_vocab_size
    # model and tokenizer save and load as ordinary Hugging Face objects
    minikit.cache.save_model_dir(pruned.model, pruned.tokenizer, tmp_path / "pruned")
    loaded, loaded_tokenizer = minikit.cache.load_model_dir(tmp_path / "pruned")
    assert loaded_tokenizer(texts)["input_ids"] == pruned.tokenizer(texts)["input_ids"]
    with torch.no_grad():
        torch.testing.assert_close(loaded(**new).logits, model(**old).logits, rtol=0, atol=0)


def test_vocabulary_pruning_says_what_it_cannot_do(tiny_bert_config, tokenizer):
    model = minikit.build_model(tiny_bert_config(vocab_size=tokenizer.vocab_size), num_labels=3, seed=0)
    with pytest.raises(TypeError, match="one string"):
        prune_vocabulary(model, tokenizer, "the team")
    with pytest.raises(ValueError, match="min_count=0: expected a whole number ≥ 1"):
        prune_vocabulary(model, tokenizer, ["the team"], min_count=0)
    small = minikit.build_model(tiny_bert_config(vocab_size=1000), num_labels=3, seed=0)
    with pytest.raises(ValueError, match="30522 tokens, the model's embedding 1000 rows"):
        prune_vocabulary(small, tokenizer, ["the team"])
    bpe = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(BPE({"a": 0, "b": 1, "<unk>": 2}, [], unk_token="<unk>")),
                                  unk_token="<unk>")
    with pytest.raises(ValueError, match="supports WordPiece tokenizers .* uses BPE"):
        prune_vocabulary(minikit.build_model(tiny_bert_config(vocab_size=3), num_labels=3, seed=0), bpe, ["ab"])


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
    ids = _inputs(teacher.tokenizer, ["the team won the match"])
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


def test_distill_says_when_student_and_teacher_do_not_fit(teacher, tiny_bert_config):
    five = minikit.build_model(tiny_bert_config(vocab_size=teacher.tokenizer.vocab_size), num_labels=5, seed=0)
    with pytest.raises(ValueError, match="num_labels=5, the teacher 3"):
        distill(five, teacher, progress=False)
    pruned = prune_vocabulary(teacher.model, teacher.tokenizer, ["the team"], keep_characters=False)
    with pytest.raises(ValueError, match="tokenizer=pruned.tokenizer"):
        distill(pruned.model, teacher, progress=False)
    with pytest.raises(ValueError, match="hidden_weight=-1"):
        distill(teacher.model, teacher, hidden_weight=-1, progress=False)


# --- soft labels from logits: what chapter 7's temperature explorer draws ------------------------------


def test_check_kd_accepts_the_ranges_and_names_what_is_wrong():
    assert check_kd(0.0, 0.5) is None and check_kd(1.0, 4.0, hidden_weight=2.0) is None
    for args, name in [((1.5, 2.0), "alpha=1.5"), ((0.5, 0.0), "temperature=0.0"), ((0.5, float("nan")), "temperature"),
                       ((0.5, 2.0, -1.0), "hidden_weight=-1.0")]:
        with pytest.raises(ValueError, match=name):
            check_kd(*args)


def test_soft_probabilities_by_hand_and_against_torch():
    logits = np.array([0.0, np.log(3.0)])  # e^0 : e^ln3 = 1 : 3
    np.testing.assert_allclose(soft_probabilities(logits, 1.0), [0.25, 0.75])
    root3 = np.sqrt(3.0)  # at T = 2 the ratio is 1 : 3^(1/2)
    np.testing.assert_allclose(soft_probabilities(logits, 2.0), [1 / (1 + root3), root3 / (1 + root3)])
    many = np.random.default_rng(0).normal(size=(4, 5)) * 10
    for t in (0.5, 1.0, 3.0):
        expected = torch.softmax(torch.from_numpy(many) / t, dim=-1).numpy()
        np.testing.assert_allclose(soft_probabilities(many, t), expected, rtol=1e-12)
    assert soft_probabilities(np.array([1000.0, 0.0]), 1.0).tolist() == [1.0, 0.0]  # no overflow


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


# --- chapter 7's widgets, Benchmark with a pruned tokenizer, exercise checks ------------------------------


def test_temperature_explorer_softens_and_redraws(teacher):
    texts = teacher.splits["validation"]["text"]
    logits = teacher_logits(teacher, texts)
    explorer = minikit.compression_widgets.TemperatureExplorer(logits, texts, teacher.splits["validation"]["label"],
                                                   list(TOPICS), temperature=1.0)
    assert len(explorer.examples) == 6
    sure, unsure = explorer.examples[0], explorer.examples[-1]
    top = lambda i: explorer.distribution(i, 1.0)["probability"].max()  # noqa: E731
    assert top(sure) >= top(unsure)  # ordered from the surest to the least sure
    cold, hot = explorer.distribution(sure, 1e-4), explorer.distribution(sure, 1e4)  # tiny logits: go far
    assert cold["probability"].max() == pytest.approx(1.0, abs=1e-3)
    np.testing.assert_allclose(hot["probability"], 1 / 3, atol=1e-3)
    np.testing.assert_allclose(cold["probability_t1"], hot["probability_t1"])
    before = explorer.chart.chart.to_dict()
    table = explorer.update(unsure, 4.0)
    assert table["probability"].sum() == pytest.approx(1.0) and table["is_true"].sum() == 1
    assert explorer.chart.chart.to_dict() != before and "T = 4.00" in str(explorer.chart.chart.to_dict())
    with pytest.raises(ValueError, match="temperature"):
        explorer.distribution(sure, 0.0)
    with pytest.raises(ValueError, match="outside"):
        minikit.compression_widgets.TemperatureExplorer(logits, texts, teacher.splits["validation"]["label"], list(TOPICS),
                                            examples=[len(texts)])


def test_distillation_explorer_trains_each_setting_once_and_caches_it(teacher):
    config = TrainConfig(**{**FAST, "epochs": 1, "eval_every": 1000})
    explorer = minikit.compression_widgets.DistillationExplorer(teacher, alpha=0.5, layers=2, config=config)
    assert explorer.num_layers == 4 and 0 <= explorer.teacher_accuracy <= 1
    first = explorer.current
    assert (first.alpha, first.layers, first.from_cache) == (0.5, 2, False)
    before = explorer.chart.chart.to_dict()
    point = explorer.update(1.0, 1)
    assert point.params_m < first.params_m and explorer.chart.chart.to_dict() != before
    assert explorer.update(0.5, 2) is first  # recalled from memory
    again = minikit.compression_widgets.DistillationExplorer(teacher, alpha=0.5, layers=2, config=config)
    assert again.current.from_cache and again.current.val_accuracy == first.val_accuracy  # from the disk cache
    assert list(explorer.table()["layers"]) == [2, 1]
    with pytest.raises(ValueError, match="layers=7"):
        explorer.measure(0.5, 7)
    with pytest.raises(ValueError, match="alpha"):
        explorer.measure(1.5, 2)


def test_benchmark_gives_a_pruned_student_its_own_tokenizer(teacher):
    texts = list(teacher.splits["train"]["text"])
    pruned = prune_vocabulary(teacher.model, teacher.tokenizer, texts)
    bench = minikit.Benchmark(teacher.splits["test"], teacher.tokenizer, max_length=32, repeats=2, batch_repeats=1,
                              batch_size=4)
    bench.add("teacher", teacher.model)
    bench.add("pruned", pruned.model, tokenizer=pruned.tokenizer)
    table = bench.run().set_index("name")
    # Every test text uses only kept tokens, so the pruned copy predicts exactly what the teacher does.
    assert table.loc["pruned", "accuracy"] == table.loc["teacher", "accuracy"]
    assert table.loc["pruned", "size_mb"] < table.loc["teacher", "size_mb"]
    with pytest.raises(IndexError):  # the teacher's ids are out of the pruned embedding's range
        bad = minikit.Benchmark(teacher.splits["test"], teacher.tokenizer, max_length=32, repeats=1, batch_repeats=1)
        bad.add("pruned, wrong tokenizer", pruned.model)
        bad.run()


def test_student_start_keeps_the_layers_and_prunes_the_vocabulary(teacher):
    start = distillation.student_start(teacher, layers=(1, 3), min_count=1)
    assert len(encoder_layers(start.model)) == 2 and start.new_vocab_size < start.old_vocab_size
    assert start.model.get_input_embeddings().num_embeddings == len(start.tokenizer)


def test_chapter_7_checks_recompute_the_answers(teacher):
    s, t = [1.0, 0.0, -1.0], [3.0, 1.0, -2.0]
    truth = _hand_loss(np.array([s]), np.array([t]), np.array([0]), 0.5, 2.0)
    assert minikit.check.kd_loss(truth, s, t, label=0)
    ce = _hand_loss(np.array([s]), np.array([t]), np.array([0]), 1.0, 2.0)
    assert "cross-entropy alone" in minikit.check.kd_loss(ce, s, t, label=0).message
    assert not minikit.check.kd_loss(None, s, t, label=0)
    student = select_layers(teacher.model, [0, 2])
    assert minikit.check.student_parameters(minikit.count_parameters(student), teacher.model, student)
    layer = minikit.count_parameters(encoder_layers(teacher.model)[0])
    assert "one encoder layer" in minikit.check.student_parameters(
        minikit.count_parameters(student) + layer, teacher.model, student).message
    logits = [2.0, 0.5, -1.0]
    p = lambda T: np.exp(np.array(logits) / T).max() / np.exp(np.array(logits) / T).sum()  # noqa: E731
    lo, hi = 0.01, 100.0
    for _ in range(60):
        mid = (lo * hi) ** 0.5
        lo, hi = (mid, hi) if p(mid) > 0.5 else (lo, mid)
    assert minikit.check.temperature_for_top(lo, logits, share=0.5)
    assert "higher" in minikit.check.temperature_for_top(lo / 2, logits, share=0.5).message
    assert "never crosses" in minikit.check.temperature_for_top(1.0, [1.0, 1.0, 1.0], share=0.5).message
