"""The inference server fuzzed from its own OpenAPI schema, and a concurrent load run against it.

Issue 11, part 2. A stand-in ``predict`` replaces the model, so this needs no weights and takes
seconds: what is tested is the HTTP layer, the validation and the batcher.

* Fuzz: schemathesis reads ``/openapi.json`` from a ``background_server`` on 127.0.0.1 and sends
  what it generates from it (the schema's example, boundary values, other methods, then random
  valid and invalid bodies), all to that one server. Each answer must carry a status the schema
  documents, or be a 4xx with a reason; no 5xx; schemathesis' own checks (response schema,
  content type, invalid data refused, valid data accepted) must pass; afterwards a valid request
  to the same server still succeeds. (In process through ASGI, schemathesis' pytest plugin
  restarts the app's lifespan, so its batcher, after each operation: over loopback one server
  sees everything.)
* Load: 16 concurrent clients send 400 requests over loopback to ``background_server`` (in a
  separate process, so its memory is the server's alone), with ``minikit.load_testing.load_test``:
  0 errors, every request answered exactly once with its own id (also counted by the server),
  latency percentiles and throughput recorded, resident memory growth from after a warm-up to
  after the run under 10 %.

Figures: printed (``pytest -s``) and written to ``artifacts/server_fuzz.json`` and
``artifacts/server_load.json``.
"""

from __future__ import annotations

import json
import select
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import httpx
import psutil
import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from minikit import server
from minikit.load_testing import load_test

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
FUZZ_EXAMPLES = 120  # per operation; the coverage phase adds its boundary cases on top


def stand_in(texts: list[str]) -> list[dict]:
    """A model in miniature: a label from the text's length, one prediction per text."""
    return [{"label": "even" if len(t) % 2 == 0 else "odd", "score": 0.75} for t in texts]


FUZZ: Counter = Counter()  # examples, 5xx, and (operation, phase, mode, status) → count


# The server's limits are small, so that generated texts and lists reach them (413) as well as stay
# under them. The schema is the app's own /openapi.json (the fixture checks the server serves it);
# loading it here, not from the running server, lets pytest collect the tests without a server
# (schemathesis.pytest.from_fixture, the lazy way, fails on pytest 9: no Function._nodeid).
LIMITS = dict(max_batch_size=8, max_wait_ms=1, max_text_chars=200, max_texts_per_request=8)
OPENAPI = json.loads(json.dumps(server.create_app(stand_in, **LIMITS).openapi()))
schema = schemathesis.openapi.from_dict(OPENAPI)
# A body the schema forbids may get 413 as well as 400/422: the server answers 413 to any string or
# list over its maxLength/maxItems (documented for /predict: "a text over max_text_chars, ...").
schema.config.checks.negative_data_rejection.expected_statuses = [
    *schema.config.checks.negative_data_rejection.expected_statuses, "413"]


@schema.hook
def map_case(context, case):
    """OpenAPI cannot say "exactly one of text and texts" (a validator enforces it, answering 422), so
    schema-valid bodies often have both or neither. Give each positive /predict body exactly one, so
    valid data reaches the batcher and schemathesis can check that it is accepted."""
    body = case.body
    if (case.meta is None or not case.meta.generation.mode.is_positive or case.operation.path != "/predict"
            or not isinstance(body, dict)):
        return case
    has_text, has_texts = body.get("text") is not None, body.get("texts") is not None
    if has_text and has_texts:
        case.body = {k: v for k, v in body.items() if k != "text"}
    elif not has_text and not has_texts:
        case.body = {**{k: v for k, v in body.items() if k not in ("text", "texts")}, "text": "a generated text"}
    return case


@pytest.fixture(scope="module")
def fuzzed_server():
    """One server on 127.0.0.1 for the whole fuzz and the checks after it."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NO_PROXY", "127.0.0.1,localhost")  # loopback must never go through a proxy
        with server.background_server(stand_in, **LIMITS) as running:
            assert httpx.get(f"{running.url}/openapi.json", trust_env=False).json() == OPENAPI
            yield running


@schema.parametrize()
@settings(max_examples=FUZZ_EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
def test_fuzzed_requests_get_a_documented_answer_and_never_a_5xx(case, fuzzed_server):
    response = case.call(base_url=fuzzed_server.url)  # over loopback HTTP, to the module's one server
    status = response.status_code
    phase = case.meta.phase.name.value if case.meta else "explicit"
    mode = case.meta.generation.mode.value if case.meta else "positive"
    FUZZ["examples"] += 1
    FUZZ["5xx"] += status >= 500
    FUZZ[(case.operation.label, phase, mode, status)] += 1
    assert status < 500, f"{case.method} {case.path} body={case.body!r} → {status}: {response.text[:500]}"
    documented = OPENAPI["paths"].get(case.path, {}).get(case.method.lower(), {}).get("responses", {})
    if str(status) not in documented:  # e.g. 405 to a method the path does not serve
        assert 400 <= status < 500, (status, response.text[:500])
    if status >= 400:  # every refusal says why
        detail = response.json().get("detail")
        assert isinstance(detail, str) and detail.strip(), response.text[:500]
    case.validate_response(response)  # schemathesis' checks: schema, content type, invalid refused, valid accepted


def test_the_server_still_serves_after_the_fuzz(fuzzed_server):
    url = fuzzed_server.url
    response = httpx.post(f"{url}/predict", json={"texts": ["after the fuzz", "still fine"], "id": "after"},
                          trust_env=False)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == "after" and [p["label"] for p in body["predictions"]] == ["even", "even"]
    health = httpx.get(f"{url}/health", trust_env=False)
    assert health.status_code == 200 and health.json()["status"] == "ok"
    stats = _stats(url)
    assert stats["failed_texts"] == 0 and stats["queued"] == 0
    assert fuzzed_server.thread.is_alive()

    by_status = Counter()
    for key, n in FUZZ.items():
        if isinstance(key, tuple):
            by_status[str(key[3])] += n
    figures = {"examples": FUZZ["examples"], "server_errors_5xx": FUZZ["5xx"],
               "by_status": dict(sorted(by_status.items())),
               "by_operation_phase_mode_status": {" ".join(map(str, k)): n for k, n in sorted(FUZZ.items(), key=str)
                                                  if isinstance(k, tuple)},
               "predict_requests_accepted_by_the_batcher": stats["requests"],
               "max_examples_per_operation": FUZZ_EXAMPLES, "schemathesis": schemathesis.__version__}
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "server_fuzz.json").write_text(json.dumps(figures, indent=2))
    print(f"\nschemathesis fuzz: {figures['examples']} examples, {figures['server_errors_5xx']} 5xx; "
          f"statuses {figures['by_status']}; {stats['requests']} requests reached the model")
    if FUZZ["examples"]:  # the fuzz ran before, on this same server (it does unless deselected)
        assert FUZZ["5xx"] == 0 and FUZZ["examples"] >= 100
        predicted = sum(n for k, n in FUZZ.items() if isinstance(k, tuple) and k[0] == "POST /predict" and k[3] == 200)
        assert stats["requests"] == predicted + 1  # each accepted request reached the batcher once, none lost


def _stats(url: str) -> dict:
    return httpx.get(f"{url}/stats", trust_env=False, timeout=10).json()


# --------------------------------------------------------------------------------------------
# Load: 16 clients over loopback, the server in its own process
# --------------------------------------------------------------------------------------------

# server.py stands alone (no torch, no minikit): loaded as a file, as in the container, so the
# process's memory is the server's, not PyTorch's, and 10 % of it is a few MB.
SERVER_SCRIPT = textwrap.dedent("""
    import importlib.util, sys, time
    spec = importlib.util.spec_from_file_location("served", sys.argv[1])
    served = importlib.util.module_from_spec(spec)
    sys.modules["served"] = served
    spec.loader.exec_module(served)

    def stand_in(texts):
        time.sleep(0.001)  # like a model: about the same time for one text or a batch
        return [{"label": "even" if len(t) % 2 == 0 else "odd", "score": 0.75} for t in texts]

    with served.background_server(stand_in, max_batch_size=16, max_wait_ms=2) as running:
        print(running.url, flush=True)
        sys.stdin.read()  # until the test closes our stdin
""")

TEXTS = [f"Text number {i}: " + "word " * (i % 7) for i in range(32)]


@pytest.fixture
def server_process():
    """(url, psutil.Process) of a background_server running in a child process."""
    proc = subprocess.Popen([sys.executable, "-c", SERVER_SCRIPT, server.__file__], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        url = proc.stdout.readline().strip() if ready else ""
        if not url.startswith("http://127.0.0.1:"):
            proc.kill()
            pytest.fail(f"The server did not start: {url!r}\n{proc.communicate()[1][-2000:]}")
        yield url, psutil.Process(proc.pid)
    finally:
        proc.stdin.close()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_load_16_clients_every_request_answered_once_and_memory_flat(server_process):
    url, process = server_process
    rss_start = process.memory_info().rss
    warmup = load_test(url, TEXTS, clients=16, requests=200, timeout_s=60)  # first requests allocate
    assert warmup.errors == 0, warmup.outcomes
    rss_warm = process.memory_info().rss
    before = _stats(url)
    result = load_test(url, TEXTS, clients=16, requests=400, timeout_s=60, warmup=0)
    after = _stats(url)
    rss_end = process.memory_info().rss
    growth = (rss_end - rss_warm) / rss_warm

    figures = {
        "clients": result.clients, "requested": 400, "sent": result.sent, "answered_ok": result.ok,
        "errors": result.errors, "outcomes": result.outcomes,
        "server_counted_requests": after["requests"] - before["requests"],
        "server_counted_texts": after["texts"] - before["texts"],
        "p50_ms": round(result.p50_ms, 2), "p95_ms": round(result.p95_ms, 2), "p99_ms": round(result.p99_ms, 2),
        "requests_per_s": round(result.requests_per_s, 1), "duration_s": round(result.duration_s, 2),
        "mean_batch_size": result.mean_batch_size and round(result.mean_batch_size, 2),
        "rss_mb": {"start": round(rss_start / 1e6, 1), "after_warmup": round(rss_warm / 1e6, 1),
                   "after_run": round(rss_end / 1e6, 1)},
        "rss_growth_pct": round(100 * growth, 2), "server": "background_server in a child process, stand-in model",
    }
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "server_load.json").write_text(json.dumps(figures, indent=2))
    print(f"\nload: {result.sent} sent, {result.ok} answered, {result.errors} errors; p50/p95/p99 "
          f"{figures['p50_ms']}/{figures['p95_ms']}/{figures['p99_ms']} ms; {figures['requests_per_s']} requests/s; "
          f"RSS {figures['rss_mb']} MB, growth {figures['rss_growth_pct']} %")

    assert result.sent == result.ok == 400 and result.errors == 0 and result.outcomes == {"200": 400}
    assert len(result.latencies_ms) == 400 and result.p50_ms <= result.p95_ms <= result.p99_ms
    # Exactly once, seen from the server too: no request lost, none repeated.
    assert figures["server_counted_requests"] == figures["server_counted_texts"] == 400
    assert result.mean_batch_size is not None and result.mean_batch_size > 1  # concurrent requests were batched
    assert growth < 0.10, figures["rss_mb"]


class _MixUpIds:
    """ASGI middleware: every 4th /predict answer carries another id (same length, so the body stays valid)."""

    def __init__(self, app):
        self.app, self.calls = app, 0

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] != "/predict":
            return await self.app(scope, receive, send)
        self.calls += 1
        wrong = self.calls % 4 == 0

        async def send_mixed_up(message):
            if wrong and message["type"] == "http.response.body" and message.get("body"):
                request_id = json.loads(message["body"]).get("id") or ""
                message = {**message, "body": message["body"].replace(
                    f'"id":"{request_id}"'.encode(), f'"id":"{"x" * len(request_id)}"'.encode())}
            await send(message)

        await self.app(scope, receive, send_mixed_up)


def test_load_test_counts_an_answer_with_another_requests_id_as_an_error(monkeypatch):
    """The check above means something: load_test matches each answer to its request by id."""
    real = server.create_app
    monkeypatch.setattr(server, "create_app", lambda model, **options: _MixUpIds(real(model, **options)))
    with server.background_server(stand_in, max_batch_size=4, max_wait_ms=1) as running:
        result = load_test(running.url, TEXTS, clients=4, requests=40, timeout_s=30, warmup=0)
    assert result.sent == 40 and result.ok == 30 and result.errors == 10
    assert result.outcomes == {"200": 30, "wrong answer": 10}
