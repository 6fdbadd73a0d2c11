"""Chapter 3 — fine-tuning: train a classification head (and the encoder under it) with Accelerate.

Three methods: ``"full"`` trains every weight; ``"linear-probe"`` trains only the head, which
measures what the pre-trained features are worth as they are; ``"gradual-unfreeze"`` (ULMFiT)
starts with the head and unfreezes one more encoder layer from the top at each stage. The loop
uses ``accelerate.Accelerator``, so the same code runs on a CPU, one GPU, or several GPUs under
``accelerate launch``. ``fine_tune`` caches the trained model; ``get_baseline()`` is the call
later chapters use to get the fine-tuned baseline back in a fresh kernel.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

import datasets
import numpy as np
import pandas as pd
import torch
from accelerate import Accelerator, DistributedDataParallelKwargs, PartialState
from accelerate.utils import broadcast_object_list
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import (
    AutoModel,
    AutoModelForMaskedLM,
    DataCollatorForLanguageModeling,
    DataCollatorWithPadding,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    get_linear_schedule_with_warmup,
)
from transformers.modeling_outputs import BaseModelOutputWithPooling

from minikit.cache import MANIFEST, file_sha256, find, load_model_dir, load_or_build, save_model_dir
from minikit.data import BBC_NEWS, prepare_dataset, tokenize
from minikit.models import DEFAULT_MODEL, load_model, load_tokenizer, resolve_model_source
from minikit.settings import get_settings, quiet_transformers, seed_everything
from minikit.system import release_freed_memory

METHODS = ("full", "linear-probe", "gradual-unfreeze")
# One epoch on BBC News with minilm-l6 (bench/train_baseline.py --method ...): full 97.7 % test
# accuracy, gradual-unfreeze 97.4 %, linear-probe 89.4 % (on stored encoder outputs; its loss still
# falling). The head alone
# starts from random weights over frozen features, so it needs a ~100x larger step.
DEFAULT_LEARNING_RATE = {"full": 1e-4, "linear-probe": 1e-2, "gradual-unfreeze": 2e-4}
_EVAL_BATCH = 32  # validation batches: larger ones are no faster on a CPU and cost peak memory


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a fine-tuning run (and so its cache key)."""

    method: str = "full"  # "full", "linear-probe" or "gradual-unfreeze"
    epochs: int = 1  # one pass over ~1,450 BBC articles already reaches ≥95 % test accuracy
    learning_rate: float | None = None  # None: the method's default, DEFAULT_LEARNING_RATE[method]
    batch_size: int = 8  # 16 is as fast and as accurate but peaks ~200 MB higher (1.64 vs 1.45 GB)
    max_length: int = 128  # tokens per article; BBC articles are ~400, but the lede names the topic
    warmup_ratio: float = 0.1  # share of steps spent ramping the learning rate up from 0
    weight_decay: float = 0.01  # AdamW; never applied to biases and norm weights
    max_grad_norm: float | None = 1.0  # gradient clipping; None disables it
    eval_every: int = 40  # steps between validation evaluations (one more at the end); each costs ~4 s
    patience: int | None = None  # stop after this many evaluations without improvement; None: never
    seed: int = 42
    train_fraction: float = 1.0  # stratified share of the train split, for low-data experiments
    truncation: str = "head"  # or "head+tail" (see minikit.data.tokenize)
    unfreeze_every: int | None = None  # gradual-unfreeze: steps per stage; None spreads stages evenly
    log_every: int = 5  # steps per history row (train loss is averaged over them)
    # Recompute each layer's activations in the backward pass instead of keeping them: ~35 % slower
    # steps, ~200 MB less peak memory at batch 8 × 128 tokens. Off by default: with the prepared corpus
    # read from the cache, chapter 3 peaks at ~1.4 GB without it. Turn it on for longer inputs or batches.
    activation_checkpointing: bool = False

    def __post_init__(self):
        def bad(name: str, expected: str) -> ValueError:
            return ValueError(f"TrainConfig({name}={getattr(self, name)!r}): expected {expected}.")

        if self.method not in METHODS:
            raise bad("method", f"one of {', '.join(map(repr, METHODS))}")
        if self.truncation not in {"head", "head+tail"}:
            raise bad("truncation", "'head' or 'head+tail'")
        for name in ("epochs", "batch_size", "eval_every", "log_every"):
            if not _is_int(getattr(self, name)) or getattr(self, name) < 1:
                raise bad(name, "a whole number ≥ 1")
        for name in ("patience", "unfreeze_every"):
            value = getattr(self, name)
            if value is not None and (not _is_int(value) or value < 1):
                raise bad(name, "None or a whole number ≥ 1")
        if not _is_int(self.max_length) or self.max_length < 8:
            raise bad("max_length", "a whole number of tokens ≥ 8")
        if not _is_int(self.seed) or self.seed < 0:
            raise bad("seed", "a whole number ≥ 0")
        if self.learning_rate is not None and not (_is_finite(self.learning_rate) and 0 < self.learning_rate < 1):
            raise bad("learning_rate", "None (the method's default) or a number in (0, 1), e.g. 1e-4")
        if not (_is_finite(self.train_fraction) and 0 < self.train_fraction <= 1):
            raise bad("train_fraction", "a fraction in (0, 1]")
        if not (_is_finite(self.warmup_ratio) and 0 <= self.warmup_ratio < 1):
            raise bad("warmup_ratio", "a fraction in [0, 1)")
        if not (_is_finite(self.weight_decay) and self.weight_decay >= 0):
            raise bad("weight_decay", "a number ≥ 0")
        if self.max_grad_norm is not None and not (_is_finite(self.max_grad_norm) and self.max_grad_norm > 0):
            raise bad("max_grad_norm", "None or a number > 0")

    @property
    def lr(self) -> float:
        """The learning rate in force: ``learning_rate``, or the method's default when it is None."""
        return self.learning_rate if self.learning_rate is not None else DEFAULT_LEARNING_RATE[self.method]


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_finite(value) -> bool:
    return isinstance(value, (int, float, np.number)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True, eq=False)
class TrainResult:
    """What a training run did: its history and its best validation accuracy."""

    # One row per log_every steps: step, epoch, train_loss (mean since the previous row),
    # val_accuracy (NaN between evaluations), lr, trainable (parameters that were training).
    history: pd.DataFrame
    best_val_accuracy: float
    best_step: int  # the weights of this step are the ones the model ends with
    seconds: float
    stopped_early: bool
    steps: int  # optimizer steps actually taken


# --------------------------------------------------------------------------------------------
# Which parameters train: head, encoder layers, freezing plans
# --------------------------------------------------------------------------------------------


def head_parameters(model: PreTrainedModel) -> list[nn.Parameter]:
    """The task head: every parameter that is not part of ``model.base_model``."""
    base = getattr(model, "base_model", model)
    in_base = {id(p) for p in base.parameters()}
    head = [p for p in model.parameters() if id(p) not in in_base]
    if not head:
        raise ValueError(f"{type(model).__name__} has no parameters outside model.base_model, so no head to train. "
                         "Fix: load it with AutoModelForSequenceClassification (minikit.load_model does).")
    return head


def encoder_layers(model: nn.Module) -> list[nn.Module]:
    """The encoder's transformer layers, bottom to top, found by module type rather than by path.

    They are the outermost ``nn.ModuleList`` in ``model.base_model`` whose children all share one
    type, preferring one whose length is ``config.num_hidden_layers`` (MobileBERT's layers hold
    smaller lists of their own feed-forward blocks).
    """
    base = getattr(model, "base_model", model)
    lists = [(name, m) for name, m in base.named_modules()
             if isinstance(m, nn.ModuleList) and len(m) > 0 and len({type(c) for c in m}) == 1]
    outer = [(name, m) for name, m in lists
             if not any(name.startswith(other + ".") for other, _ in lists if other and other != name)]
    if not outer:
        raise ValueError(
            f"Found no encoder layers in {type(base).__name__}: no nn.ModuleList of identical blocks. "
            "encoder_layers expects a transformer encoder (BERT, DistilBERT, MobileBERT, ...). "
            "Fix: pass a transformers model, or list the layers yourself."
        )
    expected = getattr(getattr(model, "config", None), "num_hidden_layers", None)
    matching = [m for _, m in outer if len(m) == expected]
    return list(matching[0] if matching else max((m for _, m in outer), key=len))


def _stages(model: PreTrainedModel, method: str) -> list[list[nn.Parameter]]:
    """Parameters each stage adds: full = [all]; linear probe = [head]; gradual = [head, top layer, ..., rest]."""
    if method == "full":
        return [list(model.parameters())]
    head = head_parameters(model)
    if method == "linear-probe":
        return [head]
    layers = [list(layer.parameters()) for layer in reversed(encoder_layers(model))]
    seen = {id(p) for group in [head, *layers] for p in group}
    rest = [p for p in model.parameters() if id(p) not in seen]  # embeddings, pooler, final norms
    return [head, *layers, rest]


def _apply_stage(stages: list[list[nn.Parameter]], stage: int) -> int:
    """Make stages[0..stage] trainable and everything else in them frozen; returns trainable params."""
    trainable = 0
    for index, group in enumerate(stages):
        for p in group:
            p.requires_grad_(index <= stage)
            trainable += p.numel() if index <= stage else 0
    return trainable


def _optimizer(params: list[nn.Parameter], config: TrainConfig) -> torch.optim.AdamW:
    # No weight decay on biases and norm weights (1-D tensors), as in BERT's own recipe.
    # Frozen parameters have no gradient, and AdamW skips those entirely, decay included.
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=config.lr, fused=True)


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------


def check_labels(splits: datasets.DatasetDict, num_labels: int) -> None:
    """Raise ValueError when these splits cannot train or score a ``num_labels``-way classifier."""
    for name in ("train", "validation"):
        if name not in splits:
            raise ValueError(f"The splits {list(splits)} have no {name!r} split. Fix: use minikit.split_dataset.")
    for name, ds in splits.items():
        if "label" not in ds.column_names:
            raise ValueError(f"The {name} split has no 'label' column (columns: {ds.column_names}).")
    feature = splits["train"].features["label"]
    names = getattr(feature, "names", None)
    if names is not None and len(names) != num_labels:
        raise ValueError(f"The dataset has {len(names)} classes {names}, the model has num_labels={num_labels}. "
                         f"Fix: load the model with num_labels={len(names)}.")
    seen = set(splits["train"]["label"])
    for name, ds in splits.items():
        ids = set(ds["label"])
        outside = sorted(i for i in ids if not 0 <= i < num_labels)
        if outside:
            raise ValueError(f"The {name} split has label id(s) {outside}, outside 0..{num_labels - 1} "
                             f"(num_labels={num_labels}). Fix: re-encode the labels or change num_labels.")
        unseen = sorted(ids - seen)
        if unseen:
            shown = [names[i] for i in unseen] if names else unseen
            raise ValueError(f"The {name} split has label(s) {shown} that the train split never has: the model "
                             "cannot learn them. Fix: split with stratification (minikit.split_dataset), or "
                             "raise train_fraction.")


def _stratified_subset(ds: datasets.Dataset, fraction: float, seed: int) -> datasets.Dataset:
    """A share of each class's rows (at least one per class), drawn with a fixed seed."""
    if fraction >= 1:
        return ds
    rng = np.random.default_rng(seed)
    labels = np.asarray(ds["label"])
    keep = [rng.choice(rows, max(1, round(fraction * len(rows))), replace=False)
            for rows in (np.flatnonzero(labels == c) for c in np.unique(labels))]
    return ds.select(np.sort(np.concatenate(keep)))


def _model_inputs(ds: datasets.Dataset, tokenizer, config: TrainConfig) -> datasets.Dataset:
    # Only ids, mask and labels: DistilBERT's forward() rejects the token_type_ids BERT tokenizers add.
    ds = tokenize(ds, tokenizer, config.max_length, config.truncation).rename_column("label", "labels")
    return ds.select_columns(["input_ids", "attention_mask", "labels"])


def _dataloaders(splits, tokenizer, config: TrainConfig) -> tuple[DataLoader, DataLoader]:
    collate = DataCollatorWithPadding(tokenizer)
    train = _model_inputs(_stratified_subset(splits["train"], config.train_fraction, config.seed), tokenizer, config)
    val = _model_inputs(splits["validation"], tokenizer, config)
    val = val.select(np.argsort([len(x) for x in val["input_ids"]], kind="stable"))  # less padding
    generator = torch.Generator().manual_seed(config.seed)
    return (DataLoader(train, batch_size=config.batch_size, shuffle=True, collate_fn=collate, generator=generator),
            DataLoader(val, batch_size=_EVAL_BATCH, collate_fn=collate))


# --------------------------------------------------------------------------------------------
# The training loop
# --------------------------------------------------------------------------------------------


def _keep_copy(model: nn.Module, copy: dict[str, torch.Tensor] | None) -> dict[str, torch.Tensor]:
    """The model's weights copied to CPU memory (~90 MB for minilm-l6), into ``copy``'s tensors if given.

    Copying into the same tensors each time, rather than allocating new ones, keeps peak memory flat.
    """
    state = model.state_dict()
    if copy is None:
        return {k: v.detach().to("cpu", copy=True) for k, v in state.items()}
    for k, v in state.items():
        copy[k].copy_(v.detach())
    return copy


def _accuracy(model: nn.Module, loader: DataLoader, accelerator: Accelerator) -> float:
    model.eval()
    correct = total = 0
    with torch.inference_mode():
        for batch in loader:
            predictions = model(**batch).logits.argmax(-1)
            predictions, labels = accelerator.gather_for_metrics((predictions, batch["labels"]))
            correct += int((predictions == labels).sum())
            total += labels.numel()
    model.train()
    return correct / total


class _EncoderOutputs:
    """A linear probe's frozen encoder, run once per text: its outputs served from memory while the head trains.

    With the encoder frozen, every epoch and every evaluation would compute the same encoder
    outputs again; only the head's few thousand weights change. So each distinct text's outputs
    are computed once (eval mode: the encoder's dropout is off, as it is for stored features) and
    ``model.base_model.forward`` is replaced, for the run, by a lookup. Only what a classification
    head reads is kept: the first token's hidden state and the pooled output (the heads of BERT,
    MobileBERT and DistilBERT read nothing else). ``matches`` compares the lookup with the real
    encoder on a batch, so a head that reads more keeps the real encoder.
    """

    def __init__(self, model: nn.Module, parts: Sequence[datasets.Dataset], batch_size: int = 16):
        self.base = model.base_model
        rows: dict[bytes, list[int]] = {}
        for part in parts:
            for ids, mask in zip(part["input_ids"], part["attention_mask"]):
                rows.setdefault(self._key(ids, mask), [int(i) for i, m in zip(ids, mask) if int(m)])
        # Longest first, into tensors allocated once: every later batch fits in memory an earlier one
        # freed. Shortest first with a small tensor kept per text, each batch needed fresh memory
        # above the last, and the heap grew to the sum of all batches (1.8 GB peak measured, not 0.6).
        unique = sorted(rows.items(), key=lambda item: -len(item[1]))
        self.index = {key: n for n, (key, _) in enumerate(unique)}
        width = model.config.hidden_size
        self.first = torch.empty(len(unique), width)
        self.pooled: torch.Tensor | None = torch.empty(len(unique), width)
        pad = getattr(model.config, "pad_token_id", None) or 0
        was_training = model.training
        model.eval()
        with torch.inference_mode():
            for start in range(0, len(unique), batch_size):
                chunk = unique[start:start + batch_size]
                longest = max(len(ids) for _, ids in chunk)
                ids = torch.tensor([i + [pad] * (longest - len(i)) for _, i in chunk])
                mask = torch.tensor([[1] * len(i) + [0] * (longest - len(i)) for _, i in chunk])
                out = self.base(input_ids=ids, attention_mask=mask)
                self.first[start:start + len(chunk)] = out[0][:, 0]
                pooled = getattr(out, "pooler_output", None)
                if pooled is None:
                    self.pooled = None
                elif self.pooled is not None:
                    self.pooled[start:start + len(chunk)] = pooled
                del out
        model.train(was_training)
        release_freed_memory()

    @staticmethod
    def _key(ids, mask) -> bytes:
        return np.asarray([int(i) for i, m in zip(ids, mask) if int(m)], dtype=np.int64).tobytes()

    def _lookup(self, input_ids=None, attention_mask=None, **_unused):
        rows = torch.tensor([self.index[self._key(i.tolist(), m.tolist())] for i, m in zip(input_ids, attention_mask)])
        pooled = None if self.pooled is None else self.pooled[rows]
        return BaseModelOutputWithPooling(last_hidden_state=self.first[rows][:, None, :], pooler_output=pooled)

    def install(self) -> None:
        self.base.forward = self._lookup  # an instance attribute: nn.Module.__call__ finds it first

    @staticmethod
    def remove(model: nn.Module) -> None:
        base = getattr(model, "base_model", model)
        if "forward" in vars(base):
            del base.forward  # the class's own forward again

    def matches(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> bool:
        """Does the head give the real encoder's logits from the stored outputs (eval mode, one batch)?"""
        was_training = model.training
        model.eval()
        try:
            with torch.inference_mode():
                real = model(**batch).logits
                self.install()
                stored = model(**batch).logits
        finally:
            self.remove(model)
            model.train(was_training)
        return bool(torch.allclose(real, stored, atol=1e-4, rtol=1e-4))


class _BestWeights:
    """The best validation accuracy so far, its step and a copy of its weights; early stopping by patience."""

    def __init__(self, patience: int | None):
        self.accuracy, self.step, self.state, self.patience, self._stale = -1.0, 0, None, patience, 0

    def update(self, accuracy: float, step: int, model: nn.Module) -> bool:
        """Record one evaluation; True when ``patience`` evaluations in a row brought no gain (stop)."""
        if accuracy > self.accuracy:
            self.accuracy, self.step, self._stale = accuracy, step, 0
            self.state = _keep_copy(model, self.state)
        else:
            self._stale += 1
        return self.patience is not None and self._stale >= self.patience


def _optimizer_step(accelerator: Accelerator, model: nn.Module, loss: torch.Tensor, optimizer, scheduler,
                    max_grad_norm: float | None) -> float:
    """Backward, clip, step, schedule, zero: one training step; returns the learning rate it used."""
    accelerator.backward(loss)
    if max_grad_norm is not None:
        accelerator.clip_grad_norm_(model.parameters(), max_grad_norm)
    lr = scheduler.get_last_lr()[0]
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad()
    return lr


def train_classifier(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    splits: datasets.DatasetDict,
    config: TrainConfig = TrainConfig(),
    callback: Callable[[pd.DataFrame], None] | None = None,
    progress: bool = True,
) -> TrainResult:
    """Fine-tune ``model`` in place on splits["train"], scoring splits["validation"]; returns a TrainResult.

    Seeds Python, NumPy and torch with ``config.seed`` first. The model ends with the weights of
    its best validation evaluation, in eval mode, with ``requires_grad`` as it was on entry (also
    after Ctrl-C). ``callback(history)`` runs after every evaluation (a live chart, for instance).
    """
    check_labels(splits, model.config.num_labels)
    seed_everything(config.seed)
    was_trainable = [p.requires_grad for p in model.parameters()]
    checkpointing = (config.activation_checkpointing and config.method != "linear-probe"
                     and getattr(model, "supports_gradient_checkpointing", False)
                     and not getattr(model, "is_activation_checkpointing", True))
    if checkpointing:
        model.activation_checkpointing_enable()  # non-reentrant, transformers' default
        # It also hooks the embeddings to make their output require grad, which only re-entrant
        # checkpointing needs; left on, it would make frozen layers backpropagate for nothing.
        model.disable_input_require_grads()
    try:
        return _train(model, tokenizer, splits, config, callback, progress)
    finally:
        _EncoderOutputs.remove(model)  # a linear probe's stored encoder outputs, if _train installed them
        if checkpointing:
            model.activation_checkpointing_disable()
        for p, flag in zip(model.parameters(), was_trainable):
            p.requires_grad_(flag)
        model.eval()


def _train(model, tokenizer, splits, config: TrainConfig, callback, progress: bool) -> TrainResult:
    stages = _stages(model, config.method)
    params = [p for group in stages for p in group]
    model.requires_grad_(False)  # whatever no stage names (the linear probe's encoder) stays frozen
    _apply_stage(stages, len(stages) - 1)  # DDP registers only what is trainable when it wraps the model
    train_loader, val_loader = _dataloaders(splits, tokenizer, config)
    total = len(train_loader) * config.epochs
    optimizer = _optimizer(params, config)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(config.warmup_ratio * total), total)
    accelerator = Accelerator(
        cpu=get_settings().device == "cpu",
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=len(stages) > 1)],
    )
    model, optimizer, train_loader, val_loader, scheduler = accelerator.prepare(
        model, optimizer, train_loader, val_loader, scheduler)
    steps_per_epoch = len(train_loader)  # per process: the scheduler above counts all processes' batches
    total = steps_per_epoch * config.epochs
    unfreeze_every = config.unfreeze_every or max(1, math.ceil(total / len(stages)))

    history, losses, best = [], [], _BestWeights(config.patience)
    step, stage, trainable, stopped = 0, -1, 0, False
    start = time.perf_counter()
    bar = tqdm(total=total, desc=f"fine-tuning ({config.method})",
               disable=not (progress and accelerator.is_local_main_process))
    if config.method == "linear-probe" and accelerator.num_processes == 1:
        net = accelerator.unwrap_model(model)
        encoder = _EncoderOutputs(net, [train_loader.dataset, val_loader.dataset])
        if encoder.matches(net, {k: v for k, v in next(iter(val_loader)).items() if k != "labels"}):
            encoder.install()  # removed by train_classifier, even on Ctrl-C
    model.train()
    while step < total and not stopped:
        for batch in train_loader:
            if min(step // unfreeze_every, len(stages) - 1) != stage:
                stage = min(step // unfreeze_every, len(stages) - 1)
                trainable = _apply_stage(stages, stage)
            loss = model(**batch).loss
            lr = _optimizer_step(accelerator, model, loss, optimizer, scheduler, config.max_grad_norm)
            step += 1
            losses.append(loss.item())
            bar.update()
            evaluate = step % config.eval_every == 0 or step == total
            if not (evaluate or step % config.log_every == 0):
                continue
            row = {"step": step, "epoch": step / steps_per_epoch, "train_loss": float(np.mean(losses)),
                   "val_accuracy": float("nan"), "lr": lr, "trainable": trainable}
            losses = []
            if evaluate:
                row["val_accuracy"] = accuracy = _accuracy(model, val_loader, accelerator)
                stopped = best.update(accuracy, step, accelerator.unwrap_model(model))
                bar.set_postfix(loss=f"{row['train_loss']:.3f}", val_acc=f"{accuracy:.3f}")
            history.append(row)
            if evaluate and callback is not None:
                callback(pd.DataFrame(history))
            if stopped:
                break
    bar.close()
    accelerator.unwrap_model(model).load_state_dict(best.state)
    accelerator.free_memory()
    return TrainResult(pd.DataFrame(history), best.accuracy, best.step, time.perf_counter() - start, stopped, step)


# --------------------------------------------------------------------------------------------
# Prediction
# --------------------------------------------------------------------------------------------


def predict_logits(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    data: datasets.Dataset | Sequence[str],
    max_length: int = 128,
    batch_size: int = 64,
    truncation: str = "head",
) -> np.ndarray:
    """Logits for each text (or each row of a Dataset's ``text`` column), in input order: (N, num_labels).

    Texts are batched shortest first, so batches carry little padding; the order is restored.
    """
    if isinstance(data, str):
        raise TypeError("predict_logits got one string; pass a list of texts (e.g. [text]) or a Dataset.")
    texts = list(data["text"] if isinstance(data, datasets.Dataset) else data)
    encoded = tokenize(datasets.Dataset.from_dict({"text": texts}), tokenizer, max_length, truncation)
    ids, masks = list(encoded["input_ids"]), list(encoded["attention_mask"])
    order = np.argsort([len(x) for x in ids], kind="stable")
    device = next(model.parameters()).device
    out = np.zeros((len(texts), model.config.num_labels), dtype=np.float32)
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            batch = tokenizer.pad([{"input_ids": ids[i], "attention_mask": masks[i]} for i in rows],
                                  return_tensors="pt")
            out[rows] = model(**{k: v.to(device) for k, v in batch.items()}).logits.float().cpu().numpy()
    model.train(was_training)
    return out


def evaluate_accuracy(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    dataset_split: datasets.Dataset,
    max_length: int = 128,
    batch_size: int = 64,
    truncation: str = "head",
) -> float:
    """Share of rows of ``dataset_split`` (columns text, label) whose predicted class is the label."""
    logits = predict_logits(model, tokenizer, dataset_split, max_length, batch_size, truncation)
    return float(np.mean(logits.argmax(axis=1) == np.asarray(dataset_split["label"])))


# --------------------------------------------------------------------------------------------
# Cached fine-tuning: the call later chapters use
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class FineTuned:
    """A fine-tuned model with its data, how it trained, and where it is cached."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    splits: datasets.DatasetDict
    result: TrainResult
    test_accuracy: float
    cache_dir: Path | None  # the cache entry; None when cache=False
    from_cache: bool


def _files_fingerprint(folder: Path) -> str:
    """sha256 over a model folder's own files (config, weights, tokenizer), not its manifest or README."""
    digest = hashlib.sha256()
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix in {".json", ".safetensors", ".txt", ".model"} and path.name != MANIFEST:
            digest.update(f"{path.name}:{file_sha256(path)};".encode())
    return digest.hexdigest()[:16]


def _model_fingerprint(name: str | Path) -> dict:
    """What identifies the starting weights: a hash of the files for local folders, else the hub id."""
    kind, location = resolve_model_source(str(name))
    if kind in {"embedded", "local"}:  # the files, not the name or path, decide what trains
        return {"source": kind, "files": _files_fingerprint(Path(location))}
    return {"source": kind, "name": location}


def _data_fingerprint(splits: datasets.DatasetDict) -> str:
    digest = hashlib.sha256()
    for name in sorted(splits):
        ds = splits[name]
        names = getattr(ds.features["label"], "names", None)
        digest.update(json.dumps([name, names, list(ds["text"]), list(ds["label"])]).encode())
    return digest.hexdigest()[:16]


def _load_splits(dataset: str | datasets.DatasetDict, seed: int) -> tuple[datasets.DatasetDict, dict]:
    if isinstance(dataset, datasets.DatasetDict):
        return dataset, {"name": "DatasetDict", "fingerprint": _data_fingerprint(dataset)}
    splits, _report = prepare_dataset(dataset, seed=seed)
    # The defaults of prepare_dataset are part of the data; the fingerprint catches any change.
    return splits, {"name": dataset, "seed": seed, "fingerprint": _data_fingerprint(splits)}


def _write_result(folder: Path, result: TrainResult, test_accuracy: float, config: TrainConfig) -> None:
    (folder / "history.json").write_text(result.history.to_json(orient="records"))
    summary = {"best_val_accuracy": result.best_val_accuracy, "best_step": result.best_step,
               "seconds": result.seconds, "stopped_early": result.stopped_early, "steps": result.steps,
               "test_accuracy": test_accuracy, "config": asdict(config), "learning_rate": config.lr}
    (folder / "result.json").write_text(json.dumps(summary, indent=1))


def _read_result(folder: Path) -> tuple[TrainResult, float]:
    summary = json.loads((folder / "result.json").read_text())
    history = pd.DataFrame(json.loads((folder / "history.json").read_text()))
    history["val_accuracy"] = history["val_accuracy"].astype(float)  # null → NaN
    result = TrainResult(history, summary["best_val_accuracy"], summary["best_step"], summary["seconds"],
                         summary["stopped_early"], summary["steps"])
    return result, summary["test_accuracy"]


def fine_tune(
    model: str | Path = DEFAULT_MODEL,
    dataset: str | datasets.DatasetDict = BBC_NEWS,
    config: TrainConfig = TrainConfig(),
    callback: Callable[[pd.DataFrame], None] | None = None,
    progress: bool = True,
    cache: bool = True,
    init_dir: str | Path | None = None,
) -> FineTuned:
    """Fine-tune ``model`` on ``dataset`` (prepared with ``prepare_dataset(seed=config.seed)``), cached.

    A second call with the same model files, data and config loads the cached model in seconds
    (``from_cache=True``; the callback then gets the stored history once). ``init_dir`` starts
    from other weights, e.g. ``domain_adapt()``'s folder. ``dataset`` may be a DatasetDict.
    """
    splits, data_parts = _load_splits(dataset, config.seed)
    release_freed_memory()  # deduplication leaves ~100 MB of freed heap behind; training needs it
    source = init_dir if init_dir is not None else model
    num_labels = len(splits["train"].features["label"].names)
    # Activation checkpointing trades memory for time and changes no number (tested), so it is not part of
    # the key: a model trained with it on is the same model, and either setting loads the other's entry.
    parts = {"model": _model_fingerprint(source), "data": data_parts,
             "config": replace(config, learning_rate=config.lr, activation_checkpointing=False),
             "task": "sequence-classification"}

    def train() -> tuple[PreTrainedModel, PreTrainedTokenizerBase, TrainResult, float]:
        seed_everything(config.seed)  # the new head's random initial weights are part of the run
        net, tokenizer = load_model(str(source), num_labels=num_labels)
        net.config.id2label = dict(enumerate(splits["train"].features["label"].names))
        net.config.label2id = {name: i for i, name in net.config.id2label.items()}
        result = train_classifier(net, tokenizer, splits, config, callback, progress)
        release_freed_memory()  # the optimizer's state and the activations: hand them back before the next run
        accuracy = evaluate_accuracy(net, tokenizer, splits["test"], config.max_length,
                                     truncation=config.truncation)
        return net, tokenizer, result, accuracy

    if not cache:
        net, tokenizer, result, accuracy = train()
        return FineTuned(net, tokenizer, splits, result, accuracy, cache_dir=None, from_cache=False)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # set by `accelerate launch` with several processes
        return _fine_tune_distributed(parts, splits, train)
    trained = []

    def build(folder: Path) -> None:
        trained.extend(train())
        save_model_dir(trained[0], trained[1], folder)
        _write_result(folder, trained[2], trained[3], config)

    entry = load_or_build("finetuned", parts, build)
    if trained:
        net, tokenizer, result, accuracy = trained
        return FineTuned(net, tokenizer, splits, result, accuracy, cache_dir=entry, from_cache=False)
    net, tokenizer = load_model_dir(entry)
    result, accuracy = _read_result(entry)
    if callback is not None:
        callback(result.history)
    return FineTuned(net.to(get_settings().device), tokenizer, splits, result, accuracy, entry, True)


def _fine_tune_distributed(parts: dict, splits, train) -> FineTuned:
    # Under `accelerate launch` every process must train together, so a lock held around training
    # would deadlock them: all train, then the main process alone writes the entry.
    state = PartialState()
    entry = [find("finetuned", parts) if state.is_main_process else None]
    broadcast_object_list(entry)
    if entry[0] is not None:
        net, tokenizer = load_model_dir(entry[0])
        result, accuracy = _read_result(entry[0])
        return FineTuned(net.to(state.device), tokenizer, splits, result, accuracy, entry[0], True)
    net, tokenizer, result, accuracy = train()
    config = parts["config"]
    if state.is_main_process:
        def save(folder: Path) -> None:
            save_model_dir(net, tokenizer, folder)
            _write_result(folder, result, accuracy, config)

        entry = [load_or_build("finetuned", parts, save)]
    state.wait_for_everyone()
    broadcast_object_list(entry)
    return FineTuned(net, tokenizer, splits, result, accuracy, entry[0], False)


def get_baseline(model: str = DEFAULT_MODEL, dataset: str = BBC_NEWS, progress: bool = True) -> FineTuned:
    """The fine-tuned baseline every later chapter starts from: ``fine_tune`` with the default config.

    Loads from the cache when it is there (~5 s), trains once when it is not (~3 min on 2 cores).
    """
    return fine_tune(model, dataset, TrainConfig(), progress=progress)


# --------------------------------------------------------------------------------------------
# Domain adaptation: a short masked-LM pass on the task's own texts
# --------------------------------------------------------------------------------------------


def domain_adapt(
    model_name: str = DEFAULT_MODEL,
    texts: Sequence[str] | None = None,
    *,
    steps: int = 30,  # ~45 s on 2 cores (batch 8 × 128 tokens): a taste, not a real adaptation
    mlm_probability: float = 0.15,
    learning_rate: float = 5e-5,
    batch_size: int = 8,
    max_length: int = 128,
    seed: int = 42,
    progress: bool = True,
) -> Path:
    """Continue masked-LM training on ``texts`` (default: BBC News train split); returns a model folder.

    The folder holds the encoder and tokenizer, so ``minikit.load_model(str(path), num_labels=5)``
    or ``fine_tune(init_dir=path)`` start from it; the MLM loss per step is in mlm_history.json.
    Surprise: the embedded all-MiniLM-L6-v2 ships without its masked-LM head, so that head starts
    from random weights, and the first steps mostly train the head while their gradients also
    shake the encoder. The pooler, which MLM models drop, is kept from the original weights.
    Only the masked positions are scored: the vocabulary projection at every position would
    take most of each step's time and memory.
    """
    if isinstance(texts, str):
        raise TypeError("domain_adapt got one string as texts; pass a list of texts (e.g. [text]).")
    if not _is_int(steps) or steps < 1:
        raise ValueError(f"steps={steps!r}: expected a whole number ≥ 1.")
    if not 0 < mlm_probability < 1:
        raise ValueError(f"mlm_probability={mlm_probability!r}: expected a fraction in (0, 1), usually 0.15.")
    if texts is None:
        texts = list(prepare_dataset(BBC_NEWS, seed=seed)[0]["train"]["text"])
        release_freed_memory()
    texts = [t for t in texts if t and t.strip()]
    if not texts:
        raise ValueError("domain_adapt got no non-empty texts. Fix: pass a list of strings from your domain.")
    parts = {"model": _model_fingerprint(model_name), "texts": hashlib.sha256(json.dumps(texts).encode()).hexdigest(),
             "steps": steps, "mlm_probability": mlm_probability, "learning_rate": learning_rate,
             "batch_size": batch_size, "max_length": max_length, "seed": seed}
    entry = load_or_build("domain-adapted", parts, lambda folder: _masked_lm_pass(
        model_name, texts, folder, steps, mlm_probability, learning_rate, batch_size, max_length, seed, progress))
    release_freed_memory()  # the masked-LM model and its optimizer: ~0.4 GB otherwise kept by the heap
    return entry


def _masked_lm_pass(model_name, texts, folder: Path, steps, mlm_probability, learning_rate, batch_size,
                    max_length, seed, progress) -> None:
    release_freed_memory()  # what earlier runs freed, handed back before this one's peak
    seed_everything(seed)
    kind, location = resolve_model_source(model_name)
    offline = kind != "hub"
    tokenizer = load_tokenizer(model_name)
    with quiet_transformers():
        mlm = AutoModelForMaskedLM.from_pretrained(location, local_files_only=offline, trust_remote_code=False)
    if mlm.supports_gradient_checkpointing:
        mlm.activation_checkpointing_enable()  # as in train_classifier: less memory, slower steps
        mlm.disable_input_require_grads()
    # Score only the masked positions (~15 %): the vocabulary projection over every position
    # would cost 8 × 128 × 30,522 logits per batch, most of the step's time and memory.
    keep = {}
    decoder = mlm.get_output_embeddings()
    hook = decoder.register_forward_pre_hook(lambda _module, args: (args[0][keep["mask"]], *args[1:]))
    ds = tokenize(datasets.Dataset.from_dict({"text": list(texts)}), tokenizer, max_length)
    collate = DataCollatorForLanguageModeling(tokenizer, mlm_probability=mlm_probability, seed=seed)
    loader = DataLoader(ds.select_columns(["input_ids", "attention_mask"]), batch_size=batch_size, shuffle=True,
                        collate_fn=collate, generator=torch.Generator().manual_seed(seed))
    optimizer = torch.optim.AdamW(mlm.parameters(), lr=learning_rate, weight_decay=0.01, fused=True)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(0.1 * steps), steps)
    accelerator = Accelerator(cpu=get_settings().device == "cpu")
    mlm, optimizer, loader, scheduler = accelerator.prepare(mlm, optimizer, loader, scheduler)
    losses = []
    mlm.train()
    with tqdm(total=steps, desc="masked-LM steps", disable=not progress) as bar:
        while len(losses) < steps:
            for batch in loader:
                labels = batch.pop("labels")
                keep["mask"] = labels != -100  # (B, T): the positions the collator masked
                logits = mlm(**batch).logits  # (N, V) for the N masked positions
                if logits.dim() == 3:  # a head that bypasses its decoder module (MobileBERT) scored all
                    logits = logits[keep["mask"]]
                loss = nn.functional.cross_entropy(logits, labels[keep["mask"]])
                accelerator.backward(loss)
                accelerator.clip_grad_norm_(mlm.parameters(), 1.0)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
                losses.append(loss.item())
                bar.update()
                bar.set_postfix(loss=f"{losses[-1]:.2f}")
                if len(losses) == steps:
                    break
    hook.remove()
    # The optimizer's state and the gradients (3× the weights) go before a second encoder is loaded.
    optimizer.zero_grad(set_to_none=True)
    mlm = accelerator.unwrap_model(mlm)
    del optimizer, scheduler, loader, logits, loss, batch
    accelerator.free_memory()
    release_freed_memory()
    with quiet_transformers():
        encoder = AutoModel.from_pretrained(location, local_files_only=offline, trust_remote_code=False)
    adapted = mlm.base_model.state_dict()
    missing, unexpected = encoder.load_state_dict(adapted, strict=False)
    if unexpected or len(missing) >= len(adapted):
        raise RuntimeError(f"The masked-LM encoder's weights do not fit {type(encoder).__name__}: "
                           f"unexpected {unexpected[:3]}, missing {missing[:3]}.")
    accelerator.free_memory()
    save_model_dir(encoder, tokenizer, folder)
    (folder / "mlm_history.json").write_text(json.dumps({"step": list(range(1, steps + 1)), "loss": losses}))
