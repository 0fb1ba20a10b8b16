"""CSV files written for people to open in a spreadsheet, safe from formula injection.

A cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is run as a formula
by Excel, LibreOffice and Google Sheets (``=cmd|' /C calc'!A0``, ``=HYPERLINK(...)``). Customer
files come from elsewhere, so every CSV the product offers for download goes through this module,
following OWASP's guidance (https://owasp.org/www-community/attacks/CSV_Injection):

* a text cell starting with one of those characters gets a leading single quote (``'=1+2``), which
  spreadsheets show as text and never evaluate;
* every text cell is wrapped in double quotes, and double quotes inside it are doubled, so a
  separator in a cell never starts a new one;
* numbers stay numbers: numeric columns are written as they are, and a text cell that is a plain
  number (``-2.5``, ``+3``, ``1e-4``) is left alone, since a spreadsheet reads it as that number.

Column names and the index are cells too and are treated the same way.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import IO

import pandas as pd

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_STARTS_LIKE_FORMULA = r"^[=+\-@\t\r]"
_PLAIN_NUMBER = r"^\s*[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?\s*$"
_PLAIN_NUMBER_RE = re.compile(_PLAIN_NUMBER)


def escape_cell(value):
    """One cell as it is safe to write: text that a spreadsheet would evaluate gets a leading quote."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS) and not _PLAIN_NUMBER_RE.match(value):
        return "'" + value
    return value


def _escape_series(column: pd.Series) -> pd.Series:
    if pd.api.types.is_numeric_dtype(column.dtype) or pd.api.types.is_datetime64_any_dtype(column.dtype):
        return column
    if isinstance(column.dtype, pd.CategoricalDtype):
        column = column.astype(object)
    text = column.astype(object)
    strings = text.map(lambda v: isinstance(v, str))
    if not strings.any():
        return column
    as_text = text.where(strings, "")
    risky = as_text.str.contains(_STARTS_LIKE_FORMULA, regex=True) & ~as_text.str.match(_PLAIN_NUMBER)
    if not risky.any():
        return column
    return text.where(~risky, "'" + as_text)


def escape_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` with every text cell, column name and index label escaped."""
    escaped = pd.DataFrame(
        {i: _escape_series(frame.iloc[:, i]) for i in range(frame.shape[1])}, index=frame.index
    )
    escaped.columns = [escape_cell(str(c)) for c in frame.columns]
    if not isinstance(frame.index, pd.RangeIndex):
        escaped.index = pd.Index([escape_cell(v) for v in frame.index], name=escape_cell(frame.index.name))
    return escaped


def write_download_csv(frame: pd.DataFrame, target: IO[str] | str | Path, *, index: bool = False,
                       header: bool = True) -> None:
    """Write ``frame`` as a download-safe CSV to a text stream or a path (chunks: ``header=False``
    after the first, with the stream opened for appending)."""
    escape_frame(frame).to_csv(target, index=index, header=header, quoting=csv.QUOTE_NONNUMERIC,
                               lineterminator="\n")


def to_download_csv(frame: pd.DataFrame, *, index: bool = False) -> bytes:
    """``frame`` as the bytes of a CSV file a person may open in a spreadsheet (UTF-8)."""
    buffer = io.StringIO()
    write_download_csv(frame, buffer, index=index)
    return buffer.getvalue().encode("utf-8")
