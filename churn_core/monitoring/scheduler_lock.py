"""The monitoring scheduler's lock: one scheduler per state folder, held as long as its process lives.

An exclusive ``flock`` on ``<home>/monitoring/scheduler.lock`` (the file holds the holder's pid); the kernel
drops it when the process dies, however it dies, so a stale lock cannot outlive its scheduler.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from churn_core.storage.private_files import make_dirs

LOCK_NAME = "scheduler.lock"


def lock_path(home: Path) -> Path:
    return Path(home) / "monitoring" / LOCK_NAME


def take_lock(home: Path):
    """The open, exclusively locked lock file, or None when another scheduler holds it."""
    path = lock_path(home)
    make_dirs(path.parent)
    handle = open(os.open(path, os.O_RDWR | os.O_CREAT, 0o600), "r+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        return None
    return handle


def is_running(home: Path) -> bool:
    """Whether a scheduler holds the state folder's lock."""
    handle = take_lock(home)
    if handle is None:
        return True
    handle.close()  # closing drops the lock
    return False
