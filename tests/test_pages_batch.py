"""The Batch page (AppTest) on the local backend: start a transform job from a file or a stored dataset, see it
finish, its results sorted by risk with their downloads, its failure when the columns do not fit; and the
Predict page's offer of a batch job for a file too big to score there."""

from __future__ import annotations

import io

import pandas as pd

from tests.support.helpers import wait_until
from tests.support.pages import button, open_page, texts
from tests.support.transforms import customers


def finished(p, name: str):
    return wait_until(lambda: (j := p.describe_transform(name)).status not in ("InProgress", "Stopping") and j, 90)


def test_batch_page_without_a_model_points_to_train(home):
    at = open_page("batch")
    assert "No trained model yet" in texts(at, "info")


def test_batch_page_scores_an_uploaded_file_and_shows_results_by_risk(subs_rf):
    data = customers(500, seed=5)
    at = open_page("batch")
    at.get("file_uploader")[0].set_value(("customers.csv", data, "text/csv")).run()
    assert not at.exception, at.exception
    button(at, "Start transform job").click().run()
    assert not at.exception, at.exception
    (job,) = subs_rf.list_transforms()
    assert job.input_label == "customers.csv" and f"Transform job **{job.name}**" in texts(at, "success")
    assert finished(subs_rf, job.name).status == "Completed"
    at.run()
    assert not at.exception, at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Lines"] == "500" and metrics["Scored"] == "500" and metrics["Could not score"] == "0"
    riskiest = at.dataframe[0].value
    assert riskiest["churn_probability"].is_monotonic_decreasing and "customerID" in riskiest.columns
    assert at.get("plotly_chart"), "the risk distribution"
    labels = [b.proto.label for b in at.get("download_button")]
    assert "Download results CSV" in labels
    past = at.dataframe[-1].value
    assert list(past["name"]) == [job.name] and list(past["status"]) == ["Completed"]


def test_batch_page_scores_a_stored_dataset_part_and_lists_bad_lines(subs_rf):
    at = open_page("batch")
    at.radio(key="batch_source").set_value("A stored dataset").run()
    at.selectbox(key="batch_part").set_value("test").run()
    button(at, "Start transform job").click().run()
    assert not at.exception, at.exception
    (job,) = subs_rf.list_transforms()
    done = finished(subs_rf, job.name)
    assert done.status == "Completed" and done.rows_scored == subs_rf.get_dataset("subs").n_test
    assert done.input_label == "subs (test)"
    at.run()
    assert "Churn" in at.dataframe[0].value.columns  # the target is not a feature: kept, next to the prediction


def test_batch_page_shows_why_a_file_cannot_be_scored(subs_rf):
    frame = pd.read_csv(io.BytesIO(customers(20)), dtype=str, keep_default_na=False).drop(columns=["tenure"])
    at = open_page("batch")
    at.get("file_uploader")[0].set_value(("wrong.csv", frame.to_csv(index=False).encode(), "text/csv")).run()
    button(at, "Start transform job").click().run()
    (job,) = subs_rf.list_transforms()
    assert finished(subs_rf, job.name).status == "Failed"
    at.run()
    assert not at.exception, at.exception
    assert "lacks the model's feature column tenure" in texts(at, "error")


def test_predict_page_offers_a_batch_job_for_a_file_too_big_to_score_there(subs_rf, monkeypatch):
    from churn_core.transform import rules as transforms

    monkeypatch.setattr(transforms, "INTERACTIVE_MAX_ROWS", 100)
    subs_rf.deploy("subs-rf", "subs-ep")
    at = open_page("predict")
    at.get("file_uploader")[0].set_value(("many.csv", customers(150), "text/csv")).run()
    assert not at.exception, at.exception
    links = [link.proto.page for link in at.get("page_link")]
    assert "batch" in links, links
    at.switch_page("../pages/batch.py").run()
    assert "many.csv** from the Predict page" in texts(at, "info")
    button(at, "Start transform job").click().run()
    (job,) = subs_rf.list_transforms()
    assert job.input_label == "many.csv" and finished(subs_rf, job.name).rows_scored == 150


def test_batch_page_offers_an_instance_type_only_when_the_backend_has_a_choice(subs_rf, monkeypatch):
    """Issue 26, item 12: locally there is nothing to pick; with several types (SageMaker's transform enum) the
    picker shows them, default first, and the choice reaches start_transform."""
    data = customers(20, seed=5)
    at = open_page("batch")
    at.get("file_uploader")[0].set_value(("customers.csv", data, "text/csv")).run()
    assert "Instance type" not in [s.label for s in at.selectbox]
    from churn_core.backends.base import Offers

    offered = Offers.of(subs_rf.backend)  # what the page is offered, as SageMaker would offer it; the backend is local
    monkeypatch.setattr(Offers, "of", classmethod(lambda cls, backend: cls(
        offered.quick_deploy, offered.training_instance_types, ["ml.m5.large", "ml.c5.xlarge"],
        offered.default_transform_instances, offered.tuning_parallel_default)))
    at.run()
    picker = next(s for s in at.selectbox if s.label == "Instance type")
    assert picker.options == ["ml.m5.large", "ml.c5.xlarge"] and picker.value == "ml.m5.large"
    picker.set_value("ml.c5.xlarge")
    button(at, "Start transform job").click().run()
    assert not at.exception, at.exception
    assert "cannot run on the instance type 'ml.c5.xlarge'" in texts(at, "error")  # the local backend refuses it
    assert subs_rf.list_transforms() == []


def test_a_second_job_is_selected_when_started_and_a_workbook_is_accepted(subs_rf):
    from tests.support.own_data import workbook

    at = open_page("batch")
    at.get("file_uploader")[0].set_value(("first.csv", customers(50, seed=6), "text/csv")).run()
    button(at, "Start transform job").click().run()
    first = subs_rf.list_transforms()[0]
    assert finished(subs_rf, first.name).status == "Completed"
    at.run()
    assert at.selectbox(key="batch_picker").value == first.name
    frame = pd.read_csv(io.BytesIO(customers(40, seed=7)), dtype=str, keep_default_na=False)
    at.get("file_uploader")[0].set_value(("second.xlsx", workbook(frame), "application/vnd.ms-excel")).run()
    assert not at.exception, at.exception
    button(at, "Start transform job").click().run()
    assert not at.exception, at.exception
    second = next(t for t in subs_rf.list_transforms() if t.name != first.name)
    assert at.selectbox(key="batch_picker").value == second.name, "the new job is the one shown"
    assert finished(subs_rf, second.name).status == "Completed"
    assert subs_rf.describe_transform(second.name).rows_scored == 40
    at.run()
    past = at.dataframe[-1].value
    assert set(past["status"]) == {"Completed"} and "InProgress" not in set(past["status"])
