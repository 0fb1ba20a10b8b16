"""One algorithm registry (entry/algorithms.py): an algorithm registered there, and nowhere else, reaches
the Train form, the tuning ranges, job names and training, serving and explaining through entry/train.py."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from churn_core import names
from churn_core.errors import ValidationError
from churn_core.paths import entry_module
from churn_core.training import hyperparameters as hp
from churn_core.tuning.ranges import parse_ranges

algorithms = entry_module("algorithms")
train = entry_module("train")


def _extra_trees(args):
    from sklearn.ensemble import ExtraTreesClassifier

    return ExtraTreesClassifier(n_estimators=args.n_estimators, max_depth=args.max_depth,
                                min_samples_leaf=args.min_samples_leaf, class_weight=args.class_weight,
                                random_state=args.random_state)


EXTRA_TREES = algorithms.Algorithm(
    name="extra_trees",
    label="Extra trees",
    short="et",
    help="Randomised trees voting.",
    model_class="ExtraTreesClassifier",
    build=_extra_trees,
    params=(
        algorithms.Param("n_estimators", "int", 50, "Trees in the vote.", 1, 500, label="Number of trees"),
        algorithms.Param("max_depth", "optional_int", None, "How deep a tree may grow.", 1, 50),
        algorithms.Param("min_samples_leaf", "int", 2, "Fewest customers per leaf.", 1, 100),
        algorithms.Param("random_state", "int", 42, "The seed.", 0, 2**31 - 1),
    ),
    ranges={"n_estimators": {"min": 10, "max": 80, "scale": "log"}, "min_samples_leaf": {"min": 1, "max": 20}},
    explainer=algorithms.EXPLAIN_FOREST,
)


@pytest.fixture
def extra_trees(monkeypatch):
    """The registry with one more algorithm, for this test only (a copy: the product's stays as it is)."""
    monkeypatch.setattr(algorithms, "REGISTRY", dict(algorithms.REGISTRY))
    return algorithms.register(EXTRA_TREES)


def test_the_registry_holds_the_products_three_algorithms_in_form_order():
    assert algorithms.names() == ("random_forest", "gradient_boosting", "logistic_regression")
    assert list(hp.ALGORITHMS) == list(algorithms.names())
    shorts = {"random_forest": "rf", "gradient_boosting": "gb", "logistic_regression": "lr"}
    assert dict(names.ALGORITHM_SHORT) == shorts
    assert [a.explainer for a in algorithms.REGISTRY.values()] == ["forest", "boosting", "linear"]


def test_a_registered_algorithm_reaches_the_form_the_ranges_and_the_names(extra_trees, monkeypatch):
    spec = hp.ALGORITHMS["extra_trees"]
    assert (spec["label"], spec["short"], [p.name for p in spec["params"]]) == (
        "Extra trees", "et", ["n_estimators", "max_depth", "min_samples_leaf", "random_state"])
    assert hp.clean({"algorithm": "extra_trees", "n_estimators": "20"}) == {
        "algorithm": "extra_trees", "n_estimators": 20, "max_depth": None, "min_samples_leaf": 2, "random_state": 42}
    with pytest.raises(ValidationError, match="Number of trees \\(n_estimators\\) must be between 1 and 500"):
        hp.clean({"algorithm": "extra_trees", "n_estimators": 501})
    assert hp.default_ranges("extra_trees") == EXTRA_TREES.ranges
    tuned, static = parse_ranges("extra_trees", hp.default_ranges("extra_trees"))
    assert [r.name for r in tuned] == ["n_estimators", "min_samples_leaf"]
    assert static == {"algorithm": "extra_trees", "max_depth": None, "random_state": 42}
    assert names.default_job_name("extra_trees").startswith("churn-et-")
    monkeypatch.undo()  # the copy goes, and with it the algorithm
    assert "extra_trees" not in hp.ALGORITHMS
    assert names.default_job_name("extra_trees").startswith("churn-model-")


def test_an_algorithm_needs_script_options_for_its_hyperparameters(monkeypatch):
    monkeypatch.setattr(algorithms, "REGISTRY", dict(algorithms.REGISTRY))
    odd = algorithms.Algorithm("odd", "Odd", "od", "", "X", _extra_trees, (algorithms.Param("gamma", "float", 1, ""),))
    with pytest.raises(ValueError, match="gamma have no option in OPTIONS"):
        algorithms.register(odd)


def _channel(folder, frame):
    folder.mkdir(parents=True)
    frame.to_csv(folder / "data.csv", index=False)
    return str(folder)


def test_a_registered_algorithm_trains_serves_and_explains_through_train_py(extra_trees, tmp_path):
    rng = np.random.default_rng(5)
    n = 300
    frame = pd.DataFrame({"Calls": rng.poisson(2, n), "Minutes": rng.normal(180, 50, n).round(1),
                          "Plan": rng.choice(["basic", "plus", "max"], n)})
    frame.insert(0, "Churn", ((frame["Calls"] > 2) ^ (rng.random(n) < 0.15)).astype(int))
    model_dir, output = tmp_path / "model", tmp_path / "output"
    train.main(["--algorithm", "extra_trees", "--n_estimators", "12", "--min_samples_leaf", "2",
                "--train", _channel(tmp_path / "train", frame.iloc[:220]),
                "--test", _channel(tmp_path / "test", frame.iloc[220:]),
                "--model-dir", str(model_dir), "--output-data-dir", str(output)])
    evaluation = json.loads((output / "evaluation.json").read_text())
    assert evaluation["algorithm"] == "extra_trees"
    assert evaluation["hyperparameters"]["n_estimators"] == 12
    assert evaluation["feature_effects"], "the registry's explainer kind explains it on held-out customers"

    model = train.model_fn(str(model_dir))
    assert type(model["pipeline"].named_steps["model"]).__name__ == "ExtraTreesClassifier"
    assert model["fast"] is not None and model["fast"]["forest"] is not None  # trees averaged: the fast walk
    body = json.dumps({"instances": [{"Calls": 4, "Minutes": 200.5, "Plan": "plus"}], "explain": 2})
    answer = json.loads(train.output_fn(train.predict_fn(train.input_fn(body, "application/json"), model))[0])
    prediction = answer["predictions"][0]
    expected = model["pipeline"].predict_proba(pd.DataFrame({"Calls": [4.0], "Minutes": [200.5], "Plan": ["plus"]}))
    assert prediction["churn_probability"] == pytest.approx(float(expected[0, 1]), abs=1e-12)
    reasons = prediction["reasons"]
    assert reasons["space"] == "probability" and len(reasons["reasons"]) == 2
    total = reasons["base"] + sum(r["contribution"] for r in reasons["reasons"]) + reasons["other"]
    assert total == pytest.approx(prediction["churn_probability"], abs=1e-6)
