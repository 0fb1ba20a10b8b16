"""A job driver that never gets a slot, for the warm-process tests that need a child to outlive them."""

from __future__ import annotations

import time
from pathlib import Path

from churn_core.catalog.database import Catalog


def waiting_driver(tmp_path: Path, name: str) -> list[str]:
    """Arguments of a job driver that waits forever for a slot (a limit of 0 concurrent jobs)."""
    catalog = Catalog(tmp_path / "churn.db")
    with catalog.tx() as conn:
        conn.execute("INSERT INTO jobs (name, backend, dataset, dataset_sha256, algorithm, hyperparameters_json, "
                     "status, secondary_status, created_at) VALUES (?, 'local', 'd', '', 'random_forest', '{}', "
                     "'InProgress', 'Starting', ?)", (name, time.time()))
    return ["-m", "churn_core.backends.local.job_driver", "--home", str(tmp_path), "--bucket", "b", "--job", name,
            "--max-concurrent", "0"]
