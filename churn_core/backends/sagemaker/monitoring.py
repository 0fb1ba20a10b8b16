"""What CloudWatch says about jobs and endpoints: log tails (never raised: a log is auxiliary) and
endpoint metrics (invocations, errors, latency), cached so a live page does not flood GetMetricData."""

from __future__ import annotations

import time
from datetime import datetime, timezone

from churn_core.backends.sagemaker.aws import AwsError
from churn_core.backends.sagemaker.context import SageMakerContext, epoch
from churn_core.catalog.endpoint_configs import config_variants
from churn_core.errors import ChurnError

TRAINING_LOG_GROUP = "/aws/sagemaker/TrainingJobs"
TRANSFORM_LOG_GROUP = "/aws/sagemaker/TransformJobs"
ENDPOINT_LOG_GROUP = "/aws/sagemaker/Endpoints/{name}"
STATS_TTL_SECONDS = 60.0
STATS_MAX_WINDOW_SECONDS = 14 * 24 * 3600  # one-minute CloudWatch data is kept 15 days


class Monitoring:
    def __init__(self, ctx: SageMakerContext):
        self.ctx = ctx
        self.stats: dict[str, tuple[float, dict]] = {}  # endpoint -> (when read, monotonic; endpoint_stats)

    # ---- logs -------------------------------------------------------------------------------------
    def training_log(self, job: dict, lines: int = 200) -> str:
        return self.log_tail(TRAINING_LOG_GROUP, f"{job['name']}/", lines, "job")

    def endpoint_log(self, endpoint: dict, lines: int = 200) -> str:
        # every variant's streams (<variant>/<instance>), not only AllTraffic's: a two-variant endpoint has two
        return self.log_tail(ENDPOINT_LOG_GROUP.format(name=endpoint["name"]), "", lines, "endpoint")

    def transform_log(self, job: dict, lines: int = 200) -> str:
        return self.log_tail(TRANSFORM_LOG_GROUP, f"{job['name']}/", lines, "transform job")

    def tuning_log(self, tuning: dict, lines: int = 200) -> str:
        return (f"SageMaker keeps a log per trial (CloudWatch {TRAINING_LOG_GROUP}/{tuning['name']}-*): open a trial "
                "on the Jobs page to read it.")

    def log_tail(self, group: str, stream_prefix: str, lines: int, what: str) -> str:
        """The last ``lines`` of each stream; a log that cannot be read is reported as text, never raised
        (the log is auxiliary: a missing logs:GetLogEvents permission must not break the Jobs page)."""
        try:
            return self._read_log(group, stream_prefix, lines, what)
        except ChurnError as exc:
            return f"Could not read the CloudWatch log of this {what}: {exc}"

    def _read_log(self, group: str, stream_prefix: str, lines: int, what: str) -> str:
        try:
            answer = self.ctx.call(
                "logs",
                "describe_log_streams",
                f"list log streams of {what}",
                logGroupName=group,
                **({"logStreamNamePrefix": stream_prefix} if stream_prefix else {}),
            )
        except AwsError as exc:
            if exc.code == "ResourceNotFoundException":
                return (
                    f"No CloudWatch log yet for this {what}: log group {group} does not exist in "
                    f"{self.ctx.settings.region}. SageMaker creates it when the first instance starts; try again "
                    "in a minute."
                )
            raise
        streams = sorted(s["logStreamName"] for s in answer.get("logStreams", []))
        if not streams:
            return (
                f"No CloudWatch log yet for this {what}: no stream {stream_prefix}* in {group}. "
                "It appears once the instance starts; try again in a minute."
            )
        parts = []
        for stream in streams[:8]:
            events = self.ctx.call(
                "logs",
                "get_log_events",
                f"read log stream {stream}",
                logGroupName=group,
                logStreamName=stream,
                startFromHead=False,
                limit=max(1, min(int(lines), 10000)),
            )
            text = "\n".join(e.get("message", "").rstrip("\n") for e in events.get("events", []))
            parts.append(f"==> {stream} <==\n{text}" if len(streams) > 1 else text)
        return "\n".join(parts)

    # ---- endpoint metrics -------------------------------------------------------------------------
    def variants(self, endpoint: dict) -> list[str]:
        """The endpoint's production variant names (its configuration and one being rolled out), for CloudWatch:
        SageMaker publishes endpoint metrics per variant only."""
        names = [v["variant"] for c in (endpoint.get("config"), endpoint.get("pending_config")) if c
                 for v in config_variants(self.ctx.catalog, c)]
        return list(dict.fromkeys(names)) or ["AllTraffic"]

    @staticmethod
    def _query(qid: str, name: str, variant: str, metric: str, stat: str, period: int) -> dict:
        dims = [{"Name": "EndpointName", "Value": name}, {"Name": "VariantName", "Value": variant}]
        return {"Id": qid, "ReturnData": True, "MetricStat": {
            "Metric": {"Namespace": "AWS/SageMaker", "MetricName": metric, "Dimensions": dims},
            "Period": period, "Stat": stat}}

    def endpoint_traffic(self, endpoint: dict) -> list[dict]:
        """Invocations and mean model latency per minute over the last day, every variant's added up, from
        CloudWatch (best effort)."""
        now = int(time.time()) // 60 * 60 + 60
        start = max(int(float(endpoint.get("created_at") or now)) // 60 * 60, now - 24 * 3600)
        variants = self.variants(endpoint)
        queries = [self._query(f"{qid}{i}", endpoint["name"], variant, metric, stat, 60)
                   for i, variant in enumerate(variants)
                   for qid, metric, stat in (("inv", "Invocations", "Sum"), ("lat", "ModelLatency", "Average"))]
        try:
            answer = self.ctx.call("cloudwatch", "get_metric_data", f"read traffic of endpoint {endpoint['name']}",
                                   StartTime=datetime.fromtimestamp(start, timezone.utc),
                                   EndTime=datetime.fromtimestamp(now, timezone.utc), MetricDataQueries=queries)
        except ChurnError:
            return []
        series = {r["Id"]: dict(zip((epoch(t) for t in r.get("Timestamps", [])), r.get("Values", []), strict=True))
                  for r in answer.get("MetricDataResults", [])}
        minutes: dict[float, list[float]] = {}  # minute -> [invocations, latency × invocations]
        for i in range(len(variants)):
            for minute, count in series.get(f"inv{i}", {}).items():
                total = minutes.setdefault(minute, [0.0, 0.0])
                total[0] += count
                total[1] += (series.get(f"lat{i}", {}).get(minute) or 0.0) * count
        return [{"minute": minute, "invocations": int(count), "errors": 0,
                 "latency_ms": (weighted / count / 1000.0) if count and weighted else None}
                for minute, (count, weighted) in sorted(minutes.items())]

    def endpoint_stats(self, endpoint: dict) -> dict:
        """Invocations, errors, average model latency and the last invocation, from CloudWatch.

        One GetMetricData call per endpoint per minute at most (cached); CloudWatch lags by a minute
        or two. Best effort: no permission or no data gives ``{}`` (the page then shows no stats).
        """
        name = endpoint["name"]
        cached = self.stats.get(name)
        if cached and time.monotonic() - cached[0] < STATS_TTL_SECONDS:
            return cached[1]
        try:
            stats = self._read_endpoint_metrics(endpoint)
        except ChurnError:
            stats = {}
        self.stats[name] = (time.monotonic(), stats)
        return stats

    def _read_endpoint_metrics(self, endpoint: dict) -> dict:
        """The endpoint's totals over every variant, and each variant's own (``variants``)."""
        name = endpoint["name"]
        now = int(time.time()) // 60 * 60 + 60
        start = max(int(float(endpoint.get("created_at") or time.time())) // 60 * 60, now - STATS_MAX_WINDOW_SECONDS)
        window = max(60, now - start)
        variants = self.variants(endpoint)
        queries = []
        for i, variant in enumerate(variants):
            queries += [self._query(f"inv{i}", name, variant, "Invocations", "Sum", 60),
                        self._query(f"ef{i}", name, variant, "Invocation4XXErrors", "Sum", window),
                        self._query(f"es{i}", name, variant, "Invocation5XXErrors", "Sum", window),
                        # Average, not p50: emulators (moto) lack percentiles
                        self._query(f"lat{i}", name, variant, "ModelLatency", "Average", window)]
        answer = self.ctx.call("cloudwatch", "get_metric_data", f"read metrics of endpoint {name}",
                               StartTime=datetime.fromtimestamp(start, timezone.utc),
                               EndTime=datetime.fromtimestamp(now, timezone.utc), MetricDataQueries=queries)
        series = {
            r["Id"]: list(zip(r.get("Timestamps", []), r.get("Values", []), strict=True))
            for r in answer.get("MetricDataResults", [])
        }
        per_variant = {}
        for i, variant in enumerate(variants):
            used = [(ts, v) for ts, v in series.get(f"inv{i}", []) if v]
            if not used:
                continue
            latency = [v for _, v in series.get(f"lat{i}", [])]
            per_variant[variant] = {
                "invocations": int(sum(v for _, v in used)),
                "errors": int(sum(v for _, v in series.get(f"ef{i}", []) + series.get(f"es{i}", []))),
                "avg_latency_ms": latency[0] / 1000.0 if latency else None,  # ModelLatency is in microseconds
                "p50_latency_ms": None,
                "last_invoked_at": max(epoch(ts) or 0.0 for ts, _ in used) + 60.0,
            }
        if not per_variant:
            return {}
        invocations = sum(v["invocations"] for v in per_variant.values())
        timed = [(v["avg_latency_ms"], v["invocations"]) for v in per_variant.values() if v["avg_latency_ms"]]
        return {
            "invocations": invocations,
            "errors": sum(v["errors"] for v in per_variant.values()),
            "avg_latency_ms": sum(a * n for a, n in timed) / max(1, sum(n for _, n in timed)) if timed else None,
            "p50_latency_ms": None,
            "last_invoked_at": max(v["last_invoked_at"] for v in per_variant.values()),
            "variants": per_variant,
        }
