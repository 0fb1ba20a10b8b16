"""Scoring through an endpoint: encode a request, and score a whole table in chunks.

Batch rows are checked against the model's schema before they are sent, so one bad row costs
a message with its line number, not the whole file; a chunk the endpoint still rejects is
retried row by row to find the culprit. Nothing is dropped silently.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Callable

import pandas as pd

from .errors import ValidationError

FIRST_DATA_LINE = 2  # line 1 of a CSV is its header


@dataclass
class BatchResult:
    scored: pd.DataFrame  # input columns + churn_probability + predicted_churn, sorted by risk
    errors: list[tuple[int, str]] = field(default_factory=list)  # (line number in the file, what is wrong)
    total: int = 0

    @property
    def error_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.errors, columns=["line", "problem"])


def read_customers(data: bytes, max_bytes: int | None = None) -> pd.DataFrame:
    """A file of customers to score, read the way uploads are read (encoding, delimiter), as text."""
    from .validation import read_text_table

    frame, _ = read_text_table(data, max_bytes)
    if frame.empty:
        raise ValidationError("The file has a header but no customer rows to score.")
    return frame


def encode_payload(payload: Any, content_type: str) -> bytes:
    if isinstance(payload, bytes):
        return payload
    if isinstance(payload, str):
        return payload.encode("utf-8")
    if "json" not in content_type:
        raise ValidationError(f"Give the {content_type} request body as text or bytes.")
    return json.dumps(payload, allow_nan=False).encode("utf-8")


def _row_record(row: pd.Series, features: list[dict]) -> tuple[dict | None, str | None]:
    record: dict[str, Any] = {}
    for feat in features:
        name = feat["name"]
        value = row[name]
        if value is None or (isinstance(value, float) and math.isnan(value)) or str(value).strip() == "":
            return None, f"{name} is blank; fill it in"
        if feat["kind"] == "numeric":
            try:
                number = float(str(value).strip())
            except ValueError:
                return None, f"{name} = {str(value)[:40]!r} is not a number"
            if not math.isfinite(number):
                return None, f"{name} = {value!r} is not a finite number"
            record[name] = number
        else:
            record[name] = str(value).strip()
    return record, None


def score_frame(
    invoke: Callable[[dict], dict],
    frame: pd.DataFrame,
    schema: dict,
    chunk_size: int = 500,
    progress: Callable[[float], None] | None = None,
) -> BatchResult:
    features = schema.get("features", [])
    missing = [f["name"] for f in features if f["name"] not in frame.columns]
    if missing:
        raise ValidationError(
            f"The file lacks the model's feature column(s): {', '.join(missing)}. "
            f"Its header must include: {', '.join(f['name'] for f in features)}."
        )
    if frame.empty:
        raise ValidationError("The file has a header but no customer rows to score.")
    errors: list[tuple[int, str]] = []
    good: list[tuple[int, dict]] = []
    for position, (_, row) in enumerate(frame.iterrows()):
        record, problem = _row_record(row, features)
        line = position + FIRST_DATA_LINE
        if problem:
            errors.append((line, problem))
        else:
            good.append((position, record))
    results: dict[int, tuple[int, float]] = {}
    chunks = [good[i : i + chunk_size] for i in range(0, len(good), chunk_size)] or [[]]
    for done, chunk in enumerate(chunks, start=1):
        if chunk:
            _score_chunk(invoke, chunk, results, errors)
        if progress:
            progress(done / len(chunks))
    scored = frame.copy()
    order = sorted(results)
    scored = scored.iloc[order].copy()
    scored.insert(0, "line", [p + FIRST_DATA_LINE for p in order])
    scored["churn_probability"] = [results[p][1] for p in order]
    scored["predicted_churn"] = [results[p][0] for p in order]
    scored = scored.sort_values("churn_probability", ascending=False, kind="stable").reset_index(drop=True)
    return BatchResult(scored=scored, errors=sorted(errors), total=len(frame))


def _score_chunk(invoke, chunk, results, errors) -> None:
    try:
        answer = invoke({"instances": [record for _, record in chunk]})
    except ValidationError as exc:
        if len(chunk) == 1:
            errors.append((chunk[0][0] + FIRST_DATA_LINE, str(exc)))
            return
        for item in chunk:  # find the row(s) the endpoint refuses
            _score_chunk(invoke, [item], results, errors)
        return
    for (position, _), pred in zip(chunk, answer["predictions"], strict=True):
        results[position] = (int(pred["label"]), float(pred["churn_probability"]))
