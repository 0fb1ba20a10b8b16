"""Local training jobs: real child processes, real files, real SQLite."""

from __future__ import annotations

import os
import signal

import pytest

import churn_core
from churn_core.storage.artifacts import sha256_file
from churn_core.errors import ConflictError, ValidationError
from churn_core.processes.detached import is_alive
from tests.support.helpers import wait_for_job, wait_until

pytestmark = pytest.mark.usefixtures("sample_dataset")
SLOW_HPS = {"algorithm": "gradient_boosting", "n_estimators": 2000, "learning_rate": 0.01, "max_depth": 6}


def test_job_completes_with_verified_artifacts_and_metrics(platform):
    job = platform.start_training("sample", {"algorithm": "random_forest", "n_estimators": 20})
    assert job.status == "InProgress" and job.secondary_status in ("Starting", "Downloading", "Training")
    done = wait_for_job(platform, job.name)
    assert done.status == "Completed", done.failure_reason
    model_path = platform.store.path(done.model_key)
    assert model_path.is_file() and sha256_file(model_path) == done.model_sha256
    assert sha256_file(platform.store.path(done.output_key)) == done.output_sha256
    assert done.metrics["roc_auc"] > 0.75 and 0 <= done.metrics["f1"] <= 1
    model = platform.get_model(job.name)
    assert model["dataset_sha256"] == platform.get_dataset("sample").sha256
    assert model["code_sha256"] == done.code_sha256 and len(done.code_sha256) == 64
    evaluation = platform.evaluation(job.name)
    assert len(evaluation["roc"]["fpr"]) == len(evaluation["roc"]["tpr"]) > 2
    assert "roc_auc=" in platform.training_log(job.name)
    assert done.started_at >= done.created_at and done.ended_at >= done.started_at


def test_default_name_follows_the_seed_style(platform):
    job = platform.start_training("sample", {"n_estimators": 5})
    assert job.name.startswith("churn-rf-") and len(job.name.split("-")) == 8
    wait_for_job(platform, job.name)


def test_generated_names_never_clash_within_one_second(platform, monkeypatch):
    """Local jobs take about a second, so two launches can share a timestamp: the second gets a suffix."""
    import churn_core.training.service as training_service

    monkeypatch.setattr(training_service, "default_job_name", lambda algorithm: "churn-rf-2026-11-26-10-00-00")
    names = [platform.start_training("sample", {"n_estimators": 5}).name for _ in range(3)]
    assert names == ["churn-rf-2026-11-26-10-00-00", "churn-rf-2026-11-26-10-00-00-2", "churn-rf-2026-11-26-10-00-00-3"]
    for name in names:
        assert wait_for_job(platform, name).status == "Completed"


def test_invalid_hyperparameter_is_rejected_before_anything_runs(platform):
    with pytest.raises(ValidationError, match=r"Number of trees \(n_estimators\) must be between 1"):
        platform.start_training("sample", {"algorithm": "random_forest", "n_estimators": 0})
    with pytest.raises(ValidationError, match="Unknown algorithm 'xgboost'"):
        platform.start_training("sample", {"algorithm": "xgboost"})
    with pytest.raises(ValidationError, match="Hyperparameter n_estimators does not apply to logistic_regression"):
        platform.start_training("sample", {"algorithm": "logistic_regression", "n_estimators": 10})
    assert platform.count_training_jobs() == 0


def test_script_failure_shows_the_scripts_reason_and_log(platform):
    ds = platform.get_dataset("sample")
    platform.store.put_bytes(ds.train_key, b"a,b\n1,2\n3,4\n")  # no target column any more
    job = platform.start_training("sample", {"n_estimators": 5}, name="broken-input")
    done = wait_for_job(platform, job.name)
    assert done.status == "Failed"
    assert "Churn" in done.failure_reason and "exit code" in done.failure_reason
    assert "ERROR" in platform.training_log(job.name)


def test_duplicate_and_invalid_job_names(platform):
    platform.start_training("sample", {"n_estimators": 5}, name="dup-job")
    with pytest.raises(ConflictError, match="already exists"):
        platform.start_training("sample", {"n_estimators": 5}, name="dup-job")
    with pytest.raises(ValidationError, match="naming rule"):
        platform.start_training("sample", {"n_estimators": 5}, name="../escape")
    wait_for_job(platform, "dup-job")


@pytest.mark.slow
def test_stop_ends_in_stopped_and_the_process_is_gone(platform):
    job = platform.start_training("sample", SLOW_HPS, name="to-stop")
    wait_until(lambda: platform.describe_training(job.name).secondary_status == "Training", 30, what="Training")
    stopped = platform.stop_training(job.name)
    assert stopped.status == "Stopped"
    assert not is_alive(job.pid)
    with pytest.raises(ConflictError, match="only a running job"):
        platform.stop_training(job.name)


@pytest.mark.slow
def test_kill_9_of_the_job_process_is_seen_as_failed(platform):
    job = platform.start_training("sample", SLOW_HPS, name="to-kill")
    wait_until(lambda: platform.describe_training(job.name).secondary_status == "Training", 30, what="Training")
    os.kill(job.pid, signal.SIGKILL)
    failed = wait_until(lambda: (j := platform.describe_training(job.name)).status == "Failed" and j, 10,
                        what="Failed after kill -9")
    assert "exited unexpectedly" in failed.failure_reason and "SIGKILL" in failed.failure_reason
    assert failed.ended_at is not None


def test_a_restarted_dashboard_lists_every_job_unchanged(platform):
    first = platform.start_training("sample", {"n_estimators": 5}, name="job-a")
    wait_for_job(platform, first.name)
    platform.start_training("sample", {"algorithm": "logistic_regression"}, name="job-b")
    wait_for_job(platform, "job-b")
    before = platform.list_training_jobs()
    again = churn_core.connect()  # a new service on the same state directory
    assert again.list_training_jobs() == before
    assert [j.name for j in before] == ["job-b", "job-a"]


@pytest.mark.slow
def test_concurrency_limit_is_respected_and_jobs_start_in_order(home, monkeypatch):
    monkeypatch.setenv("CHURN_MAX_CONCURRENT_JOBS", "1")
    p = churn_core.connect()  # on the module's sample dataset
    names = [p.start_training("sample", {"n_estimators": 30}, name=f"queued-{i}").name for i in range(3)]
    peak = 0

    def all_done():
        nonlocal peak
        # One SELECT, so the three states are of one moment (reading job by job can see A still
        # Uploading and B already Training although A completed in between).
        snapshot = p.catalog.query("SELECT secondary_status FROM jobs")
        peak = max(peak, sum(1 for j in snapshot if j["secondary_status"] in ("Training", "Uploading")))
        jobs = [p.describe_training(n) for n in names]
        return all(j.status == "Completed" for j in jobs) and jobs

    jobs = wait_until(all_done, 120, interval=0.02, what="three queued jobs")
    assert peak == 1
    starts = [j.started_at for j in jobs]
    assert starts == sorted(starts)


def test_a_training_job_on_several_instances_is_refused_pointing_to_tuning(platform):
    """Issue 26, item 16: scikit-learn does not distribute, so N instances would train the same model N times
    (and bill N times on SageMaker): refused before anything is stored, the message points to tuning."""
    for count in (2, 20, True, 1.5, "2"):
        with pytest.raises(ValidationError, match="tuning") as err:
            platform.start_training("sample", {"algorithm": "random_forest"}, name="wide", instance_count=count)
        assert "one instance" in str(err.value)
    assert platform.list_training_jobs() == []


@pytest.mark.parametrize("params", [{"n_estimators": float("inf")}, {"max_depth": float("nan")},
                                    {"algorithm": "gradient_boosting", "learning_rate": float("nan")},
                                    {"algorithm": "gradient_boosting", "learning_rate": float("inf")}])
def test_an_infinite_or_nan_hyperparameter_is_a_clean_error(platform, params):
    """Issue 26, item 11 (the class of start_tuning(max_trials=inf)): int(inf) was a raw OverflowError, int(nan) a
    ValueError, and a NaN float hyperparameter passed its range check."""
    with pytest.raises(ValidationError, match="must be a finite number"):
        platform.start_training("sample", params)
    assert platform.count_training_jobs() == 0


def test_a_tuning_job_is_named_in_the_job_names_style_within_sagemakers_limit():
    from datetime import datetime, timezone

    from churn_core.names import default_job_name, default_tuning_name

    now = datetime(2026, 12, 7, 10, 0, 0, tzinfo=timezone.utc)
    assert default_job_name("random_forest", now) == "churn-rf-2026-12-07-10-00-00"
    assert default_tuning_name("random_forest", now) == "tune-rf-2026-12-07-10-00-00"
    assert all(len(default_tuning_name(a, now)) <= 32 for a in ("random_forest", "unknown-algorithm"))
