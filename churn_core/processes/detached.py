"""Detached child processes: start them so they outlive the dashboard, find out whether they still live.

Every job driver and endpoint supervisor runs in its own session (process group), so stopping
one is a single ``killpg`` that also reaches its children (train.py, gunicorn workers).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from churn_core.processes.warm import client as warm
from churn_core.processes.child import become, flush_output, run_to_exit
from churn_core.paths import ROOT
from churn_core.storage.private_files import make_dirs, open_append


def spawn_detached(args: list[str], log_path: Path, env: dict | None = None, cwd: Path | None = None) -> int:
    """Start ``python -m ...`` style commands in a new session with output appended to ``log_path``.

    Project modules are forked from the warm process when it runs (milliseconds instead of seconds
    of imports); otherwise, and for anything else, a new interpreter starts."""
    make_dirs(log_path.parent)
    full_env = dict(os.environ if env is None else env)
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), full_env.get("PYTHONPATH", "")]))
    full_env.setdefault("PYTHONUNBUFFERED", "1")
    if len(args) >= 2 and args[0] == "-m" and args[1] in warm.MODULES:
        pid = warm.spawn(args[1], args[2:], log_path, full_env, cwd or ROOT)
        if pid is not None:
            return pid
        warm.ensure_running()  # for the next one
    with open(open_append(log_path), "ab", buffering=0) as log:
        proc = subprocess.Popen(
            [sys.executable, *args],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=full_env,
            cwd=str(cwd or ROOT),
            start_new_session=True,
            close_fds=True,
        )  # umask 077: each module's main sets it first (Popen's umask= would cost vfork and widen a race)
    _forget(proc)
    return proc.pid


def fork_script(script: Path, args: list[str], env: dict, cwd: Path) -> int:
    """Run ``python script args`` in a forked child of this process (same process group); its pid.

    The child reuses every module this process has imported (in a process forked from the warm
    one: numpy, pandas, scikit-learn), so a training script starts in milliseconds. It runs as
    ``__main__`` with its own argv, environment and working directory, exactly as a new
    interpreter would run it."""
    import runpy

    flush_output()
    pid = os.fork()
    if pid:
        return pid

    def run() -> None:
        become([sys.executable, str(script), *args], [str(script), *args], env, cwd)
        sys.path.insert(0, str(script.parent))
        runpy.run_path(str(script), run_name="__main__")

    run_to_exit(run)


def wait_child(pid: int) -> int:
    """Block until our child ``pid`` ends; its exit code, or -signal (as ``Popen.returncode``)."""
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def _forget(proc: subprocess.Popen) -> None:
    """Keep Popen from reaping the child behind our back; ``reap`` collects its exit status instead."""
    proc.returncode = 0


def reap(pid: int, wait: float = 0.0) -> tuple[bool, int | None]:
    """If ``pid`` is our dead child, collect it. Returns (was_ours_and_dead, exit code or -signal).

    A child of the warm process is reaped there; its exit status is read from the file it records.
    ``wait``: seconds to keep polling when the caller already knows the child is dying (the kernel
    may still be tearing it down)."""
    started = time.monotonic()
    deadline = started + wait
    while True:
        try:
            got, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            code = warm.exit_code(pid)
            if code is not None or time.monotonic() >= min(deadline, started + 0.5):
                return code is not None, code
            time.sleep(0.01)
            continue
        if got or time.monotonic() >= deadline:
            break
        time.sleep(0.01)
    if got == 0:
        return False, None
    return True, os.waitstatus_to_exitcode(status)


def is_alive(pid: int | None, marker: str | None = None) -> bool:
    """True if ``pid`` runs and (when given) its command line mentions ``marker`` (guards against pid reuse)."""
    if not pid:
        return False
    deadline = time.monotonic() + 2.0  # execve on a loaded machine: arguments appear within milliseconds
    try:
        proc = psutil.Process(pid)
        while True:
            if proc.status() == psutil.STATUS_ZOMBIE:
                return False
            if marker is None:
                return True
            cmdline = proc.cmdline()
            # A process in the middle of execve (just started) briefly has no command line at all: that is
            # "not yet known", not "someone else's process"; read it again rather than call it dead.
            if cmdline or time.monotonic() >= deadline:
                return marker in " ".join(cmdline)
            time.sleep(0.005)
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False


def wait_for_exit(pid: int, timeout: float) -> int | None:
    """Block until ``pid`` (ours or the warm process's child) ends; its exit code, or None at the timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, code = reap(pid)
        if done or not is_alive(pid):
            return code if done else reap(pid, wait=1.0)[1]
        time.sleep(0.01)
    return None


def kill_group(pid: int | None, grace: float = 5.0) -> None:
    """SIGTERM the process group led by ``pid``, then SIGKILL whatever is left after ``grace`` seconds."""
    if not pid:
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        deadline = time.monotonic() + (grace if sig == signal.SIGTERM else 2.0)
        while time.monotonic() < deadline:
            reap(pid)
            if not _group_alive(pid):
                return
            time.sleep(0.02)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    # A group whose only members are zombies is dead for our purposes.
    for proc in psutil.process_iter(["pid", "status"]):
        try:
            if os.getpgid(proc.pid) == pgid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                return True
        except (ProcessLookupError, psutil.NoSuchProcess, PermissionError):
            continue
    return False


def describe_exit(code: int | None) -> str:
    if code is None:
        return "exit code unknown"
    if code < 0:
        try:
            return f"killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def tail(path: Path, lines: int = 40, max_bytes: int = 64_000) -> str:
    """Last ``lines`` lines of a log file (cheap on large files)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - max_bytes))
            data = fh.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(data.splitlines()[-lines:])
