"""Issue 26, item 14 (SageMaker, under moto): switching data capture never rebuilds a variant from the
registry. The new endpoint configuration names the models that already serve (no CreateModel, so never one
from a Rejected model package, which SageMaker refuses), and capture can be switched on and off on an endpoint
whose version was rejected since it went live (e.g. to stop capturing the traffic of a model that leaks PII)."""

from __future__ import annotations

import pytest

import churn_core
from churn_core import ConflictError


@pytest.mark.aws
def test_capture_switches_on_an_endpoint_whose_version_was_rejected_without_rebuilding_it(
        monkeypatch, tmp_path, small_csv, model_tarballs):
    pytest.importorskip("moto")

    import tests.moto_shim  # noqa: F401 - UpdateEndpoint, which moto lacks
    from tests.aws_support import aws_client, capture, completed_jobs, moto_account, nothing_left

    with moto_account(monkeypatch, tmp_path):
        p = churn_core.connect()
        completed_jobs(p, small_csv, model_tarballs, "sm-a", "sm-b")
        for job in ("sm-a", "sm-b"):
            p.approve("ds", p.register(job).version, "ok")
        p.deploy_version("ds", 1, "cap-ep")
        p.set_variants("cap-ep", [("ds", 1, 90), ("ds", 2, 10)])
        serving = p.describe_endpoint("cap-ep")
        assert serving.status == "InService"
        models_before = {v["ModelName"] for v in aws_client("sagemaker").describe_endpoint_config(
            EndpointConfigName=serving.config)["ProductionVariants"]}
        p.reject("ds", 2, "leaks PII")
        created = capture(p, "sagemaker", "CreateModel")
        configs = capture(p, "sagemaker", "CreateEndpointConfig")

        p.set_capture("cap-ep", 50)
        assert created == [], "capture never makes a model again (never from a Rejected package)"
        assert configs[-1]["DataCaptureConfig"]["InitialSamplingPercentage"] == 50
        assert {v["ModelName"] for v in configs[-1]["ProductionVariants"]} == models_before
        assert {v["VariantName"]: v["InitialVariantWeight"] for v in configs[-1]["ProductionVariants"]} == {
            "ds-v1": 90.0, "ds-v2": 10.0}, "the same variants with the same weights"
        ep = p.describe_endpoint("cap-ep")
        assert ep.status == "InService" and ep.config == configs[-1]["EndpointConfigName"] and ep.capture_percent == 50
        assert not ep.failure_reason

        p.set_capture("cap-ep", 0)  # switching it off again works too
        assert created == [] and "DataCaptureConfig" not in configs[-1]
        ep = p.describe_endpoint("cap-ep")
        assert ep.status == "InService" and ep.capture_percent == 0
        for model in models_before:  # the serving models were never removed along the way
            aws_client("sagemaker").describe_model(ModelName=model)

        with pytest.raises(ConflictError, match="ds v2.* is Rejected"):  # a new configuration of it is refused
            p.set_variants("cap-ep", [("ds", 1, 50), ("ds", 2, 50), ])
        p.delete_endpoint("cap-ep")
        assert nothing_left() == {"models": [], "configs": [], "endpoints": []}
