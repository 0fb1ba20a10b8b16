"""From a probability to a decision (issue 15): the profit arithmetic, the planner on a real model, the
chosen threshold used by everything the model labels, and evaluation on new labelled data."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

import churn_core
from churn_core import ValidationError
from churn_core.decisions.campaign import confusion_at, gains_by_decile, plan, profit_curve, risk_band
from churn_core.data.sample import make_subscription_sample
from tests.support.helpers import wait_for_job

Y = [1, 0, 1, 0, 0]
P = [0.9, 0.8, 0.6, 0.3, 0.1]


def test_profit_arithmetic_against_a_hand_computed_case():
    # offer 10, a kept customer is worth 100, the offer saves half the churners it reaches:
    # top 1: 1 churner → 50 - 10 = 40; top 2: 50 - 20 = 30; top 3: 2 churners → 100 - 30 = 70;
    # top 4: 100 - 40 = 60; everyone: 100 - 50 = 50; nobody: 0.
    curve = profit_curve(np.array(Y), np.array(P), offer_cost=10, customer_value=100, save_rate=0.5)
    assert curve["contacted"].tolist() == [0, 1, 2, 3, 4, 5]
    assert curve["caught"].tolist() == [0, 1, 1, 2, 2, 2]
    assert curve["expected_profit"].tolist() == [0, 40, 30, 70, 60, 50]
    best = plan(Y, P, offer_cost=10, customer_value=100, save_rate=0.5)
    assert (best.contacted, best.churners_caught, best.expected_profit) == (3, 2, 70)
    assert best.threshold == pytest.approx(0.45) and best.recall == 1.0 and best.precision == pytest.approx(2 / 3)
    assert sum(p > best.threshold for p in P) == best.contacted, "the stored threshold contacts exactly those"
    assert "expected profit 70.00" in best.explain() and "2 of the 2 churners" in best.explain()
    on_budget = plan(Y, P, offer_cost=10, customer_value=100, save_rate=0.5, budget=2)
    assert (on_budget.contacted, on_budget.expected_profit, on_budget.threshold) == (1, 40, pytest.approx(0.85))
    top = best.top_k
    assert top.loc[top["top_percent"] == 60, "expected_profit"].item() == 70  # 3 of 5 customers
    assert confusion_at(Y, P, best.threshold) == [[2, 1], [0, 2]]
    gains = gains_by_decile(Y * 4, P * 4)
    assert gains["cumulative_gain"].iloc[-1] == 1.0 and gains["cumulative_gain"].is_monotonic_increasing
    assert [risk_band(p, 0.4) for p in (0.41, 0.4, 0.21, 0.2)] == ["high", "medium", "medium", "low"]


@pytest.mark.parametrize("inputs, message", [
    (dict(offer_cost=-1), "cost of one offer"),
    (dict(customer_value=0), "value of a customer kept"),
    (dict(save_rate=1.5), "share of contacted churners"),
    (dict(budget=2.5), "whole number of customers"),
])
def test_planner_inputs_are_checked(inputs, message):
    with pytest.raises(ValidationError, match=message):
        plan(Y, P, **inputs)
    with pytest.raises(ValidationError, match="both kinds"):
        plan([0, 0, 0], [0.1, 0.2, 0.3])


@pytest.fixture(scope="module")
def subscription_model(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("CHURN_HOME", str(tmp_path_factory.mktemp("campaign") / "state"))
    mp.setenv("CHURN_BACKEND", "local")
    p = churn_core.connect()
    try:
        p.upload_dataset("subs", make_subscription_sample(1500, seed=8))
        p.start_training("subs", {"algorithm": "gradient_boosting", "n_estimators": 40}, name="subs-gb")
        assert wait_for_job(p, "subs-gb").status == "Completed"
        yield p
    finally:
        p.cleanup()
        mp.undo()


@pytest.fixture
def undo_threshold(subscription_model):
    """The threshold a test chose is undone after it: the next test (any order) finds the model as trained."""
    yield
    subscription_model.catalog.update("models", "subs-gb", threshold=None, threshold_json="{}")  # as trained


def test_the_planner_on_a_model_and_the_threshold_it_stores(subscription_model, undo_threshold):
    p = subscription_model
    y, proba = p.test_predictions("subs-gb")
    assert len(y) == p.get_dataset("subs").n_test
    roc = p.describe_training("subs-gb").metrics["roc_auc"]
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(y, proba) == pytest.approx(roc, abs=1e-9), "the held-out scores training evaluated"
    chosen = p.plan_campaign("subs-gb", offer_cost=15, customer_value=300, save_rate=0.25)
    at_half = chosen.curve.iloc[(chosen.curve["threshold"] - 0.5).abs().argmin()]
    assert chosen.expected_profit >= at_half["expected_profit"], "the best threshold beats the default 0.5"
    capped = p.plan_campaign("subs-gb", offer_cost=15, customer_value=300, save_rate=0.25, budget=20)
    assert capped.contacted <= 20 and capped.expected_profit <= chosen.expected_profit

    assert p.model_threshold("subs-gb") == 0.5
    p.set_threshold("subs-gb", chosen.threshold, note="Q1 retention campaign", plan=chosen)
    assert p.model_threshold("subs-gb") == pytest.approx(chosen.threshold)
    record = p.threshold_record("subs-gb")
    assert record["note"] == "Q1 retention campaign" and record["campaign"]["offer_cost"] == 15
    assert record["set_by"] and record["set_at"]
    with pytest.raises(ValidationError, match="between 0 and 1"):
        p.set_threshold("subs-gb", 1.5)


def test_a_new_endpoint_labels_with_the_chosen_threshold(subscription_model, undo_threshold):
    p = subscription_model
    frame = p.read_dataset("subs", "test")
    features = [f["name"] for f in p.model_schema("subs-gb")["features"]]
    rows = frame[features].head(300).to_dict("records")
    records = [{k: (None if v == "" else v) for k, v in r.items()} for r in rows]
    p.set_threshold("subs-gb", 0.12, note="wide campaign")
    ep = p.deploy("subs-gb", "wide-ep")
    answer = p.invoke(ep.name, {"instances": records})["predictions"]
    assert all(a["label"] == int(a["churn_probability"] > 0.12) for a in answer)
    assert any(0.12 < a["churn_probability"] <= 0.5 for a in answer), "some labels differ from the 0.5 rule"
    p.delete_endpoint(ep.name)


def test_evaluation_on_new_labelled_data(subscription_model):
    p = subscription_model
    new = make_subscription_sample(800, seed=99)
    result = p.evaluate("subs-gb", new)
    assert result["rows"] == 800 and 0.6 < result["metrics"]["roc_auc"] <= 1.0
    assert result["test_split_metrics"]["roc_auc"] == pytest.approx(p.describe_training("subs-gb").metrics["roc_auc"])
    assert sum(map(sum, result["confusion_matrix"])) == 800
    money, threshold = result["campaign"], result["threshold"]  # profit beside the metrics, per 1,000 customers
    y, proba = p.test_predictions("subs-gb")
    flagged = proba > threshold
    inputs = money["inputs"]
    expected = ((flagged & (y == 1)).sum() * inputs["save_rate"] * inputs["customer_value"]
                - flagged.sum() * inputs["offer_cost"]) * 1000 / len(y)
    assert money["test_split"]["expected_profit"] == pytest.approx(expected)
    without = pd.read_csv(io.BytesIO(new), dtype=str, keep_default_na=False).drop(columns=["Churn"])
    with pytest.raises(ValidationError, match="has no column 'Churn'.*outcome is known"):
        p.evaluate("subs-gb", without.to_csv(index=False).encode())
    relabelled = pd.read_csv(io.BytesIO(new), dtype=str, keep_default_na=False)
    relabelled["Churn"] = relabelled["Churn"].map({"Yes": "Left", "No": "Stayed"})
    with pytest.raises(ValidationError, match="cannot be read as churned/stayed.*'Left'"):
        p.evaluate("subs-gb", relabelled.to_csv(index=False).encode())


@pytest.mark.aws
def test_the_threshold_travels_in_the_sagemaker_model_environment(monkeypatch, tmp_path, small_csv, model_tarballs):
    pytest.importorskip("moto")

    from tests.support.aws import capture, completed_jobs, moto_account

    with moto_account(monkeypatch, tmp_path):
        p = churn_core.connect()
        completed_jobs(p, small_csv, model_tarballs, "sm-job")
        models = capture(p, "sagemaker", "CreateModel")
        p.set_threshold("sm-job", 0.3125)
        p.deploy("sm-job", "sm-ep", wait=False)
        assert models[-1]["PrimaryContainer"]["Environment"]["CHURN_THRESHOLD"] == "0.3125"
        p.delete_endpoint("sm-ep")
