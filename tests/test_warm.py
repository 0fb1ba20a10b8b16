"""churn_core.processes.warm: the pre-imported process that forks job drivers, supervisors and model servers.

Real processes throughout: the run's warm process (started by conftest's folder, stopped at the end),
a second one with a one-second idle limit, and plain interpreter starts for the fallback."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from churn_core.processes.warm import client as warm, requests as warm_requests
from churn_core.processes.warm import server as warm_server
from churn_core.processes.detached import is_alive, kill_group, reap, spawn_detached
from tests.support.helpers import wait_until
from tests.support.warm import waiting_driver

ROOT = Path(__file__).resolve().parents[1]


def warm_pid() -> int:
    warm.ensure_running()
    assert warm.wait_until_ready(60), f"no warm process answered in {warm.run_dir()}"
    return int((warm.run_dir() / f"{warm.fingerprint()}.pid").read_text())


def test_a_forked_child_looks_like_a_plain_start_and_its_exit_is_recorded(tmp_path):
    parent = warm_pid()
    pid = spawn_detached(waiting_driver(tmp_path, "warm-child"), tmp_path / "driver.log",
                         env=dict(os.environ, WARM_TEST_MARK="42"), cwd=tmp_path)
    try:
        child = psutil.Process(pid)
        assert child.ppid() == parent, "forked by the warm process, not started by this one"
        assert os.getsid(pid) == pid, "its own session, so kill_group stops it and its children only"
        title = " ".join(child.cmdline())
        assert "-m churn_core.backends.local.job_driver" in title and "--job warm-child" in title, title
        assert is_alive(pid, "warm-child")  # the pid check the catalog's reconcile uses
        assert child.cwd() == str(tmp_path)
        modules = {Path(m.path).name for m in child.memory_maps()}
        assert any(name.startswith("_multiarray_umath") for name in modules), "numpy was already loaded"
        os.kill(pid, signal.SIGKILL)
        assert reap(pid, wait=5.0) == (True, -signal.SIGKILL)
    finally:
        kill_group(pid, grace=1.0)


def test_a_childs_log_environment_and_exit_code_come_from_the_request(tmp_path):
    warm_pid()
    log = tmp_path / "logs" / "server.log"
    pid = spawn_detached(["-m", "churn_core.backends.local.endpoint.server", "--port", "70000"], log,
                         env=dict(os.environ), cwd=tmp_path)
    wait_until(lambda: reap(pid, wait=0.1)[0] or None, 30, what="the server to exit on its bad arguments")
    assert reap(pid)[1] == 2  # serving.EXIT_BAD_ARGS
    assert "ERROR: bad serving arguments" in log.read_text()


def test_a_module_outside_the_allowed_list_is_refused(tmp_path):
    warm_pid()
    assert warm.spawn("os", ["-c", "print(1)"], tmp_path / "x.log", dict(os.environ), tmp_path) is None
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(str(warm.socket_path()))
        sock.sendall(json.dumps({"id": "0" * 32, "module": "runpy", "args": [], "log": str(tmp_path / "x.log"),
                                 "env": {}, "cwd": str(tmp_path)}).encode() + b"\n")
        reply = json.loads(sock.makefile().readline())
    assert "cannot start 'runpy'" in reply["error"]
    assert not (tmp_path / "x.log").exists()
    assert warm.wait_until_ready(5), "still serving after the refusal"


def test_with_warm_disabled_the_child_is_a_plain_interpreter_of_this_process(tmp_path, monkeypatch):
    monkeypatch.setenv("CHURN_WARM", "0")
    pid = spawn_detached(waiting_driver(tmp_path, "cold-child"), tmp_path / "driver.log", cwd=tmp_path)
    try:
        assert psutil.Process(pid).ppid() == os.getpid()
        assert is_alive(pid, "cold-child")
    finally:
        kill_group(pid, grace=1.0)  # reaps our child itself, so a later reap may find nothing to collect
    reap(pid, wait=2.0)
    assert not psutil.pid_exists(pid), "the plain child outlived its kill"


def test_the_default_run_folder_is_created_private(tmp_path, monkeypatch):
    import tempfile

    monkeypatch.delenv("CHURN_WARM_DIR")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    folder = warm._private_run_dir()
    assert folder == tmp_path / f"churn-warm-{os.getuid()}"
    assert folder.stat().st_mode & 0o777 == 0o700 and (folder / "exits").is_dir()
    folder.chmod(0o755)  # open (made by hand, or by someone else's umask): not ours to change, so not used
    assert warm._private_run_dir() is None and folder.stat().st_mode & 0o777 == 0o755
    assert "open to other users (mode 755)" in warm.status()[1]


def test_a_run_folder_of_another_user_is_never_used(tmp_path, monkeypatch):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    me = os.getuid()
    monkeypatch.setenv("CHURN_WARM_DIR", str(shared))
    monkeypatch.setattr(os, "getuid", lambda: me + 1)  # the folder now belongs to someone else
    assert warm.spawn("churn_core.backends.local.job_driver", [], tmp_path / "x.log", dict(os.environ),
                      tmp_path) is None
    warm.ensure_running()
    assert not list(shared.glob("*.sock")) and not list(shared.glob("*.pid")), "nothing started there"
    assert shared.stat().st_mode & 0o777 == 0o777, "and its permissions are not touched"


def test_the_fingerprint_follows_code_and_packages(tmp_path, monkeypatch):
    tree = tmp_path / "project"
    shutil.copytree(ROOT / "churn_core", tree / "churn_core", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "entry", tree / "entry", ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(warm, "ROOT", tree)
    monkeypatch.setattr(warm, "ENTRY_DIR", tree / "entry")
    before = warm.fingerprint()
    assert warm.fingerprint() == before, "stable while nothing changes"
    server = tree / "churn_core" / "backends" / "local" / "endpoint" / "server.py"
    server.write_text(server.read_text() + "\n# edit\n")
    edited = warm.fingerprint()
    assert edited != before
    (tree / "entry" / "train.py").touch()
    os.utime(tree / "entry" / "train.py", ns=(1, 1))
    assert warm.fingerprint() != edited
    touched = warm.fingerprint()
    os.utime(tree / "entry" / "request_parser.py", ns=(1, 1))  # every module of entry/, not only train.py
    assert warm.fingerprint() != touched


def test_a_warm_process_exits_when_idle_and_when_its_code_is_stale(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir(mode=0o700)
    env = dict(os.environ, CHURN_WARM_DIR=str(folder), CHURN_WARM_IDLE="1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    proc = subprocess.Popen([sys.executable, "-m", "churn_core.processes.warm.server"], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    assert "imported the scientific stack" in out and "idle for 1s" in out, out
    assert not list(folder.glob("*.sock")) and not list(folder.glob("*.pid")), "it cleaned up after itself"

    server = warm_server.WarmServer(folder, "0" * 16)  # a fingerprint that no longer matches the code
    assert server.should_exit()


def test_only_one_warm_process_starts_per_fingerprint(tmp_path, monkeypatch):
    """In a run folder of its own (the shared one is killed and restarted by fault tests running alongside)."""
    folder = tmp_path / "warm"
    folder.mkdir(mode=0o700)
    monkeypatch.setenv("CHURN_WARM_DIR", str(folder))

    def warm_processes() -> set[int]:
        found = set()
        for proc in psutil.process_iter(["cmdline"]):
            try:
                if "churn_core.processes.warm.server" in " ".join(proc.info["cmdline"] or []) and any(
                        f.path.startswith(str(folder)) for f in proc.open_files()):  # its lock and log
                    found.add(proc.pid)
            except psutil.Error:
                pass
        return found

    try:
        parent = warm_pid()
        before = warm_processes()
        for _ in range(3):
            warm.ensure_running()
        time.sleep(0.5)
        assert warm_processes() == before and parent in before
        assert [p.name for p in warm.run_dir().glob("*.pid")] == [f"{warm.fingerprint()}.pid"]
    finally:
        for pid in warm.stop_all():
            wait_until(lambda pid=pid: not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie", 10,
                       what=f"warm process {pid} to stop")


@pytest.mark.parametrize(
    "answer, claimed, outcome",
    [(b'{"error": "cannot start"}\n', False, "fallback"), (b"", False, "fallback"), (b"", True, "error")],
    ids=["refused-before-forking", "no-answer-and-not-taken", "taken-but-no-answer"],
)
def test_a_request_that_may_have_started_a_child_is_never_retried_as_a_plain_start(
    tmp_path, monkeypatch, answer, claimed, outcome
):
    """No answer: the caller withdraws the request by claiming its id. If the warm process had claimed it
    (it does so before forking), a child may exist: a clear error, never a second process."""
    import threading

    folder = tmp_path / "run"
    folder.mkdir(mode=0o700)
    monkeypatch.setenv("CHURN_WARM_DIR", str(folder))
    monkeypatch.setattr(warm, "REPLY_TIMEOUT", 0.5)
    monkeypatch.setattr(warm, "CLAIMED_WAIT", 0.5)
    warm._private_run_dir()  # makes requests/
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(warm.socket_path()))
    listener.listen(1)

    def answer_once() -> None:
        conn, _ = listener.accept()
        with conn:
            request = json.loads(conn.makefile("rb").readline())
            if claimed:
                assert warm_requests.claim(folder, request["id"], "forking")
            conn.sendall(answer)

    server = threading.Thread(target=answer_once)
    server.start()
    try:
        if outcome == "fallback":  # nothing was (or now can be) forked: the caller may start it itself
            assert warm.spawn("churn_core.backends.local.job_driver", [], tmp_path / "x.log", dict(os.environ),
                              tmp_path) is None
        else:  # the child may exist: a clear error, not a second process
            with pytest.raises(OSError,
                               match="accepted the request to start churn_core.backends.local.job_driver but did not"):
                warm.spawn("churn_core.backends.local.job_driver", [], tmp_path / "x.log", dict(os.environ), tmp_path)
    finally:
        server.join(10)
        listener.close()
        warm._unresponsive_until.clear()


def test_old_exit_records_and_unheld_locks_of_past_code_versions_are_cleared(tmp_path):
    import fcntl

    folder = tmp_path / "run"
    (folder / "exits").mkdir(parents=True)
    old = time.time() - 2 * warm_server.EXIT_FILE_TTL
    for path in (folder / "exits" / "123", folder / "aaaa.lock", folder / "held.lock", folder / "mine.lock"):
        path.write_text("0")
        os.utime(path, (old, old))
    (folder / "exits" / "456").write_text("0")  # recent
    held = os.open(folder / "held.lock", os.O_RDWR)
    fcntl.flock(held, fcntl.LOCK_EX)
    try:
        warm_server.WarmServer(folder, "mine").forget_old_exit_files()
    finally:
        os.close(held)
    assert sorted(p.name for p in (folder / "exits").iterdir()) == ["456"]
    assert sorted(p.name for p in folder.glob("*.lock")) == ["held.lock", "mine.lock"]


def test_on_by_default_on_linux_only(monkeypatch):
    monkeypatch.delenv("CHURN_WARM", raising=False)
    monkeypatch.setattr(warm.sys, "platform", "linux")
    assert warm.enabled()
    monkeypatch.setattr(warm.sys, "platform", "darwin")
    assert not warm.enabled()
    monkeypatch.setenv("CHURN_WARM", "1")
    assert warm.enabled()
    monkeypatch.setenv("CHURN_WARM", "off")
    monkeypatch.setattr(warm.sys, "platform", "linux")
    assert not warm.enabled()


def test_a_warm_process_that_cannot_import_says_so_once_and_is_not_retried(tmp_path, monkeypatch):
    folder = tmp_path / "run"
    folder.mkdir(mode=0o700)
    env = dict(
        os.environ,
        CHURN_WARM_DIR=str(folder),
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    )
    broken_install = (
        "import sys, churn_core.processes.warm.server as w; w.PRELOAD = ('numpy', 'no_such_module_here'); "
        "sys.exit(w.main([]))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", broken_install], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "cannot import no_such_module_here (ModuleNotFoundError" in proc.stdout
    marker = folder / f"{warm.fingerprint()}.broken"
    assert "no_such_module_here" in marker.read_text()
    assert not list(folder.glob("*.sock")) and not list(folder.glob("*.pid"))

    monkeypatch.setenv("CHURN_WARM_DIR", str(folder))
    warm.ensure_running()  # would start one in the background: it must not, for this version
    time.sleep(1.0)
    assert not list(folder.glob("*.pid")) and not (folder / "warm.log").exists()
    assert warm.spawn("churn_core.backends.local.job_driver", [], tmp_path / "x.log", dict(os.environ),
                      tmp_path) is None


def test_a_start_waits_for_a_warm_process_that_is_still_importing(tmp_path, monkeypatch):
    folder = tmp_path / "run"
    folder.mkdir(mode=0o700)
    monkeypatch.setenv("CHURN_WARM_DIR", str(folder))
    monkeypatch.setattr(warm, "STARTING_WAIT", 60.0)  # the behaviour under test, whatever the machine's speed
    warm.ensure_running()  # returns at once; the new warm process now imports for ~2 s
    deadline = time.monotonic() + 10
    while not warm._starting() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert warm._starting() and not list(folder.glob("*.sock")), "caught it while importing"
    pid = spawn_detached(waiting_driver(tmp_path, "early-job"), tmp_path / "driver.log", cwd=tmp_path)
    try:
        parent = int((folder / f"{warm.fingerprint()}.pid").read_text())
        assert psutil.Process(pid).ppid() == parent, "forked by the warm process, not started plainly"
    finally:
        kill_group(pid, grace=1.0)
        warm.stop_all()
