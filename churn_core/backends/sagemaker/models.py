"""A trained model as SageMaker serves it: the SKLearn container (image, artifact, code package,
environment) and the ``CreateModel`` request an endpoint, an update or a transform job sends."""

from __future__ import annotations

from churn_core.backends.sagemaker.context import SageMakerContext
from churn_core.backends.sagemaker.sourcedir import code_key, package_source
from churn_core.errors import BackendError
from churn_core.paths import code_version, entry_module
from churn_core.catalog.jobs import model as model_record

THRESHOLD_ENV = entry_module("container_env").THRESHOLD_ENV  # the threshold a container serves with
VARIANT_ENV = entry_module("container_env").VARIANT_ENV  # the production variant it serves as


class Models:
    def __init__(self, ctx: SageMakerContext):
        self.ctx = ctx

    def trained_code_sha256(self, trained_model: str) -> str | None:
        """The code version the catalog recorded for the trained model (None if it has no such model)."""
        row = model_record(self.ctx.catalog, trained_model)
        return row["code_sha256"] if row else None

    def source_for(self, trained_model: str) -> str:
        """The sourcedir.tar.gz the model was trained with (re-uploaded if gone and the code is unchanged)."""
        store = self.ctx.store
        key = code_key(trained_model)
        if store.exists(key):
            return store.uri(key)
        recorded = self.trained_code_sha256(trained_model)
        if recorded and recorded == code_version():
            return store.put_bytes(key, package_source())
        raise BackendError(
            f"The training code package {store.uri(key)} of model {trained_model} is missing and the model "
            "code in entry/ "
            "has changed since; retrain the model, then deploy it."
        )

    def container(self, trained_model: str, artifact_key: str) -> dict:
        """The SKLearn container of a trained model, as a model and a model package both describe it."""
        return {
            "Image": self.ctx.image_uri(),
            "ModelDataUrl": self.ctx.store.uri(artifact_key),
            "Environment": {
                "SAGEMAKER_PROGRAM": "train.py",
                "SAGEMAKER_SUBMIT_DIRECTORY": self.source_for(trained_model),
                "SAGEMAKER_REGION": self.ctx.settings.region,
                "SAGEMAKER_CONTAINER_LOG_LEVEL": "20",
            },
        }

    def request(self, endpoint: dict, deployed_model: dict, variant: str = "") -> dict:
        """CreateModel: from the registered model package when the deployment is a registry version,
        else from the training job's artifact and code."""
        if deployed_model.get("version_arn"):
            container: dict = {"ModelPackageName": deployed_model["version_arn"]}
        else:
            container = self.container(deployed_model["model"], deployed_model["artifact_key"])
        if deployed_model.get("threshold") is not None:  # read by train.py's model_fn, as locally
            container.setdefault("Environment", {})[THRESHOLD_ENV] = repr(float(deployed_model["threshold"]))
        if variant:  # the variant this model serves as: named in each named-record answer (model_fn reads it)
            container.setdefault("Environment", {})[VARIANT_ENV] = variant
        return {
            "ModelName": deployed_model["name"],
            "PrimaryContainer": container,
            "ExecutionRoleArn": self.ctx.require_role(),
            "Tags": self.ctx.tags(endpoint=endpoint["name"], model=deployed_model["model"]),
        }
