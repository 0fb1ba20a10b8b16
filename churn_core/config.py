"""Settings come from the environment only, so switching backend is configuration, never code."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from churn_core.errors import ValidationError

BACKENDS = ("local", "sagemaker")


def _int_env(env: dict, key: str, default: int) -> int:
    raw = env.get(key)
    if raw in (None, ""):
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValidationError(f"{key}={raw!r} is not a whole number. Set it to an integer or unset it.") from None


def _days_env(env: dict, key: str) -> float:
    raw = (env.get(key) or "").strip()
    try:
        days = float(raw or 0)
    except ValueError:
        days = -1.0
    if not days >= 0 or days == float("inf"):
        raise ValidationError(f"{key}={raw!r} is not a number of days. Set it to 0 or more (0: off) or unset it.")
    return days


@dataclass(frozen=True)
class Settings:
    backend: str = "local"
    home: Path = field(default_factory=lambda: Path(".churn").resolve())
    bucket: str = "churn-local"
    prefix: str = "churn"
    region: str = "us-east-1"
    role_arn: str = ""
    training_instance_type: str = "ml.m5.large"
    endpoint_instance_type: str = "ml.m5.large"
    sklearn_version: str = "1.2-1"
    image_uri: str = ""
    aws_endpoint_url: str = ""
    max_upload_mb: int = 200
    max_concurrent_jobs: int = max(1, os.cpu_count() or 1)
    bind_host: str = "127.0.0.1"
    require_approval: bool = False  # only Approved registry versions may be deployed or put behind an endpoint
    data_retention_days: float = 0.0  # customer data older than this is deleted (0: kept until deleted)

    @classmethod
    def from_env(cls, env: dict | None = None) -> "Settings":
        env = dict(os.environ if env is None else env)
        backend = (env.get("CHURN_BACKEND") or "local").strip().lower()
        if backend not in BACKENDS:
            raise ValidationError(
                f"CHURN_BACKEND={backend!r} is not a known backend. Use 'local' (default) or 'sagemaker'."
            )
        default_bucket = "churn-local" if backend == "local" else ""
        return cls(
            backend=backend,
            home=Path(env.get("CHURN_HOME") or ".churn").expanduser().resolve(),
            bucket=env.get("CHURN_S3_BUCKET") or default_bucket,
            prefix=(env.get("CHURN_S3_PREFIX") or "churn").strip("/"),
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
            role_arn=env.get("CHURN_SAGEMAKER_ROLE_ARN", ""),
            training_instance_type=env.get("CHURN_TRAINING_INSTANCE_TYPE") or "ml.m5.large",
            endpoint_instance_type=env.get("CHURN_ENDPOINT_INSTANCE_TYPE") or "ml.m5.large",
            sklearn_version=env.get("CHURN_SKLEARN_VERSION") or "1.2-1",
            image_uri=env.get("CHURN_SKLEARN_IMAGE_URI", ""),
            aws_endpoint_url=env.get("AWS_ENDPOINT_URL", ""),
            max_upload_mb=_int_env(env, "CHURN_MAX_UPLOAD_MB", 200),
            max_concurrent_jobs=max(1, _int_env(env, "CHURN_MAX_CONCURRENT_JOBS", os.cpu_count() or 1)),
            bind_host=env.get("CHURN_BIND_HOST") or "127.0.0.1",
            require_approval=(env.get("CHURN_REQUIRE_APPROVAL") or "0").strip().lower() in ("1", "true", "yes", "on"),
            data_retention_days=_days_env(env, "CHURN_DATA_RETENTION_DAYS"),
        )

    def public_view(self) -> dict:
        """What the Settings page shows (no secrets live here; credentials stay with boto3)."""
        return {
            "Backend": self.backend,
            "State directory": str(self.home),
            "Bucket": self.bucket or "(not set)",
            "Prefix": self.prefix,
            "Region": self.region,
            "Execution role": self.role_arn or "(not set)",
            "Training instance type": self.training_instance_type,
            "Endpoint instance type": self.endpoint_instance_type,
            "SKLearn framework version": self.sklearn_version,
            "AWS endpoint URL": self.aws_endpoint_url or "(AWS default)",
            "Max concurrent local jobs": self.max_concurrent_jobs,
            "Deploy only approved versions (CHURN_REQUIRE_APPROVAL)": "yes" if self.require_approval else "no",
            "Customer data retention (CHURN_DATA_RETENTION_DAYS)": (f"{self.data_retention_days:g} days"
                                                                    if self.data_retention_days else "off"),
        }
