"""churn_core: the churn model control plane as a Python API (the dashboard's pages are a thin skin on it).

    import churn_core
    p = churn_core.connect()        # backend and state directory from the environment

Imports stay lazy so the small helper processes (job drivers, endpoint supervisors) start fast.
"""

from __future__ import annotations

from churn_core.errors import BackendError, ChurnError, ConflictError, NotFoundError, ValidationError

__all__ = ["connect", "ChurnError", "ValidationError", "NotFoundError", "ConflictError", "BackendError"]


def connect(settings=None):
    """Open the platform for the configured backend (``CHURN_BACKEND``) and state directory (``CHURN_HOME``)."""
    from churn_core.config import Settings
    from churn_core.platform import Platform

    return Platform(settings or Settings.from_env())
