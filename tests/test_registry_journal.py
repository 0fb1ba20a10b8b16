"""Issue 26, item 1: a restore or a rebuild of the catalog never loses or reverts a registry decision (the
registry's journal, ``registry-journal.jsonl``, is replayed into the restored or rebuilt catalog)."""

from __future__ import annotations

import json
import stat

import pytest

import churn_core
from churn_core import ConflictError
from churn_core.catalog import journal
from tests.test_catalog_damage import damage
from tests.test_faults import platform_on_trained_state


@pytest.fixture
def gated(tmp_path_factory, sample_csv, request, monkeypatch):
    """The trained state (dataset 'sample', model 'model-a') with CHURN_REQUIRE_APPROVAL=1."""
    monkeypatch.setenv("CHURN_REQUIRE_APPROVAL", "1")
    with platform_on_trained_state(tmp_path_factory, sample_csv, f"journal-{request.node.name[-24:]}") as p:
        yield p


def registry_events(p) -> list[str]:
    return [e["message"] for e in p.events("registry", "model-a/v1")] + \
           [e["message"] for e in p.events("registry", "churners/v1")]


def test_a_restore_never_reverts_a_rejection(gated, monkeypatch):
    p = gated
    p.register("model-a", group="churners")
    p.approve("churners", 1, "good recall")
    p.set_alias("churners", 1, "champion")
    assert p.backup_catalog() is not None
    monkeypatch.setenv("CHURN_CATALOG_BACKUP_SECONDS", "3600")  # nothing newer reaches the backup
    p.reject("churners", 1, "leaks PII")
    p.register("model-a", group="churners", note="after the backup")
    damage(p.settings.home / "churn.db", "bad-header")
    report = p.restore_catalog_backup()
    assert "registry decision(s) were replayed" in report.summary()

    fresh = churn_core.connect()
    v1 = fresh.get_version("churners", 1)
    assert (v1.status, v1.status_note) == ("Rejected", "leaks PII")
    assert [v.version for v in fresh.list_versions("churners")] == [2, 1], "a registration after the backup is back"
    messages = [e["message"] for e in fresh.events("registry", "churners/v1")]
    assert any("Approved → Rejected: leaks PII" in m for m in messages), messages
    assert sum("Approved → Rejected" in m for m in messages) == 1, "replaying never records a decision twice"
    with pytest.raises(ConflictError, match="churners v1.* is Rejected"):
        fresh.deploy_version("churners", 1, "should-not-serve")
    with pytest.raises(ConflictError, match="has none"):
        fresh.deploy("model-a", "should-not-serve")

    folder = p.settings.home / journal.FILE
    assert stat.S_IMODE(folder.stat().st_mode) == 0o600
    lines = [json.loads(x) for x in folder.read_text().splitlines()]
    assert [x["op"] for x in lines] == ["group", "register", "status", "alias", "status", "register"]


def test_rebuilding_a_lost_catalog_keeps_the_registry(gated):
    p = gated
    p.register("model-a", group="churners")
    p.register("model-a", group="churners")
    p.approve("churners", 1, "ok")
    p.reject("churners", 2, "leaks PII")
    p.set_alias("churners", 1, "champion")
    p.set_alias("churners", 1, "challenger")
    p.rollout.registry.clear_alias("churners", "challenger")
    damage(p.settings.home / "churn.db", "zero-bytes")
    p.rebuild_catalog()

    fresh = churn_core.connect()
    assert [(v.version, v.status, v.aliases) for v in fresh.list_versions("churners")] == [
        (2, "Rejected", []), (1, "Approved", ["champion"])]
    assert fresh.get_version("churners", 2).status_note == "leaks PII"
    assert fresh.get_version("churners", 1).metrics == p.describe_training("model-a").metrics
    assert any("PendingManualApproval → Rejected: leaks PII" in e["message"]
               for e in fresh.events("registry", "churners/v2"))


def test_a_decision_whose_transaction_fails_is_voided(gated, monkeypatch):
    """A line written, then the transaction fails before it commits: the decision is voided, never replayed."""
    p = gated
    p.register("model-a", group="churners")
    real_write = journal.Journaled.write

    def write_then_fail(self, **more):
        real_write(self, **more)
        raise RuntimeError("the commit failed")

    monkeypatch.setattr(journal.Journaled, "write", write_then_fail)
    with pytest.raises(RuntimeError):
        p.approve("churners", 1, "fine")
    monkeypatch.undo()
    assert p.get_version("churners", 1).status == "PendingManualApproval"
    assert [e["op"] for e in journal.read(p.settings.home)] == ["group", "register"]
    damage(p.settings.home / "churn.db", "zero-bytes")
    p.rebuild_catalog()
    assert churn_core.connect().get_version("churners", 1).status == "PendingManualApproval"
