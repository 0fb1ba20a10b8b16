"""Test-only additions to moto for SageMaker actions it does not implement (up to 5.2.6 at least).

moto records requests but lacks UpdateEndpoint, StopTransformJob and StopHyperParameterTuningJob; these
stand-ins do what the real API ends in (the endpoint serving the new configuration, the job stopped), so
the backend's whole flow can run offline. The arguments the backend sends are what the tests check.
``install`` adds them through a test's monkeypatch (conftest's ``moto_stand_ins`` fixture), so they are
gone after that test and never change moto for the rest of the process; an action moto implements
itself is left alone.
"""

from __future__ import annotations

from moto.core.responses import ActionResult, EmptyResult
from moto.sagemaker.exceptions import ValidationError
from moto.sagemaker.responses import SageMakerResponse


def _update_endpoint(self):
    backend = self.sagemaker_backend
    endpoint = backend.endpoints.get(self._get_param("EndpointName"))
    config = backend.endpoint_configs.get(self._get_param("EndpointConfigName"))
    if endpoint is None or config is None:
        raise ValidationError(message="Could not find endpoint or endpoint configuration")
    endpoint.endpoint_config_name = config.endpoint_config_name
    endpoint.production_variants = endpoint._process_production_variants(config.production_variants)
    endpoint.data_capture_config = config.data_capture_config
    endpoint.endpoint_status = "InService"  # the real API: Updating, then InService
    return ActionResult({"EndpointArn": endpoint.arn})


def _stop_transform_job(self):
    job = self.sagemaker_backend.transform_jobs.get(self._get_param("TransformJobName"))
    if job is None:
        raise ValidationError(message="Could not find transform job")
    job.transform_job_status = "Stopped"  # the real API: Stopping, then Stopped
    return EmptyResult()


def _stop_tuning_job(self):
    job = self.sagemaker_backend.hyper_parameter_tuning_jobs[self._get_param("HyperParameterTuningJobName")]
    job.hyper_parameter_tuning_job_status = "Stopped"
    return EmptyResult()


STAND_INS = {
    "update_endpoint": _update_endpoint,
    "stop_transform_job": _stop_transform_job,
    "stop_hyper_parameter_tuning_job": _stop_tuning_job,
}


def install(monkeypatch) -> None:
    """Answer the actions moto lacks until ``monkeypatch`` is undone (the end of the test)."""
    for action, stand_in in STAND_INS.items():
        if not hasattr(SageMakerResponse, action):
            monkeypatch.setattr(SageMakerResponse, action, stand_in, raising=False)
