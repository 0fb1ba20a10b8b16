"""Names are unique regardless of case.

Dataset, job and endpoint names become folder names and S3 keys. On a case-insensitive file system
(macOS, Windows) ``DS1`` and ``ds1`` are one folder, so two records with those names would share and
overwrite each other's files. The catalog keeps one per spelling-insensitive name: a unique index
``COLLATE NOCASE`` on each table (``db.NOCASE_UNIQUE``), and this check inside the inserting
transaction, which says which existing name is in the way.
"""

from __future__ import annotations

import sqlite3

from churn_core.catalog.database import with_creator
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


def insert_named(catalog, table: str, what: str, name: str, make_row, auto_named: bool, event: tuple[str, str],
                 advice: str, in_use=None) -> dict:
    """Insert ``make_row(name)`` into ``table``; the row inserted, with the name it got. A generated name is per
    second and local jobs take about one, so a taken generated name gets ``-2``, ``-3`` ... (as SageMaker's SDK
    adds milliseconds); a chosen name that is taken, in any case, is a ConflictError. ``in_use(name)`` says what
    of a name is still on disk ("" when nothing): outputs of a job the catalog lost (restored from an older
    backup) are never overwritten by a new job of the same name."""
    base = name
    for attempt in range(1, 100):
        recorded = in_use is not None and catalog.scalar(
            f"SELECT name FROM {table} WHERE name = ? COLLATE NOCASE", (name,)) is not None
        left = in_use(name) if in_use is not None and not recorded else ""  # a recorded one: "already exists"
        if left and not auto_named:
            raise ConflictError(
                f"A {what} named {name!r} already left its outputs ({left}), although the catalog has no record of "
                f"it (it may have been restored from an older backup). {advice} To see that job again, rebuild "
                "the catalog from disk (Settings → 'Rebuild from disk').")
        if left:
            name = f"{base}-{attempt + 1}"
            continue
        row = with_creator(table, make_row(name))
        try:
            with catalog.tx() as conn:
                if (existing := taken(conn, table, name)) is not None:
                    raise sqlite3.IntegrityError(existing)
                conn.execute(f"INSERT INTO {table} ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                             list(row.values()))
                catalog.event(event[0], name, event[1], conn)
            return row
        except sqlite3.IntegrityError:
            if not auto_named:
                existing = catalog.scalar(f"SELECT name FROM {table} WHERE name = ? COLLATE NOCASE", (name,))
                raise clash(what, name, existing or name, advice) from None
            name = f"{base}-{attempt + 1}"
    raise ConflictError(f"Could not find a free {what} name after {base!r}-99; give it a name.")
