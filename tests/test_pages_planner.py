"""The Campaign planner page (AppTest): plan with the analyst's figures, move the threshold, use it,
evaluate the model on a new labelled file."""

from __future__ import annotations

import pytest

from churn_core.data.sample import make_subscription_sample
from tests.support.pages import button, open_page, texts


def test_planner_page_plans_uses_the_threshold_and_evaluates(subs_rf):
    at = open_page("planner")
    assert not at.exception, at.exception
    inputs = {n.label: n for n in at.number_input}
    inputs["Cost of one offer"].set_value(10.0)
    inputs["Value of a customer kept"].set_value(250.0)
    button(at, "Plan the campaign").click().run()
    assert not at.exception, at.exception
    expected = subs_rf.plan_campaign("subs-rf", 10.0, 250.0, 0.3)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Best threshold"] == f"{expected.threshold:.3f}"
    assert metrics["Expected profit"] == f"{expected.expected_profit:,.0f}"
    assert "expected profit" in texts(at, "info").lower()
    assert len(at.get("plotly_chart")) >= 4
    at.slider[0].set_value(0.25).run()
    assert "At **0.250**" in texts(at, "markdown")
    at.text_input(key="planner_note").set_value("spring campaign")
    next(b for b in at.button if b.label.startswith("Use threshold 0.250")).click().run()
    assert not at.exception, at.exception
    assert subs_rf.model_threshold("subs-rf") == pytest.approx(0.25)
    assert subs_rf.threshold_record("subs-rf")["note"] == "spring campaign"
    assert "now labels customers above 0.250" in texts(at, "success")
    assert "Current decision threshold of **subs-rf**: **0.250**" in texts(at, "markdown"), "the header shows it"

    again = open_page("planner")  # a reload: the inputs of the plan its threshold came from, not the defaults
    inputs = {n.label: n for n in again.number_input}
    assert (inputs["Cost of one offer"].value, inputs["Value of a customer kept"].value) == (10.0, 250.0)
    top = next(df.value for df in again.dataframe if "contact the riskiest" in df.value.columns)
    assert list(top["contact the riskiest"]) == ["5 %", "10 %", "20 %", "30 %", "50 %", "100 %"]
    inputs["Cost of one offer"].set_value(-5.0)
    button(again, "Plan the campaign").click().run()
    assert "The cost of one offer must be a number ≥ 0 (got -5.0)" in texts(again, "error")
    assert not again.metric, "no plan is shown for other values than the ones on screen"

    at.get("file_uploader")[0].set_value(("last-month.csv", make_subscription_sample(400, seed=17),
                                          "text/csv")).run()
    assert not at.exception, at.exception
    assert "subs-rf on last-month.csv" in texts(at, "markdown")
    compared = at.dataframe[-1].value
    assert list(compared.columns) == ["metric", "on last-month.csv", "on its test split"]
    names = list(compared["metric"])
    assert names[0] == "ROC AUC" and names[-1] == "Expected profit per 1,000 customers", names
