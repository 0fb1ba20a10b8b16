"""Backends: one protocol (``base.Backend``), two implementations (``local`` and ``sagemaker``)."""

from __future__ import annotations


def make_backend(settings, catalog):
    """The backend the settings name; AWS code is imported only when it is chosen."""
    if settings.backend == "sagemaker":
        from churn_core.backends.sagemaker.backend import SageMakerBackend

        return SageMakerBackend(settings, catalog)
    from churn_core.backends.local.backend import LocalBackend

    return LocalBackend(settings, catalog)
