"""The training loop every minikit model trains with: what decides a run, which parameters train, the steps.

``train_loop`` is the one loop behind ``training.train_classifier`` (chapter 3, and the students of
chapter 7) and ``multitask.train_multitask`` (chapter 3b): Accelerate, AdamW with a linear warm-up,
gradient clipping, freezing by stages (full, linear probe, gradual unfreezing), a history row every
``log_every`` steps, validation every ``eval_every`` steps, early stopping, and the best evaluation's
weights kept. The caller says how a step gets its loss and how validation is scored.
"""

from __future__ import annotations

import math
import time
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Callable, Iterator, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import get_linear_schedule_with_warmup

from minikit.errors import is_finite, is_int
from minikit.models import encoder_layers, head_parameters
from minikit.settings import get_settings

if TYPE_CHECKING:
    import pandas as pd
    from accelerate import Accelerator
    from transformers import PreTrainedModel

METHODS = ("full", "linear-probe", "gradual-unfreeze")
# One epoch on BBC News with minilm-l6 (bench/train_baseline.py --method ...): full 97.7 % test
# accuracy, gradual-unfreeze 97.4 %, linear-probe 89.4 % (on stored encoder outputs; its loss still
# falling). The head alone
# starts from random weights over frozen features, so it needs a ~100x larger step.
DEFAULT_LEARNING_RATE = {"full": 1e-4, "linear-probe": 1e-2, "gradual-unfreeze": 2e-4}
EVAL_BATCH = 32  # validation batches: larger ones are no faster on a CPU and cost peak memory


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
    # The small-data recipe: with a number here, ``resolved(rows)`` adds whole epochs until the run takes at
    # least this many optimizer steps (and validates at least 4 times). None: exactly ``epochs``.
    min_steps: int | None = None

    def __post_init__(self):
        def bad(name: str, expected: str) -> ValueError:
            return ValueError(f"TrainConfig({name}={getattr(self, name)!r}): expected {expected}.")

        if self.method not in METHODS:
            raise bad("method", f"one of {', '.join(map(repr, METHODS))}")
        if self.truncation not in {"head", "head+tail"}:
            raise bad("truncation", "'head' or 'head+tail'")
        for name in ("epochs", "batch_size", "eval_every", "log_every"):
            if not is_int(getattr(self, name)) or getattr(self, name) < 1:
                raise bad(name, "a whole number ≥ 1")
        for name in ("patience", "unfreeze_every", "min_steps"):
            value = getattr(self, name)
            if value is not None and (not is_int(value) or value < 1):
                raise bad(name, "None or a whole number ≥ 1")
        if not is_int(self.max_length) or self.max_length < 8:
            raise bad("max_length", "a whole number of tokens ≥ 8")
        if not is_int(self.seed) or self.seed < 0:
            raise bad("seed", "a whole number ≥ 0")
        if self.learning_rate is not None and not (is_finite(self.learning_rate) and 0 < self.learning_rate < 1):
            raise bad("learning_rate", "None (the method's default) or a number in (0, 1), e.g. 1e-4")
        if not (is_finite(self.train_fraction) and 0 < self.train_fraction <= 1):
            raise bad("train_fraction", "a fraction in (0, 1]")
        if not (is_finite(self.warmup_ratio) and 0 <= self.warmup_ratio < 1):
            raise bad("warmup_ratio", "a fraction in [0, 1)")
        if not (is_finite(self.weight_decay) and self.weight_decay >= 0):
            raise bad("weight_decay", "a number ≥ 0")
        if self.max_grad_norm is not None and not (is_finite(self.max_grad_norm) and self.max_grad_norm > 0):
            raise bad("max_grad_norm", "None or a number > 0")

    def resolved(self, train_rows: int) -> "TrainConfig":
        """This recipe for a train split of ``train_rows`` rows (after ``train_fraction``), with ``min_steps`` spent.

        With ``min_steps`` set, the epochs rise until the run takes that many optimizer steps, so a
        small dataset is not stopped after a handful (60 rows at batch 8 are 6 steps an epoch); the
        learning-rate schedule follows the longer run, and validation comes at least 4 times. The
        result has ``min_steps=None``: a recipe that needed no extra epoch resolves to the plain config
        (and so to its cache entry).
        """
        if self.min_steps is None:
            return self
        if not is_int(train_rows) or train_rows < 1:
            raise ValueError(f"train_rows={train_rows!r}: expected a whole number of rows ≥ 1.")
        per_epoch = math.ceil(train_rows / self.batch_size)
        epochs = max(self.epochs, math.ceil(self.min_steps / per_epoch))
        if epochs == self.epochs:
            return replace(self, min_steps=None)
        return replace(self, epochs=epochs, eval_every=min(self.eval_every, max(1, epochs * per_epoch // 4)),
                       min_steps=None)

    @property
    def lr(self) -> float:
        """The learning rate in force: ``learning_rate``, or the method's default when it is None."""
        return self.learning_rate if self.learning_rate is not None else DEFAULT_LEARNING_RATE[self.method]


@dataclass(frozen=True, eq=False)
class TrainResult:
    """What a training run did: its history and its best validation accuracy."""

    # One row per log_every steps: step, epoch, train_loss (mean since the previous row),
    # val_accuracy (NaN between evaluations), lr, trainable (parameters that were training);
    # a multi-task run adds train_loss/<task>, steps/<task> and val_accuracy/<task> (train_loop).
    history: pd.DataFrame
    best_val_accuracy: float
    best_step: int  # the weights of this step are the ones the model ends with
    seconds: float
    stopped_early: bool
    steps: int  # optimizer steps actually taken


# --------------------------------------------------------------------------------------------
# Which parameters train: head, encoder layers, freezing plans
# --------------------------------------------------------------------------------------------


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
# The loop
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


def loader_accuracy(model: nn.Module, loader: DataLoader, accelerator: Accelerator, *head: str) -> float:
    """Share of ``loader``'s rows whose predicted class is the label, gathered over processes.

    ``head`` goes before the batch in the model's call: a multi-task model's task name.
    """
    model.eval()
    correct = total = 0
    with torch.inference_mode():
        for batch in loader:
            predictions = model(*head, **batch).logits.argmax(-1)
            predictions, labels = accelerator.gather_for_metrics((predictions, batch["labels"]))
            correct += int((predictions == labels).sum())
            total += labels.numel()
    model.train()
    return correct / total


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


@contextmanager
def training_session(model: nn.Module, config: TrainConfig, encoder: nn.Module | None = None) -> Iterator[None]:
    """While it is open, ``model`` may train; on leaving (also on Ctrl-C) it is put back as it was, in eval mode.

    Turns on activation checkpointing in ``encoder`` (default: the model) when ``config`` asks for it
    and the method trains the encoder, and off again on leaving; every parameter's ``requires_grad``
    is restored too.
    """
    encoder = model if encoder is None else encoder
    was_trainable = [p.requires_grad for p in model.parameters()]
    checkpointing = (config.activation_checkpointing and config.method != "linear-probe"
                     and getattr(encoder, "supports_gradient_checkpointing", False)
                     and not getattr(encoder, "is_activation_checkpointing", True))
    if checkpointing:
        encoder.activation_checkpointing_enable()  # non-reentrant, transformers' default
        # It also hooks the embeddings to make their output require grad, which only re-entrant
        # checkpointing needs; left on, it would make frozen layers backpropagate for nothing.
        encoder.disable_input_require_grads()
    try:
        yield
    finally:
        if checkpointing:
            encoder.activation_checkpointing_disable()
        for p, flag in zip(model.parameters(), was_trainable):
            p.requires_grad_(flag)
        model.eval()


def _cycle(loader: DataLoader) -> Iterator[dict]:
    """Batches forever; each pass over the loader reshuffles it."""
    while True:
        yield from loader


def train_loop(
    model: nn.Module,
    train_loaders: Sequence[DataLoader],
    val_loaders: Sequence[DataLoader],
    next_loss: Callable[[nn.Module, list[Iterator[dict]]], tuple[torch.Tensor, dict[str, torch.Tensor]]],
    evaluate: Callable[[nn.Module, list[DataLoader], Accelerator], tuple[float, dict[str, float]]],
    config: TrainConfig,
    parts: Sequence[str] = (),
    callback: Callable[[pd.DataFrame], None] | None = None,
    progress: bool = True,
    description: str = "training",
    setup: Callable[[nn.Module, list[DataLoader], list[DataLoader], Accelerator], None] | None = None,
) -> TrainResult:
    """The training loop of ``train_classifier`` and ``train_multitask``: trains ``model`` in place.

    Accelerate prepares the model, the loaders, an AdamW optimizer and a linear warm-up schedule;
    ``config.method`` decides which parameters train, stage by stage. Each step takes the loss
    ``next_loss(model, batches)`` returns (``batches``: each train loader's batches, endless) and
    steps on it; its second item is each part's own loss (a multi-task model's tasks; {} for one).
    Every ``config.eval_every`` steps and at the end, ``evaluate(model, val_loaders, accelerator)``
    gives the validation accuracy that picks the weights the model ends with, and each part's.
    Every ``config.log_every`` steps (and at each evaluation) the history gets a row: step, epoch,
    train_loss (mean since the last row), val_accuracy (NaN between evaluations), lr, trainable,
    then for each of ``parts`` train_loss/<part>, steps/<part> and val_accuracy/<part>; then
    ``callback(history)`` runs. An epoch is every train loader's batches once. ``setup`` sees the
    prepared model and loaders before the first step. The caller seeds, and restores the model
    afterwards (``training_session``).
    """
    import pandas as pd
    from accelerate import Accelerator, DistributedDataParallelKwargs
    stages = _stages(model, config.method)
    params = [p for group in stages for p in group]
    model.requires_grad_(False)  # whatever no stage names (the linear probe's encoder) stays frozen
    _apply_stage(stages, len(stages) - 1)  # DDP registers only what is trainable when it wraps the model
    total = config.epochs * sum(len(loader) for loader in train_loaders)
    optimizer = _optimizer(params, config)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(config.warmup_ratio * total), total)
    # Frozen stages, and the heads of the parts a step does not train, get no gradient: DDP must be told.
    accelerator = Accelerator(
        cpu=get_settings().device == "cpu",
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=len(stages) > 1 or len(parts) > 0)],
    )
    model, optimizer, scheduler, *loaders = accelerator.prepare(model, optimizer, scheduler, *train_loaders,
                                                                *val_loaders)
    train_loaders, val_loaders = loaders[:len(train_loaders)], loaders[len(train_loaders):]
    steps_per_epoch = sum(len(loader) for loader in train_loaders)  # per process: the scheduler counts all processes'
    total = steps_per_epoch * config.epochs
    unfreeze_every = config.unfreeze_every or max(1, math.ceil(total / len(stages)))
    batches = [_cycle(loader) for loader in train_loaders]

    history, losses, part_losses, best = [], [], {p: [] for p in parts}, _BestWeights(config.patience)
    step, stage, trainable, stopped = 0, -1, 0, False
    start = time.perf_counter()
    bar = tqdm(total=total, desc=description, disable=not (progress and accelerator.is_local_main_process))
    if setup is not None:
        setup(model, train_loaders, val_loaders, accelerator)
    model.train()
    while step < total and not stopped:
        if min(step // unfreeze_every, len(stages) - 1) != stage:
            stage = min(step // unfreeze_every, len(stages) - 1)
            trainable = _apply_stage(stages, stage)
        loss, own_losses = next_loss(model, batches)
        lr = _optimizer_step(accelerator, model, loss, optimizer, scheduler, config.max_grad_norm)
        step += 1
        losses.append(loss.item())
        for part, part_loss in own_losses.items():
            part_losses[part].append(part_loss.item())
        bar.update()
        due = step % config.eval_every == 0 or step == total
        if not (due or step % config.log_every == 0):
            continue
        row = {"step": step, "epoch": step / steps_per_epoch, "train_loss": float(np.mean(losses)),
               "val_accuracy": float("nan"), "lr": lr, "trainable": trainable}
        for part in parts:
            row[f"train_loss/{part}"] = float(np.mean(part_losses[part])) if part_losses[part] else float("nan")
            row[f"steps/{part}"] = len(part_losses[part])
            row[f"val_accuracy/{part}"] = float("nan")
        losses, part_losses = [], {p: [] for p in parts}
        if due:
            accuracy, per_part = evaluate(model, val_loaders, accelerator)
            for part, part_accuracy in per_part.items():
                row[f"val_accuracy/{part}"] = part_accuracy
            row["val_accuracy"] = accuracy
            stopped = best.update(accuracy, step, accelerator.unwrap_model(model))
            bar.set_postfix(loss=f"{row['train_loss']:.3f}", val_acc=f"{accuracy:.3f}")
        history.append(row)
        if callback is not None:  # every row, so a live chart follows the loss between evaluations
            callback(pd.DataFrame(history))
    bar.close()
    accelerator.unwrap_model(model).load_state_dict(best.state)
    accelerator.free_memory()
    return TrainResult(pd.DataFrame(history), best.accuracy, best.step, time.perf_counter() - start, stopped, step)
