"""Page tests (AppTest) for Data, Train and Jobs on the local backend."""

from __future__ import annotations


import pytest
from streamlit.testing.v1 import AppTest

import churn_core
from tests.support.helpers import wait_for_job
from tests.support.pages import MAIN, button, open_page, texts


def test_data_page_rejects_a_bad_file_and_stores_nothing(home):
    at = open_page("data")
    at.get("file_uploader")[0].set_value(("broken.csv", b"\x00\x01\x02binary\xff\xfe", "text/csv")).run()
    assert "broken.csv cannot be used" in texts(at, "error")
    assert churn_core.connect().list_datasets() == []


def test_data_page_upload_validate_store_and_list(home, sample_csv):
    at = open_page("data")
    at.get("file_uploader")[0].set_value(("my churn.csv", sample_csv, "text/csv")).run()
    assert "is valid" in texts(at, "success")
    assert at.selectbox[0].value == "Churn"
    submit = next(b for b in at.button if b.label == "Validate and store")
    submit.click().run()
    assert not at.exception, at.exception
    assert "Stored **my-churn**" in texts(at, "success")
    assert [d.name for d in churn_core.connect().list_datasets()] == ["my-churn"]
    assert at.get("plotly_chart"), "distribution chart drawn"


def test_data_page_sample_load_is_labelled_synthetic(home):
    at = open_page("data")
    assert "synthetic" in texts(at, "alert").lower() or "synthetic" in str(at.get("info")[0].value).lower()
    button(at, "Load sample data").click().run()
    assert "Stored synthetic dataset **sample-telecom**" in texts(at, "success")
    listed = at.dataframe[0].value
    assert list(listed["name"]) == ["sample-telecom"]


def test_data_page_delete_needs_confirmation(home, sample_csv):
    churn_core.connect().upload_dataset("to-delete", sample_csv)
    at = open_page("data")
    button(at, "Delete dataset to-delete").click().run()
    assert "Delete **to-delete**" in texts(at, "warning")
    button(at, "Yes, delete").click().run()
    assert churn_core.connect().list_datasets() == []


def test_train_page_launches_a_job(home, sample_csv):
    churn_core.connect().upload_dataset("sample", sample_csv)
    at = open_page("train")
    at.number_input(key="hp_random_forest_n_estimators").set_value(12)
    at.text_input[0].set_value("page-job")
    button(at, "Launch training").click().run()
    assert not at.exception, at.exception
    assert "Job **page-job**" in texts(at, "success")
    watch = next(e.proto for e in at.get("page_link") if e.proto.label == "Watch page-job")
    assert watch.page.endswith("jobs") and watch.query_string == "job=page-job"
    p = churn_core.connect()
    job = wait_for_job(p, "page-job")
    assert job.status == "Completed" and job.hyperparameters["n_estimators"] == 12


def test_train_page_without_data_points_to_the_data_page(home):
    at = open_page("train")
    assert "No dataset yet" in texts(at, "info")


@pytest.fixture
def two_jobs(home, sample_csv):
    p = churn_core.connect()
    p.upload_dataset("sample", sample_csv)
    p.start_training("sample", {"n_estimators": 10}, name="job-rf")
    p.start_training("sample", {"algorithm": "logistic_regression"}, name="job-lr")
    for name in ("job-rf", "job-lr"):
        wait_for_job(p, name)
    return p


def test_jobs_page_table_detail_charts_and_compare(two_jobs):
    at = open_page("jobs")
    table = at.dataframe[0].value
    assert set(table["name"]) == {"job-rf", "job-lr"}
    assert all("Completed" in s for s in table["status"])
    at.selectbox(key="job_picker").set_value("job-rf").run()
    assert not at.exception, at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert float(metrics["ROC AUC"]) > 0.7
    assert "**Random forest** on dataset **sample**" in texts(at, "markdown")
    titles = [c.proto.spec for c in at.get("plotly_chart")]
    assert any("ROC curve" in t for t in titles) and any("Confusion matrix" in t for t in titles)
    assert any("Calibration on the test split: Brier" in t for t in titles)  # issue 24: honest probabilities
    assert "expected calibration error" in texts(at, "caption")
    at.multiselect(key="compare_jobs").set_value(["job-rf", "job-lr"]).run()
    titles = [c.proto.spec for c in at.get("plotly_chart")]
    compare = at.dataframe[-1].value
    assert set(compare.columns) == {"job-rf", "job-lr"} and "ROC AUC" in compare.index
    assert sum("job-lr" in t and "job-rf" in t for t in titles) >= 1  # overlaid ROC


def test_jobs_page_shows_failure_reason_prominently(home, sample_csv):
    p = churn_core.connect()
    ds = p.upload_dataset("sample", sample_csv)
    p.store.put_bytes(ds.train_key, b"a,b\n1,2\n")
    p.start_training("sample", {"n_estimators": 5}, name="bad-job")
    wait_for_job(p, "bad-job")
    at = open_page("jobs")
    assert "Failed:" in texts(at, "error") and "Churn" in texts(at, "error")
    assert "ERROR" in texts(at, "code")


def test_jobs_page_stop_button(home, sample_csv):
    p = churn_core.connect()
    p.upload_dataset("sample", sample_csv)
    p.start_training("sample", {"algorithm": "gradient_boosting", "n_estimators": 2000, "learning_rate": 0.01,
                                "max_depth": 6}, name="long-job")
    at = open_page("jobs")
    button(at, "Stop job").click().run()
    assert p.describe_training("long-job").status == "Stopped"


def test_deploy_this_model_hands_off_to_endpoints(two_jobs):
    at = open_page("jobs")
    at.selectbox(key="job_picker").set_value("job-rf").run()
    link = next(e.proto for e in at.get("page_link") if e.proto.label == "Deploy this model")
    assert link.page.endswith("endpoints") and link.query_string == "model=job-rf"
    # Following the link: the browser opens the Endpoints page with ?model=job-rf.
    at.query_params["model"] = "job-rf"
    at.switch_page("../pages/endpoints.py").run()
    assert not at.exception, at.exception
    assert at.selectbox(key="deploy_model_picker").value == "job-rf"
    assert at.text_input[0].value == "job-rf-endpoint"
    at.selectbox(key="deploy_model_picker").set_value("job-lr").run()  # the user's choice then sticks
    assert at.selectbox(key="deploy_model_picker").value == "job-lr"


def test_a_link_to_a_job_opens_it(two_jobs):
    at = AppTest.from_file(MAIN, default_timeout=60)
    at.query_params["job"] = "job-rf"  # job-lr is newer: without the link it would be shown first
    at.run()
    at.switch_page("../pages/jobs.py").run()
    assert not at.exception, at.exception
    assert at.selectbox(key="job_picker").value == "job-rf"
    at.selectbox(key="job_picker").set_value("job-lr").run()  # the user's choice then sticks
    assert at.selectbox(key="job_picker").value == "job-lr"


def test_a_link_to_a_model_that_does_not_exist_says_so(two_jobs):
    at = AppTest.from_file(MAIN, default_timeout=60)
    at.query_params["model"] = "no-such-job"
    at.run()
    at.switch_page("../pages/endpoints.py").run()
    assert not at.exception, at.exception
    assert "no trained model named 'no-such-job'" in texts(at, "warning")
