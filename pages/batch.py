"""Batch: score a whole file with a trained model as a transform job, watch it, open and download its results."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app.charts import risk_bars
from app.formatting import count_text, duration_text, status_badge, status_label, when
from app.navigation import link_to_follow, page
from app.service import attempt, gate, platform
from churn_core.data.headers import read_header
from churn_core.errors import ChurnError

p = platform()
st.title("Batch")
st.caption("Score every customer of a file with a trained model, without an endpoint: a transform job writes the "
           "results to the bucket. Lines that cannot be scored are listed with their line number and reason.")

models = p.model_names()
if not models:
    st.info("No trained model yet: a Completed training job produces one.")
    st.page_link(page("train"), label="Go to Train", icon=":material/model_training:")
    st.stop()



def reasons_estimate(owner, rows: int | None, workers: int) -> str:
    """What top reasons will cost for this model and file, from a measurement of this model on this machine."""
    try:
        seconds = p.reasons_cost(owner)
    except ChurnError as exc:  # the model's files cannot be read here: the job would say the same
        return f"No estimate of what top reasons cost: {exc}"
    if seconds is None:
        return "This model gives no reasons: a job that asks for them fails at once, saying why (retrain it)."
    speed = f"Top reasons with this model take about {seconds * 1000:.2g} ms a customer on this machine"
    if not rows:
        return f"{speed} (one worker); on top of the plain scoring."
    return (f"{speed}: about {duration_text(seconds * rows / max(workers, 1))} for these "
            f"{count_text(rows, 'customer')} on {count_text(workers, 'worker')}, on top of the plain scoring.")


handed_over = st.session_state.get("transform_handover")  # a file the Predict page found too big to score there
with st.expander("Start a transform job", expanded=bool(handed_over) or not p.list_transforms(limit=1)):
    model = st.selectbox("Model", models, key="batch_model")
    versions = {(v.group, v.version): v.label for v in reversed(p.versions_of_model(model))}
    if versions:  # a registered version labels at its own threshold (the one endpoints serving it use)
        model = st.selectbox("Labels at the threshold of", [model, *versions], key=f"batch_owner_{model}",
                             format_func=lambda o: versions.get(o) or f"model {o} (the job's model)")
    kinds = ["Upload a file", "A stored dataset"]
    kind = st.radio("Customers to score", kinds, horizontal=True, key="batch_source")
    data, file_name, columns, rows = None, None, [], None
    if kind == kinds[0]:
        upload = st.file_uploader("Customers (CSV or Excel .xlsx)", type=["csv", "txt", "xlsx"], key="batch_file",
                                  help="A header row naming the model's feature columns; other columns (an ID) are "
                                       "kept in the results.")
        if upload is not None:
            data, file_name = upload.getvalue(), upload.name
        elif handed_over:
            file_name, data = handed_over
            st.info(f"**{file_name}** from the Predict page ({len(data) / 1e6:.1f} MB).", icon=":material/upload_file:")
        if data is not None:
            columns = read_header(data)
            rows = None if file_name.lower().endswith(".xlsx") else max(data.count(b"\n") - 1, 1)
    else:
        datasets = {d.name: d for d in p.list_datasets()}
        if not datasets:
            st.info("No stored dataset. Upload one on the Data page.")
        else:
            chosen = datasets[st.selectbox("Dataset", list(datasets), key="batch_dataset")]
            part = st.selectbox("Part", ["test", "train", "raw"], key="batch_part",
                                format_func=lambda k: {"test": f"test ({chosen.n_test:,} rows)",
                                                       "train": f"train ({chosen.n_train:,} rows)",
                                                       "raw": f"raw ({chosen.rows:,} rows, as uploaded)"}[k])
            data = {"test": chosen.test_key, "train": chosen.train_key, "raw": chosen.raw_key}[part]
            file_name, columns = f"{chosen.name} ({part})", chosen.columns
            rows = {"test": chosen.n_test, "train": chosen.n_train, "raw": chosen.rows}[part]
    with st.form("start_transform"):
        keep = st.multiselect("Columns to keep in the results", columns, key="batch_keep",
                              placeholder="Default: the ID and every other column the model does not use")
        left, right = st.columns(2)
        workers = left.number_input("Workers", 1, 64, p.offers.default_transform_instances,
                                    help="Worker processes on this machine (default: one per core); instances on "
                                         "SageMaker.")
        name = right.text_input("Job name (optional)", placeholder="<model>-batch-<time>")
        instance_type = None
        if len(instance_types := p.offers.transform_instance_types) > 1:  # SageMaker: its types, default first
            instance_type = left.selectbox("Instance type", instance_types, key="batch_instance_type",
                                           help="What each instance is (batch transform types only; the default is "
                                                "the cheapest). Workers above is the number of instances.")
        reasons = st.checkbox("Add each customer's top reason", value=True, key="batch_reasons",
                              help="The column that pushes each customer's churn probability most, with its value "
                                   "and the size of the push: exact Shapley values, the same as Predict and the "
                                   "endpoint give. Their cost depends on the model (every node of every tree is "
                                   "visited for each customer): see the estimate below. Leave it off for a plain "
                                   "score file.")
        st.caption(reasons_estimate(model, rows, p.offers.default_transform_instances))
        start = st.form_submit_button("Start transform job", type="primary", **gate(p, "start_transform", data is None))
    if start and data is not None:
        job = attempt(p.start_transform, model, data, name=name.strip() or None, keep_columns=keep or None,
                      instance_count=int(workers), file_name=file_name, reasons=reasons, instance_type=instance_type)
        if job:
            st.session_state["batch_selected"] = job.name
            st.session_state["batch_picker"] = job.name  # the picker follows the new job (its old choice would win)
            st.session_state.pop("transform_handover", None)
            if job.status == "Failed":
                st.error(f"**{job.name} failed:** {job.failure_reason}", icon=":material/error:")
            else:
                st.success(f"Transform job **{job.name}** is {status_label(job.status).lower()}.")

names = [t.name for t in p.list_transforms(limit=200)]
if not names:
    st.stop()

if followed := link_to_follow("transform", names):
    st.session_state["batch_selected"] = followed
    st.session_state.pop("batch_picker", None)
wanted = st.session_state.get("batch_selected")
selected = st.selectbox("Transform job", names, index=names.index(wanted) if wanted in names else 0,
                        key="batch_picker")
st.session_state["batch_selected"] = selected
current = attempt(p.describe_transform, selected)


@st.fragment(run_every=1 if current and current.is_active else None)
def job_view(name: str, was_active: bool) -> None:
    job = attempt(p.describe_transform, name)
    if job is None:
        return
    if was_active and not job.is_active:
        st.rerun()  # the whole page: the job list and this view stop refreshing
    st.subheader(f"{job.name}  {status_badge(job.status)}")
    st.markdown(f"Model **{job.model}** on **{job.input_label}** · threshold {job.threshold:g} · "
                f"{job.instance_count} × {job.instance_type} · submitted {when(job.created_at)} · "
                f"duration **{duration_text(job.duration)}**")
    if job.is_active:
        done = f"{job.rows_done:,} of {job.rows_in:,} lines" if job.rows_in else "reading the file…"
        st.progress(job.progress, text=done)
        if st.button("Stop job", key=f"stop_{job.name}", **gate(p, "stop_transform")):
            stopped = attempt(p.stop_transform, job.name)
            if stopped:
                st.toast(f"{job.name}: {status_label(stopped.status).lower()}")
                st.rerun()
        return
    if job.status == "Failed":
        st.error(f"**Failed:** {job.failure_reason}", icon=":material/error:")
    counts = st.columns(3)
    counts[0].metric("Lines", f"{job.rows_in or 0:,}")
    counts[1].metric("Scored", f"{job.rows_scored:,}")
    counts[2].metric("Could not score", f"{job.rows_failed:,}")
    if job.status == "Completed":
        results(job)
    if job.rows_failed and job.errors_key:
        errors = attempt(p.transform_errors, job.name)
        if errors is not None:
            st.warning(f"{count_text(len(errors), 'line')} could not be scored:")
            st.dataframe(errors.head(1000), hide_index=True, width="stretch")
            st.download_button("Download errors CSV", lambda: p.transform_download(job.name, "errors"),
                               f"{job.name}-errors.csv", "text/csv", key=f"errors_{job.name}", on_click="ignore")
    with st.expander("Log", expanded=job.status == "Failed"):
        st.code(p.transform_log(job.name, 60) or "(no log output)", language="text")


def results(job) -> None:
    summary = attempt(p.transform_summary, job.name)
    if summary is None:
        return
    left, right = st.columns(2)
    share = f" ({summary.predicted_churn / summary.rows:.1%})" if summary.rows else ""
    left.metric("Predicted to churn", f"{summary.predicted_churn:,}{share}",
                help=f"Churn probability above the model's threshold ({job.threshold:g}).")
    right.metric("With warnings", f"{summary.with_warnings:,}",
                 help="Rows with a category the model never saw or a number outside its training range.")
    st.plotly_chart(risk_bars(summary.histogram, summary.bin_edges), width="stretch")
    shown = len(summary.riskiest)
    st.caption(f"The {shown:,} riskiest customers" + (f" of {summary.rows:,}" if summary.rows > shown else "")
               + "; download the full results below.")
    riskiest = summary.riskiest
    if len(riskiest):
        riskiest = riskiest.assign(churn_probability=100 * riskiest["churn_probability"])  # as on Predict
    first = [c for c in riskiest.columns if c not in ("churn_probability", "risk", "top_reason", "predicted_churn",
                                                      "warnings")]
    st.dataframe(riskiest, hide_index=True, width="stretch",
                 column_order=first + [c for c in ("churn_probability", "risk", "top_reason", "predicted_churn",
                                                   "warnings") if c in riskiest.columns],
                 column_config={
                     "churn_probability": st.column_config.ProgressColumn(
                         "churn probability", min_value=0.0, max_value=100.0, format="%.1f%%"),
                     "top_reason": st.column_config.TextColumn("top reason", width="large"),
                     "predicted_churn": st.column_config.CheckboxColumn("likely to churn")})
    st.download_button("Download results CSV", lambda: p.transform_download(job.name), f"{job.name}-results.csv",
                       "text/csv", type="primary", key=f"results_{job.name}", on_click="ignore")


if current:
    job_view(selected, current.is_active)

st.divider()
st.subheader("Transform jobs")
past = p.list_transforms(limit=200)


@st.fragment(run_every=2 if any(t.is_active for t in past) else None)
def jobs_table(was_active: bool) -> None:
    """Every job with its progress; refreshes by itself while one runs, until they have all ended."""
    jobs = p.list_transforms(limit=200)
    if was_active and not any(t.is_active for t in jobs):
        st.rerun()  # the whole page: this table stops refreshing
    st.dataframe(pd.DataFrame([{
        "name": t.name, "status": status_label(t.status), "model": t.model, "input": t.input_label,
        "lines": t.rows_in if t.rows_in is not None else "reading…" if t.is_active else "—",
        "scored": t.rows_scored, "failed": t.rows_failed, "duration": duration_text(t.duration),
        "created": when(t.created_at)} for t in jobs]), hide_index=True, width="stretch")


jobs_table(any(t.is_active for t in past))
