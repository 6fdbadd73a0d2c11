"""Where the course and the learner tests' artifacts are."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
ARTIFACTS = ROOT / "artifacts"  # gitignored: screenshots, budgets JSON, build logs


def course_notebooks() -> list[Path]:
    """The course's notebooks in course order (``01_…``, ``02_…``, ``03b_…``), as the budget bench finds them."""
    return sorted(NOTEBOOKS.glob("[0-9]*.ipynb"))
