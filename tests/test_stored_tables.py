"""The measurement tables stored in the course's executed notebooks are sane (issue 26).

Same-shape models within 2× of each other, p95 ≤ 5× p50, latency rising with size in the
size-class fit, and every column the prose names shown in some stored output. A failure names
the notebook, the numbers and the fix: re-execute on a quiet machine (``make execute``).
"""

from __future__ import annotations

from pathlib import Path

from minikit.table_checks import stored_problems

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def test_stored_measurement_tables_are_sane():
    problems = stored_problems(NOTEBOOKS)
    assert not problems, f"{len(problems)} problem(s) in the stored outputs:\n" + "\n".join(problems)
