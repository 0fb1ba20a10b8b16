"""Monitoring schedule records (one per endpoint) and the latest drift verdict shown beside an endpoint."""

from __future__ import annotations

import time

from churn_core.catalog.database import Catalog, loads


def schedule(catalog: Catalog, endpoint: str) -> dict | None:
    return catalog.one("SELECT * FROM monitoring_schedules WHERE endpoint = ?", (endpoint,))


def schedules(catalog: Catalog) -> list[dict]:
    return catalog.query("SELECT endpoint, pid FROM monitoring_schedules")


def replace_schedule(catalog: Catalog, endpoint: str, every_minutes: float, message: str) -> None:
    """The endpoint's schedule set to ``every_minutes`` (0 removes it), with an event, in one transaction."""
    with catalog.tx() as conn:
        conn.execute("DELETE FROM monitoring_schedules WHERE endpoint = ?", (endpoint,))
        if every_minutes:
            conn.execute("INSERT INTO monitoring_schedules (endpoint, every_minutes, created_at) VALUES (?, ?, ?)",
                         (endpoint, every_minutes, time.time()))
        catalog.event("endpoint", endpoint, message, conn)


def set_schedule_pid(catalog: Catalog, endpoint: str, pid: int) -> None:
    with catalog.tx() as conn:
        conn.execute("UPDATE monitoring_schedules SET pid = ? WHERE endpoint = ?", (pid, endpoint))


def latest_drifted(catalog: Catalog, endpoint: str) -> list[str] | None:
    """The features the endpoint's latest drift report flagged ([] for none), or None before any report."""
    row = catalog.one("SELECT drifted_json FROM drift_reports WHERE endpoint = ? ORDER BY id DESC LIMIT 1",
                      (endpoint,))
    return None if row is None else loads(row["drifted_json"], [])
