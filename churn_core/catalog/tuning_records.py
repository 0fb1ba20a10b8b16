"""Tuning jobs and their trials as the catalog records them (tables ``tuning_jobs`` and ``tuning_trials``).

The rules (counts, the best trial, when a tuning job fails) live in ``churn_core.tuning``; this module only
reads and writes rows. A terminal state of a tuning job or a trial is written by ``catalog.outcomes``.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from churn_core.catalog import outcomes
from churn_core.catalog.database import with_creator


# ---- tuning jobs ---------------------------------------------------------------------------------------------


def tuning(catalog, name: str) -> dict | None:
    return catalog.one("SELECT * FROM tuning_jobs WHERE name = ?", (name,))


def recent(catalog, limit: int) -> list[dict]:
    """Tuning jobs, newest first."""
    return catalog.query("SELECT * FROM tuning_jobs ORDER BY created_at DESC, rowid DESC LIMIT ?", (limit,))


def recent_names(catalog, limit: int) -> list[str]:
    return [r["name"] for r in catalog.query(
        "SELECT name FROM tuning_jobs ORDER BY created_at DESC, rowid DESC LIMIT ?", (limit,))]


def active_local(catalog) -> list[dict]:
    """Name, pid and status of every local tuning job that has not ended."""
    return catalog.query(
        "SELECT name, pid, status FROM tuning_jobs WHERE backend = 'local' AND status IN ('InProgress', 'Stopping')"
    )


def insert(catalog, row: dict, event: str) -> str | None:
    """Insert a new tuning job and its event; but when a training job already uses its name as a prefix (its
    trials would clash with it), insert nothing and return that job's name. A taken name raises IntegrityError."""
    with catalog.tx() as conn:
        taken = conn.execute("SELECT name FROM jobs WHERE name LIKE ? ESCAPE '\\' LIMIT 1",
                             (row["name"].replace("_", "\\_") + "-%",)).fetchone()
        if taken and conn.execute("SELECT 1 FROM tuning_jobs WHERE name = ?", (row["name"],)).fetchone() is None:
            return taken["name"]
        row = with_creator("tuning_jobs", row)
        conn.execute(f"INSERT INTO tuning_jobs ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                     list(row.values()))
        catalog.event("tuning", row["name"], event, conn)
    return None


def update(catalog, name: str, **fields: Any) -> None:
    """Columns of a tuning job that is still running (counts, best trial, pid, ARN)."""
    catalog.update("tuning_jobs", name, **fields)


def request_stop(catalog, name: str, event: str) -> bool:
    """A running tuning job turns Stopping (and ``event`` is recorded); False if it was not InProgress."""
    with catalog.tx() as conn:
        changed = conn.execute("UPDATE tuning_jobs SET status = 'Stopping' WHERE name = ? AND status = "
                               "'InProgress'", (name,)).rowcount
        if changed:
            catalog.event("tuning", name, event, conn)
    return bool(changed)


def delete(catalog, name: str, event: str) -> None:
    """Forget a tuning job and its trial rows (their training jobs stay)."""
    with catalog.tx() as conn:
        conn.execute("DELETE FROM tuning_trials WHERE tuning_job = ?", (name,))
        conn.execute("DELETE FROM tuning_jobs WHERE name = ?", (name,))
        catalog.event("tuning", name, event, conn)


# ---- trials --------------------------------------------------------------------------------------------------


def trials(catalog, tuning_job: str) -> list[dict]:
    """Trials in order, each with its training job's live status where the job exists."""
    return catalog.query(
        "SELECT t.*, j.status AS job_status, j.created_at AS job_created_at, j.ended_at AS job_ended_at, "
        "j.failure_reason AS job_failure_reason FROM tuning_trials t LEFT JOIN jobs j ON j.name = t.job "
        "WHERE t.tuning_job = ? ORDER BY t.number",
        (tuning_job,),
    )


def first_failure(catalog, tuning_job: str) -> str | None:
    """The reason of the first trial that failed with one (its training job's reason first)."""
    row = catalog.one(
        "SELECT COALESCE(NULLIF(j.failure_reason, ''), t.failure_reason) AS reason FROM tuning_trials t "
        "LEFT JOIN jobs j ON j.name = t.job WHERE t.tuning_job = ? AND COALESCE(NULLIF(j.failure_reason, ''), "
        "t.failure_reason) != '' ORDER BY t.number LIMIT 1", (tuning_job,))
    return row["reason"] if row else None


def ended_unsettled(catalog, tuning_job: str) -> list[dict]:
    """Trials still recorded as running whose training job has ended: number and the job's status, metrics_json,
    failure_reason and ended_at."""
    return catalog.query(
        "SELECT t.number, j.status, j.metrics_json, j.failure_reason, j.ended_at FROM tuning_trials t "
        "JOIN jobs j ON j.name = t.job WHERE t.tuning_job = ? AND t.status IN ('Pending', 'InProgress', 'Stopping') "
        "AND j.status IN ('Completed', 'Failed', 'Stopped')", (tuning_job,))


def completed_trial_jobs(catalog, tuning_job: str) -> set[str]:
    """The training jobs of the tuning job's trials recorded Completed (the SageMaker backend's reads need them)."""
    return {r["job"] for r in catalog.query(
        "SELECT job FROM tuning_trials WHERE tuning_job = ? AND status = 'Completed'", (tuning_job,))}


def add_trial(catalog, tuning_job: str, number: int, job: str, params_json: str) -> None:
    with catalog.tx() as conn:
        conn.execute(
            "INSERT INTO tuning_trials (tuning_job, number, job, params_json, status, created_at) "
            "VALUES (?, ?, ?, ?, 'Pending', ?)", (tuning_job, number, job, params_json, time.time()))


def update_trial(catalog, tuning_job: str, number: int, **fields: Any) -> None:
    """Columns of one trial; a terminal status (with its ``failure_reason``) is written by ``outcomes.finish_trial``."""
    if not fields:
        return
    with catalog.tx() as conn:
        if fields.get("status") in outcomes.TERMINAL:
            status = fields.pop("status")
            outcomes.finish_trial(conn, tuning_job, number, status, fields.pop("failure_reason", ""), **fields)
            return
        cols = ", ".join(f"{key} = ?" for key in fields)
        conn.execute(f"UPDATE tuning_trials SET {cols} WHERE tuning_job = ? AND number = ?",
                     [*fields.values(), tuning_job, number])


def job_pid(catalog, job: str) -> dict | None:
    """The training job of a trial: its row's ``pid`` (None while it is being submitted), or None without a row."""
    return catalog.one("SELECT pid FROM jobs WHERE name = ?", (job,))


def record_remote_trials(catalog, tuning_row: dict, reported: list[dict]) -> None:
    """Trials a remote tuning job reports (each with ``hyperparameters_json`` added) become training jobs of the
    catalog and trial rows, in one transaction; a job already known keeps its record."""
    ds = catalog.one("SELECT sha256 FROM datasets WHERE name = ?", (tuning_row["dataset"],))
    name = tuning_row["name"]
    with catalog.tx() as conn:
        numbers = {r["job"]: r["number"] for r in conn.execute(
            "SELECT job, number FROM tuning_trials WHERE tuning_job = ?", (name,)).fetchall()}
        next_number = max(numbers.values(), default=0) + 1
        rowless = set()  # jobs whose trial row could not be inserted (its number was taken): nothing to copy
        for trial in reported:
            conn.execute(
                "INSERT OR IGNORE INTO jobs (name, backend, dataset, dataset_sha256, algorithm, "
                "hyperparameters_json, status, secondary_status, created_at, code_sha256, instance_type, "
                "instance_count, arn, created_by) "
                "VALUES (?, ?, ?, ?, ?, ?, 'InProgress', 'Starting', ?, ?, ?, 1, ?, ?)",
                (trial["job"], tuning_row["backend"], tuning_row["dataset"], ds["sha256"] if ds else "",
                 tuning_row["algorithm"], trial["hyperparameters_json"], trial.get("created_at") or time.time(),
                 tuning_row["code_sha256"], tuning_row["instance_type"], trial.get("arn", ""),
                 tuning_row.get("created_by") or ""))
            number = numbers.get(trial["job"])
            if number is None:
                number = numbers[trial["job"]] = trial.get("number") or next_number
                next_number = max(next_number, number) + 1
                if not conn.execute(
                    "INSERT OR IGNORE INTO tuning_trials (tuning_job, number, job, params_json, status, created_at)"
                    " VALUES (?, ?, ?, ?, ?, ?)", (name, number, trial["job"], trial["params_json"],
                                                  trial["status"], trial.get("created_at") or time.time())).rowcount:
                    rowless.add(trial["job"])
            if trial["job"] not in rowless:
                _copy_remote_trial(conn, name, number, trial)


def _copy_remote_trial(conn: sqlite3.Connection, name: str, number: int, trial: dict) -> None:
    if trial["status"] in outcomes.TERMINAL:
        outcomes.finish_trial(conn, name, number, trial["status"], trial.get("failure_reason", ""),
                              objective=trial.get("objective"), ended_at=trial.get("ended_at"),
                              params_json=trial["params_json"])
        return
    conn.execute(
        "UPDATE tuning_trials SET status = ?, objective = ?, failure_reason = ?, ended_at = ?, "
        "params_json = ? WHERE tuning_job = ? AND job = ?",
        (trial["status"], trial.get("objective"), trial.get("failure_reason", ""), trial.get("ended_at"),
         trial["params_json"], name, trial["job"]))
