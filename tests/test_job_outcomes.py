"""A job's outcome is never lost to the moment it is recorded: a trained model that cannot be stored fails with
the true cause (one piece of advice) and stays on disk; a job that ends while the catalog cannot be written
keeps its model and is recorded Completed (or with its true failure) at the next status read."""

from __future__ import annotations

import os
import sqlite3
import time

import psutil

import churn_core
from tests.support.helpers import wait_for_job, wait_until

SLOW_ENOUGH = {"algorithm": "gradient_boosting", "n_estimators": 300, "max_depth": 3}


def test_a_read_only_bucket_fails_the_job_with_its_true_cause_once(home, sample_csv, immutable):
    p = churn_core.connect()
    p.upload_dataset("sample", sample_csv)
    immutable(home / "buckets" / "churn-local")  # the trained model cannot be stored there
    job = wait_for_job(p, p.start_training("sample", {"n_estimators": 5}, name="read-only").name)
    reason = job.failure_reason
    assert job.status == "Failed", reason
    assert "The model trained, but it could not be stored" in reason and "Operation not permitted" in reason, reason
    assert reason.count("permissions") == 1 and "disk space" not in reason, f"one fitting piece of advice: {reason}"
    kept = home / "jobs" / "read-only" / "output" / "model.tar.gz"
    assert f"The packed model is kept at {kept}" in reason and kept.is_file()
    assert "exited unexpectedly" not in reason


def test_a_job_that_ends_while_the_catalog_cannot_be_written_keeps_its_model(home, sample_csv):
    p = churn_core.connect()
    p.upload_dataset("sample", sample_csv)
    job = p.start_training("sample", SLOW_ENOUGH, name="unrecorded")
    wait_until(lambda: p.describe_training(job.name).secondary_status == "Training", 60, what="training to start")
    catalog = home / "churn.db"
    conn = sqlite3.connect(catalog)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    away = home / "churn.db.away"
    os.replace(catalog, away)  # the catalog cannot be written when the job ends
    try:
        wait_until(lambda: not psutil.pid_exists(job.pid) or psutil.Process(job.pid).status() == "zombie", 120,
                   what="the job's driver to end")
    finally:
        time.sleep(0.2)
        os.replace(away, catalog)
    done = churn_core.connect().describe_training(job.name)  # the next status read records the outcome
    assert done.status == "Completed", done.failure_reason
    assert done.metrics.get("roc_auc") and done.model_sha256
    p = churn_core.connect()
    assert p.model_schema("unrecorded")["features"], "its model is registered and checks out"
    assert any("recorded from the job's outcome.json" in e["message"] for e in p.events("job", "unrecorded"))
