"""Batch transform on the SageMaker backend, under moto (no network).

moto records CreateTransformJob and reports Completed at once, but writes no output: the tests check the
request, then place the output themselves as SageMaker would write it (each input line through the
InputFilter, the model's own handlers with the job's environment, joined to the input line, through the
OutputFilter) and read it back through the platform. moto lacks StopTransformJob: the stop test answers
that one call itself from botocore's ``before-call`` event and checks the arguments sent.
"""

from __future__ import annotations

import csv
import io
import json

import pandas as pd
import pytest

pytestmark = [pytest.mark.aws, pytest.mark.usefixtures("reference_job")]

pytest.importorskip("boto3")
pytest.importorskip("moto")

import churn_core  # noqa: E402
from churn_core.data.sample import make_subscription_sample  # noqa: E402
from tests.support.aws import (BUCKET, IMAGE, ROLE, aws_client, capture, sm_backend,  # noqa: E402
                                upload_artifacts)
from tests.support.helpers import wait_for_job, wait_until  # noqa: E402
from tests.support.transforms import customers, fake_batch_transform, handler_chain, load_model  # noqa: E402

DATASET = make_subscription_sample(1200, seed=3)


def scoring_file() -> bytes:
    """Customers with an ID, a bad line (a word for a number), a line with too few values and a blank line."""
    lines = customers(400, seed=17).decode().splitlines()
    cells = lines[10].split(",")
    cells[5] = "soon"  # tenure, line 11
    lines[10] = ",".join(cells)
    lines[20] = ",".join(lines[20].split(",")[:4])  # line 21
    lines[30] = ""  # line 31: blank
    return ("\n".join(lines) + "\n").encode()


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The model trained on the local backend, and the local transform job's results for the scoring file:
    the SageMaker backend must read its output back into exactly these."""
    mp = pytest.MonkeyPatch()
    mp.setenv("CHURN_HOME", str(tmp_path_factory.mktemp("reference") / "state"))
    mp.setenv("CHURN_BACKEND", "local")
    try:
        p = churn_core.connect()
        p.upload_dataset("subs", DATASET)
        p.start_training("subs", {"algorithm": "random_forest", "n_estimators": 20}, name="subs-rf")
        job = wait_for_job(p, "subs-rf")
        assert job.status == "Completed"
        p.start_transform("subs-rf", scoring_file(), name="local-run")
        done = wait_until(lambda: (j := p.describe_transform("local-run")).status != "InProgress" and j, 90)
        assert done.status == "Completed", done.failure_reason
        yield {"tarballs": {"model": p.store.get_bytes(job.model_key), "output": p.store.get_bytes(job.output_key)},
               "results": p.transform_output("local-run"), "errors": p.transform_errors("local-run"),
               "model": load_model(p, "subs-rf")}
    finally:
        mp.undo()


@pytest.fixture
def reference_job(platform, reference):
    """Every test here: the reference model registered on the sagemaker platform as a Completed job's model."""
    platform.upload_dataset("subs", DATASET)
    platform.start_training("subs", {"algorithm": "random_forest", "n_estimators": 20}, name="subs-rf")
    upload_artifacts("subs-rf", reference["tarballs"])
    assert platform.describe_training("subs-rf").status == "Completed"


def run_container(p, job: str, reference) -> None:
    """Write the .out object SageMaker would write, through the model's handlers with the job's environment."""
    sm, s3 = aws_client("sagemaker"), aws_client("s3")
    environment = sm.describe_transform_job(TransformJobName=job)["Environment"]
    fake_batch_transform(sm, s3, job, handler_chain(reference["model"], environment))


def test_create_transform_job_request_and_the_headerless_input_in_model_order(platform, reference):
    p = platform
    seen_model = capture(p, "sagemaker", "CreateModel")
    seen_job = capture(p, "sagemaker", "CreateTransformJob")
    p.catalog.update("models", "subs-rf", threshold=0.35)
    job = p.start_transform("subs-rf", scoring_file(), name="tj-1", file_name="customers.csv")
    assert job.status == "InProgress" and job.instance_count == 1 and job.instance_type == "ml.m5.large"
    (model_req,) = seen_model
    assert model_req["ModelName"] == "tj-1-model" and model_req["ExecutionRoleArn"] == ROLE
    container = model_req["PrimaryContainer"]
    assert container["Image"] == IMAGE
    assert container["ModelDataUrl"] == f"s3://{BUCKET}/churn/jobs/subs-rf/output/model.tar.gz"
    assert container["Environment"]["SAGEMAKER_PROGRAM"] == "train.py"
    assert container["Environment"]["CHURN_THRESHOLD"] == "0.35"  # model_fn reads it, as for an endpoint
    assert {"Key": "churn:transform", "Value": "tj-1"} in model_req["Tags"]
    (req,) = seen_job
    assert req["TransformJobName"] == "tj-1" and req["ModelName"] == "tj-1-model"
    assert req["BatchStrategy"] == "MultiRecord"
    assert 0 < req["MaxPayloadInMB"] <= 100 and req["MaxPayloadInMB"] * req["MaxConcurrentTransforms"] <= 100
    assert req["TransformInput"] == {
        "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix",
                                        "S3Uri": f"s3://{BUCKET}/churn/transforms/tj-1/sagemaker/input/"}},
        "ContentType": "text/csv", "SplitType": "Line", "CompressionType": "None"}
    assert req["TransformOutput"] == {"S3OutputPath": f"s3://{BUCKET}/churn/transforms/tj-1/sagemaker/output",
                                      "Accept": "text/csv", "AssembleWith": "Line"}
    assert req["TransformResources"] == {"InstanceType": "ml.m5.large", "InstanceCount": 1}
    # the line number and the ID column go around the model: not fed to it, joined back to its answer
    assert req["DataProcessing"] == {"InputFilter": "$[2:]", "JoinSource": "Input",
                                     "OutputFilter": "$[0,1,-4,-3,-2,-1]"}
    assert req["Environment"] == {"CHURN_BATCH_TRANSFORM": "1"}
    assert all(len(v) <= 63 for v in req["DataProcessing"].values())
    assert {"Key": "created-by", "Value": "churn-control-plane"} in req["Tags"]
    body = aws_client("s3").get_object(Bucket=BUCKET, Key="churn/transforms/tj-1/sagemaker/input/customers.csv")
    rows = list(csv.reader(io.StringIO(body["Body"].read().decode())))
    features = [f["name"] for f in p.model_schema("subs-rf")["features"]]
    source = pd.read_csv(io.BytesIO(scoring_file()), dtype=str, keep_default_na=False, skip_blank_lines=False)
    assert rows[0] == ["2", source["customerID"][0], *source.loc[0, features]]  # no header: line, ID, features
    assert len(rows) == 398 and all(len(r) == 2 + len(features) for r in rows)  # the short line is set aside
    assert "21" not in [r[0] for r in rows] and "31" not in [r[0] for r in rows]


def test_the_output_is_read_back_into_the_local_result_format(platform, reference):
    p = platform
    job = p.start_transform("subs-rf", scoring_file(), name="tj-2")
    run_container(p, "tj-2", reference)
    done = p.describe_transform("tj-2")
    assert done.status == "Completed", done.failure_reason
    assert (done.rows_in, done.rows_scored, done.rows_failed) == (399, 397, 2)
    out = p.transform_output("tj-2")
    pd.testing.assert_frame_equal(out, reference["results"])
    errors = p.transform_errors("tj-2")
    local = reference["errors"]
    assert list(errors["line"]) == list(local["line"]) == [11, 21]
    # the container's answers keep commas out of their fields (SageMaker joins CSV fields to the input line)
    assert list(errors["problem"]) == [m.replace(",", ";") for m in local["problem"]]
    assert p.list_transforms()[0].name == "tj-2" and job.arn.endswith(":transform-job/tj-2")
    assert [m["ModelName"] for m in aws_client("sagemaker").list_models()["Models"]] == []  # the job's model went


def test_stop_sends_stop_transform_job_and_the_job_ends_stopped(platform):
    """moto has no StopTransformJob: the call is answered here (botocore's before-call event) and its
    arguments checked; SageMaker's own Stopping → Stopped is then forced in moto's state."""
    from botocore.awsrequest import AWSResponse

    p = platform
    p.start_transform("subs-rf", scoring_file(), name="tj-3")
    sm_backend().transform_jobs["tj-3"].transform_job_status = "InProgress"
    sent = []

    def answer(params, **_):
        sent.append(params)
        return AWSResponse("https://sagemaker.us-east-1.amazonaws.com/", 200, {}, None), {}

    p.backend.client("sagemaker").meta.events.register("before-call.sagemaker.StopTransformJob", answer)
    stopping = p.stop_transform("tj-3")
    assert [(s["headers"]["X-Amz-Target"], json.loads(s["body"])) for s in sent] == [
        ("SageMaker.StopTransformJob", {"TransformJobName": "tj-3"})]
    assert stopping.status == "InProgress"  # what SageMaker still says until it moves on
    assert p.catalog.one("SELECT status FROM transforms WHERE name = 'tj-3'")["status"] == "InProgress"
    sm_backend().transform_jobs["tj-3"].transform_job_status = "Stopped"
    assert p.describe_transform("tj-3").status == "Stopped"
    assert aws_client("sagemaker").list_models()["Models"] == []


def test_a_failed_job_keeps_sagemakers_reason_and_its_model_goes(platform):
    p = platform
    p.start_transform("subs-rf", scoring_file(), name="tj-4")
    job = sm_backend().transform_jobs["tj-4"]
    job.transform_job_status = "Failed"
    job.failure_reason = "ClientError: See job logs for more information"
    done = p.describe_transform("tj-4")
    assert done.status == "Failed" and done.failure_reason == "ClientError: See job logs for more information"
    assert aws_client("sagemaker").list_models()["Models"] == []
    assert "No CloudWatch log yet" in p.transform_log("tj-4")


def test_columns_that_do_not_match_fail_before_anything_is_created_on_sagemaker(platform):
    p = platform
    seen = capture(p, "sagemaker", "CreateTransformJob")
    frame = pd.read_csv(io.BytesIO(customers(10)), dtype=str, keep_default_na=False).drop(columns=["Contract"])
    job = p.start_transform("subs-rf", frame.to_csv(index=False).encode(), name="tj-5")
    assert job.status == "Failed" and "lacks the model's feature column Contract" in job.failure_reason
    assert seen == [] and aws_client("sagemaker").list_models()["Models"] == []


def test_completed_without_output_waits_then_fails_with_the_reason(platform, monkeypatch):
    from churn_core.backends.sagemaker import transform_jobs

    p = platform
    p.start_transform("subs-rf", scoring_file(), name="tj-6")
    assert p.describe_transform("tj-6").status == "InProgress"  # S3 may list the output a moment later
    monkeypatch.setattr(transform_jobs, "ARTIFACT_GRACE_SECONDS", 0)
    done = p.describe_transform("tj-6")
    assert done.status == "Failed" and "wrote no output" in done.failure_reason


# ---- issue 26, item 12: transform jobs have their own instance types, from SageMaker's TransformInstanceType enum


def transform_enum() -> list[str]:
    return list(aws_client("sagemaker").meta.service_model.shape_for("TransformInstanceType").enum)


def test_a_transform_job_never_inherits_an_endpoint_only_instance_type(monkeypatch):
    """ml.t2.medium is the cheapest endpoint but SageMaker refuses it for batch transform: the job gets a valid,
    cheap transform type of its own, whatever the endpoint setting says."""
    monkeypatch.setenv("CHURN_ENDPOINT_INSTANCE_TYPE", "ml.t2.medium")
    p = churn_core.connect()  # with that setting, on the module's moto account where subs-rf is Completed
    seen = capture(p, "sagemaker", "CreateTransformJob")
    job = p.start_transform("subs-rf", scoring_file(), name="tj-t2")
    (req,) = seen
    enum = transform_enum()
    assert req["TransformResources"]["InstanceType"] in enum and job.instance_type in enum
    assert job.instance_type == req["TransformResources"]["InstanceType"] == "ml.m5.large"


def test_transform_instance_types_are_sagemakers_enum_with_a_cheap_default_first(platform):
    p = platform
    offered = p.offers.transform_instance_types
    assert offered[0] == "ml.m5.large" and sorted(offered) == sorted(transform_enum())
    assert "ml.t2.medium" not in offered and "ml.c5.large" not in offered and "ml.r5.large" not in offered


def test_a_chosen_transform_instance_type_is_sent_and_an_invalid_one_refused_before_anything_starts(platform):
    from churn_core.errors import ValidationError

    p = platform
    seen = capture(p, "sagemaker", "CreateTransformJob")
    job = p.start_transform("subs-rf", scoring_file(), name="tj-c5", instance_type="ml.c5.xlarge")
    assert job.instance_type == "ml.c5.xlarge" and seen[0]["TransformResources"]["InstanceType"] == "ml.c5.xlarge"
    for bad in ("ml.t2.medium", "ml.c5.large", "ml.r5.xlarge", "m5.large", "", 3):
        with pytest.raises(ValidationError, match="instance type") as err:
            p.start_transform("subs-rf", scoring_file(), name="tj-bad", instance_type=bad)
        assert "ml.m5.large" in str(err.value)  # what to pick instead
    assert len(seen) == 1 and [t.name for t in p.list_transforms()] == ["tj-c5"]
    assert [m["ModelName"] for m in aws_client("sagemaker").list_models()["Models"]] == ["tj-c5-model"]


# ---- issue 26, item 16: scale-out means one input object per instance (batch transform distributes objects)


def input_objects(job: str) -> dict[str, list[list[str]]]:
    s3 = aws_client("s3")
    prefix = f"churn/transforms/{job}/sagemaker/input/"
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])]
    return {k[len(prefix):]: list(csv.reader(io.StringIO(s3.get_object(Bucket=BUCKET, Key=k)["Body"].read().decode())))
            for k in sorted(keys)}


def test_several_instances_get_one_object_each_of_whole_lines_and_results_come_back_in_input_order(platform,
                                                                                                   reference):
    p = platform
    seen = capture(p, "sagemaker", "CreateTransformJob")
    p.start_transform("subs-rf", scoring_file(), name="tj-wide", instance_count=3, file_name="customers.csv")
    (req,) = seen
    assert req["TransformResources"]["InstanceCount"] == 3
    objects = input_objects("tj-wide")
    assert len(objects) == 3 and all(len(rows) > 100 for rows in objects.values())  # shares of about a third each
    features = [f["name"] for f in p.model_schema("subs-rf")["features"]]
    lines = [int(r[0]) for rows in objects.values() for r in rows]
    assert lines == sorted(lines) and len(lines) == 398  # every line sent once, whole, in order across parts
    assert all(len(r) == 2 + len(features) for rows in objects.values() for r in rows)
    run_container(p, "tj-wide", reference)
    s3, out = aws_client("s3"), "churn/transforms/tj-wide/sagemaker/output/"
    for obj in s3.list_objects_v2(Bucket=BUCKET, Prefix=out)["Contents"]:  # no line end after an object's last record
        body = s3.get_object(Bucket=BUCKET, Key=obj["Key"])["Body"].read()
        s3.put_object(Bucket=BUCKET, Key=obj["Key"], Body=body.rstrip(b"\n"))
    done = p.describe_transform("tj-wide")
    assert done.status == "Completed", done.failure_reason
    assert (done.rows_in, done.rows_scored, done.rows_failed, done.instance_count) == (399, 397, 2, 3)
    pd.testing.assert_frame_equal(p.transform_output("tj-wide"), reference["results"])
    assert list(p.transform_errors("tj-wide")["line"]) == [11, 21]


def test_instances_beyond_the_lines_to_score_are_never_billed(platform, reference):
    p = platform
    seen = capture(p, "sagemaker", "CreateTransformJob")
    two = b"\n".join(scoring_file().splitlines()[:3]) + b"\n"  # a header and two customers
    job = p.start_transform("subs-rf", two, name="tj-two", instance_count=8)
    assert seen[0]["TransformResources"]["InstanceCount"] == 2 and job.instance_count == 2
    assert [len(rows) for rows in input_objects("tj-two").values()] == [1, 1]
    run_container(p, "tj-two", reference)
    done = p.describe_transform("tj-two")
    assert done.status == "Completed" and done.rows_scored == 2, done.failure_reason


def test_a_file_known_to_be_unscorable_is_never_submitted(platform):
    p = platform
    seen_job, seen_model = capture(p, "sagemaker", "CreateTransformJob"), capture(p, "sagemaker", "CreateModel")
    header = scoring_file().splitlines()[0]
    empty = p.start_transform("subs-rf", header + b"\n\n", name="tj-empty", instance_count=2)
    assert empty.status == "Failed" and "no lines to score" in empty.failure_reason
    short = b",".join(header.split(b",")[:3])
    bad = p.start_transform("subs-rf", header + b"\n" + short + b"\n" + short + b"\n", name="tj-bad-lines")
    assert bad.status == "Failed" and "None of the 2 lines could be scored" in bad.failure_reason
    assert "line 2:" in bad.failure_reason and (bad.rows_in, bad.rows_failed, bad.rows_scored) == (2, 2, 0)
    assert list(p.transform_errors("tj-bad-lines")["line"]) == [2, 3]
    assert seen_job == [] and seen_model == [] and aws_client("sagemaker").list_models()["Models"] == []
    assert input_objects("tj-empty") == {} and input_objects("tj-bad-lines") == {}


def test_a_full_disk_in_the_dashboard_is_said_as_such_and_reading_the_job_again_retries(platform, reference,
                                                                                          monkeypatch):
    """Issue 26, item 9, on the SageMaker backend: the input is rewritten and the output read back in a temporary
    folder of the dashboard's machine; a write that fails there is a DiskError (free space), never a raw OSError."""
    from churn_core.errors import DiskError
    from tests.support.disk_faults import refuse_writes

    p = platform
    seen = capture(p, "sagemaker", "CreateTransformJob")
    with monkeypatch.context() as disk:
        refuse_writes(disk, "churn-transform-")
        with pytest.raises(DiskError, match="Free some disk space"):
            p.start_transform("subs-rf", scoring_file(), name="tj-full")
    failed = p.describe_transform("tj-full")
    assert failed.status == "Failed" and "disk is full" in failed.failure_reason and seen == []
    p.start_transform("subs-rf", scoring_file(), name="tj-later")
    run_container(p, "tj-later", reference)
    with monkeypatch.context() as disk:
        refuse_writes(disk, "churn-transform-")
        with pytest.raises(DiskError, match="Free some disk space"):
            p.describe_transform("tj-later")
    assert p.catalog.one("SELECT status FROM transforms WHERE name = 'tj-later'")["status"] == "InProgress"
    assert p.describe_transform("tj-later").status == "Completed"  # read again once there is room
