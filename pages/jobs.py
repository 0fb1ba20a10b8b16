"""Jobs: live table of training jobs, one job's detail (log, metrics, charts), stop, compare, deploy."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app.charts import (calibration_words, confusion_figure, effects_figure, importance_figure, pr_figure,
                        reliability_figure, roc_figure)
from app.formatting import (BEST_BY, BEST_MARK, BEST_ROW, METRIC_LABELS, STATUS_HELP, comparison_frame, count_text,
                            duration_text, hyperparameter_rows, metric_text, status_badge, status_label, when)
from app.navigation import link_to_follow, page
from app.pickers import shared_selectbox
from app.service import attempt, gate, platform
from churn_core.data.csv_export import to_download_csv
from churn_core.training.hyperparameters import ALGORITHMS
from churn_core.decisions.reasons import effects_frame

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


def job_duration(job) -> str:
    """One definition for the table and the detail: submit to end; a running job has no duration yet."""
    return "running" if job.is_active else duration_text(job.duration)


def best_per_dataset(jobs) -> set[str]:
    """The job with the highest ROC AUC on each dataset (jobs on different data are not compared)."""
    best: dict[str, object] = {}
    for j in jobs:
        score = j.metrics.get(BEST_BY)
        if j.status == "Completed" and score is not None and (
                j.dataset not in best or score > best[j.dataset].metrics[BEST_BY]):
            best[j.dataset] = j
    return {j.name for j in best.values()}


def job_rows(jobs) -> pd.DataFrame:
    best = best_per_dataset(jobs)
    return pd.DataFrame([{
        "name": j.name, "": BEST_MARK if j.name in best else "",
        "status": status_label(j.status, j.secondary_status if j.is_active else ""),
        "algorithm": ALGORITHMS.get(j.algorithm, {}).get("label", j.algorithm), "dataset": j.dataset,
        "duration": job_duration(j), "ROC AUC": metric_text(j.metrics.get("roc_auc")),
        "F1": metric_text(j.metrics.get("f1")), "created": when(j.created_at), "trained by": j.created_by or "—",
    } for j in jobs])


page_jobs = attempt(p.list_training_jobs, limit=PAGE_SIZE, offset=(page_number - 1) * PAGE_SIZE) or []
names = [j.name for j in page_jobs]
states = {j.name: j.status for j in page_jobs}  # what the rest of the page was drawn from

# Local jobs finish in about a second: refresh every second while any job runs, every 2 s otherwise.
REFRESH_SECONDS = 1 if any(j.is_active for j in page_jobs) else 2


@st.fragment(run_every=REFRESH_SECONDS)
def live_table() -> None:
    jobs = attempt(p.list_training_jobs, limit=PAGE_SIZE, offset=(page_number - 1) * PAGE_SIZE)
    if jobs is None:
        return
    if {j.name: j.status for j in jobs} != states:
        # A job was launched elsewhere, or one finished: the picker, the detail, the compare section and the
        # refresh rate were drawn from the old states, so the whole page is drawn again.
        st.rerun()
    st.dataframe(job_rows(jobs), width="stretch", hide_index=True, column_config={
        "status": st.column_config.TextColumn(help=STATUS_HELP),
        "": st.column_config.TextColumn(help="The highest ROC AUC among the jobs on the same dataset."),
        "duration": st.column_config.TextColumn(help="From submission to the end of the job."),
        "ROC AUC": st.column_config.TextColumn(help="Area under the ROC curve on the test split (1 is perfect, "
                                                    "0.5 is chance)."),
        "F1": st.column_config.TextColumn(help="Balance of precision and recall at the model's threshold."),
    })
    running = sum(1 for j in jobs if j.is_active)
    st.caption(f"{count_text(total, 'job')} · {running} running on this page · refreshes every {REFRESH_SECONDS} s")


live_table()

if followed := link_to_follow("job", names):  # the Train page's "Watch" link, or a bookmark
    st.session_state["selected_job"] = followed
selected = shared_selectbox("Job", names, "job_picker", "selected_job")
current = attempt(p.describe_training, selected) if selected else None


@st.fragment(run_every=1 if current and current.is_active else None)
def job_detail(name: str) -> None:
    job = attempt(p.describe_training, name)
    if job is None:
        return
    st.subheader(f"{job.name}  {status_badge(job.status, job.secondary_status)}")
    if job.status == "Failed":
        st.error(f"**Failed:** {job.failure_reason}", icon=":material/error:")
    algorithm = ALGORITHMS.get(job.algorithm, {}).get("label", job.algorithm)
    running = "still running" if job.is_active else f"duration **{job_duration(job)}**"
    st.markdown(f"**{algorithm}** on dataset **{job.dataset}** · submitted {when(job.created_at)} · "
                f"started {when(job.started_at)} · {running} · {job.instance_type}")
    if job.is_active:
        if st.button("Stop job", key=f"stop_{job.name}", type="secondary", **gate(p, "stop_training")):
            stopped = attempt(p.stop_training, job.name)
            if stopped:
                st.toast(f"{job.name}: {status_label(stopped.status).lower()}")
                st.rerun()
    if job.metrics:
        metric_cols = st.columns(len(METRIC_LABELS))
        for box, (key, label) in zip(metric_cols, METRIC_LABELS.items(), strict=True):
            value = job.metrics.get(key)
            box.metric(label, metric_text(value))
    st.markdown("**Settings**")
    st.dataframe(pd.DataFrame(hyperparameter_rows(job.algorithm, job.hyperparameters)), hide_index=True,
                 column_config={"value": st.column_config.TextColumn(width="medium"),
                                "technical name": st.column_config.TextColumn(width="medium")})
    with st.expander("Provenance (file and code fingerprints)", expanded=False):
        st.json({"dataset_sha256": job.dataset_sha256, "code_sha256": job.code_sha256,
                 "model_sha256": job.model_sha256 or None, "instance": job.instance_type})
    log_text = p.training_log(job.name, 60)
    if job.status == "Failed" or job.is_active:
        st.code(log_text or "(no log output yet)", language="text")
    if job.status == "Completed":
        ev = attempt(p.evaluation, job.name)
        if ev:
            roc_tab, pr_tab, cm_tab, fi_tab, cal_tab, log_tab = st.tabs(
                ["ROC curve", "Precision–recall", "Confusion matrix", "Feature importance", "Calibration", "Log"])
            cal_tab.plotly_chart(reliability_figure(ev), width="stretch")
            cal_tab.caption(calibration_words(ev))
            roc_tab.plotly_chart(roc_figure({job.name: ev}), width="stretch")
            pr_tab.plotly_chart(pr_figure({job.name: ev}), width="stretch")
            at = ev.get("at_threshold") or {}  # label-based figures at the threshold in force (training's: 0.5)
            if at.get("metrics"):
                cm_tab.markdown(f"At the threshold in force, **{at['threshold']:.3f}**: " + " · ".join(
                    f"{METRIC_LABELS[k]} {metric_text(at['metrics'].get(k))}" for k in ("precision", "recall", "f1",
                                                                                         "accuracy"))
                    + " (ROC AUC, PR AUC and log loss do not depend on the threshold).")
            shown = dict(at, threshold=round(at["threshold"], 3)) if at.get("confusion_matrix") else ev
            cm_tab.plotly_chart(confusion_figure(shown), width="stretch")
            if ev.get("feature_effects"):  # which values raise risk, from the held-out customers' reasons
                fi_tab.plotly_chart(effects_figure(ev["feature_effects"]), width="stretch")
                fi_tab.dataframe(effects_frame(ev["feature_effects"]).drop(columns="sign"), hide_index=True,
                                 width="stretch", column_config={"mean push": st.column_config.NumberColumn(
                                     format="%.4f", help="Mean size of the feature's push on a held-out "
                                                         "customer's score (exact contributions).")})
            else:  # a model trained before reasons existed: magnitude only
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
        rows = p.compare(chosen)
        table = comparison_frame(rows)  # one column per job, one row per score or setting
        best = [job for job in table.columns if table.loc[BEST_ROW, job] == BEST_MARK]
        if best:
            st.markdown(f"{BEST_MARK}: **{best[0]}**, the highest ROC AUC on the test split.")
        if len({r["dataset"] for r in rows}) > 1:
            st.warning("These jobs were trained on different datasets: their scores are not directly comparable.")
        st.dataframe(table, width="stretch", height=35 * (len(table) + 1) + 3,  # every row, no inner scrolling
                     column_config={"_index": st.column_config.TextColumn(width="large")})
        evaluations = {name: ev for name in chosen if (ev := attempt(p.evaluation, name))}
        st.plotly_chart(roc_figure(evaluations), width="stretch", key="compare_roc")
        st.download_button("Download comparison (CSV)", to_download_csv(table, index=True), "comparison.csv",
                           "text/csv")
    else:
        st.caption("Pick at least two jobs.")
