"""SageMaker tuning jobs against moto: the exact CreateHyperParameterTuningJob request, and the reads.

moto 5.2.5 creates, describes, lists and deletes tuning jobs, but it reports ``Completed`` at once with
a canned best job (``FakeTrainingJobName``), creates no child training jobs, and lacks
``ListTrainingJobsForHyperParameterTuningJob`` and ``StopHyperParameterTuningJob``. So these tests check
the request by the arguments sent (a botocore event hook), force the states moto cannot reach, create the
child jobs themselves (from the definition the backend sent, as SageMaker would), and add the two missing
actions to moto for the tests that need them. What no test here can show: that SageMaker's Bayesian search
itself behaves, that the real service accepts the request (moto checks almost nothing), and real timing.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone

import pytest

pytestmark = [pytest.mark.aws, pytest.mark.usefixtures("tuning_dataset")]

boto3 = pytest.importorskip("boto3")
moto = pytest.importorskip("moto")
from moto.core.responses import ActionResult, EmptyResult  # noqa: E402
from moto.sagemaker.responses import SageMakerResponse  # noqa: E402

from churn_core.errors import BackendError, ConflictError, ValidationError  # noqa: E402
from churn_core.tuning.objectives import Objective  # noqa: E402
from tests.support.aws import (  # noqa: E402
    BUCKET,
    IMAGE,
    ROLE,
    aws_client,
    capture,
    s3_keys,
    sm_backend,
    upload_artifacts,
)

RANGES = {
    "n_estimators": {"min": 20, "max": 300, "scale": "log"},
    "max_depth": [None, 5, 10],
    "min_samples_leaf": (1, 20),
    "class_weight": ["none", "balanced"],
}


@pytest.fixture
def tuning_dataset(platform, small_dataset):
    """Every test here: dataset 'ds' on the sagemaker platform, which re-reads moto on every describe."""
    platform.backend.tuning_refresh_seconds = 0.0  # these tests change moto's state between reads


@pytest.fixture
def list_trials(monkeypatch):
    """moto lacks ListTrainingJobsForHyperParameterTuningJob: answer it from summaries the test sets."""
    summaries: dict[str, list[dict]] = {}

    def action(self):
        return ActionResult({"TrainingJobSummaries": summaries.get(self._get_param("HyperParameterTuningJobName"), [])})

    monkeypatch.setattr(SageMakerResponse, "list_training_jobs_for_hyper_parameter_tuning_job", action, raising=False)
    return summaries


@pytest.fixture
def running(platform):
    """A real tuning job is InProgress when created (moto says Completed with a canned best job at once)."""

    def hook(parsed, **_):
        job = sm_backend().hyper_parameter_tuning_jobs[parsed["HyperParameterTuningJobArn"].rsplit("/", 1)[1]]
        job.hyper_parameter_tuning_job_status = "InProgress"
        job.best_training_job = None
        job.training_job_status_counters = {"Completed": 0, "InProgress": 0, "RetryableError": 0,
                                            "NonRetryableError": 0, "Stopped": 0}

    platform.backend.client("sagemaker").meta.events.register("after-call.sagemaker.CreateHyperParameterTuningJob",
                                                              hook)
    return platform


def child_job(request: dict, number: int, tuned: dict) -> str:
    """Create the child training job SageMaker would create from the definition the backend sent."""
    definition = request["TrainingJobDefinition"]
    name = f"{request['HyperParameterTuningJobName']}-{number:03d}-{number:08x}"
    aws_client("sagemaker").create_training_job(
        TrainingJobName=name,
        HyperParameters={**definition["StaticHyperParameters"], **tuned},
        AlgorithmSpecification=definition["AlgorithmSpecification"], RoleArn=definition["RoleArn"],
        InputDataConfig=definition["InputDataConfig"], OutputDataConfig=definition["OutputDataConfig"],
        ResourceConfig=definition["ResourceConfig"], StoppingCondition=definition["StoppingCondition"])
    return name


def summary(name: str, status: str, tuned: dict, value: float | None = None, reason: str = "") -> dict:
    out = {"TrainingJobName": name, "TrainingJobArn": f"arn:aws:sagemaker:us-east-1:123456789012:training-job/{name}",
           "CreationTime": datetime(2026, 1, 1, 12, int(name[-2:], 16) % 60, tzinfo=timezone.utc),
           "TrainingJobStatus": status, "TunedHyperParameters": tuned}
    if value is not None:
        out["FinalHyperParameterTuningJobObjectiveMetric"] = {"Type": "Maximize", "MetricName": "roc_auc",
                                                              "Value": value}
        out["ObjectiveStatus"] = "Succeeded"
    if reason:
        out["FailureReason"] = reason
        out["ObjectiveStatus"] = "Failed"
    return out


# ---------------------------------------------------------------------------------------------------------------


def test_create_request_has_the_framework_contract_ranges_objective_and_limits(platform):
    p = platform
    sent = capture(p, "sagemaker", "CreateHyperParameterTuningJob")
    tuning = p.start_tuning("ds", RANGES, objective="roc_auc", max_trials=8, max_parallel=3, strategy="random",
                            name="tune-rf-1", seed=7, max_seconds=900)
    assert tuning.name == "tune-rf-1" and tuning.arn.endswith(":hyper-parameter-tuning-job/tune-rf-1")
    (req,) = sent
    assert req["HyperParameterTuningJobName"] == "tune-rf-1"
    config = req["HyperParameterTuningJobConfig"]
    assert config["Strategy"] == "Random" and config["RandomSeed"] == 7
    # ranked by the metric cross-validated on the training split (issue 24), read off its own log line
    assert config["HyperParameterTuningJobObjective"] == {"Type": "Maximize", "MetricName": "roc_auc_cv"}
    assert config["ResourceLimits"] == {"MaxNumberOfTrainingJobs": 8, "MaxParallelTrainingJobs": 3,
                                        "MaxRuntimeInSeconds": 900}
    assert config["TrainingJobEarlyStoppingType"] == "Off"
    ranges = config["ParameterRanges"]
    assert ranges["IntegerParameterRanges"] == [
        {"Name": "n_estimators", "MinValue": "20", "MaxValue": "300", "ScalingType": "Logarithmic"},
        {"Name": "min_samples_leaf", "MinValue": "1", "MaxValue": "20", "ScalingType": "Linear"},
    ]
    assert ranges["ContinuousParameterRanges"] == []
    # Categorical values JSON-encoded as the V2 SDK does for framework images; unset is "none", which train.py reads
    assert ranges["CategoricalParameterRanges"] == [
        {"Name": "max_depth", "Values": ['"none"', "5", "10"]},
        {"Name": "class_weight", "Values": ['"none"', '"balanced"']},
    ]
    # The objective is one of the job's metric regexes, and it reads train.py's metric line.
    definition = req["TrainingJobDefinition"]
    metrics = {m["Name"]: m["Regex"] for m in definition["AlgorithmSpecification"]["MetricDefinitions"]}
    assert float(re.search(metrics["roc_auc"], "pr_auc=0.51\nroc_auc=0.912345\n").group(1)) == pytest.approx(0.912345)
    log = "roc_auc=0.912345\nroc_auc_cv=0.871\n"
    assert [float(v) for v in re.findall(metrics["roc_auc"], log)] == [0.912345], "the test metric never reads CV"
    assert [float(v) for v in re.findall(metrics["roc_auc_cv"], log)] == [0.871]
    assert definition["AlgorithmSpecification"]["TrainingImage"] == IMAGE
    assert definition["AlgorithmSpecification"]["TrainingInputMode"] == "File"
    static = definition["StaticHyperParameters"]
    source_uri = f"s3://{BUCKET}/churn/code/tune-rf-1/sourcedir.tar.gz"
    assert static["sagemaker_program"] == '"train.py"'
    assert static["sagemaker_submit_directory"] == json.dumps(source_uri)
    assert static["algorithm"] == '"random_forest"' and static["random_state"] == "42"
    assert static["cv_folds"] == "3", "every trial cross-validates inside its training split"
    assert not set(static) & set(RANGES)  # tuned names are ranges only
    assert "target" not in static and "sagemaker_job_name" not in static
    assert all(isinstance(v, str) for v in static.values())
    assert "churn/code/tune-rf-1/sourcedir.tar.gz" in s3_keys("churn/code/")
    channels = {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in definition["InputDataConfig"]}
    assert channels["train"] == f"s3://{BUCKET}/churn/datasets/ds/train/"
    assert "churn/datasets/ds/train/dataset-schema.json" in s3_keys(channels["train"].split(f"{BUCKET}/")[1])
    assert definition["RoleArn"] == ROLE
    assert definition["OutputDataConfig"] == {"S3OutputPath": f"s3://{BUCKET}/churn/jobs"}
    assert definition["ResourceConfig"]["InstanceType"] == "ml.m5.large"
    assert definition["StoppingCondition"]["MaxRuntimeInSeconds"] >= 120
    tags = {t["Key"]: t["Value"] for t in req["Tags"]}
    assert tags["created-by"] == "churn-control-plane" and tags["churn:tuning"] == "tune-rf-1"
    # what moto stored is what was sent
    stored = aws_client("sagemaker").describe_hyper_parameter_tuning_job(HyperParameterTuningJobName="tune-rf-1")
    assert stored["HyperParameterTuningJobConfig"]["ParameterRanges"] == ranges


def test_unset_hyperparameters_are_left_out_and_log_loss_is_minimised(platform):
    p = platform
    sent = capture(p, "sagemaker", "CreateHyperParameterTuningJob")
    p.start_tuning("ds", {"n_estimators": (10, 50)}, objective="log_loss", max_trials=4, name="tune-ll")
    (req,) = sent
    config = req["HyperParameterTuningJobConfig"]
    assert config["HyperParameterTuningJobObjective"] == {"Type": "Minimize", "MetricName": "log_loss_cv"}
    assert config["Strategy"] == "Bayesian"
    assert config["ResourceLimits"] == {"MaxNumberOfTrainingJobs": 4, "MaxParallelTrainingJobs": 2}
    assert "max_depth" not in req["TrainingJobDefinition"]["StaticHyperParameters"]  # None: the script's default


def test_describe_lists_trials_and_the_best_trial_deploys_like_any_job(running, list_trials, model_tarballs):
    p = running
    sent = capture(p, "sagemaker", "CreateHyperParameterTuningJob")
    p.start_tuning("ds", RANGES, max_trials=3, max_parallel=2, name="tune-rf-2")
    (req,) = sent
    tuned_1 = {"n_estimators": "57", "max_depth": '"none"', "min_samples_leaf": "3", "class_weight": '"balanced"'}
    tuned_2 = {"n_estimators": "120", "max_depth": "5", "min_samples_leaf": "1", "class_weight": '"none"'}
    first, second = child_job(req, 1, tuned_1), child_job(req, 2, tuned_2)
    moto_job = sm_backend().hyper_parameter_tuning_jobs["tune-rf-2"]

    # While it runs: SageMaker's counters and the trials so far.
    moto_job.training_job_status_counters = {"Completed": 0, "InProgress": 2, "RetryableError": 0,
                                             "NonRetryableError": 0, "Stopped": 0}
    list_trials["tune-rf-2"] = [summary(first, "InProgress", tuned_1), summary(second, "InProgress", tuned_2)]
    seen_lists = capture(p, "sagemaker", "ListTrainingJobsForHyperParameterTuningJob")
    running = p.describe_tuning("tune-rf-2")
    assert running.status == "InProgress" and running.trials_in_progress == 2 and running.best_job == ""
    assert seen_lists[-1]["HyperParameterTuningJobName"] == "tune-rf-2"

    # Finished: one trial completed (its model in S3), one failed; the best is the completed one.
    upload_artifacts(first, model_tarballs)
    sm_backend().training_jobs[second].training_job_status = "Failed"
    list_trials["tune-rf-2"] = [summary(first, "Completed", tuned_1, 0.91),
                                summary(second, "Failed", tuned_2, reason="AlgorithmError: out of memory")]
    moto_job.hyper_parameter_tuning_job_status = "Completed"
    moto_job.training_job_status_counters = {"Completed": 1, "InProgress": 0, "RetryableError": 0,
                                             "NonRetryableError": 1, "Stopped": 0}
    moto_job.best_training_job = summary(first, "Completed", tuned_1, 0.91)
    done = p.describe_tuning("tune-rf-2")
    assert (done.status, done.trials_completed, done.trials_failed) == ("Completed", 1, 1)
    assert done.best_job == first and done.best_objective == pytest.approx(0.91)

    trials = p.tuning_trials("tune-rf-2")
    assert list(trials["job"]) == [first, second] and list(trials["trial"]) == [1, 2]
    assert list(trials["status"]) == ["Completed", "Failed"]
    assert trials.loc[0, "hyperparameters"] == {"n_estimators": 57, "max_depth": None, "min_samples_leaf": 3,
                                                "class_weight": "balanced"}
    assert trials.loc[1, "hyperparameters"]["max_depth"] == 5
    assert list(trials["best"]) == [True, False]
    assert "out of memory" in trials.loc[1, "failure_reason"]

    # The trials are training jobs of the catalog: the best one completes with its artifacts and deploys.
    job = p.describe_training(first)
    assert job.status == "Completed" and job.hyperparameters["n_estimators"] == 57
    assert job.hyperparameters["max_depth"] is None and job.hyperparameters["class_weight"] == "balanced"
    created = capture(p, "sagemaker", "CreateModel")
    p.deploy(done.best_job, "tuned-ep", wait=False)
    (model_req,) = created
    assert model_req["PrimaryContainer"]["ModelDataUrl"] == f"s3://{BUCKET}/churn/jobs/{first}/output/model.tar.gz"
    submit_dir = model_req["PrimaryContainer"]["Environment"]["SAGEMAKER_SUBMIT_DIRECTORY"]
    assert submit_dir == f"s3://{BUCKET}/churn/code/{first}/sourcedir.tar.gz"
    assert f"churn/code/{first}/sourcedir.tar.gz" in s3_keys("churn/code/")
    p.delete_endpoint("tuned-ep")


def test_reads_of_a_running_tuning_job_are_spaced_out(running, list_trials):
    """A live page reads every second; AWS is asked at most once per tuning_refresh_seconds."""
    p = running
    p.backend.tuning_refresh_seconds = 60.0
    p.start_tuning("ds", {"n_estimators": (10, 50)}, max_trials=2, name="tune-spaced")
    described = capture(p, "sagemaker", "DescribeHyperParameterTuningJob")
    for _ in range(5):
        assert p.describe_tuning("tune-spaced").status == "InProgress"
    assert described == []  # start_tuning's own read was the last one


def test_without_a_trial_list_the_best_trial_is_still_recorded(running):
    """Where listing trials is refused (here: moto lacks the call), the best trial from describe is kept."""
    p = running
    sent = capture(p, "sagemaker", "CreateHyperParameterTuningJob")
    p.start_tuning("ds", {"n_estimators": (10, 50)}, max_trials=2, name="tune-nolist")
    best = child_job(sent[0], 2, {"n_estimators": "33"})
    moto_job = sm_backend().hyper_parameter_tuning_jobs["tune-nolist"]
    moto_job.best_training_job = summary(best, "Completed", {"n_estimators": "33"}, 0.88)
    moto_job.hyper_parameter_tuning_job_status = "Completed"
    done = p.describe_tuning("tune-nolist")
    assert done.status == "Completed" and done.best_job == best
    assert "could not be listed" in done.note
    assert list(p.tuning_trials("tune-nolist")["job"]) == [best]
    assert p.describe_training(best).hyperparameters["n_estimators"] == 33


def test_stop_sends_the_stop_call_and_says_so_when_aws_cannot(running, monkeypatch):
    p = running
    assert p.start_tuning("ds", {"n_estimators": (10, 50)}, max_trials=4, name="tune-stop").status == "InProgress"
    moto_job = sm_backend().hyper_parameter_tuning_jobs["tune-stop"]
    # moto itself lacks StopHyperParameterTuningJob: the user is told the trials keep running.
    with pytest.raises(BackendError, match="Could not stop tuning job tune-stop.*SageMaker console"):
        p.stop_tuning("tune-stop")

    def stop(self):
        sm_backend().hyper_parameter_tuning_jobs[self._get_param("HyperParameterTuningJobName")] \
            .hyper_parameter_tuning_job_status = "Stopping"
        return EmptyResult()

    monkeypatch.setattr(SageMakerResponse, "stop_hyper_parameter_tuning_job", stop, raising=False)
    seen = capture(p, "sagemaker", "StopHyperParameterTuningJob")
    assert p.stop_tuning("tune-stop").status == "Stopping"
    assert seen == [{"HyperParameterTuningJobName": "tune-stop"}]
    moto_job.hyper_parameter_tuning_job_status = "Stopped"
    assert p.describe_tuning("tune-stop").status == "Stopped" and p.describe_tuning("tune-stop").ended_at


def test_delete_removes_the_tuning_job_on_sagemaker_and_keeps_its_trials(running, list_trials):
    p = running
    sent = capture(p, "sagemaker", "CreateHyperParameterTuningJob")
    p.start_tuning("ds", {"n_estimators": (10, 50)}, max_trials=2, name="tune-del")
    best = child_job(sent[0], 1, {"n_estimators": "12"})
    moto_job = sm_backend().hyper_parameter_tuning_jobs["tune-del"]
    moto_job.best_training_job = summary(best, "Completed", {"n_estimators": "12"}, 0.8)
    moto_job.hyper_parameter_tuning_job_status = "Completed"
    list_trials["tune-del"] = [moto_job.best_training_job]
    with pytest.raises(ConflictError, match="only a running tuning job"):
        p.stop_tuning("tune-del")
    assert p.describe_tuning("tune-del").status == "Completed"
    deleted = capture(p, "sagemaker", "DeleteHyperParameterTuningJob")
    p.delete_tuning("tune-del")
    assert deleted == [{"HyperParameterTuningJobName": "tune-del"}]
    assert "tune-del" not in p.tuning_names()
    names = [s["HyperParameterTuningJobName"] for s in
             aws_client("sagemaker").list_hyper_parameter_tuning_jobs()["HyperParameterTuningJobSummaries"]]
    assert "tune-del" not in names
    assert best in p.job_names()  # the trial stays a training job, as on SageMaker


def test_sagemaker_refuses_what_it_cannot_tune(platform, monkeypatch):
    from churn_core.tuning import objectives as tuning_objectives

    p = platform
    local_only = Objective("profit_test", "Profit (test)", "maximize", score=lambda platform, job: 1.0)
    monkeypatch.setitem(tuning_objectives._REGISTRY, local_only.name, local_only)
    assert "profit_test" not in p.tuning_objectives() and "roc_auc" in p.tuning_objectives()
    with pytest.raises(ValidationError, match="SageMaker tuning job cannot do"):
        p.start_tuning("ds", {"n_estimators": (10, 50)}, objective="profit_test", name="tune-x")
    with pytest.raises(ValidationError, match="at least 120 seconds"):
        p.start_tuning("ds", {"n_estimators": (10, 50)}, max_seconds=60, name="tune-y")
    assert "tune-y" not in p.tuning_names()  # refused before anything is recorded (issue 26, item 15)
    with pytest.raises(ValidationError, match="1–32 characters"):
        p.start_tuning("ds", {"n_estimators": (10, 50)}, name="a-tuning-job-name-longer-than-32-chars")
