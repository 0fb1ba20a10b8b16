"""Helpers of the SageMaker-backend tests: a moto-only AWS environment, test-side clients, request
capture, and model artifacts made by running entry/train.py locally (moto writes none)."""

from __future__ import annotations

import contextlib
import copy
import functools
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import boto3

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT = "123456789012"
REGION = "us-east-1"
BUCKET = "churn-test-bucket"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/churn-sagemaker"
IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
SEED_PAYLOAD = {"Input": [[128, 1, 1, 2.70, 1, 265.1, 110, 89.0, 9.87, 10.0]]}


def aws_env(monkeypatch, tmp_path: Path, **extra: str) -> None:
    """Environment for the sagemaker backend; never real AWS (dummy keys, empty config files)."""
    for key in ("AWS_PROFILE", "AWS_REGION", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
                "CHURN_SKLEARN_IMAGE_URI", "CHURN_S3_PREFIX", "CHURN_SKLEARN_VERSION"):
        monkeypatch.delenv(key, raising=False)
    empty = tmp_path / "empty-aws-config"
    empty.write_text("")
    values = {
        "CHURN_BACKEND": "sagemaker",
        "CHURN_HOME": str(tmp_path / "state"),
        "CHURN_S3_BUCKET": BUCKET,
        "CHURN_SAGEMAKER_ROLE_ARN": ROLE,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SHARED_CREDENTIALS_FILE": str(empty),
        "AWS_CONFIG_FILE": str(empty),
        "AWS_EC2_METADATA_DISABLED": "true",
        **extra,
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)


@contextlib.contextmanager
def moto_account(monkeypatch, tmp_path: Path, **extra: str):
    """An AWS account of moto's with the test bucket, the sagemaker backend's environment pointing at it."""
    from moto import mock_aws

    aws_env(monkeypatch, tmp_path, **extra)
    with mock_aws():
        aws_client("s3").create_bucket(Bucket=BUCKET)
        yield


def aws_client(service: str, endpoint_url: str | None = None):
    """A test-side boto3 client (inside mock_aws or against a local moto server only). It shares the
    backend's botocore data loader, so the big service models are parsed once per test run."""
    import botocore.session

    from churn_core.backends.sagemaker.aws import _shared_loader

    core = botocore.session.get_session()
    core.register_component("data_loader", _shared_loader())
    return boto3.session.Session(botocore_session=core, region_name=REGION).client(service, endpoint_url=endpoint_url)


def sm_backend():
    from moto.sagemaker.models import sagemaker_backends

    return sagemaker_backends[ACCOUNT][REGION]


def capture(p, service: str, operation: str) -> list[dict]:
    """Record the exact keyword arguments of every ``operation`` call the backend makes."""
    seen: list[dict] = []

    def hook(params, **_):
        seen.append(copy.deepcopy(params))

    p.backend.client(service).meta.events.register(f"before-parameter-build.{service}.{operation}", hook)
    return seen


@functools.lru_cache(maxsize=1)
def trained_tarballs() -> dict:
    """Run entry/train.py once per test process (every module that imports the fixture shares it)."""
    from churn_core.data.sample import make_sample

    with tempfile.TemporaryDirectory(prefix="sm-train-") as tmp:
        work = Path(tmp)
        train_dir, model_dir, out_dir = work / "train", work / "model", work / "output"
        for folder in (train_dir, model_dir, out_dir):
            folder.mkdir()
        (train_dir / "train.csv").write_bytes(make_sample(rows=600))
        env = {**os.environ, "SM_MODEL_DIR": str(model_dir), "SM_CHANNEL_TRAIN": str(train_dir),
               "SM_OUTPUT_DATA_DIR": str(out_dir)}
        env.pop("SM_CHANNEL_TEST", None)
        result = subprocess.run(
            [sys.executable, str(ROOT / "entry" / "train.py"), "--algorithm", "random_forest", "--n_estimators", "15",
             "--target", "Churn"],
            env=env, capture_output=True, text=True, timeout=120,
        )
        assert result.returncode == 0, result.stderr
        assert "roc_auc=" in result.stdout

        def tarball(folder: Path) -> bytes:
            buffer = io.BytesIO()
            with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
                for item in sorted(folder.iterdir()):
                    tar.add(item, arcname=item.name)
            return buffer.getvalue()

        return {"model": tarball(model_dir), "output": tarball(out_dir),
                "metrics": json.loads((model_dir / "metrics.json").read_text())}


def queue_endpoint_result(body: str, content_type: str = "application/json") -> None:
    import requests

    answer = requests.post(
        "http://motoapi.amazonaws.com/moto-api/static/sagemaker/endpoint-results",
        json={"account_id": ACCOUNT, "region": REGION, "results": [{"Body": body, "ContentType": content_type}]},
        timeout=10,
    )
    assert answer.status_code == 201, answer.text


def upload_artifacts(job, tarballs: dict) -> str:
    """Put model.tar.gz/output.tar.gz where SageMaker reports them (moto writes none)."""
    info = aws_client("sagemaker").describe_training_job(TrainingJobName=job)
    uri = info["ModelArtifacts"]["S3ModelArtifacts"]
    assert uri == f"s3://{BUCKET}/churn/jobs/{job}/output/model.tar.gz"
    s3 = aws_client("s3")
    key = uri.split(f"s3://{BUCKET}/", 1)[1]
    s3.put_object(Bucket=BUCKET, Key=key, Body=tarballs["model"])
    s3.put_object(Bucket=BUCKET, Key=key.replace("model.tar.gz", "output.tar.gz"), Body=tarballs["output"])
    return uri


def completed_jobs(p, data: bytes, tarballs: dict, *jobs: str) -> None:
    """Dataset ``ds`` from ``data`` and a Completed random-forest training job per name (moto runs
    nothing: each job's artifacts are put where SageMaker would)."""
    p.upload_dataset("ds", data)
    for job in jobs:
        p.start_training("ds", {"algorithm": "random_forest", "n_estimators": 15}, name=job)
        upload_artifacts(job, tarballs)
        assert p.describe_training(job).status == "Completed"


def approved_versions(p, data: bytes, tarballs: dict, *jobs: str) -> None:
    """``completed_jobs``, each registered in group ``ds`` (v1, v2, … in order) and approved."""
    completed_jobs(p, data, tarballs, *jobs)
    for job in jobs:
        p.approve("ds", p.register(job).version, "ok")


def s3_keys(prefix: str = "") -> list[str]:
    answer = aws_client("s3").list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    return sorted(o["Key"] for o in answer.get("Contents", []))


def nothing_left() -> dict:
    sm = aws_client("sagemaker")
    return {
        "models": [m["ModelName"] for m in sm.list_models()["Models"]],
        "configs": [c["EndpointConfigName"] for c in sm.list_endpoint_configs()["EndpointConfigs"]],
        "endpoints": [e["EndpointName"] for e in sm.list_endpoints()["Endpoints"]],
    }
