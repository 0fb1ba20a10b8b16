"""SageMaker's naming rule, applied to every dataset, job, model and endpoint name.

Because names also become folder names and S3 keys, the rule doubles as the guard
that keeps a name from escaping the state directory (no ``/``, ``..`` or Unicode).
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime, timezone

from churn_core.errors import ValidationError
from churn_core.paths import entry_module

NAME_RE = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
ALGORITHM_SHORT = entry_module("algorithms").View(lambda a: a.short)  # the registry's short names, read live


def check_name(name: str, what: str = "name") -> str:
    """Return the name if it follows SageMaker's rule, else raise a message that says the rule."""
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        shown = name if isinstance(name, str) and len(name) <= 80 else f"{str(name)[:80]}…"
        raise ValidationError(
            f"The {what} {shown!r} is not allowed. Use 1–63 characters: letters, digits and hyphens, "
            "starting and ending with a letter or digit (SageMaker's naming rule), e.g. 'telecom-2026'."
        )
    return name


def timestamp(now: datetime | None = None) -> str:
    return (now or datetime.now(timezone.utc)).strftime("%Y-%m-%d-%H-%M-%S")


def default_job_name(algorithm: str, now: datetime | None = None) -> str:
    """``churn-rf-2026-11-25-10-00-00``, the seed's style."""
    return f"churn-{ALGORITHM_SHORT.get(algorithm, 'model')}-{timestamp(now)}"


def default_tuning_name(algorithm: str, now: datetime | None = None) -> str:
    """``tune-rf-2026-11-25-10-00-00``: the job names' style (its trials are ``…-001``), within SageMaker's
    32 characters for a tuning job."""
    return f"tune-{ALGORITHM_SHORT.get(algorithm, 'model')}-{timestamp(now)}"


def derived_name(base: str, suffix: str, limit: int = 63) -> str:
    """A name made from another (``churn-ep`` → ``churn-ep-config``) within SageMaker's 63 characters, unique
    for every ``base``: one that fits is ``base + suffix``; a longer one keeps the start of ``base`` and adds 8
    hex characters of its SHA-256, so names that differ only in the part cut off still differ."""
    if len(base) + len(suffix) <= limit:
        return base + suffix
    digest = hashlib.sha256(base.encode("utf-8")).hexdigest()[:8]
    keep = max(limit - len(suffix) - len(digest) - 1, 1)
    return f"{base[:keep].rstrip('-')}-{digest}{suffix}"


def default_endpoint_name(job_name: str) -> str:
    return check_name(derived_name(job_name, "-endpoint"), "endpoint name")


def slugify(text: str, fallback: str = "dataset") -> str:
    """Turn a file name into a valid default dataset name."""
    stem = re.sub(r"\.[A-Za-z0-9]+$", "", text or "")
    slug = re.sub(r"[^A-Za-z0-9]+", "-", stem).strip("-")[:63].strip("-")
    return slug or fallback
