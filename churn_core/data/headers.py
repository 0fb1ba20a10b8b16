"""The header row: reading the column names, rejecting a header that is data or repeats a name, and telling
names (and unnamed columns) that identify rows rather than describe customers."""

from __future__ import annotations

import csv
import io
import re

import numpy as np

from churn_core.errors import ValidationError
from churn_core.paths import entry_module
from churn_core.data.cells import Cells
from churn_core.data.decoding import file_text
from churn_core.wording import MAX_LISTED, column_letter, show

_rules = entry_module("dataset_schema")  # the cell rules training applies: one source of truth

_NUMBER_RE = _rules.NUMBER_RE
_TOKEN_RE = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")

# Column names that identify a customer rather than describe one (compared lower-case, letters and digits only).
_ID_NAMES = frozenset(
    {
        "id", "uuid", "guid", "key", "index", "unnamed0", "rownumber", "rownum", "rowid", "recordid",
        "phone", "phonenumber", "phoneno", "phonenum", "telephone", "tel", "mobile", "mobilenumber",
        "cellphone", "msisdn", "imsi", "imei", "email", "emailaddress", "mail",
        "name", "fullname", "firstname", "lastname", "surname", "customername", "clientname",
        "customernumber", "accountnumber", "accountno", "customerno", "contractnumber",
    }
)
_ID_LAST_TOKENS = frozenset({"id", "uuid", "guid"})
_DIGITS_RE = re.compile(r"^\d{1,15}$")


def is_id_name(name: str) -> bool:
    normalized = re.sub(r"[^a-z0-9]", "", name.lower())
    if normalized in _ID_NAMES:
        return True
    tokens = _TOKEN_RE.findall(name)
    return bool(tokens) and len(tokens) > 1 and tokens[-1].lower() in _ID_LAST_TOKENS


def check_header(header: list[str]) -> None:
    filled = [h for h in header if h]
    if filled and all(_NUMBER_RE.match(h) for h in filled):
        shown = ", ".join(show(h) for h in filled[:MAX_LISTED]) + (", …" if len(filled) > MAX_LISTED else "")
        raise ValidationError(
            f"The first row looks like data, not column names (it is all numbers: {shown}). "
            "Add a header row with the column names (e.g. Churn,AccountWeeks,…) as the first line and upload again."
        )
    seen: dict[str, list[int]] = {}
    for i, name in enumerate(header):
        if name:
            seen.setdefault(name, []).append(i)
    dups = {name: cols for name, cols in seen.items() if len(cols) > 1}
    if dups:
        parts = [
            f"{show(name)} (columns {', '.join(column_letter(c) for c in cols)})"
            for name, cols in list(dups.items())[:MAX_LISTED]
        ]
        raise ValidationError(
            f"Duplicate column names: {', '.join(parts)}. Every column needs its own name; "
            "rename or remove the repeated columns and upload again."
        )


def is_row_counter(cells: Cells) -> bool:
    """True for 0, 1, 2, … (or 1, 2, 3, …): what pandas writes for an unnamed index."""
    present = cells.counts() > 0
    if not len(cells) or not all(_DIGITS_RE.match(v) for v, p in zip(cells.uniques, present, strict=True) if p):
        return False
    values = [int(v) if p else -1 for v, p in zip(cells.uniques, present, strict=True)]
    numbers = cells.flags(np.array(values, dtype=np.int64))
    start = int(numbers[0])
    return start in (0, 1) and bool(np.array_equal(numbers, np.arange(start, start + len(numbers))))


def read_header(data: bytes) -> list[str]:
    """The column names of an upload, read as validation reads the file; [] when it is not a table
    (a workbook, binary, JSON): then nothing from it is offered as a column name."""
    try:
        text, _, delimiter, _ = file_text(data, None)
    except ValidationError:
        return []
    try:
        for record in csv.reader(io.StringIO(text[: 1 << 20], newline=""), delimiter=delimiter):
            if "".join(record).strip():
                return [name.strip() for name in record if name.strip()]
    except csv.Error:
        return []
    return []
