"""The dataset's typed schema, and the one way to read a table with it.

The upload decides, once, what every column is (``churn_core.validation`` builds the schema
and stores it as ``dataset-schema.json`` beside the train split, so it travels in the train
channel); training applies it and never re-decides. The cell rules that both need live here
and nowhere else: which texts are missing, which texts are a churned / stayed label, how a
category is spelled. A channel without a schema file (a hand-run ``train.py`` on a plain CSV)
gets one inferred by the same rules.

Every table is read as text first (``dtype=str``, no pandas NA guessing), so ``"None"`` in a
text column stays a category, exactly as the upload's profile counted it.
"""

from __future__ import annotations

import glob
import json
import math
import numbers
import os
import re
from typing import Any, Dict, List, Optional, Tuple

SCHEMA_FILE = "dataset-schema.json"
SCHEMA_FORMAT = "churn-dataset-schema/1"

# A cell is missing when its stripped, lower-cased text is one of these, in every column ...
MISSING_ALWAYS = frozenset({"", "na", "n/a", "nan", "-nan", "null", "#n/a", "#na", "<na>", "#n/a n/a"})
# ... and, in a number column only, one of these too (in a text column they are categories).
MISSING_IN_NUMBERS = frozenset({"none", "-", "?"})
POSITIVE_WORDS = frozenset({"yes", "true", "y"})
NEGATIVE_WORDS = frozenset({"no", "false", "n"})
NUMBER_RE = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$")
MAX_DECIMALS = 6


class SchemaError(Exception):
    """The data does not fit its schema (a column is gone, a label is not binary ...)."""


# --------------------------------------------------------------------------- cell rules


def is_missing_text(text: str, numeric: bool) -> bool:
    low = text.strip().lower()
    return low in MISSING_ALWAYS or (numeric and low in MISSING_IN_NUMBERS)


def label_of(text: str) -> Optional[int]:
    """1 (churned), 0 (stayed), None (missing) or -1 (not a churn label) for one target cell."""
    value = str(text).strip()
    low = value.lower()
    if low in MISSING_ALWAYS:
        return None
    if low in POSITIVE_WORDS:
        return 1
    if low in NEGATIVE_WORDS:
        return 0
    if NUMBER_RE.match(value):
        number = float(value)
        if number == 1.0:
            return 1
        if number == 0.0:
            return 0
    return -1


def category_of(value: Any) -> Any:
    """One spelling per category, at fit and predict time: stripped text, or NaN when missing."""
    if value is None or (isinstance(value, float) and value != value):
        return float("nan")
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return "True" if value else "False"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        number = float(value)
        if math.isfinite(number) and number == int(number):
            return str(int(number))
        return repr(number)
    text = str(value).strip()
    return float("nan") if text.lower() in MISSING_ALWAYS else text


def decimals_of(texts: List[str]) -> int:
    """Digits after the decimal point the data is written with (at most MAX_DECIMALS)."""
    most = 0
    for text in texts:
        text = text.strip()
        if "." in text and "e" not in text.lower():
            most = max(most, len(text.split(".", 1)[1]))
    return min(most, MAX_DECIMALS)


def positive_label_of(texts: List[str], counts: Optional[List[int]] = None) -> str:
    """How the file spells "churned": its most common positive text ("1" when it has none)."""
    counts = counts or [1] * len(texts)
    tally: Dict[str, int] = {}
    for text, count in zip(texts, counts):
        if label_of(text) == 1:
            tally[text.strip()] = tally.get(text.strip(), 0) + count
    if not tally:
        return "1"
    return max(sorted(tally), key=lambda t: tally[t])


# --------------------------------------------------------------------------- reading


def read_text_table(path_or_buffer: Any):
    """A CSV as text cells (no type or missing-value guessing), header names stripped."""
    import pandas as pd

    frame = pd.read_csv(path_or_buffer, dtype=str, keep_default_na=False, na_filter=False,
                        skipinitialspace=True)
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def read_channel(path: str, what: str):
    """Every *.csv of a channel folder (or one file) as one text table; None when there is none."""
    import pandas as pd

    if not path:
        return None
    if os.path.isfile(path):
        files = [path]
    elif os.path.isdir(path):
        files = sorted(glob.glob(os.path.join(path, "**", "*.csv"), recursive=True))
    else:
        raise SchemaError("the %s channel %s does not exist." % (what, path))
    if not files:
        if what == "test":
            return None
        raise SchemaError("the %s channel %s holds no .csv file." % (what, path))
    frames = []
    for name in files:
        try:
            frame = read_text_table(name)
        except pd.errors.EmptyDataError:
            raise SchemaError("%s is empty." % os.path.basename(name)) from None
        except (pd.errors.ParserError, UnicodeDecodeError) as err:
            raise SchemaError("%s is not a readable CSV file: %s"
                              % (os.path.basename(name), str(err).strip())) from None
        if frames and list(frame.columns) != list(frames[0].columns):
            raise SchemaError(
                "%s has different columns from %s; all files of a channel must share one header."
                % (os.path.basename(name), os.path.basename(files[0]))
            )
        frames.append(frame)
    data = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    if len(data) == 0:
        raise SchemaError("the %s data has a header but no rows." % what)
    return data


def load_schema_file(channel: str) -> Optional[dict]:
    """The dataset schema the upload stored in the train channel, if it is there."""
    if not channel or not os.path.isdir(channel):
        return None
    path = os.path.join(channel, SCHEMA_FILE)
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as fh:
        schema = json.load(fh)
    if schema.get("format") != SCHEMA_FORMAT:
        raise SchemaError(
            "%s is not a dataset schema this script reads (format %r)." % (SCHEMA_FILE, schema.get("format"))
        )
    return schema


# --------------------------------------------------------------------------- deciding (hand-run channels only)


def numeric_values(series) -> Tuple[Any, bool]:
    """(float values with NaN for missing, True if every present text is a finite number)."""
    import numpy as np
    import pandas as pd

    codes, uniques = pd.factorize(series.astype(str).to_numpy())
    texts = [str(u).strip() for u in uniques]
    missing = np.array([is_missing_text(t, True) for t in texts], dtype=bool)
    parsed = pd.to_numeric(pd.Series(texts, dtype=object), errors="coerce").to_numpy(dtype=float)
    finite = np.isfinite(parsed)
    all_numbers = bool(np.all(finite | missing))
    values = np.where(finite & ~missing, parsed, np.nan)
    return values[codes] if len(texts) else np.zeros(0, dtype=float), all_numbers


def infer_schema(frame, target: str) -> dict:
    """A schema for a channel that came without one, by the upload's own rule: a column whose
    present values are all numbers is numeric, any other is categorical; empty columns are left out."""
    features = []
    dropped = {}
    for name in frame.columns:
        if name == target:
            continue
        column = frame[name]
        values, all_numbers = numeric_values(column)
        if all(is_missing_text(t, True) for t in set(column.tolist())):
            dropped[name] = "empty"
            continue
        features.append({"name": name, "kind": "numeric" if all_numbers else "categorical"})
    return {"format": SCHEMA_FORMAT, "target": target, "features": features, "dropped": dropped, "id_columns": []}


# --------------------------------------------------------------------------- applying


def encode_target(series, target: str, what: str):
    """The target column as 0/1 int64 and the file's spelling of "churned"; SchemaError otherwise."""
    import numpy as np
    import pandas as pd

    codes, uniques = pd.factorize(series.astype(str).to_numpy())
    texts = [str(u) for u in uniques]
    labels = [label_of(t) for t in texts]
    counts = np.bincount(codes, minlength=len(texts)).tolist()
    missing = sum(c for c, lab in zip(counts, labels) if lab is None)
    if missing:
        raise SchemaError(
            "the target column %s has %d empty %s in the %s data; fill or drop those rows."
            % (target, missing, "value" if missing == 1 else "values", what)
        )
    bad = sorted(t.strip() for t, lab in zip(texts, labels) if lab == -1)
    if bad:
        raise SchemaError(
            "the target column %s must hold 0/1, yes/no or true/false; the %s data also has %s."
            % (target, what, ", ".join(repr(b) for b in bad[:5]))
        )
    table = np.array(labels, dtype=np.int64)
    return table[codes], positive_label_of(texts, counts)


def typed_features(frame, schema: dict, what: str):
    """The schema's feature columns, in its order: numeric as float64 (NaN missing), categorical as
    object text (NaN missing). A feature column the data lacks is a SchemaError that names it."""
    import numpy as np
    import pandas as pd

    names = [f["name"] for f in schema["features"]]
    absent = [n for n in names if n not in frame.columns]
    if absent:
        raise SchemaError(
            "the %s data lacks the feature %s %s that the dataset schema lists."
            % (what, "column" if len(absent) == 1 else "columns", ", ".join(absent))
        )
    columns = {}
    for spec in schema["features"]:
        series = frame[spec["name"]]
        if spec["kind"] == "numeric":
            values, _ = numeric_values(series)
            columns[spec["name"]] = pd.Series(values, index=frame.index, dtype="float64")
        else:
            codes, uniques = pd.factorize(series.astype(str).to_numpy())
            table = np.empty(len(uniques), dtype=object)
            table[:] = [category_of(u) for u in uniques]
            columns[spec["name"]] = pd.Series(table[codes] if len(uniques) else [], index=frame.index, dtype=object)
    return pd.DataFrame(columns, index=frame.index, columns=names)


def numeric_decimals(frame, schema: dict) -> Dict[str, int]:
    """Decimals each numeric feature is written with (forms and results round to them)."""
    out = {}
    for spec in schema["features"]:
        if spec["kind"] == "numeric":
            out[spec["name"]] = (
                spec["decimals"]
                if "decimals" in spec
                else decimals_of(list(set(frame[spec["name"]].astype(str).tolist())))
            )
    return out
