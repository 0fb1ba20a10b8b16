"""Four-eyes approval (issue 28): with CHURN_REQUIRE_APPROVAL=1 a version's approver is neither who trained its
model nor who registered it; every decision records who, and a restored catalog keeps it."""

from __future__ import annotations

import json

import pytest

import churn_core
from churn_core import PermissionDenied
from churn_core.access import roles
from churn_core.catalog import journal
from tests.support.catalog_damage import damage
from tests.support.helpers import wait_for_job
from tests.support.own_data import DATASET


@pytest.fixture
def gated_team(home, tmp_path, monkeypatch, sample_csv):
    """A fresh state in team mode with CHURN_REQUIRE_APPROVAL=1: 'tess' (analyst and approver) trained 'subs-m'
    on the subscription sample (an ID column, Yes/No categories and target)."""
    from churn_core.data.sample import make_subscription_sample

    path = tmp_path / "roles.toml"
    path.write_text('default_role = "viewer"\n[users]\n"tess@x.io" = ["analyst", "approver"]\n'
                    '"reg@x.io" = ["analyst", "approver"]\n"bob@x.io" = ["approver"]\n'
                    f'"{roles.os_user()}" = ["admin"]\n', encoding="utf-8")
    monkeypatch.setenv(roles.ENV, str(path))
    monkeypatch.setenv("CHURN_REQUIRE_APPROVAL", "1")
    trainer = churn_core.connect(user="tess@x.io")
    trainer.upload_dataset(DATASET, make_subscription_sample(500, seed=8))
    trainer.start_training(DATASET, {"n_estimators": 8}, name="subs-m")
    assert wait_for_job(trainer, "subs-m").status == "Completed"
    yield trainer
    churn_core.connect().cleanup()  # the OS user is an admin here


def test_the_trainer_and_the_registrar_cannot_approve_a_second_person_can(gated_team):
    trainer = gated_team
    assert trainer.describe_training("subs-m").created_by == "tess@x.io"
    registrar, approver = churn_core.connect(user="reg@x.io"), churn_core.connect(user="bob@x.io")
    version = registrar.register("subs-m", group="subs")
    assert version.registered_by == "reg@x.io"
    assert "tess@x.io trained its model" in trainer.approval_refusal(version)  # the page disables Approve with it
    assert "reg@x.io registered it" in registrar.approval_refusal(version) and not approver.approval_refusal(version)
    with pytest.raises(PermissionDenied, match=r"tess@x.io trained its model, so tess@x.io may not approve subs v1"):
        trainer.approve("subs", 1, "mine is good")
    with pytest.raises(PermissionDenied, match=r"reg@x.io registered it.*four eyes"):
        registrar.approve("subs", 1, "looks fine")
    assert approver.get_version("subs", 1).status == "PendingManualApproval", "nothing changed"

    approved = approver.approve("subs", 1, "second pair of eyes")
    assert (approved.status, approved.status_by) == ("Approved", "bob@x.io")
    with pytest.raises(PermissionDenied, match="needs the admin role"):
        approver.deploy_version("subs", 1, "subs-ep")
    admin = churn_core.connect()
    admin.deploy_version("subs", 1, "subs-ep")
    assert admin.describe_endpoint("subs-ep").created_by == roles.os_user()
    admin.set_threshold("subs-m", 0.35, note="budget")

    line = admin.lineage("subs")[0]
    assert (line["trained_by"], line["registered_by"], line["status_by"]) == ("tess@x.io", "reg@x.io", "bob@x.io")
    assert line["endpoints"][0]["deployed_by"] == roles.os_user()
    assert admin.threshold_record("subs-m")["set_by"] == roles.os_user()
    who = {(e["kind"], e["message"].split(":")[0]): e["user"] for e in admin.events(limit=500)}
    assert who[("registry", "waiting for approval → approved")] == "bob@x.io"
    assert who[("registry", "registered from model subs-m (PendingManualApproval)")] == "reg@x.io"
    assert who[("endpoint", "Creating from subs v1 (model subs-m)")] == roles.os_user()


def test_one_person_may_approve_their_own_when_approval_is_not_required(gated_team, monkeypatch):
    monkeypatch.delenv("CHURN_REQUIRE_APPROVAL")
    trainer = churn_core.connect(user="tess@x.io")
    trainer.register("subs-m", group="subs")
    approved = trainer.approve("subs", 1, "recorded, not required")
    assert (approved.status, approved.status_by, approved.registered_by) == ("Approved", "tess@x.io", "tess@x.io")


def test_a_rebuilt_catalog_keeps_who_registered_and_approved(gated_team):
    churn_core.connect(user="reg@x.io").register("subs-m", group="subs")
    churn_core.connect(user="bob@x.io").approve("subs", 1, "ok")
    home = gated_team.settings.home
    lines = [json.loads(x) for x in (home / journal.FILE).read_text().splitlines()]
    assert [(x["op"], x["by"]) for x in lines] == [("group", "reg@x.io"), ("register", "reg@x.io"),
                                                   ("status", "bob@x.io")]
    bucket = gated_team.backend.local_bucket()
    damage(home / "churn.db", "zero-bytes")
    churn_core.repair_tools().rebuild(home, bucket)
    fresh = churn_core.connect(user="bob@x.io")
    version = fresh.get_version("subs", 1)
    assert (version.status, version.registered_by, version.status_by) == ("Approved", "reg@x.io", "bob@x.io")
    assert fresh.events("registry", "subs/v1")[0]["user"] == "bob@x.io"


def test_lineage_names_who_deployed_and_who_updated_an_endpoint(registry_with_two_versions):
    churn_core.connect(user="ada@x.io").deploy_version("subs", 1, "who-live")
    updater = churn_core.connect(user="ed@x.io")
    updater.update_endpoint("who-live", "subs", 2)
    ep = updater.wait_for_endpoint("who-live")
    assert (ep.status, ep.created_by, ep.updated_by) == ("InService", "ada@x.io", "ed@x.io")
    served = {line["version"]: line["endpoints"] for line in updater.lineage("subs")}
    assert [(e["endpoint"], e["deployed_by"]) for e in served[1]] == [("who-live", "ada@x.io")]
    assert [(e["endpoint"], e["deployed_by"]) for e in served[2]] == [("who-live", "ed@x.io")]
    assert updater.events("endpoint", "who-live")[-1]["user"] == "ada@x.io"  # the oldest: its deploy
    updater.delete_endpoint("who-live")
    assert updater.events("endpoint", "who-live")[0]["user"] == "ed@x.io"


@pytest.mark.usefixtures("small_dataset")
def test_tuning_trials_are_trained_by_who_started_the_search(platform):
    from tests.support.helpers import wait_until

    tia = churn_core.connect(user="tia@x.io")
    started = tia.start_tuning("ds", {"n_estimators": (5, 10)}, max_trials=2, max_parallel=1, name="tune-who")
    done = wait_until(lambda: (t := tia.describe_tuning(started.name)).status not in ("InProgress", "Stopping") and t,
                      180, interval=0.1, what="the tuning job to end")
    assert done.status == "Completed" and done.created_by == "tia@x.io"
    assert [platform.describe_training(job).created_by for job in tia.tuning_trials(started.name)["job"]] == \
        ["tia@x.io", "tia@x.io"], "the detached search trains as the user who started it"
