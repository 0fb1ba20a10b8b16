"""The scored-row format: the names and order of a scored customer's columns, written here only.

* a transform job's ``results.csv`` (both backends): ``line`` (the input's line number), the kept
  columns, ``churn_probability``, ``predicted_churn``, ``warnings`` and, when asked, ``top_reason``;
  read back for the dashboard and downloads, ``risk`` follows ``predicted_churn``;
* the container's answer to each line of a transform mini-batch:
  ``churn_probability,predicted_churn,warnings[,top_reason],problem``;
* a file scored through an endpoint (``score_batch``): ``line``, the input's columns,
  ``churn_probability``, ``predicted_churn``, ``risk`` (with a threshold), ``top_reason`` (when
  asked), ``warnings``.

An input column never shares a name with a column this format adds (``OUTPUT_NAMES``: ``line``,
``churn_probability``, ``predicted_churn``, ``risk``, ``warnings``, ``top_reason``): such a column is
kept as ``input_<name>`` (``input_input_<name>`` if the input also holds that name, and so on), so
scoring last month's scored file shows this model's scores under the output names and last month's
beside them (``kept_names``, the one rule; ``result_names`` reads any ``results.csv`` back by it).

Python 3.9, no project imports: the SageMaker container, the local transform workers and the
dashboard all write and read rows with these functions.
"""

from __future__ import annotations

import csv
from typing import Any, List, Optional, Sequence, Tuple

LINE = "line"
PROBABILITY = "churn_probability"
LABEL = "predicted_churn"
RISK = "risk"
WARNINGS = "warnings"
TOP_REASON = "top_reason"
PROBLEM = "problem"
OUTPUT_COLUMNS = (PROBABILITY, LABEL, WARNINGS)
ERROR_COLUMNS = (LINE, PROBLEM)
OUTPUT_NAMES = (LINE, PROBABILITY, LABEL, RISK, WARNINGS, TOP_REASON)  # every column a scored row adds
INPUT_PREFIX = "input_"


def kept_names(keep: Sequence[Any]) -> List[Any]:
    """The names the input's kept columns carry beside the scores, in order: their own, except that a name in
    ``OUTPUT_NAMES`` becomes ``input_<name>`` (prefixed again while the input holds that name too). Linear;
    idempotent (names it returns are returned unchanged)."""
    taken = set(OUTPUT_NAMES) | set(keep)
    names = []
    for name in keep:
        if name in OUTPUT_NAMES:
            renamed = INPUT_PREFIX + name
            while renamed in taken:
                renamed = INPUT_PREFIX + renamed
            taken.add(renamed)
            name = renamed
        names.append(name)
    return names


def line_column(keep: Sequence[str]) -> str:
    """The name of the line-number column: always ``line`` (an input column of that name is kept as
    ``input_line``, see ``kept_names``)."""
    return LINE


def result_columns(keep: Sequence[str], reasons: bool = False) -> List[str]:
    """The header of ``results.csv``: ``line``, the kept columns (``kept_names``), the scores."""
    return [LINE] + kept_names(keep) + list(OUTPUT_COLUMNS) + ([TOP_REASON] if reasons else [])


def result_names(header: Sequence[str]) -> List[str]:
    """The names to read a ``results.csv`` under, from its header as written (by this rule, or before it, when
    a kept column could share an output's name or the line column was ``_line``): the scores are always the
    last columns, in ``result_columns``' order, so they are found by place, never by a name the input shares."""
    header = list(header)
    reasons = header[-2:] == [WARNINGS, TOP_REASON]
    tail = list(OUTPUT_COLUMNS) + ([TOP_REASON] if reasons else [])
    return [LINE] + kept_names(header[1:len(header) - len(tail)]) + tail


def result_dtypes(columns: Sequence[str]) -> dict:
    """How ``results.csv`` is read back: kept columns as the text the input held, numbers as numbers."""
    kept = dict((c, str) for c in columns[1:list(columns).index(PROBABILITY)])
    types = {columns[0]: "int64"}
    types.update(kept)
    types.update({PROBABILITY: "float64", LABEL: "int64", WARNINGS: str, TOP_REASON: str})
    return types


def write_rows(handle: Any, numbers: list, kept: List[list], probabilities: list, labels: list, warnings: list,
               top_reasons: Optional[list] = None) -> None:
    """Scored lines as ``results.csv`` rows (no header), column by column in ``result_columns`` order."""
    extra = [top_reasons] if top_reasons is not None else []
    writer = csv.writer(handle, lineterminator="\n")
    writer.writerows(zip(numbers, *kept, probabilities, labels, warnings, *extra))


def insert_risk(frame: Any, bands: Any) -> Any:
    """``frame`` with each row's ``risk`` band right after ``predicted_churn``."""
    frame.insert(frame.columns.get_loc(LABEL) + 1, RISK, bands)
    return frame


def batch_frame(rows: Any, lines: list, probabilities: list, labels: list, warnings: list,
                risk: Any = None, top_reasons: Optional[list] = None) -> Any:
    """A file scored through an endpoint: ``rows`` (the input's scored rows, a DataFrame the caller owns)
    with the line numbers first and the scores after the input's columns (renamed by ``kept_names``)."""
    rows.columns = kept_names(list(rows.columns))
    rows.insert(0, LINE, lines)
    rows[PROBABILITY] = probabilities
    rows[LABEL] = labels
    if risk is not None:
        rows[RISK] = risk
    if top_reasons is not None:
        rows[TOP_REASON] = top_reasons
    rows[WARNINGS] = warnings
    return rows


# --------------------------------------------------------------------------- a transform mini-batch's answer


def answer_fields(reasons: bool) -> Tuple[str, ...]:
    """The fields of the container's answer to one line of a transform mini-batch."""
    return OUTPUT_COLUMNS + ((TOP_REASON,) if reasons else ()) + (PROBLEM,)


def _plain(text: str) -> str:
    """A field a CSV join cannot split: no separator, quote or newline."""
    return text.replace(",", ";").replace('"', "'").replace("\n", " ").replace("\r", " ")


def answer_line(probability: float, label: int, warnings: str, top_reason: Optional[str] = None) -> str:
    """A scored line's answer (its ``problem`` field empty); ``top_reason`` None when reasons were not asked."""
    reason = "" if top_reason is None else _plain(top_reason) + ","
    return "%r,%d,%s,%s" % (probability, label, _plain(warnings), reason)


def problem_line(message: str, reasons: bool) -> str:
    """An unscorable line's answer: empty scores, then why."""
    return ("," * (len(answer_fields(reasons)) - 1)) + _plain(message)
