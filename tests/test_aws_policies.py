"""Issue 26, item 13: the IAM policies ship as files (docs/iam/*.json) and allow everything the product does.

Every moto-based test checks each request the SageMaker backend sends against these files
(``tests/service_model_check.py``, the autouse ``aws_request_check`` fixture): the dashboard user's
action on the resource's ARN (plus ``sagemaker:AddTags`` when the request carries ``Tags`` and
``iam:PassRole`` for the execution role) and the S3 objects SageMaker then reads and writes with the
execution role. This file tests the evaluator itself and runs one flow through every capability,
asserting that the permissions the issue found missing are among those checked.
"""

from __future__ import annotations

import json
import re

import pytest

from tests.service_model_check import (
    DASHBOARD_POLICY,
    EXECUTION_POLICY,
    POLICY_DIR,
    ROOT,
    allowed,
    load_policy,
    model_problems,
)

BUCKET, ROLE = "churn-test-bucket", "arn:aws:iam::123456789012:role/churn-sagemaker"


def _policy(path):
    return load_policy(path, bucket=BUCKET, prefix="churn", role_arn=ROLE, region="us-east-1",
                       account="123456789012")


# ---- the evaluator -------------------------------------------------------------------------------


def test_the_evaluator_follows_iam_rules():
    policy = {"Statement": [
        {"Effect": "Allow", "Action": "s3:Get*", "Resource": "arn:aws:s3:::b/churn/*"},
        {"Effect": "Deny", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/churn/secret/*"},
        {"Effect": "Allow", "Action": ["sagemaker:CreateModel"], "Resource": "arn:aws:sagemaker:*:*:model/*",
         "Condition": {"StringEquals": {"aws:RequestTag/created-by": "churn-control-plane"}}},
        {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::b",
         "Condition": {"StringLike": {"s3:prefix": ["churn/*"]}}},
    ]}
    assert allowed(policy, "s3:GetObject", "arn:aws:s3:::b/churn/datasets/x.csv")
    assert allowed(policy, "S3:getobject", "arn:aws:s3:::b/churn/x")  # actions ignore case
    assert not allowed(policy, "s3:GetObject", "arn:aws:s3:::b/churn/secret/k")  # an explicit Deny wins
    assert not allowed(policy, "s3:GetObject", "arn:aws:s3:::b/other/k")
    assert not allowed(policy, "s3:PutObject", "arn:aws:s3:::b/churn/x")  # implicit deny
    model = "arn:aws:sagemaker:us-east-1:1:model/m"
    assert allowed(policy, "sagemaker:CreateModel", model, {"aws:RequestTag/created-by": "churn-control-plane"})
    assert not allowed(policy, "sagemaker:CreateModel", model, {"aws:RequestTag/created-by": "someone"})
    assert not allowed(policy, "sagemaker:CreateModel", model, {})  # a missing key fails the condition
    assert allowed(policy, "s3:ListBucket", "arn:aws:s3:::b", {"s3:prefix": "churn/jobs/"})
    assert not allowed(policy, "s3:ListBucket", "arn:aws:s3:::b", {"s3:prefix": "elsewhere/"})


def test_the_model_check_finds_what_the_service_refuses():
    import botocore.session

    sm = botocore.session.get_session().get_service_model("sagemaker")
    shape = sm.operation_model("CreateModelPackage").input_shape
    problems = model_problems(shape, {"ModelPackageGroupName": "bad_name!", "ModelPackageDescription": "a\nb",
                                      "ModelApprovalStatus": "Maybe", "CustomerMetadataProperties": {"k": ""}})
    text = "\n".join(problems)
    assert "ModelPackageGroupName" in text and "pattern" in text
    assert "ModelPackageDescription" in text
    assert "ModelApprovalStatus='Maybe' is not one of" in text
    assert "CustomerMetadataProperties['k'] has 0 characters" in text
    update = sm.operation_model("UpdateModelPackage").input_shape
    assert model_problems(update, {"ModelPackageArn": "arn:aws:sagemaker:us-east-1:123456789012:model-package/g/1",
                                   "ApprovalDescription": "fine, one line"}) == []
    assert model_problems(update, {"ApprovalDescription": "two\r\nlines"})  # Java's '.' stops at line breaks


# ---- the files and the docs ----------------------------------------------------------------------


def test_the_policies_are_json_files_the_docs_link():
    docs = (ROOT / "docs" / "aws.md").read_text()
    for path in sorted(POLICY_DIR.glob("*.json")):
        policy = json.loads(path.read_text())
        assert policy["Version"] == "2012-10-17" and policy["Statement"], path
        assert f"iam/{path.name}" in docs, f"docs/aws.md does not link {path.name}"
    # No second copy in the docs that could drift from the files.
    assert not re.search(r"```json\s*\{\s*\"Version\"", docs)


def test_the_old_gaps_are_closed():
    dashboard, role = _policy(DASHBOARD_POLICY), _policy(EXECUTION_POLICY)
    tagged = {"aws:RequestTag/created-by": "churn-control-plane"}
    for kind in ("hyper-parameter-tuning-job", "model-package-group", "transform-job", "training-job", "model",
                 "endpoint-config", "endpoint"):
        assert allowed(dashboard, "sagemaker:AddTags", f"arn:aws:sagemaker:us-east-1:123456789012:{kind}/x", tagged)
        assert not allowed(dashboard, "sagemaker:AddTags", f"arn:aws:sagemaker:us-east-1:123456789012:{kind}/x",
                           {"aws:RequestTag/created-by": "someone-else"})
    assert allowed(role, "s3:GetObject", f"arn:aws:s3:::{BUCKET}/churn/transforms/tj/sagemaker/input/part-0.csv")
    assert allowed(role, "s3:PutObject", f"arn:aws:s3:::{BUCKET}/churn/transforms/tj/sagemaker/output/x.csv.out")
    assert allowed(role, "s3:PutObject", f"arn:aws:s3:::{BUCKET}/churn/capture/ep/AllTraffic/2026/12/07/19/a.jsonl")
    # ... and nothing more than needed: the role writes no datasets, reads no transform results.
    assert not allowed(role, "s3:PutObject", f"arn:aws:s3:::{BUCKET}/churn/datasets/ds/train/train.csv")
    assert not allowed(role, "s3:GetObject", f"arn:aws:s3:::{BUCKET}/churn/transforms/tj/output/results.csv")
    assert not allowed(role, "s3:GetObject", f"arn:aws:s3:::{BUCKET}/elsewhere/x")


# ---- every capability, through the hook ------------------------------------------------------------


@pytest.mark.aws
def test_every_capability_needs_only_what_the_policies_allow(monkeypatch, tmp_path, small_csv, model_tarballs,
                                                             aws_request_check, moto_stand_ins):
    import churn_core
    from tests.support.aws import completed_jobs, moto_account

    with moto_account(monkeypatch, tmp_path):
        p = churn_core.connect()
        completed_jobs(p, small_csv, model_tarballs, "pj-a")
        p.approve("ds", p.register("pj-a", note="first\nversion").version, "ok")
        p.deploy_version("ds", 1, "pol-ep")
        p.set_capture("pol-ep", 50)
        p.start_tuning("ds", {"max_depth": [3, 5]}, name="pol-tune")
        p.start_transform("pj-a", small_csv, name="pol-tj")
        p.delete_endpoint("pol-ep")

    checked = aws_request_check.permissions
    assert not aws_request_check.problems
    dashboard = {(a, r) for who, a, r in checked if who.startswith("dashboard")}
    role = {(a, r) for who, a, r in checked if who.startswith("execution")}
    sm = "arn:aws:sagemaker:us-east-1:123456789012"
    for kind, name in (("hyper-parameter-tuning-job", "pol-tune"), ("model-package-group", "ds"),
                       ("transform-job", "pol-tj"), ("endpoint", "pol-ep")):
        assert ("sagemaker:AddTags", f"{sm}:{kind}/{name}") in dashboard, kind
    assert ("iam:PassRole", ROLE) in dashboard
    assert any(a == "s3:GetObject" and "/churn/transforms/pol-tj/sagemaker/input/" in r for a, r in role)
    assert any(a == "s3:PutObject" and "/churn/transforms/pol-tj/sagemaker/output/" in r for a, r in role)
    assert any(a == "s3:PutObject" and "/churn/capture/" in r for a, r in role)
    assert any(a == "s3:GetObject" and "/churn/datasets/ds/train/" in r for a, r in role)


def test_each_product_role_has_an_iam_policy_that_allows_its_calls_and_refuses_the_others(
        monkeypatch, tmp_path, small_csv, model_tarballs, aws_request_check, moto_stand_ins):
    """Issue 28: for people who call SageMaker with their own IAM identity, one policy file per product role
    (docs/iam/role-*.json, statements cut from the dashboard policy). Each role's calls, made under that role's
    file alone, are allowed; a call of a stronger role is refused by it."""
    import churn_core
    from tests.service_model_check import RefusedRequest
    from tests.support.aws import completed_jobs, moto_account

    dashboard = {s["Sid"]: s for s in json.loads(DASHBOARD_POLICY.read_text())["Statement"]}
    for role in ("viewer", "analyst", "approver", "admin"):
        for statement in json.loads((POLICY_DIR / f"role-{role}.json").read_text())["Statement"]:
            source = dashboard.get(statement["Sid"]) or next(s for s in dashboard.values()
                                                              if set(_as_list(statement["Action"])) <=
                                                              set(_as_list(s["Action"])))
            assert set(_as_list(statement["Action"])) <= set(_as_list(source["Action"])), (role, statement["Sid"])
            assert statement.get("Condition") == source.get("Condition"), (role, statement["Sid"])

    def as_role(role: str) -> None:
        aws_request_check.dashboard_policy = POLICY_DIR / f"role-{role}.json"

    with moto_account(monkeypatch, tmp_path):
        p = churn_core.connect()
        as_role("analyst")
        completed_jobs(p, small_csv, model_tarballs, "rp-a")
        p.register("rp-a", note="for the roles")
        p.start_transform("rp-a", small_csv, name="rp-tj")
        as_role("approver")
        p.approve("ds", 1, "ok")
        as_role("admin")
        p.deploy_version("ds", 1, "rp-ep")
        p.set_capture("rp-ep", 20)
        as_role("viewer")
        p.describe_endpoint("rp-ep"), p.describe_training("rp-a"), p.describe_transform("rp-tj")
        assert not aws_request_check.problems, aws_request_check.problems
        for role, call in (("viewer", lambda: p.start_training("ds", {"n_estimators": 5}, name="rp-b")),
                           ("analyst", lambda: p.deploy_version("ds", 1, "rp-ep2")),
                           ("approver", lambda: p.delete_endpoint("rp-ep"))):
            as_role(role)
            with pytest.raises(Exception) as refused:
                call()
            assert isinstance(refused.value, RefusedRequest) or aws_request_check.problems, (role, refused.value)
            assert any(f"role-{role}.json" in problem for problem in aws_request_check.problems), role
            aws_request_check.problems.clear()
        as_role("admin")
        p.delete_endpoint("rp-ep")
    assert not aws_request_check.problems


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]
