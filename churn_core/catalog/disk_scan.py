"""What the state folder says exists: datasets, jobs and endpoints found on disk, as catalog records.

A restore or a rebuild (``repair``) ends with this scan, so what was made after the backup, or what a
damaged catalog lost, is recorded again from the files and processes the product left behind.
"""

from __future__ import annotations

import io
import json
import os
import re
import sqlite3
import time
from pathlib import Path
from dataclasses import dataclass, field

from churn_core.backends.local import job_outcome
from churn_core.backends.local.endpoint import processes as endpoint_processes
from churn_core.backends.local.endpoint.processes import folder_name as folder_name_of
from churn_core.catalog import kept_records, outcomes
from churn_core.catalog.database import Catalog, dumps
from churn_core.catalog.endpoint_configs import delete_config
from churn_core.errors import ChurnError
from churn_core.names import NAME_RE
from churn_core.storage.artifacts import sha256_bytes
from churn_core.storage.objects import safe_key
from churn_core.wording import noun, plural

ACTIVE_ENDPOINT = ("Creating", "InService", "Updating")
DEPLOYED_COLUMNS = ("name", "model", "artifact_key", "artifact_sha256", "created_at", "grp", "version", "version_arn",
                    "threshold")
_SERVING_LINE = re.compile(r"serving endpoint '([^']+)' on (http://[^\s]+)")


@dataclass
class RepairReport:
    action: str  # "rebuilt" | "restored"
    damaged_copy: Path | None = None
    restored_from: Path | None = None
    salvaged_rows: int = 0
    added: dict[str, list[str]] = field(default_factory=lambda: {
        "datasets": [], "jobs": [], "models": [], "endpoints": [], "transforms": [], "tuning jobs": []})
    removed: dict[str, list[str]] = field(default_factory=lambda: {"datasets": [], "endpoints": []})
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        parts = [f"The catalog was {self.action}"]
        if self.restored_from:
            parts[0] += f" from the backup {self.restored_from}"
        if self.salvaged_rows:
            parts.append(f"{plural(self.salvaged_rows, 'record')} {noun(self.salvaged_rows, 'was', 'were')} "
                         "read back from the damaged file")
        found = [f"{len(v)} {k}" for k, v in self.added.items() if v]
        if found:
            parts.append("found on disk: " + ", ".join(found))
        gone = [f"{len(v)} {k}" for k, v in self.removed.items() if v]
        if gone:
            parts.append("dropped (gone from disk since the backup): " + ", ".join(gone))
        if self.damaged_copy:
            parts.append(f"the damaged file is kept as {self.damaged_copy}")
        return "; ".join(parts) + "." + ("".join(f" {n}" for n in self.notes))


class DiskScan:
    """Records for what is on disk and missing from the catalog (or, with ``refresh``, stale in it)."""

    def __init__(self, home: Path, catalog: Catalog, report: RepairReport, bucket: str | None):
        self.home = home
        self.catalog = catalog
        self.report = report
        self.buckets = [home / "buckets" / bucket] if bucket else sorted((home / "buckets").glob("*"))

    def run(self, refresh: bool) -> None:
        for bucket in self.buckets:
            self.datasets(bucket, refresh)
        self.jobs(refresh)
        self.endpoints(refresh)
        running = {kind: _running_drivers(self.home, *kept_records.DRIVERS[kind]) for kind in kept_records.DRIVERS}
        for what, names in restore_kept(self.catalog, self.home, running).items():
            self.report.added[what].extend(names)

    def _exists(self, table: str, name: str) -> bool:
        return self.catalog.one(f"SELECT 1 FROM {table} WHERE name = ? COLLATE NOCASE", (name,)) is not None

    def _named(self, folder: Path, what: str) -> bool:
        """A folder found on disk is recorded only under a name the product could have given it."""
        if NAME_RE.fullmatch(folder.name):
            return True
        self.report.notes.append(f"The folder {folder} is not a {what} of this platform (its name breaks the "
                                 "naming rule); it was left alone and not recorded.")
        return False

    def _insert(self, conn: sqlite3.Connection, table: str, row: dict) -> None:
        conn.execute(f"INSERT OR IGNORE INTO {table} ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                     list(row.values()))

    # ---- datasets
    def datasets(self, bucket: Path, refresh: bool) -> None:
        from churn_core.storage.objects import LocalObjectStore

        store = LocalObjectStore(self.home, bucket.name)
        if refresh:  # a record whose files are gone (deleted after the backup) goes too
            for row in self.catalog.query("SELECT name, raw_key FROM datasets"):
                if not store.exists(row["raw_key"]) and (bucket / "datasets").is_dir():
                    with self.catalog.tx() as conn:
                        conn.execute("DELETE FROM datasets WHERE name = ?", (row["name"],))
                    self.report.removed["datasets"].append(row["name"])
        for folder in sorted((bucket / "datasets").glob("*")):
            if not folder.is_dir() or not self._named(folder, "dataset") or self._exists("datasets", folder.name):
                continue
            try:
                row = self._dataset_row(store, folder.name)
            except (ChurnError, OSError, ValueError, KeyError) as exc:
                self.report.notes.append(f"Dataset {folder.name} was not restored ({exc}).")
                continue
            with self.catalog.tx() as conn:
                self._insert(conn, "datasets", row)
                self.catalog.event("dataset", row["name"], "found on disk when the catalog was rebuilt", conn)
            self.report.added["datasets"].append(row["name"])

    def _dataset_row(self, store, name: str) -> dict:
        from churn_core.paths import entry_module

        rules = entry_module("dataset_schema")
        prefix = f"datasets/{name}/"
        raw_key = f"{prefix}raw/{name}.csv"
        keys = {"raw_key": raw_key, "train_key": f"{prefix}train/train.csv", "test_key": f"{prefix}test/test.csv"}
        schema = json.loads(store.get_bytes(f"{prefix}train/{rules.SCHEMA_FILE}"))
        raw = store.get_bytes(raw_key)
        parts = {part: rules.read_text_table(io.BytesIO(store.get_bytes(keys[f"{part}_key"])))
                 for part in ("train", "test")}
        target = schema["target"]
        labels = [rules.encode_target(parts[p][target], target, p)[0] for p in ("train", "test")]
        total = sum(len(x) for x in labels)
        churned = float(sum(float(x.sum()) for x in labels))
        return {
            "name": name, "created_at": store.path(raw_key).stat().st_mtime,
            "source": "found on disk (catalog rebuilt)",
            "rows": total, "n_train": len(parts["train"]), "n_test": len(parts["test"]),
            "churn_rate": churned / total if total else 0.0, "target": target,
            "positive_label": schema.get("positive_label", "1"),
            "columns_json": dumps(list(parts["train"].columns)), "schema_json": dumps(schema),
            "warnings_json": dumps([]), "sha256": sha256_bytes(raw), "size_bytes": len(raw),
            "test_size": round(len(parts["test"]) / total, 4) if total else 0.3, "seed": -1, **keys,
        }

    # ---- jobs and models
    def _bucket_jobs(self) -> dict[str, Path]:
        found = {}
        for bucket in self.buckets:
            for folder in sorted((bucket / "jobs").glob("*")):
                if folder.is_dir():
                    found.setdefault(folder.name, bucket)
        return found

    def jobs(self, refresh: bool) -> None:
        in_buckets = self._bucket_jobs()
        names = set(in_buckets) | {p.name for p in (self.home / "jobs").glob("*") if p.is_dir()}
        drivers = _running_drivers(self.home)
        for name in sorted(names):
            if not self._named(self.home / "jobs" / name, "job"):
                continue
            existing = self.catalog.one("SELECT status FROM jobs WHERE name = ? COLLATE NOCASE", (name,))
            if existing is not None and not (refresh and existing["status"] in ("InProgress", "Stopping")):
                if existing["status"] == "Completed":
                    self._ensure_model(name)
                continue
            if existing is not None and name in drivers:
                continue  # still running: its driver will record the outcome
            default = self.buckets[0] if self.buckets else self.home / "buckets" / "churn-local"
            bucket = in_buckets.get(name) or default
            try:
                row, note = self._job_row(name, bucket, drivers.get(name))
            except (ChurnError, OSError, ValueError) as exc:
                self.report.notes.append(f"Job {name} was not restored ({exc}).")
                continue
            with self.catalog.tx() as conn:
                if existing is not None:
                    conn.execute("DELETE FROM jobs WHERE name = ?", (name,))
                self._insert(conn, "jobs", row)
                self.catalog.event("job", name, f"found on disk when the catalog was rebuilt: {row['status']}"
                                   + (f"; {note}" if note else ""), conn)
            self.report.added["jobs"].append(name)
            if row["status"] == "Completed":
                self._ensure_model(name)

    def _job_row(self, name: str, bucket: Path, driver_pid: int | None) -> tuple[dict, str]:
        from churn_core.storage.artifacts import read_json_member
        from churn_core.storage.objects import LocalObjectStore
        from churn_core.storage.unpack import ArtifactLimits

        folder = self.home / "jobs" / name
        try:
            manifest = json.loads((folder / "job.json").read_text())
        except (OSError, ValueError):
            manifest = {}
        store = LocalObjectStore(self.home, bucket.name)
        model_key, output_key = f"jobs/{name}/output/model.tar.gz", f"jobs/{name}/output/output.tar.gz"
        note = ""
        for key, local in ((model_key, folder / "output" / "model.tar.gz"),
                           (output_key, folder / "output" / "output.tar.gz")):
            if not store.exists(key) and local.is_file():  # packed, then the catalog failed: store it now
                store.put_file(key, local)
                note = "its packed model was stored in the bucket now"
        created = float(manifest.get("created_at") or _mtime(folder) or time.time())
        row = {
            "name": name, "backend": "local", "dataset": manifest.get("dataset") or "unknown",
            "dataset_sha256": manifest.get("dataset_sha256") or "",
            "algorithm": manifest.get("algorithm") or "unknown",
            "hyperparameters_json": manifest.get("hyperparameters_json") or "{}",
            "created_at": created, "code_sha256": manifest.get("code_sha256") or "",
            "instance_type": manifest.get("instance_type") or "local",
            "instance_count": int(manifest.get("instance_count") or 1),
        }
        limit = ArtifactLimits.from_env().max_model_bytes
        if store.exists(model_key):
            model = store.get_bytes(model_key, max_bytes=limit)
            metrics = read_json_member(model, "metrics.json")
            try:
                evaluation = read_json_member(model, "evaluation.json")
            except ChurnError:
                evaluation = {}
            if evaluation.get("algorithm") and row["algorithm"] == "unknown":
                row["algorithm"] = evaluation["algorithm"]
                row["hyperparameters_json"] = dumps(evaluation.get("hyperparameters") or {})
            row.update(status="Completed", secondary_status="Completed", ended_at=store.path(model_key).stat().st_mtime,
                       exit_code=0, metrics_json=dumps(metrics), model_key=model_key, model_sha256=sha256_bytes(model))
            if store.exists(output_key):
                row.update(output_key=output_key,
                           output_sha256=sha256_bytes(store.get_bytes(output_key, max_bytes=limit)))
            note = "; ".join(filter(None, [note, "the SHA-256 recorded now is the artifact's as found on disk"]))
        elif driver_pid:
            row.update(status="InProgress", secondary_status="Training", pid=driver_pid)
        elif (outcome := job_outcome.read(folder)) is not None and outcome["status"] in ("Failed", "Stopped"):
            row.update(status=outcome["status"], secondary_status=outcome["status"],
                       failure_reason=outcome.get("reason") or "", exit_code=outcome.get("exit_code"),
                       ended_at=float(outcome.get("ended_at") or created))
        else:
            reason = ("The catalog was rebuilt from disk and this job left no model: it failed or was stopped "
                      "before it finished (its log is kept). Start it again.")
            row.update(status="Failed", secondary_status="Failed", failure_reason=reason,
                       ended_at=_mtime(folder / "train.log") or created)
        return row, note

    def _ensure_model(self, name: str) -> None:
        job = self.catalog.one("SELECT * FROM jobs WHERE name = ?", (name,))
        if job is None or job["status"] != "Completed" or not job["model_key"] or self._exists("models", name):
            return
        with self.catalog.tx() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO models (name, job, dataset, dataset_sha256, algorithm, hyperparameters_json, "
                "code_sha256, artifact_key, artifact_sha256, metrics_json, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (name, name, job["dataset"], job["dataset_sha256"], job["algorithm"], job["hyperparameters_json"],
                 job["code_sha256"], job["model_key"], job["model_sha256"], job["metrics_json"],
                 job["ended_at"] or time.time()))
        self.report.added["models"].append(name)

    # ---- endpoints
    def endpoints(self, refresh: bool) -> None:
        by_folder: dict[str, list[endpoint_processes.EndpointProcess]] = {}
        for process in endpoint_processes.find(self.home):
            by_folder.setdefault(process.folder, []).append(process)
        live = set()
        for folder_name, processes in sorted(by_folder.items()):
            folder = self.home / "endpoints" / folder_name
            try:
                manifest = json.loads((folder / "endpoint.json").read_text())
            except (OSError, ValueError):
                self.report.notes.append(f"Running endpoint processes in {folder} have no endpoint.json (deployed by "
                                         "an older version): stop them with cleanup() and deploy again.")
                continue
            why = self._untrusted(manifest, folder_name)
            if why:
                self.report.notes.append(
                    f"The endpoint.json in {folder} is not trusted ({why}), so its endpoint was not recorded; its "
                    "processes keep running: stop them with cleanup() and deploy again.")
                continue
            name, uid = manifest["name"], manifest.get("uid") or ""
            live.add((name, uid))
            current = self.catalog.one(
                "SELECT uid, config, pending_config FROM endpoints WHERE name = ? COLLATE NOCASE", (name,))
            if current is not None and current["uid"] == uid and (
                    current["config"] == manifest["config"] or current["pending_config"]):
                continue  # the row knows it (an endpoint updated after a backup: its manifest's configuration)
            self._add_endpoint(manifest, folder, processes, replace=current is not None)
        if refresh:  # rows of a backup whose endpoint was deleted since (its folder is gone)
            for row in self.catalog.query("SELECT name, uid, workdir, status FROM endpoints WHERE backend = 'local'"):
                folder = Path(row["workdir"]) if row["workdir"] else None
                if row["status"] in ACTIVE_ENDPOINT and (row["name"], row["uid"]) not in live and \
                        (folder is None or not folder.exists()):
                    self._drop_endpoint(row["name"])
                    self.report.removed["endpoints"].append(row["name"])

    def _untrusted(self, manifest, folder_name: str) -> str:
        """Why an endpoint manifest found on disk cannot be recorded ('' when it can): every name follows the
        naming rule and the folder is the endpoint's own, every key stays inside the bucket, and every model it
        names is a model this catalog knows with exactly that artifact (key and SHA-256)."""
        if not isinstance(manifest, dict):
            return "it is not a JSON object"
        uid = manifest.get("uid") or ""
        if not isinstance(uid, str) or not re.fullmatch(r"[0-9a-f]{0,64}", uid):
            return "its uid is not one the product writes"
        variants = manifest.get("variants") or [{"variant": "AllTraffic", "weight": 1.0, "deployed": {
            "name": manifest.get("deployed_model"), "model": manifest.get("model"),
            "artifact_key": manifest.get("artifact_key"), "artifact_sha256": manifest.get("artifact_sha256")}}]
        names = [("name", manifest.get("name")), ("config", manifest.get("config")),
                 ("deployed_model", manifest.get("deployed_model")), ("model", manifest.get("model"))]
        if not isinstance(variants, list) or not all(isinstance(v, dict) and isinstance(v.get("deployed"), dict)
                                                     for v in variants):
            return "its variants are not a list of variants"
        for variant in variants:
            names += [("variant", variant.get("variant")), ("deployed model", variant["deployed"].get("name")),
                      ("model", variant["deployed"].get("model"))]
        for what, value in names:
            if not isinstance(value, str) or not NAME_RE.fullmatch(value):
                return f"its {what} {str(value)[:60]!r} breaks the naming rule"
        if folder_name != folder_name_of(manifest["name"], uid):
            return f"it names endpoint {manifest['name']!r}, not the one whose folder it is in"
        count = manifest.get("instance_count")
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 64:
            return f"its instance_count {count!r} is not a whole number of instances"
        if manifest["model"] not in {v["deployed"]["model"] for v in variants}:
            return f"it names model {manifest['model']!r}, which none of its variants serves"
        for variant in variants:
            deployed = variant["deployed"]
            key, digest = deployed.get("artifact_key"), deployed.get("artifact_sha256")
            weight = variant.get("weight")
            if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 <= weight < float("inf"):
                return f"variant {variant['variant']!r} has the weight {weight!r}"
            if not isinstance(key, str) or not safe_key(key):
                return f"its artifact key {str(key)[:80]!r} is not a key inside the bucket"
            model = self.catalog.one("SELECT artifact_key, artifact_sha256 FROM models WHERE name = ?",
                                     (deployed["model"],))
            if model is None:
                return f"it names model {deployed['model']!r}, which is not a model of this platform"
            if (model["artifact_key"], model["artifact_sha256"]) != (key, digest):
                return (f"it gives model {deployed['model']!r} the artifact {key} with SHA-256 {str(digest)[:12]}…, "
                        f"but that model's artifact is {model['artifact_key']} with SHA-256 "
                        f"{model['artifact_sha256'][:12]}…")
        return ""

    def _add_endpoint(self, manifest: dict, folder: Path, processes: list, replace: bool) -> None:
        name = manifest["name"]
        supervisor = next((p.pid for p in processes if p.role == "supervisor"), None)
        masters = [p.pid for p in processes if p.role == "server" and _leads_group(p.pid)]
        url, port = "", None
        for match in _SERVING_LINE.finditer(_read(folder / "server.log")):
            if match.group(1) == name:
                url = match.group(2)
        if url:
            port = int(url.rsplit(":", 1)[1])
        now = time.time()
        variants = manifest.get("variants") or [{"variant": "AllTraffic", "weight": 1.0, "deployed": {
            "name": manifest["deployed_model"], "model": manifest["model"], "artifact_key": manifest["artifact_key"],
            "artifact_sha256": manifest["artifact_sha256"]}}]  # an endpoint deployed before variants existed
        with self.catalog.tx() as conn:
            if replace:
                self._drop_endpoint(name, conn)
            for variant in variants:
                deployed = {k: variant["deployed"][k] for k in DEPLOYED_COLUMNS
                            if variant["deployed"].get(k) is not None}
                deployed.setdefault("created_at", manifest.get("created_at") or now)
                self._insert(conn, "deployed_models", deployed)
                self._insert(conn, "endpoint_variants", {"config": manifest["config"], "variant": variant["variant"],
                                                         "deployed_model": deployed["name"],
                                                         "weight": float(variant["weight"])})
            self._insert(conn, "endpoint_configs", {
                "name": manifest["config"], "deployed_model": manifest["deployed_model"],
                "instance_type": manifest["instance_type"], "instance_count": manifest["instance_count"],
                "created_at": manifest.get("created_at") or now})
            self._insert(conn, "endpoints", {
                "name": name, "backend": "local", "config": manifest["config"], "model": manifest["model"],
                "status": "InService" if masters and url else "Creating", "url": url, "port": port,
                "pid": supervisor, "server_pid": masters[0] if masters else None, "workdir": str(folder),
                "instance_type": manifest["instance_type"], "instance_count": manifest["instance_count"],
                "created_at": manifest.get("created_at") or now, "updated_at": now,
                "in_service_at": now if masters else None, "uid": manifest.get("uid") or "",
                "generation": int(manifest.get("generation") or 1)})
            self.catalog.event("endpoint", name, "found running when the catalog was rebuilt", conn)
        self.report.added["endpoints"].append(name)

    def _drop_endpoint(self, name: str, conn: sqlite3.Connection | None = None) -> None:
        def drop(c: sqlite3.Connection) -> None:
            row = c.execute("SELECT config, pending_config FROM endpoints WHERE name = ?", (name,)).fetchone()
            if row:
                for config in (row["pending_config"], row["config"]):
                    if config:
                        delete_config(c, config)  # its variants and deployed models too
            c.execute("DELETE FROM endpoints WHERE name = ?", (name,))

        if conn is not None:
            drop(conn)
        else:
            with self.catalog.tx() as own:
                drop(own)


def _running_drivers(home: Path, module: str = "churn_core.backends.local.job_driver",
                     flag: str = "--job") -> dict[str, int]:
    """Drivers (of jobs, or of ``module``) of ``home`` that still run: name → pid (found by their command line)."""
    import psutil

    found = {}
    wanted = f"--home {home}"
    for proc in psutil.process_iter(["pid", "cmdline", "status"]):
        try:
            args = proc.info["cmdline"] or []
            line = " ".join(args)
            if proc.info["status"] == psutil.STATUS_ZOMBIE or module not in line \
                    or wanted not in line or flag not in args:
                continue
            found[args[args.index(flag) + 1]] = proc.pid
        except (psutil.Error, IndexError):
            continue
    return found


def _leads_group(pid: int) -> bool:
    try:
        return os.getpgid(pid) == pid
    except OSError:
        return False


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


# ---- transforms and tuning jobs: the records kept in their folders (catalog/kept_records.py)


def restore_kept(catalog, home: Path, running: dict[str, dict[str, int]]) -> dict[str, list[str]]:
    """Record again the transforms and tuning jobs whose folder keeps a record the catalog lacks, or knows only
    as still running: ``{"transforms": [...], "tuning jobs": [...]}`` of the names recorded. ``running``: kind
    → {name: pid} of the drivers that still run (their jobs stay InProgress, with that pid)."""
    added: dict[str, list[str]] = {"transforms": [], "tuning jobs": []}
    for kind, (folder_name, table) in kept_records.KINDS.items():
        for where in sorted((Path(home) / folder_name).glob("*")):
            record = kept_records.read(where) if where.is_dir() else None
            if record is None or record.get("kind") != kind or record["row"].get("name") != where.name:
                continue  # no record, or one that does not describe this folder: never trusted
            row, name = record["row"], where.name
            existing = catalog.one(f"SELECT status FROM {table} WHERE name = ? COLLATE NOCASE", (name,))
            pid = running.get(kind, {}).get(name)
            if existing is not None and (existing["status"] in kept_records.TERMINAL or pid):
                continue  # the catalog knows how it ended, or its driver still runs and will record it
            with catalog.tx() as conn:
                columns = {c["name"] for c in conn.execute(f"PRAGMA table_info({table})").fetchall()}
                values = {k: v for k, v in row.items() if k in columns}
                ended = values.get("status") in kept_records.TERMINAL
                if not ended:
                    values.update(status="InProgress", pid=pid)
                conn.execute(f"DELETE FROM {table} WHERE name = ?", (name,))
                conn.execute(f"INSERT INTO {table} ({', '.join(values)}) VALUES ({', '.join('?' * len(values))})",
                             list(values.values()))
                if kind == "tuning":
                    _kept_trials(conn, name, record.get("trials") or [])
                catalog.event(kind, name,
                              f"found on disk when the catalog was restored or rebuilt: {values['status']}", conn)
                if not ended and not pid:
                    outcomes.finish(catalog, kind, name, "Failed",
                                    "The catalog was restored or rebuilt after this job started, and it left no "
                                    "result: its process is gone (its log is kept). Start it again.", conn=conn,
                                    event="Failed: it left no result before the catalog was restored or rebuilt")
            added["transforms" if kind == "transform" else "tuning jobs"].append(name)
    return added


def _kept_trials(conn: sqlite3.Connection, name: str, trials: list[dict]) -> None:
    columns = {c["name"] for c in conn.execute("PRAGMA table_info(tuning_trials)").fetchall()}
    for trial in trials:
        values = {k: v for k, v in trial.items() if k in columns}
        if values.get("tuning_job") != name:
            continue
        conn.execute(f"INSERT OR REPLACE INTO tuning_trials ({', '.join(values)}) "
                     f"VALUES ({', '.join('?' * len(values))})", list(values.values()))
