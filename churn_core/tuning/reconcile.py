"""A local tuning job whose process died: its trials stopped, its ending recorded (never stuck InProgress).

The local backend calls ``reconcile_tuning`` with its own ``reconcile_jobs``, so neither imports the other.
"""

from __future__ import annotations

import time
from typing import Callable

from churn_core.catalog import outcomes
from churn_core.catalog import tuning_records as records
from churn_core.catalog.database import Catalog
from churn_core.records import TUNING_ACTIVE
from churn_core.tuning.progress import TRIAL_ACTIVE, finish, settle_trials, trial_rows, update_trial


def _stop_unrecorded_job(catalog: Catalog, name: str) -> None:
    """A trial whose tuning process died between recording its job and recording the job's process: stop any
    job driver started for it (found by its command line) and end the job Stopped."""
    import psutil

    from churn_core.processes.detached import kill_group

    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            cmdline = proc.info["cmdline"] or []
            driver = "churn_core.backends.local.job_driver"
            if driver in cmdline and name in cmdline and str(catalog.path.parent) in cmdline:
                kill_group(proc.pid, grace=5.0)
        except (psutil.Error, OSError):
            continue
    reason = "its tuning job ended before it started"
    outcomes.finish(catalog, "training", name, "Stopped", reason, once=True, event=f"Stopped: {reason}")


def reconcile_tuning(catalog: Catalog, reconcile_jobs: Callable[[Catalog], object]) -> list[str]:
    """A local tuning job whose process is gone without an ending: its running trials are stopped, the
    finished ones kept, and it ends Stopped (if a stop was asked) or Failed with the reason. Never stuck.
    ``reconcile_jobs`` is the local backend's: it records how the stopped trials' training jobs ended."""
    from churn_core.processes.detached import describe_exit, is_alive, kill_group, reap

    changed = []
    for row in records.active_local(catalog):
        if row["pid"] is None or is_alive(row["pid"], row["name"]):
            continue
        _, code = reap(row["pid"], wait=2.0)
        fresh = records.tuning(catalog, row["name"])
        if fresh is None or fresh["status"] not in TUNING_ACTIVE:
            continue  # it ended on its own between the two reads
        kill_group(row["pid"], grace=0.5)
        for trial in trial_rows(catalog, row["name"]):
            if trial["job_status"] in ("InProgress", "Stopping"):
                job = records.job_pid(catalog, trial["job"])
                if job and job["pid"] is None:  # killed while submitting it: no driver was recorded
                    _stop_unrecorded_job(catalog, trial["job"])
                    continue
                catalog.update("jobs", trial["job"], status="Stopping", secondary_status="Stopping")
                kill_group(job and job["pid"], grace=5.0)
            elif trial["job_status"] is None and trial["status"] in TRIAL_ACTIVE:
                update_trial(catalog, row["name"], trial["number"], status="Stopped", ended_at=time.time())
        reconcile_jobs(catalog)
        settle_trials(catalog, row["name"])
        if fresh["status"] == "Stopping":
            finish(catalog, row["name"], "Stopped")
        else:
            finish(catalog, row["name"], "Failed",
                   f"The tuning process exited unexpectedly ({describe_exit(code)}). Its finished trials are kept and "
                   "its running trials were stopped; start a new tuning job to search further.")
        changed.append(row["name"])
    return changed
