"""How a local training job ended, written next to it before it is recorded, so no outcome is lost.

The job driver writes ``jobs/<name>/outcome.json`` (``0600``) first and records the outcome in the catalog
second. When the catalog cannot be written at that moment (damaged, replaced, full disk), the driver says so
in its log and exits; the next status read (``reconcile_jobs``) finds the driver gone and records the outcome
from the file: a trained model stays a Completed job with its model, a failure keeps its true reason, instead
of "the training process exited unexpectedly (exit code 1)". Recording it is
``churn_core.catalog.local_records.record_job_outcome``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from churn_core.storage.private_files import write_text

FILE = "outcome.json"


def path(job_folder: Path) -> Path:
    return Path(job_folder) / FILE


def write(job_folder: Path, outcome: dict) -> None:
    write_text(path(job_folder), json.dumps(dict(outcome, written_at=time.time()), indent=1))


def read(job_folder: Path) -> dict | None:
    try:
        outcome = json.loads(path(job_folder).read_text())
    except (OSError, ValueError):
        return None
    return outcome if isinstance(outcome, dict) and outcome.get("status") in ("Completed", "Failed", "Stopped") \
        else None


def clear(job_folder: Path) -> None:
    path(job_folder).unlink(missing_ok=True)
