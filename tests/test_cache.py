"""minikit.cache: keys, build-once, corruption → rebuild, crashes leave no complete entry."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import datasets
import pytest
import torch
from helpers import make_splits

import minikit
from minikit import cache

# Each test gets a MINIKIT_CACHE of its own (conftest.cache_root).
pytestmark = pytest.mark.usefixtures("cache_root")


class Builder:
    """A build function that counts its calls and writes two files."""

    def __init__(self, payload: bytes = b"weights" * 1000):
        self.calls = 0
        self.payload = payload

    def __call__(self, folder: Path) -> None:
        self.calls += 1
        (folder / "model.safetensors").write_bytes(self.payload)
        (folder / "sub").mkdir()
        (folder / "sub" / "result.json").write_text(json.dumps({"accuracy": 0.9}))


PARTS = {"model": "minilm-l6", "dataset": "bbc-news", "lr": 1e-4}


def complete_entries(root: Path, kind: str = "test") -> list[Path]:
    return [p for p in (root / kind).glob("[!.]*") if p.is_dir()]


# --- keys ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    lr: float = 1e-4
    epochs: int = 1


def test_cache_key_is_stable_and_order_independent():
    a = cache.cache_key(model="m", config=Config(), data={"b": 1, "a": (1, 2)})
    b = cache.cache_key(data={"a": [1, 2], "b": 1}, config={"epochs": 1, "lr": 1e-4}, model="m")
    assert a == b  # dataclass == its asdict, tuple == list, key order irrelevant
    assert len(a) == 16 and int(a, 16) >= 0
    assert cache.cache_key(model="m", config=Config(lr=2e-4)) != cache.cache_key(model="m", config=Config())


def test_cache_key_rejects_values_without_a_stable_text_form():
    with pytest.raises(TypeError, match=r"parts\['model'\] is a object"):
        cache.cache_key(model=object())


def test_cache_key_accepts_numpy_and_torch_scalars_and_paths():
    import numpy as np

    assert cache.cache_key(x=np.float64(0.5), n=torch.tensor(3), p=Path("a/b")) == cache.cache_key(x=0.5, n=3, p="a/b")


# --- hit and miss -------------------------------------------------------------------------------


def test_hit_builds_once_and_writes_a_manifest(cache_root):
    build = Builder()
    first = cache.load_or_build("test", PARTS, build)
    second = cache.load_or_build("test", dict(reversed(PARTS.items())), build)
    assert first == second == cache_root / "test" / cache.cache_key(**PARTS)
    assert build.calls == 1
    manifest = json.loads((first / "manifest.json").read_text())
    assert manifest["parts"] == PARTS and manifest["key"] == first.name
    assert manifest["files"]["model.safetensors"]["size"] == len(build.payload)
    assert set(manifest["files"]) == {"model.safetensors", "sub/result.json"}
    assert cache.verify_entry(first) is None


def test_miss_on_different_parts_builds_a_second_entry(cache_root):
    build = Builder()
    a = cache.load_or_build("test", PARTS, build)
    b = cache.load_or_build("test", {**PARTS, "lr": 2e-4}, build)
    assert a != b and build.calls == 2
    table = cache.entries("test")
    assert sorted(table["key"]) == sorted([a.name, b.name])
    assert set(table.columns) >= {"kind", "key", "created", "size_mb", "files", "path", "parts"}


def test_rebuild_replaces_a_complete_entry(cache_root):
    old = cache.load_or_build("test", PARTS, Builder(b"old"))
    build = Builder(b"new")
    new = cache.load_or_build("test", PARTS, build, rebuild=True)
    assert new == old and build.calls == 1
    assert (new / "model.safetensors").read_bytes() == b"new"
    assert cache.verify_entry(new) is None
    assert complete_entries(cache_root) == [new]
    assert not list((cache_root / "test").glob(".*"))  # no temp folder left behind


@pytest.mark.parametrize("error", [RuntimeError("build failed"), KeyboardInterrupt()])
def test_a_failed_rebuild_keeps_the_old_entry(cache_root, error):
    old = cache.load_or_build("test", PARTS, Builder(b"old"))

    def failing(folder: Path) -> None:
        (folder / "model.safetensors").write_bytes(b"half")
        raise error

    with pytest.raises(type(error)):
        cache.load_or_build("test", PARTS, failing, rebuild=True)
    assert cache.find("test", PARTS) == old
    assert (old / "model.safetensors").read_bytes() == b"old"
    assert not list((cache_root / "test").glob(".*"))


def test_find_returns_none_until_built():
    assert cache.find("test", PARTS) is None
    path = cache.load_or_build("test", PARTS, Builder())
    assert cache.find("test", PARTS) == path


def test_concurrent_callers_build_once(cache_root):
    calls = []

    def slow_build(folder: Path) -> None:
        calls.append(1)
        time.sleep(0.3)
        (folder / "x.bin.txt").write_text("done")

    results = []
    threads = [threading.Thread(target=lambda: results.append(cache.load_or_build("test", PARTS, slow_build)))
               for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len(set(results)) == 1


# --- corruption → warning and rebuild -----------------------------------------------------------


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-10])


DAMAGE = {
    "flipped bytes": (lambda e: _flip(e / "model.safetensors"), "different sha256"),
    "truncated": (lambda e: _truncate(e / "model.safetensors"), "bytes, the manifest says"),
    "deleted file": (lambda e: (e / "sub" / "result.json").unlink(), "sub/result.json is missing"),
    "deleted manifest": (lambda e: (e / "manifest.json").unlink(), "manifest.json is missing"),
    "garbled manifest": (lambda e: (e / "manifest.json").write_text("{not json"), "unreadable"),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_entry_is_rebuilt_with_a_warning(damage):
    build = Builder()
    entry = cache.load_or_build("test", PARTS, build)
    hurt, says = DAMAGE[damage]
    hurt(entry)
    assert cache.verify_entry(entry) is not None
    with pytest.warns(cache.CacheWarning, match=f"damaged: .*{says}.*rebuilt"):
        again = cache.load_or_build("test", PARTS, build)
    assert again == entry and build.calls == 2
    assert cache.verify_entry(again) is None
    assert (again / "model.safetensors").read_bytes() == build.payload


def test_a_damaged_entry_is_never_returned_by_find():
    entry = cache.load_or_build("test", PARTS, Builder())
    _flip(entry / "model.safetensors")
    with pytest.warns(cache.CacheWarning):
        assert cache.find("test", PARTS) is None
    assert not entry.exists()


# --- failed and killed builds -------------------------------------------------------------------


@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyboardInterrupt()])
def test_a_build_that_raises_leaves_nothing(cache_root, error):
    def failing(folder: Path) -> None:
        (folder / "model.safetensors").write_bytes(b"half")
        raise error

    with pytest.raises(type(error)):
        cache.load_or_build("test", PARTS, failing)
    assert complete_entries(cache_root) == []
    assert list((cache_root / "test").glob(".*")) == []  # the temp folder went too
    build = Builder()
    cache.load_or_build("test", PARTS, build)
    assert build.calls == 1


def test_a_build_killed_with_sigkill_leaves_no_complete_entry(cache_root):
    script = textwrap.dedent(f"""
        import os, signal
        from minikit.cache import load_or_build

        def build(folder):
            (folder / "model.safetensors").write_bytes(b"partial")
            os.kill(os.getpid(), signal.SIGKILL)

        load_or_build("test", {PARTS!r}, build)
    """)
    env = {**os.environ, "MINIKIT_CACHE": str(cache_root)}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    assert complete_entries(cache_root) == []
    assert len(list((cache_root / "test").glob(".*.tmp-*"))) == 1  # the dead build's temp folder
    build = Builder()
    entry = cache.load_or_build("test", PARTS, build)
    assert build.calls == 1 and cache.verify_entry(entry) is None
    assert list((cache_root / "test").glob(".*.tmp-*")) == []  # cleaned up by the rebuild


def test_build_may_not_write_the_manifest(cache_root):
    with pytest.raises(ValueError, match="manifest.json"):
        cache.load_or_build("test", PARTS, lambda folder: (folder / "manifest.json").write_text("{}"))
    assert complete_entries(cache_root) == []


def test_kind_must_be_a_plain_folder_name():
    with pytest.raises(ValueError, match="plain folder name"):
        cache.load_or_build("../escape", PARTS, Builder())


# --- clear and entries --------------------------------------------------------------------------


def test_clear_removes_entries_of_one_kind_or_all(cache_root):
    cache.load_or_build("a", PARTS, Builder())
    cache.load_or_build("a", {**PARTS, "lr": 1.0}, Builder())
    cache.load_or_build("b", PARTS, Builder())
    assert len(cache.entries()) == 3
    assert cache.clear("a") == 2
    assert list(cache.entries()["kind"]) == ["b"]
    assert cache.clear() == 1
    assert cache.entries().empty


# --- model folders ------------------------------------------------------------------------------


def test_save_and_load_model_dir_round_trip(tmp_path, tiny_bert_config, tokenizer):
    model = minikit.build_model(tiny_bert_config(vocab_size=tokenizer.vocab_size), num_labels=3, seed=0)
    folder = cache.save_model_dir(model, tokenizer, tmp_path / "m")
    assert (folder / "model.safetensors").is_file()
    assert not [p for p in folder.iterdir() if p.suffix in {".bin", ".pt", ".pkl"}]
    loaded, loaded_tokenizer = cache.load_model_dir(folder)
    ids = tokenizer(["a short text"], return_tensors="pt")
    with torch.no_grad():
        assert torch.equal(model(**ids).logits, loaded(**ids).logits)
    assert loaded_tokenizer("a short text")["input_ids"] == ids["input_ids"][0].tolist()


def test_load_model_dir_refuses_pickle_weights(tmp_path, tiny_bert_config, tokenizer):
    model = minikit.build_model(tiny_bert_config(vocab_size=tokenizer.vocab_size), num_labels=3, seed=0)
    folder = cache.save_model_dir(model, tokenizer, tmp_path / "m")
    torch.save(model.state_dict(), folder / "pytorch_model.bin")
    with pytest.raises(ValueError, match=r"pickle weights \['pytorch_model.bin'\].*safetensors only"):
        cache.load_model_dir(folder)


def test_load_model_dir_says_what_is_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="no config.json"):
        cache.load_model_dir(tmp_path)


# --- the fingerprint family --------------------------------------------------------------------------------


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_folder_sha256_hashes_names_and_contents_by_hand(tmp_path):
    folder = tmp_path / "model"
    (folder / "sub").mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    (folder / "sub" / "vocab.txt").write_text("a\nb\n")
    expected = _sha(f"config.json:{_sha('{}')};sub/vocab.txt:{_sha('a' + chr(10) + 'b' + chr(10))};")[:16]
    assert cache.folder_sha256(folder) == expected
    assert cache.file_sha256(folder / "config.json") == _sha("{}")


def test_folder_sha256_follows_contents_and_names_and_leaves_out_the_manifest(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text('{"layers": 2}')
    (folder / "weights.bin").write_bytes(b"\x00\x01")
    before = cache.folder_sha256(folder)
    assert cache.folder_sha256(folder) == before  # deterministic
    (folder / cache.MANIFEST).write_text('{"created": "now"}')
    assert cache.folder_sha256(folder) == before  # the manifest is left out
    (folder / "weights.bin").write_bytes(b"\x00\x02")
    changed = cache.folder_sha256(folder)
    assert changed != before  # one byte of a file
    (folder / "weights.bin").rename(folder / "weights2.bin")
    assert cache.folder_sha256(folder) not in (before, changed)  # the same bytes under another name
    json_only = cache.folder_sha256(folder, suffixes={".json"})
    (folder / "weights2.bin").write_bytes(b"\x07")
    assert cache.folder_sha256(folder, suffixes={".json"}) == json_only  # a filtered-out file changes nothing
    (folder / "config.json").write_text('{"layers": 3}')
    layers = '"layers"'
    assert cache.folder_sha256(folder, suffixes={".json"}) != json_only
    assert cache.folder_sha256(folder, suffixes={".json"}) == _sha(f"config.json:{_sha('{' + layers + ': 3}')};")[:16]


def test_model_sha256_follows_weights_and_configuration(tiny_bert_config):
    a = minikit.build_model(tiny_bert_config(), num_labels=3, seed=0)
    b = minikit.build_model(tiny_bert_config(), num_labels=3, seed=0)
    assert cache.model_sha256(a) == cache.model_sha256(b)  # same weights, same configuration
    with torch.no_grad():
        b.classifier.weight[0, 0] += 1e-3  # one weight
    assert cache.model_sha256(b) != cache.model_sha256(a)
    c = minikit.build_model(tiny_bert_config(), num_labels=3, seed=0)
    c.config.hidden_dropout_prob = 0.5  # the same weights, another configuration
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), c.state_dict().values()))
    assert cache.model_sha256(c) != cache.model_sha256(a)
    assert len(cache.model_sha256(a)) == 16


def test_tokenizer_sha256_ignores_the_state_a_call_leaves_but_not_the_vocabulary(tokenizer):
    tok = copy.deepcopy(tokenizer)
    before = cache.tokenizer_sha256(tok)
    tok(["a short text", "a much longer text than the first one"], padding="max_length", truncation=True, max_length=8)
    tok(["another"], padding=True, truncation=True, max_length=4)
    assert tok.backend_tokenizer.truncation["max_length"] == 4  # the call left its settings in the backend
    assert cache.tokenizer_sha256(tok) == before
    assert cache.tokenizer_sha256(copy.deepcopy(tokenizer)) == before
    tok.add_tokens(["zzyzxword"])
    assert cache.tokenizer_sha256(tok) != before


def test_texts_sha256_by_hand_and_in_order():
    assert cache.texts_sha256(["a", "b"]) == _sha('["a", "b"]')[:16]
    assert cache.texts_sha256(["b", "a"]) != cache.texts_sha256(["a", "b"])
    assert cache.texts_sha256(("a", "b")) == cache.texts_sha256(["a", "b"])  # a tuple is the same list
    assert cache.texts_sha256([["a", "b"], ["c", "d"]]) == _sha('[["a", "b"], ["c", "d"]]')[:16]


def test_splits_sha256_by_hand_and_its_order_labels_and_names():
    features = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["x", "y"])})
    rows = {"text": ["p", "q"], "label": [0, 1]}
    one = datasets.DatasetDict(train=datasets.Dataset.from_dict(rows, features=features))
    assert cache.splits_sha256(one) == _sha('["train", ["x", "y"], [0, 1], ["p", "q"]]')[:16]
    splits = make_splits(6, 3)
    before = cache.splits_sha256(splits)
    assert cache.splits_sha256(make_splits(6, 3)) == before
    reordered = datasets.DatasetDict({**splits, "train": splits["train"].select(list(range(6))[::-1])})
    assert cache.splits_sha256(reordered) != before  # the same rows in another order
    labels = list(splits["train"]["label"])
    labels[0] = (labels[0] + 1) % 3
    relabelled = datasets.DatasetDict({**splits, "train": splits["train"].remove_columns("label").add_column(
        "label", labels, feature=splits["train"].features["label"])})
    assert cache.splits_sha256(relabelled) != before  # one label
    renamed = datasets.DatasetDict({**splits, "train": splits["train"].cast_column(
        "label", datasets.ClassLabel(names=["a", "b", "c"]))})
    assert cache.splits_sha256(renamed) != before  # the same labels under other names
