"""Chapter 7 — knowledge distillation: a small student learns from the fine-tuned teacher's soft labels.

Three ways to get a student: keep some of the teacher's layers (DistilBERT's initialisation), build
a smaller configuration (TinyBERT-style), and prune the vocabulary to the tokens a corpus uses.
The loss mixes cross-entropy on the true labels with the KL divergence to the teacher's
temperature-softened distribution (Hinton et al. 2015), optionally plus a hidden-state match.
The teacher's logits on the train split are computed once and cached. Training is
``train_classifier``'s Accelerate loop (progress bar, live-chart callback, warm-up, clipping,
early stop), given a small module whose forward returns the distillation loss; ``distill``
caches the trained student, so a fresh kernel reloads it instead of training again.
"""

from __future__ import annotations

import copy
import hashlib
import json
import tempfile
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoModelForSequenceClassification, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase
from transformers.modeling_outputs import SequenceClassifierOutput

from minikit.cache import load_model_dir, load_or_build, save_model_dir
from minikit.errors import is_finite, is_int
from minikit.models import encoder_layers
from minikit.pruning import prune_ffn_neurons
from minikit.settings import get_settings, quiet_transformers, seed_everything
from minikit.training import (
    FineTuned,
    TrainConfig,
    TrainResult,
    data_fingerprint,
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


def check_kd(alpha: float, temperature: float, hidden_weight: float = 0.0) -> None:
    """Raise a ValueError that says what was wrong unless 0 ≤ alpha ≤ 1, temperature > 0 and hidden_weight ≥ 0."""
    if not (is_finite(alpha) and 0 <= alpha <= 1):
        raise ValueError(f"alpha={alpha!r}: expected a weight in [0, 1] "
                         "(1 = true labels only, no teacher; 0 = the teacher's soft labels only).")
    if not (is_finite(temperature) and temperature > 0):
        raise ValueError(f"temperature={temperature!r}: expected a number > 0 "
                         "(1 = the teacher's own distribution, higher = softer, e.g. 2 or 4).")
    if not (is_finite(hidden_weight) and hidden_weight >= 0):
        raise ValueError(f"hidden_weight={hidden_weight!r}: expected a number ≥ 0 "
                         "(0 turns hidden-state matching off).")


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


def soft_probabilities(logits: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(logits / T) over the last axis, in float64: the teacher's soft labels at temperature T."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = np.exp(z - z.max(axis=-1, keepdims=True))  # minus the max: no overflow, same result
    return z / z.sum(axis=-1, keepdims=True)


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
# Students: layers of the teacher, a smaller configuration
# --------------------------------------------------------------------------------------------


def spread_layers(n_teacher: int, n_student: int) -> list[int]:
    """``n_student`` teacher layer indices spread from the bottom: (6, 3) → [0, 2, 4]; (12, 6) → [0, 2, ..., 10]."""
    if not (is_int(n_student) and 1 <= n_student <= n_teacher):
        raise ValueError(f"A student of {n_student!r} layers from a {n_teacher}-layer teacher: "
                         f"expected a whole number from 1 to {n_teacher}.")
    return [i * n_teacher // n_student for i in range(n_student)]


def _check_layers(layers: Sequence[int] | int, n_teacher: int) -> list[int]:
    if is_int(layers):
        return spread_layers(n_teacher, int(layers))
    chosen = list(layers)
    if not chosen or not all(is_int(i) for i in chosen):
        raise ValueError(f"layers={layers!r}: expected a non-empty list of layer indices, e.g. [0, 2, 4], "
                         "or a number of layers to keep.")
    outside = [i for i in chosen if not 0 <= i < n_teacher]
    if outside:
        raise ValueError(f"layers={chosen}: layer(s) {outside} do not exist; the teacher has {n_teacher} layers "
                         f"(0..{n_teacher - 1}).")
    if chosen != sorted(set(chosen)):
        raise ValueError(f"layers={chosen}: expected each index once, bottom to top (e.g. {sorted(set(chosen))}).")
    return [int(i) for i in chosen]


def _layer_prefixes(model: nn.Module) -> list[str]:
    """The state-dict prefix of each encoder layer ("bert.encoder.layer.3." ...), bottom to top."""
    names = {id(module): name for name, module in model.named_modules()}
    return [names[id(layer)] + "." for layer in encoder_layers(model)]


def _copy_from_teacher(teacher: PreTrainedModel, student: PreTrainedModel, source_layers: Sequence[int]) -> int:
    """Copy every teacher tensor whose shape fits into the student: student layer i from teacher layer
    ``source_layers[i]``, everything else (embeddings, pooler, head) by name. Returns tensors copied."""
    teacher_state, student_state = teacher.state_dict(), student.state_dict()
    t_prefixes, s_prefixes = _layer_prefixes(teacher), _layer_prefixes(student)
    copied = 0
    with torch.no_grad():
        for key, value in student_state.items():  # state-dict tensors share storage with the parameters
            source = key
            for i, prefix in enumerate(s_prefixes):
                if key.startswith(prefix):
                    source = t_prefixes[source_layers[i]] + key[len(prefix):]
                    break
            if source in teacher_state and teacher_state[source].shape == value.shape:
                value.copy_(teacher_state[source])
                copied += 1
    return copied


def select_layers(teacher: PreTrainedModel, layers: Sequence[int] | int = (0, 2, 4)) -> PreTrainedModel:
    """A student made of the teacher's ``layers`` (bottom to top), every other weight copied from the teacher.

    An int keeps that many layers spread from the bottom (3 of 6 → [0, 2, 4]), as DistilBERT kept
    every other layer of BERT-base. The teacher is left as it was; the chosen layers are recorded
    in ``student.config.teacher_layers`` (hidden-state matching pairs each with its original).
    """
    chosen = _check_layers(layers, len(encoder_layers(teacher)))
    config = copy.deepcopy(teacher.config)
    config.num_hidden_layers = len(chosen)  # DistilBERT's n_layers too, through its attribute_map
    config.teacher_layers = chosen
    with quiet_transformers():
        student = AutoModelForSequenceClassification.from_config(config)
    total = len(student.state_dict())
    copied = _copy_from_teacher(teacher, student, chosen)
    if copied != total:
        raise RuntimeError(f"Copied {copied} of the student's {total} tensors from the {type(teacher).__name__} "
                           "teacher; expected all of them. The layer list did not match the model's structure.")
    return student.to(next(teacher.parameters()).device).eval()


def _ffn_name(config) -> str:
    return "intermediate_size" if hasattr(config, "intermediate_size") else "hidden_dim"  # DistilBERT: hidden_dim


def smaller_student(
    teacher: PreTrainedModel,
    num_layers: int = 3,
    hidden_size: int | None = None,
    intermediate_size: int | None = None,
    num_attention_heads: int | None = None,
    init: str = "teacher",
    seed: int = 0,
    **config_overrides,
) -> PreTrainedModel:
    """A student with the teacher's architecture but a smaller configuration (TinyBERT-style).

    None keeps the teacher's value. ``init="teacher"`` starts every tensor whose shape still fits
    from the teacher (layers spread as in ``spread_layers``) and the rest at random; with a
    different hidden size almost nothing fits. ``init="random"`` starts from scratch. Other
    config fields pass through ``config_overrides`` (e.g. MobileBERT's ``true_hidden_size``).
    """
    if init not in {"teacher", "random"}:
        raise ValueError(f"init={init!r}: expected 'teacher' (copy what fits) or 'random'.")
    n_teacher = len(encoder_layers(teacher))
    source = spread_layers(n_teacher, num_layers)
    config = copy.deepcopy(teacher.config)
    changes = {"num_hidden_layers": num_layers, "hidden_size": hidden_size, _ffn_name(config): intermediate_size,
               "num_attention_heads": num_attention_heads, **config_overrides}
    for name, value in changes.items():
        if value is None:
            continue
        if not hasattr(config, name):
            raise ValueError(f"{type(config).__name__} has no field {name!r}. Fix: pass one of its own fields, "
                             f"e.g. {sorted(config.to_diff_dict())[:8]}.")
        setattr(config, name, value)
    config.teacher_layers = source
    seed_everything(seed)  # the random part of the initialisation
    try:
        with quiet_transformers():
            student = AutoModelForSequenceClassification.from_config(config)
    except (ValueError, RuntimeError) as err:
        raise ValueError(f"{type(config).__name__} with {changes} does not build: {err} "
                         "Fix: make the sizes fit together (hidden_size a multiple of num_attention_heads; "
                         "MobileBERT's true_hidden_size and intra_bottleneck_size follow hidden_size).") from err
    if init == "teacher":
        _copy_from_teacher(teacher, student, source)
    return student.to(next(teacher.parameters()).device).eval()


# --------------------------------------------------------------------------------------------
# Vocabulary pruning
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class PrunedVocabulary:
    """A model and tokenizer that know only the kept tokens, and how old ids map to new ones."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    kept_ids: np.ndarray  # (V_new,): new id i was old id kept_ids[i]; kept in the old order, so [PAD] stays 0
    old_vocab_size: int
    embedding_mb_before: float  # the word-embedding matrix, float32 bytes / 1e6
    embedding_mb_after: float

    @property
    def new_vocab_size(self) -> int:
        return len(self.kept_ids)

    @property
    def mb_saved(self) -> float:
        return self.embedding_mb_before - self.embedding_mb_after

    def remap(self, old_ids) -> np.ndarray:
        """Old token ids → new ones; a token that was not kept becomes the new [UNK]."""
        table = np.full(self.old_vocab_size, self.tokenizer.unk_token_id, dtype=np.int64)
        table[self.kept_ids] = np.arange(len(self.kept_ids))
        return table[np.asarray(old_ids)]


def _corpus_token_ids(tokenizer, texts: Sequence[str], keep_characters: bool, min_count: int) -> np.ndarray:
    counts = Counter()
    for start in range(0, len(texts), 256):
        for row in tokenizer(list(texts[start:start + 256]), add_special_tokens=False, verbose=False)["input_ids"]:
            counts.update(row)
    ids = {i for i, n in counts.items() if n >= min_count} | set(tokenizer.all_special_ids)
    if keep_characters:  # "z", "##z": an unseen word can always be spelled out instead of becoming [UNK]
        ids.update(i for token, i in tokenizer.get_vocab().items()
                   if len(token) == 1 or (token.startswith("##") and len(token) == 3))
    return np.array(sorted(ids), dtype=np.int64)


def _pruned_tokenizer(tokenizer, kept_ids: np.ndarray) -> PreTrainedTokenizerBase:
    """The same tokenizer with a WordPiece vocabulary of the kept tokens only, renumbered 0..V_new−1."""
    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    kind = spec["model"]["type"]
    if kind != "WordPiece":
        raise ValueError(f"prune_vocabulary supports WordPiece tokenizers (BERT, DistilBERT, MobileBERT); this "
                         f"{type(tokenizer).__name__} uses {kind}, whose merges or scores would need pruning too.")
    old_token = {i: t for t, i in spec["model"]["vocab"].items()}
    new_id = {old_token[int(i)]: n for n, i in enumerate(kept_ids)}
    spec["model"]["vocab"] = new_id
    for added in spec.get("added_tokens") or []:
        added["id"] = new_id[added["content"]]
    for special in ((spec.get("post_processor") or {}).get("special_tokens") or {}).values():
        special["ids"] = [new_id[t] for t in special["tokens"]]
    if spec.get("padding"):
        spec["padding"]["pad_id"] = new_id[spec["padding"]["pad_token"]]
    # Going through save/load keeps the tokenizer's own class and settings (lower-casing, specials).
    with tempfile.TemporaryDirectory() as tmp, quiet_transformers():
        tokenizer.save_pretrained(tmp)
        (Path(tmp) / "tokenizer.json").write_text(json.dumps(spec))
        (Path(tmp) / "vocab.txt").unlink(missing_ok=True)  # a slow tokenizer's file would bring the old ids back
        return AutoTokenizer.from_pretrained(tmp, local_files_only=True, trust_remote_code=False)


def prune_vocabulary(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    keep_characters: bool = True,
    min_count: int = 1,
) -> PrunedVocabulary:
    """A copy of ``model`` whose word embeddings keep only the tokens ``texts`` use, with a matching tokenizer.

    A text made only of kept tokens gets exactly the logits it got before (the rows are copied,
    only renumbered). WordPiece with a smaller vocabulary splits other words into kept pieces;
    ``keep_characters`` keeps every one-character piece (~1,000 tokens) so that such a word is
    spelled out rather than lost to [UNK]. ``min_count`` drops tokens used fewer times than that
    (rare words get spelled out too). Texts are tokenized whole, not truncated.
    """
    if isinstance(texts, str):
        raise TypeError("prune_vocabulary got one string as texts; pass a list of texts (e.g. [text]).")
    if not (is_int(min_count) and min_count >= 1):
        raise ValueError(f"min_count={min_count!r}: expected a whole number ≥ 1 (1 keeps every token the texts use).")
    old = model.get_input_embeddings()
    if len(tokenizer) != old.num_embeddings:
        raise ValueError(f"The tokenizer has {len(tokenizer)} tokens, the model's embedding {old.num_embeddings} rows; "
                         "expected the tokenizer the model was trained with.")
    kept = _corpus_token_ids(tokenizer, texts, keep_characters, min_count)
    new_tokenizer = _pruned_tokenizer(tokenizer, kept)
    pruned = copy.deepcopy(model)
    rows = torch.as_tensor(kept, device=old.weight.device)
    padding_idx = None if old.padding_idx is None else int(np.searchsorted(kept, old.padding_idx))
    new = nn.Embedding(len(kept), old.embedding_dim, padding_idx=padding_idx,
                       device=old.weight.device, dtype=old.weight.dtype)
    with torch.no_grad():
        new.weight.copy_(old.weight[rows])  # (V_new, d): the kept rows, in their old order
    pruned.set_input_embeddings(new)
    pruned.config.vocab_size = len(kept)
    if getattr(pruned.config, "pad_token_id", None) is not None:
        pruned.config.pad_token_id = new_tokenizer.pad_token_id
    mb = old.embedding_dim * old.weight.element_size() / 1e6
    return PrunedVocabulary(pruned.eval(), new_tokenizer, kept, old.num_embeddings,
                            old.num_embeddings * mb, len(kept) * mb)


# --------------------------------------------------------------------------------------------
# Teacher logits, computed once
# --------------------------------------------------------------------------------------------


def _weights_fingerprint(model: nn.Module, tokenizer=None) -> str:
    """sha256 over a model's class, config, tensor names, shapes and bytes (and its tokenizer): ~0.3 s for 90 MB."""
    digest = hashlib.sha256(type(model).__name__.encode())
    config = json.loads(model.config.to_json_string(use_diff=True)) if hasattr(model, "config") else {}
    config.pop("transformers_version", None)
    digest.update(json.dumps(config, sort_keys=True).encode())
    for name, tensor in model.state_dict().items():
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype};".encode())
        digest.update(flat.view(torch.uint8).numpy() if flat.numel() else b"")
    if tokenizer is not None:  # its vocabulary and rules, not the padding/truncation state the last call left
        spec = json.loads(tokenizer.backend_tokenizer.to_str())
        for state in ("padding", "truncation"):
            spec.pop(state, None)
        digest.update(json.dumps(spec, sort_keys=True).encode())
    return digest.hexdigest()[:16]


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
    fingerprint = _weights_fingerprint(teacher.model, teacher.tokenizer)
    return _cached_teacher_logits(teacher, fingerprint, texts, max_length, truncation)


def _cached_teacher_logits(teacher: FineTuned, fingerprint: str, texts, max_length: int, truncation: str) -> np.ndarray:
    texts = list(teacher.splits["train"]["text"] if texts is None else texts)
    parts = {"teacher": fingerprint, "texts": hashlib.sha256(json.dumps(texts).encode()).hexdigest(),
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


class _Distiller(nn.Module):
    """What ``train_classifier`` trains: the student (and a projection) with a forward that returns the KD loss.

    In eval mode it is the student, so validation accuracy is the student's. The teacher sits in
    a tuple, out of ``parameters()`` and ``state_dict()``: it never trains and is never saved.
    """

    def __init__(self, student: PreTrainedModel, soft: dict[bytes, torch.Tensor], alpha: float, temperature: float,
                 hidden_weight: float = 0.0, teacher: PreTrainedModel | None = None,
                 to_teacher_ids: torch.Tensor | None = None):
        super().__init__()
        self.student, self.soft = student, soft
        self.alpha, self.temperature, self.hidden_weight = alpha, temperature, hidden_weight
        self._teacher, self._to_teacher_ids = (teacher,), to_teacher_ids
        self.projection = None
        if hidden_weight > 0:
            n_teacher = len(encoder_layers(teacher))
            n_student = len(encoder_layers(student))
            pairs = getattr(student.config, "teacher_layers", None) or spread_layers(n_teacher, n_student)
            self.pairs = [(i + 1, t + 1) for i, t in enumerate(pairs)]  # hidden_states[0] is the embedding output
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
        out = self.student(input_ids=input_ids, attention_mask=attention_mask,
                           output_hidden_states=self.hidden_weight > 0)
        soft = self._soft_targets(input_ids, attention_mask).to(out.logits)
        loss = distillation_loss(out.logits, soft, labels, self.alpha, self.temperature)
        if self.hidden_weight > 0:
            teacher = self._teacher[0].to(input_ids.device).eval()
            ids = input_ids if self._to_teacher_ids is None else self._to_teacher_ids.to(input_ids.device)[input_ids]
            with torch.no_grad():
                states = teacher(input_ids=ids, attention_mask=attention_mask, output_hidden_states=True).hidden_states
            loss = loss + self.hidden_weight * hidden_state_loss(
                [out.hidden_states[s] for s, _ in self.pairs], [states[t] for _, t in self.pairs],
                attention_mask, self.projection)
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
    config: TrainConfig = TrainConfig(),
    callback: Callable[[pd.DataFrame], None] | None = None,
    progress: bool = True,
    cache: bool = True,
) -> FineTuned:
    """Train a copy of ``student`` on the teacher's splits with the distillation loss; cached, like ``fine_tune``.

    ``teacher`` defaults to ``get_baseline()``; the student uses its splits, so the test split stays
    unseen by both. ``tokenizer`` is the student's (default: the teacher's; pass
    ``PrunedVocabulary.tokenizer`` for a pruned student). ``alpha=1`` trains without the teacher
    (the no-teacher baseline); ``hidden_weight > 0`` adds hidden-state matching, which runs the
    teacher at every step. The student passed in is not changed: use the returned ``.model``.
    """
    check_kd(alpha, temperature, hidden_weight)
    teacher = get_baseline(progress=progress) if teacher is None else teacher
    tokenizer = tokenizer or teacher.tokenizer
    if student.config.num_labels != teacher.model.config.num_labels:
        raise ValueError(f"The student has num_labels={student.config.num_labels}, the teacher "
                         f"{teacher.model.config.num_labels}. Fix: build the student from the teacher (select_layers).")
    rows = student.get_input_embeddings().num_embeddings
    if len(tokenizer) > rows:
        raise ValueError(f"The tokenizer has {len(tokenizer)} tokens but the student's embedding only {rows} rows. "
                         "Fix: pass the student's own tokenizer, e.g. tokenizer=pruned.tokenizer.")
    uses_teacher = alpha < 1 or hidden_weight > 0
    teacher_id = _weights_fingerprint(teacher.model, teacher.tokenizer) if uses_teacher else None
    parts = {"student": _weights_fingerprint(student, tokenizer), "teacher": teacher_id,
             "data": data_fingerprint(teacher.splits), "config": replace(config, learning_rate=config.lr),
             "alpha": alpha, "temperature": temperature if alpha < 1 else None, "hidden_weight": hidden_weight}

    def train() -> tuple[PreTrainedModel, TrainResult, float]:
        net = copy.deepcopy(student)
        if uses_teacher:
            logits = _cached_teacher_logits(teacher, teacher_id, None, config.max_length, config.truncation)
            soft = _soft_lookup(logits, teacher.splits, tokenizer, config)
            to_teacher = _id_map(tokenizer, teacher.tokenizer) if hidden_weight > 0 else None
            seed_everything(config.seed)  # the projection's initial weights are part of the run
            module = _Distiller(net, soft, alpha, temperature, hidden_weight, teacher.model, to_teacher)
        else:
            module = net  # the student's own cross-entropy: the same loss as alpha=1
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
    net, saved_tokenizer = load_model_dir(entry)
    result, accuracy = read_result(entry)
    if callback is not None:
        callback(result.history)
    return FineTuned(net.to(get_settings().device), saved_tokenizer, teacher.splits, result, accuracy, entry, True)


def train_without_teacher(student: PreTrainedModel, teacher: FineTuned | None = None, **kwargs) -> FineTuned:
    """The comparison for ``distill``: the same student and data trained on the labels alone (alpha=1)."""
    return distill(student, teacher, **{**kwargs, "alpha": 1.0, "hidden_weight": 0.0})


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


def student_start(teacher: FineTuned, layers: Sequence[int] = STUDENT_LAYERS,
                  min_count: int = STUDENT_MIN_COUNT, ffn_fraction: float = STUDENT_FFN_FRACTION) -> PrunedVocabulary:
    """The untrained student: ``layers`` of the teacher, ``ffn_fraction`` of each feed-forward block's
    neurons pruned (``pruning.prune_ffn_neurons``), its vocabulary pruned to the train split's tokens."""
    student = select_layers(teacher.model, layers)
    if ffn_fraction:
        student = prune_ffn_neurons(student, ffn_fraction)
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
