"""The monitoring schedule of one endpoint: a drift report on the newest window, every N minutes.

``python -m churn_core.monitoring.monitor_driver --home H --endpoint NAME`` (the backend's settings come from
the environment it was started with, as the dashboard's).

A light detached process like the endpoint supervisor (it survives dashboard restarts; a
dashboard that finds it dead starts another). Each run compares the requests captured since
the previous run with the model's baseline and records the result; a window with too little
traffic is recorded as such, not as a failure. It exits when its schedule or endpoint is gone.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

from churn_core.catalog import monitoring_records as records
from churn_core.storage.private_files import set_process_umask

TICK_SECONDS = 0.5


class ScheduleDriver:
    def __init__(self, home: Path, endpoint: str):
        os.environ["CHURN_HOME"] = str(home)
        import churn_core

        self.platform = churn_core.connect()
        self.endpoint = endpoint
        self.stopping = False

    def log(self, message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)

    def schedule(self) -> dict | None:
        return records.schedule(self.platform.catalog, self.endpoint)

    def run(self) -> int:
        from churn_core.errors import ChurnError

        signal.signal(signal.SIGTERM, lambda *_: setattr(self, "stopping", True))
        catalog = self.platform.catalog
        deadline = time.monotonic() + 10.0  # the starter records this process's pid just after starting it
        while time.monotonic() < deadline and (self.schedule() or {}).get("pid") not in (os.getpid(), None) \
                and not self.stopping:
            time.sleep(0.05)
        last_attempt = 0.0
        while not self.stopping:
            schedule = self.schedule()
            if schedule is None or schedule["pid"] != os.getpid():
                self.log("schedule removed or taken over; exiting")
                return 0
            if not records.endpoint_exists(catalog, self.endpoint):
                records.end_schedule(catalog, self.endpoint, os.getpid())
                self.log("endpoint deleted; schedule ended (its captured data stays)")
                return 0
            every = float(schedule["every_minutes"]) * 60.0
            since = schedule["last_run_at"] or schedule["created_at"]  # the window since the last report
            if time.time() - max(since, last_attempt) >= every:
                last_attempt = started = time.time()
                try:
                    result = self.platform.drift_report(endpoint=self.endpoint, since=since)
                    drifted = sorted(set(result.loc[result["drifted"], "feature"])) if len(result) else []
                    self.log(f"drift report: {len(drifted)} drifted feature(s) {', '.join(drifted)}")
                except ChurnError as exc:  # too little traffic yet: the window grows until the next try
                    self.log(f"no report yet: {exc}")
                    records.schedule_failed(catalog, self.endpoint, str(exc))
                else:
                    records.schedule_ran(catalog, self.endpoint, started)
            time.sleep(TICK_SECONDS)
        return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--home", required=True)
    parser.add_argument("--endpoint", required=True)
    opts = parser.parse_args(argv)
    set_process_umask()  # its reports and log are private, like every process the product starts
    return ScheduleDriver(Path(opts.home), opts.endpoint).run()


if __name__ == "__main__":
    sys.exit(main())
