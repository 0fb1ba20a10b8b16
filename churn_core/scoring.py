"""Scoring through an endpoint: encode a request, and score a whole table in chunks.

Batch rows are checked against the model's schema before they are sent, by the endpoint's own
rules, so one bad row costs a message with its line number, not the whole file; a chunk the
endpoint still rejects is retried row by row to find the culprit. Nothing is dropped silently.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
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


def score_frame(
    invoke: Callable[[str], dict],
    frame: pd.DataFrame,
    schema: dict,
    chunk_size: int = 2000,
    progress: Callable[[float], None] | None = None,
) -> BatchResult:
    """Check every row by the model's own cell rules first (vectorised, entry/table_scoring.py: a row the
    endpoint would refuse is listed here with its line and reason, not sent), then send the rest in CSV
    chunks with a header to ``invoke`` (one CSV body -> the endpoint's JSON answer). Results keep the
    input columns and add the probability, the label and per-row warnings (entry/row_warnings.py)."""
    from .paths import entry_module

    table_scoring = entry_module("table_scoring")
    compiled = entry_module("request_parser").compile_schema(schema)
    features = compiled["features"]
    missing = [name for name in features if name not in frame.columns]
    if missing:
        raise ValidationError(
            f"The file lacks the model's feature column(s): {', '.join(missing)}. "
            f"Its header must include: {', '.join(features)}."
        )
    if frame.empty:
        raise ValidationError("The file has a header but no customer rows to score.")
    text = frame[features].astype(object).where(frame[features].notna(), "")
    checked = table_scoring.check_frame(text, compiled)
    errors: list[tuple[int, str]] = [(r + FIRST_DATA_LINE, m) for r, m in checked.problems.items()]
    good = np.flatnonzero(~checked.bad)
    warnings = dict(zip(good.tolist(), entry_module("row_warnings").row_warnings(
        [c[~checked.bad] for c in checked.columns], schema), strict=True))
    results: dict[int, tuple[int, float]] = {}
    chunks = [good[i : i + chunk_size] for i in range(0, len(good), chunk_size)] or [good]
    for done, chunk in enumerate(chunks, start=1):
        if len(chunk):
            _score_chunk(invoke, text, chunk.tolist(), results, errors)
        if progress:
            progress(done / len(chunks))
    order = sorted(results)
    scored = frame.iloc[order].copy()
    scored.insert(0, "line", [p + FIRST_DATA_LINE for p in order])
    scored["churn_probability"] = [results[p][1] for p in order]
    scored["predicted_churn"] = [results[p][0] for p in order]
    scored["warnings"] = [warnings[p] for p in order]
    scored = scored.sort_values("churn_probability", ascending=False, kind="stable").reset_index(drop=True)
    return BatchResult(scored=scored, errors=sorted(errors), total=len(frame))


def _score_chunk(invoke, text: pd.DataFrame, positions: list[int], results, errors) -> None:
    try:
        answer = invoke(text.iloc[positions].to_csv(index=False))
    except ValidationError as exc:
        if len(positions) == 1:
            errors.append((positions[0] + FIRST_DATA_LINE, str(exc)))
            return
        for position in positions:  # find the row(s) the endpoint refuses
            _score_chunk(invoke, text, [position], results, errors)
        return
    for position, pred in zip(positions, answer["predictions"], strict=True):
        results[position] = (int(pred["label"]), float(pred["churn_probability"]))
