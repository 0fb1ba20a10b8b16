"""Damage a catalog file the ways a disk or a person can: the catalog-damage and registry-journal tests share it."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path


def settle(path: Path) -> None:
    """Move everything from the write-ahead log into churn.db (endpoint supervisors read it meanwhile)."""
    deadline = time.monotonic() + 20
    while True:
        conn = sqlite3.connect(path, timeout=30)
        try:
            busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        finally:
            conn.close()
        if not busy or time.monotonic() > deadline:
            return
        time.sleep(0.05)


def page_of(path: Path, table: str) -> int:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT pageno FROM dbstat WHERE name = ? ORDER BY pageno LIMIT 1", (table,)).fetchone()[0]
    finally:
        conn.close()


def damage(path: Path, how: str) -> None:
    settle(path)
    data = bytearray(path.read_bytes())
    if how == "bad-header":
        data[:16] = b"NOT A CATALOG!!\x00"
    elif how == "truncated":
        data = data[: len(data) // 2 + 1000]
    elif how == "truncated-whole-pages":
        data = data[: 4096 * 8]
    elif how == "random-page":  # the datasets table's page, garbled (the schema and other tables stay readable)
        page = page_of(path, "datasets")
        data[(page - 1) * 4096: page * 4096] = os.urandom(4096)
    elif how == "zero-bytes":
        data = bytearray()
    if how == "missing":
        path.unlink()
    else:
        path.write_bytes(bytes(data))
