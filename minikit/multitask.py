"""Chapter 3b — multi-task fine-tuning: one shared encoder, one classification head per task.

Transfer learning (chapter 3) trains one head on one task. Multi-task learning trains one
encoder for several tasks at once (``minikit.tasks``: what a task is, and the chapter's tasks):
each task has its own small head over the same mean-pooled encoder output, each step draws one
task (``TaskSampler``: proportional, round-robin or temperature-scaled) and takes a step on
``weight × loss`` of one of its batches. The loop is ``train_classifier``'s (``minikit.loop``:
Accelerate, warm-up, clipping, early stop, progress bar, live-chart callback, the best
evaluation's weights kept); ``get_multitask`` caches the trained model as safetensors, so a
fresh kernel reloads it instead of training again. ``multitask_runs`` and its rows compare runs.
"""

from __future__ import annotations

import inspect
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Mapping, Sequence

import datasets
import numpy as np
import pandas as pd
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.utils.data import DataLoader
from transformers import (
    AutoModel,
    AutoTokenizer,
    DataCollatorWithPadding,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)
from transformers.modeling_outputs import SequenceClassifierOutput

from minikit import cache, metrics
from minikit.cache import load_or_build, pickle_files, save_model_dir, texts_sha256
from minikit.data import stratified_subset
from minikit.errors import is_finite, is_int
from minikit.loop import EVAL_BATCH, TrainConfig, TrainResult, loader_accuracy, train_loop, training_session
from minikit.models import DEFAULT_MODEL, load_tokenizer, resolve_model_source
from minikit.settings import get_settings, quiet_transformers, seed_everything
from minikit.system import release_freed_memory
from minikit.tasks import DEFAULT_TEMPERATURE, Task, TaskSampler, check_tasks, default_tasks
from minikit.training import FineTuned, model_fingerprint, predict_logits, read_result, write_result

_FORMAT = 1  # multitask.json layout


# --------------------------------------------------------------------------------------------
# The model: a shared encoder and one head per task
# --------------------------------------------------------------------------------------------


def _load_encoder(name: str | Path) -> PreTrainedModel:
    """The bare encoder (``AutoModel``: no task head) of a catalog name, local folder or hub id."""
    kind, location = resolve_model_source(str(name))
    with quiet_transformers():
        return AutoModel.from_pretrained(location, local_files_only=kind != "hub", trust_remote_code=False)


def _dropout_of(config: PretrainedConfig) -> float:
    for name in ("classifier_dropout", "seq_classif_dropout", "hidden_dropout_prob", "dropout"):
        value = getattr(config, name, None)
        if value is not None:
            return float(value)
    return 0.1


class MultiTaskModel(nn.Module):
    """A shared encoder (any ``AutoModel``: BERT, DistilBERT, MobileBERT, ...) and one linear head per task.

    ``encoder`` is a model name or folder (loaded with ``AutoModel``), a config (random weights),
    or a model (a ``...ForSequenceClassification`` gives its ``base_model``). ``heads`` is a list
    of Tasks or a ``{name: num_labels}`` mapping. Each head reads the mean of the encoder's last
    hidden states over the real tokens: every architecture has those, while a pooler (BERT's
    [CLS] projection) is missing from DistilBERT and, in sentence-transformers models such as
    all-MiniLM-L6-v2, was never trained.
    """

    def __init__(self, encoder: str | Path | PretrainedConfig | PreTrainedModel,
                 heads: Sequence[Task] | Mapping[str, int], dropout: float | None = None,
                 label_names: Mapping[str, Sequence[str]] | None = None):
        super().__init__()
        if isinstance(encoder, (str, Path)):
            encoder = _load_encoder(encoder)
        elif isinstance(encoder, PretrainedConfig):
            with quiet_transformers():
                encoder = AutoModel.from_config(encoder)
        elif isinstance(encoder, PreTrainedModel):
            encoder = encoder.base_model
        else:
            raise TypeError(f"encoder is a {type(encoder).__name__}; expected a model name or folder, a transformers "
                            "config, or a transformers model.")
        if isinstance(heads, Mapping):
            sizes = {str(k): v for k, v in heads.items()}
            names = {k: list(label_names[k]) if label_names and k in label_names else [str(i) for i in range(v)]
                     for k, v in sizes.items()}
        else:
            tasks = check_tasks(heads)
            sizes = {t.name: t.num_labels for t in tasks}
            names = {t.name: t.label_names for t in tasks}
        if not sizes:
            raise ValueError("heads is empty: a multi-task model needs at least one head. Fix: pass the tasks.")
        for name, n in sizes.items():
            if not name or "." in name or not (is_int(n) and n >= 2):
                raise ValueError(f"Head {name!r} with {n!r} labels: expected a name without dots and a whole number "
                                 "of labels ≥ 2.")
        self.encoder = encoder
        self.dropout_p = _dropout_of(encoder.config) if dropout is None else float(dropout)
        self.dropout = nn.Dropout(self.dropout_p)
        width = encoder.config.hidden_size  # DistilBERT's dim, MobileBERT's residual stream: what the encoder outputs
        std = getattr(encoder.config, "initializer_range", 0.02)
        self.heads = nn.ModuleDict({name: nn.Linear(width, n) for name, n in sizes.items()})
        for head in self.heads.values():  # as transformers initialises its classification heads
            nn.init.normal_(head.weight, std=std)
            nn.init.zeros_(head.bias)
        self.label_names = names
        self._token_types = "token_type_ids" in inspect.signature(encoder.forward).parameters

    # The loop's freezing stages (minikit.loop) and models.head_parameters / encoder_layers read these.
    config = property(lambda self: self.encoder.config)
    base_model = property(lambda self: self.encoder)

    @property
    def task_names(self) -> list[str]:
        return list(self.heads)

    def num_labels(self, task: str) -> int:
        return self.heads[task].out_features

    def pooled(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
               token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """The encoder's last hidden states averaged over the real (unmasked) tokens: (B, hidden)."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        kwargs = {"token_type_ids": token_type_ids} if self._token_types and token_type_ids is not None else {}
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask, **kwargs).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)

    def forward(self, task: str, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, labels: torch.Tensor | None = None
                ) -> SequenceClassifierOutput:
        """Logits of ``task``'s head (B, num_labels); with ``labels``, also their mean cross-entropy as ``loss``."""
        if task not in self.heads:
            raise ValueError(f"task={task!r}: this model has heads {self.task_names}. Fix: pass one of those names.")
        logits = self.heads[task](self.dropout(self.pooled(input_ids, attention_mask, token_type_ids)))
        loss = nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits)


def weighted_loss(losses: Mapping[str, torch.Tensor], weights: Mapping[str, float]) -> torch.Tensor:
    """Σ_t w_t · L_t over the tasks in ``losses``: not divided by Σ w_t.

    Not normalized on purpose: ``train_multitask`` steps on one task at a time, and dividing
    w_t·L_t by w_t would cancel the weight. A weight is then a per-task learning-rate multiplier;
    with several tasks in one step, scaling all weights by c scales the step by c too.
    """
    if not losses:
        raise ValueError("weighted_loss got no losses; expected {task name: loss tensor}, at least one.")
    missing = [t for t in losses if t not in weights]
    if missing:
        raise ValueError(f"weighted_loss has no weight for task(s) {missing} (weights: {dict(weights)}). "
                         "Fix: give every task in losses a weight.")
    for task in losses:
        if not (is_finite(weights[task]) and weights[task] > 0):
            raise ValueError(f"Task {task!r} has weight={weights[task]!r}: expected a number > 0. "
                             "Fix: pass weight=1.0, or leave the task out.")
    return torch.stack([weights[t] * torch.as_tensor(loss) for t, loss in losses.items()]).sum()


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------


def _as_sampler(sampler: str | TaskSampler, temperature: float, sizes: dict[str, int], seed: int) -> TaskSampler:
    if isinstance(sampler, TaskSampler):
        if set(sampler.sizes) != set(sizes):
            raise ValueError(f"The sampler draws tasks {list(sampler.sizes)}, the tasks are {list(sizes)}. "
                             "Fix: pass the strategy's name instead (e.g. sampler='temperature').")
        return sampler
    return TaskSampler(sizes, sampler, temperature, seed)


def train_multitask(
    model: MultiTaskModel | str | Path | PretrainedConfig | PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase | None,
    tasks: Sequence[Task],
    config: TrainConfig = TrainConfig(),
    sampler: str | TaskSampler = "proportional",
    temperature: float = DEFAULT_TEMPERATURE,
    callback: Callable[[pd.DataFrame], None] | None = None,
    progress: bool = True,
) -> tuple[MultiTaskModel, TrainResult]:
    """Train a multi-task model on ``tasks``; returns (model, TrainResult). Not cached: ``get_multitask`` is.

    ``model`` is trained in place if it is a MultiTaskModel; anything else is its encoder (a name
    loads with its tokenizer when ``tokenizer`` is None) and gets fresh heads, seeded by
    ``config.seed``. Each step draws a task from the sampler and steps on weight × its loss. An
    epoch is as many steps as all tasks' train batches together; ``config.train_fraction`` thins
    every task (``Task.with_fraction`` thins one). Validation accuracy is each task's, and their
    weight-weighted mean, which picks the checkpoint the model ends with. History columns are
    ``train_classifier``'s (so the same live chart works) plus ``train_loss/<task>``,
    ``val_accuracy/<task>`` and ``steps/<task>`` (steps spent on it since the previous row).
    ``callback`` gets the history after every logged row (every ``config.log_every`` steps), so a
    live chart follows the loss even when validation runs only at the end.
    """
    tasks = check_tasks(tasks)
    if not isinstance(model, MultiTaskModel):
        if tokenizer is None and isinstance(model, (str, Path)):
            tokenizer = load_tokenizer(str(model))
        seed_everything(config.seed)  # the heads' initial weights are part of the run
        model = MultiTaskModel(model, tasks)
    if tokenizer is None:
        raise ValueError("tokenizer=None: pass the encoder's tokenizer (only a model name can load its own).")
    for task in tasks:
        if task.name not in model.heads:
            raise ValueError(f"The model has no head {task.name!r} (heads: {model.task_names}). "
                             "Fix: build it with MultiTaskModel(encoder, tasks) from these tasks.")
        if model.num_labels(task.name) != task.num_labels:
            raise ValueError(f"Head {task.name!r} has {model.num_labels(task.name)} outputs, the task "
                             f"{task.num_labels} classes. Fix: build the model from these tasks.")
    sizes = {t.name: len(stratified_subset(t.splits["train"], config.train_fraction, config.seed, t.label_column))
             for t in tasks}
    sampler = _as_sampler(sampler, temperature, sizes, config.seed)
    seed_everything(config.seed)
    with training_session(model, config, encoder=model.encoder):  # checkpointing: ~300 MB less, ~35 % slower steps
        train_loaders, val_loaders = _dataloaders(tasks, tokenizer, config)
        names, weights, draws = [t.name for t in tasks], {t.name: float(t.weight) for t in tasks}, iter(sampler)

        def next_loss(model, batches):
            task = next(draws)
            out = model(task, **next(batches[names.index(task)]))
            return weighted_loss({task: out.loss}, weights), {task: out.loss}

        def evaluate(model, val_loaders, accelerator):
            per_task = {name: loader_accuracy(model, loader, accelerator, name)
                        for name, loader in zip(names, val_loaders)}
            return sum(weights[n] * a for n, a in per_task.items()) / sum(weights.values()), per_task

        result = train_loop(model, train_loaders, val_loaders, next_loss, evaluate, config, parts=names,
                            callback=callback, progress=progress,
                            description=f"multi-task fine-tuning ({sampler.strategy})")
    return model, result


def _dataloaders(tasks: list[Task], tokenizer, config: TrainConfig) -> tuple[list[DataLoader], list[DataLoader]]:
    """Each task's train loader (thinned by ``config.train_fraction``, seeded apart) and validation loader."""
    collate = DataCollatorWithPadding(tokenizer)
    train_loaders, val_loaders = [], []
    for i, task in enumerate(tasks):
        train = stratified_subset(task.splits["train"], config.train_fraction, config.seed, task.label_column)
        train = replace(task, splits=datasets.DatasetDict(task.splits, train=train)).encode(
            "train", tokenizer, config.max_length, config.truncation)
        val = task.encode("validation", tokenizer, config.max_length, config.truncation)
        val = val.select(np.argsort([len(x) for x in val["input_ids"]], kind="stable"))  # less padding
        generator = torch.Generator().manual_seed(config.seed + i)
        train_loaders.append(DataLoader(train, batch_size=config.batch_size, shuffle=True, collate_fn=collate,
                                        generator=generator))
        val_loaders.append(DataLoader(val, batch_size=EVAL_BATCH, collate_fn=collate))
    return train_loaders, val_loaders


# --------------------------------------------------------------------------------------------
# Prediction and evaluation
# --------------------------------------------------------------------------------------------


def predict_task(model: MultiTaskModel, tokenizer: PreTrainedTokenizerBase, task: Task, split: str = "test",
                 max_length: int = 128, truncation: str = "head", batch_size: int = 64) -> np.ndarray:
    """``task``'s head's logits for each row of ``task.splits[split]``, in row order: (N, num_labels).

    Rows are batched shortest first, so batches carry little padding; the order is restored.
    """
    if split not in task.splits:
        raise ValueError(f"Task {task.name!r} has no {split!r} split (splits: {list(task.splits)}).")
    encoded = task.encode(split, tokenizer, max_length, truncation).remove_columns("labels")
    columns = encoded.column_names
    rows = [dict(zip(columns, values)) for values in zip(*(encoded[c] for c in columns))]
    order = np.argsort([len(r["input_ids"]) for r in rows], kind="stable")
    device = next(model.parameters()).device
    out = np.zeros((len(rows), model.num_labels(task.name)), dtype=np.float32)
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            batch = tokenizer.pad([rows[i] for i in chunk], return_tensors="pt")
            out[chunk] = model(task.name, **{k: v.to(device) for k, v in batch.items()}).logits.float().cpu().numpy()
    model.train(was_training)
    return out


def evaluate_multitask(model: MultiTaskModel, tokenizer: PreTrainedTokenizerBase, task: Task, split: str = "test",
                       max_length: int = 128, truncation: str = "head") -> dict[str, float]:
    """{"accuracy", "macro_f1"} of ``task``'s head on ``task.splits[split]`` (``minikit.metrics``' definitions)."""
    predicted = predict_task(model, tokenizer, task, split, max_length, truncation).argmax(axis=1)
    truth = np.asarray(task.splits[split][task.label_column])
    return {"accuracy": metrics.accuracy(truth, predicted),
            "macro_f1": metrics.macro_f1(truth, predicted, num_labels=task.num_labels)}


def evaluate_tasks(model: MultiTaskModel, tokenizer: PreTrainedTokenizerBase, tasks: Sequence[Task],
                   splits: Sequence[str] = ("test",), max_length: int = 128, truncation: str = "head") -> pd.DataFrame:
    """One row per task and split: task, split, n, accuracy, macro_f1."""
    rows = [{"task": t.name, "split": s, "n": len(t.splits[s]), **evaluate_multitask(model, tokenizer, t, s,
                                                                                    max_length, truncation)}
            for t in check_tasks(tasks) for s in splits if s in t.splits]
    return pd.DataFrame(rows, columns=["task", "split", "n", "accuracy", "macro_f1"])


# --------------------------------------------------------------------------------------------
# Saving and loading (safetensors only)
# --------------------------------------------------------------------------------------------


def save_multitask(model: MultiTaskModel, folder: str | Path,
                   tokenizer: PreTrainedTokenizerBase | None = None) -> Path:
    """Write ``encoder/`` (``save_model_dir``: config, model.safetensors, the tokenizer if given),
    ``heads.safetensors`` and ``multitask.json`` (head names, label names, dropout); returns the folder."""
    folder = Path(folder)
    save_model_dir(model.encoder, tokenizer, folder / "encoder")
    state = {k: v.detach().cpu().contiguous() for k, v in model.heads.state_dict().items()}
    save_file(state, str(folder / "heads.safetensors"))
    spec = {"format": _FORMAT, "pooling": "mean", "dropout": model.dropout_p,
            "heads": {name: model.num_labels(name) for name in model.task_names}, "labels": model.label_names}
    (folder / "multitask.json").write_text(json.dumps(spec, indent=1))
    return folder


def load_multitask(folder: str | Path) -> tuple[MultiTaskModel, PreTrainedTokenizerBase | None]:
    """(model in eval mode, tokenizer or None) saved by ``save_multitask``: local safetensors, no remote code."""
    folder = Path(folder)
    encoder_dir = folder / "encoder"
    if not (folder / "multitask.json").is_file() or not (encoder_dir / "config.json").is_file():
        raise FileNotFoundError(f"{folder} has no multitask.json or encoder/config.json. "
                                "Fix: pass a folder written by save_multitask.")
    pickles = pickle_files(encoder_dir)
    if pickles:
        raise ValueError(f"{encoder_dir} holds pickle weights {pickles}; minikit loads safetensors only, because "
                         "unpickling can run arbitrary code. Fix: re-save the model with save_multitask.")
    spec = json.loads((folder / "multitask.json").read_text())
    with quiet_transformers():
        encoder = AutoModel.from_pretrained(encoder_dir, local_files_only=True, trust_remote_code=False,
                                            use_safetensors=True)
        has_tokenizer = (encoder_dir / "tokenizer_config.json").is_file()
        tokenizer = AutoTokenizer.from_pretrained(encoder_dir, local_files_only=True,
                                                  trust_remote_code=False) if has_tokenizer else None
    model = MultiTaskModel(encoder, spec["heads"], dropout=spec["dropout"], label_names=spec["labels"])
    model.heads.load_state_dict(load_file(str(folder / "heads.safetensors")))
    return model.eval(), tokenizer


# --------------------------------------------------------------------------------------------
# Cached multi-task training: what the notebook calls
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class MultiTaskRun:
    """A trained multi-task model, its tasks, how it trained, its scores, and where it is cached."""

    model: MultiTaskModel
    tokenizer: PreTrainedTokenizerBase
    tasks: list[Task]
    result: TrainResult
    metrics: pd.DataFrame  # evaluate_tasks on each task's test split (validation if it has no test split)
    sampler: TaskSampler
    cache_dir: Path | None  # None when cache=False
    from_cache: bool
    config: TrainConfig = TrainConfig()  # what it trained with

    def score(self, task: str, split: str = "test", metric: str = "accuracy") -> float:
        """One number from ``metrics``, e.g. run.score("topic") for the topic test accuracy."""
        rows = self.metrics[(self.metrics["task"] == task) & (self.metrics["split"] == split)]
        if rows.empty:
            raise ValueError(f"No {split!r} score for task {task!r} (tasks: {sorted(set(self.metrics['task']))}).")
        return float(rows[metric].iloc[0])


def get_multitask(
    model: str | Path = DEFAULT_MODEL,
    tasks: Sequence[Task] | None = None,
    config: TrainConfig = TrainConfig(),
    sampler: str = "proportional",
    temperature: float = DEFAULT_TEMPERATURE,
    callback: Callable[[pd.DataFrame], None] | None = None,
    progress: bool = True,
    cache: bool = True,
) -> MultiTaskRun:
    """Train (or reload) a multi-task model of ``model``'s encoder on ``tasks`` (default: ``default_tasks``).

    The cache key is the starting weights (file hash for local folders, hub id otherwise), each
    task's name, data fingerprint, columns and weight, the sampler and the config (its seed
    included): a second call with the same inputs loads the entry in seconds (``from_cache=True``;
    the callback then gets the stored history once). Under ``accelerate launch`` with several
    processes, call ``train_multitask`` instead: this function's lock would make them wait on
    each other.
    """
    tasks = check_tasks(default_tasks(config.seed) if tasks is None else tasks)
    sizes = {t.name: len(stratified_subset(t.splits["train"], config.train_fraction, config.seed, t.label_column))
             for t in tasks}
    task_sampler = TaskSampler(sizes, sampler, temperature, config.seed)  # bad arguments fail before any work
    # Activation checkpointing changes no number (tested), so it is not part of the key, as for fine_tune:
    # `minikit build` trains with it on (less memory) and the notebook, with it off, loads that entry.
    parts = {"model": model_fingerprint(model), "tasks": [t.key() for t in tasks], "sampler": task_sampler.spec(),
             "config": replace(config, learning_rate=config.lr, activation_checkpointing=False), "task": "multi-task"}

    def train() -> tuple[MultiTaskModel, PreTrainedTokenizerBase, TrainResult, pd.DataFrame]:
        release_freed_memory()  # start from a trimmed heap: what the notebook freed before is not held twice
        tokenizer = load_tokenizer(str(model))
        net, result = train_multitask(str(model), tokenizer, tasks, config, task_sampler, callback=callback,
                                      progress=progress)
        release_freed_memory()
        # The test split only (validation where a task has none): the loop already scored validation, and
        # each pass over both tasks' splits costs ~10 s of a notebook's cold run.
        scores = pd.concat([evaluate_tasks(net, tokenizer, [t], ("test" if "test" in t.splits else "validation",),
                                           config.max_length, config.truncation) for t in tasks], ignore_index=True)
        return net, tokenizer, result, scores

    if not cache:
        net, tokenizer, result, scores = train()
        return MultiTaskRun(net, tokenizer, tasks, result, scores, task_sampler, None, False, config)
    trained = []

    def build(folder: Path) -> None:
        trained.extend(train())
        net, tokenizer, result, scores = trained
        save_multitask(net, folder, tokenizer)
        (folder / "tasks.json").write_text(json.dumps({"train_rows": sizes, "steps": _task_steps(result, tasks)}))
        test = scores[scores["split"] == "test"]["accuracy"]
        write_result(folder, result, float(test.mean()) if len(test) else float("nan"), config)
        # json, not DataFrame.to_json: that rounds to 10 digits, and a reload must give the same numbers
        (folder / "metrics.json").write_text(json.dumps(scores.to_dict(orient="records")))

    entry = load_or_build("multitask", parts, build)
    if trained:
        net, tokenizer, result, scores = trained
        return MultiTaskRun(net, tokenizer, tasks, result, scores, task_sampler, entry, False, config)
    net, tokenizer = load_multitask(entry)
    result, _mean_test = read_result(entry)
    for column in result.history.columns:
        if column.startswith(("val_accuracy", "train_loss/")):
            result.history[column] = result.history[column].astype(float)  # JSON null → NaN
    scores = pd.DataFrame(json.loads((entry / "metrics.json").read_text()),
                          columns=["task", "split", "n", "accuracy", "macro_f1"])
    if callback is not None:
        callback(result.history)
    return MultiTaskRun(net.to(get_settings().device), tokenizer, tasks, result, scores, task_sampler, entry, True,
                        config)


# --------------------------------------------------------------------------------------------
# Comparing runs: what chapter 3b's table, chart and explorer read
# --------------------------------------------------------------------------------------------

RUN_COLUMNS = ["run", "kind", "share", "sampler", "weights", "epochs", "steps", "main_steps", "tokens", "accuracy",
               "macro_f1", "aux_accuracy", "train_s"]


def _task_steps(result: TrainResult, tasks: Sequence[Task]) -> dict[str, int]:
    """Optimizer steps each task got, from the history's ``steps/<task>`` columns."""
    history = result.history
    return {t.name: int(history[f"steps/{t.name}"].sum()) if f"steps/{t.name}" in history else 0 for t in tasks}


def _share_label(share: float) -> str:
    return f"{share:.0%}" if share >= 0.095 else f"{share:.1%}"


def _config_of(folder: Path | None) -> TrainConfig | None:
    """The TrainConfig kept in a training run's cache entry (result.json), or None without one."""
    if folder is None or not (folder / "result.json").is_file():
        return None
    config = json.loads((folder / "result.json").read_text())["config"]
    return TrainConfig(**{k: v for k, v in config.items() if k in TrainConfig.__dataclass_fields__})


def single_task_row(run: FineTuned, task: Task, full_rows: int | None = None, name: str | None = None,
                    split: str = "test", config: TrainConfig | None = None) -> dict:
    """One row of the comparison table for a single-task classifier (``fine_tune``/``get_baseline``).

    Scored on ``task``'s ``split`` with the same metrics as ``evaluate_multitask``, so the rows
    compare. ``full_rows`` is the task's full train size; the row's ``share`` is the rows the run
    trained on over it. ``config`` is the run's TrainConfig, read from its cache entry if not given.
    """
    if split not in task.splits:
        raise ValueError(f"Task {task.name!r} has no {split!r} split (splits: {list(task.splits)}).")
    config = config or _config_of(run.cache_dir) or TrainConfig()
    data = task.splits[split]

    def predict() -> np.ndarray:
        logits = predict_logits(run.model, run.tokenizer, data, config.max_length, truncation=config.truncation)
        return logits.argmax(axis=1)

    if run.cache_dir is None:
        predicted = predict()
    else:  # a cached model's predictions are cached beside it: a warm notebook does not predict again (~7 s each)
        parts = {"model": run.cache_dir.name, "texts": texts_sha256([list(data[c]) for c in task.text_columns]),
                 "max_length": config.max_length, "truncation": config.truncation}

        def build(folder: Path) -> None:
            np.save(folder / "predicted.npy", predict(), allow_pickle=False)

        predicted = np.load(load_or_build("predictions", parts, build) / "predicted.npy", allow_pickle=False)
    truth = np.asarray(data[task.label_column])
    rows = len(stratified_subset(run.splits["train"], config.train_fraction, config.seed))
    share = rows / full_rows if full_rows else config.train_fraction
    steps = int(run.result.steps)
    return {"run": name or (f"single-task · {_share_label(share)} {task.name} labels · {config.epochs} "
                            f"epoch{'s' if config.epochs != 1 else ''} · {steps} steps"),
            "kind": "single-task", "share": share, "sampler": "", "weights": "", "epochs": int(config.epochs),
            "steps": steps, "main_steps": steps, "tokens": rows * config.max_length * config.epochs,
            "accuracy": metrics.accuracy(truth, predicted),
            "macro_f1": metrics.macro_f1(truth, predicted, num_labels=task.num_labels),
            "aux_accuracy": float("nan"), "train_s": float(run.result.seconds)}


def multitask_row(run: MultiTaskRun, main: str = "topic", full_rows: int | None = None, split: str = "test") -> dict:
    """One row of the comparison table for a multi-task run: the ``main`` task's scores, the others' mean accuracy."""
    names = [t.name for t in run.tasks]
    if main not in names:
        raise ValueError(f"main={main!r} is not one of the run's tasks {names}.")
    config = run.config
    rows = {t.name: len(stratified_subset(t.splits["train"], config.train_fraction, config.seed, t.label_column))
            for t in run.tasks}
    lengths = {t.name: t.tokens(config.max_length) for t in run.tasks}
    return _row(rows, lengths, _task_steps(run.result, run.tasks), {t.name: t for t in run.tasks},
                run.sampler.spec(), config.epochs, int(run.result.steps), run.metrics, main, full_rows, split,
                run.result.seconds)


def _row(rows: Mapping[str, int], lengths: Mapping[str, int], steps: Mapping[str, int], tasks: Mapping,
         sampler: Mapping, epochs: int,
         total_steps: int, scores: pd.DataFrame, main: str, full_rows: int | None, split: str, seconds: float) -> dict:
    def weight(name):
        task = tasks[name]
        return float(task.weight if isinstance(task, Task) else task["weight"])

    share = rows[main] / full_rows if full_rows else 1.0
    others = [n for n in rows if n != main]
    at = scores[scores["split"] == split].set_index("task")
    strategy = sampler["strategy"] + (f" T={sampler['temperature']:g}" if sampler["strategy"] == "temperature" else "")
    weights = ", ".join(f"{n} {weight(n):g}" for n in rows)
    aux = float(np.mean([at.loc[n, "accuracy"] for n in others])) if others else float("nan")
    label = (f"multi-task · {_share_label(share)} {main} labels · {strategy} · weights {weights} · "
             f"{epochs} epoch{'s' if epochs != 1 else ''} · {total_steps} steps")
    return {"run": label, "kind": "multi-task", "share": share, "sampler": strategy, "weights": weights,
            "epochs": int(epochs), "steps": int(total_steps), "main_steps": int(steps.get(main, 0)),
            "tokens": int(sum(rows[n] * lengths[n] for n in rows) * epochs), "accuracy": float(at.loc[main, "accuracy"]), "macro_f1": float(at.loc[main, "macro_f1"]),
            "aux_accuracy": aux, "train_s": float(seconds)}


def multitask_runs(main: str = "topic", full_rows: int | None = None, split: str = "test") -> pd.DataFrame:
    """Every multi-task run in the cache with a ``main`` task, from this session or an earlier one.

    One row each, ``RUN_COLUMNS``: its label, the main task's share of labels (train rows over
    ``full_rows``), sampler, task weights, epochs, optimizer steps (all, and the main task's),
    tokens read in training (train rows × max_length × epochs, summed over tasks: nearly every BBC
    article and pair fills its max_length, so this is the compute, up to padding), the main task's accuracy and macro-F1 on ``split``, the other tasks' mean accuracy and the training
    seconds. Reading is cheap (JSON files only), so a widget can redraw from it. Entries written
    before minikit recorded each task's train rows are left out.
    """
    out = []
    for _, entry in cache.entries("multitask").iterrows():
        folder, parts = Path(entry["path"]), entry["parts"]
        names = [t["name"] for t in parts.get("tasks", [])]
        files = [folder / f for f in ("tasks.json", "metrics.json", "result.json")]
        if main not in names or not all(f.is_file() for f in files):
            continue
        counts = json.loads(files[0].read_text())
        scores = pd.DataFrame(json.loads(files[1].read_text()))
        summary = json.loads(files[2].read_text())
        if split not in set(scores["split"]):
            continue
        lengths = {t["name"]: int(t.get("max_length") or summary["config"]["max_length"]) for t in parts["tasks"]}
        out.append(_row(counts["train_rows"], lengths, counts["steps"], {t["name"]: t for t in parts["tasks"]},
                        parts["sampler"], summary["config"]["epochs"], summary["steps"], scores, main, full_rows,
                        split, summary["seconds"]))
    table = pd.DataFrame(out, columns=RUN_COLUMNS)
    return table.sort_values(["share", "steps", "run"], ascending=[False, True, True], ignore_index=True)


def nearest_single_task(table: pd.DataFrame, row: pd.Series, column: str) -> pd.Series | None:
    """The single-task run of ``table`` at ``row``'s share of labels whose ``column`` (e.g. tokens) is nearest ``row``'s.

    None when the table has no single-task run at that share.
    """
    singles = table[(table["kind"] == "single-task") & np.isclose(table["share"], row["share"])]
    if singles.empty:
        return None
    return singles.loc[(singles[column] - row[column]).abs().idxmin()]
