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
        monkeypatch, tmp_path, small_csv, model_tarballs, moto_stand_ins):
    from tests.support.aws import approved_versions, aws_client, capture, moto_account, nothing_left

    with moto_account(monkeypatch, tmp_path):
        p = churn_core.connect()
        approved_versions(p, small_csv, model_tarballs, "sm-a", "sm-b")
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

        with pytest.raises(ConflictError, match="ds v2.* is rejected"):  # a new configuration of it is refused
            p.set_variants("cap-ep", [("ds", 1, 50), ("ds", 2, 50), ])
        p.delete_endpoint("cap-ep")
        assert nothing_left() == {"models": [], "configs": [], "endpoints": []}


@pytest.mark.aws
def test_an_update_whose_version_is_rejected_before_it_completes_goes_back_to_the_old_configuration(
        monkeypatch, tmp_path, small_csv, model_tarballs, moto_stand_ins):
    """Issue 26, item 5 on SageMaker: UpdateEndpoint was sent while ds v2 was Approved; it is rejected before the
    update is seen complete. The completion re-reads the approval where it commits, refuses, and sends the
    endpoint back to the configuration it kept."""
    from tests.support.aws import approved_versions, aws_client, capture, moto_account, nothing_left

    with moto_account(monkeypatch, tmp_path):
        p = churn_core.connect()
        approved_versions(p, small_csv, model_tarballs, "sm-a", "sm-b")
        first = p.deploy_version("ds", 1, "back-ep")
        updates = capture(p, "sagemaker", "UpdateEndpoint")
        send = p.backend.update_endpoint

        def send_then_reject(endpoint, config, variants, **kw):
            sent = send(endpoint, config, variants, **kw)
            churn_core.connect().reject("ds", 2, "leaks PII")  # another session, before the update is seen done
            return sent

        p.backend.update_endpoint = send_then_reject
        try:  # SageMaker updates complete later: the update's answer is the endpoint as it is, with the reason
            answered = p.update_endpoint("back-ep", "ds", 2)
        finally:
            del p.backend.update_endpoint
        assert answered.status == "InService" and answered.config == first.config
        assert "refused and rolled back: ds v2" in answered.failure_reason
        assert len(updates) == 2 and updates[0]["EndpointConfigName"] != first.config
        ep = p.describe_endpoint("back-ep")
        assert ep.status == "InService" and ep.config == first.config and ep.model == "sm-a"
        assert any("refused and rolled back: ds v2" in e["message"] and "rejected" in e["message"]
                   for e in p.events("endpoint", "back-ep"))
        assert updates[-1] == {"EndpointName": "back-ep", "EndpointConfigName": first.config}
        assert aws_client("sagemaker").describe_endpoint(EndpointName="back-ep")["EndpointConfigName"] == first.config
        p.delete_endpoint("back-ep")
        left = nothing_left()
        assert left["endpoints"] == [], left
