"""The glossary and the sources page: every relative link to a Markdown file resolves, and every anchor into GLOSSARY.md or SOURCES.md names a heading."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
GLOSSARY = NOTEBOOKS / "GLOSSARY.md"
SOURCES = NOTEBOOKS / "SOURCES.md"
# The anchors the chapters link to (issue 22's shared list): the glossary has exactly these.
ANCHORS = {"logits", "softmax", "safetensors", "wordpiece", "tokenizer", "vnni-and-amx", "nats", "macro-f1",
           "confusion-matrix", "onnx", "onnx-runtime", "int8", "fp16-and-bf16", "pareto-front", "fake-quantization",
           "quantization-aware-training", "straight-through-estimator", "knowledge-distillation", "attention-map",
           "temperature",
           "p50-and-p95", "throughput", "sparsity", "structured-pruning", "flops", "wilson-interval", "paired-test"}
LINK = re.compile(r"\]\(([^)\s:]*?([A-Za-z_]+)\.md)(#[^)\s]*)?\)")  # a relative link to a Markdown file


def github_anchor(heading: str) -> str:
    """GitHub's anchor for a Markdown heading: lowercase, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def glossary_anchors() -> list[str]:
    return [github_anchor(line[3:]) for line in GLOSSARY.read_text(encoding="utf-8").splitlines()
            if line.startswith("## ")]


def documents() -> list[tuple[Path, str]]:
    """Every Markdown file and every notebook's Markdown cells, as (path, text)."""
    found = [(p, p.read_text(encoding="utf-8")) for p in sorted(ROOT.rglob("*.md"))
             if not any(part.startswith(".") or part in {"node_modules", "artifacts"} or part.endswith("egg-info")
                        for part in p.relative_to(ROOT).parts)]
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        found.append((path, "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")))
    return found


def test_github_anchor_follows_githubs_rule():
    assert github_anchor("VNNI and AMX") == "vnni-and-amx"
    assert github_anchor("p50 and p95") == "p50-and-p95"
    assert github_anchor("FP16 and BF16") == "fp16-and-bf16"
    assert github_anchor("Macro-F1") == "macro-f1"
    assert github_anchor("FLOPs") == "flops"


def test_the_glossary_has_exactly_the_shared_anchors_once_each():
    anchors = glossary_anchors()
    assert len(anchors) == len(set(anchors)), "a heading appears twice"
    assert set(anchors) == ANCHORS, f"missing {sorted(ANCHORS - set(anchors))}, extra {sorted(set(anchors) - ANCHORS)}"


def test_every_glossary_entry_says_where_the_course_uses_it():
    entries = re.split(r"^## .*$", GLOSSARY.read_text(encoding="utf-8"), flags=re.M)[1:]
    for heading, body in zip(glossary_anchors(), entries):
        assert re.search(r"[Cc]hapters? \d", body), f"#{heading} names no chapter"


@pytest.mark.parametrize("path, text", documents(), ids=lambda v: v.name if isinstance(v, Path) else "")
def test_every_link_to_a_markdown_file_resolves_and_its_glossary_or_sources_anchor_too(path, text):
    anchors = set(glossary_anchors())
    for match in LINK.finditer(text):
        target, anchor = (path.parent / match.group(1)).resolve(), match.group(3)
        assert target.exists(), f"{path.name} links to {match.group(1)}, which does not exist"
        if target == GLOSSARY.resolve() and anchor:
            assert anchor[1:] in anchors, f"{path.name} links to GLOSSARY.md{anchor}: no such heading"
        if target == SOURCES.resolve() and anchor:
            sources_anchors = {github_anchor(line.lstrip("#")) for line in SOURCES.read_text(encoding="utf-8")
                               .splitlines() if line.startswith("#")}
            assert anchor[1:] in sources_anchors, f"{path.name} links to SOURCES.md{anchor}: no such heading"


def test_the_readme_and_every_chapter_that_cites_the_source_link_the_sources_page():
    assert "notebooks/SOURCES.md" in (ROOT / "README.md").read_text(encoding="utf-8")
    assert "notebooks/GLOSSARY.md" in (ROOT / "README.md").read_text(encoding="utf-8")
    for name in ("01_model_selection", "09_compression_lab", "10_adaptive_inference"):
        text = dict((p.stem, t) for p, t in documents() if p.suffix == ".ipynb")[name]
        assert "](SOURCES.md" in text, f"{name} mentions the source texts without linking SOURCES.md"
