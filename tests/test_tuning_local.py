"""Local tuning jobs: a real tuning process, real training jobs through the queue, real SQLite."""

from __future__ import annotations

import os
import signal

import pandas as pd
import pytest

import churn_core
from churn_core.errors import ConflictError, NotFoundError, ValidationError
from churn_core.processes.detached import is_alive
from churn_core.data.sample import make_subscription_sample
from tests.support.helpers import wait_until

pytestmark = pytest.mark.usefixtures("sample_dataset")
FAST_RF = {"n_estimators": (5, 30), "max_depth": (2, 8), "class_weight": ["none", "balanced"]}
# About 2-4 s a trial on the sample: long enough to be caught running, short enough for a test.
SLOW_GB = {"n_estimators": (300, 400), "max_depth": (4, 5)}


def wait_for_tuning(p, name: str, timeout: float = 180.0):
    return wait_until(lambda: (t := p.describe_tuning(name)).status not in ("InProgress", "Stopping") and t,
                      timeout, interval=0.1, what=f"tuning job {name} to end")


def overlapping(jobs) -> int:
    """The most trials that were in flight (submitted, not ended) at one moment."""
    moments = sorted([(j.created_at, 1) for j in jobs] + [(j.ended_at, -1) for j in jobs], key=lambda m: (m[0], m[1]))
    most = now = 0
    for _, step in moments:
        now += step
        most = max(most, now)
    return most


@pytest.mark.parametrize("dataset", ["sample", "subscription"])
def test_a_small_tuning_job_runs_end_to_end(platform, dataset):
    p = platform
    if dataset == "subscription":  # categoricals, blanks, an ID column and a Yes/No target
        p.upload_dataset("subscription", make_subscription_sample(rows=800, seed=3))
    started = p.start_tuning(dataset, FAST_RF, max_trials=4, max_parallel=2, name=f"tune-{dataset}")
    assert started.name == f"tune-{dataset}" and started.status == "InProgress"
    done = wait_for_tuning(p, started.name)
    assert done.status == "Completed", done.failure_reason
    assert (done.trials_completed, done.trials_failed, done.trials_stopped, done.trials_in_progress) == (4, 0, 0, 0)

    trials = p.tuning_trials(started.name)
    assert list(trials["job"]) == [f"tune-{dataset}-{n:03d}" for n in (1, 2, 3, 4)]
    assert list(trials["status"]) == ["Completed"] * 4
    jobs = [p.describe_training(job) for job in trials["job"]]
    for job, (_, trial) in zip(jobs, trials.iterrows(), strict=True):
        # each trial is an ordinary training job with the chosen values, its metrics, log and evaluation
        assert {k: job.hyperparameters[k] for k in trial["hyperparameters"]} == trial["hyperparameters"]
        assert 5 <= job.hyperparameters["n_estimators"] <= 30 and job.hyperparameters["random_state"] == 42
        # ranked by cross-validation inside the training split (issue 24), never by the test split
        assert job.hyperparameters["cv_folds"] == 3
        assert trial["objective"] == pytest.approx(job.metrics["roc_auc_cv"])
        assert "roc_auc_cv=" in p.training_log(job.name)
        assert trial["test"] == pytest.approx(job.metrics["roc_auc"]) if trial["best"] else pd.isna(trial["test"])
    assert overlapping(jobs) <= 2  # max_parallel
    best = trials.loc[trials["objective"].idxmax()]
    assert done.best_job == best["job"] and done.best_objective == pytest.approx(best["objective"])
    assert list(trials["best"]) == [job == done.best_job for job in trials["job"]]
    assert p.evaluation(done.best_job)["roc"]["fpr"]
    assert set(p.job_names()) >= set(trials["job"])  # on the Jobs page with every other job
    log = p.tuning_log(started.name)
    assert "Trial 4" in log and f"best {done.best_job}" in log
    assert p.list_tuning_jobs()[0].name == started.name and p.tuning_names() == [started.name]


def test_random_search_with_a_seed_repeats_and_log_loss_is_minimised(platform):
    p = platform
    ranges = {"C": {"min": 0.001, "max": 10, "scale": "log"}, "class_weight": ["none", "balanced"]}
    runs = [p.start_tuning("sample", ranges, objective="log_loss", strategy="random", seed=seed, max_trials=3,
                           max_parallel=3, algorithm="logistic_regression", name=f"tune-seed-{i}")
            for i, seed in enumerate((5, 5, 6))]
    params = []
    for run in runs:
        done = wait_for_tuning(p, run.name)
        assert done.status == "Completed" and done.direction == "minimize"
        trials = p.tuning_trials(run.name)
        assert done.best_objective == pytest.approx(trials["objective"].min())
        params.append(list(trials["hyperparameters"]))
    assert params[0] == params[1] and params[0] != params[2]


def test_expected_campaign_profit_is_an_objective_locally(platform):
    p = platform
    done = wait_for_tuning(p, p.start_tuning("sample", FAST_RF, objective="expected_profit", max_trials=3,
                                             strategy="random", name="tune-profit").name)
    assert done.status == "Completed" and done.direction == "maximize"
    trials = p.tuning_trials(done.name)
    profits = [p.plan_campaign(job).picked_profit for job in trials["job"]]  # out of fold, not the test split
    assert list(trials["objective"]) == pytest.approx(profits)
    assert done.best_objective == pytest.approx(max(profits)) and "Expected campaign profit" in p.tuning_log(done.name)


def test_start_tuning_checks_everything_before_anything_runs(platform):
    p = platform
    with pytest.raises(ValidationError, match="Unknown strategy 'grid'"):
        p.start_tuning("sample", FAST_RF, strategy="grid")
    with pytest.raises(ValidationError, match="Unknown objective 'accuracy'"):
        p.start_tuning("sample", FAST_RF, objective="accuracy")
    with pytest.raises(ValidationError, match="max_parallel must be a whole number from 1 to 3"):
        p.start_tuning("sample", FAST_RF, max_trials=3, max_parallel=4)
    with pytest.raises(ValidationError, match="max_trials must be a whole number from 1 to 500"):
        p.start_tuning("sample", FAST_RF, max_trials=0)
    with pytest.raises(ValidationError, match="is reversed"):
        p.start_tuning("sample", {"n_estimators": (30, 5)})
    with pytest.raises(NotFoundError):
        p.start_tuning("no-such-dataset", FAST_RF)
    with pytest.raises(ValidationError, match="tuning job name 'bad_name' is not allowed"):
        p.start_tuning("sample", FAST_RF, name="bad_name")
    assert p.list_tuning_jobs() == [] and p.count_training_jobs() == 0
    p.start_training("sample", {"n_estimators": 5}, name="taken-001")
    with pytest.raises(ConflictError, match="would be named taken-001"):
        p.start_tuning("sample", FAST_RF, name="taken")


def test_stop_mid_way_stops_the_running_trials_and_keeps_the_finished_ones(platform):
    p = platform
    tuning = p.start_tuning("sample", SLOW_GB, algorithm="gradient_boosting", max_trials=5, max_parallel=1,
                            name="tune-stop")

    def one_done_one_training():
        trials = p.tuning_trials(tuning.name)
        running = trials[trials["status"] == "InProgress"]
        return ((trials["status"] == "Completed").sum() >= 1 and len(running) == 1
                and p.describe_training(running["job"].iloc[0]).secondary_status == "Training")

    wait_until(one_done_one_training, 120, interval=0.05, what="a finished trial and a training one")
    before = p.tuning_trials(tuning.name)
    running_job = p.describe_training(before.loc[before["status"] == "InProgress", "job"].iloc[0])
    stopped = p.stop_tuning(tuning.name)
    assert stopped.status == "Stopped" and stopped.ended_at
    after = p.tuning_trials(tuning.name)
    assert len(after) == len(before) < 5  # nothing submitted after the stop
    finished = before[before["status"] == "Completed"]
    assert list(after.loc[finished.index, "status"]) == ["Completed"] * len(finished)  # kept, with their results
    assert list(after.loc[finished.index, "objective"]) == list(finished["objective"])
    assert p.describe_training(running_job.name).status == "Stopped"
    assert (stopped.trials_completed, stopped.trials_stopped, stopped.trials_in_progress) == (len(finished), 1, 0)
    assert stopped.best_job in set(finished["job"])
    assert not is_alive(running_job.pid) and not is_alive(stopped.pid)
    with pytest.raises(ConflictError, match="only a running tuning job can be stopped"):
        p.stop_tuning(tuning.name)


def test_a_failing_trial_is_counted_without_failing_the_tuning_job(platform):
    p = platform
    tuning = p.start_tuning("sample", FAST_RF, max_trials=4, max_parallel=1, name="tune-flaky")
    wait_until(lambda: p.describe_tuning(tuning.name).trials_completed >= 1, 60, what="a finished trial")
    ds = p.get_dataset("sample")
    p.store.put_bytes(ds.train_key, b"a,b\n1,2\n3,4\n")  # from now on the train data has no target column
    done = wait_for_tuning(p, tuning.name)
    assert done.status == "Completed" and done.failure_reason == ""
    assert done.trials_failed >= 2 and done.trials_completed >= 1
    assert done.trials_completed + done.trials_failed == 4
    trials = p.tuning_trials(tuning.name)
    failed = trials[trials["status"] == "Failed"]
    assert all("Churn" in reason for reason in failed["failure_reason"]) and failed["objective"].isna().all()
    assert done.best_job in set(trials.loc[trials["status"] == "Completed", "job"])


def test_a_tuning_job_whose_every_trial_fails_ends_failed_with_the_first_reason(platform):
    p = platform
    p.store.put_bytes(p.get_dataset("sample").train_key, b"a,b\n1,2\n3,4\n")
    done = wait_for_tuning(p, p.start_tuning("sample", FAST_RF, max_trials=2, name="tune-doomed").name)
    assert done.status == "Failed" and done.trials_failed == 2 and done.best_job == ""
    assert done.failure_reason.startswith("No trial produced the objective; the first failure:")
    assert "Churn" in done.failure_reason


def test_a_restarted_dashboard_reads_the_tuning_job_unchanged_and_the_process_carries_on(platform):
    p = platform
    tuning = p.start_tuning("sample", {"n_estimators": (100, 150), "max_depth": (3, 4)},
                            algorithm="gradient_boosting", max_trials=4, max_parallel=1, name="tune-restart")
    wait_until(lambda: p.describe_tuning(tuning.name).trials_completed >= 1, 60, what="a finished trial")
    before = p.describe_tuning(tuning.name)
    finished = p.tuning_trials(tuning.name).query("status == 'Completed'")
    again = churn_core.connect()  # a new dashboard process on the same state directory (reconciles on start)
    seen = again.describe_tuning(tuning.name)
    assert seen.status == "InProgress" and seen.pid == before.pid and is_alive(seen.pid)
    stable = ("name", "dataset", "algorithm", "ranges", "static", "objective", "strategy", "seed", "max_trials",
              "max_parallel", "created_at")
    assert {k: getattr(seen, k) for k in stable} == {k: getattr(before, k) for k in stable}
    trials = again.tuning_trials(tuning.name)
    assert trials.loc[finished.index, ["job", "status", "objective"]].equals(finished[["job", "status", "objective"]])
    done = wait_for_tuning(again, tuning.name)
    assert done.status == "Completed" and done.trials_completed == 4
    assert again.tuning_log(tuning.name).count("Tuning gradient_boosting") == 1  # the same process throughout


@pytest.mark.slow
def test_kill_9_of_the_tuning_process_ends_it_failed_and_stops_its_trials(platform):
    p = platform
    tuning = p.start_tuning("sample", SLOW_GB, algorithm="gradient_boosting", max_trials=4, max_parallel=2,
                            name="tune-killed")

    def training():
        trials = p.tuning_trials(tuning.name)
        running = [j for j in trials.loc[trials["status"] == "InProgress", "job"]
                   if p.describe_training(j).secondary_status == "Training"]
        return running and p.describe_training(running[0])

    job = wait_until(training, 60, what="a trial training")
    os.kill(tuning.pid, signal.SIGKILL)
    failed = wait_until(lambda: (t := p.describe_tuning(tuning.name)).status == "Failed" and t, 30,
                        what="Failed after kill -9")
    assert "exited unexpectedly (killed by signal SIGKILL)" in failed.failure_reason
    assert "finished trials are kept" in failed.failure_reason
    assert p.describe_training(job.name).status in ("Stopped", "Completed")  # never left running on its own
    assert not is_alive(job.pid) and failed.trials_in_progress == 0
    assert churn_core.connect().describe_tuning(tuning.name).status == "Failed"


def test_a_trial_whose_submission_was_cut_short_by_a_dead_tuning_process_is_stopped(platform):
    """The tuning process died between recording a trial's job and recording the job's process (pid unknown)."""
    import subprocess
    import sys
    import time

    p = platform
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    now = time.time()
    with p.catalog.tx() as conn:
        conn.execute("INSERT INTO tuning_jobs (name, backend, dataset, algorithm, ranges_json, static_json, objective, "
                     "direction, strategy, seed, max_trials, max_parallel, status, created_at, pid) VALUES "
                     "('tune-cut', 'local', 'sample', 'random_forest', '[]', '{}', 'roc_auc', 'maximize', 'random', 0, "
                     "4, 2, 'InProgress', ?, ?)", (now, gone.pid))
        conn.execute("INSERT INTO jobs (name, backend, dataset, dataset_sha256, algorithm, hyperparameters_json, "
                     "status, secondary_status, created_at) VALUES ('tune-cut-001', 'local', 'sample', '', "
                     "'random_forest', '{}', 'InProgress', 'Starting', ?)", (now,))
        conn.execute("INSERT INTO tuning_trials (tuning_job, number, job, params_json, status, created_at) VALUES "
                     "('tune-cut', 1, 'tune-cut-001', '{}', 'Pending', ?)", (now,))
    seen = churn_core.connect().describe_tuning("tune-cut")  # a dashboard starting reconciles it
    assert seen.status == "Failed" and "exited unexpectedly" in seen.failure_reason
    assert (seen.trials_in_progress, seen.trials_stopped) == (0, 1)
    assert p.describe_training("tune-cut-001").status == "Stopped"


@pytest.mark.slow
def test_a_time_limit_ends_the_search_and_stops_its_trials(platform):
    p = platform
    tuning = p.start_tuning("sample", SLOW_GB, algorithm="gradient_boosting", max_trials=20, max_parallel=1,
                            max_seconds=1.5, name="tune-timed")
    done = wait_for_tuning(p, tuning.name, 60)
    assert done.trials_started < 20 and done.trials_in_progress == 0
    assert done.note == "time limit reached" and done.status in ("Completed", "Failed")
    assert done.trials_stopped >= 1


def test_delete_forgets_a_finished_tuning_job_and_keeps_its_trials(platform):
    p = platform
    tuning = p.start_tuning("sample", FAST_RF, max_trials=2, name="tune-gone")
    with pytest.raises(ConflictError, match="stop it before deleting it"):
        p.delete_tuning(tuning.name)
    wait_for_tuning(p, tuning.name)
    p.delete_tuning(tuning.name)
    with pytest.raises(NotFoundError, match="No tuning job named 'tune-gone'"):
        p.describe_tuning(tuning.name)
    assert {"tune-gone-001", "tune-gone-002"} <= set(p.job_names())


@pytest.mark.parametrize("argument, value", [("max_trials", float("inf")), ("max_trials", float("nan")),
                                             ("max_parallel", float("inf")), ("seed", float("nan")),
                                             ("max_seconds", float("inf"))])
def test_start_tuning_refuses_infinite_and_nan_counts_cleanly(platform, argument, value):
    """Issue 26, item 11: inf and NaN were a raw OverflowError / ValueError (or, for max_seconds, accepted)."""
    with pytest.raises(ValidationError, match=f"{argument} must be"):
        platform.start_tuning("sample", FAST_RF, **{"max_trials": 3, argument: value})
    assert platform.list_tuning_jobs() == []
