"""How a local training job ended, written next to it before it is recorded, so no outcome is lost.

The job driver writes ``jobs/<name>/outcome.json`` (``0600``) first and records the outcome in the catalog
second. When the catalog cannot be written at that moment (damaged, replaced, full disk), the driver says so
in its log and exits; the next status read (``reconcile_jobs``) finds the driver gone and records the outcome
from the file: a trained model stays a Completed job with its model, a failure keeps its true reason, instead
of "the training process exited unexpectedly (exit code 1)".
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

from churn_core.storage.private_files import write_text

FILE = "outcome.json"
_COMPLETED_FIELDS = ("metrics_json", "model_key", "model_sha256", "output_key", "output_sha256")


def path(job_folder: Path) -> Path:
    return Path(job_folder) / FILE


def write(job_folder: Path, outcome: dict) -> None:
    write_text(path(job_folder), json.dumps(dict(outcome, written_at=time.time()), indent=1))


def read(job_folder: Path) -> dict | None:
    try:
        outcome = json.loads(path(job_folder).read_text())
    except (OSError, ValueError):
        return None
    return outcome if isinstance(outcome, dict) and outcome.get("status") in ("Completed", "Failed", "Stopped") \
        else None


def clear(job_folder: Path) -> None:
    path(job_folder).unlink(missing_ok=True)


def record(conn: sqlite3.Connection, name: str, outcome: dict, note: str = "") -> bool:
    """Apply ``outcome`` to the job ``name`` if it is still running (InProgress/Stopping); True if it was."""
    status = outcome["status"]
    ended = float(outcome.get("ended_at") or time.time())
    if status == "Completed":
        fields = {k: outcome.get(k) or "" for k in _COMPLETED_FIELDS}
        changed = conn.execute(
            "UPDATE jobs SET status = 'Completed', secondary_status = 'Completed', ended_at = ?, exit_code = 0, "
            "metrics_json = ?, model_key = ?, model_sha256 = ?, output_key = ?, output_sha256 = ? "
            "WHERE name = ? AND status IN ('InProgress', 'Stopping')",
            (ended, fields["metrics_json"] or "{}", fields["model_key"], fields["model_sha256"], fields["output_key"],
             fields["output_sha256"], name),
        ).rowcount
        if changed:
            job = conn.execute("SELECT * FROM jobs WHERE name = ?", (name,)).fetchone()
            conn.execute(
                "INSERT OR REPLACE INTO models (name, job, dataset, dataset_sha256, algorithm, hyperparameters_json, "
                "code_sha256, artifact_key, artifact_sha256, metrics_json, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (name, name, job["dataset"], job["dataset_sha256"], job["algorithm"], job["hyperparameters_json"],
                 job["code_sha256"], fields["model_key"], fields["model_sha256"], fields["metrics_json"] or "{}",
                 ended),
            )
            message = f"Completed; model.tar.gz sha256 {fields['model_sha256'][:12]}…"
    elif status == "Failed":
        reason = outcome.get("reason") or "the training failed"
        changed = conn.execute(
            "UPDATE jobs SET status = 'Failed', secondary_status = 'Failed', failure_reason = ?, ended_at = ?, "
            "exit_code = ? WHERE name = ? AND status IN ('InProgress', 'Stopping')",
            (reason, ended, outcome.get("exit_code"), name),
        ).rowcount
        message = f"Failed: {reason}"
    else:
        changed = conn.execute(
            "UPDATE jobs SET status = 'Stopped', secondary_status = 'Stopped', ended_at = ? "
            "WHERE name = ? AND status IN ('InProgress', 'Stopping')",
            (ended, name),
        ).rowcount
        message = "Stopped"
    if changed:
        conn.execute("INSERT INTO events (at, kind, name, message) VALUES (?, 'job', ?, ?)",
                     (time.time(), name, message + (f" ({note})" if note else "")))
    return bool(changed)
