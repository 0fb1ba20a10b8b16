"""Page tests (AppTest) for the Train page's Tune tab on the local backend."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import churn_core
from tests.support.helpers import wait_until

MAIN = str(Path(__file__).resolve().parents[1] / "app" / "main.py")


@pytest.fixture
def tune_tab(home, sample_csv) -> AppTest:
    churn_core.connect().upload_dataset("sample", sample_csv)
    at = AppTest.from_file(MAIN, default_timeout=60).run()
    at.switch_page("../pages/train.py")
    at.session_state["train_mode"] = "Tune"
    at.run()
    assert not at.exception, at.exception
    return at


def widget(items, label: str):
    return next(w for w in items if w.label == label)


def test_tune_tab_offers_the_algorithms_default_ranges_and_the_objectives(tune_tab):
    at = tune_tab
    assert widget(at.checkbox, "Tune Number of trees").value is True
    assert widget(at.checkbox, "Tune Random seed").value is False
    assert widget(at.number_input, "Number of trees: from").value == 20
    assert widget(at.number_input, "Number of trees: to").value == 300
    assert widget(at.selectbox, "Number of trees: scale").value == "log"
    assert widget(at.multiselect, "Weight of churners: values").value == ["none", "balanced"]
    assert widget(at.selectbox, "Objective").options == ["ROC AUC", "F1", "Log loss", "PR AUC",
                                                         "Expected campaign profit"]
    assert "No tuning job yet" in " ".join(str(c.value) for c in at.caption)
    widget(at.radio, "Algorithm to tune").set_value("logistic_regression").run()
    assert widget(at.checkbox, "Tune Flexibility").value is True
    assert widget(at.selectbox, "Flexibility: scale").value == "log"


def test_a_bad_range_is_shown_next_to_the_form_and_nothing_starts(tune_tab):
    at = tune_tab
    widget(at.number_input, "Number of trees: from").set_value(200)
    widget(at.number_input, "Number of trees: to").set_value(50)
    widget(at.button, "Start tuning").click().run()
    errors = " ".join(e.value for e in at.error)
    assert "The range of Number of trees (n_estimators) is reversed: min 200 is above max 50" in errors
    assert churn_core.connect().tuning_names() == []


def test_start_tuning_then_the_leaderboard_ranks_trials_and_links_to_deploy_the_best(tune_tab):
    at = tune_tab
    widget(at.number_input, "Number of trees: from").set_value(5)
    widget(at.number_input, "Number of trees: to").set_value(25)
    widget(at.number_input, "Maximum trials").set_value(3)
    widget(at.number_input, "Trials at once").set_value(2)
    widget(at.text_input, "Tuning job name (optional)").set_value("tune-page")
    widget(at.radio, "Strategy").set_value("random")
    widget(at.button, "Start tuning").click().run()
    assert not at.exception, at.exception
    assert "Tuning job **tune-page** is running" in " ".join(s.value for s in at.success)
    p = churn_core.connect()
    wait_until(lambda: p.describe_tuning("tune-page").status == "Completed", 120, what="tuning job to complete")
    at.run()
    assert not at.exception, at.exception
    best = p.describe_tuning("tune-page")
    table = at.dataframe[0].value
    assert list(table["job"])[0] == best.best_job and len(table) == 3
    assert table["objective"].is_monotonic_decreasing  # ROC AUC: best first
    assert {"n_estimators", "max_depth", "min_samples_leaf", "class_weight"} <= set(table.columns)
    assert list(table["best"]) == [True, False, False]
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    assert [c["data"][0]["type"] for c in charts] == ["scatter", "parcoords"]
    links = {link.proto.label: link.proto.page for link in at.get("page_link")}
    deploy = next(label for label in links if label.startswith("Deploy best"))
    assert best.best_job in deploy and links[deploy].endswith("endpoints")
    assert any(m.label == "Best ROC AUC" and m.value == f"{best.best_objective:.4f}" for m in at.metric)

    widget(at.button, "Register best").click().run()  # into the model registry, with where it came from
    assert not at.exception, at.exception
    (version,) = p.versions_of_model(best.best_job)
    assert f"Registered **{version.label}** from {best.best_job}" in " ".join(s.value for s in at.success)
    assert version.note.startswith("best trial of tuning job tune-page: ROC AUC")
