"""Honest probabilities (issue 24, items 4 and 6): every model reports its calibration, a class-weighted
model's probabilities are brought back to the observed churn rate (reasons still add up exactly), log loss
is scikit-learn's, and gradient boosting takes class_weight through the API."""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pytest

from churn_core.decisions.reasons import baseline_sentence
from churn_core.errors import ValidationError
from churn_core.paths import entry_module
from tests.support.honest import ALGORITHMS, WEIGHTINGS, evaluation

CASES = [(d, a, w) for d in ("sample", "categorical") for a in ALGORITHMS for w in WEIGHTINGS]


def _test_split(model_dir, data: bytes):
    """(y, churn probabilities) of the 25 % train.py held out, recomputed here and scored by predict_fn."""
    from sklearn.model_selection import train_test_split

    train, rules = entry_module("train"), entry_module("dataset_schema")
    model = train.model_fn(str(model_dir))
    table = rules.read_text_table(io.BytesIO(data))
    y, _ = rules.encode_target(table[model["schema"]["target"]], model["schema"]["target"], "test")
    _, test = train_test_split(np.arange(len(y)), test_size=0.25, random_state=42, stratify=y)
    features = [f["name"] for f in model["schema"]["features"]]
    records = [{k: (None if v == "" else v) for k, v in r.items()}
               for r in table[features].iloc[test].to_dict("records")]
    answer = train.predict_fn(train.input_fn(json.dumps({"instances": records}), "application/json"), model)
    return np.asarray(y)[test], np.asarray(answer["probabilities"]), model, records


def _mean_log_odds(model: dict, data: bytes) -> float:
    """A log-odds model's output averaged over its training customers."""
    from sklearn.model_selection import train_test_split

    rules = entry_module("dataset_schema")
    table = rules.read_text_table(io.BytesIO(data))
    y, _ = rules.encode_target(table[model["schema"]["target"]], model["schema"]["target"], "train")
    inside, _ = train_test_split(np.arange(len(y)), test_size=0.25, random_state=42, stratify=y)
    x = rules.typed_features(table.iloc[inside], {"features": model["schema"]["features"]}, "train")
    encoded = model["pipeline"].named_steps["pre"].transform(x)
    encoded = np.asarray(encoded.toarray() if hasattr(encoded, "toarray") else encoded, dtype=np.float32)
    estimator = model["pipeline"].named_steps["model"]
    return float(np.mean(estimator.decision_function(encoded.astype(np.float64))))


@pytest.mark.parametrize("case", CASES, ids=["-".join(c) for c in CASES])
def test_mean_probability_on_the_test_split_is_the_observed_churn_rate(honest_models, case):
    model_dir, data = honest_models[case]
    y, p, _, _ = _test_split(model_dir, data)
    assert abs(p.mean() - y.mean()) <= 0.03, (case, p.mean(), y.mean())
    report = evaluation(model_dir)
    assert report["metrics"]["test_churn_rate"] == pytest.approx(y.mean())
    if case[2] == "balanced":
        assert report["prior_correction"]["method"] != "none"


@pytest.mark.parametrize("case", [c for c in CASES if c[0] == "categorical"], ids=lambda c: "-".join(c))
def test_calibration_figures_are_scikit_learns_on_the_test_split(honest_models, case):
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import brier_score_loss

    model_dir, data = honest_models[case]
    y, p, _, _ = _test_split(model_dir, data)
    report = evaluation(model_dir)
    assert report["metrics"]["brier"] == pytest.approx(brier_score_loss(y, p), abs=1e-12)
    observed, predicted = calibration_curve(y, p, n_bins=10, strategy="uniform")
    assert report["reliability"]["observed"] == pytest.approx(observed, abs=1e-6)
    assert report["reliability"]["predicted"] == pytest.approx(predicted, abs=1e-6)
    bins = np.searchsorted(np.linspace(0, 1, 11)[1:-1], p)  # calibration_curve's bins
    ece = sum(np.mean(bins == b) * abs(p[bins == b].mean() - y[bins == b].mean()) for b in set(bins.tolist()))
    assert report["metrics"]["ece"] == pytest.approx(ece, abs=1e-9)
    assert sum(report["reliability"]["customers"]) == len(y)


@pytest.mark.parametrize("case", [c for c in CASES if c[2] == "balanced"], ids=lambda c: "-".join(c))
def test_corrected_models_still_explain_exactly_and_start_from_an_honest_base(honest_models, case):
    model_dir, data = honest_models[case]
    y, p, model, records = _test_split(model_dir, data)
    train = entry_module("train")
    for rows in (records[:5], records[:150]):  # the one-customer method, then the batch one
        body = json.dumps({"instances": rows, "explain": 3})
        answer = train.predict_fn(train.input_fn(body, "application/json"), model)
        for prob, why in zip(answer["probabilities"], answer["reasons"], strict=True):
            output = prob if why["space"] == "probability" else math.log(prob / (1 - prob))
            total = why["base"] + sum(r["contribution"] for r in why["reasons"]) + why["other"]
            assert abs(total - output) < 1e-6, (why["method"], total, output)
    # The base is what the words say: the model's output averaged over the customers it was trained on
    # (a balanced forest's was 50 %: "the average customer starts at 50.0 %" at a 27 % churn rate).
    why = answer["reasons"][0]
    report = evaluation(model_dir)
    if why["space"] == "probability":  # the forest's leaves hold customer shares scaled by the correction
        expected = report["prior_correction"]["scale"] * report["metrics"]["train_churn_rate"]
        assert why["base"] == pytest.approx(expected, abs=0.03)
    else:
        assert why["base"] == pytest.approx(_mean_log_odds(model, data), abs=1e-6)
    assert "Averaged over the customers it was trained on" in baseline_sentence(why)
    if case[1] == "random_forest":
        assert model["fast"] is not None, "the corrected forest keeps the fast path"


def test_log_loss_is_scikit_learns_even_for_certain_wrong_answers():
    from sklearn.metrics import log_loss

    y = np.array([0, 1, 1, 0, 1, 0])
    p = np.array([0.0, 1.0, 0.0, 1.0, 0.3, 0.2])
    metrics, _ = entry_module("model_evaluation").evaluate(y, p, y, 0.5)
    assert metrics["log_loss"] == pytest.approx(log_loss(y, p), rel=1e-12)


def test_gradient_boosting_takes_class_weight_through_the_api():
    from churn_core.training import hyperparameters

    cleaned = hyperparameters.clean({"algorithm": "gradient_boosting", "class_weight": "balanced"})
    assert cleaned["class_weight"] == "balanced"
    with pytest.raises(ValidationError, match="class_weight"):
        hyperparameters.clean({"algorithm": "gradient_boosting", "class_weight": "heavy"})


def test_gradient_boosting_class_weight_reaches_the_fit(honest_models):
    weighted = evaluation(honest_models[("sample", "gradient_boosting", "balanced")][0])
    plain = evaluation(honest_models[("sample", "gradient_boosting", "none")][0])
    assert weighted["hyperparameters"]["class_weight"] == "balanced"
    assert weighted["prior_correction"]["method"] == "prior_shift"
    assert weighted["metrics"]["roc_auc"] != plain["metrics"]["roc_auc"]
