"""Monitoring: a model's training baseline, what its endpoints captured, drift reports and their history.

The baseline is the ``statistics.json`` training wrote beside the model; a model trained before that
existed gets one computed on demand from its stored training data (and cached in the bucket).
Captured requests are read from the bucket under ``capture/<endpoint>/…`` on both backends (the
local server writes them there; on SageMaker the endpoint's ``DataCaptureConfig`` points there).
Every report is recorded in the catalog, and its violations written beside the capture, so the
history survives dashboard restarts.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Callable

import pandas as pd

from churn_core.catalog import monitoring_records as records
from churn_core.monitoring import capture, drift
from churn_core.monitoring.alerts import Alerts
from churn_core.storage.artifacts import read_json_member
from churn_core.catalog.database import Catalog, dumps, loads
from churn_core.errors import NotFoundError, ValidationError
from churn_core.paths import entry_module
from churn_core.storage.unpack import load_verified
from churn_core.wording import lacks_features, noun, plural

if TYPE_CHECKING:  # pragma: no cover
    from churn_core.data.datasets import DatasetService
    from churn_core.storage.objects import ObjectStore

MIN_ROWS = drift.MIN_SAMPLE["psi"]  # what a report needs to judge every measure (fewer: rows say so)
MANIFEST = "endpoint.json"


class NoCapturedData(ValidationError):
    """A window holds no captured customer (the message says why: capture off, or no traffic in it)."""


class Monitoring:
    """Baselines, captured data and drift reports of the models in ``catalog`` and ``store``. A model is read
    through ``get_model`` (its row), ``model_schema`` and ``test_predictions`` (labels and probabilities of its
    test split); ``read_customers`` reads an uploaded CSV; ``cache`` holds baselines beside the platform's other
    per-artifact reads (cleared with them)."""

    def __init__(self, catalog: Catalog, store: "ObjectStore", datasets: "DatasetService", *,
                 get_model: Callable[[str], dict], model_schema: Callable[[str], dict],
                 test_predictions: Callable[[str], tuple], read_customers: Callable[[bytes], pd.DataFrame],
                 cache: dict):
        self.catalog = catalog
        self.store = store
        self.datasets = datasets
        self.get_model = get_model
        self.model_schema = model_schema
        self.test_predictions = test_predictions
        self.read_customers = read_customers
        self._cache = cache
        self._files: dict[str, tuple[int, pd.DataFrame]] = {}  # capture file → (size read, its rows)
        self.alerts = Alerts(catalog)  # where a drifted scheduled report is posted (the webhook setting)

    # ---- the baseline --------------------------------------------------------------------------
    def baseline(self, model: str) -> dict:
        """``statistics.json`` of the model's training data (computed once for models without one)."""
        return self._monitor_files(model)[0]

    def thresholds(self, model: str) -> dict[str, float]:
        """The model's drift thresholds: those last set for it (``set_thresholds``, kept with their history in the
        catalog) over those stored with it (``churn_thresholds`` in its ``constraints.json``), over the defaults
        (``entry/baseline.THRESHOLDS``): a later change of the defaults never re-judges a model trained before it."""
        stored = (self._monitor_files(model)[1].get("monitoring_config") or {}).get("churn_thresholds") or {}
        history = records.thresholds_history(self.catalog, model)
        chosen = loads(history[0]["thresholds_json"], {}) if history else {}
        return drift.thresholds({**{k: float(v) for k, v in stored.items()}, **chosen})

    def set_thresholds(self, model: str, thresholds: dict | None = None, note: str | None = None) -> dict:
        """Set some of the model's drift thresholds (the others keep theirs), recorded with who, when and why;
        without ``thresholds`` only read. Returns ``{"thresholds": in force, "history": newest first}``."""
        import getpass

        self.get_model(model)  # NotFoundError for an unknown model
        if thresholds:
            known = set(drift.thresholds())
            unknown = sorted(set(thresholds) - known)
            if unknown:
                raise ValidationError(f"Unknown drift {noun(len(unknown), 'threshold')} {', '.join(unknown)}; "
                                      "set any of "
                                      f"{', '.join(sorted(known))}.")
            clean = {}
            for key, value in thresholds.items():
                try:
                    clean[key] = float(value)
                except (TypeError, ValueError):
                    clean[key] = float("nan")
                if not 0 < clean[key] < 1e6:
                    raise ValidationError(f"The {key} threshold must be a positive number (got {value!r}).")
            history = records.thresholds_history(self.catalog, model)
            merged = {**(loads(history[0]["thresholds_json"], {}) if history else {}), **clean}
            records.add_thresholds(self.catalog, model, dumps(merged), note or "", getpass.getuser())
        return {"thresholds": self.thresholds(model), "history": self.thresholds_history(model)}

    def thresholds_history(self, model: str) -> list[dict]:
        """Who set which thresholds for the model, when and why (newest first)."""
        return [dict(r, thresholds=loads(r["thresholds_json"], {})) for r in records.thresholds_history(self.catalog,
                                                                                                          model)]

    def _monitor_files(self, model: str) -> tuple[dict, dict]:
        """(``statistics.json``, ``constraints.json``) of the model, from one verified read of its artifact; a model
        trained before baselines gets them computed once and kept beside (``monitoring/baselines/<sha>/``)."""
        row = self.get_model(model)
        key = f"monitor-files:{row['artifact_sha256']}"
        if key in self._cache:
            return self._cache[key]
        folder = f"monitoring/baselines/{row['artifact_sha256']}/"
        data = load_verified(self.store, row["artifact_key"], row["artifact_sha256"])  # one read, capped, hashed
        try:
            stats = read_json_member(data, "statistics.json")
        except ValidationError:
            if self.store.exists(folder + "statistics.json"):
                stats = json.loads(self.store.get_bytes(folder + "statistics.json"))
            else:
                stats = self._compute_baseline(model)
                self.store.put_bytes(folder + "statistics.json", json.dumps(stats).encode())
                self.store.put_bytes(folder + "constraints.json",
                                     json.dumps(entry_module("baseline").constraints(stats)).encode())
        try:
            constraints = read_json_member(data, "constraints.json")
        except ValidationError:  # a model trained before baselines: the one written beside its computed baseline
            kept = folder + "constraints.json"
            constraints = json.loads(self.store.get_bytes(kept)) if self.store.exists(kept) else {}
        self._cache[key] = (stats, constraints)
        return stats, constraints

    def _compute_baseline(self, model: str) -> dict:
        from churn_core.decisions.model_runtime import read_text

        row = self.get_model(model)
        try:
            ds = self.datasets.get(row["dataset"])
        except NotFoundError:
            raise NotFoundError(f"Model {model} has no baseline and its dataset {row['dataset']!r} was deleted, so "
                                "none can be computed. Retrain the model to get one.") from None
        schema = self.model_schema(model)
        rules = entry_module("dataset_schema")
        train = rules.typed_features(read_text(self.store.get_bytes(ds.train_key)),
                                     {"features": schema["features"]}, "train")
        _, proba = self.test_predictions(model)
        return entry_module("baseline").statistics(train, schema["features"], proba)

    # ---- captured data ---------------------------------------------------------------------------
    def captured(self, endpoint: str, since: float | None = None, until: float | None = None) -> pd.DataFrame:
        """Every customer the endpoint's captured requests held (features, probability, time, variant), whatever the
        requests' format; ``.attrs["skipped"]`` counts malformed lines and unreadable requests passed over.
        The window is whole seconds from ``since`` up to, not including, ``until``'s second: consecutive windows
        (the scheduler's) count each customer once."""
        model = self._endpoint_model(endpoint)
        schema = self.model_schema(model)
        frames = []
        for key in self.store.list(capture.endpoint_prefix(endpoint)):
            if not key.endswith(".jsonl"):
                continue
            hour = capture.hour_of(key, endpoint)
            if since is not None and hour + 3600 <= since or until is not None and hour > until:
                continue
            frames.append(self._capture_file(key, endpoint, schema))
        skipped = sum(int(f.attrs.get("skipped", 0)) for f in frames)
        frame = pd.concat([f for f in frames if len(f)], ignore_index=True) if any(len(f) for f in frames) \
            else capture.records_to_frame([], schema)
        if len(frame):
            times = frame["inference_time"]
            keep = pd.Series(True, index=frame.index)
            if since is not None:  # capture times have whole seconds, as SageMaker writes them
                keep &= times >= pd.Timestamp(int(since), unit="s", tz="UTC")
            if until is not None:
                keep &= times < pd.Timestamp(int(until), unit="s", tz="UTC")
            frame = frame[keep].sort_values("inference_time", kind="stable").reset_index(drop=True)
        frame.attrs["skipped"] = skipped  # capture lines or requests that held no readable customer
        return frame

    def _capture_file(self, key: str, endpoint: str, schema: dict) -> pd.DataFrame:
        """One capture file as rows, cached by its size (files only grow, a line at a time)."""
        data = self.store.get_bytes(key)
        cached = self._files.get(key)
        if cached is not None and cached[0] == len(data):
            return cached[1]
        records = capture.parse_lines(data.decode("utf-8", errors="replace"))
        frame = capture.records_to_frame(records, schema, capture.variant_of(key, endpoint))
        self._files[key] = (len(data), frame)
        return frame

    def _endpoint_model(self, endpoint: str) -> str:
        row = records.endpoint_model(self.catalog, endpoint)
        if row:
            return row["model"]
        key = capture.endpoint_prefix(endpoint) + MANIFEST
        if self.store.exists(key):  # a deleted endpoint: its captured data stays the user's, and says whose it is
            return json.loads(self.store.get_bytes(key))["model"]
        raise NotFoundError(f"No endpoint named {endpoint!r}, and no captured data of one. Pick one on the "
                            "Monitor page.")

    def note_capture(self, endpoint: str, model: str, percent: float) -> None:
        """Beside the captured files: which model the endpoint served, so they stay readable after it is gone."""
        key = capture.endpoint_prefix(endpoint) + MANIFEST
        self.store.put_bytes(key, json.dumps({"endpoint": endpoint, "model": model, "percent": percent,
                                              "at": time.time()}).encode())

    # ---- drift ------------------------------------------------------------------------------------
    def report(self, endpoint: str | None = None, data=None, model: str | None = None, since: float | None = None,
               thresholds: dict | None = None, record: bool = True, record_unjudged: bool = True,
               until: float | None = None) -> pd.DataFrame:
        """Compare a window of captured data (``endpoint``, from ``since``), or a file of customers
        (``data``: CSV bytes or a DataFrame of text), with the model's baseline. With ``record_unjudged`` False
        (the scheduler) a report with too little data to judge anything is not kept: its window keeps growing;
        ``until`` ends the window (the scheduler's run start, where its next window begins)."""
        if endpoint is None and data is None:
            raise ValidationError("Give an endpoint (its captured requests) or data (a CSV of customers) to compare.")
        now = time.time() if until is None else until  # the window's end, as recorded
        if data is not None:
            model = model or (self._endpoint_model(endpoint) if endpoint else None)
            if not model:
                raise ValidationError("Say which model's baseline to compare the file with.")
            schema = self.model_schema(model)
            text = data if hasattr(data, "columns") else self.read_customers(data)
            missing = [f["name"] for f in schema["features"] if f["name"] not in text.columns]
            if missing:
                raise ValidationError(lacks_features("The file", missing) + ".")
            current = entry_module("dataset_schema").typed_features(text, {"features": schema["features"]}, "the file")
            probabilities, source, start = None, "file", None
        else:
            model = model or self._endpoint_model(endpoint)
            frame = self.captured(endpoint, since=since, until=until)
            if not len(frame):
                raise NoCapturedData(self._no_capture(endpoint, frame.attrs.get("skipped", 0)))
            current, probabilities = frame, frame["churn_probability"].dropna().to_numpy()
            source, start = "capture", since
        limits = {**self.thresholds(model), **(thresholds or {})}  # the model's own, then what the caller asks
        result = drift.report(self.baseline(model), current, probabilities, limits)
        result.attrs["skipped"] = int(getattr(current, "attrs", {}).get("skipped", 0))
        if record and (record_unjudged or result.attrs["verdict"] != "not enough data"):
            self._record(endpoint or "", model, source, start, now, len(current), result)
        return result

    def _no_capture(self, endpoint: str, skipped: int) -> str:
        """Why a window holds no captured customer, said as it is (capture off, or on with no traffic in it)."""
        row = records.endpoint_model(self.catalog, endpoint)
        percent = float((row or {}).get("capture_percent") or 0)
        bad = f" ({plural(skipped, 'capture record')} unreadable and skipped)" if skipped else ""
        if row is not None and not percent:
            cause = f"capture is off for {endpoint}: turn it on (Monitor page) and let traffic arrive"
        elif row is not None:
            cause = (f"capture is on ({percent:g} % of requests), but no request was captured in this window: send "
                     "traffic or widen the window")
        else:
            cause = f"{endpoint} is deleted, and nothing it captured falls in this window: widen the window"
        return (f"No captured customer for {endpoint} in this window{bad}; a drift report needs at least "
                f"{MIN_ROWS} to judge: {cause}.")

    def _record(self, endpoint: str, model: str, source: str, start: float | None, end: float, rows: int,
                result: pd.DataFrame) -> None:
        stamp = datetime.fromtimestamp(end, timezone.utc).strftime("%Y-%m-%dT%H-%M-%SZ")
        folder = f"{capture.endpoint_prefix(endpoint)}monitoring/" if endpoint else f"monitoring/{model}/"
        key = f"{folder}{stamp}/constraint_violations.json"
        self.store.put_bytes(key, json.dumps(drift.violations(result), indent=1).encode())
        if endpoint and source == "capture":  # the endpoint's /metrics shows its latest report as gauges
            self.store.put_bytes(capture.latest_report_key(endpoint), json.dumps(
                {"at": end, "n": rows, "verdict": result.attrs.get("verdict", ""),
                 "rows": json.loads(result.to_json(orient="records"))}).encode())
        records.record_report(self.catalog, endpoint, model, source, start, end, rows,
                              dumps(drift.drifted_features(result)), result.to_json(orient="records"), key)

    def history(self, endpoint: str, limit: int = 100) -> list[dict]:
        rows = records.reports(self.catalog, endpoint, limit)
        return [dict(r, drifted=loads(r["drifted_json"], []), report=pd.read_json(io_text(r["report_json"])))
                for r in rows]

    def latest(self, endpoint: str) -> dict | None:
        rows = self.history(endpoint, 1)
        return rows[0] if rows else None

    # ---- schedules ----------------------------------------------------------------------------------

def io_text(text: str):
    import io

    return io.StringIO(text)
