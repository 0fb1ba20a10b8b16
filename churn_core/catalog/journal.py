"""The registry's journal: every registry decision, appended and fsynced outside the catalog file.

A registry decision (a version registered, approved or rejected, its threshold set, an alias set or cleared, a group
made) is written to ``<home>/registry-journal.jsonl`` (``0600``, one JSON line per decision) inside the very
transaction that records it in the catalog, before that transaction commits and before the call returns;
the write lock the transaction holds keeps the journal in commit order. A catalog restored from a backup
(taken at most once a minute) or rebuilt from disk has the journal replayed into it (``replay``), so a
rejected version never comes back Approved, an alias never points back, and the decisions' events return.
A decision whose transaction fails after its line was written is voided by a second line (``void``).

Replaying is idempotent: a decision already in the catalog changes nothing, and the last decision wins.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
import uuid
from pathlib import Path

from churn_core.catalog import actor
from churn_core.storage.private_files import FILE_MODE, make_dirs

FILE = "registry-journal.jsonl"
VERSION_COLUMNS = ("grp", "version", "model", "status", "status_note", "status_at", "note", "created_at", "dataset",
                   "dataset_sha256", "code_sha256", "artifact_key", "artifact_sha256", "algorithm",
                   "hyperparameters_json", "metrics_json", "threshold", "arn", "registered_by", "status_by")


def path(home: Path) -> Path:
    return Path(home) / FILE


def append(home: Path, entry: dict) -> str:
    """Write one decision (a dict with ``op``) as one line and fsync it; its id (to ``void`` it)."""
    entry = {"id": uuid.uuid4().hex, "at": time.time(), **entry}
    line = (json.dumps(entry, separators=(",", ":"), default=str) + "\n").encode("utf-8")
    target = path(home)
    make_dirs(target.parent)
    new = not target.exists()
    fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), FILE_MODE)
    try:
        written = 0
        while written < len(line):
            written += os.write(fd, line[written:])
        os.fsync(fd)
    finally:
        os.close(fd)
    if new:  # the file's name must survive a crash too
        folder = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
    return entry["id"]


def void(home: Path, entry_id: str) -> None:
    """The decision ``entry_id`` did not commit: replay skips it (best effort: the caller is failing already)."""
    try:
        append(home, {"op": "void", "of": entry_id})
    except OSError:
        pass


def read(home: Path) -> list[dict]:
    """The decisions in the order they committed (voided ones and unreadable lines left out)."""
    try:
        raw = path(home).read_bytes()
    except OSError:
        return []
    entries = []
    for line in raw.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue  # a line cut short by a crash while it was written: its transaction never committed
        if isinstance(entry, dict) and entry.get("op"):
            entries.append(entry)
    voided = {e.get("of") for e in entries if e["op"] == "void"}
    return [e for e in entries if e["op"] != "void" and e.get("id") not in voided]


class Journaled:
    """``with Journaled(catalog, entry) as decision:`` a registry transaction (``decision.conn``) whose decision
    is journaled (``decision.write(...)``, its last step) before it commits, and voided if the commit fails."""

    def __init__(self, catalog, entry: dict):
        self.catalog, self.entry, self.id = catalog, {**entry, "by": actor.current()}, None  # who decided
        self._tx = None
        self.conn: sqlite3.Connection | None = None

    def __enter__(self) -> "Journaled":
        self._tx = self.catalog.tx()
        self.conn = self._tx.__enter__()
        return self

    def write(self, **more) -> None:
        """Journal the decision now (the last step inside the transaction)."""
        self.id = append(self.catalog.path.parent, {**self.entry, **more})

    def __exit__(self, kind, exc, tb):
        failed = kind is not None
        try:
            return self._tx.__exit__(kind, exc, tb)
        except BaseException:
            failed = True
            raise
        finally:
            if failed and self.id:
                void(self.catalog.path.parent, self.id)


# ----------------------------------------------------------------------------- replay


def replay(catalog, home: Path) -> int:
    """Apply the journal of ``home`` to ``catalog`` (a restored or rebuilt one); how many decisions changed it."""
    entries = read(home)
    if not entries:
        return 0
    changed = 0
    with catalog.tx() as conn:
        for entry in entries:
            try:
                changed += bool(_apply(conn, entry))
            except (KeyError, TypeError, ValueError, sqlite3.IntegrityError):
                continue  # a line this version cannot read: the others still apply
    return changed


def _event(conn: sqlite3.Connection, entry: dict) -> bool:
    name, message = entry.get("event_name"), entry.get("event")
    if not name or not message:
        return False
    if conn.execute("SELECT 1 FROM events WHERE kind = 'registry' AND name = ? AND message = ? AND at = ?",
                    (name, message, entry["at"])).fetchone():
        return False
    conn.execute("INSERT INTO events (at, kind, name, message, user) VALUES (?, 'registry', ?, ?, ?)",
                 (entry["at"], name, message, entry.get("by") or ""))
    return True


def _apply(conn: sqlite3.Connection, entry: dict) -> bool:
    op = entry["op"]
    changed = False
    if op in ("group", "register"):
        group = entry["group"]
        changed |= bool(conn.execute(
            "INSERT OR IGNORE INTO model_groups (name, dataset, created_at, arn) VALUES (?, ?, ?, ?)",
            (group["name"], group["dataset"], group["created_at"], group.get("arn") or "")).rowcount)
        if group.get("arn"):
            conn.execute("UPDATE model_groups SET arn = ? WHERE name = ? AND arn = ''", (group["arn"], group["name"]))
    if op == "register":
        row = {k: entry["row"].get(k) for k in VERSION_COLUMNS if k in entry["row"]}  # older lines: fewer columns
        changed |= bool(conn.execute(
            f"INSERT OR IGNORE INTO model_versions ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
            list(row.values())).rowcount)
    elif op == "status":
        changed |= bool(conn.execute(
            "UPDATE model_versions SET status = ?, status_note = ?, status_at = ?, status_by = ? WHERE grp = ? "
            "AND version = ? AND NOT (status = ? AND status_note = ? AND status_at = ? AND status_by = ?)",
            (entry["status"], entry["note"], entry["at"], entry.get("by") or "", entry["grp"], entry["version"],
             entry["status"], entry["note"], entry["at"], entry.get("by") or "")).rowcount)
    elif op == "threshold":
        changed |= bool(conn.execute(
            "UPDATE model_versions SET threshold = ?, threshold_json = ? WHERE grp = ? AND version = ? "
            "AND NOT (threshold IS ? AND threshold_json = ?)",
            (entry["threshold"], entry["record"], entry["grp"], entry["version"], entry["threshold"],
             entry["record"])).rowcount)
    elif op == "alias":
        current = conn.execute("SELECT version FROM model_aliases WHERE grp = ? AND alias = ?",
                               (entry["grp"], entry["alias"])).fetchone()
        if current is None or current["version"] != entry["version"]:
            conn.execute("INSERT OR REPLACE INTO model_aliases (grp, alias, version, updated_at) VALUES (?, ?, ?, ?)",
                         (entry["grp"], entry["alias"], entry["version"], entry["at"]))
            changed = True
    elif op == "alias_clear":
        changed |= bool(conn.execute("DELETE FROM model_aliases WHERE grp = ? AND alias = ?",
                                     (entry["grp"], entry["alias"])).rowcount)
    changed |= _event(conn, entry)
    return changed
