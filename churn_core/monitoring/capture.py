"""Data capture in SageMaker's format: what an endpoint received and answered, as JSON lines.

Each line is one invocation::

    {"captureData": {"endpointInput":  {"observedContentType": ..., "mode": "INPUT",  "data": ..., "encoding": ...},
                     "endpointOutput": {"observedContentType": ..., "mode": "OUTPUT", "data": ..., "encoding": ...}},
     "eventMetadata": {"eventId": "<uuid>", "inferenceTime": "2026-11-30T14:05:09Z"},
     "eventVersion": "0"}

``encoding`` is ``JSON`` or ``CSV`` for those content types and ``BASE64`` otherwise. Files are
partitioned as SageMaker partitions them: ``<destination>/<endpoint>/<variant>/yyyy/mm/dd/hh/*.jsonl``
(on the local backend the destination is ``capture/`` in the local bucket). Reading turns the
lines back into the model's typed features, the answered churn probability and the time.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from datetime import datetime, timezone
from typing import Any, Iterable

import numpy as np
import pandas as pd

from churn_core.paths import entry_module

CAPTURE_PREFIX = "capture"
EVENT_VERSION = "0"


def _encoding(content_type: str) -> str:
    media = (content_type or "").split(";")[0].strip().lower()
    if "json" in media:
        return "JSON"
    if "csv" in media:
        return "CSV"
    return "BASE64"


def _payload(body: bytes, content_type: str, mode: str) -> dict:
    encoding = _encoding(content_type)
    if encoding == "BASE64":
        data = base64.b64encode(body).decode("ascii")
    else:
        data = body.decode("utf-8", errors="replace")
    return {"observedContentType": content_type, "mode": mode, "data": data, "encoding": encoding}


def capture_line(request: bytes, request_type: str, response: bytes, response_type: str,
                 when: float | None = None, event_id: str | None = None) -> str:
    """One capture record (a JSON line, newline included)."""
    at = datetime.fromtimestamp(when if when is not None else time.time(), timezone.utc)
    record = {
        "captureData": {"endpointInput": _payload(request, request_type, "INPUT"),
                        "endpointOutput": _payload(response, response_type, "OUTPUT")},
        "eventMetadata": {"eventId": event_id or str(uuid.uuid4()), "inferenceTime": at.strftime("%Y-%m-%dT%H:%M:%SZ")},
        "eventVersion": EVENT_VERSION,
    }
    return json.dumps(record, separators=(",", ":")) + "\n"


def hour_prefix(endpoint: str, variant: str, when: float, destination: str = CAPTURE_PREFIX) -> str:
    """``capture/<endpoint>/<variant>/yyyy/mm/dd/hh/``: SageMaker's partitioning by invocation hour."""
    at = datetime.fromtimestamp(when, timezone.utc)
    return f"{destination.rstrip('/')}/{endpoint}/{variant}/{at:%Y/%m/%d/%H}/"


def endpoint_prefix(endpoint: str, destination: str = CAPTURE_PREFIX) -> str:
    return f"{destination.rstrip('/')}/{endpoint}/"


def parse_lines(text: str) -> list[dict]:
    """The complete records of a capture file (a line still being written is left for the next read)."""
    records = []
    lines = text.split("\n")
    if not text.endswith("\n"):
        lines = lines[:-1]
    for line in lines:
        line = line.strip()
        if line:
            try:
                records.append(json.loads(line))
            except ValueError:
                continue
    return records


def _data(payload: dict) -> bytes:
    if payload.get("encoding") == "BASE64":
        return base64.b64decode(payload.get("data") or "")
    return (payload.get("data") or "").encode("utf-8")


def _probabilities(payload: dict) -> list[float]:
    """Churn probabilities from an endpoint's answer (JSON predictions, the seed's Output form, CSV lines)."""
    data = _data(payload).decode("utf-8", errors="replace")
    if payload.get("encoding") == "JSON":
        answer = json.loads(data)
        if "predictions" in answer:
            return [float(p["churn_probability"]) for p in answer["predictions"]]
        probability = answer.get("Probability")
        return [float(p) for p in probability] if isinstance(probability, list) else [float(probability)]
    if payload.get("encoding") == "CSV":
        return [float(line.split(",")[1]) for line in data.strip().splitlines() if line.strip()]
    return []


def records_to_frame(records: Iterable[dict], schema: dict, variant: str = "") -> pd.DataFrame:
    """One row per scored customer: the model's features (typed as training typed them), the churn
    probability the endpoint answered, when, and the variant. Records the model could not read are skipped.

    The rows of all records are checked against the schema in one call (a record at a time only when a
    batch holds one the model would refuse), so a window of thousands of captured requests reads fast."""
    parser = entry_module("request_parser")
    compiled = parser.compile_schema(schema)
    parsed, answers, times = [], [], []
    for record in records:
        data = record.get("captureData", {})
        source = data.get("endpointInput") or {}
        try:
            request = parser.parse_body(_data(source), source.get("observedContentType"))
            probabilities = _probabilities(data.get("endpointOutput") or {})
        except (parser.InvalidInput, ValueError, KeyError, TypeError, IndexError):
            continue  # the endpoint answered it with a 4xx: nothing was scored
        parsed.append(request)
        answers.append(probabilities if len(probabilities) == len(request) else [np.nan] * len(request))
        times.append((record.get("eventMetadata") or {}).get("inferenceTime"))
    columns, probabilities, stamps = [], [], []
    for group in ([p for p in parsed if p.named], [p for p in parsed if not p.named]):
        if not group:
            continue
        try:
            combined = parser.ParsedRequest(group[0].style, [row for p in group for row in p.rows], group[0].named)
            columns.append(parser.check_rows(combined, compiled).frame)
        except parser.InvalidInput:
            columns.append(pd.concat([_checked_or_empty(parser, p, compiled) for p in group], ignore_index=True))
    if not columns:
        names = [f["name"] for f in schema["features"]] + ["churn_probability", "inference_time", "variant"]
        return pd.DataFrame(columns=names)
    for group in ([i for i, p in enumerate(parsed) if p.named], [i for i, p in enumerate(parsed) if not p.named]):
        for i in group:
            probabilities.extend(answers[i])
            stamps.extend([times[i]] * len(parsed[i]))
    frame = pd.concat(columns, ignore_index=True)
    if len(frame) != len(probabilities):  # some rows were refused one by one: no alignment to trust
        frame["churn_probability"], frame["inference_time"] = np.nan, pd.NaT
    else:
        frame["churn_probability"] = probabilities
        frame["inference_time"] = pd.to_datetime(pd.Series(stamps), utc=True)
    frame["variant"] = variant
    return frame


def _checked_or_empty(parser, request, compiled) -> pd.DataFrame:
    try:
        return parser.check_rows(request, compiled).frame
    except parser.InvalidInput:
        return parser.columns_to_frame([[] for _ in compiled["features"]], compiled)


def variant_of(key: str, endpoint: str, destination: str = CAPTURE_PREFIX) -> str:
    """The variant folder of a capture file's key."""
    rest = key[len(endpoint_prefix(endpoint, destination)):]
    return rest.split("/", 1)[0]


def hour_of(key: str, endpoint: str, destination: str = CAPTURE_PREFIX) -> float:
    """The start of the invocation hour a capture file holds (epoch seconds)."""
    parts = key[len(endpoint_prefix(endpoint, destination)):].split("/")
    year, month, day, hour = (int(x) for x in parts[1:5])
    return datetime(year, month, day, hour, tzinfo=timezone.utc).timestamp()


def summary(frame: pd.DataFrame) -> dict[str, Any]:
    if frame.empty:
        return {"rows": 0}
    return {"rows": int(len(frame)), "first": frame["inference_time"].min(), "last": frame["inference_time"].max(),
            "mean_probability": float(frame["churn_probability"].mean())}
