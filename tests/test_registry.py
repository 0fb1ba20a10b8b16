"""The model registry (issue 16): versions, approval, aliases, the deployment gate, lineage; and the same
semantics on SageMaker (model package groups and packages) under moto."""

from __future__ import annotations

import threading

import pytest

import churn_core
from churn_core import ConflictError, NotFoundError, ValidationError
from churn_core.data.sample import make_subscription_sample
from tests.support.helpers import wait_for_job


@pytest.fixture(scope="module")
def two_models(tmp_path_factory):
    """A categorical dataset and two small trained models on the local backend."""
    mp = pytest.MonkeyPatch()
    home = tmp_path_factory.mktemp("registry") / "state"
    mp.setenv("CHURN_HOME", str(home))
    mp.setenv("CHURN_BACKEND", "local")
    mp.delenv("CHURN_REQUIRE_APPROVAL", raising=False)
    p = churn_core.connect()
    try:
        p.upload_dataset("subs", make_subscription_sample(600, seed=2))
        for name, trees in (("subs-a", 10), ("subs-b", 20), ("subs-c", 5)):
            p.start_training("subs", {"algorithm": "random_forest", "n_estimators": trees}, name=name)
        for name in ("subs-a", "subs-b", "subs-c"):
            assert wait_for_job(p, name).status == "Completed"
        yield p, home
    finally:
        p.cleanup()
        mp.undo()


def test_versions_are_numbered_per_group_and_snapshot_the_model(two_models):
    p, _ = two_models
    v1 = p.register("subs-a", note="first try")
    v2 = p.register("subs-b", group="subs")
    assert (v1.group, v1.version, v1.status) == ("subs", 1, "PendingManualApproval")
    assert v2.version == 2 and v2.model == "subs-b" and v1.note == "first try"
    job = p.describe_training("subs-a")
    assert v1.metrics == job.metrics and v1.hyperparameters == job.hyperparameters
    assert v1.dataset_sha256 == job.dataset_sha256 and v1.artifact_sha256 == job.model_sha256
    assert v1.code_sha256 == job.code_sha256
    assert [v.version for v in p.list_versions("subs")] == [2, 1]
    other = p.register("subs-a", group="retention-q4")
    assert other.version == 1, "numbering is per group"
    with pytest.raises(ValidationError, match="naming rule"):
        p.register("subs-a", group="bad group!")
    with pytest.raises(NotFoundError):
        p.register("no-such-model")


def test_two_concurrent_registrations_never_share_a_number(two_models):
    p, _ = two_models
    results, barrier = [], threading.Barrier(4)

    def register(model: str) -> None:
        session = churn_core.connect()
        barrier.wait()
        results.append(session.register(model, group="race").version)

    threads = [threading.Thread(target=register, args=(m,)) for m in ("subs-a", "subs-b", "subs-a", "subs-b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [1, 2, 3, 4]


def test_approval_gates_deployment_and_every_change_is_an_event(two_models):
    p, _ = two_models
    version = p.register("subs-a", group="gate")
    with pytest.raises(ConflictError, match=r"gate v1 is waiting for approval: only approved versions"):
        p.deploy_version("gate", 1, "gate-ep")
    assert p.endpoint_names() == [] or "gate-ep" not in p.endpoint_names()
    rejected = p.reject("gate", 1, note="recall too low")
    assert rejected.status == "Rejected" and rejected.status_note == "recall too low" and rejected.status_at
    with pytest.raises(ConflictError, match="is rejected"):
        p.deploy_version("gate", version.version, "gate-ep")
    with pytest.raises(ConflictError, match="cannot be the champion"):
        p.set_alias("gate", 1, "champion")
    second = p.register("subs-b", group="gate")
    approved = p.approve("gate", second.version, note="beats v1 on the holdout")
    assert approved.status == "Approved"
    ep = p.deploy_version("gate", approved.version, "gate-ep")
    assert ep.status == "InService" and ep.model == "subs-b"
    events = [e["message"] for e in p.events("registry")]
    assert any("waiting for approval → rejected: recall too low" in m for m in events)
    assert any("waiting for approval → approved: beats v1 on the holdout" in m for m in events)
    assert any("registered from model subs-a" in m for m in events)
    with pytest.raises(ValidationError, match="not back"):
        p.registry.set_status("gate", 2, "PendingManualApproval", "")
    p.delete_endpoint("gate-ep")


def test_aliases_move_and_resolve(two_models):
    p, _ = two_models
    p.register("subs-a", group="alias")
    p.register("subs-b", group="alias")
    for v in (1, 2):
        p.approve("alias", v, "ok")
    assert p.set_alias("alias", 1, "champion").aliases == ["champion"]
    p.set_alias("alias", 2, "challenger")
    assert p.get_version("alias", "champion").version == 1
    assert p.get_version("alias", "challenger").label == "alias v2 (challenger)"
    p.set_alias("alias", 2, "champion")  # moves: at most one champion per group
    assert p.get_version("alias", "champion").version == 2
    assert p.get_version("alias", 1).aliases == []
    assert p.get_version("alias", "v2").aliases == ["challenger", "champion"]
    assert any("alias champion set (was v1)" in e["message"] for e in p.events("registry", "alias/v2"))
    with pytest.raises(ValidationError, match="Alias must be one of champion, challenger"):
        p.set_alias("alias", 1, "best")
    ep = p.deploy_version("alias", "champion", "alias-ep")
    assert ep.model == "subs-b"
    lineage = p.lineage("alias")
    v2 = next(r for r in lineage if r["version"] == 2)
    assert v2["dataset"] == "subs" and v2["job"] == "subs-b"
    assert [(e["endpoint"], e["ended_at"]) for e in v2["endpoints"]] == [("alias-ep", None)]
    p.delete_endpoint("alias-ep")
    again = next(r for r in p.lineage("alias") if r["version"] == 2)
    assert again["endpoints"][0]["ended_at"] is not None, "the endpoint that served it before stays in the lineage"


def test_require_approval_refuses_unapproved_models_and_says_so(two_models, monkeypatch):
    p, home = two_models
    monkeypatch.setenv("CHURN_HOME", str(home))
    monkeypatch.setenv("CHURN_REQUIRE_APPROVAL", "1")
    strict = churn_core.connect()
    assert strict.settings.require_approval
    with pytest.raises(ConflictError, match=r"CHURN_REQUIRE_APPROVAL=1.*model subs-c has none"):
        strict.deploy("subs-c", "strict-ep")
    version = strict.register("subs-c", group="strict")
    churn_core.connect(user="second-reviewer").approve("strict", version.version, "checked")  # four eyes
    ep = strict.deploy("subs-c", "strict-ep")  # the seed's flow, now through its approved version
    assert ep.status == "InService"
    row = strict.catalog.one("SELECT grp, version FROM deployed_models WHERE name = 'strict-ep-model'")
    assert (row["grp"], row["version"]) == ("strict", version.version)
    strict.delete_endpoint("strict-ep")


# --------------------------------------------------------------------------- SageMaker, under moto


@pytest.mark.aws
def test_sagemaker_registry_calls(monkeypatch, tmp_path, small_csv, model_tarballs):
    pytest.importorskip("moto")

    from tests.support.aws import IMAGE, aws_client, capture, completed_jobs, moto_account

    with moto_account(monkeypatch, tmp_path):
        p = churn_core.connect()
        completed_jobs(p, small_csv, model_tarballs, "sm-job")
        groups = capture(p, "sagemaker", "CreateModelPackageGroup")
        packages = capture(p, "sagemaker", "CreateModelPackage")
        updates = capture(p, "sagemaker", "UpdateModelPackage")
        models = capture(p, "sagemaker", "CreateModel")
        v1 = p.register("sm-job", note="baseline")
        assert groups[0]["ModelPackageGroupName"] == "ds"
        assert any(t["Key"] == "created-by" for t in groups[0]["Tags"])
        request = packages[0]
        assert request["ModelPackageGroupName"] == "ds" and request["ModelApprovalStatus"] == "PendingManualApproval"
        container = request["InferenceSpecification"]["Containers"][0]
        assert container["Image"] == IMAGE and container["ModelDataUrl"].endswith("/jobs/sm-job/output/model.tar.gz")
        assert container["Environment"]["SAGEMAKER_PROGRAM"] == "train.py"
        assert request["CustomerMetadataProperties"]["dataset_sha256"] == p.get_dataset("ds").sha256
        assert v1.version == 1 and v1.arn.startswith("arn:aws:sagemaker:") and v1.arn.endswith("/1")
        v2 = p.register("sm-job")
        assert v2.version == 2 and len(groups) == 1, "the group is created once"
        # moto accepts an unapproved package: the gate is the platform's own
        with pytest.raises(ConflictError, match="is waiting for approval"):
            p.deploy_version("ds", 1, "sm-ep")
        assert models == []
        p.approve("ds", 1, "good enough")
        assert updates[-1] == {"ModelPackageArn": v1.arn, "ModelApprovalStatus": "Approved",
                               "ApprovalDescription": f"Approved by {p.user.name}: good enough"}  # issue 28
        info = aws_client("sagemaker").describe_model_package(ModelPackageName=v1.arn)
        assert info["ModelApprovalStatus"] == "Approved"
        p.deploy_version("ds", 1, "sm-ep", wait=False)
        assert models[-1]["PrimaryContainer"] == {"ModelPackageName": v1.arn,  # the model comes from the package
                                                  "Environment": {"CHURN_VARIANT": "AllTraffic"}}  # + its variant
        p.delete_endpoint("sm-ep")
