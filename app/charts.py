"""The plotly figures the pages draw, each in the same frame (title on top, legend beside the plot).

Built with ``plotly.graph_objects`` (several times faster than ``plotly.express``: see docs/benchmarks.md)."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

OUTCOME_COLORS = {"stayed": "#4c78a8", "churned": "#e45756"}


def _layout(fig: go.Figure, title: str, height: int = 380) -> go.Figure:
    """Title on top, legend in a column of its own right of the plot: never over an axis title."""
    fig.update_layout(title=title, height=height, margin=dict(l=10, r=10, t=50, b=10),
                      legend=dict(orientation="v", x=1.02, xanchor="left", y=1, yanchor="top"))
    return fig


CURVE_COLORS = ["#1f77b4", "#e45756", "#54a24b", "#f58518", "#b279a2", "#72b7b2", "#9d755d", "#bab0ac"]


def roc_figure(evaluations: dict[str, dict]) -> go.Figure:
    fig = go.Figure()
    for i, (name, ev) in enumerate(evaluations.items()):
        auc = ev.get("metrics", {}).get("roc_auc")
        label = f"{name} (AUC {auc:.3f})" if auc is not None else name
        fig.add_scatter(x=ev["roc"]["fpr"], y=ev["roc"]["tpr"], mode="lines", name=label,
                        line=dict(color=CURVE_COLORS[i % len(CURVE_COLORS)]))
    fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", name="chance", line=dict(dash="dot", color="grey"))
    fig.update_xaxes(title="False positive rate", range=[0, 1])
    fig.update_yaxes(title="True positive rate (recall)", range=[0, 1.02])
    return _layout(fig, "ROC curve")


def pr_figure(evaluations: dict[str, dict]) -> go.Figure:
    fig = go.Figure()
    for i, (name, ev) in enumerate(evaluations.items()):
        ap = ev.get("metrics", {}).get("pr_auc")
        label = f"{name} (AP {ap:.3f})" if ap is not None else name
        fig.add_scatter(x=ev["pr"]["recall"], y=ev["pr"]["precision"], mode="lines", name=label,
                        line=dict(color=CURVE_COLORS[i % len(CURVE_COLORS)]))
    fig.update_xaxes(title="Recall", range=[0, 1])
    fig.update_yaxes(title="Precision", range=[0, 1.02])
    return _layout(fig, "Precision–recall curve")


def confusion_figure(ev: dict) -> go.Figure:
    matrix = ev["confusion_matrix"]
    labels = ["Stayed (0)", "Churned (1)"]
    fig = go.Figure(go.Heatmap(z=matrix, x=[f"Predicted {label}" for label in labels],
                               y=[f"Actual {label}" for label in labels], text=matrix, texttemplate="%{text}",
                               colorscale="Blues", showscale=False))
    fig.update_yaxes(autorange="reversed")
    return _layout(fig, f"Confusion matrix (threshold {ev.get('threshold', 0.5)})", 340)


def importance_figure(ev: dict, top: int = 20) -> go.Figure:
    items = ev.get("feature_importance", [])[:top][::-1]
    if not items:
        return _layout(go.Figure(), "Feature importance (not available)")
    fig = go.Figure(go.Bar(x=[i["importance"] for i in items], y=[i["feature"] for i in items], orientation="h"))
    fig.update_xaxes(title="importance")
    return _layout(fig, "Feature importance", max(300, 28 * len(items) + 80))


def effects_figure(effects: list[dict], top: int = 20) -> go.Figure:
    """Feature importance with direction: each feature's mean push on held-out customers, coloured by
    which way its values move the risk, with the values that raise it named beside the bar."""
    from churn_core.decisions.reasons import effects_frame

    frame = effects_frame(effects).head(top).iloc[::-1]
    colors = frame["sign"].map({1: OUTCOME_COLORS["churned"], -1: OUTCOME_COLORS["stayed"], 0: "#9e9e9e"})
    fig = go.Figure(go.Bar(x=frame["mean push"], y=frame["feature"], orientation="h", marker_color=colors,
                           text=frame["which values raise risk"], textposition="outside", cliponaxis=False,
                           hovertemplate="%{y}: %{text}<br>mean push %{x:.3g}<extra></extra>"))
    space = effects[0].get("space", "probability") if effects else "probability"
    fig.update_xaxes(title="mean size of the push on held-out customers"
                     + (" (probability)" if space == "probability" else " (log-odds)"))
    fig = _layout(fig, "What drives churn risk (red: higher values raise it, blue: lower it)",
                  max(300, 28 * len(frame) + 80))
    fig.update_layout(margin=dict(r=260))  # room for the words beside the bars
    return fig


def reasons_figure(explained: dict) -> go.Figure:
    """One customer's reasons as signed bars: red pushes the risk up, blue down, biggest first."""
    from churn_core.decisions.reasons import push_text, reasons_frame

    frame = reasons_frame(explained).iloc[::-1]
    colors = [OUTCOME_COLORS["churned"] if v > 0 else OUTCOME_COLORS["stayed"] for v in frame["push"]]
    scale = 100.0 if explained["space"] == "probability" else 1.0
    fig = go.Figure(go.Bar(x=frame["push"] * scale, y=frame["reason"], orientation="h", marker_color=colors,
                           text=[push_text(v, explained["space"]) for v in frame["push"]], textposition="outside",
                           cliponaxis=False, customdata=frame["words"], hovertemplate="%{customdata}<extra></extra>"))
    fig.add_vline(x=0, line_color="grey")
    fig.update_xaxes(title="percentage points of churn risk" if scale == 100.0 else "change of the log-odds")
    return _layout(fig, "Pushes on this customer's risk (red raises, blue lowers)", max(240, 34 * len(frame) + 90))


def distribution_figure(frame: pd.DataFrame, feature: str, target: str) -> go.Figure:
    """Overlaid histograms of one feature for stayed vs churned customers (graph_objects: ~5× faster than px)."""
    fig = go.Figure()
    numeric = pd.api.types.is_numeric_dtype(frame[feature])
    for value, outcome in ((0, "stayed"), (1, "churned")):
        values = frame.loc[frame[target] == value, feature]
        fig.add_histogram(x=values if numeric else values.astype(str), name=outcome,
                          marker_color=OUTCOME_COLORS[outcome], opacity=0.75 if numeric else 1.0,
                          nbinsx=40 if numeric else None, histnorm="percent")
    fig.update_layout(barmode="overlay" if numeric else "group")
    fig.update_xaxes(title=feature)
    fig.update_yaxes(title="% of the group")
    return _layout(fig, f"{feature}: stayed vs churned customers", 340)


def risk_histogram(probabilities: pd.Series, threshold: float | None = None) -> go.Figure:
    fig = go.Figure(go.Histogram(x=probabilities, xbins=dict(start=0, end=1, size=0.05), showlegend=False))
    if threshold is not None:  # where the model's label changes
        fig.add_vline(x=threshold, line_dash="dash", line_color=OUTCOME_COLORS["churned"],
                      annotation_text=f"likely to churn above {threshold:.0%}", annotation_position="top right")
    fig.update_xaxes(range=[0, 1])
    fig.update_xaxes(title="Churn probability")
    fig.update_yaxes(title="Customers")
    return _layout(fig, "Risk distribution", 320)


def risk_bars(counts: list[int], edges: list[float]) -> go.Figure:
    """The risk distribution from counts per probability bin (a batch's millions of rows stay on the server)."""
    centers = [(a + b) / 2 for a, b in zip(edges[:-1], edges[1:], strict=True)]
    fig = go.Figure(go.Bar(x=centers, y=counts, width=[b - a for a, b in zip(edges[:-1], edges[1:], strict=True)]))
    fig.update_xaxes(range=[0, 1], title="Churn probability")
    fig.update_yaxes(title="Customers")
    return _layout(fig, "Risk distribution", 320)


def profit_figure(curve: pd.DataFrame, chosen: float, current: float | None = None) -> go.Figure:
    """Expected profit by threshold, with the chosen point (and the model's current threshold)."""
    fig = go.Figure(go.Scatter(x=curve["threshold"], y=curve["expected_profit"], mode="lines", name="expected profit",
                               hovertemplate="threshold %{x:.3f}<br>profit %{y:,.0f}<extra></extra>"))
    row = curve.iloc[(curve["threshold"] - chosen).abs().argmin()]
    fig.add_scatter(x=[row["threshold"]], y=[row["expected_profit"]], mode="markers", name="chosen",
                    marker=dict(size=12, color="#e45756"))
    if current is not None:
        fig.add_vline(x=current, line_dash="dot", line_color="grey", annotation_text="current")
    fig.update_xaxes(title="Threshold (contact customers above it)", range=[0, 1])
    fig.update_yaxes(title="Expected profit on the held-out customers")
    return _layout(fig, "Profit by threshold")


def gains_figure(gains: pd.DataFrame) -> go.Figure:
    """Cumulative gain by decile (bars: lift) of customers sorted by risk."""
    fig = go.Figure()
    fig.add_bar(x=gains["decile"], y=gains["lift"], name="lift of the decile", yaxis="y2", opacity=0.45)
    fig.add_scatter(x=gains["decile"], y=gains["cumulative_gain"], mode="lines+markers",
                    name="share of all churners reached")
    fig.add_scatter(x=[0, 10], y=[0, 1], mode="lines", name="random order", line=dict(dash="dot", color="grey"))
    fig.update_layout(yaxis=dict(title="Cumulative share of churners", range=[0, 1.02], tickformat=".0%"),
                      yaxis2=dict(title="Lift (× the average decile)", overlaying="y", side="right", showgrid=False,
                                  rangemode="tozero", tickformat=".1f", ticksuffix="×"))
    fig.update_xaxes(title="Deciles of customers, riskiest first", dtick=1)
    return _layout(fig, "Cumulative gain and lift")


def calibration_figure(reliability: pd.DataFrame) -> go.Figure:
    fig = go.Figure(go.Scatter(x=reliability["predicted"], y=reliability["observed"], mode="lines+markers",
                               name="model"))
    fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfectly calibrated", line=dict(dash="dot", color="grey"))
    fig.update_xaxes(title="Predicted churn probability", range=[0, 1])
    fig.update_yaxes(title="Observed churn rate", range=[0, 1])
    return _layout(fig, "Calibration (reliability)")


def reliability_figure(evaluation: dict) -> go.Figure:
    """A trained model's reliability curve on its test split (10 equal-width bins), marker size by customers."""
    curve = evaluation.get("reliability") or {}
    fig = calibration_figure(pd.DataFrame({"predicted": curve.get("predicted", []),
                                           "observed": curve.get("observed", [])}))
    if curve.get("customers"):
        fig.data[0].customdata = curve["customers"]
        fig.data[0].hovertemplate = "predicted %{x:.1%}, observed %{y:.1%} (%{customdata} customers)"
    metrics = evaluation.get("metrics") or {}
    if metrics.get("brier") is not None:
        fig.update_layout(title=f"Calibration on the test split: Brier {metrics['brier']:.4f}, "
                                f"ECE {metrics['ece']:.4f}")
    return fig


def calibration_words(evaluation: dict) -> str:
    """What the calibration figures mean, and how class weights were undone (or that the model predates them)."""
    metrics = evaluation.get("metrics") or {}
    if metrics.get("brier") is None:
        return "This model was trained before calibration was measured: retrain it to see its calibration."
    mean = sum(p * n for p, n in zip(evaluation["reliability"]["predicted"], evaluation["reliability"]["customers"],
                                     strict=True))
    total = sum(evaluation["reliability"]["customers"]) or 1
    words = (f"Mean predicted churn probability {mean / total:.1%} against an observed churn rate of "
             f"{metrics['test_churn_rate']:.1%} on the test split. Brier score {metrics['brier']:.4f} (mean squared "
             f"error of the probabilities), expected calibration error {metrics['ece']:.4f} (10 equal-width bins).")
    correction = (evaluation.get("prior_correction") or {}).get("method", "none")
    if correction != "none":
        words += (" Trained with balanced class weights; its probabilities were corrected back to the observed "
                  "churn rate (prior shift).")
    return words


def feature_shift_figure(statistics: dict, captured: pd.DataFrame, feature: str) -> go.Figure:
    """The training distribution of one feature (from its baseline) and the captured one, overlaid."""
    spec = next((f for f in statistics["features"] if f["name"] == feature), None)
    fig = go.Figure()
    if spec is None:
        return _layout(fig, f"{feature}: no baseline")
    column = "churn_probability" if feature.startswith("prediction.") else feature
    values = captured[column].dropna() if column in captured else pd.Series(dtype=float)
    if "numerical_statistics" in spec:
        buckets = spec["numerical_statistics"].get("distribution", {}).get("kll", {}).get("buckets", [])
        total = sum(b["count"] for b in buckets) or 1
        mids = [(b["lower_bound"] + b["upper_bound"]) / 2 for b in buckets]
        widths = [max(b["upper_bound"] - b["lower_bound"], 1e-9) for b in buckets]
        fig.add_bar(x=mids, y=[b["count"] / total for b in buckets], width=widths, name="training", opacity=0.55)
        if len(values):
            edges = [buckets[0]["lower_bound"]] + [b["upper_bound"] for b in buckets]
            numbers = values.astype(float)
            inside = numbers[(numbers >= edges[0]) & (numbers <= edges[-1])]
            counts = pd.cut(inside, edges, include_lowest=True).value_counts(sort=False).tolist()
            fig.add_bar(x=mids, y=[c / len(numbers) for c in counts], width=widths, name="captured", opacity=0.55)
            step = (edges[-1] - edges[0]) / max(len(buckets), 1) or 1.0
            overflow = ((numbers < edges[0], edges[0] - step, f"below the training range (< {edges[0]:g})"),
                        (numbers > edges[-1], edges[-1] + step, f"above the training range (> {edges[-1]:g})"))
            for outside, x, words in overflow:
                if outside.any():  # never lumped into the edge bin: a value training never saw is shown as such
                    fig.add_bar(x=[x], y=[outside.mean()], width=[step], name=words, opacity=0.8,
                                marker=dict(color="#e45756", pattern=dict(shape="/")))
        fig.update_layout(barmode="overlay")
    else:
        buckets = spec["string_statistics"]["distribution"]["categorical"]["buckets"]
        total = sum(b["count"] for b in buckets) or 1
        fig.add_bar(x=[b["value"] for b in buckets], y=[b["count"] / total for b in buckets], name="training")
        if len(values):
            shares = values.astype(str).value_counts(normalize=True)
            fig.add_bar(x=list(shares.index), y=list(shares.values), name="captured")
        fig.update_layout(barmode="group")
    fig.update_yaxes(title="share of customers", tickformat=".0%")
    fig.update_xaxes(title=feature)
    return _layout(fig, f"{feature}: training vs captured")


def traffic_figure(traffic: pd.DataFrame) -> go.Figure:
    """Invocations per minute (bars a minute wide) and mean latency (line) of an endpoint; the time
    axis spans at least ten minutes, so a first minute of traffic is a bar, not the whole chart."""
    minutes = pd.to_datetime(traffic["minute"])
    fig = go.Figure()
    middle = minutes + pd.Timedelta(seconds=30)  # each bar covers its minute
    fig.add_bar(x=middle, y=traffic["invocations"], name="invocations / min", opacity=0.6, width=55_000)
    fig.add_scatter(x=middle, y=traffic["latency_ms"], name="mean latency (ms)",
                    yaxis="y2", mode="lines+markers")
    end = max(minutes.max() + pd.Timedelta(minutes=1), minutes.min() + pd.Timedelta(minutes=10))
    fig.update_xaxes(range=[minutes.min() - pd.Timedelta(minutes=1), end], title="minute (UTC)")
    fig.update_layout(yaxis=dict(title="Invocations per minute", rangemode="tozero"),
                      yaxis2=dict(title="Latency (ms)", overlaying="y", side="right", showgrid=False,
                                  rangemode="tozero"))
    fig = _layout(fig, "Invocations and latency per minute", 320)
    # a legend right of the plot would cover the latency axis: above the plot, opposite the title
    fig.update_layout(legend=dict(orientation="h", x=1, xanchor="right", y=1.02, yanchor="bottom"))
    return fig


# ---- tuning (issue 19): the Tune tab's charts ------------------------------------------------------------------
BEST_COLOR = "#2ca02c"


def _finished(trials: pd.DataFrame) -> pd.DataFrame:
    return trials[trials["objective"].notna()].sort_values("trial")


def tuning_progress_figure(trials: pd.DataFrame, objective_label: str, maximize: bool) -> go.Figure:
    """Each finished trial's objective by trial number, the best so far as a step line, the best trial starred."""
    done = _finished(trials)
    fig = go.Figure()
    if done.empty:
        return _layout(fig, f"{objective_label} by trial (no finished trial yet)", 340)
    best_so_far = done["objective"].cummax() if maximize else done["objective"].cummin()
    fig.add_scatter(x=done["trial"], y=done["objective"], mode="markers", name="trial", text=done["job"],
                    marker=dict(size=9, color="#4c78a8"), hovertemplate="%{text}<br>%{y:.4f}<extra></extra>")
    fig.add_scatter(x=done["trial"], y=best_so_far, mode="lines", name="best so far", line=dict(shape="hv",
                                                                                                 color=BEST_COLOR))
    best = done[done["best"]]
    if not best.empty:
        fig.add_scatter(x=best["trial"], y=best["objective"], mode="markers", name="best trial", text=best["job"],
                        marker=dict(size=16, symbol="star", color=BEST_COLOR),
                        hovertemplate="%{text}<br>%{y:.4f}<extra></extra>")
    fig.update_xaxes(title="trial", dtick=1 if len(trials) <= 30 else None)
    fig.update_yaxes(title=objective_label)
    return _layout(fig, f"{objective_label} by trial", 340)


def _axis(values: pd.Series) -> dict:
    """One parallel-coordinates axis: numbers as they are, anything else (categories, 'none') as ticks."""
    numeric = pd.to_numeric(values, errors="coerce")
    if numeric.notna().all():
        return {"values": numeric.tolist()}
    labels = ["none" if v is None or (isinstance(v, float) and pd.isna(v)) else str(v) for v in values]
    ticks = sorted(set(labels))
    return {"values": [ticks.index(v) for v in labels], "tickvals": list(range(len(ticks))), "ticktext": ticks}


def tuning_hyperparameters_figure(trials: pd.DataFrame, objective_label: str, maximize: bool) -> go.Figure:
    """Hyperparameters against the objective: parallel coordinates (a scatter when one hyperparameter is tuned)."""
    done = _finished(trials)
    if done.empty:
        return _layout(go.Figure(), "Hyperparameters vs objective (no finished trial yet)", 380)
    params = pd.DataFrame(list(done["hyperparameters"]), index=done.index)
    if len(params.columns) == 1:
        name = params.columns[0]
        fig = go.Figure(go.Scatter(x=params[name].map(lambda v: "none" if v is None else v), y=done["objective"],
                                   mode="markers", text=done["job"], marker=dict(size=10, color=done["objective"],
                                                                                 colorscale="Viridis")))
        fig.update_xaxes(title=name)
        fig.update_yaxes(title=objective_label)
        return _layout(fig, f"{name} vs {objective_label}", 380)
    dimensions = [dict(label=name, **_axis(params[name])) for name in params.columns]
    dimensions.append(dict(label=objective_label, values=done["objective"].tolist()))
    fig = go.Figure(go.Parcoords(line=dict(color=done["objective"], colorscale="Viridis", showscale=True,
                                           reversescale=not maximize), dimensions=dimensions))
    fig = _layout(fig, f"Hyperparameters vs {objective_label} (each line a trial)", 440)
    fig.update_layout(margin=dict(l=70, r=50, t=110, b=30))  # room for the axis names above and the ticks beside
    return fig


def chart_layout(fig: go.Figure, title: str, height: int = 380) -> go.Figure:
    """The pages' common chart frame (title, margins, legend), for figures built in other view modules."""
    return _layout(fig, title, height)
