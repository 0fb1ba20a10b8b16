"""The warm process cannot be planted, stalled or misused:

* its folder is used only when it is the user's own (a planted link or another user's folder is refused,
  a shared 1777 folder is never chmod-ed), and the reason is logged and shown by check_connection;
* a start that gets no answer (warm process stopped, or clients trickling bytes into its socket) falls back
  to a plain start within seconds, and the withdrawn request is refused if the warm process wakes up;
* the socket runs only the product's modules, and a model server only with the project's entry script.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

import churn_core
from churn_core.processes.warm import client as warm, requests as warm_requests
from churn_core.processes.detached import kill_group, reap, spawn_detached
from tests.support.helpers import wait_for_job, wait_until
from tests.support.warm import waiting_driver

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def own_warm(tmp_path, monkeypatch):
    """A warm process of this test's own (folder, pid), so stopping or flooding it disturbs no other test."""
    folder = tmp_path / "run"
    folder.mkdir(mode=0o700)
    monkeypatch.setenv("CHURN_WARM_DIR", str(folder))
    warm.ensure_running()
    assert warm.wait_until_ready(90), (folder / "warm.log").read_text() if (folder / "warm.log").exists() else ""
    pid = int((folder / f"{warm.fingerprint()}.pid").read_text())
    yield folder, pid
    try:
        os.kill(pid, signal.SIGCONT)
    except ProcessLookupError:
        pass
    warm.stop_all()
    wait_until(lambda: not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE, 20,
               what="the test's warm process to exit")
    warm._unresponsive_until.clear()


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


# --------------------------------------------------------------------------- finding 2: a planted folder


def test_a_planted_link_as_the_run_folder_is_refused_and_its_target_left_alone(tmp_path, monkeypatch, caplog):
    import tempfile

    monkeypatch.delenv("CHURN_WARM_DIR")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    target = tmp_path / "owners-project"  # a folder the owner can write, picked by the attacker
    target.mkdir()
    target.chmod(0o755)
    (tmp_path / f"churn-warm-{os.getuid()}").symlink_to(target)
    with caplog.at_level(logging.WARNING, logger="churn_core.processes.warm.client"):
        assert warm._private_run_dir() is None
        usable, reason = warm.status()
        assert not usable and "is a symbolic link" in reason and "start without the warm process" in reason
        assert warm.spawn("churn_core.backends.local.job_driver", [], tmp_path / "x.log", dict(os.environ),
                          tmp_path) is None
        warm.ensure_running()
        warm._private_run_dir()
    assert [r.message for r in caplog.records].count(reason) == 1, "said once, not at every start"
    assert mode(target) == 0o755, "the link's target was not chmod-ed"
    assert list(target.iterdir()) == [], "nothing was written through the link"


def test_a_run_folder_of_another_user_is_refused(tmp_path, monkeypatch):
    planted = tmp_path / "planted"
    planted.mkdir(mode=0o700)
    os.chown(planted, 65534, 65534)  # tests run as root: 'nobody' made it first
    monkeypatch.setenv("CHURN_WARM_DIR", str(planted))
    assert warm._private_run_dir() is None
    assert "belongs to another user (uid 65534)" in warm.status()[1]
    warm.ensure_running()
    assert list(planted.iterdir()) == [] and planted.stat().st_uid == 65534


def test_a_shared_1777_folder_named_by_CHURN_WARM_DIR_is_never_made_private(tmp_path, monkeypatch, home):
    shared = tmp_path / "shared-tmp"
    shared.mkdir()
    shared.chmod(0o1777)
    monkeypatch.setenv("CHURN_WARM_DIR", str(shared))
    assert warm._private_run_dir() is None
    warm.ensure_running()
    p = churn_core.connect()
    assert mode(shared) == 0o1777, "a folder the product did not make keeps its permissions"
    assert not list(shared.glob("*.sock")) and not list(shared.glob("*.pid"))
    checks = {what: (passed, detail) for what, passed, detail in p.check_connection()}
    passed, detail = checks["Warm process"]
    assert not passed and "open to other users (mode 1777)" in detail and "CHURN_WARM_DIR" in detail


def test_a_run_folder_the_product_creates_is_private_whatever_the_umask(tmp_path, monkeypatch):
    monkeypatch.setenv("CHURN_WARM_DIR", str(tmp_path / "new-run"))
    previous = os.umask(0o002)
    try:
        folder = warm._private_run_dir()
    finally:
        os.umask(previous)
    assert folder == tmp_path / "new-run"
    assert mode(folder) == 0o700 and mode(folder / "exits") == 0o700 and mode(folder / "requests") == 0o700


# --------------------------------------------------------------------------- finding 8: a hung warm process


def test_a_start_while_the_warm_process_is_stopped_falls_back_without_a_duplicate(own_warm, home, sample_csv):
    folder, warm_pid = own_warm
    p = churn_core.connect()
    p.upload_dataset("sample", sample_csv)
    os.kill(warm_pid, signal.SIGSTOP)
    try:
        job = p.start_training("sample", {"n_estimators": 3}, name="while-stopped")
        assert psutil.Process(job.pid).ppid() != warm_pid, "started plainly, not by the stopped warm process"
        assert wait_for_job(p, job.name).status == "Completed"
        usable, reason = warm.status()
        assert not usable and "did not answer" in reason
    finally:
        os.kill(warm_pid, signal.SIGCONT)
    # Woken up, the warm process reads the withdrawn request and refuses it: no second driver.
    wait_until(lambda: "was withdrawn by its caller" in (folder / "warm.log").read_text(), 30,
               what="the warm process to refuse the withdrawn request")
    log = (home / "jobs" / "while-stopped" / "train.log").read_text()
    assert log.count("Starting training") == 1, log
    assert p.describe_training("while-stopped").status == "Completed"


def trickle(path: Path, dropped: list) -> None:
    """Send one byte every 0.3 s and never a whole request, for at most 15 s or until the peer hangs up."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(str(path))
        deadline = time.monotonic() + 15
        try:
            while time.monotonic() < deadline:
                sock.sendall(b"{")
                time.sleep(0.3)
        except OSError:
            dropped.append(True)  # what the warm process should do to it


def test_clients_trickling_bytes_into_the_socket_do_not_hold_up_a_start(own_warm, tmp_path):
    folder, warm_pid = own_warm
    dropped: list = []
    tricklers = [threading.Thread(target=trickle, args=(warm.socket_path(), dropped), daemon=True) for _ in range(4)]
    for thread in tricklers:
        thread.start()
    time.sleep(0.5)
    pid = spawn_detached(waiting_driver(tmp_path, "past-tricklers"), tmp_path / "driver.log", cwd=tmp_path)
    try:
        assert psutil.Process(pid).ppid() == warm_pid, "the warm process answered despite the tricklers"
    finally:
        kill_group(pid, grace=1.0)
        reap(pid, wait=2.0)
    for thread in tricklers:
        thread.join(20)
    assert len(dropped) == 4, "every trickling connection was dropped"
    assert "dropped a connection that sent no complete request" in (folder / "warm.log").read_text()


def request(sock_path: Path, payload: dict) -> dict:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(30)
        sock.connect(str(sock_path))
        sock.sendall(json.dumps(payload).encode() + b"\n")
        return json.loads(sock.makefile().readline())


def test_a_request_id_is_run_once(own_warm, tmp_path):
    folder, _ = own_warm
    args = waiting_driver(tmp_path, "run-once")[2:]
    payload = {"id": warm_requests.new_id(), "module": "churn_core.backends.local.job_driver", "args": args,
               "log": str(tmp_path / "d.log"), "env": dict(os.environ), "cwd": str(tmp_path)}
    first = request(warm.socket_path(), payload)
    try:
        assert first.get("pid"), first
        assert "already run" in request(warm.socket_path(), payload)["error"]
        withdrawn = dict(payload, id=warm_requests.new_id())
        assert warm_requests.claim(folder, withdrawn["id"], warm_requests.WITHDRAWN)
        assert "withdrawn" in request(warm.socket_path(), withdrawn)["error"]
    finally:
        kill_group(first.get("pid"), grace=1.0)


# --------------------------------------------------------------------------- only the project's code runs


@pytest.fixture
def evil_entry(tmp_path):
    marker = tmp_path / "evil-ran"
    script = tmp_path / "evil.py"
    script.write_text(f"open({str(marker)!r}, 'w').write('ran')\n"
                      "def model_fn(d): return None\ndef input_fn(b, c): return b\n"
                      "def predict_fn(x, m): return x\ndef output_fn(p, a): return p\n")
    return script, marker


@pytest.mark.parametrize("spelling", ["--entry", "--ent"])
def test_the_socket_refuses_a_model_server_with_an_entry_outside_the_project(own_warm, tmp_path, evil_entry,
                                                                               model_tarballs, spelling):
    script, marker = evil_entry
    artifact = tmp_path / "model.tar.gz"
    artifact.write_bytes(model_tarballs["model"])
    from churn_core.storage.artifacts import sha256_bytes

    args = ["--artifact", str(artifact), "--sha256", sha256_bytes(model_tarballs["model"]), spelling, str(script),
            "--workdir", str(tmp_path / "work"), "--port", "1", "--name", "evil"]
    answer = request(warm.socket_path(), {"id": warm_requests.new_id(),
                                          "module": "churn_core.backends.local.endpoint.server",
                                          "args": args, "log": str(tmp_path / "s.log"), "env": dict(os.environ),
                                          "cwd": str(tmp_path)})
    assert "is not a script of the project's entry/ folder" in answer.get("error", ""), answer
    time.sleep(1.0)
    assert not marker.exists()
    # and a plain start of the model server refuses it too
    plain = subprocess.run([sys.executable, "-m", "churn_core.backends.local.endpoint.server", *args], cwd=ROOT,
                           capture_output=True,
                           text=True, timeout=120, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert plain.returncode == 2 and "--entry must be a script of the project's entry/ folder" in plain.stderr
    assert not marker.exists()
