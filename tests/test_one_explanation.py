"""One explanation per customer (issue 24, item 3): whichever way a customer is asked about -- one row,
a 101+-row JSON request, a CSV body, ``score_batch``, a transform job -- the same contributions, by the
same method; exact path-dependent TreeSHAP for trees (``shap.TreeExplainer``'s numbers without
categoricals, the exact group Shapley value of the same game with them), linear SHAP for logistic
regression. And (item 6) a logistic regression's importance does not grow with a column's levels."""

from __future__ import annotations

import io
import itertools
import json
import math

import numpy as np
import pandas as pd
import pytest

from churn_core.data.sample import make_subscription_sample
from churn_core.decisions.reasons import top_reason
from churn_core.paths import entry_module
from tests.support.helpers import wait_until

CUSTOMERS = 200
TOLERANCE = 2e-9  # answers carry contributions rounded to 9 decimals


def _pushes(explained: dict) -> dict:
    return {r["feature"]: r["contribution"] for r in explained["reasons"]}


@pytest.mark.parametrize("algorithm", ["random_forest", "gradient_boosting", "logistic_regression"])
def test_every_path_gives_a_customer_the_same_contributions(train, algorithm):
    data = make_subscription_sample(900, seed=24)  # an ID column, Yes/No categories, blanks, a Yes/No target
    trees = {} if algorithm == "logistic_regression" else {"n_estimators": 30}
    p = train("subs", data, "subs-m", algorithm=algorithm, **trees)
    features = [f["name"] for f in p.model_schema("subs-m")["features"]]
    frame = p.read_customers(data).drop(columns=["Churn"]).head(CUSTOMERS)
    records = [{k: (None if v.strip() == "" else v) for k, v in r.items()} for r in frame[features].to_dict("records")]
    p.deploy("subs-m", "subs-ep")

    one = [p.score_customer("subs-ep", r, reasons=len(features))["reasons"] for r in records]  # (a)
    methods = {e["method"] for e in one}
    assert methods == {"linear_shap" if algorithm == "logistic_regression" else "tree_shap"}
    json_answer = p.invoke("subs-ep", {"instances": records, "explain": len(features)})  # (b) 200 rows > 100
    csv_answer = p.invoke("subs-ep", frame[features].to_csv(index=False),  # (c)
                          content_type=f"text/csv; explain={len(features)}")
    for path in (json_answer, csv_answer):
        assert len(path["predictions"]) == CUSTOMERS
        for alone, together in zip(one, path["predictions"], strict=True):
            why = together["reasons"]
            assert why["method"] == alone["method"] and why["space"] == alone["space"]
            a, b = _pushes(alone), _pushes(why)
            assert set(a) == set(b) == set(features)
            assert max(abs(a[f] - b[f]) for f in features) <= TOLERANCE
            assert abs(why["base"] - alone["base"]) <= TOLERANCE

    for alone in one:  # and the contributions add up to the model's output, in its space
        p1 = alone["output"]
        assert abs(alone["base"] + sum(_pushes(alone).values()) + alone["other"] - p1) <= 1e-6

    expected = [top_reason(e) for e in one]  # what files return: the top reason in words
    batch = p.score_batch("subs-ep", frame, chunk_size=70)  # (d), in chunks of 70 rows
    assert not batch.errors
    assert list(batch.scored.sort_values("line")["top_reason"]) == expected
    job = p.start_transform("subs-m", frame.to_csv(index=False).encode(), name="subs-why", reasons=True)  # (e)
    done = wait_until(lambda: (j := p.describe_transform(job.name)).status not in ("InProgress", "Stopping") and j,
                      180, what="the transform")
    assert done.status == "Completed", done.failure_reason
    assert list(p.transform_output("subs-why").sort_values("line")["top_reason"]) == expected


# ---- against references: shap for numeric-only models, a brute-force group Shapley value with categoricals


def _numeric_csv(rows: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 4))
    churn = x[:, 0] + x[:, 1] * x[:, 2] + 0.5 * rng.normal(size=rows) > 0.3
    frame = pd.DataFrame(np.round(x, 3), columns=["usage", "calls", "tenure_z", "bill_z"])
    frame["Churned"] = np.where(churn, "yes", "no")
    return frame.to_csv(index=False).encode()


def _categorical_csv(rows: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    plan = rng.choice(["basic", "plus", "pro", "family"], rows)
    region = rng.choice(["north", "south", "east"], rows)
    usage = np.round(rng.gamma(2.0, 10.0, rows), 1)
    logit = (plan == "basic") * 1.2 - (region == "east") * 0.8 + (usage - 20) / 15
    churn = logit + rng.logistic(size=rows) > 0.5
    return pd.DataFrame({"plan": plan, "region": region,
                         "usage": usage, "left": np.where(churn, "Yes", "No")}).to_csv(index=False).encode()


def _trained(tmp_path, data: bytes, *args: str) -> dict:
    """entry/train.py run here on a file without an ID column (the product's upload finds IDs; the
    five-path test above trains through it on a file with one)."""
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "train.csv").write_bytes(data)
    train = entry_module("train")
    train.main(["--train", str(tmp_path / "train"), "--model-dir", str(tmp_path / "model"), *args])
    return train.model_fn(str(tmp_path / "model"))


def _encoded(model: dict, data: bytes, rows: int) -> tuple[np.ndarray, pd.DataFrame]:
    features = [f["name"] for f in model["schema"]["features"]]
    table = entry_module("dataset_schema").read_text_table(io.BytesIO(data)).head(rows)[features]
    kinds = {f["name"]: f["kind"] for f in model["schema"]["features"]}
    for name, kind in kinds.items():
        if kind == "numeric":
            table[name] = pd.to_numeric(table[name])
    encoded = model["pipeline"].named_steps["pre"].transform(table)
    return np.asarray(encoded, dtype=np.float64).astype(np.float32).astype(np.float64), table


@pytest.mark.parametrize("algorithm", ["random_forest", "gradient_boosting"])
def test_numeric_only_contributions_are_shap_tree_explainers(tmp_path, algorithm):
    import shap  # a test-only reference (requirements-test.txt): a missing one fails, never skips
    data = _numeric_csv(1500, seed=3)
    model = _trained(tmp_path, data, "--algorithm", algorithm, "--target", "Churned", "--n_estimators", "40")
    explainer = entry_module("explanations").explainer_for(model)
    X, _ = _encoded(model, data, 300)
    assert explainer.owners.tolist() == list(range(X.shape[1])), "numeric only: one encoded column per feature"
    ours = explainer.contributions(X)
    reference = shap.TreeExplainer(model["pipeline"].steps[-1][1], feature_perturbation="tree_path_dependent")
    values = np.asarray(reference.shap_values(X, check_additivity=False))
    values = values[:, :, 1] if values.ndim == 3 else values  # a forest's class-1 probabilities
    assert np.abs(ours - values).max() <= 1e-9
    assert abs(explainer.base - float(np.ravel(reference.expected_value)[-1])) <= 1e-9


def _tree_game(model) -> list[tuple]:
    """(tree_, scale) per tree with node values in output units, from scikit-learn's arrays directly."""
    est = model.estimators_
    if np.ndim(est) == 2:  # gradient boosting
        return [(e.tree_, float(model.learning_rate), False) for e in est[:, 0]]
    return [(e.tree_, 1.0 / len(est), True) for e in est]


def _value(tree, scale, classifier, x, players_in, owners, node=0) -> float:
    """Path-dependent expectation: a split on a player in the coalition follows the customer; any other
    split averages both sides by their training cover."""
    left, right = tree.children_left[node], tree.children_right[node]
    if left < 0:
        v = tree.value[node, 0]
        return scale * (v[1] / v.sum() if classifier else v[0])
    feature = tree.feature[node]
    if owners[feature] in players_in:
        nxt = left if x[feature] <= tree.threshold[node] else right
        return _value(tree, scale, classifier, x, players_in, owners, nxt)
    cl, cr = tree.weighted_n_node_samples[left], tree.weighted_n_node_samples[right]
    return (cl * _value(tree, scale, classifier, x, players_in, owners, left)
            + cr * _value(tree, scale, classifier, x, players_in, owners, right)) / (cl + cr)


def _group_shapley(model, x, owners, n_players) -> np.ndarray:
    game = _tree_game(model)
    v = {}
    for size in range(n_players + 1):
        for coalition in itertools.combinations(range(n_players), size):
            v[frozenset(coalition)] = sum(_value(t, s, c, x, set(coalition), owners) for t, s, c in game)
    phi = np.zeros(n_players)
    for i in range(n_players):
        others = [j for j in range(n_players) if j != i]
        for size in range(n_players):
            weight = math.factorial(size) * math.factorial(n_players - size - 1) / math.factorial(n_players)
            for coalition in itertools.combinations(others, size):
                s = frozenset(coalition)
                phi[i] += weight * (v[s | {i}] - v[s])
    return phi


@pytest.mark.parametrize("algorithm", ["random_forest", "gradient_boosting"])
def test_with_categoricals_contributions_are_the_exact_group_shapley_value(tmp_path, algorithm):
    data = _categorical_csv(1200, seed=8)
    model = _trained(tmp_path, data, "--algorithm", algorithm, "--target", "left", "--n_estimators", "6",
                     "--max_depth", "4")
    explainer = entry_module("explanations").explainer_for(model)
    X, table = _encoded(model, data, 25)
    assert X.shape[1] > len(explainer.features), "one-hot columns: several encoded columns per player"
    ours = explainer.contributions(X)
    for r in range(len(X)):
        exact = _group_shapley(explainer.model, X[r], explainer.owners, len(explainer.features))
        assert np.abs(ours[r] - exact).max() <= 1e-9, table.iloc[r].to_dict()


def test_a_logistic_regressions_importance_does_not_grow_with_a_columns_levels(tmp_path):
    """A 60-level column of noise against one strong number: summed |coefficients| over its levels gave the
    noise more importance than the signal; the spread of its pushes (what the model really does with it:
    a little overfitting) gives it a small share."""
    rng = np.random.default_rng(5)
    rows = 3000
    signal = rng.normal(size=rows)
    frame = pd.DataFrame({"signal": np.round(signal, 3),
                          "noise": rng.choice([f"level{k:02d}" for k in range(60)], rows),
                          "churn": np.where(2 * signal + rng.logistic(size=rows) > 0, "yes", "no")})
    data = frame.to_csv(index=False).encode()
    model_dir = tmp_path / "model"
    _trained(tmp_path, data, "--algorithm", "logistic_regression", "--target", "churn")
    evaluation = json.loads((model_dir / "evaluation.json").read_text())
    importance = {i["feature"]: i["importance"] for i in evaluation["feature_importance"]}
    assert importance["signal"] > 3 * importance["noise"], importance
    coef_sum = {}  # what the old rule said, to show the test tells the two apart
    pipeline = entry_module("train").model_fn(str(model_dir))["pipeline"]
    coef = np.abs(pipeline.named_steps["model"].coef_.ravel())
    owners = entry_module("model_pipeline").encoded_owners(pipeline, ["signal"], ["noise"])
    for owner, c in zip(owners, coef, strict=True):
        coef_sum[owner] = coef_sum.get(owner, 0.0) + c
    assert coef_sum["noise"] > coef_sum["signal"], coef_sum


def test_explained_files_are_sent_in_requests_that_stay_inside_the_endpoints_time_limit():
    """Exact TreeSHAP costs milliseconds a row on a deep forest: ``score_batch`` with reasons sends at most
    EXPLAINED_CHUNK rows a request (answers do not depend on the request's size); without, the caller's size."""
    from churn_core.endpoints.scoring import EXPLAINED_CHUNK, score_frame

    schema = {"features": [{"name": "a", "kind": "numeric", "min": 0, "max": 10, "median": 1}]}
    sizes = []

    def endpoint(body: str, explain: int) -> dict:
        rows = body.strip().splitlines()[1:]
        sizes.append((len(rows), explain))
        why = {"space": "probability", "method": "tree_shap", "base": 0.2, "output": 0.3, "other": 0.0,
               "reasons": [{"feature": "a", "contribution": 0.1, "value": 1.0}]}
        return {"predictions": [dict({"label": 0, "churn_probability": 0.3}, **({"reasons": why} if explain else {}))
                                for _ in rows]}

    frame = pd.DataFrame({"a": ["1"] * (2 * EXPLAINED_CHUNK + 7)})
    explained = score_frame(endpoint, frame, schema, chunk_size=2000, threshold=0.5, reasons=True)
    assert sizes == [(EXPLAINED_CHUNK, 1), (EXPLAINED_CHUNK, 1), (7, 1)]
    assert explained.scored["top_reason"].eq("a = 1 (+10.0 pts)").all()
    sizes.clear()
    score_frame(endpoint, frame, schema, chunk_size=2000, threshold=0.5, reasons=False)
    assert sizes == [(len(frame), 0)]
