"""Sanity checks on measurement tables (minikit.table_checks), on tables built here with known faults.

Chapter 1's stored profile table had all of them (issue 26): same-shape models 15× apart, a p95 8×
its p50, latency falling with size in the fit, and prose naming a column the table lacked.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

from minikit import profiling, table_checks
from minikit.timing import SuspectTimingWarning


def profiles(rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["name", "params_m", "latency_p50_ms", "latency_p95_ms"])


SANE = profiles([("tinybert-4", 14.4, 8.9, 9.0), ("minilm-l6", 22.7, 18.5, 19.3), ("minilm-l12", 33.4, 36.8, 38.5),
                 ("distilbert", 67.0, 69.4, 71.2), ("tinybert-6", 67.0, 69.1, 70.5), ("bert-base", 109.5, 153.7, 159.9)])
# chapter 1's stored table before issue 26, as the issue quotes it
ISSUE_26 = profiles([("minilm-l6", 22.7, 916.5, 930.0), ("distilbert", 67.0, 810.0, 840.0),
                     ("tinybert-6", 67.0, 54.0, 56.0), ("bert-base", 109.5, 105.0, 872.0)])


def test_a_sane_table_has_no_problems():
    assert table_checks.profile_problems(SANE) == []
    assert table_checks.profile_problems(SANE.set_index("name")) == []  # as chapter 1 shows it


def test_the_issue_26_table_is_caught_on_every_count():
    problems = "\n".join(table_checks.profile_problems(ISSUE_26, "ch01"))
    assert "ch01: distilbert at 810.0 ms is 15.0× tinybert-6 at 54.0 ms, though both are 6×768" in problems
    assert "bert-base has p95 872.0 ms, 8.3× its p50 105.0 ms (expected ≤ 5×)" in problems
    assert "bigger models measured faster" in problems  # 916 ms at 23 M, 105 ms at 110 M
    assert "re-measure on a quiet machine" in problems


def test_tables_without_latency_or_of_other_models_are_left_alone():
    assert table_checks.profile_problems(pd.DataFrame({"name": ["a"], "accuracy": [0.9]})) == []
    variants = profiles([("fp32", 22.7, 20.0, 21.0), ("int8", 22.7, 90.0, 95.0)])  # not catalog names: no shape
    assert table_checks.profile_problems(variants) == []


def test_html_tables_reads_back_what_pandas_wrote():
    for frame in (SANE, SANE.set_index("name")):
        read = table_checks.html_tables(frame.round(1).to_html())
        assert len(read) == 1
        back = read[0]
        assert list(back.columns)[-3:] == ["params_m", "latency_p50_ms", "latency_p95_ms"]
        assert back["latency_p50_ms"].tolist() == SANE["latency_p50_ms"].tolist()
    assert table_checks.html_tables(SANE.set_index("name").to_html())[0]["name"].tolist() == SANE["name"].tolist()


def notebook(tmp_path, prose: str, table: pd.DataFrame, printed: str = ""):
    cells = [{"cell_type": "markdown", "source": [prose], "metadata": {}},
             {"cell_type": "code", "source": ["profiles"], "metadata": {}, "execution_count": 1, "outputs": [
                 {"output_type": "execute_result", "execution_count": 1, "metadata": {},
                  "data": {"text/html": table.to_html(), "text/plain": table.to_string()}},
                 {"output_type": "stream", "name": "stdout", "text": printed}]}]
    path = tmp_path / "01_model_selection.ipynb"
    path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    return path


def test_a_stored_notebook_is_checked_table_by_table_and_against_its_prose(tmp_path):
    path = notebook(tmp_path, "The `measured_at` and `load_warning` columns say when and how.",
                    ISSUE_26.set_index("name"), printed="extrapolated (fit: latency ∝ params^-0.35)")
    problems = table_checks.notebook_problems(path)
    text = "\n".join(problems)
    assert "01_model_selection.ipynb cell 1: distilbert at 810.0 ms is 15.0× tinybert-6" in text
    assert "the size-class fit says latency ∝ params^-0.35" in text
    assert "the prose names a `measured_at` column, but no stored output shows one" in text
    assert "`load_warning` column" in text
    good = notebook(tmp_path, "The `measured_at` column says when.", SANE.assign(measured_at="2026-12-07"),
                    printed="fit: ∝ params^1.12, extrapolated to 500 M")
    assert table_checks.notebook_problems(good) == []
    assert table_checks.stored_problems(tmp_path) == []
    with pytest.raises(FileNotFoundError, match="No .ipynb files"):
        table_checks.stored_problems(tmp_path / "nowhere")


def test_a_stored_table_timed_on_a_busy_machine_fails_even_when_it_looks_sane(tmp_path):
    slowed = SANE.assign(latency_p50_ms=SANE["latency_p50_ms"] * 25, latency_p95_ms=SANE["latency_p95_ms"] * 25)
    assert table_checks.profile_problems(slowed) == []  # slowed evenly: nothing in the numbers shows it
    busy = "other processes kept 1.5 of 2 cores busy"
    path = notebook(tmp_path, "Profiles.", slowed.assign(load_warning=busy).set_index("name"),
                    printed=f"SuspectTimingWarning: Timed 2× on a busy machine ({busy}).")
    text = "\n".join(table_checks.notebook_problems(path))
    assert f"cell 1: the table was timed on a busy machine (load_warning: {busy})" in text
    assert "a stored output says timings were taken on a busy machine" in text
    quiet = notebook(tmp_path, "Profiles.", SANE.assign(load_warning="").set_index("name"))
    assert table_checks.notebook_problems(quiet) == []


def test_size_class_fit_flags_bigger_models_measured_faster():
    falling = pd.DataFrame({"name": ["tinybert-4", "minilm-l6", "bert-base"], "params_m": [14.4, 22.7, 109.5],
                            "latency_p50_ms": [300.0, 200.0, 100.0]})
    with pytest.warns(SuspectTimingWarning, match=r"params\^-0\.\d\d: bigger models measured faster"):
        table = profiling.size_class_table(falling)
    extrapolated = table[table["how"].str.contains("extrapolated")].iloc[0]
    assert extrapolated["how"].startswith("⚠ suspect fit: ∝ params^-") and not extrapolated["holds here"]


def test_size_class_fit_of_a_sane_table_is_not_flagged(recwarn):
    table = profiling.size_class_table(SANE)
    assert not [w for w in recwarn if issubclass(w.category, SuspectTimingWarning)]
    assert table["how"].str.contains(r"^fit: ∝ params\^1\.\d\d, extrapolated").any()
