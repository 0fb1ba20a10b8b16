"""The SageMaker backend against moto (no network): the exact AWS requests and a full lifecycle.

upload → S3 under the prefix; start_training → CreateTrainingJob with the SKLearn framework contract;
a real model.tar.gz (made by entry/train.py locally) at the reported artifact location → Completed
with its SHA-256 and metrics; deploy → CreateModel/CreateEndpointConfig/CreateEndpoint; invoke;
delete → nothing left; clean up finds tagged endpoints the catalog never knew.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import time

import pytest

pytestmark = pytest.mark.aws

boto3 = pytest.importorskip("boto3")
moto = pytest.importorskip("moto")

from churn_core.errors import ValidationError  # noqa: E402
from tests.support.aws import (  # noqa: E402
    ACCOUNT,
    BUCKET,
    IMAGE,
    REGION,
    ROLE,
    ROOT,
    SEED_PAYLOAD,
    aws_client,
    capture,
    nothing_left,
    queue_endpoint_result,
    s3_keys,
    sm_backend,
    upload_artifacts,
)


# ---------------------------------------------------------------------------------------------


def test_dataset_lands_in_s3_under_the_prefix(platform, small_csv):
    ds = platform.upload_dataset("telecom", small_csv, target="Churn")
    assert s3_keys("churn/datasets/telecom/") == [
        "churn/datasets/telecom/raw/telecom.csv",
        "churn/datasets/telecom/test/test.csv",
        "churn/datasets/telecom/train/dataset-schema.json",
        "churn/datasets/telecom/train/train.csv",
    ]
    assert platform.store.uri(ds.train_key) == f"s3://{BUCKET}/churn/datasets/telecom/train/train.csv"
    assert len(platform.read_dataset("telecom", "train")) == ds.n_train
    assert platform.store.list("datasets/telecom") == [
        "datasets/telecom/raw/telecom.csv",
        "datasets/telecom/test/test.csv",
        "datasets/telecom/train/dataset-schema.json",
        "datasets/telecom/train/train.csv",
    ]
    platform.delete_dataset("telecom")
    assert s3_keys("churn/datasets/") == []


def test_full_lifecycle(platform, small_csv, model_tarballs):
    p = platform
    p.upload_dataset("ds", small_csv, target="Churn")
    requests_seen = capture(p, "sagemaker", "CreateTrainingJob")

    job = p.start_training("ds", {"algorithm": "random_forest", "n_estimators": 15}, name="churn-rf-1")
    assert len(requests_seen) == 1
    req = requests_seen[0]
    source_uri = f"s3://{BUCKET}/churn/code/churn-rf-1/sourcedir.tar.gz"
    assert req["TrainingJobName"] == "churn-rf-1"
    assert req["AlgorithmSpecification"]["TrainingImage"] == IMAGE
    assert req["AlgorithmSpecification"]["TrainingInputMode"] == "File"
    metric_names = [m["Name"] for m in req["AlgorithmSpecification"]["MetricDefinitions"]]
    assert metric_names == ["accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc", "log_loss", "brier", "ece",
                            "roc_auc_cv", "pr_auc_cv", "f1_cv", "log_loss_cv", "brier_cv"]  # issue 24
    assert {"Name": "roc_auc", "Regex": "roc_auc=([0-9.eE+-]+)"} in req["AlgorithmSpecification"]["MetricDefinitions"]
    import re

    for definition in req["AlgorithmSpecification"]["MetricDefinitions"]:
        match = re.search(definition["Regex"], f"{definition['Name']}=0.912345")
        assert match and float(match.group(1)) == pytest.approx(0.912345)
    assert req["RoleArn"] == ROLE
    hyper = req["HyperParameters"]
    assert hyper["sagemaker_program"] == '"train.py"'
    assert hyper["sagemaker_submit_directory"] == json.dumps(source_uri)
    assert hyper["sagemaker_region"] == '"us-east-1"'
    assert hyper["sagemaker_container_log_level"] == "20"
    assert hyper["algorithm"] == '"random_forest"'
    assert hyper["n_estimators"] == "15"
    assert "target" not in hyper  # it travels in the dataset schema of the train channel, never on a shell line
    assert "max_depth" not in hyper  # unset: the script's default applies (a JSON null would be an empty argument)
    assert all(isinstance(v, str) for v in hyper.values())
    channels = {c["ChannelName"]: c for c in req["InputDataConfig"]}
    assert set(channels) == {"train", "test"}
    assert channels["train"]["DataSource"]["S3DataSource"] == {
        "S3DataType": "S3Prefix",
        "S3Uri": f"s3://{BUCKET}/churn/datasets/ds/train/",
        "S3DataDistributionType": "FullyReplicated",
    }
    assert channels["test"]["DataSource"]["S3DataSource"]["S3Uri"] == f"s3://{BUCKET}/churn/datasets/ds/test/"
    assert all(c["ContentType"] == "text/csv" for c in channels.values())
    assert req["OutputDataConfig"] == {"S3OutputPath": f"s3://{BUCKET}/churn/jobs"}
    assert req["ResourceConfig"]["InstanceType"] == "ml.m5.large"
    assert req["ResourceConfig"]["InstanceCount"] == 1
    assert req["ResourceConfig"]["VolumeSizeInGB"] >= 1
    assert req["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600}
    tags = {t["Key"]: t["Value"] for t in req["Tags"]}
    assert tags["created-by"] == "churn-control-plane" and tags["churn:job"] == "churn-rf-1"

    # The code package is the entry/ folder with train.py at the top level.
    source = aws_client("s3").get_object(Bucket=BUCKET, Key="churn/code/churn-rf-1/sourcedir.tar.gz")["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(source), mode="r:gz") as tar:
        names = tar.getnames()
        assert "train.py" in names and not any("__pycache__" in n for n in names)
        assert tar.extractfile("train.py").read() == (ROOT / "entry" / "train.py").read_bytes()

    # moto says Completed at once but writes no artifact: the job waits for it, never "Completed" without one.
    assert job.status == "InProgress" and job.secondary_status == "Uploading"
    assert job.arn.endswith(":training-job/churn-rf-1")

    upload_artifacts("churn-rf-1", model_tarballs)
    done = p.describe_training("churn-rf-1")
    assert done.status == "Completed", done.failure_reason
    assert done.model_sha256 == hashlib.sha256(model_tarballs["model"]).hexdigest()
    assert done.model_key == "jobs/churn-rf-1/output/model.tar.gz"
    assert p.store.get_bytes(done.model_key) == model_tarballs["model"]
    assert done.output_key == "jobs/churn-rf-1/output/output.tar.gz"
    assert done.output_sha256 == hashlib.sha256(model_tarballs["output"]).hexdigest()
    assert done.metrics["roc_auc"] == pytest.approx(model_tarballs["metrics"]["roc_auc"])
    assert done.started_at and done.ended_at
    assert p.evaluation("churn-rf-1")["confusion_matrix"]
    assert p.model_schema("churn-rf-1")["features"]

    # ---- deploy
    seen_model = capture(p, "sagemaker", "CreateModel")
    seen_config = capture(p, "sagemaker", "CreateEndpointConfig")
    seen_endpoint = capture(p, "sagemaker", "CreateEndpoint")
    ep = p.deploy("churn-rf-1", "churn-ep", wait=False)
    (model_req,) = seen_model
    assert model_req["ModelName"] == "churn-ep-model"
    container = model_req["PrimaryContainer"]
    assert container["Image"] == IMAGE
    assert container["ModelDataUrl"] == f"s3://{BUCKET}/churn/jobs/churn-rf-1/output/model.tar.gz"
    assert container["Environment"]["SAGEMAKER_PROGRAM"] == "train.py"
    assert container["Environment"]["SAGEMAKER_SUBMIT_DIRECTORY"] == source_uri
    assert container["Environment"]["SAGEMAKER_REGION"] == REGION
    assert model_req["ExecutionRoleArn"] == ROLE
    assert {"Key": "created-by", "Value": "churn-control-plane"} in model_req["Tags"]
    (config_req,) = seen_config
    assert config_req["EndpointConfigName"] == "churn-ep-config"
    (variant,) = config_req["ProductionVariants"]
    assert variant["VariantName"] == "AllTraffic" and variant["ModelName"] == "churn-ep-model"
    assert variant["InstanceType"] == "ml.m5.large" and variant["InitialInstanceCount"] == 1
    assert {"Key": "created-by", "Value": "churn-control-plane"} in config_req["Tags"]
    (endpoint_req,) = seen_endpoint
    assert endpoint_req["EndpointName"] == "churn-ep" and endpoint_req["EndpointConfigName"] == "churn-ep-config"
    assert {"Key": "created-by", "Value": "churn-control-plane"} in endpoint_req["Tags"]

    assert ep.status == "InService"
    assert ep.url == "https://runtime.sagemaker.us-east-1.amazonaws.com/endpoints/churn-ep/invocations"
    assert ep.arn.endswith(":endpoint/churn-ep") and ep.in_service_at

    # ---- invoke: the seed's request byte for byte
    seen_invoke = capture(p, "sagemaker-runtime", "InvokeEndpoint")
    queue_endpoint_result(json.dumps({"Output": 0, "probabilities": [0.12]}))
    answer = p.invoke("churn-ep", SEED_PAYLOAD)
    assert answer["Output"] == 0 and isinstance(answer["Output"], int)
    (invoke_req,) = seen_invoke
    assert invoke_req["EndpointName"] == "churn-ep"
    assert invoke_req["ContentType"] == "application/json"
    assert json.loads(invoke_req["Body"]) == SEED_PAYLOAD

    # ---- a request the model would reject gets the local endpoint's message and is never sent
    # (the SKLearn container would turn input_fn's exception into a 500 ModelError)
    for payload, content_type, message in (
        ({"Input": [[1, 2, 3]]}, "application/json", r"HTTP 400\): expected 10 values per row"),
        ({"Input": [["x"] * 10]}, "application/json", r"HTTP 400\): row 1, feature \w+: 'x' is not a number"),
        ("1,2\n", "text/csv", r"HTTP 400\): expected 10 values per row"),
        ("<customer/>", "application/xml", r"HTTP 415\): unsupported content type"),
    ):
        with pytest.raises(ValidationError, match=message + ".*nothing was sent to SageMaker"):
            p.invoke("churn-ep", payload, content_type=content_type)
    assert len(seen_invoke) == 1

    # ---- delete: endpoint, endpoint config and model, on AWS and in the catalog
    assert nothing_left() == {"models": ["churn-ep-model"], "configs": ["churn-ep-config"], "endpoints": ["churn-ep"]}
    removed = p.delete_endpoint("churn-ep")
    assert removed == {"endpoint": "churn-ep", "endpoint_config": "churn-ep-config", "model": "churn-ep-model"}
    assert nothing_left() == {"models": [], "configs": [], "endpoints": []}
    assert p.list_endpoints() == []


def test_invoke_model_error_becomes_a_4xx_answer(platform):
    """A container 4xx (ModelError) is a clear ValidationError for the user, not a crash."""
    from botocore.exceptions import ClientError

    from churn_core import BackendError, ValidationError

    def model_error(**_):
        raise ClientError(
            {
                "Error": {"Code": "ModelError", "Message": "Received client error (400)"},
                "OriginalStatusCode": 400,
                "OriginalMessage": '{"error": "row 1 has 3 values; the model expects 10"}',
            },
            "InvokeEndpoint",
        )

    runtime = platform.backend.client("sagemaker-runtime")
    runtime.meta.events.register("before-call.sagemaker-runtime.InvokeEndpoint", model_error)
    row = {"name": "any", "status": "InService", "url": ""}
    status, body, ctype, _variant = platform.backend.invoke(row, b'{"Input": [[1,2,3]]}', "application/json",
                                                            "application/json")
    assert status == 400 and ctype == "application/json"
    assert json.loads(body) == {"error": "row 1 has 3 values; the model expects 10"}
    runtime.meta.events.unregister("before-call.sagemaker-runtime.InvokeEndpoint", model_error)

    def missing(**_):
        raise ClientError(
            {"Error": {"Code": "ValidationError", "Message": "Endpoint ghost of account 123456789012 not found."}},
            "InvokeEndpoint",
        )

    runtime.meta.events.register("before-call.sagemaker-runtime.InvokeEndpoint", missing)
    with pytest.raises(BackendError, match="ghost.*not found.*InService"):
        platform.backend.invoke({"name": "ghost"}, b"{}", "application/json", "application/json")
    assert not issubclass(BackendError, ValidationError)


def test_forced_states_show_in_describe(platform, small_csv, model_tarballs):
    p = platform
    p.upload_dataset("ds", small_csv)
    p.start_training("ds", {"algorithm": "logistic_regression"}, name="job-a")
    fake = sm_backend().training_jobs["job-a"]
    fake.training_job_status, fake.secondary_status = "InProgress", "Training"
    job = p.describe_training("job-a")
    assert (job.status, job.secondary_status) == ("InProgress", "Training")

    fake.training_job_status, fake.secondary_status = "Failed", "Failed"
    fake.failure_reason = "AlgorithmError: ERROR: n_estimators must be a whole number >= 1 (got 0)."
    job = p.describe_training("job-a")
    assert job.status == "Failed"
    assert "n_estimators must be a whole number" in job.failure_reason
    assert job.ended_at

    # Endpoints: Creating, then Failed with SageMaker's reason.
    p.start_training("ds", {"algorithm": "random_forest", "n_estimators": 5}, name="job-b")
    upload_artifacts("job-b", model_tarballs)
    assert p.describe_training("job-b").status == "Completed"
    p.deploy("job-b", "ep-b", wait=False)
    fake_ep = sm_backend().endpoints["ep-b"]
    fake_ep.endpoint_status = "Creating"
    p.catalog.update("endpoints", "ep-b", status="Creating", in_service_at=None)
    ep = p.describe_endpoint("ep-b")
    assert ep.status == "Creating" and ep.in_service_at is None
    fake_ep.endpoint_status = "Failed"
    fake_ep.failure_reason = (
        "The primary container for production variant AllTraffic did not pass the ping health check."
    )
    ep = p.describe_endpoint("ep-b")
    assert ep.status == "Failed" and "ping health check" in ep.failure_reason
    p.delete_endpoint("ep-b")
    assert nothing_left() == {"models": [], "configs": [], "endpoints": []}


def test_training_log_says_plainly_when_there_is_none(platform, small_csv):
    p = platform
    p.upload_dataset("ds", small_csv)
    p.start_training("ds", {"algorithm": "logistic_regression"}, name="job-log")
    text = p.training_log("job-log")
    assert text.startswith("No CloudWatch log yet for this job")
    logs = aws_client("logs")
    logs.create_log_group(logGroupName="/aws/sagemaker/TrainingJobs")
    assert p.training_log("job-log").startswith("No CloudWatch log yet for this job")
    logs.create_log_stream(logGroupName="/aws/sagemaker/TrainingJobs", logStreamName="job-log/algo-1-1700000000")
    now = int(time.time() * 1000)
    logs.put_log_events(
        logGroupName="/aws/sagemaker/TrainingJobs",
        logStreamName="job-log/algo-1-1700000000",
        logEvents=[{"timestamp": now, "message": "accuracy=0.91"}, {"timestamp": now + 1, "message": "roc_auc=0.88"}],
    )
    assert p.training_log("job-log") == "accuracy=0.91\nroc_auc=0.88"


def test_stop_training_is_a_clear_error_when_aws_cannot(platform, small_csv):
    from churn_core import BackendError

    p = platform
    p.upload_dataset("ds", small_csv)
    p.start_training("ds", {"algorithm": "logistic_regression"}, name="job-stop")
    sm_backend().training_jobs["job-stop"].training_job_status = "InProgress"
    with pytest.raises(BackendError, match="Could not stop training job job-stop.*SageMaker console"):
        p.stop_training("job-stop")
    # AWS is the truth: the next read says what SageMaker says.
    assert p.describe_training("job-stop").status == "InProgress"


def test_cleanup_finds_tagged_endpoints_outside_the_catalog(platform, small_csv, model_tarballs):
    p = platform
    sm = aws_client("sagemaker")
    tag = [{"Key": "created-by", "Value": "churn-control-plane"}]
    for name, tags in (("orphan", tag), ("someone-else", [{"Key": "team", "Value": "other"}])):
        sm.create_model(
            ModelName=f"{name}-model",
            ExecutionRoleArn=ROLE,
            Tags=tags,
            PrimaryContainer={"Image": IMAGE, "ModelDataUrl": f"s3://{BUCKET}/x/model.tar.gz"},
        )
        sm.create_endpoint_config(
            EndpointConfigName=f"{name}-config",
            Tags=tags,
            ProductionVariants=[
                {
                    "VariantName": "AllTraffic",
                    "ModelName": f"{name}-model",
                    "InstanceType": "ml.m5.large",
                    "InitialInstanceCount": 1,
                }
            ],
        )
        sm.create_endpoint(EndpointName=name, EndpointConfigName=f"{name}-config", Tags=tags)
    p.upload_dataset("ds", small_csv)
    p.start_training("ds", {"algorithm": "random_forest", "n_estimators": 5}, name="job-c")
    upload_artifacts("job-c", model_tarballs)
    p.deploy("job-c", "mine", wait=False)

    assert p.backend.owned_endpoint_names() == ["mine", "orphan"]
    removed = sorted(p.cleanup(), key=lambda r: r["endpoint"])
    assert removed == [
        {"endpoint": "mine", "endpoint_config": "mine-config", "model": "mine-model"},
        {"endpoint": "orphan", "endpoint_config": "orphan-config", "model": "orphan-model"},
    ]
    assert nothing_left() == {
        "models": ["someone-else-model"],
        "configs": ["someone-else-config"],
        "endpoints": ["someone-else"],
    }
    from churn_core import BackendError

    with pytest.raises(BackendError, match="not created by this app"):
        p.backend.delete_orphan("someone-else")


def test_check_connection_reports_every_item(platform):
    checks = {what: (ok, detail) for what, ok, detail in platform.check_connection()}
    assert checks["AWS credentials"][0] and ACCOUNT in checks["AWS credentials"][1]
    assert checks["S3 bucket"] == (True, f"s3://{BUCKET}/churn/ is reachable")
    assert checks["SageMaker API"][0]
    assert checks["Execution role"] == (True, ROLE)
    assert checks["Training image"] == (True, IMAGE)
    assert checks["Region"][0]


def test_image_uri_choices(monkeypatch):
    from churn_core.backends.sagemaker.aws import sklearn_image_uri
    from churn_core.config import Settings
    from churn_core.errors import ValidationError

    assert sklearn_image_uri(Settings(region="us-east-1")) == IMAGE
    assert sklearn_image_uri(Settings(region="eu-west-1")).startswith("141502667606.dkr.ecr.eu-west-1.amazonaws.com/")
    assert sklearn_image_uri(Settings(region="ap-east-9", image_uri="my/image:1")) == "my/image:1"
    try:
        import sagemaker.core  # noqa: F401
    except ImportError:
        with pytest.raises(ValidationError, match="CHURN_SKLEARN_IMAGE_URI.*requirements-aws.txt"):
            sklearn_image_uri(Settings(region="xx-nowhere-1"))


def test_lost_job_and_missing_artifact_become_failed_with_a_reason(platform, small_csv):
    from datetime import datetime, timedelta, timezone

    p = platform
    p.upload_dataset("ds", small_csv)
    p.start_training("ds", {"algorithm": "logistic_regression"}, name="no-artifact")
    fake = sm_backend().training_jobs["no-artifact"]
    fake.training_end_time = datetime.now(timezone.utc) - timedelta(hours=1)
    job = p.describe_training("no-artifact")
    assert job.status == "Failed" and "model.tar.gz does not exist" in job.failure_reason
    assert "Retrain" in job.failure_reason

    p.start_training("ds", {"algorithm": "logistic_regression"}, name="lost")
    del sm_backend().training_jobs["lost"]
    assert p.describe_training("lost").status == "InProgress"  # just submitted: not judged yet
    p.catalog.update("jobs", "lost", created_at=time.time() - 3600)
    job = p.describe_training("lost")
    assert job.status == "Failed" and "SageMaker has no training job named lost" in job.failure_reason


def test_endpoint_stats_come_from_cloudwatch(platform, small_csv, model_tarballs):
    from datetime import datetime, timezone

    p = platform
    p.upload_dataset("ds", small_csv)
    p.start_training("ds", {"algorithm": "random_forest", "n_estimators": 5}, name="job-s")
    upload_artifacts("job-s", model_tarballs)
    assert p.describe_training("job-s").status == "Completed"
    ep = p.deploy("job-s", "ep-s", wait=False)
    assert ep.stats == {} and ep.invocations == 0  # no traffic yet: nothing to show
    p.catalog.update("endpoints", "ep-s", created_at=time.time() - 600)
    dims = [{"Name": "EndpointName", "Value": "ep-s"}, {"Name": "VariantName", "Value": "AllTraffic"}]
    now = datetime.now(timezone.utc)
    aws_client("cloudwatch").put_metric_data(
        Namespace="AWS/SageMaker",
        MetricData=[
            {"MetricName": "Invocations", "Dimensions": dims, "Timestamp": now, "Value": 7.0, "Unit": "None"},
            {"MetricName": "Invocation4XXErrors", "Dimensions": dims, "Timestamp": now, "Value": 1.0, "Unit": "None"},
            {
                "MetricName": "ModelLatency",
                "Dimensions": dims,
                "Timestamp": now,
                "Value": 4200.0,
                "Unit": "Microseconds",
            },
        ],
    )
    p.backend.monitoring.stats.clear()
    stats = p.describe_endpoint("ep-s").stats
    assert stats["invocations"] == 7 and stats["errors"] == 1
    assert stats["last_invoked_at"] >= now.timestamp() - 60
    assert stats["avg_latency_ms"] == pytest.approx(4.2)
    assert p.describe_endpoint("ep-s").invocations == 7
    p.delete_endpoint("ep-s")


def test_a_training_job_on_several_instances_is_refused_before_any_call(platform, small_csv):
    """Issue 26, item 16: InstanceCount > 1 would train the same scikit-learn model on every instance."""
    platform.upload_dataset("ds", small_csv)
    seen = capture(platform, "sagemaker", "CreateTrainingJob")
    with pytest.raises(ValidationError, match="tuning"):
        platform.start_training("ds", {"algorithm": "random_forest"}, name="wide", instance_count=4)
    assert seen == [] and platform.list_training_jobs() == []
