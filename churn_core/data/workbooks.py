"""Excel workbooks (.xlsx) read as the CSV text every other part of the platform takes.

An analyst's churn file is often a workbook. Its first sheet is written out as CSV (numbers as
the shortest text that reads back the same, whole numbers without ``.0``, dates as ISO text,
empty cells blank), and from then on it is an upload like any other: validated, split and
stored as CSV. Reading uses openpyxl in read-only mode; a workbook that cannot be read is a
``ValidationError`` that says what to do instead. Before openpyxl reads anything, ``workbook_checks``
holds the file to its caps (each part's unpacked size and ratio, the first sheet's rows, columns and
cells) and the CSV written stops at the output cap; the sheet's ``<dimension>`` is ignored, so every
row it holds is read, however much or little the dimension claims.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import zipfile
from collections import OrderedDict

from churn_core.errors import ValidationError
from churn_core.data.workbook_checks import (
    LIMITS, WorkbookLimits, check_directory, check_members, check_sheet, output_too_large,
)

_CACHE: OrderedDict[tuple, tuple[bytes, str]] = OrderedDict()  # a page reruns often: read each workbook once
_CACHE_SIZE = 4


def is_xlsx(data: bytes) -> bool:
    """A ZIP whose parts are an Excel workbook's (whatever the file was named)."""
    if not data.startswith(b"PK\x03\x04"):
        return False
    check_directory(data)  # before zipfile reads the directory into one object per member
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return "xl/workbook.xml" in archive.namelist()
    except zipfile.BadZipFile:
        return False


def _cell_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ") if value.time() != dt.time(0) else value.date().isoformat()
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    return str(value)


def _cached(key: tuple, cap: int) -> tuple[bytes, str] | None:
    if key not in _CACHE:
        return None
    _CACHE.move_to_end(key)
    if len(_CACHE[key][0]) > cap:
        raise output_too_large(cap)
    return _CACHE[key]


def _unreadable(exc: Exception) -> ValidationError:
    return ValidationError(
        f"This file looks like an Excel workbook (.xlsx), but it could not be read ({type(exc).__name__}: "
        f"{str(exc)[:120]}); it may be damaged or password-protected. Open it in Excel and export as CSV "
        "(File → Save As → 'CSV UTF-8'), then upload that file."
    )


def xlsx_to_csv(data: bytes, max_bytes: int | None = None,
                limits: WorkbookLimits = LIMITS) -> tuple[bytes, str]:
    """The first sheet of a workbook as UTF-8 CSV bytes (at most ``max_bytes``), and a sentence saying what was
    read. The workbook's caps are checked before openpyxl reads it (see ``workbook_checks``)."""
    cap = min(max_bytes, limits.max_output_bytes) if max_bytes is not None else limits.max_output_bytes
    key = (hashlib.sha256(data).hexdigest(), limits)  # read under other caps, a workbook is read again
    hit = _cached(key, cap)
    if hit is not None:
        return hit
    try:
        import openpyxl
    except ImportError:  # pragma: no cover - openpyxl is in requirements.txt
        raise ValidationError("This file is an Excel workbook, and reading workbooks needs the openpyxl package. "
                              "Export the sheet as CSV (File → Save As → 'CSV UTF-8') and upload that.") from None
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            check_members(archive, limits)  # before openpyxl inflates anything (it reads shared strings whole)
    except zipfile.BadZipFile as exc:
        raise _unreadable(exc) from None
    try:
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many types for damaged or protected files
        raise _unreadable(exc) from None
    try:
        sheet = book.worksheets[0]
        with sheet._get_source() as source:  # the sheet's part, as openpyxl will stream it
            check_sheet(source, limits)
        sheet.reset_dimensions()  # <dimension> is a claim: pad to nothing, read every row the sheet holds
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        written = pending_blank = 0
        for row in sheet.iter_rows(values_only=True):
            cells = [_cell_text(v) for v in row]
            while cells and cells[-1] == "":
                cells.pop()
            if not cells:
                pending_blank += 1  # blank rows inside the data are kept as blank lines, trailing ones dropped
                continue
            start = out.tell()
            out.write("\n" * pending_blank)
            pending_blank = 0
            writer.writerow(cells)
            written += out.tell() - start  # characters: at most the bytes they encode to
            if written > cap:
                raise output_too_large(cap)
        sheets = len(book.worksheets)
        title = sheet.title
    except ValidationError:
        raise
    except Exception as exc:  # a sheet openpyxl cannot stream (damaged XML, no sheet at all)
        raise _unreadable(exc) from None
    finally:
        book.close()
    note = f"Read the Excel workbook's first sheet, '{title}'" + (f" (it has {sheets} sheets)." if sheets > 1 else ".")
    result = (out.getvalue().encode("utf-8"), note)
    if len(result[0]) > cap:
        raise output_too_large(cap)
    _CACHE[key] = result
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return result


def as_csv(data: bytes, max_bytes: int | None = None) -> tuple[bytes, str | None]:
    """(CSV bytes, note): a workbook converted (its CSV at most ``max_bytes``), anything else unchanged with no note."""
    if is_xlsx(data):
        return xlsx_to_csv(data, max_bytes)
    return data, None
