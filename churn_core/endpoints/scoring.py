"""Scoring through an endpoint: encode a request, and score a whole table in chunks.

Batch rows are checked by the endpoint's own rules (``entry/request_parser``) before they are
sent, so one bad row costs a message with its line number, not the whole file; a chunk the
endpoint still rejects is retried row by row to find the culprit. Nothing is dropped silently,
and nothing is guessed silently: a row scored with a filled-in, unseen or out-of-range value
carries a note (``request_parser.row_warnings``, the one function that decides them).
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pandas as pd

from churn_core.decisions.campaign import risk_bands
from churn_core.errors import ValidationError
from churn_core.paths import entry_module
from churn_core.decisions.reasons import NO_REASONS, top_reason
from churn_core.wording import lacks_features

FIRST_DATA_LINE = 2  # line 1 of a CSV is its header
EXPLAINED_CHUNK = 250  # rows per request when each row asks for its top reason


@dataclass
class BatchResult:
    scored: pd.DataFrame  # line + input columns + churn_probability + predicted_churn + warnings, by risk
    errors: list[tuple[int, str]] = field(default_factory=list)  # (line number in the file, what is wrong)
    total: int = 0
    reasons_note: str = ""  # why rows carry no top reason although it was asked (the model cannot explain)
    variants: dict[str, int] = field(default_factory=dict)  # rows each production variant answered

    @property
    def error_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.errors, columns=["line", "problem"])

    @property
    def flagged(self) -> int:
        """Scored rows with at least one warning (a value the model had to guess)."""
        return int((self.scored["warnings"] != "").sum()) if len(self.scored) else 0


def read_customers(data: bytes, max_bytes: int | None = None) -> pd.DataFrame:
    """A file of customers to score, read the way uploads are read (encoding, delimiter), as text."""
    from churn_core.data.csv_readers import read_text_table

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
    try:
        return json.dumps(payload, allow_nan=False).encode("utf-8")
    except ValueError:  # a NaN from pandas is a blank: null in JSON, as the contract reads a missing value
        return json.dumps(_nan_to_null(payload), allow_nan=False).encode("utf-8")


def _nan_to_null(value: Any) -> Any:
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, float) and value in (float("inf"), float("-inf")):
        raise ValidationError(f"A value is {value}: send a finite number, or null for a missing value.")
    if isinstance(value, dict):
        return {k: _nan_to_null(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_nan_to_null(v) for v in value]
    return value


def _parser():
    return entry_module("request_parser")


def _problem(message: str) -> str:
    """The endpoint's message for one row, without its "row 1, " (the line number is shown beside it)."""
    message = re.sub(r"^row \d+, feature ([^:]+): ", r"\1: ", message)
    return message[:1].upper() + message[1:]


def check_table(rows: list[list[str]], features: list[str], schema: dict):
    """Check rows of cell texts (one list per row, in ``features`` order) by the endpoint's own rules,
    as a CSV body with a header is checked. Returns (checked, [(position, problem)], passed): the
    checked rows that passed (None when none did) and their positions, in order."""
    parser = _parser()
    compiled = parser.compile_schema(schema)

    def check(part: list[list[str]]):
        return parser.check_rows(parser.ParsedRequest("csv", [list(features)] + part, False), compiled)

    try:
        return check(rows), [], list(range(len(rows)))
    except parser.InvalidInput:
        pass
    problems, good = [], []
    for position, row in enumerate(rows):
        try:
            check([row])
            good.append(position)
        except parser.InvalidInput as exc:
            problems.append((position, _problem(exc.message)))
    return (check([rows[p] for p in good]) if good else None), problems, good


def _check_records(records: list[dict], schema: dict):
    parser = _parser()
    try:
        return parser.check_rows(parser.ParsedRequest("instances", records, True), parser.compile_schema(schema))
    except parser.InvalidInput as exc:
        raise ValidationError(_problem(exc.message)) from None


def record_warnings(records: list[dict], schema: dict) -> list[list[str]]:
    """What the model has to guess for each named record (``request_parser.row_warnings``); a record
    the endpoint would refuse raises ValidationError with the endpoint's message."""
    return _parser().row_warnings(_check_records(records, schema), schema)


def field_warnings(record: dict, schema: dict) -> dict[str, str]:
    """The same notes for one record, by feature (a form shows each beside its field)."""
    return dict(_parser().cell_warnings(_check_records([record], schema), schema)[0])


def _csv_body(features: list[str], rows: list[list[str]]) -> str:
    """Rows of cell texts as a CSV body with the feature header: the endpoint reads them by name, with the
    rules that just passed them (and checks many rows column by column, once per distinct text)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(features)
    writer.writerows(rows)
    return out.getvalue()


def score_frame(
    invoke: Callable[[str, int], dict],
    frame: pd.DataFrame,
    schema: dict,
    chunk_size: int = 2000,
    progress: Callable[[float], None] | None = None,
    threshold: float | dict[str, float] | None = None,
    reasons: bool = False,
) -> BatchResult:
    """Score every row of ``frame`` (cells as text) through ``invoke`` (a CSV body with a header and how
    many reasons to ask per row -> the endpoint's JSON answer); rows the model's rules refuse are reported
    by file line, rows scored on a guess carry it in a ``warnings`` column. The label is
    ``churn_probability > threshold`` when a threshold is given (the model's, or per production variant a dict
    ``{variant: threshold}`` read against the variant each answer names; a ``risk`` band then too), else the
    endpoint's. With ``reasons`` each row gets its strongest push as ``top_reason``; a model that
    cannot explain is scored without them and ``reasons_note`` says why."""
    features = [f["name"] for f in schema.get("features", [])]
    missing = [name for name in features if name not in frame.columns]
    if missing:
        raise ValidationError(
            lacks_features("The file", missing) + ". "
            f"Its header must include: {', '.join(features)}."
        )
    if frame.empty:
        raise ValidationError("The file has a header but no customer rows to score.")
    parser = _parser()
    cells = frame[features].astype(str).to_numpy().tolist()
    errors: list[tuple[int, str]] = []
    results: dict[int, tuple[int, float, str, str, str]] = {}
    asking = _Asking(1 if reasons else 0)
    if reasons:  # exact TreeSHAP costs ~5-15 ms a row on a deep 100-tree forest: requests stay well inside
        chunk_size = min(chunk_size, EXPLAINED_CHUNK)  # the endpoint's 60 s (answers do not depend on the size)
    starts = list(range(0, len(cells), chunk_size))
    for done, start in enumerate(starts, start=1):
        checked, problems, good = check_table(cells[start : start + chunk_size], features, schema)
        errors.extend((start + position + FIRST_DATA_LINE, problem) for position, problem in problems)
        if checked is not None:
            notes = parser.warning_texts(checked, schema)
            chunk = [(start + p, cells[start + p], note) for p, note in zip(good, notes, strict=True)]
            _score_chunk(invoke, features, chunk, results, errors, asking)
        if progress:
            progress(done / len(starts))
    order = sorted(results)
    probabilities = [results[p][1] for p in order]
    if threshold is None:
        labels, risk = [results[p][0] for p in order], None
    else:
        at = [threshold.get(results[p][4], threshold.get("")) if isinstance(threshold, dict) else threshold
              for p in order]  # each row at the threshold of the variant that answered it
        labels = [int(results[p][1] > t) for p, t in zip(order, at, strict=True)]
        risk = risk_bands(probabilities, np.asarray(at, dtype=np.float64))
    rows = entry_module("scored_rows")
    scored = rows.batch_frame(frame.iloc[order].copy(), [p + FIRST_DATA_LINE for p in order], probabilities, labels,
                              [results[p][2] for p in order], risk,
                              [results[p][3] for p in order] if reasons and not asking.note else None)
    scored = scored.sort_values(rows.PROBABILITY, ascending=False, kind="stable").reset_index(drop=True)
    answered = Counter(results[p][4] for p in order if results[p][4])
    return BatchResult(scored=scored, errors=sorted(errors), total=len(frame), reasons_note=asking.note,
                       variants=dict(sorted(answered.items())))


@dataclass
class _Asking:
    """How many reasons the chunks still ask for; 0 with a note once the endpoint says it cannot explain."""

    explain: int
    note: str = ""


def _score_chunk(invoke, features, chunk, results, errors, asking: _Asking) -> None:
    try:
        answer = invoke(_csv_body(features, [row for _, row, _ in chunk]), asking.explain)
    except ValidationError as exc:
        if asking.explain and NO_REASONS in str(exc):  # the model cannot explain: score without reasons
            asking.explain, asking.note = 0, str(exc)
            _score_chunk(invoke, features, chunk, results, errors, asking)
            return
        if len(chunk) == 1:
            errors.append((chunk[0][0] + FIRST_DATA_LINE, str(exc)))
            return
        for item in chunk:  # find the row(s) the endpoint refuses
            _score_chunk(invoke, features, [item], results, errors, asking)
        return
    for (position, _, note), pred in zip(chunk, answer["predictions"], strict=True):
        results[position] = (int(pred["label"]), float(pred["churn_probability"]), note,
                             top_reason(pred.get("reasons")), str(pred.get("variant") or ""))
