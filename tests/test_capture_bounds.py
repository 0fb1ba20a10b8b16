"""Capture within bounds (issue 25, item 7): a byte budget per endpoint that holds under a concurrent burst
(several workers), a retention that deletes old files, a free-disk floor, what was dropped counted and shown,
explained requests captured without their reasons, and SageMaker refusing bounds it does not keep."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from churn_core import ValidationError
from churn_core.backends.local.endpoint.capture_writer import CaptureWriter, capture_files, capture_status
from churn_core.monitoring import capture_bounds
from churn_core.monitoring.capture import capture_line
from churn_core.monitoring.capture_bounds import CaptureBounds
from tests.support.capture_burst import record
from tests.support.data import ROOT
from tests.support.helpers import wait_until
from tests.support.own_data import ENDPOINT, MODEL

MB = 1024 * 1024
JSON = "application/json"


def captured_bytes(bucket: Path, endpoint: str) -> int:
    return sum(size for _, size, _ in capture_files(bucket / "capture" / endpoint))


def test_workers_of_one_endpoint_never_pass_its_budget_together(tmp_path):
    """Three processes (an endpoint's workers) capture at once into one budget: the files hold at most the
    budget, and every record not written is counted with its rows."""
    bucket, workdir, budget_mb = tmp_path / "bucket", tmp_path / "workdir", 0.25
    workdir.mkdir()
    procs = [subprocess.Popen([sys.executable, "-m", "tests.support.capture_burst", str(bucket), str(workdir), "120",
                               "12", str(budget_mb)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
             for _ in range(3)]
    outcomes = [json.loads(proc.communicate(timeout=120)[0]) for proc in procs]
    assert all(proc.returncode == 0 for proc in procs)
    written = sum(o["written"] for o in outcomes)
    dropped = sum(o["dropped"] for o in outcomes)
    assert written + dropped == 360
    assert written > 0 and dropped > 0
    one_record = len(capture_line(*record(12, 0)[:1], JSON, record(12, 0)[1], JSON))
    assert captured_bytes(bucket, "burst-ep") <= budget_mb * MB
    assert captured_bytes(bucket, "burst-ep") > budget_mb * MB - 2 * one_record  # the budget was used, not wasted
    status = capture_status(workdir)
    assert status["dropped_requests"] == dropped and status["dropped_rows"] == dropped * 12
    assert "budget of 0.25 MB is used up" in status["paused"]


def test_retention_deletes_files_older_than_it_and_keeps_the_rest(tmp_path):
    bucket = tmp_path / "bucket"
    writer = CaptureWriter(bucket, "ep", workdir=tmp_path / "wd", bounds=CaptureBounds(retention_days=2, min_free_mb=0))
    request, answer = record(3, 1)
    writer.put("AllTraffic", request, "application/json", answer, "application/json", rows=3)
    writer.flush()
    (kept,) = [path for path, _, _ in capture_files(bucket / "capture" / "ep")]
    old_folder = bucket / "capture" / "ep" / "AllTraffic" / "2020" / "01" / "02" / "03"
    old_folder.mkdir(parents=True)
    old = old_folder / "20200102T030000-1.jsonl"
    old.write_bytes(kept.read_bytes())
    three_days_ago = time.time() - 3 * 86_400
    os.utime(old, (three_days_ago, three_days_ago))
    writer._swept = 0.0  # the next flush sweeps (it does at most once a minute)
    writer.flush()
    assert not old.exists() and not old_folder.exists()  # the file and the folders it leaves empty
    assert kept.exists()


def test_a_disk_under_the_free_floor_pauses_capture_and_counts_what_it_drops(tmp_path):
    writer = CaptureWriter(tmp_path / "bucket", "ep", workdir=tmp_path / "wd",
                           bounds=CaptureBounds(min_free_mb=1e12))  # more than any disk has free
    request, answer = record(5, 2)
    for _ in range(3):
        writer.put("AllTraffic", request, "application/json", answer, "application/json", rows=5)
    writer.flush()
    writer.put("AllTraffic", request, "application/json", answer, "application/json", rows=5)  # paused: dropped
    assert writer.written == 0 and captured_bytes(tmp_path / "bucket", "ep") == 0
    status = capture_status(tmp_path / "wd")
    assert (status["dropped_requests"], status["dropped_rows"]) == (3, 15)
    assert writer.dropped == 4 and "floor" in status["paused"]


def test_bounds_are_checked_and_have_stated_defaults(monkeypatch):
    assert (capture_bounds.DEFAULT_MAX_MB, capture_bounds.DEFAULT_RETENTION_DAYS) == (200.0, 30.0)
    for bad in (-1, 0, "a lot", float("nan"), float("inf")):
        with pytest.raises(ValidationError, match="positive number"):
            capture_bounds.checked(bad, None)
        with pytest.raises(ValidationError, match="positive number"):
            capture_bounds.checked(None, bad)
    assert capture_bounds.checked(None, None) == (None, None)
    monkeypatch.setenv(capture_bounds.MIN_FREE_ENV, "lots")
    with pytest.raises(ValidationError, match=capture_bounds.MIN_FREE_ENV):
        capture_bounds.min_free_mb()


def burst(url: str, bodies: list[bytes], threads: int = 8) -> list[int]:
    def send(body: bytes) -> int:
        return requests.post(f"{url}/invocations", data=body, headers={"Content-Type": "application/json"},
                             timeout=60).status_code

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(send, bodies))


def test_a_concurrent_burst_on_a_two_worker_endpoint_stays_within_its_budget(own_model):
    p = own_model.platform
    p.deploy(MODEL, "bounded-ep", instance_count=2)
    try:
        updated = p.set_capture("bounded-ep", 100, max_mb=0.1, retention_days=7)
        assert (updated.capture_max_mb, updated.capture_retention_days) == (0.1, 7)
        customers = own_model.customers(rows=20)
        body = json.dumps({"instances": customers.to_dict("records")}).encode()
        statuses = burst(p.describe_endpoint("bounded-ep").url, [body] * 160)
        assert statuses == [200] * 160
        bucket = Path(p.store.root)

        def settled():
            now = p.describe_endpoint("bounded-ep").stats["capture"]
            return now if now["written"] + now["dropped_requests"] == 160 else None

        status = wait_until(settled, 30, what="capture flushed")
        assert captured_bytes(bucket, "bounded-ep") <= 0.1 * MB
        assert status["written"] >= 1 and status["dropped_requests"] >= 1
        assert status["dropped_rows"] == 20 * status["dropped_requests"]
        assert status["paused"].startswith("paused: the capture budget of 0.1 MB")
        assert len(p.captured("bounded-ep")) == 20 * status["written"]  # what was written is whole records
        p.set_capture("bounded-ep", 100, max_mb=50)  # a larger budget: capture resumes
        assert burst(p.describe_endpoint("bounded-ep").url, [body] * 4) == [200] * 4
        wait_until(lambda: p.describe_endpoint("bounded-ep").stats["capture"]["written"] >= status["written"] + 4,
                   30, what="capture resumed")
        assert p.describe_endpoint("bounded-ep").stats["capture"]["paused"] == ""
    finally:
        p.delete_endpoint("bounded-ep")


def test_an_explained_request_is_captured_without_its_reasons(own_model):
    p = own_model.platform
    p.set_capture(ENDPOINT, 100)
    try:
        bucket = Path(p.store.root)
        before = captured_bytes(bucket, ENDPOINT)
        customers = own_model.customers(rows=200)
        body = json.dumps({"instances": customers.to_dict("records"), "explain": 10}).encode()
        answer = requests.post(f"{p.describe_endpoint(ENDPOINT).url}/invocations", data=body,
                               headers={"Content-Type": "application/json"}, timeout=60)
        assert answer.status_code == 200 and "reasons" in answer.json()["predictions"][0]
        with_reasons = len(capture_line(body, JSON, answer.content, JSON))
        grown = wait_until(lambda: (n := captured_bytes(bucket, ENDPOINT) - before) > 0 and n, 30)
        assert grown < 0.75 * with_reasons  # the request, and per row its ID, label and probability
        assert grown < 1.6 * len(body)
        frame = p.captured(ENDPOINT)
        assert len(frame) >= 200 and frame["churn_probability"].notna().all()  # what monitoring reads is all there
    finally:
        p.set_capture(ENDPOINT, 0)


def test_sagemaker_refuses_bounds_it_does_not_keep(aws):
    import churn_core

    p = churn_core.connect()
    with pytest.raises(ValidationError, match="S3 lifecycle rule"):
        p.set_capture("any-endpoint", 10, max_mb=50)
    with pytest.raises(ValidationError, match="S3 lifecycle rule"):
        p.set_capture("any-endpoint", 10, retention_days=3)


def test_a_file_deleted_while_open_is_started_again_not_written_into_the_void(tmp_path):
    bucket = tmp_path / "bucket"
    writer = CaptureWriter(bucket, "ep", workdir=tmp_path / "wd", bounds=CaptureBounds(min_free_mb=0))
    request, answer = record(2, 3)
    writer.put("AllTraffic", request, "application/json", answer, "application/json", rows=2)
    writer.flush()
    (first,) = [path for path, _, _ in capture_files(bucket / "capture" / "ep")]
    first.unlink()  # another worker's retention sweep, or a dataset deleted with everything derived
    writer.put("AllTraffic", request, "application/json", answer, "application/json", rows=2)
    writer.flush()
    (again,) = [path for path, _, _ in capture_files(bucket / "capture" / "ep")]
    assert again.read_text().count("\n") == 1
