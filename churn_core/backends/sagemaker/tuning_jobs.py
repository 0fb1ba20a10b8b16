"""SageMaker hyperparameter tuning jobs, the calls: start, read (spaced out for live pages), stop, delete.
The request and the reading of AWS's answers are pure functions in ``tuning.py``."""

from __future__ import annotations

import json
import time

from churn_core.backends.sagemaker.aws import AwsError
from churn_core.backends.sagemaker.context import SageMakerContext
from churn_core.backends.sagemaker.limits import check_tuning
from churn_core.backends.sagemaker.sourcedir import code_key, package_source
from churn_core.backends.sagemaker.training import TrainingJobs
from churn_core.backends.sagemaker.tuning import fields_from_description, trial_from_summary, tuning_request
from churn_core.errors import BackendError, ChurnError, NotFoundError
from churn_core.records import Dataset
from churn_core.tuning.objectives import get_objective
from churn_core.tuning.ranges import Range
from churn_core.catalog.tuning_records import completed_trial_jobs


def _ranges(tuning: dict) -> list[Range]:
    return [Range.from_dict(r) for r in json.loads(tuning["ranges_json"])]


class TuningJobs:
    def __init__(self, ctx: SageMakerContext, training: TrainingJobs):
        self.ctx = ctx
        self.training = training
        self.refresh_seconds = 5.0  # AWS is asked at most this often per tuning job
        self.reads: dict[str, float] = {}  # tuning job -> when AWS was last asked (monotonic)

    def completed_trial_jobs(self, tuning_name: str) -> set[str]:
        """The trials the catalog already records as Completed (their code package was adopted then)."""
        return completed_trial_jobs(self.ctx.catalog, tuning_name)

    def request(self, tuning: dict, dataset: Dataset, source_uri: str) -> dict:
        pseudo_job = {"name": tuning["name"], "hyperparameters_json": tuning["static_json"],
                      "instance_type": tuning["instance_type"], "instance_count": 1}
        training = self.training.request(pseudo_job, dataset, source_uri)
        request = tuning_request(training, tuning, _ranges(tuning),
                                 get_objective(tuning["objective"], needs_metric=True).ranked_by)
        request["Tags"] = self.ctx.tags(tuning=tuning["name"], dataset=dataset.name)
        return request

    def check(self, tuning: dict) -> None:
        """SageMaker's limits on the ranges, the time limit and the fixed hyperparameters (before anything is
        recorded; ``start`` checks them again in ``tuning_request``)."""
        check_tuning(_ranges(tuning), tuning.get("max_seconds"), json.loads(tuning.get("static_json") or "{}"))

    def start(self, tuning: dict, dataset: Dataset) -> dict:
        self.ctx.require_role()
        self.ctx.store.require_bucket()
        self.ctx.image_uri()
        source_uri = self.ctx.store.put_bytes(code_key(tuning["name"]), package_source())
        request = self.request(tuning, dataset, source_uri)
        answer = self.ctx.call("sagemaker", "create_hyper_parameter_tuning_job",
                               f"start tuning job {tuning['name']}", **request)
        return {"arn": answer.get("HyperParameterTuningJobArn", "")}

    def _trials(self, tuning: dict) -> list[dict]:
        ranges = _ranges(tuning)
        trials, token = [], None
        while True:
            kwargs = {"HyperParameterTuningJobName": tuning["name"], "MaxResults": 100,
                      **({"NextToken": token} if token else {})}
            page = self.ctx.call("sagemaker", "list_training_jobs_for_hyper_parameter_tuning_job",
                                 f"list the trials of tuning job {tuning['name']}", **kwargs)
            trials += [trial_from_summary(s, ranges) for s in page.get("TrainingJobSummaries", [])]
            token = page.get("NextToken")
            if not token:
                return sorted(trials, key=lambda t: (t["created_at"] or 0, t["job"]))

    def refresh(self, tuning: dict) -> tuple[dict, list]:
        """Describe + list trials, at most once per ``refresh_seconds`` per tuning job (a live page asks
        every second; the records stay as last read in between)."""
        if time.monotonic() - self.reads.get(tuning["name"], -1e9) < self.refresh_seconds:
            return {}, []
        self.reads[tuning["name"]] = time.monotonic()
        try:
            info = self.ctx.call("sagemaker", "describe_hyper_parameter_tuning_job",
                                 f"read tuning job {tuning['name']}", HyperParameterTuningJobName=tuning["name"])
        except AwsError as exc:
            if not exc.not_found or time.time() - float(tuning.get("created_at") or 0) < 60:
                raise
            return {"status": "Failed", "ended_at": time.time(),
                    "failure_reason": f"SageMaker has no tuning job named {tuning['name']} in "
                                      f"{self.ctx.settings.region} "
                                      "(deleted outside this app, or the region changed)."}, []
        fields = fields_from_description(info)
        if fields["status"] in ("Completed", "Failed", "Stopped") and not fields.get("ended_at"):
            fields["ended_at"] = time.time()
        try:
            trials = self._trials(tuning)
        except ChurnError as exc:  # no permission, or an emulator without the call: the best trial at least
            fields["note"] = f"The trials could not be listed ({exc}); only the best one is shown."
            best = info.get("BestTrainingJob") or {}
            trials = [trial_from_summary(best, _ranges(tuning))] if best.get("TrainingJobName") else []
        known = self.completed_trial_jobs(tuning["name"])
        for trial in trials:
            if trial["status"] == "Completed" and trial["job"] not in known:
                self._adopt_source(tuning["name"], trial["job"])
        return fields, trials

    def _adopt_source(self, tuning_name: str, job_name: str) -> None:
        """A trial's model is deployed like any job's: its code package sits where a job's would."""
        store = self.ctx.store
        key = code_key(job_name)
        if not store.exists(key):
            try:
                store.put_bytes(key, store.get_bytes(code_key(tuning_name)))
            except NotFoundError:
                pass  # deploying it re-uploads entry/ if the code is unchanged, or says to retrain

    def stop(self, tuning: dict) -> dict:
        self.reads.pop(tuning["name"], None)  # the next read asks AWS again
        try:
            self.ctx.call("sagemaker", "stop_hyper_parameter_tuning_job", f"stop tuning job {tuning['name']}",
                          HyperParameterTuningJobName=tuning["name"])
        except AwsError as exc:
            raise BackendError(
                f"Could not stop tuning job {tuning['name']}: {exc} Its trials keep running (and billing) until the "
                "budget is spent or it is stopped in the SageMaker console."
            ) from None
        return {}

    def delete(self, tuning: dict) -> None:
        try:
            self.ctx.call("sagemaker", "delete_hyper_parameter_tuning_job", f"delete tuning job {tuning['name']}",
                          HyperParameterTuningJobName=tuning["name"])
        except AwsError as exc:
            if not exc.not_found:
                raise
