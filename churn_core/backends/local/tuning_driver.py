"""The local tuning job: one detached process per tuning job, as SageMaker runs one behind each.

``python -m churn_core.backends.local.tuning_driver --home H --bucket B --tuning NAME``

It keeps up to ``max_parallel`` trials in flight: asks Optuna for the next configuration
(``churn_core.tuning.search``), submits it as an ordinary training job through the platform (the job
queue then runs it when a slot is free), watches the running trials, records each ending and its
objective, and keeps the counts and the best trial current in the catalog. A stop request (the
record turning ``Stopping``, or SIGTERM) stops the running trials and keeps the finished ones.

Everything it knows is in the catalog, so the dashboard can restart at any time; if this process
dies, ``churn_core.tuning.reconcile.reconcile_tuning`` ends the tuning job (never stuck InProgress).
"""

from __future__ import annotations

import argparse
import dataclasses
import signal
import sys
import time
import traceback
from pathlib import Path

from churn_core.catalog import actor
from churn_core.catalog import tuning_records
from churn_core.catalog import kept_records
from churn_core.config import Settings
from churn_core.errors import ChurnError, NotFoundError
from churn_core.storage.private_files import set_process_umask
from churn_core.records import TRAINING_ACTIVE
from churn_core.tuning.progress import TRIAL_ACTIVE, finish, summarise, trial_name, trial_rows
from churn_core.tuning.objectives import get_objective
from churn_core.tuning.search import suggest

POLL_SECONDS = 0.05


class TuningDriver:
    def __init__(self, home: Path, bucket: str, name: str):
        from churn_core.platform import Platform

        settings = dataclasses.replace(Settings.from_env(), backend="local", home=Path(home), bucket=bucket)
        self.platform = Platform(settings)
        self.service = self.platform.tuning
        self.catalog = self.platform.catalog
        self.name = name
        self.signalled = False

    def log(self, message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)

    def on_sigterm(self, *_: object) -> None:
        self.signalled = True

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self.on_sigterm)
        try:
            return self.loop()
        except Exception as exc:  # a bug or a broken catalog: end the tuning job with the reason, never hang
            traceback.print_exc()
            self.stop_trials()
            finish(self.catalog, self.name, "Failed", f"the tuning process failed: {type(exc).__name__}: {exc}")
            return 1
        finally:  # how it ended, with its trials and best trial, next to it (a restored catalog finds it)
            kept_records.keep(self.catalog, "tuning", self.name)

    def loop(self) -> int:
        row = self.service.row(self.name)
        ranges = self.service.ranges(row)
        objective = get_objective(row["objective"])
        deadline = row["created_at"] + row["max_seconds"] if row["max_seconds"] else None
        self.log(f"Tuning {row['algorithm']} on {row['dataset']}: {row['strategy']} search over "
                 f"{', '.join(r.name for r in ranges)}; {row['direction']} {objective.label}; "
                 f"{row['max_trials']} trials, {row['max_parallel']} at once")
        while True:
            row = tuning_records.tuning(self.catalog, self.name)
            if row is None:
                return 0  # deleted
            if self.signalled and row["status"] == "InProgress":
                tuning_records.request_stop(self.catalog, self.name, "stop requested (SIGTERM)")
                continue
            if row["status"] == "Stopping":
                self.log("Stop requested: stopping the running trials")
                self.stop_trials()
                finish(self.catalog, self.name, "Stopped")
                self.log("Stopped")
                return 0
            if row["status"] != "InProgress":
                return 0
            active = self.watch(objective)
            started = len(trial_rows(self.catalog, self.name))
            out_of_time = deadline is not None and time.time() >= deadline
            if out_of_time and active:
                self.log("Time limit reached: stopping the running trials")
                self.stop_trials()
                active = self.watch(objective)
            if not active and (started >= row["max_trials"] or out_of_time):
                finish(self.catalog, self.name, "Completed",
                       note="time limit reached" if out_of_time and started < row["max_trials"] else "")
                ended = tuning_records.tuning(self.catalog, self.name)
                self.log(f"{ended['status']}: best {ended['best_job'] or '—'} "
                         f"({objective.label} {ended['best_objective']})" + (
                             f"; {ended['failure_reason']}" if ended["failure_reason"] else ""))
                return 0
            submitted = False
            while active < row["max_parallel"] and started < row["max_trials"] and not out_of_time:
                self.submit(row, ranges, started)
                started += 1
                active += 1
                submitted = True
            if submitted:
                summarise(self.catalog, self.name)
            time.sleep(POLL_SECONDS)

    def submit(self, row: dict, ranges, index: int) -> None:
        """Trial ``index + 1``: its configuration from the search, then an ordinary training job."""
        params = suggest(ranges, row["strategy"], row["seed"], row["direction"], index, row["max_trials"],
                         self.service.observed(self.name))
        number = index + 1
        job = trial_name(self.name, number)
        self.service.add_trial(self.name, number, job, params)
        try:
            with actor.acting(row.get("created_by") or ""):  # the trial is trained by who started the search
                self.platform.training.start(row["dataset"], self.service.trial_hyperparameters(row, params), job)
        except ChurnError as exc:  # e.g. the dataset was deleted: the trial fails, the search goes on
            self.service.update_trial(self.name, number, status="Failed", failure_reason=str(exc),
                                      ended_at=time.time())
            self.log(f"Trial {number} could not start: {exc}")
            return
        self.service.update_trial(self.name, number, status="InProgress")
        self.log(f"Trial {number} ({job}): {params}")

    def watch(self, objective) -> int:
        """Record the trials that ended since the last look; how many are still running."""
        active = 0
        changed = False
        for t in trial_rows(self.catalog, self.name):
            if t["status"] not in TRIAL_ACTIVE:
                continue
            try:
                job = self.platform.describe_training(t["job"])
            except NotFoundError:
                self.service.update_trial(self.name, t["number"], status="Failed", ended_at=time.time(),
                                          failure_reason="its training job was never created, or was deleted")
                changed = True
                continue
            if job.status in TRAINING_ACTIVE:
                active += 1
                continue
            value = None
            reason = job.failure_reason or ""
            if job.status == "Completed":
                try:
                    value = objective.value(self.platform, job)
                except Exception as exc:  # a registered objective's own failure counts against the trial only
                    reason = f"the objective could not be computed: {exc}"
                if value is None and not reason:
                    reason = f"the trial has no {objective.label} (its test data may hold one class only)"
            self.service.update_trial(self.name, t["number"], status=job.status, objective=value,
                                      failure_reason=reason, ended_at=job.ended_at or time.time())
            self.log(f"Trial {t['number']} ({job.name}) {job.status}" +
                     (f": {objective.label} {value:.6f}" if value is not None else f": {reason}" if reason else ""))
            changed = True
        if changed:
            summarise(self.catalog, self.name)
        return active

    def stop_trials(self) -> None:
        """Stop every running trial (queued ones too) and record how each ended; finished trials stay as they are."""
        for t in trial_rows(self.catalog, self.name):
            if t["status"] in TRIAL_ACTIVE and t["job_status"] in TRAINING_ACTIVE:
                try:
                    self.platform.training.stop(t["job"])  # the search was allowed when it started
                except ChurnError as exc:  # it ended meanwhile: its ending is recorded below
                    self.log(f"Trial {t['number']}: {exc}")
        self.watch(get_objective(self.service.row(self.name)["objective"]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--home", required=True)
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--tuning", required=True)
    opts = parser.parse_args(argv)
    set_process_umask()  # its trials' inputs, models and logs are private, like every process the product starts
    return TuningDriver(Path(opts.home), opts.bucket, opts.tuning).run()


if __name__ == "__main__":
    sys.exit(main())
