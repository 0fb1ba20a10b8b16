"""The warm process: numpy, pandas, scikit-learn and gunicorn imported once, then forked on demand.

On a 2-core laptop a new Python spends ~2.8 CPU-seconds importing the scientific stack before a
training job can read its first row or a model server can answer ``/ping``. This process pays that
once and forks job drivers, endpoint supervisors and model servers from itself, so they start in
milliseconds with everything already imported (the way Android's zygote starts apps).

``python -m churn_core.processes.warm.server`` runs it (``client.ensure_running`` starts it). It
exits when the fingerprint of the code or packages changes (the next request starts a fresh one, so
a child never runs stale code), and after ``CHURN_WARM_IDLE`` seconds without a request.

A forked child starts a new session (its own process group, like ``spawn_detached``), takes the
environment, working directory and log file of the request, and renames itself to the command
line it stands for (``python -m churn_core.backends.local.job_driver --job NAME ...``), so ``ps`` and the pid
checks in ``processes.is_alive`` see what they would see after a plain start. The warm process
reaps its children and writes each exit status to ``exits/<pid>`` for ``processes.reap``.

Only the modules in ``MODULES`` can be started (a model server only with the project's own entry
script), over a UNIX socket in a folder that is the user's own (``warm_folder``). A request id is
claimed before forking, so a request its caller withdrew is never run (``warm_requests``); a
connection that does not send a whole request within a second is dropped, so a stuck client cannot
hold the warm process up.
Environment variables read at import time by the numerical libraries (``OMP_NUM_THREADS`` ...)
take the warm process's values, not the request's.
"""

from __future__ import annotations

import fcntl
import importlib
import json
import os
import select
import signal
import socket
import sys
import time
from pathlib import Path

from churn_core.processes.child import become, flush_output, run_to_exit
from churn_core.processes.warm import folder as warm_folder, requests as warm_requests
from churn_core.processes.warm.client import broken_marker, fingerprint, lock_file, lock_is_held, run_dir
from churn_core.storage.private_files import open_append, set_process_umask

PRELOAD = (
    "numpy", "pandas", "joblib", "scipy.stats",
    "sklearn.compose", "sklearn.ensemble", "sklearn.impute", "sklearn.linear_model", "sklearn.metrics",
    "sklearn.model_selection", "sklearn.pipeline", "sklearn.preprocessing", "sklearn.utils.class_weight",
    "gunicorn.app.base", "gunicorn.arbiter", "gunicorn.workers.gthread", "gunicorn.glogging",
    *warm_requests.MODULES,
)
REQUEST_READ_TIMEOUT = 1.0  # a connection must deliver its whole request line within this
MAX_PENDING = 64  # connections still sending their request; beyond that the oldest is dropped
RENAME_WAIT = 5.0  # a forked child signals once renamed (milliseconds); after this its pid is sent anyway
CHECK_EVERY = 2.0  # seconds between fingerprint checks
EXIT_FILE_TTL = 3600.0


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
        self.pending: dict[socket.socket, tuple[bytearray, float]] = {}  # connections still sending a request
        # children forked but not yet renamed: ready pipe -> (caller's connection, pid, request id, deadline)
        self.forking: dict[int, tuple[socket.socket, int, str, float]] = {}

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
        listener.setblocking(False)
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
                deadlines = [d for _, d in self.pending.values()] + [f[3] for f in self.forking.values()]
                wait = max(0.0, min([CHECK_EVERY, *(d - time.monotonic() for d in deadlines)]))
                ready, _, _ = select.select([listener, wake_r, *self.pending, *self.forking], [], [], wait)
                if wake_r in ready:
                    _drain(wake_r)
                self.reap()
                for fd in [r for r in ready if isinstance(r, int) and r in self.forking]:
                    self.started(fd)
                if listener in ready:
                    self.accept(listener)
                for conn in [c for c in ready if c in self.pending]:
                    self.receive(conn, listener)
                self.drop_stalled()
                if time.monotonic() - last_check >= CHECK_EVERY:
                    last_check = time.monotonic()
                    if self.should_exit():
                        break
        finally:
            self.socket_path.unlink(missing_ok=True)
            pid_file.unlink(missing_ok=True)
            for conn in list(self.pending):
                conn.close()
            self.pending.clear()
            for fd in list(self.forking):
                self.started(fd)
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
        warm_requests.forget_old(self.folder, EXIT_FILE_TTL)
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
                if path.stem != self.print and now - path.stat().st_mtime > EXIT_FILE_TTL and not lock_is_held(path):
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
        """Take every waiting connection; each must send its request line within REQUEST_READ_TIMEOUT."""
        while True:
            try:
                conn, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self.log(f"accept failed: {exc}")
                return
            conn.setblocking(False)
            if len(self.pending) >= MAX_PENDING:  # a flood of idle connections: the oldest goes
                oldest = min(self.pending, key=lambda c: self.pending[c][1])
                self.pending.pop(oldest)
                oldest.close()
            self.pending[conn] = (bytearray(), time.monotonic() + REQUEST_READ_TIMEOUT)

    def drop_stalled(self) -> None:
        now = time.monotonic()
        for fd in [fd for fd, entry in self.forking.items() if entry[3] <= now]:
            self.started(fd)  # a child slow to rename itself: answer with its pid anyway
        for conn, (_, deadline) in list(self.pending.items()):
            if deadline <= now:
                self.pending.pop(conn)
                self.log(f"dropped a connection that sent no complete request within {REQUEST_READ_TIMEOUT:.0f}s")
                conn.close()

    def receive(self, conn: socket.socket, listener: socket.socket) -> None:
        buffer, _ = self.pending[conn]
        try:
            chunk = conn.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            chunk = b""
        if chunk:
            buffer += chunk
        if not chunk or b"\n" in buffer or len(buffer) > warm_requests.MAX_REQUEST_BYTES:
            self.pending.pop(conn)
            if chunk and b"\n" in buffer:
                self.answer(bytes(buffer.split(b"\n", 1)[0]), listener, conn)
            else:
                conn.close()

    def answer(self, line: bytes, listener: socket.socket, conn: socket.socket) -> None:
        """Answer a ping at once; fork a request (its pid is sent once the child has renamed itself)."""
        conn.setblocking(True)
        conn.settimeout(REQUEST_READ_TIMEOUT)
        try:
            request = json.loads(line or b"{}")
            if isinstance(request, dict) and request.get("ping"):
                conn.sendall(b'{"ready": true}\n')
                conn.close()
                return
            self.last_request = time.monotonic()
            self.fork(warm_requests.check(request), listener, conn)
        except Exception as exc:  # a bad request (or a caller gone) must not take the warm process down
            self.log(f"refused a request: {exc}")
            try:
                conn.sendall(json.dumps({"error": str(exc)}).encode() + b"\n")
            except OSError:
                pass
            conn.close()

    def started(self, ready_r: int) -> None:
        """The child of a request carries its new name (or took too long to): record and send its pid."""
        conn, pid, request_id, _ = self.forking.pop(ready_r)
        os.close(ready_r)
        try:
            warm_requests.record_pid(self.folder, request_id, pid)
        except OSError as exc:
            self.log(f"could not record the pid of request {request_id}: {exc}")
        try:
            conn.sendall(json.dumps({"pid": pid}).encode() + b"\n")
        except OSError:
            pass  # the caller gave up waiting: it reads the pid from the request's claim file
        conn.close()

    def fork(self, request: dict, listener: socket.socket, conn: socket.socket) -> int:
        """Fork the checked ``request``, once: its id is claimed first, so a request its caller withdrew
        (after waiting too long) or one sent twice is refused instead of starting a second child. The
        caller is answered by ``started`` once the child has renamed itself (pid checks never see the
        old name), without holding up other requests meanwhile."""
        if not warm_requests.claim(self.folder, request["id"], "forking"):
            raise warm_requests.Refused(f"request {request['id']} was withdrawn by its caller or already run")
        ready_r, ready_w = os.pipe()
        flush_output()
        pid = os.fork()
        if pid == 0:  # the child: never returns into this loop

            def work() -> object:
                os.close(ready_r)
                listener.close()
                conn.close()
                for other in self.pending:
                    other.close()
                for fd, (other, *_) in self.forking.items():
                    os.close(fd)
                    other.close()
                for fd in self.private_fds:
                    os.close(fd)
                return _child(request, ready_w)

            run_to_exit(work)
        os.close(ready_w)
        self.children.add(pid)
        self.forking[ready_r] = (conn, pid, request["id"], time.monotonic() + RENAME_WAIT)
        return pid


def _child(request: dict, ready_w: int) -> object:
    """Become ``python -m module args`` in a new session with the request's env, cwd and log, tell the
    warm process so, and run the module's ``main``."""
    signal.set_wakeup_fd(-1)
    os.setsid()
    set_process_umask()  # as a plain start would have it: everything the child writes is private
    log_fd = open_append(Path(request["log"]))
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
    set_process_umask()  # and every child it forks
    check = warm_folder.check(run_dir())
    if not check.usable:
        print(f"not starting: {check.reason}", flush=True)
        return 1
    folder = check.folder
    if "--daemon" in argv and os.fork():
        return 0  # the starter exits; the warm process is re-parented and lives on
    return WarmServer(folder, fingerprint()).run()


if __name__ == "__main__":
    code = main()
    flush_output()
    os._exit(code)
