"""Customer data with a lifecycle: where customer rows live, deleting a dataset with what was derived from it,
and a retention (days) that does the same by age.

Customer rows live in (both backends; the bucket is a folder locally, S3 on SageMaker):

- ``upload``, ``train split``, ``test split``: ``datasets/<name>/`` (the dataset itself);
- ``training job input``: a local job's copy of its channels, ``<home>/jobs/<job>/input/`` (removed when the
  job ends, left only by a crash; SageMaker jobs read the dataset's prefix in place, no copy in the bucket);
- ``transform input`` / ``transform output`` / ``transform errors``: ``transforms/<job>/`` (results keep the
  ID columns asked for; SageMaker's parts and set-aside lines are under the same prefix);
- ``capture``: ``capture/<endpoint>/`` (every captured request with its answer).

A model's artifact (``model.tar.gz``: the pipeline, its schema, the baseline's histograms and quantile
sketches, a mean row for explanations) and its ``output.tar.gz`` (evaluation metrics, curves, importances)
hold no customer rows: they stay, with the registry's versions and the metrics, as metadata. Drift reports
(``…/monitoring/``) hold statistics only.

``delete(name, derived=True)`` deletes the dataset and, first, everything derived from it: its models'
transform files, the captures of every endpoint that served one of its models (an endpoint that still
captures is refused: turn its capture off or delete it first), local jobs' input copies; an audit event
records what went. The retention (``CHURN_DATA_RETENTION_DAYS``, 0: off) deletes by age: datasets older than
it with everything derived, and older transform files, capture hours and job inputs of any dataset.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pandas as pd

from churn_core.catalog import customer_data as records
from churn_core.catalog.datasets import job_using
from churn_core.errors import ConflictError, ValidationError
from churn_core.monitoring.capture import CAPTURE_PREFIX, endpoint_prefix, hour_of
from churn_core.monitoring.capture_bounds import DEFAULT_RETENTION_DAYS
from churn_core.records import TRANSFORM_ACTIVE
from churn_core.transform.rules import transform_prefix
from churn_core.wording import plural

COLUMNS = ["place", "dataset", "rows", "bytes", "oldest", "location"]
MANIFEST = "endpoint.json"  # beside an endpoint's captured files: the model it served (monitoring writes it)
DAY_S = 86_400.0


class DataLifecycle:
    def __init__(self, catalog, store, datasets, home: Path, retention_days: float = 0.0) -> None:
        self.catalog, self.store, self.datasets = catalog, store, datasets
        self.home = Path(home)
        self.retention_days = float(retention_days or 0)

    @classmethod
    def connected(cls, catalog, store, datasets, settings) -> "DataLifecycle":
        """The lifecycle of a platform being connected: the retention in force is applied now (and by
        whoever calls ``apply_retention`` on a schedule)."""
        lifecycle = cls(catalog, store, datasets, settings.home, settings.data_retention_days)
        lifecycle.apply_retention()
        return lifecycle

    # ---- where customer rows live ------------------------------------------------------------------
    def customer_data(self) -> pd.DataFrame:
        """One row per place customer rows live: place, dataset, rows, bytes, oldest (UTC), location."""
        rows: list[dict] = []
        for ds in self.datasets.list():
            sizes = {key: (size, mtime) for key, size, mtime in self.store.sizes(f"datasets/{ds.name}/")}
            for place, key, count in (("upload", ds.raw_key, ds.rows), ("train split", ds.train_key, ds.n_train),
                                      ("test split", ds.test_key, ds.n_test)):
                if key in sizes:
                    rows.append(_row(place, ds.name, count, sizes[key][0], ds.created_at, key))
        for job in records.jobs(self.catalog):
            folder = self._job_input(job["name"])
            files = [p for p in folder.rglob("*") if p.is_file()] if folder.is_dir() else []
            if files:
                rows.append(_row("training job input", job["dataset"], sum(_csv_rows(p) for p in files),
                                 sum(p.stat().st_size for p in files), min(p.stat().st_mtime for p in files),
                                 str(folder)))
        trained_on = records.dataset_of_models(self.catalog)
        for t in records.transforms(self.catalog):
            sizes = {key: (size, mtime) for key, size, mtime in self.store.sizes(transform_prefix(t["name"]))}
            counts = {t["input_key"]: t["rows_in"], t["output_key"]: t["rows_scored"],
                      t["errors_key"]: t["rows_failed"]}
            for key, (size, mtime) in sizes.items():
                place = ("transform input" if key == t["input_key"] or "/input/" in key else
                         "transform errors" if key == t["errors_key"] else "transform output")
                rows.append(_row(place, trained_on.get(t["model"], ""), counts.get(key), size, mtime, key))
        for endpoint, (size, oldest, count) in self._captures().items():
            rows.append(_row("capture", ", ".join(self._capture_datasets(endpoint, trained_on)), count, size, oldest,
                             endpoint_prefix(endpoint)))
        frame = pd.DataFrame(rows, columns=COLUMNS)
        frame["oldest"] = pd.to_datetime(frame["oldest"], unit="s", utc=True)
        return frame

    def _captures(self, count: bool = True) -> dict[str, tuple[int, float, int | None]]:
        """endpoint → (bytes, oldest, captured records) of its capture files."""
        found: dict[str, list] = {}
        local = count and hasattr(self.store, "path")  # reading every object back from S3 to count lines: not done
        for key, size, mtime in self.store.sizes(f"{CAPTURE_PREFIX}/"):
            if not key.endswith(".jsonl"):
                continue
            entry = found.setdefault(key.split("/")[1], [0, mtime, 0 if local else None])
            entry[0] += size
            entry[1] = min(entry[1], mtime)
            if local:
                entry[2] += _lines(self.store.path(key))
        return {k: tuple(v) for k, v in found.items()}

    def _capture_datasets(self, endpoint: str, trained_on: dict[str, str]) -> list[str]:
        models = set(records.served_models(self.catalog).get(endpoint, set()))
        try:
            models.add(json.loads(self.store.get_bytes(endpoint_prefix(endpoint) + MANIFEST)).get("model") or "")
        except Exception:  # noqa: BLE001 - no manifest (or an unreadable one): the catalog's history says
            pass
        return sorted({trained_on[m] for m in models if m in trained_on})

    def _job_input(self, job: str) -> Path:
        return self.home / "jobs" / job / "input"

    # ---- deleting --------------------------------------------------------------------------------
    def delete(self, name: str, derived: bool = False, why: str = "") -> dict:
        """Delete a dataset; with ``derived`` first everything derived from it (see the module's words)."""
        if not derived:
            self.datasets.delete(name)
            return {"dataset": name}
        ds = self.datasets.get(name)  # NotFoundError for an unknown name
        busy = job_using(self.catalog, ds.name)
        if busy:
            raise ConflictError(f"Training job {busy} is still using {ds.name!r}. Stop it or wait, then delete.")
        models = records.models_of_dataset(self.catalog, ds.name)
        transforms = records.transforms(self.catalog, models)
        running = [t["name"] for t in transforms if t["status"] in TRANSFORM_ACTIVE]
        if running:
            raise ConflictError(f"Transform job {running[0]} of a model trained on {ds.name!r} is still running. "
                                "Stop it or wait, then delete the dataset with everything derived.")
        served = set(records.endpoints_serving(self.catalog, models))
        trained_on = records.dataset_of_models(self.catalog)
        served |= {ep for ep in self._captures(count=False) if ds.name in self._capture_datasets(ep, trained_on)}
        live = records.capturing_endpoints(self.catalog)
        capturing = sorted(ep for ep in served if live.get(ep, 0) > 0)
        if capturing:
            raise ConflictError(f"Endpoint {capturing[0]} serves a model trained on {ds.name!r} and still captures "
                                "its traffic. Turn its capture off (Monitor) or delete it, then delete the dataset "
                                "with everything derived.")
        gone = {"transform files": sum(self.store.delete_prefix(transform_prefix(t["name"])) for t in transforms),
                "capture files": sum(self.store.delete_prefix(endpoint_prefix(ep)) for ep in sorted(served)),
                "job inputs": sum(self._remove_input(job) for job in models)}
        self.datasets.delete(ds.name)
        words = ", ".join(f"{n} {what}" for what, n in gone.items())
        self.catalog.event("dataset", ds.name, f"deleted with everything derived{why}: the dataset, {words} "
                                               f"(captures of {', '.join(sorted(served)) or 'no endpoint'}); models "
                                               "and registry versions kept as metadata")
        return dict(gone, dataset=ds.name, endpoints=sorted(served), transforms=[t["name"] for t in transforms])

    def _expire_orphan_captures(self, now: float) -> int:
        """Captures of endpoints that are gone get the default capture retention (a live endpoint's writer keeps
        its own); on SageMaker the S3 lifecycle rule on capture/ does this (docs/aws.md)."""
        if not hasattr(self.store, "path"):
            return 0
        live = records.capturing_endpoints(self.catalog)
        gone = {key.split("/")[1] for key, _, _ in self.store.sizes(f"{CAPTURE_PREFIX}/")} - set(live)
        if not gone:
            return 0
        return sum(self.store.delete_prefix(hour) for hour in
                   _capture_hours(self.store, now - DEFAULT_RETENTION_DAYS * DAY_S, gone))

    def _remove_input(self, job: str) -> int:
        folder = self._job_input(job)
        if not folder.is_dir():
            return 0
        count = sum(1 for p in folder.rglob("*") if p.is_file())
        shutil.rmtree(folder, ignore_errors=True)
        return count

    # ---- retention ---------------------------------------------------------------------------------
    def apply_retention(self, days: float | None = None, now: float | None = None) -> dict:
        """Delete customer data older than ``days`` (default: the retention setting; 0 or unset: nothing)."""
        days = self.retention_days if days is None else float(days)
        if days < 0:
            raise ValidationError(f"A retention is a number of days, 0 or more (got {days:g}).")
        now = time.time() if now is None else now
        done = {"datasets": [], "skipped": [], "transform files": 0, "capture files": 0, "job inputs": 0}
        done["capture files"] = self._expire_orphan_captures(now)
        if not days:
            return done
        cutoff = now - days * DAY_S
        for ds in self.datasets.list():
            if ds.created_at < cutoff:
                try:
                    self.delete(ds.name, derived=True, why=f" (retention of {days:g} days)")
                    done["datasets"].append(ds.name)
                except ConflictError as exc:  # busy: the next run takes it
                    done["skipped"].append(f"{ds.name}: {exc}")
        for t in records.transforms(self.catalog):
            if t["created_at"] < cutoff and t["status"] not in TRANSFORM_ACTIVE:
                done["transform files"] += self.store.delete_prefix(transform_prefix(t["name"]))
        for hour in _capture_hours(self.store, cutoff):
            done["capture files"] += self.store.delete_prefix(hour)
        for job in records.jobs(self.catalog):
            folder = self._job_input(job["name"])
            if folder.is_dir() and folder.stat().st_mtime < cutoff:
                done["job inputs"] += self._remove_input(job["name"])
        if any(done[k] for k in ("datasets", "transform files", "capture files", "job inputs")):
            self.catalog.event("data", "retention", f"customer data older than {days:g} days deleted: "
                                                    f"{plural(len(done['datasets']), 'dataset')}, "
                                                    f"{plural(done['transform files'], 'transform file')}, "
                                                    f"{plural(done['capture files'], 'capture file')}, "
                                                    f"{plural(done['job inputs'], 'job input file')}")
        return done


def _capture_hours(store, older_than: float, endpoints=None) -> list[str]:
    """The hour folders of captured files (of ``endpoints``, or all) whose hour ended before ``older_than``."""
    hours = set()
    for key, _, _ in store.sizes(f"{CAPTURE_PREFIX}/"):
        start = _hour(key) if key.endswith(".jsonl") else None
        if start is not None and start + 3600 < older_than and (endpoints is None or key.split("/")[1] in endpoints):
            hours.add(key.rsplit("/", 1)[0] + "/")
    return sorted(hours)


def _hour(key: str) -> float | None:
    """The end-exclusive start of a capture file's hour, or None for a key of another shape."""
    try:
        return hour_of(key, key.split("/")[1])
    except (ValueError, IndexError):
        return None


def _row(place: str, dataset: str, rows, size: int, oldest: float, location: str) -> dict:
    return {"place": place, "dataset": dataset, "rows": rows, "bytes": int(size), "oldest": oldest,
            "location": location}


def _lines(path: Path) -> int:
    count = 0
    try:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                count += block.count(b"\n")
    except OSError:
        return 0
    return count


def _csv_rows(path: Path) -> int:
    return max(0, _lines(path) - 1) if path.suffix == ".csv" else 0
