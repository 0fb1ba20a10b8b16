"""The pages on the SageMaker backend, against a moto server on 127.0.0.1 (AWS_ENDPOINT_URL), never AWS.

The same pages the local backend uses: Data loads the sample into S3, Jobs lists a SageMaker
training job (and its evaluation once the artifact is there), Endpoints lists an endpoint and
cleans it up, Settings checks the connection. No page may raise.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

pytestmark = pytest.mark.aws

boto3 = pytest.importorskip("boto3")
pytest.importorskip("moto")
from moto.server import ThreadedMotoServer  # noqa: E402
from tests.support.pages import button, open_page, texts  # noqa: E402,F401

from tests.support.aws import BUCKET, aws_client, aws_env  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def moto_server():
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def sm_env(moto_server, monkeypatch, tmp_path):
    import requests

    requests.post(f"{moto_server}/moto-api/reset", timeout=10)
    aws_env(monkeypatch, tmp_path, AWS_ENDPOINT_URL=moto_server)
    s3 = aws_client("s3", moto_server)
    s3.create_bucket(Bucket=BUCKET)
    return moto_server


def client(service: str, url: str):
    return aws_client(service, url)


def trained_job(url: str, tarballs: dict, name: str = "sm-job"):
    """A dataset, a SageMaker training job and its artifacts in the moto server; returns the platform."""
    import churn_core

    p = churn_core.connect()
    if "sm-data" not in [d.name for d in p.list_datasets()]:
        p.load_sample("sm-data", rows=600)
    p.start_training("sm-data", {"algorithm": "random_forest", "n_estimators": 15}, name=name)
    uri = client("sagemaker", url).describe_training_job(TrainingJobName=name)["ModelArtifacts"]["S3ModelArtifacts"]
    key = uri.split(f"s3://{BUCKET}/", 1)[1]
    s3 = client("s3", url)
    s3.put_object(Bucket=BUCKET, Key=key, Body=tarballs["model"])
    s3.put_object(Bucket=BUCKET, Key=key.replace("model.tar.gz", "output.tar.gz"), Body=tarballs["output"])
    return p


def test_data_page_loads_the_sample_into_s3(sm_env):
    at = open_page("data")
    assert "SageMaker" in texts(at, "caption")
    button(at, "Load sample data").click().run()
    assert not at.exception, at.exception
    assert "Stored synthetic dataset **sample-telecom**" in texts(at, "success")
    keys = sorted(o["Key"] for o in client("s3", sm_env).list_objects_v2(
        Bucket=BUCKET, Prefix="churn/datasets/sample-telecom/")["Contents"])
    assert keys == ["churn/datasets/sample-telecom/raw/sample-telecom.csv",
                    "churn/datasets/sample-telecom/test/test.csv",
                    "churn/datasets/sample-telecom/train/dataset-schema.json",
                    "churn/datasets/sample-telecom/train/train.csv"]
    assert list(at.dataframe[0].value["name"]) == ["sample-telecom"]


def test_jobs_page_lists_a_sagemaker_job(sm_env, model_tarballs):  # noqa: F811
    import churn_core

    p = churn_core.connect()
    p.load_sample("sm-data", rows=600)
    p.start_training("sm-data", {"algorithm": "random_forest", "n_estimators": 15}, name="sm-waiting")
    at = open_page("jobs")
    table = at.dataframe[0].value
    assert list(table["name"]) == ["sm-waiting"]
    assert "Running" in table["status"][0]  # moto wrote no artifact yet: still uploading
    assert "No CloudWatch log yet for this job" in texts(at, "code")

    trained_job(sm_env, model_tarballs, "sm-done")
    at = open_page("jobs")
    assert not at.exception, at.exception
    table = at.dataframe[0].value
    assert set(table["name"]) == {"sm-waiting", "sm-done"}
    at.selectbox(key="job_picker").set_value("sm-done").run()
    assert not at.exception, at.exception
    heading = " ".join(h.value for h in at.subheader)
    assert "sm-done" in heading and "Completed" in heading
    assert [t.label for t in at.tabs][:4] == ["ROC curve", "Precision–recall", "Confusion matrix", "Feature importance"]
    assert at.metric and all(m.value != "—" for m in at.metric if m.label == "ROC AUC")


def test_endpoints_page_lists_and_cleans_up_an_endpoint(sm_env, model_tarballs):  # noqa: F811
    p = trained_job(sm_env, model_tarballs)
    assert p.describe_training("sm-job").status == "Completed"
    p.deploy("sm-job", "sm-endpoint", wait=False)
    at = open_page("endpoints")
    table = at.dataframe[0].value
    assert list(table["name"]) == ["sm-endpoint"]
    assert table["URL"][0] == f"{sm_env}/endpoints/sm-endpoint/invocations"  # the runtime URL (moto here)
    assert "In service" in table["status"][0]
    assert any("invoke_endpoint" in c.value and "sm-endpoint" in c.value for c in at.code)

    button(at, "Clean up all endpoints").click().run()
    button(at, "Delete").click().run()
    assert not at.exception, at.exception
    removed = "endpoint sm-endpoint, config sm-endpoint-config, deployed-model record sm-endpoint-model"
    assert removed in texts(at, "success")
    sm = client("sagemaker", sm_env)
    assert sm.list_endpoints()["Endpoints"] == []
    assert sm.list_endpoint_configs()["EndpointConfigs"] == []
    assert sm.list_models()["Models"] == []


def test_predict_and_settings_pages_on_sagemaker(sm_env, model_tarballs):  # noqa: F811
    p = trained_job(sm_env, model_tarballs)
    p.describe_training("sm-job")
    p.deploy("sm-job", "sm-endpoint", wait=False)
    at = open_page("predict")
    assert [n.label for n in at.number_input]  # the form comes from the model's schema in S3

    at = open_page("settings")
    button(at, "Check connection").click().run()
    assert not at.exception, at.exception
    passed = texts(at, "success")
    assert "AWS credentials:" in passed and "123456789012" in passed
    assert f"s3://{BUCKET}/churn/ is reachable" in passed
    p.cleanup()
