"""Drift reports and monitoring schedules as the catalog records them (``drift_reports``, ``monitoring_schedules``).

What a report measures lives in ``churn_core.monitoring``; this module only reads and writes rows.
"""

from __future__ import annotations

import time


# ---- drift reports -------------------------------------------------------------------------------------------


def record_report(catalog, endpoint: str, model: str, source: str, start: float | None, end: float, rows: int,
                  drifted_json: str, report_json: str, violations_key: str) -> None:
    with catalog.tx() as conn:
        conn.execute(
            "INSERT INTO drift_reports (endpoint, model, source, created_at, window_start, window_end, rows, "
            "drifted_json, report_json, violations_key) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (endpoint, model, source, end, start, end, rows, drifted_json, report_json, violations_key))


def reports(catalog, endpoint: str, limit: int) -> list[dict]:
    """An endpoint's drift reports, newest first."""
    return catalog.query("SELECT * FROM drift_reports WHERE endpoint = ? ORDER BY id DESC LIMIT ?",
                         (endpoint, limit))


def latest_drifted_json(catalog, endpoint: str) -> str | None:
    """The drifted features (JSON) of the endpoint's latest report; None without one."""
    row = catalog.one("SELECT drifted_json FROM drift_reports WHERE endpoint = ? ORDER BY id DESC LIMIT 1",
                      (endpoint,))
    return row["drifted_json"] if row else None


# ---- the endpoints monitoring reads ----------------------------------------------------------------------------


def endpoint_exists(catalog, endpoint: str) -> bool:
    return catalog.one("SELECT name FROM endpoints WHERE name = ?", (endpoint,)) is not None


def endpoint_model(catalog, endpoint: str) -> dict | None:
    """The endpoint's row with its ``model`` (None: no such endpoint)."""
    return catalog.one("SELECT model FROM endpoints WHERE name = ?", (endpoint,))


# ---- schedules -----------------------------------------------------------------------------------------------


def schedule(catalog, endpoint: str) -> dict | None:
    return catalog.one("SELECT * FROM monitoring_schedules WHERE endpoint = ?", (endpoint,))


def schedules(catalog) -> list[dict]:
    """Endpoint and pid of every schedule."""
    return catalog.query("SELECT endpoint, pid FROM monitoring_schedules")


def replace_schedule(catalog, endpoint: str, every_minutes: float, event: str) -> None:
    """The endpoint's schedule replaced by one every ``every_minutes`` (0: none), with its event, in one transaction."""
    with catalog.tx() as conn:
        conn.execute("DELETE FROM monitoring_schedules WHERE endpoint = ?", (endpoint,))
        if every_minutes:
            conn.execute("INSERT INTO monitoring_schedules (endpoint, every_minutes, created_at) VALUES (?, ?, ?)",
                         (endpoint, every_minutes, time.time()))
        catalog.event("endpoint", endpoint, event, conn)


def set_schedule_pid(catalog, endpoint: str, pid: int) -> None:
    with catalog.tx() as conn:
        conn.execute("UPDATE monitoring_schedules SET pid = ? WHERE endpoint = ?", (pid, endpoint))


def end_schedule(catalog, endpoint: str, pid: int) -> None:
    """Remove the schedule, if the process ``pid`` still runs it."""
    with catalog.tx() as conn:
        conn.execute("DELETE FROM monitoring_schedules WHERE endpoint = ? AND pid = ?", (endpoint, pid))


def schedule_ran(catalog, endpoint: str, at: float) -> None:
    """A scheduled report was recorded: the next window starts at ``at``."""
    with catalog.tx() as conn:
        conn.execute("UPDATE monitoring_schedules SET last_run_at = ?, last_error = '' WHERE endpoint = ?",
                     (at, endpoint))


def schedule_failed(catalog, endpoint: str, error: str) -> None:
    """No report this time (e.g. too little traffic): the window keeps growing until the next try."""
    with catalog.tx() as conn:
        conn.execute("UPDATE monitoring_schedules SET last_error = ? WHERE endpoint = ?", (error, endpoint))
