"""Issue 24, item 2: every answer names its production variant (SageMaker's X-Amzn-Invoked-Production-Variant
header, and ``variant`` in each named-record prediction), and is labelled and banded at that variant's own
threshold; the seed's ``{"Input": …}`` answer is unchanged."""

from __future__ import annotations

import json
from collections import Counter

import pytest
import requests

from churn_core.paths import entry_module

THRESHOLDS = {1: 0.22, 2: 0.41}  # subs v1 (a forest) and subs v2 (a logistic regression), far from 0.5


@pytest.fixture
def split(registry_with_two_versions):
    """subs v1 and v2 behind one endpoint, 80/20, each with its own threshold."""
    p = registry_with_two_versions
    for version, threshold in THRESHOLDS.items():
        p.set_threshold(("subs", version), threshold, note="split test")
    p.deploy_version("subs", 1, "split-ep")
    p.set_variants("split-ep", [("subs", 1, 80), ("subs", 2, 20)])
    yield p
    p.delete_endpoint("split-ep")


def rows(p, count: int):
    frame = p.read_dataset("subs", "test")
    features = [f["name"] for f in p.model_schema("subs-rf")["features"]]
    table = frame[features].head(count).astype(str).reset_index(drop=True)
    return table, [{k: (None if v == "" else v) for k, v in r.items()} for r in table.to_dict("records")]


def test_a_split_endpoints_answers_name_their_variant_and_use_its_threshold(split):
    p = split
    names = {v["variant"]: v for v in p.describe_endpoint("split-ep").variants}
    threshold = {name: THRESHOLDS[int(v["version"].rsplit("v", 1)[1])] for name, v in names.items()}
    assert sorted(threshold) == ["subs-v1", "subs-v2"]
    _, records = rows(p, 20)
    body = json.dumps({"instances": records}).encode()
    seen = Counter()
    url = p.describe_endpoint("split-ep").url
    with requests.Session() as session:
        for _ in range(60):
            resp = session.post(url + "/invocations", data=body, headers={"Content-Type": "application/json"})
            assert resp.status_code == 200, resp.text
            header = resp.headers["X-Amzn-Invoked-Production-Variant"]
            seen[header] += 1
            for prediction in resp.json()["predictions"]:
                assert prediction["variant"] == header
                assert prediction["label"] == int(prediction["churn_probability"] > threshold[header])
    assert set(seen) == set(threshold) and seen["subs-v1"] > seen["subs-v2"], seen
    answer = p.invoke("split-ep", {"instances": records[:3]})["predictions"]
    assert {a["variant"] for a in answer} <= set(threshold) and len({a["variant"] for a in answer}) == 1

    results = [p.score_customer("split-ep", records[0]) for _ in range(30)]  # Predict's one customer
    assert {r["variant"] for r in results} == set(threshold)
    for r in results:
        prob = r["prediction"]["churn_probability"]
        assert r["threshold"] == threshold[r["variant"]] and r["prediction"]["variant"] == r["variant"]
        assert r["band"] == ("high" if prob > r["threshold"] else "medium" if prob > r["threshold"] / 2 else "low")
        assert r["reasons"] is None or r["reasons"]["reasons"]


def test_a_split_endpoints_scored_file_labels_each_row_at_the_threshold_of_the_variant_that_answered(split):
    p = split
    table, _ = rows(p, 200)
    by_model = {f"subs-v{n}": p.test_predictions(("subs", n))[1][:200] for n in (1, 2)}
    threshold = {"subs-v1": THRESHOLDS[1], "subs-v2": THRESHOLDS[2]}
    batch = p.score_batch("split-ep", table, chunk_size=5, reasons=False)
    assert set(batch.variants) == set(threshold) and sum(batch.variants.values()) == 200
    counted = Counter()
    for row in batch.scored.itertuples():
        i = row.line - 2
        variant = next(v for v, proba in by_model.items() if abs(proba[i] - row.churn_probability) < 1e-9)
        counted[variant] += 1
        assert row.predicted_churn == int(row.churn_probability > threshold[variant])
        t = threshold[variant]
        assert row.risk == ("high" if row.churn_probability > t else "medium" if row.churn_probability > t / 2
                            else "low")
    assert counted == Counter(batch.variants)


def test_the_container_names_the_variant_its_environment_gives_and_the_seed_answer_stays_byte_for_byte(monkeypatch):
    entry = entry_module("train")
    schema = {"features": [{"name": f"f{i}", "kind": "numeric", "missing": 0} for i in range(10)]}
    parsed = entry.input_fn(b'{"Input": [[128,1,1,2.70,1,265.1,110,89.0,9.87,10.0]]}', "application/json")
    checked = entry.check_rows(parsed, entry.compile_schema(schema))
    body, _ = entry.output_fn({"labels": [0], "probabilities": [0.125], "ids": checked.ids, "style": checked.style,
                               "variant": "champion-v1"}, "application/json")
    assert body == '{"Output": 0, "Probability": 0.125}'
    named = entry.output_fn({"labels": [1], "probabilities": [0.75], "ids": [{"customerID": "A-1"}],
                             "style": "instances", "variant": "challenger-v2"}, "application/json")[0]
    assert json.loads(named) == {"predictions": [{"label": 1, "churn_probability": 0.75, "variant": "challenger-v2",
                                                  "customerID": "A-1"}]}


def test_model_fn_reads_its_variant_and_threshold_from_the_environment(monkeypatch, tmp_path, model_tarballs):
    import io
    import tarfile

    with tarfile.open(fileobj=io.BytesIO(model_tarballs["model"]), mode="r:gz") as tar:
        tar.extractall(tmp_path, filter="data")
    entry = entry_module("train")
    monkeypatch.setenv("CHURN_VARIANT", "subs-v2")
    monkeypatch.setenv("CHURN_THRESHOLD", "0.05")
    model = entry.model_fn(str(tmp_path))
    assert model["variant"] == "subs-v2" and model["threshold"] == 0.05
    feature_names = [f["name"] for f in model["schema"]["features"]]
    record = {name: 1 for name in feature_names}
    answer = json.loads(entry.output_fn(entry.predict_fn(entry.input_fn(json.dumps({"instances": [record]}),
                                                                        "application/json"), model),
                                        "application/json")[0])["predictions"][0]
    assert answer["variant"] == "subs-v2" and answer["label"] == int(answer["churn_probability"] > 0.05)


@pytest.mark.aws
def test_on_sagemaker_each_variants_model_carries_its_name_and_threshold_and_answers_are_banded_by_it(
        platform, small_csv, model_tarballs, moto_stand_ins):
    """moto runs no container: the split's CreateModel requests are checked, and an answer is given the way
    SageMaker gives it (InvokedProductionVariant) to see Predict band it at that variant's threshold."""
    import io

    from botocore.response import StreamingBody

    from churn_core.endpoints.forms import example_record
    from tests.support.aws import capture, completed_jobs
    from tests.support.helpers import wait_until

    p = platform
    completed_jobs(p, small_csv, model_tarballs, "sm-a", "sm-b")
    for number, (job, threshold) in enumerate((("sm-a", 0.3), ("sm-b", 0.6)), start=1):
        p.register(job, group="sm")
        p.approve("sm", number, "ok")
        p.set_threshold(("sm", number), threshold)
    models = capture(p, "sagemaker", "CreateModel")
    p.deploy_version("sm", 1, "sm-split", wait=False)
    wait_until(lambda: p.describe_endpoint("sm-split").status == "InService", what="sm-split InService")
    p.set_variants("sm-split", [("sm", 1, 80), ("sm", 2, 20)])
    wait_until(lambda: p.describe_endpoint("sm-split").status == "InService", what="the split in service")
    environments = {m["PrimaryContainer"]["Environment"]["CHURN_VARIANT"]: m["PrimaryContainer"]["Environment"]
                    for m in models[1:]}
    assert {k: v["CHURN_THRESHOLD"] for k, v in environments.items()} == {"sm-v1": "0.3", "sm-v2": "0.6"}

    class Http:
        status_code = 200
        headers: dict = {}

    def challenger_answers(**_):
        body = json.dumps({"predictions": [{"label": 0, "churn_probability": 0.45}]}).encode()
        return Http(), {"Body": StreamingBody(io.BytesIO(body), len(body)), "ContentType": "application/json",
                        "InvokedProductionVariant": "sm-v2"}

    runtime = p.backend.client("sagemaker-runtime")
    runtime.meta.events.register("before-call.sagemaker-runtime.InvokeEndpoint", challenger_answers)
    try:
        result = p.score_customer("sm-split", example_record(p.model_schema("sm-a")), reasons=2)
    finally:
        runtime.meta.events.unregister("before-call.sagemaker-runtime.InvokeEndpoint", challenger_answers)
    assert result["variant"] == "sm-v2" and result["threshold"] == 0.6
    assert result["band"] == "medium", "0.45 is above the champion's 0.3 but below the challenger's own 0.6"
    p.delete_endpoint("sm-split")
