"""AWS plumbing for the SageMaker backend: clients, retries, user-facing errors, the SKLearn image.

Every AWS call of the project goes through :func:`call`, which

* retries throttling with exponential backoff and jitter (on top of botocore's own
  ``{"mode": "adaptive", "max_attempts": 8}`` retries), and
* turns botocore's exceptions into :class:`AwsError` (a ``BackendError``) whose message says
  what failed and what to do: missing credentials, access denied, missing bucket, wrong
  region, unknown role, quota, throttling, unreachable endpoint.

boto3 is imported only by this module, the S3 store and the SageMaker backend, so the local
backend never needs it at import time. The SageMaker Python SDK is never required: the image
URI comes from ``sagemaker-core`` when it is installed (``requirements-aws.txt``), else from a
small built-in table.
"""

from __future__ import annotations

import random
import threading
import time
from typing import Any

import boto3
import botocore.loaders
import botocore.session
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
    PartialCredentialsError,
    ReadTimeoutError,
)

from churn_core.backends.sagemaker.request_model import check_request
from churn_core.errors import BackendError, ValidationError

DOCS = "docs/aws.md"
OWNER_TAG = {"Key": "created-by", "Value": "churn-control-plane"}

BOTO_RETRIES = {"mode": "adaptive", "max_attempts": 8}
# Our own wrapper's retries (each one already includes botocore's attempts).
RETRY_ATTEMPTS = 3
RETRY_BASE_SECONDS = 0.5
RETRY_MAX_SECONDS = 8.0

THROTTLING_CODES = {
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "RequestThrottled",
    "RequestThrottledException",
    "SlowDown",
    "ProvisionedThroughputExceededException",
    "BandwidthLimitExceeded",
}
CREDENTIAL_CODES = {
    "ExpiredToken",
    "ExpiredTokenException",
    "RequestExpired",
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidToken",
    "TokenRefreshRequired",
}
ACCESS_CODES = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "AuthorizationError", "Forbidden"}
REGION_CODES = {"PermanentRedirect", "AuthorizationHeaderMalformed", "IllegalLocationConstraint",
                "IllegalLocationConstraintException", "301"}
NOT_FOUND_CODES = {"NoSuchKey", "NotFound", "404", "ResourceNotFound", "ResourceNotFoundException",
                   "NoSuchEntity", "NoSuchBucket"}

# SageMaker scikit-learn framework images: the registry account per region (the same table
# as the SageMaker SDK's image_uri_config/sklearn.json). Tags are "<version>-cpu-py3".
SKLEARN_REGISTRY_ACCOUNTS = {
    "us-east-1": "683313688378",
    "us-east-2": "257758044811",
    "us-west-1": "746614075791",
    "us-west-2": "246618743249",
    "ca-central-1": "341280168497",
    "eu-west-1": "141502667606",
    "eu-west-2": "764974769150",
    "eu-central-1": "492215442770",
    "ap-south-1": "720646828776",
    "ap-northeast-1": "354813040037",
    "ap-southeast-1": "121021644041",
    "ap-southeast-2": "783357654285",
}
SKLEARN_TABLE_VERSIONS = ("0.23-1", "1.0-1", "1.2-1")


class AwsError(BackendError):
    """An AWS call failed. ``str()`` is the user message; ``code`` and ``operation`` are for code paths."""

    def __init__(self, message: str, code: str = "", operation: str = "", aws_message: str = ""):
        super().__init__(message)
        self.code = code
        self.operation = operation
        self.aws_message = aws_message

    @property
    def not_found(self) -> bool:
        return is_not_found(self.code, self.aws_message)

    @property
    def throttled(self) -> bool:
        return self.code in THROTTLING_CODES


def is_not_found(code: str, message: str = "") -> bool:
    """S3 404s and SageMaker's "Could not find ..." ValidationExceptions alike."""
    if code in NOT_FOUND_CODES:
        return True
    text = (message or "").lower()
    return code in ("ValidationException", "ValidationError") and (
        "could not find" in text or "does not exist" in text or "not found" in text
    )


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", "") or exc.response.get("ResponseMetadata", {})
               .get("HTTPStatusCode", ""))


def error_message(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Message", "") or "")


_LOADER_LOCK = threading.Lock()
_LOADER = None


def _shared_loader():
    """One botocore data loader per process: the service models (SageMaker's is megabytes of JSON)
    are parsed once, not once per Platform/session."""
    global _LOADER
    with _LOADER_LOCK:
        if _LOADER is None:
            _LOADER = botocore.loaders.create_loader()
        return _LOADER


class AwsClients:
    """One boto3 session per backend, clients created on first use and shared by every thread.

    Clients honour ``settings.region`` and ``settings.aws_endpoint_url`` (a moto server, a VPC
    endpoint). boto3 also reads ``AWS_ENDPOINT_URL`` and ``AWS_ENDPOINT_URL_<SERVICE>`` itself.
    """

    def __init__(self, settings):
        self.settings = settings
        self._session = None
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    @property
    def endpoint_url(self) -> str | None:
        return self.settings.aws_endpoint_url or None

    def session(self):
        if self._session is None:
            core = botocore.session.get_session()
            core.register_component("data_loader", _shared_loader())
            self._session = boto3.session.Session(botocore_session=core, region_name=self.settings.region)
        return self._session

    def client(self, service: str):
        with self._lock:
            if service not in self._clients:
                options: dict[str, Any] = {
                    "region_name": self.settings.region,
                    "retries": dict(BOTO_RETRIES),
                    "connect_timeout": 10,
                    # Real-time endpoints may take 60 s to answer; leave room for that.
                    "read_timeout": 75 if service == "sagemaker-runtime" else 60,
                    "user_agent_extra": "churn-control-plane",
                }
                if service == "s3" and self.endpoint_url:
                    options["s3"] = {"addressing_style": "path"}
                kwargs: dict[str, Any] = {"config": Config(**options)}
                if self.endpoint_url:
                    kwargs["endpoint_url"] = self.endpoint_url
                self._clients[service] = self.session().client(service, **kwargs)
            return self._clients[service]


def _operation_name(client, operation: str) -> str:
    try:
        return client.meta.method_to_api_mapping.get(operation, operation)
    except AttributeError:
        return operation


def _sleep_before_retry(attempt: int) -> None:
    delay = min(RETRY_MAX_SECONDS, RETRY_BASE_SECONDS * (2 ** attempt))
    time.sleep(delay * (0.5 + random.random() / 2))


def call(client, operation: str, *, what: str = "", settings=None, **kwargs: Any) -> Any:
    """``client.<operation>(**kwargs)`` with throttling retries; failures become :class:`AwsError`.

    ``what`` names the action in words for the message ("upload datasets/x/train/train.csv").
    """
    api = _operation_name(client, operation)
    refused = check_request(client, api, kwargs)
    if refused:
        raise AwsError(f"The request for {what or api} was not sent: AWS would refuse it ({'; '.join(refused[:3])}). "
                       "This is a bug in the control plane; please report it with this message.",
                       "ParamValidation", api)
    for attempt in range(RETRY_ATTEMPTS):
        try:
            return getattr(client, operation)(**kwargs)
        except ClientError as exc:
            if error_code(exc) in THROTTLING_CODES and attempt + 1 < RETRY_ATTEMPTS:
                _sleep_before_retry(attempt)
                continue
            raise map_error(exc, api, what, settings, kwargs) from exc
        except (BotoCoreError, NotImplementedError) as exc:
            raise map_error(exc, api, what, settings, kwargs) from exc
    raise AssertionError("unreachable")  # pragma: no cover


def map_error(exc: BaseException, operation: str, what: str = "", settings=None,
              params: dict | None = None) -> AwsError:
    """The user-facing message for one failed AWS call: what failed and what to do."""
    params = params or {}
    action = what or operation
    region = getattr(settings, "region", "") or "the configured region"
    bucket = params.get("Bucket") or getattr(settings, "bucket", "")

    if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
        return AwsError(
            f"No AWS credentials found ({action} was not sent). Set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY "
            "or AWS_PROFILE (or run `aws configure`), or use CHURN_BACKEND=local to work without AWS.",
            "NoCredentials", operation)
    if isinstance(exc, NoRegionError):
        return AwsError(f"No AWS region is set for {action}. Set AWS_DEFAULT_REGION (e.g. us-east-1).",
                        "NoRegion", operation)
    if isinstance(exc, (EndpointConnectionError, ConnectTimeoutError, ConnectionClosedError)):
        where = getattr(settings, "aws_endpoint_url", "") or f"AWS in {region}"
        return AwsError(
            f"Cannot reach AWS for {action}: could not connect to {where} ({exc}). Check the network or proxy, "
            "AWS_ENDPOINT_URL (unset it to use real AWS) and AWS_DEFAULT_REGION, then try again.",
            "EndpointConnectionError", operation)
    if isinstance(exc, ReadTimeoutError):
        return AwsError(f"AWS did not answer {action} in time ({exc}). Try again in a moment.",
                        "ReadTimeout", operation)
    if isinstance(exc, ParamValidationError):
        return AwsError(f"The request for {action} was malformed ({exc}). This is a bug in the control plane; "
                        "please report it with this message.", "ParamValidation", operation)
    if isinstance(exc, NotImplementedError):
        return AwsError(f"{operation} is not supported by this AWS endpoint ({exc or 'not implemented'}; "
                        "emulators such as moto lack some calls). Do it in the AWS console instead.",
                        "NotImplemented", operation)
    if not isinstance(exc, ClientError):
        return AwsError(f"AWS call {operation} failed for {action}: {exc}", type(exc).__name__, operation)

    code = error_code(exc)
    message = error_message(exc)
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    headers = exc.response.get("ResponseMetadata", {}).get("HTTPHeaders", {}) or {}
    detail = f"{code}: {message}" if message else code

    def err(text: str) -> AwsError:
        return AwsError(text, code, operation, message)

    if code in THROTTLING_CODES:
        return err(f"AWS is throttling {operation} ({detail}); retried {RETRY_ATTEMPTS} times with backoff. "
                   "Wait a minute and try again, or ask AWS for a higher API rate limit.")
    if code in ("ExpiredToken", "ExpiredTokenException", "RequestExpired", "TokenRefreshRequired"):
        return err(f"Your AWS credentials have expired ({action}: {detail}). Refresh them "
                   "(e.g. `aws sso login` or new temporary keys) and reload the page.")
    if code in CREDENTIAL_CODES:
        return err(f"AWS rejected the credentials for {action} ({detail}). Check AWS_ACCESS_KEY_ID/"
                   "AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN) or AWS_PROFILE.")
    if code in ACCESS_CODES or (status == 403 and operation == "HeadBucket"):
        return err(f"Access denied: AWS refused {operation} ({action}){': ' + message if message else ''}. "
                   f"Give your AWS user or role permission for this action; {DOCS} lists the exact IAM policy "
                   "for the dashboard user and for the SageMaker execution role.")
    if code == "NoSuchBucket" or (operation in ("HeadBucket", "ListObjectsV2") and code in ("404", "NotFound")):
        return err(f"S3 bucket {bucket!r} does not exist in {region}. Create it (aws s3 mb s3://{bucket} "
                   f"--region {region}) or fix CHURN_S3_BUCKET.")
    if code in REGION_CODES or status == 301:
        actual = headers.get("x-amz-bucket-region", "")
        where = f" ({actual})" if actual else ""
        return err(f"S3 bucket {bucket!r} is in another region{where}, not {region}. Set AWS_DEFAULT_REGION"
                   f"{'=' + actual if actual else ''} to the bucket's region or use a bucket in {region}.")
    if code == "ResourceLimitExceeded":
        return err(f"AWS quota reached for {action}: {message}. Delete endpoints you no longer need "
                   "(Endpoints page → Clean up), pick a smaller or different instance type, or request a quota "
                   "increase in the AWS console (Service Quotas → Amazon SageMaker).")
    if code in ("ResourceInUse", "ResourceInUseException") or "already exist" in message.lower():
        return err(f"{action} failed: {message or code}. A SageMaker resource with this name already exists in "
                   f"{region}; pick another name, or delete the old one (Endpoints page → Clean up).")
    if code in ("ValidationException", "ValidationError") and "role" in message.lower():
        role = getattr(settings, "role_arn", "") or "(not set)"
        return err(f"SageMaker could not use the execution role {role} for {action}: {message}. Check "
                   "CHURN_SAGEMAKER_ROLE_ARN: the role must exist in this account, trust sagemaker.amazonaws.com "
                   f"and allow access to the bucket (see {DOCS}).")
    if code == "ModelError":
        return err(f"The model container answered with an error for {action}: {message}")
    if code in ("ValidationException", "ValidationError") and is_not_found(code, message):
        return err(f"{action} failed: {message}. It does not exist (any more) in {region}; "
                   "it may have been deleted outside this app.")
    if code in ("ServiceUnavailable", "InternalFailure", "InternalError", "InternalServerError", "500", "503"):
        return err(f"AWS had an internal error for {action} ({detail}). Try again in a minute.")
    return err(f"AWS {operation} failed for {action}: {detail}.")


# ---- the SKLearn framework image ------------------------------------------------------------


def sklearn_image_uri(settings) -> str:
    """``settings.image_uri`` if set, else sagemaker-core's table, else the built-in one."""
    if settings.image_uri:
        return settings.image_uri
    region, version = settings.region, settings.sklearn_version
    try:
        from sagemaker.core import image_uris  # optional: pip install -r requirements-aws.txt
    except Exception:  # not installed (or broken): fall back to the built-in table
        image_uris = None
    if image_uris is not None:
        try:
            return image_uris.retrieve("sklearn", region, version=version)
        except ValueError as exc:  # the tables do not know this version or region
            raise ValidationError(
                f"No SageMaker scikit-learn image for version {version} in {region} ({exc}). Set "
                "CHURN_SKLEARN_VERSION to a supported version (e.g. 1.2-1) or CHURN_SKLEARN_IMAGE_URI to an image URI."
            ) from None
        except Exception:  # an incompatible sagemaker-core: use the built-in table
            pass
    account = SKLEARN_REGISTRY_ACCOUNTS.get(region)
    if account and version in SKLEARN_TABLE_VERSIONS:
        return f"{account}.dkr.ecr.{region}.amazonaws.com/sagemaker-scikit-learn:{version}-cpu-py3"
    raise ValidationError(
        f"The scikit-learn {version} image URI for region {region} is not in the built-in table. "
        "Set CHURN_SKLEARN_IMAGE_URI to the image (see the SageMaker docs 'Docker registry paths'), "
        "or install the image tables with `pip install -r requirements-aws.txt`."
    )
