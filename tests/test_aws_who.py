"""Who did it, on SageMaker (issue 28, moto): what the product creates is tagged churn:created-by with the acting
user; a model package records who registered it, and its ApprovalDescription who approved it and why."""

from __future__ import annotations

import pytest

import churn_core


@pytest.mark.aws
def test_sagemaker_resources_name_who_created_registered_and_approved(monkeypatch, tmp_path, small_csv,
                                                                     model_tarballs):
    pytest.importorskip("moto")
    from tests.support.aws import capture, completed_jobs, moto_account

    with moto_account(monkeypatch, tmp_path):
        analyst = churn_core.connect(user="ann@example.com")
        trainings = capture(analyst, "sagemaker", "CreateTrainingJob")
        completed_jobs(analyst, small_csv, model_tarballs, "who-job")
        assert {"Key": "churn:created-by", "Value": "ann@example.com"} in trainings[0]["Tags"]
        assert analyst.describe_training("who-job").created_by == "ann@example.com"

        groups = capture(analyst, "sagemaker", "CreateModelPackageGroup")
        packages = capture(analyst, "sagemaker", "CreateModelPackage")
        version = analyst.register("who-job", note="baseline")
        assert {"Key": "churn:created-by", "Value": "ann@example.com"} in groups[0]["Tags"]
        assert packages[0]["CustomerMetadataProperties"]["registered_by"] == "ann@example.com"

        approver = churn_core.connect(user="Bob O'Neil")  # a name with a character tags refuse
        updates = capture(approver, "sagemaker", "UpdateModelPackage")
        approver.approve("ds", version.version, "holdout AUC checked")
        assert updates[0]["ApprovalDescription"] == "Approved by Bob O'Neil: holdout AUC checked"
        models = capture(approver, "sagemaker", "CreateModel")
        approver.deploy_version("ds", version.version, "who-ep", wait=False)
        assert {"Key": "churn:created-by", "Value": "Bob O_Neil"} in models[0]["Tags"]
        assert "require AWS SigV4" in approver.client_snippets("who-ep")["python"]  # no bearer token there
        with pytest.raises(churn_core.ValidationError, match="SigV4"):
            approver.endpoint_token("who-ep")
