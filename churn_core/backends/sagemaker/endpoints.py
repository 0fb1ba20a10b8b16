"""SageMaker real-time endpoints: model → endpoint config → endpoint (deleted as three), their status,
invocation through ``sagemaker-runtime``, and rollouts (new configs with variants and data capture,
``UpdateEndpoint``, variant weights)."""

from __future__ import annotations

import json
import time

from churn_core.backends.sagemaker.aws import AwsError, call
from churn_core.backends.sagemaker.context import SageMakerContext, epoch
from churn_core.backends.sagemaker.models import Models
from churn_core.backends.sagemaker.resources import Resources
from churn_core.errors import BackendError, ChurnError, ValidationError
from churn_core.monitoring.capture import CAPTURE_PREFIX
from churn_core.paths import entry_module

ENDPOINT_STATUS = {
    "Creating": "Creating",
    "InService": "InService",
    "Updating": "Updating",
    "SystemUpdating": "Updating",
    "RollingBack": "Updating",
    "OutOfService": "Updating",  # temporarily unavailable; keep refreshing
    "Deleting": "Deleting",
    "Failed": "Failed",
    "UpdateRollbackFailed": "Failed",
}


def invoke_url(settings, endpoint_name: str) -> str:
    if settings.aws_endpoint_url:
        return f"{settings.aws_endpoint_url.rstrip('/')}/endpoints/{endpoint_name}/invocations"
    return f"https://runtime.sagemaker.{settings.region}.amazonaws.com/endpoints/{endpoint_name}/invocations"


class Endpoints:
    def __init__(self, ctx: SageMakerContext, models: Models, resources: Resources):
        self.ctx = ctx
        self.models = models
        self.resources = resources

    # ---- create, read, invoke, delete -----------------------------------------------------------
    def create(self, endpoint: dict, config: dict, deployed_model: dict) -> dict:
        ctx = self.ctx
        ctx.require_role()
        ctx.image_uri()
        if not deployed_model.get("artifact_key") or not ctx.store.exists(deployed_model["artifact_key"]):
            raise BackendError(
                f"The model artifact {ctx.store.uri(deployed_model.get('artifact_key') or 'jobs/?')} is missing from "
                "S3. Retrain the model, then deploy again."
            )
        model_req = self.models.request(endpoint, deployed_model, "AllTraffic")
        tags = ctx.tags(endpoint=endpoint["name"], model=deployed_model["model"])
        created: list[tuple[str, str]] = []
        try:
            ctx.call("sagemaker", "create_model", f"create model {deployed_model['name']}", **model_req)
            created.append(("model", deployed_model["name"]))
            ctx.call(
                "sagemaker",
                "create_endpoint_config",
                f"create endpoint config {config['name']}",
                EndpointConfigName=config["name"],
                ProductionVariants=[
                    {
                        "VariantName": "AllTraffic",
                        "ModelName": deployed_model["name"],
                        "InstanceType": config["instance_type"],
                        "InitialInstanceCount": int(config["instance_count"]),
                        "InitialVariantWeight": 1.0,
                    }
                ],
                Tags=tags,
            )
            created.append(("endpoint_config", config["name"]))
            answer = ctx.call(
                "sagemaker",
                "create_endpoint",
                f"create endpoint {endpoint['name']}",
                EndpointName=endpoint["name"],
                EndpointConfigName=config["name"],
                Tags=tags,
            )
        except ChurnError as exc:
            leftovers = self.resources.roll_back(created)
            note = (
                ""
                if not created
                else " Rolled back: "
                + ", ".join(f"{kind.replace('_', ' ')} {name}" for kind, name in created)
                + " deleted."
                if not leftovers
                else " Could not remove " + ", ".join(leftovers) + "; run Clean up on the Endpoints page."
            )
            raise BackendError(f"Deploying endpoint {endpoint['name']} failed: {exc}{note}") from exc
        return {"arn": answer.get("EndpointArn", ""), "url": invoke_url(ctx.settings, endpoint["name"])}

    def refresh(self, endpoint: dict) -> dict:
        try:
            info = self.ctx.call(
                "sagemaker", "describe_endpoint", f"read endpoint {endpoint['name']}", EndpointName=endpoint["name"]
            )
        except AwsError as exc:
            if not exc.not_found:
                raise
            fields = {
                "status": "Failed",
                "failure_reason": f"Endpoint {endpoint['name']} no longer exists on SageMaker (deleted outside "
                "this app). Delete it here to remove the record and its config and model.",
            }
            return {k: v for k, v in fields.items() if endpoint.get(k) != v}
        raw = info.get("EndpointStatus", "Creating")
        status = ENDPOINT_STATUS.get(raw, raw)
        reason = info.get("FailureReason") or ""
        if status == "Failed" and not reason:
            reason = f"SageMaker reports the endpoint {raw} without a reason; open its log for details."
        fields = {"status": status, "failure_reason": reason, "url": invoke_url(self.ctx.settings, endpoint["name"])}
        if info.get("EndpointArn"):
            fields["arn"] = info["EndpointArn"]
        if status == "InService" and not endpoint.get("in_service_at"):
            fields["in_service_at"] = epoch(info.get("LastModifiedTime")) or time.time()
        return {k: v for k, v in fields.items() if endpoint.get(k) != v}

    def invoke(self, endpoint: dict, body: bytes, content_type: str, accept: str) -> tuple[int, bytes, str, str]:
        runtime = self.ctx.client("sagemaker-runtime")
        try:
            answer = call(
                runtime,
                "invoke_endpoint",
                what=f"invoke endpoint {endpoint['name']}",
                settings=self.ctx.settings,
                EndpointName=endpoint["name"],
                Body=body,
                ContentType=content_type,
                Accept=accept,
            )
        except AwsError as exc:
            if exc.code == "ModelError":
                original = exc.__cause__.response if exc.__cause__ is not None else {}
                status = int(original.get("OriginalStatusCode") or 400)
                message = original.get("OriginalMessage") or exc.aws_message or "the model rejected the request"
                try:
                    parsed = json.loads(message)
                    if isinstance(parsed, dict) and "error" in parsed:
                        return status, message.encode("utf-8"), "application/json", ""
                except ValueError:
                    pass
                return status, json.dumps({"error": message}).encode("utf-8"), "application/json", ""
            if exc.code in ("ValidationError", "ValidationException"):
                raise BackendError(
                    f"Endpoint {endpoint['name']} cannot take requests: {exc.aws_message or exc}. Check that it is "
                    "InService on the Endpoints page (it may still be creating, or was deleted)."
                ) from None
            raise
        payload = answer["Body"].read()
        return 200, payload, answer.get("ContentType") or accept, answer.get("InvokedProductionVariant") or ""

    def delete(self, endpoint: dict, config: dict | None, deployed_models: list[dict]) -> None:
        config_name = (config or {}).get("name") or endpoint.get("config")
        model_names = list(dict.fromkeys(d["name"] for d in deployed_models or []))
        if not model_names and config_name:
            model_names = self.resources.models_of_config(config_name)
        problems = []
        for kind, name in [
            ("endpoint", endpoint["name"]),
            ("endpoint_config", config_name),
            ("endpoint_config", endpoint.get("pending_config") or None),
            *(("model", m) for m in model_names),
        ]:
            if not name:
                continue
            try:
                self.resources.delete(kind, name)
            except ChurnError as exc:
                problems.append(f"{kind.replace('_', ' ')} {name}: {exc}")
        if problems:
            raise BackendError(
                "Could not delete everything of endpoint "
                + endpoint["name"]
                + " (it may keep billing): "
                + "; ".join(problems)
            )

    def delete_orphan(self, name: str) -> dict:
        """Delete an endpoint this app created but the catalog does not know, with its config and model(s)."""
        try:
            info = self.ctx.call("sagemaker", "describe_endpoint", f"read endpoint {name}", EndpointName=name)
        except AwsError as exc:
            if exc.not_found:
                return {"endpoint": name, "endpoint_config": None, "model": None}
            raise
        if not self.resources.owned(info["EndpointArn"]):
            raise BackendError(
                f"Endpoint {name} was not created by this app (no created-by=churn-control-plane tag); "
                "it was left alone."
            )
        config_name = info.get("EndpointConfigName")
        models = self.resources.models_of_config(config_name) if config_name else []
        self.delete(
            {"name": name, "config": config_name}, {"name": config_name} if config_name else None, []
        )  # no deployed-model rows: every model of the config is deleted
        return {"endpoint": name, "endpoint_config": config_name, "model": ", ".join(models) or None}

    # ---- rollout and capture: endpoint configurations, UpdateEndpoint -------------------------------
    @staticmethod
    def sampling_percentage(percent: float) -> int:
        """``InitialSamplingPercentage``: an integer from 0 to 100 in SageMaker's service model; a fractional share
        is refused (rounding 0.3 % to 1 % would capture three times what was asked)."""
        if percent != int(percent) or not 0 <= percent <= 100:
            raise ValidationError(
                f"SageMaker captures a whole percentage of requests (InitialSamplingPercentage is an integer from 0 "
                f"to 100), so {percent:g} % cannot be captured as asked: choose {max(1, min(100, int(percent)))} % "
                "or another whole number, or 0 to turn capture off.")
        return int(percent)

    def capture_config(self, endpoint: dict) -> dict | None:
        """DataCaptureConfig for an endpoint capturing a share of its traffic (into capture/ of the bucket)."""
        percent = float(endpoint.get("capture_percent") or 0)
        if percent <= 0:
            return None
        parser = entry_module("request_parser")
        # every content type the endpoint answers with is listed, so SageMaker captures it as text (JSON or CSV);
        # one not listed would be captured BASE64-encoded (the reader decodes that too)
        return {"EnableCapture": True, "InitialSamplingPercentage": self.sampling_percentage(percent),
                "DestinationS3Uri": self.ctx.store.uri(CAPTURE_PREFIX),
                "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
                "CaptureContentTypeHeader": {"CsvContentTypes": list(parser.CSV_TYPES),
                                             "JsonContentTypes": list(parser.JSON_TYPES)}}

    def update(self, endpoint: dict, new_config: dict, variants: list[dict], check=None) -> dict:
        """Models and a configuration for the new variants, then UpdateEndpoint (AWS keeps the old one
        serving until the new one is healthy, and rolls back if it is not). ``check()`` refuses versions
        rejected meanwhile before anything is created (the catalog asks again when the update completes)."""
        ctx = self.ctx
        ctx.require_role()
        if check is not None:
            check()
        created: list[tuple[str, str]] = []
        try:
            for variant in variants:
                deployed = variant["deployed"]
                if not self.resources.exists("model", deployed["name"]):
                    ctx.call("sagemaker", "create_model", f"create model {deployed['name']}",
                             **self.models.request(endpoint, deployed, variant["variant"]))
                    created.append(("model", deployed["name"]))
            request = {
                "EndpointConfigName": new_config["name"],
                "ProductionVariants": [{
                    "VariantName": v["variant"], "ModelName": v["deployed"]["name"],
                    "InstanceType": new_config["instance_type"],
                    "InitialInstanceCount": int(new_config["instance_count"]),
                    "InitialVariantWeight": float(v["weight"]),
                } for v in variants],
                "Tags": ctx.tags(endpoint=endpoint["name"], model=variants[0]["deployed"]["model"]),
            }
            capture = self.capture_config(endpoint)
            if capture:
                request["DataCaptureConfig"] = capture
            ctx.call("sagemaker", "create_endpoint_config", f"create endpoint config {new_config['name']}",
                     **request)
            created.append(("endpoint_config", new_config["name"]))
            ctx.call("sagemaker", "update_endpoint", f"update endpoint {endpoint['name']}",
                     EndpointName=endpoint["name"], EndpointConfigName=new_config["name"])
        except ChurnError as exc:
            self.resources.roll_back(created)
            raise BackendError(f"SageMaker refused the update: {exc}") from exc
        return {"update": "started"}

    def update_outcome(self, endpoint: dict) -> tuple[str, str]:
        """("pending" | "done" | "failed", reason) of an update in progress, from what AWS reports."""
        info = self.ctx.call("sagemaker", "describe_endpoint", f"read endpoint {endpoint['name']}",
                             EndpointName=endpoint["name"])
        status = info.get("EndpointStatus")
        if status in ("Updating", "SystemUpdating", "RollingBack", "Creating"):
            return "pending", ""
        if status == "InService" and info.get("EndpointConfigName") == endpoint["pending_config"]:
            return "done", ""
        reason = info.get("FailureReason") or f"SageMaker reports {status} with configuration " \
                                                f"{info.get('EndpointConfigName')}"
        return "failed", reason

    def restore_serving(self, endpoint: dict, config: str) -> None:
        """UpdateEndpoint back to ``config`` (kept: only a finished update retires it)."""
        self.ctx.call("sagemaker", "update_endpoint", f"put endpoint {endpoint['name']} back on {config}",
                      EndpointName=endpoint["name"], EndpointConfigName=config)

    def retire_config(self, config: str, models: list[str]) -> None:
        """After an update: the configuration and models the endpoint no longer uses."""
        for kind, name in [("endpoint_config", config), *(("model", m) for m in models)]:
            try:
                self.resources.delete(kind, name)
            except ChurnError:
                pass  # Clean up finds what is left by its tag

    def set_variant_weights(self, endpoint: dict, weights: dict[str, float]) -> None:
        self.ctx.call("sagemaker", "update_endpoint_weights_and_capacities",
                      f"set the variant weights of {endpoint['name']}", EndpointName=endpoint["name"],
                      DesiredWeightsAndCapacities=[{"VariantName": n, "DesiredWeight": float(w)}
                                                   for n, w in weights.items()])
