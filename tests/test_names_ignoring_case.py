"""Dataset, job and endpoint names are unique regardless of case: 'DS1' and 'ds1' would be one folder on a
case-insensitive file system (macOS, Windows)."""

from __future__ import annotations

import sqlite3

import pytest

import churn_core
from churn_core.catalog.database import Catalog
from churn_core.errors import ConflictError


def test_a_dataset_name_differing_only_in_case_is_taken(trained, sample_csv):
    p = trained
    p.upload_dataset("DS1", sample_csv)
    with pytest.raises(ConflictError, match=r"named 'DS1' already exists.*regardless of case"):
        p.upload_dataset("ds1", sample_csv)
    assert [d.name for d in p.list_datasets() if d.name.lower() == "ds1"] == ["DS1"]
    assert not p.store.exists("datasets/ds1/raw/ds1.csv")


def test_a_job_name_differing_only_in_case_is_taken(trained):
    p = trained
    with pytest.raises(ConflictError, match=r"named 'model-a' already exists.*regardless of case"):
        p.start_training("sample", {"n_estimators": 2}, name="MODEL-A")
    assert "MODEL-A" not in p.job_names()


def test_an_endpoint_name_differing_only_in_case_is_taken(trained):
    p = trained
    p.deploy("model-a", "Shared-EP", wait=False)
    try:
        with pytest.raises(ConflictError, match=r"named 'Shared-EP' already exists.*regardless of case"):
            p.deploy("model-a", "shared-ep", wait=False)
        assert p.endpoint_names() == ["Shared-EP"]
    finally:
        p.delete_endpoint("Shared-EP")


def test_the_catalog_itself_refuses_a_second_spelling(home):
    churn_core.connect()
    catalog = Catalog(home / "churn.db")
    with catalog.tx() as conn:
        conn.execute("INSERT INTO endpoint_configs (name, deployed_model, instance_type, instance_count, created_at) "
                     "VALUES ('Cfg', 'm', 't', 1, 0)")
    with pytest.raises(sqlite3.IntegrityError), catalog.tx() as conn:
        conn.execute("INSERT INTO endpoint_configs (name, deployed_model, instance_type, instance_count, created_at) "
                     "VALUES ('cfg', 'm', 't', 1, 0)")


def test_an_older_catalog_with_both_spellings_still_opens(tmp_path):
    path = tmp_path / "churn.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE datasets (name TEXT PRIMARY KEY)")
    conn.executemany("INSERT INTO datasets VALUES (?)", [("DS1",), ("ds1",)])
    conn.commit()
    conn.close()
    Catalog(path)  # the index cannot be made for that table; everything else opens as usual
