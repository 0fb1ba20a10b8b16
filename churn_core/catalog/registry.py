"""Model registry records: groups, numbered versions with their approval, and aliases."""

from __future__ import annotations

import sqlite3
import time

from churn_core.catalog import actor
from churn_core.catalog.database import Catalog
from churn_core.catalog.journal import Journaled
from churn_core.errors import ConflictError

# Every writer below journals its decision (catalog/journal.py) inside its transaction, before it commits: a
# restored or rebuilt catalog replays the journal, so no registry decision is ever lost or reverted.


def groups(catalog: Catalog) -> list[dict]:
    return catalog.query("SELECT g.*, (SELECT COUNT(*) FROM model_versions v WHERE v.grp = g.name) AS versions "
                         "FROM model_groups g ORDER BY g.created_at DESC")


def group(catalog: Catalog, name: str) -> dict | None:
    return catalog.one("SELECT * FROM model_groups WHERE name = ?", (name,))


def _group_row(conn: sqlite3.Connection, name: str) -> dict:
    row = conn.execute("SELECT name, dataset, created_at, arn FROM model_groups WHERE name = ?", (name,)).fetchone()
    return dict(row)


def ensure_group(catalog: Catalog, name: str, dataset: str) -> None:
    now = time.time()
    message = f"model group created for dataset {dataset}"
    with Journaled(catalog, {"op": "group", "at": now}) as decision:
        conn = decision.conn
        if conn.execute("SELECT 1 FROM model_groups WHERE name = ?", (name,)).fetchone() is None:
            conn.execute("INSERT INTO model_groups (name, dataset, created_at) VALUES (?, ?, ?)",
                         (name, dataset, now))
            catalog.event("registry", name, message, conn, at=now)
            decision.write(group=_group_row(conn, name), event_name=name, event=message)


def set_group_arn(catalog: Catalog, name: str, arn: str) -> None:
    """The group's SageMaker ARN (journaled too: a rebuilt catalog must not create the group on AWS again)."""
    with Journaled(catalog, {"op": "group", "at": time.time()}) as decision:
        decision.conn.execute("UPDATE model_groups SET arn = ? WHERE name = ?", (arn, name))
        decision.write(group=_group_row(decision.conn, name))


def versions(catalog: Catalog, grp: str) -> list[dict]:
    return catalog.query("SELECT * FROM model_versions WHERE grp = ? ORDER BY version DESC", (grp,))


def version(catalog: Catalog, grp: str, number: int) -> dict | None:
    return catalog.one("SELECT * FROM model_versions WHERE grp = ? AND version = ?", (grp, number))


def versions_of_model(catalog: Catalog, model: str) -> list[dict]:
    return catalog.query("SELECT * FROM model_versions WHERE model = ? ORDER BY created_at", (model,))


def insert_version(catalog: Catalog, row: dict, event_name, message: str) -> int:
    """The next version number of ``row["grp"]`` (or the one SageMaker gave, already in ``row``), inserted."""
    now = time.time()
    try:
        with Journaled(catalog, {"op": "register", "at": now}) as decision:  # BEGIN IMMEDIATE: one number each
            conn = decision.conn
            number = row.get("version") or conn.execute(
                "SELECT COALESCE(MAX(version), 0) + 1 AS n FROM model_versions WHERE grp = ?", (row["grp"],)
            ).fetchone()["n"]
            row = {**row, "version": int(number), "registered_by": actor.current()}
            conn.execute(f"INSERT INTO model_versions ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                         list(row.values()))
            name = event_name(row["grp"], row["version"])
            catalog.event("registry", name, message, conn, at=now)
            decision.write(group=_group_row(conn, row["grp"]), row=row, event_name=name, event=message)
    except sqlite3.IntegrityError:
        raise ConflictError(f"Version {row.get('version')} of {row['grp']!r} was registered at the same moment "
                            "elsewhere; register again.") from None
    return row["version"]


def set_status(catalog: Catalog, grp: str, number: int, status: str, note: str, event_name: str, message: str):
    now = time.time()
    with Journaled(catalog, {"op": "status", "at": now}) as decision:
        decision.conn.execute("UPDATE model_versions SET status = ?, status_note = ?, status_at = ?, status_by = ? "
                              "WHERE grp = ? AND version = ?", (status, note, now, actor.current(), grp, number))
        catalog.event("registry", event_name, message, decision.conn, at=now)
        decision.write(grp=grp, version=number, status=status, note=note, event_name=event_name, event=message)


def set_threshold(catalog: Catalog, grp: str, number: int, threshold: float, record_json: str, event_name: str,
                  message: str) -> None:
    """A version's own decision threshold and its record (who, when, why, the campaign inputs, the history)."""
    now = time.time()
    with Journaled(catalog, {"op": "threshold", "at": now}) as decision:
        decision.conn.execute("UPDATE model_versions SET threshold = ?, threshold_json = ? "
                              "WHERE grp = ? AND version = ?", (threshold, record_json, grp, number))
        catalog.event("registry", event_name, message, decision.conn, at=now)
        decision.write(grp=grp, version=number, threshold=threshold, record=record_json, event_name=event_name,
                       event=message)


def aliases(catalog: Catalog, grp: str) -> list[dict]:
    return catalog.query("SELECT alias, version FROM model_aliases WHERE grp = ? ORDER BY alias", (grp,))


def alias_version(catalog: Catalog, grp: str, alias: str) -> int | None:
    row = catalog.one("SELECT version FROM model_aliases WHERE grp = ? AND alias = ?", (grp, alias))
    return int(row["version"]) if row else None


def set_alias(catalog: Catalog, grp: str, alias: str, number: int, event_name) -> None:
    now = time.time()
    with Journaled(catalog, {"op": "alias", "at": now}) as decision:
        conn = decision.conn
        before = conn.execute("SELECT version FROM model_aliases WHERE grp = ? AND alias = ?",
                              (grp, alias)).fetchone()
        conn.execute("INSERT OR REPLACE INTO model_aliases (grp, alias, version, updated_at) VALUES (?, ?, ?, ?)",
                     (grp, alias, number, now))
        moved = f" (was v{before['version']})" if before and before["version"] != number else ""
        catalog.event("registry", event_name(grp, number), f"alias {alias} set{moved}", conn, at=now)
        decision.write(grp=grp, alias=alias, version=number, event_name=event_name(grp, number),
                       event=f"alias {alias} set{moved}")


def clear_alias(catalog: Catalog, grp: str, alias: str, event_name) -> None:
    now = time.time()
    with Journaled(catalog, {"op": "alias_clear", "at": now}) as decision:
        conn = decision.conn
        row = conn.execute("SELECT version FROM model_aliases WHERE grp = ? AND alias = ?", (grp, alias)).fetchone()
        conn.execute("DELETE FROM model_aliases WHERE grp = ? AND alias = ?", (grp, alias))
        if row:
            catalog.event("registry", event_name(grp, row["version"]), f"alias {alias} removed", conn, at=now)
            decision.write(grp=grp, alias=alias, event_name=event_name(grp, row["version"]),
                           event=f"alias {alias} removed")
