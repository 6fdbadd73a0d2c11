"""``python -m minikit report``: the whole pipeline on a tiny random model and a tiny CSV, and its bad input."""

from __future__ import annotations

import json
import os
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
    names = ["baseline fp32 (PyTorch)", "pruned FFN 50% (PyTorch)", "int8 dynamic (PyTorch)", "int8 (ONNX Runtime)",
             "student fp32 (PyTorch)", "student int8 (ONNX Runtime)"]
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
    page = result.html.read_text()
    assert page.count("<svg") >= 2 and "<script" not in page  # self-contained: inline SVG, nothing to fetch
    for name in names:
        assert name in page
    # the served student is a working folder, with the student's own (pruned) vocabulary
    served = minikit.deployment.load_served_model(out / "served")
    assert len(served.predict(["the team won the cup"])) == 1
    # a second run reads every trained model from the cache: it only measures
    again = R.run_report(model_dir, data, out, config=FAST_CONFIG, repeats=3, progress=False, threads=1)
    assert again.table["accuracy"].tolist() == result.table["accuracy"].tolist()
    assert again.seconds["fine-tune"] < result.seconds["fine-tune"] + 60


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
