"""Writing data capture without slowing a request: a queue and a background thread per worker.

A request's part is one ``deque.append`` of the raw bytes (after its answer is sent); the writer
thread formats the SageMaker capture lines and appends them, a batch at a time, to this worker's
own file of the current hour (``capture/<endpoint>/<variant>/yyyy/mm/dd/hh/<time>-<pid>.jsonl``),
so two workers never interleave lines. Lines are flushed at least every 0.2 s and when the worker
exits; nothing is sampled twice and nothing is written that the endpoint did not receive.

Bounds (``churn_core.monitoring.capture_bounds``): the endpoint's byte budget, its retention and the
free-disk floor, read from the endpoint's control file. Every worker writes under one lock file of the
endpoint (``<workdir>/capture-status/.lock``) and, holding it, adds up what the endpoint's capture folder
holds: a record is written only if it fits, so all workers together never pass the budget. Past a bound
capture pauses, and what it dropped (requests and rows) is counted in ``<workdir>/capture-status/<pid>.json``
(``capture_status`` adds them up for the endpoint's stats). Files older than the retention are deleted, at
most once a minute. An explained answer's reasons are not kept (most of its bytes: a request of 10,000
customers with 50 reasons each made a record 4.8x the request, 2.6x without them): a record keeps the
request and each row's label, probability and ID columns, what monitoring reads.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import threading
import time
from collections import deque
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

from churn_core.backends.local.endpoint.control import CONTROL_FILE
from churn_core.monitoring.capture import capture_line, endpoint_prefix, hour_prefix
from churn_core.monitoring.capture_bounds import CaptureBounds

FLUSH_INTERVAL_S = 0.2
MAX_PENDING = 100_000  # beyond this many unwritten records (a stuck disk), new ones are dropped and counted
SWEEP_INTERVAL_S = 60.0  # retention is applied at most this often (and at a worker's first flush)
STATUS_DIR = "capture-status"
STATUS_EVERY_S = 1.0


class CaptureWriter:
    def __init__(self, root: Path, endpoint: str, on_write=None, workdir: Optional[Path] = None,
                 bounds: Optional[CaptureBounds] = None) -> None:
        self.root = Path(root)
        self.endpoint = endpoint
        self.on_write = on_write
        self.workdir = Path(workdir) if workdir is not None else None  # None: no control file, lock or status
        self.bounds = bounds or CaptureBounds()
        self.pending: deque = deque()
        self.dropped = 0  # requests sampled but not written (a bound, a stuck or failing disk)
        self.dropped_rows = 0
        self.written = 0
        self.paused = ""  # why capture is paused now ("" while it writes)
        self._pid: Optional[int] = None
        self._wake = threading.Event()
        self._files: dict[str, object] = {}
        self._control_mtime: Optional[int] = None
        self._swept = 0.0
        self._needed = 0  # bytes of the record that did not fit: a pause lasts until there is room for it
        self._status = None

    def put(self, variant: str, request: bytes, request_type: str, response: bytes, response_type: str,
            rows: int = 0) -> None:
        if (self.paused and not self._control_changed()) or len(self.pending) >= MAX_PENDING:
            self.dropped += 1
            self.dropped_rows += rows
            return
        self.pending.append((time.time(), variant, request, request_type, response, response_type, rows))

    def start(self) -> None:
        if self._pid == os.getpid():
            return
        self._pid = os.getpid()
        self.pending.clear()
        self._files = {}
        threading.Thread(target=self._loop, name="capture-writer", daemon=True).start()

    def _loop(self) -> None:
        while True:
            self._wake.wait(FLUSH_INTERVAL_S)
            self._wake.clear()
            self.flush()

    def flush(self) -> None:
        self._read_bounds()
        now = time.time()
        if now - self._swept >= SWEEP_INTERVAL_S or (self.paused and not self.pending):
            self._swept = now
            with self._locked():
                self._sweep(now)
                self._room()  # a pause ends once old files went or the budget grew
        if self.pending:
            items = []
            while self.pending:
                items.append(self.pending.popleft())
            with self._locked():
                room = self._room()
                batches: dict[str, list[str]] = {}
                for when, variant, request, request_type, response, response_type, rows in items:
                    line = capture_line(request, request_type, without_reasons(response, response_type),
                                        response_type, when)
                    size = len(line.encode("utf-8"))
                    if size > room:
                        self.dropped += 1
                        self.dropped_rows += rows
                        self.paused = self.paused or self._full()
                        self._needed = max(self._needed, size)
                        room = 0  # a pause: nothing after it either, so no later smaller record slips in
                        continue
                    room -= size
                    batches.setdefault(hour_prefix(self.endpoint, variant, when), []).append(line)
                for prefix, lines in batches.items():
                    try:
                        handle = self._file(prefix)
                        handle.write("".join(lines))
                        handle.flush()
                        self.written += len(lines)
                        if self.on_write is not None:
                            self.on_write(len(lines))
                    except OSError:
                        self.dropped += len(lines)
        self._write_status()

    # ---- bounds ---------------------------------------------------------------------------------
    def _control_changed(self) -> bool:
        """While paused: new bounds may have come (set_capture), so the writer decides, not the request."""
        if self.workdir is None:
            return False
        try:
            return (self.workdir / CONTROL_FILE).stat().st_mtime_ns != self._control_mtime
        except OSError:
            return False

    def _read_bounds(self) -> None:
        """The bounds of the endpoint's control file (set_capture writes a new generation of it)."""
        if self.workdir is None:
            return
        path = self.workdir / CONTROL_FILE
        try:
            mtime = path.stat().st_mtime_ns
            if mtime == self._control_mtime:
                return
            self._control_mtime = mtime
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return
        if isinstance(data, dict) and isinstance(data.get("extra"), dict):
            self.bounds = CaptureBounds.from_dict(data["extra"].get("capture_bounds"))

    @contextmanager
    def _locked(self):
        """One writer of the endpoint at a time between adding up its files and writing (all its workers)."""
        if self.workdir is None:
            yield
            return
        folder = self.workdir / STATUS_DIR
        try:
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:
            yield
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def _folder(self) -> Path:
        return self.root / endpoint_prefix(self.endpoint)

    def _room(self) -> int:
        """Bytes that may still be written now (0 and a reason in ``paused`` past a bound)."""
        used = sum(size for _, size, _ in capture_files(self._folder()))
        free = free_bytes(self.root)
        if free is not None and free - self.bounds.min_free_bytes <= 0:
            self.paused = (f"paused: the disk holding {self.root} has {free / 1048576:.0f} MB free, under the "
                           f"{self.bounds.min_free_mb:g} MB floor")
            return 0
        room = self.bounds.max_bytes - used
        if free is not None:
            room = min(room, free - self.bounds.min_free_bytes)
        if room <= 0 or (self.paused and room < self._needed):
            self.paused = self._full()
            return 0
        self.paused, self._needed = "", 0
        return room

    def _full(self) -> str:
        return (f"paused: the capture budget of {self.bounds.max_mb:g} MB is used up (it resumes as files older "
                f"than {self.bounds.retention_days:g} days are deleted, or with a larger budget)")

    def _sweep(self, now: float) -> None:
        """Delete this endpoint's capture files older than the retention (and folders left empty)."""
        cutoff = now - self.bounds.retention_s
        for path, _, mtime in capture_files(self._folder()):
            if mtime < cutoff:
                try:
                    path.unlink()
                except OSError:
                    continue
                for folder in path.parents:
                    if folder == self._folder():
                        break
                    try:
                        folder.rmdir()
                    except OSError:
                        break

    def _write_status(self) -> None:
        status = {"written": self.written, "dropped_requests": self.dropped, "dropped_rows": self.dropped_rows,
                  "paused": self.paused, "at": time.time(), "bounds": self.bounds.to_dict()}
        last = self._status or {}
        if status["paused"] == last.get("paused") and status["dropped_requests"] == last.get("dropped_requests") \
                and (status["written"] == last.get("written") or status["at"] - last.get("at", 0) < STATUS_EVERY_S):
            return  # a pause or a drop is told at once; the count written at most once a second
        self._status = status
        if self.workdir is None:
            return
        folder = self.workdir / STATUS_DIR
        try:
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            tmp = folder / f".{os.getpid()}.tmp"
            tmp.write_text(json.dumps(status), encoding="utf-8")
            os.replace(tmp, folder / f"{os.getpid()}.json")
        except OSError:
            pass

    def _file(self, prefix: str):
        handle = self._files.get(prefix)
        if handle is not None and os.fstat(handle.fileno()).st_nlink == 0:  # deleted (retention, a dataset's
            self._files.pop(prefix).close()  # delete): lines written there would be lost and never counted
            handle = None
        if handle is None:
            folder = self.root / prefix
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            name = f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{os.getpid()}.jsonl"
            fd = os.open(folder / name, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            handle = os.fdopen(fd, "a", encoding="utf-8")
            for old in list(self._files):  # a new hour of a variant: its previous hour's file is done
                if old.split("/")[:3] == prefix.split("/")[:3]:
                    self._files.pop(old).close()
            self._files[prefix] = handle
        return handle


def free_bytes(path: Path) -> Optional[int]:
    """Free bytes of the disk holding ``path`` (or the nearest folder above it that exists)."""
    for candidate in (path, *path.parents):
        try:
            return shutil.disk_usage(candidate).free
        except OSError:
            continue
    return None


def capture_files(folder: Path) -> list[tuple[Path, int, float]]:
    """(path, bytes, modified) of every capture file under an endpoint's capture folder."""
    found: list[tuple[Path, int, float]] = []
    stack = [folder]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
                elif entry.name.endswith(".jsonl"):
                    info = entry.stat(follow_symlinks=False)
                    found.append((Path(entry.path), info.st_size, info.st_mtime))
            except OSError:
                continue
    return found


_REASON_KEYS = (b'"reasons"', b'"Reasons"')


def without_reasons(response: bytes, response_type: str) -> bytes:
    """A JSON answer without its explanations (kept: each row's label, probability and ID)."""
    if "json" not in (response_type or "") or not any(k in response for k in _REASON_KEYS):
        return response
    try:
        body = json.loads(response)
    except ValueError:
        return response
    if isinstance(body, dict):
        body.pop("Reasons", None)
        for item in body.get("predictions") or []:
            if isinstance(item, dict):
                item.pop("reasons", None)
    return json.dumps(body, separators=(",", ":")).encode("utf-8")


def capture_status(workdir: Path) -> dict:
    """What an endpoint's capture writers say, added up: written, dropped (requests, rows), paused (why)."""
    total = {"written": 0, "dropped_requests": 0, "dropped_rows": 0, "paused": "", "bounds": {}}
    newest = -1.0
    for path in sorted((Path(workdir) / STATUS_DIR).glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(data, dict):
            continue
        for key in ("written", "dropped_requests", "dropped_rows"):
            total[key] += int(data.get(key) or 0)
        if float(data.get("at") or 0) > newest:
            newest = float(data.get("at") or 0)
            total["paused"], total["bounds"] = str(data.get("paused") or ""), data.get("bounds") or {}
    return total
