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

from churn_core.errors import ValidationError
from churn_core.paths import entry_module
from churn_core.data.workbooks import as_csv

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
    """A CSV that passed every check, with what was learned about it.

    Every column is kept compactly (a code per row and its distinct values), so a million-row upload
    holds no Python object per cell. ``frame`` (typed: target 0/1, numbers as numbers, ID columns kept)
    and ``text`` (every named column as the file wrote it, stripped: what the stored splits hold) are
    built when first asked for; ``preview`` builds a few rows, ``write_csv`` writes rows of the text
    straight to CSV bytes, and :meth:`schema` is the one decision about what each column is.
    """

    target: str
    positive_label: str
    features: list[FeatureProfile]
    dropped: dict[str, str]
    warnings: list[str]
    encoding: str
    columns: list[str] = field(default_factory=list)  # every named column, in file order
    target_values: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64), repr=False)
    _cells: dict = field(default_factory=dict, repr=False)  # name -> _Cells (stripped text)
    _typing: dict = field(default_factory=dict, repr=False)  # name -> _Column (how it is typed)
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def rows(self) -> int:
        return int(len(self.target_values))

    @property
    def churn_rate(self) -> float:
        return float(self.target_values.mean()) if len(self.target_values) else 0.0

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def id_columns(self) -> list[str]:
        return [name for name, reason in self.dropped.items() if reason.startswith("ID-like")]

    def _typed(self, name: str, rows: np.ndarray | None = None) -> pd.Series:
        if name == self.target:
            values = self.target_values if rows is None else self.target_values[rows]
            return pd.Series(values, name=name)
        typing, cells = self._typing[name], self._cells[name]
        if typing.kind == "deferred":  # an identifier column left as text at upload: typed now
            coded = cells.coded()
            try:
                typing = _type_column(name, coded, np.arange(2, len(coded) + 2), want_categories=False)
            except _StrayText:
                typing = _categorical(name, coded, coded.missing_per_unique(), want_categories=False)
            self._typing[name] = typing
        return typing.series(cells.coded(), rows)

    def _typed_frame(self, rows: np.ndarray | None = None) -> pd.DataFrame:
        names = [n for n in self.columns if n == self.target or n in self._typing]
        return pd.DataFrame({n: self._typed(n, rows) for n in names}, columns=names)

    @property
    def frame(self) -> pd.DataFrame:
        """Typed: target 0/1, numbers as numbers, text with NaN where missing (built on first use)."""
        if "frame" not in self._cache:
            self._cache["frame"] = self._typed_frame()
        return self._cache["frame"]

    @property
    def text(self) -> pd.DataFrame:
        """Every named column as the file wrote it, stripped (built on first use)."""
        if "text" not in self._cache:
            self._cache["text"] = pd.DataFrame({n: self._cells[n].texts() for n in self.columns}, columns=self.columns)
        return self._cache["text"]

    def preview(self, rows: int = 20) -> pd.DataFrame:
        """The first ``rows`` rows, typed as ``frame`` (without building all of it)."""
        return self._typed_frame(np.arange(min(rows, self.rows)))

    def text_preview(self, rows: int = 20) -> pd.DataFrame:
        """The first ``rows`` rows as ``text`` has them (as the file wrote them), without building all of it."""
        picked = np.arange(min(rows, self.rows))
        return pd.DataFrame({n: self._cells[n].dictionary_array(picked).to_pylist() for n in self.columns},
                            columns=self.columns, dtype=object)

    def write_csv(self, rows: np.ndarray | None = None) -> bytes:
        """These rows (all when None) of the text, as CSV bytes with a header (every value quoted)."""
        import pyarrow as pa
        import pyarrow.csv as pacsv

        table = pa.table({n: self._cells[n].dictionary_array(rows) for n in self.columns})
        buffer = io.BytesIO()
        pacsv.write_csv(table, buffer)
        return buffer.getvalue()

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


# Python's str.strip() whitespace, as an RE2 class (Arrow's regex engine): a distinct value touching one of these
# needs stripping.
_PY_SPACE = r"[\t\n\x0b\x0c\r\x1c-\x1f \x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}]"
_EDGE_SPACE = f"^{_PY_SPACE}|{_PY_SPACE}$"
_STRIP = f"^{_PY_SPACE}+|{_PY_SPACE}+$"
# A value pandas parses to a finite number always looks like this (ASCII digits); one that does not is text.
_NUMBER_LIKE = r"^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$"


class _Cells:
    """One column as its distinct stripped values plus a code per row (all row-wise work stays in C).

    From the exact reader it is built from the raw cells; from Arrow (``csv_arrow``) from codes and the
    distinct values as an Arrow array (``arrow``), which keeps work per distinct value vectorised too: a
    column of a million IDs never becomes a million Python strings unless something asks for them."""

    __slots__ = ("codes", "_uniques", "_lowered", "arrow", "_counts", "_missing")

    def __init__(self, raw: np.ndarray | None = None, codes: np.ndarray | None = None, dictionary=None):
        self.arrow = None
        self._lowered = None
        self._counts = None
        self._missing = None
        if dictionary is not None:
            self._from_arrow(codes, dictionary)
            return
        if len(raw):
            codes, uniques = pd.factorize(raw, use_na_sentinel=False)
            stripped = np.empty(len(uniques), dtype=object)
            stripped[:] = [(u if isinstance(u, str) else str(u)).strip() for u in uniques]
            codes2, uniques2 = pd.factorize(stripped, use_na_sentinel=False)
            self.codes = np.asarray(codes2, dtype=np.intp)[codes]
            self._uniques = [str(u) for u in uniques2]
        else:
            self.codes = np.empty(0, dtype=np.intp)
            self._uniques = []

    def _from_arrow(self, codes: np.ndarray, dictionary) -> None:
        import pyarrow.compute as pc

        self._uniques = None
        self._counts = None
        if len(dictionary) and pc.any(pc.match_substring_regex(dictionary, _EDGE_SPACE)).as_py():
            # str.strip(), in Arrow: the same whitespace, then values that became equal share one code
            stripped = pc.dictionary_encode(pc.replace_substring_regex(dictionary, _STRIP, ""))
            self.codes = stripped.indices.to_numpy(zero_copy_only=False)[codes]
            self.arrow = stripped.dictionary
        else:
            self.codes = codes
            self.arrow = dictionary

    @property
    def uniques(self) -> list[str]:
        if self._uniques is None:
            self._uniques = self.arrow.to_pylist()
        return self._uniques

    @property
    def lowered(self) -> list[str]:
        if self._lowered is None:
            self._lowered = [u.lower() for u in self.uniques]
        return self._lowered

    def n_uniques(self) -> int:
        return len(self.arrow) if self._uniques is None else len(self._uniques)

    def __len__(self) -> int:
        return len(self.codes)

    def flags(self, per_unique) -> np.ndarray:
        """Spread one boolean (or number) per distinct value over the rows."""
        return np.asarray(per_unique)[self.codes] if self.n_uniques() else np.zeros(0, dtype=bool)

    def counts(self) -> np.ndarray:
        if self._counts is None:
            self._counts = np.bincount(self.codes, minlength=self.n_uniques())
        return self._counts

    def _in_lowered(self, values: frozenset) -> np.ndarray:
        if self.arrow is not None and self._lowered is None:
            import pyarrow as pa
            import pyarrow.compute as pc

            found = pc.is_in(pc.utf8_lower(self.arrow), value_set=pa.array(sorted(values), type=pa.string()))
            return found.to_numpy(zero_copy_only=False).astype(bool)
        return np.array([v in values for v in self.lowered], dtype=bool)

    def missing_per_unique(self) -> np.ndarray:
        if self._missing is None:
            self._missing = self._in_lowered(_NA_ALWAYS)
        return self._missing

    def soft_missing_per_unique(self) -> np.ndarray:
        return self._in_lowered(_NA_IN_NUMERIC)

    def blank_per_unique(self) -> np.ndarray:
        if self.arrow is not None:
            import pyarrow.compute as pc

            return pc.equal(pc.binary_length(self.arrow), 0).to_numpy(zero_copy_only=False).astype(bool)
        return np.array([v == "" for v in self.uniques], dtype=bool)

    def blank_rows(self) -> np.ndarray | None:
        """Whether each row's cell is blank; None when no cell of the column is."""
        blank_u = self.blank_per_unique()
        return self.flags(blank_u) if blank_u.any() else None

    def all_missing(self) -> bool:
        return not len(self) or not bool(self.counts()[~self.missing_per_unique()].any())

    def coded(self) -> "_Cells":
        return self

    def keep(self, mask: np.ndarray) -> None:
        self.codes = self.codes[mask]
        self._counts = None

    def value(self, row: int) -> str:
        code = int(self.codes[row])
        return self.arrow[code].as_py() if self._uniques is None else self._uniques[code]

    def texts(self) -> np.ndarray:
        """Object array of every row's stripped text."""
        return self.objects(np.zeros(self.n_uniques(), dtype=bool))

    def objects(self, missing_per_unique: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """Object array of str, NaN where missing (of ``rows`` only, when given)."""
        table = np.empty(self.n_uniques(), dtype=object)
        table[:] = self.uniques
        table[missing_per_unique] = np.nan
        codes = self.codes if rows is None else self.codes[rows]
        return table[codes] if self.n_uniques() else np.empty(0, dtype=object)

    def dictionary_array(self, rows: np.ndarray | None = None):
        """The column (or ``rows`` of it) as an Arrow dictionary array of its stripped text."""
        import pyarrow as pa

        values = self.arrow if self.arrow is not None else pa.array(self.uniques, type=pa.string())
        codes = self.codes if rows is None else self.codes[rows]
        return pa.DictionaryArray.from_arrays(pa.array(np.asarray(codes, dtype=np.int32)), values)


class _TextColumn:
    """A column left as Arrow text, never coded unless asked: what validation computes nothing from (a column
    named like an identifier is dropped by its name; only its text is stored with the splits)."""

    __slots__ = ("column", "_coded")

    def __init__(self, column):
        self.column = column
        self._coded: _Cells | None = None

    def __len__(self) -> int:
        return len(self.column)

    def coded(self) -> _Cells:
        if self._coded is None:
            import pyarrow as pa
            import pyarrow.compute as pc

            chunks = pc.dictionary_encode(self.column).chunks  # one memo table: the last chunk has every value
            if chunks:
                codes = np.concatenate([c.indices.to_numpy(zero_copy_only=False) for c in chunks])
                self._coded = _Cells(codes=codes, dictionary=chunks[-1].dictionary)
            else:
                self._coded = _Cells(codes=np.zeros(0, dtype=np.int32), dictionary=pa.array([], type=pa.string()))
        return self._coded

    def _stripped(self):
        import pyarrow.compute as pc

        if pc.any(pc.match_substring_regex(self.column, _EDGE_SPACE)).as_py():
            return pc.replace_substring_regex(self.column, _STRIP, "")
        return self.column

    def blank_rows(self) -> np.ndarray | None:
        import pyarrow.compute as pc

        blank = pc.equal(pc.binary_length(self._stripped()), 0)
        return blank.to_numpy().astype(bool) if pc.any(blank).as_py() else None

    def all_missing(self) -> bool:
        if len(self.column) and str(self.column[0].as_py()).strip().lower() not in _NA_ALWAYS:
            return False  # one value is enough to know it is not empty
        return self.coded().all_missing()

    def keep(self, mask: np.ndarray) -> None:
        import pyarrow as pa

        self.column = self.column.filter(pa.array(mask))
        self._coded = None

    def texts(self) -> np.ndarray:
        return np.asarray(self._stripped().to_numpy(zero_copy_only=False), dtype=object)

    def dictionary_array(self, rows: np.ndarray | None = None):
        import pyarrow as pa

        stripped = self._stripped()
        return stripped if rows is None else stripped.take(pa.array(rows))


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
    """How one column is typed: per distinct value (so the typed column is built only when asked for)."""

    name: str
    kind: str  # "numeric" | "categorical"
    profile: FeatureProfile
    per_unique: np.ndarray  # numeric: the number of each distinct value (NaN: missing); categorical: missing?
    numeric_integers: bool = False
    all_present: bool = False

    def series(self, cells: "_Cells", rows: np.ndarray | None = None) -> pd.Series:
        """The typed column (of ``rows`` only, when given): numbers, or text with NaN where missing."""
        if self.kind == "numeric":
            codes = cells.codes if rows is None else cells.codes[rows]
            numbers = self.per_unique[codes] if len(self.per_unique) else np.zeros(0, dtype=float)
            if self.numeric_integers and self.all_present:
                numbers = numbers.astype(np.int64)
            return pd.Series(numbers, name=self.name)
        return pd.Series(cells.objects(self.per_unique, rows), dtype=object, name=self.name)


_PARSE_SLICE = 65536


def _numeric_parse(cells: "_Cells", candidate_u: np.ndarray, counts: np.ndarray,
                   n_candidates: int) -> np.ndarray | None:
    """The number each candidate distinct value parses to (NaN when it is not one), or None as soon as the
    values that are not numbers already hold more than ``1 - NUMERIC_SHARE`` of the rows: then the column is
    text whatever the rest holds (a column of a million IDs is not parsed to the end)."""
    parsed = np.full(cells.n_uniques(), np.nan)
    idx = np.flatnonzero(candidate_u)
    if not len(idx):
        return parsed
    if cells.arrow is not None:
        import pyarrow as pa
        import pyarrow.compute as pc

        values = cells.arrow.take(pa.array(idx))
        looks = pc.match_substring_regex(values, _NUMBER_LIKE).to_numpy(zero_copy_only=False).astype(bool)
        if int(counts[idx][~looks].sum()) > (1 - NUMERIC_SHARE) * n_candidates:
            return None  # text in too many rows to be a number column: no need to parse any of it
        if looks.all():
            try:  # Arrow's parser: every candidate a number, the common case for a numeric column
                parsed[idx] = pc.cast(values, pa.float64()).to_numpy(zero_copy_only=False)
                return parsed
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                pass
    order = idx[np.argsort(-counts[idx], kind="stable")]
    text_rows, limit = 0, (1 - NUMERIC_SHARE) * n_candidates
    for start in range(0, len(order), _PARSE_SLICE):
        part = order[start:start + _PARSE_SLICE]
        if cells.arrow is not None:
            import pyarrow as pa

            values = cells.arrow.take(pa.array(part)).to_pylist()
        else:
            values = [cells.uniques[i] for i in part]
        numbers = np.asarray(pd.to_numeric(pd.Series(values, dtype=object), errors="coerce"), dtype=float)
        parsed[part] = numbers
        text_rows += int(counts[part][~np.isfinite(numbers)].sum())
        if text_rows > limit:
            return None
    return parsed


def _decimals(cells: "_Cells", mask: np.ndarray) -> int:
    """Digits after the point the file writes, over the distinct values in ``mask`` (``decimals_of``)."""
    idx = np.flatnonzero(mask)
    if cells.arrow is None or not len(idx):
        return _rules.decimals_of([cells.uniques[i] for i in idx])
    import pyarrow as pa
    import pyarrow.compute as pc

    values = cells.arrow.take(pa.array(idx))
    point = pc.find_substring(values, ".").to_numpy(zero_copy_only=False)
    length = pc.binary_length(values).to_numpy(zero_copy_only=False)
    exponent = pc.match_substring(values, "e", ignore_case=True).to_numpy(zero_copy_only=False)
    digits = np.where((point >= 0) & ~exponent, length - point - 1, 0)
    return int(min(int(digits.max()) if len(digits) else 0, _rules.MAX_DECIMALS))


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


def _looks_like_ids(unique: int, present: int, rows: int) -> bool:
    return present >= max(20, rows // 2) and unique / present >= ID_UNIQUE_SHARE


def _sorted_categories(cells: _Cells, idx: np.ndarray, counts: np.ndarray) -> list[str]:
    """Distinct values ``idx``, most common first (ties by value, as Python sorts text)."""
    if cells.arrow is not None and len(idx) > 1000:
        import pyarrow as pa
        import pyarrow.compute as pc

        table = pa.table({"count": pa.array(counts[idx]), "value": cells.arrow.take(pa.array(idx))})
        order = pc.sort_indices(table, sort_keys=[("count", "descending"), ("value", "ascending")])
        return table.column("value").take(order).to_pylist()  # UTF-8 byte order is code point order
    present = [(cells.uniques[i], int(counts[i])) for i in idx]
    return [v for v, _ in sorted(present, key=lambda item: (-item[1], item[0]))]


def _categorical(name: str, cells: _Cells, missing_u: np.ndarray, want_categories: bool = True) -> _Column:
    counts = cells.counts()
    idx = np.flatnonzero((counts > 0) & ~missing_u)
    missing = int(counts[missing_u].sum()) if len(counts) else 0
    rows = len(cells)
    # The categories of a column that will be dropped as identifiers are never shown: not sorted either.
    wanted = want_categories and not _looks_like_ids(len(idx), rows - missing, rows)
    profile = FeatureProfile(
        name=name,
        kind="categorical",
        categories=_sorted_categories(cells, idx, counts) if wanted else [],
        missing=missing,
        unique=len(idx),
    )
    return _Column(name, "categorical", profile, missing_u)


def _type_column(name: str, cells: _Cells, row_numbers: np.ndarray, want_categories: bool = True) -> _Column:
    """Decide numeric vs categorical and profile the column."""
    n = len(cells)
    counts = cells.counts()
    missing_u = cells.missing_per_unique()
    soft_u = cells.soft_missing_per_unique()
    candidate_u = ~missing_u & ~soft_u & (counts > 0)
    n_candidates = int(counts[candidate_u].sum())
    parsed_u = _numeric_parse(cells, candidate_u, counts, n_candidates)
    if parsed_u is None:
        return _categorical(name, cells, missing_u, want_categories)
    finite_u = np.isfinite(parsed_u)
    n_numeric = int(counts[candidate_u & finite_u].sum())
    if n_candidates and n_numeric == n_candidates:
        value_u = np.where(candidate_u & finite_u, parsed_u, np.nan)
        numbers = cells.flags(value_u).astype(float)
        present = numbers[~np.isnan(numbers)]
        n_missing = int(n - len(present))
        whole = bool(np.all(present == np.round(present))) and bool(np.all(np.abs(present) < 2**53))
        profile = FeatureProfile(
            name=name,
            kind="numeric",
            min=float(present.min()),
            max=float(present.max()),
            median=_safe_stat(np.median, present),
            mean=_safe_stat(np.mean, present),
            missing=n_missing,
            unique=int(len(np.unique(value_u[candidate_u & finite_u]))),
            decimals=_decimals(cells, candidate_u & finite_u),
        )
        return _Column(name, "numeric", profile, value_u, numeric_integers=whole, all_present=n_missing == 0)
    if n_candidates and n_numeric / n_candidates >= NUMERIC_SHARE:
        bad_rows = np.flatnonzero(cells.flags(candidate_u & ~finite_u))
        offenders = [(int(row_numbers[i]), cells.value(int(i))) for i in bad_rows[:MAX_LISTED]]
        raise _StrayText(name, n_numeric / n_candidates, offenders, len(bad_rows))
    return _categorical(name, cells, missing_u, want_categories)


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


def _read_fast_source(data, max_bytes: int | None) -> tuple[_Table, str, list[str]] | None:
    """(table, encoding, warnings) for a well-formed UTF-8 file, read by Arrow without ever holding the file as
    Python text (``csv_arrow``); None for anything the text route should read (and explain), with the same
    checks before it as ``_file_text`` so a bad file fails the same way on either route."""
    data = _as_bytes(data)
    _check_size(data, max_bytes)
    data, workbook_note = as_csv(data)  # an .xlsx workbook (whatever its name) is read as its first sheet
    data = data.rstrip(b"\x1a")
    if not data or data.isspace() or data[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
        return None
    _check_other_formats(data)
    _check_binary_bytes(data)
    from churn_core.data import csv_arrow

    start = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    encoding = "utf-8-sig" if start else "utf-8"
    if not csv_arrow.valid_utf8(memoryview(data)[start:]):
        return None
    prefix = data[start:start + 65536].decode("utf-8", errors="ignore")
    if not prefix.strip() or prefix.lstrip()[:1] in ("{", "[", "<"):
        return None  # whitespace, JSON or markup: the text route says so
    delimiter, rest = _sniff_delimiter(prefix)
    start += len(prefix[: len(prefix) - len(rest)].encode("utf-8"))  # past Excel's "sep=;" line, if any
    if csv_arrow.lone_cr(data, start):
        return None  # lone CR line ends (old Mac files): the exact reader counts their lines
    coded = csv_arrow.read_coded(data, start, delimiter, as_text=lambda name: bool(name.strip())
                                 and _is_id_name(name.strip()))
    if coded is None:
        return None
    header, columns = coded
    n = len(columns[0][0]) if columns[0][0] is not None else len(columns[0][1])
    cells = [_Cells(codes=codes, dictionary=values) if codes is not None else _TextColumn(values)
             for codes, values in columns]
    del columns
    warnings: list[str] = [workbook_note] if workbook_note else []
    if delimiter != ",":
        shown = {"\t": "tabs", ";": "semicolons", "|": "pipes ('|')"}[delimiter]
        warnings.append(f"Values are separated by {shown}, not commas; the file was read that way.")
    table = _Table(header, 1, None, np.arange(2, n + 2, dtype=np.int64), cells=cells)
    return table, encoding, warnings


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
    fast = _read_fast_source(data, max_bytes)
    if fast is not None:  # a well-formed UTF-8 file: Arrow, no Python object per cell
        table, encoding, warnings = fast
        del data
    else:  # anything else (other encodings, blank lines, ragged rows ...): the text route explains it
        text, encoding, delimiter, warnings = _file_text(data, max_bytes)
        del data
        table = _read_table(text, delimiter)
        del text
    header = [h.strip() for h in table.header]
    _check_header(header)
    if table.cells is None and table.columns is None:
        _raise_ragged(table)
    cells = table.cells if table.cells is not None else [_Cells(column) for column in table.columns]
    table.columns = table.cells = None  # the raw cells are no longer needed
    row_numbers = table.row_numbers

    # Rows whose every cell is blank (",,,") are no customers.
    blank_rows = []
    # coded columns first: one without a blank cell settles it before any text column is looked at
    for c in sorted(cells, key=lambda c: isinstance(c, _TextColumn)) if len(row_numbers) else []:
        rows_blank = c.blank_rows()
        if rows_blank is None:  # this column has no blank cell: no row is blank everywhere
            blank_rows = []
            break
        blank_rows.append(rows_blank)
    if blank_rows:
        blank = np.logical_and.reduce(blank_rows)
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
        elif cells[i].all_missing():
            warnings.append(f"Ignored column {_column_letter(i)}: it has no name and no values.")
        elif _is_row_counter(cells[i].coded()):
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

    cells[names.index(target)] = target_cells = cells[names.index(target)].coded()
    target_codes, positive_label = _parse_target(target, target_cells, row_numbers)
    _check_classes(target, target_codes, target_cells)

    empty = [n for n, c in zip(names, cells, strict=True) if n != target and c.all_missing()]
    if empty:
        raise ValidationError(
            f"Column {_names(empty)} {'is' if len(empty) == 1 else 'are'} entirely empty (no value in any row). "
            "Delete the empty column or fill it in, then upload again."
        )

    typed: dict[str, _Column] = {}
    features: list[FeatureProfile] = []
    dropped: dict[str, str] = {}
    stray: list[_StrayText] = []
    for name, column_cells in zip(names, cells, strict=True):
        if name == target:
            continue
        id_name = _is_id_name(name)
        if isinstance(column_cells, _TextColumn):  # dropped by its name: typed only if the frame is asked for
            typed[name] = _Column(name, "deferred", FeatureProfile(name=name, kind="categorical"), np.zeros(0))
            dropped[name] = "ID-like: the column name says it identifies customers"
            continue
        try:
            column = _type_column(name, column_cells, row_numbers, want_categories=not id_name)
        except _StrayText as exc:
            if not id_name:
                stray.append(exc)
                continue
            column = _categorical(name, column_cells, column_cells.missing_per_unique(), want_categories=False)
        typed[name] = column
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

    return ValidatedTable(
        target=target,
        positive_label=positive_label,
        features=features,
        dropped=dropped,
        warnings=warnings,
        encoding=encoding,
        columns=list(names),
        target_values=target_codes,
        _cells=dict(zip(names, cells, strict=True)),
        _typing=typed,
    )


__all__ = [
    "MIN_PER_CLASS",
    "MIN_ROWS",
    "FeatureProfile",
    "ValidatedTable",
    "validate_csv",
]
