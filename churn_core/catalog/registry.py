"""Model registry records: groups, numbered versions with their approval, and aliases."""

from __future__ import annotations

import sqlite3
import time

from churn_core.catalog.database import Catalog
from churn_core.errors import ConflictError


def groups(catalog: Catalog) -> list[dict]:
    return catalog.query("SELECT g.*, (SELECT COUNT(*) FROM model_versions v WHERE v.grp = g.name) AS versions "
                         "FROM model_groups g ORDER BY g.created_at DESC")


def group(catalog: Catalog, name: str) -> dict | None:
    return catalog.one("SELECT * FROM model_groups WHERE name = ?", (name,))


def ensure_group(catalog: Catalog, name: str, dataset: str) -> None:
    with catalog.tx() as conn:
        if conn.execute("SELECT 1 FROM model_groups WHERE name = ?", (name,)).fetchone() is None:
            conn.execute("INSERT INTO model_groups (name, dataset, created_at) VALUES (?, ?, ?)",
                         (name, dataset, time.time()))
            catalog.event("registry", name, f"model group created for dataset {dataset}", conn)


def versions(catalog: Catalog, grp: str) -> list[dict]:
    return catalog.query("SELECT * FROM model_versions WHERE grp = ? ORDER BY version DESC", (grp,))


def version(catalog: Catalog, grp: str, number: int) -> dict | None:
    return catalog.one("SELECT * FROM model_versions WHERE grp = ? AND version = ?", (grp, number))


def versions_of_model(catalog: Catalog, model: str) -> list[dict]:
    return catalog.query("SELECT * FROM model_versions WHERE model = ? ORDER BY created_at", (model,))


def insert_version(catalog: Catalog, row: dict, event_name, message: str) -> int:
    """The next version number of ``row["grp"]`` (or the one SageMaker gave, already in ``row``), inserted."""
    try:
        with catalog.tx() as conn:  # BEGIN IMMEDIATE: two registrations never get one number
            number = row.get("version") or conn.execute(
                "SELECT COALESCE(MAX(version), 0) + 1 AS n FROM model_versions WHERE grp = ?", (row["grp"],)
            ).fetchone()["n"]
            row = {**row, "version": int(number)}
            conn.execute(f"INSERT INTO model_versions ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                         list(row.values()))
            catalog.event("registry", event_name(row["grp"], row["version"]), message, conn)
    except sqlite3.IntegrityError:
        raise ConflictError(f"Version {row.get('version')} of {row['grp']!r} was registered at the same moment "
                            "elsewhere; register again.") from None
    return row["version"]


def set_status(catalog: Catalog, grp: str, number: int, status: str, note: str, event_name: str, message: str):
    with catalog.tx() as conn:
        conn.execute("UPDATE model_versions SET status = ?, status_note = ?, status_at = ? "
                     "WHERE grp = ? AND version = ?", (status, note, time.time(), grp, number))
        catalog.event("registry", event_name, message, conn)


def aliases(catalog: Catalog, grp: str) -> list[dict]:
    return catalog.query("SELECT alias, version FROM model_aliases WHERE grp = ? ORDER BY alias", (grp,))


def alias_version(catalog: Catalog, grp: str, alias: str) -> int | None:
    row = catalog.one("SELECT version FROM model_aliases WHERE grp = ? AND alias = ?", (grp, alias))
    return int(row["version"]) if row else None


def set_alias(catalog: Catalog, grp: str, alias: str, number: int, event_name) -> None:
    with catalog.tx() as conn:
        before = conn.execute("SELECT version FROM model_aliases WHERE grp = ? AND alias = ?",
                              (grp, alias)).fetchone()
        conn.execute("INSERT OR REPLACE INTO model_aliases (grp, alias, version, updated_at) VALUES (?, ?, ?, ?)",
                     (grp, alias, number, time.time()))
        moved = f" (was v{before['version']})" if before and before["version"] != number else ""
        catalog.event("registry", event_name(grp, number), f"alias {alias} set{moved}", conn)


def clear_alias(catalog: Catalog, grp: str, alias: str, event_name) -> None:
    with catalog.tx() as conn:
        row = conn.execute("SELECT version FROM model_aliases WHERE grp = ? AND alias = ?", (grp, alias)).fetchone()
        conn.execute("DELETE FROM model_aliases WHERE grp = ? AND alias = ?", (grp, alias))
        if row:
            catalog.event("registry", event_name(grp, row["version"]), f"alias {alias} removed", conn)
