"""Shared fixtures: a fresh state directory per test, the sample CSV, the reference CSV when present."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support.data import REFERENCE_CSV  # noqa: E402  (after the root is importable)


def pytest_configure(config):
    """One warm process for the whole run (all xdist workers), in a folder of its own, stopped at the end."""
    if not hasattr(config, "workerinput") and "CHURN_WARM_DIR" not in os.environ:
        os.environ["CHURN_WARM_DIR"] = tempfile.mkdtemp(prefix="churn-warm-tests-")
        config.stash[WARM_OWNER] = True


def pytest_unconfigure(config):
    if config.stash.get(WARM_OWNER, False):
        import shutil
        import time

        import psutil

        from churn_core.processes.warm import client as warm

        stopped = warm.stop_all()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(psutil.pid_exists(pid) for pid in stopped):
            time.sleep(0.05)
        shutil.rmtree(warm.run_dir(), ignore_errors=True)


WARM_OWNER = pytest.StashKey[bool]()


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """A fresh CHURN_HOME on the local backend for each test."""
    state = tmp_path / "state"
    monkeypatch.setenv("CHURN_HOME", str(state))
    monkeypatch.setenv("CHURN_BACKEND", "local")
    for key in ("CHURN_S3_BUCKET", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(key, raising=False)
    return state


@pytest.fixture(scope="session")
def sample_csv() -> bytes:
    from churn_core.data.sample import make_sample

    return make_sample()


@pytest.fixture(scope="session")
def reference_csv() -> Path:
    if not REFERENCE_CSV.exists():
        pytest.skip(f"reference dataset not present at {REFERENCE_CSV}")
    return REFERENCE_CSV


@pytest.fixture(scope="session")
def small_csv() -> bytes:
    """A small synthetic telecom sample (the SageMaker tests check calls, not models)."""
    from churn_core.data.sample import make_sample

    return make_sample(rows=500)


@pytest.fixture
def model_tarballs() -> dict:
    """model.tar.gz and output.tar.gz as SageMaker would pack them, made by running entry/train.py locally."""
    from tests.support.aws import trained_tarballs

    return trained_tarballs()


@pytest.fixture(autouse=True)
def aws_request_check(monkeypatch):
    """Every request the SageMaker backend sends must pass the service model and the shipped IAM policies."""
    from tests.service_model_check import RequestCheck

    check = RequestCheck()
    check.install(monkeypatch)
    yield check
    if check.problems:
        pytest.fail("Requests the real AWS would refuse:\n" + "\n".join(check.problems), pytrace=False)
