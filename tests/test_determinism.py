"""Determinism (issue 11, part 5): the same seed twice gives identical results from each step on CPU.

Fine-tuning's own check (history and weights) is ``test_training.test_same_seed_same_history_and_weights``;
here: distillation (trained twice, uncached), the students' construction, vocabulary pruning, each
pruning method, each quantization path and the ONNX export. Everything is compared bit for bit:
on CPU with a fixed seed and thread count, none of these steps needs a tolerance.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch
from helpers import FAST

from minikit import pruning, quantization
from minikit.distillation import distill, student_start
from minikit.students import prune_vocabulary, select_layers, smaller_student
from minikit.training import TrainConfig

# Each test gets a MINIKIT_CACHE of its own (conftest.cache_root).
pytestmark = pytest.mark.usefixtures("cache_root")


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _logits(model, tokenizer, texts) -> torch.Tensor:
    enc = tokenizer(list(texts), return_tensors="pt", padding=True)
    with torch.inference_mode():
        return model.eval()(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits


def test_distillation_twice_with_the_same_seed_gives_the_same_student(teacher):  # noqa: F811
    config = TrainConfig(**{**FAST, "epochs": 2})
    runs = [distill(select_layers(teacher.model, [0, 2]), teacher, config=config, progress=False, cache=False)
            for _ in range(2)]
    assert _same_weights(runs[0].model, runs[1].model)
    assert runs[0].result.history.equals(runs[1].result.history)
    texts = teacher.splits["test"]["text"]
    assert torch.equal(_logits(runs[0].model, teacher.tokenizer, texts), _logits(runs[1].model, teacher.tokenizer, texts))
    other = distill(select_layers(teacher.model, [0, 2]), teacher, config=TrainConfig(**{**FAST, "epochs": 2, "seed": 7}),
                    progress=False, cache=False)
    assert not _same_weights(runs[0].model, other.model)  # the seed is what makes them equal


def test_students_and_vocabulary_pruning_are_reproducible(teacher):  # noqa: F811
    assert _same_weights(smaller_student(teacher.model, 2, hidden_size=16, num_attention_heads=2, seed=3),
                         smaller_student(teacher.model, 2, hidden_size=16, num_attention_heads=2, seed=3))
    texts = list(teacher.splits["train"]["text"])
    a, b = (prune_vocabulary(teacher.model, teacher.tokenizer, texts, min_count=2) for _ in range(2))
    assert np.array_equal(a.kept_ids, b.kept_ids) and a.tokenizer.get_vocab() == b.tokenizer.get_vocab()
    assert _same_weights(a.model, b.model)
    x, y = (student_start(teacher, layers=(1, 3), min_count=1) for _ in range(2))
    assert _same_weights(x.model, y.model)


@pytest.mark.parametrize("step", [
    lambda m: pruning.magnitude_prune(m, 0.6, "global"),
    lambda m: pruning.magnitude_prune(m, 0.6, "layer"),
    lambda m: pruning.prune_heads(m, pruning.least_important_heads(pruning.head_importance(m), 0.5)),
    lambda m: pruning.prune_ffn_neurons(m, 0.5),
    lambda m: pruning.drop_layers(m, [1]),
    lambda m: quantization.fake_quantize(m, bits=4, granularity="per-channel"),
    lambda m: quantization.quantize_embeddings(m),
    lambda m: quantization.dynamic_int8(m, embeddings=True),
], ids=["global magnitude", "per-layer magnitude", "heads", "FFN neurons", "layers", "fake 4-bit",
        "int8 embeddings", "dynamic int8"])
def test_each_compression_step_gives_the_same_predictions_twice(teacher, step):  # noqa: F811
    texts = teacher.splits["test"]["text"]
    first, second = step(teacher.model), step(teacher.model)
    assert torch.equal(_logits(first, teacher.tokenizer, texts), _logits(second, teacher.tokenizer, texts))


def test_onnx_export_and_int8_give_the_same_logits_twice(teacher, tmp_path):  # noqa: F811
    enc = teacher.tokenizer(list(teacher.splits["test"]["text"]), return_tensors="np", padding=True)
    feeds = {"input_ids": enc["input_ids"].astype(np.int64), "attention_mask": enc["attention_mask"].astype(np.int64)}
    outputs = []
    for run in range(2):
        fp32 = quantization.export_onnx(teacher.model, tmp_path / f"m{run}.onnx")
        int8 = quantization.quantize_onnx(fp32, tmp_path / f"q{run}.onnx", teacher.model)
        outputs.append([ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]).run(["logits"], feeds)[0]
                        for p in (fp32, int8)])
    assert all(np.array_equal(a, b) for a, b in zip(*outputs))
    assert (tmp_path / "q0.onnx").read_bytes() == (tmp_path / "q1.onnx").read_bytes()
