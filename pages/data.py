"""Data: upload or generate a churn CSV, see its validation, store it split, explore stored datasets."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app.charts import distribution_figure
from app.formatting import schema_rows, when
from app.service import attempt, gate, ok, platform
from churn_core import ChurnError
from churn_core.names import slugify
from churn_core.data.sample import SAMPLE_DESCRIPTION
from churn_core.data.headers import read_header
from churn_core.data.target import guess_target

p = platform()
st.title("Data")
st.caption("Bring a customer-churn file (CSV or Excel): it is checked before anything is stored, then split into "
           "train and test.")

upload_col, sample_col = st.columns([3, 2], gap="large")

with sample_col:
    st.subheader("No file at hand?")
    st.info(SAMPLE_DESCRIPTION, icon=":material/science:")
    sample_name = st.text_input("Sample dataset name", value="sample-telecom", key="sample_name")
    if st.button("Load sample data", type="secondary", width="stretch", **gate(p, "load_sample")):
        ds = attempt(p.load_sample, sample_name)
        if ds:
            st.session_state["data_selected"] = ds.name
            st.success(f"Stored synthetic dataset **{ds.name}**: {ds.rows:,} rows, churn rate {ds.churn_rate:.1%}.")

with upload_col:
    st.subheader("Upload your data")
    # Any file is taken: the browser would refuse a type silently; the validation says what is wrong in words.
    # A stored file leaves the uploader (a new key empties it); what was stored is said in its place.
    upload = st.file_uploader("Churn file (CSV or Excel .xlsx)",
                              key=f"data_upload_{st.session_state.get('uploads', 0)}",
                              help="One row per customer, a header row, and a column that says whether the customer "
                                   "left (0/1, yes/no or true/false). An Excel workbook is read from its first sheet.")
    form_slot = st.container()
    if stored_message := st.session_state.pop("data_stored_message", None):
        st.success(stored_message, icon=":material/check_circle:")

if upload is not None:
    data = upload.getvalue()
    header_columns = read_header(data)  # [] when the file is not a table: nothing from it is offered
    if not header_columns:
        try:
            p.validate_dataset(data, "")
        except ChurnError as exc:  # the file's own problem (not a table, binary, empty ...)
            st.error(f"**{upload.name} cannot be used.** {exc}", icon=":material/block:")
    else:
        default_target = guess_target(header_columns)
        with form_slot, st.form("store_dataset"):
            target = st.selectbox("Target column (what churn is)", header_columns,
                                  index=header_columns.index(default_target) if default_target else None,
                                  placeholder="Choose the column that says whether the customer left")
            name = st.text_input("Dataset name", value=slugify(upload.name),
                                 help="Letters, digits and hyphens (SageMaker's naming rule).")
            left, right = st.columns(2)
            test_size = left.slider("Test fraction", 0.05, 0.5, 0.3, 0.05,
                                    help="Share of customers held out to evaluate models.")
            seed = right.number_input("Split seed", 0, 2**31 - 1, 42, help="The same seed gives the same split.")
            submitted = st.form_submit_button("Validate and store", type="primary", **gate(p, "upload_dataset"))
            stored_slot = st.container()  # the outcome of the button, next to it
        try:
            table = p.validate_dataset(data, target)
        except ChurnError as exc:
            st.error(f"**{upload.name} cannot be used.** {exc}", icon=":material/block:")
            table = None
        if table is not None:
            st.success(
                f"**{upload.name}** is valid: {table.rows:,} customers, {len(table.features)} features, "
                f"churn rate {table.churn_rate:.1%} (positive label `{table.positive_label}`).",
                icon=":material/check_circle:",
            )
            for warning in table.warnings:
                st.warning(warning, icon=":material/warning:")
            set_aside = ", ".join(f"**{c}**" for c in table.dropped) or "none"
            st.caption(f"The first 20 rows as the file has them. The model learns whether **{table.target}** is "
                       f"`{table.positive_label}` from {len(table.features)} feature columns; set aside: {set_aside}.")
            st.dataframe(table.text_preview(20), width="stretch", hide_index=True)
            if submitted:
                with stored_slot:
                    ds = attempt(p.upload_dataset, name, data, target=target, test_size=test_size, seed=int(seed))
                    if ds:
                        st.session_state["data_selected"] = ds.name
                        st.session_state["data_stored_message"] = (
                            f"Stored **{ds.name}** from {upload.name}: {ds.n_train:,} train / {ds.n_test:,} test rows.")
                        st.session_state["uploads"] = st.session_state.get("uploads", 0) + 1
                        st.rerun()
        elif submitted:
            with stored_slot:
                st.error("Nothing was stored: the file cannot be used as it is (see the message below).",
                         icon=":material/block:")

st.divider()
st.subheader("Stored datasets")
datasets = p.list_datasets()
if not datasets:
    st.info("No datasets yet. Upload a file or load the sample above.")
    st.stop()

st.dataframe(
    pd.DataFrame(
        [
            {
                "name": d.name,
                "rows": d.rows,
                "churn rate": 100 * d.churn_rate,
                "features": len(d.features),
                "train / test": f"{d.n_train:,} / {d.n_test:,}",
                "source": d.source,
                "created": when(d.created_at),
                "sha256": d.sha256[:12],
            }
            for d in datasets
        ]
    ),
    width="stretch",
    hide_index=True,
    column_config={  # the same precision as the cards below
        "rows": st.column_config.NumberColumn(format="localized"),
        "churn rate": st.column_config.NumberColumn(format="%.1f%%"),
    },
)
names = [d.name for d in datasets]
selected = st.selectbox(
    "Explore",
    names,
    index=names.index(st.session_state.get("data_selected", names[0]))
    if st.session_state.get("data_selected") in names
    else 0,
)
ds = next(d for d in datasets if d.name == selected)
cols = st.columns(4)
cols[0].metric("Customers", f"{ds.rows:,}")
cols[1].metric("Churn rate", f"{ds.churn_rate:.1%}")
cols[2].metric("Train / test", f"{ds.n_train:,} / {ds.n_test:,}")
cols[3].metric("Features", len(ds.features))
for warning in ds.warnings:
    st.caption(f"⚠️ {warning}")

frame = attempt(p.read_dataset, ds.name, "train", typed=True)
if frame is not None and not {ds.target, *(f["name"] for f in ds.features)} <= set(frame.columns):
    st.error(
        f"The stored train file of {ds.name} no longer matches its schema (it was changed outside the "
        "dashboard). Delete the dataset and upload it again."
    )
elif frame is not None:
    feature_names = [f["name"] for f in ds.features]
    set_aside = list((ds.schema.get("dropped") or {}))
    tab_dist, tab_preview, tab_schema = st.tabs(["Distributions", "Preview", "Columns"])
    with tab_dist:
        feature = st.selectbox("Feature", feature_names, key=f"dist_{ds.name}")
        st.plotly_chart(distribution_figure(frame, feature, ds.target), width="stretch")
    with tab_preview:
        view = st.radio("Show", ["As uploaded", "As the model learns from it"], horizontal=True,
                        key=f"preview_view_{ds.name}", label_visibility="collapsed")
        if view == "As uploaded":
            raw = attempt(p.read_dataset, ds.name, "raw")
            if raw is not None:
                st.caption(f"The file as uploaded: the first 100 of {ds.rows:,} rows, every column.")
                st.dataframe(raw.head(100), width="stretch", hide_index=True)
        else:
            shown = frame[[ds.target, *feature_names]]
            st.caption(
                f"The train split ({ds.n_train:,} rows, first 100 shown) typed as training reads it: "
                f"**{ds.target}** as 1 (`{ds.positive_label}`) or 0, numbers as numbers, blanks empty. "
                + (f"Set aside (not learned from): {', '.join(set_aside)}." if set_aside else ""))
            st.dataframe(shown.head(100), width="stretch", hide_index=True)
    with tab_schema:
        st.dataframe(schema_rows(ds.features), width="stretch", hide_index=True,
                     height=35 * (len(ds.features) + 1) + 3)  # every column at once, no inner scrolling
        for column, reason in (ds.schema.get("dropped") or {}).items():
            st.caption(f"**{column}** is set aside: {reason}.")

if st.button(f"Delete dataset {ds.name}", key="delete_dataset", **gate(p, "delete_dataset")):
    st.session_state["confirm_delete_dataset"] = ds.name
if st.session_state.get("confirm_delete_dataset") == ds.name:
    st.warning(f"Delete **{ds.name}** and its raw, train and test files? Trained models keep working.")
    derived = st.checkbox("Also delete every copy of its customers: its models' transform files, the captures of "
                          "endpoints that served them, jobs' input copies (models and versions stay)",
                          key="delete_derived")
    yes, no = st.columns(2)
    if yes.button("Yes, delete", type="primary", key="confirm_delete_yes"):
        st.session_state.pop("confirm_delete_dataset")
        if ok(p.delete_dataset, ds.name, derived):
            st.session_state.pop("data_selected", None)
            st.rerun()
    if no.button("Cancel", key="confirm_delete_no"):
        st.session_state.pop("confirm_delete_dataset")
        st.rerun()
