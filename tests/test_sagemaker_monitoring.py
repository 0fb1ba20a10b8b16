"""Issue 25, item 9 (SageMaker, under moto): every content type the endpoint answers with is listed in
CaptureContentTypeHeader, and a capture encoded BASE64 (a type not listed) is decoded, not read as NaN;
a fractional sampling share is refused with a clear message instead of being rounded; CloudWatch metrics
and logs are read for every variant of a two-variant endpoint, not only AllTraffic."""

from __future__ import annotations

import base64
import json
import time
from datetime import datetime, timezone

import pytest

import churn_core
from churn_core import ValidationError
from churn_core.monitoring import capture as capture_format
from churn_core.paths import entry_module


@pytest.mark.aws
def test_capture_types_sampling_share_base64_and_every_variants_metrics_and_logs(
        monkeypatch, tmp_path, small_csv, model_tarballs, moto_stand_ins):
    from tests.support.aws import approved_versions, aws_client, capture, moto_account

    with moto_account(monkeypatch, tmp_path):
        p = churn_core.connect()
        approved_versions(p, small_csv, model_tarballs, "sm-a", "sm-b")
        p.deploy_version("ds", 1, "mon-ep")
        p.set_variants("mon-ep", [("ds", 1, 50), ("ds", 2, 50)])
        configs = capture(p, "sagemaker", "CreateEndpointConfig")

        with pytest.raises(ValidationError, match=r"whole percentage.*0\.3 % cannot be captured as asked.*1 %"):
            p.set_capture("mon-ep", 0.3)
        assert p.describe_endpoint("mon-ep").capture_percent == 0, "nothing half-changed"
        p.set_capture("mon-ep", 30)
        header = configs[-1]["DataCaptureConfig"]["CaptureContentTypeHeader"]
        parser = entry_module("request_parser")
        assert set(header["CsvContentTypes"]) == set(parser.CSV_TYPES)
        assert set(header["JsonContentTypes"]) == set(parser.JSON_TYPES)
        assert configs[-1]["DataCaptureConfig"]["InitialSamplingPercentage"] == 30

        # a record as SageMaker writes one for an answer type it was not told about: BASE64
        schema = p.model_schema("sm-a")
        row = ",".join("1" for _ in schema["features"])
        answer = json.dumps({"predictions": [{"label": 1, "churn_probability": 0.625}]}).encode()
        line = json.loads(capture_format.capture_line(row.encode(), "text/csv", answer, "application/json"))
        line["captureData"]["endpointOutput"].update(encoding="BASE64", data=base64.b64encode(answer).decode(),
                                                     observedContentType="application/vnd.churn+json")
        key = f"{capture_format.hour_prefix('mon-ep', 'ds-v2', time.time())}base64.jsonl"
        p.store.put_bytes(key, (json.dumps(line) + "\n").encode())
        got = p.captured("mon-ep")
        assert got["churn_probability"].tolist() == [0.625] and got["variant"].tolist() == ["ds-v2"]

        cloudwatch = aws_client("cloudwatch")
        now = datetime.now(timezone.utc)
        for variant, count in (("ds-v1", 3), ("ds-v2", 5)):
            cloudwatch.put_metric_data(Namespace="AWS/SageMaker", MetricData=[
                {"MetricName": "Invocations", "Timestamp": now, "Value": count, "Unit": "None",
                 "Dimensions": [{"Name": "EndpointName", "Value": "mon-ep"},
                                {"Name": "VariantName", "Value": variant}]},
                {"MetricName": "ModelLatency", "Timestamp": now, "Value": 2000.0, "Unit": "Microseconds",
                 "Dimensions": [{"Name": "EndpointName", "Value": "mon-ep"},
                                {"Name": "VariantName", "Value": variant}]}])
        p.backend.monitoring.stats.clear()  # CloudWatch is read at most once a minute per endpoint: read it now
        ep = p.describe_endpoint("mon-ep")
        assert ep.invocations == 8, ep.stats
        assert {v["variant"]: v["stats"].get("invocations") for v in ep.variants} == {"ds-v1": 3, "ds-v2": 5}
        assert int(p.endpoint_traffic("mon-ep")["invocations"].sum()) == 8

        logs = aws_client("logs")
        group = "/aws/sagemaker/Endpoints/mon-ep"
        logs.create_log_group(logGroupName=group)
        for variant in ("ds-v1", "ds-v2"):
            stream = f"{variant}/i-0{variant[-1]}"
            logs.create_log_stream(logGroupName=group, logStreamName=stream)
            logs.put_log_events(logGroupName=group, logStreamName=stream,
                                logEvents=[{"timestamp": int(time.time() * 1000), "message": f"served by {variant}"}])
        text = p.endpoint_log("mon-ep")
        assert "served by ds-v1" in text and "served by ds-v2" in text, text
        p.delete_endpoint("mon-ep")
