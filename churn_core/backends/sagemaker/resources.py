"""SageMaker resources by kind (endpoint, endpoint config, model): does one exist, delete one, roll back
what a failed step created, and which ones this app owns (the ``created-by`` tag)."""

from __future__ import annotations

from churn_core.backends.sagemaker.aws import OWNER_TAG, AwsError
from churn_core.backends.sagemaker.context import SageMakerContext
from churn_core.errors import ChurnError

DELETE_CALLS = {
    "endpoint": ("delete_endpoint", "EndpointName"),
    "endpoint_config": ("delete_endpoint_config", "EndpointConfigName"),
    "model": ("delete_model", "ModelName"),
}


class Resources:
    def __init__(self, ctx: SageMakerContext):
        self.ctx = ctx

    def exists(self, kind: str, name: str) -> bool:
        try:
            self.ctx.call("sagemaker", "describe_model", f"read model {name}", ModelName=name)
            return True
        except AwsError as exc:
            if exc.not_found:
                return False
            raise

    def roll_back(self, created: list[tuple[str, str]]) -> list[str]:
        """Delete ``created`` (kind, name) newest first; what could not be deleted, with why."""
        leftovers = []
        for kind, name in reversed(created):
            try:
                self.delete(kind, name)
            except ChurnError as exc:
                leftovers.append(f"{kind.replace('_', ' ')} {name} ({exc})")
        return leftovers

    def delete(self, kind: str, name: str) -> bool:
        """Delete one SageMaker resource; True if it existed, False if it was already gone."""
        operation, arg = DELETE_CALLS[kind]
        try:
            self.ctx.call("sagemaker", operation, f"delete {kind.replace('_', ' ')} {name}", **{arg: name})
            return True
        except AwsError as exc:
            if exc.not_found:
                return False
            raise

    def models_of_config(self, config_name: str) -> list[str]:
        try:
            info = self.ctx.call(
                "sagemaker",
                "describe_endpoint_config",
                f"read endpoint config {config_name}",
                EndpointConfigName=config_name,
            )
        except AwsError as exc:
            if exc.not_found:
                return []
            raise
        return [v["ModelName"] for v in info.get("ProductionVariants", []) if v.get("ModelName")]

    def owned(self, arn: str) -> bool:
        tags = self.ctx.call("sagemaker", "list_tags", f"read tags of {arn}", ResourceArn=arn).get("Tags", [])
        return any(t.get("Key") == OWNER_TAG["Key"] and t.get("Value") == OWNER_TAG["Value"] for t in tags)

    def owned_endpoint_names(self) -> list[str]:
        names, token = [], None
        while True:
            kwargs = {"MaxResults": 100, **({"NextToken": token} if token else {})}
            page = self.ctx.call("sagemaker", "list_endpoints", "list endpoints", **kwargs)
            for ep in page.get("Endpoints", []):
                if self.owned(ep["EndpointArn"]):
                    names.append(ep["EndpointName"])
            token = page.get("NextToken")
            if not token:
                return sorted(names)
