"""Local endpoints: real server processes, real HTTP on 127.0.0.1, supervision, deletion, races."""

from __future__ import annotations

import json
import os
import signal
import socket
import threading

import boto3
import pytest
import requests

import churn_core
from churn_core.errors import ConflictError, NotFoundError, ValidationError
from churn_core.backends.local.backend import ping
from churn_core.processes.detached import is_alive
from tests.support.data import SEED_ROW
from tests.support.helpers import wait_until

SEED = {"Input": [SEED_ROW]}


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def test_deploy_invoke_by_http_boto3_named_and_csv_then_delete(trained):
    p = trained
    ep = p.deploy("model-a", "churn-rf-endpoint", "ml.m5.large", 1)
    assert ep.status == "InService", ep.failure_reason
    assert ep.url.startswith("http://127.0.0.1:")
    raw = requests.post(f"{ep.url}/invocations", data=json.dumps(SEED), headers={"Content-Type": "application/json"})
    assert raw.status_code == 200 and isinstance(raw.json()["Output"], int)
    runtime = boto3.client("sagemaker-runtime", endpoint_url=ep.url, region_name="us-east-1",
                           aws_access_key_id="local", aws_secret_access_key="local")
    answer = runtime.invoke_endpoint(EndpointName=ep.name, ContentType="application/json", Body=json.dumps(SEED))
    assert isinstance(json.loads(answer["Body"].read())["Output"], int)
    named = p.invoke(ep.name, {"instances": [dict(zip([f["name"] for f in p.model_schema("model-a")["features"]],
                                                        SEED_ROW, strict=True))]})
    assert named["predictions"][0]["label"] in (0, 1) and 0 <= named["predictions"][0]["churn_probability"] <= 1
    csv_answer = p.invoke(ep.name, ",".join(map(str, SEED_ROW)), content_type="text/csv")
    assert csv_answer["predictions"][0]["label"] in (0, 1)
    csv_lines = p.invoke(ep.name, ",".join(map(str, SEED_ROW)), content_type="text/csv", accept="text/csv")
    label, probability = csv_lines.strip().split(",")
    assert label in ("0", "1") and 0 <= float(probability) <= 1
    with pytest.raises(ValidationError, match="HTTP 4"):
        p.invoke(ep.name, {"Input": [[1, 2, 3]]})
    assert p.describe_endpoint(ep.name).invocations >= 4 or wait_until(
        lambda: p.describe_endpoint(ep.name).invocations >= 4, 5, what="stats")
    removed = p.delete_endpoint(ep.name)
    assert removed == {"endpoint": "churn-rf-endpoint", "endpoint_config": "churn-rf-endpoint-config",
                       "model": "churn-rf-endpoint-model"}
    assert not is_alive(ep.pid) and not is_alive(ep.server_pid)
    assert wait_until(lambda: port_is_free(ep.port), 10, what="port to be freed")
    with pytest.raises(NotFoundError):
        p.describe_endpoint(ep.name)
    assert (
        p.catalog.query("SELECT * FROM endpoint_configs") == []
        and p.catalog.query("SELECT * FROM deployed_models") == []
    )
    assert any("deleted" in e["message"] for e in p.events("endpoint", ep.name))


def test_two_workers_and_the_server_binds_loopback_only(trained):
    p = trained
    ep = p.deploy("model-a", "two-workers", instance_count=2)
    assert ep.status == "InService"
    import psutil

    server = psutil.Process(ep.server_pid)
    wait_until(lambda: len(server.children()) == 2, 20, what="two worker processes")
    listening = [c.laddr for c in server.net_connections(kind="tcp") if c.status == psutil.CONN_LISTEN]
    assert listening and all(addr.ip == "127.0.0.1" for addr in listening)
    p.delete_endpoint(ep.name)


def test_kill_9_of_the_server_is_detected_and_restarted(trained):
    p = trained
    ep = p.deploy("model-a", "crashy", instance_count=1)
    os.kill(ep.server_pid, signal.SIGKILL)
    restarted = wait_until(
        lambda: (
            (e := p.describe_endpoint(ep.name)).restarts >= 1
            and e.status == "InService"
            and e.server_pid != ep.server_pid
            and e
        ),
        30,
        what="restart",
    )
    assert restarted.url == ep.url  # same port
    wait_until(lambda: ping(ep.url), 60, what="the restarted server to answer /ping")
    assert p.invoke(ep.name, SEED)["Output"] in (0, 1)
    assert any("died" in e["message"] and "SIGKILL" in e["message"] for e in p.events("endpoint", ep.name))
    p.delete_endpoint(ep.name)


def test_kill_9_of_the_supervisor_is_repaired_on_the_next_read(trained):
    p = trained
    ep = p.deploy("model-a", "orphaned")
    os.kill(ep.pid, signal.SIGKILL)
    wait_until(lambda: not is_alive(ep.pid), 5, what="supervisor death")
    repaired = p.describe_endpoint(ep.name)
    assert repaired.pid != ep.pid
    healthy = wait_until(
        lambda: (
            (e := p.describe_endpoint(ep.name)).status == "InService" and is_alive(e.server_pid) and ping(e.url) and e
        ),
        60,
        what="serving again",
    )
    assert p.invoke(healthy.name, SEED)["Output"] in (0, 1)
    p.delete_endpoint(ep.name)


@pytest.mark.slow
def test_repeated_crashes_end_in_failed_with_reason(trained):
    p = trained
    ep = p.deploy("model-a", "always-crashing")
    killed: set[int] = set()

    def fresh_server_pid():
        current = p.describe_endpoint(ep.name)
        if current.status == "Failed":
            return -1
        pid = current.server_pid
        return pid if pid and pid not in killed and is_alive(pid) else None

    for _ in range(3):
        pid = wait_until(fresh_server_pid, 60, what="a running server to kill")
        if pid == -1:
            break
        killed.add(pid)
        os.kill(pid, signal.SIGKILL)
    failed = wait_until(lambda: (e := p.describe_endpoint(ep.name)).status == "Failed" and e, 30, what="Failed")
    assert "crashed 3 times" in failed.failure_reason and "SIGKILL" in failed.failure_reason
    with pytest.raises(churn_core.BackendError, match="not InService"):
        p.invoke(ep.name, SEED)
    p.delete_endpoint(ep.name)


def test_tampered_artifact_is_refused_and_never_loaded(trained, tmp_path):
    p = trained
    model = p.get_model("model-a")
    path = p.store.path(model["artifact_key"])
    original = path.read_bytes()
    try:
        path.write_bytes(original[:-10] + b"0123456789")
        ep = p.deploy("model-a", "tampered")
        assert ep.status == "Failed"
        assert "SHA-256" in ep.failure_reason
    finally:
        path.write_bytes(original)
    p.delete_endpoint("tampered")


def test_concurrent_same_name_deploys_one_wins(trained):
    results: list[object] = []
    barrier = threading.Barrier(2)

    def deploy():
        session = churn_core.connect()
        barrier.wait()
        try:
            results.append(session.deploy("model-a", "contested", wait=False))
        except ConflictError as exc:
            results.append(exc)

    threads = [threading.Thread(target=deploy) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    errors = [r for r in results if isinstance(r, ConflictError)]
    assert len(errors) == 1 and "already exists" in str(errors[0])
    assert trained.wait_for_endpoint("contested").status == "InService"
    trained.delete_endpoint("contested")


def test_cleanup_removes_every_endpoint_and_reports_it(trained):
    p = trained
    for name in ("clean-a", "clean-b"):
        p.deploy("model-a", name, wait=False)
    eps = [p.wait_for_endpoint(n) for n in ("clean-a", "clean-b")]
    removed = p.cleanup()
    assert {r["endpoint"] for r in removed} >= {"clean-a", "clean-b"}
    assert p.list_endpoints() == []
    assert all(not is_alive(e.server_pid) for e in eps)


def test_a_restarted_dashboard_leaves_endpoints_serving(trained):
    p = trained
    ep = p.deploy("model-a", "survivor")
    again = churn_core.connect()
    listed = again.describe_endpoint("survivor")
    assert listed.status == "InService" and listed.server_pid == ep.server_pid
    assert again.invoke("survivor", SEED)["Output"] in (0, 1)
    again.delete_endpoint("survivor")


def test_deploy_rejects_bad_input(trained):
    p = trained
    with pytest.raises(ValidationError, match="naming rule"):
        p.deploy("model-a", "bad/name")
    with pytest.raises(NotFoundError, match="No trained model"):
        p.deploy("no-such-model", "whatever")
    with pytest.raises(ValidationError, match="between 1 and 8"):
        p.deploy("model-a", "too-many", instance_count=50)


def test_derived_names_stay_unique_when_a_long_name_is_cut():
    """Issue 26, item 11: '-config' / '-model' were made by cutting the endpoint name at 56 characters."""
    from churn_core.names import NAME_RE, derived_name

    assert derived_name("churn-ep", "-config") == "churn-ep-config"  # a name that fits is unchanged
    names = ["e" * 62 + "1", "e" * 62 + "2", "e" * 56 + "-" + "x" * 6, "e" * 57]
    for suffix in ("-config", "-model", "-config-2", "-m2-1", "-batch-2026-12-07-19-00-00"):
        derived = [derived_name(n, suffix) for n in names]
        assert len(set(derived)) == len(names), derived
        assert all(len(d) <= 63 and NAME_RE.fullmatch(d) and d.endswith(suffix) for d in derived), derived


def test_endpoint_names_differing_only_after_character_56_both_deploy(trained):
    p = trained
    first, second = "e" * 62 + "1", "e" * 62 + "2"
    try:
        a = p.deploy("model-a", first, "ml.m5.large", 1, wait=False)
        b = p.deploy("model-a", second, "ml.m5.large", 1, wait=False)  # was "already exists" (the same config)
        assert a.config != b.config and len(a.config) <= 63 and len(b.config) <= 63
    finally:
        for name in (first, second):
            try:
                p.delete_endpoint(name)
            except NotFoundError:
                pass


@pytest.mark.parametrize("count", [float("inf"), float("nan"), "many", 2.5])
def test_a_deploy_refuses_an_instance_count_that_is_not_a_whole_number(trained, count):
    """Issue 26, item 11 (the class of start_tuning(max_trials=inf)): int(inf) was a raw OverflowError."""
    with pytest.raises(ValidationError, match="Instance count must be a whole number between 1 and 8"):
        trained.deploy("model-a", "count-ep", "ml.m5.large", count)
