"""The platform: the one object pages and notebooks use (``churn_core.connect()``).

It owns the catalog records and the rules (names, states, transactions); the backend acts on
the world. Every read of an active job or endpoint reconciles it with reality first.
"""

from __future__ import annotations

import functools
import io
import json
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any, Callable

from churn_core.training import hyperparameters as hp
from churn_core.storage.artifacts import read_json_member
from churn_core.backends import make_backend
from churn_core.config import Settings
from churn_core.data.datasets import DatasetService
from churn_core.catalog.database import Catalog, dumps, loads
from churn_core.errors import BackendError, ChurnError, ConflictError, NotFoundError, ValidationError
from churn_core.catalog.name_clash import check_free, clash, taken
from churn_core.names import check_name, default_job_name
from churn_core.paths import code_version
from churn_core.storage.private_files import make_dirs, tighten
from churn_core.records import (
    ENDPOINT_ACTIVE, TRAINING_ACTIVE, TRANSFORM_ACTIVE, Dataset, Endpoint, TrainingJob, TransformJob,
)
from churn_core.endpoints import rollout
from churn_core.monitoring.service import Monitoring
from churn_core.registry.model_registry import APPROVED, REJECTED, ModelVersion, Registry
from churn_core.decisions import campaign
from churn_core.paths import entry_module
from churn_core.endpoints.scoring import BatchResult, encode_payload, read_customers, score_frame
from churn_core.storage.unpack import load_verified



def _suffixed(name: str, suffix: str) -> str:
    return name[: 63 - len(suffix)].rstrip("-") + suffix


class Platform:
    def __init__(self, settings: Settings | None = None):
        self.settings = settings or Settings.from_env()
        make_dirs(self.settings.home)
        tighten(self.settings.home)  # what an older version left readable by others (churn.db, job files)
        self.catalog = Catalog(self.settings.home / "churn.db")
        self.backend = make_backend(self.settings, self.catalog)
        self.store = self.backend.store
        self.datasets = DatasetService(self.catalog, self.store, self.settings.max_upload_mb * 1024 * 1024)
        self._evaluations: dict[str, dict] = {}
        self.registry = Registry(self.catalog, self.backend)
        self.monitoring = Monitoring(self.catalog, self.store, self.datasets, get_model=self.get_model,
                                     model_schema=self.model_schema, test_predictions=self.test_predictions,
                                     read_customers=self.read_customers, cache=self._evaluations)
        self.backend.reconcile()
        self._reconcile_schedules()
        self.catalog.backup()  # on connect too (when due), not only after writes: a restore point for the session

    # ---- datasets ------------------------------------------------------------------------
    def validate_dataset(self, data: bytes, target: str = "Churn"):
        return self.datasets.validate(data, target)

    def upload_dataset(self, name: str, data: bytes, target: str = "Churn", test_size: float = 0.3,
                       seed: int = 42, source: str = "upload") -> Dataset:
        return self.datasets.upload(name, data, target=target, test_size=test_size, seed=seed, source=source)

    def load_sample(self, name: str = "sample-telecom", rows: int = 2000, seed: int = 7) -> Dataset:
        from churn_core.data.sample import make_sample

        return self.upload_dataset(name, make_sample(rows=rows, seed=seed), source="synthetic sample")

    def list_datasets(self) -> list[Dataset]:
        return self.datasets.list()

    def get_dataset(self, name: str) -> Dataset:
        return self.datasets.get(name)

    def read_dataset(self, name: str, part: str = "raw", typed: bool = False):
        """A stored part (raw, train, test) as text, or typed by the dataset schema as training sees it."""
        return self.datasets.read(name, part, typed)

    def delete_dataset(self, name: str) -> None:
        self.datasets.delete(name)

    # ---- training ------------------------------------------------------------------------
    def start_training(self, dataset: str, hyperparameters: dict | None = None, name: str | None = None,
                       instance_type: str | None = None, instance_count: int = 1) -> TrainingJob:
        ds = self.datasets.get(dataset)
        clean = hp.clean(hyperparameters or {})
        algorithm = clean.pop("algorithm")
        auto_named = not name
        name = check_name(name or default_job_name(algorithm), "job name")
        if not 1 <= int(instance_count) <= 20:
            raise ValidationError("Instance count must be between 1 and 20.")
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
        name = self._insert_named("jobs", "training job", name, lambda n: {**row, "name": n}, auto_named,
                                  ("job", f"submitted: {algorithm} on {ds.name}"),
                                  "Job names are unique; pick another.")["name"]
        try:
            self.datasets.ensure_schema_object(ds)  # the typing decided at upload travels with the data
            fields = self.backend.start_training(self._job_row(name), ds)
        except ChurnError as exc:
            self._fail_job(name, str(exc))
            raise
        except Exception as exc:
            self._fail_job(name, f"could not start: {exc}")
            raise BackendError(f"Could not start training job {name}: {exc}") from exc
        if fields:
            self.catalog.update("jobs", name, **fields)
        return self.describe_training(name)

    def _fail_job(self, name: str, reason: str) -> None:
        self.catalog.update("jobs", name, status="Failed", secondary_status="Failed", failure_reason=reason,
                            ended_at=time.time())
        self.catalog.event("job", name, f"Failed: {reason}")

    def _insert_named(self, table: str, what: str, name: str, make_row: Callable[[str], dict], auto_named: bool,
                      event: tuple[str, str], advice: str) -> dict:
        """Insert ``make_row(name)`` into ``table``; the row inserted, with the name it got. A generated name
        is per second and local jobs take about one, so a taken generated name gets ``-2``, ``-3`` ... (as
        SageMaker's SDK adds milliseconds); a chosen name that is taken, in any case, is a ConflictError."""
        base = name
        for attempt in range(1, 100):
            row = make_row(name)
            try:
                with self.catalog.tx() as conn:
                    if (existing := taken(conn, table, name)) is not None:
                        raise sqlite3.IntegrityError(existing)
                    conn.execute(f"INSERT INTO {table} ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                                 list(row.values()))
                    self.catalog.event(event[0], name, event[1], conn)
                return row
            except sqlite3.IntegrityError:
                if not auto_named:
                    existing = self.catalog.scalar(f"SELECT name FROM {table} WHERE name = ? COLLATE NOCASE", (name,))
                    raise clash(what, name, existing or name, advice) from None
                name = f"{base}-{attempt + 1}"
        raise ConflictError(f"Could not find a free {what} name after {base!r}-99; give it a name.")

    def _job_row(self, name: str) -> dict:
        row = self.catalog.one("SELECT * FROM jobs WHERE name = ?", (name,))
        if row is None:
            raise NotFoundError(f"No training job named {name!r}. See the Jobs page for the list.")
        return row

    def _refresh_job(self, row: dict) -> dict:
        if row["status"] in TRAINING_ACTIVE:
            fields = self.backend.refresh_training(row)
            if fields:
                self.catalog.update("jobs", row["name"], **fields)
            row = self._job_row(row["name"])
            if row["status"] == "Completed":
                self._register_model(row)
        return row

    def _register_model(self, row: dict) -> None:
        with self.catalog.tx() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO models (name, job, dataset, dataset_sha256, algorithm, hyperparameters_json, "
                "code_sha256, artifact_key, artifact_sha256, metrics_json, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (row["name"], row["name"], row["dataset"], row["dataset_sha256"], row["algorithm"],
                 row["hyperparameters_json"], row["code_sha256"], row["model_key"], row["model_sha256"],
                 row["metrics_json"], row["ended_at"] or time.time()),
            )

    def describe_training(self, name: str) -> TrainingJob:
        return TrainingJob.from_row(self._refresh_job(self._job_row(name)))

    def list_training_jobs(self, limit: int = 100, offset: int = 0, status: str | None = None) -> list[TrainingJob]:
        where, args = ("WHERE status = ?", [status]) if status else ("", [])
        rows = self.catalog.query(
            f"SELECT * FROM jobs {where} ORDER BY created_at DESC, rowid DESC LIMIT ? OFFSET ?", [*args, limit, offset]
        )
        return [TrainingJob.from_row(self._refresh_job(r)) for r in rows]

    def job_names(self, limit: int = 100, offset: int = 0, status: str | None = None) -> list[str]:
        """Names only, newest first: cheap enough for pickers over thousands of jobs."""
        where, args = ("WHERE status = ?", [status]) if status else ("", [])
        rows = self.catalog.query(
            f"SELECT name FROM jobs {where} ORDER BY created_at DESC, rowid DESC LIMIT ? OFFSET ?",
            [*args, limit, offset],
        )
        return [r["name"] for r in rows]

    def count_training_jobs(self, status: str | None = None) -> int:
        if status:
            return self.catalog.scalar("SELECT COUNT(*) FROM jobs WHERE status = ?", (status,))
        return self.catalog.scalar("SELECT COUNT(*) FROM jobs")

    def stop_training(self, name: str) -> TrainingJob:
        row = self._refresh_job(self._job_row(name))
        if row["status"] not in TRAINING_ACTIVE:
            raise ConflictError(f"Job {name} is {row['status']}; only a running job can be stopped.")
        self.catalog.update("jobs", name, status="Stopping", secondary_status="Stopping")
        self.catalog.event("job", name, "stop requested")
        fields = self.backend.stop_training(self._job_row(name))
        if fields:
            self.catalog.update("jobs", name, **fields)
        return self.describe_training(name)

    def training_log(self, name: str, lines: int = 200) -> str:
        return self.backend.training_log(self._job_row(name), lines)

    def evaluation(self, name: str) -> dict:
        """ROC/PR points, confusion matrix, feature importance and metrics of a completed job."""
        job = self.describe_training(name)
        if job.status != "Completed":
            raise ConflictError(f"Job {name} is {job.status}; evaluation data exists once it is Completed.")
        if not job.output_key:
            raise NotFoundError(f"Job {name} has no evaluation archive (output.tar.gz); retrain it to produce one.")
        if job.output_sha256 not in self._evaluations:
            data = load_verified(self.store, job.output_key, job.output_sha256, "evaluation archive")
            self._evaluations[job.output_sha256] = read_json_member(data, "evaluation.json")  # the bytes checked
        return self._evaluations[job.output_sha256]

    def model_schema(self, name: str) -> dict:
        """The feature schema the model was trained with (forms and validation come from it)."""
        key = f"schema:{name}"
        if key not in self._evaluations:
            model = self.get_model(name)
            data = load_verified(self.store, model["artifact_key"], model["artifact_sha256"])
            self._evaluations[key] = read_json_member(data, "schema.json")  # from the bytes just checked
        return self._evaluations[key]

    def get_model(self, name: str) -> dict:
        row = self.catalog.one("SELECT * FROM models WHERE name = ?", (name,))
        if row is None and self.catalog.one("SELECT name FROM jobs WHERE name = ?", (name,)):
            self.describe_training(name)  # may complete and register it now
            row = self.catalog.one("SELECT * FROM models WHERE name = ?", (name,))
        if row is None:
            raise NotFoundError(f"No trained model named {name!r}. Deploy a model from a Completed training job.")
        return row

    def model_threshold(self, name: str) -> float:
        """The decision threshold every label of the model uses: the one chosen for it, else its schema's."""
        row = self.get_model(name)
        if row.get("threshold") is not None:
            return float(row["threshold"])
        return float(self.model_schema(name).get("threshold", 0.5))

    def model_names(self) -> list[str]:
        """Trained models, newest first (names only: the deploy picker needs no more)."""
        return [r["name"] for r in self.catalog.query("SELECT name FROM models ORDER BY created_at DESC")]

    def list_models(self) -> list[dict]:
        return self.catalog.query("SELECT * FROM models ORDER BY created_at DESC")

    def compare(self, names: list[str]) -> list[dict]:
        """One row per completed job: its algorithm, hyperparameters and every metric."""
        rows = []
        for name in names:
            job = self.describe_training(name)
            if job.status == "Completed":
                rows.append(
                    {
                        "job": job.name,
                        "algorithm": job.algorithm,
                        "dataset": job.dataset,
                        **{k: v for k, v in job.metrics.items()},
                        "hyperparameters": {k: v for k, v in job.hyperparameters.items() if k != "algorithm"},
                    }
                )
        return rows

    # ---- endpoints -----------------------------------------------------------------------
    def deploy(
        self,
        model: str,
        endpoint_name: str,
        instance_type: str | None = None,
        instance_count: int = 1,
        wait: bool = True,
        timeout: float = 120.0,
    ) -> Endpoint:
        """Model → endpoint config → endpoint, as on SageMaker. Creating → InService (or Failed).

        With ``CHURN_REQUIRE_APPROVAL=1`` a trained model is deployed only as one of its Approved
        registry versions (the newest)."""
        check_name(endpoint_name, "endpoint name")  # before anything is looked up
        trained = self.get_model(model)
        version = None
        if self.settings.require_approval:
            approved = [v for v in self.registry.versions_of_model(trained["name"]) if v.status == APPROVED]
            if not approved:
                raise ConflictError(
                    f"Only approved model versions can be deployed here (CHURN_REQUIRE_APPROVAL=1), and model "
                    f"{trained['name']} has none. Register it and approve the version on the Models page, "
                    "then deploy that version."
                )
            version = approved[-1]
        return self._deploy(trained, endpoint_name, instance_type, instance_count, wait, timeout, version)

    def _deploy(self, trained: dict, endpoint_name: str, instance_type: str | None, instance_count: int,
                wait: bool, timeout: float, version: ModelVersion | None) -> Endpoint:
        check_name(endpoint_name, "endpoint name")
        instance_type = instance_type or self.settings.endpoint_instance_type
        if not 1 <= int(instance_count) <= 8:
            raise ValidationError("Instance count must be between 1 and 8 (each instance is a worker process locally).")
        now = time.time()
        deployed = {
            "name": _suffixed(endpoint_name, "-model"),
            "model": trained["name"],
            "artifact_key": trained["artifact_key"],
            "artifact_sha256": trained["artifact_sha256"],
            "created_at": now,
            "grp": version.group if version else "",
            "version": version.version if version else None,
            "version_arn": version.arn if version else "",
            "threshold": version.threshold if version else trained.get("threshold"),
        }
        config = {
            "name": _suffixed(endpoint_name, "-config"),
            "deployed_model": deployed["name"],
            "instance_type": instance_type,
            "instance_count": int(instance_count),
            "created_at": now,
        }
        endpoint = {
            "name": endpoint_name,
            "backend": self.backend.name,
            "config": config["name"],
            "model": trained["name"],
            "status": "Creating",
            "instance_type": instance_type,
            "instance_count": int(instance_count),
            "created_at": now,
            "updated_at": now,
            "uid": uuid.uuid4().hex,  # this deploy's own: a later deploy of the name never takes its processes
        }
        try:
            with self.catalog.tx() as conn:
                check_free(conn, "endpoints", "endpoint", endpoint_name,
                           "Pick another name or delete the existing endpoint first.")
                for table, row in (
                    ("deployed_models", deployed),
                    ("endpoint_configs", config),
                    ("endpoints", endpoint),
                ):
                    conn.execute(
                        f"INSERT INTO {table} ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                        list(row.values()),
                    )
                served = f"{version.label} (model {trained['name']})" if version else f"model {trained['name']}"
                conn.execute("INSERT INTO endpoint_variants (config, variant, deployed_model, weight) "
                             "VALUES (?, 'AllTraffic', ?, 1.0)", (config["name"], deployed["name"]))
                self.catalog.event("endpoint", endpoint_name, f"Creating from {served}", conn)
                conn.execute("INSERT INTO endpoint_history (endpoint, variant, model, grp, version, started_at) "
                             "VALUES (?, 'AllTraffic', ?, ?, ?, ?)",
                             (endpoint_name, trained["name"], deployed["grp"], deployed["version"], now))
        except sqlite3.IntegrityError:
            raise ConflictError(
                f"An endpoint named {endpoint_name!r} (or its config or model) already exists. "
                "Pick another name or delete the existing endpoint first."
            ) from None
        uid = endpoint["uid"]
        try:
            fields = self.backend.create_endpoint(self._own_endpoint_row(endpoint_name, uid), config, deployed)
        except Exception as exc:
            gone = self.catalog.one("SELECT status FROM endpoints WHERE name = ? AND uid = ?", (endpoint_name, uid))
            if gone is None or gone["status"] == "Deleting":  # a delete took its folder from under it
                raise ConflictError(
                    f"Endpoint {endpoint_name!r} was deleted by another session while it was being deployed. "
                    "Deploy it again if you still want it.") from None
            self._forget_endpoint(endpoint_name, f"deploy failed and was rolled back: {exc}", uid)
            if isinstance(exc, ChurnError):
                raise
            raise BackendError(f"Could not deploy {endpoint_name}: {exc}") from exc
        if fields:
            cols = ", ".join(f"{key} = ?" for key in fields)
            with self.catalog.tx() as conn:
                conn.execute(f"UPDATE endpoints SET {cols} WHERE name = ? AND uid = ?",
                             [*fields.values(), endpoint_name, uid])
        if wait:
            return self.wait_for_endpoint(endpoint_name, timeout, uid)
        return self._endpoint(self._own_endpoint_row(endpoint_name, uid))

    def _own_endpoint_row(self, name: str, uid: str) -> dict:
        """The endpoint row this deploy made; ConflictError if another session deleted or replaced it."""
        row = self.catalog.one("SELECT * FROM endpoints WHERE name = ? AND uid = ?", (name, uid))
        if row is None:
            raise ConflictError(
                f"Endpoint {name!r} was deleted (or deleted and deployed again) by another session while it was "
                "being deployed. Deploy it again if you still want it."
            )
        return row

    def wait_for_endpoint(self, name: str, timeout: float = 120.0, uid: str | None = None) -> Endpoint:
        """Poll until the endpoint leaves Creating (or ``timeout``); ConflictError if it is deleted meanwhile."""
        deadline = time.monotonic() + timeout
        if uid is None:
            uid = self._endpoint_row(name).get("uid") or ""
        while True:
            ep = self._endpoint(self._own_endpoint_row(name, uid))
            if ep.status != "Creating" or time.monotonic() > deadline:
                return ep
            time.sleep(self.backend.poll_interval)

    def _endpoint_row(self, name: str) -> dict:
        row = self.catalog.one("SELECT * FROM endpoints WHERE name = ?", (name,))
        if row is None:
            raise NotFoundError(f"No endpoint named {name!r}. Deploy one on the Endpoints page.")
        return row

    def describe_endpoint(self, name: str) -> Endpoint:
        return self._endpoint(self._endpoint_row(name))

    def _endpoint(self, row: dict) -> Endpoint:
        if row["status"] == "Updating" and row.get("pending_config"):
            outcome, reason = self.backend.update_outcome(row)
            if outcome == "done":
                self._finish_update(row["name"], row.get("uid") or "")
            elif outcome == "failed":
                self._roll_back_update(row["name"], f"The update failed and was rolled back: {reason}. "
                                                    f"Still serving {', '.join(self._serving_labels(row['config']))}.",
                                       row.get("uid") or "")
            row = self._endpoint_row(row["name"])
        elif row["status"] in ENDPOINT_ACTIVE:
            fields = self.backend.refresh_endpoint(row)
            if fields:
                self.catalog.update("endpoints", row["name"], **fields, updated_at=time.time())
            row = self._endpoint_row(row["name"])
        stats = self.backend.endpoint_stats(row) if row["status"] in ("InService", "Updating") else {}
        per_variant = stats.get("variants") or {}
        variants = [{"variant": v["variant"], "weight": v["weight"], "model": v["deployed"]["model"],
                     "version": f"{v['deployed']['grp']} v{v['deployed']['version']}" if v["deployed"]["grp"] else "",
                     "threshold": v["deployed"]["threshold"], "stats": per_variant.get(v["variant"], {})}
                    for v in rollout.config_variants(self.catalog, row["config"])]
        return Endpoint.from_row(row, stats, variants)

    def endpoint_names(self) -> list[str]:
        """Endpoint names, newest first, straight from the catalog (no reconciliation: cheap for pickers)."""
        return [r["name"] for r in self.catalog.query("SELECT name FROM endpoints ORDER BY created_at DESC")]

    def list_endpoints(self) -> list[Endpoint]:
        return [self._endpoint(r) for r in self.catalog.query("SELECT * FROM endpoints ORDER BY created_at DESC")]

    def client_snippets(self, name: str) -> dict[str, str]:
        """Python and curl that call the endpoint with a typical customer of its model's training data."""
        from churn_core.endpoints.snippets import client_snippets

        ep = self.describe_endpoint(name)
        return client_snippets(self.backend, ep.name, ep.url, self.model_schema(ep.model))

    def endpoint_log(self, name: str, lines: int = 200) -> str:
        return self.backend.endpoint_log(self._endpoint_row(name), lines)

    def invoke(
        self, name: str, payload: Any, content_type: str = "application/json", accept: str = "application/json"
    ) -> Any:
        """Send a request as the seed did; returns the decoded JSON (or text for CSV answers)."""
        row = self._endpoint_row(name)
        body = encode_payload(payload, content_type)
        if self.backend.precheck_requests:
            self._check_request(row, body, content_type, accept)
        status, answer, answer_type = self.backend.invoke(row, body, content_type, accept)
        text = answer.decode("utf-8", errors="replace")
        if status >= 400:
            try:
                message = json.loads(text).get("error", text)
            except (ValueError, AttributeError):
                message = text or f"HTTP {status}"
            raise ValidationError(f"The endpoint rejected the request (HTTP {status}): {message}")
        return json.loads(text) if "json" in (answer_type or accept) else text

    def score_customer(self, endpoint: str, record: dict, reasons: int = 5) -> dict:
        """One customer through an endpoint with its top ``reasons``: the prediction, the risk band at the
        model's threshold, and the reasons (None, with ``reasons_note`` saying why, when the deployed
        model cannot explain: the customer is then scored without them)."""
        from churn_core.decisions.reasons import NO_REASONS

        model = self._endpoint_row(endpoint)["model"]
        note = ""
        try:
            answer = self.invoke(endpoint, {"instances": [record], "explain": int(reasons)})
        except ValidationError as exc:
            if NO_REASONS not in str(exc):
                raise
            answer = self.invoke(endpoint, {"instances": [record]})
            note = str(exc).split(": ", 1)[-1]
        prediction = answer["predictions"][0]
        threshold = self.model_threshold(model)
        return {"prediction": prediction, "threshold": threshold,
                "band": campaign.risk_band(float(prediction["churn_probability"]), threshold),
                "reasons": prediction.get("reasons"), "reasons_note": note}

    def _check_request(self, row: dict, body: bytes, content_type: str, accept: str) -> None:
        from churn_core.endpoints.request_check import check_request

        try:
            schema = self.model_schema(row["model"])
        except ChurnError:
            return  # no schema to check against (model record or artifact gone): let the endpoint decide
        check_request(body, content_type, accept, schema)

    def read_customers(self, data: bytes):
        """A CSV of customers to score (any encoding or delimiter an upload may have), every cell as text."""
        return read_customers(data, self.settings.max_upload_mb * 1024 * 1024)

    def score_batch(
        self, name: str, frame, chunk_size: int = 2000, progress: Callable[[float], None] | None = None,
        reasons: bool = True,
    ) -> BatchResult:
        """Score a table of customers in chunks; rows that cannot be scored are reported by row number. Each
        scored row gets its risk band at the model's threshold and, with ``reasons``, its top reason (asked
        of the endpoint as ``text/csv; explain=1``)."""
        model = self.describe_endpoint(name).model

        def send(body: str, explain: int) -> dict:
            return self.invoke(name, body, content_type=f"text/csv; explain={explain}" if explain else "text/csv")

        return score_frame(send, frame, self.model_schema(model), chunk_size, progress,
                           threshold=self.model_threshold(model), reasons=reasons)

    def delete_endpoint(self, name: str) -> dict:
        """Endpoint + endpoint config + model, as on SageMaker; the local process is stopped too."""
        row = self._endpoint_row(name)
        uid = row.get("uid") or ""
        with self.catalog.tx() as conn:
            conn.execute("UPDATE endpoints SET status = 'Deleting', updated_at = ? WHERE name = ? AND uid = ?",
                         (time.time(), name, uid))
            self.catalog.event("endpoint", name, "Deleting", conn)
        config = self.catalog.one("SELECT * FROM endpoint_configs WHERE name = ?", (row["config"],))
        deployed = [v["deployed"] for c in (row["config"], row["pending_config"]) if c
                    for v in rollout.config_variants(self.catalog, c)]
        try:
            self.backend.delete_endpoint(row, config, deployed)
        except Exception:
            with self.catalog.tx() as conn:
                conn.execute("UPDATE endpoints SET status = ?, updated_at = ? WHERE name = ? AND uid = ?",
                             (row["status"], time.time(), name, uid))
            raise
        return self._forget_endpoint(name, "deleted (endpoint, endpoint config and model)", uid)

    def _forget_endpoint(self, name: str, message: str, uid: str | None = None) -> dict:
        """Remove the endpoint's rows (only the deploy ``uid``'s, when given: never a newer deploy of the name)."""
        removed = {"endpoint": name, "endpoint_config": None, "model": None}
        with self.catalog.tx() as conn:
            row = conn.execute("SELECT config, pending_config, uid FROM endpoints WHERE name = ?", (name,)).fetchone()
            if uid is not None and (row is None or row["uid"] != uid):
                return removed  # another session already removed it (and maybe deployed the name again)
            if row:
                if row["pending_config"]:
                    rollout.delete_config(conn, row["pending_config"])
                if conn.execute("SELECT 1 FROM endpoint_configs WHERE name = ?", (row["config"],)).fetchone():
                    models = rollout.delete_config(conn, row["config"])
                    removed.update(endpoint_config=row["config"], model=", ".join(models) or None)
            conn.execute("DELETE FROM endpoints WHERE name = ?", (name,))
            conn.execute("UPDATE endpoint_history SET ended_at = ? WHERE endpoint = ? AND ended_at IS NULL",
                         (time.time(), name))
            self.catalog.event("endpoint", name, message, conn)
        return removed

    def cleanup(self) -> list[dict]:
        """Delete every endpoint this app created (on AWS: found by tag); report what was removed."""
        names = set(self.backend.owned_endpoint_names())
        names |= {r["name"] for r in self.catalog.query("SELECT name FROM endpoints")}
        removed = []
        for name in sorted(names):
            try:
                removed.append(self.delete_endpoint(name))
            except NotFoundError:
                removed.append(self.backend.delete_orphan(name))
        return removed

    # ---- decisions: campaign planner, thresholds, evaluation on new data -----------------------
    def _loaded_model(self, model: str) -> dict:
        from churn_core.decisions.model_runtime import load_model

        row = self.get_model(model)
        return load_model(self.store, row["artifact_key"], row["artifact_sha256"])

    def test_predictions(self, model: str) -> tuple:
        """(outcomes, churn probabilities) of the model's held-out test customers, scored in this process."""
        from churn_core.decisions.model_runtime import labelled_scores, read_text

        row = self.get_model(model)
        key = f"test:{row['artifact_sha256']}"
        if key not in self._evaluations:
            try:
                ds = self.get_dataset(row["dataset"])
            except NotFoundError:
                raise NotFoundError(
                    f"The dataset {row['dataset']!r} model {model} was trained on was deleted, so its held-out "
                    "customers are gone. Evaluate it on a labelled file instead.") from None
            text = read_text(self.store.get_bytes(ds.test_key))
            self._evaluations[key] = labelled_scores(self._loaded_model(model), text, "the test split")
        return self._evaluations[key]

    def plan_campaign(self, model: str, offer_cost: float = campaign.DEFAULT_OFFER_COST,
                      customer_value: float = campaign.DEFAULT_CUSTOMER_VALUE,
                      save_rate: float = campaign.DEFAULT_SAVE_RATE,
                      budget: int | None = None) -> campaign.CampaignPlan:
        """The threshold that maximises expected retention profit on the model's held-out customers."""
        y, p = self.test_predictions(model)
        return campaign.plan(y, p, offer_cost, customer_value, save_rate, budget)

    def set_threshold(self, model: str, threshold: float, note: str | None = None,
                      plan: campaign.CampaignPlan | None = None) -> float:
        """Store the decision threshold with the model: every label it produces from then on uses it
        (endpoints deployed from it, batch transform output, versions registered from it, the pages)."""
        import getpass

        threshold = float(threshold)
        if not 0.0 <= threshold <= 1.0:
            raise ValidationError(f"A threshold is a probability between 0 and 1 (got {threshold}).")
        row = self.get_model(model)
        record = {"set_at": time.time(), "set_by": getpass.getuser(), "note": note or ""}
        if plan is not None:
            record["campaign"] = {"offer_cost": plan.offer_cost, "customer_value": plan.customer_value,
                                  "save_rate": plan.save_rate, "budget": plan.budget,
                                  "contacted": plan.contacted, "recall": plan.recall, "precision": plan.precision,
                                  "expected_profit": plan.expected_profit, "customers": plan.customers}
        with self.catalog.tx() as conn:
            conn.execute("UPDATE models SET threshold = ?, threshold_json = ? WHERE name = ?",
                         (threshold, dumps(record), row["name"]))
            self.catalog.event("job", row["name"], f"decision threshold set to {threshold:.4f}"
                               + (f": {note}" if note else ""), conn)
        return threshold

    def threshold_record(self, model: str) -> dict:
        """Who chose the model's threshold, when, and with which campaign inputs ({} when never chosen)."""
        return loads(self.get_model(model).get("threshold_json"), {}) or {}

    def evaluate(self, model: str, data) -> dict:
        """The model on a new labelled file (CSV bytes, a path, or a DataFrame of text): the training
        evaluation's metrics and curves, plus the campaign figures at its threshold, beside the test split's."""
        from churn_core.decisions.model_runtime import labelled_scores

        if isinstance(data, (str, Path)):
            data = Path(data).read_bytes()
        text = data if hasattr(data, "columns") else self.read_customers(data)
        y, p = labelled_scores(self._loaded_model(model), text, "the file")
        if len(set(y.tolist())) < 2:
            raise ValidationError("The file's customers all have the same outcome; evaluation needs some who "
                                  "churned and some who stayed.")
        evaluation = entry_module("model_evaluation")
        threshold = self.model_threshold(model)
        metrics, curves = evaluation.evaluate(y, p, y, threshold)
        metrics.pop("train_churn_rate", None)
        try:  # the test split at the same threshold, so label-based figures compare like with like
            y_test, p_test = self.test_predictions(model)
            test_metrics = evaluation.evaluate(y_test, p_test, y_test, threshold)[0]
            test_metrics.pop("train_churn_rate", None)
        except NotFoundError:  # its dataset was deleted: what training measured (at 0.5)
            test_metrics = self.describe_training(model).metrics
        return {"rows": int(len(y)), "threshold": threshold, "metrics": metrics, "curves": curves,
                "confusion_matrix": campaign.confusion_at(y, p, threshold),
                "gains": campaign.gains_by_decile(y, p), "test_split_metrics": test_metrics}

    # ---- safe rollout: updates, champion/challenger variants ------------------------------------
    def update_endpoint(self, endpoint: str, group: str, version_or_alias: int | str) -> Endpoint:
        """Put another Approved version behind a live endpoint (all its traffic) without taking it down:
        Updating → InService; if the new model cannot serve, the old one keeps serving and says why."""
        version = self._approved(group, version_or_alias)
        plan = rollout.VariantPlan("AllTraffic", self.get_model(version.model), 1.0, version)
        return self._move_endpoint(endpoint, [plan])

    def set_variants(self, endpoint: str, variants: list[tuple]) -> Endpoint:
        """Serve several Approved versions side by side with weights, e.g. ``[("subs", "champion", 90),
        ("subs", "challenger", 10)]``. Only the weights changed: changed in place, else an update."""
        if not variants:
            raise ValidationError("Give at least one (group, version, weight) to serve.")
        plans, names = [], set()
        for group, version_or_alias, weight in variants:
            weight = float(weight)
            if not (weight >= 0 and weight == weight):
                raise ValidationError(f"A variant's weight is a number ≥ 0 (got {weight!r}).")
            version = self._approved(group, version_or_alias)
            name = rollout.variant_name(version.group, version.version)
            if name in names:
                raise ValidationError(f"{version.label} is listed twice; give each version once.")
            names.add(name)
            plans.append(rollout.VariantPlan(name, self.get_model(version.model), weight, version))
        if not any(p.weight > 0 for p in plans):
            raise ValidationError("At least one variant needs a weight above 0, or nothing would answer.")
        row = self._endpoint_row(endpoint)
        current = rollout.config_variants(self.catalog, row["config"])
        if sorted(v["variant"] for v in current) == sorted(names) and all(
                next(v for v in current if v["variant"] == p.name)["deployed"]["artifact_sha256"]
                == p.trained["artifact_sha256"] for p in plans):
            return self._set_weights(row, {p.name: p.weight for p in plans})
        return self._move_endpoint(endpoint, plans)

    def promote_challenger(self, endpoint: str) -> Endpoint:
        """Make the challenger the champion: it takes the alias and all the traffic (an update with zero
        failed requests); the former champion stops serving."""
        row = self._endpoint_row(endpoint)
        current = [v for v in rollout.config_variants(self.catalog, row["config"]) if v["deployed"]["grp"]]
        if len(current) < 2:
            raise ConflictError(f"Endpoint {endpoint} serves one version; a challenger needs a second variant "
                                "(set variants with a champion and a challenger first).")
        group = current[0]["deployed"]["grp"]
        challengers = [v for v in current if "challenger" in
                       self.registry.get(v["deployed"]["grp"], v["deployed"]["version"]).aliases]
        challenger = challengers[0] if challengers else min(current, key=lambda v: v["weight"])
        version = challenger["deployed"]["version"]
        self.registry.set_alias(challenger["deployed"]["grp"] or group, version, "champion")
        self.registry.clear_alias(challenger["deployed"]["grp"] or group, "challenger")
        return self.update_endpoint(endpoint, challenger["deployed"]["grp"] or group, version)

    def _set_weights(self, row: dict, weights: dict[str, float]) -> Endpoint:
        self.backend.set_variant_weights(row, weights)
        with self.catalog.tx() as conn:
            if conn.execute("SELECT 1 FROM endpoints WHERE name = ? AND uid = ? AND config = ?",
                            (row["name"], row.get("uid") or "", row["config"])).fetchone() is None:
                raise ConflictError(f"Endpoint {row['name']} was deleted, deployed again or updated by another session "
                                    "meanwhile; look at it again before changing its weights.")
            for name, weight in weights.items():
                conn.execute("UPDATE endpoint_variants SET weight = ? WHERE config = ? AND variant = ?",
                             (weight, row["config"], name))
            self.catalog.event("endpoint", row["name"], "variant weights: " + ", ".join(
                f"{n} {w:g}" for n, w in weights.items()), conn)
        return self.describe_endpoint(row["name"])

    def _move_endpoint(self, name: str, plans: list) -> Endpoint:
        """An update keeps the endpoint's row and its uid (its deploy, folder and processes stay the same): only
        its configuration, generation and pending configuration change, so its supervisor keeps serving."""
        row = self._endpoint_row(name)
        uid = row.get("uid") or ""
        if row["status"] != "InService":
            raise ConflictError(f"Endpoint {name} is {row['status']}; only an InService endpoint can be updated.")
        generation = int(row.get("generation") or 1) + 1
        old_labels = ", ".join(self._serving_labels(row["config"]))
        new_labels = ", ".join(f"{p.label} ({p.weight:g})" for p in plans)
        try:
            with self.catalog.tx() as conn:
                config = rollout.insert_config(conn, name, generation, plans, row["instance_type"],
                                               row["instance_count"], f"-{generation}")
                moved = conn.execute(
                    "UPDATE endpoints SET status = 'Updating', pending_config = ?, generation = ?, "
                    "failure_reason = '', updated_at = ? WHERE name = ? AND uid = ? AND status = 'InService'",
                    (config["name"], generation, time.time(), name, uid)).rowcount
                if not moved:
                    raise ConflictError(f"Endpoint {name} was deleted, deployed again or changed by another session "
                                        "meanwhile; look at it again and retry the update.")
                self.catalog.event("endpoint", name, f"Updating from {old_labels} to {new_labels}", conn)
        except sqlite3.IntegrityError:
            raise ConflictError(f"Endpoint {name} is being updated elsewhere at the same moment; try again.") from None
        try:
            fields = self.backend.update_endpoint(self._own_endpoint_row(name, uid), config,
                                                  rollout.config_variants(self.catalog, config["name"]))
        except ChurnError as exc:
            self._roll_back_update(name, f"Update to {new_labels} failed and was rolled back: {exc}. "
                                         f"Still serving {old_labels}.", uid)
            raise BackendError(f"Endpoint {name} was not updated: {exc}. It keeps serving {old_labels}.") from None
        if fields.get("update") == "done":
            self._finish_update(name, uid)
        return self.describe_endpoint(name)

    def _serving_labels(self, config: str) -> list[str]:
        return [f"{v['deployed']['grp']} v{v['deployed']['version']}" if v["deployed"]["grp"]
                else f"model {v['deployed']['model']}" for v in rollout.config_variants(self.catalog, config)]

    def _finish_update(self, name: str, uid: str) -> None:
        """The endpoint serves its pending configuration: the old one goes, the history records the change
        (only for the deploy ``uid``: a later deploy of the name is never touched)."""
        now = time.time()
        with self.catalog.tx() as conn:
            row = conn.execute("SELECT * FROM endpoints WHERE name = ? AND uid = ?", (name, uid)).fetchone()
            if row is None or not row["pending_config"]:
                return
            new = rollout.config_variants(self.catalog, row["pending_config"], conn)
            retired = rollout.delete_config(conn, row["config"], keep_models={v["deployed"]["name"] for v in new})
            self.backend.retire_config(row["config"], retired)
            top = rollout.primary(new)["deployed"]
            conn.execute("UPDATE endpoints SET config = ?, pending_config = '', model = ?, status = 'InService', "
                         "failure_reason = '', updated_at = ? WHERE name = ? AND uid = ?",
                         (row["pending_config"], top["model"], now, name, uid))
            conn.execute("UPDATE endpoint_history SET ended_at = ? WHERE endpoint = ? AND ended_at IS NULL",
                         (now, name))
            for v in new:
                conn.execute("INSERT INTO endpoint_history (endpoint, variant, model, grp, version, weight, started_at)"
                             " VALUES (?, ?, ?, ?, ?, ?, ?)", (name, v["variant"], v["deployed"]["model"],
                                                               v["deployed"]["grp"], v["deployed"]["version"],
                                                               v["weight"], now))
            self.catalog.event("endpoint", name, "InService: now serving " + ", ".join(
                f"{v['variant']} ({v['weight']:g})" for v in new), conn)

    def _roll_back_update(self, name: str, reason: str, uid: str) -> None:
        """Back to the configuration the endpoint serves (only the deploy ``uid``'s rows: if the endpoint was
        deleted, or deleted and deployed again, meanwhile, there is nothing of this update left to undo)."""
        with self.catalog.tx() as conn:
            row = conn.execute("SELECT * FROM endpoints WHERE name = ? AND uid = ?", (name, uid)).fetchone()
            if row is None or not row["pending_config"]:
                return
            keep = {v["deployed"]["name"] for v in rollout.config_variants(self.catalog, row["config"], conn)}
            rollout.delete_config(conn, row["pending_config"], keep_models=keep)
            conn.execute("UPDATE endpoints SET pending_config = '', status = 'InService', failure_reason = ?, "
                         "updated_at = ? WHERE name = ? AND uid = ?", (reason, time.time(), name, uid))
            self.catalog.event("endpoint", name, reason, conn)

    def endpoint_traffic(self, name: str):
        """Invocations, errors and mean latency per minute of an endpoint (a DataFrame, oldest first)."""
        import pandas as pd

        rows = self.backend.endpoint_traffic(self._endpoint_row(name))
        frame = pd.DataFrame(rows, columns=["minute", "invocations", "errors", "latency_ms"])
        frame["minute"] = pd.to_datetime(frame["minute"], unit="s", utc=True)
        return frame

    # ---- monitoring: data capture, drift reports, schedules -------------------------------------
    def set_capture(self, endpoint: str, percent: float) -> Endpoint:
        """Capture ``percent`` % of the endpoint's requests and answers (0 turns capture off at once)."""
        percent = float(percent)
        if not 0.0 <= percent <= 100.0:
            raise ValidationError(f"The capture share is a percentage from 0 to 100 (got {percent:g}).")
        row = self._endpoint_row(endpoint)
        if row["status"] != "InService":
            raise ConflictError(f"Endpoint {endpoint} is {row['status']}; capture can be set on an InService endpoint.")
        if percent:
            self.monitoring.note_capture(endpoint, row["model"], percent)
        if not self.backend.capture_by_update:
            self.backend.set_capture(row, percent)  # in place, effective when this returns
        with self.catalog.tx() as conn:
            conn.execute("UPDATE endpoints SET capture_percent = ?, updated_at = ? WHERE name = ? AND uid = ?",
                         (percent, time.time(), endpoint, row.get("uid") or ""))
            self.catalog.event("endpoint", endpoint, f"data capture {'off' if not percent else f'{percent:g} %'}",
                               conn)
        if self.backend.capture_by_update:  # SageMaker: the same variants in a configuration with DataCaptureConfig
            current = rollout.config_variants(self.catalog, row["config"])
            plans = [rollout.VariantPlan(v["variant"], self.get_model(v["deployed"]["model"]), v["weight"],
                                         self.registry.get(v["deployed"]["grp"], v["deployed"]["version"])
                                         if v["deployed"]["grp"] else None) for v in current]
            return self._move_endpoint(endpoint, plans)
        return self.describe_endpoint(endpoint)

    def captured(self, endpoint: str, since: float | None = None):
        """The customers an endpoint's captured requests held: features, churn probability, time, variant."""
        return self.monitoring.captured(endpoint, since=since)

    def drift_report(self, endpoint: str | None = None, data=None, model: str | None = None,
                     since: float | None = None, thresholds: dict | None = None):
        """Per feature and measure (PSI, KS, L-infinity, unseen, missing, prediction shift): value, threshold,
        drifted; captured data of ``endpoint`` (from ``since``) or a file ``data``, against the model's baseline."""
        return self.monitoring.report(endpoint=endpoint, data=data, model=model, since=since, thresholds=thresholds)

    def drift_badge(self, endpoint: str) -> str:
        """One word for the endpoint's latest drift report: "drift: A, B", "no drift" or "—" (none yet)."""
        row = self.catalog.one("SELECT drifted_json FROM drift_reports WHERE endpoint = ? ORDER BY id DESC LIMIT 1",
                               (endpoint,))
        if row is None:
            return "—"
        drifted = loads(row["drifted_json"], [])
        return f"drift: {', '.join(drifted)}" if drifted else "no drift"

    def drift_history(self, endpoint: str, limit: int = 100) -> list[dict]:
        return self.monitoring.history(endpoint, limit)

    def baseline(self, model: str) -> dict:
        return self.monitoring.baseline(model)

    def schedule_monitoring(self, endpoint: str, every_minutes: float) -> dict:
        """Run a drift report on the newest captured window every ``every_minutes`` (0 removes the schedule)."""
        self._endpoint_row(endpoint)
        every = float(every_minutes)
        if every and not 0.05 <= every <= 7 * 24 * 60:
            raise ValidationError("A schedule runs every 3 seconds (0.05 minutes) to every 7 days (0 removes it).")
        old = self.catalog.one("SELECT pid FROM monitoring_schedules WHERE endpoint = ?", (endpoint,))
        with self.catalog.tx() as conn:
            conn.execute("DELETE FROM monitoring_schedules WHERE endpoint = ?", (endpoint,))
            if every:
                conn.execute("INSERT INTO monitoring_schedules (endpoint, every_minutes, created_at) VALUES (?, ?, ?)",
                             (endpoint, every, time.time()))
            self.catalog.event("endpoint", endpoint, f"drift report every {every:g} min" if every else
                               "drift schedule removed", conn)
        if old and old["pid"]:
            from churn_core.processes.detached import kill_group

            kill_group(old["pid"], grace=2.0)
        if every:
            self._start_schedule(endpoint)
        return self.catalog.one("SELECT * FROM monitoring_schedules WHERE endpoint = ?", (endpoint,)) or {}

    def _start_schedule(self, endpoint: str) -> None:
        from churn_core.processes.detached import spawn_detached

        log = self.settings.home / "monitoring" / f"{endpoint}.log"
        pid = spawn_detached(["-m", "churn_core.monitoring.monitor_driver", "--home", str(self.settings.home),
                              "--endpoint", endpoint], log)
        with self.catalog.tx() as conn:
            conn.execute("UPDATE monitoring_schedules SET pid = ? WHERE endpoint = ?", (pid, endpoint))

    def _reconcile_schedules(self) -> None:
        """A schedule whose process is gone (killed, machine restarted) gets a new one."""
        from churn_core.processes.detached import is_alive

        for row in self.catalog.query("SELECT endpoint, pid FROM monitoring_schedules"):
            if not is_alive(row["pid"], "monitor_driver"):
                self._start_schedule(row["endpoint"])

    # ---- model registry --------------------------------------------------------------------
    def register(self, model: str, group: str | None = None, note: str | None = None) -> ModelVersion:
        """The next version of a model group (default: one group per dataset) for a trained model, with
        its metrics, hyperparameters, dataset and code hashes, artifact hash and decision threshold."""
        trained = self.get_model(model)
        return self.registry.register(trained, (group or trained["dataset"]).strip(), note or "",
                                      trained.get("threshold"))

    def approve(self, group: str, version: int | str, note: str = "") -> ModelVersion:
        return self.registry.set_status(group, version, APPROVED, note)

    def reject(self, group: str, version: int | str, note: str = "") -> ModelVersion:
        return self.registry.set_status(group, version, REJECTED, note)

    def set_alias(self, group: str, version: int | str, alias: str) -> ModelVersion:
        return self.registry.set_alias(group, version, alias)

    def list_versions(self, group: str) -> list[ModelVersion]:
        return self.registry.versions(group)

    def get_version(self, group: str, version_or_alias: int | str) -> ModelVersion:
        return self.registry.get(group, version_or_alias)

    def model_groups(self) -> list[dict]:
        return self.registry.groups()

    def versions_of_model(self, model: str) -> list[ModelVersion]:
        return self.registry.versions_of_model(model)

    def _approved(self, group: str, version_or_alias: int | str) -> ModelVersion:
        version = self.registry.get(group, version_or_alias)
        if version.status != APPROVED:
            raise ConflictError(f"{version.label} is {version.status}: only Approved versions can be deployed or put "
                                "behind an endpoint. Approve it on the Models page first (with a note).")
        return version

    def deploy_version(self, group: str, version_or_alias: int | str, endpoint_name: str,
                       instance_type: str | None = None, instance_count: int = 1, wait: bool = True,
                       timeout: float = 120.0) -> Endpoint:
        """Deploy an Approved registry version (by number or alias) as a new endpoint."""
        check_name(endpoint_name, "endpoint name")
        version = self._approved(group, version_or_alias)
        trained = self.get_model(version.model)
        return self._deploy(trained, endpoint_name, instance_type, instance_count, wait, timeout, version)

    def lineage(self, group: str) -> list[dict]:
        """dataset → training job → version → the endpoints (and variants) serving it now and before."""
        rows = []
        for v in self.registry.versions(group):
            served = self.catalog.query(
                "SELECT endpoint, variant, weight, started_at, ended_at FROM endpoint_history "
                "WHERE model = ? AND (grp = ? AND version = ? OR grp = '') ORDER BY started_at",
                (v.model, v.group, v.version))
            rows.append({"dataset": v.dataset, "dataset_sha256": v.dataset_sha256, "job": v.model,
                         "version": v.version, "label": v.label, "status": v.status, "endpoints": served})
        return rows
    # ---- tuning (issue 19): hyperparameter tuning jobs; the rules live in churn_core/tuning.py ----------------------
    @functools.cached_property
    def tuning(self):
        from churn_core.tuning.service import TuningService

        return TuningService(self.catalog, self.backend, self.datasets)

    def start_tuning(self, dataset: str, ranges: dict, objective: str = "roc_auc", max_trials: int = 20,
                     max_parallel: int | None = None, strategy: str = "bayesian", algorithm: str = "random_forest",
                     name: str | None = None, seed: int = 0, max_seconds: float | None = None,
                     instance_type: str | None = None):
        """Search ``ranges`` of ``algorithm``'s hyperparameters for the best ``objective`` within the budget; each
        trial is a training job ``<name>-NNN``. Returns the TuningJob (``.name``, ``.status``, counts, best)."""
        return self.tuning.start(dataset, ranges, objective=objective, max_trials=max_trials,
                                 max_parallel=max_parallel, strategy=strategy, algorithm=algorithm, name=name,
                                 seed=seed, max_seconds=max_seconds, instance_type=instance_type)

    def describe_tuning(self, name: str):
        """``.status``, ``.trials_completed``/``_failed``/``_stopped``, ``.best_job``, ``.best_objective``."""
        return self.tuning.describe(name)

    def tuning_trials(self, name: str):
        """A DataFrame, a row per trial: trial, job, status, objective, hyperparameters, best, seconds, reason."""
        return self.tuning.trials(name)

    def stop_tuning(self, name: str):
        """Stop the search and its running trials; finished trials (and the best so far) are kept."""
        return self.tuning.stop(name)

    def delete_tuning(self, name: str) -> None:
        self.tuning.delete(name)

    def list_tuning_jobs(self, limit: int = 50):
        return self.tuning.list(limit)

    def tuning_names(self, limit: int = 100) -> list[str]:
        return self.tuning.names(limit)

    def tuning_log(self, name: str, lines: int = 200) -> str:
        return self.tuning.log(name, lines)

    def tuning_objectives(self) -> dict[str, str]:
        """Objectives this backend can tune: name → label."""
        return self.tuning.objective_choices()

    def default_tuning_ranges(self, algorithm: str) -> dict:
        return hp.default_ranges(algorithm)

    # ---- batch transform jobs (rules in churn_core/transforms.py; the backends run them) ---------------
    def start_transform(self, model: str, data, name: str | None = None, keep_columns: list[str] | None = None,
                        instance_count: int | None = None, *, file_name: str | None = None,
                        reasons: bool = False) -> TransformJob:
        """Score a whole CSV with a trained model into the bucket. ``data``: CSV bytes, a path to a CSV file on
        this machine, or a key in the bucket (a stored dataset's part, a file put there before). The job runs
        detached: ``describe_transform`` follows it, ``transform_output`` reads its results. With ``reasons``
        each result line also gets its top reason (``top_reason``: exact Saabas or linear SHAP, about 65 us
        a line more for a 100-tree forest, so off by default)."""
        from churn_core.names import timestamp
        from churn_core.transform.rules import TransformInputError, clean_keep_columns, input_key

        trained = self.get_model(model)
        schema = self.model_schema(trained["name"])
        keep = clean_keep_columns(keep_columns)
        kind, source = self._transform_source(data)
        count = self.backend.default_transform_instances() if instance_count is None else instance_count
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 64:
            raise ValidationError(f"instance_count must be a whole number from 1 to 64 (got {instance_count!r}).")
        auto_named = not name
        name = check_name(name or _suffixed(trained["name"], f"-batch-{timestamp()}"), "transform job name")
        now = time.time()
        label = file_name or {"bytes": "uploaded file", "path": Path(str(source)).name}.get(kind, source)
        threshold = self.model_threshold(model)

        def make_row(name: str) -> dict:
            return {
                "name": name, "backend": self.backend.name, "model": trained["name"], "status": "InProgress",
                "input_key": source if kind == "key" else input_key(name, Path(str(source)).name if kind == "path"
                                                                    else file_name),
                "input_label": str(label), "keep_columns_json": dumps(keep), "threshold": threshold,
                "instance_type": self.backend.transform_instance_type(), "instance_count": count, "created_at": now,
                "reasons": int(bool(reasons)), "updated_at": now,
            }

        row = self._insert_named("transforms", "transform job", name, make_row, auto_named,
                                 ("transform", f"submitted: model {trained['name']} on {label}"), "Pick another name.")
        name = row["name"]
        try:
            if kind == "bytes":
                self.store.put_bytes(row["input_key"], bytes(source))
            elif kind == "path":
                self.store.put_file(row["input_key"], Path(source))
            fields = self.backend.start_transform(self._transform_row(name), trained, schema)
        except TransformInputError as exc:  # the file cannot be scored at all: the job fails, naming why
            self._fail_transform(name, str(exc))
            return self.describe_transform(name)
        except ChurnError as exc:
            self._fail_transform(name, str(exc))
            raise
        except Exception as exc:
            self._fail_transform(name, f"could not start: {exc}")
            raise BackendError(f"Could not start transform job {name}: {exc}") from exc
        if fields:
            self.catalog.update("transforms", name, **fields)
        return self.describe_transform(name)

    def _transform_source(self, data) -> tuple[str, Any]:
        if isinstance(data, (bytes, bytearray, memoryview)):
            if not len(data):
                raise ValidationError("The data to score is empty; give a CSV file with a header and customers.")
            return "bytes", data
        if isinstance(data, (str, Path)) and str(data).strip():
            path = Path(data).expanduser()
            if path.is_file():
                return "path", path
            if isinstance(data, str):
                try:
                    if self.store.exists(data.strip("/")):
                        return "key", data.strip("/")
                except ValidationError:
                    pass
        shown = repr(data)[:80] if isinstance(data, (str, Path)) else type(data).__name__
        raise ValidationError(f"Give the data to score as CSV bytes, the path of a CSV file on this machine, or a key "
                              f"in the bucket (e.g. a dataset's datasets/<name>/test/test.csv); {shown} is none of "
                              "these.")

    def _transform_row(self, name: str) -> dict:
        row = self.catalog.one("SELECT * FROM transforms WHERE name = ?", (name,))
        if row is None:
            raise NotFoundError(f"No transform job named {name!r}. See the Batch page for the list.")
        return row

    def _fail_transform(self, name: str, reason: str) -> None:
        self.catalog.update("transforms", name, status="Failed", failure_reason=reason, ended_at=time.time(),
                            updated_at=time.time())
        self.catalog.event("transform", name, f"Failed: {reason}")

    def _refresh_transform(self, row: dict) -> dict:
        if row["status"] in TRANSFORM_ACTIVE:
            fields = self.backend.refresh_transform(row)
            if fields:
                self.catalog.update("transforms", row["name"], **fields, updated_at=time.time())
            row = self._transform_row(row["name"])
        return row

    def describe_transform(self, name: str) -> TransformJob:
        """``.status`` (InProgress, Completed, Failed, Stopping, Stopped), ``.rows_in``, ``.rows_scored``,
        ``.rows_failed``, ``.output_key``, ``.errors_key``, ``.failure_reason`` (and progress while it runs)."""
        return TransformJob.from_row(self._refresh_transform(self._transform_row(name)))

    def list_transforms(self, limit: int = 100, offset: int = 0) -> list[TransformJob]:
        rows = self.catalog.query("SELECT * FROM transforms ORDER BY created_at DESC, rowid DESC LIMIT ? OFFSET ?",
                                  (limit, offset))
        return [TransformJob.from_row(self._refresh_transform(r)) for r in rows]

    def stop_transform(self, name: str) -> TransformJob:
        row = self._refresh_transform(self._transform_row(name))
        if row["status"] not in TRANSFORM_ACTIVE:
            raise ConflictError(f"Transform job {name} is {row['status']}; only a running job can be stopped.")
        self.catalog.update("transforms", name, status="Stopping", updated_at=time.time())
        self.catalog.event("transform", name, "stop requested")
        fields = self.backend.stop_transform(self._transform_row(name))
        if fields:
            self.catalog.update("transforms", name, **fields, updated_at=time.time())
        return self.describe_transform(name)

    def transform_log(self, name: str, lines: int = 200) -> str:
        return self.backend.transform_log(self._transform_row(name), lines)

    def _transform_file(self, name: str, which: str):
        job = self.describe_transform(name)
        key = job.output_key if which == "results" else job.errors_key
        if which == "results" and job.status != "Completed":
            raise ConflictError(f"Transform job {name} is {job.status}; results exist once it is Completed.")
        if not key:
            raise NotFoundError(f"Transform job {name} has no {which} file ({job.status}).")
        local_path = getattr(self.store, "path", None)
        if local_path is not None:
            return open(local_path(key), "rb")
        return io.BytesIO(self.store.get_bytes(key))

    def transform_output(self, name: str):
        """The results of a Completed transform job as a DataFrame, in input order: ``line``, the kept columns,
        ``churn_probability``, ``predicted_churn``, ``risk`` (high / medium / low at the job's threshold),
        ``warnings`` and, when asked, ``top_reason``."""
        from churn_core.transform.rules import read_results, with_risk

        threshold = self.describe_transform(name).threshold
        with self._transform_file(name, "results") as fh:
            return with_risk(read_results(fh), threshold)

    def transform_errors(self, name: str):
        """The lines a transform job could not score: ``line`` (in the input) and ``problem``."""
        from churn_core.transform.rules import read_errors

        with self._transform_file(name, "errors") as fh:
            return read_errors(fh)

    def transform_summary(self, name: str, top: int = 1000):
        """Counts, a probability histogram and the ``top`` riskiest rows with their risk bands, read in chunks
        (any size of result)."""
        from churn_core.transform.rules import result_chunks, summarise, with_risk

        key = f"summary:{name}:{top}"
        if key not in self._evaluations:
            threshold = self.describe_transform(name).threshold
            with self._transform_file(name, "results") as fh:
                summary = summarise(result_chunks(fh), top)
            if len(summary.riskiest):
                with_risk(summary.riskiest, threshold)
            self._evaluations[key] = summary
        return self._evaluations[key]

    def transform_download(self, name: str, which: str = "results") -> bytes:
        """results.csv (with the risk band, as ``transform_output``) or errors.csv as bytes for a download, with
        spreadsheet formulas escaped."""
        from churn_core.transform.rules import csv_chunks, download_csv, with_risk

        if which not in ("results", "errors"):
            raise ValidationError("which must be 'results' or 'errors'.")
        threshold = self.describe_transform(name).threshold
        with self._transform_file(name, which) as fh:
            chunks = csv_chunks(fh)
            if which == "results":
                chunks = (with_risk(chunk, threshold) for chunk in chunks)
            return download_csv(chunks)

    # ---- misc ----------------------------------------------------------------------------
    def events(self, kind: str | None = None, name: str | None = None, limit: int = 200) -> list[dict]:
        return self.catalog.events(kind, name, limit)

    def check_connection(self) -> list[tuple[str, bool, str]]:
        return self.backend.check_connection()

    # ---- the catalog's health, backups and repair (catalog_health / catalog_repair) ---------------------
    def catalog_health(self):
        """``catalog_repair.CatalogHealth``: whether churn.db passes its integrity check, and the last backup."""
        from churn_core.catalog.repair import diagnose

        return diagnose(self.settings.home)

    def backup_catalog(self):
        """Back the catalog up now (``backups/churn-latest.db``); its path, or None if it could not be made."""
        return self.catalog.backup(force=True)

    def restore_catalog_backup(self):
        """Restore the last good backup (plus what was made after it, found on disk): a ``RepairReport``."""
        from churn_core.catalog.repair import restore_backup

        report = restore_backup(self.settings.home, self.settings.bucket if self.backend.name == "local" else None)
        self._evaluations.clear()
        return report

    def rebuild_catalog(self):
        """Rebuild the catalog from what the old file still gives up and what is on disk: a ``RepairReport``."""
        from churn_core.catalog.repair import rebuild

        report = rebuild(self.settings.home, self.settings.bucket if self.backend.name == "local" else None)
        self._evaluations.clear()
        return report

    # ---- what a score rests on (issue 13) ----------------------------------------------------
    def row_warnings(self, model: str, records: list[dict]) -> list[list[str]]:
        """For each named record, what the model would have to guess to score it (a missing value filled
        in, a number outside the training range, a category never seen): the rule batch scoring uses."""
        from churn_core.endpoints.scoring import record_warnings

        return record_warnings(records, self.model_schema(model))

    def field_warnings(self, model: str, record: dict) -> dict[str, str]:
        """``row_warnings`` of one record, by feature name (the one-customer form notes each field)."""
        from churn_core.endpoints.scoring import field_warnings

        return field_warnings(record, self.model_schema(model))
