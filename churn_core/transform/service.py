"""Batch transform jobs: score a whole file with a trained model into the bucket, detached, on either backend."""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

from churn_core.catalog import outcomes
from churn_core.catalog import transforms as records
from churn_core.catalog.database import dumps
from churn_core.catalog.name_clash import insert_named
from churn_core.data.workbooks import as_csv
from churn_core.errors import ConflictError, NotFoundError, ValidationError
from churn_core.names import check_name, derived_name, timestamp
from churn_core.records import TRANSFORM_ACTIVE, TransformJob
from churn_core.transform import reasons_cost
from churn_core.transform.rules import (
    TransformInputError, check_instance_type, clean_keep_columns, csv_chunks, download_csv, input_key, output_keys,
    read_errors, read_results, result_chunks, summarise, with_risk,
)


class TransformService:
    def __init__(self, catalog, backend, store, models, thresholds=None):
        self.catalog = catalog
        self.backend = backend
        self.store = store
        self.models = models
        self.thresholds = thresholds  # whose threshold labels the rows: a job's model's or a registered version's
        self.cache: dict[str, Any] = {}

    def start(self, model, data, name: str | None = None, keep_columns: list[str] | None = None,
              instance_count: int | None = None, file_name: str | None = None, reasons: bool = False,
              instance_type: str | None = None) -> TransformJob:
        """Score a whole CSV (bytes, a local path or a bucket key) into the bucket, detached."""
        trained = self.models.get(self.thresholds.model_name(model) if self.thresholds else model)  # or a version
        schema = self.models.schema(trained["name"])
        keep = clean_keep_columns(keep_columns)
        kind, source = self._source(data)
        count = self.backend.default_transform_instances() if instance_count is None else instance_count
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 64:
            raise ValidationError(f"instance_count must be a whole number from 1 to 64 (got {instance_count!r}).")
        instance_type = check_instance_type(instance_type, self.backend.transform_instance_types())
        auto_named = not name
        name = check_name(name or derived_name(trained["name"], f"-batch-{timestamp()}"), "transform job name")
        now = time.time()
        label = file_name or {"bytes": "uploaded file", "path": Path(str(source)).name}.get(kind, source)
        threshold = self.thresholds.threshold(model) if self.thresholds else self.models.threshold(model)

        def make_row(name: str) -> dict:
            return {
                "name": name, "backend": self.backend.name, "model": trained["name"], "status": "InProgress",
                "input_key": source if kind == "key" else input_key(name, Path(str(source)).name if kind == "path"
                                                                    else file_name),
                "input_label": str(label), "keep_columns_json": dumps(keep), "threshold": threshold,
                "instance_type": instance_type, "instance_count": count, "created_at": now,
                "reasons": int(bool(reasons)), "updated_at": now,
            }

        row = insert_named(self.catalog, "transforms", "transform job", name, make_row, auto_named,
                           ("transform", f"submitted: model {trained['name']} on {label}"), "Pick another name.",
                           in_use=self._outputs_left)
        name = row["name"]
        try:
            with outcomes.failed_if_not_started(self.catalog, "transform", name, "transform job"):
                if kind == "bytes":
                    self.store.put_bytes(row["input_key"], bytes(source))
                elif kind == "path":
                    self.store.put_file(row["input_key"], Path(source))
                fields = self.backend.start_transform(records.transform(self.catalog, name), trained, schema)
        except TransformInputError:  # the file cannot be scored at all: the job failed, naming why
            return self.describe(name)
        outcomes.apply(self.catalog, "transform", name, fields)
        return self.describe(name)

    def _outputs_left(self, name: str) -> str:
        """The outputs a transform job named ``name`` left in the bucket ("" when none)."""
        return ", ".join(key for key in output_keys(name) if self.store.exists(key))

    def _source(self, data) -> tuple[str, Any]:
        """("bytes" | "path" | "key", the source). A relative text that is a key in the bucket is that key, even
        when the working directory holds a file of that name: the bucket is the product's own state, and which
        data is scored must not depend on where the dashboard was started. A local file is named unambiguously
        by a ``Path``, an absolute path, or one starting with ``./``, ``../`` or ``~``."""
        if isinstance(data, (bytes, bytearray, memoryview)):
            if not len(data):
                raise ValidationError("The data to score is empty; give a CSV file with a header and customers.")
            return "bytes", as_csv(bytes(data))[0]  # a workbook is scored as its first sheet, like an upload
        if isinstance(data, (str, Path)) and str(data).strip():
            explicit = isinstance(data, Path) or data.startswith(("./", "../", "~", "/", ".\\", "..\\"))
            if not explicit and (key := self._key(data)):
                return "key", key
            path = Path(data).expanduser()
            if path.is_file() and path.suffix.lower() in (".xlsx", ".xlsm"):
                return "bytes", as_csv(path.read_bytes())[0]
            if path.is_file():
                return "path", path
            if isinstance(data, str) and data.startswith("/") and (key := self._key(data)):  # a key with a "/"
                return "key", key
        shown = repr(data)[:80] if isinstance(data, (str, Path)) else type(data).__name__
        raise ValidationError(f"Give the data to score as CSV bytes, the path of a CSV file on this machine, or a key "
                              f"in the bucket (e.g. a dataset's datasets/<name>/test/test.csv); {shown} is none of "
                              "these.")

    def _key(self, text: str) -> str | None:
        try:
            return text.strip("/") if self.store.exists(text.strip("/")) else None
        except ValidationError:
            return None  # not a safe key

    def _refresh(self, row: dict) -> dict:
        if row["status"] in TRANSFORM_ACTIVE:
            fields = self.backend.refresh_transform(row)
            if fields:
                outcomes.apply(self.catalog, "transform", row["name"], {**fields, "updated_at": time.time()})
            row = records.transform(self.catalog, row["name"])
        return row

    def reasons_cost(self, model) -> float | None:
        """Seconds a line's top reason costs with ``model`` (a job's model or a registered version) on this
        machine, measured once per artifact; None when the model cannot give reasons."""
        trained = self.models.get(self.thresholds.model_name(model) if self.thresholds else model)
        key = ("reasons_cost", trained["artifact_sha256"])
        if key not in self.cache:
            self.cache[key] = reasons_cost.seconds_per_row(self.models.loaded(trained["name"]))
        return self.cache[key]

    def describe(self, name: str) -> TransformJob:
        return TransformJob.from_row(self._refresh(records.transform(self.catalog, name)))

    def list(self, limit: int = 100, offset: int = 0) -> list[TransformJob]:
        return [TransformJob.from_row(self._refresh(r)) for r in records.transforms(self.catalog, limit, offset)]

    def stop(self, name: str) -> TransformJob:
        row = self._refresh(records.transform(self.catalog, name))
        if row["status"] not in TRANSFORM_ACTIVE:
            raise ConflictError(f"Transform job {name} is {row['status']}; only a running job can be stopped.")
        self.catalog.update("transforms", name, status="Stopping", updated_at=time.time())
        self.catalog.event("transform", name, "stop requested")
        fields = self.backend.stop_transform(records.transform(self.catalog, name))
        if fields:
            outcomes.apply(self.catalog, "transform", name, {**fields, "updated_at": time.time()})
        return self.describe(name)

    def log(self, name: str, lines: int = 200) -> str:
        return self.backend.transform_log(records.transform(self.catalog, name), lines)

    def _file(self, name: str, which: str):
        job = self.describe(name)
        key = job.output_key if which == "results" else job.errors_key
        if which == "results" and job.status != "Completed":
            raise ConflictError(f"Transform job {name} is {job.status}; results exist once it is Completed.")
        if not key:
            raise NotFoundError(f"Transform job {name} has no {which} file ({job.status}).")
        local_path = getattr(self.store, "path", None)
        if local_path is not None:
            return open(local_path(key), "rb")
        return io.BytesIO(self.store.get_bytes(key))

    def output(self, name: str):
        threshold = self.describe(name).threshold
        with self._file(name, "results") as fh:
            return with_risk(read_results(fh), threshold)

    def errors(self, name: str):
        with self._file(name, "errors") as fh:
            return read_errors(fh)

    def summary(self, name: str, top: int = 1000):
        key = f"summary:{name}:{top}"
        if key not in self.cache:
            threshold = self.describe(name).threshold
            with self._file(name, "results") as fh:
                summary = summarise(result_chunks(fh), top)
            if len(summary.riskiest):
                with_risk(summary.riskiest, threshold)
            self.cache[key] = summary
        return self.cache[key]

    def download(self, name: str, which: str = "results") -> bytes:
        if which not in ("results", "errors"):
            raise ValidationError("which must be 'results' or 'errors'.")
        threshold = self.describe(name).threshold
        with self._file(name, which) as fh:
            if which == "results":
                return download_csv(with_risk(chunk, threshold) for chunk in result_chunks(fh, as_text=True))
            return download_csv(csv_chunks(fh))
