"""Hyperparameter tuning jobs: the records and rules behind ``Platform.start_tuning`` and friends.

A tuning job searches ranges of one algorithm's hyperparameters for the best value of an objective,
within a budget (trials, trials at once, optionally seconds). Each trial is an ordinary training job
named ``<tuning job>-NNN`` (Jobs page, log, evaluation, deploy). Statuses and counts use SageMaker's
words: ``InProgress → Completed | Failed | Stopping → Stopped``; a failed trial is counted, it does not
fail the tuning job (only a job none of whose trials produced the objective fails).

Where the trials run is the backend's business: locally a detached process
(``churn_core.backends.local.tuning_driver``) submits them through the job queue and records every step here; on
SageMaker a ``CreateHyperParameterTuningJob`` runs them and each read copies what AWS reports.
"""

from __future__ import annotations

import re
import sqlite3
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from churn_core.catalog.database import Catalog, dumps, loads
from churn_core.errors import ConflictError, NotFoundError, ValidationError
from churn_core.names import ALGORITHM_SHORT
from churn_core.paths import code_version
from churn_core.records import TUNING_ACTIVE, TuningJob
from churn_core.tuning.objectives import get_objective, objectives
from churn_core.tuning.ranges import Range, parse_ranges, trial_hyperparameters
from churn_core.tuning.search import STRATEGIES, Observed

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from churn_core.platform import Platform

# SageMaker's rule for tuning job names (1–32 characters); the local backend keeps it so names travel.
TUNING_NAME_RE = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,31}$")
MAX_TRIALS = 500
TRIAL_ACTIVE = ("Pending", "InProgress", "Stopping")


def check_tuning_name(name: str) -> str:
    if not isinstance(name, str) or len(name) > 32 or not TUNING_NAME_RE.fullmatch(name):
        shown = name if isinstance(name, str) and len(name) <= 80 else f"{str(name)[:80]}…"
        raise ValidationError(
            f"The tuning job name {shown!r} is not allowed. Use 1–32 characters: letters, digits and hyphens, "
            "starting and ending with a letter or digit (SageMaker's rule for tuning jobs), e.g. 'tune-rf-1'."
        )
    return name


def default_tuning_name(algorithm: str, now: datetime | None = None) -> str:
    """``tune-rf-260101-120000`` (SageMaker allows tuning job names of 32 characters at most)."""
    stamp = (now or datetime.now(timezone.utc)).strftime("%y%m%d-%H%M%S")
    return f"tune-{ALGORITHM_SHORT.get(algorithm, 'model')}-{stamp}"


def trial_name(tuning: str, number: int) -> str:
    return f"{tuning}-{number:03d}"


# ---- catalog-level helpers (also used by the tuning process and the local backend) ---------------------------


def trial_rows(catalog: Catalog, name: str) -> list[dict]:
    """Trials in order, each with its training job's live status where the job exists."""
    return catalog.query(
        "SELECT t.*, j.status AS job_status, j.created_at AS job_created_at, j.ended_at AS job_ended_at, "
        "j.failure_reason AS job_failure_reason FROM tuning_trials t LEFT JOIN jobs j ON j.name = t.job "
        "WHERE t.tuning_job = ? ORDER BY t.number",
        (name,),
    )


def _trial_status(row: dict) -> str:
    """What the trial's record says once it ended; while it runs, what its training job says."""
    if row["status"] in TRIAL_ACTIVE:
        return row["job_status"] or row["status"]
    return row["status"]


def update_trial(catalog: Catalog, name: str, number: int, **fields: Any) -> None:
    if fields:
        cols = ", ".join(f"{key} = ?" for key in fields)
        with catalog.tx() as conn:
            conn.execute(f"UPDATE tuning_trials SET {cols} WHERE tuning_job = ? AND number = ?",
                         [*fields.values(), name, number])


def summarise(catalog: Catalog, name: str) -> dict:
    """Recount the trials of a tuning job and pick its best one; writes and returns the fields."""
    tuning = catalog.one("SELECT direction FROM tuning_jobs WHERE name = ?", (name,))
    if tuning is None:
        return {}
    maximize = tuning["direction"] == "maximize"
    counts = {"trials_completed": 0, "trials_failed": 0, "trials_stopped": 0, "trials_in_progress": 0}
    best: dict | None = None
    for row in trial_rows(catalog, name):
        status = _trial_status(row)
        key = {"Completed": "trials_completed", "Failed": "trials_failed", "Stopped": "trials_stopped"}.get(
            status, "trials_in_progress")
        counts[key] += 1
        if status == "Completed" and row["objective"] is not None:
            if best is None or (row["objective"] > best["objective"] if maximize
                                else row["objective"] < best["objective"]):
                best = row
    fields: dict[str, Any] = {**counts, "best_job": best["job"] if best else "",
                              "best_objective": best["objective"] if best else None}
    catalog.update("tuning_jobs", name, **fields)
    return fields


def finish(catalog: Catalog, name: str, status: str, reason: str = "", note: str = "") -> None:
    """End an active tuning job (no-op if it already ended); ``Completed`` becomes ``Failed`` without a best trial."""
    fields = summarise(catalog, name)
    if status == "Completed" and not fields.get("best_job"):
        status = "Failed"
        first = catalog.one(
            "SELECT COALESCE(NULLIF(j.failure_reason, ''), t.failure_reason) AS reason FROM tuning_trials t "
            "LEFT JOIN jobs j ON j.name = t.job WHERE t.tuning_job = ? AND COALESCE(NULLIF(j.failure_reason, ''), "
            "t.failure_reason) != '' ORDER BY t.number LIMIT 1", (name,))
        reason = reason or ("No trial produced the objective" + (f"; the first failure: {first['reason']}"
                                                                if first else "") + ".")
    with catalog.tx() as conn:
        changed = conn.execute(
            "UPDATE tuning_jobs SET status = ?, failure_reason = ?, note = CASE WHEN ? != '' THEN ? ELSE note END, "
            "ended_at = ? WHERE name = ? AND status IN ('InProgress', 'Stopping')",
            (status, reason, note, note, time.time(), name),
        ).rowcount
        if changed:
            catalog.event("tuning", name, f"{status}" + (f": {reason}" if reason else "")
                          + (f" ({note})" if note else ""), conn)


def settle_trials(catalog: Catalog, name: str) -> None:
    """Copy the ending of trials whose training job ended into their records (objective from the job's metrics;
    the tuning process does this itself while it runs, with objectives that need the platform too)."""
    tuning = catalog.one("SELECT objective FROM tuning_jobs WHERE name = ?", (name,))
    try:
        metric = get_objective(tuning["objective"]).metric if tuning else None
    except ValidationError:  # an objective registered by a feature this process has not loaded
        metric = None
    for t in catalog.query(
        "SELECT t.number, j.status, j.metrics_json, j.failure_reason, j.ended_at FROM tuning_trials t "
        "JOIN jobs j ON j.name = t.job WHERE t.tuning_job = ? AND t.status IN ('Pending', 'InProgress', 'Stopping') "
        "AND j.status IN ('Completed', 'Failed', 'Stopped')", (name,)):
        value = loads(t["metrics_json"], {}).get(metric) if metric and t["status"] == "Completed" else None
        update_trial(catalog, name, t["number"], status=t["status"], objective=value,
                     failure_reason=t["failure_reason"] or "", ended_at=t["ended_at"] or time.time())


def _stop_unrecorded_job(catalog: Catalog, name: str) -> None:
    """A trial whose tuning process died between recording its job and recording the job's process: stop any
    job driver started for it (found by its command line) and end the job Stopped."""
    import psutil

    from churn_core.processes.detached import kill_group

    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            cmdline = proc.info["cmdline"] or []
            driver = "churn_core.backends.local.job_driver"
            if driver in cmdline and name in cmdline and str(catalog.path.parent) in cmdline:
                kill_group(proc.pid, grace=5.0)
        except (psutil.Error, OSError):
            continue
    with catalog.tx() as conn:
        conn.execute("UPDATE jobs SET status = 'Stopped', secondary_status = 'Stopped', ended_at = ?, "
                     "failure_reason = 'its tuning job ended before it started' WHERE name = ? "
                     "AND status IN ('InProgress', 'Stopping')", (time.time(), name))
        catalog.event("job", name, "Stopped: its tuning job ended before it started", conn)


def reconcile_tuning(catalog: Catalog) -> list[str]:
    """A local tuning job whose process is gone without an ending: its running trials are stopped, the
    finished ones kept, and it ends Stopped (if a stop was asked) or Failed with the reason. Never stuck."""
    from churn_core.backends.local.backend import reconcile_jobs
    from churn_core.processes.detached import describe_exit, is_alive, kill_group, reap

    changed = []
    for row in catalog.query(
        "SELECT name, pid, status FROM tuning_jobs WHERE backend = 'local' AND status IN ('InProgress', 'Stopping')"
    ):
        if row["pid"] is None or is_alive(row["pid"], row["name"]):
            continue
        _, code = reap(row["pid"], wait=2.0)
        fresh = catalog.one("SELECT status FROM tuning_jobs WHERE name = ?", (row["name"],))
        if fresh is None or fresh["status"] not in TUNING_ACTIVE:
            continue  # it ended on its own between the two reads
        kill_group(row["pid"], grace=0.5)
        for trial in trial_rows(catalog, row["name"]):
            if trial["job_status"] in ("InProgress", "Stopping"):
                job = catalog.one("SELECT pid FROM jobs WHERE name = ?", (trial["job"],))
                if job and job["pid"] is None:  # killed while submitting it: no driver was recorded
                    _stop_unrecorded_job(catalog, trial["job"])
                    continue
                catalog.update("jobs", trial["job"], status="Stopping", secondary_status="Stopping")
                kill_group(job and job["pid"], grace=5.0)
            elif trial["job_status"] is None and trial["status"] in TRIAL_ACTIVE:
                update_trial(catalog, row["name"], trial["number"], status="Stopped", ended_at=time.time())
        reconcile_jobs(catalog)
        settle_trials(catalog, row["name"])
        if fresh["status"] == "Stopping":
            finish(catalog, row["name"], "Stopped")
        else:
            finish(catalog, row["name"], "Failed",
                   f"The tuning process exited unexpectedly ({describe_exit(code)}). Its finished trials are kept and "
                   "its running trials were stopped; start a new tuning job to search further.")
        changed.append(row["name"])
    return changed


# ---- the service behind the Platform methods -------------------------------------------------------------------


class TuningService:
    def __init__(self, platform: "Platform"):
        self.platform = platform
        self.catalog = platform.catalog
        self.backend = platform.backend

    # ---- reading --------------------------------------------------------------------------------------------
    def row(self, name: str) -> dict:
        row = self.catalog.one("SELECT * FROM tuning_jobs WHERE name = ?", (name,))
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
            if fields:
                self.catalog.update("tuning_jobs", row["name"], **fields)
            row = self.row(row["name"])
        return row

    def describe(self, name: str) -> TuningJob:
        return TuningJob.from_row(self._refresh(self.row(name)))

    def list(self, limit: int = 50) -> list[TuningJob]:
        rows = self.catalog.query("SELECT * FROM tuning_jobs ORDER BY created_at DESC, rowid DESC LIMIT ?", (limit,))
        return [TuningJob.from_row(self._refresh(r)) for r in rows]

    def names(self, limit: int = 100) -> list[str]:
        return [r["name"] for r in self.catalog.query(
            "SELECT name FROM tuning_jobs ORDER BY created_at DESC, rowid DESC LIMIT ?", (limit,))]

    def trials(self, name: str) -> "pd.DataFrame":
        """One row per trial in order: trial, job, status, objective, hyperparameters (the tuned values), best,
        seconds, failure_reason."""
        import pandas as pd

        tuning = self.describe(name)
        rows = []
        for t in trial_rows(self.catalog, name):
            end = t["job_ended_at"] or t["ended_at"]
            start = t["job_created_at"] or t["created_at"]
            status = _trial_status(t)
            rows.append({
                "trial": t["number"], "job": t["job"], "status": status, "objective": t["objective"],
                "hyperparameters": loads(t["params_json"], {}), "best": bool(tuning.best_job) and
                t["job"] == tuning.best_job,
                "seconds": (end - start) if end and start else None,
                "failure_reason": t["job_failure_reason"] or t["failure_reason"] or "",
            })
        columns = ["trial", "job", "status", "objective", "hyperparameters", "best", "seconds", "failure_reason"]
        return pd.DataFrame(rows, columns=columns)

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
        ds = self.platform.get_dataset(dataset)
        strategy = str(strategy).strip().lower()
        if strategy not in STRATEGIES:
            raise ValidationError(f"Unknown strategy {strategy!r}. Choose one of: {', '.join(STRATEGIES)}.")
        goal = get_objective(objective, needs_metric=self.backend.tuning_needs_log_metric())
        tuned, static = parse_ranges(algorithm, ranges)
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
        base = name
        for attempt in range(1, 100):
            try:
                self._insert(row)
                break
            except sqlite3.IntegrityError:
                if not auto_named:
                    raise ConflictError(f"A tuning job named {name!r} already exists. Pick another name.") from None
                name = row["name"] = f"{base[:29]}-{attempt + 1}"
        else:
            raise ConflictError(f"Could not find a free tuning job name after {base!r}; give the job a name.")
        try:
            self.platform.datasets.ensure_schema_object(ds)
            fields = self.backend.start_tuning(self.row(name), ds)
        except Exception as exc:
            finish(self.catalog, name, "Failed", f"could not start: {exc}")
            raise
        if fields:
            self.catalog.update("tuning_jobs", name, **fields)
        return self.describe(name)

    def _insert(self, row: dict) -> None:
        with self.catalog.tx() as conn:
            taken = conn.execute("SELECT name FROM jobs WHERE name LIKE ? ESCAPE '\\' LIMIT 1",
                                 (row["name"].replace("_", "\\_") + "-%",)).fetchone()
            if taken and conn.execute("SELECT 1 FROM tuning_jobs WHERE name = ?", (row["name"],)).fetchone() is None:
                raise ConflictError(
                    f"Training job {taken['name']} already uses the name {row['name']!r} as a prefix, and the trials "
                    f"of this tuning job would be named {trial_name(row['name'], 1)}, …: pick another name."
                )
            conn.execute(f"INSERT INTO tuning_jobs ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                         list(row.values()))
            self.catalog.event(
                "tuning", row["name"],
                f"submitted: {row['strategy']} search of {row['algorithm']} on {row['dataset']}, "
                f"{row['max_trials']} trials, {row['max_parallel']} at once, {row['direction']} {row['objective']}",
                conn)

    # ---- stopping and deleting ------------------------------------------------------------------------------
    def stop(self, name: str) -> TuningJob:
        row = self._refresh(self.row(name))
        with self.catalog.tx() as conn:
            changed = conn.execute("UPDATE tuning_jobs SET status = 'Stopping' WHERE name = ? AND status = "
                                   "'InProgress'", (name,)).rowcount
            if changed:
                self.catalog.event("tuning", name, "stop requested", conn)
        if not changed and row["status"] != "Stopping":
            raise ConflictError(f"Tuning job {name} is {row['status']}; only a running tuning job can be stopped.")
        fields = self.backend.stop_tuning(self.row(name))
        if fields:
            self.catalog.update("tuning_jobs", name, **fields)
        return self.describe(name)

    def delete(self, name: str) -> None:
        """Forget a finished tuning job (its trials stay as training jobs and models, as on SageMaker)."""
        row = self._refresh(self.row(name))
        if row["status"] in TUNING_ACTIVE:
            raise ConflictError(f"Tuning job {name} is {row['status']}; stop it before deleting it.")
        self.backend.delete_tuning(row)
        with self.catalog.tx() as conn:
            conn.execute("DELETE FROM tuning_trials WHERE tuning_job = ?", (name,))
            conn.execute("DELETE FROM tuning_jobs WHERE name = ?", (name,))
            self.catalog.event("tuning", name, "deleted (its trials' training jobs are kept)", conn)

    # ---- used by the local tuning process -------------------------------------------------------------------
    def observed(self, name: str) -> list[Observed]:
        seen = []
        for t in trial_rows(self.catalog, name):
            status = _trial_status(t)
            state = "complete" if status == "Completed" else "running" if status in TRIAL_ACTIVE else "fail"
            seen.append(Observed(loads(t["params_json"], {}), state, t["objective"] if state == "complete" else None))
        return seen

    def add_trial(self, name: str, number: int, job: str, params: dict) -> None:
        with self.catalog.tx() as conn:
            conn.execute(
                "INSERT INTO tuning_trials (tuning_job, number, job, params_json, status, created_at) "
                "VALUES (?, ?, ?, ?, 'Pending', ?)", (name, number, job, dumps(params), time.time()))

    def update_trial(self, name: str, number: int, **fields: Any) -> None:
        update_trial(self.catalog, name, number, **fields)

    def trial_hyperparameters(self, row: dict, params: dict) -> dict:
        return trial_hyperparameters(loads(row["static_json"], {}), params)

    # ---- used by the SageMaker backend's reads --------------------------------------------------------------
    def _record_remote_trials(self, row: dict, trials: list[dict]) -> None:
        """Trials a remote tuning job reports become training jobs of the catalog (so they can be deployed like
        any job) and trial rows; a job already known keeps its record, which its own reads refresh."""
        ds = self.catalog.one("SELECT sha256 FROM datasets WHERE name = ?", (row["dataset"],))
        static = loads(row["static_json"], {})
        with self.catalog.tx() as conn:
            numbers = {r["job"]: r["number"] for r in conn.execute(
                "SELECT job, number FROM tuning_trials WHERE tuning_job = ?", (row["name"],)).fetchall()}
            next_number = max(numbers.values(), default=0) + 1
            for trial in trials:
                conn.execute(
                    "INSERT OR IGNORE INTO jobs (name, backend, dataset, dataset_sha256, algorithm, "
                    "hyperparameters_json, status, secondary_status, created_at, code_sha256, instance_type, "
                    "instance_count, arn) "
                    "VALUES (?, ?, ?, ?, ?, ?, 'InProgress', 'Starting', ?, ?, ?, 1, ?)",
                    (trial["job"], row["backend"], row["dataset"], ds["sha256"] if ds else "", row["algorithm"],
                     dumps(trial_hyperparameters(static, trial["params"])), trial.get("created_at") or time.time(),
                     row["code_sha256"], row["instance_type"], trial.get("arn", "")))
                number = numbers.get(trial["job"])
                if number is None:
                    number = numbers[trial["job"]] = trial.get("number") or next_number
                    next_number = max(next_number, number) + 1
                    conn.execute(
                        "INSERT OR IGNORE INTO tuning_trials (tuning_job, number, job, params_json, status, created_at)"
                        " VALUES (?, ?, ?, ?, ?, ?)", (row["name"], number, trial["job"], dumps(trial["params"]),
                                                      trial["status"], trial.get("created_at") or time.time()))
                conn.execute(
                    "UPDATE tuning_trials SET status = ?, objective = ?, failure_reason = ?, ended_at = ?, "
                    "params_json = ? WHERE tuning_job = ? AND job = ?",
                    (trial["status"], trial.get("objective"), trial.get("failure_reason", ""), trial.get("ended_at"),
                     dumps(trial["params"]), row["name"], trial["job"]))


def _whole(what: str, value: Any, low: int, high: int) -> int:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValidationError(f"{what} must be a whole number (got {value!r}).") from None
    if not low <= number <= high or number != int(number):  # NaN and ±inf fail the range before int() sees them
        raise ValidationError(f"{what} must be a whole number from {low} to {high} (got {value!r}).")
    return int(number)


__all__ = ["TuningService", "check_tuning_name", "default_tuning_name", "trial_name", "summarise", "finish",
           "reconcile_tuning", "trial_rows"]
