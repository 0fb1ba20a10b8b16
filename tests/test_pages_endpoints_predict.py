"""Page tests (AppTest) for Endpoints and Predict on the local backend, with real endpoint processes."""

from __future__ import annotations

import io

import pandas as pd

from tests.support.pages import button, open_page, texts


def test_endpoints_page_deploy_snippet_and_delete_with_confirm(page_model):
    at = open_page("endpoints")
    assert at.text_input[0].value == "page-model-endpoint"
    at.text_input[0].set_value("page-ep")
    button(at, "Deploy").click().run()
    assert not at.exception, at.exception
    assert "Endpoint **page-ep** is in service" in texts(at, "success")
    ep = page_model.describe_endpoint("page-ep")
    table = at.dataframe[0].value
    assert list(table["name"]) == ["page-ep"] and ep.url in list(table["URL"])
    assert any("invoke_endpoint" in c.value and ep.url in c.value for c in at.code)
    button(at, "Delete page-ep").click().run()
    assert "Delete endpoint **page-ep**?" in texts(at, "markdown")
    button(at, "Cancel").click().run()
    assert page_model.describe_endpoint("page-ep").status == "InService"
    button(at, "Delete page-ep").click().run()
    button(at, "Delete").click().run()
    assert not at.exception, at.exception
    assert "endpoint page-ep, config page-ep-config, deployed-model record page-ep-model" in texts(at, "success")
    assert page_model.list_endpoints() == []


def test_endpoints_page_cleanup_lists_what_it_removes(page_model):
    for name in ("ep-one", "ep-two"):
        page_model.deploy("page-model", name)
    at = open_page("endpoints")
    button(at, "Clean up all endpoints").click().run()
    listing = texts(at, "markdown")
    assert "**ep-one** (config `ep-one-config`, from trained model `page-model`)" in listing and "**ep-two**" in listing
    button(at, "Delete").click().run()
    assert "Removed:" in texts(at, "success")
    assert page_model.list_endpoints() == []


def test_endpoints_page_rejects_a_bad_name(page_model):
    at = open_page("endpoints")
    at.text_input[0].set_value("bad name!")
    button(at, "Deploy").click().run()
    assert "naming rule" in texts(at, "error")
    assert page_model.list_endpoints() == []


def test_predict_page_single_customer_form_from_schema(page_model):
    page_model.deploy("page-model", "predict-ep")
    at = open_page("predict")
    labels = [n.label for n in at.number_input] + [s.label for s in at.selectbox if s.key != "predict_endpoint"]
    assert sorted(labels) == sorted(f["name"] for f in page_model.model_schema("page-model")["features"])
    weeks = at.number_input(key="f_page-model_AccountWeeks")
    schema = {f["name"]: f for f in page_model.model_schema("page-model")["features"]}
    low, high = schema["AccountWeeks"]["min"], schema["AccountWeeks"]["max"]
    assert f"Training range {low:g} – {high:g}" in weeks.help  # out-of-range values are scored, then flagged
    assert weeks.value == round(schema["AccountWeeks"]["median"])  # the typical customer, not the first option
    at.number_input(key="f_page-model_CustServCalls").set_value(7)
    at.selectbox(key="f_page-model_ContractRenewal").set_value(0)
    button(at, "Score customer").click().run()
    assert not at.exception, at.exception
    metric = next(m for m in at.metric if m.label == "Churn probability")
    assert metric.value.endswith("%")
    probability = float(metric.value.rstrip("%")) / 100
    band = "High" if probability > 0.5 else "Medium" if probability > 0.25 else "Low"  # the default threshold
    shown = " ".join(texts(at, kind) for kind in ("error", "warning", "success"))
    assert f"{band} risk." in shown, (probability, shown)
    reasons = [m.value for m in at.markdown if m.value.startswith("- ")]
    features = {f["name"] for f in page_model.model_schema("page-model")["features"]}
    assert len(reasons) in (5, 6)  # the top five pushes, then the other columns together (unless they sum to 0)
    assert all(r[2:].split(" = ")[0] in features and " the churn risk (" in r for r in reasons[:5])
    assert "Averaged over the customers it was trained on" in texts(at, "caption") and "exact" in texts(at, "caption")


def test_predict_page_batch_scores_reports_bad_rows_and_downloads(page_model, sample_csv):
    page_model.deploy("page-model", "batch-ep")
    frame = pd.read_csv(io.BytesIO(sample_csv)).drop(columns=["Churn"]).head(300)
    frame.insert(0, "customer", [f"c{i}" for i in range(len(frame))])
    frame = frame.astype(object)
    frame.loc[4, "DayMins"] = "lots"
    frame.loc[9, "RoamMins"] = ""
    at = open_page("predict")
    at.get("file_uploader")[0].set_value(("customers.csv", frame.to_csv(index=False).encode(), "text/csv")).run()
    button(at, "Score 300 customers").click().run()
    assert not at.exception, at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Scored"] == "298 of 300" and metrics["Could not score"] == "2"
    problems = at.dataframe[0].value
    assert list(problems["line"]) == [6, 11]
    assert "DayMins" in problems["problem"].iloc[0] and "RoamMins" in problems["problem"].iloc[1]
    scored = at.dataframe[1].value
    assert scored["churn_probability"].is_monotonic_decreasing and "customer" in scored.columns
    assert at.get("download_button"), "download offered"


def test_predict_page_without_endpoints_points_to_endpoints(home):
    at = open_page("predict")
    assert "No endpoint is in service" in texts(at, "info")


def test_the_deploy_section_stays_open_after_the_first_deploy(page_model):
    at = open_page("endpoints")
    deploy_section = next(e for e in at.expander if e.label == "Deploy a model")
    assert deploy_section.proto.expanded  # no endpoint yet: open
    button(at, "Deploy").click().run()
    assert "is in service" in texts(at, "success")
    at.run()  # the next run (any click) used to close it, hiding the outcome and the form being used
    assert next(e for e in at.expander if e.label == "Deploy a model").proto.expanded
