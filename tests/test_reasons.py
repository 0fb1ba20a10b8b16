"""Reasons per customer (issue 15): exact additivity for every algorithm on the reference schema and on a
categorical dataset, aggregated to original columns, asked per request without changing plain answers."""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pytest
import requests

import churn_core
from churn_core.paths import entry_module
from churn_core.data.sample import make_sample, make_subscription_sample
from tests.support.helpers import wait_for_job

ALGORITHMS = ("random_forest", "gradient_boosting", "logistic_regression")
DATA = {"reference-schema": lambda: make_sample(2400, seed=5), "categorical": lambda: make_subscription_sample(2400)}


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory):
    """Each algorithm trained on each dataset by train.py in this process: {(data, algorithm): model dir}."""
    train = entry_module("train")
    out = {}
    for data_name, make in DATA.items():
        base = tmp_path_factory.mktemp(data_name)
        (base / "train").mkdir()
        data = make()
        (base / "train" / "train.csv").write_bytes(data)
        for algorithm in ALGORITHMS:
            model_dir = base / algorithm
            train.main(["--algorithm", algorithm, "--train", str(base / "train"), "--model-dir", str(model_dir),
                        "--n_estimators", "60"])
            out[(data_name, algorithm)] = (model_dir, data)
    return out


def _records(model: dict, data: bytes, n: int) -> list[dict]:
    table = entry_module("dataset_schema").read_text_table(io.BytesIO(data)).tail(n)
    features = [f["name"] for f in model["schema"]["features"]]
    return [{k: (None if v == "" else v) for k, v in r.items()} for r in table[features].to_dict("records")]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("data_name", list(DATA))
def test_reasons_add_up_to_the_model_output_for_200_rows(model_dirs, data_name, algorithm):
    train = entry_module("train")
    model_dir, data = model_dirs[(data_name, algorithm)]
    model = train.model_fn(str(model_dir))
    records = _records(model, data, 200)
    features = [f["name"] for f in model["schema"]["features"]]
    for rows in (records[:50], records):  # the single-customer method, then the batch one
        body = json.dumps({"instances": rows, "explain": len(features)})
        prediction = train.predict_fn(train.input_fn(body, "application/json"), model)
        for p, why in zip(prediction["probabilities"], prediction["reasons"], strict=True):
            output = p if why["space"] == "probability" else math.log(p / (1 - p))
            total = why["base"] + sum(r["contribution"] for r in why["reasons"]) + why["other"]
            assert abs(total - output) < 1e-6, (why["method"], total, output)
            assert {r["feature"] for r in why["reasons"]} == set(features), "one entry per original column"
            assert why["other"] == 0.0
    space = {"random_forest": "probability"}.get(algorithm, "log_odds")
    assert prediction["reasons"][0]["space"] == space
    if data_name == "categorical":
        first = prediction["reasons"][0]["reasons"]
        assert "Contract" in [r["feature"] for r in first] and not any("_" in r["feature"] and "Month" in
                                                                       r["feature"] for r in first)


def test_the_method_is_named_and_missing_values_are_credited_to_their_column(model_dirs):
    train = entry_module("train")
    model_dir, data = model_dirs[("categorical", "random_forest")]
    model = train.model_fn(str(model_dir))
    record = _records(model, data, 1)[0]
    blank = dict(record, TotalCharges=None)
    answer = json.loads(train.output_fn(train.predict_fn(train.input_fn(
        json.dumps({"instances": [record, blank], "explain": 3})), model))[0])
    methods = {p["reasons"]["method"] for p in answer["predictions"]}
    assert methods == {"tree_shap"}
    totals = [next((r for r in p["reasons"]["reasons"] if r["feature"] == "TotalCharges"), None)
              for p in answer["predictions"]]
    assert totals[1] is None or totals[1]["value"] is None, "a blank is shown as blank, credited to its column"
    assert len(answer["predictions"][0]["reasons"]["reasons"]) == 3


@pytest.fixture(scope="module")
def why_endpoint(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("CHURN_HOME", str(tmp_path_factory.mktemp("reasons-live") / "state"))
    mp.setenv("CHURN_BACKEND", "local")
    p = churn_core.connect()
    try:
        p.upload_dataset("telecom", make_sample(1500, seed=4))
        p.start_training("telecom", {"algorithm": "random_forest", "n_estimators": 50}, name="tel")
        assert wait_for_job(p, "tel").status == "Completed"
        yield p, p.deploy("tel", "why-ep")
    finally:
        p.cleanup()
        mp.undo()


def test_an_explained_and_a_plain_request_on_the_same_endpoint(why_endpoint):
    p, ep = why_endpoint
    seed = b'{"Input": [[128,1,1,2.70,1,265.1,110,89.0,9.87,10.0]]}'
    plain = requests.post(ep.url + "/invocations", data=seed, headers={"Content-Type": "application/json"}).content
    assert set(json.loads(plain)) == {"Output", "Probability"}, "without the flag: the seed's answer, unchanged"
    explained = json.loads(requests.post(ep.url + "/invocations",
                                         data=b'{"Input": [[128,1,1,2.70,1,265.1,110,89.0,9.87,10.0]], "explain": 2}',
                                         headers={"Content-Type": "application/json"}).content)
    assert explained["Output"] == json.loads(plain)["Output"]
    assert explained["Probability"] == json.loads(plain)["Probability"]
    why = explained["Reasons"]
    assert len(why["reasons"]) == 2 and why["space"] == "probability"
    assert abs(why["base"] + sum(r["contribution"] for r in why["reasons"]) + why["other"]
               - explained["Probability"]) < 1e-6
    again = requests.post(ep.url + "/invocations", data=seed, headers={"Content-Type": "application/json"}).content
    assert again == plain, "asking for reasons once changes nothing for plain requests"
    named = p.invoke("why-ep", {"instances": [dict(zip([f["name"] for f in p.model_schema("tel")["features"]],
                                                       [128, 1, 1, 2.70, 1, 265.1, 110, 89.0, 9.87, 10.0],
                                                       strict=True))], "explain": 3})
    assert [r["feature"] for r in named["predictions"][0]["reasons"]["reasons"]][:1]
    for bad, fragment in (("lots", "'explain' must be true or a whole number"), (0, "from 1 to 50"),
                          (99, "from 1 to 50")):
        with pytest.raises(churn_core.ValidationError, match=fragment):
            p.invoke("why-ep", {"Input": [[128, 1, 1, 2.70, 1, 265.1, 110, 89.0, 9.87, 10.0]], "explain": bad})


def test_feature_importance_says_which_values_raise_risk(why_endpoint):
    p, _ = why_endpoint
    effects = {e["feature"]: e for e in p.evaluation("tel")["feature_effects"]}
    assert effects["CustServCalls"]["direction"] == "higher raises risk"
    assert all(e["direction"] in ("higher raises risk", "higher lowers risk", "no single direction")
               for e in effects.values())
    assert np.isfinite([e["mean_abs_push"] for e in effects.values()]).all()


def test_invoke_sends_a_pandas_nan_as_null_and_refuses_infinity():
    from churn_core.errors import ValidationError
    from churn_core.endpoints.scoring import encode_payload

    body = encode_payload({"instances": [{"tenure": float("nan"), "plan": "Yes"}]}, "application/json")
    assert json.loads(body) == {"instances": [{"tenure": None, "plan": "Yes"}]}
    with pytest.raises(ValidationError, match="send a finite number"):
        encode_payload({"instances": [[float("inf")]]}, "application/json")


def test_a_scored_file_gets_each_rows_risk_band_and_top_reason_from_the_endpoint(why_endpoint):
    """Batch scoring asks the endpoint for one reason per row (``text/csv; explain=1``): the top reason is the
    row's strongest push, as the JSON form gives it, and the risk band follows the model's threshold."""
    from churn_core.decisions.reasons import top_reason

    p, _ = why_endpoint
    frame = p.read_customers(make_sample(300, seed=9))
    result = p.score_batch("why-ep", frame, chunk_size=120)
    scored = result.scored
    assert len(scored) == 300 and not result.errors and result.reasons_note == ""
    assert scored["top_reason"].str.len().gt(0).all()
    threshold = p.model_threshold("tel")
    bands = np.where(scored["churn_probability"] > threshold, "high",
                     np.where(scored["churn_probability"] > threshold / 2, "medium", "low"))
    assert (scored["risk"] == bands).all()
    features = [f["name"] for f in p.model_schema("tel")["features"]]
    first = scored.iloc[0]  # alone, it gets the same reason as in the file (one method whatever the request size)
    alone = frame[features].iloc[[first["line"] - 2]].to_csv(index=False)
    answer = p.invoke("why-ep", alone, content_type="text/csv; explain=1")
    assert answer["predictions"][0]["reasons"]["method"] == "tree_shap"
    assert first["top_reason"] == top_reason(answer["predictions"][0]["reasons"])
    assert set(features) >= {first["top_reason"].split(" = ")[0]}
    plain = p.score_batch("why-ep", frame, reasons=False).scored
    assert "top_reason" not in plain and (plain["churn_probability"] == scored["churn_probability"]).all()
    body = frame.head(3).to_csv(index=False)
    for bad in ("explain=lots", "explain=0", "explain=51"):
        with pytest.raises(churn_core.ValidationError, match="'explain' in the content type must be"):
            p.invoke("why-ep", body, content_type="text/csv; " + bad)


def test_a_model_that_cannot_explain_is_scored_without_reasons_saying_why():
    """The client's fallback, with an endpoint stand-in that refuses reasons as the model server does."""
    from churn_core.errors import ValidationError
    from churn_core.decisions.reasons import NO_REASONS
    from churn_core.endpoints.scoring import score_frame

    schema = {"features": [{"name": "a", "kind": "numeric", "min": 0, "max": 10, "median": 1}]}
    asked = []

    def endpoint(body: str, explain: int) -> dict:
        asked.append(explain)
        if explain:
            raise ValidationError(f"Invalid input: {NO_REASONS} (ValueError: no explainer); retrain it.")
        rows = body.strip().splitlines()[1:]
        return {"predictions": [{"label": 0, "churn_probability": float(r) / 10} for r in rows]}

    import pandas as pd

    result = score_frame(endpoint, pd.DataFrame({"a": ["1", "2", "3"]}), schema, chunk_size=2, threshold=0.5,
                         reasons=True)
    assert asked == [1, 0, 0], "asked once, then never again"
    assert NO_REASONS in result.reasons_note and "top_reason" not in result.scored
    assert list(result.scored["churn_probability"]) == [0.3, 0.2, 0.1] and not result.errors
