"""What CloudWatch says about jobs and endpoints: log tails (never raised: a log is auxiliary) and
endpoint metrics (invocations, errors, latency), cached so a live page does not flood GetMetricData."""

from __future__ import annotations

import time
from datetime import datetime, timezone

from churn_core.backends.sagemaker.aws import AwsError
from churn_core.backends.sagemaker.context import SageMakerContext, epoch
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
        return self.log_tail(ENDPOINT_LOG_GROUP.format(name=endpoint["name"]), "AllTraffic/", lines, "endpoint")

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
                logStreamNamePrefix=stream_prefix,
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
    def endpoint_traffic(self, endpoint: dict) -> list[dict]:
        """Invocations and mean model latency per minute over the last day, from CloudWatch (best effort)."""
        now = int(time.time()) // 60 * 60 + 60
        start = max(int(float(endpoint.get("created_at") or now)) // 60 * 60, now - 24 * 3600)
        dims = [{"Name": "EndpointName", "Value": endpoint["name"]}, {"Name": "VariantName", "Value": "AllTraffic"}]
        queries = [{"Id": qid, "ReturnData": True, "MetricStat": {
            "Metric": {"Namespace": "AWS/SageMaker", "MetricName": metric, "Dimensions": dims},
            "Period": 60, "Stat": stat}} for qid, metric, stat in
            (("inv", "Invocations", "Sum"), ("lat", "ModelLatency", "Average"))]
        try:
            answer = self.ctx.call("cloudwatch", "get_metric_data", f"read traffic of endpoint {endpoint['name']}",
                                   StartTime=datetime.fromtimestamp(start, timezone.utc),
                                   EndTime=datetime.fromtimestamp(now, timezone.utc), MetricDataQueries=queries)
        except ChurnError:
            return []
        series = {r["Id"]: dict(zip((epoch(t) for t in r.get("Timestamps", [])), r.get("Values", []), strict=True))
                  for r in answer.get("MetricDataResults", [])}
        return [{"minute": minute, "invocations": int(count), "errors": 0,
                 "latency_ms": (series.get("lat", {}).get(minute) or 0.0) / 1000.0 or None}
                for minute, count in sorted(series.get("inv", {}).items())]

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
            stats = self._read_endpoint_metrics(name, float(endpoint.get("created_at") or time.time()))
        except ChurnError:
            stats = {}
        self.stats[name] = (time.monotonic(), stats)
        return stats

    def _read_endpoint_metrics(self, name: str, created_at: float) -> dict:
        now = int(time.time()) // 60 * 60 + 60
        start = max(int(created_at) // 60 * 60, now - STATS_MAX_WINDOW_SECONDS)
        window = max(60, now - start)
        dims = [{"Name": "EndpointName", "Value": name}, {"Name": "VariantName", "Value": "AllTraffic"}]

        def query(qid: str, metric: str, stat: str, period: int) -> dict:
            return {
                "Id": qid,
                "ReturnData": True,
                "MetricStat": {
                    "Metric": {"Namespace": "AWS/SageMaker", "MetricName": metric, "Dimensions": dims},
                    "Period": period,
                    "Stat": stat,
                },
            }

        answer = self.ctx.call(
            "cloudwatch",
            "get_metric_data",
            f"read metrics of endpoint {name}",
            StartTime=datetime.fromtimestamp(start, timezone.utc),
            EndTime=datetime.fromtimestamp(now, timezone.utc),
            MetricDataQueries=[
                query("inv", "Invocations", "Sum", 60),
                query("e4", "Invocation4XXErrors", "Sum", window),
                query("e5", "Invocation5XXErrors", "Sum", window),
                # Average, not p50: emulators (moto) lack percentiles
                query("lat", "ModelLatency", "Average", window),
            ],
        )
        series = {
            r["Id"]: list(zip(r.get("Timestamps", []), r.get("Values", []), strict=True))
            for r in answer.get("MetricDataResults", [])
        }
        used = [(ts, v) for ts, v in series.get("inv", []) if v]
        if not used:
            return {}
        latency = [v for _, v in series.get("lat", [])]
        return {
            "invocations": int(sum(v for _, v in used)),
            "errors": int(sum(v for _, v in series.get("e4", []) + series.get("e5", []))),
            "avg_latency_ms": latency[0] / 1000.0 if latency else None,  # ModelLatency is in microseconds
            "p50_latency_ms": None,
            "last_invoked_at": max(epoch(ts) or 0.0 for ts, _ in used) + 60.0,
        }
