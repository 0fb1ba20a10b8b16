"""SageMaker training jobs: the ``CreateTrainingJob`` request of the SKLearn script-mode contract,
and the job read back (status, then the model artifact and metrics it left in S3)."""

from __future__ import annotations

import json
import tarfile
import time

from churn_core.backends.sagemaker.aws import AwsError
from churn_core.backends.sagemaker.context import ARTIFACT_GRACE_SECONDS, SageMakerContext, epoch
from churn_core.backends.sagemaker.sourcedir import code_key, package_source
from churn_core.catalog.database import dumps
from churn_core.errors import BackendError, NotFoundError, ValidationError
from churn_core.records import Dataset
from churn_core.storage.artifacts import read_json_member, sha256_bytes
from churn_core.storage.unpack import ArtifactLimits, ArtifactRefused
from churn_core.training.hyperparameters import for_container

METRIC_NAMES = ("accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc", "log_loss", "brier", "ece",
                "roc_auc_cv", "pr_auc_cv", "f1_cv", "log_loss_cv", "brier_cv")  # _cv: tuning ranks by these
METRIC_DEFINITIONS = [{"Name": n, "Regex": f"{n}=([0-9.eE+-]+)"} for n in METRIC_NAMES]
VOLUME_GB = 5
MAX_RUNTIME_SECONDS = 3600


class TrainingJobs:
    def __init__(self, ctx: SageMakerContext):
        self.ctx = ctx

    def output_path(self) -> str:
        return self.ctx.store.uri("jobs/").rstrip("/")

    def request(self, job: dict, dataset: Dataset, source_uri: str) -> dict:
        """CreateTrainingJob arguments (a tuning job's definition is built from them too)."""
        params = for_container(json.loads(job["hyperparameters_json"] or "{}"))
        hyper = {str(k): json.dumps(v) for k, v in params.items()}
        hyper.update({
            "sagemaker_program": json.dumps("train.py"),
            "sagemaker_submit_directory": json.dumps(source_uri),
            "sagemaker_container_log_level": json.dumps(20),
            "sagemaker_job_name": json.dumps(job["name"]),
            "sagemaker_region": json.dumps(self.ctx.settings.region),
        })

        def channel(name: str, prefix: str) -> dict:
            return {
                "ChannelName": name,
                "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": self.ctx.store.uri(prefix),
                                                "S3DataDistributionType": "FullyReplicated"}},
                "ContentType": "text/csv",
                "CompressionType": "None",
            }

        return {
            "TrainingJobName": job["name"],
            "AlgorithmSpecification": {
                "TrainingImage": self.ctx.image_uri(),
                "TrainingInputMode": "File",
                "MetricDefinitions": [dict(m) for m in METRIC_DEFINITIONS],
            },
            "RoleArn": self.ctx.require_role(),
            "HyperParameters": hyper,
            "InputDataConfig": [channel("train", dataset.train_prefix), channel("test", dataset.test_prefix)],
            "OutputDataConfig": {"S3OutputPath": self.output_path()},
            "ResourceConfig": {
                "InstanceType": job["instance_type"] or self.ctx.settings.training_instance_type,
                "InstanceCount": int(job["instance_count"] or 1),
                "VolumeSizeInGB": VOLUME_GB,
            },
            "StoppingCondition": {"MaxRuntimeInSeconds": MAX_RUNTIME_SECONDS},
            "Tags": self.ctx.tags(job=job["name"], dataset=dataset.name),
        }

    def start(self, job: dict, dataset: Dataset) -> dict:
        self.ctx.require_role()
        self.ctx.store.require_bucket()
        self.ctx.image_uri()  # fail on a missing image before anything is uploaded
        key = code_key(job["name"])
        source_uri = self.ctx.store.put_bytes(key, package_source())
        request = self.request(job, dataset, source_uri)
        answer = self.ctx.call("sagemaker", "create_training_job", f"start training job {job['name']}", **request)
        return {"arn": answer.get("TrainingJobArn", ""), "secondary_status": "Starting"}

    def refresh(self, job: dict) -> dict:
        try:
            info = self.ctx.call("sagemaker", "describe_training_job", f"read training job {job['name']}",
                                 TrainingJobName=job["name"])
        except AwsError as exc:
            if not exc.not_found:
                raise
            if time.time() - float(job.get("created_at") or 0) < 60:
                return {}  # just submitted: give SageMaker a moment before calling it lost
            return {"status": "Failed", "secondary_status": "Failed", "ended_at": time.time(),
                    "failure_reason": f"SageMaker has no training job named {job['name']} in "
                                      f"{self.ctx.settings.region} "
                                      "(it was never created or the region changed). Start the job again."}
        status = info.get("TrainingJobStatus") or "InProgress"
        fields = {
            "status": status,
            "secondary_status": info.get("SecondaryStatus") or status,
            "failure_reason": info.get("FailureReason") or "",
            "started_at": epoch(info.get("TrainingStartTime")),
            "ended_at": epoch(info.get("TrainingEndTime")) if status in ("Completed", "Failed", "Stopped") else None,
        }
        if info.get("TrainingJobArn") and not job.get("arn"):
            fields["arn"] = info["TrainingJobArn"]
        if status == "Failed" and not fields["failure_reason"]:
            fields["failure_reason"] = "SageMaker reported Failed without a reason; open the job log for details."
        if status == "Completed":
            fields.update(self._collect_artifacts(job, info))
        if fields["ended_at"] is None and fields["status"] in ("Completed", "Failed", "Stopped"):
            fields["ended_at"] = time.time()
        return {k: v for k, v in fields.items() if not (v is None and k in ("started_at", "ended_at"))}

    def _collect_artifacts(self, job: dict, info: dict) -> dict:
        store = self.ctx.store
        uri = (info.get("ModelArtifacts") or {}).get("S3ModelArtifacts", "")
        if not uri:
            return {"status": "Failed", "secondary_status": "Failed",
                    "failure_reason": "SageMaker reports Completed but names no model artifact. Retrain the model."}
        try:
            model_key = store.key_from_uri(uri)
        except ValidationError as exc:
            return {"status": "Failed", "secondary_status": "Failed", "failure_reason": str(exc)}
        try:
            model_bytes = store.get_bytes(model_key, max_bytes=ArtifactLimits.from_env().max_model_bytes)
        except NotFoundError:
            ended = epoch(info.get("TrainingEndTime")) or time.time()
            if time.time() - ended < ARTIFACT_GRACE_SECONDS:
                # S3 may show the upload a moment after the job reports Completed: keep waiting.
                return {"status": "InProgress", "secondary_status": "Uploading", "ended_at": None}
            return {"status": "Failed", "secondary_status": "Failed",
                    "failure_reason": f"SageMaker reports Completed but {uri} does not exist (deleted?). "
                                      "Retrain the model."}
        except ArtifactRefused as exc:
            return {"status": "Failed", "secondary_status": "Failed", "failure_reason": str(exc)}
        try:
            metrics = read_json_member(model_bytes, "metrics.json")
        except (ValidationError, tarfile.TarError, OSError, ValueError, EOFError):
            metrics = {
                m["MetricName"]: m["Value"]
                for m in info.get("FinalMetricDataList") or []
                if m.get("MetricName") in METRIC_NAMES
            }
        fields = {"model_key": model_key, "model_sha256": sha256_bytes(model_bytes), "metrics_json": dumps(metrics)}
        output_key = model_key.rsplit("/", 1)[0] + "/output.tar.gz"
        try:
            output_bytes = store.get_bytes(output_key, max_bytes=ArtifactLimits.from_env().max_model_bytes)
            fields.update(output_key=output_key, output_sha256=sha256_bytes(output_bytes))
        except (NotFoundError, ArtifactRefused):
            pass  # no evaluation data for this job; the Jobs page says so
        return fields

    def stop(self, job: dict) -> dict:
        try:
            self.ctx.call(
                "sagemaker", "stop_training_job", f"stop training job {job['name']}", TrainingJobName=job["name"]
            )
        except AwsError as exc:
            if exc.not_found:
                raise BackendError(f"SageMaker has no training job named {job['name']}; nothing to stop.") from None
            raise BackendError(
                f"Could not stop training job {job['name']}: {exc} The job keeps running (and billing) until it "
                "finishes or is stopped in the SageMaker console."
            ) from None
        return {}
