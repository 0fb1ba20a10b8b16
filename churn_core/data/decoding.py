"""An upload's bytes as text: size, other file formats, binary content, encoding, delimiter, prose.

These checks run first, from the outside in, so a file that is not a text table is named for what it is
(a workbook, a PDF, JSON, sentences) before anything tries to read it as CSV.
"""

from __future__ import annotations

import codecs
import csv
import json
import re

from churn_core.errors import ValidationError
from churn_core.data.workbooks import as_csv
from churn_core.wording import fmt_mb

_SNIFF_BYTES = 1 << 20  # the binary check looks at the first MiB
_CONTROL_SHARE = 0.02  # more control bytes than this (besides tab/CR/LF) means "not text"
_CONTROL_BYTES = bytes(b for b in range(32) if b not in (9, 10, 13)) + b"\x7f"
_CONTROL_CHARS_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_C1_RE = re.compile(r"[\x80-\x9f]")
_MARKUP_RE = re.compile(r"<(?:!doctype|html|\?xml|head|body|table|svg)\b", re.IGNORECASE)
_EXCEL_SEP_RE = re.compile(r"^sep=([,;\t|])[ \t]*(?:\r\n|\r|\n)", re.IGNORECASE)


def as_bytes(data) -> bytes:
    if isinstance(data, bytes):
        return data
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    if isinstance(data, str):
        return data.encode("utf-8")
    raise TypeError(f"validate_csv expects the file's bytes, got {type(data).__name__}")


def check_size(data: bytes, max_bytes: int | None) -> None:
    if max_bytes is not None and len(data) > max_bytes:
        size, limit = fmt_mb(len(data)), fmt_mb(max_bytes)
        if size == limit:  # rounded alike: say it in bytes
            size, limit = f"{len(data):,} bytes", f"{limit} ({max_bytes:,} bytes)"
        raise ValidationError(
            f"The file is too large: {size}, over the upload limit of {limit}. "
            "Upload a smaller file (fewer rows or columns), or raise the limit with CHURN_MAX_UPLOAD_MB."
        )


def raise_empty(detail: str) -> None:
    raise ValidationError(
        f"The file is empty ({detail}). Choose the CSV file with your customer data: "
        "a header row with the column names, then one row per customer."
    )


def check_other_formats(data: bytes) -> None:
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


def check_binary_bytes(data: bytes) -> None:
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
    check_binary_bytes(data)
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


def sniff_delimiter(text: str) -> tuple[str, str]:
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


def upload_bytes(data, max_bytes: int | None) -> tuple[bytes, str | None]:
    """(bytes, workbook note): the first checks of either reading route, so a bad file fails the same way on both."""
    data = as_bytes(data)
    check_size(data, max_bytes)
    data, workbook_note = as_csv(data, max_bytes)  # an .xlsx workbook (whatever its name): its first sheet
    data = data.rstrip(b"\x1a")  # an old DOS end-of-file marker is not content
    return data, workbook_note


def delimiter_note(delimiter: str) -> str:
    """The warning for a file whose values are separated by something other than commas (either route)."""
    shown = {"\t": "tabs", ";": "semicolons", "|": "pipes ('|')"}[delimiter]
    return f"Values are separated by {shown}, not commas; the file was read that way."


def file_text(data: bytes, max_bytes: int | None) -> tuple[str, str, str, list[str]]:
    """The upload as text: (text, encoding, delimiter, warnings), or ValidationError for what is not a table."""
    data, workbook_note = upload_bytes(data, max_bytes)
    if not data:
        raise_empty("0 bytes")
    if data.isspace():
        raise_empty("only whitespace")
    check_other_formats(data)
    text, encoding = _decode(data)
    if not text.strip():
        raise_empty("only whitespace")
    _check_json_or_markup(text)
    warnings: list[str] = [workbook_note] if workbook_note else []
    if encoding == "cp1252":
        warnings.append(
            "The file is not UTF-8; it was read as Windows-1252 (cp1252). Check that accented letters look right."
        )
    elif encoding == "latin-1":
        warnings.append("The file is not UTF-8; it was read as Latin-1. Check that accented letters look right.")
    delimiter, text = sniff_delimiter(text)
    _check_prose(text, delimiter)
    if delimiter != ",":
        warnings.append(delimiter_note(delimiter))
    return text, encoding, delimiter, warnings
