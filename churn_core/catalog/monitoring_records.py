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


def latest_report(catalog, endpoint: str) -> dict | None:
    """The drifted features and the rows (JSON) of the endpoint's latest report; None without one."""
    return catalog.one("SELECT drifted_json, report_json FROM drift_reports WHERE endpoint = ? ORDER BY id DESC "
                       "LIMIT 1", (endpoint,))


# ---- the endpoints monitoring reads ----------------------------------------------------------------------------


def endpoint_exists(catalog, endpoint: str) -> bool:
    return catalog.one("SELECT name FROM endpoints WHERE name = ?", (endpoint,)) is not None


def endpoint_model(catalog, endpoint: str) -> dict | None:
    """The endpoint's row with its ``model`` (None: no such endpoint)."""
    return catalog.one("SELECT model, capture_percent FROM endpoints WHERE name = ?", (endpoint,))


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


def schedule_endpoints(catalog) -> list[dict]:
    """Every schedule (endpoint, every_minutes, created_at, last_run_at), for the one scheduler process."""
    return catalog.query("SELECT * FROM monitoring_schedules ORDER BY endpoint")


# ---- scheduled runs and their outcomes -------------------------------------------------------------------------


def record_run(catalog, endpoint: str, started: float, outcome: str, detail: str) -> None:
    """One scheduled run: ``outcome`` is "report", "not enough data", "no data" or "failed"; ``detail`` its verdict
    or its cause (kept as the schedule's ``last_error`` until a report succeeds)."""
    with catalog.tx() as conn:
        conn.execute("INSERT INTO monitoring_runs (endpoint, started_at, finished_at, outcome, detail) "
                     "VALUES (?,?,?,?,?)", (endpoint, started, time.time(), outcome, detail))
        conn.execute("UPDATE monitoring_schedules SET last_error = ? WHERE endpoint = ?",
                     ("" if outcome == "report" else f"{outcome}: {detail}", endpoint))


def runs(catalog, endpoint: str, limit: int) -> list[dict]:
    """An endpoint's scheduled runs, newest first."""
    return catalog.query("SELECT * FROM monitoring_runs WHERE endpoint = ? ORDER BY id DESC LIMIT ?",
                         (endpoint, limit))


# ---- each model's drift thresholds, with their history -----------------------------------------------------------


def add_thresholds(catalog, model: str, thresholds_json: str, note: str, by: str) -> None:
    with catalog.tx() as conn:
        conn.execute("INSERT INTO drift_thresholds (model, thresholds_json, note, set_by, set_at) VALUES (?,?,?,?,?)",
                     (model, thresholds_json, note, by, time.time()))
        catalog.event("model", model, f"drift thresholds set: {thresholds_json}", conn)


def thresholds_history(catalog, model: str) -> list[dict]:
    """The model's threshold changes, newest first."""
    return catalog.query("SELECT * FROM drift_thresholds WHERE model = ? ORDER BY id DESC", (model,))


# ---- monitoring settings (the alert webhook) ---------------------------------------------------------------------


def setting(catalog, key: str) -> str | None:
    row = catalog.one("SELECT value FROM monitoring_settings WHERE key = ?", (key,))
    return row["value"] if row else None


def set_setting(catalog, key: str, value: str) -> None:
    with catalog.tx() as conn:
        conn.execute("INSERT INTO monitoring_settings (key, value, set_at) VALUES (?,?,?) ON CONFLICT(key) DO UPDATE "
                     "SET value = excluded.value, set_at = excluded.set_at", (key, value, time.time()))
        catalog.event("settings", key, "alert webhook changed", conn)


def last_report_times(catalog) -> list[dict]:
    """Per endpoint, its latest report's time and rows (the /metrics gauges)."""
    return catalog.query("SELECT endpoint, MAX(created_at) AS at FROM drift_reports WHERE endpoint != '' "
                         "GROUP BY endpoint")
