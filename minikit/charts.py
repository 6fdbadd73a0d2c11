"""Altair charts: each function takes plain data (a DataFrame or array) and returns a chart.

Charts carry small, aggregated data only, so notebook outputs stay light. This module imports
nothing of minikit: a claim or a threshold to draw is an argument (``minikit.claims`` holds the
source's). The charts of chapters 5–7 are ``minikit.compression_charts``.
"""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd


def enable_offline_charts() -> None:
    """Render charts as JupyterChart widgets with Vega bundled locally (no CDN, works offline)."""
    alt.renderers.enable("jupyter", offline=True)
    # The renderer switch reaches JupyterChart only once a plain chart is shown; a widget shown
    # first would fetch Vega from a CDN and fail offline. Switch JupyterChart itself too.
    alt.JupyterChart.enable_offline()


def latency_chart(profiles: pd.DataFrame, claims: pd.DataFrame | None = None) -> alt.Chart:
    """Batch-1 latency vs parameters (log axes); ``claims`` (``minikit.claims.SIZE_CLASSES``) as gray rules."""
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
    if claims is not None:
        claim = alt.Chart(claims).mark_rule(strokeWidth=3, color="gray", opacity=0.6).encode(
            x="params_lo_m:Q", x2="params_hi_m:Q", y="claimed_ms:Q", tooltip=["size_class", "claim"]
        )
        claim_text = alt.Chart(claims).mark_text(dy=-8, color="gray", align="left").encode(
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


def confusion_matrix_chart(cm: np.ndarray, label_names) -> alt.Chart:
    """Heatmap of a confusion matrix: counts as text, colour = share of the true class (row).

    Colouring by row share rather than count keeps a small class's mistakes visible.
    """
    cm = np.asarray(cm)
    names = list(getattr(label_names, "names", label_names))
    if cm.shape != (len(names), len(names)):
        raise ValueError(f"cm has shape {cm.shape} but there are {len(names)} label names. "
                         "Fix: pass the label names of the classes the matrix counts, in order.")
    rows = cm.sum(axis=1, keepdims=True)
    share = np.divide(cm, rows, out=np.zeros(cm.shape), where=rows > 0)
    data = pd.DataFrame([{"true": names[i], "predicted": names[j], "count": int(cm[i, j]), "share": share[i, j]}
                         for i in range(len(names)) for j in range(len(names))])
    base = alt.Chart(data).encode(
        x=alt.X("predicted:N", sort=names, title="predicted class"),
        y=alt.Y("true:N", sort=names, title="true class"),
    )
    cells = base.mark_rect().encode(
        color=alt.Color("share:Q", scale=alt.Scale(scheme="blues", domain=[0, 1]), title="share of row"),
        tooltip=["true", "predicted", "count", alt.Tooltip("share:Q", format=".1%")],
    )
    text = base.mark_text(fontSize=13).encode(
        text="count:Q", color=alt.condition("datum.share > 0.5", alt.value("white"), alt.value("black")),
    )
    return alt.layer(cells, text).properties(width=56 * len(names), height=56 * len(names),
                                             title="Confusion matrix (rows: true class)")


def precision_recall_chart(table: pd.DataFrame, threshold: float = 0.5, title: str | None = None) -> alt.Chart:
    """Precision, recall and F1 against the decision threshold, with a ``threshold`` parameter rule.

    ``table`` is ``metrics.precision_recall_curve_table``'s. As in ``token_length_histogram``, the
    parameter lives in the chart: a slider linked to ``params.threshold`` moves the rule and the
    dots in the browser without Python redrawing anything.
    """
    long = table.melt(id_vars="threshold", value_vars=["precision", "recall", "f1"], var_name="metric")
    steps = np.diff(np.sort(table["threshold"].unique()))
    tolerance = float(steps.min() / 2) if len(steps) else 0.5  # the grid point nearest the slider
    limit = alt.param(name="threshold", value=float(threshold))
    x = alt.X("threshold:Q", scale=alt.Scale(domain=[0, 1]), title="decision threshold on p(class)")
    y = alt.Y("value:Q", scale=alt.Scale(domain=[0, 1]), title=None)
    color = alt.Color("metric:N", sort=["precision", "recall", "f1"], title=None)
    lines = alt.Chart(long).mark_line(interpolate="step-after").encode(
        x=x, y=y, color=color, strokeDash=alt.condition("datum.metric == 'f1'", alt.value([4, 3]), alt.value([1, 0])),
    ).add_params(limit)
    dots = alt.Chart(long).mark_circle(size=70).encode(
        x=x, y=y, color=color,
        tooltip=["metric", alt.Tooltip("threshold:Q", format=".2f"), alt.Tooltip("value:Q", format=".3f")],
    ).transform_filter(f"abs(datum.threshold - threshold) <= {tolerance}")
    rule = alt.Chart(pd.DataFrame({"x": [0]})).mark_rule(color="black", strokeDash=[4, 3]).encode(
        x=alt.X("threshold:Q")
    ).transform_calculate(threshold="threshold")
    return alt.layer(lines, dots, rule).properties(
        width=460, height=260, title=title or "Precision and recall as the threshold moves")


def benchmark_chart(table: pd.DataFrame, baseline: str | None = None) -> alt.HConcatChart:
    """Two panels from a ``Benchmark`` table: accuracy vs batch-1 latency, accuracy vs size.

    The baseline is a diamond, with its accuracy as a dashed line: up and to the left of it is better.
    A table with ``accuracy_low`` and ``accuracy_high`` (``Benchmark.results``) gets each accuracy's
    95 % interval as a vertical bar.
    """
    data = table.assign(accuracy_pct=100 * table["accuracy"],
                        role=np.where(table["name"] == baseline, "baseline", "variant"))
    bars = {"accuracy_low", "accuracy_high"} <= set(table.columns)  # the 95 % intervals, when the table has them
    if bars:
        data = data.assign(low_pct=100 * table["accuracy_low"], high_pct=100 * table["accuracy_high"])
    extra = [c for c in ["throughput", "speedup", "size_ratio"] if c in data]  # tooltips, when the table has them
    data = data[["name", "role", "accuracy_pct", "latency_p50_ms", "size_mb", *extra,
                 *(["low_pct", "high_pct"] if bars else [])]]

    def panel(column: str, title: str) -> alt.LayerChart:
        base = alt.Chart(data).encode(
            x=alt.X(f"{column}:Q", title=title, scale=alt.Scale(zero=True)),
            y=alt.Y("accuracy_pct:Q", title="accuracy (%)", scale=alt.Scale(zero=False)),
        )
        points = base.mark_point(size=130, filled=True).encode(
            color=alt.Color("name:N", title="variant"),
            shape=alt.Shape("role:N", scale=alt.Scale(domain=["baseline", "variant"], range=["diamond", "circle"]),
                            title=None),
            tooltip=["name", alt.Tooltip("accuracy_pct:Q", format=".1f"), alt.Tooltip("latency_p50_ms:Q", format=".2f"),
                     alt.Tooltip("size_mb:Q", format=".1f"), *[alt.Tooltip(f"{c}:Q", format=".2f") for c in extra]],
        )
        labels = base.mark_text(align="left", dx=9, fontSize=11).encode(text="name:N")
        layers = [points, labels]
        if bars:  # each accuracy's 95 % interval: variants whose bars overlap may not differ at all
            layers.insert(0, base.mark_rule(strokeWidth=2, opacity=0.6).encode(
                y="low_pct:Q", y2="high_pct:Q", color=alt.Color("name:N", title="variant")))
        if (data["role"] == "baseline").any():
            level = alt.Chart(data[data["role"] == "baseline"]).mark_rule(color="gray", strokeDash=[4, 3]).encode(
                y="accuracy_pct:Q")
            layers.insert(0, level)
        return alt.layer(*layers).properties(width=300, height=240)

    note = ", bars = 95 % intervals" if bars else ""
    return alt.hconcat(panel("latency_p50_ms", "latency p50, batch 1 (ms)"), panel("size_mb", "size (MB)")).properties(
        title=f"Accuracy against cost{f' (◆ = baseline {baseline}{note})' if baseline else note}")


def attribution_chart(df: pd.DataFrame, top_k: int = 20, include_special: bool = False) -> alt.Chart:
    """Horizontal bars of the ``top_k`` tokens with the largest |attribution| (blue pushes the class up).

    Special tokens ([CLS], [SEP]) often take large gradient×input scores that say little about
    the text, so they are left out unless asked for.
    """
    data = df if include_special or "special" not in df else df[~df["special"]]
    data = data.assign(label=[f"{t}  #{p}" for t, p in zip(data["token"], data["position"])])
    top = data.loc[data["attribution"].abs().sort_values(ascending=False).index[:top_k]]
    top = top[["label", "token", "position", "attribution", "normalised"]]
    target = df.attrs.get("label")
    return alt.Chart(top).mark_bar().encode(
        x=alt.X("attribution:Q", title=f"attribution to {target!r}" if target else "attribution"),
        y=alt.Y("label:N", sort="-x", title=None),
        color=alt.Color("normalised:Q", scale=alt.Scale(scheme="redblue", domain=[-1, 1]), legend=None),
        tooltip=["token", "position", alt.Tooltip("attribution:Q", format=".3g"),
                 alt.Tooltip("normalised:Q", format=".2f")],
    ).properties(width=420, height=18 * max(len(top), 1), title=f"Top {len(top)} tokens by |attribution|")


def training_chart(history: pd.DataFrame, title: str = "Fine-tuning") -> alt.HConcatChart:
    """Training loss and validation accuracy against the step, side by side (a TrainResult.history).

    Validation accuracy exists only at evaluation steps; the rows between them are left out of
    its panel, and the best evaluation is ringed.
    """
    columns = ["step", "epoch", "train_loss", "val_accuracy", "lr"]
    data = history.reindex(columns=columns)
    x = alt.X("step:Q", title="training step", scale=alt.Scale(domainMin=0))
    loss = alt.Chart(data).mark_line(color="#1f77b4").encode(
        x=x, y=alt.Y("train_loss:Q", title="training loss", scale=alt.Scale(zero=True)),
        tooltip=["step", alt.Tooltip("epoch:Q", format=".2f"), alt.Tooltip("train_loss:Q", format=".3f"),
                 alt.Tooltip("lr:Q", format=".2e")],
    ).properties(width=300, height=200, title="training loss (mean over each logged interval)")
    evaluated = data.dropna(subset=["val_accuracy"])
    acc = alt.Chart(evaluated).mark_line(color="#2ca02c", point=True).encode(
        x=x, y=alt.Y("val_accuracy:Q", title="validation accuracy", axis=alt.Axis(format="%"),
                     scale=alt.Scale(zero=False)),
        tooltip=["step", alt.Tooltip("val_accuracy:Q", format=".1%")],
    )
    best = evaluated.loc[[evaluated["val_accuracy"].idxmax()]] if len(evaluated) else evaluated
    ring = alt.Chart(best).mark_point(size=220, color="black", filled=False).encode(
        x="step:Q", y="val_accuracy:Q", tooltip=["step", alt.Tooltip("val_accuracy:Q", format=".1%")])
    return alt.hconcat(loss, alt.layer(acc, ring).properties(
        width=300, height=200, title="validation accuracy (ring: best, kept at the end)")).properties(title=title)


# --- 03 fine-tuning, 07 distillation ---------------------------------------------------------------


def training_runs_chart(histories: dict, title: str = "Validation accuracy during training") -> alt.Chart:
    """Validation accuracy against the step, one line per run (``{name: TrainResult.history}``)."""
    frames = [h.dropna(subset=["val_accuracy"]).assign(run=name)[["run", "step", "val_accuracy"]]
              for name, h in histories.items()]
    data = pd.concat(frames, ignore_index=True)
    return alt.Chart(data).mark_line(point=True).encode(
        x=alt.X("step:Q", title="training step", scale=alt.Scale(domainMin=0)),
        y=alt.Y("val_accuracy:Q", title="validation accuracy", axis=alt.Axis(format="%"), scale=alt.Scale(zero=False)),
        color=alt.Color("run:N", title="run"),
        tooltip=["run", "step", alt.Tooltip("val_accuracy:Q", format=".1%")],
    ).properties(width=420, height=220, title=title)


# --- 08 deployment -----------------------------------------------------------------------------------


def batch_size_chart(table: pd.DataFrame, title: str = "Latency and throughput by batch size") -> alt.HConcatChart:
    """``load_testing.latency_vs_batch``'s table: p50 latency per call and texts per second, against batch size."""
    x = alt.X("batch_size:Q", scale=alt.Scale(type="log", base=2), axis=alt.Axis(values=list(table["batch_size"])),
              title="batch size")
    tooltip = ["batch_size", alt.Tooltip("p50_ms:Q", format=".1f"), alt.Tooltip("ms_per_text:Q", format=".2f"),
               alt.Tooltip("texts_per_s:Q", format=".0f")]
    latency = alt.Chart(table).mark_line(point=True, color="#d62728").encode(
        x=x, y=alt.Y("p50_ms:Q", title="latency of one call, p50 (ms)"), tooltip=tooltip).properties(
        width=280, height=200, title="a bigger batch takes longer…")
    throughput = alt.Chart(table).mark_line(point=True, color="#1f77b4").encode(
        x=x, y=alt.Y("texts_per_s:Q", title="texts per second"), tooltip=tooltip).properties(
        width=280, height=200, title="…but serves more texts per second")
    return alt.hconcat(latency, throughput).properties(title=title)


def load_test_chart(table: pd.DataFrame, current: str | None = None) -> alt.HConcatChart:
    """Throughput and p95 latency per server setting (rows of ``load_test`` results with a ``setting`` column)."""
    data = table.assign(is_current=table["setting"] == current)
    tooltip = ["setting", alt.Tooltip("requests_per_s:Q", format=".0f"), alt.Tooltip("p50_ms:Q", format=".1f"),
               alt.Tooltip("p95_ms:Q", format=".1f"), alt.Tooltip("mean_batch_size:Q", format=".1f"), "errors"]
    y = alt.Y("setting:N", title=None, sort=list(data["setting"]))
    color = alt.condition("datum.is_current", alt.value("#ff7f0e"), alt.value("#1f77b4"))
    throughput = alt.Chart(data).mark_bar().encode(
        x=alt.X("requests_per_s:Q", title="requests per second (higher is better)"), y=y, color=color,
        tooltip=tooltip).properties(width=260, height=alt.Step(22))
    p95 = alt.Chart(data).mark_bar().encode(
        x=alt.X("p95_ms:Q", title="p95 latency, ms (lower is better)"), y=alt.Y("setting:N", axis=None,
                                                                                sort=list(data["setting"])),
        color=color, tooltip=tooltip).properties(width=260, height=alt.Step(22))
    return alt.hconcat(throughput, p95).properties(title="Load test: every setting tried (orange: the current one)")


# --- 10 adaptive inference ---------------------------------------------------------------------------


def layer_accuracy_chart(table: pd.DataFrame, full_accuracy: float | None = None) -> alt.LayerChart:
    """Accuracy of each layer's own answer (``EarlyExit.layer_accuracy``): how much each depth knows."""
    data = table.assign(accuracy_pct=100 * table["accuracy"])
    bars = alt.Chart(data).mark_bar().encode(
        x=alt.X("layer:O", title="answer after layer"),
        y=alt.Y("accuracy_pct:Q", title="validation accuracy (%)", scale=alt.Scale(zero=False)),
        color=alt.Color("answer:N", title=None, scale=alt.Scale(range=["#9ecae1", "#1f77b4"])),
        tooltip=["layer", "answer", alt.Tooltip("accuracy_pct:Q", format=".1f")])
    layers = [bars]
    if full_accuracy is not None:
        layers.append(alt.Chart(pd.DataFrame({"accuracy_pct": [100 * full_accuracy]})).mark_rule(
            color="gray", strokeDash=[4, 3]).encode(y="accuracy_pct:Q"))
    return alt.layer(*layers).properties(width=320, height=200, title="What each layer already knows")


def early_exit_chart(curve: pd.DataFrame, threshold: float | None = None) -> alt.HConcatChart:
    """``early_exit.latency_curve``'s table: accuracy, mean layers and measured latency against the threshold.

    The x axis is the grid's position (thresholds crowd near 1); the current threshold is ringed,
    and the full model's accuracy and latency are dashed.
    """
    data = curve.assign(step=np.arange(len(curve)), label=[f"{t:g}" for t in curve["threshold"]],
                        accuracy_pct=100 * curve["accuracy"], is_current=np.isclose(curve["threshold"],
                                                                                    threshold if threshold is not None
                                                                                    else -1))
    x = alt.X("label:O", sort=list(data["label"]), title="max-prob threshold (exit when the top probability is above)")
    tooltip = [alt.Tooltip("threshold:Q", format="g"), alt.Tooltip("accuracy_pct:Q", format=".1f"),
               alt.Tooltip("mean_layers:Q", format=".2f"), alt.Tooltip("mean_ms:Q", format=".2f"),
               alt.Tooltip("speedup:Q", format=".2f")]

    def panel(column: str, title: str, reference: float | None, color: str) -> alt.LayerChart:
        base = alt.Chart(data).encode(x=x, y=alt.Y(f"{column}:Q", title=title, scale=alt.Scale(zero=False)),
                                      tooltip=tooltip)
        layers = [base.mark_line(point=True, color=color)]
        layers.append(base.transform_filter("datum.is_current").mark_point(size=260, filled=False, color="black",
                                                                           strokeWidth=2))
        if reference is not None:
            layers.insert(0, alt.Chart(pd.DataFrame({column: [reference]})).mark_rule(
                color="gray", strokeDash=[4, 3]).encode(y=f"{column}:Q"))
        return alt.layer(*layers).properties(width=230, height=180)

    full = curve.iloc[-1]  # the grid ends at 1.0: never exit early, i.e. the full model's answers
    return alt.hconcat(
        panel("accuracy_pct", "validation accuracy (%)", 100 * float(full["accuracy"]), "#2ca02c"),
        panel("mean_layers", "mean layers run", None, "#9467bd"),
        panel("mean_ms", "measured mean latency, batch 1 (ms)", float(full["full_ms"]), "#d62728"),
    ).properties(title="Early exit: lower threshold → fewer layers, less time, some accuracy at risk "
                       "(dashed: the full model)")


def exit_layers_chart(layers: np.ndarray, labels: np.ndarray, label_names) -> alt.Chart:
    """How many articles of each topic exit after each layer."""
    names = list(getattr(label_names, "names", label_names))
    data = pd.DataFrame({"layer": np.asarray(layers), "topic": [names[i] for i in np.asarray(labels)]})
    return alt.Chart(data).mark_bar().encode(
        x=alt.X("layer:O", title="exit after layer"), y=alt.Y("count():Q", title="articles"),
        color=alt.Color("topic:N"), tooltip=["layer", "topic", "count()"]).properties(
        width=320, height=200, title="Where articles exit")


def budget_chart(table: pd.DataFrame, latency_budget_ms: float | None = None,
                 memory_budget_mb: float | None = None) -> alt.HConcatChart:
    """``benchmark.pick_variant``'s table: accuracy vs latency and vs memory, budgets as red lines.

    Variants that fit are blue, the chosen one is ringed, rejected ones are grey.
    """
    chosen = table["reason"].eq("chosen") if "reason" in table else pd.Series(False, index=table.index)
    fits = table["fits"] if "fits" in table else pd.Series(True, index=table.index)
    data = table.assign(accuracy_pct=100 * table["accuracy"],
                        status=np.where(chosen, "chosen", np.where(fits, "fits", "rejected")))
    tooltip = ["name", alt.Tooltip("accuracy_pct:Q", format=".2f"), alt.Tooltip("latency_ms:Q", format=".2f"),
               alt.Tooltip("memory_mb:Q", format=".1f"), *(["reason"] if "reason" in data else [])]
    color = alt.Color("status:N", scale=alt.Scale(domain=["chosen", "fits", "rejected"],
                                                  range=["#ff7f0e", "#1f77b4", "#bbbbbb"]), title=None)

    def panel(column: str, title: str, budget: float | None) -> alt.LayerChart:
        base = alt.Chart(data).encode(x=alt.X(f"{column}:Q", title=title, scale=alt.Scale(zero=True)),
                                      y=alt.Y("accuracy_pct:Q", title="accuracy (%)", scale=alt.Scale(zero=False)))
        layers = [base.mark_point(size=130, filled=True).encode(color=color, tooltip=tooltip),
                  base.mark_text(align="left", dx=9, fontSize=11).encode(text="name:N"),
                  base.transform_filter("datum.status == 'chosen'").mark_point(
                      size=420, filled=False, color="black", strokeWidth=2)]
        if budget is not None:
            layers.insert(0, alt.Chart(pd.DataFrame({column: [budget]})).mark_rule(color="#d62728", strokeWidth=2)
                          .encode(x=f"{column}:Q"))
        return alt.layer(*layers).properties(width=280, height=220)

    return alt.hconcat(panel("latency_ms", "latency p50, batch 1 (ms)", latency_budget_ms),
                       panel("memory_mb", "peak memory (MB)", memory_budget_mb)).properties(
        title="The most accurate variant left of both red lines is chosen (ringed)")


def lab_pareto_chart(table: pd.DataFrame, claim, current: str | None = None,
                     predicted_size_pct: float | None = None) -> alt.HConcatChart:
    """Chapter 9: every recipe measured, accuracy change against size and against latency (% of the baseline).

    Recipes on the Pareto front (nothing else is as accurate and cheaper) are blue and joined by
    a line; the others grey; ``current`` is ringed. ``claim`` (``minikit.claims.COMPRESSION_CLAIM``:
    its ``size_pct``, ``latency_pct`` and ``points`` lost) is the red cross, and the green corner is
    where a recipe beats it on that axis. A table with ``points_low`` and ``points_high`` (``Lab.results``)
    gets each change's paired 95 % interval as a vertical bar.
    ``predicted_size_pct`` draws the current recipe's size from arithmetic as a dashed line,
    before it is measured.
    """
    data = table.drop(columns=["recipe"], errors="ignore").assign(
        ringed=table["name"].eq(current) if current is not None else False)
    tooltip = ["name", alt.Tooltip("points:Q", format="+.2f", title="points vs baseline"),
               alt.Tooltip("size_mb:Q", format=".2f"), alt.Tooltip("latency_p50_ms:Q", format=".2f"),
               alt.Tooltip("speedup:Q", format=".2f"), "measured_at"]
    bars = {"points_low", "points_high"} <= set(data.columns)  # the paired 95 % intervals, when the table has them
    lowest = data["points_low"] if bars else data["points"]
    low = float(min(-4.0, np.floor(lowest.min() - 1))) if len(data) else -4.0
    high = float(max(2.0, np.ceil(data["points_high"].max() + 0.5))) if bars and len(data) else 2.0
    y = alt.Y("points:Q", title="accuracy change (points)", scale=alt.Scale(domain=[low, high]))

    def panel(column: str, front: str, title: str, limit: float, rule: float | None) -> alt.LayerChart:
        x = alt.X(f"{column}:Q", title=title, scale=alt.Scale(domain=[0, 110]))
        corner = alt.Chart(pd.DataFrame({"x0": [0.0], "x1": [limit], "y0": [-claim.points], "y1": [high]})).mark_rect(
            color="#2ca02c", opacity=0.08).encode(x="x0:Q", x2="x1:Q", y="y0:Q", y2="y1:Q")
        claim_point = alt.Chart(pd.DataFrame({column: [limit], "points": [-claim.points],
                                              "label": ["source's claim"]}))
        layers = [corner,
                  claim_point.mark_point(shape="cross", size=200, filled=True, color="#d62728").encode(x=x, y=y),
                  claim_point.mark_text(align="left", dx=8, dy=10, color="#d62728", fontSize=11).encode(
                      x=x, y=y, text="label:N")]
        if rule is not None:
            layers.append(alt.Chart(pd.DataFrame({column: [rule], "label": ["predicted size"]})).mark_rule(
                strokeDash=[5, 4], color="#ff7f0e", strokeWidth=2).encode(x=x, tooltip=["label:N", f"{column}:Q"]))
        if len(data):
            points = alt.Chart(data).encode(x=x, y=y)
            on_front = data[data[front]].sort_values(column)
            if bars:  # one test article more or fewer moves a point; these bars show how far that goes
                layers.append(points.mark_rule(color="#888888", strokeWidth=1.5, opacity=0.7).encode(
                    y="points_low:Q", y2="points_high:Q"))
            layers += [
                alt.Chart(on_front).mark_line(color="#1f77b4", interpolate="step-after", opacity=0.6).encode(x=x, y=y),
                points.mark_point(size=90, filled=True).encode(
                    color=alt.Color(f"{front}:N", scale=alt.Scale(domain=[True, False], range=["#1f77b4", "#bbbbbb"]),
                                    legend=alt.Legend(title="on the Pareto front")), tooltip=tooltip),
                points.transform_filter("datum.ringed").mark_point(size=380, filled=False, color="#ff7f0e",
                                                                  strokeWidth=2.5),
            ]
        return alt.layer(*layers).properties(width=300, height=240)

    return alt.hconcat(
        panel("size_pct", "pareto_size", "size (% of the fp32 baseline)", claim.size_pct,
              predicted_size_pct),
        panel("latency_pct", "pareto_latency", "latency, batch 1 (% of the baseline, same run)",
              claim.latency_pct, None),
    ).properties(title=f"{len(data)} recipe(s) measured; up and left is better")


def multitask_chart(table: pd.DataFrame, current: str | None = None, main: str = "topic") -> alt.HConcatChart:
    """Chapter 3b: the main task's test accuracy against the tokens read in training, single- and multi-task, one
    panel per share of main-task labels. ``table`` has ``multitask.RUN_COLUMNS``; the ``current`` run is ringed.

    Compute is on the x axis because it is what a fair comparison holds equal: a multi-task run
    also steps on its other tasks, so at the same number of epochs it trains the shared encoder
    for longer than the single-task run does.
    """
    data = table.assign(ringed=table["run"].eq(current) if current is not None else False,
                        labels=[f"{s:.0%} of {main} labels" for s in table["share"]])
    data["aux_accuracy"] = data["aux_accuracy"].astype(float)
    low = float(np.floor(100 * data["accuracy"].min() - 2) / 100) if len(data) else 0.5
    y = alt.Y("accuracy:Q", title=f"{main} test accuracy", axis=alt.Axis(format="%"),
              scale=alt.Scale(domain=[max(0.0, low), 1.0]))
    x = alt.X("tokens:Q", title="tokens read in training (all tasks)", scale=alt.Scale(zero=True),
              axis=alt.Axis(format="~s"))
    color = alt.Color("kind:N", scale=alt.Scale(domain=["single-task", "multi-task"], range=["#7f7f7f", "#1f77b4"]),
                      legend=alt.Legend(title="model"))
    tooltip = ["run:N", alt.Tooltip("accuracy:Q", format=".2%"), alt.Tooltip("macro_f1:Q", format=".3f"),
               alt.Tooltip("aux_accuracy:Q", format=".2%", title="other tasks' accuracy"), "steps:Q", "tokens:Q",
               alt.Tooltip("main_steps:Q", title=f"steps on {main}"), alt.Tooltip("train_s:Q", format=".0f")]
    panels = []
    for labels in sorted(set(data["labels"]), key=lambda t: -float(t.split("%")[0])) or ["no runs yet"]:
        part = data[data["labels"] == labels]
        base = alt.Chart(part).encode(x=x, y=y)
        layers = [base.mark_point(size=110, filled=True).encode(color=color, shape=alt.Shape(
                      "kind:N", scale=alt.Scale(domain=["single-task", "multi-task"], range=["square", "circle"]),
                      legend=None), tooltip=tooltip),
                  base.transform_filter(alt.datum.ringed).mark_point(size=500, filled=False, strokeWidth=2.5,
                                                                      color="#d62728")]
        panels.append(alt.layer(*layers).properties(width=260, height=220, title=labels))
    return alt.hconcat(*panels).resolve_scale(x="independent")
