"""Altair charts: each function takes plain data (a DataFrame or array) and returns a chart.

Charts carry small, aggregated data only, so notebook outputs stay light.
"""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

# The course's source: "5–20 M parameters ≈ 10 ms, 50–100 M ≈ 40 ms, 500 M+ > 100 ms".
SIZE_CLASS_CLAIMS = pd.DataFrame(
    {
        "size_class": ["5–20 M", "50–100 M", "500 M+"],
        "params_lo_m": [5.0, 50.0, 500.0],
        "params_hi_m": [20.0, 100.0, 2000.0],
        "claimed_ms": [10.0, 40.0, 100.0],
        "claim": ["≈ 10 ms", "≈ 40 ms", "> 100 ms"],
    }
)


def enable_offline_charts() -> None:
    """Render charts as JupyterChart widgets with Vega bundled locally (no CDN, works offline)."""
    alt.renderers.enable("jupyter", offline=True)


def size_class_of(params_m: float) -> str | None:
    """The source's size class for a parameter count in millions, or None between classes."""
    for row in SIZE_CLASS_CLAIMS.itertuples():
        if row.params_lo_m <= params_m < row.params_hi_m:
            return row.size_class
    return None


def latency_chart(profiles: pd.DataFrame, claims: bool = True) -> alt.Chart:
    """Batch-1 latency vs parameters (log axes), with the source's size-class claims as boxes."""
    base = alt.Chart(profiles).encode(
        x=alt.X("params_m:Q", scale=alt.Scale(type="log", domain=[4, 1000]), title="parameters (millions)"),
        y=alt.Y("latency_p50_ms:Q", scale=alt.Scale(type="log", domain=[2, 2000]), title="latency p50, batch 1 (ms)"),
    )
    points = base.mark_circle(size=90).encode(
        color=alt.Color("name:N", title="model"),
        tooltip=["name", alt.Tooltip("params_m:Q", format=".1f"), alt.Tooltip("latency_p50_ms:Q", format=".1f"),
                 alt.Tooltip("latency_p95_ms:Q", format=".1f"), alt.Tooltip("throughput:Q", format=".1f"),
                 alt.Tooltip("size_mb:Q", format=".0f"), alt.Tooltip("peak_memory_mb:Q", format=".0f")],
    )
    labels = base.mark_text(align="left", dx=7, fontSize=11).encode(text="name:N")
    layers = [points, labels]
    if claims:
        claim = alt.Chart(SIZE_CLASS_CLAIMS).mark_rule(strokeWidth=3, color="gray", opacity=0.6).encode(
            x="params_lo_m:Q", x2="params_hi_m:Q", y="claimed_ms:Q", tooltip=["size_class", "claim"]
        )
        claim_text = alt.Chart(SIZE_CLASS_CLAIMS).mark_text(dy=-8, color="gray", align="left").encode(
            x="params_lo_m:Q", y="claimed_ms:Q", text=alt.Text("claim:N")
        )
        layers = [claim, claim_text, *layers]
    seq = int(profiles["seq_len"].iloc[0]) if len(profiles) else 0
    return alt.layer(*layers).properties(
        width=460, height=300, title=f"Batch-1 latency at {seq} tokens (gray: the source's claim per size class)"
    )


def throughput_chart(profiles: pd.DataFrame) -> alt.Chart:
    """Examples per second at the profiled batch size, one bar per model."""
    batch = int(profiles["batch_size"].iloc[0]) if len(profiles) else 0
    return alt.Chart(profiles).mark_bar().encode(
        x=alt.X("throughput:Q", title=f"examples / s at batch {batch}"),
        y=alt.Y("name:N", sort="-x", title=None),
        color=alt.Color("name:N", legend=None),
        tooltip=["name", alt.Tooltip("throughput:Q", format=".1f")],
    ).properties(width=460, height=24 * max(len(profiles), 1))


def token_length_histogram(lengths: np.ndarray, max_length: int = 128, bin_width: int = 32) -> alt.Chart:
    """Histogram of token lengths with a ``max_length`` parameter: bars past it turn red.

    The parameter lives in the chart, so a slider linked to ``params.max_length`` of a
    JupyterChart redraws in the browser without a round trip to Python.
    """
    lengths = np.asarray(lengths)
    edges = np.arange(0, int(lengths.max()) + bin_width + 1, bin_width)
    counts, _ = np.histogram(lengths, bins=edges)
    data = pd.DataFrame({"start": edges[:-1], "end": edges[1:], "count": counts})
    data = data[data["count"] > 0]
    limit = alt.param(name="max_length", value=int(max_length))
    bars = alt.Chart(data).mark_bar().encode(
        x=alt.X("start:Q", title="tokens per article (after WordPiece)"),
        x2="end:Q",
        y=alt.Y("count:Q", title="articles"),
        color=alt.condition("datum.end > max_length", alt.value("#d62728"), alt.value("#1f77b4")),
        tooltip=["start", "end", "count"],
    ).add_params(limit)
    rule = alt.Chart(pd.DataFrame({"x": [0]})).mark_rule(color="black", strokeDash=[4, 3]).encode(
        x=alt.X("max_length:Q")
    ).transform_calculate(max_length="max_length")
    return alt.layer(bars, rule).properties(
        width=520, height=240, title="Token lengths: red bins are (at least partly) cut at max_length"
    )


def class_balance_chart(splits) -> alt.Chart:
    """Share of each label within each split (a DatasetDict or {name: Dataset})."""
    rows = []
    for split, ds in splits.items():
        names = ds.features["label"].names
        values, counts = np.unique(ds["label"], return_counts=True)
        rows += [{"split": split, "label": names[v], "count": int(c), "share": c / len(ds)}
                 for v, c in zip(values, counts)]
    return alt.Chart(pd.DataFrame(rows)).mark_bar().encode(
        x=alt.X("share:Q", axis=alt.Axis(format="%"), title="share of split"),
        y=alt.Y("split:N", title=None, sort=list(splits)),
        color=alt.Color("label:N"),
        tooltip=["split", "label", "count", alt.Tooltip("share:Q", format=".1%")],
    ).properties(width=460, height=110, title="Class balance per split")
