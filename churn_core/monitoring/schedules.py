"""Monitoring schedules: one scheduler process per state folder runs every endpoint's drift report every N minutes
(``monitor_driver``); this module sets schedules, keeps the scheduler running and says how their runs went."""

from __future__ import annotations

import pandas as pd

from churn_core.catalog import monitoring_records as records
from churn_core.catalog.database import loads
from churn_core.errors import NotFoundError, ValidationError
from churn_core.monitoring import drift
from churn_core.monitoring.scheduler_lock import is_running
from churn_core.processes.detached import spawn_detached

RUNS_SHOWN = 20


class Schedules:
    def __init__(self, catalog, home):
        self.catalog = catalog
        self.home = home

    def set(self, endpoint: str, every_minutes: float) -> dict:
        """Run a drift report on the newest captured window every ``every_minutes`` (0 removes the schedule)."""
        if not records.endpoint_exists(self.catalog, endpoint):
            raise NotFoundError(f"No endpoint named {endpoint!r}; pick one on the Monitor page.")
        every = float(every_minutes)
        if every and not 0.05 <= every <= 7 * 24 * 60:
            raise ValidationError("A schedule runs every 3 seconds (0.05 minutes) to every 7 days (0 removes it).")
        records.replace_schedule(self.catalog, endpoint, every,
                                 f"drift report every {every:g} min" if every else "drift schedule removed")
        if every:
            self.reconcile()  # the scheduler exits when it has nothing left to run
        return self.get(endpoint) or {}

    def get(self, endpoint: str) -> dict | None:
        """The endpoint's drift report schedule (every_minutes, last_run_at, last_error, pid of the scheduler) and
        its recent ``runs`` (started_at, outcome, detail; newest first), or None."""
        row = records.schedule(self.catalog, endpoint)
        return dict(row, runs=records.runs(self.catalog, endpoint, RUNS_SHOWN)) if row else None

    def reconcile(self) -> None:
        """Schedules without a running scheduler (killed, machine restarted, never started) get one."""
        if records.schedules(self.catalog) and not is_running(self.home):
            spawn_detached(["-m", "churn_core.monitoring.monitor_driver", "--home", str(self.home)],
                           self.home / "monitoring" / "scheduler.log")

    def badge(self, endpoint: str) -> str:
        """A few words for the endpoint's monitoring: its scheduled run's failure with the cause when the last one
        failed, else its latest drift report: "drift: A, B", "no drift" or "—" (none yet)."""
        schedule = records.schedule(self.catalog, endpoint)
        if schedule and schedule["last_error"]:
            return f"scheduled report {schedule['last_error']}"
        latest = records.latest_report(self.catalog, endpoint)
        if latest is None:
            return "—"
        names = loads(latest["drifted_json"], [])
        if names:
            return f"drift: {', '.join(names)}"
        verdict = drift.verdict(pd.DataFrame(loads(latest["report_json"], [])))
        return "drift: model output" if verdict.startswith("drift") else verdict
