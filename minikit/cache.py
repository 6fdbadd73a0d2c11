"""A cache of trained checkpoints and results under ``settings.cache_dir()`` (``MINIKIT_CACHE``).

An entry is a folder ``<cache>/<kind>/<key>/`` whose ``manifest.json`` lists the size and
sha256 of every file. It is built in a temporary folder and renamed into place only when
complete, so a crash or Ctrl-C never leaves an entry that looks finished; every load re-checks
the manifest, and a damaged entry is rebuilt (with a warning), never half-loaded.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import io
import json
import math
import os
import shutil
import sys
import tempfile
import uuid
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import torch
from filelock import FileLock

from minikit.errors import MinikitError
from minikit.settings import cache_dir as _settings_cache_dir
from minikit.settings import get_settings, quiet_transformers

if TYPE_CHECKING:
    import pandas as pd

FORMAT_VERSION = 1  # bump when the layout of entries changes: every key changes with it
MANIFEST = "manifest.json"
_TMP_MARK = ".tmp-"  # temp folders are ".<key>.tmp-<random>"; the leading dot hides them from entries()
_PICKLE_SUFFIXES = {".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt"}


class CacheWarning(UserWarning):
    """A cache entry was damaged or incomplete and is being rebuilt; the message says why."""


class TrainingForbiddenError(MinikitError, RuntimeError):
    """``MINIKIT_NO_TRAIN=1`` is set and a trained artifact is missing from the cache; the message names it."""


# --------------------------------------------------------------------------------------------
# Trained artifacts: what `minikit build` builds and MINIKIT_NO_TRAIN forbids
# --------------------------------------------------------------------------------------------

NO_TRAIN_VARIABLE = "MINIKIT_NO_TRAIN"


@dataclasses.dataclass(frozen=True)
class TrainedKind:
    """A kind of cache entry that costs training (or a trained model's pass over a corpus) to build."""

    what: str  # in words, for messages
    chapter: str  # the chapter whose `minikit build --only` step first builds the course's entries of this kind
    modules: tuple[str, ...]  # minikit modules whose code makes the entry: their sha256 is part of every key
    minutes: str  # how long one such entry takes on 2 cores (the course's settings), for the notice


# The minutes are what `python -m minikit build` measured for the course's own entries on 2 cores.
TRAINED_KINDS: dict[str, TrainedKind] = {
    "finetuned": TrainedKind("a fine-tuned classifier", "03", ("training", "loop", "models", "data"), "½–2"),
    "domain-adapted": TrainedKind("a domain-adapted encoder (masked-LM pass)", "03", ("training", "models"), "½"),
    "multitask": TrainedKind("a multi-task model", "03b",
                             ("multitask", "tasks", "training", "loop", "models", "data"), "1–2"),
    "predictions": TrainedKind("a trained model's test-split predictions", "03b", ("multitask", "tasks", "training"),
                               "¼"),
    "teacher-logits": TrainedKind("the teacher's logits on the training texts", "07", ("distillation", "training"), "¼"),
    "distilled": TrainedKind("a distilled student", "07",
                             ("distillation", "attention", "students", "training", "loop", "pruning", "models", "data"),
                             "⅓–1½"),
    "pruning-accuracy": TrainedKind("chapter 5's pruning accuracies, one pass over the explorer's subset per setting",
                                    "05", ("pruning_sweep", "pruning", "metrics", "models"), "1–2"),
    "qat-runs": TrainedKind("chapter 6's PTQ against QAT runs (results only)", "06",
                            ("qat", "quantization", "pruning", "training", "loop", "models", "data"), "1–2"),
    "bench-scores": TrainedKind("chapter 6's Benchmark variants scored on test (accuracies only, no timings)", "06",
                                ("benchmark", "quantization", "static_int8"), "2"),
    "static-int8-exclusion": TrainedKind("chapter 6's static int8 files, one per set of nodes kept float (results only)",
                                         "06", ("static_int8", "quantization", "stats"), "1–2"),
    "kd-variants": TrainedKind("chapter 7's distillation objectives at equal steps (results only)", "07",
                               ("distill_variants", "distillation", "attention", "students", "training", "loop", "models",
                                "data"),
                               "1–3"),
    "early_exit": TrainedKind("early-exit heads", "10", ("early_exit", "training", "models"), "1"),
    "lab-models": TrainedKind("a compression-lab model (surgery, training or int8 export)", "09",
                              ("lab", "distillation", "attention", "students", "pruning", "training", "loop", "models",
                               "quantization", "onnx_graph", "deployment"), "¼–2"),
    "pruned": TrainedKind("a pruned and recovered model (minikit report)", "",
                          ("report", "pruning", "training", "loop", "models"), "1"),
}
_PACKAGE = Path(__file__).resolve().parent
_code_fingerprints: dict[str, str] = {}


def code_fingerprint(kind: str) -> str:
    """The sha256 of the modules that build entries of a trained ``kind``: a change to their code changes the key."""
    if kind not in _code_fingerprints:
        digest = hashlib.sha256()
        for module in sorted(TRAINED_KINDS[kind].modules):
            digest.update(f"{module}:{file_sha256(_PACKAGE / f'{module}.py')};".encode())
        _code_fingerprints[kind] = digest.hexdigest()[:16]
    return _code_fingerprints[kind]


def training_forbidden() -> bool:
    """True when ``MINIKIT_NO_TRAIN`` is set to anything but empty, 0, false or no."""
    return os.environ.get(NO_TRAIN_VARIABLE, "").strip().lower() not in {"", "0", "false", "no"}


def _keyed(kind: str, parts: dict) -> dict:
    """``parts`` as stored: a trained kind's key also holds the fingerprint of the code that trains it."""
    if kind in TRAINED_KINDS:
        return {**parts, "code": code_fingerprint(kind)}
    return parts


def _summary(parts: dict, limit: int = 240) -> str:
    text = json.dumps(_jsonable(parts), sort_keys=True, separators=(",", ":"))
    return text if len(text) <= limit else text[:limit] + "…"


def _before_training(kind: str, key: str, parts: dict) -> None:
    """Refuse to train under MINIKIT_NO_TRAIN (naming the artifact and the build command), else say what comes."""
    trained = TRAINED_KINDS.get(kind)
    if trained is None:
        return
    command = f"python -m minikit build --only {trained.chapter}" if trained.chapter else None
    if training_forbidden():
        how = (f"run: {command} (it builds every artifact chapter {trained.chapter} loads with the course's "
               "settings), or" if command else "this artifact is not part of the course build;")
        raise TrainingForbiddenError(
            f"{NO_TRAIN_VARIABLE}=1 forbids training, and {trained.what} is not in the cache "
            f"({get_settings().cache_dir / kind / key}; settings {_summary(parts)}). Fix: {how} unset "
            f"{NO_TRAIN_VARIABLE} to train it here (about {trained.minutes} min on 2 cores).")
    hint = f"; `{command}` builds the course's artifacts ahead of time" if command else ""
    print(f"minikit: building {trained.what} (not in the cache yet): about {trained.minutes} min on 2 cores{hint}.",
          file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# Keys
# --------------------------------------------------------------------------------------------


def _jsonable(value: Any, where: str = "parts") -> Any:
    """Convert dataclasses, paths, tuples and sets into plain JSON values, or say what is not."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _jsonable(dataclasses.asdict(value), where)
    if isinstance(value, dict):
        return {str(k): _jsonable(v, f"{where}[{k!r}]") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, (set, frozenset)):
        return sorted(_jsonable(v, where) for v in value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)  # JSON has no NaN/inf; their repr is still stable
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if hasattr(value, "item") and callable(value.item):  # numpy / torch scalars
        return _jsonable(value.item(), where)
    raise TypeError(
        f"{where} is a {type(value).__name__}, which has no stable text form for a cache key. "
        "Fix: pass strings, numbers, bools, None, lists, dicts, paths or dataclasses of these."
    )


# --------------------------------------------------------------------------------------------
# Fingerprints: what stands for an input in a key (a file, a folder, a model, a tokenizer, texts, splits)
# --------------------------------------------------------------------------------------------


def cache_key(**parts: Any) -> str:
    """A short stable hash (16 hex digits) of everything that determines an artifact.

    The JSON is canonical (sorted keys, no spaces), so the key does not depend on argument
    order; the cache format version is mixed in, so a new layout never reads an old entry.
    """
    canonical = json.dumps(
        {"parts": _jsonable(parts), "minikit_cache_format": FORMAT_VERSION},
        sort_keys=True, separators=(",", ":"), ensure_ascii=True,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    """The sha256 of a file, read in 1 MB chunks (about 0.2 s for a 90 MB safetensors file)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def folder_sha256(folder: Path, suffixes: set[str] | None = None) -> str:
    """sha256 over every file under ``folder`` (relative path and contents), its cache manifest left out.

    ``suffixes`` keeps only files with those endings (a model folder's own files: config, weights,
    tokenizer). ~30 ms for the BBC corpus (5 MB).
    """
    digest = hashlib.sha256()
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file() and p.name != MANIFEST):
        if suffixes is None or path.suffix in suffixes:
            digest.update(f"{path.relative_to(folder).as_posix()}:{file_sha256(path)};".encode())
    return digest.hexdigest()[:16]


def model_sha256(model: torch.nn.Module) -> str:
    """sha256 of a model's class, configuration and ``torch.save``d state dict (quantized weights too); ~0.1 s per 90 MB."""
    digest = hashlib.sha256(type(model).__qualname__.encode())
    if hasattr(model, "config") and hasattr(model.config, "to_json_string"):
        config = json.loads(model.config.to_json_string(use_diff=True))
        config.pop("transformers_version", None)
        digest.update(json.dumps(config, sort_keys=True).encode())
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    digest.update(buffer.getvalue())
    return digest.hexdigest()[:16]


def tokenizer_sha256(tokenizer) -> str:
    """sha256 of a tokenizer's vocabulary and rules (its tokenizer.json, without the padding and truncation
    state the last call left), or of its vocabulary for a slow tokenizer."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return hashlib.sha256(json.dumps(sorted(tokenizer.get_vocab().items())).encode()).hexdigest()[:16]
    spec = json.loads(backend.to_str())
    for state in ("padding", "truncation"):
        spec.pop(state, None)
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def texts_sha256(texts: Sequence) -> str:
    """sha256 of a list of texts (or of lists of texts, one per column), in order."""
    return hashlib.sha256(json.dumps(list(texts)).encode()).hexdigest()[:16]


def splits_sha256(splits, text_columns: Sequence[str] = ("text",), label_column: str = "label") -> str:
    """sha256 of every split's name, label names, labels and texts: what identifies a dataset in a key."""
    digest = hashlib.sha256()
    for name in sorted(splits):
        ds = splits[name]
        names = getattr(ds.features[label_column], "names", None)
        digest.update(json.dumps([name, names, list(ds[label_column]), *[list(ds[c]) for c in text_columns]]).encode())
    return digest.hexdigest()[:16]


# --------------------------------------------------------------------------------------------
# Manifests
# --------------------------------------------------------------------------------------------


def _entry_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST)


def _write_manifest(folder: Path, kind: str, key: str, parts: dict) -> None:
    files = {p.relative_to(folder).as_posix(): {"size": p.stat().st_size, "sha256": file_sha256(p)}
             for p in _entry_files(folder)}
    manifest = {
        "format": FORMAT_VERSION, "kind": kind, "key": key, "parts": _jsonable(parts),
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "files": files,
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))


def _read_manifest(folder: Path) -> dict:
    return json.loads((folder / MANIFEST).read_text())


def verify_entry(folder: str | Path) -> str | None:
    """What is wrong with a cache entry (missing manifest, missing file, wrong size or hash), or None."""
    folder = Path(folder)
    if not (folder / MANIFEST).is_file():
        return f"{MANIFEST} is missing"
    try:  # a damaged manifest (a key renamed by one flipped bit, say) is a damaged entry, not a crash
        listed = _read_manifest(folder)["files"]
        files = {name: {"size": e["size"], "sha256": e["sha256"]} for name, e in listed.items()}
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        return f"{MANIFEST} is unreadable ({type(err).__name__}: {err})"
    for name, expected in files.items():
        path = folder / name
        if not path.is_file():
            return f"{name} is missing"
        size = path.stat().st_size
        if size != expected["size"]:
            return f"{name} has {size} bytes, the manifest says {expected['size']}"
        if file_sha256(path) != expected["sha256"]:
            return f"{name} has a different sha256 than the manifest (its bytes changed)"
    return None


# --------------------------------------------------------------------------------------------
# Entries
# --------------------------------------------------------------------------------------------


def _kind_dir(kind: str) -> Path:
    if not kind or kind.startswith(".") or "/" in kind or "\\" in kind:
        raise ValueError(f"kind={kind!r}: expected a plain folder name such as 'finetuned'.")
    return _settings_cache_dir(kind)


def _remove(folder: Path) -> None:
    """Rename first, then delete: an interrupted delete leaves a temp folder, not a half entry."""
    if not folder.exists():
        return
    doomed = folder.with_name(f".{folder.name}{_TMP_MARK}removing-{uuid.uuid4().hex[:8]}")
    os.replace(folder, doomed)
    shutil.rmtree(doomed, ignore_errors=True)


def _remove_stale_temps(root: Path, key: str) -> None:
    # Called with the key's lock held: nobody else can be building this key, so its temp
    # folders are left over from a crashed or killed build.
    for stale in root.glob(f".{key}{_TMP_MARK}*"):
        shutil.rmtree(stale, ignore_errors=True)


def _complete_or_removed(final: Path) -> bool:
    """True if the entry is complete; a damaged one is removed with a warning (call with its lock held)."""
    if not final.exists():
        return False
    problem = verify_entry(final)
    if problem is None:
        return True
    warnings.warn(f"Cache entry {final} is damaged: {problem}. Removing it; it will be rebuilt.",
                  CacheWarning, stacklevel=3)
    _remove(final)
    return False


def find(kind: str, parts: dict) -> Path | None:
    """The folder of the complete entry for ``parts``, or None (a damaged entry is removed, with a warning)."""
    root = _kind_dir(kind)
    key = cache_key(**_keyed(kind, parts))
    with FileLock(str(root / f"{key}.lock")):
        return root / key if _complete_or_removed(root / key) else None


def load_or_build(kind: str, parts: dict, build: Callable[[Path], None], rebuild: bool = False) -> Path:
    """Return the folder of the complete entry for ``parts``, calling ``build(tmp_dir)`` if needed.

    ``build`` writes its files into the temporary folder it is given. A file lock makes
    concurrent callers (two notebooks, two scripts) build an entry once: the second waits for
    the first, then loads. If ``build`` raises, nothing is cached and the error propagates.

    ``rebuild=True`` builds even when a complete entry exists, and replaces it only once the new
    one is complete: an interrupted or failed rebuild leaves the old entry as it was.

    A trained kind (``TRAINED_KINDS``) keys its entries by the code that trains them too, so a changed
    module rebuilds them; with ``MINIKIT_NO_TRAIN=1`` a missing one raises ``TrainingForbiddenError``.
    """
    root = _kind_dir(kind)
    parts = _keyed(kind, parts)
    key = cache_key(**parts)
    final = root / key
    with FileLock(str(root / f"{key}.lock")):
        if not rebuild and _complete_or_removed(final):
            return final
        _before_training(kind, key, parts)
        _remove_stale_temps(root, key)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}{_TMP_MARK}", dir=root))
        try:
            build(tmp)
            if (tmp / MANIFEST).exists():
                raise ValueError(f"build() wrote {MANIFEST}, a name the cache reserves. Fix: rename that file.")
            _write_manifest(tmp, kind, key, parts)
            # A folder cannot be renamed onto a non-empty one, so a rebuild removes the old entry
            # first; the lock is held throughout, so no reader sees the key without an entry.
            _remove(final)
            os.replace(tmp, final)  # atomic: the entry appears complete or not at all
        except BaseException:  # KeyboardInterrupt too: never leave a half-built folder behind
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return final


def clear(kind: str | None = None) -> int:
    """Remove every entry of ``kind`` (all kinds if None) and leftover temp folders; returns entries removed.

    Do not call it while another process is building an entry: that build's lock is removed.
    """
    base = get_settings().cache_dir
    roots = [base / kind] if kind is not None else sorted(p for p in base.glob("*") if p.is_dir())
    removed = 0
    for root in roots:
        if not root.is_dir():
            continue
        for folder in sorted(root.iterdir()):
            if folder.is_dir() and not folder.name.startswith("."):
                with FileLock(str(root / f"{folder.name}.lock")):
                    _remove(folder)
                removed += 1
            elif folder.is_dir():
                shutil.rmtree(folder, ignore_errors=True)
        for lock in root.glob("*.lock"):
            lock.unlink(missing_ok=True)
    return removed


def entries(kind: str | None = None) -> pd.DataFrame:
    """One row per complete-looking entry: kind, key, created, size_mb, files, path, parts.

    Listing reads manifests only; hashes are checked when an entry is loaded.
    """
    import pandas as pd
    base = get_settings().cache_dir
    rows = []
    roots = [base / kind] if kind is not None else sorted(p for p in base.glob("*") if p.is_dir())
    for root in roots:
        for folder in sorted(root.glob("[!.]*")):
            if not (folder / MANIFEST).is_file():
                continue
            try:
                manifest = _read_manifest(folder)
            except ValueError:
                continue
            files = manifest.get("files", {})
            rows.append({"kind": root.name, "key": folder.name, "created": manifest.get("created"),
                         "size_mb": sum(f["size"] for f in files.values()) / 1e6, "files": len(files),
                         "path": str(folder), "parts": manifest.get("parts", {})})
    columns = ["kind", "key", "created", "size_mb", "files", "path", "parts"]
    return pd.DataFrame(rows, columns=columns)


# --------------------------------------------------------------------------------------------
# Model folders
# --------------------------------------------------------------------------------------------


def pickle_files(folder: Path) -> list[str]:
    """Names of the files in ``folder`` that hold pickled weights (.bin, .pt, ...): minikit loads none of them."""
    return sorted(p.name for p in folder.iterdir() if p.suffix.lower() in _PICKLE_SUFFIXES)


def save_model_dir(model, tokenizer, path: str | Path) -> Path:
    """Save a model (safetensors only) and its tokenizer with ``save_pretrained``; returns the folder.

    transformers 5 always writes safetensors (its ``safe_serialization`` flag is gone), so this
    checks the result instead: a pickle file in the folder is an error.
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    if tokenizer is not None:
        tokenizer.save_pretrained(path)
    pickles = pickle_files(path)
    if pickles or not list(path.glob("*.safetensors")):
        raise RuntimeError(f"save_pretrained wrote {pickles or 'no .safetensors file'} in {path}; "
                           "expected model.safetensors only. Fix: upgrade transformers to 5.x.")
    return path


def load_model_dir(path: str | Path, model_class=None, rebuild: Callable | None = None, **kwargs):
    """Load (model, tokenizer) saved by ``save_model_dir``: local files, safetensors, no remote code.

    ``model_class`` defaults to AutoModelForSequenceClassification. Folders with pickle weights
    (``.bin``, ``.pt``...) are refused: unpickling can run arbitrary code. A model whose attention
    heads were pruned (its config records them) needs ``rebuild=pruning.restore_pruned_heads``: the
    model is built from the config, the heads removed again, then the saved weights loaded strictly.
    """
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = Path(path)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path} has no config.json. Fix: pass a folder written by save_model_dir.")
    pickles = pickle_files(path)
    if pickles:
        raise ValueError(
            f"{path} holds pickle weights {pickles}; minikit loads safetensors only, because unpickling "
            "can run arbitrary code. Fix: if you trust the file, load it yourself and re-save it with "
            "minikit.cache.save_model_dir (which writes model.safetensors)."
        )
    if not list(path.glob("*.safetensors")):
        raise FileNotFoundError(f"{path} has no .safetensors weights. Fix: re-save the model with save_model_dir.")
    model_class = model_class or AutoModelForSequenceClassification
    if json.loads((path / "config.json").read_text()).get(PRUNED_HEADS_KEY):
        if rebuild is None:
            raise ValueError(f"{path} holds a model whose attention heads were pruned, which from_pretrained cannot "
                             "rebuild. Fix: load_model_dir(path, rebuild=minikit.pruning.restore_pruned_heads).")
        return _load_rebuilt(path, model_class, rebuild)
    kwargs.update(local_files_only=True, trust_remote_code=False, use_safetensors=True)
    with quiet_transformers():
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True, trust_remote_code=False)
        model = model_class.from_pretrained(path, **kwargs)
    return model.eval(), tokenizer


PRUNED_HEADS_KEY = "minikit_pruned_heads"  # where pruning.prune_heads records its plans in a config


def _load_rebuilt(path: Path, model_class, rebuild: Callable):
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoTokenizer

    with quiet_transformers():
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True, trust_remote_code=False)
        config = AutoConfig.from_pretrained(path, local_files_only=True, trust_remote_code=False)
        model = rebuild(model_class.from_config(config))
    state = {}
    for file in sorted(path.glob("*.safetensors")):
        state.update(load_file(str(file)))
    model.load_state_dict(state, strict=True)
    return model.eval(), tokenizer
