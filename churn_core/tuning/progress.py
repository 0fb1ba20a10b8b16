"""How a tuning job stands: its trials' statuses, the counts and best trial, and how it ends.

Shared by the service, the local tuning process and the local reconcile, so it imports no backend and no platform.
"""

from __future__ import annotations

import time
from typing import Any

from churn_core.catalog import outcomes
from churn_core.catalog import tuning_records as records
from churn_core.catalog.database import Catalog, loads
from churn_core.errors import ValidationError
from churn_core.tuning.objectives import get_objective

TRIAL_ACTIVE = ("Pending", "InProgress", "Stopping")


def trial_name(tuning: str, number: int) -> str:
    return f"{tuning}-{number:03d}"


def trial_rows(catalog: Catalog, name: str) -> list[dict]:
    """Trials in order, each with its training job's live status where the job exists."""
    return records.trials(catalog, name)


def trial_status(row: dict) -> str:
    """What the trial's record says once it ended; while it runs, what its training job says."""
    if row["status"] in TRIAL_ACTIVE:
        return row["job_status"] or row["status"]
    return row["status"]


def update_trial(catalog: Catalog, name: str, number: int, **fields: Any) -> None:
    records.update_trial(catalog, name, number, **fields)


def summarise(catalog: Catalog, name: str) -> dict:
    """Recount the trials of a tuning job and pick its best one; writes and returns the fields."""
    tuning = records.tuning(catalog, name)
    if tuning is None:
        return {}
    maximize = tuning["direction"] == "maximize"
    counts = {"trials_completed": 0, "trials_failed": 0, "trials_stopped": 0, "trials_in_progress": 0}
    best: dict | None = None
    for row in trial_rows(catalog, name):
        status = trial_status(row)
        key = {"Completed": "trials_completed", "Failed": "trials_failed", "Stopped": "trials_stopped"}.get(
            status, "trials_in_progress")
        counts[key] += 1
        if status == "Completed" and row["objective"] is not None:
            if best is None or (row["objective"] > best["objective"] if maximize
                                else row["objective"] < best["objective"]):
                best = row
    fields: dict[str, Any] = {**counts, "best_job": best["job"] if best else "",
                              "best_objective": best["objective"] if best else None}
    records.update(catalog, name, **fields)
    return fields


def finish(catalog: Catalog, name: str, status: str, reason: str = "", note: str = "") -> None:
    """End an active tuning job (no-op if it already ended); ``Completed`` becomes ``Failed`` without a best trial."""
    fields = summarise(catalog, name)
    if status == "Completed" and not fields.get("best_job"):
        status = "Failed"
        first = records.first_failure(catalog, name)
        reason = reason or ("No trial produced the objective" + (f"; the first failure: {first}"
                                                                if first else "") + ".")
    outcomes.finish(catalog, "tuning", name, status, reason, once=True,
                    event=f"{status}" + (f": {reason}" if reason else "") + (f" ({note})" if note else ""),
                    **({"note": note} if note else {}))


def settle_trials(catalog: Catalog, name: str) -> None:
    """Copy the ending of trials whose training job ended into their records (objective from the job's metrics;
    the tuning process does this itself while it runs, with objectives that need the platform too)."""
    tuning = records.tuning(catalog, name)
    try:
        metric = get_objective(tuning["objective"]).ranked_by if tuning else None
    except ValidationError:  # an objective registered by a feature this process has not loaded
        metric = None
    for t in records.ended_unsettled(catalog, name):
        value = loads(t["metrics_json"], {}).get(metric) if metric and t["status"] == "Completed" else None
        update_trial(catalog, name, t["number"], status=t["status"], objective=value,
                     failure_reason=t["failure_reason"] or "", ended_at=t["ended_at"] or time.time())
