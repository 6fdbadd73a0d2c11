"""Chapter 8 — deployment: a model folder ONNX Runtime serves, a container for it, edge vs cloud vs
hybrid from measured numbers, and the folder a latency budget picks. Its speed by batch size and
under load is ``minikit.load_testing``.

The server itself (adaptive batching, the HTTP API, ``serve``) lives in ``minikit.server``,
which stands alone so a container needs only that file; ``load_served_model``, ``create_app``,
``serve`` and ``background_server`` are reachable from here too.

The path: ``export_for_serving`` (ONNX, int8, checked against PyTorch through the served
tokenizer) → ``load_served_model`` → ``load_testing.latency_vs_batch`` → ``background_server`` +
``load_testing.load_test`` / ``batching_comparison`` → ``write_container`` → ``deployment_scenarios``.
"""

from __future__ import annotations

import datetime
import json
import shutil
import sys
import time
from collections import Counter
from importlib import metadata
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from minikit import server
from minikit.benchmark import Benchmark, Pick, pick_variant
from minikit.cache import file_sha256
from minikit.errors import OnnxMismatchError
from minikit.onnx_graph import export_int8, fusion_table, op_counts
from minikit.quantization import EXPORT_TOLERANCE, INT8_TOLERANCE
from minikit.server import (  # the served model's side, re-exported: deployment.serve, deployment.create_app…
    MANIFEST_FILE,
    MODEL_FILE,
    TOKENIZER_FILE,
    ModelFolderError,
    ServedModel,
    background_server,
    create_app,
    load_served_model,
    serve,
)
from minikit.system import PeakRSS
from minikit.timing import measure_quietly

# Texts the export checks on when none are given: int8 must get real text right; random ids are
# out of distribution and would hide a broken tokenizer.
CHECK_TEXTS = (
    "Shares in the bank fell sharply after it reported a loss for the third quarter.",
    "The striker scored twice as the champions won the cup final on Saturday.",
    "The minister said the election would be held in the spring.",
    "A new phone with a faster chip and a better camera goes on sale next month.",
    "The film won three awards, including best actress, at the ceremony in London.",
    "Oil prices rose.",
)

# Packages the container installs, pinned to the versions installed here (the server imports only these).
CONTAINER_PACKAGES = ("onnxruntime", "tokenizers", "numpy", "fastapi", "pydantic", "uvicorn")


# --------------------------------------------------------------------------------------------
# A folder to serve: ONNX (int8) + tokenizer.json + manifest with checksums
# --------------------------------------------------------------------------------------------


def _labels(model: PreTrainedModel) -> list[str]:
    id2label = getattr(model.config, "id2label", None) or {}
    return [str(id2label.get(i, f"LABEL_{i}")) for i in range(model.config.num_labels)]


def _torch_inputs(tokenizer, texts: Sequence[str], max_length: int) -> dict[str, torch.Tensor]:
    encoded = tokenizer(list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    return {k: encoded[k] for k in ("input_ids", "attention_mask")}


def _check_accuracy(value: Any, where: str) -> float:
    """``value`` as a fraction in [0, 1], or a ValueError saying what was wrong (``where``: whose value it is)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{where}: accuracy={value!r} is not a number. Fix: give the measured accuracy as a "
                         "fraction, e.g. accuracy=0.915.")
    number = float(value)
    if not 0.0 <= number <= 1.0:  # also refuses NaN
        hint = f" (a percentage? then accuracy={number / 100:g})" if 1.0 < number <= 100.0 else ""
        raise ValueError(f"{where}: accuracy={value!r} is outside [0, 1]{hint}. Fix: give it as a fraction, "
                         "e.g. accuracy=0.915 for 91.5 %.")
    return number


def export_for_serving(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, out_dir: str | Path,
                       quantize: bool = True, max_length: int = 128, texts: Sequence[str] | None = None,
                       name: str = "model", *, accuracy: float | None = None,
                       accuracy_note: str | None = None, fuse: bool = True) -> Path:
    """Write ``model.onnx`` (int8 unless ``quantize=False``), ``tokenizer.json`` and ``manifest.json`` to ``out_dir``.

    The manifest holds the labels, ``max_length``, the ONNX inputs and each file's sha256,
    which ``load_served_model`` checks. The folder is checked end to end: its tokenizer and
    ONNX model, as served, must give the PyTorch model's logits on ``texts`` (default
    ``CHECK_TEXTS``) within ``INT8_TOLERANCE`` (int8) or ``EXPORT_TOLERANCE`` (float), else
    ``OnnxMismatchError``.

    ``accuracy`` (a fraction in [0, 1]) and ``accuracy_note`` (what it was measured on, e.g.
    "BBC News test split, 311 articles") go into the manifest, so that the folder carries its own
    quality and ``pick_served`` (``python -m minikit.deployment --latency-budget-ms``) can choose among
    folders without the data. The export cannot check this number: measure it on the model you
    export (for int8, on the quantized model), and say on what in the note. The manifest is not
    in the checksums, so the accuracy is a claim of whoever wrote the folder.

    The graph is fused by ONNX Runtime's transformer optimizer before int8 (``onnx_graph.export_int8``;
    ``fuse=False`` skips it); the manifest's ``graph`` records whether it was fused and the fused op
    counts, or the notice saying why not.
    """
    import onnxruntime


    if accuracy is not None:  # checked before the export's seconds of work
        accuracy = _check_accuracy(accuracy, "export_for_serving")
    if accuracy_note is not None:
        if not isinstance(accuracy_note, str):
            raise ValueError(f"accuracy_note={accuracy_note!r}: expected a short text saying what the accuracy was "
                             "measured on, e.g. 'BBC News test split, 311 articles'.")
        if accuracy is None:
            raise ValueError("accuracy_note was given without accuracy: the note describes a measured accuracy. "
                             "Fix: pass accuracy=<fraction> as well, or drop the note.")
    if getattr(tokenizer, "backend_tokenizer", None) is None:
        raise ValueError(f"{type(tokenizer).__name__} has no tokenizer.json form (a slow tokenizer). Fix: load the "
                         "fast one, e.g. AutoTokenizer.from_pretrained(..., use_fast=True).")
    if len(tokenizer) > model.get_input_embeddings().num_embeddings:
        raise ValueError(f"The tokenizer has {len(tokenizer)} tokens, the model's embedding only "
                         f"{model.get_input_embeddings().num_embeddings} rows. Fix: pass the tokenizer the model was "
                         "trained with (for a pruned vocabulary: PrunedVocabulary.tokenizer).")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    texts = list(texts or CHECK_TEXTS)
    inputs = _torch_inputs(tokenizer, texts, max_length)
    graph = export_int8(model, out / MODEL_FILE, inputs, fuse=fuse, quantize=quantize)  # fused where it can be
    tokenizer.backend_tokenizer.save(str(out / TOKENIZER_FILE))
    session = onnxruntime.InferenceSession(str(out / MODEL_FILE), providers=["CPUExecutionProvider"])
    manifest = {
        "name": name, "labels": _labels(model), "max_length": max_length,
        "inputs": [i.name for i in session.get_inputs()], "output": "logits", "int8": quantize,
        "pad_id": tokenizer.pad_token_id, "pad_token": tokenizer.pad_token,
        "sha256": {f: file_sha256(out / f) for f in (MODEL_FILE, TOKENIZER_FILE)},
        "size_mb": (out / MODEL_FILE).stat().st_size / 1e6,
        "exported_with": {p: metadata.version(p) for p in ("torch", "onnxruntime", "tokenizers")},
        "graph": graph.manifest(), "architecture": type(model).__name__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(),
    }
    if accuracy is not None:
        manifest["accuracy"] = accuracy
        if accuracy_note is not None:
            manifest["accuracy_note"] = accuracy_note
    (out / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2))
    gap = served_gap(load_served_model(out), model, tokenizer, texts, INT8_TOLERANCE if quantize else EXPORT_TOLERANCE)
    manifest["checked"] = {"texts": len(texts), "max_logit_gap": gap}  # the manifest is not in the checksums
    (out / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2))
    return out


def served_gap(served, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, texts: Sequence[str],
               tolerance: tuple[float, float] = INT8_TOLERANCE) -> float:
    """Largest |logit difference| between the served folder and ``model`` (with its own tokenizer) on ``texts``.

    Raises ``OnnxMismatchError`` above ``atol + rtol · max |logit|``: this catches a tokenizer
    saved with other settings as well as a broken ONNX file.
    """
    model.eval()
    with torch.inference_mode():
        expected = model(**_torch_inputs(tokenizer, texts, served.max_length)).logits.float().numpy()
    got = served.logits(texts)
    gap = float(np.abs(got - expected).max())
    atol, rtol = tolerance
    if not gap <= atol + rtol * float(np.abs(expected).max()):
        raise OnnxMismatchError(f"The served folder's logits differ from the PyTorch model's by up to {gap:.4g} on "
                                f"{len(texts)} texts, above the tolerance (atol={atol:g}, rtol={rtol:g}). Fix: export "
                                "again with the tokenizer the model was trained with.")
    return gap


def fusion_comparison(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, fused_folder: str | Path,
                      data, work: str | Path, repeats: int = 30,
                      cache: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The served folder's graph unfused against fused: operator counts and one ``Benchmark`` of both.

    Exports ``model`` again without fusion (``export_for_serving(..., fuse=False)``) into ``work``, then
    returns (the op types whose count changed, unfused → fused; the Benchmark's table on ``data``, batch 1
    at the folder's max length, the unfused graph as the reference). ``cache=True`` reads the timings back
    on a second run, as chapter 8's other Benchmark does.
    """
    fused_folder = Path(fused_folder)
    manifest = json.loads((fused_folder / MANIFEST_FILE).read_text())
    unfused = export_for_serving(model, tokenizer, Path(work) / "unfused", max_length=manifest["max_length"],
                                 name=f"{manifest.get('name', 'model')}-unfused", fuse=False)
    ops = fusion_table(op_counts(unfused / MODEL_FILE), op_counts(fused_folder / MODEL_FILE))
    bench = Benchmark(data, tokenizer, max_length=manifest["max_length"], baseline="int8 unfused", repeats=repeats,
                      batch_size=16, batch_repeats=2, cache=cache)
    for name, folder in (("int8 unfused", unfused), ("int8 fused", fused_folder)):
        bench.add(name, folder / MODEL_FILE, config=model.config, tokenizer=tokenizer)
    return ops[ops["change"] != 0], bench.run().set_index("name")


# --------------------------------------------------------------------------------------------
# A container for the served model
# --------------------------------------------------------------------------------------------


def dockerfile(folder: str | Path, port: int = 8000, threads: int = 1, max_batch_size: int = 16,
               max_wait_ms: float = 5.0, python: str | None = None) -> str:
    """A Dockerfile serving ``folder`` (copied in as ``model/``) with ``server.py``; read its comments.

    Pins the packages to the versions installed here, so the container runs what you measured.
    """
    manifest_path = Path(folder) / MANIFEST_FILE
    if not manifest_path.is_file():
        raise FileNotFoundError(f"{manifest_path} not found. Fix: write the folder with export_for_serving first.")
    name = json.loads(manifest_path.read_text()).get("name", "model")
    python = python or f"{sys.version_info.major}.{sys.version_info.minor}"
    return f"""\
# A container serving the minikit model {name!r}: ONNX Runtime on CPU, no PyTorch (about 10× smaller).
# Build and run:  docker build -t minikit-{name} .  &&  docker run --rm -p 127.0.0.1:{port}:{port} minikit-{name}
# The slim Debian image has Python and little else; for builds that never change, pin it by digest
# (python:{python}-slim@sha256:…).
FROM python:{python}-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
# Requirements first: this layer is rebuilt only when the pins change, not when the model does.
COPY requirements.txt /app/requirements.txt
RUN pip install --no-cache-dir -r /app/requirements.txt

# The server is one file that needs no torch; the model folder is checked against its sha256 at start.
# Files stay owned by root, so the server (which runs as `app`) can read them but not change them.
COPY server.py /app/server.py
COPY model/ /app/model/

# Never run the server as root: a bug in it then cannot change the image or the model.
RUN useradd --create-home --uid 10001 app
USER app

ENV MODEL_DIR=/app/model THREADS={threads} MAX_BATCH_SIZE={max_batch_size} MAX_WAIT_MS={max_wait_ms:g}
EXPOSE {port}
HEALTHCHECK --interval=30s --timeout=3s --start-period=20s --retries=3 \\
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:{port}/health', timeout=2)"]

# 0.0.0.0 here, unlike on your machine: inside the container the server must listen on the
# container's own network interface, or `docker run -p` cannot forward to it. Who can reach it
# from outside is decided by -p: `-p 127.0.0.1:{port}:{port}` keeps it on this machine.
# One worker process: adaptive batching groups requests that reach the same process.
CMD ["uvicorn", "server:app_from_env", "--factory", "--host", "0.0.0.0", "--port", "{port}", "--workers", "1"]
"""


def write_container(folder: str | Path, out_dir: str | Path, **dockerfile_options) -> Path:
    """A Docker build context in ``out_dir``: Dockerfile, requirements.txt, server.py, model/ (a copy of ``folder``)."""
    out = Path(out_dir)
    text = dockerfile(folder, **dockerfile_options)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty. Fix: pass a new folder (it is written from scratch).")
    out.mkdir(parents=True, exist_ok=True)
    (out / "Dockerfile").write_text(text)
    (out / "requirements.txt").write_text("".join(f"{p}=={metadata.version(p)}\n" for p in CONTAINER_PACKAGES))
    (out / ".dockerignore").write_text("**/__pycache__\n*.pyc\n")
    shutil.copyfile(server.__file__, out / "server.py")
    shutil.copytree(folder, out / "model", ignore=shutil.ignore_patterns("__pycache__"))
    return out


# --------------------------------------------------------------------------------------------
# Edge, cloud or hybrid: the trade-off from measured numbers
# --------------------------------------------------------------------------------------------


def measure_served(folder: str | Path, texts: Sequence[str], threads: int = 1, confidence: float = 0.9,
                   repeats: int = 30) -> dict:
    """The numbers ``deployment_scenarios`` needs, measured here for a served folder.

    model_mb (the ONNX file), ram_mb (peak memory added by loading it and running it on one text
    at a time), p50_ms and p95_ms (one text at a time), request_bytes (mean JSON body of one
    text), and low_confidence_share (of the first 256 texts, those whose top score is below
    ``confidence``); load_warning says why the machine was not quiet while timing ("" when it
    was; the timing is then taken once more before it is returned marked).
    """
    texts = list(texts)
    with PeakRSS() as rss:  # as a device would run it: one text at a time
        served = load_served_model(folder, threads=threads)
        for text in texts[:8]:
            served.predict([text])
    predictions = [p for start in range(0, min(len(texts), 256), 16) for p in served.predict(texts[start:start + 16])]

    def timed() -> list[float]:
        times = []
        for i in range(repeats + 2):
            start = time.perf_counter()
            served.predict([texts[i % len(texts)]])
            times.append((time.perf_counter() - start) * 1e3)
        return times[2:]  # the first two allocate

    times, check = measure_quietly(timed)
    scores = np.array([p["score"] for p in predictions])
    return {"model_mb": (Path(folder) / MODEL_FILE).stat().st_size / 1e6, "ram_mb": rss.peak_mb,
            "p50_ms": float(np.percentile(times, 50)), "p95_ms": float(np.percentile(times, 95)),
            "request_bytes": float(np.mean([len(json.dumps({"text": t}).encode()) for t in texts])),
            "low_confidence_share": float((scores < confidence).mean()), "load_warning": check.warning}


def deployment_scenarios(measurements: Mapping[str, float], network_rtt_ms: float = 50.0,
                         device_slowdown: float = 1.0, cloud_p50_ms: float | None = None) -> pd.DataFrame:
    """Edge, cloud and hybrid side by side, from ``measure_served``'s numbers and stated assumptions.

    Measured: model_mb, ram_mb, p50_ms, request_bytes, low_confidence_share. Assumed (say so
    when you show the table): ``network_rtt_ms``, the round trip to the cloud (50 ms: a good
    mobile or home connection to a nearby region); ``device_slowdown``, how much slower the
    device is than this machine; ``cloud_p50_ms``, the cloud model's time per text (default:
    this model's p50 here). Hybrid: the device answers when it is confident and sends the rest
    (low_confidence_share of texts) to the cloud.
    """
    m = dict(measurements)
    missing = {"model_mb", "ram_mb", "p50_ms", "request_bytes", "low_confidence_share"} - set(m)
    if missing:
        raise ValueError(f"measurements lack {sorted(missing)}. Fix: pass measure_served(folder, texts), "
                         "or a dict with those keys.")
    if network_rtt_ms < 0 or device_slowdown <= 0:
        raise ValueError(f"network_rtt_ms={network_rtt_ms}, device_slowdown={device_slowdown}: expected ≥ 0 and > 0.")
    device_ms = m["p50_ms"] * device_slowdown
    cloud_ms = network_rtt_ms + (m["p50_ms"] if cloud_p50_ms is None else cloud_p50_ms)
    share = m["low_confidence_share"]
    rows = [
        {"scenario": "edge", "model_runs_on": "device", "latency_ms": device_ms, "device_download_mb": m["model_mb"],
         "device_ram_mb": m["ram_mb"], "texts_leaving_device": 0.0, "bytes_sent_per_text": 0.0,
         "works_offline": True, "what_leaves_the_device": "nothing: the model comes to the data"},
        {"scenario": "cloud", "model_runs_on": "server", "latency_ms": cloud_ms, "device_download_mb": 0.0,
         "device_ram_mb": 0.0, "texts_leaving_device": 1.0, "bytes_sent_per_text": m["request_bytes"],
         "works_offline": False, "what_leaves_the_device": "every text, in full"},
        {"scenario": "hybrid", "model_runs_on": "device, then server if unsure",
         "latency_ms": device_ms + share * cloud_ms, "device_download_mb": m["model_mb"],
         "device_ram_mb": m["ram_mb"], "texts_leaving_device": share, "bytes_sent_per_text": share * m["request_bytes"],
         "works_offline": "partly", "what_leaves_the_device": f"the {share:.0%} of texts the device is unsure of"},
    ]
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# Which folder to serve: the most accurate one that fits a budget, measured on this machine
# --------------------------------------------------------------------------------------------


def _candidate_names(folders: Sequence[Path], manifests: Sequence[dict]) -> list[str]:
    """One name per folder for the table: the manifest's name, qualified by the folder where names repeat.

    Exports often keep the default name "model", so names alone may clash; the picker keys its
    rows by name, so they must differ.
    """
    bases = [str(m.get("name", "model")) for m in manifests]
    counts = Counter(bases)
    names = [b if counts[b] == 1 else f"{b} ({f.name})" for b, f in zip(bases, folders)]
    counts = Counter(names)
    return [n if counts[n] == 1 else f"{b} ({f})" for n, b, f in zip(names, bases, folders)]  # paths are distinct


def _served_manifest(folder: Path) -> dict:
    """The manifest of a candidate folder, with a recorded accuracy, or a ``ModelFolderError`` saying what to fix."""
    path = folder / MANIFEST_FILE
    if not path.is_file():
        raise ModelFolderError(f"{folder} has no {MANIFEST_FILE}, so it is not a served folder. Fix: write it with "
                               "minikit.deployment.export_for_serving(model, tokenizer, folder, accuracy=...).")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as problem:
        raise ModelFolderError(f"{path} is not valid JSON ({problem}). Fix: export the folder again.") from None
    if not isinstance(manifest, dict) or manifest.get("accuracy") is None:
        raise ModelFolderError(
            f"{folder}: its manifest records no accuracy, so it cannot be weighed against the other candidates. "
            "Fix: export it again with export_for_serving(..., accuracy=<measured fraction, e.g. 0.915>, "
            "accuracy_note='<what it was measured on>').")
    manifest["accuracy"] = _check_accuracy(manifest["accuracy"], str(path))
    return manifest


def pick_served(folders: Sequence[str | Path], latency_budget_ms: float, memory_budget_mb: float | None = None,
                texts: Sequence[str] | None = None, threads: int = 1, repeats: int = 30) -> Pick:
    """Measure each served folder here and pick the most accurate one that fits the budgets.

    This is ``benchmark.pick_variant`` for folders from ``export_for_serving``: the budget is met
    on the machine that will serve, so the numbers must come from this machine, not from a
    notebook's Benchmark. Each folder is measured with ``measure_served`` (``threads`` as the
    server will use them, ``repeats`` timed calls on ``texts``, default ``CHECK_TEXTS``: pass
    texts like the ones you will serve, since latency grows with length up to ``max_length``).
    Accuracy is read from each manifest (``export_for_serving(..., accuracy=...)``): it cannot
    be measured here without labelled data.

    - latency_ms: batch-1 p50, what one request costs without batching;
    - memory_mb: the peak resident memory that loading the folder and serving one text at a time
      added to this process (``ram_mb``). It already holds the weights (ONNX Runtime keeps its
      own copy), so adding ``model_mb`` would count them twice; it is floored at ``model_mb``,
      because the weights must be resident and a process reusing freed memory can read low.
      The Python process itself (~100 MB or more) is not counted: set a memory budget for the
      model, not for the whole server.

    Folders are checked (manifest, accuracy, no repeats) and the budgets validated before any
    measuring. Returns the ``Pick``; its table also has p95_ms, model_mb, ram_mb,
    accuracy_note, folder and load_warning. ``NoVariantFitsError`` when none fits, naming the closest.
    """
    if isinstance(folders, (str, Path)):
        folders = [folders]
    paths = [Path(f) for f in folders]
    if not paths:
        raise ValueError("No folders to choose from. Fix: pass the served folders (from export_for_serving), "
                         "e.g. pick_served(['served/int8', 'served/float'], latency_budget_ms=20).")
    seen: dict[Path, Path] = {}
    for path in paths:
        if path.resolve() in seen:
            raise ValueError(f"{path} is given twice (also as {seen[path.resolve()]}): each candidate must be a "
                             "different folder. Fix: drop the repeat.")
        seen[path.resolve()] = path
    # The budgets are checked by pick_variant itself, on a row that always fits, before seconds of measuring.
    pick_variant(pd.DataFrame({"name": ["budget check"], "accuracy": [1.0], "latency_p50_ms": [0.0],
                               "peak_memory_mb": [0.0]}), latency_budget_ms, memory_budget_mb)
    if texts is None:
        texts = CHECK_TEXTS
    if isinstance(texts, str) or not texts:
        raise ValueError("texts: expected a non-empty list of strings (like the texts you will serve).")
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats={repeats!r}: expected a whole number ≥ 1 of timed calls per folder.")
    manifests = [_served_manifest(path) for path in paths]
    names = _candidate_names(paths, manifests)

    # ONNX Runtime's import and its process-wide environment are paid once; untimed here, they
    # would land in the memory of whichever folder is measured first.
    load_served_model(paths[0], threads=threads)
    rows = []
    for path, manifest, name in zip(paths, manifests, names):
        measured = measure_served(path, list(texts), threads=threads, repeats=repeats)
        rows.append({"name": name, "accuracy": manifest["accuracy"], "latency_p50_ms": measured["p50_ms"],
                     "peak_memory_mb": max(measured["ram_mb"], measured["model_mb"]), "p95_ms": measured["p95_ms"],
                     "model_mb": measured["model_mb"], "ram_mb": measured["ram_mb"],
                     "accuracy_note": manifest.get("accuracy_note"), "folder": str(path),
                     "load_warning": measured.get("load_warning", "")})
    results = pd.DataFrame(rows)
    pick = pick_variant(results, latency_budget_ms, memory_budget_mb)
    for column in ("p95_ms", "model_mb", "ram_mb", "accuracy_note", "folder", "load_warning"):  # same order: one row per folder
        pick.table[column] = results[column].to_numpy()
    return pick


def format_pick(pick: Pick) -> str:
    """A plain-text table of every candidate and its verdict (chosen, fits, or rejected and why), for a terminal."""
    budget = f"{pick.latency_budget_ms:g} ms" + (f" and {pick.memory_budget_mb:g} MB"
                                                 if pick.memory_budget_mb is not None else "")
    rows = [("name", "accuracy", "p50 ms", "memory MB", "verdict", "folder")]
    for _, row in pick.table.iterrows():
        verdict = row["reason"] if row["fits"] else f"rejected: {row['reason']}"
        rows.append((str(row["name"]), f"{row['accuracy']:.2%}", f"{row['latency_ms']:.2f}",
                     f"{row['memory_mb']:.1f}", verdict, str(row.get("folder", ""))))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    right = {1, 2, 3}  # numbers line up on the right
    lines = ["  ".join([*(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))),
                        r[-1]]).rstrip() for r in rows]
    return (f"Candidates for a budget of {budget} (measured here: batch-1 p50 latency, peak memory added):\n  "
            + "\n  ".join(lines))


def choose_served(dirs: list[str], latency_budget_ms: float, memory_budget_mb: float | None, threads: int,
                  out) -> str:
    """``python -m minikit.deployment``'s picker: measure ``dirs`` here, print every verdict to ``out``, return the folder.

    Raises ``ValueError`` with the fix for a bad budget, a folder without a recorded accuracy, or
    no folder that fits (``NoVariantFitsError``).
    """
    print(f"Measuring {len(dirs)} folder(s) on this machine ({threads} thread(s))…", file=out, flush=True)
    pick = pick_served(dirs, latency_budget_ms, memory_budget_mb, threads=threads)
    chosen = str(pick.table.set_index("name").loc[pick.chosen, "folder"])
    print(format_pick(pick), file=out)
    print(f"Serving {pick.chosen!r} from {chosen}", file=out, flush=True)
    return chosen


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m minikit.deployment``: the server's command line, with ``--latency-budget-ms`` choosing the folder."""
    server.main(argv, pick=choose_served, prog="python -m minikit.deployment")


__all__ = [
    "CHECK_TEXTS", "CONTAINER_PACKAGES", "choose_served", "deployment_scenarios", "dockerfile", "export_for_serving",
    "format_pick", "fusion_comparison", "main", "measure_served", "pick_served", "served_gap", "write_container",
    # the server's, re-exported
    "ModelFolderError", "ServedModel", "background_server", "create_app", "load_served_model", "serve",
]


if __name__ == "__main__":
    main()
