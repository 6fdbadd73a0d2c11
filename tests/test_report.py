"""``python -m minikit report``: the whole pipeline on a tiny random model and a tiny CSV, and its bad input."""

from __future__ import annotations

import csv
import json
import os
import random
import re
import subprocess
import sys

import pandas as pd
import pytest
from helpers import FAST_CONFIG

import minikit
from minikit import report as R


@pytest.fixture(scope="module")
def tiny_inputs(tmp_path_factory):
    """A 2-layer random BERT with the embedded tokenizer, and a 90-row, 3-topic CSV (no duplicates)."""
    from helpers import tiny_model_and_csv

    return tiny_model_and_csv(tmp_path_factory.mktemp("report-inputs"), layers=2)


def test_report_runs_the_pipeline_and_writes_html_json_csv(tiny_inputs, tmp_path):
    model_dir, data = tiny_inputs
    out = tmp_path / "report"
    result = R.run_report(model_dir, data, out, config=FAST_CONFIG, repeats=3, progress=False, threads=1)
    names = ["baseline fp32 (PyTorch)", "pruned FFN 50% (PyTorch)", "int8 dynamic, Linear only (PyTorch)",
             "int8 (ONNX Runtime)", "student fp32 (PyTorch)", "student int8 (ONNX Runtime)",
             "student at the limit int8 (ONNX Runtime)"]
    assert result.table["name"].tolist() == names
    for path in (result.html, result.json, result.csv):
        assert path.is_file() and path.parent == out
    table = pd.read_csv(result.csv)
    assert table["name"].tolist() == names and (table["latency_p50_ms"] > 0).all()
    assert table.set_index("name").loc["baseline fp32 (PyTorch)", "speedup"] == pytest.approx(1.0)
    payload = json.loads(result.json.read_text())
    assert [v["name"] for v in payload["variants"]] == names
    assert payload["final"] == "student int8 (ONNX Runtime)" and len(payload["claims"]) == 3
    assert set(payload["seconds"]) == set(R.STEPS) - {"write"}
    graphs = payload["onnx_graph"]  # the ONNX rows' graphs, fused before int8 (issue 24)
    assert set(graphs) == {"int8 (ONNX Runtime)", "student int8 (ONNX Runtime)", R.LIMIT}
    assert all(g["fused"] == bool(g["fused_ops"]) for g in graphs.values())
    assert "graphs fused before int8" in result.html.read_text()
    assert {"accuracy_low", "accuracy_high", "delta_low", "delta_high", "p_value", "change"} <= set(table.columns)
    assert (table["accuracy_low"] <= table["accuracy"]).all() and (table["accuracy"] <= table["accuracy_high"]).all()
    assert result.quality["model"].iloc[-2].startswith("majority class") and \
        result.quality["model"].iloc[-1].startswith("chance")
    assert payload["learned"] == result.evidence.learned
    assert payload["majority_class"]["n"] == int(table["n_eval"].iloc[0])
    for verdict in [*result.claims["claim"], *result.claims["target"]]:
        assert verdict in {"holds", "fails"} or verdict.startswith(("cannot tell (n = ", "no verdict"))
    page = result.html.read_text()
    assert page.count("<svg") >= 2 and "<script" not in page  # self-contained: inline SVG, nothing to fetch
    assert ">+nan<" not in page and ">nan<" not in page  # the baseline's Δ against itself reads "–"
    for name in names:
        assert name in page
    # the served student is a working folder, with the student's own (pruned) vocabulary
    served = minikit.deployment.load_served_model(out / "served")
    assert len(served.predict(["the team won the cup"])) == 1
    limit = minikit.deployment.load_served_model(out / "served-limit")  # issue 24's student at the limit, served too
    assert len(limit.predict(["the team won the cup"])) == 1
    # a second run reads every trained model from the cache: it only measures
    again = R.run_report(model_dir, data, out, config=FAST_CONFIG, repeats=3, progress=False, threads=1)
    assert again.table["accuracy"].tolist() == result.table["accuracy"].tolist()
    assert again.seconds["fine-tune"] < result.seconds["fine-tune"] + 60


def _random_label_csv(path, rows: int = 60) -> None:
    """Texts of one vocabulary whose labels are drawn at random: nothing in a text says its label."""
    rng = random.Random(1)
    words = "the a market vote goal team bank bill cup shares party match profit minister".split()
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["message", "category"])
        for i in range(rows):
            writer.writerow([f"note {i}: " + " ".join(rng.choice(words) for _ in range(10)), rng.choice("xyz")])


def test_a_chance_level_baseline_gets_a_warning_and_no_verdict(tiny_inputs, tmp_path, capsys):
    """Issue 25: a model that learned nothing was reported "✓ claim holds, −0.00 points". Now: a warning, no ✓."""
    model_dir, _ = tiny_inputs
    data = tmp_path / "random.csv"
    _random_label_csv(data)
    out = tmp_path / "report"
    assert R.main(["report", "--model", str(model_dir), "--dataset", str(data), "--text-column", "message",
                   "--label-column", "category", "--out", str(out), "--threads", "1", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    payload = json.loads((out / "results.json").read_text())
    assert payload["learned"] is False
    assert "did not learn" in payload["warning"] and "--text-column" in payload["warning"]  # CLI terms
    assert all(c["claim"].startswith("no verdict") and c["target"].startswith("no verdict") for c in payload["claims"])
    assert printed.count("no verdict (see the warning)") == 6  # claim and target, for size, latency, accuracy
    assert payload["steps"] >= minikit.training.MIN_STEPS  # the small-data recipe ran its minimum of steps
    page = (out / "report.html").read_text()
    assert "✓" not in page and "Warning." in page and "majority class" in page
    assert "WARNING: The baseline did not learn" in printed and "✓" not in printed


def _write_csv(path, header, rows) -> str:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return str(path)


@pytest.mark.parametrize("case, extra, expected", [
    ("own columns", [], "--text-column <column> and --label-column <column>"),
    ("one class", ["--text-column", "message", "--label-column", "category"], "--label-column <column>"),
    ("empty texts", ["--text-column", "message", "--label-column", "category"], "--text-column <column>"),
    ("empty rows", ["--text-column", "message", "--label-column", "category"], "--drop-empty True"),
    ("too few rows", ["--text-column", "message", "--label-column", "category"], "fewer than 3 rows"),
    ("not utf-8", ["--text-column", "message", "--label-column", "category"], "--encoding cp1252"),
    ("unknown label", ["--text-column", "message", "--label-column", "category", "--labels", "a,b"],
     "--labels ..."),
])
def test_every_cli_error_names_cli_options(tmp_path, capsys, case, extra, expected):
    header = ["message", "category"]
    rows = {"own columns": [[f"text {i}", "ab"[i % 2]] for i in range(12)],
            "one class": [[f"text {i}", "a"] for i in range(12)],
            "empty texts": [["", "ab"[i % 2]] for i in range(12)],
            "empty rows": [[f"text {i}" if i else "", "ab"[i % 2]] for i in range(12)],
            "too few rows": [[f"text {i}", "abcd"[i % 4]] for i in range(8)],
            "not utf-8": [[f"text {i}", "ab"[i % 2]] for i in range(12)],
            "unknown label": [[f"text {i}", "abc"[i % 3]] for i in range(12)]}[case]
    data = _write_csv(tmp_path / "data.csv", header, rows)
    if case == "not utf-8":
        (tmp_path / "data.csv").write_bytes((tmp_path / "data.csv").read_bytes() + "caf\xe9,a\n".encode("cp1252"))
    assert R.main(["report", "--dataset", data, *extra, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert expected in err
    assert not re.search(r"\b(text_column|label_column|labels|encoding|drop_empty)=", err), err  # no Python syntax


def test_the_same_errors_from_python_name_arguments(tmp_path):
    data = _write_csv(tmp_path / "data.csv", ["message", "category"], [[f"text {i}", "ab"[i % 2]] for i in range(12)])
    with pytest.raises(minikit.DataError, match=r"text_column=<column> and label_column=<column>"):
        R.run_report(dataset=data, out=tmp_path / "out", progress=False)


@pytest.mark.parametrize("command", ["report", "build"])
def test_threads_below_one_are_refused_in_cli_terms(tmp_path, capsys, command):
    out = ["--out", str(tmp_path / "out")] if command == "report" else ["--list"]
    assert R.main([command, "--threads", "0", *out]) == 2
    err = capsys.readouterr().err
    assert "--threads 0: expected a whole number of threads ≥ 1" in err and "threads=" not in err


def test_labels_option_is_a_comma_separated_list(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        R.main(["report", "--labels", "a,,b", "--out", str(tmp_path)])
    assert exit_.value.code == 2 and "empty label name" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        R.main(["report", "--labels", "a,b,a", "--out", str(tmp_path)])
    assert "names a label twice" in capsys.readouterr().err


def test_report_cli_refuses_bad_input_with_the_fix(tmp_path, capsys):
    assert R.main(["report", "--model", "no-such-model", "--out", str(tmp_path / "a")]) == 2
    assert "no-such-model" in capsys.readouterr().err
    assert R.main(["report", "--dataset", "no-such-dataset", "--out", str(tmp_path / "b")]) == 2
    assert "no-such-dataset" in capsys.readouterr().err
    assert R.main(["report", "--dataset", str(tmp_path / "missing.csv"), "--out", str(tmp_path / "c")]) == 2
    assert "does not exist" in capsys.readouterr().err
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    assert R.main(["report", "--out", str(a_file)]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_report_refuses_an_unwritable_folder(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(R.ReportError, match="Cannot write the report"):
            R.writable_folder(locked / "report")
    finally:
        locked.chmod(0o700)


def test_unwritable_output_path_is_refused_before_any_work(tmp_path, monkeypatch):
    def no_write(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(type(tmp_path), "write_text", no_write)
    with pytest.raises(R.ReportError, match="Cannot write the report.*Permission denied.*Fix"):
        R.writable_folder(tmp_path / "out")


def test_ctrl_c_says_the_rerun_resumes(monkeypatch, tmp_path, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(R, "run_report", interrupted)
    assert R.main(["report", "--out", str(tmp_path)]) == 130
    err = capsys.readouterr().err
    assert "Interrupted" in err and "run the same command again" in err


def test_python_dash_m_minikit_shows_the_report_command():
    done = subprocess.run([sys.executable, "-m", "minikit", "report", "--help"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and "--model" in done.stdout and "--out" in done.stdout


def test_the_harder_built_in_task_is_one_option(monkeypatch, tmp_path):
    """`--dataset bbc-headlines` reaches run_report by name, and its splits are prepare_dataset's (the chapters')."""
    seen = {}

    def record(model, dataset, out, **kwargs):
        seen["dataset"] = dataset
        seen["splits"] = R._data(model, dataset, {}, 42)
        raise KeyboardInterrupt  # stop here: the pipeline itself is the test above's

    monkeypatch.setattr(R, "run_report", record)
    assert R.main(["report", "--dataset", "bbc-headlines", "--out", str(tmp_path)]) == 130
    assert seen["dataset"] == minikit.BBC_HEADLINES
    data, splits, notes = seen["splits"]
    assert data == minikit.BBC_HEADLINES and notes == []
    assert max(len(text.split()) for text in splits["test"]["text"]) <= 15  # headlines, not articles
