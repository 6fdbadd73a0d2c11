"""Altair charts of chapters 5–7 (pruning, quantization, distillation): plain data in, a chart out.

Like ``minikit.charts``, this module imports nothing of minikit: what to draw is an argument.
"""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

PRUNING_ROLES = ["query", "key", "value", "attention-out", "ffn-up", "ffn-down", "other"]
_PRUNING_PANELS = ["accuracy (%)", "latency, batch 1 (ms)", "size (MB)", "non-zero parameters (M)"]


def quantization_grid_chart(weights, grid, title: str | None = None, bins: int = 60) -> alt.LayerChart:
    """Histogram of ``weights`` with the quantization grid's levels drawn over it as thin rules.

    ``grid`` is ``quantization.quantization_grid``'s. The x axis spans the weights only: levels
    outside it are left out, so a per-tensor grid stretched by another row's outliers shows as
    the few levels that fall where these weights are.
    """
    w = np.asarray(weights, dtype=np.float64).ravel()
    lo, hi = float(w.min()), float(w.max())
    pad = 0.04 * (hi - lo) or 1e-3
    domain = [lo - pad, hi + pad]
    counts, edges = np.histogram(w, bins=bins)
    hist = pd.DataFrame({"start": edges[:-1], "end": edges[1:], "count": counts})
    levels = np.asarray(grid, dtype=np.float64)
    inside = levels[(levels >= domain[0]) & (levels <= domain[1])]
    rules = pd.DataFrame({"level": inside})
    x = alt.X("start:Q", scale=alt.Scale(domain=domain, nice=False), title="weight value")
    bars = alt.Chart(hist).mark_bar(color="#9ecae1").encode(
        x=x, x2="end:Q", y=alt.Y("count:Q", title="weights"), tooltip=["start", "end", "count"])
    lines = alt.Chart(rules).mark_rule(color="#d62728", strokeWidth=1, opacity=0.7).encode(
        x=alt.X("level:Q", scale=alt.Scale(domain=domain, nice=False)), tooltip=[alt.Tooltip("level:Q", format=".4g")])
    default = f"{len(w):,} weights and the {len(inside)} of {len(levels)} grid levels (red) inside their range"
    return alt.layer(bars, lines).properties(width=420, height=220, title=title or default)


def quantization_sweep_chart(table: pd.DataFrame, current: tuple | None = None,
                             reference_accuracy: float | None = None,
                             reference_size_mb: float | None = None) -> alt.HConcatChart:
    """Accuracy and packed size against bits, one line per scheme; the ``current`` setting ringed.

    ``table`` has columns bits, scheme, accuracy, size_mb (``QuantizationExplorer.table``);
    ``current`` is (bits, scheme). The ring follows the chart's ``bits`` and ``scheme``
    parameters, so a widget can move it without rebuilding the chart. The float model's accuracy
    and size are dashed rules.
    """
    data = table.assign(accuracy_pct=100 * table["accuracy"])[["bits", "scheme", "accuracy_pct", "size_mb"]]
    bits, scheme = current if current is not None else (0, "")
    params = [alt.param(name="bits", value=int(bits)), alt.param(name="scheme", value=str(scheme))]
    x = alt.X("bits:Q", scale=alt.Scale(domain=[2, 8]), axis=alt.Axis(tickMinStep=1), title="bits per weight")
    color = alt.Color("scheme:N", title="scheme", sort=sorted(data["scheme"].unique()))

    def panel(column: str, title: str, reference: float | None, first: bool) -> alt.LayerChart:
        y = alt.Y(f"{column}:Q", title=title, scale=alt.Scale(zero=True))
        lines = alt.Chart(data).mark_line(point=True).encode(
            x=x, y=y, color=color,
            tooltip=["scheme", "bits", alt.Tooltip("accuracy_pct:Q", format=".1f"), alt.Tooltip("size_mb:Q", format=".1f")])
        if first:
            lines = lines.add_params(*params)  # declared once; both panels read them
        ring = alt.Chart(data).mark_point(size=260, filled=False, color="black", strokeWidth=2).encode(
            x=x, y=y).transform_filter("datum.bits == bits && datum.scheme == scheme")
        layers = [lines, ring]
        if reference is not None:
            layers.insert(0, alt.Chart(pd.DataFrame({column: [reference]})).mark_rule(
                color="gray", strokeDash=[4, 3]).encode(y=f"{column}:Q"))
        return alt.layer(*layers).properties(width=300, height=220)

    ref_acc = None if reference_accuracy is None else 100 * reference_accuracy
    return alt.hconcat(
        panel("accuracy_pct", "accuracy (%)", ref_acc, first=True),
        panel("size_mb", "packed size (MB)", reference_size_mb, first=False),
    ).properties(title="Simulated N-bit weights (ring: the current setting; dashed: float32)")


def _matrix_role(name: str, layer: int) -> str:
    """``bert.encoder.layer.3.attention.self.query`` → ``attention.self.query``; outside layers, the last two parts."""
    marker = f".{layer}."
    if layer >= 0 and marker in name:
        return name.split(marker, 1)[1]
    return ".".join(name.split(".")[-2:])


def quantization_error_chart(table: pd.DataFrame, title: str | None = None) -> alt.Chart:
    """Heatmap of the signal-to-quantization-noise ratio (dB) per weight matrix: encoder layer across, role down.

    ``table`` is ``quantization.quantization_error_table``'s. Matrices outside the encoder
    (embeddings, pooler, classifier) sit in a column of their own. Darker = more error.
    """
    data = table.assign(role=[_matrix_role(n, l) for n, l in zip(table["name"], table["layer"])],
                        column=[f"layer {l}" if l >= 0 else "outside" for l in table["layer"]])
    data = data[["name", "role", "column", "params", "relative_error", "sqnr_db"]]
    columns = sorted(data["column"].unique(), key=lambda c: (c == "outside", c))
    return alt.Chart(data).mark_rect().encode(
        x=alt.X("column:N", sort=columns, title=None),
        y=alt.Y("role:N", title=None),
        color=alt.Color("sqnr_db:Q", scale=alt.Scale(scheme="viridis"), title="SQNR (dB)"),
        tooltip=["name", alt.Tooltip("params:Q", format=","), alt.Tooltip("relative_error:Q", format=".3%"),
                 alt.Tooltip("sqnr_db:Q", format=".1f")],
    ).properties(width=40 * len(columns), height=18 * data["role"].nunique(),
                 title=title or "Quantization error per weight matrix (higher SQNR = less error)")


def pruning_tradeoff_chart(points: pd.DataFrame, current=None) -> alt.FacetChart:
    """Accuracy, latency, size (dense and CSR) and non-zeros against the share of weights removed.

    ``points`` is ``PruningExplorer.table()``'s (one row per measured setting); one line per
    method, the ``current`` point (a PruningPoint or a row with method and amount) ringed.
    """
    now = (current.method, current.amount) if current is not None else (None, None)
    rows = []
    for p in points.itertuples():
        is_now = (p.method, p.amount) == now
        common = {"method": p.method, "amount": p.amount, "removed": 100 * p.removed, "current": is_now}
        rows += [{**common, "panel": "accuracy (%)", "series": "", "value": 100 * p.accuracy},
                 {**common, "panel": "latency, batch 1 (ms)", "series": "", "value": p.latency_ms},
                 {**common, "panel": "size (MB)", "series": "dense", "value": p.dense_mb},
                 {**common, "panel": "size (MB)", "series": "sparse (CSR)", "value": p.sparse_mb},
                 {**common, "panel": "non-zero parameters (M)", "series": "", "value": p.nonzero_m}]
    data = pd.DataFrame(rows, columns=["method", "amount", "removed", "current", "panel", "series", "value"])
    x = alt.X("removed:Q", title="encoder weights removed (%)", scale=alt.Scale(domain=[0, 100]))
    y = alt.Y("value:Q", title=None, scale=alt.Scale(zero=False))
    lines = alt.Chart().mark_line(point=True).encode(
        x=x, y=y, color=alt.Color("method:N", title="method"), order="removed:Q",
        strokeDash=alt.StrokeDash("series:N", title="size stored", sort=["", "dense", "sparse (CSR)"],
                                  legend=alt.Legend(values=["dense", "sparse (CSR)"])),
        tooltip=["method", alt.Tooltip("amount:Q", format=".0%", title="slider"),
                 alt.Tooltip("removed:Q", format=".1f", title="weights removed (%)"), "series",
                 alt.Tooltip("value:Q", format=".2f")],
    )
    ring = alt.Chart().mark_point(size=260, filled=False, color="black", strokeWidth=2).encode(
        x=x, y=y).transform_filter("datum.current")
    title = "Every setting measured so far (ring: the current one)"
    if current is not None:
        title = f"Every setting measured so far (ring: {current.method} at {current.amount:.0%})"
    return alt.layer(lines, ring, data=data).properties(width=250, height=150).facet(
        facet=alt.Facet("panel:N", sort=_PRUNING_PANELS, title=None), columns=2,
    ).resolve_scale(y="independent").properties(title=title)


def task_curves_chart(table: pd.DataFrame, x: str, x_title: str, title: str, facet: str | None = None,
                      columns: int = 4, x_format: str = ".0%") -> alt.Chart:
    """Accuracy against a knob, one line per ``task``, its 95 % interval as a band (one chart per ``facet``).

    ``table`` has columns ``task``, ``x``, accuracy, low, high (shares in [0, 1]) and n, plus ``facet``.
    """
    data = table.assign(**{c: 100 * table[c] for c in ("accuracy", "low", "high")})
    data["task"] = [f"{task} (n = {n})" for task, n in zip(data["task"], data["n"])]
    axis_x = alt.X(f"{x}:Q", title=x_title, axis=alt.Axis(format=x_format))
    color = alt.Color("task:N", title="task (validation examples)", legend=alt.Legend(orient="bottom"))
    band = alt.Chart().mark_area(opacity=0.2).encode(x=axis_x, y=alt.Y("low:Q", title="accuracy (%)"),
                                                     y2="high:Q", color=color)
    tips = ["task", alt.Tooltip(f"{x}:Q", format=x_format, title=x_title), alt.Tooltip("accuracy:Q", format=".1f"),
            alt.Tooltip("low:Q", format=".1f", title="95 % low"),
            alt.Tooltip("high:Q", format=".1f", title="95 % high")]
    line = alt.Chart().mark_line(point=True).encode(x=axis_x, y=alt.Y("accuracy:Q", title="accuracy (%)",
                                                                      scale=alt.Scale(domain=[0, 100])),
                                                    color=color, tooltip=tips)
    layered = alt.layer(band, line, data=data).properties(width=170 if facet else 360, height=160)
    if facet:
        layered = layered.facet(facet=alt.Facet(f"{facet}:N", title=None, sort=list(dict.fromkeys(data[facet]))),
                                columns=columns)
    return layered.properties(title=title)


QAT_METHODS = ["float32", "PTQ", "train, then PTQ", "QAT"]  # qat.ptq_vs_qat's methods, in the legend's order


def qat_chart(table: pd.DataFrame, granularity: str, bits: int | None = None,
              title: str | None = None) -> alt.LayerChart:
    """Test accuracy against bits for PTQ, its control and QAT at one granularity; the float32 model dashed.

    ``table`` is ``qat.chapter_runs``' (columns bits, method, accuracy, n, granularity); bands are 95 %
    Wilson intervals (columns low, high); a rule marks ``bits``.
    """
    data = table[table["granularity"] == granularity].assign(
        **{c: 100 * table.loc[table["granularity"] == granularity, c] for c in ("accuracy", "low", "high")})
    rounded, reference = data[data["bits"] < 32], data[data["method"] == "float32"]
    x = alt.X("bits:Q", title="bits per weight", scale=alt.Scale(domain=[8.5, 1.5]), axis=alt.Axis(values=[8, 4, 3, 2]))
    y = alt.Y("accuracy:Q", title="test accuracy (%)", scale=alt.Scale(domain=[0, 100]))
    color = alt.Color("method:N", title=None, sort=QAT_METHODS[1:], legend=alt.Legend(orient="bottom"))
    band = alt.Chart(rounded).mark_area(opacity=0.15).encode(x=x, y="low:Q", y2="high:Q", color=color)
    tips = ["method", "bits", alt.Tooltip("accuracy:Q", format=".1f"), "n",
            alt.Tooltip("low:Q", format=".1f", title="95 % low"),
            alt.Tooltip("high:Q", format=".1f", title="95 % high")]
    lines = alt.Chart(rounded).mark_line(point=True).encode(x=x, y=y, color=color, tooltip=tips)
    layers = [band, lines, alt.Chart(reference).mark_rule(strokeDash=[4, 3], color="gray").encode(y="accuracy:Q")]
    if bits is not None:
        marker = pd.DataFrame({"bits": [bits]})
        layers.append(alt.Chart(marker).mark_rule(color="black", opacity=0.4).encode(x="bits:Q"))
    n = int(data["n"].iloc[0]) if len(data) else 0
    return alt.layer(*layers).properties(width=380, height=220, title=title or (
        f"PTQ against QAT, {granularity} (test, n = {n}; dashed: float32)"))


def kd_variants_chart(table: pd.DataFrame, current: str | None = None, title: str | None = None) -> alt.LayerChart:
    """Test accuracy of each distillation objective with its 95 % interval; the ``current`` variant darker.

    ``table`` is ``distill_variants.kd_variants``' (columns variant, accuracy, low, high, n).
    """
    data = table.assign(**{c: 100 * table[c] for c in ("accuracy", "low", "high")},
                        current=table["variant"] == current)
    y = alt.Y("variant:N", title=None, sort=list(table["variant"]))
    x = alt.X("accuracy:Q", title="test accuracy (%)", scale=alt.Scale(zero=False))
    bars = alt.Chart(data).mark_rule(strokeWidth=2).encode(y=y, x="low:Q", x2="high:Q", color=alt.condition(
        "datum.current", alt.value("#1f77b4"), alt.value("#9ecae1")))
    points = alt.Chart(data).mark_point(filled=True, size=80).encode(
        y=y, x=x, color=alt.condition("datum.current", alt.value("#1f77b4"), alt.value("#9ecae1")),
        tooltip=["variant", alt.Tooltip("accuracy:Q", format=".1f"), "n",
                 alt.Tooltip("low:Q", format=".1f", title="95 % low"),
                 alt.Tooltip("high:Q", format=".1f", title="95 % high")])
    n = int(table["n"].iloc[0]) if len(table) else 0
    return alt.layer(bars, points).properties(width=360, height=28 * len(table), title=title or (
        f"The same student, the same steps, another loss (test, n = {n}; bars: 95 % intervals)"))


def kd_depth_chart(table: pd.DataFrame, teacher_accuracy: float | None = None,
                   title: str | None = None) -> alt.LayerChart:
    """Test accuracy against the student's depth, one line per objective, with 95 % interval bars.

    ``table`` is ``distill_variants.depth_runs``' (columns layers, variant, accuracy, low, high, n);
    ``teacher_accuracy`` (a share) draws the teacher as a dashed rule.
    """
    data = table.assign(**{c: 100 * table[c] for c in ("accuracy", "low", "high")})
    x = alt.X("layers:O", title="student layers (of the teacher's 6)", axis=alt.Axis(labelAngle=0))
    color = alt.Color("variant:N", title="objective", sort=list(dict.fromkeys(table["variant"])))
    y = alt.Y("accuracy:Q", title="test accuracy (%)", scale=alt.Scale(zero=False))
    base = alt.Chart(data).encode(x=x, color=color)
    layers = [base.mark_line(point=True).encode(y=y, tooltip=[
                  "variant", "layers", alt.Tooltip("accuracy:Q", format=".1f"), "n",
                  alt.Tooltip("low:Q", format=".1f", title="95 % low"), alt.Tooltip("high:Q", format=".1f",
                                                                                     title="95 % high")]),
              base.mark_rule(strokeWidth=2, opacity=0.6).encode(y="low:Q", y2="high:Q")]
    if teacher_accuracy is not None:
        rule = pd.DataFrame({"accuracy": [100 * teacher_accuracy], "label": ["teacher (6 layers)"]})
        layers.append(alt.Chart(rule).mark_rule(strokeDash=[5, 4], color="#444444").encode(
            y="accuracy:Q", tooltip=["label:N", alt.Tooltip("accuracy:Q", format=".1f")]))
    n = int(table["n"].iloc[0]) if len(table) else 0
    return alt.layer(*layers).properties(width=320, height=220, title=title or (
        f"Student depth against objective (test, n = {n}; bars: 95 % intervals)"))


def pruning_heatmap(table: pd.DataFrame, title: str | None = None) -> alt.LayerChart:
    """Share of weights removed per encoder layer (rows) and role (columns): a sparsity heatmap.

    ``table`` has columns layer, role and either ``removed`` or ``sparsity`` (``pruning.sparsity_table``
    rows are aggregated per layer and role, weighted by parameters).
    """
    if "removed" not in table:
        grouped = table.assign(zeros=table["params"] * table["sparsity"]).groupby(["layer", "role"], as_index=False)
        table = grouped[["params", "zeros"]].sum().assign(removed=lambda t: t["zeros"] / t["params"])
    data = table[["layer", "role", "removed"]]
    roles = [r for r in PRUNING_ROLES if r in set(data["role"])]
    base = alt.Chart(data).encode(x=alt.X("role:N", sort=roles, title=None, axis=alt.Axis(labelAngle=0)),
                                  y=alt.Y("layer:O", title="encoder layer"))
    cells = base.mark_rect().encode(
        color=alt.Color("removed:Q", scale=alt.Scale(scheme="oranges", domain=[0, 1]), title="removed",
                        legend=alt.Legend(format="%")),
        tooltip=["layer", "role", alt.Tooltip("removed:Q", format=".1%")])
    text = base.mark_text(fontSize=11).encode(
        text=alt.Text("removed:Q", format=".0%"),
        color=alt.condition("datum.removed > 0.6", alt.value("white"), alt.value("black")))
    return alt.layer(cells, text).properties(width=64 * len(roles), height=24 * data["layer"].nunique(),
                                             title=title or "Share of weights removed per layer and role")


def softened_chart(table: pd.DataFrame, title: str | None = None) -> alt.LayerChart:
    """One article's class distribution at a temperature (bars) and at T = 1 (black ticks).

    ``table`` has columns label, probability, probability_t1 and is_true (the article's label).
    """
    data = table.assign(kind=np.where(table["is_true"], "true label", "other"))
    x = alt.X("label:N", title=None, sort=list(data["label"]))
    bars = alt.Chart(data).mark_bar().encode(
        x=x, y=alt.Y("probability:Q", title="probability", scale=alt.Scale(domain=[0, 1])),
        color=alt.Color("kind:N", title=None, scale=alt.Scale(domain=["true label", "other"],
                                                                range=["#2ca02c", "#9ecae1"])),
        tooltip=["label", alt.Tooltip("probability:Q", format=".3f"), alt.Tooltip("probability_t1:Q", format=".3f")])
    ticks = alt.Chart(data).mark_tick(color="black", thickness=2, size=40).encode(
        x=x, y="probability_t1:Q", tooltip=[alt.Tooltip("probability_t1:Q", format=".3f", title="at T = 1")])
    return alt.layer(bars, ticks).properties(width=360, height=220, title=title or "")


def distillation_runs_chart(table: pd.DataFrame, current: tuple | None = None,
                            teacher_accuracy: float | None = None) -> alt.LayerChart:
    """Validation accuracy of short distillation runs against student depth, one line per α.

    ``table`` has columns layers, alpha, val_accuracy, params_m (``DistillationExplorer.table``);
    ``current`` is (alpha, layers), ringed; the teacher's accuracy at the same setting is dashed.
    """
    data = table.assign(val_pct=100 * table["val_accuracy"], alpha_label=table["alpha"].map(lambda a: f"α = {a:g}"))
    x = alt.X("layers:Q", scale=alt.Scale(domain=[0.5, 6.5]), axis=alt.Axis(tickMinStep=1, values=list(range(1, 7))),
              title="student layers (of the teacher's 6)")
    y = alt.Y("val_pct:Q", title="validation accuracy (%)", scale=alt.Scale(zero=False))
    lines = alt.Chart(data).mark_line(point=alt.OverlayMarkDef(size=70)).encode(
        x=x, y=y, color=alt.Color("alpha_label:N", title="α (weight on true labels)"),
        tooltip=["alpha_label", "layers", alt.Tooltip("val_pct:Q", format=".1f"), alt.Tooltip("params_m:Q", format=".1f"),
                 alt.Tooltip("seconds:Q", format=".0f")])
    layers = [lines]
    if current is not None:
        alpha, depth = current
        here = data[(data["alpha"] == alpha) & (data["layers"] == depth)]
        layers.append(alt.Chart(here).mark_point(size=300, filled=False, color="black", strokeWidth=2).encode(x=x, y=y))
    if teacher_accuracy is not None:
        layers.insert(0, alt.Chart(pd.DataFrame({"val_pct": [100 * teacher_accuracy]})).mark_rule(
            color="gray", strokeDash=[4, 3]).encode(y="val_pct:Q"))
    return alt.layer(*layers).properties(
        width=420, height=240, title="Short distillation runs (ring: the current setting; dashed: the teacher)")
