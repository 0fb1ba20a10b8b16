"""What a workbook may cost, checked before openpyxl reads a byte of it.

An .xlsx file is a ZIP of XML parts, and both halves can be made to explode: a part that inflates a
thousandfold (one 1.2 GB shared string packed into 1.2 MB), or a sheet whose cells sit at the far corner
(a cell at XFD1048576, with a ``<dimension>`` to match, makes openpyxl's read-only mode pad a
million rows of 16,384 cells). So before openpyxl opens the file:

1. **Every ZIP member** is checked from the archive's directory: how many there are, each one's unpacked
   size (parts openpyxl reads whole into memory — shared strings, styles, the workbook — far less than a
   sheet, which is streamed), all of them together, and each one's compression ratio (spreadsheets pack
   about 6–15×; a bomb packs 1000×). ``zipfile`` itself never inflates a member past the size its
   directory declares, so the declared sizes are the real bound.
2. **The first sheet is scanned** with a bounded streaming parser (expat, no DTD) for what openpyxl would
   walk: the highest row number, each row's last column, and the cells up to each row's last used cell.
   Rows and columns beyond a sheet's size (1,048,576 × 16,384) and a total beyond the cell cap are refused.
3. **The CSV written** from the sheet stops at the output cap (the upload limit).

Then openpyxl reads with the sheet's ``<dimension>`` ignored (it is a claim, not a fact: a dimension
that overstates pads, one that understates — A1:J41 over 80 rows — drops rows silently): the rows read
are the rows the sheet holds. A broken rule is a :class:`WorkbookRefused` (a ``ValidationError``) that
names the limit and says what to do.
"""

from __future__ import annotations

import io
import re
import zipfile
from dataclasses import dataclass
from xml.parsers import expat

from churn_core.wording import fmt_mb
from churn_core.errors import ValidationError

MB = 1024 * 1024
SHEET_ROWS = 1_048_576  # the size of an Excel sheet: no workbook Excel writes goes beyond it
SHEET_COLUMNS = 16_384  # column XFD
_REF_RE = re.compile(r"^\$?([A-Za-z]{1,3})\$?(\d{1,9})$")  # what openpyxl accepts as a cell reference
_EXPORT = "Open it in Excel and export the sheet as CSV (File → Save As → 'CSV UTF-8'), then upload that file."


class WorkbookRefused(ValidationError):
    """The workbook breaks a size rule; nothing of it was read by openpyxl."""


@dataclass(frozen=True)
class WorkbookLimits:
    max_members: int = 10_000  # parts in the ZIP (a workbook has a dozen or so)
    max_part_bytes: int = 256 * MB  # one part openpyxl reads whole (shared strings, styles, workbook)
    max_sheet_bytes: int = 4096 * MB  # one worksheet part (streamed, never held whole)
    max_total_bytes: int = 8192 * MB  # all parts unpacked together
    max_ratio: int = 100  # unpacked ÷ packed, for one part
    ratio_floor_bytes: int = 8 * MB  # a part unpacking to less than this is never refused for its ratio
    max_rows: int = SHEET_ROWS
    max_columns: int = SHEET_COLUMNS
    max_cells: int = 50_000_000  # cells up to each row's last used cell: what reading the sheet walks
    max_output_bytes: int = 1024 * MB  # the CSV written (the upload limit, when one is given, is lower)


LIMITS = WorkbookLimits()


def _is_sheet(name: str) -> bool:
    return name.startswith(("xl/worksheets/", "xl/chartsheets/", "xl/dialogsheets/")) and name.endswith(".xml")


def check_directory(data: bytes, limits: WorkbookLimits = LIMITS) -> None:
    """Refuse a ZIP whose end record declares more members than a workbook has, before ``zipfile`` builds an
    object per member (a 200 MB upload of empty entries would be millions of them)."""
    try:
        end = zipfile._EndRecData(io.BytesIO(data))  # the end-of-directory record zipfile itself reads first
    except (OSError, AttributeError, zipfile.BadZipFile):
        return  # not readable as a ZIP: zipfile says so in its own words later
    if end and end[zipfile._ECD_ENTRIES_TOTAL] > limits.max_members:
        raise WorkbookRefused(
            f"This ZIP file declares {end[zipfile._ECD_ENTRIES_TOTAL]:,} parts, over the limit of "
            f"{limits.max_members:,} for a workbook (a workbook has a dozen or so): it is not a spreadsheet this "
            f"platform reads. {_EXPORT}"
        )


def check_members(archive: zipfile.ZipFile, limits: WorkbookLimits = LIMITS) -> None:
    """Refuse a workbook whose parts would unpack too large or too compressed (read from the ZIP's directory)."""
    members = archive.infolist()
    if len(members) > limits.max_members:
        raise WorkbookRefused(
            f"This Excel workbook holds {len(members):,} parts, over the limit of {limits.max_members:,} "
            f"(a workbook has a dozen or so): it is not a spreadsheet this platform reads. {_EXPORT}"
        )
    total = 0
    for info in members:
        size, packed = info.file_size, max(info.compress_size, 1)
        cap = limits.max_sheet_bytes if _is_sheet(info.filename) else limits.max_part_bytes
        if size > cap:
            raise WorkbookRefused(
                f"This Excel workbook's part '{info.filename[:80]}' unpacks to {fmt_mb(size)}, over the limit of "
                f"{fmt_mb(cap)} for one part of a workbook. {_EXPORT}"
            )
        if size >= limits.ratio_floor_bytes and size > limits.max_ratio * packed:
            raise WorkbookRefused(
                f"This Excel workbook's part '{info.filename[:80]}' unpacks to {fmt_mb(size)} from "
                f"{fmt_mb(packed)}, {size // packed:,} times its packed size; the limit is {limits.max_ratio}× "
                f"(spreadsheets pack about 6–15×, a decompression bomb 1000×). If the file is genuine: {_EXPORT}"
            )
        total += size
    if total > limits.max_total_bytes:
        raise WorkbookRefused(
            f"This Excel workbook unpacks to {fmt_mb(total)} in all, over the limit of "
            f"{fmt_mb(limits.max_total_bytes)}. {_EXPORT}"
        )


def _column_number(letters: str) -> int:
    number = 0
    for ch in letters.upper():
        number = number * 26 + ord(ch) - 64
    return number


class _SheetScan:
    """Streams a worksheet's XML and counts what openpyxl would walk, refusing as soon as a limit is passed."""

    def __init__(self, limits: WorkbookLimits):
        self.limits = limits
        self.row = 0  # the current row's number (openpyxl: the row's r, or one more than the last)
        self.column = 0  # the current cell's column (the cell's r, or one more than the last)
        self.width = 0  # the current row's last column
        self.cells = 0  # cells up to each finished row's last used cell, plus one per row number passed

    def start(self, name: str, attrs: dict) -> None:
        local = name.rpartition(":")[2]
        if local == "row":
            self._end_row()
            ref = attrs.get("r")
            if ref is None:
                number = self.row + 1
            elif ref.isdigit() and len(ref) <= 9:
                number = int(ref)
            else:
                raise self._bad(f"a row numbered {ref[:40]!r}")
            self._check_row(number)
            self.cells += max(number - self.row, 1)  # rows skipped are padded as empty rows
            self.row, self.column, self.width = number, 0, 0
        elif local == "c":
            ref = attrs.get("r")
            if ref is None:
                column = self.column + 1
            else:
                match = _REF_RE.match(ref)
                if not match:
                    raise self._bad(f"a cell reference {ref[:40]!r}")
                column = _column_number(match.group(1))
                self._check_row(int(match.group(2)))
            if column > self.limits.max_columns:
                raise WorkbookRefused(
                    f"This Excel workbook's first sheet has a cell in column {column:,} (row {self.row:,}), beyond "
                    f"the limit of {self.limits.max_columns:,} columns. Delete the cells far to the right "
                    f"(Ctrl+End in Excel shows the last used cell) and save again, or: {_EXPORT}"
                )
            self.column = column
            self.width = max(self.width, column)
            if self.cells + self.width > self.limits.max_cells:
                self._too_many_cells()

    def _check_row(self, number: int) -> None:
        if number > self.limits.max_rows or number < 1:
            raise WorkbookRefused(
                f"This Excel workbook's first sheet has a row numbered {number:,}, beyond the limit of "
                f"{self.limits.max_rows:,} rows. Delete the rows below your data (Ctrl+End in Excel shows the "
                f"last used cell) and save again, or: {_EXPORT}"
            )

    def _end_row(self) -> None:
        self.cells += self.width
        if self.cells > self.limits.max_cells:
            self._too_many_cells()

    def _too_many_cells(self) -> None:
        raise WorkbookRefused(
            f"This Excel workbook's first sheet spans more than {self.limits.max_cells:,} cells (counting each "
            f"row up to its last used cell), the limit for a workbook. Delete empty cells far to the right or "
            f"below your data (Ctrl+End in Excel shows the last used cell), or: {_EXPORT}"
        )

    @staticmethod
    def _bad(what: str) -> WorkbookRefused:
        return WorkbookRefused(f"This Excel workbook's first sheet has {what}, which no spreadsheet writes. {_EXPORT}")


def _no_dtd(*_args) -> None:
    raise WorkbookRefused(f"This Excel workbook's sheet declares a DTD, which no spreadsheet writes. {_EXPORT}")


def check_sheet(stream, limits: WorkbookLimits = LIMITS, chunk: int = 1 << 20) -> None:
    """Scan one worksheet part (a binary stream) before openpyxl reads it: rows, columns and cells within limits."""
    scan = _SheetScan(limits)
    parser = expat.ParserCreate()
    parser.StartElementHandler = scan.start
    parser.StartDoctypeDeclHandler = _no_dtd
    parser.EntityDeclHandler = _no_dtd
    try:
        while True:
            block = stream.read(chunk)
            parser.Parse(block, not block)
            if not block:
                break
    except expat.ExpatError as exc:
        raise WorkbookRefused(
            f"This Excel workbook's first sheet is not well-formed XML ({str(exc)[:120]}); it may be damaged. "
            f"{_EXPORT}"
        ) from None
    scan._end_row()


def output_too_large(limit: int) -> WorkbookRefused:
    return WorkbookRefused(
        f"This Excel workbook's first sheet converts to more than {fmt_mb(limit)} of CSV, over the upload limit. "
        "Upload fewer rows or columns (or raise the limit with CHURN_MAX_UPLOAD_MB)."
    )
