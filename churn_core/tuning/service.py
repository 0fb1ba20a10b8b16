"""Hyperparameter tuning jobs: the records and rules behind ``Platform.start_tuning`` and friends.

A tuning job searches ranges of one algorithm's hyperparameters for the best value of an objective,
within a budget (trials, trials at once, optionally seconds). Each trial is an ordinary training job
named ``<tuning job>-NNN`` (Jobs page, log, evaluation, deploy). Statuses and counts use SageMaker's
words: ``InProgress → Completed | Failed | Stopping → Stopped``; a failed trial is counted, it does not
fail the tuning job (only a job none of whose trials produced the objective fails).

Where the trials run is the backend's business: locally a detached process
(``churn_core.backends.local.tuning_driver``) submits them through the job queue and records every step in
the catalog; on SageMaker a ``CreateHyperParameterTuningJob`` runs them and each read copies what AWS reports.
"""

from __future__ import annotations

import re
import sqlite3
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from churn_core.catalog import jobs as jobs_records
from churn_core.catalog import kept_records, outcomes
from churn_core.catalog import tuning_records as records
from churn_core.catalog.database import Catalog, dumps, loads
from churn_core.errors import ConflictError, NotFoundError, ValidationError
from churn_core.names import default_tuning_name
from churn_core.paths import code_version
from churn_core.records import TUNING_ACTIVE, TuningJob
from churn_core.tuning.objectives import TUNING_CV_FOLDS, get_objective, objectives
from churn_core.tuning.progress import (
    TRIAL_ACTIVE, finish, settle_trials, summarise, trial_name, trial_rows, trial_status, update_trial,
)
from churn_core.tuning.ranges import Range, parse_ranges, trial_hyperparameters
from churn_core.tuning.search import STRATEGIES, Observed

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from churn_core.backends.base import Backend
    from churn_core.data.datasets import DatasetService

# SageMaker's rule for tuning job names (1–32 characters); the local backend keeps it so names travel.
TUNING_NAME_RE = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,31}$")
MAX_TRIALS = 500


def check_tuning_name(name: str) -> str:
    if not isinstance(name, str) or len(name) > 32 or not TUNING_NAME_RE.fullmatch(name):
        shown = name if isinstance(name, str) and len(name) <= 80 else f"{str(name)[:80]}…"
        raise ValidationError(
            f"The tuning job name {shown!r} is not allowed. Use 1–32 characters: letters, digits and hyphens, "
            "starting and ending with a letter or digit (SageMaker's rule for tuning jobs), e.g. 'tune-rf-1'."
        )
    return name


# ---- the service behind the Platform methods -------------------------------------------------------------------


class TuningService:
    """Tuning jobs on ``backend``, recorded in ``catalog``; ``datasets`` finds (and readies) the data to tune on."""

    def __init__(self, catalog: Catalog, backend: "Backend", datasets: "DatasetService"):
        self.catalog = catalog
        self.backend = backend
        self.datasets = datasets
        self.home = Path(catalog.path).parent  # the state folder, where local tuning jobs keep their files

    # ---- reading --------------------------------------------------------------------------------------------
    def row(self, name: str) -> dict:
        row = records.tuning(self.catalog, name)
        if row is None:
            raise NotFoundError(f"No tuning job named {name!r}. See Train → Tune for the list.")
        return row

    def ranges(self, row: dict) -> list[Range]:
        return [Range.from_dict(r) for r in loads(row["ranges_json"], [])]

    def _refresh(self, row: dict) -> dict:
        if row["status"] in TUNING_ACTIVE:
            fields, trials = self.backend.refresh_tuning(row)
            if trials:
                self._record_remote_trials(row, trials)
            outcomes.apply(self.catalog, "tuning", row["name"], fields)  # a terminal status goes through finish
            row = self.row(row["name"])
        return row

    def describe(self, name: str) -> TuningJob:
        return TuningJob.from_row(self._refresh(self.row(name)))

    def list(self, limit: int = 50) -> list[TuningJob]:
        return [TuningJob.from_row(self._refresh(r)) for r in records.recent(self.catalog, limit)]

    def names(self, limit: int = 100) -> list[str]:
        return records.recent_names(self.catalog, limit)

    def trials(self, name: str) -> "pd.DataFrame":
        """One row per trial in order: trial, job, status, objective (cross-validated on the training split: what
        trials are ranked by), test (the winner's test-split score of the same metric, for the winner only),
        hyperparameters (the tuned values), best, seconds, failure_reason."""
        import pandas as pd

        tuning = self.describe(name)
        rows = []
        winner_test = self._winner_test_score(tuning)
        for t in trial_rows(self.catalog, name):
            end = t["job_ended_at"] or t["ended_at"]
            start = t["job_created_at"] or t["created_at"]
            status = trial_status(t)
            rows.append({
                "trial": t["number"], "job": t["job"], "status": status, "objective": t["objective"],
                "test": winner_test if bool(tuning.best_job) and t["job"] == tuning.best_job else None,
                "hyperparameters": loads(t["params_json"], {}), "best": bool(tuning.best_job) and
                t["job"] == tuning.best_job,
                "seconds": (end - start) if end and start else None,
                "failure_reason": t["job_failure_reason"] or t["failure_reason"] or "",
            })
        columns = ["trial", "job", "status", "objective", "test", "hyperparameters", "best", "seconds",
                   "failure_reason"]
        return pd.DataFrame(rows, columns=columns)

    def _winner_test_score(self, tuning) -> float | None:
        """The best trial's objective metric on the test split, or None (no winner yet, or an objective computed by
        the app, e.g. the planner's profit, whose test-split figure the planner shows)."""
        if not tuning.best_job:
            return None
        try:
            metric = get_objective(tuning.objective).metric
        except ValidationError:  # an objective registered by a feature this process has not loaded
            return None
        try:
            row = jobs_records.job(self.catalog, tuning.best_job) if metric else None
        except NotFoundError:
            return None
        value = loads(row.get("metrics_json"), {}).get(metric) if row else None
        return None if value is None else float(value)

    def log(self, name: str, lines: int = 200) -> str:
        return self.backend.tuning_log(self.row(name), lines)

    def objective_choices(self) -> dict[str, str]:
        """Objectives this backend can tune on: name → label."""
        needs_metric = self.backend.tuning_needs_log_metric()
        return {n: o.label for n, o in objectives().items() if o.metric or not needs_metric}

    # ---- starting -------------------------------------------------------------------------------------------
    def start(self, dataset: str, ranges: Any, objective: str = "roc_auc", max_trials: int = 20,
              max_parallel: int | None = None, strategy: str = "bayesian", algorithm: str = "random_forest",
              name: str | None = None, seed: int = 0, max_seconds: float | None = None,
              instance_type: str | None = None) -> TuningJob:
        ds = self.datasets.get(dataset)
        strategy = str(strategy).strip().lower()
        if strategy not in STRATEGIES:
            raise ValidationError(f"Unknown strategy {strategy!r}. Choose one of: {', '.join(STRATEGIES)}.")
        goal = get_objective(objective, needs_metric=self.backend.tuning_needs_log_metric())
        tuned, static = parse_ranges(algorithm, ranges)
        if not static.get("cv_folds") and "cv_folds" not in {r.name for r in tuned}:
            static["cv_folds"] = TUNING_CV_FOLDS  # trials are ranked by cross-validation inside the training split
        max_trials = _whole("max_trials", max_trials, 1, MAX_TRIALS)
        if max_parallel is None:
            max_parallel = min(max_trials, self.backend.tuning_parallel_default())
        max_parallel = _whole("max_parallel", max_parallel, 1, max_trials)
        seed = _whole("seed", seed, 0, 2**31 - 1)
        if max_seconds is not None:
            try:
                max_seconds = float(max_seconds)
            except (TypeError, ValueError):
                raise ValidationError(f"max_seconds must be a number of seconds (got {max_seconds!r}).") from None
            if not 0 < max_seconds < float("inf"):
                raise ValidationError(f"max_seconds must be above 0, or None for no time limit (got {max_seconds}).")
        auto_named = not name
        name = check_tuning_name(name or default_tuning_name(algorithm))
        row = {
            "name": name, "backend": self.backend.name, "dataset": ds.name, "algorithm": algorithm,
            "ranges_json": dumps([r.as_dict() for r in tuned]), "static_json": dumps(static),
            "objective": goal.name, "direction": goal.direction, "strategy": strategy, "seed": seed,
            "max_trials": max_trials, "max_parallel": max_parallel, "max_seconds": max_seconds,
            "status": "InProgress", "created_at": time.time(), "code_sha256": code_version(),
            "instance_type": instance_type or next(iter(self.backend.training_instance_types()), "local"),
        }
        check = getattr(self.backend, "check_tuning", None)  # optional: a remote service's own limits (SageMaker)
        if check is not None:
            check(row)  # before anything is recorded
        base = name
        for attempt in range(1, 100):
            try:
                self._refuse_lost_outputs(name, auto_named)
                self._insert(row)
                break
            except sqlite3.IntegrityError:
                if not auto_named:
                    raise ConflictError(f"A tuning job named {name!r} already exists. Pick another name.") from None
                name = row["name"] = f"{base[:29]}-{attempt + 1}"
        else:
            raise ConflictError(f"Could not find a free tuning job name after {base!r}; give the job a name.")
        try:
            self.datasets.ensure_schema_object(ds)
            fields = self.backend.start_tuning(self.row(name), ds)
        except Exception as exc:
            finish(self.catalog, name, "Failed", f"could not start: {exc}")
            raise
        records.update(self.catalog, name, **fields)
        return self.describe(name)

    def _refuse_lost_outputs(self, name: str, auto_named: bool) -> None:
        """A tuning job the catalog lost (restored from an older backup) still has its folder: a new job of that
        name would mix its trials and log with the old one's, so the name is refused (a generated one moves on)."""
        if records.tuning(self.catalog, name) is None and kept_records.folder(self.home, "tuning", name).exists():
            if auto_named:
                raise sqlite3.IntegrityError(name)
            raise ConflictError(f"A tuning job named {name!r} left its trials and log under "
                                f"{kept_records.folder(self.home, 'tuning', name)} (the catalog was restored from a "
                                "backup made before it). Pick another name, or rebuild the catalog to get it back.")

    def _insert(self, row: dict) -> None:
        taken = records.insert(
            self.catalog, row,
            f"submitted: {row['strategy']} search of {row['algorithm']} on {row['dataset']}, "
            f"{row['max_trials']} trials, {row['max_parallel']} at once, {row['direction']} {row['objective']}")
        if taken is not None:
            raise ConflictError(
                f"Training job {taken} already uses the name {row['name']!r} as a prefix, and the trials "
                f"of this tuning job would be named {trial_name(row['name'], 1)}, …: pick another name."
            )

    # ---- stopping and deleting ------------------------------------------------------------------------------
    def stop(self, name: str) -> TuningJob:
        row = self._refresh(self.row(name))
        changed = records.request_stop(self.catalog, name, "stop requested")
        if not changed and row["status"] != "Stopping":
            raise ConflictError(f"Tuning job {name} is {row['status']}; only a running tuning job can be stopped.")
        fields = self.backend.stop_tuning(self.row(name))
        outcomes.apply(self.catalog, "tuning", name, fields)
        return self.describe(name)

    def delete(self, name: str) -> None:
        """Forget a finished tuning job (its trials stay as training jobs and models, as on SageMaker)."""
        row = self._refresh(self.row(name))
        if row["status"] in TUNING_ACTIVE:
            raise ConflictError(f"Tuning job {name} is {row['status']}; stop it before deleting it.")
        self.backend.delete_tuning(row)
        records.delete(self.catalog, name, "deleted (its trials' training jobs are kept)")

    # ---- used by the local tuning process -------------------------------------------------------------------
    def observed(self, name: str) -> list[Observed]:
        seen = []
        for t in trial_rows(self.catalog, name):
            status = trial_status(t)
            state = "complete" if status == "Completed" else "running" if status in TRIAL_ACTIVE else "fail"
            seen.append(Observed(loads(t["params_json"], {}), state, t["objective"] if state == "complete" else None))
        return seen

    def add_trial(self, name: str, number: int, job: str, params: dict) -> None:
        records.add_trial(self.catalog, name, number, job, dumps(params))

    def update_trial(self, name: str, number: int, **fields: Any) -> None:
        update_trial(self.catalog, name, number, **fields)

    def trial_hyperparameters(self, row: dict, params: dict) -> dict:
        return trial_hyperparameters(loads(row["static_json"], {}), params)

    # ---- used by the SageMaker backend's reads --------------------------------------------------------------
    def _record_remote_trials(self, row: dict, trials: list[dict]) -> None:
        """Trials a remote tuning job reports become training jobs of the catalog (so they can be deployed like
        any job) and trial rows; a job already known keeps its record, which its own reads refresh."""
        static = loads(row["static_json"], {})
        records.record_remote_trials(self.catalog, row, [
            dict(trial, params_json=dumps(trial["params"]),
                 hyperparameters_json=dumps(trial_hyperparameters(static, trial["params"])))
            for trial in trials])


def _whole(what: str, value: Any, low: int, high: int) -> int:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValidationError(f"{what} must be a whole number (got {value!r}).") from None
    if not low <= number <= high or number != int(number):  # NaN and ±inf fail the range before int() sees them
        raise ValidationError(f"{what} must be a whole number from {low} to {high} (got {value!r}).")
    return int(number)


__all__ = ["TuningService", "check_tuning_name", "default_tuning_name", "trial_name", "summarise", "finish",
           "settle_trials", "trial_rows", "TRIAL_ACTIVE"]
