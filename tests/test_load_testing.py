"""Latency by batch size, load tests and the batching comparison (minikit.load_testing), on stand-in models."""

from __future__ import annotations

import asyncio
import socket
import time

import numpy as np
import pytest

from minikit import load_testing
from minikit.load_testing import latency_vs_batch, load_test


def test_latency_vs_batch_table():
    calls = []
    table = latency_vs_batch(lambda texts: calls.append(len(texts)), ["a", "b", "c"], batch_sizes=(1, 4), repeats=3,
                             warmup=1)
    assert calls == [1] * 4 + [4] * 4  # warmup + repeats, batches cycled from the texts
    assert list(table.columns) == ["batch_size", "p50_ms", "p95_ms", "ms_per_text", "texts_per_s"]
    np.testing.assert_allclose(table["texts_per_s"], table["batch_size"] * 1e3 / table["p50_ms"])
    with pytest.raises(ValueError, match="repeats"):
        latency_vs_batch(print, ["a"], repeats=0)


def test_batching_comparison_with_a_stand_in_model():
    def slow_echo(texts):  # 30 ms a call whatever the batch: one at a time caps at ~33 requests/s
        time.sleep(0.03)
        return [{"label": t, "score": 1.0} for t in texts]

    table = load_testing.batching_comparison(slow_echo, [f"t{i}" for i in range(8)], clients=16, requests=64,
                                           timeout_s=30)
    off, on = table.set_index("batching").loc["off"], table.set_index("batching").loc["on"]
    assert off["ok"] == on["ok"] == 64
    assert off["mean_batch_size"] == 1 and on["mean_batch_size"] > 2
    # measured 3.6× on 2 busy cores, where HTTP handling in Python (client and server) limits batching
    assert on["throughput_ratio"] > 2


@pytest.mark.parametrize("url", ["http://example.com:8000", "http://10.0.0.5:8000", "http://0.0.0.0:8000",
                                 "ftp://127.0.0.1:21", "http://127.0.0.1.example.com"])
def test_load_test_refuses_other_hosts(url):
    with pytest.raises(ValueError, match="only sends to this machine"):
        load_test(url, ["a"], requests=1)


def test_load_test_bounds_and_counts_failures():
    with pytest.raises(ValueError, match="requests=100000"):
        load_test("http://127.0.0.1:1", ["a"], requests=100_000)
    with pytest.raises(ValueError, match="timeout_s"):
        load_test("http://127.0.0.1:1", ["a"], timeout_s=3600)
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = load_test(f"http://127.0.0.1:{port}", ["a"], clients=2, requests=3, timeout_s=10, warmup=0)
    assert result.sent == 3 and result.ok == 0 and result.errors == 3 and result.outcomes == {"ConnectError": 3}
    assert np.isnan(result.p50_ms) and result.mean_batch_size is None


def test_load_test_from_inside_a_running_event_loop():
    async def notebook_cell():  # Jupyter runs cells inside an event loop
        return load_test("http://127.0.0.1:1", ["a"], requests=1, timeout_s=5, warmup=0)

    assert asyncio.run(notebook_cell()).sent == 1
