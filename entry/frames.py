"""One cell's rule and the frame the pipeline sees: how a request's value becomes what the model gets.

``check_value`` is the rule every path applies to one value (a number, a category, or missing: NaN);
``columns_to_frame`` turns checked columns into the DataFrame the pipeline was fitted on. A leaf below
the request parser, the column checks of files and the fast path, so none of them imports another.
"""

from __future__ import annotations

import math
from typing import Any, List, Optional

from dataset_schema import MISSING_ALWAYS, MISSING_IN_NUMBERS, category_of
from input_errors import InvalidInput, kind_name, short


def csv_value(cell: Any) -> Any:
    """A CSV cell as the uploaded file's rules read it: a missing-value marker is missing."""
    if isinstance(cell, str) and cell.strip().lower() in MISSING_ALWAYS:
        return ""
    return cell


def check_cell(text: Any, i: int, compiled: dict) -> Any:
    """One CSV cell of feature ``i`` as ``check_rows`` reads it: the value the model gets (a float, a
    category or NaN), or ``InvalidInput`` whose message names the feature but no row (a batch of lines
    applies this once per distinct text and reports each line with its own number)."""
    return check_value(csv_value(text), None, i, compiled["features"][i], compiled["kinds"], compiled["allow_missing"])


def _at(r: Optional[int], name: str) -> str:
    return "row %d, feature %s" % (r, name) if r is not None else name


def check_value(value: Any, r: Optional[int], i: int, name: str, kinds: list, allow: list) -> Any:
    numeric = kinds[i] == "numeric"
    if value is None or (isinstance(value, str) and not value.strip() and numeric):
        if not allow[i]:
            raise _missing_error(r, name, value)
        return float("nan")
    if isinstance(value, (list, dict)):
        raise InvalidInput("%s: %s is not a single value." % (_at(r, name), kind_name(value)))
    if numeric:
        if isinstance(value, str) and value.strip().lower() in MISSING_IN_NUMBERS and allow[i]:
            return float("nan")
        return _number(value, r, name)
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidInput("%s: NaN/Infinity is not a category; send a text value." % _at(r, name))
    canon = category_of(value)
    if isinstance(canon, float) and not allow[i]:  # blank string
        raise _missing_error(r, name, value)
    return canon


def _number(value: Any, r: Optional[int], name: str) -> float:
    if isinstance(value, bool):
        raise InvalidInput(
            "%s: %s is a boolean, not a number; send 1 or 0." % (_at(r, name), "true" if value else "false")
        )
    if isinstance(value, (int, float)):
        try:
            number = float(value)
        except OverflowError:  # a JSON integer beyond float range
            raise InvalidInput(
                "%s: the integer %s\u2026 (%d digits) is too large; send a finite number."
                % (_at(r, name), str(value)[:12], len(str(abs(value))))
            ) from None
        if not math.isfinite(number):
            word = "NaN" if number != number else ("Infinity" if number > 0 else "-Infinity")
            raise InvalidInput("%s: %s is not a finite number; send a real number." % (_at(r, name), word))
        return number
    if isinstance(value, str):
        text = value.strip()
        try:
            number = float(text)
        except ValueError:
            raise InvalidInput("%s: %s is not a number." % (_at(r, name), short(value))) from None
        if not math.isfinite(number):
            raise InvalidInput(
                "%s: %s is not a finite number; send a real number." % (_at(r, name), short(value))
            )
        return number
    raise InvalidInput("%s: %s is not a number." % (_at(r, name), kind_name(value)))


def _missing_error(r: Optional[int], name: str, value: Any) -> InvalidInput:
    shown = "null" if value is None else "empty"
    return InvalidInput(
        "%s: value is missing (%s); the model was trained without missing values for %s, "
        "so send a value."
        % (_at(r, name), shown, name)
    )


def columns_to_frame(columns: List[list], compiled: dict):
    """The checked values as the DataFrame the pipeline was fitted on (float64 / object columns)."""
    import numpy as np
    import pandas as pd

    data = {}
    for i, name in enumerate(compiled["features"]):
        if compiled["kinds"][i] == "numeric":
            data[name] = pd.Series(np.asarray(columns[i], dtype="float64"), dtype="float64")
        else:
            data[name] = pd.Series(columns[i], dtype=object)
    return pd.DataFrame(data, columns=compiled["features"])
