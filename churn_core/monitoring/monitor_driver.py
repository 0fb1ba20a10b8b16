"""The one monitoring scheduler of a state folder: every endpoint's drift report schedule, in one process.

``python -m churn_core.monitoring.monitor_driver --home H`` (the backend's settings come from the
environment it was started with, as the dashboard's).

A light detached process (it survives dashboard restarts); it holds an exclusive lock on
``<home>/monitoring/scheduler.lock`` (the kernel drops it when the process dies), so one runs per
state folder and a dashboard that finds the lock free starts another (``Schedules.reconcile``).
It connects once. Each run compares the requests captured since the schedule's previous report with
the model's baseline and is recorded with its outcome (``monitoring_runs``): "report" (with its
verdict; a drifted one is posted to the alert webhook), "not enough data" (the window keeps growing),
"no data" or "failed" with the true cause. Nothing a run raises stops the scheduler. It exits when no
schedule is left.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

from churn_core.catalog import monitoring_records as records
from churn_core.monitoring.scheduler_lock import take_lock
from churn_core.storage.private_files import set_process_umask
from churn_core.wording import plural

TICK_SECONDS = 0.5


class Scheduler:
    def __init__(self, home: Path, lock):
        os.environ["CHURN_HOME"] = str(home)
        import churn_core

        self.home = Path(home)
        self.lock = lock
        self.platform = churn_core.connect()
        self.stopping = False
        self.attempted: dict[str, float] = {}

    def log(self, message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)

    def run(self) -> int:
        signal.signal(signal.SIGTERM, lambda *_: setattr(self, "stopping", True))
        self.lock.seek(0)
        self.lock.truncate()
        self.lock.write(str(os.getpid()))
        self.lock.flush()
        while not self.stopping:
            schedules = records.schedule_endpoints(self.platform.catalog)
            if not schedules and not self._keep_going():
                self.log("no schedule left; exiting")
                return 0
            for schedule in schedules:
                if self.stopping:
                    break
                try:
                    self._tick(schedule)
                except Exception as exc:  # noqa: BLE001 (a run's failure is recorded, never the scheduler's end)
                    self._failed(schedule["endpoint"], time.time(), exc)
            time.sleep(TICK_SECONDS)
        return 0

    def _keep_going(self) -> bool:
        """No schedule: give the lock up, then look once more (a schedule added meanwhile found the lock held)."""
        self.lock.close()
        if not records.schedule_endpoints(self.platform.catalog):
            return False
        self.lock = take_lock(self.home)
        return self.lock is not None

    def _tick(self, schedule: dict) -> None:
        catalog, endpoint = self.platform.catalog, schedule["endpoint"]
        if schedule["pid"] != os.getpid():
            records.set_schedule_pid(catalog, endpoint, os.getpid())
        if not records.endpoint_exists(catalog, endpoint):
            records.end_schedule(catalog, endpoint, os.getpid())
            self.log(f"{endpoint}: endpoint deleted; schedule ended (its captured data stays)")
            return
        every = float(schedule["every_minutes"]) * 60.0
        since = schedule["last_run_at"] or schedule["created_at"]  # the window since the last report
        if time.time() - max(since, self.attempted.get(endpoint, 0.0)) < every:
            return
        started = self.attempted[endpoint] = time.time()
        self.run_once(endpoint, since, started)

    def run_once(self, endpoint: str, since: float, started: float) -> None:
        from churn_core.errors import ChurnError
        from churn_core.monitoring.alerts import drift_text
        from churn_core.monitoring.service import NoCapturedData

        catalog = self.platform.catalog
        try:
            result = self.platform.monitoring.report(endpoint=endpoint, since=since, until=started,
                                                     record_unjudged=False)  # the next window starts at started
        except NoCapturedData as exc:  # no captured customer in the window: said with its cause; the window grows
            records.record_run(catalog, endpoint, started, "no data", str(exc))
            self.log(f"{endpoint}: no report: {exc}")
            return
        except ChurnError as exc:  # the report itself failed: its true cause, beside the endpoint and on Monitor
            records.record_run(catalog, endpoint, started, "failed", str(exc))
            self.log(f"{endpoint}: run failed: {exc}")
            return
        verdict = result.attrs.get("verdict", "")
        skipped = int(result.attrs.get("skipped", 0))
        unreadable = f", {plural(skipped, 'unreadable capture record')} skipped" if skipped else ""
        detail = f"{verdict} ({result.attrs.get('n', 0):,} customers{unreadable})"
        if verdict == "not enough data":
            records.record_run(catalog, endpoint, started, "not enough data", detail)
            return
        records.schedule_ran(catalog, endpoint, started)
        if verdict.startswith("drift"):
            model = (records.endpoint_model(catalog, endpoint) or {}).get("model", "")
            try:
                self.platform.monitoring.alerts.post(drift_text(endpoint, model, verdict, result.attrs.get("n", 0)))
            except ChurnError as exc:
                detail += f"; alert not delivered: {exc}"
        records.record_run(catalog, endpoint, started, "report", detail)
        self.log(f"{endpoint}: {detail}")

    def _failed(self, endpoint: str, started: float, exc: Exception) -> None:
        cause = f"{type(exc).__name__}: {exc}"
        self.log(f"{endpoint}: run failed: {cause}")
        try:
            records.record_run(self.platform.catalog, endpoint, started, "failed", cause[:2000])
        except Exception as again:  # noqa: BLE001 (the catalog itself failing: logged, the next tick retries)
            self.log(f"{endpoint}: could not record the failure: {again}")


LOCK_TRIES = 30  # over 3 s: only a scheduler holds the lock that long


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--home", required=True)
    opts = parser.parse_args(argv)
    set_process_umask()  # its reports and log are private, like every process the product starts
    lock = None
    for _ in range(LOCK_TRIES):  # a connect() probing whether a scheduler runs holds the lock for an instant
        if (lock := take_lock(Path(opts.home))) is not None:
            break
        time.sleep(0.1)
    if lock is None:
        print("another scheduler runs for this state folder; exiting", flush=True)
        return 0
    return Scheduler(Path(opts.home), lock).run()


if __name__ == "__main__":
    sys.exit(main())
