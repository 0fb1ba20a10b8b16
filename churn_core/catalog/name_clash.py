"""Names are unique regardless of case.

Dataset, job and endpoint names become folder names and S3 keys. On a case-insensitive file system
(macOS, Windows) ``DS1`` and ``ds1`` are one folder, so two records with those names would share and
overwrite each other's files. The catalog keeps one per spelling-insensitive name: a unique index
``COLLATE NOCASE`` on each table (``db.NOCASE_UNIQUE``), and this check inside the inserting
transaction, which says which existing name is in the way.
"""

from __future__ import annotations

import sqlite3

from churn_core.errors import ConflictError


def taken(conn: sqlite3.Connection, table: str, name: str) -> str | None:
    """The existing name in ``table`` equal to ``name`` ignoring case, or None."""
    row = conn.execute(f"SELECT name FROM {table} WHERE name = ? COLLATE NOCASE LIMIT 1", (name,)).fetchone()
    return row["name"] if row else None


def clash(what: str, name: str, existing: str, advice: str) -> ConflictError:
    if existing == name:
        return ConflictError(f"A {what} named {name!r} already exists. {advice}")
    return ConflictError(
        f"A {what} named {existing!r} already exists, and names are unique regardless of case ({name!r} and "
        f"{existing!r} would be one folder on macOS and Windows). {advice}"
    )


def check_free(conn: sqlite3.Connection, table: str, what: str, name: str, advice: str) -> None:
    existing = taken(conn, table, name)
    if existing is not None:
        raise clash(what, name, existing, advice)
