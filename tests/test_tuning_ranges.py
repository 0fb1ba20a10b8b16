"""Tuning ranges and the search, without processes: every validation message, the normal forms, the sampler."""

from __future__ import annotations

import pytest

from churn_core.training import hyperparameters as hp
from churn_core.errors import ValidationError
from churn_core.tuning.objectives import get_objective
from churn_core.tuning.ranges import Range, parse_ranges
from churn_core.tuning.search import Observed, suggest


@pytest.mark.parametrize(
    "algorithm, ranges, message",
    [
        # empty ranges
        ("random_forest", {"class_weight": []}, "The range of class_weight is empty: list at least one value"),
        ("random_forest", {"n_estimators": {"min": 2.2, "max": 2.8}},
         "The range of Number of trees (n_estimators) is empty: no whole number lies between 2.2 and 2.8"),
        # min > max
        ("random_forest", {"n_estimators": {"min": 300, "max": 50}},
         "The range of Number of trees (n_estimators) is reversed: min 300 is above max 50. Swap them."),
        ("gradient_boosting", {"learning_rate": (0.3, 0.01)}, "The range of Learning rate (learning_rate) is reversed"),
        # log scale <= 0
        ("logistic_regression", {"C": {"min": 0, "max": 10, "scale": "log"}},
         "The range of Flexibility (C) uses a log scale, so its min must be above 0 (got 0)"),
        ("gradient_boosting", {"learning_rate": {"min": -0.1, "max": 0.3, "scale": "log"}},
         "uses a log scale, so its min must be above 0 (got -0.1)"),
        # unknown hyperparameter for the algorithm
        ("random_forest", {"learning_rate": (0.01, 0.3)},
         "random_forest has no hyperparameter 'learning_rate' to tune. Its hyperparameters are: n_estimators, "
         "max_depth, min_samples_leaf, class_weight, random_state, cv_folds."),
        ("logistic_regression", {"n_estimators": (10, 100)},
         "logistic_regression has no hyperparameter 'n_estimators'"),
        # other mistakes, each with what to do
        ("random_forest", {"class_weight": {"min": 0, "max": 1}}, "class_weight takes one of none, balanced: give its "
                                                                   "range as a list of values"),
        ("random_forest", {"class_weight": ["none", "heavy"]},
         "In the range of class_weight: Weight of churners (class_weight) must be one of none, balanced "
         "(got 'heavy')."),
        ("random_forest", {"n_estimators": {"min": 0, "max": 300}},
         "The range of Number of trees (n_estimators) must stay within 1 – 2000, what random_forest accepts "
         "(got 0 – 300)."),
        ("random_forest", {"n_estimators": {"min": 10}},
         "The range of Number of trees (n_estimators) needs both a min and a max"),
        ("random_forest", {"n_estimators": {"min": "ten", "max": 30}},
         "The min of the range of Number of trees (n_estimators) must be a number (got 'ten')."),
        ("random_forest", {"n_estimators": {"min": 10, "max": 30, "scale": "exp"}},
         "The scale of the range of Number of trees (n_estimators) must be 'linear' or 'log' (got 'exp')."),
        ("random_forest", {"n_estimators": {"min": 10, "max": 30, "step": 5}}, "unknown key step"),
        ("random_forest", {"n_estimators": (10, 20, 30)}, "as a tuple must be (min, max)"),
        ("random_forest", {"algorithm": ["random_forest", "gradient_boosting"]}, "algorithm cannot be tuned"),
        ("random_forest", {}, "Nothing to tune: give at least one hyperparameter a range of two or more values"),
        ("random_forest", {"n_estimators": 50}, "Nothing to tune"),
        ("random_forest", {"n_estimators": (10, 30), "max_depth": 0.5},
         "Maximum tree depth (max_depth) must be a whole number"),
        ("random_forest", "n_estimators=10..30", "Ranges must map hyperparameter names to ranges"),
        ("xgboost", {"n_estimators": (10, 30)}, "Unknown algorithm 'xgboost'"),
    ],
)
def test_range_mistakes_are_named_with_what_to_do(algorithm, ranges, message):
    with pytest.raises(ValidationError) as info:
        parse_ranges(algorithm, ranges)
    assert message in str(info.value)


def test_ranges_in_every_accepted_shape_become_one_form():
    tuned, static = parse_ranges("random_forest", {
        "n_estimators": (20, 300),
        "max_depth": {"min": 2.5, "max": 12.9, "scale": "log"},  # whole-number hyperparameter: rounded inwards
        "min_samples_leaf": Range("min_samples_leaf", "integer", 1, 5),
        "class_weight": {"values": ["NONE", "balanced", "none"]},  # coerced, duplicates dropped
        "random_state": 7,  # a plain value is fixed for every trial
    })
    assert [r.as_dict() for r in tuned] == [
        {"name": "n_estimators", "kind": "integer", "min": 20, "max": 300, "scale": "linear"},
        {"name": "max_depth", "kind": "integer", "min": 3, "max": 12, "scale": "log"},
        {"name": "min_samples_leaf", "kind": "integer", "min": 1, "max": 5, "scale": "linear"},
        {"name": "class_weight", "kind": "categorical", "values": ["none", "balanced"]},
    ]
    assert static == {"algorithm": "random_forest", "random_state": 7, "cv_folds": 0}  # tuning sets its folds
    assert [Range.from_dict(r.as_dict()) for r in tuned] == tuned  # stored and read back unchanged


def test_a_range_of_one_value_fixes_the_hyperparameter_and_unset_is_a_value():
    tuned, static = parse_ranges("random_forest", {"n_estimators": (40, 40), "class_weight": ["balanced"],
                                                   "max_depth": [None, 4, "none"]})
    assert [r.name for r in tuned] == ["max_depth"] and tuned[0].values == (None, 4)
    assert static["n_estimators"] == 40 and static["class_weight"] == "balanced"
    c, _ = parse_ranges("gradient_boosting", {"learning_rate": {"min": 0.01, "max": 0.3, "scale": "logarithmic"}})
    assert c[0].kind == "continuous" and c[0].scale == "log"


@pytest.mark.parametrize("algorithm", list(hp.ALGORITHMS))
def test_default_ranges_of_every_algorithm_are_valid(algorithm):
    tuned, static = parse_ranges(algorithm, hp.default_ranges(algorithm))
    assert tuned and static["algorithm"] == algorithm
    assert hp.default_ranges(algorithm) is not hp.DEFAULT_RANGES[algorithm]  # a copy the caller may change


def test_objectives_know_their_direction():
    assert get_objective("roc_auc").maximize and get_objective("F1").maximize
    assert get_objective("log_loss").direction == "minimize" and get_objective("log_loss").better(0.2, 0.3)
    with pytest.raises(ValidationError, match="Unknown objective 'accuracy_at_k'. Choose one of: roc_auc"):
        get_objective("accuracy_at_k")


RANGES = [Range("n_estimators", "integer", 10, 300, "log"), Range("learning_rate", "continuous", 0.01, 0.3, "log"),
          Range("class_weight", "categorical", values=("none", "balanced")), Range("max_depth", "categorical",
                                                                                  values=(None, 3, 6))]


def test_random_search_is_a_function_of_the_seed_and_the_trial_number():
    first = [suggest(RANGES, "random", 7, "maximize", n, 10) for n in range(5)]
    again = [suggest(RANGES, "random", 7, "maximize", n, 10, [Observed(first[0], "complete", 0.9)]) for n in range(5)]
    assert first == again  # results and restarts change nothing
    neighbour = [suggest(RANGES, "random", 8, "maximize", n, 10) for n in range(5)]
    assert not {p["learning_rate"] for p in first} & {p["learning_rate"] for p in neighbour}  # no shared trials
    for params in first:
        assert 10 <= params["n_estimators"] <= 300 and isinstance(params["n_estimators"], int)
        assert 0.01 <= params["learning_rate"] <= 0.3
        assert params["class_weight"] in ("none", "balanced") and params["max_depth"] in (None, 3, 6)


def test_bayesian_search_is_rebuilt_from_recorded_trials_including_running_and_foreign_ones():
    history = [Observed(suggest(RANGES, "random", 1, "maximize", n, 10), "complete", 0.5 + n / 100) for n in range(6)]
    history += [Observed(history[0].params, "fail"), Observed(history[1].params, "running"),
                Observed({"n_estimators": 5000, "learning_rate": 0.1, "class_weight": "none", "max_depth": 3},
                         "complete", 0.99),  # outside these ranges (another search): ignored, not a crash
                Observed(history[2].params, "complete", None)]  # no objective: counted as failed
    chosen = suggest(RANGES, "bayesian", 3, "maximize", len(history), 10, history)
    assert chosen == suggest(RANGES, "bayesian", 3, "maximize", len(history), 10, history)  # deterministic
    assert 10 <= chosen["n_estimators"] <= 300
