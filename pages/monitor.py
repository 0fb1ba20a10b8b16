"""Monitor: what an endpoint's customers look like against its model's training data, and its traffic."""

from __future__ import annotations

import time

import pandas as pd
import streamlit as st

from app.navigation import link_to_follow, page
from app.service import attempt, platform
from app.widgets import drift_table, feature_shift_figure, traffic_figure, when
from churn_core.monitoring import drift
from churn_core.monitoring.capture_bounds import DEFAULT_MAX_MB, DEFAULT_RETENTION_DAYS

p = platform()
st.title("Monitor")
st.caption("Do the customers an endpoint scores still look like the ones its model learned from? Capture a share of "
           "its requests, compare them with the training baseline, and watch traffic and latency.")

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

st.subheader("Data capture")
left, right = st.columns([2, 3])
with left.form("capture"):
    percent = st.slider("Share of requests captured (%)", 0, 100, int(ep.capture_percent),
                        help="0 turns capture off at once. Captured requests and answers are stored in the bucket "
                             "under capture/<endpoint>/<variant>/yyyy/mm/dd/hh/, as SageMaker stores them.")
    bounded = p.settings.backend == "local"  # on SageMaker an S3 lifecycle rule bounds capture/ (docs/aws.md)
    max_mb = st.number_input("Capture budget (MB)", min_value=0.1, value=float(ep.capture_max_mb or DEFAULT_MAX_MB),
                             help="Past it capture pauses (and counts what it drops) until old files go or the "
                                  "budget grows.") if bounded else None
    keep_days = st.number_input("Keep captured files (days)", min_value=0.1,
                                value=float(ep.capture_retention_days or DEFAULT_RETENTION_DAYS),
                                help="Older capture files are deleted.") if bounded else None
    if st.form_submit_button("Save capture setting", type="primary"):
        updated = attempt(p.set_capture, endpoint, percent, max_mb, keep_days)
        if updated:
            st.success(f"Capturing {updated.capture_percent:g} % of {endpoint}'s requests." if updated.capture_percent
                       else f"Capture of {endpoint} is off.")
bounds = ep.stats.get("capture") or {}
if bounds.get("paused"):
    left.warning(f"Capture is {bounds['paused']}.", icon=":material/pause_circle:")
if bounds.get("dropped_requests"):
    left.caption(f"Not captured (a bound was reached): {bounds['dropped_requests']:,} request(s), "
                 f"{bounds['dropped_rows']:,} customer row(s); {bounds['written']:,} captured.")
kept = (f"for the capture retention ({DEFAULT_RETENTION_DAYS:g} days by default)" if p.settings.backend == "local"
        else "for as long as the S3 lifecycle rule on capture/ keeps it (docs/aws.md)")
right.caption(f"Captured data is yours: deleting the endpoint leaves it in the bucket {kept}, or until its dataset "
              "is deleted with everything derived (Data page).")
schedule = p.monitoring_schedule(endpoint)
with right.form("schedule"):
    every = st.number_input("Drift report every (minutes, 0 = no schedule)", min_value=0.0,
                            value=float(schedule["every_minutes"]) if schedule else 0.0, step=5.0)
    if st.form_submit_button("Save schedule"):
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
        words = [f"Drift in {len(flagged)} feature(s): " + ", ".join(f"**{f}**" for f in flagged)] if flagged else []
        words += ["the model's predicted churn probabilities have shifted"] if output else []
        st.error("; ".join(words).capitalize() if not flagged else "; ".join(words), icon=":material/warning:")
    elif verdict == "no drift":
        st.success("No feature has drifted from the training data.", icon=":material/check_circle:")
    else:
        st.warning("Not enough data to judge: too few customers for any measure (see each row's minimum).",
                   icon=":material/hourglass_empty:")
    if report.attrs.get("skipped"):
        st.caption(f"{report.attrs['skipped']:,} unreadable capture record(s) were skipped.")
    st.dataframe(drift_table(report), hide_index=True, width="stretch")
    features = list(dict.fromkeys(report["feature"]))
    feature = st.selectbox("Compare a feature's distributions", features, key="monitor_feature")
    captured = attempt(p.captured, endpoint, time.time() - since if since else None)
    if captured is not None:
        st.plotly_chart(feature_shift_figure(p.baseline(ep.model), captured, feature), width="stretch")

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
        if st.form_submit_button("Save thresholds"):
            if attempt(p.set_drift_thresholds, ep.model, values, why) is not None:
                st.success(f"Thresholds of {ep.model} saved; reports from now on use them.")
    if chosen["history"]:
        st.caption("Changes (newest first); before any, the model's own constraints.json decides.")
        st.dataframe(pd.DataFrame([{"at": when(h["set_at"]), "by": h["set_by"], "thresholds": h["thresholds_json"],
                                    "note": h["note"]} for h in chosen["history"]]), hide_index=True, width="stretch")
