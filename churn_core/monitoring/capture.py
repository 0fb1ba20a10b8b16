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


def latest_report_key(endpoint: str, destination: str = CAPTURE_PREFIX) -> str:
    """Where the endpoint's latest drift report is kept in brief beside its capture (read for ``/metrics``)."""
    return f"{endpoint_prefix(endpoint, destination)}monitoring/latest.json"


def parse_lines(text: str) -> list[dict]:
    """The complete records of a capture file (a line still being written is left for the next read). A line
    that is not a JSON object (garbage, ``[]``, a number) is skipped; how many is in the list's ``skipped``."""
    records = CaptureRecords()
    lines = text.split("\n")
    if not text.endswith("\n"):
        lines = lines[:-1]
    for line in lines:
        line = line.strip()
        if not line:
            continue
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if isinstance(record, dict) and isinstance(record.get("captureData"), dict):
            records.append(record)
        else:
            records.skipped += 1
    return records


class CaptureRecords(list):
    """Capture records, and how many lines were skipped as malformed (not a capture record)."""

    skipped = 0


def _data(payload: dict) -> bytes:
    if payload.get("encoding") == "BASE64":
        return base64.b64decode(payload.get("data") or "")
    return (payload.get("data") or "").encode("utf-8")


def _media(payload: dict) -> str:
    return str(payload.get("observedContentType") or "").split(";")[0].strip().lower()


def _answers(payload: dict) -> list[tuple[float, float]]:
    """(churn probability, label) per customer of an endpoint's answer (JSON predictions, the seed's Output form,
    CSV lines), in whatever encoding it was captured (SageMaker captures a type not in
    ``CaptureContentTypeHeader`` as BASE64)."""
    data = _data(payload).decode("utf-8", errors="replace")
    media, encoding = _media(payload), payload.get("encoding")
    if encoding == "JSON" or "json" in media or (encoding == "BASE64" and data.lstrip()[:1] in ("{", "[")):
        answer = json.loads(data)
        if "predictions" in answer:
            return [(float(p["churn_probability"]), _label(p.get("label"))) for p in answer["predictions"]]
        probability, labels = answer.get("Probability"), answer.get("Output")
        if not isinstance(probability, list):
            probability, labels = [probability], [labels]
        labels = labels if isinstance(labels, list) and len(labels) == len(probability) else [None] * len(probability)
        return [(float(p), _label(label)) for p, label in zip(probability, labels, strict=True)]
    rows = [line.split(",") for line in data.strip().splitlines() if line.strip()]
    return [(float(row[1]), _label(row[0])) for row in rows]


def _label(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def records_to_frame(records: Iterable[dict], schema: dict, variant: str = "") -> pd.DataFrame:
    """One row per scored customer: the model's features (typed as training typed them), the churn
    probability and label the endpoint answered, when, and the variant, whatever the request's format (JSON rows or
    named records, CSV bodies with or without a header, explain requests, ``.npy``). A record the model
    could not read is skipped and counted (``frame.attrs["skipped"]``, with the malformed lines of ``records``).

    Single-customer JSON requests are checked against the schema together (one call for a window of thousands);
    batch bodies (CSV, ``.npy``) one request at a time, so each request's rows stay aligned with its answer."""
    parser = entry_module("request_parser")
    compiled = parser.compile_schema(schema)
    skipped = int(getattr(records, "skipped", 0))
    parsed, answers, times = [], [], []
    for record in records:
        data = record.get("captureData") if isinstance(record, dict) else None
        try:
            source = data.get("endpointInput") or {}
            request = parser.parse_body(_data(source), source.get("observedContentType"))
            probabilities = _answers(data.get("endpointOutput") or {})
        except (parser.InvalidInput, ValueError, KeyError, TypeError, IndexError, AttributeError):
            skipped += 1  # not a record, or the endpoint answered it with a 4xx: nothing was scored
            continue
        parsed.append(request)
        answers.append(probabilities)
        times.append(((record.get("eventMetadata") or {}).get("inferenceTime")))
    pieces: list[tuple[pd.DataFrame, list, object]] = []  # (rows, their probabilities, their time) per request
    groups: dict[tuple, list[int]] = {}
    for i, request in enumerate(parsed):
        if request.style in ("csv", "npy"):
            groups[("one", i)] = [i]
        else:
            groups.setdefault((request.style, request.named), []).append(i)
    for members in groups.values():
        checked = _check_together([parsed[i] for i in members], parser, compiled)
        if checked is not None and len(members) == 1:
            pieces.append((checked, answers[members[0]], times[members[0]]))
            continue
        if checked is not None:
            offset = 0
            for i in members:
                n = len(parsed[i])
                pieces.append((checked.iloc[offset:offset + n], answers[i], times[i]))
                offset += n
            continue
        for i in members:
            try:
                pieces.append((parser.check_rows(parsed[i], compiled).frame, answers[i], times[i]))
            except parser.InvalidInput:
                skipped += 1
    names = [f["name"] for f in schema["features"]]
    if not pieces:
        frame = pd.DataFrame(columns=names + ["churn_probability", "predicted_label", "inference_time", "variant"])
        frame.attrs["skipped"] = skipped
        return frame
    frame = pd.concat([rows for rows, _, _ in pieces], ignore_index=True)
    probabilities, stamps = [], []
    for rows, answer, stamp in pieces:  # an answer that does not match its request's rows is not guessed at
        probabilities.extend(answer if len(answer) == len(rows) else [(np.nan, np.nan)] * len(rows))
        stamps.extend([stamp] * len(rows))
    answered = np.asarray(probabilities, dtype=float).reshape(-1, 2)
    frame["churn_probability"], frame["predicted_label"] = answered[:, 0], answered[:, 1]
    frame["inference_time"] = pd.to_datetime(pd.Series(stamps, dtype=object), utc=True, errors="coerce")
    frame["variant"] = variant
    frame.attrs["skipped"] = skipped
    return frame


def _check_together(requests: list, parser, compiled) -> pd.DataFrame | None:
    """The rows of same-style requests checked in one call (None when one of them would be refused)."""
    try:
        if len(requests) == 1:
            return parser.check_rows(requests[0], compiled).frame
        combined = parser.ParsedRequest(requests[0].style, [row for p in requests for row in p.rows], requests[0].named)
        return parser.check_rows(combined, compiled).frame
    except parser.InvalidInput:
        return None


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
