"""The warm process: numpy, pandas, scikit-learn and gunicorn imported once, then forked on demand.

On a 2-core laptop a new Python spends ~2.8 CPU-seconds importing the scientific stack before a
training job can read its first row or a model server can answer ``/ping``. This process pays that
once and forks job drivers, endpoint supervisors and model servers from itself, so they start in
milliseconds with everything already imported (the way Android's zygote starts apps).

``python -m churn_core.warm`` runs it; ``spawn`` asks it for a process and ``ensure_running``
starts it in the background. One runs per user and per *fingerprint* (interpreter, installed
packages, this project's code): when any of those change it exits and the next request starts a
fresh one, so a child never runs stale code. It also exits after ``CHURN_WARM_IDLE`` seconds
without a request. Callers fall back to a plain ``python -m`` start whenever it is not there,
so it only ever makes things faster.

A forked child starts a new session (its own process group, like ``spawn_detached``), takes the
environment, working directory and log file of the request, and renames itself to the command
line it stands for (``python -m churn_core.job_driver --job NAME ...``), so ``ps`` and the pid
checks in ``processes.is_alive`` see what they would see after a plain start. The warm process
reaps its children and writes each exit status to ``exits/<pid>`` for ``processes.reap``.

Only the modules in ``MODULES`` can be started, over a UNIX socket in a 0700 folder of the user's.
Environment variables read at import time by the numerical libraries (``OMP_NUM_THREADS`` ...)
take the warm process's values, not the request's.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib
import json
import os
import select
import signal
import socket
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

from .child import become, flush_output, run_to_exit
from .paths import ENTRY_DIR, ROOT

MODULES = ("churn_core.job_driver", "churn_core.endpoint_supervisor", "churn_core.serving",
           "churn_core.monitor_driver", "churn_core.tuning_driver", "churn_core.transform_driver")
PRELOAD = (
    "numpy", "pandas", "joblib", "scipy.stats",
    "sklearn.compose", "sklearn.ensemble", "sklearn.impute", "sklearn.linear_model", "sklearn.metrics",
    "sklearn.model_selection", "sklearn.pipeline", "sklearn.preprocessing", "sklearn.utils.class_weight",
    "gunicorn.app.base", "gunicorn.arbiter", "gunicorn.workers.gthread", "gunicorn.glogging",
    *MODULES,
)
CONNECT_TIMEOUT = 2.0
STARTING_WAIT = 4.0  # how long a start waits for a warm process that is still importing (~2-3 s)
REPLY_TIMEOUT = 30.0  # it answers once the child has renamed itself (milliseconds; seconds on a busy machine)
CHECK_EVERY = 2.0  # seconds between fingerprint checks
EXIT_FILE_TTL = 3600.0
MAX_REQUEST_BYTES = 1 << 20


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
    """The run folder, created 0700; None if it belongs to someone else (then nothing is warm)."""
    folder = run_dir()
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        folder.mkdir(mode=0o700, exist_ok=True)
        info = folder.stat()
        if info.st_uid != os.getuid():
            return None
        if info.st_mode & 0o077:
            folder.chmod(0o700)  # ours, but created open (an older version, a umask): close it
        (folder / "exits").mkdir(mode=0o700, exist_ok=True)
    except OSError:
        return None
    return folder


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


# --------------------------------------------------------------------------- client side


def spawn(module: str, args: list[str], log_path: Path, env: dict, cwd: Path) -> int | None:
    """Fork ``python -m module args`` from the warm process; its pid, or None when there is none to ask
    (or it refused), so the caller can start the process itself.

    Once the request is sent, a missing answer raises OSError instead: the child may exist, and
    starting a second one (two drivers for one job) would be worse than a clear failure."""
    if not enabled() or module not in MODULES or _private_run_dir() is None:
        return None
    request = {"module": module, "args": list(args), "log": str(log_path), "env": env, "cwd": str(cwd)}
    sock = _connect()
    if sock is None and _starting() and wait_until_ready(STARTING_WAIT):
        sock = _connect()  # it was importing: waiting is cheaper than a second interpreter importing too
    if sock is None:
        return None  # not running: nothing was asked
    with sock:
        sock.settimeout(REPLY_TIMEOUT)
        sock.sendall(json.dumps(request).encode() + b"\n")
        try:
            reply = json.loads(_read_line(sock) or b"{}")
        except ValueError:
            reply = {}
    if "error" in reply:
        return None  # refused before forking
    pid = reply.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        raise OSError(f"the warm process did not answer a request to start {module} (see {run_dir() / 'warm.log'}); "
                      "try again, or set CHURN_WARM=0 to start jobs and endpoints without it")
    return pid


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
    return not broken_marker(folder, print_).exists() and _lock_is_held(lock_file(folder, print_))


def ensure_running() -> None:
    """Start the warm process in the background unless one for this fingerprint runs or is starting."""
    folder = _private_run_dir()
    if not enabled() or folder is None:
        return
    print_ = fingerprint()
    if broken_marker(folder, print_).exists() or _lock_is_held(lock_file(folder, print_)):
        return  # failed to import for this code and these packages, or already running / starting
    import subprocess

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    with open(folder / "warm.log", "ab", buffering=0) as log:
        # The first process forks the warm one and exits at once: waiting for it leaves no zombie here.
        subprocess.run(
            [sys.executable, "-m", "churn_core.warm", "--daemon"],
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
                    if json.loads(_read_line(sock) or b"{}").get("ready"):
                        return True
            except (OSError, ValueError):
                pass
        time.sleep(0.05)
    return False


def stop_all() -> list[int]:
    """SIGTERM every warm process of this run folder (any fingerprint); their pids."""
    stopped = []
    for pid_file in run_dir().glob("*.pid"):
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
    try:
        record = (run_dir() / "exits" / str(pid)).read_text().split()
        int(record[0])
        return record
    except (OSError, ValueError, IndexError):
        return None


def _lock_is_held(lock_path: Path) -> bool:
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


def _read_line(sock: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n") and len(data) < MAX_REQUEST_BYTES:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data.strip()


# --------------------------------------------------------------------------- the warm process


class WarmServer:
    def __init__(self, folder: Path, print_: str):
        self.folder = folder
        self.print = print_
        self.socket_path = folder / f"{print_}.sock"
        self.stopping = False
        self.last_request = time.monotonic()
        self.idle_limit = float(os.environ.get("CHURN_WARM_IDLE", "1800"))
        self.children: set[int] = set()
        self.private_fds: list[int] = []  # closed in every child (the lock must die with this process)
        self.lingering = True  # after a code change, keep reaping running children; not after SIGTERM

    def log(self, message: str) -> None:
        try:
            print(f"[{time.strftime('%H:%M:%S')}] warm {os.getpid()} {self.print}: {message}", flush=True)
        except OSError:
            pass  # a full disk must not take the warm process (and its children's exit records) down

    def run(self) -> int:
        lock_fd = os.open(lock_file(self.folder, self.print), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return 0  # another one runs for this fingerprint
        self.private_fds.append(lock_fd)
        started = time.monotonic()
        try:
            for name in PRELOAD:
                importlib.import_module(name)
        except Exception as exc:  # a broken install: say so once, and let every start be a plain one
            self.log(f"cannot import {name} ({type(exc).__name__}: {exc}); not warming this version")
            broken_marker(self.folder, self.print).write_text(f"{name}: {type(exc).__name__}: {exc}\n")
            os.close(lock_fd)
            return 1
        self.log(f"imported the scientific stack in {time.monotonic() - started:.2f}s")
        pid_file = self.folder / f"{self.print}.pid"
        pid_file.write_text(str(os.getpid()))
        self.socket_path.unlink(missing_ok=True)  # left by a warm process that was killed: we hold the lock
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(self.socket_path))
        listener.listen(32)
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        self.private_fds += [wake_r, wake_w]
        signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGTERM, self.on_stop)
        signal.signal(signal.SIGINT, self.on_stop)
        last_check = time.monotonic()
        try:
            while not self.stopping:
                ready, _, _ = select.select([listener, wake_r], [], [], CHECK_EVERY)
                if wake_r in ready:
                    _drain(wake_r)
                self.reap()
                if listener in ready:
                    self.accept(listener)
                if time.monotonic() - last_check >= CHECK_EVERY:
                    last_check = time.monotonic()
                    if self.should_exit():
                        break
        finally:
            self.socket_path.unlink(missing_ok=True)
            pid_file.unlink(missing_ok=True)
            listener.close()
            os.close(lock_fd)  # a new warm process may start now
            self.log("exiting")
        while self.lingering and self.children:  # children run on; record how they end
            self.reap()
            if self.children:
                time.sleep(0.5)
        return 0

    def on_stop(self, *_: object) -> None:
        self.stopping = True
        self.lingering = False

    def should_exit(self) -> bool:
        if fingerprint() != self.print:
            self.log("code or packages changed")
            return True
        if not self.children and time.monotonic() - self.last_request > self.idle_limit:
            self.log(f"idle for {self.idle_limit:.0f}s")
            return True
        self.forget_old_exit_files()
        return False

    def forget_old_exit_files(self) -> None:
        """Drop exit records older than an hour, and the lock files of past fingerprints nobody holds."""
        now = time.time()
        for path in (self.folder / "exits").iterdir():
            try:
                if now - path.stat().st_mtime > EXIT_FILE_TTL:
                    path.unlink()
            except OSError:
                pass
        for path in [*self.folder.glob("*.lock"), *self.folder.glob("*.broken")]:
            try:
                if path.stem != self.print and now - path.stat().st_mtime > EXIT_FILE_TTL and not _lock_is_held(path):
                    path.unlink()
            except OSError:
                pass

    def reap(self) -> None:
        while True:
            try:
                pid, status, usage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self.children.discard(pid)
            code = os.waitstatus_to_exitcode(status)
            target = self.folder / "exits" / str(pid)
            temp = target.with_name(f".{pid}.tmp")
            try:  # exit code, then CPU seconds of the child and the children it waited for
                temp.write_text(f"{code} {usage.ru_utime + usage.ru_stime:.3f}")
                temp.replace(target)
            except OSError as exc:
                self.log(f"could not record the exit of {pid}: {exc}")

    def accept(self, listener: socket.socket) -> None:
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(5.0)
            try:
                request = json.loads(_read_line(conn) or b"{}")
                if request.get("ping"):
                    conn.sendall(b'{"ready": true}\n')
                    return
                self.last_request = time.monotonic()
                pid = self.fork(request, listener, conn)
                conn.sendall(json.dumps({"pid": pid}).encode() + b"\n")
            except Exception as exc:  # a bad request must not take the warm process down
                self.log(f"refused a request: {exc}")
                try:
                    conn.sendall(json.dumps({"error": str(exc)}).encode() + b"\n")
                except OSError:
                    pass

    def fork(self, request: dict, listener: socket.socket, conn: socket.socket) -> int:
        module, args = request["module"], request["args"]
        if module not in MODULES or not all(isinstance(a, str) for a in args):
            raise ValueError(f"cannot start {module!r}")
        ready_r, ready_w = os.pipe()
        flush_output()
        pid = os.fork()
        if pid == 0:  # the child: never returns into this loop

            def work() -> object:
                os.close(ready_r)
                listener.close()
                conn.close()
                for fd in self.private_fds:
                    os.close(fd)
                return _child(request, ready_w)

            run_to_exit(work)
        os.close(ready_w)
        self.children.add(pid)
        try:  # reply only once the child carries its new name, so pid checks never see the old one
            select.select([ready_r], [], [], 5.0)
        finally:
            os.close(ready_r)
        return pid


def _child(request: dict, ready_w: int) -> object:
    """Become ``python -m module args`` in a new session with the request's env, cwd and log, tell the
    warm process so, and run the module's ``main``."""
    signal.set_wakeup_fd(-1)
    os.setsid()
    log_path = Path(request["log"])
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(log_fd)
    sys.stdout = open(1, "w", buffering=1, closefd=False)  # line-buffered like PYTHONUNBUFFERED logs
    sys.stderr = open(2, "w", buffering=1, closefd=False)
    module, args = request["module"], request["args"]
    become([sys.executable, "-m", module, *args], [module, *args], request["env"], request["cwd"])
    os.write(ready_w, b"1")
    os.close(ready_w)
    return importlib.import_module(module).main(args)


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 4096):
            pass
    except BlockingIOError:
        pass


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    folder = _private_run_dir()
    if folder is None:
        print(f"the warm-process folder {run_dir()} is not private to this user; not starting", flush=True)
        return 1
    if "--daemon" in argv and os.fork():
        return 0  # the starter exits; the warm process is re-parented and lives on
    return WarmServer(folder, fingerprint()).run()


if __name__ == "__main__":
    code = main()
    flush_output()
    os._exit(code)
