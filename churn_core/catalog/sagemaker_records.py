"""What the SageMaker backend reads of the catalog beyond the common records."""

from __future__ import annotations

from churn_core.catalog.database import Catalog


def completed_trial_jobs(catalog: Catalog, tuning_job: str) -> set[str]:
    """The trials of a tuning job the catalog already records as Completed."""
    return {r["job"] for r in catalog.query(
        "SELECT job FROM tuning_trials WHERE tuning_job = ? AND status = 'Completed'", (tuning_job,))}
