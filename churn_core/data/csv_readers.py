"""Text or bytes to header and cells: pandas' C parser for regular files, Python's csv module when a file
needs explaining (it knows every record's line), and Arrow (``csv_arrow``) for well-formed UTF-8 bytes.

Every route ends in the same :class:`Table`, so what follows does not know which reader ran.
"""

from __future__ import annotations

import codecs
import csv
import io
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from churn_core.errors import ValidationError
from churn_core.data import csv_arrow
from churn_core.data.cells import Cells, TextColumn
from churn_core.data.decoding import (
    check_binary_bytes, check_other_formats, delimiter_note, file_text, raise_empty, sniff_delimiter, upload_bytes,
)
from churn_core.data.headers import check_header, is_id_name
from churn_core.wording import MAX_LISTED


@dataclass
class Table:
    """The file split into a header and raw cells, before any meaning is given to them."""

    header: list[str]
    header_row: int  # record number of the header (1 unless blank lines come first)
    columns: list[np.ndarray] | None  # raw cells per column (object arrays of str); None if rows are ragged
    row_numbers: np.ndarray  # record number (spreadsheet row) of every data row
    ragged: list[tuple[int, int]] = field(default_factory=list)  # (line, fields) of rows that do not fit
    ragged_total: int = 0
    cells: list | None = None  # the columns already coded (the Arrow route), instead of raw cells


def _record_widths(text: str, delimiter: str) -> np.ndarray | None:
    """Fields per record (0 for an empty line), or None when that cannot be told cheaply and exactly."""
    if "\r" in text and text.count("\r") != text.count("\r\n"):
        # Lone CR line endings (old Mac files, or mixed): pandas' C parser mis-reads a row that starts
        # with a separator after an empty CR line, so those files go to the exact reader.
        return None
    if '"' in text:
        try:
            return np.fromiter(map(len, csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)), dtype=np.int64)
        except csv.Error:
            return None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # after the final line break
    return np.fromiter(
        ((line.count(delimiter) + 1) if line.rstrip("\r") else 0 for line in lines), dtype=np.int64, count=len(lines)
    )


def read_fast(text: str, delimiter: str) -> Table | None:
    """pandas' C parser for regular files (every record as wide as the header); None means "use the exact reader".

    pandas pads short rows silently, so the record widths are counted first; any disagreement
    between the two readers sends the file to the exact reader, which explains what is wrong.
    """
    widths = _record_widths(text, delimiter)
    if widths is None or not len(widths):
        return None
    filled = np.flatnonzero(widths)
    if not len(filled):
        return None
    width = int(widths[filled[0]])
    if width < 2 or np.any((widths != 0) & (widths != width)):
        return None
    records = filled + 1
    try:
        frame = pd.read_csv(
            io.BytesIO(text.encode("utf-8")),
            sep=delimiter,
            header=None,
            dtype=object,
            na_filter=False,
            skip_blank_lines=True,
            engine="c",
            low_memory=False,
            encoding="utf-8",
            quotechar='"',
            doublequote=True,
            index_col=False,
        )
    except Exception:  # noqa: BLE001 - any parser complaint: the exact reader will say what is wrong
        return None
    if frame.shape != (len(records), width):
        return None
    cells = [frame.iloc[:, i].to_numpy(dtype=object) for i in range(width)]
    header = [str(c[0]) for c in cells]
    if not "".join(header).strip():
        return None
    return Table(header, int(records[0]), [c[1:] for c in cells], records[1:])


def read_exact(text: str, delimiter: str) -> Table:
    """Python's csv module, record by record: slower, but it knows every record's line and width."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header: list[str] | None = None
    header_row = 1
    rows: list[list[str]] = []
    row_numbers: list[int] = []
    ragged: list[tuple[int, int]] = []
    ragged_total = 0
    previous_line = 0
    try:
        for record, fields in enumerate(reader, start=1):
            start_line = previous_line + 1
            previous_line = reader.line_num
            if not "".join(fields).strip():
                continue
            if header is None:
                header, header_row = fields, record
                continue
            if len(fields) != len(header):
                ragged_total += 1
                if len(ragged) < MAX_LISTED:
                    ragged.append((start_line, len(fields)))
                continue
            if not ragged_total:
                rows.append(fields)
                row_numbers.append(record)
    except csv.Error as exc:
        hint = "Check the quotes around values on and before that line."
        if "field larger than field limit" in str(exc):
            hint = 'A quote (") probably opens a value that never closes; check the quotes on and before that line.'
        raise ValidationError(
            f"The file could not be read as CSV near line {reader.line_num:,}: {exc}. {hint}"
        ) from None
    if header is None:
        raise_empty("it has only blank lines")
    numbers = np.asarray(row_numbers, dtype=np.int64)
    if ragged_total:
        return Table(header, header_row, None, numbers, ragged, ragged_total)
    columns = []
    for i in range(len(header)):
        column = np.empty(len(rows), dtype=object)
        column[:] = [row[i] for row in rows]
        columns.append(column)
    return Table(header, header_row, columns, numbers)


def read_table(text: str, delimiter: str) -> Table:
    return read_fast(text, delimiter) or read_exact(text, delimiter)


def raise_ragged(table: Table) -> None:
    width = len(table.header)
    shown = ", ".join(f"line {line:,} has {n}" for line, n in table.ragged)
    more = f" ({table.ragged_total:,} rows in all)" if table.ragged_total > len(table.ragged) else ""
    hint = ""
    if not table.header[-1].strip():
        hint = " The header line ends with an empty name: is there a trailing separator on it?"
    raise ValidationError(
        f"Some rows have a different number of fields than the header, which has {width}: {shown}{more}. "
        f"Line numbers count the header as line 1.{hint} Usually a value contains an unquoted comma or a value "
        "is missing; put quotes around values that contain commas, fix those lines and upload again."
    )


def read_fast_source(data, max_bytes: int | None) -> tuple[Table, str, list[str]] | None:
    """(table, encoding, warnings) for a well-formed UTF-8 file, read by Arrow without ever holding the file as
    Python text (``csv_arrow``); None for anything the text route should read (and explain), with the same
    checks before it as ``file_text`` so a bad file fails the same way on either route."""
    data, workbook_note = upload_bytes(data, max_bytes)
    if not data or data.isspace() or data[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
        return None
    check_other_formats(data)
    check_binary_bytes(data)
    start = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    encoding = "utf-8-sig" if start else "utf-8"
    if not csv_arrow.valid_utf8(memoryview(data)[start:]):
        return None
    prefix = data[start:start + 65536].decode("utf-8", errors="ignore")
    if not prefix.strip() or prefix.lstrip()[:1] in ("{", "[", "<"):
        return None  # whitespace, JSON or markup: the text route says so
    delimiter, rest = sniff_delimiter(prefix)
    start += len(prefix[: len(prefix) - len(rest)].encode("utf-8"))  # past Excel's "sep=;" line, if any
    if csv_arrow.lone_cr(data, start):
        return None  # lone CR line ends (old Mac files): the exact reader counts their lines
    coded = csv_arrow.read_coded(data, start, delimiter, as_text=lambda name: bool(name.strip())
                                 and is_id_name(name.strip()))
    if coded is None:
        return None
    header, columns = coded
    n = len(columns[0][0]) if columns[0][0] is not None else len(columns[0][1])
    cells = [Cells(codes=codes, dictionary=values) if codes is not None else TextColumn(values)
             for codes, values in columns]
    del columns
    warnings: list[str] = [workbook_note] if workbook_note else []
    if delimiter != ",":
        warnings.append(delimiter_note(delimiter))
    table = Table(header, 1, None, np.arange(2, n + 2, dtype=np.int64), cells=cells)
    return table, encoding, warnings


def read_text_table(data: bytes, max_bytes: int | None = None) -> tuple[pd.DataFrame, list[str]]:
    """A customers file to score, read as uploads are (encoding, delimiter, blank lines), every cell
    as text: (table, warnings). The model's own rules type it later, row by row."""
    text, _, delimiter, warnings = file_text(data, max_bytes)
    table = read_table(text, delimiter)
    header = [h.strip() for h in table.header]
    check_header(header)
    if table.columns is None:
        raise_ragged(table)
    frame = pd.DataFrame(
        {name: [str(v).strip() for v in column] for name, column in zip(header, table.columns, strict=True) if name},
        columns=[h for h in header if h],
    )
    return frame, warnings
