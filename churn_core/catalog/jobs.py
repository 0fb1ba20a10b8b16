"""Training job and trained model records."""

from __future__ import annotations

import time

from churn_core.catalog.database import Catalog, dumps
from churn_core.errors import NotFoundError


def job(catalog: Catalog, name: str) -> dict:
    row = catalog.one("SELECT * FROM jobs WHERE name = ?", (name,))
    if row is None:
        raise NotFoundError(f"No training job named {name!r}. See the Jobs page for the list.")
    return row


def exists(catalog: Catalog, name: str) -> bool:
    return catalog.one("SELECT name FROM jobs WHERE name = ?", (name,)) is not None


def jobs(catalog: Catalog, limit: int = 100, offset: int = 0, status: str | None = None) -> list[dict]:
    where, args = ("WHERE status = ?", [status]) if status else ("", [])
    return catalog.query(f"SELECT * FROM jobs {where} ORDER BY created_at DESC, rowid DESC LIMIT ? OFFSET ?",
                         [*args, limit, offset])


def job_names(catalog: Catalog, limit: int = 100, offset: int = 0, status: str | None = None) -> list[str]:
    where, args = ("WHERE status = ?", [status]) if status else ("", [])
    rows = catalog.query(f"SELECT name FROM jobs {where} ORDER BY created_at DESC, rowid DESC LIMIT ? OFFSET ?",
                         [*args, limit, offset])
    return [r["name"] for r in rows]


def count(catalog: Catalog, status: str | None = None) -> int:
    if status:
        return catalog.scalar("SELECT COUNT(*) FROM jobs WHERE status = ?", (status,))
    return catalog.scalar("SELECT COUNT(*) FROM jobs")


def record_model(catalog: Catalog, row: dict) -> None:
    """A Completed job's model (once: a second call for the same job changes nothing)."""
    with catalog.tx() as conn:
        conn.execute(
            "INSERT OR IGNORE INTO models (name, job, dataset, dataset_sha256, algorithm, hyperparameters_json, "
            "code_sha256, artifact_key, artifact_sha256, metrics_json, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (row["name"], row["name"], row["dataset"], row["dataset_sha256"], row["algorithm"],
             row["hyperparameters_json"], row["code_sha256"], row["model_key"], row["model_sha256"],
             row["metrics_json"], row["ended_at"] or time.time()),
        )


def model(catalog: Catalog, name: str) -> dict | None:
    return catalog.one("SELECT * FROM models WHERE name = ?", (name,))


def models(catalog: Catalog) -> list[dict]:
    return catalog.query("SELECT * FROM models ORDER BY created_at DESC")


def model_names(catalog: Catalog) -> list[str]:
    return [r["name"] for r in catalog.query("SELECT name FROM models ORDER BY created_at DESC")]


def set_threshold(catalog: Catalog, model_name: str, threshold: float, record: dict, message: str) -> None:
    with catalog.tx() as conn:
        conn.execute("UPDATE models SET threshold = ?, threshold_json = ? WHERE name = ?",
                     (threshold, dumps(record), model_name))
        catalog.event("job", model_name, message, conn)
