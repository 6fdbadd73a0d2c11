"""Shared fixtures for the minikit test suite.

Everything here keeps the suite offline and away from the user's real caches:

* ``HF_HUB_OFFLINE=1`` and a throw-away ``HF_HOME`` / ``HF_HUB_CACHE`` / ``HF_DATASETS_CACHE`` are
  set *before* anything imports huggingface_hub, transformers or datasets (they read these
  variables once, at import time), so no test can reach the network or see weights that happen
  to be cached on the machine running the tests.
* ``MINIKIT_CACHE`` points to a temporary folder for the whole session (set at import, so that the
  notebooks nbval runs in the same session use it too), and the other ``MINIKIT_*`` variables are
  unset so that the user's environment cannot change the results.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import warnings
from pathlib import Path

# --- before any Hugging Face import --------------------------------------------------------------
_SESSION_TMP = tempfile.mkdtemp(prefix="minikit-tests-hf-")
atexit.register(shutil.rmtree, _SESSION_TMP, ignore_errors=True)
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["HF_HOME"] = _SESSION_TMP
os.environ["HF_HUB_CACHE"] = os.path.join(_SESSION_TMP, "hub")
os.environ["HF_DATASETS_CACHE"] = os.path.join(_SESSION_TMP, "datasets")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
os.environ["HF_DATASETS_DISABLE_PROGRESS_BARS"] = "1"
# Hypothesis keeps a few caches on disk; keep them out of the working tree.
os.environ["HYPOTHESIS_STORAGE_DIRECTORY"] = os.path.join(_SESSION_TMP, "hypothesis")
# The minikit cache, set here rather than in a fixture: `make test` runs the course in a pytest run of
# its own (`pytest notebooks tests/learner`), whose first items are notebooks, outside this folder,
# where no fixture of this file applies. nbval's kernels, the browser test's JupyterLab and the
# Binder dry-run all inherit this process's environment, so they share this one cache: empty at the
# start (the notebooks build what they need, cold), warm for the browser test and the dry-run.
# With MINIKIT_BUILT_CACHE (make test's course run), the root conftest.py has already set MINIKIT_CACHE to a
# copy of that built cache: keep it, so the browser test and the Binder dry-run start warm as a learner does.
if os.environ.get("MINIKIT_BUILT_CACHE"):
    _MINIKIT_CACHE = os.environ["MINIKIT_CACHE"]
else:
    _MINIKIT_CACHE = os.path.join(_SESSION_TMP, "minikit-cache")
    os.environ["MINIKIT_CACHE"] = _MINIKIT_CACHE
for _name in ("MINIKIT_SEED", "MINIKIT_THREADS", "MINIKIT_DEVICE"):
    os.environ.pop(_name, None)  # the caller's environment must not change the results

import datasets  # noqa: E402
import huggingface_hub.constants  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from helpers import ARCHS, FAST, articles, make_splits, random_classifier, tiny_bert  # noqa: E402
from transformers import BertConfig, DistilBertConfig, MobileBertConfig  # noqa: E402

import minikit  # noqa: E402
import minikit.timing  # noqa: E402
from minikit.benchmark import Benchmark  # noqa: E402
from minikit.tasks import headline_pairs  # noqa: E402
from minikit.training import FineTuned, TrainConfig, train_classifier  # noqa: E402

_REAL_JUDGE = minikit.timing.judge  # kept before the session's fixture replaces it

datasets.disable_progress_bars()

# The embedded tokenizer's vocabulary (bert-base-uncased WordPiece).
EMBEDDED_VOCAB = 30522


@pytest.fixture(scope="session", autouse=True)
def _offline_isolated_environment():
    """MINIKIT_CACHE in the session's temp dir, no MINIKIT_* overrides from the caller, hub offline (again, for
    a test that changed them without restoring)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MINIKIT_CACHE", _MINIKIT_CACHE)
        for name in ("MINIKIT_SEED", "MINIKIT_THREADS", "MINIKIT_DEVICE"):
            mp.delenv(name, raising=False)
        mp.setenv("HF_HUB_OFFLINE", "1")
        # In case huggingface_hub was imported before this conftest (e.g. by a plugin).
        mp.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
        mp.setattr(huggingface_hub.constants, "HF_HUB_CACHE", os.environ["HF_HUB_CACHE"])
        yield


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    """The package's tests run tiny models, for which one thread is as fast as two, and one thread is
    immune to oversubscription: beside another busy process (the Binder dry-run's build runs next to
    these tests) two OpenMP threads can wait on each other 100× longer than the work takes. Tests of
    thread settings set their own and restore this one; notebooks run in their own kernels."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session", autouse=True)
def _quiet_machine():
    """Every measurement counts as taken on a quiet machine, so caching tests do not depend on the load the
    test machine happens to have (its other jobs, the parallel workers). tests/test_timing.py fakes a loaded
    machine and a quiet one explicitly; use ``real_load_judge`` to get the real ``timing.judge`` back."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(minikit.timing, "judge", lambda *a, **k: minikit.timing.LoadCheck((), 1.0, 1.0, 1.0, 0.0, 1))
        yield


@pytest.fixture
def real_load_judge(monkeypatch):
    """``timing.judge`` as written, not the conftest's always-quiet stand-in."""
    monkeypatch.setattr(minikit.timing, "judge", _REAL_JUDGE)


@pytest.fixture
def hub_cache(tmp_path, monkeypatch) -> Path:
    """A fresh, empty Hugging Face hub cache for one test.

    huggingface_hub reads HF_HUB_CACHE into ``huggingface_hub.constants`` at import time, and both
    ``try_to_load_from_cache`` and transformers' ``cached_files`` read that constant at call time,
    so patching the constant (and the variable, for anything started later) is enough.
    """
    cache = tmp_path / "hf-hub-cache"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    return cache


# --- data ------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def bbc() -> datasets.Dataset:
    """The embedded BBC News corpus (2225 articles), loaded once; its DataWarning is silenced here."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", minikit.DataWarning)
        return minikit.load_dataset("bbc-news")


@pytest.fixture(scope="session")
def prepared():
    """``prepare_dataset()`` on BBC News: (splits, duplicate report). About 4 s, so done once."""
    return minikit.prepare_dataset()


@pytest.fixture(scope="session")
def tokenizer():
    """The embedded model's WordPiece tokenizer."""
    return minikit.load_tokenizer()


# --- tiny models -----------------------------------------------------------------------------------


@pytest.fixture
def tiny_bert_config():
    """A 2-layer, 32-wide BERT config (a fresh object per test, since build_model may change it)."""
    def make(**overrides) -> BertConfig:
        kwargs = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                      vocab_size=1000, max_position_embeddings=128)
        kwargs.update(overrides)
        return BertConfig(**kwargs)

    return make


@pytest.fixture
def tiny_distilbert_config():
    def make(**overrides) -> DistilBertConfig:
        kwargs = dict(dim=32, n_layers=2, n_heads=2, hidden_dim=64, vocab_size=1000, max_position_embeddings=128)
        kwargs.update(overrides)
        return DistilBertConfig(**kwargs)

    return make


@pytest.fixture
def tiny_mobilebert_config():
    """MobileBERT's bottleneck in miniature: a 64-wide residual stream, 32-wide inner blocks.

    With use_bottleneck=True (the default) the attention/FFN width is intra_bottleneck_size, and
    true_hidden_size must equal it; the trigram embedding maps 3·embedding_size to hidden_size.
    """
    def make(**overrides) -> MobileBertConfig:
        kwargs = dict(vocab_size=1000, hidden_size=64, embedding_size=32, intra_bottleneck_size=32,
                      true_hidden_size=32, num_attention_heads=2, num_hidden_layers=2, intermediate_size=64,
                      num_feedforward_networks=2, max_position_embeddings=128)
        kwargs.update(overrides)
        return MobileBertConfig(**kwargs)

    return make


@pytest.fixture
def tiny_model(tiny_bert_config):
    """A tiny random BERT classifier (3 labels) usable with dummy_inputs (vocab above 1000)."""
    return minikit.build_model(tiny_bert_config(vocab_size=2000), num_labels=3, seed=0)


@pytest.fixture
def random_ids():
    def make(batch: int, seq: int, vocab: int = 1000) -> torch.Tensor:
        return torch.randint(0, vocab, (batch, seq), generator=torch.Generator().manual_seed(0))

    return make


# --- a MINIKIT_CACHE of its own ---------------------------------------------------------------------


@pytest.fixture
def cache_root(tmp_path, monkeypatch) -> Path:
    """An empty MINIKIT_CACHE for one test (child processes inherit it), with MINIKIT_NO_TRAIN unset.

    Files whose every test builds cache entries use it for all (``pytestmark = pytest.mark.usefixtures("cache_root")``);
    a test that looks inside the cache asks for it by name.
    """
    root = tmp_path / "minikit-cache"
    monkeypatch.setenv("MINIKIT_CACHE", str(root))
    monkeypatch.delenv("MINIKIT_NO_TRAIN", raising=False)
    return root


# --- trained and measured stand-ins ------------------------------------------------------------------


@pytest.fixture(scope="module")
def teacher() -> FineTuned:
    """A 4-layer, 32-wide BERT trained ~1 s on the three topics: a teacher that knows something (2/3 val accuracy)."""
    torch.manual_seed(0)
    tokenizer = minikit.load_tokenizer()
    config = minikit.models.BertConfig(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=64,
                                       vocab_size=tokenizer.vocab_size, max_position_embeddings=128)
    model = minikit.build_model(config, num_labels=3, seed=0)
    splits = make_splits()
    result = train_classifier(model, tokenizer, splits, TrainConfig(**{**FAST, "epochs": 6}), progress=False)
    return FineTuned(model, tokenizer, splits, result, test_accuracy=float("nan"), cache_dir=None, from_cache=False)


@pytest.fixture
def results() -> pd.DataFrame:
    """A Benchmark-like table of four variants, for the budget picker, its widget and its exercise check."""
    return pd.DataFrame({"name": ["fp32", "int8", "student", "student int8"],
                         "accuracy": [0.978, 0.975, 0.981, 0.970],
                         "latency_p50_ms": [16.0, 11.0, 4.0, 3.0],
                         "peak_memory_mb": [300.0, 120.0, 60.0, 30.0]})


@pytest.fixture
def curve() -> pd.DataFrame:
    """An early-exit curve (latency and accuracy by threshold) of a 6-layer model, for curve_row and its widget."""
    return pd.DataFrame({"threshold": [0.0, 0.9, 0.99, 1.0], "mean_ms": [3.0, 5.0, 8.0, 16.0], "full_ms": 16.0,
                         "speedup": [5.3, 3.2, 2.0, 1.0], "mean_layers_timed": [1.0, 1.7, 2.6, 6.0],
                         "accuracy": [0.95, 0.97, 0.978, 0.978], "mean_layers": [1.0, 1.7, 2.6, 6.0]})


# --- quality metrics, the Benchmark, charts and compression widgets --------------------------------------


@pytest.fixture
def random_bert4(tiny_bert_config):
    """A random 4-layer, 4-head BERT classifier (chapter 5's pruning tests)."""
    return random_classifier(tiny_bert_config, num_hidden_layers=4, num_attention_heads=4)


@pytest.fixture(params=ARCHS)
def family_model(request, tokenizer):
    """A tiny random classifier whose vocabulary matches the real tokenizer's ids."""
    config = request.getfixturevalue(f"tiny_{request.param}_config")(vocab_size=tokenizer.vocab_size)
    return minikit.build_model(config, num_labels=3, seed=0)


@pytest.fixture(scope="module")
def labels() -> tuple[np.ndarray, np.ndarray]:
    """300 random labels and predictions that are right 60 % of the time; "tech" (4) is never predicted."""
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 5, 300)
    y_pred = np.minimum(np.where(rng.random(300) < 0.6, y_true, rng.integers(0, 5, 300)), 3)
    return y_true, y_pred


@pytest.fixture(scope="module")
def probs() -> tuple[np.ndarray, np.ndarray]:
    """Probabilities of 200 rows over 4 classes, informative but far from perfect, and the true labels."""
    rng = np.random.default_rng(1)
    y = rng.integers(0, 4, 200)
    logits = rng.normal(size=(200, 4)) + 1.5 * np.eye(4)[y]  # informative, far from perfect
    return np.exp(logits) / np.exp(logits).sum(1, keepdims=True), y


@pytest.fixture(scope="module")
def tiny_dataset() -> datasets.Dataset:
    """16 short texts of four topics (each twice, reworded), for the Benchmark."""
    names = ["business", "entertainment", "politics", "sport"]
    features = datasets.Features({"id": datasets.Value("string"), "text": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=names)})
    texts = _BENCH_TEXTS + [t.replace("the ", "a ") for t in _BENCH_TEXTS]
    return datasets.Dataset.from_dict({"id": [f"t{i}" for i in range(16)], "text": texts,
                                       "label": [i // 2 for i in range(8)] * 2}, features=features)


_BENCH_TEXTS = ["the market rose sharply as shares gained", "profits fell and the bank cut jobs",
         "the film won three awards at the festival", "the band released a new album",
         "the minister called an early election", "parliament voted against the new bill",
         "the striker scored twice in the final", "the team lost the cup match"]


@pytest.fixture(scope="module")
def bench_models(tokenizer):
    """Two tiny BERTs; large initial weights make them predict different classes for different texts."""
    return (tiny_bert(tokenizer, 32, seed=0, initializer_range=0.5),
            tiny_bert(tokenizer, 64, seed=1, initializer_range=0.5))


@pytest.fixture(scope="module")
def bench(tiny_dataset, tokenizer, bench_models, tmp_path_factory):
    """A Benchmark of the two bench_models, run once per test module."""
    small, wide = bench_models
    bench = Benchmark(tiny_dataset, tokenizer, max_length=32, baseline="small", repeats=6, batch_size=8,
                      rapl_root=tmp_path_factory.mktemp("no-rapl"))
    bench.add("small", small).add("wide", wide)
    bench.run()
    return bench


@pytest.fixture(scope="module")
def pair_splits() -> datasets.DatasetDict:
    """Headline/body pairs of helpers.articles(), split for the pairs task."""
    texts, topics, ids = articles()
    return headline_pairs(texts, topics, ids, seed=0, validation_size=0.2, test_size=0.2)
