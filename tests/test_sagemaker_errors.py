"""What the user reads when AWS says no: every message names the problem and what to do.

moto (no network) plus botocore event hooks that raise the errors AWS would return.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

pytestmark = pytest.mark.aws

boto3 = pytest.importorskip("boto3")
pytest.importorskip("moto")
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError  # noqa: E402
from moto import mock_aws  # noqa: E402

from tests.support.aws import (  # noqa: E402
    BUCKET,
    REGION,
    ROLE,
    aws_client,
    aws_env,
    capture,
    nothing_left,
    s3_keys,
    upload_artifacts,
)

from churn_core import BackendError, ChurnError, ValidationError  # noqa: E402


def client_error(code: str, message: str, operation: str, status: int = 400, **extra) -> ClientError:
    response = {"Error": {"Code": code, "Message": message},
                "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": extra.pop("headers", {})}, **extra}
    return ClientError(response, operation)


def fail_on(p, service: str, operation: str, error: ClientError, times: int | None = None) -> list[int]:
    """Make ``operation`` fail with ``error`` (``times`` times, or always); returns a call counter."""
    calls = [0]

    def hook(**_):
        calls[0] += 1
        if times is None or calls[0] <= times:
            raise error

    p.backend.client(service).meta.events.register(f"before-call.{service}.{operation}", hook)
    return calls


@pytest.fixture
def fast_retries(monkeypatch):
    import churn_core.backends.sagemaker.aws as aws

    monkeypatch.setattr(aws, "RETRY_BASE_SECONDS", 0.001)
    monkeypatch.setattr(aws, "RETRY_MAX_SECONDS", 0.01)


@pytest.fixture
def moto_env(monkeypatch, tmp_path):
    aws_env(monkeypatch, tmp_path)
    with mock_aws():
        yield


# ---------------------------------------------------------------------------------------------


def test_missing_bucket(moto_env, small_csv):
    import churn_core

    p = churn_core.connect()  # no bucket was created
    with pytest.raises(BackendError) as err:
        p.upload_dataset("ds", small_csv)
    message = str(err.value)
    assert f"S3 bucket '{BUCKET}' does not exist in {REGION}" in message
    assert "CHURN_S3_BUCKET" in message and "aws s3 mb" in message
    assert p.list_datasets() == []
    checks = {what: (ok, detail) for what, ok, detail in p.check_connection()}
    assert checks["S3 bucket"][0] is False and "does not exist" in checks["S3 bucket"][1]


def test_bucket_not_configured(monkeypatch, tmp_path, small_csv):
    aws_env(monkeypatch, tmp_path)
    monkeypatch.delenv("CHURN_S3_BUCKET")
    with mock_aws():
        import churn_core

        p = churn_core.connect()
        with pytest.raises(ValidationError, match="Set CHURN_S3_BUCKET"):
            p.upload_dataset("ds", small_csv)
        checks = {what: (ok, detail) for what, ok, detail in p.check_connection()}
        assert checks["S3 bucket"][0] is False and "CHURN_S3_BUCKET" in checks["S3 bucket"][1]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_no_credentials(monkeypatch, tmp_path, small_csv):
    # Outside mock_aws (it would supply fake keys). Nothing can reach AWS: no keys, empty config
    # files, no instance metadata, and every endpoint points at a closed local port.
    aws_env(monkeypatch, tmp_path, AWS_ENDPOINT_URL=f"http://127.0.0.1:{_closed_port()}")
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN"):
        monkeypatch.delenv(key, raising=False)
    import churn_core

    p = churn_core.connect()
    with pytest.raises(BackendError) as err:
        p.upload_dataset("ds", small_csv)
    message = str(err.value)
    assert message.startswith("No AWS credentials found")
    assert "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY" in message and "AWS_PROFILE" in message
    assert "CHURN_BACKEND=local" in message
    checks = {what: (ok, detail) for what, ok, detail in p.check_connection()}
    assert checks["AWS credentials"][0] is False and "No AWS credentials found" in checks["AWS credentials"][1]
    assert "fix the AWS credentials first" in checks["S3 bucket"][1]


def test_access_denied_names_the_action_and_the_policy(platform, small_csv):
    p = platform
    p.upload_dataset("ds", small_csv)
    fail_on(p, "sagemaker", "CreateTrainingJob", client_error(
        "AccessDeniedException",
        "User: arn:aws:iam::123456789012:user/analyst is not authorized to perform: sagemaker:CreateTrainingJob",
        "CreateTrainingJob"))
    with pytest.raises(BackendError) as err:
        p.start_training("ds", {"algorithm": "random_forest"}, name="denied")
    message = str(err.value)
    assert message.startswith("Access denied: AWS refused CreateTrainingJob")
    assert "sagemaker:CreateTrainingJob" in message and "docs/aws.md" in message
    job = p.describe_training("denied")
    assert job.status == "Failed" and "Access denied" in job.failure_reason


def test_access_denied_on_s3(platform, small_csv):
    fail_on(platform, "s3", "PutObject", client_error("AccessDenied", "Access Denied", "PutObject", 403))
    with pytest.raises(BackendError, match=r"Access denied: AWS refused PutObject \(upload s3://.*docs/aws.md"):
        platform.upload_dataset("ds", small_csv)


def test_throttling_is_retried_then_succeeds(platform, small_csv, fast_retries):
    p = platform
    p.upload_dataset("ds", small_csv)
    calls = fail_on(p, "sagemaker", "CreateTrainingJob",
                    client_error("ThrottlingException", "Rate exceeded", "CreateTrainingJob"), times=2)
    job = p.start_training("ds", {"algorithm": "logistic_regression"}, name="throttled")
    assert calls[0] == 3
    assert job.status in ("InProgress", "Completed") and job.failure_reason == ""


def test_throttling_that_never_ends_gives_up_with_a_message(platform, fast_retries):
    import churn_core.backends.sagemaker.aws as aws

    calls = fail_on(platform, "sagemaker", "ListEndpoints",
                    client_error("ThrottlingException", "Rate exceeded", "ListEndpoints"))
    with pytest.raises(BackendError) as err:
        platform.backend.owned_endpoint_names()
    assert calls[0] == aws.RETRY_ATTEMPTS
    message = str(err.value)
    assert "throttling ListEndpoints" in message and "retried" in message and "try again" in message


def test_botocore_retries_are_adaptive(platform):
    config = platform.backend.client("sagemaker").meta.config
    # botocore stores {"max_attempts": 8} (retries after the first try) as total_max_attempts = 9
    assert config.retries == {"mode": "adaptive", "total_max_attempts": 9}
    assert platform.backend.client("s3").meta.region_name == REGION


@pytest.mark.parametrize("role", ["", "churn-sagemaker", "arn:aws:iam::123:role/x"])
def test_missing_or_malformed_role_fails_before_any_call(monkeypatch, tmp_path, small_csv, role):
    aws_env(monkeypatch, tmp_path, CHURN_SAGEMAKER_ROLE_ARN=role)
    with mock_aws():
        import churn_core

        aws_client("s3").create_bucket(Bucket=BUCKET)
        p = churn_core.connect()
        p.upload_dataset("ds", small_csv)
        seen = capture(p, "sagemaker", "CreateTrainingJob")
        with pytest.raises(ValidationError, match="CHURN_SAGEMAKER_ROLE_ARN") as err:
            p.start_training("ds", {"algorithm": "random_forest"}, name="no-role")
        assert "arn:aws:iam::" in str(err.value)
        assert seen == [] and s3_keys("churn/code/") == []
        assert p.describe_training("no-role").status == "Failed"
        checks = {what: ok for what, ok, _ in p.check_connection()}
        assert checks["Execution role"] is False


def test_unknown_role_from_aws(platform, small_csv):
    p = platform
    p.upload_dataset("ds", small_csv)
    fail_on(p, "sagemaker", "CreateTrainingJob", client_error(
        "ValidationException", f"Could not assume role {ROLE}. Please ensure that the role exists and allows "
        "principal 'sagemaker.amazonaws.com' to assume the role.", "CreateTrainingJob"))
    with pytest.raises(BackendError) as err:
        p.start_training("ds", {"algorithm": "random_forest"}, name="bad-role")
    message = str(err.value)
    assert "could not use the execution role" in message and "CHURN_SAGEMAKER_ROLE_ARN" in message
    assert "sagemaker.amazonaws.com" in message


def test_half_done_deploy_is_rolled_back(platform, small_csv):
    p = platform
    p.upload_dataset("ds", small_csv)
    p.start_training("ds", {"algorithm": "logistic_regression"}, name="job-r")
    upload_artifacts("job-r", {"model": _tiny_model(), "output": _tiny_model()})
    assert p.describe_training("job-r").status == "Completed"
    calls = fail_on(p, "sagemaker", "CreateEndpoint", client_error(
        "ResourceLimitExceeded", "The account-level service limit 'ml.m5.large for endpoint usage' is 0 Instances",
        "CreateEndpoint"), times=1)
    with pytest.raises(BackendError) as err:
        p.deploy("job-r", "half-done", wait=False)
    assert calls[0] == 1
    message = str(err.value)
    assert "quota" in message and "smaller or different instance type" in message and "quota increase" in message
    assert "Rolled back" in message and "half-done-model" in message and "half-done-config" in message
    assert nothing_left() == {"models": [], "configs": [], "endpoints": []}
    assert p.list_endpoints() == []
    # The name is free again: a second deploy (no quota problem now) works.
    assert p.deploy("job-r", "half-done", wait=False).status == "InService"


def test_failed_rollback_says_what_is_left(platform, small_csv):
    p = platform
    p.upload_dataset("ds", small_csv)
    p.start_training("ds", {"algorithm": "logistic_regression"}, name="job-r")
    upload_artifacts("job-r", {"model": _tiny_model(), "output": _tiny_model()})
    p.describe_training("job-r")
    fail_on(p, "sagemaker", "CreateEndpoint", client_error("InternalFailure", "boom", "CreateEndpoint", 500))
    fail_on(p, "sagemaker", "DeleteModel", client_error("AccessDeniedException", "no DeleteModel", "DeleteModel"))
    with pytest.raises(BackendError, match="Could not remove model half-model.*Clean up"):
        p.deploy("job-r", "half", wait=False)
    assert nothing_left()["configs"] == []


def test_deploy_without_artifact_is_clear(platform, small_csv):
    p = platform
    p.upload_dataset("ds", small_csv)
    p.start_training("ds", {"algorithm": "logistic_regression"}, name="job-x")
    upload_artifacts("job-x", {"model": _tiny_model(), "output": _tiny_model()})
    p.describe_training("job-x")
    aws_client("s3").delete_object(Bucket=BUCKET, Key="churn/jobs/job-x/output/model.tar.gz")
    with pytest.raises(BackendError, match="model artifact .* is missing from S3. Retrain"):
        p.deploy("job-x", "ep-x", wait=False)
    assert nothing_left() == {"models": [], "configs": [], "endpoints": []}


def _tiny_model() -> bytes:
    """A minimal model.tar.gz: metrics and schema only (enough for the control plane's reads)."""
    import io
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, payload in (("metrics.json", {"accuracy": 0.9, "roc_auc": 0.8}),
                              ("schema.json", {"features": []}),
                              ("evaluation.json", {"metrics": {}, "confusion_matrix": [[1, 0], [0, 1]]})):
            data = json.dumps(payload).encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


# ---- the mapping itself, one case per AWS answer ----------------------------------------------

class _Settings:
    region = "eu-west-1"
    bucket = "my-bucket"
    role_arn = ROLE
    aws_endpoint_url = ""


@pytest.mark.parametrize("exc, operation, expected", [
    (NoCredentialsError(), "PutObject", ["No AWS credentials found", "AWS_PROFILE", "CHURN_BACKEND=local"]),
    (client_error("ExpiredTokenException", "The security token included in the request is expired", "ListEndpoints"),
     "ListEndpoints", ["expired", "Refresh them"]),
    (client_error("ExpiredToken", "The provided token has expired.", "PutObject"), "PutObject", ["expired"]),
    (client_error("UnauthorizedOperation", "You are not authorized", "CreateModel"), "CreateModel",
     ["Access denied", "CreateModel", "docs/aws.md"]),
    (client_error("403", "Forbidden", "HeadBucket", 403), "HeadBucket", ["Access denied", "HeadBucket"]),
    (client_error("404", "Not Found", "HeadBucket", 404), "HeadBucket",
     ["'my-bucket' does not exist in eu-west-1", "CHURN_S3_BUCKET"]),
    (client_error("NoSuchBucket", "The specified bucket does not exist", "PutObject", 404), "PutObject",
     ["does not exist", "Create it"]),
    (client_error("PermanentRedirect", "The bucket you are attempting to access must be addressed using the "
                  "specified endpoint.", "PutObject", 301, headers={"x-amz-bucket-region": "us-west-2"}),
     "PutObject", ["in another region (us-west-2)", "AWS_DEFAULT_REGION=us-west-2"]),
    (client_error("301", "", "HeadBucket", 301, headers={"x-amz-bucket-region": "ap-south-1"}), "HeadBucket",
     ["another region (ap-south-1)"]),
    (client_error("AuthorizationHeaderMalformed", "the region 'eu-west-1' is wrong; expecting 'us-east-1'",
                  "GetObject"), "GetObject", ["another region"]),
    (client_error("IllegalLocationConstraintException", "bad region", "PutObject"), "PutObject", ["another region"]),
    (client_error("ResourceLimitExceeded", "The account-level service limit is 0", "CreateEndpoint"),
     "CreateEndpoint", ["quota", "Clean up", "smaller or different instance type", "quota increase"]),
    (client_error("ThrottlingException", "Rate exceeded", "ListEndpoints"), "ListEndpoints",
     ["throttling", "retried", "try again"]),
    (client_error("TooManyRequestsException", "slow down", "InvokeEndpoint"), "InvokeEndpoint", ["throttling"]),
    (client_error("ValidationException", f"Role {ROLE} does not exist", "CreateModel"), "CreateModel",
     ["execution role", "CHURN_SAGEMAKER_ROLE_ARN"]),
    (client_error("ResourceInUse", "Cannot create a duplicate endpoint", "CreateEndpoint"), "CreateEndpoint",
     ["already exists", "pick another name"]),
    (EndpointConnectionError(endpoint_url="https://api.sagemaker.eu-west-1.amazonaws.com/"), "ListEndpoints",
     ["Cannot reach AWS", "AWS_ENDPOINT_URL", "network"]),
])
def test_error_messages(exc, operation, expected):
    from churn_core.backends.sagemaker.aws import map_error

    mapped = map_error(exc, operation, "", _Settings())
    assert isinstance(mapped, BackendError) and isinstance(mapped, ChurnError)
    for text in expected:
        assert text in str(mapped), str(mapped)


def test_unreachable_endpoint_url(monkeypatch, tmp_path, small_csv):
    import churn_core.backends.sagemaker.aws as aws

    monkeypatch.setattr(aws, "BOTO_RETRIES", {"mode": "standard", "max_attempts": 1})
    url = f"http://127.0.0.1:{_closed_port()}"
    aws_env(monkeypatch, tmp_path, AWS_ENDPOINT_URL=url)
    import churn_core

    p = churn_core.connect()
    with pytest.raises(BackendError) as err:
        p.upload_dataset("ds", small_csv)
    assert "Cannot reach AWS" in str(err.value) and url in str(err.value)
    checks = {what: (ok, detail) for what, ok, detail in p.check_connection()}
    assert checks["AWS credentials"][0] is False and "Cannot reach AWS" in checks["AWS credentials"][1]


def test_aws_modules_need_no_sagemaker_sdk():
    """The AWS modules import without the optional SageMaker SDK."""
    import importlib

    for module in ("churn_core.backends.sagemaker.aws", "churn_core.backends.sagemaker.s3_store",
                   "churn_core.backends.sagemaker.backend"):
        importlib.import_module(module)
    assert Path(__file__).resolve().parents[1].joinpath("requirements-aws.txt").exists()


def test_unreadable_log_is_reported_not_raised(platform, small_csv):
    p = platform
    p.upload_dataset("ds", small_csv)
    p.start_training("ds", {"algorithm": "logistic_regression"}, name="job-l")
    fail_on(p, "logs", "DescribeLogStreams", client_error(
        "AccessDeniedException", "not authorized to perform: logs:DescribeLogStreams", "DescribeLogStreams"))
    text = p.training_log("job-l")
    assert text.startswith("Could not read the CloudWatch log of this job: Access denied")
    assert "docs/aws.md" in text
