"""Issue 26, item 15: values the real SageMaker refuses (moto accepts them) are refused at the API with the
service's own limits, or made valid when the product composes them.

Every request in these tests also passes ``tests/service_model_check.py`` (the autouse
``aws_request_check`` fixture): a request the service model forbids fails the test.
"""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.aws, pytest.mark.usefixtures("small_dataset")]

pytest.importorskip("boto3")
pytest.importorskip("moto")

from churn_core.errors import ValidationError  # noqa: E402
from tests.support.aws import aws_client, capture, upload_artifacts  # noqa: E402


def _tuning_jobs() -> list:
    return aws_client("sagemaker").list_hyper_parameter_tuning_jobs()["HyperParameterTuningJobSummaries"]


def test_more_than_30_categorical_values_are_refused_before_anything_is_created(platform):
    p = platform
    with pytest.raises(ValidationError, match="30") as refused:
        p.start_tuning("ds", {"max_depth": list(range(2, 33))}, name="tune-wide")  # 31 values
    assert "max_depth" in str(refused.value)
    assert _tuning_jobs() == []
    assert [t.name for t in p.list_tuning_jobs()] == []  # nothing recorded, the name stays free
    p.start_tuning("ds", {"max_depth": list(range(2, 32))}, name="tune-wide")  # 30 values: fine
    assert [t["HyperParameterTuningJobName"] for t in _tuning_jobs()] == ["tune-wide"]


@pytest.mark.parametrize("seconds", [15_768_001, 10**12, float("inf")])
def test_a_time_limit_above_the_service_maximum_is_refused(platform, seconds):
    # an infinite limit is refused by the API's own check ("got inf") before the service's maximum is asked
    with pytest.raises(ValidationError, match="15768000|15,768,000|got inf"):
        platform.start_tuning("ds", {"max_depth": [3, 5]}, name="tune-long", max_seconds=seconds)
    assert _tuning_jobs() == []
    assert platform.list_tuning_jobs() == []


def test_the_service_maximum_time_limit_itself_is_accepted(platform):
    seen = capture(platform, "sagemaker", "CreateHyperParameterTuningJob")
    platform.start_tuning("ds", {"max_depth": [3, 5]}, name="tune-max", max_seconds=15_768_000)
    assert seen[0]["HyperParameterTuningJobConfig"]["ResourceLimits"]["MaxRuntimeInSeconds"] == 15_768_000


def test_notes_with_newlines_and_control_characters_reach_sagemaker_as_valid_text(platform, model_tarballs):
    p = platform
    p.start_training("ds", {"algorithm": "random_forest", "n_estimators": 15}, name="job-a")
    upload_artifacts("job-a", model_tarballs)
    assert p.describe_training("job-a").status == "Completed"
    created = capture(p, "sagemaker", "CreateModelPackage")
    updated = capture(p, "sagemaker", "UpdateModelPackage")
    note = "first line\nsecond line\r\n\ttabbed\x07bell\x00nul\u2028end"
    version = p.register("job-a", group="grp", note=note)
    p.approve("grp", version.version, "looks good\r\nsigned: ana\x1b[31m")
    description = created[0]["ModelPackageDescription"]
    assert "first line second line" in description and "\n" not in description and "\x07" not in description
    assert "\r" not in updated[0]["ApprovalDescription"] and "\n" not in updated[0]["ApprovalDescription"]
    assert "signed: ana" in updated[0]["ApprovalDescription"]
    # The catalog keeps the notes as written: nothing is lost, only AWS's copy is flattened.
    kept = {v.version: v for v in p.list_versions("grp")}[version.version]
    assert kept.note == note


def test_a_model_whose_dataset_was_deleted_can_still_be_registered(platform, model_tarballs):
    p = platform
    p.start_training("ds", {"algorithm": "random_forest", "n_estimators": 15}, name="job-b")
    upload_artifacts("job-b", model_tarballs)
    assert p.describe_training("job-b").status == "Completed"
    p.delete_dataset("ds")
    # A tuning trial first read after its dataset was deleted is recorded without the dataset's SHA-256.
    for table in ("jobs", "models"):
        p.catalog.update(table, "job-b", dataset_sha256="")
    created = capture(p, "sagemaker", "CreateModelPackage")
    version = p.register("job-b", group="grp")
    assert version.version == 1
    metadata = created[0].get("CustomerMetadataProperties", {})
    assert all(value for value in metadata.values())  # the service refuses empty values
    assert metadata.get("job") == "job-b"


def test_a_request_over_a_service_maximum_is_not_sent(platform):
    """The net under the input checks: any value over a maximum (or outside an enum) in any request fails
    before it is sent, naming the field and the limit (here a description SageMaker caps at 1024)."""
    from churn_core.backends.sagemaker.aws import AwsError

    sent = capture(platform, "sagemaker", "CreateModelPackageGroup")
    with pytest.raises(AwsError, match=r"ModelPackageGroupDescription is 2000 characters long.*at most 1024"):
        platform.backend.ctx.call("sagemaker", "create_model_package_group", "create model group g",
                                  ModelPackageGroupName="g", ModelPackageGroupDescription="x" * 2000,
                                  Tags=platform.backend.ctx.tags())
    assert sent == []
    assert aws_client("sagemaker").list_model_package_groups()["ModelPackageGroupSummaryList"] == []
