"""Monitoring schedules: a detached process per scheduled endpoint runs a drift report every N minutes."""

from __future__ import annotations

from churn_core.catalog import monitoring_records as records
from churn_core.catalog.database import loads
from churn_core.errors import ValidationError
from churn_core.processes.detached import is_alive, kill_group, spawn_detached


class Schedules:
    def __init__(self, catalog, home):
        self.catalog = catalog
        self.home = home

    def set(self, endpoint: str, every_minutes: float) -> dict:
        """Run a drift report on the newest captured window every ``every_minutes`` (0 removes the schedule)."""
        every = float(every_minutes)
        if every and not 0.05 <= every <= 7 * 24 * 60:
            raise ValidationError("A schedule runs every 3 seconds (0.05 minutes) to every 7 days (0 removes it).")
        old = records.schedule(self.catalog, endpoint)
        records.replace_schedule(self.catalog, endpoint, every,
                                 f"drift report every {every:g} min" if every else "drift schedule removed")
        if old and old["pid"]:
            kill_group(old["pid"], grace=2.0)
        if every:
            self._start(endpoint)
        return records.schedule(self.catalog, endpoint) or {}

    def _start(self, endpoint: str) -> None:
        log = self.home / "monitoring" / f"{endpoint}.log"
        pid = spawn_detached(["-m", "churn_core.monitoring.monitor_driver", "--home", str(self.home),
                              "--endpoint", endpoint], log)
        records.set_schedule_pid(self.catalog, endpoint, pid)

    def get(self, endpoint: str) -> dict | None:
        """The endpoint's drift report schedule (every_minutes, last_run_at, last_error, pid), or None."""
        return records.schedule(self.catalog, endpoint)

    def reconcile(self) -> None:
        """A schedule whose process is gone (killed, machine restarted) gets a new one."""
        for row in records.schedules(self.catalog):
            if not is_alive(row["pid"], "monitor_driver"):
                self._start(row["endpoint"])

    def badge(self, endpoint: str) -> str:
        """One word for the endpoint's latest drift report: "drift: A, B", "no drift" or "—" (none yet)."""
        drifted = records.latest_drifted_json(self.catalog, endpoint)
        if drifted is None:
            return "—"
        names = loads(drifted, [])
        return f"drift: {', '.join(names)}" if names else "no drift"
