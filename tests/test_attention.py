"""minikit.attention: eager attention and no dropout on the attention maps, each restored after its block."""

from __future__ import annotations

import pytest
import torch

import minikit
from minikit.attention import attention_dropouts, eager_attention, no_attention_dropout


@pytest.mark.parametrize("family", ["bert", "distilbert"])
def test_attention_dropouts_are_the_self_attention_ones_and_come_back(family, tiny_bert_config,
                                                                      tiny_distilbert_config):
    config = (tiny_bert_config(attention_probs_dropout_prob=0.3, hidden_dropout_prob=0.2) if family == "bert"
              else tiny_distilbert_config(attention_dropout=0.3, dropout=0.2))
    model = minikit.build_model(config, num_labels=3, seed=0)
    found = attention_dropouts(model)
    assert len(found) == 2 and all(d.p == 0.3 for d in found)  # one per layer; the 0.2 hidden dropouts are not these
    with no_attention_dropout(model):
        assert all(d.p == 0.0 for d in found)
        assert any(m.p == 0.2 for m in model.modules() if isinstance(m, torch.nn.Dropout))  # hidden dropout stays
    assert all(d.p == 0.3 for d in found)


def test_eager_attention_returns_maps_then_restores_sdpa(tiny_bert_config):
    model = minikit.build_model(tiny_bert_config(), num_labels=3, seed=0)
    ids = torch.arange(5, 11).reshape(1, 6)
    assert model.config._attn_implementation == "sdpa"
    assert not model(input_ids=ids, output_attentions=True).attentions  # SDPA forms no maps
    with eager_attention(model):
        maps = model(input_ids=ids, output_attentions=True).attentions
        assert len(maps) == 2 and maps[0].shape == (1, 2, 6, 6)
        torch.testing.assert_close(maps[0].sum(-1), torch.ones(1, 2, 6))  # rows are distributions
    assert model.config._attn_implementation == "sdpa"
    with pytest.raises(RuntimeError, match="inside"), eager_attention(model):
        raise RuntimeError("inside")
    assert model.config._attn_implementation == "sdpa"  # restored even when the block raises
