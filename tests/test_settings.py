"""Settings: environment overrides, seeding, setup(), and an import free of side effects."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import altair as alt
import numpy as np
import pytest
import torch

import minikit
from minikit import settings


def test_cache_dir_follows_minikit_cache(tmp_path, monkeypatch):
    target = tmp_path / "my-cache"
    monkeypatch.setenv("MINIKIT_CACHE", str(target))
    assert minikit.get_settings().cache_dir == target
    made = settings.cache_dir("models", "x")
    assert made == target / "models" / "x"
    assert made.is_dir()


def test_cache_dir_expands_user(monkeypatch):
    monkeypatch.setenv("MINIKIT_CACHE", "~/some-minikit-cache")
    assert minikit.get_settings().cache_dir == Path("~/some-minikit-cache").expanduser()


def test_session_cache_is_not_the_user_cache():
    # conftest points MINIKIT_CACHE at a temp folder for the whole session.
    import platformdirs

    assert minikit.get_settings().cache_dir != Path(platformdirs.user_cache_dir("minikit"))


def test_default_cache_dir_without_override(monkeypatch):
    import platformdirs

    monkeypatch.delenv("MINIKIT_CACHE", raising=False)
    assert minikit.get_settings().cache_dir == Path(platformdirs.user_cache_dir("minikit"))


def test_default_seed_and_threads(monkeypatch):
    monkeypatch.delenv("MINIKIT_SEED", raising=False)
    monkeypatch.delenv("MINIKIT_THREADS", raising=False)
    s = minikit.get_settings()
    assert s.seed == settings.DEFAULT_SEED == 42
    assert s.num_threads == (os.cpu_count() or 1)


def test_minikit_seed_override(monkeypatch):
    monkeypatch.setenv("MINIKIT_SEED", "1234")
    assert minikit.get_settings().seed == 1234
    assert minikit.seed_everything() == 1234  # no argument: the seed from the environment


def test_minikit_seed_empty_means_default(monkeypatch):
    monkeypatch.setenv("MINIKIT_SEED", "")
    assert minikit.get_settings().seed == 42


def test_minikit_seed_not_an_integer(monkeypatch):
    monkeypatch.setenv("MINIKIT_SEED", "forty-two")
    with pytest.raises(ValueError, match=r"MINIKIT_SEED='forty-two' is not an integer"):
        minikit.get_settings()


def test_minikit_threads_override(monkeypatch):
    monkeypatch.setenv("MINIKIT_THREADS", "3")
    assert minikit.get_settings().num_threads == 3


@pytest.mark.parametrize("raw", ["many", "2.5", "1e3"])
def test_minikit_threads_not_an_integer(monkeypatch, raw):
    monkeypatch.setenv("MINIKIT_THREADS", raw)
    with pytest.raises(ValueError) as info:
        minikit.get_settings()
    message = str(info.value)
    assert "MINIKIT_THREADS" in message
    assert repr(raw) in message
    assert "whole number" in message  # says the fix


@pytest.mark.parametrize("raw", ["0", "-2"])
def test_minikit_threads_below_one(monkeypatch, raw):
    monkeypatch.setenv("MINIKIT_THREADS", raw)
    with pytest.raises(ValueError, match=rf"MINIKIT_THREADS={raw} must be at least 1"):
        minikit.get_settings()


def test_minikit_device_override_and_bad_value(monkeypatch):
    monkeypatch.setenv("MINIKIT_DEVICE", "cpu")
    assert minikit.get_settings().device == "cpu"
    monkeypatch.setenv("MINIKIT_DEVICE", "cuda:1")
    assert minikit.get_settings().device == "cuda:1"
    monkeypatch.setenv("MINIKIT_DEVICE", "tpu")
    with pytest.raises(ValueError, match=r"MINIKIT_DEVICE='tpu'.*'cpu', 'cuda' or 'cuda:N'"):
        minikit.get_settings()


def test_settings_are_read_at_call_time(monkeypatch):
    monkeypatch.setenv("MINIKIT_SEED", "1")
    first = minikit.get_settings()
    monkeypatch.setenv("MINIKIT_SEED", "2")
    assert (first.seed, minikit.get_settings().seed) == (1, 2)


def test_settings_is_frozen():
    s = minikit.get_settings()
    with pytest.raises(Exception):
        s.seed = 7  # type: ignore[misc]


def test_seed_everything_repeats_torch_numpy_and_python():
    assert minikit.seed_everything(123) == 123
    first = (torch.rand(5), np.random.rand(5), [random.random() for _ in range(5)])
    minikit.seed_everything(123)
    second = (torch.rand(5), np.random.rand(5), [random.random() for _ in range(5)])
    assert torch.equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    assert first[2] == second[2]


def test_seed_everything_different_seeds_differ():
    minikit.seed_everything(1)
    a = torch.rand(5)
    minikit.seed_everything(2)
    assert not torch.equal(a, torch.rand(5))


def test_seed_everything_default_uses_settings_seed(monkeypatch):
    monkeypatch.delenv("MINIKIT_SEED", raising=False)
    assert minikit.seed_everything() == 42
    a = torch.rand(3)
    torch.manual_seed(42)
    assert torch.equal(a, torch.rand(3))


@pytest.fixture
def restore_global_state():
    threads = torch.get_num_threads()
    renderer = alt.renderers.active
    yield
    torch.set_num_threads(threads)
    alt.renderers.enable(renderer)


def test_setup_applies_seed_and_threads(restore_global_state):
    result = minikit.setup(seed=5, threads=1, charts=False)
    assert isinstance(result, minikit.Settings)
    assert result == minikit.get_settings()
    assert torch.get_num_threads() == 1
    a = torch.rand(4)
    torch.manual_seed(5)
    assert torch.equal(a, torch.rand(4))


def test_setup_uses_minikit_threads(monkeypatch, restore_global_state):
    monkeypatch.setenv("MINIKIT_THREADS", "1")
    minikit.setup(charts=False)
    assert torch.get_num_threads() == 1


def test_setup_quiets_transformers_and_enables_offline_charts(restore_global_state):
    import transformers

    level = transformers.logging.get_verbosity()
    try:
        minikit.setup(threads=torch.get_num_threads(), charts=True)
        assert transformers.logging.get_verbosity() == transformers.logging.ERROR
        assert alt.renderers.active == "jupyter"
    finally:
        transformers.logging.set_verbosity(level)


_IMPORT_PROBE = r"""
import json, random
import numpy as np
import torch

torch.set_num_threads(1)  # a value no library would pick by itself on a multi-core machine
before = dict(threads=torch.get_num_threads(), torch=torch.get_rng_state().tolist(),
              numpy=np.random.get_state()[1].tolist(), python=random.getstate()[1])
import minikit  # noqa: E402
after = dict(threads=torch.get_num_threads(), torch=torch.get_rng_state().tolist(),
             numpy=np.random.get_state()[1].tolist(), python=random.getstate()[1])
print(json.dumps({k: before[k] == after[k] for k in before}
                 | {"threads_before": before["threads"], "threads_after": after["threads"]}))
"""


@pytest.fixture(scope="module")
def import_side_effects():
    """Import minikit in a fresh interpreter and report which global state changed."""
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    proc = subprocess.run([sys.executable, "-c", _IMPORT_PROBE], capture_output=True, text=True, env=env,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_import_keeps_torch_threads(import_side_effects):
    assert import_side_effects["threads_before"] == import_side_effects["threads_after"] == 1


def test_import_keeps_torch_random_state(import_side_effects):
    assert import_side_effects["torch"]


def test_import_keeps_numpy_random_state(import_side_effects):
    assert import_side_effects["numpy"]


def test_import_keeps_python_random_state(import_side_effects):
    # scikit-learn >= 1.9 imports `rich`, whose rich/style.py calls random.getrandbits() at import
    # time: importing sklearn at minikit's module level would advance Python's global random state.
    assert import_side_effects["python"], "importing minikit advanced Python's global random state"


@pytest.mark.parametrize("threads", [0, -2, 1.5, True])
def test_setup_refuses_threads_below_one_naming_the_argument(threads):
    with pytest.raises(ValueError, match=rf"threads={threads}: expected a whole number of threads ≥ 1"):
        minikit.settings.setup(threads=threads)
