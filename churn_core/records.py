"""What the services return: plain dataclasses built from catalog rows (the pages read these, never SQL)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from churn_core.catalog.database import loads
from churn_core.endpoints.pricing import estimated_cost

TRAINING_ACTIVE = ("InProgress", "Stopping")
TRAINING_DONE = ("Completed", "Failed", "Stopped")
ENDPOINT_ACTIVE = ("Creating", "InService", "Updating")
TRANSFORM_ACTIVE = ("InProgress", "Stopping")


@dataclass
class Dataset:
    name: str
    created_at: float
    source: str
    rows: int
    n_train: int
    n_test: int
    churn_rate: float
    target: str
    positive_label: str
    columns: list[str]
    schema: dict
    warnings: list[str]
    sha256: str
    size_bytes: int
    test_size: float
    seed: int
    raw_key: str
    train_key: str
    test_key: str

    @classmethod
    def from_row(cls, row: dict) -> "Dataset":
        data = {k: v for k, v in row.items() if not k.endswith("_json")}
        return cls(
            **data,
            columns=loads(row["columns_json"], []),
            schema=loads(row["schema_json"], {}),
            warnings=loads(row["warnings_json"], []),
        )

    @property
    def train_prefix(self) -> str:
        return self.train_key.rsplit("/", 1)[0] + "/"

    @property
    def test_prefix(self) -> str:
        return self.test_key.rsplit("/", 1)[0] + "/"

    @property
    def features(self) -> list[dict]:
        return self.schema.get("features", [])


@dataclass
class TrainingJob:
    name: str
    backend: str
    dataset: str
    dataset_sha256: str
    algorithm: str
    hyperparameters: dict
    status: str
    secondary_status: str
    failure_reason: str
    created_at: float
    started_at: float | None
    ended_at: float | None
    pid: int | None
    exit_code: int | None
    metrics: dict
    model_key: str
    model_sha256: str
    output_key: str
    output_sha256: str
    code_sha256: str
    instance_type: str
    instance_count: int
    arn: str
    created_by: str = ""  # who trained it ("" before this was recorded)

    @classmethod
    def from_row(cls, row: dict) -> "TrainingJob":
        data = {k: v for k, v in row.items() if not k.endswith("_json")}
        return cls(
            **data,
            hyperparameters=loads(row["hyperparameters_json"], {}),
            metrics=loads(row["metrics_json"], {}),
        )

    @property
    def is_active(self) -> bool:
        return self.status in TRAINING_ACTIVE

    @property
    def duration(self) -> float | None:
        """Seconds from submit to end (or to now while running), as SageMaker's console shows it."""
        end = self.ended_at or (time.time() if self.is_active else None)
        return None if end is None else max(0.0, end - self.created_at)


@dataclass
class Endpoint:
    name: str
    backend: str
    config: str
    model: str
    status: str
    failure_reason: str
    url: str
    port: int | None
    pid: int | None
    server_pid: int | None
    workdir: str
    instance_type: str
    instance_count: int
    restarts: int
    created_at: float
    updated_at: float
    in_service_at: float | None
    arn: str
    capture_percent: float = 0.0
    generation: int = 1
    pending_config: str = ""
    uid: str = ""  # unique per deploy of the name (its folder and processes carry it; an update keeps it)
    capture_max_mb: float | None = None  # None: monitoring.capture_bounds' defaults
    capture_retention_days: float | None = None
    created_by: str = ""  # who deployed it
    updated_by: str = ""  # who asked for its last update
    stats: dict[str, Any] = field(default_factory=dict)
    variants: list[dict] = field(default_factory=list)  # [{"variant", "weight", "model", "version", "stats"}]

    @classmethod
    def from_row(cls, row: dict, stats: dict | None = None, variants: list[dict] | None = None) -> "Endpoint":
        return cls(**row, stats=stats or {}, variants=variants or [])

    @property
    def uptime(self) -> float:
        return max(0.0, time.time() - self.created_at) if self.status != "Deleting" else 0.0

    @property
    def estimated_cost_usd(self) -> float | None:
        return estimated_cost(self.instance_type, self.instance_count, self.uptime)

    @property
    def invocations(self) -> int:
        return int(self.stats.get("invocations") or 0)

    @property
    def idle_seconds(self) -> float:
        """Seconds since the last invocation (or since creation when never called)."""
        last = self.stats.get("last_invoked_at") or self.in_service_at or self.created_at
        return max(0.0, time.time() - last)


# ---- tuning (issue 19) -----------------------------------------------------------------------------------------
TUNING_ACTIVE = ("InProgress", "Stopping")
TUNING_DONE = ("Completed", "Failed", "Stopped")


@dataclass
class TuningJob:
    """A hyperparameter tuning job: its search, its budget and where it stands (SageMaker's words and counts)."""

    name: str
    backend: str
    dataset: str
    algorithm: str
    ranges: list[dict]
    static: dict
    objective: str
    direction: str
    strategy: str
    seed: int
    max_trials: int
    max_parallel: int
    max_seconds: float | None
    status: str
    failure_reason: str
    note: str
    trials_completed: int
    trials_failed: int
    trials_stopped: int
    trials_in_progress: int
    best_job: str
    best_objective: float | None
    created_at: float
    ended_at: float | None
    pid: int | None
    arn: str
    code_sha256: str
    instance_type: str
    created_by: str = ""  # who started the search

    @classmethod
    def from_row(cls, row: dict) -> "TuningJob":
        data = {k: v for k, v in row.items() if not k.endswith("_json")}
        return cls(**data, ranges=loads(row["ranges_json"], []), static=loads(row["static_json"], {}))

    @property
    def is_active(self) -> bool:
        return self.status in TUNING_ACTIVE

    @property
    def trials_started(self) -> int:
        return self.trials_completed + self.trials_failed + self.trials_stopped + self.trials_in_progress

    @property
    def duration(self) -> float | None:
        end = self.ended_at or (time.time() if self.is_active else None)
        return None if end is None else max(0.0, end - self.created_at)


@dataclass
class TransformJob:
    """A batch transform job: a model scoring a whole file into the bucket (SageMaker's words for states)."""

    name: str
    backend: str
    model: str
    status: str
    failure_reason: str
    input_key: str
    input_label: str  # what the user gave: a file name, a dataset part, a bucket key
    keep_columns: list[str] | None  # None: the model's ID columns and any other non-feature column
    threshold: float
    instance_type: str
    instance_count: int
    rows_in: int | None  # lines in the file (known once the job has read it)
    rows_done: int
    rows_scored: int
    rows_failed: int
    output_key: str
    errors_key: str
    created_at: float
    started_at: float | None
    ended_at: float | None
    updated_at: float | None
    pid: int | None
    exit_code: int | None
    arn: str
    sagemaker_model: str
    reasons: bool  # each result line carries its top reason

    @classmethod
    def from_row(cls, row: dict) -> "TransformJob":
        data = {k: v for k, v in row.items() if not k.endswith("_json")}
        data["reasons"] = bool(data.get("reasons"))
        return cls(**data, keep_columns=loads(row["keep_columns_json"], None))

    @property
    def is_active(self) -> bool:
        return self.status in TRANSFORM_ACTIVE

    @property
    def progress(self) -> float:
        """Share of the input's lines done (0 until the job knows how many there are)."""
        if self.status == "Completed":
            return 1.0
        return min(1.0, self.rows_done / self.rows_in) if self.rows_in else 0.0

    @property
    def duration(self) -> float | None:
        end = self.ended_at or (time.time() if self.is_active else None)
        return None if end is None else max(0.0, end - self.created_at)
