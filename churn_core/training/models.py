"""Trained models: their records, their verified artifacts, and what is read from them (schema, evaluation)."""

from __future__ import annotations

from churn_core.catalog import jobs as records
from churn_core.catalog.database import loads
from churn_core.decisions.model_runtime import load_model
from churn_core.errors import ConflictError, NotFoundError
from churn_core.storage.artifacts import read_json_member
from churn_core.storage.unpack import load_verified


class ModelService:
    """Reads of a model's artifact are cached by its SHA-256 (the bytes cannot change under the same hash)."""

    def __init__(self, catalog, store, training):
        self.catalog = catalog
        self.store = store
        self.training = training
        self.cache: dict[str, object] = {}

    def get(self, name: str) -> dict:
        row = records.model(self.catalog, name)
        if row is None and records.exists(self.catalog, name):
            self.training.describe(name)  # may complete and register it now
            row = records.model(self.catalog, name)
        if row is None:
            raise NotFoundError(f"No trained model named {name!r}. Deploy a model from a Completed training job.")
        return row

    def names(self) -> list[str]:
        """Trained models, newest first (names only: the deploy picker needs no more)."""
        return records.model_names(self.catalog)

    def list(self) -> list[dict]:
        return records.models(self.catalog)

    def schema(self, name: str) -> dict:
        """The feature schema the model was trained with (forms and validation come from it)."""
        key = f"schema:{name}"
        if key not in self.cache:
            model = self.get(name)
            data = load_verified(self.store, model["artifact_key"], model["artifact_sha256"])
            self.cache[key] = read_json_member(data, "schema.json")  # from the bytes just checked
        return self.cache[key]

    def threshold(self, name: str) -> float:
        """The decision threshold every label of the model uses: the one chosen for it, else its schema's."""
        row = self.get(name)
        if row.get("threshold") is not None:
            return float(row["threshold"])
        return float(self.schema(name).get("threshold", 0.5))

    def threshold_record(self, name: str) -> dict:
        """Who chose the job's model's threshold, when, why and with which campaign inputs ({} when never chosen)."""
        return loads(self.get(name).get("threshold_json"), {}) or {}

    def evaluation(self, name: str) -> dict:
        """ROC/PR points, confusion matrix, feature importance and metrics of a completed job."""
        job = self.training.describe(name)
        if job.status != "Completed":
            raise ConflictError(f"Job {name} is {job.status}; evaluation data exists once it is Completed.")
        if not job.output_key:
            raise NotFoundError(f"Job {name} has no evaluation archive (output.tar.gz); retrain it to produce one.")
        if job.output_sha256 not in self.cache:
            data = load_verified(self.store, job.output_key, job.output_sha256, "evaluation archive")
            self.cache[job.output_sha256] = read_json_member(data, "evaluation.json")  # the bytes checked
        return self.cache[job.output_sha256]

    def loaded(self, name: str) -> dict:
        """The model loaded in this process (verified first), to score known customers without an endpoint."""
        row = self.get(name)
        return load_model(self.store, row["artifact_key"], row["artifact_sha256"])
