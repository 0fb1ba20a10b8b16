"""What an endpoint's workers counted: invocations, errors, latency, per variant and per minute.

Each worker keeps its counters in memory and writes them to ``<workdir>/stats/<pid>.json``
(atomically, at most every half second, from a background thread); :func:`read_stats` and
:func:`read_traffic` add the files up for the platform. Per variant there is also the
distribution of the churn probabilities it answered, so champion and challenger can be compared.
Prometheus metrics (``/metrics``) count the same events in prometheus-client's multiprocess mode.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import deque
from pathlib import Path
from typing import Optional

STATS_INTERVAL_S = 0.5
LATENCY_RING = 500
MINUTES_KEPT = 24 * 60
SCORE_BINS = 20  # churn probability histogram of a variant: [0, 0.05), … [0.95, 1]


def _variant_counters() -> dict:
    return {"invocations": 0, "errors": 0, "latency_sum_ms": 0.0, "rows": 0, "scores": [0] * SCORE_BINS,
            "latencies_ms": deque(maxlen=LATENCY_RING)}


class WorkerStats:
    """In-memory counters of one worker process, written to ``<folder>/<pid>.json``."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.lock = threading.Lock()
        self.pid: Optional[int] = None
        self._reset()

    def _reset(self) -> None:
        self.pid = os.getpid()
        self.invocations = 0
        self.errors = 0
        self.latency_sum_ms = 0.0
        self.latency_max_ms = 0.0
        self.ring: deque = deque(maxlen=LATENCY_RING)
        self.variants: dict[str, dict] = {}
        self.minutes: dict[int, list] = {}  # epoch minute → [invocations, latency sum ms, errors]
        self.last_invoked_at: Optional[float] = None
        self.last_write = 0.0
        self.dirty = False
        self.started_at = time.time()
        self._flusher: Optional[threading.Thread] = None
        previous = self.path()
        if previous.exists():  # a dead worker had this pid: carry its counts on
            try:
                data = json.loads(previous.read_text())
                self.invocations = int(data.get("invocations", 0))
                self.errors = int(data.get("errors", 0))
                self.latency_sum_ms = float(data.get("latency_sum_ms", 0.0))
                self.latency_max_ms = float(data.get("latency_max_ms", 0.0))
                self.ring.extend(float(x) for x in data.get("latencies_ms", []))
                self.last_invoked_at = data.get("last_invoked_at")
                self.minutes = {int(k): list(v) for k, v in (data.get("minutes") or {}).items()}
                for name, counts in (data.get("variants") or {}).items():
                    kept = _variant_counters()
                    kept.update({k: v for k, v in counts.items() if k != "latencies_ms"})
                    kept["latencies_ms"].extend(counts.get("latencies_ms", []))
                    self.variants[name] = kept
            except (OSError, ValueError, TypeError):
                pass

    def path(self) -> Path:
        return self.folder / f"{os.getpid()}.json"

    def _ensure_process(self) -> None:
        if self.pid != os.getpid():  # forked: start from this worker's own file
            self._reset()

    def start_flusher(self) -> None:
        """A daemon thread writing pending counts every 0.5 s (so the last request is never lost)."""
        self._ensure_process()
        if self._flusher is not None and self._flusher.is_alive():
            return

        def loop() -> None:
            while True:
                time.sleep(STATS_INTERVAL_S)
                if self.dirty:
                    self.flush()

        self._flusher = threading.Thread(target=loop, name="stats-flusher", daemon=True)
        self._flusher.start()

    def record(self, latency_ms: float, error: bool, variant: str = "", probabilities: Optional[list] = None) -> None:
        with self.lock:
            self._ensure_process()
            self.invocations += 1
            if error:
                self.errors += 1
            self.latency_sum_ms += latency_ms
            if latency_ms > self.latency_max_ms:
                self.latency_max_ms = latency_ms
            self.ring.append(round(latency_ms, 3))
            now = time.time()
            self.last_invoked_at = now
            minute = int(now // 60)
            bucket = self.minutes.get(minute)
            if bucket is None:
                bucket = self.minutes[minute] = [0, 0.0, 0]
                if len(self.minutes) > MINUTES_KEPT:
                    del self.minutes[min(self.minutes)]
            bucket[0] += 1
            bucket[1] += latency_ms
            bucket[2] += int(error)
            if variant:
                counts = self.variants.get(variant)
                if counts is None:
                    counts = self.variants[variant] = _variant_counters()
                counts["invocations"] += 1
                counts["errors"] += int(error)
                counts["latency_sum_ms"] += latency_ms
                counts["latencies_ms"].append(round(latency_ms, 3))
                for p in probabilities or ():
                    counts["rows"] += 1
                    counts["scores"][min(int(p * SCORE_BINS), SCORE_BINS - 1)] += 1
            self.dirty = True
            due = now - self.last_write >= STATS_INTERVAL_S
        if due:
            self.flush()

    def snapshot(self) -> dict:
        return {
            "pid": os.getpid(),
            "invocations": self.invocations,
            "errors": self.errors,
            "latency_sum_ms": round(self.latency_sum_ms, 3),
            "latency_max_ms": round(self.latency_max_ms, 3),
            "latencies_ms": list(self.ring),
            "last_invoked_at": self.last_invoked_at,
            "started_at": self.started_at,
            "written_at": time.time(),
            "minutes": {str(k): v for k, v in self.minutes.items()},
            "variants": {name: dict(c, latencies_ms=list(c["latencies_ms"])) for name, c in self.variants.items()},
        }

    def flush(self) -> None:
        with self.lock:
            self._ensure_process()
            payload = self.snapshot()
            self.dirty = False
            self.last_write = time.time()
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            target = self.path()
            tmp = target.with_name(f".{target.name}.{threading.get_ident()}.tmp")
            tmp.write_text(json.dumps(payload))
            os.replace(tmp, target)
        except OSError:
            pass  # stats are best effort; never fail a request over them


def _percentile(sorted_values: list, q: float) -> Optional[float]:
    if not sorted_values:
        return None
    rank = max(1, int(-(-q * len(sorted_values) // 100)))  # nearest rank
    return round(float(sorted_values[min(rank, len(sorted_values)) - 1]), 3)


def _files(workdir: Path) -> list[dict]:
    folder = Path(workdir) / "stats"
    out = []
    for file in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            out.append(json.loads(file.read_text()))
        except (OSError, ValueError):
            continue
    return out


def read_stats(workdir: Path) -> dict:
    """Add up every worker's stats file under ``<workdir>/stats``.

    Returns {"invocations", "errors", "avg_latency_ms", "p50_latency_ms", "p99_latency_ms",
    "last_invoked_at", "variants": {name: {"invocations", "errors", "avg_latency_ms",
    "p50_latency_ms", "rows", "scores"}}}; latencies are server-side milliseconds.
    """
    invocations = errors = 0
    latency_sum = 0.0
    latencies: list = []
    last: Optional[float] = None
    variants: dict[str, dict] = {}
    for data in _files(workdir):
        invocations += int(data.get("invocations") or 0)
        errors += int(data.get("errors") or 0)
        latency_sum += float(data.get("latency_sum_ms") or 0.0)
        latencies.extend(float(x) for x in data.get("latencies_ms") or [])
        when = data.get("last_invoked_at")
        if when is not None and (last is None or when > last):
            last = float(when)
        for name, counts in (data.get("variants") or {}).items():
            total = variants.setdefault(name, {"invocations": 0, "errors": 0, "latency_sum_ms": 0.0, "rows": 0,
                                               "scores": [0] * SCORE_BINS, "latencies": []})
            for key in ("invocations", "errors", "latency_sum_ms", "rows"):
                total[key] += counts.get(key) or 0
            total["scores"] = [a + b for a, b in zip(total["scores"], counts.get("scores") or [0] * SCORE_BINS,
                                                     strict=True)]
            total["latencies"].extend(counts.get("latencies_ms") or [])
    latencies.sort()
    for total in variants.values():
        ordered = sorted(total.pop("latencies"))
        total["avg_latency_ms"] = round(total["latency_sum_ms"] / total["invocations"], 3) if total["invocations"] \
            else None
        total["p50_latency_ms"] = _percentile(ordered, 50)
    return {
        "invocations": invocations,
        "errors": errors,
        "avg_latency_ms": round(latency_sum / invocations, 3) if invocations else None,
        "p50_latency_ms": _percentile(latencies, 50),
        "p99_latency_ms": _percentile(latencies, 99),
        "last_invoked_at": last,
        "variants": variants,
    }


def read_traffic(workdir: Path) -> list[dict]:
    """Invocations, errors and mean latency per minute (the workers' sums), oldest first."""
    minutes: dict[int, list] = {}
    for data in _files(workdir):
        for key, (count, latency_sum, errs) in (data.get("minutes") or {}).items():
            total = minutes.setdefault(int(key), [0, 0.0, 0])
            total[0] += count
            total[1] += latency_sum
            total[2] += errs
    return [{"minute": m * 60, "invocations": c, "errors": e, "latency_ms": round(s / c, 3) if c else None}
            for m, (c, s, e) in sorted(minutes.items())]


class PrometheusMetrics:
    """prometheus-client in multiprocess mode: each worker writes its own files under
    ``PROMETHEUS_MULTIPROC_DIR`` (set before the import), ``/metrics`` from any worker adds them up,
    and the arbiter marks a worker's files dead when it exits (the library's documented gunicorn set-up)."""

    def __init__(self, drift_file: Optional[Path] = None) -> None:
        from prometheus_client import Counter, Gauge, Histogram

        self.drift_file = drift_file  # the endpoint's latest drift report, as the monitoring service writes it

        self.requests = Counter("churn_invocations_total", "Invocations by variant and HTTP status",
                                ["variant", "status"])
        self.latency = Histogram("churn_invocation_latency_seconds", "Server-side latency of an invocation",
                                 ["variant"], buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                       0.5, 1.0, 2.5, 5.0, 10.0))
        self.rows = Counter("churn_rows_scored_total", "Customers scored", ["variant"])
        self.captured = Counter("churn_capture_writes_total", "Invocations written to data capture")
        self.model = Gauge("churn_model_info", "The model version each variant serves (1 = serving)",
                           ["variant", "model", "version", "weight"], multiprocess_mode="liveall")
        self.shown: set[tuple[str, ...]] = set()  # this worker's model_info labels

    def observe(self, variant: str, status: int, seconds: float, rows: int) -> None:
        self.requests.labels(variant, str(status)).inc()
        self.latency.labels(variant).observe(seconds)
        if rows:
            self.rows.labels(variant).inc(rows)

    def serving(self, variants: list) -> None:
        """What serves now is 1, what served before is 0 (multiprocess mode cannot remove a label: ``clear()``
        only warns there, and the old variant would still read as serving)."""
        now = {(v.name, v.model_name, str(v.spec.version or ""), f"{v.weight:g}") for v in variants}
        for labels in self.shown - now:
            self.model.labels(*labels).set(0)
        for labels in now:  # endpoint_control.LoadedVariant
            self.model.labels(*labels).set(1)
        self.shown = now

    def render(self) -> bytes:
        from prometheus_client import CollectorRegistry, generate_latest, multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        if self.drift_file is not None:
            registry.register(DriftCollector(self.drift_file))
        return generate_latest(registry)

    @staticmethod
    def worker_exit(pid: int) -> None:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)


class DriftCollector:
    """The endpoint's latest drift report as gauges, for Prometheus alerting: each feature's measures
    (``churn_drift_value``, ``churn_drift_threshold``, ``churn_drift_drifted`` 1/0, ``churn_drift_judged`` 0 when
    the measure had too little data), the customers compared and the report's time. Read from the small
    file the monitoring service writes beside the capture after each report (none yet: no drift gauges)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily

        try:
            latest = json.loads(self.path.read_text(encoding="utf-8"))
            rows = list(latest.get("rows") or [])
            at, customers = float(latest["at"]), float(latest.get("n") or 0)
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            return
        families = {name: GaugeMetricFamily(f"churn_drift_{name}", text, labels=["feature", "metric"]) for name, text in
                    (("value", "A drift measure of the latest report"), ("threshold", "Its threshold"),
                     ("drifted", "1 when the measure is over its threshold"),
                     ("judged", "1 when the measure had enough data to be judged"))}
        for row in rows:
            if not isinstance(row, dict):
                continue
            labels = [str(row.get("feature", "")), str(row.get("metric", ""))]
            families["value"].add_metric(labels, float(row.get("value") or 0.0))
            families["threshold"].add_metric(labels, float(row.get("threshold") or 0.0))
            families["drifted"].add_metric(labels, 1.0 if row.get("drifted") else 0.0)
            families["judged"].add_metric(labels, 0.0 if str(row.get("verdict", "")).startswith("not enough")
                                          else 1.0)
        yield from families.values()
        yield GaugeMetricFamily("churn_drift_last_report_timestamp_seconds", "When the latest drift report ran",
                                value=at)
        yield GaugeMetricFamily("churn_drift_report_customers", "Customers the latest drift report compared",
                                value=customers)
