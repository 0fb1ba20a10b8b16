"""The Endpoints page's rollout section: which versions an endpoint serves, with what weight and how
each one does, and the actions that change it without taking the endpoint down."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from app.charts import chart_layout
from app.formatting import threshold_text
from app.pickers import approved_versions
from app.service import attempt, gate


def variant_table(ep) -> pd.DataFrame:
    rows = []
    for v in ep.variants:
        stats = v.get("stats") or {}
        rows.append({
            "variant": v["variant"], "serves": v["version"] or f"model {v['model']}", "weight": v["weight"],
            "threshold": threshold_text(v["threshold"]), "invocations": stats.get("invocations", 0),
            "errors": stats.get("errors", 0), "median latency ms": stats.get("p50_latency_ms"),
        })
    return pd.DataFrame(rows)


def score_figure(ep) -> go.Figure:
    """The churn probabilities each variant answered, side by side (share of its answers per bin)."""
    fig = go.Figure()
    for v in ep.variants:
        scores = (v.get("stats") or {}).get("scores") or []
        total = sum(scores)
        if total:
            edges = [i / len(scores) for i in range(len(scores))]
            fig.add_bar(x=[e + 0.5 / len(scores) for e in edges], y=[s / total for s in scores], name=v["variant"],
                        width=0.9 / len(scores), opacity=0.7)
    fig.update_layout(barmode="group")
    fig.update_xaxes(title="Churn probability answered", range=[0, 1])
    fig.update_yaxes(title="Share of the variant's answers", tickformat=".0%", rangemode="tozero")
    if not fig.data:  # an empty axis would run −100 % … 400 %
        fig.update_yaxes(range=[0, 1])
        fig.add_annotation(text="No answers yet: the chart fills as the variants answer requests.", showarrow=False,
                           x=0.5, y=0.5, xref="paper", yref="paper")
    return chart_layout(fig, "Scores by variant", 300)


def _key(variant: dict) -> str:
    """The ``group:number`` key of the version a variant serves ("" for a job's model served as itself)."""
    group, _, number = (variant.get("version") or "").rpartition(" v")
    return f"{group}:{number}" if group and number.isdigit() else ""


def current_split(ep) -> tuple[str, str, int] | None:
    """(champion key, challenger key, challenger's % of traffic) of a two-variant endpoint, as it serves now."""
    if len(ep.variants) != 2:
        return None
    champion, challenger = sorted(ep.variants, key=lambda v: -float(v["weight"]))
    total = float(champion["weight"]) + float(challenger["weight"]) or 1.0
    return _key(champion), _key(challenger), round(100 * float(challenger["weight"]) / total)


def _done(ep, message: str) -> None:
    """Redraw the page on the new state (the Serving table, pickers and slider above were drawn before it)."""
    st.session_state[f"rollout_done_{ep.name}"] = message
    for key in (f"share_{ep.name}", f"champ_{ep.name}", f"chall_{ep.name}"):  # follow the real split again
        st.session_state.pop(key, None)
    st.rerun()


def render(p, ep) -> None:
    """Variants with their figures; Update to version…, champion/challenger weights, Promote challenger."""
    if message := st.session_state.pop(f"rollout_done_{ep.name}", None):
        st.success(message)
    st.markdown("**Serving**")
    st.dataframe(variant_table(ep), hide_index=True, width="stretch", column_config={
        "weight": st.column_config.NumberColumn(help="Share of requests routed to the variant (relative)."),
        "median latency ms": st.column_config.NumberColumn(format="%.2f"),
    })
    if len(ep.variants) > 1:
        st.plotly_chart(score_figure(ep), width="stretch", key=f"scores_{ep.name}")
    if ep.failure_reason and ep.status == "InService":
        st.warning(ep.failure_reason, icon=":material/undo:")
    approved = approved_versions(p)
    if not approved:
        st.caption("Register and approve versions on the Models page to update this endpoint or run a "
                   "champion/challenger test.")
        return
    keys = list(approved)
    update, split = st.columns(2)
    with update.form(f"update_{ep.name}"):
        target = st.selectbox("Update to version", keys, format_func=lambda k: approved[k].label,
                              help="Starts the new model next to the old one and switches traffic when it is "
                                   "healthy: no request fails. If it cannot serve, the old one keeps serving.")
        if st.form_submit_button("Update endpoint", type="primary", **gate(p, "update_endpoint")):
            updated = attempt(p.update_endpoint, ep.name, approved[target].group, approved[target].version)
            if updated:
                _done(ep, f"{ep.name} now serves {approved[target].label}.")
    with split.form(f"split_{ep.name}"):
        now = current_split(ep)  # a page opened later shows the split the endpoint really serves
        first = keys.index(now[0]) if now and now[0] in keys else 0
        second = keys.index(now[1]) if now and now[1] in keys else min(1, len(keys) - 1)
        champion = st.selectbox("Champion", keys, index=first, format_func=lambda k: approved[k].label,
                                key=f"champ_{ep.name}")
        challenger = st.selectbox("Challenger", keys, index=second, format_func=lambda k: approved[k].label,
                                  key=f"chall_{ep.name}")
        share = st.slider("Traffic to the challenger (%)", 0, 50, min(now[2], 50) if now else 10,
                          key=f"share_{ep.name}")
        if st.form_submit_button("Serve both", **gate(p, "set_variants")):
            if champion == challenger:
                st.error("Pick two different versions for the champion and the challenger.")
            else:
                done = attempt(p.set_variants, ep.name, [
                    (approved[champion].group, approved[champion].version, 100 - share),
                    (approved[challenger].group, approved[challenger].version, share)])
                if done:
                    _done(ep, f"{ep.name} serves {approved[champion].label} ({100 - share} %) and "
                              f"{approved[challenger].label} ({share} %).")
    if len(ep.variants) > 1 and st.button("Promote challenger", key=f"promote_{ep.name}",
                                          help="The challenger becomes the champion and takes all the traffic "
                                               "(an update with zero failed requests)."):
        promoted = attempt(p.promote_challenger, ep.name)
        if promoted:
            _done(ep, f"{ep.name} now serves {promoted.variants[0]['version']} alone, as the champion.")
