"""No choice scored on the data it was made on (issue 24, items 5 and 6): the planner picks its threshold on
out-of-fold predictions of the training split and reports on the test split, its inputs scale to the customer
base, its headline, slider and stored threshold agree; train.py's cross-validation figures are scikit-learn's."""

from __future__ import annotations

import numpy as np
import pytest

from churn_core.data.sample import make_subscription_sample
from churn_core.decisions import campaign
from churn_core.errors import ValidationError
from churn_core.paths import entry_module
from tests.support.honest import evaluation, train_into


def _scores(n: int = 1200, seed: int = 3):
    rng = np.random.default_rng(seed)
    p = rng.beta(1.2, 4.0, n)
    return (rng.random(n) < p).astype(int), p


def test_a_budget_is_for_the_customer_base_not_the_test_split():
    y, p = _scores()
    base = 5000
    plan = campaign.plan(y, p, 20.0, 200.0, 0.3, budget=500, customers=base)
    assert plan.contacted <= 500 and plan.customers == base and plan.held_out == len(y)
    unbounded = campaign.plan(y, p, 20.0, 200.0, 0.3, customers=base)
    assert unbounded.contacted > 500, "the budget binds in this case"
    assert plan.contacted == round((p > plan.threshold).sum() * base / len(y))
    assert plan.expected_profit == pytest.approx(campaign.plan(y, p, 20.0, 200.0, 0.3).curve.set_index(
        "threshold").loc[plan.threshold, "expected_profit"] * base / len(y))
    money = campaign.plan(y, p, 20.0, 200.0, 0.3, budget_money=10_000.0, customers=base)
    assert money.contacted * 20.0 <= 10_000.0
    assert "For a customer base of 5,000" in plan.explain()
    with pytest.raises(ValidationError, match="customer base"):
        campaign.plan(y, p, customers=0)
    with pytest.raises(ValidationError, match="budget in money"):
        campaign.plan(y, p, budget_money=-1.0)


def test_headline_slider_and_stored_threshold_count_the_same_customers():
    y, p = _scores(3000, seed=9)
    for budget in (None, 300, 40):
        plan = campaign.plan(y, p, 20.0, 200.0, 0.3, budget=budget)
        shown = round(plan.threshold, 3)
        at = campaign.figures_at(y, p, plan.threshold, 20.0, 200.0, 0.3)
        assert (at["contacted"], at["caught"]) == (plan.contacted, plan.churners_caught)
        assert at["expected_profit"] == pytest.approx(plan.expected_profit)
        if (p > shown).sum() != plan.contacted:  # only when two scores are closer than 0.001
            assert len(repr(plan.threshold)) > 5
        else:
            assert plan.threshold == shown, "a threshold of three decimals when three decimals suffice"


def test_contact_everyone_includes_customers_scored_zero():
    y = np.array([1, 0, 1, 0, 0, 1])
    p = np.array([0.9, 0.0, 0.4, 0.0, 0.2, 0.0])
    curve = campaign.profit_curve(y, p, 1.0, 100.0, 0.5)
    everyone = curve.iloc[-1]
    assert everyone["contacted"] == len(y) and everyone["caught"] == y.sum()


def test_the_planner_picks_on_training_folds_and_reports_on_the_test_split(train):
    p = train("subs", make_subscription_sample(1500, seed=8), "subs-cv", algorithm="logistic_regression",
              class_weight="balanced", cv_folds=4)
    plan = p.plan_campaign("subs-cv", 20.0, 200.0, 0.3)
    assert plan.picked_on == campaign.PICKED_ON_FOLDS and "picked on out-of-fold" in plan.explain()
    oof = p.decisions.models.loaded("subs-cv")["oof"]
    assert len(oof["p"]) == len(oof["y"]) > len(p.test_predictions("subs-cv")[0])
    on_folds = campaign.plan(oof["y"], oof["p"], 20.0, 200.0, 0.3)
    assert plan.threshold == on_folds.threshold, "the threshold is the training folds' best"
    y, proba = p.test_predictions("subs-cv")
    at = campaign.figures_at(y, proba, plan.threshold, 20.0, 200.0, 0.3)
    assert plan.expected_profit == pytest.approx(at["expected_profit"]) and plan.held_out == len(y)
    p.start_training("subs", {"algorithm": "logistic_regression"}, name="subs-plain")
    from tests.support.helpers import wait_for_job

    assert wait_for_job(p, "subs-plain").status == "Completed"
    old = p.plan_campaign("subs-plain", 20.0, 200.0, 0.3)
    assert old.picked_on == campaign.PICKED_ON_TEST and "retrain to pick on training folds" in old.explain()


def test_train_reports_cross_validation_on_the_training_split(tmp_path):
    from sklearn.metrics import roc_auc_score

    model_dir = train_into(tmp_path, make_subscription_sample(900, seed=2), "--algorithm", "random_forest",
                           "--n_estimators", "30", "--cv_folds", "3")
    report = evaluation(model_dir)
    oof = entry_module("train").model_fn(str(model_dir))["oof"]
    assert len(oof["y"]) == report["n_train"]
    assert report["metrics"]["roc_auc_cv"] == pytest.approx(roc_auc_score(oof["y"], oof["p"]))
    assert report["hyperparameters"]["cv_folds"] == 3
    with pytest.raises(entry_module("dataset_schema").SchemaError, match="cv_folds must be at least 2"):
        train_into(tmp_path, make_subscription_sample(300, seed=2), "--cv_folds", "1")


def test_the_planner_page_plans_for_a_customer_base_and_its_slider_agrees_with_the_headline(subs_rf):
    from tests.support.pages import button, open_page, texts

    at = open_page("planner")
    assert not at.exception, at.exception
    inputs = {n.label: n for n in at.number_input}
    inputs["Customer base (customers)"].set_value(5000)
    inputs["Budget (customers, optional)"].set_value(500)
    button(at, "Plan the campaign").click().run()
    assert not at.exception, at.exception
    expected = subs_rf.plan_campaign("subs-rf", campaign.DEFAULT_OFFER_COST, campaign.DEFAULT_CUSTOMER_VALUE,
                                     campaign.DEFAULT_SAVE_RATE, budget=500, customers=5000)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Customers contacted"] == f"{expected.contacted:,} of 5,000" and expected.contacted <= 500
    assert metrics["Expected profit"] == f"{expected.expected_profit:,.0f}"
    assert at.slider[0].value == expected.threshold, "the slider starts at the stored threshold, unrounded"
    assert (f"{expected.contacted:,} of 5,000 customers contacted" in texts(at, "markdown")
            and f"expected profit **{expected.expected_profit:,.0f}**" in texts(at, "markdown"))
    assert "picked on the test split: retrain to pick on training folds" in texts(at, "caption")
