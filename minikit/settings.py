"""Settings in one place: cache directory, seed, device and torch thread count.

Importing minikit changes no global state. Settings are read from the environment each time
``get_settings()`` is called, and ``setup()`` is the one explicit call that applies them.
"""

from __future__ import annotations

import contextlib
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import platformdirs
import torch
import transformers

from minikit.errors import is_int, option

DEFAULT_SEED = 42  # any fixed number: what matters is that every run uses the same one


@dataclass(frozen=True)
class Settings:
    """What minikit uses for caching, seeding and running models."""

    cache_dir: Path  # MINIKIT_CACHE overrides the user cache dir (e.g. ~/.cache/minikit)
    seed: int  # MINIKIT_SEED overrides
    device: str  # "cuda" when a GPU is visible, else "cpu"; MINIKIT_DEVICE overrides
    num_threads: int  # MINIKIT_THREADS overrides; default: all cores torch sees


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not an integer; set it to a whole number or unset it.") from None
    if name == "MINIKIT_THREADS" and value < 1:
        raise ValueError(f"MINIKIT_THREADS={value} must be at least 1.")
    return value


def get_settings() -> Settings:
    """Return the current settings, read from the environment."""
    cache = os.environ.get("MINIKIT_CACHE") or platformdirs.user_cache_dir("minikit")
    device = os.environ.get("MINIKIT_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")
    if device not in {"cpu", "cuda"} and not device.startswith("cuda:"):
        raise ValueError(f"MINIKIT_DEVICE={device!r}: expected 'cpu', 'cuda' or 'cuda:N'.")
    return Settings(
        cache_dir=Path(cache).expanduser(),
        seed=_env_int("MINIKIT_SEED", DEFAULT_SEED),
        device=device,
        num_threads=_env_int("MINIKIT_THREADS", os.cpu_count() or 1),
    )


def cache_dir(*parts: str) -> Path:
    """Return (and create) a folder under the cache directory."""
    path = get_settings().cache_dir.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def seed_everything(seed: int | None = None) -> int:
    """Seed Python, NumPy and torch; return the seed used."""
    seed = get_settings().seed if seed is None else int(seed)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return seed


def setup(seed: int | None = None, threads: int | None = None) -> Settings:
    """Prepare a run: seed everything, set torch threads, quiet library logs; returns the settings in force.

    A notebook calls ``minikit.setup()``, which does this and also switches charts to offline mode.
    """
    if threads is not None and (not is_int(threads) or threads < 1):
        raise ValueError(f"{option('threads', str(threads))}: expected a whole number of threads ≥ 1 "
                         f"(this machine has {os.cpu_count()} cores), or none for all of them.")
    settings = get_settings()
    seed_everything(seed)
    torch.set_num_threads(threads or settings.num_threads)
    _quiet_libraries()
    return settings


def _quiet_libraries() -> None:
    # Weight-loading reports and deprecation chatter bury the lesson in a learner's output.
    import datasets

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence weight-loading reports and bars for the duration of a load, then restore them."""
    level = transformers.logging.get_verbosity()
    bars = transformers.utils.logging.is_progress_bar_enabled()
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    try:
        yield
    finally:
        transformers.logging.set_verbosity(level)
        if bars:
            transformers.utils.logging.enable_progress_bar()
