"""Bearer tokens for local endpoints reachable from other hosts (the rule: ``backends/local/endpoint/auth.py``).

``issue`` makes an endpoint's token (admin only: ``Platform.endpoint_token``), shows it once, and keeps only its
SHA-256: in the catalog (who issued it, when) and in the endpoint's folder, where the server reads it. Rotating
makes a new one and the old one stops working at once. SageMaker endpoints take no token: AWS SigV4 (IAM) guards
them already.
"""

from __future__ import annotations

from churn_core.backends.local.endpoint import auth
from churn_core.catalog import endpoints as records
from churn_core.errors import ConflictError, ValidationError


def snippet_auth(settings) -> str:
    """How a client authenticates to this backend's endpoints: "sigv4", "bearer" or "" (loopback, nothing)."""
    if settings.backend != "local":
        return "sigv4"
    return "bearer" if auth.required(settings.bind_host) else ""


def issue(catalog, backend, settings, name: str, rotate: bool = False) -> str:
    """A new bearer token for endpoint ``name`` (shown once; only its hash is kept)."""
    row = records.endpoint(catalog, name)  # NotFoundError for an unknown endpoint
    if settings.backend != "local":
        raise ValidationError(f"Endpoint {name} is a SageMaker endpoint: callers authenticate with AWS SigV4 (IAM "
                              "credentials allowed sagemaker:InvokeEndpoint), not with a bearer token.")
    if not auth.required(settings.bind_host):
        raise ValidationError(f"Endpoint {name} listens on {settings.bind_host} (this machine only) and needs no "
                              "token. Set CHURN_BIND_HOST to bind endpoints for other hosts (tokens are then "
                              "required), or "
                              f"{auth.FORCE_ENV}=1 to require them here too.")
    uid = row.get("uid") or ""
    existing = records.token_record(catalog, name, uid)
    if existing and not rotate:
        who = f" by {existing['created_by']}" if existing["created_by"] else ""
        raise ConflictError(f"A token for endpoint {name} was already issued{who} and is shown only once. Rotate it "
                            "(rotate=True) to get a new one; the old one then stops working.")
    token = auth.new_token()
    sha256 = auth.digest(token)
    auth.write_hash(backend.endpoint_folder(name, uid), sha256)  # the server obeys this at once
    records.set_token(catalog, name, uid, sha256, "bearer token rotated (the old one no longer works)" if existing
                      else "bearer token issued")
    return token
