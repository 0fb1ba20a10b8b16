"""What real AWS would refuse, checked on every request the SageMaker backend sends in the test suite.

moto accepts almost anything and botocore itself checks only types and required members. This helper
hooks every boto3 client the backend creates (``AwsClients.client``) with botocore's
``before-parameter-build`` event and checks each request

* against botocore's service model for that operation (``service-2.json``): patterns, enums, string,
  list and map lengths, numeric ranges, at every depth of the request; and
* against the IAM policies shipped in ``docs/iam/``: every action and resource the request needs from
  the dashboard user (the call itself, ``sagemaker:AddTags`` for ``Tags``, ``iam:PassRole`` for a
  role) and from the SageMaker execution role (the S3 objects SageMaker reads and writes with it:
  channels, code, model data, transform input and output, data capture) must be allowed, with a small
  IAM evaluator (Allow/Deny, Action/Resource wildcards, ``StringEquals``/``StringLike`` conditions).

A violation raises :class:`RefusedRequest` inside the call (the request is never sent) and is
remembered, so a test that swallows the exception still fails at teardown. The fixture lives in
``tests/conftest.py`` (``aws_request_check``, autouse).
"""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path
from urllib.parse import urlparse

import regex  # Java's \p{L}-style classes in the service model's patterns

ROOT = Path(__file__).resolve().parents[1]
POLICY_DIR = ROOT / "docs" / "iam"
DASHBOARD_POLICY = POLICY_DIR / "dashboard-policy.json"
EXECUTION_POLICY = POLICY_DIR / "execution-role-policy.json"
ACCOUNT = "123456789012"
# The placeholders the shipped policies use (docs/aws.md says to replace them).
PLACEHOLDER_BUCKET, PLACEHOLDER_PREFIX, PLACEHOLDER_ROLE = "my-churn-bucket", "churn", "churn-sagemaker"
PLACEHOLDER_REGION, PLACEHOLDER_ACCOUNT = "us-east-1", "123456789012"
OWNER_TAG_KEY, OWNER_TAG_VALUE = "created-by", "churn-control-plane"


class RefusedRequest(AssertionError):
    """A request the real service (or the shipped IAM policy) would refuse."""


# ---- the service model ------------------------------------------------------------------------

_PATTERNS: dict[str, object] = {}


def _pattern(text: str):
    """The service's (Java) pattern, matched against the whole value as the service does. Java's ``.`` also
    refuses ``\\r``, U+0085, U+2028 and U+2029 (Python's only ``\\n``)."""
    if text not in _PATTERNS:
        out, escaped, depth = [], False, 0
        for char in text:
            if escaped:
                out.append(char)
                escaped = False
            elif char == "\\":
                out.append(char)
                escaped = True
            elif char == "[":
                depth += 1
                out.append(char)
            elif char == "]" and depth:
                depth -= 1
                out.append(char)
            elif char == "." and not depth:
                out.append("[^\\n\\r\\u0085\\u2028\\u2029]")
            else:
                out.append(char)
        _PATTERNS[text] = regex.compile("".join(out))
    return _PATTERNS[text]


def model_problems(shape, value, path: str = "") -> list[str]:
    """Every constraint of ``shape`` (a botocore Shape) that ``value`` breaks; [] when it is valid."""
    problems: list[str] = []
    where = path or shape.name
    meta = shape.metadata or {}
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, dict):
            return problems  # botocore reports the type itself
        for name, member in value.items():
            if name in shape.members:
                problems += model_problems(shape.members[name], member, f"{where}.{name}")
        return problems
    if kind == "list":
        if isinstance(value, (list, tuple)):
            problems += _length(meta, len(value), where, "items")
            for i, item in enumerate(value):
                problems += model_problems(shape.member, item, f"{where}[{i}]")
        return problems
    if kind == "map":
        if isinstance(value, dict):
            problems += _length(meta, len(value), where, "entries")
            for key, item in value.items():
                problems += model_problems(shape.key, key, f"{where} key {key!r}")
                problems += model_problems(shape.value, item, f"{where}[{key!r}]")
        return problems
    if kind == "string" and isinstance(value, str):
        problems += _length(meta, len(value), where, "characters")
        if shape.enum and value not in shape.enum:
            problems.append(f"{where}={value!r} is not one of {shape.enum}")
        if "pattern" in meta and not _pattern(meta["pattern"]).fullmatch(value):
            problems.append(f"{where}={_short(value)} does not match the pattern {meta['pattern']!r}")
        return problems
    if kind in ("integer", "long", "float", "double") and isinstance(value, (int, float)):
        if "min" in meta and value < meta["min"]:
            problems.append(f"{where}={value} is below the minimum {meta['min']}")
        if "max" in meta and value > meta["max"]:
            problems.append(f"{where}={value} is above the maximum {meta['max']}")
        return problems
    if kind == "blob" and isinstance(value, (bytes, bytearray, str)):
        problems += _length(meta, len(value), where, "bytes")
    return problems


def _length(meta: dict, size: int, where: str, unit: str) -> list[str]:
    out = []
    if "min" in meta and size < meta["min"]:
        out.append(f"{where} has {size} {unit}, fewer than the minimum {meta['min']}")
    if "max" in meta and size > meta["max"]:
        out.append(f"{where} has {size} {unit}, more than the maximum {meta['max']}")
    return out


def _short(value: str) -> str:
    return repr(value if len(value) <= 80 else value[:77] + "...")


# ---- IAM: a small policy evaluator --------------------------------------------------------------


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def _wild(pattern: str, text: str, case: bool) -> bool:
    if not case:
        pattern, text = pattern.lower(), text.lower()
    return fnmatch.fnmatchcase(text, pattern.replace("[", "[[]"))


def _condition_holds(condition: dict, context: dict) -> bool:
    for operator, tests in condition.items():
        for key, wanted in tests.items():
            have = context.get(key)
            if have is None:
                return False
            have_values, wanted_values = _as_list(have), _as_list(wanted)
            if operator == "StringEquals":
                ok = all(h in wanted_values for h in have_values)
            elif operator == "StringLike":
                ok = all(any(_wild(w, h, True) for w in wanted_values) for h in have_values)
            else:
                raise AssertionError(f"the policy evaluator does not know the condition operator {operator}")
            if not ok:
                return False
    return True


def allowed(policy: dict, action: str, resource: str, context: dict | None = None) -> bool:
    """IAM's answer for one request: an explicit Deny wins, else any matching Allow, else denied."""
    context = context or {}
    verdict = False
    for statement in policy["Statement"]:
        if not any(_wild(a, action, False) for a in _as_list(statement.get("Action", []))):
            continue
        if not any(_wild(r, resource, True) for r in _as_list(statement.get("Resource", []))):
            continue
        if not _condition_holds(statement.get("Condition", {}), context):
            continue
        if statement["Effect"] == "Deny":
            return False
        verdict = True
    return verdict


def load_policy(path: Path, *, bucket: str, prefix: str, role_arn: str, region: str, account: str) -> dict:
    """A shipped policy with its placeholders replaced as docs/aws.md tells the reader to."""
    text = path.read_text()
    role_name = role_arn.rsplit("/", 1)[-1] if role_arn else PLACEHOLDER_ROLE
    pre = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
    text = (text.replace(f"{PLACEHOLDER_BUCKET}/{PLACEHOLDER_PREFIX}/", f"{bucket}/{pre}")
                .replace(f'"{PLACEHOLDER_PREFIX}/*"', f'"{pre}*"')
                .replace(PLACEHOLDER_BUCKET, bucket)
                .replace(f"role/{PLACEHOLDER_ROLE}", f"role/{role_name}")
                .replace(f":{PLACEHOLDER_ACCOUNT}:", f":{account}:")
                .replace(f":{PLACEHOLDER_REGION}:", f":{region}:"))
    return json.loads(text)


# ---- which permissions one request needs -----------------------------------------------------------

# SageMaker operation -> (resource type, the request member naming it). Resources created with Tags
# also need sagemaker:AddTags on the same ARN.
SAGEMAKER_RESOURCES = {
    "CreateTrainingJob": ("training-job", "TrainingJobName"),
    "DescribeTrainingJob": ("training-job", "TrainingJobName"),
    "StopTrainingJob": ("training-job", "TrainingJobName"),
    "CreateModel": ("model", "ModelName"),
    "DescribeModel": ("model", "ModelName"),
    "DeleteModel": ("model", "ModelName"),
    "CreateEndpointConfig": ("endpoint-config", "EndpointConfigName"),
    "DescribeEndpointConfig": ("endpoint-config", "EndpointConfigName"),
    "DeleteEndpointConfig": ("endpoint-config", "EndpointConfigName"),
    "CreateEndpoint": ("endpoint", "EndpointName"),
    "DescribeEndpoint": ("endpoint", "EndpointName"),
    "DeleteEndpoint": ("endpoint", "EndpointName"),
    "UpdateEndpoint": ("endpoint", "EndpointName"),
    "UpdateEndpointWeightsAndCapacities": ("endpoint", "EndpointName"),
    "InvokeEndpoint": ("endpoint", "EndpointName"),
    "CreateHyperParameterTuningJob": ("hyper-parameter-tuning-job", "HyperParameterTuningJobName"),
    "DescribeHyperParameterTuningJob": ("hyper-parameter-tuning-job", "HyperParameterTuningJobName"),
    "StopHyperParameterTuningJob": ("hyper-parameter-tuning-job", "HyperParameterTuningJobName"),
    "DeleteHyperParameterTuningJob": ("hyper-parameter-tuning-job", "HyperParameterTuningJobName"),
    "ListTrainingJobsForHyperParameterTuningJob": ("hyper-parameter-tuning-job", "HyperParameterTuningJobName"),
    "CreateTransformJob": ("transform-job", "TransformJobName"),
    "DescribeTransformJob": ("transform-job", "TransformJobName"),
    "StopTransformJob": ("transform-job", "TransformJobName"),
    "CreateModelPackageGroup": ("model-package-group", "ModelPackageGroupName"),
    "DescribeModelPackageGroup": ("model-package-group", "ModelPackageGroupName"),
    "CreateModelPackage": ("model-package", "ModelPackageGroupName"),
    "DescribeModelPackage": ("model-package", "ModelPackageName"),
    "UpdateModelPackage": ("model-package", "ModelPackageArn"),
}
# Calls IAM does not authorise per resource (Resource "*"), or that need no permission at all.
UNSCOPED = {("sagemaker", "ListEndpoints"), ("cloudwatch", "GetMetricData")}
NO_PERMISSION = {("sts", "GetCallerIdentity")}
S3_OBJECT_ACTIONS = {
    "GetObject": "s3:GetObject", "HeadObject": "s3:GetObject", "PutObject": "s3:PutObject",
    "CreateMultipartUpload": "s3:PutObject", "UploadPart": "s3:PutObject",
    "CompleteMultipartUpload": "s3:PutObject", "AbortMultipartUpload": "s3:AbortMultipartUpload",
    "DeleteObject": "s3:DeleteObject",
}


def _arn(region: str, account: str, kind: str, name: str) -> str:
    if name.startswith("arn:"):
        return name
    return f"arn:aws:sagemaker:{region}:{account}:{kind}/{name}"


def _s3_object(uri: str) -> tuple[str, str]:
    parsed = urlparse(uri)
    return parsed.netloc, parsed.path.lstrip("/")


def _tags(params: dict) -> dict:
    return {t["Key"]: t["Value"] for t in params.get("Tags", []) or []}


def dashboard_needs(service: str, op: str, params: dict, region: str, account: str,
                    resource_tags) -> list[tuple[str, str, dict]]:
    """(action, resource ARN, condition context) the dashboard user needs for this request."""
    if (service, op) in NO_PERMISSION:
        return []
    prefix = {"sagemaker-runtime": "sagemaker", "logs": "logs", "cloudwatch": "cloudwatch", "s3": "s3",
              "sagemaker": "sagemaker", "sts": "sts"}[service]
    action = f"{prefix}:{op}"
    if (service, op) in UNSCOPED:
        return [(action, "*", {})]
    if service == "s3":
        bucket = params.get("Bucket", "")
        if op in ("HeadBucket", "ListObjectsV2", "ListObjects"):
            return [("s3:ListBucket", f"arn:aws:s3:::{bucket}", {"s3:prefix": params.get("Prefix", "")})]
        if op == "DeleteObjects":
            return [("s3:DeleteObject", f"arn:aws:s3:::{bucket}/{o['Key']}", {})
                    for o in params.get("Delete", {}).get("Objects", [])]
        if op == "CopyObject":
            source = params["CopySource"]
            if isinstance(source, dict):
                source = f"{source['Bucket']}/{source['Key']}"
            return [("s3:GetObject", f"arn:aws:s3:::{source.lstrip('/')}", {}),
                    ("s3:PutObject", f"arn:aws:s3:::{bucket}/{params['Key']}", {})]
        if op in S3_OBJECT_ACTIONS:
            return [(S3_OBJECT_ACTIONS[op], f"arn:aws:s3:::{bucket}/{params['Key']}", {})]
        raise RefusedRequest(f"tests/service_model_check.py has no IAM mapping for s3 {op}: add one")
    if service == "logs":
        group = params.get("logGroupName", "")
        base = f"arn:aws:logs:{region}:{account}:log-group:{group}"
        if op == "GetLogEvents":
            return [(action, f"{base}:log-stream:{params.get('logStreamName', '')}", {})]
        if op in ("DescribeLogStreams", "FilterLogEvents"):
            return [(action, f"{base}:*", {})]
        raise RefusedRequest(f"tests/service_model_check.py has no IAM mapping for logs {op}: add one")
    if op in ("ListTags", "AddTags", "DeleteTags"):
        return [(action, params.get("ResourceArn", ""), {})]
    if op not in SAGEMAKER_RESOURCES:
        raise RefusedRequest(f"tests/service_model_check.py has no IAM mapping for {service} {op}: add one")
    kind, member = SAGEMAKER_RESOURCES[op]
    name = str(params.get(member, ""))
    if op == "CreateModelPackage":
        name = name.replace(":model-package-group/", ":model-package/") + "/*"
    arn = _arn(region, account, kind, name)
    context: dict = {}
    needs = []
    if op.startswith("Create"):
        tags = _tags(params)
        context = {f"aws:RequestTag/{k}": v for k, v in tags.items()}
        if tags:
            context["aws:TagKeys"] = list(tags)
            needs.append(("sagemaker:AddTags", arn, dict(context)))
    else:
        tags = resource_tags(arn)
        if tags is None:  # not there (any more): AWS answers "not found"; judge it as the product's own
            tags = {OWNER_TAG_KEY: OWNER_TAG_VALUE}
        context = {f"aws:ResourceTag/{k}": v for k, v in tags.items()}
    needs.insert(0, (action, arn, context))
    for role in _roles_passed(params):
        needs.append(("iam:PassRole", role, {"iam:PassedToService": "sagemaker.amazonaws.com"}))
    return needs


def _roles_passed(params: dict) -> list[str]:
    roles = []
    for key in ("RoleArn", "ExecutionRoleArn"):
        if params.get(key):
            roles.append(params[key])
    definition = params.get("TrainingJobDefinition") or {}
    if definition.get("RoleArn"):
        roles.append(definition["RoleArn"])
    return roles


def execution_role_needs(op: str, params: dict) -> list[tuple[str, str, dict]]:
    """The S3 access SageMaker performs with the execution role because of this request."""
    reads: list[str] = []      # object URIs or prefixes SageMaker reads
    writes: list[str] = []     # prefixes SageMaker writes under
    listed: list[str] = []     # prefixes SageMaker lists

    def training(definition: dict) -> None:
        for channel in definition.get("InputDataConfig", []) or []:
            uri = channel["DataSource"]["S3DataSource"]["S3Uri"]
            listed.append(uri)
            reads.append(uri)
        hyper = definition.get("HyperParameters") or definition.get("StaticHyperParameters") or {}
        code = hyper.get("sagemaker_submit_directory")
        if code:
            reads.append(json.loads(code) if code.startswith('"') else code)
        output = (definition.get("OutputDataConfig") or {}).get("S3OutputPath")
        if output:
            writes.append(output)

    def containers(items) -> None:
        for container in items:
            if container.get("ModelDataUrl"):
                reads.append(container["ModelDataUrl"])
            code = (container.get("Environment") or {}).get("SAGEMAKER_SUBMIT_DIRECTORY")
            if code:
                reads.append(code)

    if op == "CreateTrainingJob":
        training(params)
    elif op == "CreateHyperParameterTuningJob":
        training(params.get("TrainingJobDefinition") or {})
    elif op == "CreateModel":
        containers([params.get("PrimaryContainer") or {}, *(params.get("Containers") or [])])
    elif op == "CreateModelPackage":
        containers((params.get("InferenceSpecification") or {}).get("Containers") or [])
    elif op == "CreateTransformJob":
        uri = params["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"]
        listed.append(uri)
        reads.append(uri)
        writes.append(params["TransformOutput"]["S3OutputPath"])
    elif op == "CreateEndpointConfig":
        capture = params.get("DataCaptureConfig") or {}
        if capture.get("EnableCapture") or capture.get("DestinationS3Uri"):
            # SageMaker writes <destination>/<endpoint>/<variant>/<yyyy>/<mm>/<dd>/<hh>/<file>.jsonl
            writes.append(capture["DestinationS3Uri"].rstrip("/") + "/endpoint")
    needs = []
    for uri in listed:
        bucket, key = _s3_object(uri)
        needs.append(("s3:ListBucket", f"arn:aws:s3:::{bucket}", {"s3:prefix": key}))
    for uri in reads:
        bucket, key = _s3_object(uri)
        needs.append(("s3:GetObject", f"arn:aws:s3:::{bucket}/{key}" + ("object" if key.endswith("/") else ""), {}))
    for uri in writes:
        bucket, key = _s3_object(uri)
        needs.append(("s3:PutObject", f"arn:aws:s3:::{bucket}/{key.rstrip('/')}/some/object", {}))
    return needs


def _snapshot(value):
    """A copy of a request's parameters (file objects and bodies are kept as they are, not copied)."""
    if isinstance(value, dict):
        return {k: _snapshot(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_snapshot(v) for v in value]
    return value


# ---- the hook ----------------------------------------------------------------------------------


class RequestCheck:
    """Checks (and records) every request of every client the backend creates while installed."""

    def __init__(self):
        self.requests: list[dict] = []      # {"service", "operation", "params"}
        self.permissions: set[tuple[str, str, str]] = set()   # (principal, action, resource)
        self.problems: list[str] = []
        self.known_tags: dict[str, dict] = {}
        self._hooked: set[int] = set()
        self.dashboard_policy: Path = DASHBOARD_POLICY  # a product role's file (docs/iam/role-*.json) in its tests

    def install(self, monkeypatch) -> None:
        from churn_core.backends.sagemaker import aws

        original = aws.AwsClients.client
        check = self

        def client(clients, service: str):
            made = original(clients, service)
            if id(made) not in check._hooked:
                check._hooked.add(id(made))
                made.meta.events.register(
                    "before-parameter-build", check._hook_for(clients.settings, made),
                    unique_id=f"service-model-check-{id(made)}")
            return made

        monkeypatch.setattr(aws.AwsClients, "client", client)

    def _hook_for(self, settings, client):
        def hook(params, model, **_):
            self.check(settings, client, model, params)
        return hook

    def resource_tags(self, arn: str) -> dict | None:
        """The tags of an existing resource: from the requests seen, else from moto's own records (a
        ThreadedMotoServer runs in this process too). None when it does not exist (IAM then has no
        resource tag to test; such calls are judged as if the resource carried the owner tag)."""
        if arn in self.known_tags:
            return self.known_tags[arn]
        try:
            from moto.sagemaker.models import sagemaker_backends

            region, rest = arn.split(":")[3], arn.split(":", 5)[5]
            kind, name = rest.split("/", 1)
            backend = sagemaker_backends[ACCOUNT][region]
            table = {"model": backend._models, "endpoint": backend.endpoints,
                     "endpoint-config": backend.endpoint_configs, "training-job": backend.training_jobs,
                     "transform-job": backend.transform_jobs,
                     "hyper-parameter-tuning-job": backend.hyper_parameter_tuning_jobs,
                     "model-package-group": backend.model_package_groups}.get(kind, {})
            resource = table.get(name)
        except Exception:
            return None
        if resource is None:
            return None
        return {t["Key"]: t["Value"] for t in (getattr(resource, "tags", None) or [])}

    def check(self, settings, client, model, params: dict) -> None:
        service = client.meta.service_model.service_name
        service = {"runtime.sagemaker": "sagemaker-runtime", "monitoring": "cloudwatch"}.get(service, service)
        op = model.name
        params = _snapshot(params)
        self.requests.append({"service": service, "operation": op, "params": params})
        problems = [f"{service} {op}: {p}" for p in model_problems(model.input_shape, params)]
        region = settings.region or "us-east-1"
        try:
            problems += self._iam_problems(settings, service, op, params, region)
        except RefusedRequest as exc:
            problems.append(str(exc))
        if op.startswith("Create") and service == "sagemaker" and op in SAGEMAKER_RESOURCES:
            kind, member = SAGEMAKER_RESOURCES[op]
            self.known_tags[_arn(region, ACCOUNT, kind, str(params.get(member, "")))] = _tags(params)
        if problems:
            self.problems += problems
            raise RefusedRequest("The real AWS would refuse this request:\n  " + "\n  ".join(problems))

    def _iam_problems(self, settings, service: str, op: str, params: dict, region: str) -> list[str]:
        bucket = settings.bucket or PLACEHOLDER_BUCKET
        prefix = settings.prefix if settings.prefix is not None else PLACEHOLDER_PREFIX
        role = settings.role_arn or f"arn:aws:iam::{ACCOUNT}:role/{PLACEHOLDER_ROLE}"
        out = []
        principals = {
            f"dashboard policy (docs/iam/{self.dashboard_policy.name})": (
                self.dashboard_policy, dashboard_needs(service, op, params, region, ACCOUNT, self.resource_tags)),
            "execution role policy (docs/iam/execution-role-policy.json)": (
                EXECUTION_POLICY, execution_role_needs(op, params) if service == "sagemaker" else []),
        }
        for principal, (path, needs) in principals.items():
            if not needs:
                continue
            policy = load_policy(path, bucket=bucket, prefix=prefix, role_arn=role, region=region, account=ACCOUNT)
            for action, resource, context in needs:
                self.permissions.add((principal, action, resource))
                if not allowed(policy, action, resource, context):
                    out.append(f"the {principal} does not allow {action} on {resource} (context {context})")
        return out
