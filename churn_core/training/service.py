"""Training jobs: start, follow, stop. A job's record is reconciled with the backend on every read."""

from __future__ import annotations

import time

from churn_core.catalog import jobs as records
from churn_core.catalog import outcomes
from churn_core.catalog.database import dumps
from churn_core.catalog.name_clash import insert_named
from churn_core.errors import ConflictError, ValidationError
from churn_core.names import check_name, default_job_name
from churn_core.paths import code_version
from churn_core.records import TRAINING_ACTIVE, TrainingJob
from churn_core.training import hyperparameters as hp


class TrainingService:
    def __init__(self, catalog, backend, datasets):
        self.catalog = catalog
        self.backend = backend
        self.datasets = datasets

    def start(self, dataset: str, hyperparameters: dict | None = None, name: str | None = None,
              instance_type: str | None = None, instance_count: int = 1) -> TrainingJob:
        ds = self.datasets.get(dataset)
        clean = hp.clean(hyperparameters or {})
        algorithm = clean.pop("algorithm")
        auto_named = not name
        name = check_name(name or default_job_name(algorithm), "job name")
        if isinstance(instance_count, bool) or not isinstance(instance_count, int) or instance_count != 1:
            raise ValidationError(
                f"A training job runs on one instance (instance_count {instance_count!r} was asked for): scikit-learn "
                "fits a model on one machine, so more instances would each train the same model and bill once each. "
                "To use several machines, run a tuning job (Train page, Tune): its trials run in parallel, one "
                "instance each. Leave instance_count at 1.")
        row = {
            "name": name,
            "backend": self.backend.name,
            "dataset": ds.name,
            "dataset_sha256": ds.sha256,
            "algorithm": algorithm,
            "hyperparameters_json": dumps({"algorithm": algorithm, **clean}),
            "status": "InProgress",
            "secondary_status": "Starting",
            "created_at": time.time(),
            "code_sha256": code_version(),
            "instance_type": instance_type or next(iter(self.backend.training_instance_types()), "local"),
            "instance_count": int(instance_count),
        }
        name = insert_named(self.catalog, "jobs", "training job", name, lambda n: {**row, "name": n}, auto_named,
                            ("job", f"submitted: {algorithm} on {ds.name}"),
                            "Job names are unique; pick another.")["name"]
        with outcomes.failed_if_not_started(self.catalog, "training", name, "training job"):
            self.datasets.ensure_schema_object(ds)  # the typing decided at upload travels with the data
            fields = self.backend.start_training(records.job(self.catalog, name), ds)
        outcomes.apply(self.catalog, "training", name, fields)
        return self.describe(name)

    def refresh(self, row: dict) -> dict:
        """The job's row after asking the backend how an active job is doing (its model recorded once it completed)."""
        if row["status"] in TRAINING_ACTIVE:
            outcomes.apply(self.catalog, "training", row["name"], self.backend.refresh_training(row))
            row = records.job(self.catalog, row["name"])
            if row["status"] == "Completed":
                records.record_model(self.catalog, row)
        return row

    def describe(self, name: str) -> TrainingJob:
        return TrainingJob.from_row(self.refresh(records.job(self.catalog, name)))

    def list(self, limit: int = 100, offset: int = 0, status: str | None = None) -> list[TrainingJob]:
        return [TrainingJob.from_row(self.refresh(r)) for r in records.jobs(self.catalog, limit, offset, status)]

    def stop(self, name: str) -> TrainingJob:
        row = self.refresh(records.job(self.catalog, name))
        if row["status"] not in TRAINING_ACTIVE:
            raise ConflictError(f"Job {name} is {row['status']}; only a running job can be stopped.")
        self.catalog.update("jobs", name, status="Stopping", secondary_status="Stopping")
        self.catalog.event("job", name, "stop requested")
        outcomes.apply(self.catalog, "training", name, self.backend.stop_training(records.job(self.catalog, name)))
        return self.describe(name)

    def log(self, name: str, lines: int = 200) -> str:
        return self.backend.training_log(records.job(self.catalog, name), lines)

    def compare(self, names: list[str]) -> list[dict]:
        """One row per completed job: its algorithm, hyperparameters and every metric."""
        rows = []
        for name in names:
            job = self.describe(name)
            if job.status == "Completed":
                rows.append({"job": job.name, "algorithm": job.algorithm, "dataset": job.dataset, **job.metrics,
                             "hyperparameters": {k: v for k, v in job.hyperparameters.items() if k != "algorithm"}})
        return rows
