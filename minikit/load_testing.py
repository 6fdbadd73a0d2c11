"""Chapter 8 — a served model under load: latency and throughput by batch size, and many concurrent
clients against a server on this machine (``load_test``), with and without adaptive batching
(``batching_comparison``). The server is ``minikit.server``; the folder it serves comes from
``deployment.export_for_serving``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import ipaddress
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Mapping, Sequence
from urllib.parse import urlsplit

import numpy as np
import pandas as pd

from minikit.server import background_server, load_served_model


def latency_vs_batch(predict: Callable[[list[str]], Any], texts: Sequence[str],
                     batch_sizes: Sequence[int] = (1, 2, 4, 8, 16, 32), repeats: int = 10,
                     warmup: int = 2) -> pd.DataFrame:
    """One row per batch size: batch_size, p50_ms, p95_ms, ms_per_text, texts_per_s.

    ``predict`` takes a list of texts (a ``ServedModel`` does). Batches repeat ``texts`` from
    the start (cycled when short), so each size sees the same texts. With padding to the
    longest text, bigger batches also pad to longer lengths: pass texts of similar length, or
    ``load_served_model(..., padding="max_length")``, to see batching alone.
    """
    if not texts or isinstance(texts, str):
        raise ValueError("texts: expected a non-empty list of strings.")
    if repeats < 1 or warmup < 0 or not batch_sizes or min(batch_sizes) < 1:
        raise ValueError(f"repeats={repeats}, warmup={warmup}, batch_sizes={batch_sizes}: need repeats ≥ 1, "
                         "warmup ≥ 0 and batch sizes ≥ 1.")
    rows = []
    for b in batch_sizes:
        batch = [texts[i % len(texts)] for i in range(b)]
        times = []
        for i in range(warmup + repeats):
            start = time.perf_counter()
            predict(batch)
            if i >= warmup:
                times.append((time.perf_counter() - start) * 1e3)
        p50 = float(np.percentile(times, 50))
        rows.append({"batch_size": b, "p50_ms": p50, "p95_ms": float(np.percentile(times, 95)),
                     "ms_per_text": p50 / b, "texts_per_s": b * 1e3 / p50})
    return pd.DataFrame(rows)


MAX_LOAD_REQUESTS = 10_000


MAX_LOAD_CLIENTS = 256


MAX_LOAD_SECONDS = 600.0


@dataclass(frozen=True)
class LoadTestResult:
    """What ``load_test`` measured; ``as_dict()`` gives a DataFrame row without the raw latencies."""

    url: str
    clients: int
    texts_per_request: int
    sent: int  # requests sent (≤ requested: the time limit stops sending)
    ok: int  # answered 200 with the right id and one prediction per text
    errors: int  # everything else: 4xx/5xx, timeouts, connection errors, wrong answers
    duration_s: float
    requests_per_s: float  # ok requests per second of the run
    texts_per_s: float
    p50_ms: float  # latency of ok requests, as a client sees it (queueing included)
    p95_ms: float
    p99_ms: float
    mean_batch_size: float | None  # from the server's /stats, over this run; None if it has none
    outcomes: dict[str, int]  # "200", "500", "ReadTimeout", "wrong id", …: how many of each
    latencies_ms: np.ndarray = field(repr=False, compare=False)

    def as_dict(self) -> dict:
        row = asdict(self)
        row.pop("latencies_ms")
        return row


def _require_loopback(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if parts.scheme not in ("http", "https") or not loopback:
        raise ValueError(f"url={url!r}: load_test only sends to this machine (http://127.0.0.1:PORT, ::1 or "
                         "localhost), so that it cannot flood someone else's server. Fix: start the server with "
                         "minikit.server.background_server(...) and pass its url.")
    return url.rstrip("/")


def _run_coroutine(coroutine):
    """Run ``coroutine`` to the end, also from Jupyter, where an event loop already runs in this thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


async def _server_stats(client) -> dict | None:
    try:
        response = await client.get("/stats")
        return response.json() if response.status_code == 200 else None
    except Exception:  # a server without /stats is still load-testable
        return None


async def _load_test(url: str, texts: Sequence[str], clients: int, requests: int, timeout_s: float,
                     texts_per_request: int, warmup: int) -> LoadTestResult:
    import httpx

    outcomes, latencies, answered = Counter(), [], Counter()
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    # trust_env=False: a proxy set in the environment must not see (or break) loopback traffic.
    async with httpx.AsyncClient(base_url=url, trust_env=False, limits=limits, timeout=timeout_s) as client:
        for i in range(warmup):  # untimed: first runs of ONNX Runtime allocate memory
            try:
                await client.post("/predict", json={"texts": [texts[i % len(texts)]]})
            except httpx.HTTPError:  # no server: the timed requests will count it
                break
        before = await _server_stats(client)
        ids = iter(range(requests))
        start = time.perf_counter()
        deadline = start + timeout_s

        async def client_loop() -> None:
            for i in ids:  # one shared iterator: each id is sent by exactly one client
                left = deadline - time.perf_counter()
                if left <= 0:
                    return
                batch = [texts[(i * texts_per_request + j) % len(texts)] for j in range(texts_per_request)]
                sent_at = time.perf_counter()
                try:
                    response = await client.post("/predict", json={"id": str(i), "texts": batch}, timeout=left)
                except httpx.HTTPError as problem:
                    outcomes[type(problem).__name__] += 1
                    answered[i] += 1
                    continue
                answered[i] += 1
                if response.status_code != 200:
                    outcomes[str(response.status_code)] += 1
                    continue
                body = response.json()
                if body.get("id") != str(i) or len(body.get("predictions", ())) != len(batch):
                    outcomes["wrong answer"] += 1
                    continue
                outcomes["200"] += 1
                latencies.append((time.perf_counter() - sent_at) * 1e3)

        await asyncio.gather(*(client_loop() for _ in range(clients)))
        duration = time.perf_counter() - start
        after = await _server_stats(client)
    assert all(n == 1 for n in answered.values()), "a request was counted twice"  # by construction; cheap to check
    mean_batch = None
    if before and after and after["batches"] > before["batches"]:
        mean_batch = (after["texts"] - before["texts"]) / (after["batches"] - before["batches"])
    ok, sent = outcomes["200"], len(answered)
    lat = np.array(latencies)
    pct = (lambda q: float(np.percentile(lat, q))) if ok else (lambda q: float("nan"))
    return LoadTestResult(url=url, clients=clients, texts_per_request=texts_per_request, sent=sent, ok=ok,
                          errors=sent - ok, duration_s=duration, requests_per_s=ok / duration,
                          texts_per_s=ok * texts_per_request / duration, p50_ms=pct(50), p95_ms=pct(95),
                          p99_ms=pct(99), mean_batch_size=mean_batch, outcomes=dict(outcomes), latencies_ms=lat)


def load_test(url: str, texts: Sequence[str], clients: int = 16, requests: int = 200, timeout_s: float = 60.0,
              texts_per_request: int = 1, warmup: int = 4) -> LoadTestResult:
    """Send ``requests`` POST /predict from ``clients`` concurrent clients; latency percentiles and throughput.

    Loopback only (127.0.0.1, ::1, localhost); at most ``MAX_LOAD_REQUESTS`` requests and
    ``timeout_s`` seconds (no new request after that, and none waits past it). Each request
    carries an id the server echoes; an answer with the wrong id or the wrong number of
    predictions counts as an error, as do non-200 answers, timeouts and refused connections.
    """
    url = _require_loopback(url)
    if isinstance(texts, str) or not texts:
        raise ValueError("texts: expected a non-empty list of strings.")
    for name, value, top in (("clients", clients, MAX_LOAD_CLIENTS), ("requests", requests, MAX_LOAD_REQUESTS),
                             ("texts_per_request", texts_per_request, 64)):
        if not (isinstance(value, int) and 1 <= value <= top):
            raise ValueError(f"{name}={value!r}: expected a whole number from 1 to {top}.")
    if not 0 < timeout_s <= MAX_LOAD_SECONDS:
        raise ValueError(f"timeout_s={timeout_s!r}: expected more than 0 and at most {MAX_LOAD_SECONDS:g} seconds.")
    return _run_coroutine(_load_test(url, list(texts), clients, requests, timeout_s, texts_per_request, warmup))


def batching_comparison(model, texts: Sequence[str], clients: int = 16, requests: int = 200,
                        timeout_s: float = 60.0, settings: Mapping[str, Mapping] | None = None,
                        threads: int = 1) -> pd.DataFrame:
    """Start a server per setting (default: batching off, then on), load-test each; one row per setting.

    ``model`` is a served folder or a ``predict(texts)``; a folder is loaded once and shared.
    The ratios column compares throughput with the first setting's.
    """
    settings = settings or {"off": {"max_batch_size": 1}, "on": {"max_batch_size": 16, "max_wait_ms": 5.0}}
    predict = model if callable(model) else load_served_model(model, threads=threads)
    rows = []
    for name, options in settings.items():
        with background_server(predict, **options) as server:
            result = load_test(server.url, texts, clients=clients, requests=requests, timeout_s=timeout_s)
        rows.append({"batching": name, **{k: v for k, v in options.items()}, **result.as_dict()})
    table = pd.DataFrame(rows)
    table["throughput_ratio"] = table["requests_per_s"] / table["requests_per_s"].iloc[0]
    return table


__all__ = ["LoadTestResult", "MAX_LOAD_CLIENTS", "MAX_LOAD_REQUESTS", "MAX_LOAD_SECONDS", "batching_comparison",
           "latency_vs_batch", "load_test"]
