"""Monitoring (issue 17): the baseline in Model Monitor's shapes, data capture in SageMaker's format (under
load, sampled, switched off at once, kept after the endpoint), drift that flags exactly what moved, the
schedule across a dashboard restart, and Prometheus metrics."""

from __future__ import annotations

import io
import json
import os
import signal
import threading
import time

import numpy as np
import pandas as pd
import pytest
import requests

import churn_core
from churn_core import ValidationError
from churn_core.monitoring import drift
from churn_core.paths import entry_module
from churn_core.storage.artifacts import read_json_member
from churn_core.data.sample import make_sample, make_subscription_sample
from tests.support.helpers import wait_for_job, wait_until


@pytest.fixture(scope="module")
def monitored(tmp_path_factory):
    """Two deployed models: the reference schema (numbers) and a subscription one (categories, an ID)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("CHURN_HOME", str(tmp_path_factory.mktemp("monitoring") / "state"))
    mp.setenv("CHURN_BACKEND", "local")
    p = churn_core.connect()
    try:
        p.upload_dataset("telecom", make_sample(rows=7000, seed=3))
        p.upload_dataset("subs", make_subscription_sample(7000, seed=21))
        p.start_training("telecom", {"algorithm": "random_forest", "n_estimators": 20}, name="tel-rf")
        p.start_training("subs", {"algorithm": "random_forest", "n_estimators": 20}, name="subs-rf")
        for job in ("tel-rf", "subs-rf"):
            assert wait_for_job(p, job).status == "Completed"
        p.deploy("tel-rf", "tel-ep", instance_count=2)
        p.deploy("subs-rf", "subs-ep")
        yield p
    finally:
        p.cleanup()
        mp.undo()


def records(p, dataset: str, model: str, n: int = 2000) -> list[dict]:
    frame = p.read_dataset(dataset, "test").head(n)
    features = [f["name"] for f in p.model_schema(model)["features"]] + p.model_schema(model)["id_columns"]
    return [{k: (None if v == "" else v) for k, v in r.items()} for r in frame[features].to_dict("records")]


def send(url: str, rows: list[dict], threads: int = 8) -> list[int]:
    """One customer per request, from ``threads`` keep-alive clients; the HTTP statuses."""
    statuses: list[int] = []
    lock = threading.Lock()

    def worker(part: list[dict]) -> None:
        with requests.Session() as session:
            for row in part:
                status = session.post(url + "/invocations", json={"instances": [row]}, timeout=30).status_code
                with lock:
                    statuses.append(status)

    pool = [threading.Thread(target=worker, args=(rows[i::threads],)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return statuses


def test_training_writes_a_baseline_in_model_monitor_shapes(monitored):
    p = monitored
    job = p.describe_training("subs-rf")
    artifact = p.store.get_bytes(job.model_key)
    stats = read_json_member(artifact, "statistics.json")
    constraints = read_json_member(artifact, "constraints.json")
    assert stats["version"] == 0 and stats["dataset"]["item_count"] == p.get_dataset("subs").n_train
    by_name = {f["name"]: f for f in stats["features"]}
    tenure = by_name["tenure"]
    assert tenure["inferred_type"] == "Integral"
    numbers = tenure["numerical_statistics"]
    assert set(numbers) >= {"common", "mean", "sum", "std_dev", "min", "max", "distribution"}
    assert set(numbers["common"]) == {"num_present", "num_missing"}
    assert sum(b["count"] for b in numbers["distribution"]["kll"]["buckets"]) == numbers["common"]["num_present"]
    contract = by_name["Contract"]
    assert contract["inferred_type"] == "String" and contract["string_statistics"]["distinct_count"] == 3
    buckets = contract["string_statistics"]["distribution"]["categorical"]["buckets"]
    assert {b["value"] for b in buckets} == {"Month-to-month", "One year", "Two year"}
    assert by_name["TotalCharges"]["numerical_statistics"]["common"]["num_missing"] > 0
    assert "prediction.churn_probability" in by_name
    limits = {c["name"]: c for c in constraints["features"]}
    assert limits["Contract"]["string_constraints"]["domains"] == [b["value"] for b in buckets]
    assert limits["tenure"]["num_constraints"] == {"is_non_negative": True}
    assert 0 < limits["TotalCharges"]["completeness"] < 1
    config = constraints["monitoring_config"]
    assert config["distribution_constraints"]["categorical_drift_method"] == "LInfinity"
    assert config["churn_thresholds"]["psi"] == 0.2 and config["churn_thresholds"]["linf"] == 0.1


def test_capture_under_concurrent_load_loses_and_duplicates_nothing(monitored):
    p = monitored
    p.deploy("subs-rf", "load-ep")  # its own endpoint: the module's other tests capture on subs-ep, in any order
    ep = p.set_capture("load-ep", 100)
    assert ep.capture_percent == 100
    rows = records(p, "subs", "subs-rf", 1000)
    assert send(ep.url, rows) == [200] * len(rows)
    wait_until(lambda: len(p.captured("load-ep")) >= len(rows), 30, what="every captured request on disk")
    captured = p.captured("load-ep")
    assert len(captured) == len(rows), "nothing lost, nothing written twice"
    assert captured["churn_probability"].notna().all() and captured["variant"].eq("AllTraffic").all()
    keys = [k for k in p.store.list("capture/load-ep/AllTraffic/") if k.endswith(".jsonl")]
    assert keys and all(len(k.split("/")) == 8 for k in keys), "capture/<ep>/<variant>/yyyy/mm/dd/hh/<file>"
    lines = [json.loads(line) for k in keys for line in p.store.get_bytes(k).decode().splitlines()]
    assert len({line["eventMetadata"]["eventId"] for line in lines}) == len(rows)
    first = lines[0]
    assert first["eventVersion"] == "0" and first["captureData"]["endpointInput"]["mode"] == "INPUT"
    assert first["captureData"]["endpointInput"]["encoding"] == "JSON"
    assert first["captureData"]["endpointOutput"]["observedContentType"] == "application/json"
    assert first["eventMetadata"]["inferenceTime"].endswith("Z")
    sent_ids = sorted(r["customerID"] for r in rows)
    got_ids = sorted(json.loads(line["captureData"]["endpointInput"]["data"])["instances"][0]["customerID"]
                     for line in lines)
    assert got_ids == sent_ids, "the capture holds exactly what the endpoint received"
    p.delete_endpoint("load-ep")


def test_sampling_share_and_switching_capture_off(monitored):
    p = monitored
    ep = p.set_capture("tel-ep", 30)  # two workers: the share holds across both
    before = len(p.captured("tel-ep"))
    rows = records(p, "telecom", "tel-rf", 2000) * 3
    rows = rows[:5000]
    assert send(ep.url, rows) == [200] * 5000
    time.sleep(1.0)
    share = (len(p.captured("tel-ep")) - before) / 5000
    assert 0.27 <= share <= 0.33, share
    p.set_capture("tel-ep", 0)
    count = len(p.captured("tel-ep"))
    send(ep.url, rows[:300])
    time.sleep(1.0)
    assert len(p.captured("tel-ep")) == count, "capture off stops writing at once"


def test_drift_flags_exactly_the_features_that_moved(monitored):
    p = monitored
    ep = p.set_capture("tel-ep", 100)
    start = time.time()
    rows = records(p, "telecom", "tel-rf", 2000)
    assert len(rows) == 2000
    assert send(ep.url, rows) == [200] * 2000
    wait_until(lambda: len(p.captured("tel-ep", since=start)) >= 2000, 30, what="2,000 captured requests")
    calm = p.drift_report(endpoint="tel-ep", since=start)
    assert drift.drifted_features(calm) == [], calm[calm["drifted"]]
    assert set(calm.columns) == {"feature", "metric", "value", "threshold", "drifted", "n", "verdict"}

    shifted_start = time.time()
    shifted = [dict(r, CustServCalls=float(r["CustServCalls"]) + 3) for r in rows]
    assert send(ep.url, shifted) == [200] * 2000
    wait_until(lambda: len(p.captured("tel-ep", since=shifted_start)) >= 2000, 30, what="the shifted requests")
    moved = p.drift_report(endpoint="tel-ep", since=shifted_start)
    assert drift.drifted_features(moved) == ["CustServCalls"], moved[moved["drifted"]]
    assert moved.iloc[0]["feature"] == "CustServCalls", "drifted features first"
    assert drift.prediction_shift(moved) > drift.prediction_shift(calm)
    history = p.drift_history("tel-ep")
    assert [h["drifted"] for h in history[:2]] == [["CustServCalls"], []]
    violations = json.loads(p.store.get_bytes(history[0]["violations_key"]))
    assert {v["feature_name"] for v in violations["violations"]} >= {"CustServCalls"}
    assert {v["constraint_check_type"] for v in violations["violations"]} <= {
        "baseline_drift_check", "categorical_values_check", "completeness_check"}


def test_each_model_is_judged_by_the_thresholds_stored_with_it(monitored, monkeypatch):
    """A model's constraints.json keeps the thresholds it was trained with; changing the code's defaults later must
    not re-judge it (they used to be written and never read back)."""
    p = monitored
    stored = read_json_member(p.store.get_bytes(p.get_model("tel-rf")["artifact_key"]),
                              "constraints.json")["monitoring_config"]["churn_thresholds"]
    defaults = entry_module("baseline").THRESHOLDS
    for name in stored:
        monkeypatch.setitem(defaults, name, 1e-9)  # a new release that would flag everything
    frame = p.read_dataset("telecom", "test").head(500)
    report = p.drift_report(data=frame.to_csv(index=False).encode(), model="tel-rf")
    assert drift.drifted_features(report) == [], report[report["drifted"]]
    for metric, limit in stored.items():
        assert set(report.loc[report["metric"] == metric, "threshold"]) <= {float(limit)}, metric
    asked = p.drift_report(data=frame.to_csv(index=False).encode(), model="tel-rf", thresholds={"psi": 0.0})
    assert set(asked.loc[asked["metric"] == "psi", "threshold"]) == {0.0}, "what the caller asks wins"


def test_a_category_share_change_is_flagged_and_files_can_be_checked_too(monitored):
    p = monitored
    ep = p.set_capture("subs-ep", 100)
    start = time.time()
    rows = records(p, "subs", "subs-rf", 2000)
    moved = 0
    for r in rows:
        if r["Contract"] == "Two year" and moved < 300:
            r["Contract"] = "Month-to-month"
            moved += 1
    assert send(ep.url, rows) == [200] * len(rows)
    wait_until(lambda: len(p.captured("subs-ep", since=start)) >= len(rows), 30, what="the captured requests")
    report = p.drift_report(endpoint="subs-ep", since=start)
    assert drift.drifted_features(report) == ["Contract"], report[report["drifted"]]
    linf = report[(report["feature"] == "Contract") & (report["metric"] == "linf")]["value"].item()
    assert linf > 0.1
    # the same check on a file, with no endpoint: the test split itself has not drifted
    test_split = p.store.get_bytes(p.get_dataset("subs").test_key)
    assert drift.drifted_features(p.drift_report(data=test_split, model="subs-rf")) == []
    with pytest.raises(ValidationError, match="lacks the model's feature column"):
        p.drift_report(data=b"a,b\n1,2\n", model="subs-rf")


def test_deleting_the_endpoint_keeps_its_captured_data(monitored, tmp_path):
    p = monitored
    p.deploy("subs-rf", "short-ep")
    ep = p.set_capture("short-ep", 100)
    send(ep.url, records(p, "subs", "subs-rf", 50), threads=2)
    wait_until(lambda: len(p.captured("short-ep")) == 50, 30, what="50 captured requests")
    p.delete_endpoint("short-ep")
    assert len(p.captured("short-ep")) == 50, "captured data is the user's: it stays after the endpoint"


def test_metrics_add_up_every_worker(monitored):
    p = monitored
    ep = p.describe_endpoint("tel-ep")

    def counted() -> tuple[str, float]:
        body = requests.get(ep.url + "/metrics", timeout=10).text
        return body, sum(float(line.rsplit(" ", 1)[1]) for line in body.splitlines()
                         if line.startswith('churn_invocations_total{') and 'status="200"' in line)

    _, before = counted()  # what the module's other tests sent, in whatever order they ran
    rows = records(p, "telecom", "tel-rf", 2000)
    assert send(ep.url, rows) == [200] * len(rows)
    body, after = counted()
    assert after - before >= len(rows), "both workers' counts"
    assert "churn_invocation_latency_seconds_bucket" in body and "churn_rows_scored_total" in body
    assert 'churn_model_info{' in body and 'model="tel-rf"' in body
    assert "churn_capture_writes_total" in body


def test_the_schedule_runs_and_survives_a_dashboard_restart(monitored):
    p = monitored
    p.set_capture("tel-ep", 100)
    before = len(p.drift_history("tel-ep"))
    p.schedule_monitoring("tel-ep", 0.05)  # every 3 s, on what was captured since the last report
    send(p.describe_endpoint("tel-ep").url, records(p, "telecom", "tel-rf", 400), threads=4)
    wait_until(lambda: len(p.drift_history("tel-ep")) > before, 60, what="a scheduled drift report")
    driver = p.catalog.one("SELECT pid FROM monitoring_schedules WHERE endpoint = 'tel-ep'")["pid"]
    os.kill(driver, signal.SIGKILL)
    import psutil

    wait_until(lambda: not psutil.pid_exists(driver) or psutil.Process(driver).status() == psutil.STATUS_ZOMBIE, 15,
               what="the killed scheduler to be gone")  # a SIGKILL lands a moment later on a busy machine
    restarted = churn_core.connect()  # a new dashboard finds the schedule's process gone and starts another
    new = wait_until(lambda: (r := restarted.catalog.one("SELECT pid FROM monitoring_schedules WHERE endpoint = "
                                                          "'tel-ep'")) and r["pid"] != driver and r["pid"], 30,
                     what="a new schedule process")
    count = len(restarted.drift_history("tel-ep"))
    send(p.describe_endpoint("tel-ep").url, records(p, "telecom", "tel-rf", 400), threads=4)
    wait_until(lambda: len(restarted.drift_history("tel-ep")) > count, 60, what="a report from the new process")
    restarted.schedule_monitoring("tel-ep", 0)
    assert restarted.catalog.one("SELECT * FROM monitoring_schedules WHERE endpoint = 'tel-ep'") is None
    wait_until(lambda: not psutil.pid_exists(new) or psutil.Process(new).status() == psutil.STATUS_ZOMBIE, 15,
               what="the schedule process to end")


def test_too_little_traffic_is_said_plainly(monitored):
    p = monitored
    with pytest.raises(ValidationError, match="a drift report needs at least 200"):
        p.drift_report(endpoint="subs-ep", since=time.time() + 3600)
    frame = pd.read_csv(io.BytesIO(make_subscription_sample(50, seed=1)), dtype=str, keep_default_na=False)
    report = p.drift_report(data=frame, model="subs-rf")
    assert isinstance(report, pd.DataFrame) and np.isfinite(report["value"]).all()
