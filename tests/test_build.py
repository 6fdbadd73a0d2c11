"""``python -m minikit build`` and ``MINIKIT_NO_TRAIN``: what is built, what is refused, and how it resumes.

The course's own steps train for minutes, so they run in ``make test``'s build step (from an empty
cache), and the notebook passes after it prove, with ``MINIKIT_NO_TRAIN=1``, that the build left
nothing for a notebook to train. Here: the guard on a real (tiny) fine-tune, the key's code
fingerprint, and the command's behaviour on small stand-in steps.
"""

from __future__ import annotations

import json
from pathlib import Path

import helpers
import pytest
from helpers import make_splits

import minikit
from minikit import build as B
from minikit import cache
from minikit.report import main
from minikit.training import TrainConfig, fine_tune

FAST = {**helpers.FAST, "epochs": 1}
NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


@pytest.fixture
def tiny_dir(tmp_path, tiny_bert_config, tokenizer) -> Path:
    model = minikit.build_model(tiny_bert_config(vocab_size=tokenizer.vocab_size), num_labels=3, seed=0)
    return cache.save_model_dir(model, tokenizer, tmp_path / "tiny-bert")


# --- MINIKIT_NO_TRAIN ------------------------------------------------------------------------------


def test_no_train_makes_a_fine_tune_raise_then_a_cached_one_loads(cache_root, tiny_dir, monkeypatch, capsys):
    splits, config = make_splits(), TrainConfig(**FAST)
    monkeypatch.setenv("MINIKIT_NO_TRAIN", "1")
    with pytest.raises(cache.TrainingForbiddenError) as refused:
        fine_tune(str(tiny_dir), splits, config, progress=False)
    message = str(refused.value)
    assert "MINIKIT_NO_TRAIN=1 forbids training" in message and "a fine-tuned classifier" in message
    assert "run: python -m minikit build --only 03" in message and "unset MINIKIT_NO_TRAIN" in message
    assert not [p for p in (cache_root / "finetuned").iterdir() if p.is_dir()], "a refused build left a folder behind"

    monkeypatch.setenv("MINIKIT_NO_TRAIN", "0")  # 0, false, no and empty allow training
    first = fine_tune(str(tiny_dir), splits, config, progress=False)
    assert not first.from_cache
    notice = capsys.readouterr().err
    assert "minikit: building a fine-tuned classifier (not in the cache yet)" in notice
    assert "min on 2 cores" in notice and "python -m minikit build --only 03" in notice

    monkeypatch.setenv("MINIKIT_NO_TRAIN", "1")  # cached: loads, trains nothing, says nothing
    again = fine_tune(str(tiny_dir), splits, config, progress=False)
    assert again.from_cache and again.cache_dir == first.cache_dir and again.test_accuracy == first.test_accuracy
    assert "training" not in capsys.readouterr().err


def test_no_train_leaves_other_kinds_alone(cache_root, monkeypatch):
    monkeypatch.setenv("MINIKIT_NO_TRAIN", "true")
    entry = cache.load_or_build("benchmarks", {"x": 1}, lambda folder: (folder / "row.json").write_text("{}"))
    assert (entry / "row.json").is_file()  # timings and other untrained kinds are the notebook's own work
    with pytest.raises(cache.TrainingForbiddenError, match="not part of the course build"):
        cache.load_or_build("pruned", {"x": 1}, lambda folder: None)  # minikit report's own artifact


def test_a_trained_entry_is_keyed_by_its_code_so_a_change_rebuilds_it(cache_root, monkeypatch):
    calls = []

    def build(folder: Path) -> None:
        calls.append(1)
        (folder / "weights.txt").write_text(str(len(calls)))

    first = cache.load_or_build("finetuned", {"model": "m"}, build)
    assert cache.load_or_build("finetuned", {"model": "m"}, build) == first and len(calls) == 1
    manifest = json.loads((first / cache.MANIFEST).read_text())
    assert manifest["parts"]["code"] == cache.code_fingerprint("finetuned")
    assert cache.find("finetuned", {"model": "m"}) == first
    # training.py edited: same arguments, another key; the old entry is not loaded
    monkeypatch.setitem(cache._code_fingerprints, "finetuned", "0" * 16)
    assert cache.find("finetuned", {"model": "m"}) is None
    second = cache.load_or_build("finetuned", {"model": "m"}, build)
    assert second != first and len(calls) == 2 and (second / "weights.txt").read_text() == "2"


def test_every_trained_kind_names_modules_that_exist_and_a_known_chapter():
    for kind, trained in cache.TRAINED_KINDS.items():
        assert trained.chapter in (*B.CHAPTERS, ""), kind
        assert len(cache.code_fingerprint(kind)) == 16
    assert {step.chapter for step in B.STEPS} <= set(B.CHAPTERS)


# --- the command -----------------------------------------------------------------------------------


def _steps(log: list[str], interrupt_at: str | None = None) -> list[B.Step]:
    """Three stand-in steps writing trained entries (kind 'finetuned'), the second of them in chapter 07."""
    def step(name: str):
        def run(course) -> None:
            if name == interrupt_at:
                raise KeyboardInterrupt
            log.append(name)
            cache.load_or_build("finetuned", {"step": name}, lambda folder: (folder / "model.txt").write_text(name * 200_000))
        return run

    return [B.Step("first", "03", step("first")), B.Step("second", "07", step("second")),
            B.Step("third", "10", step("third"))]


def test_an_interrupted_build_resumes_where_it_stopped(cache_root):
    log: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        B.build(steps=_steps(log, interrupt_at="second"), progress=False, threads=1)
    assert log == ["first"]
    result = B.build(steps=_steps(log), progress=False, threads=1)
    assert list(result.table["status"]) == ["cached", "built", "built"]
    assert result.table["MB"].iloc[0] == 0 and result.table["MB"].iloc[1] > 0
    assert set(result.table.columns) >= {"artifact", "chapter", "seconds", "MB", "peak MB"}
    again = B.build(steps=_steps(log), progress=False, threads=1)
    assert list(again.table["status"]) == ["cached"] * 3


def test_list_looks_without_building(cache_root, monkeypatch):
    monkeypatch.setenv("MINIKIT_NO_TRAIN", "0")
    log: list[str] = []
    B.build(steps=_steps(log)[:1], progress=False, threads=1)
    listed = B.build(steps=_steps(log), progress=False, dry_run=True, threads=1)
    assert list(listed.table["status"]) == ["cached", "to build", "to build"]
    assert listed.table["missing"].iloc[1] == "a fine-tuned classifier"
    assert len(cache.entries("finetuned")) == 1, "--list built something"
    import os
    assert os.environ["MINIKIT_NO_TRAIN"] == "0", "the caller's MINIKIT_NO_TRAIN was not restored"


def test_the_build_trains_even_when_the_caller_forbids_training(cache_root, monkeypatch):
    monkeypatch.setenv("MINIKIT_NO_TRAIN", "1")
    result = B.build(steps=_steps([])[:1], progress=False, threads=1)
    assert list(result.table["status"]) == ["built"]


def test_a_cache_that_cannot_be_written_fails_before_any_work(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("MINIKIT_CACHE", str(blocker / "cache"))
    log: list[str] = []
    with pytest.raises(B.BuildError, match="Cannot write the minikit cache .*Fix: set MINIKIT_CACHE"):
        B.build(steps=_steps(log), progress=False, threads=1)
    assert log == []


def test_cli_refuses_an_unknown_chapter_and_lists_the_known_ones(cache_root, capsys):
    assert main(["build", "--only", "nonsense"]) == 2
    err = capsys.readouterr().err
    assert "--only 'nonsense' is not a chapter" in err and "01, 02, 03, 03b, 04" in err and "10" in err


def test_cli_unwritable_cache_is_an_error_with_the_fix(tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    monkeypatch.setenv("MINIKIT_CACHE", str(blocker))
    assert main(["build", "--only", "01"]) == 2
    assert "Fix: set MINIKIT_CACHE" in capsys.readouterr().err


@pytest.mark.parametrize(("given", "chapters"), [
    (["7"], ["07"]), (["07_distillation.ipynb"], ["07"]), (["3b"], ["03b"]), (["03,03b", "10"], ["03", "03b", "10"]),
    (["09", "9"], ["09"]),
])
def test_only_accepts_chapter_numbers_and_notebook_names(given, chapters):
    assert B.parse_chapters(given) == chapters


def test_only_selects_what_a_chapter_loads_in_build_order():
    names = [step.name for step in B.steps_for(["08"])]
    assert names == ["prepared BBC News corpus", "fine-tuned baseline", "student, distilled"]
    assert B.steps_for(["01"]) == []
    every = B.steps_for(None)
    assert [s.name for s in every] == [s.name for s in B.STEPS]
    # dependency order: a step comes after the corpus and the baseline it starts from
    assert every[0].chapter == "02" and every[1].name == "fine-tuned baseline"


def test_the_chapters_are_the_course_notebooks_and_the_map_covers_each():
    stems = sorted(path.name.split("_")[0] for path in NOTEBOOKS.glob("[0-9]*.ipynb"))
    assert stems == sorted(B.CHAPTERS)
    course = B.course_map()
    assert list(course["chapter"]) == list(B.CHAPTERS)
    assert course.set_index("chapter").loc["01", "artifacts"].startswith("(none")
    assert "student, distilled" in course.set_index("chapter").loc["10", "artifacts"]


def test_readme_shows_the_course_map_the_build_follows():
    readme = (NOTEBOOKS.parent / "README.md").read_text(encoding="utf-8")
    start = readme.index("<!-- course map:")
    shown = readme[readme.index("\n", start) + 1:readme.index("<!-- end course map -->")].strip()
    assert shown == B.course_map_markdown(), "README's course map is stale: paste minikit.build.course_map_markdown()"
