"""Monitor: what an endpoint's customers look like against its model's training data, and its traffic."""

from __future__ import annotations

import time

import pandas as pd
import streamlit as st

from app import capture_view
from app.formatting import count_text
from app.navigation import link_to_follow, page
from app.service import attempt, gate, platform
from app.widgets import drift_table, feature_shift_figure, traffic_figure, when
from churn_core.monitoring import drift

p = platform()
st.title("Monitor")
st.caption("Do the customers an endpoint scores still look like the ones its model learned from? Compare the requests "
           "it captured (set on the Endpoints page) with the training baseline, and watch traffic and latency.")

names = p.endpoint_names()
if not names:
    st.info("No endpoints. Deploy a model on the Endpoints page, then monitor it here.")
    st.page_link(page("endpoints"), label="Go to Endpoints", icon=":material/cloud_upload:")
    st.stop()
if followed := link_to_follow("endpoint", names):
    st.session_state["monitor_endpoint"] = followed
endpoint = st.selectbox("Endpoint", names, key="monitor_endpoint")
ep = attempt(p.describe_endpoint, endpoint)
if ep is None:
    st.stop()

st.markdown(capture_view.status_text(ep))
st.page_link(page("endpoints"), label="Change data capture on Endpoints", icon=":material/tune:",
             query_params={"endpoint": endpoint})

st.subheader("Drift against the training baseline")
window = st.selectbox("Window", ["last hour", "last 24 hours", "last 7 days", "everything captured"], index=1)
since = {"last hour": 3600, "last 24 hours": 86400, "last 7 days": 7 * 86400}.get(window)
if st.button("Run a drift report now", type="primary"):
    report = attempt(p.drift_report, endpoint=endpoint, since=time.time() - since if since else None)
    if report is not None:
        st.session_state["monitor_report"] = (endpoint, window, report)
latest = st.session_state.get("monitor_report")
if latest and latest[0] == endpoint:
    report = latest[2]
    st.caption(f"Report on the {latest[1]}: {report.attrs.get('n', 0):,} captured customers compared.")
else:
    last = p.drift_history(endpoint, 1)
    report = last[0]["report"] if last else None
    if last:
        st.caption(f"Latest report: {when(last[0]['created_at'])} ({last[0]['rows']:,} customers, {last[0]['source']})")
if report is None or report.empty:
    st.info("No drift report yet: turn capture on, send traffic, then run one (or schedule them).")
else:
    verdict = drift.verdict(report)  # the headline from the same rows the table shows
    if verdict.startswith("drift"):
        flagged, output = drift.drifted_features(report), drift.prediction_drifted(report)
        named = ", ".join(f"**{f}**" for f in flagged)
        words = [f"Drift in {count_text(len(flagged), 'feature')}: {named}"] if flagged else []
        words += ["the model's predicted churn probabilities have shifted"] if output else []
        st.error("; ".join(words).capitalize() if not flagged else "; ".join(words), icon=":material/warning:")
    elif verdict == "no drift":
        st.success("No feature has drifted from the training data.", icon=":material/check_circle:")
    else:
        st.warning("Not enough data to judge: too few customers for any measure (see each row's minimum).",
                   icon=":material/hourglass_empty:")
    if report.attrs.get("skipped"):
        st.caption(f"Skipped {count_text(report.attrs['skipped'], 'unreadable capture record')}.")
    st.dataframe(drift_table(report), hide_index=True, width="stretch")
    features = list(dict.fromkeys(report["feature"]))
    feature = st.selectbox("Compare a feature's distributions", features, key="monitor_feature")
    captured = attempt(p.captured, endpoint, time.time() - since if since else None)
    if captured is not None:
        st.plotly_chart(feature_shift_figure(p.baseline(ep.model), captured, feature), width="stretch")

schedule = p.monitoring_schedule(endpoint)
st.subheader("Scheduled reports")
left, right = st.columns([2, 3])
with left.form("schedule"):
    every = st.number_input("Drift report every (minutes, 0 = no schedule)", min_value=0.0,
                            value=float(schedule["every_minutes"]) if schedule else 0.0, step=5.0)
    if st.form_submit_button("Save schedule", **gate(p, "schedule_monitoring")):
        if attempt(p.schedule_monitoring, endpoint, every) is not None:
            st.success(f"A drift report runs every {every:g} minutes." if every else "No scheduled drift reports.")
if schedule:
    right.caption(f"Last scheduled report: {when(schedule['last_run_at'])}")
    if schedule["last_error"]:
        right.error(f"Last scheduled run: {schedule['last_error']}", icon=":material/error:")
    if schedule["runs"]:
        with right.expander(f"Scheduled runs ({len(schedule['runs'])} most recent)"):
            st.dataframe(pd.DataFrame([{"at": when(r["started_at"]), "outcome": r["outcome"], "detail": r["detail"]}
                                       for r in schedule["runs"]]), hide_index=True, width="stretch")


st.subheader("Traffic and latency", anchor=False)
traffic = attempt(p.endpoint_traffic, endpoint)
if traffic is not None and len(traffic):
    st.plotly_chart(traffic_figure(traffic), width="stretch")
else:
    st.caption("No traffic recorded yet.")

history = p.drift_history(endpoint, 50)
if history:
    st.subheader("History")
    st.dataframe(pd.DataFrame([{"at": when(h["created_at"]), "customers": h["rows"], "source": h["source"],
                                "drifted features": ", ".join(h["drifted"]) or "none"} for h in history]),
                 hide_index=True, width="stretch")

st.subheader("Drift thresholds of this endpoint's model")
chosen = attempt(p.set_drift_thresholds, ep.model)
if chosen is not None:
    with st.form("thresholds"):
        cols = st.columns(len(chosen["thresholds"]))
        values = {k: col.number_input(k, min_value=0.0001, value=float(v), format="%.4f", key=f"threshold_{k}")
                  for col, (k, v) in zip(cols, sorted(chosen["thresholds"].items()), strict=True)}
        why = st.text_input("Why (kept with the change)", key="threshold_note")
        if st.form_submit_button("Save thresholds", **gate(p, "set_drift_thresholds")):
            if attempt(p.set_drift_thresholds, ep.model, values, why) is not None:
                st.success(f"Thresholds of {ep.model} saved; reports from now on use them.")
    if chosen["history"]:
        st.caption("Changes (newest first); before any, the model's own constraints.json decides.")
        st.dataframe(pd.DataFrame([{"at": when(h["set_at"]), "by": h["set_by"], "thresholds": h["thresholds_json"],
                                    "note": h["note"]} for h in chosen["history"]]), hide_index=True, width="stretch")
