"""minikit — helpers for the course on small pre-trained language models and their compression.

Importing minikit changes no global state; call ``minikit.setup()`` at the top of a notebook.

This file is the notebooks' facade: it re-exports the names they call as ``minikit.name``. Every
module is also reachable as ``minikit.module``: the data, models, training and measurement layers
load with the package; techniques, applications and the presentation layer (charts, widgets,
check) load on first use (PEP 562), so a script that never draws never imports altair or
ipywidgets, and ``python -m minikit.server`` finds its module not yet imported. The eager modules import
pandas, scipy, datasets, accelerate and transformers' model classes inside the functions that use them, so
``import minikit`` costs little more than ``import torch, transformers`` (bench/import_time.py,
tests/test_import_cost.py).
"""

from __future__ import annotations

import importlib

from minikit import cache, claims, data, errors, models, settings, stats, system, training
from minikit.benchmark import Benchmark
from minikit.data import (
    DuplicateReport,
    LeakageReport,
    check_leakage,
    find_duplicates,
    normalize,
    normalize_text,
    prepare_dataset,
    remove_duplicates,
    split_dataset,
    token_lengths,
    tokenize,
    truncated_share,
)
from minikit.errors import (
    DataError,
    DataWarning,
    MinikitError,
    ModelNotAvailableError,
    OnnxMismatchError,
    UnknownNameError,
)
from minikit.loading import BBC_HEADLINES, BBC_LABELS, BBC_NEWS, list_datasets, load_dataset
from minikit.metrics import classification_report, confusion_matrix
from minikit.models import (
    CATALOG,
    DEFAULT_MODEL,
    ModelCard,
    build_model,
    list_models,
    load_model,
    load_tokenizer,
    resolve_model_source,
)
from minikit.profiling import (
    ModelProfile,
    compare_models,
    count_parameters,
    measure_latency,
    profile_model,
    size_on_disk_mb,
)
from minikit.settings import Settings, get_settings, seed_everything
from minikit.stats import format_accuracy, paired_comparison, wilson_interval
from minikit.training import FineTuned, TrainConfig, fine_tune, get_baseline

__version__ = "0.1.0"

# Loaded on first use (``minikit.widgets``, ``from minikit import lab``): see the module docstring.
_ON_FIRST_USE = ("attribution", "build", "charts", "check", "compression_charts", "compression_widgets",
                 "deployment", "distill_variants", "distillation", "early_exit", "editions", "implement_it", "lab",
                 "load_testing", "multitask", "onnx_graph", "practice", "pruning", "pruning_sweep", "qat",
                 "quantization", "quantization_checks", "report", "server", "static_int8", "static_views", "students",
                 "tasks", "widgets")


def __getattr__(name: str):
    if name in _ON_FIRST_USE:
        return importlib.import_module(f"minikit.{name}")
    raise AttributeError(f"module 'minikit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_ON_FIRST_USE))


def setup(seed: int | None = None, threads: int | None = None, charts: bool = True) -> Settings:
    """Prepare a notebook: seed everything, set torch threads, quiet library logs, offline charts (each with a
    static image stored beside it, ``minikit.static_views``).

    Returns the settings in force, so a notebook can print where its cache lives.
    """
    in_force = settings.setup(seed=seed, threads=threads)
    if charts:
        importlib.import_module("minikit.charts").enable_offline_charts()
        importlib.import_module("minikit.static_views").enable_static_views()
    return in_force


__all__ = [
    "BBC_HEADLINES", "BBC_LABELS", "BBC_NEWS", "Benchmark", "CATALOG", "DEFAULT_MODEL", "DataError", "DataWarning",
    "DuplicateReport", "FineTuned", "LeakageReport", "MinikitError", "ModelCard", "ModelNotAvailableError",
    "ModelProfile", "OnnxMismatchError", "Settings", "TrainConfig", "UnknownNameError", "build_model", "cache",
    "check_leakage", "claims", "classification_report", "compare_models", "confusion_matrix", "count_parameters",
    "data", "errors", "find_duplicates", "fine_tune", "format_accuracy", "get_baseline", "get_settings",
    "list_datasets", "list_models", "load_dataset", "load_model", "load_tokenizer", "measure_latency", "models",
    "normalize", "normalize_text", "paired_comparison", "prepare_dataset", "profile_model", "remove_duplicates",
    "resolve_model_source", "seed_everything", "settings", "setup", "size_on_disk_mb", "split_dataset", "stats",
    "system", "token_lengths", "tokenize", "training", "truncated_share", "wilson_interval",
]
