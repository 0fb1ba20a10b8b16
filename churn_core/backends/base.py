"""The one protocol both backends implement. The platform owns the catalog records; a backend
acts on the world (processes or AWS) and reports back the fields that changed.

Implementations: ``local/backend.py`` and ``sagemaker/backend.py`` (the latter only wires the
modules beside it, one per concept: training, endpoints, monitoring, tuning, transforms...)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from churn_core.records import Dataset
from churn_core.storage.objects import ObjectStore

# A check the Settings page shows: (what was checked, passed?, detail with what to do).
Check = tuple[str, bool, str]


@dataclass(frozen=True)
class Offers:
    """What a backend offers the pages' forms: its choices and defaults (pages ask the platform, never the backend)."""

    quick_deploy: bool  # an endpoint is InService within seconds, so a page can wait for it
    training_instance_types: list[str]  # [] when jobs run on this machine
    transform_instance_types: list[str]  # the default first
    default_transform_instances: int
    tuning_parallel_default: int

    @classmethod
    def of(cls, backend: "Backend") -> "Offers":
        return cls(backend.quick_deploy, backend.training_instance_types(), backend.transform_instance_types(),
                   backend.default_transform_instances(), backend.tuning_parallel_default())


class Backend(Protocol):
    name: str
    store: ObjectStore
    poll_interval: float  # seconds between status reads while a job or endpoint changes state
    quick_deploy: bool  # an endpoint is InService within seconds, so a page can wait for it
    precheck_requests: bool  # check invocations with the model's rules first (the remote container 500s)

    def training_instance_types(self) -> list[str]:
        """Instance types a training job may ask for; [] when jobs run on this machine."""

    def runtime_client_code(self, endpoint_url: str) -> str:
        """Python that builds the ``sagemaker-runtime`` client reaching this backend's endpoints."""

    def curl_command(self, endpoint_name: str, endpoint_url: str, body: str) -> str:
        """A shell command that sends ``body`` (JSON) to the endpoint."""

    def reconcile(self) -> None:
        """At start-up: make records match reality (dead processes, finished AWS jobs)."""

    # Training: ``job`` is the catalog row (dict). Each call returns the columns to update.
    def start_training(self, job: dict, dataset: Dataset) -> dict: ...
    def refresh_training(self, job: dict) -> dict: ...
    def stop_training(self, job: dict) -> dict: ...
    def training_log(self, job: dict, lines: int = 200) -> str: ...

    # Endpoints: the endpoint row plus its config and deployed-model rows, as on SageMaker.
    def create_endpoint(self, endpoint: dict, config: dict, deployed_model: dict) -> dict: ...
    def refresh_endpoint(self, endpoint: dict) -> dict: ...
    def endpoint_stats(self, endpoint: dict) -> dict: ...
    def endpoint_log(self, endpoint: dict, lines: int = 200) -> str: ...
    def invoke(self, endpoint: dict, body: bytes, content_type: str, accept: str) -> tuple[int, bytes, str, str]:
        """Returns (HTTP status, body, content type, the variant that answered: SageMaker's
        InvokedProductionVariant, "" when unknown); client errors come back as 4xx, not exceptions."""
    def delete_endpoint(self, endpoint: dict, config: dict | None, deployed_models: list[dict]) -> None: ...
    def owned_endpoint_names(self) -> list[str]:
        """Every endpoint this app created that still exists (on AWS: found by tag, not by the cache)."""
    def delete_orphan(self, name: str) -> dict:
        """Delete an endpoint the catalog does not know (and its config and model); report what went."""

    def check_connection(self) -> list[Check]: ...
    def local_bucket(self) -> str | None:
        """The bucket that is a folder under the state directory (local), which catalog repair reads; else None."""

    # Rollout: an endpoint moves to a new configuration (its variants) with no request dropped.
    capture_by_update: bool  # True where changing data capture needs a new endpoint configuration (SageMaker)
    bounds_capture: bool  # True where set_capture's max_mb / retention_days apply (SageMaker: S3 lifecycle)

    def update_endpoint(self, endpoint: dict, new_config: dict, variants: list[dict], check=None) -> dict:
        """Start serving ``variants``; raise with the reason when they cannot serve (the old ones keep serving).
        ``check()`` (the approval rule, asked again) is called last before the new variants take traffic and
        raises ConflictError to refuse them. Returns {"update": "done"} when finished, else the update completes
        later (see ``update_outcome``)."""

    def restore_serving(self, endpoint: dict, config: str, variants: list[dict]) -> None:
        """Serve ``config`` (``variants``) again: an update refused where it committed (a version rejected
        meanwhile) puts back what the endpoint served before it."""

    def update_outcome(self, endpoint: dict) -> tuple[str, str]:
        """("pending" | "done" | "failed", reason) of the update to ``endpoint["pending_config"]``."""

    def retire_config(self, config: str, models: list[str]) -> None:
        """Remove what an update left unused (SageMaker: the old endpoint config and models)."""

    def set_variant_weights(self, endpoint: dict, weights: dict[str, float]) -> None: ...
    def set_capture(self, endpoint: dict, percent: float) -> None: ...
    def check_capture(self, percent: float) -> None:
        """ValidationError for a capture share this backend cannot capture as asked (SageMaker: whole percents)."""
    def endpoint_traffic(self, endpoint: dict) -> list[dict]:
        """[{"minute": epoch seconds, "invocations", "errors", "latency_ms"}], oldest first."""

    # Model registry: the catalog is the registry on both backends; a backend mirrors what it can.
    def ensure_model_group(self, group: dict) -> str:
        """Create the group where the backend keeps one (SageMaker: a model package group); its ARN or ""."""

    def register_model_version(self, group: dict, trained_model: dict, note: str) -> dict:
        """Create the version where the backend keeps one; {"version": n, "arn": ...} or {} (the catalog numbers it)."""

    def set_model_version_status(self, version, status: str, note: str) -> None:
        """Mirror an approval decision (SageMaker: UpdateModelPackage)."""
    # Tuning (issue 19): ``tuning`` is the tuning_jobs row. ``refresh_tuning`` returns (columns to update, trials
    # the backend reports: dicts with job, params, status, objective, failure_reason, created_at, ended_at, arn).
    def tuning_parallel_default(self) -> int:
        """Trials at once when the user leaves it open."""
    def tuning_needs_log_metric(self) -> bool:
        """True when the objective must be a metric the training script prints (a remote tuner reads the log)."""
    # Optional ``check_tuning(tuning) -> None``: raise ValidationError for a tuning job (the row about to be
    # recorded) the backend's service would refuse (SageMaker's limits); a backend without limits omits it.
    def start_tuning(self, tuning: dict, dataset: Dataset) -> dict: ...
    def refresh_tuning(self, tuning: dict) -> tuple[dict, list]: ...
    def stop_tuning(self, tuning: dict) -> dict: ...
    def tuning_log(self, tuning: dict, lines: int = 200) -> str: ...
    def delete_tuning(self, tuning: dict) -> None: ...
    # Batch transform jobs: the ``transforms`` row (the input is already in the bucket at ``input_key``),
    # the trained model's row and its schema. Each call returns the columns to update.
    def default_transform_instances(self) -> int:
        """How many workers (locally: processes) or instances a transform job gets when it asks for none."""
    def transform_instance_types(self) -> list[str]:
        """What a transform job can run on, the default first (["local"], or SageMaker's transform types)."""
    def start_transform(self, job: dict, model: dict, schema: dict) -> dict: ...
    def refresh_transform(self, job: dict) -> dict: ...
    def stop_transform(self, job: dict) -> dict: ...
    def transform_log(self, job: dict, lines: int = 200) -> str: ...
