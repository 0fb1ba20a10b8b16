"""churn_core: the churn model control plane as a Python API (the dashboard's pages are a thin skin on it).

    import churn_core
    p = churn_core.connect()        # backend and state directory from the environment

Imports stay lazy so the small helper processes (job drivers, endpoint supervisors) start fast.
"""

from __future__ import annotations

from churn_core.errors import (BackendError, ChurnError, ConflictError, NotFoundError, PermissionDenied,
                               ValidationError)

__all__ = ["connect", "repair_tools", "ChurnError", "ValidationError", "NotFoundError", "ConflictError",
           "BackendError", "PermissionDenied"]


def connect(settings=None, user: str | None = None, claims: dict | None = None):
    """Open the platform for the configured backend (``CHURN_BACKEND``) and state directory (``CHURN_HOME``),
    acting as ``user`` (default: the operating-system user); ``claims`` are the signed-in user's OIDC claims, for a
    roles file that maps one of them to roles (``churn_core.access.roles``)."""
    from churn_core.config import Settings
    from churn_core.platform import Platform

    return Platform(settings or Settings.from_env(), user=user, claims=claims)


def repair_tools():
    """The catalog repair functions (``diagnose``, ``restore_backup``, ``rebuild``), for when the catalog is too
    damaged to open a platform at all (a Platform's own ``restore_catalog_backup`` needs an open catalog)."""
    from churn_core.catalog import repair

    return repair
