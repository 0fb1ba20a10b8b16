"""Asking the warm process for a process: what the platform and the dashboard call.

The warm process (``server``) has numpy, pandas, scikit-learn and gunicorn imported once and forks
job drivers, endpoint supervisors and model servers from itself. ``spawn`` asks it for a process,
``ensure_running`` starts it in the background, ``status`` says whether starts use it, and
``exit_code`` reads how a child it forked ended. One runs per user and per *fingerprint*
(interpreter, installed packages, this project's code), in a run folder that is the user's own
(``warm_folder``); its socket, lock, pid and broken marker are named after the fingerprint here, and
the server finds them through the same functions. Callers fall back to a plain ``python -m`` start
whenever it is not there, so it only ever makes things faster.

Every request carries an id the warm process claims before forking, so a start that got no answer
in ``REPLY_TIMEOUT`` seconds can fall back to a plain start without risking a second child
(``warm_requests``).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import signal
import socket
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

from churn_core.paths import ENTRY_DIR, ROOT
from churn_core.processes.warm import folder as warm_folder, requests as warm_requests
from churn_core.storage.private_files import open_append

MODULES = warm_requests.MODULES
CONNECT_TIMEOUT = 2.0
STARTING_WAIT = 4.0  # how long a start waits for a warm process that is still importing (~2-3 s)
REPLY_TIMEOUT = 5.0  # it answers once the child has renamed itself (milliseconds; seconds on a busy machine)
CLAIMED_WAIT = 10.0  # after a late answer: how long to wait for the pid of a child the warm process did fork
UNRESPONSIVE_PAUSE = 60.0  # after a warm process failed to answer, starts skip it for this long


def enabled() -> bool:
    """On by default on Linux only: elsewhere (macOS) system frameworks behind numpy are not safe to fork
    once loaded, so processes start plainly unless ``CHURN_WARM=1`` asks otherwise."""
    default = "1" if sys.platform.startswith("linux") else "0"
    return os.environ.get("CHURN_WARM", default).strip().lower() not in ("0", "false", "no", "off")


def run_dir() -> Path:
    """Per-user folder for the socket, lock, pid, log and exit statuses (``CHURN_WARM_DIR`` overrides)."""
    configured = os.environ.get("CHURN_WARM_DIR")
    return Path(configured) if configured else Path(tempfile.gettempdir()) / f"churn-warm-{os.getuid()}"


def _private_run_dir() -> Path | None:
    """The run folder if it is safe to use (see ``warm_folder``); None otherwise (then nothing is warm)."""
    check = warm_folder.check(run_dir())
    return check.folder if check.usable else None


def status() -> tuple[bool, str]:
    """(True, what runs) or (False, why jobs and endpoints start without the warm process)."""
    if not enabled():
        return True, "off (CHURN_WARM=0): jobs and endpoints start a new interpreter each (about 3 s slower)"
    check = warm_folder.check(run_dir())
    if not check.usable:
        return False, check.reason
    print_ = fingerprint()
    if broken_marker(check.folder, print_).exists():
        return False, (f"the warm process could not import the scientific stack for this version (see "
                       f"{check.folder / 'warm.log'}); jobs and endpoints start without it")
    if _unresponsive_until.get(str(socket_path(print_)), 0.0) > time.monotonic():
        return False, (f"the warm process did not answer in {REPLY_TIMEOUT:.0f} s (stopped or hung?); starts "
                       f"skip it for now (see {check.folder / 'warm.log'})")
    return True, f"in use ({check.folder})"


def fingerprint() -> str:
    """Changes whenever a child could behave differently: interpreter, installed packages, project code."""
    digest = hashlib.sha256(f"{sys.executable}\0{sys.prefix}\0{ROOT}".encode())
    paths = [Path(sysconfig.get_paths()["purelib"]), Path(sysconfig.get_paths()["platlib"])]
    paths += sorted(ENTRY_DIR.glob("*.py")) + sorted((ROOT / "churn_core").rglob("*.py"))
    for path in paths:
        try:
            info = path.stat()
            digest.update(f"{path}\0{info.st_mtime_ns}\0{info.st_size}\0".encode())
        except OSError:
            digest.update(f"{path}\0missing\0".encode())
    return digest.hexdigest()[:16]


def lock_file(folder: Path, print_: str) -> Path:
    """Held (flock) by the warm process of a fingerprint for its whole life, from before it imports."""
    return folder / f"{print_}.lock"


def broken_marker(folder: Path, print_: str) -> Path:
    """Left when the warm process could not import the stack for a fingerprint: no retries for it."""
    return folder / f"{print_}.broken"


def socket_path(print_: str | None = None) -> Path:
    return run_dir() / f"{print_ or fingerprint()}.sock"


class Unresponsive(OSError):
    """The warm process took a start request but did not report the child: the child may exist, so the
    caller must not start a second one; the message says what is known."""


# When the warm process of a socket last failed to answer, starts in this process skip it for a while
# instead of waiting REPLY_TIMEOUT each time (keyed by socket path; per process, never shared).
_unresponsive_until: dict[str, float] = {}
_log = logging.getLogger("churn_core.processes.warm.client")


def spawn(module: str, args: list[str], log_path: Path, env: dict, cwd: Path) -> int | None:
    """Fork ``python -m module args`` from the warm process; its pid, or None when there is none to ask,
    it refused, or it did not answer in ``REPLY_TIMEOUT`` seconds and the request was withdrawn: then the
    caller starts the process itself.

    The request carries an id. When no answer comes in time, the request is withdrawn by claiming its id
    (``warm_requests``): if the warm process claimed it first, a child exists or is being made, so its pid
    is awaited, and ``Unresponsive`` is raised if it never comes (two drivers for one job would be worse
    than a clear failure)."""
    if not enabled() or module not in MODULES:
        return None
    folder = _private_run_dir()
    if folder is None:
        return None  # why: warm_folder logged it, and status() tells the Settings page
    path = socket_path()
    if _unresponsive_until.get(str(path), 0.0) > time.monotonic():
        return None
    request_id = warm_requests.new_id()
    request = {"id": request_id, "module": module, "args": list(args), "log": str(log_path), "env": env,
               "cwd": str(cwd)}
    sock = _connect()
    if sock is None and _starting() and wait_until_ready(STARTING_WAIT):
        sock = _connect()  # it was importing: waiting is cheaper than a second interpreter importing too
    if sock is None:
        return None  # not running: nothing was asked
    deadline = time.monotonic() + REPLY_TIMEOUT
    reply: dict = {}
    with sock:
        try:
            sock.settimeout(REPLY_TIMEOUT)
            sock.sendall(json.dumps(request).encode() + b"\n")
            reply = json.loads(_read_line(sock, deadline) or b"{}")
        except (OSError, ValueError):
            reply = {}
    if not isinstance(reply, dict):
        reply = {}
    pid = reply.get("pid")
    if isinstance(pid, int) and pid > 0:
        return pid
    if "error" in reply:
        return None  # refused before forking
    if warm_requests.claim(folder, request_id, warm_requests.WITHDRAWN):
        _unresponsive_until[str(path)] = time.monotonic() + UNRESPONSIVE_PAUSE
        _log.warning("the warm process did not answer a request to start %s within %.0f s; started it without "
                     "the warm process (see %s)", module, REPLY_TIMEOUT, folder / "warm.log")
        return None  # it never took the request and now never will: a plain start is safe
    pid = warm_requests.claimed_pid(folder, request_id, CLAIMED_WAIT)
    if pid is not None:
        return pid
    _unresponsive_until[str(path)] = time.monotonic() + UNRESPONSIVE_PAUSE
    raise Unresponsive(
        f"the warm process {_warm_pid_text(folder)}accepted the request to start {module} but did not report the "
        f"new process within {REPLY_TIMEOUT + CLAIMED_WAIT:.0f} s, so it was not started a second time. Check "
        f"{folder / 'warm.log'}; try again (starts skip that warm process for {UNRESPONSIVE_PAUSE:.0f} s), or set "
        "CHURN_WARM=0 to start jobs and endpoints without it"
    )


def _warm_pid_text(folder: Path) -> str:
    try:
        pid = int((folder / f"{fingerprint()}.pid").read_text().strip())
    except (OSError, ValueError):
        return ""
    try:
        import psutil

        return f"(pid {pid}, {psutil.Process(pid).status()}) "
    except Exception:  # noqa: BLE001 - only decoration for the message
        return f"(pid {pid}) "


def _connect() -> socket.socket | None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(CONNECT_TIMEOUT)
    try:
        sock.connect(str(socket_path()))
    except OSError:
        sock.close()
        return None
    return sock


def _starting() -> bool:
    """A warm process for this fingerprint holds its lock but does not answer yet (it is importing)."""
    folder, print_ = run_dir(), fingerprint()
    return not broken_marker(folder, print_).exists() and lock_is_held(lock_file(folder, print_))


def ensure_running() -> None:
    """Start the warm process in the background unless one for this fingerprint runs or is starting."""
    folder = _private_run_dir()
    if not enabled() or folder is None:
        return
    print_ = fingerprint()
    if broken_marker(folder, print_).exists() or lock_is_held(lock_file(folder, print_)):
        return  # failed to import for this code and these packages, or already running / starting
    import subprocess

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    with open(open_append(folder / "warm.log"), "ab", buffering=0) as log:
        # The first process forks the warm one and exits at once: waiting for it leaves no zombie here.
        subprocess.run(
            [sys.executable, "-m", "churn_core.processes.warm.server", "--daemon"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(ROOT),
            start_new_session=True, close_fds=True, check=False, timeout=60,
        )


def wait_until_ready(timeout: float = 60.0) -> bool:
    """Block until the warm process for the current fingerprint answers (benchmarks and tests)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock = _connect()
        if sock is not None:
            try:
                with sock:
                    sock.sendall(b'{"ping": true}\n')
                    answer = json.loads(_read_line(sock, time.monotonic() + CONNECT_TIMEOUT) or b"{}")
                    if isinstance(answer, dict) and answer.get("ready"):
                        return True
            except (OSError, ValueError):
                pass
        time.sleep(0.05)
    return False


def stop_all() -> list[int]:
    """SIGTERM every warm process of this run folder (any fingerprint); their pids."""
    stopped: list[int] = []
    folder = _private_run_dir()
    if folder is None:
        return stopped  # not ours: its pid files could name anyone's processes
    for pid_file in folder.glob("*.pid"):
        try:
            pid = int(pid_file.read_text().strip())
            os.kill(pid, signal.SIGTERM)
            stopped.append(pid)
        except (OSError, ValueError):
            pass
    return stopped


def exit_code(pid: int) -> int | None:
    """Exit status the warm process recorded for its child ``pid`` (negative: killed by that signal)."""
    record = _exit_record(pid)
    return int(record[0]) if record else None


def exit_cpu_seconds(pid: int) -> float | None:
    """CPU seconds of the ended child ``pid`` and of the children it waited for (benchmarks)."""
    record = _exit_record(pid)
    return float(record[1]) if record and len(record) > 1 else None


def _exit_record(pid: int) -> list[str] | None:
    folder = _private_run_dir()
    if folder is None:
        return None  # a folder that is not ours says nothing about our children
    try:
        record = (folder / "exits" / str(pid)).read_text().split()
        int(record[0])
        return record
    except (OSError, ValueError, IndexError):
        return None


def lock_is_held(lock_path: Path) -> bool:
    """Someone holds the flock of ``lock_path`` (the warm process of that fingerprint runs or starts)."""
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        return True  # cannot tell: do not start another
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing releases a lock we may have taken
    return False


def _read_line(sock: socket.socket, deadline: float) -> bytes:
    """One line from ``sock``, read until ``deadline`` (time.monotonic) in total, not per chunk: a peer
    sending a byte at a time cannot stretch it."""
    data = b""
    while not data.endswith(b"\n") and len(data) < warm_requests.MAX_REQUEST_BYTES:
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("no complete line in time")
        sock.settimeout(left)
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data.strip()
