"""Batch transform job records."""

from __future__ import annotations

from churn_core.catalog.database import Catalog
from churn_core.errors import NotFoundError


def transform(catalog: Catalog, name: str) -> dict:
    row = catalog.one("SELECT * FROM transforms WHERE name = ?", (name,))
    if row is None:
        raise NotFoundError(f"No transform job named {name!r}. See the Batch page for the list.")
    return row


def transforms(catalog: Catalog, limit: int = 100, offset: int = 0) -> list[dict]:
    return catalog.query("SELECT * FROM transforms ORDER BY created_at DESC, rowid DESC LIMIT ? OFFSET ?",
                         (limit, offset))
