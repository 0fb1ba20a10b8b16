"""A damaged catalog (churn.db with a bad header, truncated, a garbled page, 0 bytes or missing next to existing
state) is reported in the product's words and never started over; it can be rebuilt from disk or restored from
the rolling backup, with running endpoints still serving; the dashboard shows the message and the way back."""

from __future__ import annotations

import sqlite3

import pytest
import requests

import churn_core
from churn_core.catalog import health as catalog_health, repair as catalog_repair
from churn_core.errors import CatalogDamagedError
from tests.support.data import SEED_ROW
from tests.support.helpers import wait_until
from tests.support.trained import platform_on_trained_state
from tests.support.catalog_damage import damage
from tests.support.pages import button, open_page, texts

SEED = {"Input": [SEED_ROW]}


DAMAGES = ["bad-header", "truncated", "truncated-whole-pages", "random-page", "zero-bytes", "missing"]
PROBLEMS = {"bad-header": "SQLite's file header", "truncated": "truncated", "truncated-whole-pages": "SQLite",
            "random-page": "SQLite", "zero-bytes": "empty (0 bytes)", "missing": "it is missing"}


@pytest.fixture
def live_endpoint(tmp_path_factory, sample_csv, request):
    """The trained state (dataset 'sample', model 'model-a') with a running endpoint 'live-ep'."""
    with platform_on_trained_state(tmp_path_factory, sample_csv, f"catalog-{request.node.name[-24:]}") as p:
        ep = p.deploy("model-a", "live-ep")
        assert ep.status == "InService"
        yield p, ep
        try:
            churn_core.connect().cleanup()
        except CatalogDamagedError:
            from churn_core.backends.local.endpoint import processes as endpoint_processes

            endpoint_processes.stop(endpoint_processes.find(p.settings.home))


def answers(ep) -> bool:
    response = requests.post(f"{ep.url}/invocations", json=SEED, timeout=10)
    return response.status_code == 200 and "Output" in response.json()


@pytest.mark.parametrize("how", DAMAGES)
def test_a_damaged_catalog_is_reported_never_started_over_and_rebuilt_from_disk(live_endpoint, how):
    p, ep = live_endpoint
    path = p.settings.home / "churn.db"
    damage(path, how)
    before = path.read_bytes() if path.exists() else None
    for _ in range(2):  # a second try does not start over either
        with pytest.raises(CatalogDamagedError) as err:
            churn_core.connect()
        message = str(err.value)
        assert str(path) in message and PROBLEMS[how] in message, message
        assert "Nothing was changed and nothing was started over" in message
        assert "catalog.repair.rebuild(" in message and "catalog.repair.restore_backup(" in message
        assert (path.read_bytes() if path.exists() else None) == before, "the damaged file was not touched"
    assert answers(ep), "the running endpoint keeps serving while the catalog is damaged"

    report = catalog_repair.rebuild(p.settings.home)
    assert report.damaged_copy is None if how == "missing" else report.damaged_copy.exists()
    fresh = churn_core.connect()
    assert [d.name for d in fresh.list_datasets()] == ["sample"]
    job = fresh.describe_training("model-a")
    assert job.status == "Completed" and job.metrics.get("roc_auc")
    assert fresh.model_schema("model-a")["features"], "the model's artifact checks out against its record"
    endpoints = {e.name: e for e in fresh.list_endpoints()}
    assert endpoints["live-ep"].status == "InService" and endpoints["live-ep"].uid == ep.uid
    assert fresh.invoke("live-ep", SEED)["Output"] in (0, 1)
    assert fresh.cleanup() and fresh.list_endpoints() == []
    wait_until(lambda: not answers_safely(ep), 20, what="the endpoint to stop after cleanup")


def answers_safely(ep) -> bool:
    try:
        return answers(ep)
    except requests.RequestException:
        return False


def test_a_rebuild_reads_back_what_the_damaged_file_still_holds(live_endpoint):
    p, _ = live_endpoint
    p.catalog.event("job", "model-a", "a note only the catalog knows")
    path = p.settings.home / "churn.db"
    damage(path, "random-page")
    report = catalog_repair.rebuild(p.settings.home)
    assert report.salvaged_rows > 0
    notes = [e["message"] for e in churn_core.connect().events("job", "model-a")]
    assert "a note only the catalog knows" in notes


@pytest.mark.parametrize("how", ["random-page", "bad-header"])
def test_an_endpoint_updated_to_two_variants_is_rebuilt_as_it_serves(live_endpoint, how):
    """After an update (champion/challenger on the same row, uid and folder), a rebuild gives back the
    configuration the server serves: from the rows still readable (variants, registry versions) or, when
    nothing is, from the endpoint.json each update rewrites in the endpoint's folder."""
    p, ep = live_endpoint
    for _ in range(2):
        p.approve("live", p.register("model-a", group="live").version, "test")
    updated = p.set_variants("live-ep", [("live", 1, 70), ("live", 2, 30)])
    assert updated.config == "live-ep-config-2" and updated.uid == ep.uid
    damage(p.settings.home / "churn.db", how)
    catalog_repair.rebuild(p.settings.home)
    fresh = churn_core.connect()
    again = fresh.describe_endpoint("live-ep")
    assert (again.status, again.uid, again.config, again.generation) == ("InService", ep.uid, "live-ep-config-2", 2)
    assert sorted((v["variant"], v["weight"], v["version"]) for v in again.variants) == [
        ("live-v1", 70.0, "live v1"), ("live-v2", 30.0, "live v2")]
    if how == "random-page":  # the registry's rows were readable: salvaged with the rest
        assert fresh.get_version("live", 2).status == "Approved"
    assert fresh.invoke("live-ep", SEED)["Output"] in (0, 1)


def test_the_last_backup_is_restored_with_what_came_after_it(live_endpoint, sample_csv, monkeypatch):
    p, ep = live_endpoint
    assert p.backup_catalog() is not None
    monkeypatch.setenv("CHURN_CATALOG_BACKUP_SECONDS", "3600")  # nothing newer reaches the backup
    p.upload_dataset("after-backup", sample_csv)
    path = p.settings.home / "churn.db"
    damage(path, "bad-header")
    report = catalog_repair.restore_backup(p.settings.home)
    assert report.restored_from.name == "churn-latest.db" and "after-backup" in report.added["datasets"]
    fresh = churn_core.connect()
    assert sorted(d.name for d in fresh.list_datasets()) == ["after-backup", "sample"]
    assert fresh.describe_endpoint("live-ep").status == "InService"
    assert fresh.invoke("live-ep", SEED)["Output"] in (0, 1)


def test_backups_roll_after_writes_and_only_sound_copies_are_kept(home, sample_csv, monkeypatch):
    monkeypatch.setenv("CHURN_CATALOG_BACKUP_SECONDS", "0")
    p = churn_core.connect()
    p.upload_dataset("first", sample_csv)
    latest = home / "backups" / "churn-latest.db"
    conn = sqlite3.connect(latest)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert [r[0] for r in conn.execute("SELECT name FROM datasets")] == ["first"]
    finally:
        conn.close()
    assert oct(latest.stat().st_mode & 0o777) == "0o600"
    good = latest.read_bytes()
    damage(home / "churn.db", "random-page")
    assert catalog_health.backup(home / "churn.db", force=True) is None
    assert latest.read_bytes() == good, "a damaged catalog never replaces the last good backup"


def test_sqlite_errors_on_a_catalog_damaged_in_use_are_never_raw(home, sample_csv):
    p = churn_core.connect()
    p.upload_dataset("sample", sample_csv)
    damage(home / "churn.db", "random-page")
    with pytest.raises(CatalogDamagedError, match="is damaged: SQLite reports: database disk image is malformed"):
        p.list_datasets()
    (home / "churn.db").write_bytes(b"")
    with pytest.raises(CatalogDamagedError, match="is damaged"):
        p.list_datasets()


def test_a_new_home_still_starts_with_an_empty_catalog(tmp_path, monkeypatch):
    monkeypatch.setenv("CHURN_HOME", str(tmp_path / "new"))
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "churn.db").write_bytes(b"")  # touched, nothing else there: not a lost catalog
    assert churn_core.connect().list_datasets() == []


def test_the_dashboard_shows_the_damage_and_rebuilds_from_the_settings_page(live_endpoint):
    p, _ = live_endpoint
    damage(p.settings.home / "churn.db", "bad-header")
    at = open_page("settings")
    assert not at.exception, at.exception
    assert "is damaged" in texts(at, "error") and "Rebuild from disk" in [b.label for b in at.button]
    button(at, "Rebuild from disk").click().run()
    assert not at.exception, at.exception
    assert "The catalog was rebuilt" in texts(at, "success")
    assert "passes SQLite's integrity check" in texts(at, "success")
    at.switch_page("../pages/endpoints.py").run()
    assert not at.exception and "live-ep" in list(at.dataframe[0].value["name"])


def test_a_catalog_damaged_while_the_dashboard_runs_shows_its_message(live_endpoint):
    p, _ = live_endpoint
    at = open_page("jobs")
    assert not at.exception
    damage(p.settings.home / "churn.db", "zero-bytes")
    at.run()
    assert not at.exception, at.exception
    assert "is damaged" in texts(at, "error") and "Restore the backup" in [b.label for b in at.button]


def _plant(manifest: dict, how: str) -> None:
    deployed = manifest["variants"][0]["deployed"] if manifest.get("variants") else manifest
    if how == "another-model":  # names a model that is not what the artifact is
        manifest["model"] = deployed["model"] = "someone-elses-model"
    elif how == "wrong-hash":  # the model's name, another artifact's hash
        deployed["artifact_sha256"] = "0" * 64
    elif how == "key-outside":
        deployed["artifact_key"] = "../../../../etc/passwd"
    elif how == "bad-name":
        manifest["config"] = "../../escape"


@pytest.mark.parametrize("how", ["another-model", "wrong-hash", "key-outside", "bad-name"])
def test_a_rebuild_does_not_trust_a_planted_endpoint_manifest(live_endpoint, how):
    """Issue 26, item 11: a rebuild recorded whatever endpoint.json said (another model, a key outside the bucket)."""
    import json

    p, _ = live_endpoint
    manifest_path = next((p.settings.home / "endpoints").glob("live-ep.*")) / "endpoint.json"
    manifest = json.loads(manifest_path.read_text())
    _plant(manifest, how)
    manifest_path.write_text(json.dumps(manifest))
    damage(p.settings.home / "churn.db", "zero-bytes")
    report = catalog_repair.rebuild(p.settings.home)
    assert "live-ep" not in report.added["endpoints"]
    assert any("endpoint.json" in note and "not trusted" in note for note in report.notes), report.notes
    fresh = churn_core.connect()
    assert [e.name for e in fresh.list_endpoints()] == []
    assert fresh.catalog.query("SELECT name FROM deployed_models WHERE artifact_key LIKE '%..%' "
                               "OR model = 'someone-elses-model'") == []
