"""Dataset records."""

from __future__ import annotations

import sqlite3
from contextlib import contextmanager
from typing import Iterator

from churn_core.catalog.database import Catalog
from churn_core.catalog.name_clash import check_free


def taken_name(catalog: Catalog, name: str) -> str | None:
    """The stored dataset name equal to ``name`` ignoring case, or None."""
    return catalog.scalar("SELECT name FROM datasets WHERE name = ? COLLATE NOCASE", (name,))


@contextmanager
def inserting(catalog: Catalog, row: dict, message: str) -> Iterator[sqlite3.Connection]:
    """Insert a dataset's row with its event, holding the write lock while the body stores its files: a racing
    upload of the same name waits, then fails; if the body raises, nothing is recorded."""
    with catalog.tx() as conn:
        check_free(conn, "datasets", "dataset", row["name"], "Pick another name.")
        yield conn
        conn.execute(f"INSERT INTO datasets ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                     list(row.values()))
        catalog.event("dataset", row["name"], message, conn)


def dataset(catalog: Catalog, name: str) -> dict | None:
    return catalog.one("SELECT * FROM datasets WHERE name = ?", (name,))


def datasets(catalog: Catalog) -> list[dict]:
    return catalog.query("SELECT * FROM datasets ORDER BY created_at DESC")


def job_using(catalog: Catalog, name: str) -> str | None:
    """A running training job that reads the dataset, or None."""
    row = catalog.one("SELECT name FROM jobs WHERE dataset = ? AND status IN ('InProgress', 'Stopping') LIMIT 1",
                      (name,))
    return row["name"] if row else None


def delete(catalog: Catalog, name: str) -> None:
    with catalog.tx() as conn:
        conn.execute("DELETE FROM datasets WHERE name = ?", (name,))
        catalog.event("dataset", name, "deleted", conn)
