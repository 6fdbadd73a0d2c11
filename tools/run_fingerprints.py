"""sha256 of training histories and weights, to show a refactor changed no number (issue 21).

Trains tiny random models (seconds) through each public training entry point: fine-tuning
(three methods), multi-task fine-tuning and distillation, all uncached, one thread. Run it before and
after a change and compare the lines:

    python tools/run_fingerprints.py > before.txt   # on the old commit
    python tools/run_fingerprints.py | diff before.txt -
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("MINIKIT_CACHE", tempfile.mkdtemp(prefix="minikit-fingerprints-"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import torch  # noqa: E402
from helpers import TOPICS, make_splits  # noqa: E402
from transformers import BertConfig  # noqa: E402

import minikit  # noqa: E402
from minikit import multitask, tasks  # noqa: E402
from minikit.distillation import distill, select_layers  # noqa: E402
from minikit.training import FineTuned, TrainConfig, train_classifier  # noqa: E402

FAST = dict(epochs=3, batch_size=4, eval_every=3, log_every=2, learning_rate=3e-3, activation_checkpointing=False)


def digest_weights(model: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().contiguous().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def digest_history(history) -> str:
    return hashlib.sha256(history.to_csv(index=False, float_format="%.17g").encode()).hexdigest()[:16]


def tiny(tokenizer, layers: int = 4, seed: int = 0, labels: int = 3):
    config = BertConfig(hidden_size=32, num_hidden_layers=layers, num_attention_heads=2, intermediate_size=64,
                        vocab_size=tokenizer.vocab_size, max_position_embeddings=128)
    return minikit.build_model(config, num_labels=labels, seed=seed)


def main() -> None:
    torch.set_num_threads(1)
    tokenizer = minikit.load_tokenizer()
    splits = make_splits()
    seen = []
    for method in ("full", "linear-probe", "gradual-unfreeze"):
        model = tiny(tokenizer)
        result = train_classifier(model, tokenizer, splits, TrainConfig(**FAST, method=method),
                                  callback=lambda h: seen.append(len(h)), progress=False)
        print(f"fine-tune {method}: history {digest_history(result.history)} weights {digest_weights(model)} "
              f"best {result.best_val_accuracy:.6f}@{result.best_step} steps {result.steps}")
    print(f"fine-tune callbacks: {seen}")

    teacher_model = tiny(tokenizer)
    teacher_result = train_classifier(teacher_model, tokenizer, splits, TrainConfig(**{**FAST, "epochs": 6}),
                                      progress=False)
    teacher = FineTuned(teacher_model, tokenizer, splits, teacher_result, test_accuracy=float("nan"),
                        cache_dir=None, from_cache=False)
    student = distill(select_layers(teacher_model, [0, 2]), teacher, config=TrainConfig(**FAST), progress=False,
                      cache=False)
    print(f"distill: history {digest_history(student.result.history)} weights {digest_weights(student.model)}")

    folder = Path(tempfile.mkdtemp(prefix="minikit-encoder-")) / "tiny"
    minikit.cache.save_model_dir(tiny(tokenizer, labels=2), tokenizer, folder)
    topic = tasks.Task("topic", make_splits(24, 9))
    other = tasks.Task("other", make_splits(24, 9), weight=0.5)
    for sampler in ("proportional", "round-robin"):
        seen = []
        model, result = multitask.train_multitask(str(folder), tokenizer, [topic, other], TrainConfig(**FAST),
                                                  sampler=sampler, callback=lambda h: seen.append(len(h)),
                                                  progress=False)
        print(f"multitask {sampler}: history {digest_history(result.history)} weights {digest_weights(model)} "
              f"callbacks {seen}")
    assert list(TOPICS)  # the shared test data the runs use


if __name__ == "__main__":
    main()
