"""The SageMaker backend: S3 for storage, SageMaker training jobs and real-time endpoints, boto3 only.

It builds the SKLearn framework-container contract the way the SageMaker Python SDK V2 did
(the V3 SDK dropped those classes and its replacements do not follow the contract):

* ``entry/`` is uploaded as ``<prefix>/code/<job>/sourcedir.tar.gz``;
* ``CreateTrainingJob`` gets the SKLearn image, JSON-encoded hyperparameters plus
  ``sagemaker_program``/``sagemaker_submit_directory``, ``train``/``test`` S3 channels and
  metric regexes for the ``name=value`` lines ``train.py`` prints;
* an endpoint is ``CreateModel`` (SAGEMAKER_PROGRAM/SAGEMAKER_SUBMIT_DIRECTORY) →
  ``CreateEndpointConfig`` → ``CreateEndpoint``; deleting removes all three.

Every resource is tagged ``created-by=churn-control-plane`` so Clean up finds it even when the
local catalog forgot it. AWS is the truth; the catalog is a cache the platform refreshes.
"""

from __future__ import annotations

import gzip
import io
import json
import re
import shlex
import tarfile
import time
from datetime import datetime, timezone
from pathlib import Path

from churn_core.storage.artifacts import read_json_member, sha256_bytes
from churn_core.backends.sagemaker.aws import OWNER_TAG, AwsClients, AwsError, call, sklearn_image_uri
from churn_core.catalog.database import Catalog, dumps
from churn_core.errors import BackendError, ChurnError, NotFoundError, ValidationError
from churn_core.training.hyperparameters import for_container
from churn_core.paths import ENTRY_DIR, code_version
from churn_core.records import Dataset
from churn_core.monitoring.capture import CAPTURE_PREFIX
from churn_core.backends.sagemaker.s3_store import S3ObjectStore
from churn_core.storage.unpack import ArtifactLimits, ArtifactRefused

TRAINING_LOG_GROUP = "/aws/sagemaker/TrainingJobs"
TRANSFORM_LOG_GROUP = "/aws/sagemaker/TransformJobs"
ENDPOINT_LOG_GROUP = "/aws/sagemaker/Endpoints/{name}"
METRIC_NAMES = ("accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc", "log_loss")
METRIC_DEFINITIONS = [{"Name": n, "Regex": f"{n}=([0-9.eE+-]+)"} for n in METRIC_NAMES]
VOLUME_GB = 5
MAX_RUNTIME_SECONDS = 3600
STATS_TTL_SECONDS = 60.0
STATS_MAX_WINDOW_SECONDS = 14 * 24 * 3600  # one-minute CloudWatch data is kept 15 days
# How long after SageMaker says Completed we wait for model.tar.gz before calling the job Failed.
ARTIFACT_GRACE_SECONDS = 600
ROLE_RE = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$")
ENDPOINT_STATUS = {
    "Creating": "Creating",
    "InService": "InService",
    "Updating": "Updating",
    "SystemUpdating": "Updating",
    "RollingBack": "Updating",
    "OutOfService": "Updating",  # temporarily unavailable; keep refreshing
    "Deleting": "Deleting",
    "Failed": "Failed",
    "UpdateRollbackFailed": "Failed",
}


def _epoch(value) -> float | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.timestamp()
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def package_source(folder: Path = ENTRY_DIR) -> bytes:
    """``sourcedir.tar.gz`` of ``entry/`` (members at the top level, no caches), byte-for-byte reproducible."""
    if not (folder / "train.py").is_file():
        raise BackendError(f"The training script {folder / 'train.py'} is missing; restore entry/ and try again.")
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as gz:
        with tarfile.open(fileobj=gz, mode="w") as tar:
            for path in sorted(folder.rglob("*")):
                rel = path.relative_to(folder)
                if not path.is_file() or "__pycache__" in rel.parts or path.suffix in (".pyc", ".pyo") \
                        or any(part.startswith(".") for part in rel.parts):
                    continue
                info = tarfile.TarInfo(str(rel))
                data = path.read_bytes()
                info.size, info.mtime, info.mode = len(data), 0, 0o644
                tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


class SageMakerBackend:
    name = "sagemaker"
    poll_interval = 5.0
    quick_deploy = False  # an endpoint takes minutes to come up on AWS
    precheck_requests = True  # the SKLearn container turns a handler's 4xx into a 500 ModelError

    def __init__(self, settings, catalog: Catalog):
        self.settings = settings
        self.catalog = catalog
        self.aws = AwsClients(settings)
        self.store = S3ObjectStore(self.aws, settings.bucket, settings.prefix)
        self._stats: dict[str, tuple[float, dict]] = {}

    # ---- helpers ----------------------------------------------------------------------------
    def client(self, service: str):
        """The shared boto3 client (tests register botocore event hooks on it)."""
        return self.aws.client(service)

    def _call(self, service: str, operation: str, what: str = "", **kwargs):
        return call(self.client(service), operation, what=what, settings=self.settings, **kwargs)

    def _tags(self, **extra: str) -> list[dict]:
        return [dict(OWNER_TAG), *({"Key": f"churn:{k}", "Value": str(v)[:256]} for k, v in extra.items())]

    def _require_role(self) -> str:
        role = (self.settings.role_arn or "").strip()
        if not role:
            raise ValidationError(
                "No SageMaker execution role is configured. Set CHURN_SAGEMAKER_ROLE_ARN to the ARN of a role "
                "SageMaker can assume (arn:aws:iam::<account>:role/<name>); docs/aws.md has its policy."
            )
        if not ROLE_RE.match(role):
            raise ValidationError(
                f"CHURN_SAGEMAKER_ROLE_ARN={role!r} is not an IAM role ARN. It looks like "
                "arn:aws:iam::123456789012:role/churn-sagemaker (copy it from the IAM console)."
            )
        return role

    def image_uri(self) -> str:
        return sklearn_image_uri(self.settings)

    def code_key(self, job_name: str) -> str:
        return f"code/{job_name}/sourcedir.tar.gz"

    def output_path(self) -> str:
        return self.store.uri("jobs/").rstrip("/")

    def invoke_url(self, endpoint_name: str) -> str:
        if self.settings.aws_endpoint_url:
            return f"{self.settings.aws_endpoint_url.rstrip('/')}/endpoints/{endpoint_name}/invocations"
        return f"https://runtime.sagemaker.{self.settings.region}.amazonaws.com/endpoints/{endpoint_name}/invocations"

    def training_instance_types(self) -> list[str]:
        from churn_core.endpoints.pricing import TRAINING_INSTANCE_TYPES

        default = self.settings.training_instance_type
        return [default, *(t for t in TRAINING_INSTANCE_TYPES if t != default)]

    def runtime_client_code(self, endpoint_url: str) -> str:
        return f'boto3.client("sagemaker-runtime", region_name="{self.settings.region}")'

    def curl_command(self, endpoint_name: str, endpoint_url: str, body: str) -> str:
        return (f'curl -s --aws-sigv4 "aws:amz:{self.settings.region}:sagemaker" '
                '--user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" '
                f"-H 'Content-Type: application/json' -d {shlex.quote(body)} {self.invoke_url(endpoint_name)}")

    # ---- start-up -------------------------------------------------------------------------------
    def reconcile(self) -> None:
        """Nothing at start-up: every read of an active job or endpoint asks AWS (no calls on connect)."""

    # ---- training -------------------------------------------------------------------------------
    def training_request(self, job: dict, dataset: Dataset, source_uri: str) -> dict:
        params = for_container(json.loads(job["hyperparameters_json"] or "{}"))
        hyper = {str(k): json.dumps(v) for k, v in params.items()}
        hyper.update({
            "sagemaker_program": json.dumps("train.py"),
            "sagemaker_submit_directory": json.dumps(source_uri),
            "sagemaker_container_log_level": json.dumps(20),
            "sagemaker_job_name": json.dumps(job["name"]),
            "sagemaker_region": json.dumps(self.settings.region),
        })

        def channel(name: str, prefix: str) -> dict:
            return {
                "ChannelName": name,
                "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": self.store.uri(prefix),
                                                "S3DataDistributionType": "FullyReplicated"}},
                "ContentType": "text/csv",
                "CompressionType": "None",
            }

        return {
            "TrainingJobName": job["name"],
            "AlgorithmSpecification": {
                "TrainingImage": self.image_uri(),
                "TrainingInputMode": "File",
                "MetricDefinitions": [dict(m) for m in METRIC_DEFINITIONS],
            },
            "RoleArn": self._require_role(),
            "HyperParameters": hyper,
            "InputDataConfig": [channel("train", dataset.train_prefix), channel("test", dataset.test_prefix)],
            "OutputDataConfig": {"S3OutputPath": self.output_path()},
            "ResourceConfig": {
                "InstanceType": job["instance_type"] or self.settings.training_instance_type,
                "InstanceCount": int(job["instance_count"] or 1),
                "VolumeSizeInGB": VOLUME_GB,
            },
            "StoppingCondition": {"MaxRuntimeInSeconds": MAX_RUNTIME_SECONDS},
            "Tags": self._tags(job=job["name"], dataset=dataset.name),
        }

    def start_training(self, job: dict, dataset: Dataset) -> dict:
        self._require_role()
        self.store._require_bucket()
        self.image_uri()  # fail on a missing image before anything is uploaded
        key = self.code_key(job["name"])
        source_uri = self.store.put_bytes(key, package_source())
        request = self.training_request(job, dataset, source_uri)
        answer = self._call("sagemaker", "create_training_job", f"start training job {job['name']}", **request)
        return {"arn": answer.get("TrainingJobArn", ""), "secondary_status": "Starting"}

    def refresh_training(self, job: dict) -> dict:
        try:
            info = self._call("sagemaker", "describe_training_job", f"read training job {job['name']}",
                              TrainingJobName=job["name"])
        except AwsError as exc:
            if not exc.not_found:
                raise
            if time.time() - float(job.get("created_at") or 0) < 60:
                return {}  # just submitted: give SageMaker a moment before calling it lost
            return {"status": "Failed", "secondary_status": "Failed", "ended_at": time.time(),
                    "failure_reason": f"SageMaker has no training job named {job['name']} in {self.settings.region} "
                                      "(it was never created or the region changed). Start the job again."}
        status = info.get("TrainingJobStatus") or "InProgress"
        fields = {
            "status": status,
            "secondary_status": info.get("SecondaryStatus") or status,
            "failure_reason": info.get("FailureReason") or "",
            "started_at": _epoch(info.get("TrainingStartTime")),
            "ended_at": _epoch(info.get("TrainingEndTime")) if status in ("Completed", "Failed", "Stopped") else None,
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
        uri = (info.get("ModelArtifacts") or {}).get("S3ModelArtifacts", "")
        if not uri:
            return {"status": "Failed", "secondary_status": "Failed",
                    "failure_reason": "SageMaker reports Completed but names no model artifact. Retrain the model."}
        try:
            model_key = self.store.key_from_uri(uri)
        except ValidationError as exc:
            return {"status": "Failed", "secondary_status": "Failed", "failure_reason": str(exc)}
        try:
            model_bytes = self.store.get_bytes(model_key, max_bytes=ArtifactLimits.from_env().max_model_bytes)
        except NotFoundError:
            ended = _epoch(info.get("TrainingEndTime")) or time.time()
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
            output_bytes = self.store.get_bytes(output_key, max_bytes=ArtifactLimits.from_env().max_model_bytes)
            fields.update(output_key=output_key, output_sha256=sha256_bytes(output_bytes))
        except (NotFoundError, ArtifactRefused):
            pass  # no evaluation data for this job; the Jobs page says so
        return fields

    def stop_training(self, job: dict) -> dict:
        try:
            self._call(
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

    def _log_tail(self, group: str, stream_prefix: str, lines: int, what: str) -> str:
        """The last ``lines`` of each stream; a log that cannot be read is reported as text, never raised
        (the log is auxiliary: a missing logs:GetLogEvents permission must not break the Jobs page)."""
        try:
            return self._read_log(group, stream_prefix, lines, what)
        except ChurnError as exc:
            return f"Could not read the CloudWatch log of this {what}: {exc}"

    def _read_log(self, group: str, stream_prefix: str, lines: int, what: str) -> str:
        try:
            answer = self._call(
                "logs",
                "describe_log_streams",
                f"list log streams of {what}",
                logGroupName=group,
                logStreamNamePrefix=stream_prefix,
            )
        except AwsError as exc:
            if exc.code == "ResourceNotFoundException":
                return (
                    f"No CloudWatch log yet for this {what}: log group {group} does not exist in "
                    f"{self.settings.region}. SageMaker creates it when the first instance starts; try again "
                    "in a minute."
                )
            raise
        streams = sorted(s["logStreamName"] for s in answer.get("logStreams", []))
        if not streams:
            return (
                f"No CloudWatch log yet for this {what}: no stream {stream_prefix}* in {group}. "
                "It appears once the instance starts; try again in a minute."
            )
        parts = []
        for stream in streams[:8]:
            events = self._call(
                "logs",
                "get_log_events",
                f"read log stream {stream}",
                logGroupName=group,
                logStreamName=stream,
                startFromHead=False,
                limit=max(1, min(int(lines), 10000)),
            )
            text = "\n".join(e.get("message", "").rstrip("\n") for e in events.get("events", []))
            parts.append(f"==> {stream} <==\n{text}" if len(streams) > 1 else text)
        return "\n".join(parts)

    def training_log(self, job: dict, lines: int = 200) -> str:
        return self._log_tail(TRAINING_LOG_GROUP, f"{job['name']}/", lines, "job")

    # ---- endpoints ------------------------------------------------------------------------------
    def _source_for_model(self, trained_model: str) -> str:
        """The sourcedir.tar.gz the model was trained with (re-uploaded if gone and the code is unchanged)."""
        key = self.code_key(trained_model)
        if self.store.exists(key):
            return self.store.uri(key)
        row = self.catalog.one("SELECT code_sha256 FROM models WHERE name = ?", (trained_model,))
        if row and row["code_sha256"] == code_version():
            return self.store.put_bytes(key, package_source())
        raise BackendError(
            f"The training code package {self.store.uri(key)} of model {trained_model} is missing and the model "
            "code in entry/ "
            "has changed since; retrain the model, then deploy it."
        )

    def model_request(self, endpoint: dict, deployed_model: dict) -> dict:
        """CreateModel: from the registered model package when the deployment is a registry version,
        else from the training job's artifact and code."""
        if deployed_model.get("version_arn"):
            container: dict = {"ModelPackageName": deployed_model["version_arn"]}
        else:
            container = self.model_container(deployed_model["model"], deployed_model["artifact_key"])
        if deployed_model.get("threshold") is not None:  # read by train.py's model_fn, as locally
            container.setdefault("Environment", {})["CHURN_THRESHOLD"] = repr(float(deployed_model["threshold"]))
        return {
            "ModelName": deployed_model["name"],
            "PrimaryContainer": container,
            "ExecutionRoleArn": self._require_role(),
            "Tags": self._tags(endpoint=endpoint["name"], model=deployed_model["model"]),
        }

    def create_endpoint(self, endpoint: dict, config: dict, deployed_model: dict) -> dict:
        self._require_role()
        self.image_uri()
        if not deployed_model.get("artifact_key") or not self.store.exists(deployed_model["artifact_key"]):
            raise BackendError(
                f"The model artifact {self.store.uri(deployed_model.get('artifact_key') or 'jobs/?')} is missing from "
                "S3. Retrain the model, then deploy again."
            )
        model_req = self.model_request(endpoint, deployed_model)
        tags = self._tags(endpoint=endpoint["name"], model=deployed_model["model"])
        created: list[tuple[str, str]] = []
        try:
            self._call("sagemaker", "create_model", f"create model {deployed_model['name']}", **model_req)
            created.append(("model", deployed_model["name"]))
            self._call(
                "sagemaker",
                "create_endpoint_config",
                f"create endpoint config {config['name']}",
                EndpointConfigName=config["name"],
                ProductionVariants=[
                    {
                        "VariantName": "AllTraffic",
                        "ModelName": deployed_model["name"],
                        "InstanceType": config["instance_type"],
                        "InitialInstanceCount": int(config["instance_count"]),
                        "InitialVariantWeight": 1.0,
                    }
                ],
                Tags=tags,
            )
            created.append(("endpoint_config", config["name"]))
            answer = self._call(
                "sagemaker",
                "create_endpoint",
                f"create endpoint {endpoint['name']}",
                EndpointName=endpoint["name"],
                EndpointConfigName=config["name"],
                Tags=tags,
            )
        except ChurnError as exc:
            leftovers = self._roll_back(created)
            note = (
                ""
                if not created
                else " Rolled back: "
                + ", ".join(f"{kind.replace('_', ' ')} {name}" for kind, name in created)
                + " deleted."
                if not leftovers
                else " Could not remove " + ", ".join(leftovers) + "; run Clean up on the Endpoints page."
            )
            raise BackendError(f"Deploying endpoint {endpoint['name']} failed: {exc}{note}") from exc
        return {"arn": answer.get("EndpointArn", ""), "url": self.invoke_url(endpoint["name"])}

    # ---- rollout and capture: endpoint configurations, UpdateEndpoint -------------------------------
    def capture_config(self, endpoint: dict) -> dict | None:
        """DataCaptureConfig for an endpoint capturing a share of its traffic (into capture/ of the bucket)."""
        percent = float(endpoint.get("capture_percent") or 0)
        if percent <= 0:
            return None
        return {"EnableCapture": True, "InitialSamplingPercentage": max(1, min(100, int(round(percent)))),
                "DestinationS3Uri": self.store.uri(CAPTURE_PREFIX),
                "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
                "CaptureContentTypeHeader": {"CsvContentTypes": ["text/csv"],
                                             "JsonContentTypes": ["application/json"]}}

    def update_endpoint(self, endpoint: dict, new_config: dict, variants: list[dict]) -> dict:
        """Models and a configuration for the new variants, then UpdateEndpoint (AWS keeps the old one
        serving until the new one is healthy, and rolls back if it is not)."""
        self._require_role()
        created: list[tuple[str, str]] = []
        try:
            for variant in variants:
                deployed = variant["deployed"]
                if not self._exists("model", deployed["name"]):
                    self._call("sagemaker", "create_model", f"create model {deployed['name']}",
                               **self.model_request(endpoint, deployed))
                    created.append(("model", deployed["name"]))
            request = {
                "EndpointConfigName": new_config["name"],
                "ProductionVariants": [{
                    "VariantName": v["variant"], "ModelName": v["deployed"]["name"],
                    "InstanceType": new_config["instance_type"],
                    "InitialInstanceCount": int(new_config["instance_count"]),
                    "InitialVariantWeight": float(v["weight"]),
                } for v in variants],
                "Tags": self._tags(endpoint=endpoint["name"], model=variants[0]["deployed"]["model"]),
            }
            capture = self.capture_config(endpoint)
            if capture:
                request["DataCaptureConfig"] = capture
            self._call("sagemaker", "create_endpoint_config", f"create endpoint config {new_config['name']}",
                       **request)
            created.append(("endpoint_config", new_config["name"]))
            self._call("sagemaker", "update_endpoint", f"update endpoint {endpoint['name']}",
                       EndpointName=endpoint["name"], EndpointConfigName=new_config["name"])
        except ChurnError as exc:
            self._roll_back(created)
            raise BackendError(f"SageMaker refused the update: {exc}") from exc
        return {"update": "started"}

    def update_outcome(self, endpoint: dict) -> tuple[str, str]:
        """("pending" | "done" | "failed", reason) of an update in progress, from what AWS reports."""
        info = self._call("sagemaker", "describe_endpoint", f"read endpoint {endpoint['name']}",
                          EndpointName=endpoint["name"])
        status = info.get("EndpointStatus")
        if status in ("Updating", "SystemUpdating", "RollingBack", "Creating"):
            return "pending", ""
        if status == "InService" and info.get("EndpointConfigName") == endpoint["pending_config"]:
            return "done", ""
        reason = info.get("FailureReason") or f"SageMaker reports {status} with configuration " \
                                                f"{info.get('EndpointConfigName')}"
        return "failed", reason

    def retire_config(self, config: str, models: list[str]) -> None:
        """After an update: the configuration and models the endpoint no longer uses."""
        for kind, name in [("endpoint_config", config), *(("model", m) for m in models)]:
            try:
                self._delete(kind, name)
            except ChurnError:
                pass  # Clean up finds what is left by its tag

    def set_variant_weights(self, endpoint: dict, weights: dict[str, float]) -> None:
        self._call("sagemaker", "update_endpoint_weights_and_capacities",
                   f"set the variant weights of {endpoint['name']}", EndpointName=endpoint["name"],
                   DesiredWeightsAndCapacities=[{"VariantName": n, "DesiredWeight": float(w)}
                                                for n, w in weights.items()])

    capture_by_update = True  # on AWS a capture change is a new endpoint configuration

    def set_capture(self, endpoint: dict, percent: float) -> None:
        raise BackendError("on SageMaker, capture changes with an endpoint update")  # the platform updates instead

    def endpoint_traffic(self, endpoint: dict) -> list[dict]:
        """Invocations and mean model latency per minute over the last day, from CloudWatch (best effort)."""
        now = int(time.time()) // 60 * 60 + 60
        start = max(int(float(endpoint.get("created_at") or now)) // 60 * 60, now - 24 * 3600)
        dims = [{"Name": "EndpointName", "Value": endpoint["name"]}, {"Name": "VariantName", "Value": "AllTraffic"}]
        queries = [{"Id": qid, "ReturnData": True, "MetricStat": {
            "Metric": {"Namespace": "AWS/SageMaker", "MetricName": metric, "Dimensions": dims},
            "Period": 60, "Stat": stat}} for qid, metric, stat in
            (("inv", "Invocations", "Sum"), ("lat", "ModelLatency", "Average"))]
        try:
            answer = self._call("cloudwatch", "get_metric_data", f"read traffic of endpoint {endpoint['name']}",
                                StartTime=datetime.fromtimestamp(start, timezone.utc),
                                EndTime=datetime.fromtimestamp(now, timezone.utc), MetricDataQueries=queries)
        except ChurnError:
            return []
        series = {r["Id"]: dict(zip((_epoch(t) for t in r.get("Timestamps", [])), r.get("Values", []), strict=True))
                  for r in answer.get("MetricDataResults", [])}
        return [{"minute": minute, "invocations": int(count), "errors": 0,
                 "latency_ms": (series.get("lat", {}).get(minute) or 0.0) / 1000.0 or None}
                for minute, count in sorted(series.get("inv", {}).items())]

    def _exists(self, kind: str, name: str) -> bool:
        try:
            self._call("sagemaker", "describe_model", f"read model {name}", ModelName=name)
            return True
        except AwsError as exc:
            if exc.not_found:
                return False
            raise

    def _roll_back(self, created: list[tuple[str, str]]) -> list[str]:
        leftovers = []
        for kind, name in reversed(created):
            try:
                self._delete(kind, name)
            except ChurnError as exc:
                leftovers.append(f"{kind.replace('_', ' ')} {name} ({exc})")
        return leftovers

    def _delete(self, kind: str, name: str) -> bool:
        """Delete one SageMaker resource; True if it existed, False if it was already gone."""
        operation, arg = {
            "endpoint": ("delete_endpoint", "EndpointName"),
            "endpoint_config": ("delete_endpoint_config", "EndpointConfigName"),
            "model": ("delete_model", "ModelName"),
        }[kind]
        try:
            self._call("sagemaker", operation, f"delete {kind.replace('_', ' ')} {name}", **{arg: name})
            return True
        except AwsError as exc:
            if exc.not_found:
                return False
            raise

    def refresh_endpoint(self, endpoint: dict) -> dict:
        try:
            info = self._call(
                "sagemaker", "describe_endpoint", f"read endpoint {endpoint['name']}", EndpointName=endpoint["name"]
            )
        except AwsError as exc:
            if not exc.not_found:
                raise
            fields = {
                "status": "Failed",
                "failure_reason": f"Endpoint {endpoint['name']} no longer exists on SageMaker (deleted outside "
                "this app). Delete it here to remove the record and its config and model.",
            }
            return {k: v for k, v in fields.items() if endpoint.get(k) != v}
        raw = info.get("EndpointStatus", "Creating")
        status = ENDPOINT_STATUS.get(raw, raw)
        reason = info.get("FailureReason") or ""
        if status == "Failed" and not reason:
            reason = f"SageMaker reports the endpoint {raw} without a reason; open its log for details."
        fields = {"status": status, "failure_reason": reason, "url": self.invoke_url(endpoint["name"])}
        if info.get("EndpointArn"):
            fields["arn"] = info["EndpointArn"]
        if status == "InService" and not endpoint.get("in_service_at"):
            fields["in_service_at"] = _epoch(info.get("LastModifiedTime")) or time.time()
        return {k: v for k, v in fields.items() if endpoint.get(k) != v}

    def endpoint_stats(self, endpoint: dict) -> dict:
        """Invocations, errors, average model latency and the last invocation, from CloudWatch.

        One GetMetricData call per endpoint per minute at most (cached); CloudWatch lags by a minute
        or two. Best effort: no permission or no data gives ``{}`` (the page then shows no stats).
        """
        name = endpoint["name"]
        cached = self._stats.get(name)
        if cached and time.monotonic() - cached[0] < STATS_TTL_SECONDS:
            return cached[1]
        try:
            stats = self._read_endpoint_metrics(name, float(endpoint.get("created_at") or time.time()))
        except ChurnError:
            stats = {}
        self._stats[name] = (time.monotonic(), stats)
        return stats

    def _read_endpoint_metrics(self, name: str, created_at: float) -> dict:
        now = int(time.time()) // 60 * 60 + 60
        start = max(int(created_at) // 60 * 60, now - STATS_MAX_WINDOW_SECONDS)
        window = max(60, now - start)
        dims = [{"Name": "EndpointName", "Value": name}, {"Name": "VariantName", "Value": "AllTraffic"}]

        def query(qid: str, metric: str, stat: str, period: int) -> dict:
            return {
                "Id": qid,
                "ReturnData": True,
                "MetricStat": {
                    "Metric": {"Namespace": "AWS/SageMaker", "MetricName": metric, "Dimensions": dims},
                    "Period": period,
                    "Stat": stat,
                },
            }

        answer = self._call(
            "cloudwatch",
            "get_metric_data",
            f"read metrics of endpoint {name}",
            StartTime=datetime.fromtimestamp(start, timezone.utc),
            EndTime=datetime.fromtimestamp(now, timezone.utc),
            MetricDataQueries=[
                query("inv", "Invocations", "Sum", 60),
                query("e4", "Invocation4XXErrors", "Sum", window),
                query("e5", "Invocation5XXErrors", "Sum", window),
                # Average, not p50: emulators (moto) lack percentiles
                query("lat", "ModelLatency", "Average", window),
            ],
        )
        series = {
            r["Id"]: list(zip(r.get("Timestamps", []), r.get("Values", []), strict=True))
            for r in answer.get("MetricDataResults", [])
        }
        used = [(ts, v) for ts, v in series.get("inv", []) if v]
        if not used:
            return {}
        latency = [v for _, v in series.get("lat", [])]
        return {
            "invocations": int(sum(v for _, v in used)),
            "errors": int(sum(v for _, v in series.get("e4", []) + series.get("e5", []))),
            "avg_latency_ms": latency[0] / 1000.0 if latency else None,  # ModelLatency is in microseconds
            "p50_latency_ms": None,
            "last_invoked_at": max(_epoch(ts) or 0.0 for ts, _ in used) + 60.0,
        }

    def endpoint_log(self, endpoint: dict, lines: int = 200) -> str:
        return self._log_tail(ENDPOINT_LOG_GROUP.format(name=endpoint["name"]), "AllTraffic/", lines, "endpoint")

    def invoke(self, endpoint: dict, body: bytes, content_type: str, accept: str) -> tuple[int, bytes, str]:
        runtime = self.client("sagemaker-runtime")
        try:
            answer = call(
                runtime,
                "invoke_endpoint",
                what=f"invoke endpoint {endpoint['name']}",
                settings=self.settings,
                EndpointName=endpoint["name"],
                Body=body,
                ContentType=content_type,
                Accept=accept,
            )
        except AwsError as exc:
            if exc.code == "ModelError":
                original = exc.__cause__.response if exc.__cause__ is not None else {}
                status = int(original.get("OriginalStatusCode") or 400)
                message = original.get("OriginalMessage") or exc.aws_message or "the model rejected the request"
                try:
                    parsed = json.loads(message)
                    if isinstance(parsed, dict) and "error" in parsed:
                        return status, message.encode("utf-8"), "application/json"
                except ValueError:
                    pass
                return status, json.dumps({"error": message}).encode("utf-8"), "application/json"
            if exc.code in ("ValidationError", "ValidationException"):
                raise BackendError(
                    f"Endpoint {endpoint['name']} cannot take requests: {exc.aws_message or exc}. Check that it is "
                    "InService on the Endpoints page (it may still be creating, or was deleted)."
                ) from None
            raise
        payload = answer["Body"].read()
        return 200, payload, answer.get("ContentType") or accept

    def delete_endpoint(self, endpoint: dict, config: dict | None, deployed_models: list[dict]) -> None:
        config_name = (config or {}).get("name") or endpoint.get("config")
        model_names = list(dict.fromkeys(d["name"] for d in deployed_models or []))
        if not model_names and config_name:
            model_names = self._models_of_config(config_name)
        problems = []
        for kind, name in [
            ("endpoint", endpoint["name"]),
            ("endpoint_config", config_name),
            ("endpoint_config", endpoint.get("pending_config") or None),
            *(("model", m) for m in model_names),
        ]:
            if not name:
                continue
            try:
                self._delete(kind, name)
            except ChurnError as exc:
                problems.append(f"{kind.replace('_', ' ')} {name}: {exc}")
        if problems:
            raise BackendError(
                "Could not delete everything of endpoint "
                + endpoint["name"]
                + " (it may keep billing): "
                + "; ".join(problems)
            )

    def _models_of_config(self, config_name: str) -> list[str]:
        try:
            info = self._call(
                "sagemaker",
                "describe_endpoint_config",
                f"read endpoint config {config_name}",
                EndpointConfigName=config_name,
            )
        except AwsError as exc:
            if exc.not_found:
                return []
            raise
        return [v["ModelName"] for v in info.get("ProductionVariants", []) if v.get("ModelName")]

    def _owned(self, arn: str) -> bool:
        tags = self._call("sagemaker", "list_tags", f"read tags of {arn}", ResourceArn=arn).get("Tags", [])
        return any(t.get("Key") == OWNER_TAG["Key"] and t.get("Value") == OWNER_TAG["Value"] for t in tags)

    def owned_endpoint_names(self) -> list[str]:
        names, token = [], None
        while True:
            kwargs = {"MaxResults": 100, **({"NextToken": token} if token else {})}
            page = self._call("sagemaker", "list_endpoints", "list endpoints", **kwargs)
            for ep in page.get("Endpoints", []):
                if self._owned(ep["EndpointArn"]):
                    names.append(ep["EndpointName"])
            token = page.get("NextToken")
            if not token:
                return sorted(names)

    def delete_orphan(self, name: str) -> dict:
        """Delete an endpoint this app created but the catalog does not know, with its config and model(s)."""
        try:
            info = self._call("sagemaker", "describe_endpoint", f"read endpoint {name}", EndpointName=name)
        except AwsError as exc:
            if exc.not_found:
                return {"endpoint": name, "endpoint_config": None, "model": None}
            raise
        if not self._owned(info["EndpointArn"]):
            raise BackendError(
                f"Endpoint {name} was not created by this app (no created-by=churn-control-plane tag); "
                "it was left alone."
            )
        config_name = info.get("EndpointConfigName")
        models = self._models_of_config(config_name) if config_name else []
        self.delete_endpoint(
            {"name": name, "config": config_name}, {"name": config_name} if config_name else None, []
        )  # no deployed-model rows: every model of the config is deleted
        return {"endpoint": name, "endpoint_config": config_name, "model": ", ".join(models) or None}

    # ---- model registry: model package groups and versioned model packages -------------------
    def ensure_model_group(self, group: dict) -> str:
        name = group["name"]
        try:
            answer = self._call("sagemaker", "create_model_package_group", f"create model group {name}",
                                ModelPackageGroupName=name,
                                ModelPackageGroupDescription=f"Churn models of dataset {group['dataset']}",
                                Tags=self._tags(dataset=group["dataset"]))
            return answer.get("ModelPackageGroupArn", "")
        except AwsError as exc:
            if "exist" not in (exc.aws_message or str(exc)).lower():
                raise
        info = self._call("sagemaker", "describe_model_package_group", f"read model group {name}",
                          ModelPackageGroupName=name)
        return info.get("ModelPackageGroupArn", "")

    def model_container(self, trained_model: str, artifact_key: str) -> dict:
        """The SKLearn container of a trained model, as a model and a model package both describe it."""
        return {
            "Image": self.image_uri(),
            "ModelDataUrl": self.store.uri(artifact_key),
            "Environment": {
                "SAGEMAKER_PROGRAM": "train.py",
                "SAGEMAKER_SUBMIT_DIRECTORY": self._source_for_model(trained_model),
                "SAGEMAKER_REGION": self.settings.region,
                "SAGEMAKER_CONTAINER_LOG_LEVEL": "20",
            },
        }

    def register_model_version(self, group: dict, trained_model: dict, note: str) -> dict:
        self._require_role()
        answer = self._call(
            "sagemaker", "create_model_package", f"register a version of {group['name']}",
            ModelPackageGroupName=group["name"],
            ModelPackageDescription=(note or f"from training job {trained_model['name']}")[:1000],
            ModelApprovalStatus="PendingManualApproval",
            InferenceSpecification={
                "Containers": [self.model_container(trained_model["name"], trained_model["artifact_key"])],
                "SupportedContentTypes": ["application/json", "text/csv", "application/x-npy"],
                "SupportedResponseMIMETypes": ["application/json", "text/csv", "application/x-npy"],
            },
            CustomerMetadataProperties={
                "job": trained_model["name"], "dataset": trained_model["dataset"],
                "dataset_sha256": trained_model["dataset_sha256"], "code_sha256": trained_model["code_sha256"],
                "artifact_sha256": trained_model["artifact_sha256"],
            },
        )
        arn = answer["ModelPackageArn"]
        info = self._call("sagemaker", "describe_model_package", f"read model package {arn}", ModelPackageName=arn)
        version = info.get("ModelPackageVersion") or int(arn.rsplit("/", 1)[-1])
        return {"version": int(version), "arn": arn}

    def set_model_version_status(self, version, status: str, note: str) -> None:
        if not version.arn:
            return
        self._call("sagemaker", "update_model_package", f"set {version.label} to {status}",
                   ModelPackageArn=version.arn, ModelApprovalStatus=status, ApprovalDescription=note[:1000])

    # ---- tuning (issue 19): CreateHyperParameterTuningJob; request and answers in sagemaker_tuning.py ------------
    tuning_refresh_seconds = 5.0

    def tuning_parallel_default(self) -> int:
        return 2  # SageMaker's SDK defaults to 1; two keeps a 20-trial search in reach of the default quotas

    def tuning_needs_log_metric(self) -> bool:
        return True  # SageMaker reads the objective off the training log with a MetricDefinitions regex

    def tuning_request(self, tuning: dict, dataset: Dataset, source_uri: str) -> dict:
        from churn_core.tuning.objectives import get_objective
        from churn_core.tuning.ranges import Range
        from churn_core.backends.sagemaker.tuning import tuning_request

        ranges = [Range.from_dict(r) for r in json.loads(tuning["ranges_json"])]
        pseudo_job = {"name": tuning["name"], "hyperparameters_json": tuning["static_json"],
                      "instance_type": tuning["instance_type"], "instance_count": 1}
        training = self.training_request(pseudo_job, dataset, source_uri)
        request = tuning_request(training, tuning, ranges, get_objective(tuning["objective"], needs_metric=True).metric)
        request["Tags"] = self._tags(tuning=tuning["name"], dataset=dataset.name)
        return request

    def start_tuning(self, tuning: dict, dataset: Dataset) -> dict:
        self._require_role()
        self.store._require_bucket()
        self.image_uri()
        source_uri = self.store.put_bytes(self.code_key(tuning["name"]), package_source())
        request = self.tuning_request(tuning, dataset, source_uri)
        answer = self._call("sagemaker", "create_hyper_parameter_tuning_job",
                            f"start tuning job {tuning['name']}", **request)
        return {"arn": answer.get("HyperParameterTuningJobArn", "")}

    def _tuning_trials(self, tuning: dict) -> list[dict]:
        from churn_core.tuning.ranges import Range
        from churn_core.backends.sagemaker.tuning import trial_from_summary

        ranges = [Range.from_dict(r) for r in json.loads(tuning["ranges_json"])]
        trials, token = [], None
        while True:
            kwargs = {"HyperParameterTuningJobName": tuning["name"], "MaxResults": 100,
                      **({"NextToken": token} if token else {})}
            page = self._call("sagemaker", "list_training_jobs_for_hyper_parameter_tuning_job",
                              f"list the trials of tuning job {tuning['name']}", **kwargs)
            trials += [trial_from_summary(s, ranges) for s in page.get("TrainingJobSummaries", [])]
            token = page.get("NextToken")
            if not token:
                return sorted(trials, key=lambda t: (t["created_at"] or 0, t["job"]))

    def refresh_tuning(self, tuning: dict) -> tuple[dict, list]:
        """Describe + list trials, at most once per ``tuning_refresh_seconds`` per tuning job (a live page asks
        every second; the records stay as last read in between)."""
        from churn_core.tuning.ranges import Range
        from churn_core.backends.sagemaker.tuning import fields_from_description, trial_from_summary

        reads = vars(self).setdefault("_tuning_reads", {})  # tuning job -> when AWS was last asked (monotonic)
        if time.monotonic() - reads.get(tuning["name"], -1e9) < self.tuning_refresh_seconds:
            return {}, []
        reads[tuning["name"]] = time.monotonic()
        try:
            info = self._call("sagemaker", "describe_hyper_parameter_tuning_job",
                              f"read tuning job {tuning['name']}", HyperParameterTuningJobName=tuning["name"])
        except AwsError as exc:
            if not exc.not_found or time.time() - float(tuning.get("created_at") or 0) < 60:
                raise
            return {"status": "Failed", "ended_at": time.time(),
                    "failure_reason": f"SageMaker has no tuning job named {tuning['name']} in {self.settings.region} "
                                      "(deleted outside this app, or the region changed)."}, []
        fields = fields_from_description(info)
        if fields["status"] in ("Completed", "Failed", "Stopped") and not fields.get("ended_at"):
            fields["ended_at"] = time.time()
        try:
            trials = self._tuning_trials(tuning)
        except ChurnError as exc:  # no permission, or an emulator without the call: the best trial at least
            fields["note"] = f"The trials could not be listed ({exc}); only the best one is shown."
            best = info.get("BestTrainingJob") or {}
            ranges = [Range.from_dict(r) for r in json.loads(tuning["ranges_json"])]
            trials = [trial_from_summary(best, ranges)] if best.get("TrainingJobName") else []
        known = {r["job"] for r in self.catalog.query(
            "SELECT job FROM tuning_trials WHERE tuning_job = ? AND status = 'Completed'", (tuning["name"],))}
        for trial in trials:
            if trial["status"] == "Completed" and trial["job"] not in known:
                self._adopt_source(tuning["name"], trial["job"])
        return fields, trials

    def _adopt_source(self, tuning_name: str, job_name: str) -> None:
        """A trial's model is deployed like any job's: its code package sits where a job's would."""
        key = self.code_key(job_name)
        if not self.store.exists(key):
            try:
                self.store.put_bytes(key, self.store.get_bytes(self.code_key(tuning_name)))
            except NotFoundError:
                pass  # deploying it re-uploads entry/ if the code is unchanged, or says to retrain

    def stop_tuning(self, tuning: dict) -> dict:
        vars(self).get("_tuning_reads", {}).pop(tuning["name"], None)  # the next read asks AWS again
        try:
            self._call("sagemaker", "stop_hyper_parameter_tuning_job", f"stop tuning job {tuning['name']}",
                       HyperParameterTuningJobName=tuning["name"])
        except AwsError as exc:
            raise BackendError(
                f"Could not stop tuning job {tuning['name']}: {exc} Its trials keep running (and billing) until the "
                "budget is spent or it is stopped in the SageMaker console."
            ) from None
        return {}

    def tuning_log(self, tuning: dict, lines: int = 200) -> str:
        return (f"SageMaker keeps a log per trial (CloudWatch {TRAINING_LOG_GROUP}/{tuning['name']}-*): open a trial "
                "on the Jobs page to read it.")

    def delete_tuning(self, tuning: dict) -> None:
        try:
            self._call("sagemaker", "delete_hyper_parameter_tuning_job", f"delete tuning job {tuning['name']}",
                       HyperParameterTuningJobName=tuning["name"])
        except AwsError as exc:
            if not exc.not_found:
                raise

    # ---- batch transform jobs (churn_core/sagemaker_transform.py shapes the files) ----------------------
    def default_transform_instances(self) -> int:
        return 1

    def transform_instance_type(self) -> str:
        return self.settings.endpoint_instance_type

    def _transform_keys(self, name: str) -> dict:
        base = f"transforms/{name}/sagemaker"
        return {"input": f"{base}/input/", "output": f"{base}/output/", "plan": f"{base}/plan.json",
                "set_aside": f"{base}/set-aside.csv"}

    def transform_request(self, job: dict, model_name: str, prepared) -> dict:
        from churn_core.backends.sagemaker.transform import (
            ENVIRONMENT_BATCH, ENVIRONMENT_REASONS, MAX_CONCURRENT_TRANSFORMS, MAX_PAYLOAD_MB, input_filter,
            output_filter,
        )

        keys = self._transform_keys(job["name"])
        return {
            "TransformJobName": job["name"],
            "ModelName": model_name,
            "MaxConcurrentTransforms": MAX_CONCURRENT_TRANSFORMS,
            "MaxPayloadInMB": MAX_PAYLOAD_MB,
            "BatchStrategy": "MultiRecord",
            # the model's environment carries its threshold; the job's asks for line-by-line answers
            "Environment": {ENVIRONMENT_BATCH: "1", **({ENVIRONMENT_REASONS: "1"} if prepared.reasons else {})},
            "TransformInput": {
                "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": self.store.uri(keys["input"])}},
                "ContentType": "text/csv",
                "SplitType": "Line",
                "CompressionType": "None",
            },
            "TransformOutput": {"S3OutputPath": self.store.uri(keys["output"]).rstrip("/"), "Accept": "text/csv",
                                "AssembleWith": "Line"},
            "TransformResources": {"InstanceType": job["instance_type"] or self.transform_instance_type(),
                                   "InstanceCount": int(job["instance_count"] or 1)},
            "DataProcessing": {"InputFilter": input_filter(prepared), "JoinSource": "Input",
                               "OutputFilter": output_filter(prepared)},
            "Tags": self._tags(transform=job["name"], model=job["model"]),
        }

    def start_transform(self, job: dict, model: dict, schema: dict) -> dict:
        """Rewrite the input for SageMaker (headerless, model order), create a model for the trained model,
        then CreateTransformJob; the model is deleted again if the job cannot be created."""
        import tempfile

        from churn_core.catalog.database import loads
        from churn_core.backends.sagemaker.transform import prepare_input

        self._require_role()
        self.image_uri()
        if not model.get("artifact_key") or not self.store.exists(model["artifact_key"]):
            raise BackendError(f"The model artifact {self.store.uri(model.get('artifact_key') or 'jobs/?')} is "
                               "missing from S3. Retrain the model, then start the transform again.")
        keys = self._transform_keys(job["name"])
        with tempfile.TemporaryDirectory(prefix="churn-transform-") as tmp:
            folder = Path(tmp)
            self.store.download(job["input_key"], folder / "source.csv")
            prepared = prepare_input(folder / "source.csv", schema, loads(job["keep_columns_json"], None),
                                     folder / "input.csv", folder / "set-aside.csv", bool(job.get("reasons")))
            stem = Path(job["input_key"]).stem or "input"
            self.store.put_file(f"{keys['input']}{stem}.csv", folder / "input.csv")
            self.store.put_file(keys["set_aside"], folder / "set-aside.csv")
            self.store.put_bytes(keys["plan"], prepared.to_json())
        model_name = (job["name"][: 63 - len("-model")].rstrip("-")) + "-model"
        container = self.model_request({"name": job["name"]}, {"name": model_name, "model": model["name"],
                                                                "artifact_key": model["artifact_key"],
                                                                "threshold": job["threshold"]})
        container["Tags"] = self._tags(transform=job["name"], model=model["name"])
        self._call("sagemaker", "create_model", f"create model {model_name}", **container)
        try:
            answer = self._call("sagemaker", "create_transform_job", f"start transform job {job['name']}",
                                **self.transform_request(job, model_name, prepared))
        except ChurnError as exc:
            leftovers = self._roll_back([("model", model_name)])
            note = f" Could not remove {', '.join(leftovers)}." if leftovers else f" Model {model_name} deleted."
            raise BackendError(f"Starting transform job {job['name']} failed: {exc}{note}") from exc
        return {"arn": answer.get("TransformJobArn", ""), "sagemaker_model": model_name, "rows_in": prepared.lines}

    def refresh_transform(self, job: dict) -> dict:
        try:
            info = self._call("sagemaker", "describe_transform_job", f"read transform job {job['name']}",
                              TransformJobName=job["name"])
        except AwsError as exc:
            if not exc.not_found:
                raise
            if time.time() - float(job.get("created_at") or 0) < 60:
                return {}
            self._drop_transform_model(job)
            return {"status": "Failed", "ended_at": time.time(),
                    "failure_reason": f"SageMaker has no transform job named {job['name']} in {self.settings.region} "
                                      "(it was never created or the region changed). Start the job again."}
        status = info.get("TransformJobStatus") or "InProgress"
        fields: dict = {"status": status, "failure_reason": info.get("FailureReason") or ""}
        started = _epoch(info.get("TransformStartTime"))
        if started:
            fields["started_at"] = started
        if status == "Failed" and not fields["failure_reason"]:
            fields["failure_reason"] = "SageMaker reported Failed without a reason; open the job log for details."
        if status == "Completed":
            fields.update(self._collect_transform(job, info))
        if fields["status"] in ("Completed", "Failed", "Stopped"):
            fields["ended_at"] = _epoch(info.get("TransformEndTime")) or time.time()
            self._drop_transform_model(job)
        return fields

    def _collect_transform(self, job: dict, info: dict) -> dict:
        """The .out object SageMaker wrote, read back into results.csv and errors.csv (the local format)."""
        import tempfile

        from churn_core.backends.sagemaker.transform import Prepared, read_output
        from churn_core.transform.rules import output_keys

        keys = self._transform_keys(job["name"])
        outputs = [k for k in self.store.list(keys["output"]) if k.endswith(".out")]
        if not outputs:
            ended = _epoch(info.get("TransformEndTime")) or time.time()
            if time.time() - ended < ARTIFACT_GRACE_SECONDS:
                return {"status": "InProgress"}  # S3 may list the output a moment after Completed
            return {"status": "Failed", "failure_reason": f"SageMaker reports Completed but wrote no output under "
                                                          f"{self.store.uri(keys['output'])}. Start the job again."}
        prepared = Prepared.from_json(self.store.get_bytes(keys["plan"]))
        results_key, errors_key = output_keys(job["name"])
        with tempfile.TemporaryDirectory(prefix="churn-transform-") as tmp:
            folder = Path(tmp)
            self.store.download(outputs[0], folder / "out.csv")
            self.store.download(keys["set_aside"], folder / "set-aside.csv")
            scored, failed = read_output(folder / "out.csv", folder / "set-aside.csv", prepared,
                                         folder / "results.csv", folder / "errors.csv")
            self.store.put_file(results_key, folder / "results.csv")
            self.store.put_file(errors_key, folder / "errors.csv")
        fields = {"rows_in": scored + failed, "rows_done": scored + failed, "rows_scored": scored,
                  "rows_failed": failed, "output_key": results_key, "errors_key": errors_key}
        if scored == 0:
            fields.update(status="Failed", failure_reason=f"None of the {scored + failed:,} lines could be scored; "
                                                          "every line and its problem is in errors.csv.")
        return fields

    def _drop_transform_model(self, job: dict) -> None:
        """The SageMaker model made for the job goes with the job (best effort: Clean up finds it by tag)."""
        if job.get("sagemaker_model"):
            try:
                self._delete("model", job["sagemaker_model"])
            except ChurnError:
                pass

    def stop_transform(self, job: dict) -> dict:
        try:
            self._call("sagemaker", "stop_transform_job", f"stop transform job {job['name']}",
                       TransformJobName=job["name"])
        except AwsError as exc:
            if exc.not_found:
                raise BackendError(f"SageMaker has no transform job named {job['name']}; nothing to stop.") from None
            raise BackendError(f"Could not stop transform job {job['name']}: {exc} The job keeps running (and "
                               "billing) until it finishes or is stopped in the SageMaker console.") from None
        return {}

    def transform_log(self, job: dict, lines: int = 200) -> str:
        return self._log_tail(TRANSFORM_LOG_GROUP, f"{job['name']}/", lines, "transform job")

    # ---- checks -----------------------------------------------------------------------------------
    def local_bucket(self) -> str | None:
        return None  # the bucket is on S3: catalog repair reads only the state folder

    def check_connection(self) -> list[tuple[str, bool, str]]:
        s = self.settings
        where = f"{s.region}" + (f" via {s.aws_endpoint_url}" if s.aws_endpoint_url else "")
        checks: list[tuple[str, bool, str]] = [("Region", bool(s.region), where)]
        try:
            ident = self._call("sts", "get_caller_identity", "check the AWS identity")
            checks.append(("AWS credentials", True, f"account {ident.get('Account')}, {ident.get('Arn')}"))
        except ChurnError as exc:
            checks.append(("AWS credentials", False, str(exc)))
            skipped = "skipped: fix the AWS credentials first"
            return checks + [
                ("S3 bucket", False, skipped),
                ("SageMaker API", False, skipped),
                ("Execution role", bool(s.role_arn), s.role_arn or "not set: set CHURN_SAGEMAKER_ROLE_ARN"),
            ]
        if not s.bucket:
            checks.append(("S3 bucket", False, "not set: set CHURN_S3_BUCKET to a bucket in " + s.region))
        else:
            try:
                self._call("s3", "head_bucket", f"open bucket {s.bucket}", Bucket=s.bucket)
                checks.append(("S3 bucket", True, f"{self.store.root_uri}/ is reachable"))
            except ChurnError as exc:
                checks.append(("S3 bucket", False, str(exc)))
        try:
            self._call("sagemaker", "list_endpoints", "list SageMaker endpoints", MaxResults=1)
            checks.append(("SageMaker API", True, f"SageMaker answers in {s.region}"))
        except ChurnError as exc:
            checks.append(("SageMaker API", False, str(exc)))
        try:
            checks.append(("Execution role", True, self._require_role()))
        except ChurnError as exc:
            checks.append(("Execution role", False, str(exc)))
        try:
            checks.append(("Training image", True, self.image_uri()))
        except ChurnError as exc:
            checks.append(("Training image", False, str(exc)))
        return checks


__all__ = ["SageMakerBackend", "package_source", "METRIC_DEFINITIONS"]
