"""What the model had to guess for each checked row: a filled-in missing value, a number outside the
training range, a category never seen in training. Pure functions of checked rows and the model schema.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Dict, List, Tuple

from input_errors import short


def cell_warnings(checked, schema: dict) -> List[List[Tuple[str, str]]]:
    """For each checked row, (feature, note) for every value the model scores by a guess: a missing
    value it fills in (the training median or most common value), a number outside the range seen in
    training (an extrapolation), a category never seen in training (it counts as none of the known
    ones). Pure: the dashboard, batch scoring and batch transform all call this (or ``row_warnings``).
    Column by column (numpy; a note is written only for a row that gets one), so a batch of a million
    rows costs what its flagged rows cost; the columns may be value lists or typed (arrays, Categorical)."""
    flagged = _flagged_cells(checked, schema)
    return [flagged.get(r, []) for r in range(len(checked))]


def warning_texts(checked, schema: dict) -> List[str]:
    """``row_warnings`` joined per row with "; " ("" when nothing was guessed), built from the flagged rows
    only: what files and transform jobs write beside each probability."""
    texts = [""] * len(checked)
    for r, notes in _flagged_cells(checked, schema).items():
        texts[r] = "; ".join(note for _, note in notes)
    return texts


def _flagged_cells(checked, schema: dict) -> Dict[int, List[Tuple[str, str]]]:
    """{row: [(feature, note), ...]} for the rows with at least one guessed value, in feature order."""
    import numpy as np
    import pandas as pd

    specs = dict((f["name"], f) for f in schema.get("features", []))
    compiled = checked.compiled
    rows: Dict[int, List[Tuple[str, str]]] = defaultdict(list)
    for i, name in enumerate(compiled["features"]):
        spec = specs.get(name) or {}
        column = checked.columns[i]
        if compiled["kinds"][i] == "numeric":
            values = np.asarray(column, dtype=np.float64)
            typical = spec.get("median")
            note = "%s is missing: the training median%s was used" % (
                name, "" if typical is None else " " + _stat(typical, int(spec.get("decimals") or 0)))
            for r in np.flatnonzero(np.isnan(values)).tolist():
                rows[r].append((name, note))
            low, high = spec.get("min"), spec.get("max")
            with np.errstate(invalid="ignore"):
                outside = np.zeros(len(values), dtype=bool)
                if low is not None:
                    outside |= values < low
                if high is not None:
                    outside |= values > high
            decimals = int(spec.get("decimals") or 0)
            for r in np.flatnonzero(outside).tolist():
                rows[r].append((name, "%s = %s is outside the training range %s to %s (the score is an extrapolation)"
                                % (name, _plain(values[r]), _stat(low, decimals), _stat(high, decimals))))
            continue
        if not isinstance(column, pd.Categorical):
            column = pd.Categorical(np.asarray(column, dtype=object))
        codes = np.asarray(column.codes)
        typical = spec.get("mode")
        note = "%s is missing: the most common value%s was used" % (
            name, "" if typical is None else " %r" % str(typical))
        for r in np.flatnonzero(codes < 0).tolist():
            rows[r].append((name, note))
        known = frozenset(str(c) for c in spec.get("categories") or [])
        if not known:
            continue
        for k, value in enumerate(column.categories):
            if value not in known:
                note = "%s = %s was never seen in training (scored as none of the known values)" % (name, short(value))
                for r in np.flatnonzero(codes == k).tolist():
                    rows[r].append((name, note))
    return dict(rows)


def row_warnings(checked, schema: dict) -> List[List[str]]:
    """The notes of ``cell_warnings``, one list of sentences per row (empty when nothing was guessed)."""
    return [[note for _, note in row] for row in cell_warnings(checked, schema)]


def _stat(value: Any, decimals: int) -> str:
    """A training statistic at the precision the data is written with (70.575 -> 70.58 for 2 decimals)."""
    if value is None:
        return "?"
    return "%.*f" % (max(decimals, 0), float(value)) if decimals else "%d" % round(float(value))


def _plain(value: float) -> str:
    """A number as a person typed it: no exponent, no trailing zeros."""
    text = ("%.6f" % value).rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text
