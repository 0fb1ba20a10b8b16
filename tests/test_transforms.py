"""Batch transform jobs on the local backend: real detached processes, real files in the local bucket.

The flow (every line accounted for, IDs kept, the model's threshold, probabilities an endpoint would
give), stop, kill -9 of a worker and of the job's own process, bad lines in the middle of a large
file, columns that do not fit, and a dashboard restart in the middle of a job.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import psutil
import pytest

import churn_core
from churn_core.errors import ConflictError, NotFoundError, ValidationError
from churn_core.paths import entry_module
from churn_core.processes.detached import is_alive
from churn_core.backends.local.transform_driver import Driver, JobFailed
from churn_core.data.sample import make_sample, make_subscription_sample
from tests.support.helpers import wait_for_job, wait_until
from tests.support.own_data import workbook
from tests.support.transforms import customers, load_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def trained_pair(tmp_path_factory):
    """A categorical model with an ID column and a numeric (reference schema) model, trained once."""
    mp = pytest.MonkeyPatch()
    home = tmp_path_factory.mktemp("transforms") / "state"
    mp.setenv("CHURN_HOME", str(home))
    mp.setenv("CHURN_BACKEND", "local")
    p = churn_core.connect()
    try:
        p.upload_dataset("subs", make_subscription_sample(2000, seed=3))
        p.upload_dataset("numeric", make_sample(rows=800))
        p.start_training("subs", {"algorithm": "random_forest", "n_estimators": 30}, name="subs-rf")
        p.start_training("numeric", {"algorithm": "random_forest", "n_estimators": 30}, name="numeric-rf")
        for name in ("subs-rf", "numeric-rf"):
            assert wait_for_job(p, name).status == "Completed"
        yield p
    finally:
        for job in p.list_transforms():
            if job.is_active:
                try:
                    p.stop_transform(job.name)
                except churn_core.ChurnError:
                    pass
        mp.undo()


def wait_transform(p, name: str, timeout: float = 120.0):
    return wait_until(lambda: (j := p.describe_transform(name)).status not in ("InProgress", "Stopping") and j,
                      timeout, what=f"transform {name} to finish")


def big_file(lines: int) -> bytes:
    """A large customers file made fast: a 10,000-line block repeated (IDs stay readable)."""
    block = customers(10_000, seed=12)
    header, body = block.split(b"\n", 1)
    return header + b"\n" + body * (lines // 10_000)


def workers_of(pid: int) -> list[int]:
    try:
        return [c.pid for c in psutil.Process(pid).children() if "worker" in " ".join(c.cmdline())]
    except psutil.NoSuchProcess:
        return []


# ---------------------------------------------------------------------------------------------- the flow


def test_every_line_is_scored_in_input_order_with_its_id_the_model_threshold_and_an_endpoints_probability(
        trained_pair):
    p = trained_pair
    data = customers(3000, seed=4)
    p.catalog.update("models", "subs-rf", threshold=0.3)  # a threshold chosen for the model (not the 0.5 default)
    try:
        job = p.start_transform("subs-rf", data, name="flow-1", file_name="customers.csv")
        assert job.status == "InProgress" and job.input_label == "customers.csv" and job.threshold == 0.3
        job = wait_transform(p, "flow-1")
    finally:
        p.catalog.update("models", "subs-rf", threshold=None)
    assert job.status == "Completed", job.failure_reason
    assert (job.rows_in, job.rows_scored, job.rows_failed) == (3000, 3000, 0)
    assert job.output_key == "transforms/flow-1/output/results.csv"
    assert job.errors_key == "transforms/flow-1/output/errors.csv"
    out = p.transform_output("flow-1")
    assert list(out.columns) == ["line", "customerID", "churn_probability", "predicted_churn", "risk", "warnings"]
    source = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False)
    assert list(out["line"]) == list(range(2, 3002))
    assert list(out["customerID"]) == list(source["customerID"])  # as the file spells them ("0042-7")
    assert (out["predicted_churn"] == (out["churn_probability"] > 0.3).astype(int)).all()
    # the probabilities an endpoint gives for the same customers (the model's own handlers, JSON records)
    model = load_model(p, "subs-rf")
    train = entry_module("train")
    records = source.head(200).to_dict("records")
    answer = json.loads(train.output_fn(train.predict_fn(train.input_fn(json.dumps({"instances": records})), model),
                                        "application/json")[0])
    assert [a["churn_probability"] for a in answer["predictions"]] == list(out["churn_probability"].head(200))
    assert p.transform_errors("flow-1").empty
    assert [t.name for t in p.list_transforms()][:1] == ["flow-1"]
    assert any("Completed" in e["message"] for e in p.events("transform", "flow-1"))


def test_the_reference_schema_and_every_kind_of_input(trained_pair, tmp_path):
    """Numeric features (the reference schema); data as bytes, a local path or a key in the bucket."""
    p = trained_pair
    data = customers(700, seed=6, numeric=True)
    path = tmp_path / "numeric customers.csv"
    path.write_bytes(data)
    by_path = p.start_transform("numeric-rf", str(path), name="numeric-path", instance_count=1)
    assert by_path.input_key == "transforms/numeric-path/input/numeric-customers.csv"
    by_key = p.start_transform("numeric-rf", "datasets/numeric/test/test.csv", name="numeric-key")
    assert by_key.input_key == "datasets/numeric/test/test.csv"  # read in place
    for name, rows in (("numeric-path", 700), ("numeric-key", p.get_dataset("numeric").n_test)):
        job = wait_transform(p, name)
        assert job.status == "Completed" and job.rows_scored == rows, job.failure_reason
    kept = p.transform_output("numeric-key")
    assert list(kept.columns) == ["line", "Churn", "churn_probability", "predicted_churn", "risk", "warnings"]
    assert list(p.transform_output("numeric-path").columns) == ["line", "churn_probability", "predicted_churn",
                                                                "risk", "warnings"]
    with pytest.raises(ValidationError, match="CSV bytes, the path of a CSV file"):
        p.start_transform("numeric-rf", "no/such/key.csv")
    with pytest.raises(ValidationError, match="instance_count"):
        p.start_transform("numeric-rf", data, instance_count=0)
    with pytest.raises(ConflictError, match="already exists"):
        p.start_transform("numeric-rf", data, name="numeric-path")
    with pytest.raises(NotFoundError, match="No trained model"):
        p.start_transform("nope", data)
    with pytest.raises(NotFoundError):
        p.describe_transform("never-ran")
    with pytest.raises(ConflictError, match="only a running job"):
        p.stop_transform("numeric-path")


def test_kept_columns_chosen_and_downloads_escape_spreadsheet_formulas(trained_pair):
    p = trained_pair
    frame = pd.read_csv(io.BytesIO(customers(50, seed=7)), dtype=str, keep_default_na=False)
    frame.insert(1, "note", "ok")
    frame.loc[0, "note"] = "=HYPERLINK(\"http://x\")"
    frame.loc[1, "note"] = "-12.5"  # a number stays a number
    job = p.start_transform("subs-rf", frame.to_csv(index=False).encode(), name="keep-1",
                            keep_columns=["note", "Contract"])
    assert wait_transform(p, "keep-1").status == "Completed"
    out = p.transform_output("keep-1")
    assert list(out.columns) == ["line", "note", "Contract", "churn_probability", "predicted_churn", "risk", "warnings"]
    assert out["note"][0].startswith("=HYPERLINK")  # the results file holds the data as it was
    download = pd.read_csv(io.BytesIO(p.transform_download("keep-1")), dtype=str, keep_default_na=False)
    assert download["note"][0] == "'=HYPERLINK(\"http://x\")" and download["note"][1] == "-12.5"
    assert job.keep_columns == ["note", "Contract"]


# ---------------------------------------------------------------------------------------------- bad input


def test_bad_lines_in_the_middle_of_a_large_file_are_counted_listed_and_the_rest_scored(trained_pair):
    p = trained_pair
    lines = big_file(60_000).decode().splitlines()  # ~8 MB: several chunks on two workers
    bad = {}
    for number in (2, 7_777, 15_001, 30_000, 44_444, 60_001):  # file line numbers (the header is line 1)
        i = number - 1
        cells = lines[i].split(",")
        if number % 2:
            cells[5] = "not-a-number"  # tenure
            bad[number] = "tenure: 'not-a-number' is not a number."
        else:
            cells = cells[:-1]
            bad[number] = "has 19 values but the header names 20 columns."
        lines[i] = ",".join(cells)
    lines[20_000] = ""  # a blank line: skipped, neither scored nor an error
    data = ("\n".join(lines) + "\n").encode()
    job = p.start_transform("subs-rf", data, name="bad-lines", instance_count=2)
    job = wait_transform(p, "bad-lines")
    assert job.status == "Completed", job.failure_reason
    assert (job.rows_in, job.rows_scored, job.rows_failed) == (59_999, 59_993, 6)
    errors = p.transform_errors("bad-lines")
    assert dict(zip(errors["line"], errors["problem"], strict=True)) == bad
    out = p.transform_output("bad-lines")
    assert len(out) == 59_993 and out["line"].is_monotonic_increasing
    assert not set(bad) & set(out["line"]) and 20_001 not in set(out["line"])


def test_columns_that_do_not_match_fail_the_job_naming_them(trained_pair):
    p = trained_pair
    frame = pd.read_csv(io.BytesIO(customers(20, seed=8)), dtype=str, keep_default_na=False)
    wrong = frame.drop(columns=["tenure"]).rename(columns={"Contract": "contract_type"})
    job = p.start_transform("subs-rf", wrong.to_csv(index=False).encode(), name="wrong-columns")
    job = wait_transform(p, "wrong-columns")
    assert job.status == "Failed"
    assert "lacks the model's feature columns tenure, Contract" in job.failure_reason
    assert "contract_type not used by the model" in job.failure_reason
    job = p.start_transform("subs-rf", frame.to_csv(index=False).encode(), name="wrong-keep",
                            keep_columns=["customerID", "Region"])
    job = wait_transform(p, "wrong-keep")
    assert job.status == "Failed" and "column to keep Region is not in the file" in job.failure_reason
    for name, body, reason in (("empty-file", b"", "empty"),
                               ("header-only", frame.head(0).to_csv(index=False).encode(), "no lines to score")):
        job = wait_transform(p, p.start_transform("subs-rf", body or b"\n", name=name).name)
        assert job.status == "Failed" and reason in job.failure_reason
    nothing = frame.copy()
    nothing["tenure"] = "x"
    job = wait_transform(p, p.start_transform("subs-rf", nothing.to_csv(index=False).encode(), name="none-ok").name)
    assert job.status == "Failed" and job.failure_reason.startswith("None of the 20 lines could be scored")
    assert "line 2: tenure: 'x' is not a number." in job.failure_reason
    assert len(p.transform_errors("none-ok")) == 20  # the errors file is there to download
    with pytest.raises(ConflictError, match="Failed"):
        p.transform_output("none-ok")


def test_a_tampered_model_is_never_loaded_and_names_differ_by_more_than_case(trained_pair):
    """The job reads the artifact once, checks those bytes' SHA-256 and unpacks only them (issue 18)."""
    p = trained_pair
    artifact = p.store.path(p.get_model("subs-rf")["artifact_key"])
    original = artifact.read_bytes()
    body = customers(20, seed=9)
    try:
        artifact.write_bytes(original[:-64] + bytes(64))
        try:  # refused at once when the model's schema is read from the artifact here, else by the job
            job = p.start_transform("subs-rf", body, name="tampered")
        except ValidationError as exc:
            assert "failed its integrity check" in str(exc)
            assert "tampered" not in {j.name for j in p.list_transforms()}
        else:
            job = wait_transform(p, job.name)
            assert job.status == "Failed" and "failed its integrity check" in job.failure_reason
        # the job's own check, for a file swapped after the submission:
        with pytest.raises(JobFailed, match="failed its integrity check"):
            Driver.load_model(type("D", (), {"store": p.store, "folder": p.settings.home / "probe"})(),
                              p.get_model("subs-rf"))
    finally:
        artifact.write_bytes(original)
    p.start_transform("subs-rf", body, name="case-name")
    with pytest.raises(ConflictError, match="case-name"):
        p.start_transform("subs-rf", body, name="CASE-NAME")
    assert wait_transform(p, "case-name").status == "Completed"  # the clash touched nothing
    generated = [p.start_transform("subs-rf", body).name for _ in range(3)]  # named per second: -2, -3 ...
    assert len(set(generated)) == 3, generated
    assert all(wait_transform(p, name).status == "Completed" for name in generated)


# ---------------------------------------------------------------------------------------------- control


@pytest.mark.slow
def test_stop_ends_the_job_and_its_workers(trained_pair):
    p = trained_pair
    job = p.start_transform("subs-rf", big_file(400_000), name="stop-1", instance_count=2)
    running = wait_until(lambda: (j := p.describe_transform("stop-1")).rows_done > 0 and j, 90, what="progress")
    assert running.status == "InProgress" and 0 < running.rows_done < running.rows_in == 400_000
    workers = workers_of(job.pid)
    assert len(workers) == 2
    stopped = p.stop_transform("stop-1")
    assert stopped.status in ("Stopping", "Stopped")
    assert wait_transform(p, "stop-1").status == "Stopped"
    assert not is_alive(job.pid) and not any(psutil.pid_exists(w) and is_alive(w) for w in workers)
    with pytest.raises(ConflictError):
        p.transform_output("stop-1")


@pytest.mark.slow
def test_a_worker_killed_with_sigkill_is_replaced_and_the_job_completes(trained_pair):
    p = trained_pair
    job = p.start_transform("subs-rf", big_file(300_000), name="kill-worker", instance_count=2)
    victims = wait_until(lambda: p.describe_transform("kill-worker").rows_done > 0 and workers_of(job.pid), 90,
                         what="workers at work")
    os.kill(victims[0], signal.SIGKILL)
    done = wait_transform(p, "kill-worker")
    assert done.status == "Completed", done.failure_reason
    assert (done.rows_scored, done.rows_failed) == (300_000, 0)
    assert len(p.transform_output("kill-worker")) == 300_000
    assert "killed by signal SIGKILL" in p.transform_log("kill-worker")


@pytest.mark.slow
def test_workers_that_keep_dying_fail_the_job_with_the_reason_never_a_hang(trained_pair):
    p = trained_pair
    job = p.start_transform("subs-rf", big_file(300_000), name="kill-all", instance_count=2)
    deadline = time.monotonic() + 90
    while p.describe_transform("kill-all").is_active and time.monotonic() < deadline:
        for pid in workers_of(job.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.02)
    done = wait_transform(p, "kill-all", 30)
    assert done.status == "Failed" and "died" in done.failure_reason and "SIGKILL" in done.failure_reason


@pytest.mark.slow
def test_the_job_process_killed_with_sigkill_ends_failed_with_the_reason(trained_pair):
    p = trained_pair
    job = p.start_transform("subs-rf", big_file(300_000), name="kill-driver", instance_count=2)
    wait_until(lambda: p.describe_transform("kill-driver").rows_done > 0, 90, what="progress")
    workers = workers_of(job.pid)
    os.kill(job.pid, signal.SIGKILL)
    done = wait_transform(p, "kill-driver", 30)
    assert done.status == "Failed"
    assert done.failure_reason.startswith("The transform process exited unexpectedly (killed by signal SIGKILL)")
    wait_until(lambda: not any(is_alive(w) for w in workers), 10, what="its workers to end too")


@pytest.mark.slow
def test_a_dashboard_restart_in_the_middle_of_a_job_loses_nothing(trained_pair, tmp_path):
    """The job is submitted by another process (a dashboard), which is then killed: the job runs on, and a
    fresh platform (the restarted dashboard) follows it to the end."""
    p = trained_pair
    source = tmp_path / "customers.csv"
    source.write_bytes(big_file(200_000))
    script = ("import churn_core, time; p = churn_core.connect(); "
              f"p.start_transform('subs-rf', {str(source)!r}, name='restart-1', instance_count=2); "
              "print('submitted', flush=True); time.sleep(600)")
    dashboard = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                                 env={**os.environ, "PYTHONPATH": ROOT})
    try:
        assert dashboard.stdout.readline().strip() == "submitted"
        wait_until(lambda: p.describe_transform("restart-1").rows_done > 0, 90, what="progress")
    finally:
        dashboard.send_signal(signal.SIGKILL)
        dashboard.wait()
    restarted = churn_core.connect()
    assert restarted.describe_transform("restart-1").status in ("InProgress", "Completed")
    done = wait_transform(restarted, "restart-1")
    assert done.status == "Completed" and done.rows_scored == 200_000, done.failure_reason


def test_interactive_batches_share_the_transforms_rules_probabilities_and_warnings(trained_pair):
    """score_batch through an endpoint checks rows by the same rules (a blank number the model was trained with
    is fine, a word is not, in the same words), and its probabilities and warnings are the transform's."""
    p = trained_pair
    frame = pd.read_csv(io.BytesIO(customers(300, seed=13)), dtype=str, keep_default_na=False)
    frame.loc[3, "TotalCharges"] = ""
    frame.loc[5, "tenure"] = "soon"
    frame.loc[8, "Contract"] = "Three year"
    data = frame.to_csv(index=False).encode()
    job = wait_transform(p, p.start_transform("subs-rf", data, name="interactive-twin", reasons=True).name)
    assert job.status == "Completed" and job.reasons
    p.deploy("subs-rf", "subs-ep")
    try:
        result = p.score_batch("subs-ep", p.read_customers(data))
    finally:
        p.delete_endpoint("subs-ep")
    assert result.errors == [(7, "Tenure: 'soon' is not a number.")]  # the Predict page's sentence case
    assert list(p.transform_errors("interactive-twin").itertuples(index=False, name=None)) == [
        (7, "tenure: 'soon' is not a number.")]
    batch = result.scored.sort_values("line").reset_index(drop=True)
    transform = p.transform_output("interactive-twin")
    assert list(batch["line"]) == list(transform["line"]) and 5 in set(batch["line"])
    assert list(batch["churn_probability"]) == list(transform["churn_probability"])
    assert list(batch["warnings"]) == list(transform["warnings"])
    assert batch.loc[batch["line"] == 10, "warnings"].item().startswith("Contract = 'Three year' was never seen")
    # one exact method for files: the endpoint's top reason per row is the transform's, and so is the band
    assert list(batch["top_reason"]) == list(transform["top_reason"])
    assert list(batch["risk"]) == list(transform["risk"])
    assert transform["top_reason"].str.match(r"^\w+ = .+ \([+-]\d+\.\d pts\)$").all()
    plain = wait_transform(p, p.start_transform("subs-rf", customers(20, seed=13), name="interactive-plain").name)
    assert plain.status == "Completed", plain.failure_reason
    assert "top_reason" not in p.transform_output("interactive-plain").columns, "only when asked"


def test_a_spreadsheet_export_semicolons_a_byte_order_mark_and_windows_line_ends(trained_pair):
    p = trained_pair
    frame = pd.read_csv(io.BytesIO(customers(40, seed=14)), dtype=str, keep_default_na=False)
    data = b"\xef\xbb\xbf" + frame.to_csv(index=False, sep=";", lineterminator="\r\n").encode()
    job = wait_transform(p, p.start_transform("subs-rf", data, name="excel-1").name)
    assert job.status == "Completed" and job.rows_scored == 40, job.failure_reason
    out = p.transform_output("excel-1")
    assert list(out["customerID"]) == list(frame["customerID"]) and list(out["line"]) == list(range(2, 42))


def test_a_workbook_is_scored_like_its_csv_whether_uploaded_or_named_by_path(trained_pair, tmp_path):
    """The Batch page takes what Predict takes: an .xlsx file is scored as its first sheet."""
    p = trained_pair
    csv_bytes = customers(60, seed=15)
    frame = pd.read_csv(io.BytesIO(csv_bytes), dtype=str, keep_default_na=False)
    book = workbook(frame)
    (tmp_path / "customers.xlsx").write_bytes(book)
    runs = {"csv": csv_bytes, "xlsx": book, "path": str(tmp_path / "customers.xlsx")}
    for name, data in runs.items():
        p.start_transform("subs-rf", data, name=f"book-{name}", file_name="customers.xlsx" if name == "xlsx" else None)
    outputs = {}
    for name in runs:
        job = wait_transform(p, f"book-{name}")
        assert job.status == "Completed" and job.rows_scored == 60, (name, job.failure_reason)
        outputs[name] = p.transform_output(f"book-{name}")
    assert p.describe_transform("book-xlsx").input_key.endswith("/customers.csv")
    for name in ("xlsx", "path"):
        pd.testing.assert_frame_equal(outputs[name], outputs["csv"], check_dtype=False)


def test_the_local_backend_offers_one_transform_instance_type_and_refuses_others(trained_pair):
    """Issue 26, item 12: a SageMaker instance type means nothing locally; the Batch page shows no picker."""
    p = trained_pair
    assert p.offers.transform_instance_types == ["local"]
    with pytest.raises(ValidationError, match="instance type"):
        p.start_transform("numeric-rf", customers(5, numeric=True), name="local-type", instance_type="ml.m5.large")
    assert "local-type" not in [t.name for t in p.list_transforms()]


def test_a_full_disk_while_a_job_unpacks_its_model_is_a_disk_error_not_a_corrupt_model(trained_pair, monkeypatch):
    """Issue 26, item 9: the job says the disk is full (free space, start again), never "retrain the model"."""
    from tests.support.disk_faults import refuse_writes

    p = trained_pair
    folder = p.settings.home / "disk-full-probe"
    refuse_writes(monkeypatch, folder)
    with pytest.raises(JobFailed) as err:
        Driver.load_model(type("D", (), {"store": p.store, "folder": folder})(), p.get_model("subs-rf"))
    message = str(err.value)
    assert "free some disk space" in message.lower() and "retrain" not in message.lower(), message


def test_a_worker_that_cannot_write_its_part_reports_the_disk_not_a_dead_worker(trained_pair, tmp_path, monkeypatch):
    """Issue 26, item 9: a worker whose part cannot be written sends the disk's message (the driver fails the job
    with it) instead of dying, which read as "died twice … check the machine's free memory"."""
    import setproctitle
    import signal as signals
    from multiprocessing import Pipe

    from churn_core.backends.local.transform_driver import worker_loop
    from churn_core.transform.rules import plan_columns, read_header
    from tests.support.disk_faults import refuse_writes

    p = trained_pair
    model = Driver.load_model(type("D", (), {"store": p.store, "folder": tmp_path})(), p.get_model("subs-rf"))
    source = tmp_path / "customers.csv"
    source.write_bytes(customers(20, seed=9))
    header = read_header(source.read_bytes(), model["compiled"]["features"])
    plan = {"source": source, "header": header, "keep": plan_columns(header, model["schema"], None), "model": model,
            "threshold": 0.5, "reasons": False}
    (tmp_path / "parts").mkdir()
    parent, child = Pipe()
    parent.send((0, header.size, source.stat().st_size - header.size, 2, 0))  # (index, offset, length, line, too long)
    monkeypatch.setattr(signals, "signal", lambda *args: None)  # the worker's own SIGTERM rule, not pytest's
    monkeypatch.setattr(setproctitle, "setproctitle", lambda title: None)
    refuse_writes(monkeypatch, tmp_path / "parts")
    assert worker_loop(child, 0, "disk-full", plan, tmp_path / "parts") == 1
    kind, message = parent.recv()
    assert kind == "disk" and "free some disk space" in message.lower(), message
    assert not list((tmp_path / "parts").iterdir())


def test_a_bucket_key_is_never_taken_for_a_file_of_that_name_in_the_working_directory(trained_pair, tmp_path,
                                                                                         monkeypatch):
    """Issue 26, item 11: 'datasets/numeric/test/test.csv' was first tried as a path relative to the working
    directory, so a local file of that name was scored instead of the dataset's test split. A key that exists in
    the bucket wins; a local file is named unambiguously (a Path, an absolute path, or ./)."""
    p = trained_pair
    key = "datasets/numeric/test/test.csv"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "datasets" / "numeric" / "test").mkdir(parents=True)
    (tmp_path / key).write_bytes(customers(5, seed=8, numeric=True))
    by_key = p.start_transform("numeric-rf", key, name="key-not-cwd")
    assert by_key.input_key == key
    by_path = p.start_transform("numeric-rf", f"./{key}", name="cwd-file")
    assert by_path.input_key == "transforms/cwd-file/input/test.csv"
    assert wait_transform(p, "key-not-cwd").rows_scored == p.get_dataset("numeric").n_test
    assert wait_transform(p, "cwd-file").rows_scored == 5
