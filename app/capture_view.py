"""Data capture of one endpoint, drawn beside it on the Endpoints page: the share of requests kept, the byte
budget and retention (local backend), and what a bound held back."""

from __future__ import annotations

import streamlit as st

from app.formatting import count_text
from app.service import attempt, gate
from churn_core.monitoring.capture_bounds import DEFAULT_MAX_MB, DEFAULT_RETENTION_DAYS


def status_text(ep) -> str:
    """``Capturing **20 %** of churn-live's requests.`` / ``Capture is **off** for churn-live.``: what Monitor says."""
    return (f"Capturing **{ep.capture_percent:g} %** of {ep.name}'s requests." if ep.capture_percent
            else f"Capture is **off** for {ep.name}.")


def render(p, ep) -> None:
    left, right = st.columns([3, 2])
    bounded = p.settings.backend == "local"  # on SageMaker an S3 lifecycle rule bounds capture/ (docs/aws.md)
    with left.form(f"capture_{ep.name}"):
        percent = st.slider("Share of requests captured (%)", 0, 100, int(ep.capture_percent),
                            key=f"capture_percent_{ep.name}",
                            help="0 turns capture off at once. Captured requests and answers are stored in the "
                                 "bucket under capture/<endpoint>/<variant>/yyyy/mm/dd/hh/, as SageMaker stores "
                                 "them; Monitor compares them with the training data.")
        budget, keep = st.columns(2)
        max_mb = budget.number_input("Capture budget (MB)", min_value=0.1,
                                     value=float(ep.capture_max_mb or DEFAULT_MAX_MB), key=f"capture_mb_{ep.name}",
                                     help="Past it capture pauses (and counts what it drops) until old files go or "
                                          "the budget grows.") if bounded else None
        keep_days = keep.number_input("Keep captured files (days)", min_value=0.1,
                                      value=float(ep.capture_retention_days or DEFAULT_RETENTION_DAYS),
                                      key=f"capture_days_{ep.name}",
                                      help="Older capture files are deleted.") if bounded else None
        if st.form_submit_button("Save capture setting", type="primary", **gate(p, "set_capture")):
            updated = attempt(p.set_capture, ep.name, percent, max_mb, keep_days)
            if updated:
                st.success(f"Capturing {updated.capture_percent:g} % of {ep.name}'s requests."
                           if updated.capture_percent else f"Capture of {ep.name} is off.")
    bounds = ep.stats.get("capture") or {}
    if bounds.get("paused"):
        right.warning(f"Capture is {bounds['paused']}.", icon=":material/pause_circle:")
    if bounds.get("dropped_requests"):
        right.caption(f"Not captured (a bound was reached): {count_text(bounds['dropped_requests'], 'request')}, "
                      f"{count_text(bounds['dropped_rows'], 'customer row')}; {bounds['written']:,} captured.")
    kept = (f"for the capture retention ({DEFAULT_RETENTION_DAYS:g} days by default)" if bounded
            else "for as long as the S3 lifecycle rule on capture/ keeps it (docs/aws.md)")
    right.caption(f"Captured data is yours: deleting the endpoint leaves it in the bucket {kept}, or until its "
                  "dataset is deleted with everything derived (Data page).")
