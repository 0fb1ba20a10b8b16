"""How a job ends: the one writer of a job's terminal state, for every job kind and both backends.

Training jobs, transform jobs, tuning jobs and tuning trials end here and nowhere else, so "Failed
always carries a reason", "an ended job stays ended" and "the event is recorded" hold for all of them.
"""

from __future__ import annotations

import sqlite3
import time
from contextlib import contextmanager
from typing import Any, Iterator

from churn_core.errors import BackendError, ChurnError

from churn_core.catalog import kept_records

TERMINAL = ("Completed", "Failed", "Stopped")

# kind -> (table, the event kind its events are filed under)
KINDS = {
    "training": ("jobs", "job"),
    "transform": ("transforms", "transform"),
    "tuning": ("tuning_jobs", "tuning"),
}


def _ending(status: str, reason: str, fields: dict, now: float) -> dict[str, Any]:
    """The columns every ending sets: the status, when (``ended_at`` given or now), and why (a Failed ending
    always says something)."""
    if status not in TERMINAL:
        raise ValueError(f"{status!r} is not a terminal state; terminal states are {', '.join(TERMINAL)}")
    values: dict[str, Any] = {"status": status, "ended_at": fields.pop("ended_at", None) or now, **fields}
    if reason or status == "Failed":
        values["failure_reason"] = reason or "it failed without saying why"
    return values


def finish(catalog, kind: str, name: str, status: str, reason: str = "", *, conn: sqlite3.Connection | None = None,
           once: bool = False, event: str | None = None, **fields: Any) -> bool:
    """Set job ``name`` of ``kind`` to the terminal ``status`` with its ``reason`` (and other ``fields``, e.g.
    metrics or output keys), record ``event`` (when given) and return True; with ``once``, a job that has
    already ended is left as it is (False). ``conn`` joins a transaction the caller holds."""
    table, event_kind = KINDS[kind]
    now = time.time()
    values = _ending(status, reason, fields, now)
    if kind == "training":
        values.setdefault("secondary_status", status)
    if kind == "transform":
        values.setdefault("updated_at", now)
    cols = ", ".join(f"{key} = ?" for key in values)
    guard = f" AND status NOT IN ({', '.join('?' * len(TERMINAL))})" if once else ""
    args = [*values.values(), name, *(TERMINAL if once else ())]
    message = event

    def write(c: sqlite3.Connection) -> bool:
        changed = c.execute(f"UPDATE {table} SET {cols} WHERE name = ?{guard}", args).rowcount
        if changed and message:
            catalog.event(event_kind, name, message, c)
        if changed:  # a local transform's or tuning job's ending is kept next to it too (a restore finds it)
            kept_records.keep(catalog, kind, name, c)
        return bool(changed)

    if conn is not None:
        return write(conn)
    with catalog.tx() as own:
        return write(own)


def finish_trial(conn: sqlite3.Connection, tuning_job: str, number: int, status: str, reason: str = "",
                 **fields: Any) -> bool:
    """A tuning trial's terminal state (its own table: keyed by tuning job and number), in the caller's transaction."""
    values = _ending(status, reason, fields, time.time())
    cols = ", ".join(f"{key} = ?" for key in values)
    return bool(conn.execute(f"UPDATE tuning_trials SET {cols} WHERE tuning_job = ? AND number = ?",
                             [*values.values(), tuning_job, number]).rowcount)


def apply(catalog, kind: str, name: str, fields: dict, conn: sqlite3.Connection | None = None) -> None:
    """Apply the fields a backend reported for a job: a terminal status goes through ``finish`` (with the job's
    reason), anything else is a plain update."""
    if not fields:
        return
    fields = dict(fields)
    status = fields.get("status")
    if status in TERMINAL:
        fields.pop("status")
        reason = fields.pop("failure_reason", "")
        finish(catalog, kind, name, status, reason, conn=conn, **fields)
        return
    table = KINDS[kind][0]
    if conn is not None:
        cols = ", ".join(f"{key} = ?" for key in fields)
        conn.execute(f"UPDATE {table} SET {cols} WHERE name = ?", [*fields.values(), name])
    else:
        catalog.update(table, name, **fields)


@contextmanager
def failed_if_not_started(catalog, kind: str, name: str, what: str) -> Iterator[None]:
    """A job whose start raises ends Failed with the reason, never stays InProgress: a user's error (ChurnError)
    as it is, anything else as a BackendError naming the ``what`` (e.g. "training job") that could not start."""
    try:
        yield
    except ChurnError as exc:
        finish(catalog, kind, name, "Failed", str(exc), event=f"Failed: {exc}")
        raise
    except Exception as exc:
        reason = f"could not start: {exc}"
        finish(catalog, kind, name, "Failed", reason, event=f"Failed: {reason}")
        raise BackendError(f"Could not start {what} {name}: {exc}") from exc
