"""The model registry mirrored on SageMaker: a model package group per registry group, a versioned
model package per registered model, its approval status kept in step with the catalog's."""

from __future__ import annotations

from churn_core.backends.sagemaker.aws import AwsError
from churn_core.catalog import actor
from churn_core.backends.sagemaker.context import SageMakerContext
from churn_core.backends.sagemaker.limits import description, metadata, one_line
from churn_core.backends.sagemaker.models import Models


class ModelPackages:
    def __init__(self, ctx: SageMakerContext, models: Models):
        self.ctx = ctx
        self.models = models

    def ensure_group(self, group: dict) -> str:
        name = group["name"]
        try:
            about = description(f"Churn models of dataset {group['dataset']}")
            answer = self.ctx.call("sagemaker", "create_model_package_group", f"create model group {name}",
                                   ModelPackageGroupName=name, ModelPackageGroupDescription=about,
                                   Tags=self.ctx.tags(dataset=group["dataset"]))
            return answer.get("ModelPackageGroupArn", "")
        except AwsError as exc:
            if "exist" not in (exc.aws_message or str(exc)).lower():
                raise
        info = self.ctx.call("sagemaker", "describe_model_package_group", f"read model group {name}",
                             ModelPackageGroupName=name)
        return info.get("ModelPackageGroupArn", "")

    def register_version(self, group: dict, trained_model: dict, note: str) -> dict:
        self.ctx.require_role()
        answer = self.ctx.call(
            "sagemaker", "create_model_package", f"register a version of {group['name']}",
            ModelPackageGroupName=group["name"],
            # The catalog keeps the note as written; SageMaker's copy is flattened to what it accepts.
            ModelPackageDescription=description(note) or f"from training job {trained_model['name']}",
            ModelApprovalStatus="PendingManualApproval",
            InferenceSpecification={
                "Containers": [self.models.container(trained_model["name"], trained_model["artifact_key"])],
                "SupportedContentTypes": ["application/json", "text/csv", "application/x-npy"],
                "SupportedResponseMIMETypes": ["application/json", "text/csv", "application/x-npy"],
            },
            CustomerMetadataProperties=metadata({
                "job": trained_model["name"], "dataset": trained_model["dataset"],
                "dataset_sha256": trained_model["dataset_sha256"], "code_sha256": trained_model["code_sha256"],
                "artifact_sha256": trained_model["artifact_sha256"], "registered_by": actor.current(),
            }),
        )
        arn = answer["ModelPackageArn"]
        info = self.ctx.call("sagemaker", "describe_model_package", f"read model package {arn}",
                             ModelPackageName=arn)
        version = info.get("ModelPackageVersion") or int(arn.rsplit("/", 1)[-1])
        return {"version": int(version), "arn": arn}

    def set_status(self, version, status: str, note: str) -> None:
        if not version.arn:
            return
        self.ctx.call("sagemaker", "update_model_package", f"set {version.label} to {status}",
                      ModelPackageArn=version.arn, ModelApprovalStatus=status,
                      ApprovalDescription=one_line(f"{status} by {actor.current() or 'the system'}: {note}"))
