"""The platform: the one object pages and notebooks use (``churn_core.connect()``).

It owns the catalog records and the rules (names, states, transactions); the backend acts on
the world. Every read of an active job or endpoint reconciles it with reality first.
"""

from __future__ import annotations

import io
import json
import sqlite3
import time
from pathlib import Path
from typing import Any, Callable

from . import hyperparameters as hp
from .artifacts import read_json_member, verify_sha256
from .backends import make_backend
from .config import Settings
from .datasets import DatasetService
from .db import Catalog, dumps
from .errors import BackendError, ChurnError, ConflictError, NotFoundError, ValidationError
from .names import check_name, default_job_name
from .paths import code_version
from .records import ENDPOINT_ACTIVE, TRAINING_ACTIVE, TRANSFORM_ACTIVE, Dataset, Endpoint, TrainingJob, TransformJob
from .scoring import BatchResult, encode_payload, read_customers, score_frame



def _suffixed(name: str, suffix: str) -> str:
    return name[: 63 - len(suffix)].rstrip("-") + suffix


class Platform:
    def __init__(self, settings: Settings | None = None):
        self.settings = settings or Settings.from_env()
        self.settings.home.mkdir(parents=True, exist_ok=True)
        self.catalog = Catalog(self.settings.home / "churn.db")
        self.backend = make_backend(self.settings, self.catalog)
        self.store = self.backend.store
        self.datasets = DatasetService(self.catalog, self.store, self.settings.max_upload_mb * 1024 * 1024)
        self._evaluations: dict[str, dict] = {}
        self.backend.reconcile()

    # ---- datasets ------------------------------------------------------------------------
    def validate_dataset(self, data: bytes, target: str = "Churn"):
        return self.datasets.validate(data, target)

    def upload_dataset(self, name: str, data: bytes, target: str = "Churn", test_size: float = 0.3,
                       seed: int = 42, source: str = "upload") -> Dataset:
        return self.datasets.upload(name, data, target=target, test_size=test_size, seed=seed, source=source)

    def load_sample(self, name: str = "sample-telecom", rows: int = 2000, seed: int = 7) -> Dataset:
        from .sample import make_sample

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
        base = name
        for attempt in range(1, 100):
            try:
                with self.catalog.tx() as conn:
                    conn.execute(f"INSERT INTO jobs ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                                 list(row.values()))
                    self.catalog.event("job", name, f"submitted: {algorithm} on {ds.name}", conn)
                break
            except sqlite3.IntegrityError:
                if not auto_named:
                    raise ConflictError(
                        f"A training job named {name!r} already exists. Job names are unique; pick another.") from None
                # A generated name is per second, and local jobs take about one: the next in the same second
                # gets a suffix, as SageMaker's SDK adds milliseconds.
                name = row["name"] = f"{base}-{attempt + 1}"
        else:
            raise ConflictError(f"Could not find a free job name after {base!r}-99; give the job a name.")
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
            data = self.store.get_bytes(job.output_key)
            verify_sha256(data, job.output_sha256, "evaluation archive")
            self._evaluations[job.output_sha256] = read_json_member(data, "evaluation.json")
        return self._evaluations[job.output_sha256]

    def model_schema(self, name: str) -> dict:
        """The feature schema the model was trained with (forms and validation come from it)."""
        key = f"schema:{name}"
        if key not in self._evaluations:
            model = self.get_model(name)
            data = self.store.get_bytes(model["artifact_key"])
            verify_sha256(data, model["artifact_sha256"])
            self._evaluations[key] = read_json_member(data, "schema.json")
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
        """Model → endpoint config → endpoint, as on SageMaker. Creating → InService (or Failed)."""
        check_name(endpoint_name, "endpoint name")
        instance_type = instance_type or self.settings.endpoint_instance_type
        if not 1 <= int(instance_count) <= 8:
            raise ValidationError("Instance count must be between 1 and 8 (each instance is a worker process locally).")
        trained = self.get_model(model)
        now = time.time()
        deployed = {
            "name": _suffixed(endpoint_name, "-model"),
            "model": trained["name"],
            "artifact_key": trained["artifact_key"],
            "artifact_sha256": trained["artifact_sha256"],
            "created_at": now,
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
        }
        try:
            with self.catalog.tx() as conn:
                for table, row in (
                    ("deployed_models", deployed),
                    ("endpoint_configs", config),
                    ("endpoints", endpoint),
                ):
                    conn.execute(
                        f"INSERT INTO {table} ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                        list(row.values()),
                    )
                self.catalog.event("endpoint", endpoint_name, f"Creating from model {trained['name']}", conn)
        except sqlite3.IntegrityError:
            raise ConflictError(
                f"An endpoint named {endpoint_name!r} (or its config or model) already exists. "
                "Pick another name or delete the existing endpoint first."
            ) from None
        try:
            fields = self.backend.create_endpoint(self._endpoint_row(endpoint_name), config, deployed)
        except Exception as exc:
            self._forget_endpoint(endpoint_name, f"deploy failed and was rolled back: {exc}")
            if isinstance(exc, ChurnError):
                raise
            raise BackendError(f"Could not deploy {endpoint_name}: {exc}") from exc
        if fields:
            self.catalog.update("endpoints", endpoint_name, **fields)
        if wait:
            return self.wait_for_endpoint(endpoint_name, timeout)
        return self.describe_endpoint(endpoint_name)

    def wait_for_endpoint(self, name: str, timeout: float = 120.0) -> Endpoint:
        deadline = time.monotonic() + timeout
        while True:
            ep = self.describe_endpoint(name)
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
        if row["status"] in ENDPOINT_ACTIVE:
            fields = self.backend.refresh_endpoint(row)
            if fields:
                self.catalog.update("endpoints", row["name"], **fields, updated_at=time.time())
            row = self._endpoint_row(row["name"])
        stats = self.backend.endpoint_stats(row) if row["status"] == "InService" else {}
        return Endpoint.from_row(row, stats)

    def endpoint_names(self) -> list[str]:
        """Endpoint names, newest first, straight from the catalog (no reconciliation: cheap for pickers)."""
        return [r["name"] for r in self.catalog.query("SELECT name FROM endpoints ORDER BY created_at DESC")]

    def list_endpoints(self) -> list[Endpoint]:
        return [self._endpoint(r) for r in self.catalog.query("SELECT * FROM endpoints ORDER BY created_at DESC")]

    def client_snippets(self, name: str) -> dict[str, str]:
        """Python and curl that call the endpoint with a typical customer of its model's training data."""
        from .snippets import client_snippets

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

    def _check_request(self, row: dict, body: bytes, content_type: str, accept: str) -> None:
        from .request_check import check_request

        try:
            schema = self.model_schema(row["model"])
        except ChurnError:
            return  # no schema to check against (model record or artifact gone): let the endpoint decide
        check_request(body, content_type, accept, schema)

    def read_customers(self, data: bytes):
        """A CSV of customers to score (any encoding or delimiter an upload may have), every cell as text."""
        return read_customers(data, self.settings.max_upload_mb * 1024 * 1024)

    def score_batch(
        self, name: str, frame, chunk_size: int = 2000, progress: Callable[[float], None] | None = None
    ) -> BatchResult:
        """Score a table of customers in chunks; rows that cannot be scored are reported by row number."""
        schema = self.model_schema(self.describe_endpoint(name).model)
        return score_frame(lambda body: self.invoke(name, body, content_type="text/csv"), frame, schema,
                           chunk_size, progress)

    def delete_endpoint(self, name: str) -> dict:
        """Endpoint + endpoint config + model, as on SageMaker; the local process is stopped too."""
        row = self._endpoint_row(name)
        self.catalog.update("endpoints", name, status="Deleting", updated_at=time.time())
        self.catalog.event("endpoint", name, "Deleting")
        config = self.catalog.one("SELECT * FROM endpoint_configs WHERE name = ?", (row["config"],))
        deployed = config and self.catalog.one(
            "SELECT * FROM deployed_models WHERE name = ?", (config["deployed_model"],)
        )
        try:
            self.backend.delete_endpoint(row, config, deployed)
        except Exception:
            self.catalog.update("endpoints", name, status=row["status"], updated_at=time.time())
            raise
        return self._forget_endpoint(name, "deleted (endpoint, endpoint config and model)")

    def _forget_endpoint(self, name: str, message: str) -> dict:
        removed = {"endpoint": name, "endpoint_config": None, "model": None}
        with self.catalog.tx() as conn:
            row = conn.execute("SELECT config FROM endpoints WHERE name = ?", (name,)).fetchone()
            if row:
                cfg = conn.execute("SELECT * FROM endpoint_configs WHERE name = ?", (row["config"],)).fetchone()
                if cfg:
                    conn.execute("DELETE FROM deployed_models WHERE name = ?", (cfg["deployed_model"],))
                    conn.execute("DELETE FROM endpoint_configs WHERE name = ?", (cfg["name"],))
                    removed.update(endpoint_config=cfg["name"], model=cfg["deployed_model"])
            conn.execute("DELETE FROM endpoints WHERE name = ?", (name,))
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

    # ---- batch transform jobs (rules in churn_core/transforms.py; the backends run them) ---------------
    def start_transform(self, model: str, data, name: str | None = None, keep_columns: list[str] | None = None,
                        instance_count: int | None = None, *, file_name: str | None = None) -> TransformJob:
        """Score a whole CSV with a trained model into the bucket. ``data``: CSV bytes, a path to a CSV file on
        this machine, or a key in the bucket (a stored dataset's part, a file put there before). The job runs
        detached: ``describe_transform`` follows it, ``transform_output`` reads its results."""
        from .names import timestamp
        from .transforms import TransformInputError, clean_keep_columns, input_key

        trained = self.get_model(model)
        schema = self.model_schema(trained["name"])
        keep = clean_keep_columns(keep_columns)
        kind, source = self._transform_source(data)
        count = self.backend.default_transform_instances() if instance_count is None else instance_count
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 64:
            raise ValidationError(f"instance_count must be a whole number from 1 to 64 (got {instance_count!r}).")
        name = check_name(name or _suffixed(trained["name"], f"-batch-{timestamp()}"), "transform job name")
        now = time.time()
        label = file_name or {"bytes": "uploaded file", "path": Path(str(source)).name}.get(kind, source)
        row = {
            "name": name, "backend": self.backend.name, "model": trained["name"], "status": "InProgress",
            "input_key": source if kind == "key" else input_key(name, Path(str(source)).name if kind == "path"
                                                                else file_name),
            "input_label": str(label), "keep_columns_json": dumps(keep), "threshold": self.model_threshold(model),
            "instance_type": self.backend.transform_instance_type(), "instance_count": count, "created_at": now,
            "updated_at": now,
        }
        try:
            with self.catalog.tx() as conn:
                conn.execute(f"INSERT INTO transforms ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                             list(row.values()))
                self.catalog.event("transform", name, f"submitted: model {trained['name']} on {label}", conn)
        except sqlite3.IntegrityError:
            raise ConflictError(f"A transform job named {name!r} already exists; pick another name.") from None
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
        ``churn_probability``, ``predicted_churn``, ``warnings``."""
        from .transforms import read_results

        with self._transform_file(name, "results") as fh:
            return read_results(fh)

    def transform_errors(self, name: str):
        """The lines a transform job could not score: ``line`` (in the input) and ``problem``."""
        from .transforms import read_errors

        with self._transform_file(name, "errors") as fh:
            return read_errors(fh)

    def transform_summary(self, name: str, top: int = 1000):
        """Counts, a probability histogram and the ``top`` riskiest rows, read in chunks (any size of result)."""
        from .transforms import result_chunks, summarise

        key = f"summary:{name}:{top}"
        if key not in self._evaluations:
            with self._transform_file(name, "results") as fh:
                self._evaluations[key] = summarise(result_chunks(fh), top)
        return self._evaluations[key]

    def transform_download(self, name: str, which: str = "results") -> bytes:
        """results.csv or errors.csv as bytes for a download, with spreadsheet formulas escaped."""
        from .transforms import csv_chunks, download_csv

        if which not in ("results", "errors"):
            raise ValidationError("which must be 'results' or 'errors'.")
        with self._transform_file(name, which) as fh:
            return download_csv(csv_chunks(fh))

    # ---- misc ----------------------------------------------------------------------------
    def events(self, kind: str | None = None, name: str | None = None, limit: int = 200) -> list[dict]:
        return self.catalog.events(kind, name, limit)

    def check_connection(self) -> list[tuple[str, bool, str]]:
        return self.backend.check_connection()
