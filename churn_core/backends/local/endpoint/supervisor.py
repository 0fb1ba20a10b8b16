"""The light supervisor of one local endpoint: starts its model server, restarts it when it dies.

``python -m churn_core.backends.local.endpoint.supervisor --home H --bucket B --endpoint NAME --uid UID
--host 127.0.0.1``

It belongs to one catalog row: the endpoint ``NAME`` whose ``uid`` is ``UID`` (a row of an earlier or later
deploy of the same name is not its own). It works in ``<home>/endpoints/NAME.UID`` and checks its row several
times a second: once the row is gone, belongs to another deploy, or is no longer Creating, InService or
Updating, it stops its model server and exits, so no process outlives its record. A catalog it cannot read
(damaged, being repaired) is not a reason to stop serving.

Creating → InService once ``/ping`` answers. A crash is recorded as an event and the server is
restarted on the same port; ``MAX_CRASHES`` crashes within ``CRASH_WINDOW`` seconds make the
endpoint Failed with the reason and the log tail. A refused artifact (SHA-256 mismatch, unsafe member,
over a size cap) fails at once.

What it serves is ``control.json`` in its folder (``endpoint_control``): it writes the first one from the
catalog's configuration; an update of the endpoint (``Updating``: the same row, the same uid, a new
configuration and generation) writes later ones into the same folder, its server's workers swap models in
place, and the supervisor keeps watching the same row. A restart serves what the last update left.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import time
from pathlib import Path

from churn_core.backends.local.backend import ping, server_failure
from churn_core.backends.local.endpoint import processes as endpoint_processes
from churn_core.catalog import local_records
from churn_core.catalog.database import Catalog
from churn_core.backends.local.endpoint.control import control_for, control_path, write_control
from churn_core.errors import ChurnError
from churn_core.paths import ENTRY, entry_module
from churn_core.storage.private_files import set_process_umask
from churn_core.processes.detached import describe_exit, is_alive, kill_group, reap, spawn_detached, tail
from churn_core.catalog.endpoint_configs import config_variants
from churn_core.backends.local.endpoint.server import free_port
from churn_core.storage.objects import LocalObjectStore

THRESHOLD_ENV = entry_module("container_env").THRESHOLD_ENV  # each variant's threshold is in control.json
MAX_CRASHES = 3
CRASH_WINDOW = 300.0
START_TIMEOUT = 60.0
ROW_CHECK_SECONDS = 0.2  # how often it checks that its catalog row still exists and is its own
# serving.py's exit codes for an artifact it refused (SHA-256 mismatch; unsafe, oversized or unreadable):
# the same bytes are refused every time, so the endpoint fails at once with the reason, never after 3 crashes.
# A write that failed (exit 7: full disk, quota, read-only) is not the artifact's fault: restarted like a crash.
REFUSED_EXIT_CODES = (3, 6)


class Supervisor:
    def __init__(self, home: Path, bucket: str, name: str, host: str, uid: str = ""):
        self.home = Path(home)
        self.catalog = Catalog(self.home / "churn.db")
        self.store = LocalObjectStore(self.home, bucket)
        self.name = name
        self.uid = uid
        self.host = host
        self.folder = self.home / "endpoints" / endpoint_processes.folder_name(name, uid)
        self.stopping = False
        self.crashes: list[float] = []
        self.server_pid: int | None = None  # known here, not only in the row (which may vanish)

    def log(self, message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)

    def endpoint(self) -> dict | None:
        return local_records.endpoint(self.catalog, self.name, self.uid)

    def still_mine(self) -> bool:
        """Whether the row this process serves still exists and wants serving (True when the catalog cannot
        be read: a damaged catalog is repaired around running endpoints, not by stopping them)."""
        try:
            row = self.endpoint()
        except ChurnError:
            return True
        return row is not None and row["status"] in ("Creating", "InService", "Updating")

    def on_sigterm(self, *_: object) -> None:
        self.stopping = True

    def write_control(self, endpoint: dict, variants: list[dict]) -> None:
        """The first control file: the catalog's configuration (later ones come from updates)."""
        if control_path(self.folder).is_file():
            return  # a restart: serve what the last update left, which the catalog also says
        write_control(self.folder, control_for(self.store, endpoint, variants, endpoint.get("generation") or 1))

    def start_server(self, endpoint: dict, port: int) -> int:
        args = [
            "-m", "churn_core.backends.local.endpoint.server",
            "--control", str(control_path(self.folder)),
            "--entry", str(ENTRY),
            "--workdir", str(self.folder),
            "--host", self.host,
            "--port", str(port),
            "--workers", str(endpoint["instance_count"]),
            "--name", self.name,
        ]
        env = dict(os.environ)
        env.pop(THRESHOLD_ENV, None)  # each variant's threshold is in the control file
        pid = spawn_detached(args, self.folder / "server.log", env=env, cwd=self.folder)  # cwd: what it belongs to
        self.server_pid = pid
        url = f"http://{self.host}:{port}"
        self._update(server_pid=pid, port=port, url=url, updated_at=time.time())
        return pid

    def _update(self, **fields) -> None:
        local_records.set_endpoint(self.catalog, self.name, self.uid, **fields)

    def wait_ready(self, pid: int, url: str) -> bool:
        deadline = time.monotonic() + START_TIMEOUT
        checked = time.monotonic()
        while time.monotonic() < deadline and not self.stopping:
            if ping(url):
                return True
            if not is_alive(pid):
                return False
            if time.monotonic() - checked > ROW_CHECK_SECONDS:
                checked = time.monotonic()
                if not self.still_mine():
                    self.stopping = True
                    self.log("its catalog row is gone or replaced; stopping")
            time.sleep(0.02)
        return False

    def mark_failed(self, reason: str) -> None:
        log_tail = tail(self.folder / "server.log", 20)
        local_records.endpoint_failed(self.catalog, self.name, self.uid, reason, f"Failed: {reason}\n{log_tail}")
        self.log(f"FAILED: {reason}")

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self.on_sigterm)
        endpoint = self.endpoint()
        if endpoint is None or endpoint["status"] not in ("Creating", "InService"):
            self.forget_folder()
            return 0  # deleted, failed or being deleted before this process got going
        variants = config_variants(self.catalog, endpoint["config"])
        if not variants:
            self.mark_failed("its endpoint config or model record is missing; delete it and deploy again")
            return 1
        self.write_control(endpoint, variants)
        kill_group(endpoint["server_pid"], grace=1.0)  # a server left by a supervisor that died
        port = endpoint["port"] or free_port(self.host)
        while not self.stopping and self.still_mine():
            pid = self.start_server(endpoint, port)
            url = f"http://{self.host}:{port}"
            self.log(f"model server pid {pid} starting on {url}")
            if self.wait_ready(pid, url):
                self.on_ready()
                while not self.stopping and is_alive(pid):
                    time.sleep(ROW_CHECK_SECONDS)
                    if not self.still_mine():
                        self.log("its catalog row is gone or replaced; stopping")
                        break
                if not self.still_mine():
                    break
            if self.stopping:
                break
            _, code = reap(pid, wait=1.0)
            kill_group(pid, grace=1.0)  # orphaned workers must release the port
            if code in REFUSED_EXIT_CODES:
                self.mark_failed(server_failure(self.folder, code))
                return 1
            now = time.time()
            self.crashes = [t for t in self.crashes if now - t < CRASH_WINDOW] + [now]
            reason = server_failure(self.folder, code)
            if len(self.crashes) >= MAX_CRASHES:
                self.mark_failed(
                    f"the model server crashed {len(self.crashes)} times in {CRASH_WINDOW:.0f}s; last: {reason}"
                )
                return 1
            local_records.server_restarted(self.catalog, self.name, self.uid, now,
                                           f"model server died ({describe_exit(code)}); restarting")
            self.log(f"model server died ({describe_exit(code)}); restarting")
            time.sleep(0.2 * len(self.crashes))
        kill_group(self.server_pid, grace=3.0)
        self.log("stopped")
        self.forget_folder()
        return 0

    def forget_folder(self) -> None:
        """Remove this endpoint's folder when its row is gone: nobody else uses a folder keyed by its uid."""
        try:
            gone = local_records.endpoint(self.catalog, self.name, self.uid) is None
        except ChurnError:
            return  # cannot tell: keep it
        if gone and self.uid:
            shutil.rmtree(self.folder, ignore_errors=True)

    def on_ready(self) -> None:
        local_records.endpoint_in_service(self.catalog, self.name, self.uid)
        self.log("InService")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--home", required=True)
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--uid", default="", help="the catalog row's unique id (older endpoints have none)")
    parser.add_argument("--host", default="127.0.0.1")
    opts = parser.parse_args(argv)
    set_process_umask()
    return Supervisor(Path(opts.home), opts.bucket, opts.endpoint, opts.host, opts.uid).run()


if __name__ == "__main__":
    sys.exit(main())
