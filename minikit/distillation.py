"""Chapter 7 — knowledge distillation: a small student learns from the fine-tuned teacher's soft labels.

The student is built by ``minikit.students`` (some of the teacher's layers, a smaller configuration,
a pruned vocabulary). The loss mixes cross-entropy on the true labels with the KL divergence to the teacher's
temperature-softened distribution (Hinton et al. 2015), optionally plus a hidden-state match (TinyBERT) and an
attention-map match (the KL divergence between attention distributions, MiniLM's).
The teacher's logits on the train split are computed once and cached. Training is
``train_classifier``'s Accelerate loop (progress bar, live-chart callback, warm-up, clipping,
early stop), given a small module whose forward returns the distillation loss; ``distill``
caches the trained student, so a fresh kernel reloads it instead of training again.
"""

from __future__ import annotations

import contextlib
import copy
from dataclasses import replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel, PreTrainedTokenizerBase
from transformers.modeling_outputs import SequenceClassifierOutput

from minikit.cache import (
    load_model_dir,
    load_or_build,
    model_sha256,
    save_model_dir,
    splits_sha256,
    texts_sha256,
    tokenizer_sha256,
)
from minikit.attention import eager_attention, no_attention_dropout
from minikit.errors import is_finite
from minikit.metrics import soft_probabilities
from minikit.models import encoder_layers
from minikit.pruning import even_heads, head_importance, prune_ffn_neurons, prune_heads, restore_pruned_heads
from minikit.settings import get_settings, seed_everything
from minikit.students import PrunedVocabulary, prune_vocabulary, select_layers, spread_layers
from minikit.training import (
    FineTuned,
    TrainConfig,
    TrainResult,
    evaluate_accuracy,
    get_baseline,
    model_inputs,
    predict_logits,
    read_result,
    train_classifier,
    write_result,
)

DEFAULT_ALPHA = 0.5  # equal weight on the labels and on the teacher
DEFAULT_TEMPERATURE = 2.0  # DistilBERT's choice; a confident fine-tuned teacher needs T > 1 to show its runner-ups


# --------------------------------------------------------------------------------------------
# The loss
# --------------------------------------------------------------------------------------------


def check_kd(alpha: float, temperature: float, hidden_weight: float = 0.0, attention_weight: float = 0.0) -> None:
    """Raise a ValueError that says what was wrong unless 0 ≤ alpha ≤ 1, temperature > 0 and both weights ≥ 0."""
    if not (is_finite(alpha) and 0 <= alpha <= 1):
        raise ValueError(f"alpha={alpha!r}: expected a weight in [0, 1] "
                         "(1 = true labels only, no teacher; 0 = the teacher's soft labels only).")
    if not (is_finite(temperature) and temperature > 0):
        raise ValueError(f"temperature={temperature!r}: expected a number > 0 "
                         "(1 = the teacher's own distribution, higher = softer, e.g. 2 or 4).")
    if not (is_finite(hidden_weight) and hidden_weight >= 0):
        raise ValueError(f"hidden_weight={hidden_weight!r}: expected a number ≥ 0 "
                         "(0 turns hidden-state matching off).")
    if not (is_finite(attention_weight) and attention_weight >= 0):
        raise ValueError(f"attention_weight={attention_weight!r}: expected a number ≥ 0 "
                         "(0 turns attention-map matching off).")


def distillation_loss(
    student_logits: torch.Tensor,  # (B, C)
    teacher_logits: torch.Tensor,  # (B, C)
    labels: torch.Tensor,  # (B,)
    alpha: float = DEFAULT_ALPHA,
    temperature: float = DEFAULT_TEMPERATURE,
) -> torch.Tensor:
    """α·CE(student, labels) + (1−α)·T²·KL(softmax(teacher/T) ‖ softmax(student/T)), averaged over the batch.

    The T² keeps the soft term's gradients as large as the hard term's when T grows (Hinton et al. 2015).
    """
    check_kd(alpha, temperature)
    hard = F.cross_entropy(student_logits, labels)
    soft = F.kl_div(F.log_softmax(student_logits / temperature, dim=-1),  # KL(p_teacher ‖ p_student)
                    F.log_softmax(teacher_logits / temperature, dim=-1), log_target=True, reduction="batchmean")
    return alpha * hard + (1 - alpha) * temperature ** 2 * soft


def hidden_state_loss(
    student_states: Sequence[torch.Tensor],  # each (B, T, d_student)
    teacher_states: Sequence[torch.Tensor],  # each (B, T, d_teacher), paired with student_states
    attention_mask: torch.Tensor,  # (B, T): padding positions are not scored
    projection: nn.Module | None = None,  # maps d_student to d_teacher when the widths differ
) -> torch.Tensor:
    """Mean squared error between paired hidden states over real tokens, averaged over the pairs (TinyBERT)."""
    if len(student_states) != len(teacher_states) or not student_states:
        raise ValueError(f"Got {len(student_states)} student and {len(teacher_states)} teacher hidden states; "
                         "expected the same number ≥ 1, paired layer by layer.")
    mask = attention_mask.unsqueeze(-1).to(student_states[0].dtype)  # (B, T, 1)
    losses = []
    for s, t in zip(student_states, teacher_states):
        s = projection(s) if projection is not None else s
        losses.append(((s - t) ** 2 * mask).sum() / (mask.sum() * t.shape[-1]))
    return torch.stack(losses).mean()


def attention_loss(
    student_maps: Sequence[torch.Tensor],  # each (B, H, T, T): softmax over the last axis (the keys)
    teacher_maps: Sequence[torch.Tensor],  # each (B, H, T, T), paired with student_maps
    attention_mask: torch.Tensor,  # (B, T): padding rows (queries) are not scored; padding keys have weight 0
) -> torch.Tensor:
    """KL(teacher ‖ student) between paired attention distributions, one per head and real query token (MiniLM).

    Summed over the keys, averaged over the real query tokens and the heads, then over the pairs.
    Head by head, so the student needs the teacher's number of heads (and the same tokens).
    """
    if not student_maps or not teacher_maps or any(m is None for m in (*student_maps, *teacher_maps)):
        raise ValueError("Got no attention maps from a model: PyTorch's SDPA attention (the default) returns none. "
                         "Fix: run both models with output_attentions=True under eager attention "
                         "(with minikit.attention.eager_attention(model): ...).")
    if len(student_maps) != len(teacher_maps):
        raise ValueError(f"Got {len(student_maps)} student and {len(teacher_maps)} teacher attention maps; "
                         "expected the same number, paired layer by layer. Fix: pass one map per paired layer "
                         "in each list (a model's output_attentions=True output, indexed by layer).")
    losses = []
    for s, t in zip(student_maps, teacher_maps):
        if s.shape != t.shape:
            raise ValueError(f"Student attention maps {tuple(s.shape)} against the teacher's {tuple(t.shape)}: "
                             "they are compared head by head, so the student needs the teacher's number of heads. "
                             "Fix: build the student with the teacher's num_attention_heads (and no pruned heads), "
                             "or pass attention_weight=0.")
        rows = attention_mask.to(s.dtype)[:, None, :]  # (B, 1, T): which query rows count
        tiny = torch.finfo(s.dtype).tiny  # 0 · log 0 counts as 0; padding keys have p = 0 in both
        kl = (t * (torch.log(t.clamp_min(tiny)) - torch.log(s.clamp_min(tiny)))).sum(-1)  # (B, H, T)
        losses.append((kl * rows).sum() / (rows.sum() * s.shape[1]))
    return torch.stack(losses).mean()


def softened_distribution(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    text: str,
    temperature: float = 1.0,
    max_length: int = 128,
) -> pd.DataFrame:
    """The model's class distribution for one text at a temperature: columns label, logit, probability."""
    check_kd(0.0, temperature)
    logits = torch.from_numpy(predict_logits(model, tokenizer, [text], max_length)[0])
    probs = torch.softmax(logits / temperature, dim=-1)  # T > 1 flattens it, T < 1 sharpens it
    names = getattr(model.config, "id2label", None) or {}
    return pd.DataFrame({"label": [names.get(i, str(i)) for i in range(len(probs))],
                         "logit": logits.numpy(), "probability": probs.numpy()})


def check_logits(logits, texts: Sequence[str], labels: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """(logits as float64, labels) as arrays, after checking there is one row of logits (N, C) per text and label."""
    array = np.asarray(logits, dtype=np.float64)
    if array.ndim != 2 or len(array) != len(texts) or len(texts) != len(labels):
        raise ValueError(f"logits {array.shape}, {len(texts)} texts and {len(labels)} labels: expected "
                         "logits of shape (N, classes) for N texts and N labels.")
    return array, np.asarray(labels)


def entropy_bits(p: np.ndarray) -> float:
    """Entropy of the distribution ``p`` in bits: 0 for a sure answer, log2(classes) for a uniform one."""
    p = np.asarray(p)
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


def confidence_spread(logits: np.ndarray, n: int = 6) -> list[int]:
    """Indices of ``n`` rows of ``logits`` (N, C), from the most to the least confident at T = 1, evenly spread."""
    order = np.argsort(-soft_probabilities(logits, 1.0).max(axis=1))
    return [int(order[round(q * (len(order) - 1))]) for q in np.linspace(0, 1, min(n, len(order)))]


def softened_table(logits: np.ndarray, label_names: Sequence[str], true_label: int,
                   temperature: float) -> pd.DataFrame:
    """One example's logits (C,) softened: columns label, probability (at T), probability_t1 (at T = 1), is_true."""
    if not (np.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature={temperature!r}: expected a number > 0.")
    return pd.DataFrame({"label": list(label_names), "probability": soft_probabilities(logits, temperature),
                         "probability_t1": soft_probabilities(logits, 1.0),
                         "is_true": np.arange(len(logits)) == true_label})


# --------------------------------------------------------------------------------------------
# Teacher logits, computed once
# --------------------------------------------------------------------------------------------


def _identity(model: nn.Module, tokenizer) -> dict:
    """What a teacher or student is, for a key: its weights and configuration, and its tokenizer."""
    return {"model": model_sha256(model), "tokenizer": tokenizer_sha256(tokenizer)}


def teacher_logits(
    teacher: FineTuned,
    texts: Sequence[str] | None = None,
    max_length: int = 128,
    truncation: str = "head",
) -> np.ndarray:
    """The teacher's logits for ``texts`` (default: its train split), (N, num_labels), computed once and cached.

    Keyed by the teacher's weights and tokenizer, the texts, max_length and truncation: about 40 s
    for BBC News' ~1,450 train articles on 2 cores the first time, a fraction of a second after.
    """
    fingerprint = _identity(teacher.model, teacher.tokenizer)
    return _cached_teacher_logits(teacher, fingerprint, texts, max_length, truncation)


def _cached_teacher_logits(teacher: FineTuned, fingerprint: dict, texts, max_length: int, truncation: str) -> np.ndarray:
    texts = list(teacher.splits["train"]["text"] if texts is None else texts)
    parts = {"teacher": fingerprint, "texts": texts_sha256(texts),
             "max_length": max_length, "truncation": truncation}

    def build(folder: Path) -> None:
        logits = predict_logits(teacher.model, teacher.tokenizer, texts, max_length, truncation=truncation)
        np.save(folder / "logits.npy", logits, allow_pickle=False)

    return np.load(load_or_build("teacher-logits", parts, build) / "logits.npy", allow_pickle=False)


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------


def _id_map(student_tokenizer, teacher_tokenizer) -> torch.Tensor | None:
    """Teacher id of each student token (student vocab order), or None when the vocabularies are the same."""
    student_vocab, teacher_vocab = student_tokenizer.get_vocab(), teacher_tokenizer.get_vocab()
    if student_vocab == teacher_vocab:
        return None
    missing = [t for t in student_vocab if t not in teacher_vocab]
    if missing:
        raise ValueError(f"The student's tokenizer has {len(missing)} tokens the teacher's lacks (e.g. {missing[:3]}); "
                         "hidden-state matching needs the teacher to read the same tokens.")
    table = torch.zeros(len(student_vocab), dtype=torch.long)
    for token, i in student_vocab.items():
        table[i] = teacher_vocab[token]
    return table


LAYER_MAPS = ("copied", "uniform", "last")  # which teacher layer each student layer's hidden states and maps match


def layer_pairs(student: PreTrainedModel, teacher: PreTrainedModel,
                layer_map: str = "copied") -> list[tuple[int, int]]:
    """The (student layer, teacher layer) pairs, counted from 0, that the hidden-state and attention losses compare.

    ``"copied"``: each student layer with the teacher layer it was copied from (``student.config.teacher_layers``,
    which ``select_layers`` records; otherwise the layers ``spread_layers`` would keep). ``"uniform"``: TinyBERT's
    mapping, student layer m with teacher layer (m + 1)·N/M − 1, so the last with the last. ``"last"``: MiniLM's,
    the student's last layer with the teacher's last layer only.
    """
    if layer_map not in LAYER_MAPS:
        raise ValueError(f"layer_map={layer_map!r}: expected one of {list(LAYER_MAPS)}. Fix: pass \"copied\" (each "
                         "layer with its source), \"uniform\" (TinyBERT's) or \"last\" (MiniLM's).")
    n_teacher, n_student = len(encoder_layers(teacher)), len(encoder_layers(student))
    if layer_map == "last":
        return [(n_student - 1, n_teacher - 1)]
    if layer_map == "uniform":
        return [(m, (m + 1) * n_teacher // n_student - 1) for m in range(n_student)]
    return list(enumerate(getattr(student.config, "teacher_layers", None) or spread_layers(n_teacher, n_student)))


def _check_heads(student: PreTrainedModel, teacher: PreTrainedModel) -> None:
    """Refuse, with the fix, a student whose attention heads per layer differ from the teacher's."""
    student_heads, teacher_heads = (getattr(m.config, "num_attention_heads", None) for m in (student, teacher))
    if student_heads != teacher_heads:
        raise ValueError(f"The student has num_attention_heads={student_heads}, the teacher {teacher_heads}; "
                         "attention maps are matched head by head. Fix: build the student with "
                         f"num_attention_heads={teacher_heads}, or pass attention_weight=0.")


class _Distiller(nn.Module):
    """What ``train_classifier`` trains: the student (and a projection) with a forward that returns the KD loss.

    In eval mode it is the student, so validation accuracy is the student's. The teacher sits in
    a tuple, out of ``parameters()`` and ``state_dict()``: it never trains and is never saved.
    """

    def __init__(self, student: PreTrainedModel, soft: dict[bytes, torch.Tensor], alpha: float, temperature: float,
                 hidden_weight: float = 0.0, teacher: PreTrainedModel | None = None,
                 to_teacher_ids: torch.Tensor | None = None, attention_weight: float = 0.0,
                 layer_map: str = "copied"):
        super().__init__()
        self.student, self.soft = student, soft
        self.alpha, self.temperature = alpha, temperature
        self.hidden_weight, self.attention_weight = hidden_weight, attention_weight
        self._teacher, self._to_teacher_ids = (teacher,), to_teacher_ids
        self.projection = None
        if hidden_weight > 0 or attention_weight > 0:
            self.pairs = layer_pairs(student, teacher, layer_map)  # (student layer, teacher layer), counted from 0
        if hidden_weight > 0:
            d_student, d_teacher = student.config.hidden_size, teacher.config.hidden_size
            if d_student != d_teacher:
                self.projection = nn.Linear(d_student, d_teacher)

    # train_classifier reads these from the model it is given; they are the student's.
    config = property(lambda self: self.student.config)
    base_model = property(lambda self: self.student.base_model)
    supports_gradient_checkpointing = property(lambda self: self.student.supports_gradient_checkpointing)
    is_activation_checkpointing = property(lambda self: self.student.is_activation_checkpointing)

    def activation_checkpointing_enable(self, *args, **kwargs):
        self.student.activation_checkpointing_enable(*args, **kwargs)

    def activation_checkpointing_disable(self):
        self.student.activation_checkpointing_disable()

    def disable_input_require_grads(self):
        self.student.disable_input_require_grads()

    def _soft_targets(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        keys = [ids[mask.bool()].cpu().numpy().astype(np.int64).tobytes()
                for ids, mask in zip(input_ids, attention_mask)]
        missing = sum(k not in self.soft for k in keys)
        if missing:
            raise RuntimeError(f"{missing} training text(s) have no cached teacher logits; they were tokenized differently "
                           "from the train split the logits were computed on.")
        return torch.stack([self.soft[k] for k in keys])  # (B, C)

    def forward(self, input_ids, attention_mask, labels=None):
        if not self.training or labels is None:
            return self.student(input_ids=input_ids, attention_mask=attention_mask)
        hidden, maps = self.hidden_weight > 0, self.attention_weight > 0
        out = self.student(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=hidden,
                           output_attentions=maps)
        soft = self._soft_targets(input_ids, attention_mask).to(out.logits)
        loss = distillation_loss(out.logits, soft, labels, self.alpha, self.temperature)
        if hidden or maps:
            teacher = self._teacher[0].to(input_ids.device).eval()
            ids = input_ids if self._to_teacher_ids is None else self._to_teacher_ids.to(input_ids.device)[input_ids]
            with torch.no_grad():
                theirs = teacher(input_ids=ids, attention_mask=attention_mask, output_hidden_states=hidden,
                                 output_attentions=maps)
        if hidden:  # hidden_states[0] is the embedding output, so layer i's output is hidden_states[i + 1]
            loss = loss + self.hidden_weight * hidden_state_loss(
                [out.hidden_states[s + 1] for s, _ in self.pairs], [theirs.hidden_states[t + 1] for _, t in self.pairs],
                attention_mask, self.projection)
        if maps:
            loss = loss + self.attention_weight * attention_loss(
                [out.attentions[s] for s, _ in self.pairs], [theirs.attentions[t] for _, t in self.pairs],
                attention_mask)
        return SequenceClassifierOutput(loss=loss, logits=out.logits)


def _soft_lookup(logits: np.ndarray, splits, tokenizer, config: TrainConfig) -> dict[bytes, torch.Tensor]:
    # train_classifier's batches carry no row index, only token ids; the teacher's logits are a
    # function of the text, so the student's ids of each train text are the key.
    ids = model_inputs(splits["train"], tokenizer, config)["input_ids"]
    return {np.asarray(row, dtype=np.int64).tobytes(): torch.from_numpy(logits[i]) for i, row in enumerate(ids)}


def distill(
    student: PreTrainedModel,
    teacher: FineTuned | None = None,
    *,
    tokenizer: PreTrainedTokenizerBase | None = None,
    alpha: float = DEFAULT_ALPHA,
    temperature: float = DEFAULT_TEMPERATURE,
    hidden_weight: float = 0.0,
    attention_weight: float = 0.0,
    layer_map: str = "copied",
    config: TrainConfig = TrainConfig(),
    callback: Callable[[pd.DataFrame], None] | None = None,
    progress: bool = True,
    cache: bool = True,
) -> FineTuned:
    """Train a copy of ``student`` on the teacher's splits with the distillation loss; cached, like ``fine_tune``.

    ``teacher`` defaults to ``get_baseline()``; the student uses its splits, so the test split stays
    unseen by both. ``tokenizer`` is the student's (default: the teacher's; pass
    ``PrunedVocabulary.tokenizer`` for a pruned student). ``alpha=1`` trains without the teacher
    (the no-teacher baseline); ``hidden_weight > 0`` adds hidden-state matching and ``attention_weight > 0``
    attention-map matching (``attention_loss``; both models run with eager attention while it trains, the
    student with no dropout on its attention probabilities, so that the maps compared are distributions): each
    runs the teacher at every step; ``layer_map`` says which layers they pair (``layer_pairs``). The student
    passed in is not changed: use the returned ``.model``.
    """
    check_kd(alpha, temperature, hidden_weight, attention_weight)
    teacher = get_baseline(progress=progress) if teacher is None else teacher
    tokenizer = tokenizer or teacher.tokenizer
    if student.config.num_labels != teacher.model.config.num_labels:
        raise ValueError(f"The student has num_labels={student.config.num_labels}, the teacher "
                         f"{teacher.model.config.num_labels}. Fix: build the student from the teacher (select_layers).")
    rows = student.get_input_embeddings().num_embeddings
    if len(tokenizer) > rows:
        raise ValueError(f"The tokenizer has {len(tokenizer)} tokens but the student's embedding only {rows} rows. "
                         "Fix: pass the student's own tokenizer, e.g. tokenizer=pruned.tokenizer.")
    layered = hidden_weight > 0 or attention_weight > 0
    if layered:
        layer_pairs(student, teacher.model, layer_map)  # refuses a bad layer_map before any work
    if attention_weight > 0:
        _check_heads(student, teacher.model)  # before the teacher's logits, which take minutes on a cold cache
    uses_teacher = alpha < 1 or layered
    teacher_id = _identity(teacher.model, teacher.tokenizer) if uses_teacher else None
    parts = {"student": _identity(student, tokenizer), "teacher": teacher_id,
             "data": splits_sha256(teacher.splits), "config": replace(config, learning_rate=config.lr),
             "alpha": alpha, "temperature": temperature if alpha < 1 else None, "hidden_weight": hidden_weight,
             **({"attention_weight": attention_weight} if attention_weight else {}),
             **({"layer_map": layer_map} if layered and layer_map != "copied" else {})}

    def train() -> tuple[PreTrainedModel, TrainResult, float]:
        net = copy.deepcopy(student)
        if uses_teacher:
            logits = _cached_teacher_logits(teacher, teacher_id, None, config.max_length, config.truncation)
            soft = _soft_lookup(logits, teacher.splits, tokenizer, config)
            to_teacher = _id_map(tokenizer, teacher.tokenizer) if layered else None
            seed_everything(config.seed)  # the projection's initial weights are part of the run
            module = _Distiller(net, soft, alpha, temperature, hidden_weight, teacher.model, to_teacher,
                                attention_weight, layer_map)
        else:
            module = net  # the student's own cross-entropy: the same loss as alpha=1
        with contextlib.ExitStack() as stack:
            if attention_weight > 0:  # SDPA returns no attention maps; the maps compared are before dropout
                stack.enter_context(eager_attention(net))
                stack.enter_context(no_attention_dropout(net))
                stack.enter_context(eager_attention(teacher.model))
            result = train_classifier(module, tokenizer, teacher.splits, config, callback, progress)
        accuracy = evaluate_accuracy(net, tokenizer, teacher.splits["test"], config.max_length,
                                     truncation=config.truncation)
        return net, result, accuracy

    if not cache:
        net, result, accuracy = train()
        return FineTuned(net, tokenizer, teacher.splits, result, accuracy, cache_dir=None, from_cache=False)
    trained = []

    def build(folder: Path) -> None:
        trained.extend(train())
        save_model_dir(trained[0], tokenizer, folder)
        write_result(folder, trained[1], trained[2], config)

    entry = load_or_build("distilled", parts, build)
    if trained:
        net, result, accuracy = trained
        return FineTuned(net, tokenizer, teacher.splits, result, accuracy, cache_dir=entry, from_cache=False)
    net, saved_tokenizer = load_model_dir(entry, rebuild=restore_pruned_heads)  # a student may lack heads
    result, accuracy = read_result(entry)
    if callback is not None:
        callback(result.history)
    return FineTuned(net.to(get_settings().device), saved_tokenizer, teacher.splits, result, accuracy, entry, True)


def train_without_teacher(student: PreTrainedModel, teacher: FineTuned | None = None, **kwargs) -> FineTuned:
    """The comparison for ``distill``: the same student and data trained on the labels alone (alpha=1)."""
    return distill(student, teacher, **{**kwargs, "alpha": 1.0, "hidden_weight": 0.0, "attention_weight": 0.0})


# --------------------------------------------------------------------------------------------
# The course's student: what chapters 7-9 and bench/compressed_model.py compress and serve
# --------------------------------------------------------------------------------------------

# Chosen by bench/distill_candidates.py: among the candidates fast enough for the latency target
# (≥ 4× the float32 baseline at batch 1 once int8 in ONNX Runtime: two layers; three reach ~2.8×),
# the best on the validation split, ties to the smaller: teacher layers 0 and 4, half of each
# feed-forward block's neurons pruned (chapter 5's structured pruning: as accurate on validation,
# and faster), the vocabulary pruned to the tokens the train split uses at least
# STUDENT_MIN_COUNT times (rarer words are spelled out from kept pieces), two epochs without
# activation checkpointing (a small student at batch 8 fits Binder's memory).
STUDENT_LAYERS = (0, 4)
STUDENT_FFN_FRACTION = 0.5
STUDENT_MIN_COUNT = 20
STUDENT_CONFIG = TrainConfig(epochs=2, activation_checkpointing=False)
# Chapter 7's α/depth explorer: ~360 articles × 64 tokens, one pass at a raised learning rate (45 steps),
# about 10 s a run on 2 cores. A dict of TrainConfig fields, so a caller can change one.
QUICK_DISTILL = dict(epochs=1, train_fraction=0.25, max_length=64, batch_size=8, learning_rate=1e-4,
                     eval_every=10_000, activation_checkpointing=False)


# Issue 24's student at the machine's limit (minikit report's last row, bench/full_comparison.py's target):
# chosen by `python bench/distill_candidates.py --grid limit` among depth 1-2, FFN 25-75 % pruned and half of each
# layer's heads pruned: of the candidates ≥ 8× faster and ≥ 20× smaller than the float32 baseline once int8 and
# fused in ONNX Runtime, and at most 0.5 point below the teacher on the validation split, the fastest. Every
# 1-layer candidate lost 1.6-8.4 points there. The course's student with a quarter of each feed-forward block
# left and 6 of each layer's 12 heads (``pruning.even_heads``, weight-norm importance); its vocabulary and recipe,
# trained for LIMIT_CONFIG's 3 epochs: the same script's second stage, on validation (304 of 311 right after
# 3 epochs, as many as the teacher; 303 after 2), ties to fewer epochs.
LIMIT_LAYERS = (0, 4)
LIMIT_FFN_FRACTION = 0.75
LIMIT_HEADS_FRACTION = 0.5
LIMIT_CONFIG = replace(STUDENT_CONFIG, epochs=3)


def student_start(teacher: FineTuned, layers: Sequence[int] = STUDENT_LAYERS,
                  min_count: int = STUDENT_MIN_COUNT, ffn_fraction: float = STUDENT_FFN_FRACTION,
                  heads_fraction: float = 0.0) -> PrunedVocabulary:
    """The untrained student: ``layers`` of the teacher, ``ffn_fraction`` of each feed-forward block's
    neurons pruned (``pruning.prune_ffn_neurons``), ``heads_fraction`` of each layer's attention heads
    pruned (``pruning.even_heads`` by the weight-norm proxy), its vocabulary pruned to the train split's tokens."""
    student = select_layers(teacher.model, layers)
    if ffn_fraction:
        student = prune_ffn_neurons(student, ffn_fraction)
    if heads_fraction:
        student = prune_heads(student, even_heads(head_importance(student), heads_fraction))
    return prune_vocabulary(student, teacher.tokenizer, list(teacher.splits["train"]["text"]), min_count=min_count)


def get_student(teacher: FineTuned | None = None, *, use_teacher: bool = True,
                callback: Callable[[pd.DataFrame], None] | None = None, progress: bool = True) -> FineTuned:
    """The course's compressed student (``STUDENT_*`` above), distilled from ``teacher`` (default: the baseline).

    ``use_teacher=False`` trains the same start on the labels alone (the no-teacher comparison).
    Cached like ``distill``: about 2 minutes the first time on 2 cores, seconds after.
    The returned ``tokenizer`` is the pruned one; use it with the returned ``model``.
    """
    teacher = get_baseline(progress=progress) if teacher is None else teacher
    start = student_start(teacher)
    train = distill if use_teacher else train_without_teacher
    return train(start.model, teacher, tokenizer=start.tokenizer, config=STUDENT_CONFIG, callback=callback,
                 progress=progress)


def get_limit_student(teacher: FineTuned | None = None, *, progress: bool = True) -> FineTuned:
    """Issue 24's student at the machine's limit (``LIMIT_*`` above), distilled from ``teacher`` like ``get_student``.

    Cached like ``distill``; about 1¼ min the first time on 2 cores. ``minikit report`` serves it int8 as its
    last row; chapters 7-10 keep the course's student (``get_student``).
    """
    teacher = get_baseline(progress=progress) if teacher is None else teacher
    start = student_start(teacher, LIMIT_LAYERS, STUDENT_MIN_COUNT, LIMIT_FFN_FRACTION, LIMIT_HEADS_FRACTION)
    return distill(start.model, teacher, tokenizer=start.tokenizer, config=LIMIT_CONFIG, progress=progress)
