"""Train: pick a dataset, an algorithm and its hyperparameters, launch a training job."""

from __future__ import annotations

import streamlit as st

from app import tuning_view
from app.navigation import page
from app.service import attempt, gate, platform
from churn_core.training.hyperparameters import ALGORITHMS
from churn_core.names import default_job_name

p = platform()
st.title("Train")
st.caption("Each launch is a training job: a model learns from the dataset's train split and is scored on its test "
           "split. The same training code runs on this machine or on SageMaker.")

datasets = p.list_datasets()
if not datasets:
    st.info("No dataset yet: store one on the Data page first.")
    st.page_link(page("data"), label="Go to Data", icon=":material/database:")
    st.stop()

labels = {d.name: f"{d.name} — {d.rows:,} rows, churn {d.churn_rate:.1%}" for d in datasets}
if tuning_view.chosen():  # Launch | Tune: the Tune tab lives in app/tuning_view.py
    tuning_view.render(p, labels)
    st.stop()
algorithm = st.radio("Algorithm", list(ALGORITHMS), format_func=lambda a: ALGORITHMS[a]["label"], horizontal=True,
                     key="train_algorithm")
st.caption(ALGORITHMS[algorithm]["help"])

with st.form("launch_training"):
    dataset = st.selectbox("Dataset", list(labels), format_func=labels.get)
    values = {}
    columns = st.columns(3)
    # No bounds on the widgets: a browser refuses an out-of-range number silently; the platform says why.
    for i, param in enumerate(ALGORITHMS[algorithm]["params"]):
        box = columns[i % 3]
        key = f"hp_{algorithm}_{param.name}"
        allowed = f" Allowed: {param.range_text}." if param.range_text else ""
        help_text = f"{param.help}{allowed} Technical name: `{param.name}`."
        if param.kind == "choice":
            values[param.name] = box.selectbox(param.title, param.choices, index=param.choices.index(param.default),
                                               help=help_text, key=key, format_func=param.choice_text)
        elif param.kind == "float":
            values[param.name] = box.number_input(param.title, value=float(param.default), help=help_text,
                                                  format="%g", key=key)
        else:
            values[param.name] = box.number_input(param.title, value=param.default, step=1, help=help_text, key=key,
                                                  placeholder="no limit" if param.kind == "optional_int" else None)
    left, right = st.columns(2)
    job_name = left.text_input("Job name (optional)", placeholder=default_job_name(algorithm), key="train_job_name",
                               help="Leave it empty for a name made of the algorithm and the time.")
    instance_type = None
    if instance_types := p.offers.training_instance_types:
        instance_type = right.selectbox("Training instance type", instance_types)
    else:
        right.text_input("Runs on", value="this machine (local backend)", disabled=True)
    launched = st.form_submit_button("Launch training", type="primary", **gate(p, "start_training"))

if launched:
    job = attempt(p.start_training, dataset, {"algorithm": algorithm, **values}, name=job_name.strip() or None,
                  instance_type=instance_type)
    if job:
        st.session_state["selected_job"] = job.name
        st.toast(f"Training job {job.name} started", icon=":material/rocket_launch:")
        st.success(f"Job **{job.name}** has started. Follow it live on the Jobs page.")
        st.page_link(page("jobs"), label=f"Watch {job.name}", icon=":material/monitoring:",
                     query_params={"job": job.name})
