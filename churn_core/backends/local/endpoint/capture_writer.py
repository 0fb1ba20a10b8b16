"""Writing data capture without slowing a request: a queue and a background thread per worker.

A request's part is one ``deque.append`` of the raw bytes (after its answer is sent); the writer
thread formats the SageMaker capture lines and appends them, a batch at a time, to this worker's
own file of the current hour (``capture/<endpoint>/<variant>/yyyy/mm/dd/hh/<time>-<pid>.jsonl``),
so two workers never interleave lines. Lines are flushed at least every 0.2 s and when the worker
exits; nothing is sampled twice and nothing is written that the endpoint did not receive.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from pathlib import Path
from typing import Optional

from churn_core.monitoring.capture import capture_line, hour_prefix

FLUSH_INTERVAL_S = 0.2
MAX_PENDING = 100_000  # beyond this many unwritten records (a stuck disk), new ones are dropped and counted


class CaptureWriter:
    def __init__(self, root: Path, endpoint: str, on_write=None) -> None:
        self.root = Path(root)
        self.endpoint = endpoint
        self.on_write = on_write
        self.pending: deque = deque()
        self.dropped = 0
        self.written = 0
        self._pid: Optional[int] = None
        self._wake = threading.Event()
        self._files: dict[str, object] = {}

    def put(self, variant: str, request: bytes, request_type: str, response: bytes, response_type: str) -> None:
        if len(self.pending) >= MAX_PENDING:
            self.dropped += 1
            return
        self.pending.append((time.time(), variant, request, request_type, response, response_type))

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
        batches: dict[str, list[str]] = {}
        while self.pending:
            when, variant, request, request_type, response, response_type = self.pending.popleft()
            key = hour_prefix(self.endpoint, variant, when)
            batches.setdefault(key, []).append(capture_line(request, request_type, response, response_type, when))
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

    def _file(self, prefix: str):
        handle = self._files.get(prefix)
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
