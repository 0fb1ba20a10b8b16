"""Feature columns checked against the model, once per distinct text: how a file's cells are refused.

``check_columns`` applies ``frames.check_cell`` (the rule an endpoint applies to one CSV cell) to each
distinct text of a column, so a row is refused here exactly when an endpoint would refuse it, in the
same words. Batch transform and the many-row CSV path of the request parser both use it.
"""

from __future__ import annotations

from typing import Any, Dict, List, Sequence

import numpy as np

from frames import check_cell
from input_errors import InvalidInput


class Checked(object):
    """Parsed rows checked against the model: typed feature columns, which rows passed, and the
    first problem of each row that did not (keyed by row position)."""

    __slots__ = ("columns", "bad", "problems")

    def __init__(self, columns: list, bad: np.ndarray, problems: Dict[int, str]) -> None:
        self.columns = columns
        self.bad = bad
        self.problems = problems


def check_frame(frame, compiled: dict) -> Checked:
    """Every feature cell by ``check_cell``'s rule, once per distinct text; typed columns in schema order."""
    return check_columns([frame[name] for name in compiled["features"]], compiled)


def check_columns(columns_in: Sequence[Any], compiled: dict) -> Checked:
    """``check_frame`` for one sequence of cells per feature (a pandas Series, a list of texts, or float64
    values already parsed, NaN where the cell was blank)."""
    import pandas as pd

    n = len(columns_in[0]) if len(columns_in) else 0
    bad = np.zeros(n, dtype=bool)
    problems: Dict[int, str] = {}

    def refuse(rows: np.ndarray, messages: List[str], which: np.ndarray) -> None:
        """Rows ``rows`` are refused, row ``rows[j]`` for ``messages[which[j]]``; a row keeps its first problem."""
        fresh = ~bad[rows]
        for r, m in zip(rows[fresh].tolist(), which[fresh].tolist()):
            problems[r] = messages[m]
        bad[rows] = True

    columns = []
    for i, cells in enumerate(columns_in):
        if compiled["kinds"][i] == "numeric" and getattr(cells, "dtype", None) is not None and cells.dtype.kind == "f":
            values = np.asarray(cells, dtype=np.float64)
            holes = np.flatnonzero(np.isnan(values))
            if len(holes) and not compiled["allow_missing"][i]:
                refuse(holes, [_problem("", i, compiled)], np.zeros(len(holes), dtype=np.int64))
            columns.append(values)
            continue
        codes, uniques = pd.factorize(np.asarray(cells, dtype=object))
        texts = [u if isinstance(u, str) else "" for u in uniques] + [""]
        codes = np.where(codes < 0, len(texts) - 1, codes)  # a NaN cell (none get here from split_lines) reads as ""
        column, refused, messages = _check_texts(texts, i, compiled)
        columns.append(column(codes))
        if messages:
            per_row = refused[codes]
            rows = np.flatnonzero(per_row >= 0)
            refuse(rows, messages, per_row[rows])
    return Checked(columns, bad, problems)


def _check_texts(texts: List[str], i: int, compiled: dict):
    """``check_cell`` on each distinct text of feature ``i``: a function from codes to the typed column,
    and per text the index of its problem in the returned messages (or -1)."""
    import pandas as pd

    refused = np.full(len(texts), -1, dtype=np.int64)
    messages: List[str] = []
    if compiled["kinds"][i] == "numeric":
        numbers = np.full(len(texts), np.nan)
        quick = pd.to_numeric(pd.Series(texts, dtype=object), errors="coerce").to_numpy(dtype=np.float64)
        for k, text in enumerate(texts):
            if np.isfinite(quick[k]):
                numbers[k] = quick[k]
                continue
            try:
                numbers[k] = check_cell(text, i, compiled)
            except InvalidInput as err:
                refused[k] = len(messages)
                messages.append(err.message)
        return (lambda codes: numbers[codes]), refused, messages
    categories: List[str] = []
    where: Dict[str, int] = {}
    mapping = np.full(len(texts), -1, dtype=np.int64)  # -1: missing, the imputer's job
    for k, text in enumerate(texts):
        try:
            value = check_cell(text, i, compiled)
        except InvalidInput as err:
            refused[k] = len(messages)
            messages.append(err.message)
            continue
        if isinstance(value, float):  # NaN: missing
            continue
        if value not in where:
            where[value] = len(categories)
            categories.append(value)
        mapping[k] = where[value]
    return (lambda codes: pd.Categorical.from_codes(mapping[codes], categories=categories)), refused, messages


def _problem(text: str, i: int, compiled: dict) -> str:
    try:
        check_cell(text, i, compiled)
    except InvalidInput as err:
        return err.message
    return ""
