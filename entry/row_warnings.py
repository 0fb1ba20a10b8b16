"""Per-row warnings: what a scored customer has that the model never saw in training.

A warning does not stop a row from being scored (the model answers anyway); it says how far to
trust the answer. Two things are flagged, from the model schema only:

* a category the model never saw: its one-hot encoding ignores it, so the row is scored as if
  the feature had none of the known values;
* a number outside the range of the training data: trees answer as at the nearest edge, linear
  models extrapolate.

One function for every path that scores (the batch transform, interactive batches, one customer),
so they say the same thing in the same words.
"""

from __future__ import annotations

from typing import Any, Dict, List, Sequence

SEPARATOR = "; "


def _number_text(value: float, decimals: Any) -> str:
    try:
        places = max(0, min(int(decimals), 6))
    except (TypeError, ValueError):
        places = 6
    text = "%.*f" % (places, value)
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _category_text(value: Any) -> str:
    text = str(value)
    return repr(text if len(text) <= 40 else text[:39] + "\u2026")


def row_warnings(columns: Sequence[Any], schema: dict) -> List[str]:
    """One warning text per row ("" when none) for checked feature values in schema order: a
    numeric feature's values as floats (NaN missing), a categorical one's as category texts (NaN
    missing) or a ``pandas.Categorical``. Several warnings of a row are joined with "; "."""
    import numpy as np
    import pandas as pd

    features = schema["features"]
    n = len(columns[0]) if len(columns) else 0
    notes: Dict[int, List[str]] = {}
    for spec, values in zip(features, columns):
        name = spec["name"]
        if spec.get("kind") == "numeric":
            array = np.asarray(values, dtype=np.float64)
            for bound, word, outside in (("min", "below", np.less), ("max", "above", np.greater)):
                limit = spec.get(bound)
                if limit is None:
                    continue
                with np.errstate(invalid="ignore"):
                    rows = np.flatnonzero(outside(array, float(limit)))
                if len(rows):
                    low, high = spec.get("min"), spec.get("max")
                    span = "%s to %s" % (_number_text(low, spec.get("decimals")) if low is not None else "?",
                                         _number_text(high, spec.get("decimals")) if high is not None else "?")
                    for r in rows.tolist():
                        notes.setdefault(r, []).append("%s %s is %s the training range (%s)" % (
                            name, _number_text(array[r], spec.get("decimals")), word, span))
        else:
            known = set(str(c) for c in (spec.get("categories") or []))
            if not known:
                continue
            if not isinstance(values, pd.Categorical):
                values = pd.Categorical(np.asarray(values, dtype=object))
            unseen = [k for k, c in enumerate(values.categories) if str(c) not in known]
            if not unseen:
                continue
            codes = np.asarray(values.codes)
            for k in unseen:
                text = "%s %s was not seen in training" % (name, _category_text(values.categories[k]))
                for r in np.flatnonzero(codes == k).tolist():
                    notes.setdefault(r, []).append(text)
    out = [""] * n
    for r, items in notes.items():
        out[r] = SEPARATOR.join(items)
    return out
