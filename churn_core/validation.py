"""Validate an uploaded churn CSV entirely in memory, before anything is stored.

``validate_csv(data, target)`` takes the raw bytes of an upload and either returns a
:class:`ValidatedTable` (the parsed, typed table plus a profile of every feature) or
raises :class:`~churn_core.errors.ValidationError` whose message says what is wrong
and what to do about it. Nothing here touches the disk.

The checks run from the outside in: size and emptiness, other file formats (Excel,
Parquet, gzip, JSON, …), binary content, text encoding, CSV structure (header, column
names, ragged rows), the target column, row and class counts, and finally each
feature column (empty, numeric with stray text, constant, ID-like).

Conventions used in messages:

* *line* numbers count physical lines of the file, the header being line 1;
* *row* numbers count rows as a spreadsheet shows them: the header is row 1, the
  first data row is row 2.

Missing values: a blank cell, or one of ``NA``, ``N/A``, ``NaN``, ``null``, ``#N/A``,
``<NA>`` (any case), is missing in every column. In a column that is otherwise numeric,
``None``, ``-`` and ``?`` also count as missing; in a text column they stay categories.
"""

from __future__ import annotations

import codecs
import csv
import difflib
import io
import json
import math
import re
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from .errors import ValidationError
from .paths import entry_module
from .workbooks import as_csv

_rules = entry_module("dataset_schema")  # the cell rules training applies: one source of truth

MIN_ROWS = 50  # fewest data rows a file needs to be split and trained on
MIN_PER_CLASS = 5  # a stratified split needs each class in both train and test
NUMERIC_SHARE = 0.8  # a column this numeric is a number column with stray text, not a category
ID_UNIQUE_SHARE = 0.95  # a text column with this share of distinct values identifies rows
HIGH_CARDINALITY = 50  # categorical columns with more distinct values get a warning
MAX_LISTED = 5  # how many offending values / rows / lines a message names

MB = 1024 * 1024
_SNIFF_BYTES = 1 << 20  # the binary check looks at the first MiB
_CONTROL_SHARE = 0.02  # more control bytes than this (besides tab/CR/LF) means "not text"

_NA_ALWAYS = _rules.MISSING_ALWAYS
_NA_IN_NUMERIC = _rules.MISSING_IN_NUMBERS

_NUMBER_RE = _rules.NUMBER_RE
_CONTROL_BYTES = bytes(b for b in range(32) if b not in (9, 10, 13)) + b"\x7f"
_CONTROL_CHARS_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_C1_RE = re.compile(r"[\x80-\x9f]")
_TOKEN_RE = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")
_MARKUP_RE = re.compile(r"<(?:!doctype|html|\?xml|head|body|table|svg)\b", re.IGNORECASE)

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


# --------------------------------------------------------------------------- result types


@dataclass
class FeatureProfile:
    """What one feature column looks like; the model's forms and checks are built from this."""

    name: str
    kind: str  # "numeric" | "categorical"
    min: float | None = None
    max: float | None = None
    median: float | None = None
    mean: float | None = None
    categories: list[str] = field(default_factory=list)  # most common first
    missing: int = 0
    unique: int = 0
    decimals: int = 0  # digits after the point the file writes (numbers are shown to that precision)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(eq=False)
class ValidatedTable:
    """A CSV that passed every check, parsed and typed, with what was learned about it.

    ``frame`` is typed (target 0/1, numbers as numbers, ID columns kept); ``text`` is every named
    column as the file wrote it (stripped), which is what the stored splits hold: training reads
    them back with :meth:`schema`, the one decision about what each column is.
    """

    frame: pd.DataFrame = field(repr=False)
    text: pd.DataFrame = field(repr=False)
    target: str
    positive_label: str
    features: list[FeatureProfile]
    dropped: dict[str, str]
    warnings: list[str]
    encoding: str

    @property
    def rows(self) -> int:
        return int(len(self.frame))

    @property
    def churn_rate(self) -> float:
        return float(self.frame[self.target].mean()) if len(self.frame) else 0.0

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def id_columns(self) -> list[str]:
        return [name for name, reason in self.dropped.items() if reason.startswith("ID-like")]

    def schema(self) -> dict:
        """The dataset schema training applies (``entry/dataset_schema.py`` reads it)."""
        return {
            "format": _rules.SCHEMA_FORMAT,
            "target": self.target,
            "positive_label": self.positive_label,
            "features": [f.to_dict() for f in self.features],
            "dropped": dict(self.dropped),
            "id_columns": self.id_columns,
        }

    def training_frame(self) -> pd.DataFrame:
        """The target and the features, typed: what a model learns from."""
        return self.frame[[self.target, *self.feature_names]].copy()


# --------------------------------------------------------------------------- small helpers


def _fmt_mb(n: int) -> str:
    value = n / MB
    if value >= 1:
        text = f"{value:.1f}"
        return (text[:-2] if text.endswith(".0") else text) + " MB"
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return f"{text} MB ({_plural(n, 'byte')})"


def _show(value: str, limit: int = 40) -> str:
    """A value as a message shows it: quoted, shortened."""
    if len(value) > limit:
        value = value[: limit - 1] + "…"
    return repr(value)


def _names(names, limit: int = 20) -> str:
    names = list(names)
    shown = ", ".join(_show(n, 60) for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _column_letter(index: int) -> str:
    """0 → A, 25 → Z, 26 → AA, as a spreadsheet labels columns."""
    letters = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}" if n == 1 else f"{n:,} {word}s"


def _is_id_name(name: str) -> bool:
    normalized = re.sub(r"[^a-z0-9]", "", name.lower())
    if normalized in _ID_NAMES:
        return True
    tokens = _TOKEN_RE.findall(name)
    return bool(tokens) and len(tokens) > 1 and tokens[-1].lower() in _ID_LAST_TOKENS


_DIGITS_RE = re.compile(r"^\d{1,15}$")


# --------------------------------------------------------------------------- bytes → text


def _as_bytes(data) -> bytes:
    if isinstance(data, bytes):
        return data
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    if isinstance(data, str):
        return data.encode("utf-8")
    raise TypeError(f"validate_csv expects the file's bytes, got {type(data).__name__}")


def _check_size(data: bytes, max_bytes: int | None) -> None:
    if max_bytes is not None and len(data) > max_bytes:
        size, limit = _fmt_mb(len(data)), _fmt_mb(max_bytes)
        if size == limit:  # rounded alike: say it in bytes
            size, limit = f"{len(data):,} bytes", f"{limit} ({max_bytes:,} bytes)"
        raise ValidationError(
            f"The file is too large: {size}, over the upload limit of {limit}. "
            "Upload a smaller file (fewer rows or columns), or raise the limit with CHURN_MAX_UPLOAD_MB."
        )


def _raise_empty(detail: str) -> None:
    raise ValidationError(
        f"The file is empty ({detail}). Choose the CSV file with your customer data: "
        "a header row with the column names, then one row per customer."
    )


def _check_other_formats(data: bytes) -> None:
    """Recognise files that are clearly something other than CSV by their first bytes."""
    head = data[:8]
    what = how = None
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        if b"xl/" in data or b"[Content_Types].xml" in data[:4096] and b"word/" not in data:
            what, how = "an Excel workbook (.xlsx)", "Open it in Excel and export as CSV (File → Save As → 'CSV UTF-8')"
        else:
            what, how = "a ZIP archive", "Unzip it; if the data is a spreadsheet, export as CSV (UTF-8)"
    elif head.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        what, how = (
            "an old-style Excel workbook (.xls)",
            "Open it in Excel and export as CSV (File → Save As → 'CSV UTF-8')",
        )
    elif head.startswith(b"PAR1"):
        what, how = (
            "a Parquet file",
            "Convert it, e.g. pandas.read_parquet(path).to_csv(out, index=False), to export as CSV",
        )
    elif head.startswith(b"\x1f\x8b"):
        what, how = "a gzip-compressed file (.gz)", "Decompress it first (gunzip), or export as CSV without compression"
    elif head.startswith(b"%PDF"):
        what, how = "a PDF document", "Take the data from its source and export as CSV"
    if what:
        raise ValidationError(f"This file looks like {what}, not a CSV file. {how}, then upload that file.")


def _raise_binary(reason: str) -> None:
    raise ValidationError(
        f"This file is not text: it looks binary ({reason}). It may be a database, an image, an archive or "
        "text saved as UTF-16. Open the data in the program it came from and export as CSV (UTF-8)."
    )


def _check_binary_bytes(data: bytes) -> None:
    if b"\x00" in data:
        _raise_binary("it contains NUL bytes")
    sample = data[:_SNIFF_BYTES]
    control = len(sample) - len(sample.translate(None, _CONTROL_BYTES))
    if control and control / len(sample) > _CONTROL_SHARE:
        _raise_binary(f"{control / len(sample):.0%} of its first bytes are control characters")


def _check_binary_text(text: str) -> None:
    if "\x00" in text:
        _raise_binary("it contains NUL characters")
    sample = text[:_SNIFF_BYTES]
    control = len(_CONTROL_CHARS_RE.findall(sample))
    if control and control / max(len(sample), 1) > _CONTROL_SHARE:
        _raise_binary(f"{control / len(sample):.0%} of its first characters are control characters")


def _decode(data: bytes) -> tuple[str, str]:
    """Return (text, encoding).

    Tried in order: UTF-16 (only with its byte-order mark), UTF-8 with BOM, UTF-8, Windows-1252,
    and Latin-1 as a last resort only if the result has no C1 control characters. Windows-1252
    defines every byte except 0x81, 0x8D, 0x8F, 0x90 and 0x9D, and Latin-1 decodes exactly those to
    C1 controls, so bytes that are neither UTF-8 nor Windows-1252 are rejected rather than guessed.
    """
    if data[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError:
            _raise_encoding(data, None, tried="utf-16 (the file starts with a UTF-16 byte-order mark)")
        _check_binary_text(text)
        return text, "utf-16"
    _check_binary_bytes(data)
    utf8_error: UnicodeDecodeError | None = None
    if data.startswith(codecs.BOM_UTF8):
        try:
            return data.decode("utf-8-sig"), "utf-8-sig"
        except UnicodeDecodeError as exc:
            utf8_error = exc
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError as exc:
        utf8_error = utf8_error or exc
    _check_truncated_utf8(data, utf8_error)
    try:
        return data.decode("cp1252"), "cp1252"
    except UnicodeDecodeError:
        pass
    text = data.decode("latin-1")
    if not _C1_RE.search(text):
        return text, "latin-1"
    _raise_encoding(data, utf8_error)
    raise AssertionError("unreachable")


def _check_truncated_utf8(data: bytes, error: UnicodeDecodeError) -> None:
    """UTF-8 text (it already has multi-byte characters) that breaks off inside its last character was cut off.

    Read as Windows-1252 it would "decode" into mangled text, so it is reported instead.
    """
    if error.reason != "unexpected end of data" or error.end != len(data):
        return
    if error.start > 0 and max(data[: error.start]) >= 0x80:
        raise ValidationError(
            f"The file looks truncated: it is UTF-8 text that stops in the middle of a character at its very end "
            f"(byte {len(data):,}). The upload or the export was probably cut off; upload the complete file again."
        )


def _raise_encoding(data: bytes, utf8_error: UnicodeDecodeError | None, tried: str | None = None) -> None:
    where = ""
    if utf8_error is not None:
        bad = data[utf8_error.start : utf8_error.start + 1]
        where = f" (the first byte that is not UTF-8 is 0x{bad.hex().upper()} at byte {utf8_error.start:,})"
    tried = tried or "utf-8-sig, utf-8, cp1252 (Windows-1252) and latin-1"
    raise ValidationError(
        f"The file's text encoding could not be read{where}; tried {tried}. "
        "It may be damaged or not a text file. Save the file as UTF-8 (in Excel: Save As → 'CSV UTF-8') "
        "and upload it again."
    )


def _check_json_or_markup(text: str) -> None:
    start = text.lstrip()[:64]
    if start[:1] in ("{", "["):
        what = None
        try:
            json.loads(text)
            what = "JSON"
        except (ValueError, RecursionError):
            first = text.lstrip().split("\n", 1)[0]
            try:
                if isinstance(json.loads(first), (dict, list)):
                    what = "JSON Lines (one JSON record per line)"
            except (ValueError, RecursionError):
                pass
        if what:
            raise ValidationError(
                f"This file looks like {what}, not CSV. Convert it, e.g. "
                "pandas.read_json(path).to_csv(out, index=False), or export as CSV from its source, "
                "then upload the CSV file."
            )
    if start.startswith("<") and _MARKUP_RE.match(start):
        raise ValidationError(
            "This file looks like a web page or XML, not CSV. Download the data itself, "
            "or open it in a spreadsheet and export as CSV (UTF-8)."
        )


def _fields(line: str, delimiter: str) -> list[str]:
    try:
        return next(csv.reader([line], delimiter=delimiter), [])
    except csv.Error:
        return [line]


def _check_prose(text: str, delimiter: str) -> None:
    """Sentences are not a table: a letter, a README or notes saved as .csv/.txt get "not a table",
    not advice about quoting commas. Prose is a first line whose one or two "column names" are
    sentences, or lines of uneven width made mostly of long runs of words with few separators."""
    lines = [line for line in re.split(r"\r\n|\r|\n", text[:65536]) if line.strip()][:40]
    if not lines:
        return

    def words(line: str) -> int:
        return len(line.split())

    header = _fields(lines[0], delimiter)
    sentence_header = len(header) <= 2 and any(len(cell.split()) >= 6 for cell in header)
    widths = {len(_fields(line, delimiter)) for line in lines}
    total = sum(words(line) for line in lines)
    prose = sum(words(line) for line in lines if words(line) >= 6 and line.count(delimiter) <= words(line) // 4)
    if sentence_header or (len(widths) > 1 and total and prose >= 0.6 * total):
        raise ValidationError(
            "This file looks like text (sentences), not a table: its lines are not rows of values separated by "
            "commas under a header of column names. Upload the customer data itself as CSV: a header row with the "
            "column names, then one row per customer (in a spreadsheet: File → Save As → 'CSV UTF-8')."
        )


# --------------------------------------------------------------------------- text → rows

_EXCEL_SEP_RE = re.compile(r"^sep=([,;\t|])[ \t]*(?:\r\n|\r|\n)", re.IGNORECASE)


def _sniff_delimiter(text: str) -> tuple[str, str]:
    """Return (delimiter, text). Comma unless the header line has none and uses ``;``, tabs or ``|``.

    Excel's ``sep=;`` first line is honoured and removed (Excel does not show it as a row either).
    """
    excel = _EXCEL_SEP_RE.match(text)
    if excel:
        return excel.group(1), text[excel.end() :]
    first = ""
    for line in re.split(r"\r\n|\r|\n", text[:65536]):
        if line.strip():
            first = line
            break
    bare = re.sub(r'"[^"]*"', "", first)
    if "," in bare:
        return ",", text
    counts = {d: bare.count(d) for d in (";", "\t", "|")}
    best = max(counts, key=counts.get)
    return (best if counts[best] else ","), text


@dataclass
class _Table:
    """The file split into a header and raw cells, before any meaning is given to them."""

    header: list[str]
    header_row: int  # record number of the header (1 unless blank lines come first)
    columns: list[np.ndarray] | None  # raw cells per column (object arrays of str); None if rows are ragged
    row_numbers: np.ndarray  # record number (spreadsheet row) of every data row
    ragged: list[tuple[int, int]] = field(default_factory=list)  # (line, fields) of rows that do not fit
    ragged_total: int = 0


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


def _read_fast(text: str, delimiter: str) -> _Table | None:
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
    return _Table(header, int(records[0]), [c[1:] for c in cells], records[1:])


def _read_exact(text: str, delimiter: str) -> _Table:
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
        _raise_empty("it has only blank lines")
    numbers = np.asarray(row_numbers, dtype=np.int64)
    if ragged_total:
        return _Table(header, header_row, None, numbers, ragged, ragged_total)
    columns = []
    for i in range(len(header)):
        column = np.empty(len(rows), dtype=object)
        column[:] = [row[i] for row in rows]
        columns.append(column)
    return _Table(header, header_row, columns, numbers)


def _read_table(text: str, delimiter: str) -> _Table:
    return _read_fast(text, delimiter) or _read_exact(text, delimiter)


class _Cells:
    """One column as its distinct stripped values plus a code per row (all row-wise work stays in C)."""

    __slots__ = ("codes", "uniques", "lowered")

    def __init__(self, raw: np.ndarray):
        if len(raw):
            codes, uniques = pd.factorize(raw, use_na_sentinel=False)
            stripped = np.empty(len(uniques), dtype=object)
            stripped[:] = [(u if isinstance(u, str) else str(u)).strip() for u in uniques]
            codes2, uniques2 = pd.factorize(stripped, use_na_sentinel=False)
            self.codes = np.asarray(codes2, dtype=np.intp)[codes]
            self.uniques = [str(u) for u in uniques2]
        else:
            self.codes = np.empty(0, dtype=np.intp)
            self.uniques = []
        self.lowered = [u.lower() for u in self.uniques]

    def __len__(self) -> int:
        return len(self.codes)

    def flags(self, per_unique) -> np.ndarray:
        """Spread one boolean (or number) per distinct value over the rows."""
        return np.asarray(per_unique)[self.codes] if len(self.uniques) else np.zeros(0, dtype=bool)

    def counts(self) -> np.ndarray:
        return np.bincount(self.codes, minlength=len(self.uniques))

    def missing_per_unique(self) -> np.ndarray:
        return np.array([v in _NA_ALWAYS for v in self.lowered], dtype=bool)

    def keep(self, mask: np.ndarray) -> None:
        self.codes = self.codes[mask]

    def value(self, row: int) -> str:
        return self.uniques[self.codes[row]]

    def texts(self) -> np.ndarray:
        """Object array of every row's stripped text."""
        return self.objects(np.zeros(len(self.uniques), dtype=bool))

    def objects(self, missing_per_unique: np.ndarray) -> np.ndarray:
        """Object array of str, NaN where missing."""
        table = np.empty(len(self.uniques), dtype=object)
        table[:] = self.uniques
        table[missing_per_unique] = np.nan
        return table[self.codes] if len(self.uniques) else np.empty(0, dtype=object)


# --------------------------------------------------------------------------- structure checks


def _check_header(header: list[str]) -> None:
    filled = [h for h in header if h]
    if filled and all(_NUMBER_RE.match(h) for h in filled):
        shown = ", ".join(_show(h) for h in filled[:MAX_LISTED]) + (", …" if len(filled) > MAX_LISTED else "")
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
            f"{_show(name)} (columns {', '.join(_column_letter(c) for c in cols)})"
            for name, cols in list(dups.items())[:MAX_LISTED]
        ]
        raise ValidationError(
            f"Duplicate column names: {', '.join(parts)}. Every column needs its own name; "
            "rename or remove the repeated columns and upload again."
        )


def _raise_ragged(table: _Table) -> None:
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


def _is_row_counter(cells: _Cells) -> bool:
    """True for 0, 1, 2, … (or 1, 2, 3, …): what pandas writes for an unnamed index."""
    present = cells.counts() > 0
    if not len(cells) or not all(_DIGITS_RE.match(v) for v, p in zip(cells.uniques, present, strict=True) if p):
        return False
    values = [int(v) if p else -1 for v, p in zip(cells.uniques, present, strict=True)]
    numbers = cells.flags(np.array(values, dtype=np.int64))
    start = int(numbers[0])
    return start in (0, 1) and bool(np.array_equal(numbers, np.arange(start, start + len(numbers))))


# --------------------------------------------------------------------------- the target


def _parse_target(name: str, cells: _Cells, row_numbers: np.ndarray) -> tuple[np.ndarray, str]:
    counts = cells.counts()
    missing_u = cells.missing_per_unique()
    codes = [_rules.label_of(v) for v in cells.uniques]  # training reads the target by the same rule
    code_u = np.array(
        [-1 if missing_u[i] or c is None else (-2 if c == -1 else c) for i, c in enumerate(codes)], dtype=np.int64
    )
    present = counts > 0
    invalid = [(cells.uniques[i], int(counts[i])) for i in np.flatnonzero(present & (code_u == -2))]
    if invalid:
        invalid.sort(key=lambda item: (-item[1], item[0]))
        shown = ", ".join(f"{_show(v)} ({_plural(n, 'row')})" for v, n in invalid[:MAX_LISTED])
        more = f" and {len(invalid) - MAX_LISTED} more" if len(invalid) > MAX_LISTED else ""
        raise ValidationError(
            f"The target column {_show(name)} is not binary: it must hold two values, one meaning the customer "
            f"left and one meaning they stayed (0/1, yes/no, true/false or y/n, any case). It also has other "
            f"values: {shown}{more}. Choose another target column or recode those values."
        )
    target = cells.flags(code_u) if len(cells) else np.zeros(0, dtype=np.int64)
    blank = np.flatnonzero(target == -1)
    if len(blank):
        rows = row_numbers[blank[:MAX_LISTED]]
        shown = ", ".join(f"{r:,}" for r in rows) + (", …" if len(blank) > MAX_LISTED else "")
        raise ValidationError(
            f"{_plural(len(blank), 'row')} {'has' if len(blank) == 1 else 'have'} no value in the target column "
            f"{_show(name)} (rows {shown}; the header is row 1). Fill in the target for those rows or delete them."
        )
    return target.astype(np.int64), str(_rules.positive_label_of(cells.uniques, counts.tolist()))


def _check_classes(name: str, target: np.ndarray, cells: _Cells) -> None:
    n_pos = int(target.sum())
    n_neg = int(len(target) - n_pos)
    if n_pos == 0 or n_neg == 0:
        meaning = "churned" if n_neg == 0 else "stayed"
        raise ValidationError(
            f"Only one class: every row has {_show(name)} = {_show(cells.value(0))}, i.e. every customer {meaning}. "
            "A churn model needs both customers who left and customers who stayed; add rows of the other "
            "class or choose another target column."
        )
    for count, label in ((n_pos, "churned (positive)"), (n_neg, "stayed (negative)")):
        if count < MIN_PER_CLASS:
            raise ValidationError(
                f"Too few rows of one class: only {count} {'row is' if count == 1 else 'rows are'} {label} in "
                f"{_show(name)}; at least {MIN_PER_CLASS} of each class are needed so that both the training and "
                "the test split contain some. Add more rows of that class."
            )


# --------------------------------------------------------------------------- feature columns


@dataclass
class _Column:
    name: str
    series: pd.Series
    profile: FeatureProfile
    numeric_integers: bool = False


def _numeric_parse(values: list[str]) -> np.ndarray:
    if not values:
        return np.zeros(0, dtype=float)
    return np.asarray(pd.to_numeric(pd.Series(values, dtype=object), errors="coerce"), dtype=float)


def _safe_stat(stat, values: np.ndarray) -> float:
    """A mean or median that stays finite even for values near the float limit (scaled down first)."""
    with np.errstate(over="ignore", invalid="ignore"):
        result = float(stat(values))
        if not math.isfinite(result):
            result = float(stat(values / 4.0)) * 4.0
    return result if math.isfinite(result) else float(np.clip(result, values.min(), values.max()))


class _StrayText(Exception):
    def __init__(self, name: str, share: float, offenders: list[tuple[int, str]], total: int):
        super().__init__(name)
        self.name, self.share, self.offenders, self.total = name, share, offenders, total


def _categorical(name: str, cells: _Cells, missing_u: np.ndarray) -> _Column:
    counts = cells.counts()
    present = [(cells.uniques[i], int(counts[i])) for i in np.flatnonzero((counts > 0) & ~missing_u)]
    categories = [v for v, _ in sorted(present, key=lambda item: (-item[1], item[0]))]
    profile = FeatureProfile(
        name=name,
        kind="categorical",
        categories=categories,
        missing=int(counts[missing_u].sum()) if len(counts) else 0,
        unique=len(categories),
    )
    return _Column(name, pd.Series(cells.objects(missing_u), dtype=object, name=name), profile)


def _type_column(name: str, cells: _Cells, row_numbers: np.ndarray) -> _Column:
    """Decide numeric vs categorical and build the typed series and its profile."""
    n = len(cells)
    counts = cells.counts()
    missing_u = cells.missing_per_unique()
    soft_u = np.array([v in _NA_IN_NUMERIC for v in cells.lowered], dtype=bool)
    parsed_u = _numeric_parse(cells.uniques)
    finite_u = np.isfinite(parsed_u)
    candidate_u = ~missing_u & ~soft_u & (counts > 0)
    n_candidates = int(counts[candidate_u].sum())
    n_numeric = int(counts[candidate_u & finite_u].sum())
    if n_candidates and n_numeric == n_candidates:
        value_u = np.where(candidate_u & finite_u, parsed_u, np.nan)
        numbers = cells.flags(value_u).astype(float)
        present = numbers[~np.isnan(numbers)]
        n_missing = int(n - len(present))
        whole = bool(np.all(present == np.round(present))) and bool(np.all(np.abs(present) < 2**53))
        series = pd.Series(numbers.astype(np.int64) if whole and n_missing == 0 else numbers, name=name)
        profile = FeatureProfile(
            name=name,
            kind="numeric",
            min=float(present.min()),
            max=float(present.max()),
            median=_safe_stat(np.median, present),
            mean=_safe_stat(np.mean, present),
            missing=n_missing,
            unique=int(len(np.unique(value_u[candidate_u & finite_u]))),
            decimals=_rules.decimals_of([cells.uniques[i] for i in np.flatnonzero(candidate_u & finite_u)]),
        )
        return _Column(name, series, profile, numeric_integers=whole)
    if n_candidates and n_numeric / n_candidates >= NUMERIC_SHARE:
        bad_rows = np.flatnonzero(cells.flags(candidate_u & ~finite_u))
        offenders = [(int(row_numbers[i]), cells.value(int(i))) for i in bad_rows[:MAX_LISTED]]
        raise _StrayText(name, n_numeric / n_candidates, offenders, len(bad_rows))
    return _categorical(name, cells, missing_u)


def _raise_stray(stray: list[_StrayText]) -> None:
    first = stray[0]
    shown = ", ".join(f"{_show(v)} (row {r:,})" for r, v in first.offenders)
    more = f" and {first.total - len(first.offenders):,} more" if first.total > len(first.offenders) else ""
    also = f" The same problem is in {_names(s.name for s in stray[1:])}." if len(stray) > 1 else ""
    raise ValidationError(
        f"Column {_show(first.name)} looks numeric ({first.share:.0%} of its values are numbers) but has text "
        f"in {_plural(first.total, 'row')}: {shown}{more}. Row numbers are as a spreadsheet shows them "
        f"(the header is row 1, the first data row is row 2).{also} Fix those cells or leave them blank, "
        "then upload again."
    )


def _id_like_by_values(column: _Column, rows: int) -> str | None:
    p = column.profile
    present = rows - p.missing
    if present < max(20, rows // 2):
        return None
    if p.kind == "categorical" and p.unique / present >= ID_UNIQUE_SHARE:
        return f"ID-like: a different value in {p.unique / present:.0%} of rows; it identifies customers"
    if p.kind == "numeric" and column.numeric_integers and p.missing == 0 and p.unique == rows:
        if p.max - p.min + 1 == rows:
            return "ID-like: consecutive whole numbers, one per row (a row number)"
        if p.min >= 100_000:
            return "ID-like: a different large whole number in every row (an account or phone number)"
    return None


# --------------------------------------------------------------------------- the entry point


def _file_text(data: bytes, max_bytes: int | None) -> tuple[str, str, str, list[str]]:
    """The upload as text: (text, encoding, delimiter, warnings), or ValidationError for what is not a table."""
    data = _as_bytes(data)
    _check_size(data, max_bytes)
    data, workbook_note = as_csv(data)  # an .xlsx workbook (whatever its name) is read as its first sheet
    data = data.rstrip(b"\x1a")  # an old DOS end-of-file marker is not content
    if not data:
        _raise_empty("0 bytes")
    if data.isspace():
        _raise_empty("only whitespace")
    _check_other_formats(data)
    text, encoding = _decode(data)
    if not text.strip():
        _raise_empty("only whitespace")
    _check_json_or_markup(text)
    warnings: list[str] = [workbook_note] if workbook_note else []
    if encoding == "cp1252":
        warnings.append(
            "The file is not UTF-8; it was read as Windows-1252 (cp1252). Check that accented letters look right."
        )
    elif encoding == "latin-1":
        warnings.append("The file is not UTF-8; it was read as Latin-1. Check that accented letters look right.")
    delimiter, text = _sniff_delimiter(text)
    _check_prose(text, delimiter)
    if delimiter != ",":
        shown = {"\t": "tabs", ";": "semicolons", "|": "pipes ('|')"}[delimiter]
        warnings.append(f"Values are separated by {shown}, not commas; the file was read that way.")
    return text, encoding, delimiter, warnings


def read_text_table(data: bytes, max_bytes: int | None = None) -> tuple[pd.DataFrame, list[str]]:
    """A customers file to score, read as uploads are (encoding, delimiter, blank lines), every cell
    as text: (table, warnings). The model's own rules type it later, row by row."""
    text, _, delimiter, warnings = _file_text(data, max_bytes)
    table = _read_table(text, delimiter)
    header = [h.strip() for h in table.header]
    _check_header(header)
    if table.columns is None:
        _raise_ragged(table)
    frame = pd.DataFrame(
        {name: [str(v).strip() for v in column] for name, column in zip(header, table.columns, strict=True) if name},
        columns=[h for h in header if h],
    )
    return frame, warnings


_TARGET_NAMES = ("churn", "churned", "churnflag", "exited", "attrition", "left", "cancelled", "canceled")


def read_header(data: bytes) -> list[str]:
    """The column names of an upload, read as validation reads the file; [] when it is not a table
    (a workbook, binary, JSON): then nothing from it is offered as a column name."""
    try:
        text, _, delimiter, _ = _file_text(data, None)
    except ValidationError:
        return []
    try:
        for record in csv.reader(io.StringIO(text[: 1 << 20], newline=""), delimiter=delimiter):
            if "".join(record).strip():
                return [name.strip() for name in record if name.strip()]
    except csv.Error:
        return []
    return []


def guess_target(columns: list[str]) -> str | None:
    """The column that most likely says whether a customer left, or None when no name says so."""
    normalized = {re.sub(r"[^a-z0-9]", "", c.lower()): c for c in columns}
    for name in _TARGET_NAMES:
        if name in normalized:
            return normalized[name]
    return next((c for c in columns if "churn" in c.lower()), None)


def validate_csv(data: bytes, target: str = "Churn", max_bytes: int | None = None) -> ValidatedTable:
    """Check an uploaded CSV in memory and return it parsed, or raise ``ValidationError``.

    ``data`` is the file's bytes; ``target`` names the column that says whether the customer left;
    ``max_bytes`` is the upload limit (``None``: no limit).
    """
    text, encoding, delimiter, warnings = _file_text(data, max_bytes)
    del data
    table = _read_table(text, delimiter)
    del text
    header = [h.strip() for h in table.header]
    _check_header(header)
    if table.columns is None:
        _raise_ragged(table)
    assert table.columns is not None
    cells = [_Cells(column) for column in table.columns]
    row_numbers = table.row_numbers

    # Rows whose every cell is blank (",,,") are no customers.
    if cells and len(row_numbers):
        blank = np.logical_and.reduce([c.flags([v == "" for v in c.uniques]) for c in cells])
        if blank.any():
            for c in cells:
                c.keep(~blank)
            row_numbers = row_numbers[~blank]
    n_rows = len(row_numbers)
    inner_blank = int(row_numbers[-1] - table.header_row - n_rows) if n_rows else 0
    if inner_blank:
        warnings.append(f"Skipped {_plural(inner_blank, 'empty row')} between data rows.")

    # Columns without a name: a trailing separator (all blank) or a saved pandas index are harmless.
    keep: list[int] = []
    unnamed_errors: list[int] = []
    for i, name in enumerate(header):
        if name:
            keep.append(i)
        elif not len(cells[i]) or cells[i].flags(cells[i].missing_per_unique()).all():
            warnings.append(f"Ignored column {_column_letter(i)}: it has no name and no values.")
        elif _is_row_counter(cells[i]):
            warnings.append(f"Ignored column {_column_letter(i)}: it has no name and only counts rows (a saved index).")
        else:
            unnamed_errors.append(i)
    if unnamed_errors:
        cols = ", ".join(f"column {i + 1} ({_column_letter(i)})" for i in unnamed_errors[:MAX_LISTED])
        raise ValidationError(
            f"Blank column name: {cols} {'has' if len(unnamed_errors) == 1 else 'have'} no name in the header row "
            f"but {'holds' if len(unnamed_errors) == 1 else 'hold'} values. Give every column a name and upload again."
        )
    names = [header[i] for i in keep]
    cells = [cells[i] for i in keep]

    if not isinstance(target, str) or not target.strip():  # after the file's own problems: those come first
        raise ValidationError(
            "Choose the target column: the column that says whether the customer left (e.g. 'Churn')."
        )
    target = target.strip()
    if target not in names:
        by_lower = {n.lower(): n for n in names}
        guess = by_lower.get(target.lower())
        if guess is None:
            close = difflib.get_close_matches(target.lower(), list(by_lower), n=1, cutoff=0.6)
            guess = by_lower[close[0]] if close else None
        hint = f" Did you mean {_show(guess)}?" if guess else ""
        raise ValidationError(
            f"The target column {_show(target)} is missing: the file has no column with that name.{hint} "
            f"Columns found: {_names(names)}. Choose the column that says whether the customer left."
        )

    if n_rows < MIN_ROWS:
        raise ValidationError(
            f"Too few rows: the file has {_plural(n_rows, 'data row')}; at least {MIN_ROWS} are needed to train a "
            "model and test it on rows it has not seen. Upload a file with more customers."
        )

    target_cells = cells[names.index(target)]
    target_codes, positive_label = _parse_target(target, target_cells, row_numbers)
    _check_classes(target, target_codes, target_cells)

    empty = [n for n, c in zip(names, cells, strict=True) if n != target and c.flags(c.missing_per_unique()).all()]
    if empty:
        raise ValidationError(
            f"Column {_names(empty)} {'is' if len(empty) == 1 else 'are'} entirely empty (no value in any row). "
            "Delete the empty column or fill it in, then upload again."
        )

    typed: dict[str, pd.Series] = {target: pd.Series(target_codes, name=target)}
    features: list[FeatureProfile] = []
    dropped: dict[str, str] = {}
    stray: list[_StrayText] = []
    for name, column_cells in zip(names, cells, strict=True):
        if name == target:
            continue
        id_name = _is_id_name(name)
        try:
            column = _type_column(name, column_cells, row_numbers)
        except _StrayText as exc:
            if not id_name:
                stray.append(exc)
                continue
            column = _categorical(name, column_cells, column_cells.missing_per_unique())
        typed[name] = column.series
        p = column.profile
        if id_name:
            dropped[name] = "ID-like: the column name says it identifies customers"
        elif p.unique == 1 and p.missing == 0:
            value = p.categories[0] if p.kind == "categorical" else f"{p.min:g}"
            dropped[name] = f"constant: every row has {_show(value)}"
        else:
            reason = _id_like_by_values(column, n_rows)
            if reason:
                dropped[name] = reason
            else:
                features.append(p)
    if stray:
        _raise_stray(stray)

    if not features:
        why = f" (dropped: {'; '.join(f'{_show(n)}, {r}' for n, r in dropped.items())})" if dropped else ""
        raise ValidationError(
            f"No feature columns left: besides the target {_show(target)} the file has no column a model can learn "
            f"from{why}. Add columns that describe the customers (usage, contract, calls, …)."
        )

    # Warnings, most actionable first.
    with_missing = [p for p in features if p.missing]
    if with_missing:
        parts = ", ".join(f"{_show(p.name)} ({p.missing:,} of {n_rows:,} rows)" for p in with_missing)
        warnings.append(
            f"Missing values in {_plural(len(with_missing), 'column')}: {parts}. "
            "Those cells are blank; training has to fill them in."
        )
    constant = [n for n, r in dropped.items() if r.startswith("constant")]
    if constant:
        warnings.append(
            f"Dropped constant {'column' if len(constant) == 1 else 'columns'} {_names(constant)}: the same value "
            "in every row cannot help a model."
        )
    id_like = [n for n, r in dropped.items() if r.startswith("ID-like")]
    if id_like:
        warnings.append(
            f"Dropped ID-like {'column' if len(id_like) == 1 else 'columns'} {_names(id_like)}: "
            "identifiers name customers rather than describe them, so a model cannot learn from them."
        )
    wide = [p for p in features if p.kind == "categorical" and p.unique > HIGH_CARDINALITY]
    if wide:
        warnings.append(
            "Many distinct values in "
            + ", ".join(f"{_show(p.name)} ({p.unique:,})" for p in wide)
            + ": a model learns little from a category that few customers share."
        )

    frame = pd.DataFrame({name: typed[name] for name in names if name in typed})
    text = pd.DataFrame({name: c.texts() for name, c in zip(names, cells, strict=True)}, columns=names)
    return ValidatedTable(
        frame=frame,
        text=text,
        target=target,
        positive_label=positive_label,
        features=features,
        dropped=dropped,
        warnings=warnings,
        encoding=encoding,
    )


__all__ = [
    "MIN_PER_CLASS",
    "MIN_ROWS",
    "FeatureProfile",
    "ValidatedTable",
    "validate_csv",
]
