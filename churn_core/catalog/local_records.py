"""What the local backend records about its processes and runs: pids, ports, exit codes, restarts, and the
outcomes its job drivers left on disk.

The job drivers, the transform driver, the endpoint supervisors and the local backend's reconcile read and
write their rows through these functions; a job's terminal state still goes through ``outcomes``, here
only guarded by the status the caller saw (read in the same transaction).
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from churn_core.catalog import outcomes

ACTIVE = ("InProgress", "Stopping")


def _one(catalog, sql: str, args: tuple, conn: sqlite3.Connection | None) -> dict | None:
    return conn.execute(sql, args).fetchone() if conn is not None else catalog.one(sql, args)


# ---- jobs and transforms alike (kind: "training" or "transform", as in outcomes) ---------------------------
def running_local(catalog, kind: str) -> list[dict]:
    """The local jobs of ``kind`` not ended yet (name, pid, status): those a reconcile checks for a live driver."""
    table = outcomes.KINDS[kind][0]
    return catalog.query(f"SELECT name, pid, status FROM {table} WHERE backend = 'local' "
                         "AND status IN ('InProgress', 'Stopping')")


def status(catalog, kind: str, name: str, conn: sqlite3.Connection | None = None) -> str | None:
    """The job's status now (None when it has no row)."""
    row = _one(catalog, f"SELECT status FROM {outcomes.KINDS[kind][0]} WHERE name = ?", (name,), conn)
    return row["status"] if row else None


def end_if(catalog, kind: str, name: str, state: str, reason: str = "", *, was: tuple[str, ...],
           conn: sqlite3.Connection | None = None, event: str | None = None, **fields: Any) -> bool:
    """End the job with ``outcomes.finish`` only while its status is one of ``was`` (read in the same
    transaction); True if it was ended."""
    def write(c: sqlite3.Connection) -> bool:
        if status(catalog, kind, name, c) not in was:
            return False
        return outcomes.finish(catalog, kind, name, state, reason, conn=c, event=event, **fields)

    if conn is not None:
        return write(conn)
    with catalog.tx() as own:
        return write(own)


# ---- training jobs ------------------------------------------------------------------------------------
def job(catalog, name: str) -> dict | None:
    return catalog.one("SELECT * FROM jobs WHERE name = ?", (name,))


def dataset(catalog, name: str) -> dict | None:
    """The dataset a job trains on (its channel keys)."""
    return catalog.one("SELECT * FROM datasets WHERE name = ?", (name,))


def claim_training_slot(catalog, name: str, max_concurrent: int) -> str:
    """One transaction: 'started' when the job is first in line and a slot is free (it now holds one),
    'wait' when not yet, 'gone' when it is no longer InProgress (stopped or deleted meanwhile). The job is
    Downloading until its driver has copied its input in (then Training)."""
    with catalog.tx() as conn:
        if status(catalog, "training", name, conn) != "InProgress":
            return "gone"
        running = conn.execute(
            "SELECT COUNT(*) AS n FROM jobs WHERE backend = 'local' AND status IN ('InProgress', 'Stopping') "
            "AND secondary_status IN ('Downloading', 'Training', 'Uploading')"
        ).fetchone()["n"]
        first = conn.execute(
            "SELECT name FROM jobs WHERE backend = 'local' AND status = 'InProgress' "
            "AND secondary_status = 'Starting' ORDER BY created_at, rowid LIMIT 1"
        ).fetchone()
        if running < max_concurrent and first and first["name"] == name:
            conn.execute("UPDATE jobs SET secondary_status = 'Downloading', started_at = ? WHERE name = ?",
                         (time.time(), name))
            return "started"
    return "wait"


_COMPLETED_FIELDS = ("metrics_json", "model_key", "model_sha256", "output_key", "output_sha256")


def record_job_outcome(catalog, name: str, outcome: dict, note: str = "", *,
                       conn: sqlite3.Connection | None = None) -> bool:
    """Apply a driver's ``outcome`` (job_outcome's file) to the job ``name`` if it has not ended yet; a
    Completed one also records its model. True if it was applied."""
    state = outcome["status"]
    ended = float(outcome.get("ended_at") or time.time())
    fields: dict[str, Any] = {"ended_at": ended}
    reason = ""
    if state == "Completed":
        made = {k: outcome.get(k) or "" for k in _COMPLETED_FIELDS}
        made["metrics_json"] = made["metrics_json"] or "{}"
        fields.update(exit_code=0, **made)
        message = f"Completed; model.tar.gz sha256 {made['model_sha256'][:12]}…"
    elif state == "Failed":
        reason = outcome.get("reason") or "the training failed"
        fields["exit_code"] = outcome.get("exit_code")
        message = f"Failed: {reason}"
    else:
        message = "Stopped"
    message += f" ({note})" if note else ""

    def write(c: sqlite3.Connection) -> bool:
        if not outcomes.finish(catalog, "training", name, state, reason, conn=c, once=True, event=message, **fields):
            return False
        if state == "Completed":
            row = c.execute("SELECT * FROM jobs WHERE name = ?", (name,)).fetchone()
            c.execute(
                "INSERT OR REPLACE INTO models (name, job, dataset, dataset_sha256, algorithm, hyperparameters_json, "
                "code_sha256, artifact_key, artifact_sha256, metrics_json, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (name, name, row["dataset"], row["dataset_sha256"], row["algorithm"], row["hyperparameters_json"],
                 row["code_sha256"], fields["model_key"], fields["model_sha256"], fields["metrics_json"], ended),
            )
        return True

    if conn is not None:
        return write(conn)
    with catalog.tx() as own:
        return write(own)


# ---- transform jobs -----------------------------------------------------------------------------------
def transform(catalog, name: str) -> dict | None:
    return catalog.one("SELECT * FROM transforms WHERE name = ?", (name,))


def model(catalog, name: str) -> dict | None:
    """The trained model a transform scores with (its artifact key and SHA-256)."""
    return catalog.one("SELECT * FROM models WHERE name = ?", (name,))


# ---- local endpoints: one row per deploy (name and uid), its supervisor, server, port and restarts --------
def local_endpoints(catalog) -> list[dict]:
    return catalog.query("SELECT * FROM endpoints WHERE backend = 'local'")


def local_endpoint_names(catalog) -> set[str]:
    return {r["name"] for r in catalog.query("SELECT name FROM endpoints WHERE backend = 'local'")}


def live_local_endpoints(catalog) -> set[tuple[str, str]]:
    """(name, uid) of the local endpoints whose processes are wanted (not Failed)."""
    return {(r["name"], r["uid"]) for r in catalog.query(
        "SELECT name, uid FROM endpoints WHERE backend = 'local' AND status IN ('Creating', 'InService', "
        "'Updating', 'Deleting')")}


def endpoint_keys(catalog) -> set[tuple[str, str]]:
    """(name, uid) of every endpoint row: a folder ``NAME.UID`` none of them has is an orphan."""
    return {(r["name"], r["uid"]) for r in catalog.query("SELECT name, uid FROM endpoints")}


def endpoint(catalog, name: str, uid: str | None = None, conn: sqlite3.Connection | None = None) -> dict | None:
    """The endpoint row ``name`` (the row of that deploy when ``uid`` is given)."""
    if uid is None:
        return _one(catalog, "SELECT * FROM endpoints WHERE name = ?", (name,), conn)
    return _one(catalog, "SELECT * FROM endpoints WHERE name = ? AND uid = ?", (name, uid), conn)


def replace_supervisor(catalog, name: str, uid: str, pid: int, *, conn: sqlite3.Connection) -> None:
    """The supervisor started in place of one that vanished: its pid, one more restart, and the event."""
    conn.execute("UPDATE endpoints SET pid = ?, restarts = restarts + 1, updated_at = ? WHERE name = ? AND uid = ?",
                 (pid, time.time(), name, uid))
    catalog.event("endpoint", name, "supervisor process was gone; restarted it", conn)


def set_endpoint(catalog, name: str, uid: str, **fields: Any) -> None:
    """Columns of the endpoint row of this deploy (its server pid, port, url)."""
    cols = ", ".join(f"{key} = ?" for key in fields)
    with catalog.tx() as conn:
        conn.execute(f"UPDATE endpoints SET {cols} WHERE name = ? AND uid = ?", [*fields.values(), name, uid])


def endpoint_failed(catalog, name: str, uid: str, reason: str, event: str) -> bool:
    """The endpoint of this deploy is Failed with ``reason``; ``event`` recorded if the row was there."""
    with catalog.tx() as conn:
        changed = conn.execute(
            "UPDATE endpoints SET status='Failed', failure_reason=?, updated_at=? WHERE name=? AND uid=?",
            (reason, time.time(), name, uid),
        ).rowcount
        if changed:
            catalog.event("endpoint", name, event, conn)
    return bool(changed)


def endpoint_in_service(catalog, name: str, uid: str) -> bool:
    """Creating → InService (and the event); an endpoint in any other state is left as it is."""
    with catalog.tx() as conn:
        row = endpoint(catalog, name, uid, conn)
        if not row or row["status"] != "Creating":
            return False
        now = time.time()
        conn.execute("UPDATE endpoints SET status='InService', in_service_at=?, updated_at=? WHERE name=? AND uid=?",
                     (now, now, name, uid))
        catalog.event("endpoint", name, "InService", conn)
    return True


def server_restarted(catalog, name: str, uid: str, at: float, event: str) -> None:
    """One more restart of the endpoint's model server, and the event saying why."""
    with catalog.tx() as conn:
        conn.execute("UPDATE endpoints SET restarts = restarts + 1, updated_at=? WHERE name=? AND uid=?",
                     (at, name, uid))
        catalog.event("endpoint", name, event, conn)
