"""Predict: score one customer with a form built from the model's schema, or a whole file in batches.

Every result on this page belongs to the inputs on screen (``app.results``): it is kept with a
fingerprint of the endpoint, the model and the form's values or the file's bytes, and disappears the
moment any of them changes or a new run fails.
"""

from __future__ import annotations

import streamlit as st

from app import results
from app.charts import reasons_figure, risk_histogram
from app.formatting import count_text
from app.navigation import page
from app.pickers import shared_selectbox
from app.service import attempt, gate, platform
from app.widgets import field_input
from churn_core.data.csv_export import to_download_csv
from churn_core.endpoints.forms import form_fields, record_from_form
from churn_core.decisions.reasons import baseline_sentence, reasons_frame
from churn_core.transform.rules import INTERACTIVE_MAX_ROWS

p = platform()
st.title("Predict")

live = [e for e in attempt(p.list_endpoints) or [] if e.status == "InService"]
if not live:
    st.info("No endpoint is in service. Deploy a model on the Endpoints page.")
    st.page_link(page("endpoints"), label="Go to Endpoints", icon=":material/cloud_upload:")
    st.stop()

endpoint = shared_selectbox("Endpoint", [e.name for e in live], "predict_endpoint", "selected_endpoint")
model = next(e.model for e in live if e.name == endpoint)
schema = attempt(p.model_schema, model)
if schema is None:
    st.stop()
serving = next(e for e in live if e.name == endpoint).variants
labels_at = {v["variant"]: v.get("labels_at", 0.5) for v in serving}  # each variant labels at its own threshold
threshold = max(serving, key=lambda v: v["weight"]).get("labels_at") if serving else p.model_threshold(model)
fields = form_fields(schema)


BANDS = {  # risk bands defined by the model's threshold (churn_core.decisions.campaign.risk_band)
    "high": (st.error, ":material/warning:", "**High risk.** Above this model's threshold: a retention offer "
                                             "is worth it."),
    "medium": (st.warning, ":material/visibility:", "**Medium risk.** Below the threshold but above half of it: "
                                                    "watch this customer."),
    "low": (st.success, ":material/check_circle:", "**Low risk.** Likely to stay."),
}


def show_customer_result(result: dict, notes: list[str]) -> None:
    prob = float(result["prediction"]["churn_probability"])
    left, right = st.columns([1, 2])
    left.metric("Churn probability", f"{prob:.1%}")
    show, icon, words = BANDS[result["band"]]
    with right:
        show(words, icon=icon)
        st.progress(prob, text=f"risk {prob:.1%} · high above {result['threshold']:.1%}, medium above "
                               f"{result['threshold'] / 2:.1%} (the threshold of the variant that answered)")
    if result.get("variant"):
        st.caption(f"Answered by production variant **{result['variant']}** of {endpoint}, labelled at its own "
                   f"threshold {result['threshold']:.3f}.")
    if notes:
        st.warning("**Read this score with care.** " + " ".join(f"{n}." for n in notes), icon=":material/info:")
    explained = result["reasons"]
    if not explained:
        st.caption(f"No reasons for this score: {result['reasons_note'] or 'the endpoint gave none'}.")
        return
    words, chart = st.columns([2, 3])
    words.markdown("**Why this score**")
    for item in reasons_frame(explained).itertuples():
        words.markdown(f"- {item.words}")
    words.caption(baseline_sentence(explained))
    chart.plotly_chart(reasons_figure(explained), width="stretch", key="customer_reasons")


single, batch = st.tabs(["One customer", "A file of customers"])
with single:
    st.caption(f"The fields, their ranges and their starting values come from the data **{model}** was trained "
               "on: each starts at the typical customer (the median number, the most common category).")
    values, slots = {}, {}
    for start in range(0, len(fields), 3):  # row by row: a note under one field moves only its own row
        for box, field in zip(st.columns(3), fields[start : start + 3], strict=False):
            slots[field.name] = box.container()
            values[field.name] = field_input(slots[field.name], field, key=f"f_{model}_{field.name}")
    record = record_from_form(fields, values)
    problems = {f.name: message for f in fields if (message := f.problem(values[f.name]))}
    # Notes for the other fields stay beside them while one field has a problem (it is checked at its typical value).
    checkable = {**record, **{f.name: f.default for f in fields if f.name in problems}}
    notes = {k: v for k, v in (attempt(p.field_warnings, model, checkable) or {}).items() if k not in problems}
    for name, message in problems.items():
        slots[name].caption(f":red[:material/block: {message}]")
    for name, note in notes.items():
        slots[name].caption(f":orange[:material/info: {note}.]")

    inputs = results.fingerprint(endpoint, model, record)
    had_result = results.held("customer")
    if st.button("Score customer", type="primary", key="score_customer", **gate(p, "score_customer")):
        if problems:
            results.forget("customer")
            st.error("Not scored: " + " ".join(problems.values()), icon=":material/block:")
        else:
            results.run("customer", inputs, attempt, p.score_customer, endpoint, record)
    answer = results.shown("customer", inputs)
    if answer:
        show_customer_result(answer, list(notes.values()))
    elif had_result and not problems:
        st.caption("The form changed since the last score: press *Score customer* to score these values.")

with batch:
    st.caption("Upload customers as CSV or Excel (.xlsx) with the model's feature columns; other columns such as "
               "an ID are kept in the result. Rows that cannot be scored are listed by their line in the file.")
    upload = st.file_uploader("Customers file", key="batch_upload",
                              help="CSV (any delimiter or encoding an upload may have) or an Excel workbook's "
                                   "first sheet.")
    data = upload.getvalue() if upload is not None else None
    inputs = results.fingerprint(data, endpoint, model) if data is not None else None
    kept = results.shown("batch", inputs)  # gone when the file, the endpoint or the model changed
    if upload is not None:
        frame = attempt(p.read_customers, data)
        if frame is not None:
            st.write(f"{len(frame):,} customers in **{upload.name}**.")
            if len(frame) > INTERACTIVE_MAX_ROWS:  # offered as a batch job; the Batch page picks the file up
                st.session_state["transform_handover"] = (upload.name, data)
                st.page_link(page("batch"), label="Too many to score here: score them as a batch job",
                             icon=":material/batch_prediction:")
            if st.button(f"Score {count_text(len(frame), 'customer')}", type="primary", key="batch_score"):
                bar = st.progress(0.0, text="Scoring…")

                def score_file():
                    scored = attempt(p.score_batch, endpoint, frame,
                                     progress=lambda f: bar.progress(f, text=f"Scoring… {f:.0%}"))
                    return (upload.name, scored) if scored else None

                kept = results.run("batch", inputs, score_file)
                bar.empty()
    if kept:
        file_name, result = kept
        scored_frame = result.scored
        cols = st.columns(4)
        cols[0].metric("Scored", f"{len(scored_frame):,} of {result.total:,}")
        cols[1].metric("Likely to churn", f"{int(scored_frame['predicted_churn'].sum()):,}",
                       help=f"Churn probability above this model's threshold, {threshold:.0%}.")
        cols[2].metric("Scored with notes", f"{result.flagged:,}",
                       help="Rows with a value the model had to guess: a blank it filled in, a number outside "
                            "the training range, or a category never seen in training. See the notes column.")
        cols[3].metric("Could not score", f"{len(result.errors):,}")
        if result.variants:
            st.caption("Answered by " + ", ".join(f"variant **{name}** ({rows:,} rows, threshold "
                                                  f"{labels_at.get(name, threshold):.3f})"
                                                  for name, rows in result.variants.items())
                       + ": each row is labelled at the threshold of the variant that answered it.")
        if result.reasons_note:
            st.info(f"Scored without reasons: {result.reasons_note}", icon=":material/info:")
        if result.errors:
            st.warning(f"{count_text(len(result.errors), 'row')} could not be scored:")
            st.dataframe(result.error_frame, hide_index=True, width="stretch")
        if len(scored_frame):
            ids = [c for c in schema.get("id_columns", []) if c in scored_frame.columns]
            first = ["line", *ids, "churn_probability", "risk", "top_reason", "predicted_churn", "warnings"]
            first = [c for c in first if c in scored_frame.columns]
            shown = scored_frame.assign(churn_probability=100 * scored_frame["churn_probability"])  # as the card
            if result.flagged and st.toggle(f"Only the {result.flagged:,} rows with notes", key="batch_only_notes"):
                shown = shown[shown["warnings"] != ""]
            st.dataframe(
                shown,
                hide_index=True,
                width="stretch",
                column_order=first + [c for c in scored_frame.columns if c not in first],
                column_config={
                    "churn_probability": st.column_config.ProgressColumn(
                        "churn probability", min_value=0.0, max_value=100.0, format="%.1f%%"
                    ),
                    "predicted_churn": st.column_config.CheckboxColumn(
                        "likely to churn", help=f"Churn probability above {threshold:.0%}"),
                    "risk": st.column_config.TextColumn(
                        "risk", help=f"high: above the threshold ({threshold:.0%}); medium: above half of it; "
                                     "low: the rest"),
                    "top_reason": st.column_config.TextColumn(
                        "top reason", width="large",
                        help="The column that pushes this customer's churn probability most, up or down"),
                    "warnings": st.column_config.TextColumn("notes", width="medium",
                                                            help="What the model had to guess for this row"),
                },
            )
            st.plotly_chart(risk_histogram(scored_frame["churn_probability"], threshold), width="stretch")
            st.download_button(
                "Download scored CSV",
                to_download_csv(scored_frame),
                f"scored-{file_name.rsplit('.', 1)[0]}.csv",
                "text/csv",
                type="primary",
            )
