"""The HTTP server (minikit.server): its answers to good and bad requests, its batcher, its host checks."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from fastapi.testclient import TestClient
from helpers import echo

from minikit import server
from minikit.server import background_server, create_app

# --------------------------------------------------------------------------------------------
# The HTTP API
# --------------------------------------------------------------------------------------------


BAD_REQUESTS = [  # (body or raw bytes, status, words the reason must contain)
    (b'{"texts": ["unclosed"', 400, "Malformed JSON"),
    (b"not json at all", 400, "Malformed JSON"),
    ({"texts": [1, 2]}, 422, "texts.0"),
    ({"texts": "a string, not a list"}, 422, "texts"),
    ({"text": ["a list"]}, 422, "text"),
    ({"text": ""}, 422, "at least 1 character"),
    ({"texts": ["fine", "   "]}, 422, "whitespace"),
    ({"texts": []}, 422, "at least 1 item"),
    ({"text": "a", "texts": ["b"]}, 422, "exactly one"),
    ({}, 422, "exactly one"),
    ({"texts": ["ok"], "extra": 1}, 422, "extra"),
    ({"text": "x" * 101}, 413, "at most 100 characters"),
    ({"texts": ["x"] * 5}, 413, "at most 4 items"),
    ([1, 2, 3], 422, "must be a JSON object"),
    (b'{"text": "\\ud800"}', 422, "unicode string"),  # a lone surrogate: the tokenizer could not take it
    ({"text": "\u3000\ufeff"}, 422, "whitespace"),  # blank in JSON Schema's \S sense, as documented
]


def test_bad_requests_get_4xx_with_a_reason_and_the_server_keeps_serving():
    app = create_app(echo, max_batch_size=4, max_wait_ms=1, max_text_chars=100, max_texts_per_request=4)
    with TestClient(app) as client:  # as a context manager, so the lifespan starts the batcher
        for body, status, words in BAD_REQUESTS:
            if isinstance(body, bytes):
                response = client.post("/predict", content=body, headers={"content-type": "application/json"})
            else:
                response = client.post("/predict", json=body)
            assert response.status_code == status, (body, response.text)
            assert words in response.json()["detail"], (body, response.json())
        for headers in ({"content-type": "text/plain"}, {}):  # JSON without the JSON content type, or no body
            response = client.post("/predict", content=b'{"text": "a"}' if headers else b"", headers=headers)
            assert response.status_code == 422 and "Content-Type: application/json" in response.json()["detail"]
        huge = json.dumps({"texts": ["x" * 100] * 4}).encode() + b" " * 70_000
        response = client.post("/predict", content=huge, headers={"content-type": "application/json"})
        assert response.status_code == 413 and "bytes" in response.json()["detail"]
        response = client.post("/predict", json={"texts": ["still", "working"], "id": "r1"})
        assert response.status_code == 200
        assert response.json()["id"] == "r1"
        assert [p["label"] for p in response.json()["predictions"]] == ["still", "working"]
        assert client.post("/predict", json={"text": "one"}).json()["predictions"][0]["label"] == "one"
        assert client.get("/health").json()["status"] == "ok"
        stats = client.get("/stats").json()
        assert stats["requests"] == 2 and stats["texts"] == 3 and stats["failed_texts"] == 0


def test_a_model_error_is_a_500_and_the_batcher_survives():
    def fragile(texts):
        if "boom" in texts:
            raise RuntimeError("cannot classify boom")
        return echo(texts)

    with TestClient(create_app(fragile, max_batch_size=1)) as client:
        response = client.post("/predict", json={"text": "boom"})
        assert response.status_code == 500
        assert "RuntimeError: cannot classify boom" in response.json()["detail"]
        assert client.post("/predict", json={"text": "fine"}).status_code == 200
        assert client.get("/health").status_code == 200
        assert client.get("/stats").json()["failed_texts"] == 1


def test_a_bad_text_does_not_fail_the_others_in_its_batch():
    def fragile(texts):
        if "boom" in texts:
            raise RuntimeError("cannot classify boom")
        return echo(texts)

    async def run():
        app = create_app(fragile, max_batch_size=8, max_wait_ms=50)
        async with app.router.lifespan_context(app):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
                answers = await asyncio.gather(*(client.post("/predict", json={"text": t})
                                                 for t in ["a", "boom", "b", "c"]))
                return answers, (await client.get("/stats")).json()

    answers, stats = asyncio.run(run())
    assert [r.status_code for r in answers] == [200, 500, 200, 200]
    assert [r.json()["predictions"][0]["label"] for r in answers if r.status_code == 200] == ["a", "b", "c"]
    assert stats["batches"] == 1 and stats["failed_texts"] == 1  # grouped, then each retried alone


def test_openapi_documents_the_error_answers_and_limits():
    schema = create_app(echo, max_text_chars=100, max_texts_per_request=4).openapi()
    predict = schema["paths"]["/predict"]["post"]
    assert {"200", "400", "413", "422", "500", "503"} <= set(predict["responses"])
    assert predict["responses"]["422"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorResponse")
    request = schema["components"]["schemas"]["PredictRequest"]
    texts = next(s for s in request["properties"]["texts"]["anyOf"] if s.get("type") == "array")
    assert texts["maxItems"] == 4 and texts["minItems"] == 1
    assert texts["items"]["maxLength"] == 100 and texts["items"]["minLength"] == 1
    assert request["additionalProperties"] is False


async def _concurrent_posts(app, n: int) -> tuple[list[dict], dict]:
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app):  # ASGITransport does not run the lifespan itself
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            responses = await asyncio.gather(*(client.post("/predict", json={"text": f"text {i}"}) for i in range(n)))
            stats = (await client.get("/stats")).json()
    assert all(r.status_code == 200 for r in responses)
    return [r.json()["predictions"][0] for r in responses], stats


@pytest.mark.parametrize("max_batch_size", [1, 16])
def test_batching_groups_concurrent_requests_and_routes_each_answer(max_batch_size):
    app = create_app(echo, max_batch_size=max_batch_size, max_wait_ms=20)
    predictions, stats = asyncio.run(_concurrent_posts(app, 16))
    assert [p["label"] for p in predictions] == [f"text {i}" for i in range(16)]  # each got its own answer
    assert stats["requests"] == stats["texts"] == 16
    if max_batch_size == 1:
        assert stats["batches"] == 16 and stats["mean_batch_size"] == 1
        assert {p["batch_size"] for p in predictions} == {1}
    else:
        assert stats["mean_batch_size"] > 1 and stats["largest_batch"] <= 16
        assert max(p["batch_size"] for p in predictions) > 1


def test_create_app_checks_its_settings():
    with pytest.raises(ValueError, match="max_batch_size=0"):
        create_app(echo, max_batch_size=0)
    with pytest.raises(ValueError, match="max_wait_ms"):
        create_app(echo, max_wait_ms=-1)


def test_serve_refuses_remote_hosts_unless_asked():
    with pytest.raises(ValueError, match="allow_remote=True"):
        server.serve(echo, host="0.0.0.0")
    with pytest.raises(ValueError, match="allow_remote=True"):
        with background_server(echo, host="192.168.1.2"):
            pass
    with pytest.raises(SystemExit) as exit_info:
        server.main(["--model-dir", "nowhere", "--host", "0.0.0.0"])
    assert exit_info.value.code == 2
