"""What every part of the SageMaker backend shares: settings, the catalog, the AWS clients and the bucket,
plus the small rules they all apply (the owner tag, the execution role, the SKLearn image)."""

from __future__ import annotations

import re
from datetime import datetime

from churn_core.backends.sagemaker.aws import OWNER_TAG, AwsClients, call, sklearn_image_uri
from churn_core.backends.sagemaker.s3_store import S3ObjectStore
from churn_core.catalog import actor
from churn_core.catalog.database import Catalog
from churn_core.errors import ValidationError

# How long after SageMaker says Completed we wait for model.tar.gz before calling the job Failed.
ARTIFACT_GRACE_SECONDS = 600
ROLE_RE = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$")


def epoch(value) -> float | None:
    """A time AWS reports (datetime, or seconds) as epoch seconds; None when there is none."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.timestamp()
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


_TAG_UNSAFE = re.compile(r"[^\w .:/=+\-@]")  # a tag value is [\p{L}\p{Z}\p{N}_.:/=+\-@]*

class SageMakerContext:
    """One per backend; the parts (training, endpoints, ...) take it instead of the whole backend."""

    def __init__(self, settings, catalog: Catalog):
        self.settings = settings
        self.catalog = catalog
        self.aws = AwsClients(settings)
        self.store = S3ObjectStore(self.aws, settings.bucket, settings.prefix)

    def client(self, service: str):
        """The shared boto3 client (tests register botocore event hooks on it)."""
        return self.aws.client(service)

    def call(self, service: str, operation: str, what: str = "", **kwargs):
        return call(self.client(service), operation, what=what, settings=self.settings, **kwargs)

    def tags(self, **extra: str) -> list[dict]:
        """The owner tag (Clean up finds resources by it) plus ``churn:<key>`` tags, with ``churn:created-by``: the
        acting user (catalog/actor.py), in the characters a tag value allows."""
        if who := actor.current():
            extra = {**extra, "created-by": _TAG_UNSAFE.sub("_", who)}
        return [dict(OWNER_TAG), *({"Key": f"churn:{k}", "Value": str(v)[:256]} for k, v in extra.items())]

    def require_role(self) -> str:
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
