"""Faults: processes killed with SIGKILL, a full or read-only state directory, corrupted and truncated files.

How the full disk is simulated (tests run as root, where ``chmod`` does not stop writes):

* a real full disk: a tiny tmpfs (``mount -t tmpfs -o size=512k``) is mounted as the state directory's
  parent and filled with a filler file, so writes fail with ENOSPC exactly as on a full disk;
* a read-only folder: ``chattr +i`` (immutable) on ``<home>/buckets``, which refuses writes even to root
  (EPERM).

Both are skipped when the machine does not allow them (no CAP_SYS_ADMIN / CAP_LINUX_IMMUTABLE).
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import psutil
import pytest
import requests

import churn_core
import churn_core.processes.warm.client
from churn_core.backends.local.backend import ping
from churn_core.errors import BackendError, ChurnError, ValidationError
from churn_core.processes.detached import is_alive, kill_group
from tests.support.data import SEED_ROW
from tests.support.helpers import wait_for_job, wait_until
from tests.support.trained import LONG_JOB

ROOT = Path(__file__).resolve().parents[1]
SEED = {"Input": [SEED_ROW]}


def processes_mentioning(*words: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["pid", "cmdline", "status"]):
        try:
            line = " ".join(proc.info["cmdline"] or [])
            if (
                proc.info["status"] != psutil.STATUS_ZOMBIE
                and all(w in line for w in words)
                and proc.pid != os.getpid()
            ):
                found.append(proc)
        except psutil.Error:
            continue
    return found


def gone(proc: psutil.Process) -> bool:
    try:
        return not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


# --------------------------------------------------------------------------- kill -9 of a training process


@pytest.mark.parametrize("victim", ["driver", "script"])
def test_kill_9_of_a_training_process_fails_the_job_with_a_reason(trained, victim):
    p = trained
    name = f"doomed-{victim}"
    job = p.start_training("sample", LONG_JOB, name=name)

    def training_script() -> list[psutil.Process]:
        try:
            children = psutil.Process(job.pid).children(recursive=True)
            return [c for c in children if "entry/train.py" in " ".join(c.cmdline())]
        except psutil.Error:
            return []

    script = wait_until(training_script, 60, what="the driver to run entry/train.py")
    assert p.describe_training(name).secondary_status == "Training"
    os.kill(job.pid if victim == "driver" else script[0].pid, signal.SIGKILL)
    failed = wait_until(
        lambda: (j := p.describe_training(name)).status not in ("InProgress", "Stopping") and j,
        30,
        what="the job to be reconciled",
    )
    assert failed.status == "Failed"
    if victim == "driver":
        # "exit code unknown" when the read races the dying driver: test_reconcile_records_how_a_killed_driver_ended
        assert re.search(
            r"The training process exited unexpectedly \((killed by signal SIGKILL|exit code unknown)\)",
            failed.failure_reason,
        ), failed.failure_reason
    else:
        assert "training script killed by signal SIGKILL" in failed.failure_reason
    assert failed.ended_at and failed.dataset == "sample"
    # no lost record, no orphan: the job is still listed with its log, and its script is gone
    assert name in p.job_names()
    assert p.training_log(name).strip()
    assert wait_until(lambda: all(gone(s) for s in script), 10, what="the training script to be gone")
    assert any(e["message"].startswith("Failed:") for e in p.events("job", name))
    assert churn_core.connect().describe_training(name).status == "Failed"  # a new session reads the same


def test_reconcile_records_how_a_killed_driver_ended(tmp_path):
    """What reconcile_jobs records for a driver killed with SIGKILL, read the moment it looks dead.

    A stand-in driver with a large heap makes the kernel's tear-down window wide enough to hit every time."""
    from churn_core.backends.local.backend import reconcile_jobs
    from churn_core.catalog.database import Catalog
    from churn_core.processes.detached import spawn_detached

    catalog = Catalog(tmp_path / "churn.db")
    reasons = []
    for i in range(3):
        name = f"fault-exit-status-{i}"
        pid = spawn_detached(
            ["-c", "import time; x = b'x' * 300_000_000; time.sleep(60)", name], tmp_path / f"{name}.log"
        )
        with catalog.tx() as conn:
            conn.execute(
                "INSERT INTO jobs (name, backend, dataset, dataset_sha256, algorithm, hyperparameters_json, "
                "status, created_at, pid) VALUES (?, 'local', 'd', '', 'random_forest', '{}', 'InProgress', ?, ?)",
                (name, time.time(), pid),
            )
        wait_until(
            lambda pid=pid, name=name: is_alive(pid, name) and psutil.Process(pid).memory_info().rss > 250_000_000,
            30,
            what="the stand-in driver to fill its memory",
        )
        os.kill(pid, signal.SIGKILL)
        while is_alive(pid, name):  # a status read polls like this (the Jobs page every 2 s)
            pass
        reconcile_jobs(catalog)
        reasons.append(catalog.one("SELECT failure_reason FROM jobs WHERE name = ?", (name,))["failure_reason"])
    assert all("killed by signal SIGKILL" in r for r in reasons), reasons


# --------------------------------------------------------------------------- kill -9 of an endpoint's server


@pytest.mark.slow
def test_kill_9_of_an_endpoint_server_restarts_it(trained):
    p = trained
    ep = p.deploy("model-a", "fault-crashy")
    assert ep.status == "InService", ep.failure_reason
    os.kill(ep.server_pid, signal.SIGKILL)
    back = wait_until(
        lambda: (
            (e := p.describe_endpoint(ep.name)).restarts >= 1
            and e.server_pid != ep.server_pid
            and e.status == "InService"
            and e
        ),
        30,
        what="a restarted server",
    )
    assert back.url == ep.url and back.pid == ep.pid  # same port, same supervisor
    wait_until(lambda: ping(ep.url), 60, what="the restarted server to answer /ping")
    assert p.invoke(ep.name, SEED)["Output"] in (0, 1)
    p.delete_endpoint(ep.name)


def supervisors_of(name: str) -> list[psutil.Process]:
    return processes_mentioning("churn_core.backends.local.endpoint.supervisor", f"--endpoint {name}")


def _kill_strays(p, name: str) -> None:
    """Stop supervisors and servers of ``name`` that the catalog does not know about (left by the bugs below)."""
    recorded = p.catalog.one("SELECT pid FROM endpoints WHERE name = ?", (name,))
    for proc in supervisors_of(name):
        if not recorded or proc.pid != recorded["pid"]:
            kill_group(proc.pid, grace=2.0)


@pytest.mark.slow
def test_a_new_session_repairs_a_dead_supervisor_once(trained):
    p = trained
    ep = p.deploy("model-a", "fault-orphaned")
    try:
        os.kill(ep.pid, signal.SIGKILL)
        wait_until(lambda: not is_alive(ep.pid), 10, what="the supervisor to die")
        session = churn_core.connect()  # a dashboard (re)start: reconciles at once
        recorded = session.catalog.one("SELECT pid FROM endpoints WHERE name = ?", (ep.name,))["pid"]
        session.describe_endpoint(ep.name)  # the page's first read
        assert len(supervisors_of(ep.name)) == 1, f"{len(supervisors_of(ep.name))} supervisors for one endpoint"
        assert recorded != ep.pid and is_alive(recorded, ep.name), "the new supervisor's pid is recorded"
    finally:
        _kill_strays(p, ep.name)
        p.delete_endpoint(ep.name)
        for proc in processes_mentioning("churn_core.backends.local.endpoint.server", f"--name {ep.name}"):
            kill_group(proc.pid, grace=2.0)


@pytest.mark.slow
def test_two_sessions_repairing_the_same_dead_supervisor_start_only_one(trained):
    p = trained
    ep = p.deploy("model-a", "fault-contested")
    sessions = [churn_core.connect() for _ in range(3)]  # opened first: connecting also reconciles
    barrier = threading.Barrier(len(sessions))

    def read(session):
        barrier.wait()
        session.describe_endpoint(ep.name)

    try:
        os.kill(ep.pid, signal.SIGKILL)
        wait_until(lambda: not is_alive(ep.pid), 10, what="the supervisor to die")
        threads = [threading.Thread(target=read, args=(s,)) for s in sessions]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        time.sleep(1.0)
        assert len(supervisors_of(ep.name)) == 1, f"{len(supervisors_of(ep.name))} supervisors for one endpoint"
    finally:
        _kill_strays(p, ep.name)
        p.delete_endpoint(ep.name)
        for proc in processes_mentioning("churn_core.backends.local.endpoint.server", f"--name {ep.name}"):
            kill_group(proc.pid, grace=2.0)


# --------------------------------------------------------------------------- kill -9 of the dashboard


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Dashboard:
    """The real app (``streamlit run app/main.py``) as a child process, with a minimal browser session."""

    def __init__(self, home: Path, log: Path, warm: bool = True):
        self.port = free_port()
        python = ROOT / ".venv" / "bin" / "python"
        env = dict(os.environ, CHURN_HOME=str(home), CHURN_BACKEND="local", CHURN_WARM="1" if warm else "0")
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                [
                    str(python if python.exists() else sys.executable),
                    "-m",
                    "streamlit",
                    "run",
                    "app/main.py",
                    "--server.port",
                    str(self.port),
                    "--server.headless",
                    "true",
                ],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        wait_until(self.healthy, 90, interval=0.1, what="the dashboard's /_stcore/health")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/_stcore/health", timeout=1) as resp:
                return resp.status == 200
        except OSError:
            return False

    def run_page(self, page: str, widgets: tuple = ()) -> list:
        """Open a websocket session like a browser tab, run one page (optionally with widget values), return
        its elements. Fails on any exception element the page shows."""
        from streamlit.proto.BackMsg_pb2 import BackMsg
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
        from websockets.asyncio.client import connect

        async def session() -> list:
            async with connect(
                f"ws://127.0.0.1:{self.port}/_stcore/stream", subprotocols=["streamlit"], max_size=None, open_timeout=30
            ) as ws:
                msg = BackMsg()
                msg.rerun_script.page_name = page
                msg.rerun_script.widget_states.widgets.extend(widgets)
                await ws.send(msg.SerializeToString())
                elements = []
                while True:
                    forward = ForwardMsg()
                    forward.ParseFromString(await asyncio.wait_for(ws.recv(), 90))
                    kind = forward.WhichOneof("type")
                    if kind == "delta" and forward.delta.WhichOneof("type") == "new_element":
                        elements.append(forward.delta.new_element)
                    if kind == "script_finished":
                        return elements

        elements = asyncio.run(session())
        errors = [str(e.exception) for e in elements if e.WhichOneof("type") == "exception"]
        assert not errors, errors
        return elements

    def click(self, page: str, label: str) -> list:
        from streamlit.proto.WidgetStates_pb2 import WidgetState

        button = next(
            e.button for e in self.run_page(page) if e.WhichOneof("type") == "button" and e.button.label == label
        )
        return self.run_page(page, (WidgetState(id=button.id, trigger_value=True),))

    def kill_9(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill_9()


def shown(elements: list) -> str:
    return " ".join(str(e) for e in elements)


@pytest.mark.slow
@pytest.mark.parametrize("warm", [True, False], ids=["forked-by-the-warm-process", "started-by-the-dashboard"])
def test_kill_9_of_the_dashboard_loses_nothing(trained, tmp_path, warm):
    """Jobs and endpoints outlive a killed dashboard, whether the warm process forked them or the
    dashboard started them itself (``CHURN_WARM=0``, or before the warm process is ready)."""
    pytest.importorskip("websockets.asyncio.client")  # the browser session's transport (a Streamlit dependency)
    p = trained
    home = p.settings.home
    ep = p.deploy("model-a", "fault-survivor")
    assert ep.status == "InService", ep.failure_reason
    dashboards: list[Dashboard] = []
    if warm:
        assert churn_core.processes.warm.client.wait_until_ready(60), "the warm process did not start"
        warm_process = churn_core.processes.warm.client
        parent = int(next(warm_process.run_dir().glob(f"{warm_process.fingerprint()}.pid")).read_text())
    try:
        first = Dashboard(home, tmp_path / "dashboard-1.log", warm=warm)
        if not warm:
            parent = first.pid
        dashboards.append(first)
        listening = [
            c.laddr.ip for c in psutil.Process(first.pid).net_connections("inet") if c.status == psutil.CONN_LISTEN
        ]
        assert listening and set(listening) == {"127.0.0.1"}, listening  # .streamlit/config.toml: address

        # The dashboard itself takes over the endpoint (its supervisor was killed) and launches a job,
        # so it started both processes (through the warm process, or as its own children) when it is killed.
        # (The first page run opens the dashboard's platform; killing the supervisor before that hits the
        # start-up reconcile bug pinned by test_a_new_session_repairs_a_dead_supervisor_once.)
        assert "fault-survivor" in shown(first.run_page("endpoints"))
        os.kill(ep.pid, signal.SIGKILL)
        wait_until(lambda: not is_alive(ep.pid), 10, what="the endpoint supervisor to die")
        assert "fault-survivor" in shown(first.run_page("endpoints"))

        def row() -> dict:  # straight from the catalog: a describe_endpoint here would repair it itself
            return p.catalog.one("SELECT * FROM endpoints WHERE name = ?", (ep.name,))

        supervisor = wait_until(
            lambda: row()["pid"] != ep.pid and is_alive(row()["pid"]) and row()["pid"],
            30,
            what="the dashboard to restart the supervisor",
        )
        assert psutil.Process(supervisor).ppid() == parent
        wait_until(lambda: ping(ep.url), 60, what="the endpoint to serve again")

        launched = shown(first.click("train", "Launch training"))
        assert "has started" in launched, launched[-500:]
        job = p.list_training_jobs(limit=1)[0]
        assert job.status == "InProgress" and job.name in launched
        assert psutil.Process(job.pid).ppid() == parent
        before = {"jobs": p.count_training_jobs(), "endpoints": [e.name for e in p.list_endpoints()]}

        first.kill_9()

        assert is_alive(job.pid, job.name), "the job driver outlives the dashboard"
        assert is_alive(supervisor, ep.name), "the endpoint supervisor outlives the dashboard"
        answer = requests.post(f"{ep.url}/invocations", json=SEED, timeout=30)
        assert answer.status_code == 200 and answer.json()["Output"] in (0, 1)

        second = Dashboard(home, tmp_path / "dashboard-2.log")
        dashboards.append(second)
        assert job.name in shown(second.run_page("jobs"))
        assert "fault-survivor" in shown(second.run_page("endpoints"))
        assert p.count_training_jobs() == before["jobs"]
        assert [e.name for e in p.list_endpoints()] == before["endpoints"]
        after = p.describe_endpoint(ep.name)
        assert after.status == "InService", (after.failure_reason, p.events("endpoint", ep.name, 10))
        assert after.pid == supervisor, "not restarted: it never stopped"
        assert p.invoke(ep.name, SEED)["Output"] in (0, 1)
        finished = wait_for_job(p, job.name, timeout=180)
        assert finished.status == "Completed", finished.failure_reason
        assert p.get_model(job.name)["artifact_sha256"] == finished.model_sha256
    finally:
        for dashboard in dashboards:
            dashboard.stop()
        p.delete_endpoint(ep.name)


# --------------------------------------------------------------------------- kill -9 of the warm process


@pytest.mark.slow
def test_kill_9_of_the_warm_process_loses_nothing(trained, tmp_path, monkeypatch):
    """The warm process forked a training job and an endpoint; it dies. Both carry on, a crash of the
    endpoint's server is still repaired (by a plain start), and a new warm process takes over."""
    from churn_core.processes.warm import client as warm

    folder = tmp_path / "warm"
    folder.mkdir(mode=0o700)
    monkeypatch.setenv("CHURN_WARM_DIR", str(folder))  # its own warm process: the run's stays untouched
    warm.ensure_running()
    assert warm.wait_until_ready(60)
    first = int((folder / f"{warm.fingerprint()}.pid").read_text())
    p = trained
    ep = p.deploy("model-a", "fault-warm-victim")
    job = p.start_training("sample", LONG_JOB, name="fault-warm-job")
    try:
        wait_until(lambda: p.describe_training(job.name).secondary_status == "Training", 30, what="Training")
        assert psutil.Process(job.pid).ppid() == first and psutil.Process(ep.pid).ppid() == first

        os.kill(first, signal.SIGKILL)
        wait_until(lambda: not is_alive(first), 10, what="the warm process to die")
        assert p.describe_training(job.name).status == "InProgress" and is_alive(job.pid, job.name)
        assert p.invoke(ep.name, SEED)["Output"] in (0, 1)

        os.kill(ep.server_pid, signal.SIGKILL)  # the supervisor must restart it without the warm process
        back = wait_until(
            lambda: (
                (e := p.describe_endpoint(ep.name)).restarts >= 1
                and e.status == "InService"
                and e.server_pid != ep.server_pid
                and ping(e.url)
                and e
            ),
            60,
            what="a restarted server",
        )
        assert p.invoke(back.name, SEED)["Output"] in (0, 1)

        second = wait_until(
            lambda: warm.wait_until_ready(1) and int((folder / f"{warm.fingerprint()}.pid").read_text()),
            60,
            what="a new warm process (started by the first plain start)",
        )
        assert second != first
        stopped = p.stop_training(job.name)
        assert stopped.status in ("Stopping", "Stopped")
        assert wait_for_job(p, job.name).status == "Stopped"
    finally:
        p.delete_endpoint(ep.name)
        warm.stop_all()


# --------------------------------------------------------------------------- a full or read-only state directory


def _free(path: Path) -> int:
    stats = os.statvfs(path)
    return stats.f_bavail * stats.f_frsize


def _fill(path: Path, leave: int) -> None:
    """Write a filler file so that about ``leave`` bytes stay free on the file system of ``path``."""
    size = max(0, _free(path.parent) - leave)
    with open(path, "wb") as out:
        out.write(b"\0" * size)


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []


@pytest.fixture
def tiny_disk(tmp_path, monkeypatch):
    """A 1 MB tmpfs holding the state directory (the empty catalog alone is ~170 KB); skipped when mounting is
    not allowed."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True, check=False
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode(errors='replace').strip()}")
    home = mount / "state"
    monkeypatch.setenv("CHURN_HOME", str(home))
    monkeypatch.setenv("CHURN_BACKEND", "local")
    try:
        yield home
    finally:
        if subprocess.run(["umount", str(mount)], capture_output=True, check=False).returncode != 0:
            subprocess.run(
                ["umount", "-l", str(mount)], capture_output=True, check=False
            )  # still busy: detach it lazily


def test_full_disk_during_upload_is_a_clear_error_and_leaves_nothing(tiny_disk, sample_csv):
    p = churn_core.connect()
    filler = tiny_disk.parent / "filler"
    _fill(filler, len(sample_csv) + 40_000)  # the raw file fits, the train split does not
    with pytest.raises(BackendError, match=r"No space left on device.*Free some disk space") as err:
        p.upload_dataset("telecom", sample_csv)
    assert "datasets/telecom/" in str(err.value)
    assert p.list_datasets() == []
    assert _files(tiny_disk / "buckets") == [], "the raw file written before the failure is removed"
    filler.unlink()
    assert p.upload_dataset("telecom", sample_csv).rows == 2000  # works again once there is space


@pytest.mark.parametrize("action", ["upload", "start_training"])
def test_completely_full_disk_is_a_clear_error(tiny_disk, sample_csv, action):
    p = churn_core.connect()
    if action == "start_training":
        p.upload_dataset("telecom", sample_csv)
    filler = tiny_disk.parent / "filler"
    _fill(filler, 0)
    try:
        with pytest.raises(ChurnError, match=r"(?i)disk|space"):
            if action == "upload":
                p.upload_dataset("other", sample_csv)
            else:
                p.start_training("telecom", {"n_estimators": 5}, name="no-room")
    finally:
        filler.unlink()
    assert [d.name for d in p.list_datasets()] == (["telecom"] if action == "start_training" else [])
    assert p.job_names() == []


def test_chattr_really_blocks_root(immutable, tmp_path):
    folder = tmp_path / "locked"
    immutable(folder)
    with pytest.raises(PermissionError):
        (folder / "x").write_text("root cannot write here")


@pytest.mark.parametrize("locked", ["buckets", "buckets/churn-local/datasets"])
def test_read_only_state_folder_is_a_clear_error(home, sample_csv, immutable, locked):
    p = churn_core.connect()
    immutable(home / locked)
    with pytest.raises(ChurnError, match=r"(?i)permission|read-only|not permitted"):
        p.upload_dataset("telecom", sample_csv)
    assert p.list_datasets() == []
    assert _files(home / "buckets") == []


# --------------------------------------------------------------------------- corrupted and truncated files


def test_corrupted_model_artifact_is_refused_and_says_so(trained):
    p = trained
    job = p.describe_training("model-a")
    model_path, output_path = p.store.path(job.model_key), p.store.path(job.output_key)
    originals = {model_path: model_path.read_bytes(), output_path: output_path.read_bytes()}
    try:
        for path, data in originals.items():
            damaged = bytearray(data)
            damaged[len(damaged) // 2] ^= 0xFF  # one flipped byte
            path.write_bytes(bytes(damaged))
        fresh = churn_core.connect()  # nothing cached from before the damage
        with pytest.raises(ValidationError, match=r"failed its integrity check \(SHA-256"):
            fresh.model_schema("model-a")
        with pytest.raises(ValidationError, match=r"evaluation archive failed its integrity check"):
            fresh.evaluation("model-a")
        ep = fresh.deploy("model-a", "fault-corrupted")
        assert ep.status == "Failed"
        assert "SHA-256 mismatch" in ep.failure_reason
        assert not (Path(ep.workdir) / "models").exists(), "nothing was unpacked"
        assert not is_alive(ep.server_pid)
    finally:
        for path, data in originals.items():
            path.write_bytes(data)
    p.delete_endpoint("fault-corrupted")
    assert churn_core.connect().model_schema("model-a")["target"] == "Churn"  # the restored file loads again


@pytest.mark.parametrize(
    "cut, match",
    [
        pytest.param(
            0.4, r"different number of fields than the header, which has 11: line [\d,]+ has \d+", id="mid-row"
        ),
        pytest.param(60, r"Too few rows: the file has 0 data rows", id="inside-the-header"),
        pytest.param(
            3000, r"different number of fields than the header, which has 11: line [\d,]+ has \d+", id="after-75-rows"
        ),
    ],
)
def test_truncated_upload_is_a_clear_validation_error(home, sample_csv, cut, match):
    size = int(len(sample_csv) * cut) if isinstance(cut, float) else cut
    p = churn_core.connect()
    with pytest.raises(ValidationError, match=match):
        p.upload_dataset("cut", sample_csv[:size])
    assert p.list_datasets() == [] and _files(home / "buckets") == []
