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

This class is the wiring: each part of the protocol is one module of this package, sharing one
``SageMakerContext`` (settings, catalog, clients, bucket):

==================  ========================================================================
``training``        training jobs (request, status, artifacts)
``sourcedir``       the ``entry/`` code package and its key
``models``          a trained model's container and ``CreateModel`` request
``resources``       delete / roll back / ownership of endpoints, configs and models
``endpoints``       endpoints, invocation, rollouts (configs, variants, data capture)
``monitoring``      CloudWatch logs and endpoint metrics
``model_packages``  the model registry as model package groups
``tuning_jobs``     tuning job calls (``tuning``: the pure request and answers)
``transform_jobs``  transform job calls (``transform``: the pure input/output shaping)
``checks``          the Settings page's connection checks
==================  ========================================================================
"""

from __future__ import annotations

import shlex

from churn_core.backends.sagemaker.checks import check_connection
from churn_core.backends.sagemaker.context import SageMakerContext
from churn_core.backends.sagemaker.endpoints import Endpoints, invoke_url
from churn_core.backends.sagemaker.model_packages import ModelPackages
from churn_core.backends.sagemaker.models import Models
from churn_core.backends.sagemaker.monitoring import Monitoring
from churn_core.backends.sagemaker.resources import Resources
from churn_core.backends.sagemaker.sourcedir import package_source
from churn_core.backends.sagemaker.training import METRIC_DEFINITIONS, TrainingJobs
from churn_core.backends.sagemaker.transform_jobs import TransformJobs
from churn_core.backends.sagemaker.tuning_jobs import TuningJobs
from churn_core.catalog.database import Catalog
from churn_core.errors import BackendError
from churn_core.records import Dataset


class SageMakerBackend:
    name = "sagemaker"
    poll_interval = 5.0
    quick_deploy = False  # an endpoint takes minutes to come up on AWS
    precheck_requests = True  # the SKLearn container turns a handler's 4xx into a 500 ModelError
    capture_by_update = True  # on AWS a capture change is a new endpoint configuration
    bounds_capture = False  # the capture prefix's size and age: an S3 lifecycle rule (docs/aws.md)

    def __init__(self, settings, catalog: Catalog):
        self.ctx = SageMakerContext(settings, catalog)
        self.settings, self.catalog, self.aws, self.store = settings, catalog, self.ctx.aws, self.ctx.store
        self.models = Models(self.ctx)
        self.resources = Resources(self.ctx)
        self.monitoring = Monitoring(self.ctx)
        self.training = TrainingJobs(self.ctx)
        self.endpoints = Endpoints(self.ctx, self.models, self.resources)
        self.model_packages = ModelPackages(self.ctx, self.models)
        self.tuning = TuningJobs(self.ctx, self.training)
        self.transforms = TransformJobs(self.ctx, self.models, self.resources)

    def client(self, service: str):
        """The shared boto3 client (tests register botocore event hooks on it)."""
        return self.ctx.client(service)

    # ---- what the pages show about this backend ---------------------------------------------------
    def training_instance_types(self) -> list[str]:
        from churn_core.endpoints.pricing import TRAINING_INSTANCE_TYPES

        default = self.settings.training_instance_type
        return [default, *(t for t in TRAINING_INSTANCE_TYPES if t != default)]

    def runtime_client_code(self, endpoint_url: str) -> str:
        return f'boto3.client("sagemaker-runtime", region_name="{self.settings.region}")'

    def curl_command(self, endpoint_name: str, endpoint_url: str, body: str) -> str:
        return (f'curl -s --aws-sigv4 "aws:amz:{self.settings.region}:sagemaker" '
                '--user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" '
                f"-H 'Content-Type: application/json' -d {shlex.quote(body)} "
                f"{invoke_url(self.settings, endpoint_name)}")

    def reconcile(self) -> None:
        """Nothing at start-up: every read of an active job or endpoint asks AWS (no calls on connect)."""

    def check_connection(self) -> list[tuple[str, bool, str]]:
        return check_connection(self.ctx)

    # ---- training ---------------------------------------------------------------------------------
    def start_training(self, job: dict, dataset: Dataset) -> dict:
        return self.training.start(job, dataset)

    def refresh_training(self, job: dict) -> dict:
        return self.training.refresh(job)

    def stop_training(self, job: dict) -> dict:
        return self.training.stop(job)

    def training_log(self, job: dict, lines: int = 200) -> str:
        return self.monitoring.training_log(job, lines)

    # ---- endpoints --------------------------------------------------------------------------------
    def create_endpoint(self, endpoint: dict, config: dict, deployed_model: dict) -> dict:
        return self.endpoints.create(endpoint, config, deployed_model)

    def refresh_endpoint(self, endpoint: dict) -> dict:
        return self.endpoints.refresh(endpoint)

    def invoke(self, endpoint: dict, body: bytes, content_type: str, accept: str) -> tuple[int, bytes, str, str]:
        return self.endpoints.invoke(endpoint, body, content_type, accept)

    def delete_endpoint(self, endpoint: dict, config: dict | None, deployed_models: list[dict]) -> None:
        self.endpoints.delete(endpoint, config, deployed_models)

    def owned_endpoint_names(self) -> list[str]:
        return self.resources.owned_endpoint_names()

    def delete_orphan(self, name: str) -> dict:
        return self.endpoints.delete_orphan(name)

    def endpoint_stats(self, endpoint: dict) -> dict:
        return self.monitoring.endpoint_stats(endpoint)

    def endpoint_traffic(self, endpoint: dict) -> list[dict]:
        return self.monitoring.endpoint_traffic(endpoint)

    def endpoint_log(self, endpoint: dict, lines: int = 200) -> str:
        return self.monitoring.endpoint_log(endpoint, lines)

    # ---- rollout and capture ----------------------------------------------------------------------
    def update_endpoint(self, endpoint: dict, new_config: dict, variants: list[dict], check=None) -> dict:
        return self.endpoints.update(endpoint, new_config, variants, check)

    def restore_serving(self, endpoint: dict, config: str, variants: list[dict]) -> None:
        self.endpoints.restore_serving(endpoint, config)

    def update_outcome(self, endpoint: dict) -> tuple[str, str]:
        return self.endpoints.update_outcome(endpoint)

    def retire_config(self, config: str, models: list[str]) -> None:
        self.endpoints.retire_config(config, models)

    def set_variant_weights(self, endpoint: dict, weights: dict[str, float]) -> None:
        self.endpoints.set_variant_weights(endpoint, weights)

    def check_capture(self, percent: float) -> None:
        self.endpoints.sampling_percentage(percent)

    def set_capture(self, endpoint: dict, percent: float) -> None:
        raise BackendError("on SageMaker, capture changes with an endpoint update")  # the platform updates instead

    # ---- model registry ---------------------------------------------------------------------------
    def ensure_model_group(self, group: dict) -> str:
        return self.model_packages.ensure_group(group)

    def register_model_version(self, group: dict, trained_model: dict, note: str) -> dict:
        return self.model_packages.register_version(group, trained_model, note)

    def set_model_version_status(self, version, status: str, note: str) -> None:
        self.model_packages.set_status(version, status, note)

    # ---- tuning -----------------------------------------------------------------------------------
    @property
    def tuning_refresh_seconds(self) -> float:
        """AWS is asked about a tuning job at most this often (a live page reads every second)."""
        return self.tuning.refresh_seconds

    @tuning_refresh_seconds.setter
    def tuning_refresh_seconds(self, seconds: float) -> None:
        self.tuning.refresh_seconds = seconds

    def tuning_parallel_default(self) -> int:
        return 2  # SageMaker's SDK defaults to 1; two keeps a 20-trial search in reach of the default quotas

    def tuning_needs_log_metric(self) -> bool:
        return True  # SageMaker reads the objective off the training log with a MetricDefinitions regex

    def check_tuning(self, tuning: dict) -> None:
        self.tuning.check(tuning)

    def start_tuning(self, tuning: dict, dataset: Dataset) -> dict:
        return self.tuning.start(tuning, dataset)

    def refresh_tuning(self, tuning: dict) -> tuple[dict, list]:
        return self.tuning.refresh(tuning)

    def stop_tuning(self, tuning: dict) -> dict:
        return self.tuning.stop(tuning)

    def tuning_log(self, tuning: dict, lines: int = 200) -> str:
        return self.monitoring.tuning_log(tuning, lines)

    def delete_tuning(self, tuning: dict) -> None:
        self.tuning.delete(tuning)

    # ---- batch transform jobs ---------------------------------------------------------------------
    def default_transform_instances(self) -> int:
        return 1

    def transform_instance_types(self) -> list[str]:
        return self.transforms.instance_types()

    def start_transform(self, job: dict, model: dict, schema: dict) -> dict:
        return self.transforms.start(job, model, schema)

    def refresh_transform(self, job: dict) -> dict:
        return self.transforms.refresh(job)

    def stop_transform(self, job: dict) -> dict:
        return self.transforms.stop(job)

    def transform_log(self, job: dict, lines: int = 200) -> str:
        return self.monitoring.transform_log(job, lines)

    def local_bucket(self) -> str | None:
        return None  # the bucket is on S3: catalog repair reads only the state folder


__all__ = ["SageMakerBackend", "package_source", "METRIC_DEFINITIONS"]
