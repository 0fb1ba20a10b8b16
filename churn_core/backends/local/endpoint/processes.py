"""Local endpoint processes found by what they are, so none can outlive its catalog row unseen.

Every local endpoint lives in a folder of its own, ``<home>/endpoints/<name>.<uid>``: the name plus the
unique id of its catalog row (``endpoints.uid``), so a second deploy of the same name never shares or
removes the folder of the first. Its supervisor and model server run with that folder as their working
directory, and their process titles say what they are (``python -m churn_core.backends.local.endpoint.supervisor ...``,
``gunicorn: master [churn_core.backends.local.endpoint.server --name NAME]``,
``python -m churn_core.backends.local.endpoint.server --probe ...`` while an
update checks a new model in the same folder). That is enough to find every endpoint process of
a home, alive or stray, without the catalog: :func:`find` lists them, :func:`strays` keeps those whose
folder belongs to no catalog row, and :func:`stop` ends them (supervisors first, so nothing is restarted).
"""

from __future__ import annotations

import os
import re
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

ROLES = (("churn_core.backends.local.endpoint.supervisor", "supervisor"),
         ("churn_core.backends.local.endpoint.server", "server"))
_FOLDER_RE = re.compile(r"^(?P<name>[a-zA-Z0-9](?:-*[a-zA-Z0-9])*)(?:\.(?P<uid>[0-9a-f]{32}))?$")


@dataclass(frozen=True)
class EndpointProcess:
    pid: int
    role: str  # "supervisor" | "server" (a gunicorn master or worker) | "probe" (an update checking a model)
    folder: str  # the endpoint folder's name under <home>/endpoints: NAME.UID (NAME for older endpoints)

    @property
    def name(self) -> str:
        match = _FOLDER_RE.match(self.folder)
        return match.group("name") if match else self.folder

    @property
    def uid(self) -> str:
        match = _FOLDER_RE.match(self.folder)
        return (match.group("uid") or "") if match else ""


def folder_name(name: str, uid: str) -> str:
    return f"{name}.{uid}" if uid else name


def parse_folder(folder: str) -> tuple[str, str] | None:
    """(name, uid) of an endpoint folder's name; None for anything else."""
    match = _FOLDER_RE.match(folder)
    return (match.group("name"), match.group("uid") or "") if match else None


def _cwd(proc: psutil.Process) -> str | None:
    try:
        cwd = proc.cwd()
    except (psutil.Error, OSError):
        return None
    return cwd[: -len(" (deleted)")] if cwd.endswith(" (deleted)") else cwd


def find(home: Path) -> list[EndpointProcess]:
    """Every live supervisor and model-server process whose working directory is an endpoint folder of ``home``."""
    root = os.path.realpath(Path(home) / "endpoints")
    found = []
    for proc in psutil.process_iter(["pid", "cmdline", "status"]):
        try:
            if proc.info["status"] == psutil.STATUS_ZOMBIE or proc.pid == os.getpid():
                continue
            line = " ".join(proc.info["cmdline"] or [])
        except psutil.Error:
            continue
        role = next((r for marker, r in ROLES if marker in line), None)
        if role is None:
            continue
        if role == "server" and "--probe" in (proc.info["cmdline"] or []):
            role = "probe"  # ``serving --probe``: an update of the endpoint checking a model in its folder
        cwd = _cwd(proc)
        if not cwd or os.path.dirname(cwd) != root:
            continue
        found.append(EndpointProcess(proc.pid, role, os.path.basename(cwd)))
    return found


def strays(home: Path, live: set[tuple[str, str]]) -> list[EndpointProcess]:
    """Endpoint processes of ``home`` whose (name, uid) is not in ``live`` (the catalog's active rows)."""
    return [p for p in find(home) if (p.name, p.uid) not in live]


def stop(processes: list[EndpointProcess], grace: float = 3.0) -> list[int]:
    """SIGTERM supervisors (they stop their servers), then servers, then SIGKILL what is left; the pids."""
    from churn_core.processes.detached import reap

    ordered = sorted(processes, key=lambda p: p.role != "supervisor")
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for process in ordered:
            try:
                if os.getpgid(process.pid) == process.pid:
                    os.killpg(process.pid, sig)  # a session leader: its gunicorn workers too
                else:
                    os.kill(process.pid, sig)
            except (ProcessLookupError, PermissionError):
                continue
        deadline = time.monotonic() + (grace if sig == signal.SIGTERM else 2.0)
        while time.monotonic() < deadline:
            alive = []
            for process in ordered:
                reap(process.pid)
                try:
                    if psutil.Process(process.pid).status() != psutil.STATUS_ZOMBIE:
                        alive.append(process)
                except psutil.Error:
                    pass
            if not alive:
                return [p.pid for p in processes]
            time.sleep(0.05)
    return [p.pid for p in processes]
