"""The Settings page's connection checks on AWS: region, credentials, bucket, SageMaker API, role, image,
each with what to do when it fails (later checks are skipped while the credentials are wrong)."""

from __future__ import annotations

from churn_core.backends.sagemaker.context import SageMakerContext
from churn_core.errors import ChurnError


def check_connection(ctx: SageMakerContext) -> list[tuple[str, bool, str]]:
    s = ctx.settings
    where = f"{s.region}" + (f" via {s.aws_endpoint_url}" if s.aws_endpoint_url else "")
    checks: list[tuple[str, bool, str]] = [("Region", bool(s.region), where)]
    try:
        ident = ctx.call("sts", "get_caller_identity", "check the AWS identity")
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
            ctx.call("s3", "head_bucket", f"open bucket {s.bucket}", Bucket=s.bucket)
            checks.append(("S3 bucket", True, f"{ctx.store.root_uri}/ is reachable"))
        except ChurnError as exc:
            checks.append(("S3 bucket", False, str(exc)))
    try:
        ctx.call("sagemaker", "list_endpoints", "list SageMaker endpoints", MaxResults=1)
        checks.append(("SageMaker API", True, f"SageMaker answers in {s.region}"))
    except ChurnError as exc:
        checks.append(("SageMaker API", False, str(exc)))
    try:
        checks.append(("Execution role", True, ctx.require_role()))
    except ChurnError as exc:
        checks.append(("Execution role", False, str(exc)))
    try:
        checks.append(("Training image", True, ctx.image_uri()))
    except ChurnError as exc:
        checks.append(("Training image", False, str(exc)))
    return checks
