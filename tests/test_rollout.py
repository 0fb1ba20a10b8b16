"""Safe rollout (issue 16): a live endpoint updated to another version with zero failed requests, a failed
update that leaves the old model serving, champion/challenger routing by weight, promotion, deletion."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import requests

import churn_core
from churn_core import BackendError, ConflictError


class Load:
    """Bounded closed-loop load: ``threads`` keep-alive clients sending one customer until stopped."""

    def __init__(self, url: str, body: bytes, threads: int = 8, seconds: float = 20.0) -> None:
        self.url, self.body, self.deadline = url, body, time.monotonic() + seconds
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.answers: list[tuple[float, str, float]] = []  # (time the request was sent, variant, probability)
        self.failures: list[str] = []
        self.threads = [threading.Thread(target=self.run, daemon=True) for _ in range(threads)]

    def run(self) -> None:
        with requests.Session() as session:
            while not self.stop.is_set() and time.monotonic() < self.deadline:
                try:
                    sent = time.monotonic()
                    resp = session.post(self.url + "/invocations", data=self.body,
                                        headers={"Content-Type": "application/json"}, timeout=30)
                    if resp.status_code != 200:
                        raise RuntimeError(f"HTTP {resp.status_code}: {resp.text[:200]}")
                    probability = resp.json()["predictions"][0]["churn_probability"]
                    with self.lock:
                        self.answers.append((sent, resp.headers["X-Amzn-Invoked-Production-Variant"], probability))
                except Exception as exc:  # noqa: BLE001 - every failure counts
                    with self.lock:
                        self.failures.append(f"{type(exc).__name__}: {exc}")

    def __enter__(self) -> "Load":
        for t in self.threads:
            t.start()
        time.sleep(0.5)  # traffic is flowing before the change
        return self

    def __exit__(self, *_) -> None:
        time.sleep(0.5)  # and keeps flowing after it
        self.stop.set()
        for t in self.threads:
            t.join(timeout=60)


def customer(p, model: str) -> bytes:
    frame = p.read_dataset("subs", "test")
    features = [f["name"] for f in p.model_schema(model)["features"]]
    record = {k: (None if v == "" else v) for k, v in frame[features].iloc[0].items()}
    return json.dumps({"instances": [record]}).encode()


def test_update_under_load_fails_no_request_and_switches_models(registry_with_two_versions):
    p = registry_with_two_versions
    ep = p.deploy_version("subs", 1, "live-ep")
    body = customer(p, "subs-rf")
    before = json.loads(requests.post(ep.url + "/invocations", data=body, timeout=10).text)
    with Load(ep.url, body) as load:
        started = time.monotonic()
        updated = p.update_endpoint("live-ep", "subs", 2)
        done = time.monotonic()
    assert updated.status == "InService" and updated.model == "subs-lr" and not updated.failure_reason
    assert load.failures == [], load.failures[:5]
    old = before["predictions"][0]["churn_probability"]
    earlier = [prob for sent, _, prob in load.answers if sent < started]
    later = [prob for sent, _, prob in load.answers if sent > done]
    assert earlier and set(earlier) == {old}, "the old model answers until the update"
    assert later and old not in later, "every request sent after the update returned gets the new model"
    assert len(load.answers) > 100
    assert [v["version"] for v in updated.variants] == ["subs v2"]
    configs = [r["name"] for r in p.catalog.query("SELECT name FROM endpoint_configs")]
    assert configs == [updated.config] and updated.config == "live-ep-config-2", "the old configuration is gone"
    events = [e["message"] for e in p.events("endpoint", "live-ep")]
    assert any("Updating from subs v1 to subs v2" in m for m in events)
    p.delete_endpoint("live-ep")


def test_an_update_to_a_model_that_cannot_serve_leaves_the_old_one_serving(registry_with_two_versions):
    p = registry_with_two_versions
    ep = p.deploy_version("subs", 1, "safe-ep")
    bad = p.get_version("subs", 3)
    artifact = p.store.path(bad.artifact_key)
    original = artifact.read_bytes()
    artifact.write_bytes(original[:-10] + b"tampered!!")  # the recorded SHA-256 no longer matches
    body = customer(p, "subs-rf")
    try:
        with Load(ep.url, body, seconds=15) as load, pytest.raises(BackendError, match="keeps serving subs v1"):
            p.update_endpoint("safe-ep", "subs", 3)
    finally:
        artifact.write_bytes(original)
    after = p.describe_endpoint("safe-ep")
    assert after.status == "InService" and after.model == "subs-rf" and after.pending_config == ""
    assert "failed and was rolled back" in after.failure_reason and "SHA-256" in after.failure_reason
    assert load.failures == [] and {a[1] for a in load.answers} == {"AllTraffic"}
    assert [v["version"] for v in after.variants] == ["subs v1"]
    p.delete_endpoint("safe-ep")


def test_champion_and_challenger_share_traffic_by_weight_then_the_challenger_is_promoted(registry_with_two_versions):
    p = registry_with_two_versions
    p.set_alias("subs", 1, "champion")
    p.set_alias("subs", 2, "challenger")
    ep = p.deploy_version("subs", "champion", "ab-ep")
    ep = p.set_variants("ab-ep", [("subs", "champion", 90), ("subs", "challenger", 10)])
    assert sorted((v["variant"], v["weight"]) for v in ep.variants) == [("subs-v1", 90.0), ("subs-v2", 10.0)]
    body = customer(p, "subs-rf")
    session = requests.Session()
    served = Counter(session.post(ep.url + "/invocations", data=body, timeout=10)
                     .headers["X-Amzn-Invoked-Production-Variant"] for _ in range(2000))
    assert abs(served["subs-v1"] / 2000 - 0.90) <= 0.05 and abs(served["subs-v2"] / 2000 - 0.10) <= 0.05, served
    explicit = session.post(ep.url + "/invocations", data=body, timeout=10,
                            headers={"X-Amzn-SageMaker-Target-Variant": "subs-v2"})
    assert explicit.headers["X-Amzn-Invoked-Production-Variant"] == "subs-v2"

    reweighted = p.set_variants("ab-ep", [("subs", 1, 50), ("subs", 2, 50)])  # same versions: weights in place
    assert reweighted.config == ep.config, "a weight change is not a new configuration"
    served = Counter(session.post(ep.url + "/invocations", data=body, timeout=10)
                     .headers["X-Amzn-Invoked-Production-Variant"] for _ in range(1000))
    assert 0.45 <= served["subs-v1"] / 1000 <= 0.55, served
    stats = p.describe_endpoint("ab-ep").variants
    assert all(v["stats"].get("invocations", 0) > 0 for v in stats), "per-variant counts for the page"
    info = [line for line in session.get(ep.url + "/metrics", timeout=10).text.splitlines()
            if line.startswith("churn_model_info{")]
    serving = sorted(line.split('weight="')[1].split('"')[0] for line in info if line.endswith(" 1.0"))
    assert serving == ["50", "50"], f"the old weights no longer read as serving: {info}"
    assert "Warning" not in p.endpoint_log("ab-ep"), "no Python warnings in the log an analyst reads"

    with Load(ep.url, body, seconds=15) as load:
        promoted = p.promote_challenger("ab-ep")
    assert load.failures == []
    assert [(v["variant"], v["version"]) for v in promoted.variants] == [("AllTraffic", "subs v2")]
    assert p.get_version("subs", "champion").version == 2
    with pytest.raises(Exception, match="no challenger"):
        p.get_version("subs", "challenger")
    with pytest.raises(ConflictError, match="serves one version"):
        p.promote_challenger("ab-ep")
    removed = p.delete_endpoint("ab-ep")
    assert removed["endpoint"] == "ab-ep"
    left = {t: p.catalog.scalar(f"SELECT COUNT(*) FROM {t}") for t in
            ("endpoints", "endpoint_configs", "endpoint_variants", "deployed_models")}
    assert left == {"endpoints": 0, "endpoint_configs": 0, "endpoint_variants": 0, "deployed_models": 0}, left
    lineage = {r["version"]: r["endpoints"] for r in p.lineage("subs")}
    assert {e["variant"] for e in lineage[2]} == {"subs-v2", "AllTraffic"}, "before and after the promotion"


def test_a_two_variant_endpoint_is_deleted_completely(registry_with_two_versions):
    p = registry_with_two_versions
    p.deploy_version("subs", 1, "two-ep")
    ep = p.set_variants("two-ep", [("subs", 1, 1), ("subs", 2, 1)])
    server, supervisor, folder = ep.server_pid, ep.pid, ep.workdir
    p.delete_endpoint("two-ep")
    import psutil

    assert not psutil.pid_exists(server) or psutil.Process(server).status() == psutil.STATUS_ZOMBIE
    assert not psutil.pid_exists(supervisor) or psutil.Process(supervisor).status() == psutil.STATUS_ZOMBIE
    assert folder and not Path(folder).exists()
    assert not list((p.settings.home / "endpoints").glob("two-ep*")), "its own folder endpoints/two-ep.<uid> went"


def test_an_updated_endpoint_keeps_its_own_deploy_folder_supervisor_and_server(registry_with_two_versions):
    """Per-deploy folders (endpoints/<name>.<uid>, a supervisor watching its own row) and updates fit together:
    an update and a champion/challenger change keep the row and its uid, so the supervisor never takes its
    row for replaced; the control file, unpacked models and stats are in that folder, where both the supervisor
    and the update code look; not one request fails; a delete then removes the folder and every process."""
    import psutil

    from churn_core.backends.local.endpoint import processes as endpoint_processes
    from churn_core.backends.local.endpoint.control import read_control
    from churn_core.backends.local.endpoint.supervisor import ROW_CHECK_SECONDS
    from churn_core.processes.detached import is_alive

    p = registry_with_two_versions
    ep = p.deploy_version("subs", 1, "kept-ep")
    folder = Path(ep.workdir)
    assert ep.status == "InService" and ep.uid and folder.name == f"kept-ep.{ep.uid}"
    supervisor, server = ep.pid, ep.server_pid
    v2 = p.get_version("subs", 2)
    body = customer(p, "subs-rf")
    with Load(ep.url, body, threads=4, seconds=60) as load:
        updated = p.update_endpoint("kept-ep", "subs", 2)
        both = p.set_variants("kept-ep", [("subs", 2, 70), ("subs", 1, 30)])
        time.sleep(10 * ROW_CHECK_SECONDS)  # the supervisor has looked at its row many times since
    assert load.failures == [], load.failures[:5]
    assert {a[1] for a in load.answers} >= {"AllTraffic", "subs-v1", "subs-v2"}, "every change was served"
    for after in (updated, both):
        assert after.status == "InService" and not after.failure_reason, (after.status, after.failure_reason)
        assert (after.uid, after.workdir, after.pid, after.server_pid) == (ep.uid, ep.workdir, supervisor, server)
    assert both.generation == 3 and sorted(v["variant"] for v in both.variants) == ["subs-v1", "subs-v2"]
    assert is_alive(supervisor, "endpoint.supervisor") and is_alive(server), "still the same processes"
    log = (folder / "supervisor.log").read_text()
    assert "gone or replaced" not in log and "stopped" not in log, log[-2000:]

    control = read_control(folder)  # what the supervisor restarts from, written by the update code
    assert control.generation >= 3 and {v.sha256 for v in control.variants} == {
        v2.artifact_sha256, p.get_version("subs", 1).artifact_sha256}
    assert (folder / "models" / v2.artifact_sha256 / ".verified").is_file(), "the probe unpacked it here"
    assert p.describe_endpoint("kept-ep").stats.get("invocations", 0) > 0, "stats read from the same folder"
    found = {proc.pid: proc.role for proc in endpoint_processes.find(p.settings.home) if proc.folder == folder.name}
    assert found.get(supervisor) == "supervisor" and found.get(server) == "server", found
    workers = [c.pid for c in psutil.Process(server).children()]
    assert workers

    p.delete_endpoint("kept-ep")
    assert not folder.exists()
    assert not list((p.settings.home / "endpoints").glob("kept-ep*"))
    for pid in (supervisor, server, *workers):
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE, pid
    assert not [proc for proc in endpoint_processes.find(p.settings.home) if proc.name == "kept-ep"]


def test_an_update_never_touches_a_later_deploy_of_the_same_name(registry_with_two_versions):
    """An update whose endpoint is deleted and deployed again meanwhile finishes or rolls back only its own
    deploy's rows: the new deploy (another uid, another folder) keeps its configuration and keeps serving."""
    p = registry_with_two_versions
    first = p.deploy_version("subs", 1, "again-ep")
    p.backend.update_endpoint = _delete_and_redeploy_first(p.backend.update_endpoint)
    try:
        with pytest.raises(BackendError, match="was not updated"):
            p.update_endpoint("again-ep", "subs", 2)
    finally:
        del p.backend.update_endpoint
    second = p.describe_endpoint("again-ep")
    assert second.uid != first.uid and second.workdir != first.workdir
    assert second.status == "InService" and second.pending_config == "" and second.model == "subs-rf"
    assert [v["version"] for v in second.variants] == ["subs v1"]
    assert not Path(first.workdir).exists()
    assert requests.post(second.url + "/invocations", data=customer(p, "subs-rf"), timeout=10).status_code == 200
    p.delete_endpoint("again-ep")


def test_another_session_looking_at_an_endpoint_mid_update_does_not_roll_it_back(registry_with_two_versions):
    """While an update checks its new model, another session (the Endpoints page refreshing) sees Updating and
    leaves it be: the update is pending while the process running it lives (update.json in the endpoint's
    folder). Before, the look found the server not yet switched, rolled the update back, and the update then
    switched the server anyway: the catalog said v1 while v2 answered."""
    p = registry_with_two_versions
    p.deploy_version("subs", 1, "look-ep")
    seen = []
    probe = p.backend._probe

    def looked_at(endpoint, variant):
        other = churn_core.connect().describe_endpoint("look-ep")
        seen.append((other.status, other.pending_config))
        probe(endpoint, variant)

    p.backend._probe = looked_at
    try:
        updated = p.update_endpoint("look-ep", "subs", 2)
    finally:
        del p.backend._probe
    assert seen and seen[0][0] == "Updating" and seen[0][1], seen
    assert updated.status == "InService" and updated.model == "subs-lr" and not updated.failure_reason
    assert [v["version"] for v in updated.variants] == ["subs v2"]
    assert not (Path(updated.workdir) / "update.json").exists()
    p.delete_endpoint("look-ep")


def _delete_and_redeploy_first(update):
    """The backend's update_endpoint, run after another session deleted the endpoint and deployed it again."""
    def racing(endpoint, config, variants, **kw):
        other = churn_core.connect()
        other.delete_endpoint(endpoint["name"])
        other.deploy_version("subs", 1, endpoint["name"])
        return update(endpoint, config, variants, **kw)

    return racing


# --------------------------------------------------------------------------- SageMaker, under moto


@pytest.mark.aws
def test_sagemaker_rollout_calls(monkeypatch, tmp_path, small_csv, model_tarballs, moto_stand_ins):
    from tests.support.aws import BUCKET, approved_versions, aws_client, capture, moto_account, nothing_left

    with moto_account(monkeypatch, tmp_path):
        p = churn_core.connect()
        approved_versions(p, small_csv, model_tarballs, "sm-a", "sm-b")
        configs = capture(p, "sagemaker", "CreateEndpointConfig")
        updates = capture(p, "sagemaker", "UpdateEndpoint")
        weights = capture(p, "sagemaker", "UpdateEndpointWeightsAndCapacities")
        deleted = capture(p, "sagemaker", "DeleteEndpointConfig")
        ep = p.deploy_version("ds", 1, "sm-ep")
        assert ep.status == "InService"

        p.set_capture("sm-ep", 25)  # on AWS a capture change is a new endpoint configuration
        capture_config = configs[-1]["DataCaptureConfig"]
        assert capture_config["EnableCapture"] is True and capture_config["InitialSamplingPercentage"] == 25
        assert capture_config["DestinationS3Uri"] == f"s3://{BUCKET}/churn/capture"
        assert {o["CaptureMode"] for o in capture_config["CaptureOptions"]} == {"Input", "Output"}
        assert updates[-1] == {"EndpointName": "sm-ep", "EndpointConfigName": configs[-1]["EndpointConfigName"]}
        ep = p.describe_endpoint("sm-ep")  # AWS reports the new configuration InService: the update completes
        assert ep.status == "InService" and ep.config == configs[-1]["EndpointConfigName"]
        assert deleted[-1] == {"EndpointConfigName": "sm-ep-config"}, "the old configuration is removed"
        described = aws_client("sagemaker").describe_endpoint_config(EndpointConfigName=ep.config)
        assert described["DataCaptureConfig"]["InitialSamplingPercentage"] == 25

        p.set_variants("sm-ep", [("ds", 1, 90), ("ds", 2, 10)])
        variants = {v["VariantName"]: v for v in configs[-1]["ProductionVariants"]}
        assert {n: v["InitialVariantWeight"] for n, v in variants.items()} == {"ds-v1": 90.0, "ds-v2": 10.0}
        assert configs[-1]["DataCaptureConfig"]["InitialSamplingPercentage"] == 25, "capture carries over"
        p.describe_endpoint("sm-ep")
        p.set_variants("sm-ep", [("ds", 1, 50), ("ds", 2, 50)])
        assert weights[-1] == {"EndpointName": "sm-ep", "DesiredWeightsAndCapacities": [
            {"VariantName": "ds-v1", "DesiredWeight": 50.0}, {"VariantName": "ds-v2", "DesiredWeight": 50.0}]}
        p.update_endpoint("sm-ep", "ds", 2)
        assert [v["VariantName"] for v in configs[-1]["ProductionVariants"]] == ["AllTraffic"]
        assert p.describe_endpoint("sm-ep").model == "sm-b"
        p.delete_endpoint("sm-ep")
        assert nothing_left() == {"models": [], "configs": [], "endpoints": []}
