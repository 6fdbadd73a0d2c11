"""``import minikit`` pays little beyond torch and transformers, and changes nothing global (issue 24).

No wall-clock here: what a fresh interpreter holds in ``sys.modules`` after the import says what it
paid for (bench/import_time.py reports the times and their ratio). Threads and random states are
checked in test_settings.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import minikit

# Heavy libraries the package uses only inside functions or in modules loaded on first use.
LAZY = ("altair", "ipywidgets", "IPython", "scipy", "pandas", "pyarrow", "datasets", "accelerate", "onnx",
        "onnxruntime", "sklearn", "transformers.modeling_utils")

_PROBE = r"""
import json, logging, os, sys, warnings
import torch, transformers
from transformers import AutoModelForSequenceClassification  # the baseline bench/import_time.py compares with


def state():
    loggers = {name: getattr(logger, "level", None) for name, logger in logging.root.manager.loggerDict.items()}
    return dict(warnings=[repr(f) for f in warnings.filters], root_level=logging.root.level, loggers=loggers,
                transformers=transformers.logging.get_verbosity(), threads=torch.get_num_threads(),
                environ=dict(os.environ), excepthook=repr(sys.excepthook), displayhook=repr(sys.displayhook))


before = state()
import minikit  # noqa: E402
after = state()
after["loggers"] = {name: level for name, level in after["loggers"].items() if name in before["loggers"]}
changed = sorted(key for key in before if before[key] != after[key])
print(json.dumps({"loaded": sorted(sys.modules), "changed": changed}))
"""

_SETUP_PROBE = r"""
import json, sys
import torch
import minikit

charts_loaded_before = "altair" in sys.modules
settings = minikit.setup(seed=3, threads=1)
a = torch.rand(3)
torch.manual_seed(3)
import altair as alt, datasets, transformers
print(json.dumps({
    "charts_loaded_before": charts_loaded_before,
    "returns_settings": isinstance(settings, minikit.Settings) and settings == minikit.get_settings(),
    "threads": torch.get_num_threads(),
    "seeded": bool(torch.equal(a, torch.rand(3))),
    "transformers_quiet": transformers.logging.get_verbosity() == transformers.logging.ERROR,
    "transformers_bars": transformers.utils.logging.is_progress_bar_enabled(),
    "datasets_quiet": datasets.logging.get_verbosity() == datasets.logging.ERROR,
    "datasets_bars": datasets.utils.logging.is_progress_bar_enabled(),
    "renderer": alt.renderers.active,
}))
"""


def _run(code: str) -> dict:
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def fresh_import() -> dict:
    """A fresh interpreter's modules and changed global state after torch, transformers, then ``import minikit``."""
    return _run(_PROBE)


@pytest.mark.parametrize("module", LAZY)
def test_import_minikit_leaves_heavy_library_unloaded(fresh_import, module):
    assert module not in fresh_import["loaded"], (
        f"`import minikit` imported {module}: some module of the package imports it at the top. Fix: import it "
        f"inside the functions that use it (under `if TYPE_CHECKING:` for annotations); `python -X importtime -c "
        f"'import minikit'` or bench/import_time.py names the importer.")


def test_import_minikit_loads_no_module_of_the_presentation_layer(fresh_import):
    loaded = {name.removeprefix("minikit.") for name in fresh_import["loaded"] if name.startswith("minikit.")}
    assert not loaded & set(minikit._ON_FIRST_USE), "these modules load on first use (minikit.__getattr__)"


def test_import_minikit_changes_no_global_state(fresh_import):
    assert fresh_import["changed"] == [], f"`import minikit` changed {fresh_import['changed']}"


def test_setup_still_seeds_sets_threads_quiets_logs_and_switches_charts_offline():
    result = _run(_SETUP_PROBE)
    assert result == {
        "charts_loaded_before": False, "returns_settings": True, "threads": 1, "seeded": True,
        "transformers_quiet": True, "transformers_bars": False, "datasets_quiet": True, "datasets_bars": False,
        "renderer": "jupyter",
    }


def test_every_facade_name_resolves():
    for name in minikit.__all__:
        assert getattr(minikit, name) is not None, name
    assert set(minikit._ON_FIRST_USE) <= set(dir(minikit))


def test_size_classes_built_on_first_use_agree_with_size_class_of():
    from minikit.claims import SIZE_CLASSES, size_class_of

    assert minikit.claims.SIZE_CLASSES is SIZE_CLASSES  # built once
    assert list(SIZE_CLASSES.columns) == ["size_class", "params_lo_m", "params_hi_m", "claimed_ms", "claim"]
    for row in SIZE_CLASSES.itertuples():
        assert size_class_of(row.params_lo_m) == row.size_class
        assert size_class_of((row.params_lo_m + row.params_hi_m) / 2) == row.size_class
    assert size_class_of(30.0) is None  # between classes
