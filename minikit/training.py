"""Chapter 3 — fine-tuning: train a classification head (and the encoder under it) with Accelerate.

Three methods: ``"full"`` trains every weight; ``"linear-probe"`` trains only the head, which
measures what the pre-trained features are worth as they are; ``"gradual-unfreeze"`` (ULMFiT)
starts with the head and unfreezes one more encoder layer from the top at each stage. The loop
(``minikit.loop``, where ``TrainConfig`` is defined) uses ``accelerate.Accelerator``, so the same code
runs on a CPU, one GPU, or several GPUs under ``accelerate launch``. ``fine_tune`` caches the trained
model; ``get_baseline()`` is the call later chapters use to get the fine-tuned baseline back in a
fresh kernel.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import (
    AutoModel,
    AutoModelForMaskedLM,
    DataCollatorForLanguageModeling,
    DataCollatorWithPadding,
    PreTrainedTokenizerBase,
    get_linear_schedule_with_warmup,
)

from minikit.cache import (
    find,
    folder_sha256,
    load_model_dir,
    load_or_build,
    save_model_dir,
    splits_sha256,
    texts_sha256,
)
from minikit.data import prepare_dataset, stratified_subset, tokenize
from minikit.errors import is_int
from minikit.loading import BBC_NEWS
from minikit.loop import (
    EVAL_BATCH,
    TrainConfig,
    TrainResult,
    loader_accuracy,
    train_loop,
    training_session,
)
from minikit.models import DEFAULT_MODEL, load_model, load_tokenizer, resolve_model_source
from minikit.settings import get_settings, quiet_transformers, seed_everything
from minikit.system import release_freed_memory

if TYPE_CHECKING:
    import datasets
    import pandas as pd
    from transformers import PreTrainedModel

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


def model_inputs(ds: datasets.Dataset, tokenizer, config: TrainConfig) -> datasets.Dataset:
    """``ds`` (text, label) tokenized as ``config`` says: input_ids, attention_mask and labels only."""
    # Only ids, mask and labels: DistilBERT's forward() rejects the token_type_ids BERT tokenizers add.
    ds = tokenize(ds, tokenizer, config.max_length, config.truncation).rename_column("label", "labels")
    return ds.select_columns(["input_ids", "attention_mask", "labels"])


def _dataloaders(splits, tokenizer, config: TrainConfig) -> tuple[DataLoader, DataLoader]:
    collate = DataCollatorWithPadding(tokenizer)
    train = model_inputs(stratified_subset(splits["train"], config.train_fraction, config.seed), tokenizer, config)
    val = model_inputs(splits["validation"], tokenizer, config)
    val = val.select(np.argsort([len(x) for x in val["input_ids"]], kind="stable"))  # less padding
    generator = torch.Generator().manual_seed(config.seed)
    return (DataLoader(train, batch_size=config.batch_size, shuffle=True, collate_fn=collate, generator=generator),
            DataLoader(val, batch_size=EVAL_BATCH, collate_fn=collate))


# --------------------------------------------------------------------------------------------
# Training a classifier (the loop itself is minikit.loop's)
# --------------------------------------------------------------------------------------------


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
        from transformers.modeling_outputs import BaseModelOutputWithPooling
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
    after Ctrl-C). ``callback(history)`` runs after every history row, every ``config.log_every``
    steps (a live chart, for instance, follows the loss between evaluations).
    """
    check_labels(splits, model.config.num_labels)
    seed_everything(config.seed)
    with training_session(model, config):
        train_loader, val_loader = _dataloaders(splits, tokenizer, config)

        def next_loss(model, batches):
            return model(**next(batches[0])).loss, {}

        def evaluate(model, val_loaders, accelerator):
            return loader_accuracy(model, val_loaders[0], accelerator), {}

        def store_encoder_outputs(model, train_loaders, val_loaders, accelerator) -> None:
            if config.method == "linear-probe" and accelerator.num_processes == 1:
                net = accelerator.unwrap_model(model)
                encoder = _EncoderOutputs(net, [train_loaders[0].dataset, val_loaders[0].dataset])
                if encoder.matches(net, {k: v for k, v in next(iter(val_loaders[0])).items() if k != "labels"}):
                    encoder.install()  # removed below, even on Ctrl-C

        try:
            return train_loop(model, [train_loader], [val_loader], next_loss, evaluate, config, callback=callback,
                              progress=progress, description=f"fine-tuning ({config.method})",
                              setup=store_encoder_outputs)
        finally:
            _EncoderOutputs.remove(model)  # a linear probe's stored encoder outputs, if they were installed


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
    import datasets
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
    return float(np.mean(correct_per_example(model, tokenizer, dataset_split, max_length, batch_size, truncation)))


def correct_per_example(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    dataset_split: datasets.Dataset,
    max_length: int = 128,
    batch_size: int = 64,
    truncation: str = "head",
) -> list[int]:
    """1 where the predicted class of a row is its label, else 0, in the split's order (for paired comparisons)."""
    logits = predict_logits(model, tokenizer, dataset_split, max_length, batch_size, truncation)
    return (logits.argmax(axis=1) == np.asarray(dataset_split["label"])).astype(int).tolist()


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


_MODEL_FILES = {".json", ".safetensors", ".txt", ".model"}  # a model folder's own: config, weights, tokenizer


def model_fingerprint(name: str | Path) -> dict:
    """What identifies the starting weights: a hash of the files for local folders, else the hub id."""
    kind, location = resolve_model_source(str(name))
    if kind in {"embedded", "local"}:  # the files, not the name or path, decide what trains
        return {"source": kind, "files": folder_sha256(Path(location), _MODEL_FILES)}
    return {"source": kind, "name": location}


def _load_splits(dataset: str | datasets.DatasetDict, seed: int) -> tuple[datasets.DatasetDict, dict]:
    import datasets
    if isinstance(dataset, datasets.DatasetDict):
        return dataset, {"name": "DatasetDict", "fingerprint": splits_sha256(dataset)}
    splits, _report = prepare_dataset(dataset, seed=seed)
    # The defaults of prepare_dataset are part of the data; the fingerprint catches any change.
    return splits, {"name": dataset, "seed": seed, "fingerprint": splits_sha256(splits)}


def write_result(folder: Path, result: TrainResult, test_accuracy: float, config: TrainConfig) -> None:
    """Store a run in its cache entry: history.json, and result.json (the summary, the test accuracy, the config)."""
    (folder / "history.json").write_text(result.history.to_json(orient="records"))
    summary = {"best_val_accuracy": result.best_val_accuracy, "best_step": result.best_step,
               "seconds": result.seconds, "stopped_early": result.stopped_early, "steps": result.steps,
               "test_accuracy": test_accuracy, "config": asdict(config), "learning_rate": config.lr}
    (folder / "result.json").write_text(json.dumps(summary, indent=1))


def read_result(folder: Path) -> tuple[TrainResult, float]:
    """(TrainResult, test accuracy) as ``write_result`` stored them."""
    import pandas as pd
    summary = json.loads((folder / "result.json").read_text())
    history = pd.DataFrame(json.loads((folder / "history.json").read_text()))
    history["val_accuracy"] = history["val_accuracy"].astype(float)  # null → NaN
    result = TrainResult(history, summary["best_val_accuracy"], summary["best_step"], summary["seconds"],
                         summary["stopped_early"], summary["steps"])
    return result, summary["test_accuracy"]


def fine_tune(
    model: str | Path = DEFAULT_MODEL,
    dataset: str | datasets.DatasetDict = BBC_NEWS,
    config: TrainConfig | None = None,
    callback: Callable[[pd.DataFrame], None] | None = None,
    progress: bool = True,
    cache: bool = True,
    init_dir: str | Path | None = None,
) -> FineTuned:
    """Fine-tune ``model`` on ``dataset`` (prepared with ``prepare_dataset(seed=config.seed)``), cached.

    A second call with the same model files, data and config loads the cached model in seconds
    (``from_cache=True``; the callback then gets the stored history once). ``init_dir`` starts
    from other weights, e.g. ``domain_adapt()``'s folder. ``dataset`` may be a DatasetDict.

    ``config=None`` is the course's recipe, ``RECIPE``: chapter 3's ``TrainConfig()`` with at least
    ``MIN_STEPS`` optimizer steps, so a small dataset trains for more epochs (on BBC News one epoch is
    already more: it is exactly ``TrainConfig()``). A config you pass runs as given.
    """
    config = RECIPE if config is None else config
    splits, data_parts = _load_splits(dataset, config.seed)
    config = config.resolved(len(stratified_subset(splits["train"], config.train_fraction, config.seed)))
    release_freed_memory()  # deduplication leaves ~100 MB of freed heap behind; training needs it
    source = init_dir if init_dir is not None else model
    num_labels = len(splits["train"].features["label"].names)
    # Activation checkpointing trades memory for time and changes no number (tested), so it is not part of
    # the key: a model trained with it on is the same model, and either setting loads the other's entry.
    parts = {"model": model_fingerprint(source), "data": data_parts,
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
        write_result(folder, trained[2], trained[3], config)

    entry = load_or_build("finetuned", parts, build)
    if trained:
        net, tokenizer, result, accuracy = trained
        return FineTuned(net, tokenizer, splits, result, accuracy, cache_dir=entry, from_cache=False)
    net, tokenizer = load_model_dir(entry)
    result, accuracy = read_result(entry)
    if callback is not None:
        callback(result.history)
    return FineTuned(net.to(get_settings().device), tokenizer, splits, result, accuracy, entry, True)


def _fine_tune_distributed(parts: dict, splits, train) -> FineTuned:
    # Under `accelerate launch` every process must train together, so a lock held around training
    # would deadlock them: all train, then the main process alone writes the entry.
    from accelerate import PartialState
    from accelerate.utils import broadcast_object_list
    state = PartialState()
    entry = [find("finetuned", parts) if state.is_main_process else None]
    broadcast_object_list(entry)
    if entry[0] is not None:
        net, tokenizer = load_model_dir(entry[0])
        result, accuracy = read_result(entry[0])
        return FineTuned(net.to(state.device), tokenizer, splits, result, accuracy, entry[0], True)
    net, tokenizer, result, accuracy = train()
    config = parts["config"]
    if state.is_main_process:
        def save(folder: Path) -> None:
            save_model_dir(net, tokenizer, folder)
            write_result(folder, result, accuracy, config)

        entry = [load_or_build("finetuned", parts, save)]
    state.wait_for_everyone()
    broadcast_object_list(entry)
    return FineTuned(net, tokenizer, splits, result, accuracy, entry[0], False)


# The fewest optimizer steps the course's recipe takes: at batch 8 and 1e-4, a new head over MiniLM
# needs ~100 steps to leave chance on a 3-class set of 42 training rows (data/examples/tickets.csv).
MIN_STEPS = 100
RECIPE = TrainConfig(min_steps=MIN_STEPS)


def get_baseline(model: str = DEFAULT_MODEL, dataset: str = BBC_NEWS, progress: bool = True) -> FineTuned:
    """The fine-tuned baseline every later chapter starts from: ``fine_tune`` with the default config.

    Loads from the cache when it is there (~5 s), trains once when it is not (~3 min on 2 cores).
    """
    return fine_tune(model, dataset, progress=progress)


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
    if not is_int(steps) or steps < 1:
        raise ValueError(f"steps={steps!r}: expected a whole number ≥ 1.")
    if not 0 < mlm_probability < 1:
        raise ValueError(f"mlm_probability={mlm_probability!r}: expected a fraction in (0, 1), usually 0.15.")
    if texts is None:
        texts = list(prepare_dataset(BBC_NEWS, seed=seed)[0]["train"]["text"])
        release_freed_memory()
    texts = [t for t in texts if t and t.strip()]
    if not texts:
        raise ValueError("domain_adapt got no non-empty texts. Fix: pass a list of strings from your domain.")
    parts = {"model": model_fingerprint(model_name), "texts": texts_sha256(texts),
             "steps": steps, "mlm_probability": mlm_probability, "learning_rate": learning_rate,
             "batch_size": batch_size, "max_length": max_length, "seed": seed}
    entry = load_or_build("domain-adapted", parts, lambda folder: _masked_lm_pass(
        model_name, texts, folder, steps, mlm_probability, learning_rate, batch_size, max_length, seed, progress))
    release_freed_memory()  # the masked-LM model and its optimizer: ~0.4 GB otherwise kept by the heap
    return entry


def _masked_lm_pass(model_name, texts, folder: Path, steps, mlm_probability, learning_rate, batch_size,
                    max_length, seed, progress) -> None:
    import datasets
    from accelerate import Accelerator

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
