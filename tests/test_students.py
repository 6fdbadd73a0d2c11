"""Building students (minikit.students): chosen layers, smaller configurations, a pruned vocabulary."""

from __future__ import annotations

import copy

import pytest
import torch
from helpers import TOPICS, model_inputs  # noqa: E402  (shared test data)
from tokenizers import Tokenizer
from tokenizers.models import BPE
from transformers import PreTrainedTokenizerFast

import minikit
from minikit.models import encoder_layers
from minikit.students import prune_vocabulary, select_layers, smaller_student, spread_layers

# Each test gets a MINIKIT_CACHE of its own (conftest.cache_root).
pytestmark = pytest.mark.usefixtures("cache_root")


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
    old, new = model_inputs(tokenizer, texts), model_inputs(pruned.tokenizer, texts)
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
