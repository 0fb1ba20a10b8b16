"""Small shared widgets and the plotly figures the pages draw."""

from __future__ import annotations

import time

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

STATUS_ICONS = {
    "InProgress": "🔵", "Completed": "🟢", "Failed": "🔴", "Stopping": "🟠", "Stopped": "⚪",
    "Creating": "🔵", "InService": "🟢", "Deleting": "🟠", "Updating": "🔵",
}
OUTCOME_COLORS = {"stayed": "#4c78a8", "churned": "#e45756"}
METRIC_LABELS = {
    "roc_auc": "ROC AUC", "pr_auc": "PR AUC", "f1": "F1", "accuracy": "Accuracy",
    "precision": "Precision", "recall": "Recall", "log_loss": "Log loss",
}


def status_label(status: str, secondary: str = "") -> str:
    icon = STATUS_ICONS.get(status, "⚫")
    extra = f" · {secondary}" if secondary and secondary != status else ""
    return f"{icon} {status}{extra}"


def duration_text(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds // 60:.0f} min {seconds % 60:.0f} s"
    return f"{seconds // 3600:.0f} h {seconds % 3600 // 60:.0f} min"


def when(epoch: float | None) -> str:
    return "—" if not epoch else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))


def _layout(fig: go.Figure, title: str, height: int = 380) -> go.Figure:
    fig.update_layout(title=title, height=height, margin=dict(l=10, r=10, t=50, b=10), legend=dict(orientation="h"))
    return fig


def roc_figure(evaluations: dict[str, dict]) -> go.Figure:
    fig = go.Figure()
    for name, ev in evaluations.items():
        auc = ev.get("metrics", {}).get("roc_auc")
        label = f"{name} (AUC {auc:.3f})" if auc is not None else name
        fig.add_scatter(x=ev["roc"]["fpr"], y=ev["roc"]["tpr"], mode="lines", name=label)
    fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", name="chance", line=dict(dash="dot", color="grey"))
    fig.update_xaxes(title="False positive rate", range=[0, 1])
    fig.update_yaxes(title="True positive rate (recall)", range=[0, 1.02])
    return _layout(fig, "ROC curve")


def pr_figure(evaluations: dict[str, dict]) -> go.Figure:
    fig = go.Figure()
    for name, ev in evaluations.items():
        ap = ev.get("metrics", {}).get("pr_auc")
        label = f"{name} (AP {ap:.3f})" if ap is not None else name
        fig.add_scatter(x=ev["pr"]["recall"], y=ev["pr"]["precision"], mode="lines", name=label)
    fig.update_xaxes(title="Recall", range=[0, 1])
    fig.update_yaxes(title="Precision", range=[0, 1.02])
    return _layout(fig, "Precision–recall curve")


def confusion_figure(ev: dict) -> go.Figure:
    matrix = ev["confusion_matrix"]
    labels = ["Stayed (0)", "Churned (1)"]
    fig = px.imshow(matrix, x=[f"Predicted {l}" for l in labels], y=[f"Actual {l}" for l in labels],
                    text_auto=True, color_continuous_scale="Blues", aspect="auto")
    fig.update_coloraxes(showscale=False)
    return _layout(fig, f"Confusion matrix (threshold {ev.get('threshold', 0.5)})", 340)


def importance_figure(ev: dict, top: int = 20) -> go.Figure:
    frame = pd.DataFrame(ev.get("feature_importance", [])[:top])
    if frame.empty:
        return _layout(go.Figure(), "Feature importance (not available)")
    frame = frame.iloc[::-1]
    fig = px.bar(frame, x="importance", y="feature", orientation="h")
    return _layout(fig, "Feature importance", max(300, 28 * len(frame) + 80))


def distribution_figure(frame: pd.DataFrame, feature: str, target: str) -> go.Figure:
    data = frame[[feature, target]].copy()
    data[target] = data[target].map({1: "churned", 0: "stayed"}).fillna(data[target].astype(str))
    style = dict(color=target, color_discrete_map=OUTCOME_COLORS, category_orders={target: ["stayed", "churned"]})
    if pd.api.types.is_numeric_dtype(frame[feature]):
        fig = px.histogram(data, x=feature, barmode="overlay", nbins=40, opacity=0.75, **style)
    else:
        fig = px.histogram(data, x=feature, barmode="group", **style)
    return _layout(fig, f"{feature} by {target}", 340)


def risk_histogram(probabilities: pd.Series) -> go.Figure:
    fig = px.histogram(x=probabilities, nbins=20, range_x=[0, 1])
    fig.update_xaxes(title="Churn probability")
    fig.update_yaxes(title="Customers")
    return _layout(fig, "Risk distribution", 320)
