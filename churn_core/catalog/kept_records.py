"""A local transform's or tuning job's record, kept next to its outputs so a restore or a rebuild finds it.

The catalog is backed up at most once a minute, and a damaged one may lose rows; transform and tuning jobs
have no model folder a rebuild could read them from. So their record is also written, whole, into their own
folder (``<home>/transforms/<name>/record.json`` and ``<home>/tuning/<name>/record.json``, ``0600``): when
the job is submitted (with its driver's pid) and again when it ends (``outcomes.finish`` for transforms, the
tuning process for tuning jobs, which adds its trials). ``disk_scan`` records them again in a restored or
rebuilt catalog with their real final state (outputs, counts, best trial), instead of "exited unexpectedly".
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

from churn_core.errors import ChurnError
from churn_core.storage.private_files import write_text

FILE = "record.json"
KINDS = {"transform": ("transforms", "transforms"), "tuning": ("tuning", "tuning_jobs")}  # folder, table
TERMINAL = ("Completed", "Failed", "Stopped")
DRIVERS = {"transform": ("churn_core.backends.local.transform_driver", "--transform"),
           "tuning": ("churn_core.backends.local.tuning_driver", "--tuning")}


def folder(home: Path, kind: str, name: str) -> Path:
    return Path(home) / KINDS[kind][0] / name


def keep(catalog, kind: str, name: str, conn: sqlite3.Connection | None = None, **overrides) -> None:
    """Write the job's record as the catalog (or the caller's transaction ``conn``) has it now; best effort:
    the catalog stays the record, and a job without a folder (SageMaker) has nothing to keep."""
    if kind not in KINDS:
        return
    where = folder(Path(catalog.path).parent, kind, name)
    if not where.is_dir():
        return
    try:
        def read(c: sqlite3.Connection) -> tuple[dict | None, list[dict]]:
            row = c.execute(f"SELECT * FROM {KINDS[kind][1]} WHERE name = ?", (name,)).fetchone()
            trials = c.execute("SELECT * FROM tuning_trials WHERE tuning_job = ? ORDER BY number",
                               (name,)).fetchall() if kind == "tuning" else []
            return row, trials

        if conn is not None:
            row, trials = read(conn)
        else:
            with catalog.tx() as own:
                row, trials = read(own)
        if row is None:
            return
        write_text(where / FILE, json.dumps({"kind": kind, "row": {**dict(row), **overrides},
                                             "trials": [dict(t) for t in trials], "written_at": time.time()},
                                            default=str))
    except (OSError, sqlite3.Error, ChurnError):
        pass  # a catalog that cannot be read now (damaged, full disk): the catalog's own record stands


def read(where: Path) -> dict | None:
    try:
        record = json.loads((Path(where) / FILE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or not isinstance(record.get("row"), dict):
        return None
    return record
