"""Chapter 7 — building a student before distillation: keep some of the teacher's layers (DistilBERT's
initialisation), build a smaller configuration (TinyBERT-style), and prune the vocabulary to the tokens
a corpus uses. ``minikit.distillation`` then trains it on the teacher's soft labels.
"""

from __future__ import annotations

import copy
import json
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn
from transformers import AutoModelForSequenceClassification, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from minikit.errors import is_int
from minikit.models import encoder_layers
from minikit.settings import quiet_transformers, seed_everything


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


def corpus_token_ids(tokenizer, texts: Sequence[str], keep_characters: bool, min_count: int) -> np.ndarray:
    """The token ids a vocabulary pruned on ``texts`` keeps: those seen ``min_count`` times, the special ones,
    and (``keep_characters``) every single-character token, so any word can still be spelled out."""
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
    kept = corpus_token_ids(tokenizer, texts, keep_characters, min_count)
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
