"""The trained local state the reliability modules share: trained once per session, copied per module."""

from __future__ import annotations

import shutil
from contextlib import contextmanager
from pathlib import Path

import pytest

import churn_core
from tests.support.helpers import wait_for_job

LONG_JOB = {"algorithm": "gradient_boosting", "n_estimators": 2000, "learning_rate": 0.01, "max_depth": 6}


def trained_state(tmp_path_factory, sample_csv, module: str) -> Path:
    """A state directory with the sample dataset ('sample') and a Completed 10-tree model ('model-a').

    Trained once per test session (in the session's base temp folder) and copied for each module that
    asks, so the reliability modules (faults, payloads, fuzz, security) pay for one training run, not four.
    """
    shared = tmp_path_factory.getbasetemp() / "trained-once"
    if not (shared / "ready").exists():
        shutil.rmtree(shared, ignore_errors=True)
        mp = pytest.MonkeyPatch()
        mp.setenv("CHURN_HOME", str(shared / "state"))
        mp.setenv("CHURN_BACKEND", "local")
        try:
            p = churn_core.connect()
            p.upload_dataset("sample", sample_csv)
            p.start_training("sample", {"n_estimators": 10}, name="model-a")
            job = wait_for_job(p, "model-a")
            assert job.status == "Completed", job.failure_reason
        finally:
            mp.undo()
        (shared / "ready").touch()
    home = tmp_path_factory.mktemp(module) / "state"
    shutil.copytree(shared / "state", home)
    return home


@contextmanager
def platform_on_trained_state(tmp_path_factory, sample_csv, module: str):
    """A platform on a copy of the trained state (see trained_state); stops jobs and endpoints at the end."""
    mp = pytest.MonkeyPatch()
    mp.setenv("CHURN_HOME", str(trained_state(tmp_path_factory, sample_csv, module)))
    mp.setenv("CHURN_BACKEND", "local")
    mp.delenv("CHURN_BIND_HOST", raising=False)
    p = churn_core.connect()
    try:
        yield p
    finally:
        for job in p.list_training_jobs():
            if job.is_active:
                p.stop_training(job.name)
        p.cleanup()
        mp.undo()
