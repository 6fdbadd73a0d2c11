"""Chapter 8 — a small HTTP inference server with adaptive batching, for a model folder made by
``minikit.deployment.export_for_serving``.

This file stands alone: it imports neither torch nor the rest of minikit, only ONNX Runtime,
tokenizers, NumPy, FastAPI and uvicorn, so a container copies this one file next to the model
folder (see ``deployment.write_container``).

Adaptive batching, the pattern Triton, TorchServe and Ray Serve share: every text waits in an
``asyncio.Queue`` with a future for its answer; one task takes the first waiting text, keeps
taking more until it has ``max_batch_size`` of them or ``max_wait_ms`` has passed, runs the
model once on the whole batch in a worker thread (so the event loop keeps accepting requests),
and resolves each future. ``max_batch_size=1`` turns batching off.

Run it: ``python -m minikit.server --model-dir DIR --port 8000`` (127.0.0.1 unless ``--allow-remote``).
``python -m minikit.deployment`` takes the same options plus ``--latency-budget-ms MS``: with several
``--model-dir`` it measures each folder on this machine and serves the most accurate one within the
budget (measuring needs the rest of minikit, so it lives there; see ``choose_model_dir``).
"""

# No ``from __future__ import annotations``: FastAPI must see the request models defined inside
# create_app as real classes, not as names it would look up in this module.
import argparse
import asyncio
import contextlib
import hashlib
import ipaddress
import json
import os
import re
import socket
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Callable, Iterator, Sequence

import numpy as np

MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
MANIFEST_FILE = "manifest.json"

Predict = Callable[[list[str]], list[dict]]  # texts → [{"label": …, "score": …}, …], one per text
# (folders, latency budget ms, memory budget MB or None, threads, where to report) → the folder to serve
Pick = Callable[[list[str], float, "float | None", int, Any], str]


class ModelFolderError(ValueError):
    """A served-model folder that is incomplete, or whose files do not match its manifest's checksums."""


# --------------------------------------------------------------------------------------------
# The served model: ONNX Runtime + a tokenizer.json, nothing that unpickles
# --------------------------------------------------------------------------------------------


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(axis=1, keepdims=True))  # (B, C), shifted so exp cannot overflow
    return z / z.sum(axis=1, keepdims=True)


class ServedModel:
    """An ONNX Runtime session and its tokenizer: ``predict(texts)`` → ``[{"label", "score"}, …]``.

    ``padding="longest"`` pads each batch to its longest text (fast for short texts);
    ``"max_length"`` pads every text to ``max_length`` (every call costs the same).
    """

    def __init__(self, session, tokenizer, labels: Sequence[str], max_length: int, padding: str = "longest",
                 manifest: dict | None = None):
        if padding not in ("longest", "max_length"):
            raise ValueError(f"padding={padding!r}: expected 'longest' (pad to the batch's longest text) "
                             "or 'max_length' (pad every text to max_length).")
        self.session, self.labels, self.max_length, self.padding = session, list(labels), max_length, padding
        self.manifest = manifest or {}
        self.input_names = [i.name for i in session.get_inputs()]
        self.tokenizer = tokenizer
        self.tokenizer.no_padding()  # tokenizer.json may carry settings saved with it; ours decide
        self.tokenizer.enable_truncation(max_length)
        pad_id = self.manifest.get("pad_id", 0)
        pad_token = self.manifest.get("pad_token", "[PAD]")
        self.tokenizer.enable_padding(pad_id=pad_id, pad_token=pad_token,
                                      length=max_length if padding == "max_length" else None)

    def __repr__(self) -> str:
        return (f"ServedModel({self.manifest.get('name', 'model')!r}, labels={self.labels}, "
                f"max_length={self.max_length}, padding={self.padding!r})")

    def encode(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """The ONNX inputs for ``texts``: int64 arrays (B, T)."""
        encodings = self.tokenizer.encode_batch(list(texts))
        arrays = {"input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
                  "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
                  "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64)}
        return {name: arrays[name] for name in self.input_names}

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        """Logits (B, C) for ``texts``."""
        if isinstance(texts, str):
            raise TypeError("Got one string; pass a list of texts (e.g. [text]).")
        if len(texts) == 0:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        return self.session.run(["logits"], self.encode(texts))[0]

    def predict(self, texts: Sequence[str]) -> list[dict]:
        """One ``{"label": name, "score": probability}`` per text."""
        probs = _softmax(self.logits(texts).astype(np.float64))
        best = probs.argmax(axis=1)
        return [{"label": self.labels[i], "score": float(p[i])} for i, p in zip(best, probs)]

    __call__ = predict


def load_served_model(folder: str | Path, threads: int = 1, padding: str = "longest") -> ServedModel:
    """Load a folder written by ``export_for_serving``, checking each file against its manifest's sha256.

    Reads only ``model.onnx`` (ONNX Runtime) and ``tokenizer.json`` (tokenizers): nothing is
    unpickled. Each file is hashed from the same bytes that are then loaded, so a file swapped
    after the check cannot get in. ``threads`` sets ONNX Runtime's intra-op threads.
    """
    import onnxruntime as ort
    from tokenizers import Tokenizer

    folder = Path(folder)
    missing = [n for n in (MANIFEST_FILE, MODEL_FILE, TOKENIZER_FILE) if not (folder / n).is_file()]
    if missing:
        raise ModelFolderError(f"{folder} lacks {missing}. Fix: write the folder with "
                               "minikit.deployment.export_for_serving(model, tokenizer, folder).")
    manifest = json.loads((folder / MANIFEST_FILE).read_text())
    blobs = {}
    for name in (MODEL_FILE, TOKENIZER_FILE):
        blobs[name] = (folder / name).read_bytes()
        expected, got = manifest.get("sha256", {}).get(name), _sha256(blobs[name])
        if got != expected:
            raise ModelFolderError(f"{folder / name}: sha256 {got[:16]}… does not match the manifest's "
                                   f"{str(expected)[:16]}…; the file changed after export. Do not serve it. "
                                   "Fix: export the folder again from the model you trust.")
    if not (isinstance(threads, int) and threads >= 1):
        raise ValueError(f"threads={threads!r}: expected a whole number ≥ 1.")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only
    # One rule with benchmark_session_options: idle workers sleep, not spin. bench/onnx_session.py (2 threads, loaded
    # 2 cores): spinning off cost 1.1x the p50, saved 28-44 % CPU per request, lowered p95 (issue 24).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(blobs[MODEL_FILE], options, providers=["CPUExecutionProvider"])
    tokenizer = Tokenizer.from_str(blobs[TOKENIZER_FILE].decode("utf-8"))
    return ServedModel(session, tokenizer, manifest["labels"], manifest["max_length"], padding, manifest)


# --------------------------------------------------------------------------------------------
# Adaptive batching
# --------------------------------------------------------------------------------------------


class ModelFailure(RuntimeError):
    """The model raised on a batch; every request in that batch gets a 500 with this message."""


@dataclass
class BatchStats:
    """Counters since the server started."""

    requests: int = 0  # accepted /predict requests
    texts: int = 0  # texts the batcher took from the queue
    batches: int = 0  # groups it formed: one model call each (more if a text in it failed)
    failed_texts: int = 0  # texts the model raised on (answered 500)
    largest_batch: int = 0
    batch_sizes: dict[int, int] = field(default_factory=dict)  # batch size → how many batches

    def as_dict(self) -> dict:
        mean = self.texts / self.batches if self.batches else 0.0
        return {"requests": self.requests, "texts": self.texts, "batches": self.batches,
                "failed_texts": self.failed_texts, "mean_batch_size": mean, "largest_batch": self.largest_batch,
                "batch_sizes": {str(k): v for k, v in sorted(self.batch_sizes.items())}}


class Batcher:
    """Groups queued texts into batches of up to ``max_batch_size``, waiting at most ``max_wait_ms`` for more."""

    def __init__(self, predict: Predict, max_batch_size: int = 16, max_wait_ms: float = 5.0, max_queue: int = 1024):
        self.predict, self.max_batch_size, self.max_wait_s = predict, max_batch_size, max_wait_ms / 1e3
        self.max_queue = max_queue
        self.queue: asyncio.Queue = asyncio.Queue()
        self.stats = BatchStats()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="minikit-model")

    def has_room(self, n: int) -> bool:
        return self.queue.qsize() + n <= self.max_queue

    async def submit(self, texts: list[str]) -> list[tuple[dict, int]]:
        """Queue ``texts``; returns (prediction, size of the batch it ran in) for each, in order."""
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in texts]
        for text, future in zip(texts, futures):
            self.queue.put_nowait((text, future))
        self.stats.requests += 1
        answers = await asyncio.gather(*futures, return_exceptions=True)  # all answered, none left unread
        for answer in answers:
            if isinstance(answer, BaseException):
                raise answer
        return answers

    async def _next_batch(self) -> list[tuple[str, asyncio.Future]]:
        batch = [await self.queue.get()]
        deadline = asyncio.get_running_loop().time() + self.max_wait_s
        while len(batch) < self.max_batch_size:
            if not self.queue.empty():  # texts already waiting join at once, even with max_wait_ms=0
                batch.append(self.queue.get_nowait())
                continue
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self.queue.get(), left))
            except asyncio.TimeoutError:
                break
        return [(text, future) for text, future in batch if not future.done()]  # drop requests already gone

    def _predict_batch(self, texts: list[str]) -> list[tuple[dict, int] | ModelFailure]:
        """(prediction, batch size) or a ``ModelFailure`` per text; runs in the worker thread."""
        try:
            predictions = self.predict(texts)
            if len(predictions) != len(texts):
                raise ValueError(f"the model returned {len(predictions)} predictions for {len(texts)} texts")
            return [(p, len(texts)) for p in predictions]
        except Exception as error:  # one bad batch must not stop the server
            if len(texts) == 1:
                return [ModelFailure(f"The model failed on this text: {type(error).__name__}: {error}")]
        # One bad text must not fail the requests batched with it: run each alone.
        return [self._predict_batch([text])[0] for text in texts]

    async def run(self) -> None:
        """Forever: take a batch, run the model in the worker thread, answer each text."""
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._next_batch()
            if not batch:
                continue
            answers = await loop.run_in_executor(self._executor, self._predict_batch, [text for text, _ in batch])
            n = len(batch)
            self.stats.batches += 1
            self.stats.texts += n
            self.stats.largest_batch = max(self.stats.largest_batch, n)
            self.stats.batch_sizes[n] = self.stats.batch_sizes.get(n, 0) + 1
            for (_, future), answer in zip(batch, answers):
                self.stats.failed_texts += isinstance(answer, ModelFailure)
                if future.done():  # its request is gone
                    continue
                if isinstance(answer, ModelFailure):
                    future.set_exception(answer)
                else:
                    future.set_result(answer)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


# --------------------------------------------------------------------------------------------
# The HTTP API
# --------------------------------------------------------------------------------------------


class _BodyLimit:
    """ASGI middleware: answer 413 to a request body over ``max_bytes`` before anything parses it."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length", b"")
        messages, size = [], int(declared) if declared.isdigit() else 0
        if size <= self.max_bytes:
            size = 0
        while size <= self.max_bytes:  # read the body (also a chunked one) until it ends or is too long
            message = await receive()
            messages.append(message)
            size += len(message.get("body", b""))
            if message["type"] != "http.request" or not message.get("more_body"):
                break
        if size > self.max_bytes:
            from fastapi.responses import JSONResponse

            reason = f"Request body over {self.max_bytes} bytes. Fix: send fewer or shorter texts."
            return await JSONResponse({"detail": reason, "errors": []}, status_code=413)(scope, receive, send)

        async def replay():
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)


# "Not blank" exactly as the schema's pattern \S means it in JSON Schema (ECMAScript regex), so a
# schema-valid text is never refused: Python's own \s also counts \x1c-\x1f and \x85.
_NOT_BLANK = re.compile("[^\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]")


def _reason(errors: Sequence[dict]) -> tuple[int, str]:
    """(status, one-line reason) for pydantic's validation errors."""
    kinds = {e.get("type") for e in errors}
    first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "body"
    if "json_invalid" in kinds:
        problem = first.get("ctx", {}).get("error", first["msg"])
        return 400, f'Malformed JSON: {problem}. Fix: send a JSON object like {{"texts": ["some text"]}}.'
    if tuple(first.get("loc", ())) == ("body",) and first.get("type") in {"model_attributes_type", "missing"}:
        return 422, ('The body must be a JSON object like {"texts": ["some text"]}, sent with '
                     "Content-Type: application/json.")
    if kinds & {"string_too_long", "too_long"}:
        e = next(e for e in errors if e.get("type") in {"string_too_long", "too_long"})
        where = ".".join(str(p) for p in e["loc"] if p != "body")
        return 413, f"{where}: {e['msg']}."
    return 422, f"{where}: {first['msg']}."


def create_app(model: str | Path | Predict, max_batch_size: int = 16, max_wait_ms: float = 5.0,
               max_text_chars: int = 30_000, max_texts_per_request: int = 64, max_queue: int = 1024,
               threads: int = 1):
    """A FastAPI app serving ``model`` (a folder from ``export_for_serving``, or any ``predict(texts)``).

    POST /predict ``{"texts": [...]}`` or ``{"text": "..."}`` → predictions, each with the size of
    the batch it ran in; GET /health; GET /stats. Bad input gets a 4xx with a reason: 400
    malformed JSON, 413 a text or a list too long, 422 wrong types or empty text; 503 when
    ``max_queue`` texts already wait. The model starts in the app's lifespan (Starlette's
    ``TestClient`` runs it only when used as a context manager). ``max_text_chars`` lets whole
    BBC News articles in (the longest has 25,485 characters); the model reads the first
    ``max_length`` tokens of each.
    """
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

    for name, value in (("max_batch_size", max_batch_size), ("max_text_chars", max_text_chars),
                        ("max_texts_per_request", max_texts_per_request), ("max_queue", max_queue)):
        if not (isinstance(value, int) and value >= 1):
            raise ValueError(f"{name}={value!r}: expected a whole number ≥ 1.")
    if not max_wait_ms >= 0:
        raise ValueError(f"max_wait_ms={max_wait_ms!r}: expected ≥ 0 (0: batch only what is already waiting).")
    predict = model if callable(model) else load_served_model(model, threads=threads)
    info = {"name": getattr(predict, "manifest", {}).get("name", type(predict).__name__),
            "max_batch_size": max_batch_size, "max_wait_ms": max_wait_ms}

    def usable(text: str) -> str:
        if not _NOT_BLANK.search(text):  # (pydantic already refuses lone surrogates, which the tokenizer cannot take)
            raise ValueError("text is empty or only whitespace")
        return text

    Text = Annotated[str, Field(min_length=1, max_length=max_text_chars, json_schema_extra={"pattern": r"\S"}),
                     AfterValidator(usable)]

    class PredictRequest(BaseModel):
        """Either ``text`` (one) or ``texts`` (a list); ``id`` is echoed back."""

        model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"texts": ["Shares rose 5%."]}]})
        text: Text | None = None
        texts: Annotated[list[Text], Field(min_length=1, max_length=max_texts_per_request)] | None = None
        id: Annotated[str, Field(max_length=64)] | None = None

        @model_validator(mode="after")
        def one_of_text_or_texts(self):
            if (self.text is None) == (self.texts is None):
                raise ValueError('give exactly one of "text" (a string) or "texts" (a list of strings)')
            return self

    class Prediction(BaseModel):
        label: str
        score: float
        batch_size: int  # how many texts the model ran together with this one

    class PredictResponse(BaseModel):
        id: str | None = None
        predictions: list[Prediction]

    class ErrorResponse(BaseModel):
        detail: str
        errors: list[dict[str, Any]] = []

    class Health(BaseModel):
        status: str
        model: str
        max_batch_size: int
        max_wait_ms: float

    class Stats(BaseModel):
        requests: int
        texts: int
        batches: int
        failed_texts: int
        mean_batch_size: float
        largest_batch: int
        batch_sizes: dict[str, int]
        queued: int

    @contextlib.asynccontextmanager
    async def lifespan(app):
        batcher = Batcher(predict, max_batch_size, max_wait_ms, max_queue)
        task = asyncio.create_task(batcher.run(), name="minikit-batcher")
        app.state.batcher, app.state.task = batcher, task
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            batcher.close()

    app = FastAPI(title="minikit served model", version="1", lifespan=lifespan,
                  description="A compressed text classifier behind ONNX Runtime, with adaptive batching.")
    app.add_middleware(_BodyLimit, max_bytes=64_000 + 6 * max_text_chars * max_texts_per_request)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError):
        errors = [{k: v for k, v in e.items() if k in ("type", "loc", "msg")} for e in exc.errors()]
        status, reason = _reason(exc.errors())
        return JSONResponse({"detail": reason, "errors": errors}, status_code=status)

    def error(status: int, reason: str) -> JSONResponse:
        return JSONResponse({"detail": reason, "errors": []}, status_code=status)

    documented = {400: "Malformed JSON.", 413: "A text over max_text_chars, more than max_texts_per_request texts, "
                  "or a body too large.", 422: "Wrong types, empty text, or both or neither of text/texts.",
                  500: "The model failed on the batch.", 503: "The queue is full, or the batcher stopped."}

    @app.post("/predict", response_model=PredictResponse,
              responses={s: {"model": ErrorResponse, "description": d} for s, d in documented.items()})
    async def predict_endpoint(body: PredictRequest, request: Request):
        """Classify one text or a list of texts."""
        batcher: Batcher = request.app.state.batcher
        texts = [body.text] if body.texts is None else body.texts
        if request.app.state.task.done():
            return error(503, "The batching task has stopped; restart the server.")
        if not batcher.has_room(len(texts)):
            return error(503, f"{batcher.queue.qsize()} texts already wait (max_queue={max_queue}). Retry later.")
        try:
            answers = await batcher.submit(texts)
        except ModelFailure as failure:
            return error(500, str(failure))
        return {"id": body.id, "predictions": [{**p, "batch_size": n} for p, n in answers]}

    @app.get("/health", response_model=Health, responses={503: {"model": ErrorResponse,
                                                                "description": "The batcher stopped."}})
    async def health(request: Request):
        """Whether the model is loaded and the batcher runs."""
        if request.app.state.task.done():
            return error(503, "The batching task has stopped; restart the server.")
        return {"status": "ok", "model": str(info["name"]), "max_batch_size": max_batch_size,
                "max_wait_ms": max_wait_ms}

    @app.get("/stats", response_model=Stats)
    async def stats(request: Request):
        """Requests, texts and batches since start: mean_batch_size > 1 means batching grouped requests."""
        batcher: Batcher = request.app.state.batcher
        return {**batcher.stats.as_dict(), "queued": batcher.queue.qsize()}

    return app


def app_from_env():
    """The app for ``MODEL_DIR`` (and ``MAX_BATCH_SIZE``, ``MAX_WAIT_MS``, ``THREADS``): the container's entry point."""
    return create_app(os.environ.get("MODEL_DIR", "model"), max_batch_size=int(os.environ.get("MAX_BATCH_SIZE", 16)),
                      max_wait_ms=float(os.environ.get("MAX_WAIT_MS", 5)), threads=int(os.environ.get("THREADS", 1)))


# --------------------------------------------------------------------------------------------
# Running it
# --------------------------------------------------------------------------------------------


def _check_host(host: str, allow_remote: bool) -> None:
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback and not allow_remote:
        raise ValueError(f"host={host!r} would accept connections from other machines, and this server has no "
                         "authentication. Fix: keep host='127.0.0.1', or pass allow_remote=True (--allow-remote) "
                         "if you mean it, e.g. inside a container.")


def serve(model: str | Path | Predict, host: str = "127.0.0.1", port: int = 8000, allow_remote: bool = False,
          log_level: str = "info", **app_options) -> None:
    """Run the server with uvicorn until interrupted (blocks). 127.0.0.1 unless ``allow_remote=True``."""
    import uvicorn

    _check_host(host, allow_remote)
    uvicorn.run(create_app(model, **app_options), host=host, port=port, log_level=log_level)


@dataclass
class RunningServer:
    """A server started by ``background_server``: its ``url`` and the uvicorn server behind it."""

    url: str
    server: Any
    thread: threading.Thread


@contextlib.contextmanager
def background_server(model: str | Path | Predict, port: int = 0, host: str = "127.0.0.1",
                      startup_timeout_s: float = 30.0, **app_options) -> Iterator[RunningServer]:
    """Run the server in a thread for the ``with`` block (for a notebook or a test); ``port=0`` picks a free one."""
    import uvicorn

    _check_host(host, allow_remote=False)
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.bind((host, port))
    port = sock.getsockname()[1]
    config = uvicorn.Config(create_app(model, **app_options), log_level="warning", access_log=False,
                            lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="minikit-server")
    thread.start()
    deadline = time.monotonic() + startup_timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise RuntimeError(f"The server on {host}:{port} did not start within {startup_timeout_s} s; "
                               "see the log above.")
        time.sleep(0.01)
    try:
        yield RunningServer(f"http://{host}:{port}", server, thread)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def choose_model_dir(args: argparse.Namespace, out=None, pick: Pick | None = None) -> str:
    """The folder ``main`` serves: the one given, or with a budget the one ``pick`` chooses.

    Without ``--latency-budget-ms`` exactly one ``--model-dir`` is served as given (checked when
    it loads). With a budget, ``pick(dirs, latency_budget_ms, memory_budget_mb, threads, out)``
    measures the folders and returns the chosen one; ``out`` defaults to stderr.
    ``python -m minikit.deployment`` passes ``minikit.deployment.choose_served``: this file
    stands alone, so ``python -m minikit.server`` (and the container's copy) has no picker and
    says so. Raises ``ValueError`` with the fix for a bad combination.
    """
    dirs = list(args.model_dir)
    if args.latency_budget_ms is None:
        if args.memory_budget_mb is not None:
            raise ValueError("--memory-budget-mb needs --latency-budget-ms as well: the pick is the most accurate "
                             "folder within both. Fix: add e.g. --latency-budget-ms 50.")
        if len(dirs) > 1:
            raise ValueError(f"{len(dirs)} --model-dir given but no --latency-budget-ms, so there is no way to "
                             "choose. Fix: add --latency-budget-ms MS (and optionally --memory-budget-mb MB) to "
                             "serve the most accurate folder that fits, or give one --model-dir.")
        return dirs[0]
    if pick is None:
        raise ValueError("--latency-budget-ms measures the folders with the rest of minikit, which this "
                         "stand-alone server does not import. Fix: run `python -m minikit.deployment` with the same "
                         "options (it measures, picks and serves), or serve the chosen folder with one --model-dir.")
    return pick(dirs, args.latency_budget_ms, args.memory_budget_mb, args.threads, sys.stderr if out is None else out)


def main(argv: Sequence[str] | None = None, pick: Pick | None = None, prog: str = "python -m minikit.server") -> None:
    """The command line: serve one ``--model-dir``, or with ``pick`` the one a latency budget chooses."""
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", required=True, action="append",
                        help="a folder written by export_for_serving; give several with --latency-budget-ms to serve "
                             "the most accurate one that fits")
    parser.add_argument("--latency-budget-ms", type=float, default=None,
                        help="measure every --model-dir here (batch-1 p50) and serve the most accurate one within "
                             "this latency; the folders must record their accuracy (export_for_serving(..., "
                             "accuracy=...))")
    parser.add_argument("--memory-budget-mb", type=float, default=None,
                        help="with --latency-budget-ms: also stay within this peak memory for the model")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--allow-remote", action="store_true", help="allow a host other than loopback")
    parser.add_argument("--max-batch-size", type=int, default=16, help="1 turns batching off")
    parser.add_argument("--max-wait-ms", type=float, default=5.0)
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads")
    args = parser.parse_args(argv)
    try:
        if args.latency_budget_ms is not None:
            _check_host(args.host, args.allow_remote)  # before seconds of measuring; serve checks it again
        model_dir = choose_model_dir(args, pick=pick)
        serve(model_dir, host=args.host, port=args.port, allow_remote=args.allow_remote,
              max_batch_size=args.max_batch_size, max_wait_ms=args.max_wait_ms, threads=args.threads)
    except (ValueError, FileNotFoundError) as problem:
        parser.exit(2, f"error: {problem}\n")


if __name__ == "__main__":
    main()


__all__ = ["Batcher", "BatchStats", "ModelFailure", "ModelFolderError", "RunningServer", "ServedModel",
           "app_from_env", "background_server", "choose_model_dir", "create_app", "load_served_model", "serve"]
