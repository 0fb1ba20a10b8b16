"""SageMaker hyperparameter tuning jobs: the request and the reading of the answers (pure functions).

The request is the backend's own ``CreateTrainingJob`` request (``TrainingJobs.request`` in ``training.py``)
turned into a ``TrainingJobDefinition`` the way the SageMaker Python SDK V2 does for framework
estimators: the fixed hyperparameters (JSON-encoded, with ``sagemaker_program`` and
``sagemaker_submit_directory``) become ``StaticHyperParameters``, integer and continuous ranges carry
their bounds as strings, categorical values are JSON-encoded (the script-mode container
``json.loads`` every hyperparameter), and the objective is one of the ``MetricDefinitions`` regexes over
``train.py``'s ``name=value`` lines. The dataset schema travels in the ``train`` channel as for any job.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

from churn_core.backends.sagemaker.limits import check_tuning
from churn_core.tuning.ranges import Range

STRATEGY = {"bayesian": "Bayesian", "random": "Random"}
SCALING = {"linear": "Linear", "log": "Logarithmic"}
TRIAL_NUMBER = re.compile(r"-(\d{3})-[0-9a-z]+$")


def _bound(value: float, kind: str) -> str:
    return str(int(value)) if kind == "integer" else repr(float(value))


def _encode_value(value: Any) -> str:
    """A categorical value as the container will ``json.loads`` it; an unset value is spelled ``none``, which
    ``train.py`` reads as unset (a JSON null would become an empty argument on the script's command line)."""
    return json.dumps("none" if value is None else value)


def parameter_ranges(ranges: list[Range]) -> dict:
    result: dict[str, list] = {"IntegerParameterRanges": [], "ContinuousParameterRanges": [],
                               "CategoricalParameterRanges": []}
    for r in ranges:
        if r.kind == "categorical":
            values = [_encode_value(v) for v in r.values]
            result["CategoricalParameterRanges"].append({"Name": r.name, "Values": values})
        else:
            key = "IntegerParameterRanges" if r.kind == "integer" else "ContinuousParameterRanges"
            result[key].append({"Name": r.name, "MinValue": _bound(r.low, r.kind), "MaxValue": _bound(r.high, r.kind),
                                "ScalingType": SCALING[r.scale]})
    return result


def tuning_request(training: dict, tuning: dict, ranges: list[Range], metric: str) -> dict:
    """``CreateHyperParameterTuningJob`` arguments from the job request ``training_request`` built for the
    tuning job's fixed hyperparameters."""
    tuned = {r.name for r in ranges}
    static = {k: v for k, v in training["HyperParameters"].items() if k not in tuned and k != "sagemaker_job_name"}
    limits: dict[str, int] = {"MaxNumberOfTrainingJobs": int(tuning["max_trials"]),
                              "MaxParallelTrainingJobs": int(tuning["max_parallel"])}
    check_tuning(ranges, tuning.get("max_seconds"), static)  # the service's limits (service-2.json)
    if tuning.get("max_seconds"):
        limits["MaxRuntimeInSeconds"] = int(round(float(tuning["max_seconds"])))
    definition = {
        "StaticHyperParameters": static,
        "AlgorithmSpecification": training["AlgorithmSpecification"],
        "RoleArn": training["RoleArn"],
        "InputDataConfig": training["InputDataConfig"],
        "OutputDataConfig": training["OutputDataConfig"],
        "ResourceConfig": training["ResourceConfig"],
        "StoppingCondition": training["StoppingCondition"],
    }
    return {
        "HyperParameterTuningJobName": tuning["name"],
        "HyperParameterTuningJobConfig": {
            "Strategy": STRATEGY[tuning["strategy"]],
            "HyperParameterTuningJobObjective": {
                "Type": "Maximize" if tuning["direction"] == "maximize" else "Minimize",
                "MetricName": metric,
            },
            "ResourceLimits": limits,
            "ParameterRanges": parameter_ranges(ranges),
            "TrainingJobEarlyStoppingType": "Off",  # train.py reports one final metric: nothing to stop early on
            "RandomSeed": int(tuning["seed"]),
        },
        "TrainingJobDefinition": definition,
    }


def decode_tuned(params: dict[str, str], ranges: list[Range]) -> dict:
    """The tuned values of a child job as Python values (integers, floats, the categorical values we sent)."""
    kinds = {r.name: r.kind for r in ranges}
    result: dict[str, Any] = {}
    for name, raw in (params or {}).items():
        if name.startswith("_") or name.startswith("sagemaker_"):
            continue  # _tuning_objective_metric and the like, added by the service
        try:
            value = json.loads(raw)
        except (TypeError, ValueError):
            value = raw
        if kinds.get(name) == "integer":
            value = int(float(value))
        elif kinds.get(name) == "continuous":
            value = float(value)
        elif value == "none":
            value = None
        result[name] = value
    return result


def _epoch(value) -> float | None:
    if isinstance(value, datetime):
        return value.timestamp()
    return None


def trial_from_summary(summary: dict, ranges: list[Range]) -> dict:
    """A ``HyperParameterTrainingJobSummary`` as the platform records a trial."""
    name = summary["TrainingJobName"]
    number = TRIAL_NUMBER.search(name)
    status = summary.get("TrainingJobStatus") or "InProgress"
    metric = summary.get("FinalHyperParameterTuningJobObjectiveMetric") or {}
    return {
        "job": name,
        "number": int(number.group(1)) if number else None,
        "params": decode_tuned(summary.get("TunedHyperParameters") or {}, ranges),
        "status": status,
        "objective": float(metric["Value"]) if status == "Completed" and "Value" in metric else None,
        "failure_reason": summary.get("FailureReason") or "",
        "created_at": _epoch(summary.get("CreationTime")),
        "ended_at": _epoch(summary.get("TrainingEndTime")),
        "arn": summary.get("TrainingJobArn", ""),
    }


def fields_from_description(info: dict) -> dict:
    """Status, counts, best trial and reason of a ``DescribeHyperParameterTuningJob`` answer."""
    raw = info.get("HyperParameterTuningJobStatus") or "InProgress"
    status = {"Deleting": "Stopping", "DeleteFailed": "Failed"}.get(raw, raw)
    counters = info.get("TrainingJobStatusCounters") or {}
    fields: dict[str, Any] = {
        "status": status,
        "failure_reason": info.get("FailureReason") or "",
        "trials_completed": int(counters.get("Completed") or 0),
        "trials_failed": int(counters.get("RetryableError") or 0) + int(counters.get("NonRetryableError") or 0),
        "trials_stopped": int(counters.get("Stopped") or 0),
        "trials_in_progress": int(counters.get("InProgress") or 0),
    }
    best = info.get("BestTrainingJob") or {}
    value = (best.get("FinalHyperParameterTuningJobObjectiveMetric") or {}).get("Value")
    if best.get("TrainingJobName"):
        fields.update(best_job=best["TrainingJobName"], best_objective=None if value is None else float(value))
    if info.get("HyperParameterTuningJobArn"):
        fields["arn"] = info["HyperParameterTuningJobArn"]
    if status in ("Completed", "Failed", "Stopped"):
        fields["ended_at"] = _epoch(info.get("HyperParameterTuningEndTime")) or _epoch(info.get("LastModifiedTime"))
    if status == "Failed" and not fields["failure_reason"]:
        fields["failure_reason"] = "SageMaker reported the tuning job Failed without a reason; open it in the console."
    return fields


__all__ = ["tuning_request", "parameter_ranges", "decode_tuned", "trial_from_summary", "fields_from_description"]
