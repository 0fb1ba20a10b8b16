"""Customer data is private to its owner: everything under CHURN_HOME is 0700/0600 whatever the user's umask
(processes the product starts run with umask 077), and a failed job's copied inputs are removed."""

from __future__ import annotations

import io
import os
import signal
import stat
from pathlib import Path

import pandas as pd
import psutil
import pytest

import churn_core
from churn_core.data.sample import make_subscription_sample
from tests.support.data import SEED_ROW
from tests.support.helpers import wait_for_job, wait_until
from tests.support.trained import LONG_JOB


@pytest.fixture
def open_umask():
    """The usual desktop umask (022): files would be world-readable unless the product says otherwise."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def readable_by_others(root: Path) -> list[str]:
    found = []
    for path in [root, *root.rglob("*")]:
        try:
            info = path.lstat()
        except FileNotFoundError:
            continue  # removed while walking (stats files are replaced atomically)
        if not stat.S_ISLNK(info.st_mode) and info.st_mode & 0o077:
            found.append(f"{oct(stat.S_IMODE(info.st_mode))} {path.relative_to(root)}")
    return found


@pytest.mark.parametrize("sample", ["telecom", "subscription"])
def test_everything_under_the_home_is_private_to_its_owner(home, open_umask, sample_csv, sample):
    p = churn_core.connect()
    if sample == "telecom":
        data, target, payload = sample_csv, "Churn", {"Input": [SEED_ROW]}
    else:
        data, target = make_subscription_sample(rows=600, seed=3), "Churn"
        first = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False).drop(columns=[target]).iloc[0]
        payload = {"instances": [first.to_dict()]}
    p.upload_dataset("private", data, target=target)
    assert wait_for_job(p, p.start_training("private", {"n_estimators": 5}, name="private-job").name).status \
        == "Completed"
    p.deploy("private-job", "private-ep")
    try:
        assert p.invoke("private-ep", payload)
        wait_until(lambda: p.describe_endpoint("private-ep").invocations, 10, what="the stats file")
        assert readable_by_others(home) == []
        assert stat.S_IMODE((home / "churn.db").stat().st_mode) == 0o600
        assert not (home / "jobs" / "private-job" / "input").exists(), "the copied channels are gone"
    finally:
        p.cleanup()


def test_a_failed_jobs_copied_inputs_are_removed_even_when_its_driver_is_killed(home, open_umask, sample_csv):
    p = churn_core.connect()
    p.upload_dataset("sample", sample_csv)
    job = p.start_training("sample", LONG_JOB, name="killed-driver")
    inputs = home / "jobs" / "killed-driver" / "input" / "data" / "train"
    wait_until(lambda: p.describe_training(job.name).secondary_status == "Training" and any(inputs.glob("*.csv")),
               60, what="the job to copy its inputs and train")
    script = [c for c in psutil.Process(job.pid).children(recursive=True)]
    os.kill(job.pid, signal.SIGKILL)
    failed = wait_until(lambda: (j := p.describe_training(job.name)).status != "InProgress" and j, 30,
                        what="the job to be reconciled")
    assert failed.status == "Failed"
    assert not (home / "jobs" / "killed-driver" / "input").exists(), "customer data left behind"
    wait_until(lambda: not any(c.is_running() and c.status() != psutil.STATUS_ZOMBIE for c in script), 10,
               what="the training script to be gone")


def test_a_home_an_older_version_left_open_is_closed_when_opened(home, open_umask, sample_csv):
    p = churn_core.connect()
    p.upload_dataset("sample", sample_csv)
    for path in [home, *home.rglob("*")]:  # what the older version made: 0755 folders, 0644 files
        path.chmod(0o755 if path.is_dir() else 0o644)
    outside = home.parent / "not-ours.txt"
    outside.write_text("the user's own file next to the home")
    outside.chmod(0o644)
    churn_core.connect()
    assert readable_by_others(home) == []
    assert stat.S_IMODE(outside.stat().st_mode) == 0o644, "only the product's own files are touched"


def test_files_copied_into_the_bucket_make_private_folders(home, open_umask, tmp_path):
    """Issue 26, item 11: put_file (path-based transform inputs, repair copies) made its folders with the umask."""
    from churn_core.storage.objects import LocalObjectStore

    source = tmp_path / "customers.csv"
    source.write_bytes(b"a,b\n1,2\n")
    store = LocalObjectStore(home, "churn-local")
    store.put_file("transforms/by-path/input/customers.csv", source)
    store.put_bytes("datasets/other/raw/other.csv", b"a\n1\n")
    assert readable_by_others(home / "buckets") == []
    assert store.get_bytes("transforms/by-path/input/customers.csv") == b"a,b\n1,2\n"
