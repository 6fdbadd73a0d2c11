"""minikit — helpers for the course on small pre-trained language models and their compression.

Importing minikit changes no global state; call ``minikit.setup()`` at the top of a notebook.
"""

import minikit.settings
from minikit import (
    adaptive, cache, charts, check, claims, compression_widgets, deployment, distillation, lab, metrics, multitask,
    pruning, quantization, training, widgets,
)
from minikit.data import (
    BBC_LABELS,
    DataWarning,
    DuplicateReport,
    LeakageReport,
    check_leakage,
    find_duplicates,
    load_dataset,
    normalize,
    normalize_text,
    prepare_dataset,
    remove_duplicates,
    split_dataset,
    token_lengths,
    tokenize,
    truncated_share,
)
from minikit.errors import DataError, MinikitError, ModelNotAvailableError, OnnxMismatchError, UnknownNameError
from minikit.benchmark import Benchmark
from minikit.metrics import classification_report, confusion_matrix
from minikit.profiling import (
    compare_models,
    count_parameters,
    measure_latency,
    ModelProfile,
    profile_model,
    size_on_disk_mb,
)
from minikit.models import CATALOG, DEFAULT_MODEL, ModelCard, build_model, list_models, load_model, load_tokenizer, resolve_model_source
from minikit.training import FineTuned, TrainConfig, fine_tune, get_baseline
from minikit.settings import Settings, get_settings, seed_everything


def setup(seed: int | None = None, threads: int | None = None, charts: bool = True) -> Settings:
    """Prepare a notebook: seed everything, set torch threads, quiet library logs, offline charts.

    Returns the settings in force, so a notebook can print where its cache lives.
    """
    settings = minikit.settings.setup(seed=seed, threads=threads)
    if charts:
        minikit.charts.enable_offline_charts()
    return settings

__version__ = "0.1.0"

__all__ = [
    "BBC_LABELS", "Benchmark", "adaptive", "compression_widgets", "FineTuned", "TrainConfig", "cache", "classification_report", "confusion_matrix",
    "fine_tune", "get_baseline", "lab", "metrics", "multitask", "training", "CATALOG", "DEFAULT_MODEL", "DataError", "DataWarning", "DuplicateReport", "LeakageReport",
    "MinikitError", "ModelCard", "OnnxMismatchError", "deployment", "distillation", "pruning", "quantization", "ModelNotAvailableError", "ModelProfile", "Settings", "UnknownNameError",
    "build_model", "charts", "check", "claims", "check_leakage", "compare_models", "count_parameters", "find_duplicates",
    "get_settings", "list_models", "load_dataset", "load_model", "load_tokenizer", "measure_latency", "normalize",
    "normalize_text", "prepare_dataset", "profile_model", "remove_duplicates", "resolve_model_source",
    "seed_everything", "setup", "size_on_disk_mb", "split_dataset", "token_lengths", "tokenize",
    "truncated_share", "widgets",
]
