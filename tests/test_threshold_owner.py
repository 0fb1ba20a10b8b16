"""Issue 24, item 1: a threshold belongs to the model that serves it (a job's model before registration, a
registered version after); every label and risk band of that model (version) uses it, and setting it on a
serving version updates its endpoint with no failed request."""

from __future__ import annotations

import json
import threading
import time

import pytest
import requests

from churn_core import ValidationError


def customers(p, model: str, rows: int = 200):
    """Test-split customers as text cells (the model's features) and as named records."""
    frame = p.read_dataset(p.get_model(model)["dataset"], "test")
    features = [f["name"] for f in p.model_schema(model)["features"]]
    table = frame[features].head(rows).astype(str).reset_index(drop=True)
    records = [{k: (None if v == "" else v) for k, v in r.items()} for r in table.to_dict("records")]
    return table, records


def a_threshold_that_matters(p, model: str) -> float:
    """A threshold between the test split's probabilities, far from 0.5, so labels at it differ from 0.5's."""
    _, proba = p.test_predictions(model)
    return round(float(sorted(proba)[len(proba) // 4]), 6) if sorted(proba)[len(proba) // 4] < 0.4 else 0.3


def test_a_version_has_its_own_threshold_and_every_path_labels_at_it(registry_with_two_versions):
    p = registry_with_two_versions
    p.set_alias("subs", 1, "champion")
    chosen = a_threshold_that_matters(p, "subs-rf")
    plan = p.plan_campaign(("subs", "champion"))  # the planner on a registered version
    assert plan.customers == len(p.test_predictions(("subs", 1))[0])
    p.set_threshold(("subs", "champion"), chosen, note="spring campaign", plan=plan)
    assert p.model_threshold(("subs", 1)) == pytest.approx(chosen)
    assert p.model_threshold("subs-rf") == 0.5, "the job's model keeps its own"
    record = p.threshold_record(("subs", 1))
    assert record["note"] == "spring campaign" and record["owner"] == "subs v1 (champion)"
    assert record["campaign"]["offer_cost"] == plan.offer_cost and record["campaign"]["contacted"] == plan.contacted
    assert next(v for v in p.list_versions("subs") if v.version == 1).threshold == pytest.approx(chosen)

    ep = p.deploy_version("subs", "champion", "thr-v1")
    table, records = customers(p, "subs-rf")
    answers = p.invoke(ep.name, {"instances": records})["predictions"]
    assert all(a["label"] == int(a["churn_probability"] > chosen) for a in answers)
    assert any(chosen < a["churn_probability"] <= 0.5 for a in answers), "labels differ from the 0.5 rule"
    one = p.score_customer(ep.name, records[0])
    assert one["threshold"] == pytest.approx(chosen) and one["variant"] == "AllTraffic"
    batch = p.score_batch(ep.name, table, reasons=False)
    by_line = batch.scored.set_index("line")
    for i, answer in enumerate(answers):  # Predict's file, the endpoint and the threshold agree row by row
        row = by_line.loc[i + 2]
        assert row["churn_probability"] == pytest.approx(answer["churn_probability"], abs=1e-12)
        assert row["predicted_churn"] == answer["label"]
        assert row["risk"] == ("high" if answer["label"] else
                               "medium" if answer["churn_probability"] > chosen / 2 else "low")
    assert batch.variants == {"AllTraffic": len(table)}
    from tests.support.helpers import wait_until  # a transform of the version (the Batch page's) agrees too

    job = p.start_transform(("subs", "champion"), table.to_csv(index=False).encode(), name="thr-batch")
    assert job.threshold == chosen and job.model == "subs-rf"
    wait_until(lambda: p.describe_transform("thr-batch").status in ("Completed", "Failed"), timeout=120,
               what="the transform")
    out = p.transform_output("thr-batch").set_index("line")
    assert len(out) == len(answers)
    for i, answer in enumerate(answers):
        assert out.loc[i + 2, "predicted_churn"] == answer["label"]
        assert out.loc[i + 2, "churn_probability"] == pytest.approx(answer["churn_probability"], abs=1e-9)
    at = p.evaluation("subs-rf")["at_threshold"]  # the Jobs page's figures at the job's own threshold (0.5)
    assert at["threshold"] == 0.5 and sum(map(sum, at["confusion_matrix"])) == len(p.test_predictions("subs-rf")[0])
    p.delete_endpoint(ep.name)

    with pytest.raises(ValidationError, match="between 0 and 1"):
        p.set_threshold(("subs", 1), float("nan"))
    with pytest.raises(ValidationError, match=r"\(group, version\)"):
        p.set_threshold(("subs",), 0.4)


def test_registering_carries_the_models_threshold_and_its_record(platform, train, sample_csv):
    p = train("sample", sample_csv, "thr-m", n_estimators=10)  # the telecom sample
    p.set_threshold("thr-m", 0.31, note="before registering")
    p.set_threshold("thr-m", 0.27, note="second thought")
    version = p.register("thr-m", group="thr")
    p.approve("thr", version.version, "ok")
    assert version.threshold == pytest.approx(0.27) and p.model_threshold(("thr", version.version)) == 0.27
    record = p.threshold_record(("thr", 1))
    assert record["note"] == "second thought" and [h["threshold"] for h in record["history"]] == [0.31]
    p.set_threshold("thr-m", 0.6)  # the job's model moves on; the registered version keeps its own, and it is said
    assert p.model_threshold(("thr", 1)) == pytest.approx(0.27)
    assert "its registered versions keep their own: thr v1" in p.events("job", "thr-m", limit=1)[0]["message"]
    ep = p.deploy_version("thr", 1, "thr-ep")
    _, records = customers(p, "thr-m", 150)
    answers = p.invoke(ep.name, {"instances": records})["predictions"]
    assert all(a["label"] == int(a["churn_probability"] > 0.27) for a in answers)
    assert p.evaluation("thr-m")["at_threshold"]["threshold"] == pytest.approx(0.6)
    p.delete_endpoint(ep.name)


def test_setting_the_threshold_of_a_serving_version_updates_its_endpoint_with_no_failed_request(
        registry_with_two_versions):
    p = registry_with_two_versions
    ep = p.deploy_version("subs", 2, "thr-live")
    _, records = customers(p, "subs-lr", 60)
    body = json.dumps({"instances": records}).encode()
    new = a_threshold_that_matters(p, "subs-lr")
    failures, answers, stop = [], [], threading.Event()

    def load():
        with requests.Session() as session:
            while not stop.is_set():
                try:
                    resp = session.post(ep.url + "/invocations", data=body, timeout=30,
                                        headers={"Content-Type": "application/json"})
                    if resp.status_code != 200:
                        raise RuntimeError(f"HTTP {resp.status_code}: {resp.text[:200]}")
                    answers.append((time.monotonic(), resp.json()["predictions"]))
                except Exception as exc:  # noqa: BLE001 - every failure counts
                    failures.append(f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=load, daemon=True) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    p.set_threshold(("subs", 2), new, note="wider")
    done = time.monotonic()
    time.sleep(0.5)
    stop.set()
    for t in threads:
        t.join(timeout=60)
    assert failures == [], failures[:5]
    later = [a for at, a in answers if at > done]
    assert later and all(x["label"] == int(x["churn_probability"] > new) for a in later for x in a)
    assert any(x["label"] != int(x["churn_probability"] > 0.5) for x in later[-1])
    described = p.describe_endpoint("thr-live")
    assert described.status == "InService" and described.variants[0]["threshold"] == pytest.approx(new)
    assert "endpoints_behind" not in p.threshold_record(("subs", 2))
    p.delete_endpoint("thr-live")


@pytest.mark.aws
def test_on_sagemaker_a_threshold_set_on_a_serving_version_is_a_new_model_and_an_update(
        platform, small_csv, model_tarballs, moto_stand_ins):
    from tests.support.aws import capture, completed_jobs

    p = platform
    completed_jobs(p, small_csv, model_tarballs, "sm-job")
    version = p.register("sm-job", group="sm")
    p.approve("sm", version.version, "ok")
    models = capture(p, "sagemaker", "CreateModel")
    updates = capture(p, "sagemaker", "UpdateEndpoint")
    p.deploy_version("sm", 1, "sm-ep", wait=False)
    assert models[-1]["PrimaryContainer"]["Environment"]["CHURN_VARIANT"] == "AllTraffic"
    assert "CHURN_THRESHOLD" not in models[-1]["PrimaryContainer"]["Environment"]  # the default, from the schema
    p.describe_endpoint("sm-ep")
    p.backend.client("sagemaker")  # the endpoint is InService on moto once described
    from tests.support.helpers import wait_until

    wait_until(lambda: p.describe_endpoint("sm-ep").status == "InService", what="sm-ep InService")
    p.set_threshold(("sm", 1), 0.3125)
    assert models[-1]["PrimaryContainer"]["Environment"]["CHURN_THRESHOLD"] == "0.3125"
    assert models[-1]["PrimaryContainer"]["Environment"]["CHURN_VARIANT"] == "AllTraffic"
    assert updates and updates[-1]["EndpointName"] == "sm-ep"
    wait_until(lambda: p.describe_endpoint("sm-ep").status == "InService", what="the update done")
    assert p.describe_endpoint("sm-ep").variants[0]["threshold"] == pytest.approx(0.3125)
    assert "endpoints_behind" not in p.threshold_record(("sm", 1))
    p.delete_endpoint("sm-ep")


def test_the_models_table_shows_each_versions_threshold_and_its_metrics_at_it(registry_with_two_versions):
    from tests.support.pages import open_page

    p = registry_with_two_versions
    p.set_threshold(("subs", 3), 0.2, note="a wide net")
    at = open_page("models")
    table = at.dataframe[0].value.set_index("version")
    assert table.loc["v3", "threshold"] == "0.200"
    in_force = p.evaluation("subs-bad")  # the job's evaluation, and at the version's own threshold:
    at_version = p.evaluation(("subs", 3))["at_threshold"]
    assert at_version["threshold"] == 0.2 and in_force["at_threshold"]["threshold"] == 0.5
    assert table.loc["v3", "Recall"] == pytest.approx(at_version["metrics"]["recall"])
    assert table.loc["v3", "Recall"] != pytest.approx(in_force["metrics"]["recall"]), "not training's (at 0.5)"
    assert table.loc["v3", "ROC AUC"] == pytest.approx(in_force["metrics"]["roc_auc"])
