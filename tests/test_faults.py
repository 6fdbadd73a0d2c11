"""Faults: builds killed with SIGKILL, damaged entries, two processes building the same entry.

Issue 11, part 3. tests/test_cache.py checks each mechanism of minikit.cache once, in one process
(a build that kills itself, each kind of damage, threads racing). This file attacks it from
outside, the way a learner's machine does:

* a build SIGKILLed by another process at random moments (fixed seed), including the worst one,
  after the manifest is written and before the rename; and a real ``fine_tune`` of a tiny BERT
  killed at a random evaluation step: no entry is ever taken as complete, the next call rebuilds;
* a random byte flipped, or a random length cut off, in any file of an entry, and each byte of
  the manifest flipped in turn: detected and rebuilt with a ``CacheWarning``, never loaded (or,
  for the manifest's own metadata, harmless); for ``fine_tune``, a flipped weight byte that
  safetensors would load without complaint;
* processes (not threads) asking for the same uncached entry at once, and a builder killed while
  another process waits for its lock: one complete entry, built once, nobody blocked.

Outcomes are printed (``pytest -s``) and written to ``artifacts/faults.json``.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import datasets
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minikit
from minikit import cache
from minikit.training import TrainConfig, fine_tune

# Each test gets a MINIKIT_CACHE of its own (conftest.cache_root).
pytestmark = pytest.mark.usefixtures("cache_root")

ARTIFACT = Path(__file__).resolve().parent.parent / "artifacts" / "faults.json"
FORK = multiprocessing.get_context("fork")  # children start at once, with minikit already imported
OUTCOMES: dict = {}
CHUNK = 64 * 1024
CHUNKS = 40  # 2.5 MB written in 40 steps of ~5 ms: ~0.2 s of build to land a kill in


@pytest.fixture(scope="module", autouse=True)
def _report():
    yield
    ARTIFACT.parent.mkdir(exist_ok=True)
    ARTIFACT.write_text(json.dumps(OUTCOMES, indent=2))
    print(f"\nfault tests: {json.dumps(OUTCOMES)}")


def payload(i: int) -> bytes:
    return hashlib.sha256(str(i).encode()).digest() * (CHUNK // 32)


FULL = b"".join(payload(i) for i in range(CHUNKS))


def slow_build(folder: Path, log: Path | None = None, started=None, finish=None) -> None:
    """A build that takes a while: weights written chunk by chunk, then a small JSON file. With
    ``finish``, it waits for that event before its last chunk, so a kill before it lands mid-build."""
    if log is not None:
        with open(log, "a") as f:  # O_APPEND: one line per build, from any process
            f.write(f"{os.getpid()}\n")
    if started is not None:
        started.set()
    with open(folder / "model.safetensors", "wb") as f:
        for i in range(CHUNKS):
            if finish is not None and i == CHUNKS - 1:
                finish.wait(60)
            f.write(payload(i))
            f.flush()
            time.sleep(0.005)
    (folder / "config.json").write_text(json.dumps({"layers": 2}))


def quick_build(folder: Path) -> None:
    """The same files as slow_build, at once."""
    (folder / "model.safetensors").write_bytes(FULL)
    (folder / "config.json").write_text(json.dumps({"layers": 2}))


def _build_in_child(parts: dict, started, log: Path, finish=None, die_after_manifest: bool = False) -> None:
    if die_after_manifest:  # the worst moment: a complete-looking folder, not yet renamed into place
        write_manifest = cache._write_manifest

        def write_then_die(*args, **kwargs):
            write_manifest(*args, **kwargs)
            os.kill(os.getpid(), signal.SIGKILL)

        cache._write_manifest = write_then_die
    cache.load_or_build("faults", parts, lambda folder: slow_build(folder, log, started, finish))


def _entry(root: Path, parts: dict) -> Path:
    return root / "faults" / cache.cache_key(**parts)


def _builds(log: Path) -> int:
    return len(log.read_text().splitlines()) if log.exists() else 0


# --- (a) killed builds ---------------------------------------------------------------------------


# When the kill comes: at a random moment while the weights are written (fixed seed), right after
# the manifest is written and before the rename (the child kills itself there), or just after
# the entry was renamed into place (a kill that comes too late must not cost a rebuild).
MOMENTS = ["while writing"] * 5 + ["after the manifest, before the rename", "after the rename"]


def test_builds_killed_at_random_moments_never_leave_an_entry_taken_as_complete(cache_root, tmp_path):
    rng = random.Random(11)  # fixed seed: the same kill times on every run
    log = tmp_path / "builds.log"
    trials = []
    for trial, moment in enumerate(MOMENTS):
        parts = {"trial": trial}
        final = _entry(cache_root, parts)
        started, finish = FORK.Event(), FORK.Event()
        if moment != "while writing":
            finish.set()
        child = FORK.Process(target=_build_in_child,
                             args=(parts, started, log, finish, moment.startswith("after the manifest")))
        child.start()
        assert started.wait(30), "the child never started building"
        delay = rng.uniform(0.0, 0.15) if moment == "while writing" else 0.0
        time.sleep(delay)  # the build needs ~0.2 s, and waits for `finish` before its last chunk
        if moment == "after the rename":
            deadline = time.monotonic() + 30
            while not final.exists() and time.monotonic() < deadline:
                time.sleep(0.001)
        if not moment.startswith("after the manifest"):  # that child kills itself
            os.kill(child.pid, signal.SIGKILL)
        child.join(30)
        assert child.exitcode in (-signal.SIGKILL, 0)  # 0: it exited before the late kill arrived
        # Whatever the moment, nothing incomplete sits under the entry's name ...
        assert not final.exists() or cache.verify_entry(final) is None
        found = cache.find("faults", parts)
        assert found is None or (found / "model.safetensors").read_bytes() == FULL
        assert (found is None) == (moment != "after the rename")
        if moment.startswith("after the manifest"):  # complete-looking, under its temporary name only
            assert list((cache_root / "faults").glob(f".{final.name}.tmp-*/manifest.json"))
        # ... and the next call rebuilds exactly when there was no complete entry.
        before = _builds(log)
        entry = cache.load_or_build("faults", parts, lambda folder: slow_build(folder, log))
        rebuilt = _builds(log) - before
        assert rebuilt == (found is None)
        assert cache.verify_entry(entry) is None and (entry / "model.safetensors").read_bytes() == FULL
        assert not list((cache_root / "faults").glob(f".{entry.name}.tmp-*"))  # the dead build's leftovers went
        trials.append({"moment": moment, "delay_s": round(delay, 3), "killed": child.exitcode == -signal.SIGKILL,
                       "left": "nothing complete" if found is None else "a complete entry",
                       "next_call": "rebuilt" if rebuilt else "loaded"})
    OUTCOMES["sigkill_builds"] = trials


FAST = dict(epochs=1, batch_size=4, eval_every=1, learning_rate=3e-3)


def fault_splits() -> datasets.DatasetDict:
    """Three topics, 36 training rows: 9 steps of batch 4, an evaluation after each."""
    from helpers import make_splits

    return make_splits(36, 12)


@pytest.fixture
def one_thread():
    """Tiny models train fastest on one thread; two spin against each other on a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def tiny_dir(tmp_path, tiny_bert_config, tokenizer) -> Path:
    model = minikit.build_model(tiny_bert_config(vocab_size=tokenizer.vocab_size), num_labels=3, seed=0)
    return cache.save_model_dir(model, tokenizer, tmp_path / "tiny-bert")


TRAIN_SCRIPT = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, sys.argv[2])
    from test_faults import FAST, fault_splits
    from minikit.training import TrainConfig, fine_tune

    def report(history):
        print("step", int(history["step"].iloc[-1]), flush=True)
        time.sleep(0.2)  # the test's SIGKILL lands here, mid-training, not after the last step

    fine_tune(sys.argv[1], fault_splits(), TrainConfig(**FAST), callback=report, progress=False)
    print("done", flush=True)
""")


def test_fine_tune_killed_at_a_random_step_then_damaged_is_retrained_never_loaded(cache_root, tiny_dir, one_thread):
    """A real run: tiny BERT, 9 steps, an evaluation after each. Killed at a random one, it leaves no
    entry; the next call retrains. Then a flipped byte inside a tensor, which safetensors would load
    without a word (just a wrong weight): only the checksum catches it, and the next call retrains."""
    from safetensors.torch import load_file

    kill_at = random.Random(7).randint(1, 7)  # of 9 evaluations, one per step
    child = subprocess.Popen([sys.executable, "-c", TRAIN_SCRIPT, str(tiny_dir), str(Path(__file__).parent)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "OMP_NUM_THREADS": "1"})
    seen = []
    try:
        for line in child.stdout:  # each evaluation prints a line, then pauses 0.2 s: the kill lands in it
            seen.append(line.strip())
            if len(seen) == kill_at:
                child.send_signal(signal.SIGKILL)
                break
    finally:
        child.kill()
        _, err = child.communicate(timeout=30)
    assert len(seen) == kill_at and seen[-1].startswith("step"), f"training did not run: {seen} {err[-2000:]}"
    assert child.returncode == -signal.SIGKILL
    assert cache.entries("finetuned").empty  # nothing that looks finished ...
    assert list((cache_root / "finetuned").glob(".*.tmp-*"))  # ... only the dead run's temp folder

    config = TrainConfig(**FAST)
    again = fine_tune(str(tiny_dir), fault_splits(), config, progress=False)
    assert not again.from_cache and cache.verify_entry(again.cache_dir) is None  # trained again, not loaded
    assert not list((cache_root / "finetuned").glob(".*.tmp-*"))  # the dead run's temp folder went

    weights = again.cache_dir / "model.safetensors"
    trained = {k: v.clone() for k, v in load_file(weights).items()}  # clone: load_file maps the file
    data = bytearray(weights.read_bytes())
    data[len(data) - 1000] ^= 0x40  # in the last tensor's data, past the header
    weights.write_bytes(bytes(data))
    damaged = {k: v.clone() for k, v in load_file(weights).items()}  # loads fine: only the checksum can tell
    changed = [k for k in trained if not torch.equal(trained[k], damaged[k])]
    assert len(changed) == 1
    with pytest.warns(cache.CacheWarning, match="model.safetensors has a different sha256"):
        third = fine_tune(str(tiny_dir), fault_splits(), config, progress=False)
    assert not third.from_cache  # retrained, not loaded
    state = {k: v.cpu() for k, v in third.model.state_dict().items()}
    assert not torch.equal(state[changed[0]], damaged[changed[0]])  # the damaged weight did not get in
    for key, value in trained.items():  # CPU training with a seed: the same weights again
        torch.testing.assert_close(state[key], value)
    fourth = fine_tune(str(tiny_dir), fault_splits(), config, progress=False)
    assert fourth.from_cache and fourth.result.best_val_accuracy == third.result.best_val_accuracy
    OUTCOMES["fine_tune"] = {"killed_after_step": int(seen[-1].split()[1]), "of_steps": 9,
                             "complete_entries_after_kill": 0, "next_call": "retrained",
                             "flipped_byte_in": changed[0], "after_flip": "CacheWarning (sha256), retrained",
                             "then": "loaded from the cache"}


# --- (b) damaged entries -------------------------------------------------------------------------

DAMAGE = {"tried": 0, "detected and rebuilt": 0, "harmless (a manifest's own metadata)": 0}
_EXAMPLE = iter(range(10**9))


def small_build(folder: Path) -> None:
    """Like slow_build's files, small, so that many damaged copies are quick to check."""
    (folder / "model.safetensors").write_bytes(FULL[:4096])
    (folder / "config.json").write_text(json.dumps({"layers": 2}))


def _damage_then_load(cache_root: Path, damage) -> None:
    """Build an entry, damage it with ``damage(files)``, then load it: rebuilt if the damage touched
    anything checked, never loaded with other bytes than those built, never an exception."""
    parts, calls = {"example": next(_EXAMPLE)}, []
    entry = cache.load_or_build("faults", parts, lambda folder: (calls.append(1), small_build(folder)))
    files = sorted(p for p in entry.rglob("*") if p.is_file())  # config.json, manifest.json, model.safetensors
    built = {p.name: p.read_bytes() for p in files}
    target = damage(files)
    DAMAGE["tried"] += 1
    problem = cache.verify_entry(entry)
    if problem is None:  # only the manifest's own metadata (created, parts) may change unseen
        assert target.name == "manifest.json", f"damage to {target.name} not detected"
        assert all(p.read_bytes() == built[p.name] for p in files if p.name != "manifest.json")
        DAMAGE["harmless (a manifest's own metadata)"] += 1
        return
    with pytest.warns(cache.CacheWarning, match="damaged: .* rebuilt"):
        again = cache.load_or_build("faults", parts, lambda folder: (calls.append(1), small_build(folder)))
    assert len(calls) == 2, problem  # rebuilt, not loaded
    assert {p.name: p.read_bytes() for p in again.rglob("*") if p.is_file() and p.name != "manifest.json"} == \
        {k: v for k, v in built.items() if k != "manifest.json"}
    DAMAGE["detected and rebuilt"] += 1


@settings(max_examples=40, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(which=st.integers(0, 2), where=st.floats(0, 1, exclude_max=True), cut=st.booleans(), bit=st.integers(0, 7))
def test_a_random_byte_flipped_or_cut_off_anywhere_is_detected_and_rebuilt(cache_root, which, where, cut, bit):
    def damage(files: list[Path]) -> Path:
        target = files[which]
        data = bytearray(target.read_bytes())
        if cut:
            del data[int(where * len(data)):]
        else:
            data[int(where * len(data))] ^= 1 << bit
        target.write_bytes(bytes(data))
        return target

    _damage_then_load(cache_root, damage)
    OUTCOMES["damaged_entries"] = dict(DAMAGE)


def test_every_byte_of_the_manifest_flipped_is_detected_or_harmless(cache_root):
    """The manifest is what the checks trust: flip each of its bytes in turn (lowest bit)."""
    length = len(cache.load_or_build("faults", {"probe": 1}, small_build).joinpath("manifest.json").read_bytes())
    for position in range(length):
        def damage(files: list[Path], position=position) -> Path:
            manifest = next(p for p in files if p.name == "manifest.json")
            data = bytearray(manifest.read_bytes())
            data[position] ^= 1
            manifest.write_bytes(bytes(data))
            return manifest

        _damage_then_load(cache_root, damage)
    OUTCOMES["damaged_entries"] = dict(DAMAGE)


# --- (c) processes racing for the same entry -----------------------------------------------------


def _race(parts: dict, log: Path, go, results) -> None:
    go.wait(30)
    entry = cache.load_or_build("faults", parts, lambda folder: slow_build(folder, log))
    results.put((os.getpid(), str(entry), hashlib.sha256((entry / "model.safetensors").read_bytes()).hexdigest()))


def test_processes_asking_for_the_same_entry_at_once_build_it_once(cache_root, tmp_path):
    log, go, results = tmp_path / "builds.log", FORK.Event(), FORK.Queue()
    parts = {"race": 1}
    racers = [FORK.Process(target=_race, args=(parts, log, go, results)) for _ in range(4)]
    for racer in racers:
        racer.start()
    go.set()  # all at once
    answers = [results.get(timeout=60) for _ in racers]
    for racer in racers:
        racer.join(10)
        assert racer.exitcode == 0
    assert _builds(log) == 1  # one process built, three waited for its lock and loaded
    assert len({path for _, path, _ in answers}) == 1
    assert {digest for _, _, digest in answers} == {hashlib.sha256(FULL).hexdigest()}
    assert cache.verify_entry(Path(answers[0][1])) is None
    OUTCOMES["race_4_processes"] = {"builds": _builds(log), "complete_entries": len(cache.entries("faults"))}


def test_a_builder_killed_while_another_process_waits_does_not_block_or_corrupt_it(cache_root, tmp_path):
    log, results = tmp_path / "builds.log", FORK.Queue()
    parts = {"race": 2}
    started, go, never = FORK.Event(), FORK.Event(), FORK.Event()
    go.set()
    first = FORK.Process(target=_build_in_child, args=(parts, started, log, never))  # stops before its last chunk
    first.start()
    assert started.wait(30)  # it holds the lock and is writing
    second = FORK.Process(target=_race, args=(parts, log, go, results))
    second.start()
    time.sleep(0.05)  # the second now waits for the lock
    os.kill(first.pid, signal.SIGKILL)
    first.join(10)
    pid, path, digest = results.get(timeout=60)  # the kernel released the dead one's lock: no hang
    second.join(10)
    assert first.exitcode == -signal.SIGKILL and second.exitcode == 0
    assert _builds(log) == 2 and digest == hashlib.sha256(FULL).hexdigest()
    assert cache.verify_entry(Path(path)) is None
    assert not list((cache_root / "faults").glob(".*.tmp-*"))  # the dead build's temp folder was cleaned
    OUTCOMES["killed_builder_with_a_waiter"] = {"waiter_built_it": True, "builds": _builds(log)}


def test_nothing_warns_on_a_clean_cache(cache_root):
    with warnings.catch_warnings():
        warnings.simplefilter("error", cache.CacheWarning)
        entry = cache.load_or_build("faults", {"clean": 1}, quick_build)
        assert cache.load_or_build("faults", {"clean": 1}, quick_build) == entry
