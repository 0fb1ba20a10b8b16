"""Issue 13 in AppTest: every number on screen belongs to what is on screen, with an analyst's own data
(the subscription file: an ID column, Yes/No categories, blanks, a Yes/No target) on a live endpoint.

One test per finding where AppTest suffices; the browser test ``tests/e2e/test_browser_own_data.py``
covers what only a browser shows (a refused number input, fragments refreshing, files the browser
would refuse)."""

from __future__ import annotations

import ast
import io
import json
import os
import re
import shutil
import subprocess
import sys

import pandas as pd
import pytest

from tests.support.helpers import wait_for_job
from tests.support.own_data import DATASET, ENDPOINT, MODEL, workbook
from tests.support.pages import button, open_page, texts

pytestmark = pytest.mark.timeout(300)


def metrics(at) -> dict:
    return {m.label: m.value for m in at.metric}


def field(at, name: str):
    key = f"f_{MODEL}_{name}"
    return next(w for w in [*at.number_input, *at.selectbox] if w.key == key)


def csv_bytes(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode()


# ---- 1. Predict, batch: results tied to the file and endpoint that produced them -----------------------


def test_batch_results_disappear_when_the_file_or_the_endpoint_changes_or_a_run_fails(own_model):
    p = own_model.platform
    first, second = own_model.customers(30), own_model.customers(20, start=100)
    lacking = own_model.customers(20, start=200).drop(columns=["TechSupport"])
    p.deploy(MODEL, "sub-ep-other")
    try:
        at = open_page("predict")
        at.selectbox(key="predict_endpoint").set_value(ENDPOINT).run()
        at.get("file_uploader")[0].set_value(("first.csv", csv_bytes(first), "text/csv")).run()
        button(at, "Score 30 customers").click().run()
        assert metrics(at)["Scored"] == "30 of 30" and at.get("download_button")

        at.get("file_uploader")[0].set_value(("second.csv", csv_bytes(second), "text/csv")).run()
        assert "Scored" not in metrics(at) and not at.get("download_button")  # nothing of first.csv is left
        button(at, "Score 20 customers").click().run()
        assert metrics(at)["Scored"] == "20 of 20"

        at.selectbox(key="predict_endpoint").set_value("sub-ep-other").run()
        assert "Scored" not in metrics(at) and not at.get("download_button")  # another endpoint: not its result
        at.selectbox(key="predict_endpoint").set_value(ENDPOINT).run()
        assert "Scored" not in metrics(at)  # and coming back does not bring an old result back
        button(at, "Score 20 customers").click().run()
        assert metrics(at)["Scored"] == "20 of 20"

        at.get("file_uploader")[0].set_value(("lacking.csv", csv_bytes(lacking), "text/csv")).run()
        button(at, "Score 20 customers").click().run()
        assert "lacks the model's feature column TechSupport" in texts(at, "error")
        assert "Scored" not in metrics(at) and not at.get("download_button") and not at.dataframe
    finally:
        p.delete_endpoint("sub-ep-other")


# ---- 2. Predict, one customer: a result only for the values in the form -------------------------------


def test_a_customer_result_belongs_to_the_values_in_the_form(own_model):
    at = open_page("predict")
    button(at, "Score customer").click().run()
    assert "Churn probability" in metrics(at)

    field(at, "tenure").set_value(100).run()
    assert "Churn probability" not in metrics(at)  # the old score is not shown under new values
    assert "The form changed since the last score" in texts(at, "caption")
    assert "tenure = 100 is outside the training range 0 to 72" in texts(at, "caption")  # beside the field

    button(at, "Score customer").click().run()
    assert "Churn probability" in metrics(at)
    assert "tenure = 100 is outside the training range" in texts(at, "warning")  # and under the result

    field(at, "MonthlyCharges").set_value(None).run()  # emptied, where training had no blanks
    assert "Enter a number: MonthlyCharges had no blanks in training" in texts(at, "caption")  # beside it
    button(at, "Score customer").click().run()
    assert "Not scored" in texts(at, "error") and "Churn probability" not in metrics(at)


# ---- 3. Endpoints: the snippet shown, executed, answers -------------------------------------------------


def test_the_python_snippet_shown_runs_against_the_endpoint_for_this_model(own_model, tmp_path):
    at = open_page("endpoints")
    assert at.selectbox(key="endpoint_picker").value == ENDPOINT
    python = next(c.value for c in at.code if "invoke_endpoint" in c.value)
    for name in ("tenure", "Contract", "TotalCharges"):  # this model's features, not the reference sample's
        assert f'"{name}"' in python
    script = tmp_path / "snippet.py"
    script.write_text(python)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, env=env)
    assert run.returncode == 0, run.stderr  # boto3 raises on any answer but 2xx
    by_position, by_name = (ast.literal_eval(line) for line in run.stdout.strip().splitlines())
    assert by_position["Output"] in (0, 1) and 0 <= by_position["Probability"] <= 1
    assert by_name["predictions"][0]["label"] == by_position["Output"]

    curl = next(c.value for c in at.code if c.value.startswith("curl"))
    if shutil.which("curl"):
        answer = subprocess.run(["bash", "-c", curl], capture_output=True, text=True, timeout=60, env=env)
        assert json.loads(answer.stdout)["predictions"][0]["label"] == by_position["Output"]


# ---- 4. Errors nobody sees: every refusal is said next to its button ------------------------------------


def test_an_out_of_range_setting_is_refused_with_a_message_next_to_the_button(own_model):
    p = own_model.platform
    jobs_before = p.count_training_jobs()
    at = open_page("train")
    trees = at.number_input(key="hp_random_forest_n_estimators")
    assert trees.min is None and trees.max is None  # the browser would refuse silently; the platform says why
    trees.set_value(-5)  # inside the form: sent with the submit
    button(at, "Launch training").click().run()
    assert "Number of trees (n_estimators) must be between 1 and 2000 (got -5)" in texts(at, "error")
    assert p.count_training_jobs() == jobs_before


def test_an_excel_workbook_is_taken_and_any_file_reaches_the_validation(own_model):
    frame = pd.read_csv(io.BytesIO(own_model.csv), dtype=str, keep_default_na=False).head(300)
    at = open_page("data")
    uploader = at.get("file_uploader")[0]
    assert list(uploader.proto.type) == []  # no type the browser refuses with its own jargon
    uploader.set_value(("customers.xlsx", workbook(frame), "application/vnd.ms-excel")).run()
    assert "customers.xlsx** is valid: 300 customers" in texts(at, "success")
    assert "Read the Excel workbook's first sheet" in texts(at, "warning")
    next(t for t in at.text_input if t.label == "Dataset name").set_value("from-excel")
    button(at, "Validate and store").click().run()
    assert not at.exception, at.exception
    assert "Stored **from-excel**" in texts(at, "success")
    own_model.platform.delete_dataset("from-excel")


# ---- 5. Guesses made while scoring are said --------------------------------------------------------------


def test_the_form_starts_at_the_typical_customer_and_unknown_is_explicit(own_model):
    at = open_page("predict")
    for feat in own_model.schema["features"]:
        widget = field(at, feat["name"])
        if feat["kind"] == "categorical":
            assert widget.value == feat["mode"], feat["name"]
            assert ("(unknown)" in widget.options) == bool(feat["missing"])
        else:
            assert widget.value == pytest.approx(round(feat["median"], feat["decimals"])), feat["name"]
    total = field(at, "TotalCharges")
    assert "Leave it empty if not known" in total.help  # training had blanks in TotalCharges
    total.set_value(None).run()
    assert not texts(at, "error")
    button(at, "Score customer").click().run()
    assert "Churn probability" in metrics(at)
    assert "TotalCharges is missing: the training median" in texts(at, "warning")


def test_a_batch_flags_unseen_categories_outliers_and_blanks_per_row(own_model):
    frame = own_model.customers(30, start=300)
    frame.loc[0, "Contract"] = "Three year"
    frame.loc[1, "tenure"] = "100"
    frame.loc[2, "TotalCharges"] = ""
    at = open_page("predict")
    at.get("file_uploader")[0].set_value(("flagged.csv", csv_bytes(frame), "text/csv")).run()
    button(at, "Score 30 customers").click().run()
    assert metrics(at)["Scored"] == "30 of 30" and int(metrics(at)["Scored with notes"]) >= 3
    scored = at.dataframe[0].value.set_index("customerID")
    assert "Contract = 'Three year' was never seen in training" in scored.loc[frame.loc[0, "customerID"], "warnings"]
    assert "tenure = 100 is outside the training range" in scored.loc[frame.loc[1, "customerID"], "warnings"]
    assert "TotalCharges is missing" in scored.loc[frame.loc[2, "customerID"], "warnings"]
    at.toggle(key="batch_only_notes").set_value(True).run()  # the flagged rows, together
    flagged = at.dataframe[0].value
    assert len(flagged) == int(metrics(at)["Scored with notes"]) and (flagged["warnings"] != "").all()


def test_numbers_are_shown_at_the_datas_precision(own_model):
    at = open_page("data")
    columns = next(d.value for d in at.dataframe if "typical" in d.value.columns).set_index("column")
    profile = {f["name"]: f for f in own_model.platform.get_dataset(DATASET).features}  # the whole file's
    assert columns.loc["MonthlyCharges", "typical"] == f"median {profile['MonthlyCharges']['median']:.2f}"
    assert re.fullmatch(r"median \d+", columns.loc["tenure", "typical"])
    assert columns.loc["Contract", "typical"].startswith("most common: ")
    for cell in columns.astype(str).to_numpy().ravel():
        assert "None" not in cell and not re.search(r"\.\d{3,}", cell), cell


# ---- 6. Jobs --------------------------------------------------------------------------------------------


@pytest.fixture
def second_job(own_model):
    p = own_model.platform
    if "sub-lr" not in p.job_names(limit=1000):
        p.start_training(DATASET, {"algorithm": "logistic_regression"}, name="sub-lr")
        assert wait_for_job(p, "sub-lr").status == "Completed"
    return p


def test_compare_speaks_plain_words_marks_the_best_and_shows_settings(second_job):
    at = open_page("jobs")
    at.multiselect(key="compare_jobs").set_value([MODEL, "sub-lr"]).run()
    table = at.dataframe[-1].value  # one column per job, side by side
    assert list(table.columns) == [MODEL, "sub-lr"]
    assert {"ROC AUC", "Log loss", "F1"} <= set(table.index) and "roc_auc" not in table.index
    assert all(re.fullmatch(r"\d\.\d{3}", v) for v in table.loc["ROC AUC"])  # as the cards show them
    best = max([MODEL, "sub-lr"], key=lambda n: second_job.describe_training(n).metrics["roc_auc"])
    assert table.loc["Best", best] == "★ best" and (table.loc["Best"] == "★ best").sum() == 1
    assert table.loc["Number of trees", MODEL] == "20" and table.loc["Flexibility", "sub-lr"] == "1"
    assert table.loc["Flexibility", MODEL] == "—"  # not a setting of a random forest
    spec = json.loads(next(c.proto.spec for c in at.get("plotly_chart") if "sub-lr" in c.proto.spec))
    legend = spec["layout"]["legend"]
    assert legend["orientation"] == "v" and legend["x"] >= 1  # beside the plot, never over an axis title


def test_a_running_job_shows_no_none_and_one_duration(second_job):
    p = second_job
    p.start_training(DATASET, {"algorithm": "gradient_boosting", "n_estimators": 2000, "learning_rate": 0.01,
                               "max_depth": 6}, name="sub-long")
    try:
        at = open_page("jobs")
        at.selectbox(key="job_picker").set_value("sub-long").run()
        row = at.dataframe[0].value.set_index("name").loc["sub-long"]
        assert row["status"].startswith("Running") and "InProgress" not in row["status"]
        assert row["ROC AUC"] == "—" and row["F1"] == "—" and row["duration"] == "running"
        assert "still running" in texts(at, "markdown")
    finally:
        p.stop_training("sub-long")
        wait_for_job(p, "sub-long")


# ---- 7. Endpoints -----------------------------------------------------------------------------------------


def test_endpoints_table_detail_and_delete_dialog(own_model):
    p = own_model.platform
    at = open_page("endpoints")
    columns = list(at.dataframe[0].value.columns)
    assert columns[:5] == ["name", "status", "invocations", "latency ms", "est. cost (USD)"] and columns[-1] == "URL"
    try:
        for name in ("sub-ep-b", "sub-ep-c"):
            next(t for t in at.text_input if t.label == "Endpoint name").set_value(name)
            button(at, "Deploy").click().run()
            assert not at.exception, at.exception
            assert at.selectbox(key="endpoint_picker").value == name  # the detail follows the new deploy
            assert f"**{name}**" in texts(at, "markdown")
        button(at, "Delete sub-ep-c").click().run()
        words = texts(at, "markdown")
        assert "Delete endpoint **sub-ep-c**?" in words
        assert "**Removed:** the endpoint, its endpoint config and its deployed-model record" in words
        trained = p.describe_endpoint("sub-ep-c").model
        assert f"**Kept:** the trained model **{trained}**" in words and "its model" not in words
        button(at, "Cancel").click().run()
    finally:
        for name in ("sub-ep-b", "sub-ep-c"):
            if name in p.endpoint_names():
                p.delete_endpoint(name)


# ---- 8. Data ----------------------------------------------------------------------------------------------


def test_the_upload_preview_uses_the_full_width_and_says_what_it_shows(own_model):
    at = open_page("data")
    at.get("file_uploader")[0].set_value(("subscription.csv", own_model.csv, "text/csv")).run()
    assert at.dataframe, "a preview is shown"
    assert all(not column.dataframe for column in at.columns)  # not squeezed into the upload column
    preview = next(d.value for d in at.dataframe if "customerID" in d.value.columns)
    assert len(preview.columns) == 21
    assert "set aside: **customerID**" in texts(at, "caption")


def test_the_stored_preview_says_raw_or_typed(own_model):
    at = open_page("data")
    next(s for s in at.selectbox if s.label == "Explore").set_value(DATASET).run()
    raw = next(d.value for d in at.dataframe if "customerID" in d.value.columns)
    assert set(raw["Churn"]) == {"Yes", "No"}
    assert "The file as uploaded" in texts(at, "caption")
    at.radio(key=f"preview_view_{DATASET}").set_value("As the model learns from it").run()
    typed = next(d.value for d in at.dataframe if "Churn" in d.value.columns and len(d.value) == 100)
    assert set(typed["Churn"]) == {0, 1} and "customerID" not in typed.columns
    assert "as 1 (`Yes`) or 0" in texts(at, "caption") and "Set aside (not learned from): customerID" in texts(
        at, "caption")


def test_a_renamed_workbook_offers_its_real_columns(own_model):
    frame = pd.read_csv(io.BytesIO(own_model.csv), dtype=str, keep_default_na=False).head(100)
    at = open_page("data")
    at.get("file_uploader")[0].set_value(("really-excel.csv", workbook(frame), "text/csv")).run()
    target = next(s for s in at.selectbox if s.label.startswith("Target"))
    assert list(target.options) == list(frame.columns)  # no "PK\x03\x04…" garbage


@pytest.mark.parametrize("content, message", [
    (bytes(range(256)) * 40, "looks binary"),
    (b"Dear team,\n\nThank you for the data. We looked at the churn numbers, and they are worrying.\n"
     b"Please send the full file when you can, including the contract types.\n\nBest regards,\nAnna\n",
     "not a table"),
])
def test_a_file_that_is_not_a_table_gets_a_message_and_no_form(own_model, content, message):
    at = open_page("data")
    at.get("file_uploader")[0].set_value(("upload.csv", content, "text/csv")).run()
    assert message in texts(at, "error")
    assert not [b for b in at.button if b.label == "Validate and store"]
    assert not [s for s in at.selectbox if s.label.startswith("Target")]


# ---- 9. Words ---------------------------------------------------------------------------------------------

CODE_WORDS = re.compile(r"InProgress|InService|entry/train\.py|the seed's|\bseed tutorial\b")


def shown_text(at) -> str:
    parts = [texts(at, kind) for kind in ("markdown", "caption", "success", "info", "warning", "error", "subheader")]
    parts += [w.label for w in [*at.number_input, *at.selectbox, *at.text_input, *at.button]]
    parts += [str(d.value.to_dict()) for d in at.dataframe]
    return " ".join(parts)


def test_pages_speak_the_products_language(second_job):
    at = open_page("train")
    labels = [w.label for w in at.number_input]
    assert "Number of trees" in labels and "n_estimators" not in labels
    assert "`n_estimators`" in at.number_input(key="hp_random_forest_n_estimators").help
    for page_name in ("data", "train", "jobs", "endpoints", "predict"):
        at = open_page(page_name)
        assert not CODE_WORDS.search(shown_text(at)), (page_name, CODE_WORDS.findall(shown_text(at)))
    at = open_page("jobs")
    settings = next(d.value for d in at.dataframe if "technical name" in d.value.columns)
    assert "n_estimators" in set(settings["technical name"]) or "C" in set(settings["technical name"])
