"""The SQLite catalog: every record the dashboard lists, changed only inside transactions.

WAL mode lets the Streamlit server, job drivers and endpoint supervisors (separate
processes) read while one of them writes. ``BEGIN IMMEDIATE`` takes the write lock up
front, so two sessions racing for one name get one success and one ``IntegrityError``.
"""

from __future__ import annotations

import json
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from churn_core.catalog import actor
from churn_core.catalog import health as catalog_health
from churn_core.errors import BackendError
from churn_core.storage.private_files import create_file

SCHEMA = """
CREATE TABLE IF NOT EXISTS datasets (
    name TEXT PRIMARY KEY,
    created_at REAL NOT NULL,
    source TEXT NOT NULL,
    rows INTEGER NOT NULL,
    n_train INTEGER NOT NULL,
    n_test INTEGER NOT NULL,
    churn_rate REAL NOT NULL,
    target TEXT NOT NULL,
    positive_label TEXT NOT NULL,
    columns_json TEXT NOT NULL,
    schema_json TEXT NOT NULL,
    warnings_json TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size_bytes INTEGER NOT NULL,
    test_size REAL NOT NULL,
    seed INTEGER NOT NULL,
    raw_key TEXT NOT NULL,
    train_key TEXT NOT NULL,
    test_key TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
    name TEXT PRIMARY KEY,
    backend TEXT NOT NULL,
    dataset TEXT NOT NULL,
    dataset_sha256 TEXT NOT NULL,
    algorithm TEXT NOT NULL,
    hyperparameters_json TEXT NOT NULL,
    status TEXT NOT NULL,
    secondary_status TEXT NOT NULL DEFAULT '',
    failure_reason TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL,
    started_at REAL,
    ended_at REAL,
    pid INTEGER,
    exit_code INTEGER,
    metrics_json TEXT NOT NULL DEFAULT '{}',
    model_key TEXT NOT NULL DEFAULT '',
    model_sha256 TEXT NOT NULL DEFAULT '',
    output_key TEXT NOT NULL DEFAULT '',
    output_sha256 TEXT NOT NULL DEFAULT '',
    code_sha256 TEXT NOT NULL DEFAULT '',
    instance_type TEXT NOT NULL DEFAULT 'local',
    instance_count INTEGER NOT NULL DEFAULT 1,
    arn TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS jobs_by_created ON jobs (created_at);
CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs (status);
CREATE TABLE IF NOT EXISTS models (
    name TEXT PRIMARY KEY,
    job TEXT NOT NULL,
    dataset TEXT NOT NULL,
    dataset_sha256 TEXT NOT NULL,
    algorithm TEXT NOT NULL,
    hyperparameters_json TEXT NOT NULL,
    code_sha256 TEXT NOT NULL,
    artifact_key TEXT NOT NULL,
    artifact_sha256 TEXT NOT NULL,
    metrics_json TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS deployed_models (
    name TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    artifact_key TEXT NOT NULL,
    artifact_sha256 TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS endpoint_configs (
    name TEXT PRIMARY KEY,
    deployed_model TEXT NOT NULL,
    instance_type TEXT NOT NULL,
    instance_count INTEGER NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS endpoints (
    name TEXT PRIMARY KEY,
    backend TEXT NOT NULL,
    config TEXT NOT NULL,
    model TEXT NOT NULL,
    status TEXT NOT NULL,
    failure_reason TEXT NOT NULL DEFAULT '',
    url TEXT NOT NULL DEFAULT '',
    port INTEGER,
    pid INTEGER,
    server_pid INTEGER,
    workdir TEXT NOT NULL DEFAULT '',
    instance_type TEXT NOT NULL,
    instance_count INTEGER NOT NULL,
    restarts INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    in_service_at REAL,
    arn TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_name ON events (kind, name);
CREATE TABLE IF NOT EXISTS model_groups (
    name TEXT PRIMARY KEY,
    dataset TEXT NOT NULL,
    created_at REAL NOT NULL,
    arn TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS model_versions (
    grp TEXT NOT NULL,
    version INTEGER NOT NULL,
    model TEXT NOT NULL,
    status TEXT NOT NULL,
    status_note TEXT NOT NULL DEFAULT '',
    status_at REAL,
    note TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL,
    dataset TEXT NOT NULL,
    dataset_sha256 TEXT NOT NULL,
    code_sha256 TEXT NOT NULL,
    artifact_key TEXT NOT NULL,
    artifact_sha256 TEXT NOT NULL,
    algorithm TEXT NOT NULL,
    hyperparameters_json TEXT NOT NULL,
    metrics_json TEXT NOT NULL,
    threshold REAL,
    arn TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (grp, version)
);
CREATE INDEX IF NOT EXISTS model_versions_by_model ON model_versions (model);
CREATE TABLE IF NOT EXISTS endpoint_variants (
    config TEXT NOT NULL,
    variant TEXT NOT NULL,
    deployed_model TEXT NOT NULL,
    weight REAL NOT NULL,
    PRIMARY KEY (config, variant)
);
CREATE TABLE IF NOT EXISTS endpoint_history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    endpoint TEXT NOT NULL,
    variant TEXT NOT NULL,
    model TEXT NOT NULL,
    grp TEXT NOT NULL DEFAULT '',
    version INTEGER,
    weight REAL NOT NULL DEFAULT 1.0,
    started_at REAL NOT NULL,
    ended_at REAL
);
CREATE INDEX IF NOT EXISTS endpoint_history_by_model ON endpoint_history (model);
CREATE TABLE IF NOT EXISTS endpoint_tokens (
    endpoint TEXT PRIMARY KEY,
    uid TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    created_at REAL NOT NULL,
    created_by TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS drift_reports (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    endpoint TEXT NOT NULL DEFAULT '',
    model TEXT NOT NULL,
    source TEXT NOT NULL,
    created_at REAL NOT NULL,
    window_start REAL,
    window_end REAL,
    rows INTEGER NOT NULL,
    drifted_json TEXT NOT NULL,
    report_json TEXT NOT NULL,
    violations_key TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS drift_reports_by_endpoint ON drift_reports (endpoint, created_at);
CREATE TABLE IF NOT EXISTS monitoring_schedules (
    endpoint TEXT PRIMARY KEY,
    every_minutes REAL NOT NULL,
    pid INTEGER,
    created_at REAL NOT NULL,
    last_run_at REAL,
    last_error TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS monitoring_runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    endpoint TEXT NOT NULL,
    started_at REAL NOT NULL,
    finished_at REAL NOT NULL,
    outcome TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS monitoring_runs_by_endpoint ON monitoring_runs (endpoint, id);
CREATE TABLE IF NOT EXISTS drift_thresholds (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    model TEXT NOT NULL,
    thresholds_json TEXT NOT NULL,
    note TEXT NOT NULL DEFAULT '',
    set_by TEXT NOT NULL DEFAULT '',
    set_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS drift_thresholds_by_model ON drift_thresholds (model, id);
CREATE TABLE IF NOT EXISTS monitoring_settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    set_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS model_aliases (
    grp TEXT NOT NULL,
    alias TEXT NOT NULL,
    version INTEGER NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (grp, alias)
);
CREATE TABLE IF NOT EXISTS tuning_jobs (
    name TEXT PRIMARY KEY,
    backend TEXT NOT NULL,
    dataset TEXT NOT NULL,
    algorithm TEXT NOT NULL,
    ranges_json TEXT NOT NULL,
    static_json TEXT NOT NULL,
    objective TEXT NOT NULL,
    direction TEXT NOT NULL,
    strategy TEXT NOT NULL,
    seed INTEGER NOT NULL,
    max_trials INTEGER NOT NULL,
    max_parallel INTEGER NOT NULL,
    max_seconds REAL,
    status TEXT NOT NULL,
    failure_reason TEXT NOT NULL DEFAULT '',
    note TEXT NOT NULL DEFAULT '',
    trials_completed INTEGER NOT NULL DEFAULT 0,
    trials_failed INTEGER NOT NULL DEFAULT 0,
    trials_stopped INTEGER NOT NULL DEFAULT 0,
    trials_in_progress INTEGER NOT NULL DEFAULT 0,
    best_job TEXT NOT NULL DEFAULT '',
    best_objective REAL,
    created_at REAL NOT NULL,
    ended_at REAL,
    pid INTEGER,
    arn TEXT NOT NULL DEFAULT '',
    code_sha256 TEXT NOT NULL DEFAULT '',
    instance_type TEXT NOT NULL DEFAULT 'local'
);
CREATE INDEX IF NOT EXISTS tuning_jobs_by_created ON tuning_jobs (created_at);
CREATE TABLE IF NOT EXISTS tuning_trials (
    tuning_job TEXT NOT NULL,
    number INTEGER NOT NULL,
    job TEXT NOT NULL,
    params_json TEXT NOT NULL,
    status TEXT NOT NULL,
    objective REAL,
    failure_reason TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL,
    ended_at REAL,
    PRIMARY KEY (tuning_job, number)
);
CREATE INDEX IF NOT EXISTS tuning_trials_by_job ON tuning_trials (job);
CREATE TABLE IF NOT EXISTS transforms (
    name TEXT PRIMARY KEY,
    backend TEXT NOT NULL,
    model TEXT NOT NULL,
    status TEXT NOT NULL,
    failure_reason TEXT NOT NULL DEFAULT '',
    input_key TEXT NOT NULL,
    input_label TEXT NOT NULL DEFAULT '',
    keep_columns_json TEXT NOT NULL DEFAULT 'null',
    threshold REAL NOT NULL,
    instance_type TEXT NOT NULL DEFAULT 'local',
    instance_count INTEGER NOT NULL DEFAULT 1,
    rows_in INTEGER,
    rows_done INTEGER NOT NULL DEFAULT 0,
    rows_scored INTEGER NOT NULL DEFAULT 0,
    rows_failed INTEGER NOT NULL DEFAULT 0,
    output_key TEXT NOT NULL DEFAULT '',
    errors_key TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL,
    started_at REAL,
    ended_at REAL,
    updated_at REAL,
    pid INTEGER,
    exit_code INTEGER,
    arn TEXT NOT NULL DEFAULT '',
    sagemaker_model TEXT NOT NULL DEFAULT '',
    reasons INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS transforms_by_created ON transforms (created_at);
"""

# Columns added after a table was first released: (table, column, declaration). A catalog made by an
# older version gets them with ALTER TABLE when it is opened (new tables come from SCHEMA itself).
ADDED_COLUMNS: list[tuple[str, str, str]] = [
    ("models", "threshold", "REAL"),  # the decision threshold chosen for the model (NULL: its schema's, 0.5)
    ("models", "threshold_json", "TEXT NOT NULL DEFAULT '{}'"),  # who set it, when, why (campaign inputs)
    ("model_versions", "threshold_json", "TEXT NOT NULL DEFAULT '{}'"),  # a version's own: who set it, when, why
    ("deployed_models", "grp", "TEXT NOT NULL DEFAULT ''"),  # the registered version it serves, if any
    ("deployed_models", "version", "INTEGER"),
    ("deployed_models", "version_arn", "TEXT NOT NULL DEFAULT ''"),  # SageMaker: the model package
    ("deployed_models", "threshold", "REAL"),
    ("endpoints", "capture_percent", "REAL NOT NULL DEFAULT 0"),  # share of requests captured (0: off)
    ("endpoints", "generation", "INTEGER NOT NULL DEFAULT 1"),  # configurations the endpoint has had
    ("endpoints", "pending_config", "TEXT NOT NULL DEFAULT ''"),  # the configuration an update moves to
    ("endpoints", "uid", "TEXT NOT NULL DEFAULT ''"),  # unique per deploy: its folder and processes carry it
    ("transforms", "reasons", "INTEGER NOT NULL DEFAULT 0"),  # 1: each result line gets its top reason
    ("endpoints", "capture_max_mb", "REAL"),  # the capture's byte budget (NULL: capture_bounds' default)
    ("endpoints", "capture_retention_days", "REAL"),  # how long captured files are kept (NULL: the default)
    # who did it (catalog/actor.py; "" for the system or a record older than the column)
    ("events", "user", "TEXT NOT NULL DEFAULT ''"),
    ("jobs", "created_by", "TEXT NOT NULL DEFAULT ''"),  # who trained (a tuning trial: who started the tuning)
    ("tuning_jobs", "created_by", "TEXT NOT NULL DEFAULT ''"),
    ("endpoints", "created_by", "TEXT NOT NULL DEFAULT ''"),  # who deployed
    ("endpoints", "updated_by", "TEXT NOT NULL DEFAULT ''"),  # who asked for its last update (it may finish later)
    ("model_versions", "registered_by", "TEXT NOT NULL DEFAULT ''"),
    ("model_versions", "status_by", "TEXT NOT NULL DEFAULT ''"),  # who approved or rejected
    ("endpoint_history", "started_by", "TEXT NOT NULL DEFAULT ''"),  # who put the model behind the endpoint
]

# Tables whose new rows record the acting user in ``created_by`` (the writers ask ``created_by(table)``).
CREATED_BY = ("jobs", "tuning_jobs", "endpoints")


# Names are unique regardless of case (see name_clash.py). Created apart from SCHEMA: a catalog of an
# older version may already hold 'DS1' and 'ds1', and must still open (the inserting code checks too).
NOCASE_UNIQUE: list[tuple[str, str]] = [
    ("datasets", "datasets_name_nocase"),
    ("jobs", "jobs_name_nocase"),
    ("models", "models_name_nocase"),
    ("deployed_models", "deployed_models_name_nocase"),
    ("endpoint_configs", "endpoint_configs_name_nocase"),
    ("endpoints", "endpoints_name_nocase"),
    ("transforms", "transforms_name_nocase"),
]


def _dict_row(cursor: sqlite3.Cursor, row: tuple) -> dict:
    return {col[0]: value for col, value in zip(cursor.description, row, strict=True)}


class Catalog:
    """Thin wrapper over one SQLite file; a fresh connection per transaction keeps threads and processes apart."""

    def __init__(self, path: Path):
        self.path = Path(path)
        # A damaged, empty or missing catalog next to existing state raises CatalogDamagedError here, before
        # anything is written: never start over on top of it (catalog_health, catalog_repair).
        existed = catalog_health.check_file(self.path)
        if not existed:
            create_file(self.path)  # 0600 (and its folder 0700) before SQLite opens it; -wal/-shm take its mode
        conn = self._connect(create=not existed)
        try:
            if existed:
                verdict = catalog_health.quick_check(conn)
                if verdict != "ok":
                    raise catalog_health.damaged(self.path, f"SQLite's integrity check reports: {verdict}")
            conn.executescript(SCHEMA)  # executescript manages its own transaction
            self._add_columns(conn)
            self._add_nocase_indexes(conn)
        except sqlite3.DatabaseError as exc:
            if catalog_health.is_corruption(exc):
                raise catalog_health.damaged(self.path, f"SQLite reports: {exc}") from None
            raise
        finally:
            conn.close()

    @staticmethod
    def _add_columns(conn: sqlite3.Connection) -> None:
        """Bring a catalog of an older version up to date (idempotent; racing openers are harmless)."""
        for table, column, declaration in ADDED_COLUMNS:
            present = {row["name"] for row in conn.execute(f"PRAGMA table_info({table})").fetchall()}
            if column not in present:
                try:
                    conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
                except sqlite3.OperationalError as exc:
                    if "duplicate column" not in str(exc):
                        raise

    @staticmethod
    def _add_nocase_indexes(conn: sqlite3.Connection) -> None:
        for table, index in NOCASE_UNIQUE:
            try:
                conn.execute(f"CREATE UNIQUE INDEX IF NOT EXISTS {index} ON {table} (name COLLATE NOCASE)")
            except sqlite3.IntegrityError:
                pass  # names that differ only in case from an older version: kept; new ones are refused

    def _unusable(self, exc: sqlite3.OperationalError) -> BackendError:
        return BackendError(
            f"The catalog {self.path} could not be read or written ({exc}). The disk holding {self.path.parent} "
            "may be full or read-only: free some disk space or check its permissions, then try again."
        )

    def _failure(self, exc: sqlite3.DatabaseError) -> BackendError:
        """The user-facing error for an sqlite3 failure: damage, or a disk that is full or read-only."""
        if catalog_health.is_corruption(exc):
            return catalog_health.damaged(self.path, f"SQLite reports: {exc}")
        return self._unusable(exc)

    def _connect(self, create: bool = False) -> sqlite3.Connection:
        try:  # read-write only: a catalog that went missing is reported, never silently made anew
            conn = sqlite3.connect(catalog_health.connect_uri(self.path, create), uri=True, timeout=30,
                                   isolation_level=None)
            conn.row_factory = _dict_row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=30000")
        except sqlite3.OperationalError as exc:
            if not create and not self.path.exists():
                raise catalog_health.damaged(self.path, "it went missing while it was in use") from None
            raise self._failure(exc) from exc
        except sqlite3.DatabaseError as exc:
            raise self._failure(exc) from None
        return conn

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: all of it lands or none of it does."""
        conn = self._connect()
        try:
            conn.execute("BEGIN IMMEDIATE")
            yield conn
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
            if isinstance(exc, sqlite3.DatabaseError) and catalog_health.is_corruption(exc):
                raise self._failure(exc) from None
            if isinstance(exc, sqlite3.OperationalError) and "locked" not in str(exc):
                raise self._unusable(exc) from exc
            raise
        finally:
            conn.close()
        self.backup()

    def backup(self, force: bool = False) -> Path | None:
        """The rolling backup (``backups/churn-latest.db``), made when due; never fails the caller."""
        try:
            return catalog_health.backup(self.path, force=force)
        except Exception:  # noqa: BLE001 - a backup that cannot be made must not undo a committed change
            return None

    def query(self, sql: str, args: tuple | list = ()) -> list[dict]:
        conn = self._connect()
        try:
            return conn.execute(sql, args).fetchall()
        except sqlite3.OperationalError as exc:
            raise self._failure(exc) from exc
        except sqlite3.DatabaseError as exc:
            if catalog_health.is_corruption(exc):
                raise self._failure(exc) from None
            raise
        finally:
            conn.close()

    def one(self, sql: str, args: tuple | list = ()) -> dict | None:
        rows = self.query(sql, args)
        return rows[0] if rows else None

    def scalar(self, sql: str, args: tuple | list = ()) -> Any:
        row = self.one(sql, args)
        return next(iter(row.values())) if row else None

    def update(self, table: str, name: str, **fields: Any) -> None:
        """Set columns of one named record (a single short transaction)."""
        if not fields:
            return
        cols = ", ".join(f"{key} = ?" for key in fields)
        with self.tx() as conn:
            conn.execute(f"UPDATE {table} SET {cols} WHERE name = ?", [*fields.values(), name])

    def event(self, kind: str, name: str, message: str, conn: sqlite3.Connection | None = None,
              at: float | None = None) -> None:
        sql = "INSERT INTO events (at, kind, name, message, user) VALUES (?, ?, ?, ?, ?)"
        args = (at or time.time(), kind, name, message, actor.current())
        if conn is not None:
            conn.execute(sql, args)
        else:
            with self.tx() as own:
                own.execute(sql, args)

    def events(self, kind: str | None = None, name: str | None = None, limit: int = 200) -> list[dict]:
        where, args = [], []
        if kind:
            where.append("kind = ?")
            args.append(kind)
        if name:
            where.append("name = ?")
            args.append(name)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        return self.query(f"SELECT * FROM events {clause} ORDER BY id DESC LIMIT ?", [*args, limit])


def with_creator(table: str, row: dict) -> dict:
    """``row`` plus who is creating it, for the tables that record it (``CREATED_BY``)."""
    return {**row, "created_by": row.get("created_by") or actor.current()} if table in CREATED_BY else row


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=str)


def loads(text: str | None, default: Any = None) -> Any:
    if not text:
        return default
    return json.loads(text)
