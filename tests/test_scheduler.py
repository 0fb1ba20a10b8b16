"""Issue 25, items 3 and 6: one scheduler process per state folder runs every schedule (a lock file names it),
survives a dashboard restart, records each run with its outcome, skips malformed capture records instead of
dying on them, and a failed run shows its true cause on Monitor and beside the endpoint."""

from __future__ import annotations

import os
import re
import signal
import time

import psutil

import churn_core
from churn_core.monitoring.scheduler_lock import lock_path
from tests.support.helpers import wait_until
from tests.support.monitoring import ENDPOINT, MODEL, held_out, write_capture_lines

SECOND = "subs-ep2"


def scheduler_pid(p) -> int | None:
    text = lock_path(p.settings.home).read_text().strip() if lock_path(p.settings.home).exists() else ""
    return int(text) if text.isdigit() else None


def alive(pid: int | None) -> bool:
    return bool(pid) and psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE


def runs(p, endpoint: str, since: float = 0.0) -> list[dict]:
    return [r for r in (p.monitoring_schedule(endpoint) or {}).get("runs") or [] if r["started_at"] >= since]


def test_one_scheduler_runs_every_schedule_and_records_each_run(drift_model):
    p = drift_model
    t0 = time.time()
    p.deploy(MODEL, SECOND)
    for name in (ENDPOINT, SECOND):
        p.set_capture(name, 100)
        p.schedule_monitoring(name, 0.05)  # every 3 s
    pid = wait_until(lambda: alive(scheduler_pid(p)) and scheduler_pid(p), 30, what="the scheduler")
    wait_until(lambda: runs(p, ENDPOINT, t0) and runs(p, SECOND, t0), 60, what="a run of each schedule")
    assert {p.monitoring_schedule(n)["pid"] for n in (ENDPOINT, SECOND)} == {pid}, "one process for both"
    first = runs(p, SECOND)[-1]
    assert first["outcome"] == "no data" and "capture is on (100 % of requests), but no request" in first["detail"]

    write_capture_lines(p, ENDPOINT, ["[]", "not json", "7"])  # would crash every report before
    p.score_batch(ENDPOINT, held_out(p, 300), chunk_size=150)
    # each report covers the window since the last one, and a run may fall between the two chunks: the
    # reports since then count the 300 customers between them, each once
    def reported() -> list[dict]:
        return [r for r in runs(p, ENDPOINT, t0) if r["outcome"] == "report"]

    def customers(run: dict) -> int:
        return int(re.search(r"\(([\d,]+) customers", run["detail"]).group(1).replace(",", ""))

    wait_until(lambda: sum(customers(r) for r in reported()) >= 300, 60, what="scheduled reports on 300 customers")
    assert sum(customers(r) for r in reported()) == 300, reported()
    done = reported()[0]
    assert "3 unreadable capture records skipped" in done["detail"], done
    assert done["detail"].startswith(("no drift", "drift:")), done
    assert len(p.drift_history(ENDPOINT)) >= 1 and alive(pid), "the scheduler lives on"
    assert p.drift_badge(ENDPOINT) in ("no drift",) or p.drift_badge(ENDPOINT).startswith("drift")

    os.kill(pid, signal.SIGKILL)  # the machine's OOM killer, say
    wait_until(lambda: not alive(pid), 15, what="the scheduler to die")
    restarted = churn_core.connect()  # a new dashboard finds no scheduler holding the lock and starts one
    new = wait_until(lambda: alive(scheduler_pid(restarted)) and scheduler_pid(restarted) != pid
                     and scheduler_pid(restarted), 30, what="a new scheduler")
    before = len(runs(restarted, SECOND))
    wait_until(lambda: len(runs(restarted, SECOND)) > before, 60, what="a run by the new scheduler")
    assert churn_core.connect() and scheduler_pid(restarted) == new, "a second connect starts no second scheduler"

    for name in (ENDPOINT, SECOND):
        restarted.schedule_monitoring(name, 0)
    wait_until(lambda: not alive(new), 20, what="the scheduler to exit with no schedule left")
    p.delete_endpoint(SECOND)
    p.set_capture(ENDPOINT, 0)


def test_a_failed_run_shows_its_true_cause_beside_the_endpoint(drift_model):
    p = drift_model
    t0 = time.time()
    row = p.get_model(MODEL)
    p.set_capture(ENDPOINT, 100)
    p.score_batch(ENDPOINT, held_out(p, 250), chunk_size=250)
    p.catalog.update("models", MODEL, artifact_sha256="0" * 64)  # the artifact no longer matches its record
    try:
        p.schedule_monitoring(ENDPOINT, 0.05)
        wait_until(lambda: any(r["outcome"] == "failed" for r in runs(p, ENDPOINT, t0)), 60, what="a failed run")
        failed = next(r for r in runs(p, ENDPOINT, t0) if r["outcome"] == "failed")
        assert "SHA-256" in failed["detail"] or "does not match" in failed["detail"], failed
        schedule = p.monitoring_schedule(ENDPOINT)
        assert schedule["last_error"].startswith("failed: ")
        assert p.drift_badge(ENDPOINT).startswith("scheduled report failed: "), "shown beside the endpoint"
        assert alive(scheduler_pid(p)), "a failing run never stops the scheduler"
    finally:
        p.catalog.update("models", MODEL, artifact_sha256=row["artifact_sha256"])
    wait_until(lambda: runs(p, ENDPOINT)[0]["outcome"] != "failed", 60, what="a run after the repair")
    p.schedule_monitoring(ENDPOINT, 0)
    p.set_capture(ENDPOINT, 0)
    time.sleep(0.1)


def test_consecutive_windows_count_each_captured_customer_once(drift_model):
    """The scheduler's windows meet where a run started: [since, until) then [until, …) partition the capture, so
    a customer captured during a run is in the next report, never in two."""
    p = drift_model
    t0 = time.time()
    p.set_capture(ENDPOINT, 100)
    try:
        for _ in range(3):
            p.score_batch(ENDPOINT, held_out(p, 40), chunk_size=40)
            time.sleep(1.1)  # capture times are whole seconds: three distinct ones
        whole = p.monitoring.captured(ENDPOINT, since=t0)
        assert len(whole) == 120
        split = whole["inference_time"].iloc[60].timestamp()  # a capture second, as a run's start would fall
        before = p.monitoring.captured(ENDPOINT, since=t0, until=split)
        after = p.monitoring.captured(ENDPOINT, since=split)
        assert len(before) + len(after) == 120 and len(before) and len(after)
        assert before["inference_time"].max() < after["inference_time"].min()
    finally:
        p.set_capture(ENDPOINT, 0)
