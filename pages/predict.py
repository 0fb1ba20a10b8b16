"""Predict: score one customer with a form built from the model's schema, or a whole CSV in batches."""

from __future__ import annotations

import streamlit as st

from app.navigation import page
from app.service import attempt, platform
from app.widgets import field_input, risk_histogram
from churn_core.forms import form_fields, record_from_form
from churn_core.transforms import INTERACTIVE_MAX_ROWS

p = platform()
st.title("Predict")

live = [e for e in attempt(p.list_endpoints) or [] if e.status == "InService"]
if not live:
    st.info("No endpoint is InService. Deploy a model on the Endpoints page.")
    st.page_link(page("endpoints"), label="Go to Endpoints", icon=":material/cloud_upload:")
    st.stop()

names = [e.name for e in live]
wanted = st.session_state.get("selected_endpoint")
endpoint = st.selectbox("Endpoint", names, index=names.index(wanted) if wanted in names else 0, key="predict_endpoint")
model = next(e.model for e in live if e.name == endpoint)
schema = attempt(p.model_schema, model)
if schema is None:
    st.stop()
fields = form_fields(schema)

single, batch = st.tabs(["One customer", "Batch (CSV)"])
with single:
    st.caption(f"Fields and ranges come from the data model **{model}** was trained on.")
    with st.form("single_customer"):
        values = {}
        columns = st.columns(3)
        for i, field in enumerate(fields):
            values[field.name] = field_input(columns[i % 3], field, key=f"f_{model}_{field.name}")
        scored = st.form_submit_button("Score customer", type="primary")
    if scored:
        answer = attempt(p.invoke, endpoint, {"instances": [record_from_form(fields, values)]})
        if answer:
            pred = answer["predictions"][0]
            prob = float(pred["churn_probability"])
            left, right = st.columns([1, 2])
            left.metric("Churn probability", f"{prob:.1%}")
            if pred["label"] == 1:
                right.error("**Likely to churn.** Consider a retention offer.", icon=":material/warning:")
            else:
                right.success("**Likely to stay.**", icon=":material/check_circle:")
            right.progress(prob, text=f"risk {prob:.1%}")

with batch:
    st.caption("Upload customers with the model's feature columns (extra columns such as an ID are kept in the "
               "result). Rows that cannot be scored are listed by their line in the file.")
    upload = st.file_uploader("Customers CSV", type=["csv", "txt"], key="batch_upload")
    if upload is not None:
        frame = attempt(p.read_customers, upload.getvalue())
        if frame is not None:
            st.write(f"{len(frame):,} customers in **{upload.name}**.")
            if len(frame) > INTERACTIVE_MAX_ROWS:  # offered as a batch job; the Batch page picks the file up
                st.session_state["transform_handover"] = (upload.name, upload.getvalue())
                st.page_link(page("batch"), label="Too many to score here: score them as a batch job",
                             icon=":material/batch_prediction:")
            if st.button(f"Score {len(frame):,} customers", type="primary", key="batch_score"):
                bar = st.progress(0.0, text="Scoring…")
                result = attempt(p.score_batch, endpoint, frame,
                                 progress=lambda f: bar.progress(f, text=f"Scoring… {f:.0%}"))
                bar.empty()
                if result:
                    st.session_state["batch_result"] = (upload.name, result)
    if "batch_result" in st.session_state:
        file_name, result = st.session_state["batch_result"]
        scored_frame = result.scored
        cols = st.columns(3)
        cols[0].metric("Scored", f"{len(scored_frame):,} of {result.total:,}")
        cols[1].metric(
            "Predicted to churn", f"{int(scored_frame['predicted_churn'].sum()):,}" if len(scored_frame) else "0"
        )
        cols[2].metric("Could not score", f"{len(result.errors):,}")
        if result.errors:
            st.warning(f"{len(result.errors)} row(s) could not be scored:")
            st.dataframe(result.error_frame, hide_index=True, width="stretch")
        if len(scored_frame):
            first = ["line", "churn_probability", "predicted_churn"]
            st.dataframe(
                scored_frame,
                hide_index=True,
                width="stretch",
                column_order=first + [c for c in scored_frame.columns if c not in first],
                column_config={
                    "churn_probability": st.column_config.ProgressColumn(
                        "churn probability", min_value=0.0, max_value=1.0, format="percent"
                    ),
                },
            )
            st.plotly_chart(risk_histogram(scored_frame["churn_probability"]), width="stretch")
            st.download_button(
                "Download scored CSV",
                scored_frame.to_csv(index=False).encode(),
                f"scored-{file_name.rsplit('.', 1)[0]}.csv",
                "text/csv",
                type="primary",
            )
