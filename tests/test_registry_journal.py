"""Issue 26, item 1: a restore or a rebuild of the catalog never loses or reverts a registry decision (the
registry's journal, ``registry-journal.jsonl``, is replayed into the restored or rebuilt catalog)."""

from __future__ import annotations

import json
import sqlite3
import stat

import pytest

import churn_core
from churn_core import ConflictError
from churn_core.catalog import journal
from tests.support.helpers import wait_until
from tests.support.catalog_damage import damage
from tests.support.trained import platform_on_trained_state


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
    churn_core.connect(user="reviewer").approve("churners", 1, "good recall")  # four eyes: not who trained
    p.set_alias("churners", 1, "champion")
    assert p.backup_catalog() is not None
    monkeypatch.setenv("CHURN_CATALOG_BACKUP_SECONDS", "3600")  # nothing newer reaches the backup
    p.reject("churners", 1, "leaks PII")
    p.register("model-a", group="churners", note="after the backup")
    damage(p.settings.home / "churn.db", "bad-header")
    report = p.restore_catalog_backup()
    assert "registry decisions were replayed from" in report.summary(), report.summary()

    fresh = churn_core.connect()
    v1 = fresh.get_version("churners", 1)
    assert (v1.status, v1.status_note) == ("Rejected", "leaks PII")
    assert [v.version for v in fresh.list_versions("churners")] == [2, 1], "a registration after the backup is back"
    messages = [e["message"] for e in fresh.events("registry", "churners/v1")]
    assert any("approved → rejected: leaks PII" in m for m in messages), messages
    assert sum("approved → rejected" in m for m in messages) == 1, "replaying never records a decision twice"
    with pytest.raises(ConflictError, match="churners v1.* is rejected"):
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
    churn_core.connect(user="reviewer").approve("churners", 1, "ok")  # four eyes: not who trained
    p.reject("churners", 2, "leaks PII")
    p.set_alias("churners", 1, "champion")
    p.set_alias("churners", 1, "challenger")
    p.rollout.registry.clear_alias("churners", "challenger")
    p.start_transform("model-a", "datasets/sample/test/test.csv", name="nightly")
    scored = _wait_transform(p, "nightly").rows_scored
    damage(p.settings.home / "churn.db", "zero-bytes")
    p.rebuild_catalog()

    fresh = churn_core.connect()
    assert [(v.version, v.status, v.aliases) for v in fresh.list_versions("churners")] == [
        (2, "Rejected", []), (1, "Approved", ["champion"])]
    assert fresh.get_version("churners", 2).status_note == "leaks PII"
    assert fresh.get_version("churners", 1).metrics == p.describe_training("model-a").metrics
    assert any("waiting for approval → rejected: leaks PII" in e["message"]
               for e in fresh.events("registry", "churners/v2"))
    nightly = fresh.describe_transform("nightly")  # a transform comes back from its folder too
    assert (nightly.status, nightly.rows_scored) == ("Completed", scored)


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
        churn_core.connect(user="reviewer").approve("churners", 1, "fine")
    monkeypatch.undo()
    assert p.get_version("churners", 1).status == "PendingManualApproval"
    assert [e["op"] for e in journal.read(p.settings.home)] == ["group", "register"]
    damage(p.settings.home / "churn.db", "zero-bytes")
    p.rebuild_catalog()
    assert churn_core.connect().get_version("churners", 1).status == "PendingManualApproval"


# ------------------------------------------------------------------- transforms and tuning jobs, found on disk


def _wait_transform(p, name: str):
    return wait_until(lambda: (j := p.describe_transform(name)).status not in ("InProgress", "Stopping") and j,
                      120, what=f"transform {name} to finish")


def _backup_status(home, table: str, name: str) -> str | None:
    conn = sqlite3.connect(home / "backups" / "churn-latest.db")
    try:
        row = conn.execute(f"SELECT status FROM {table} WHERE name = ?", (name,)).fetchone()
    finally:
        conn.close()
    return row[0] if row else None


def test_transforms_and_tuning_jobs_come_back_from_disk_with_how_they_really_ended(gated, monkeypatch):
    p = gated
    home = p.settings.home
    test_key = "datasets/sample/test/test.csv"
    p.start_transform("model-a", test_key, name="early")
    p.start_tuning("sample", {"n_estimators": (5, 20), "max_depth": (2, 6)}, max_trials=2, max_parallel=2,
                   name="tune-early", strategy="random")
    assert p.backup_catalog() is not None  # while both run
    monkeypatch.setenv("CHURN_CATALOG_BACKUP_SECONDS", "3600")  # nothing newer reaches the backup
    p.start_transform("model-a", test_key, name="nightly")
    early, nightly = _wait_transform(p, "early"), _wait_transform(p, "nightly")
    tuned = wait_until(lambda: (t := p.describe_tuning("tune-early")).status not in ("InProgress", "Stopping") and t,
                       240, interval=0.1, what="tuning job to end")
    assert (early.status, nightly.status, tuned.status) == ("Completed", "Completed", "Completed")
    results = p.transform_download("nightly")
    trials = [(t["trial"], t["job"], t["status"], t["objective"], t["best"])
              for t in p.tuning_trials("tune-early").to_dict("records")]

    damage(home / "churn.db", "bad-header")
    report = p.restore_catalog_backup()

    fresh = churn_core.connect()
    by_name = {t.name: t for t in fresh.list_transforms()}
    assert set(by_name) >= {"early", "nightly"}
    for name, before in (("early", early), ("nightly", nightly)):
        after = fresh.describe_transform(name)
        assert after.status == "Completed", (name, _backup_status(home, "transforms", name), after.failure_reason)
        assert (after.rows_scored, after.rows_failed) == (before.rows_scored, before.rows_failed)
    assert fresh.transform_download("nightly") == results
    again = fresh.describe_tuning("tune-early")
    assert again.status == "Completed" and not again.failure_reason
    assert (again.best_job, again.best_objective) == (tuned.best_job, tuned.best_objective), "the right best trial"
    assert again.trials_completed == tuned.trials_completed == 2
    assert [(t["trial"], t["job"], t["status"], t["objective"], t["best"])
            for t in fresh.tuning_trials("tune-early").to_dict("records")] == trials

    with pytest.raises(ConflictError, match="already exists"):
        fresh.start_transform("model-a", test_key, name="nightly")
    assert "nightly" in report.added["transforms"] and "tune-early" in report.added["tuning jobs"], report.summary()


def test_a_new_transform_never_overwrites_the_outputs_of_one_the_catalog_lost(gated):
    p = gated
    test_key = "datasets/sample/test/test.csv"
    p.start_transform("model-a", test_key, name="nightly")
    assert _wait_transform(p, "nightly").status == "Completed"
    results = p.store.get_bytes("transforms/nightly/output/results.csv")
    with p.catalog.tx() as conn:  # a catalog that lost the job (restored from a backup older than it)
        conn.execute("DELETE FROM transforms WHERE name = 'nightly'")
    with pytest.raises(ConflictError, match=r"named 'nightly' already left its outputs \(transforms/nightly/output"):
        p.start_transform("model-a", test_key, name="nightly")
    assert p.store.get_bytes("transforms/nightly/output/results.csv") == results
    auto = p.start_transform("model-a", test_key)  # a generated name is never one whose outputs exist
    assert auto.name != "nightly"


def test_a_tuning_name_whose_files_outlived_the_catalog_is_refused(gated):
    """A tuning job lost by a restore still has its folder (trials' log, record.json): a new job of that name
    would mix with it, so the chosen name is refused, saying why; nothing is recorded."""
    p = gated
    folder = p.settings.home / "tuning" / "lost-tune"
    folder.mkdir(parents=True)
    (folder / "record.json").write_text("{}")
    with pytest.raises(ConflictError, match="lost-tune.*left its trials"):
        p.start_tuning("sample", {"n_estimators": (5, 20)}, max_trials=1, name="lost-tune", strategy="random")
    assert "lost-tune" not in p.tuning_names()
