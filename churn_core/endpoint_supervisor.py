"""The light supervisor of one local endpoint: starts its model server, restarts it when it dies.

``python -m churn_core.endpoint_supervisor --home H --bucket B --endpoint NAME --host 127.0.0.1``

Creating → InService once ``/ping`` answers. A crash is recorded as an event and the server is
restarted on the same port; ``MAX_CRASHES`` crashes within ``CRASH_WINDOW`` seconds make the
endpoint Failed with the reason and the log tail. A refused artifact (SHA-256 mismatch) fails at once.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

from .backends.local import ping, server_failure
from .db import Catalog
from .endpoint_control import control_path, write_control
from .paths import ENTRY
from .rollout import config_variants, control_for
from .processes import describe_exit, is_alive, kill_group, reap, spawn_detached, tail
from .serving import free_port
from .storage import LocalObjectStore

THRESHOLD_ENV = "CHURN_THRESHOLD"  # read by entry/train.py's model_fn
MAX_CRASHES = 3
CRASH_WINDOW = 300.0
START_TIMEOUT = 60.0
REFUSED_EXIT_CODE = 3  # serving.py's exit code for an artifact that failed verification


class Supervisor:
    def __init__(self, home: Path, bucket: str, name: str, host: str):
        self.home = Path(home)
        self.catalog = Catalog(self.home / "churn.db")
        self.store = LocalObjectStore(self.home, bucket)
        self.name = name
        self.host = host
        self.folder = self.home / "endpoints" / name
        self.stopping = False
        self.crashes: list[float] = []

    def log(self, message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)

    def endpoint(self) -> dict | None:
        return self.catalog.one("SELECT * FROM endpoints WHERE name = ?", (self.name,))

    def on_sigterm(self, *_: object) -> None:
        self.stopping = True

    def write_control(self, endpoint: dict, variants: list[dict]) -> None:
        """The first control file: the catalog's configuration (later ones come from updates)."""
        if control_path(self.folder).is_file():
            return  # a restart: serve what the last update left, which the catalog also says
        write_control(self.folder, control_for(self.store, endpoint, variants, endpoint.get("generation") or 1))

    def start_server(self, endpoint: dict, port: int) -> int:
        args = [
            "-m", "churn_core.serving",
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
        pid = spawn_detached(args, self.folder / "server.log", env=env)
        url = f"http://{self.host}:{port}"
        self.catalog.update("endpoints", self.name, server_pid=pid, port=port, url=url, updated_at=time.time())
        return pid

    def wait_ready(self, pid: int, url: str) -> bool:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline and not self.stopping:
            if ping(url):
                return True
            if not is_alive(pid):
                return False
            time.sleep(0.02)
        return False

    def mark_failed(self, reason: str) -> None:
        log_tail = tail(self.folder / "server.log", 20)
        with self.catalog.tx() as conn:
            conn.execute(
                "UPDATE endpoints SET status='Failed', failure_reason=?, updated_at=? WHERE name=?",
                (reason, time.time(), self.name),
            )
            self.catalog.event("endpoint", self.name, f"Failed: {reason}\n{log_tail}", conn)
        self.log(f"FAILED: {reason}")

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self.on_sigterm)
        endpoint = self.endpoint()
        if endpoint is None or endpoint["status"] not in ("Creating", "InService"):
            return 0  # deleted, failed or being deleted before this process got going
        variants = config_variants(self.catalog, endpoint["config"])
        if not variants:
            self.mark_failed("its endpoint config or model record is missing; delete it and deploy again")
            return 1
        self.write_control(endpoint, variants)
        kill_group(endpoint["server_pid"], grace=1.0)  # a server left by a supervisor that died
        port = endpoint["port"] or free_port(self.host)
        while not self.stopping:
            pid = self.start_server(endpoint, port)
            url = f"http://{self.host}:{port}"
            self.log(f"model server pid {pid} starting on {url}")
            if self.wait_ready(pid, url):
                self.on_ready()
                while not self.stopping and is_alive(pid):
                    time.sleep(0.2)
            if self.stopping:
                break
            _, code = reap(pid, wait=1.0)
            kill_group(pid, grace=1.0)  # orphaned workers must release the port
            if code == REFUSED_EXIT_CODE:
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
            with self.catalog.tx() as conn:
                conn.execute(
                    "UPDATE endpoints SET restarts = restarts + 1, updated_at=? WHERE name=?", (now, self.name)
                )
                self.catalog.event(
                    "endpoint", self.name, f"model server died ({describe_exit(code)}); restarting", conn
                )
            self.log(f"model server died ({describe_exit(code)}); restarting")
            time.sleep(0.2 * len(self.crashes))
        server_pid = (self.endpoint() or {}).get("server_pid")
        kill_group(server_pid, grace=3.0)
        self.log("stopped")
        return 0

    def on_ready(self) -> None:
        with self.catalog.tx() as conn:
            row = conn.execute("SELECT status FROM endpoints WHERE name = ?", (self.name,)).fetchone()
            if row and row["status"] == "Creating":
                conn.execute(
                    "UPDATE endpoints SET status='InService', in_service_at=?, updated_at=? WHERE name=?",
                    (time.time(), time.time(), self.name),
                )
                self.catalog.event("endpoint", self.name, "InService", conn)
        self.log("InService")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--home", required=True)
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    opts = parser.parse_args(argv)
    return Supervisor(Path(opts.home), opts.bucket, opts.endpoint, opts.host).run()


if __name__ == "__main__":
    sys.exit(main())
