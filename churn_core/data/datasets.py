"""Datasets: validate in memory, split, store raw/train/test, record — all or nothing."""

from __future__ import annotations

import io
import json
import sqlite3
import time

import numpy as np
import pandas as pd

from churn_core.storage.artifacts import sha256_bytes
from churn_core.catalog.database import Catalog, dumps
from churn_core.errors import ChurnError, ConflictError, NotFoundError, ValidationError
from churn_core.catalog import datasets as records
from churn_core.catalog.name_clash import clash
from churn_core.names import check_name
from churn_core.paths import entry_module
from churn_core.records import Dataset
from churn_core.storage.objects import ObjectStore
from churn_core.data.validation import ValidatedTable, validate_csv
from churn_core.data.workbooks import as_csv

_schema_rules = entry_module("dataset_schema")
SCHEMA_FILE = _schema_rules.SCHEMA_FILE  # stored in the train prefix, so it travels in the train channel


def dataset_prefix(name: str) -> str:
    return f"datasets/{name}/"


def schema_key(ds: Dataset) -> str:
    return ds.train_prefix + SCHEMA_FILE


def stored_schema(ds: Dataset) -> dict:
    """The dataset schema training applies; datasets stored before it existed get it from the catalog."""
    schema = dict(ds.schema)
    schema.setdefault("format", _schema_rules.SCHEMA_FORMAT)
    schema.setdefault("id_columns", [n for n, r in (schema.get("dropped") or {}).items() if r.startswith("ID-like")])
    return schema


def _split(table: ValidatedTable, test_size: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Row numbers of a stratified split (the stored splits are the file's text of those rows, every column as
    written; training types it by the schema). Splitting row numbers gives the rows a split of the table
    would, in the same order, without building the table."""
    from sklearn.model_selection import train_test_split

    try:
        return train_test_split(np.arange(table.rows), test_size=test_size, random_state=seed,
                                stratify=table.target_values)
    except ValueError as exc:
        raise ValidationError(
            f"Could not make a stratified split with test fraction {test_size}: {exc}. "
            "Use a test fraction that leaves each class at least a few rows on both sides."
        ) from None


class DatasetService:
    def __init__(self, catalog: Catalog, store: ObjectStore, max_upload_bytes: int):
        self.catalog = catalog
        self.store = store
        self.max_upload_bytes = max_upload_bytes

    def validate(self, data: bytes, target: str = "Churn") -> ValidatedTable:
        """Check a file without storing anything (the Data page previews this)."""
        return validate_csv(data, target=target, max_bytes=self.max_upload_bytes)

    def upload(
        self,
        name: str,
        data: bytes,
        target: str = "Churn",
        test_size: float = 0.3,
        seed: int = 42,
        source: str = "upload",
    ) -> Dataset:
        check_name(name, "dataset name")
        data, _ = as_csv(data)  # a workbook is stored as the CSV it was validated as
        if not 0.05 <= float(test_size) <= 0.5:
            raise ValidationError(f"Test fraction {test_size} is out of range. Pick a value between 0.05 and 0.5.")
        existing = records.taken_name(self.catalog, name)
        if existing is not None:
            raise clash("dataset", name, existing, "Pick another name or delete the old one.")
        table = self.validate(data, target)
        train, test = _split(table, float(test_size), int(seed))
        prefix = dataset_prefix(name)
        keys = {
            "raw_key": f"{prefix}raw/{name}.csv",
            "train_key": f"{prefix}train/train.csv",
            "test_key": f"{prefix}test/test.csv",
        }
        row = {
            "name": name,
            "created_at": time.time(),
            "source": source,
            "rows": table.rows,
            "n_train": len(train),
            "n_test": len(test),
            "churn_rate": float(table.churn_rate),
            "target": table.target,
            "positive_label": table.positive_label,
            "columns_json": dumps(list(table.columns)),
            "schema_json": dumps(table.schema()),
            "warnings_json": dumps(table.warnings),
            "sha256": sha256_bytes(data),
            "size_bytes": len(data),
            "test_size": float(test_size),
            "seed": int(seed),
            **keys,
        }
        # The write lock is held while the files land, so a racing upload of the same name waits,
        # then fails on the primary key; on any failure the half-written prefix is removed.
        try:
            with records.inserting(self.catalog, row,
                                   f"uploaded: {table.rows} rows, churn rate {table.churn_rate:.1%}"):
                self.store.put_bytes(keys["raw_key"], data)
                self.store.put_bytes(keys["train_key"], table.write_csv(train))
                self.store.put_bytes(keys["test_key"], table.write_csv(test))
                self.store.put_bytes(f"{prefix}train/{SCHEMA_FILE}", json.dumps(table.schema(), indent=1).encode())
        except ConflictError:
            raise
        except sqlite3.IntegrityError:
            raise ConflictError(f"A dataset named {name!r} already exists. Pick another name.") from None
        except BaseException:
            try:
                self.store.delete_prefix(prefix)
            except ChurnError:
                pass  # the original error is the one the user must see
            raise
        return self.get(name)

    def get(self, name: str) -> Dataset:
        row = records.dataset(self.catalog, name)
        if row is None:
            raise NotFoundError(f"No dataset named {name!r}. Upload it on the Data page first.")
        return Dataset.from_row(row)

    def list(self) -> list[Dataset]:
        return [Dataset.from_row(r) for r in records.datasets(self.catalog)]

    def read(self, name: str, part: str = "raw", typed: bool = False) -> pd.DataFrame:
        """A stored part as the file holds it (text), or typed by the dataset schema as training sees it:
        the target as 0/1, features as numbers or categories (missing as NaN), other columns as text."""
        ds = self.get(name)
        key = {"raw": ds.raw_key, "train": ds.train_key, "test": ds.test_key}[part]
        data = self.store.get_bytes(key)
        if part == "raw":
            return pd.read_csv(io.BytesIO(data), encoding_errors="replace")
        text = _schema_rules.read_text_table(io.BytesIO(data))
        if not typed:
            return text
        schema = stored_schema(ds)
        try:
            typed_frame = text.copy()
            typed_frame[ds.target] = _schema_rules.encode_target(text[ds.target], ds.target, part)[0]
            features = _schema_rules.typed_features(text, schema, part)
        except (_schema_rules.SchemaError, KeyError) as exc:
            raise ValidationError(
                f"The stored {part} file of {name} no longer matches its schema ({exc}). "
                "Delete the dataset and upload it again."
            ) from None
        for column in features.columns:
            typed_frame[column] = features[column]
        return typed_frame

    def ensure_schema_object(self, ds: Dataset) -> str:
        """The schema object beside the train split (written for datasets stored before it existed)."""
        key = schema_key(ds)
        if not self.store.exists(key):
            self.store.put_bytes(key, json.dumps(stored_schema(ds), indent=1).encode())
        return key

    def delete(self, name: str) -> None:
        ds = self.get(name)
        busy = records.job_using(self.catalog, name)
        if busy:
            raise ConflictError(f"Training job {busy} is still using {name!r}. Stop it or wait, then delete.")
        records.delete(self.catalog, name)
        self.store.delete_prefix(dataset_prefix(ds.name))
