"""Jobs: live table of training jobs, one job's detail (log, metrics, charts), stop, compare, deploy."""

from __future__ import annotations


import pandas as pd
import streamlit as st

from app.navigation import link_to_follow, page
from app.service import attempt, platform
from app.widgets import (METRIC_LABELS, confusion_figure, duration_text, importance_figure, pr_figure, roc_figure,
                         status_badge, status_label, when)
from churn_core.csv_export import to_download_csv

PAGE_SIZE = 50
p = platform()
st.title("Jobs")

total = p.count_training_jobs()
if total == 0:
    st.info("No training jobs yet. Launch one on the Train page.")
    st.page_link(page("train"), label="Go to Train", icon=":material/model_training:")
    st.stop()

pages_count = max(1, -(-total // PAGE_SIZE))
page_number = st.number_input(f"Page (of {pages_count}, {PAGE_SIZE} jobs each)", 1, pages_count, 1) \
    if pages_count > 1 else 1


def job_rows(jobs) -> pd.DataFrame:
    return pd.DataFrame([{
        "name": j.name, "status": status_label(j.status, j.secondary_status if j.is_active else ""),
        "algorithm": j.algorithm, "dataset": j.dataset, "duration": duration_text(j.duration),
        "ROC AUC": j.metrics.get("roc_auc"), "F1": j.metrics.get("f1"), "created": when(j.created_at),
    } for j in jobs])


names = p.job_names(limit=PAGE_SIZE, offset=(page_number - 1) * PAGE_SIZE)


# Local jobs finish in about a second: refresh every second while any job runs, every 2 s otherwise.
running_now = p.count_training_jobs(status="InProgress") + p.count_training_jobs(status="Stopping")
REFRESH_SECONDS = 1 if running_now else 2


@st.fragment(run_every=REFRESH_SECONDS)
def live_table() -> None:
    jobs = attempt(p.list_training_jobs, limit=PAGE_SIZE, offset=(page_number - 1) * PAGE_SIZE)
    if jobs is None:
        return
    if [j.name for j in jobs] != names:
        st.rerun()  # a job launched elsewhere (another tab, the API): the picker and counts must know it too
    st.dataframe(job_rows(jobs), width="stretch", hide_index=True, column_config={
        "ROC AUC": st.column_config.NumberColumn(format="%.3f"), "F1": st.column_config.NumberColumn(format="%.3f"),
    })
    running = sum(1 for j in jobs if j.is_active)
    st.caption(f"{total} job(s) · {running} running on this page · refreshes every {REFRESH_SECONDS} s")


live_table()

if followed := link_to_follow("job", names):  # the Train page's "Watch" link, or a bookmark
    st.session_state["selected_job"] = followed
    st.session_state.pop("job_picker", None)
wanted = st.session_state.get("selected_job")
selected = st.selectbox("Job", names, index=names.index(wanted) if wanted in names else 0, key="job_picker")
st.session_state["selected_job"] = selected
current = attempt(p.describe_training, selected)


@st.fragment(run_every=1 if current and current.is_active else None)
def job_detail(name: str) -> None:
    job = attempt(p.describe_training, name)
    if job is None:
        return
    st.subheader(f"{job.name}  {status_badge(job.status, job.secondary_status)}")
    if job.status == "Failed":
        st.error(f"**Failed:** {job.failure_reason}", icon=":material/error:")
    st.markdown(f"**{job.algorithm}** on dataset **{job.dataset}** · submitted {when(job.created_at)} · "
                f"started {when(job.started_at)} · duration **{duration_text(job.duration)}** · {job.instance_type}")
    if job.is_active:
        if st.button("Stop job", key=f"stop_{job.name}", type="secondary"):
            stopped = attempt(p.stop_training, job.name)
            if stopped:
                st.toast(f"{job.name}: {stopped.status}")
                st.rerun()
    if job.metrics:
        metric_cols = st.columns(len(METRIC_LABELS))
        for box, (key, label) in zip(metric_cols, METRIC_LABELS.items(), strict=True):
            value = job.metrics.get(key)
            box.metric(label, "—" if value is None else f"{value:.3f}")
    with st.expander("Hyperparameters and provenance", expanded=False):
        st.json({**job.hyperparameters, "dataset_sha256": job.dataset_sha256, "code_sha256": job.code_sha256,
                 "model_sha256": job.model_sha256 or None, "instance": job.instance_type})
    log_text = p.training_log(job.name, 60)
    if job.status == "Failed" or job.is_active:
        st.code(log_text or "(no log output yet)", language="text")
    if job.status == "Completed":
        ev = attempt(p.evaluation, job.name)
        if ev:
            roc_tab, pr_tab, cm_tab, fi_tab, log_tab = st.tabs(
                ["ROC curve", "Precision–recall", "Confusion matrix", "Feature importance", "Log"])
            roc_tab.plotly_chart(roc_figure({job.name: ev}), width="stretch")
            pr_tab.plotly_chart(pr_figure({job.name: ev}), width="stretch")
            cm_tab.plotly_chart(confusion_figure(ev), width="stretch")
            fi_tab.plotly_chart(importance_figure(ev), width="stretch")
            log_tab.code(log_text, language="text")
        # A link, not st.switch_page: the browser navigates itself, so no late run of this page's
        # 2 s fragments can land on the Endpoints page (they used to blank it under load).
        st.page_link(page("endpoints"), label="Deploy this model", icon=":material/rocket_launch:",
                     query_params={"model": job.name})


if current:
    job_detail(selected)

st.divider()
st.subheader("Compare models")
completed = p.job_names(limit=200, status="Completed")
if len(completed) < 2:
    st.caption("Complete two or more jobs to compare them.")
else:
    chosen = st.multiselect("Completed jobs", completed, key="compare_jobs", placeholder="Pick two or more jobs")
    if len(chosen) >= 2:
        table = pd.DataFrame(p.compare(chosen)).set_index("job")
        st.dataframe(table, width="stretch")
        evaluations = {name: ev for name in chosen if (ev := attempt(p.evaluation, name))}
        st.plotly_chart(roc_figure(evaluations), width="stretch", key="compare_roc")
        st.download_button("Download comparison (CSV)", to_download_csv(table, index=True), "comparison.csv",
                           "text/csv")
    else:
        st.caption("Pick at least two jobs.")
