"""Files an analyst brings: an Excel workbook is read (pandas + openpyxl), prose is "not a table"."""

from __future__ import annotations

import io
import zipfile

import pandas as pd
import pytest

import churn_core
from churn_core.errors import ValidationError
from churn_core.data.sample import make_subscription_sample
from churn_core.data.headers import read_header
from churn_core.data.validation import validate_csv
from churn_core.data.workbooks import as_csv, is_xlsx
from tests.support.own_data import workbook

CSV = make_subscription_sample(rows=300, seed=3)


@pytest.fixture(scope="module")
def xlsx() -> bytes:
    return workbook(pd.read_csv(io.BytesIO(CSV)))  # typed by pandas, as Excel would hold it


def test_an_xlsx_workbook_validates_like_its_csv(xlsx):
    assert is_xlsx(xlsx) and not is_xlsx(CSV)
    from_csv, from_xlsx = validate_csv(CSV, "Churn"), validate_csv(xlsx, "Churn")
    assert from_xlsx.rows == from_csv.rows and from_xlsx.feature_names == from_csv.feature_names
    assert from_xlsx.id_columns == ["customerID"] and from_xlsx.churn_rate == from_csv.churn_rate
    assert {f.name: f.kind for f in from_xlsx.features} == {f.name: f.kind for f in from_csv.features}
    assert from_xlsx.warnings[0] == "Read the Excel workbook's first sheet, 'customers'."


def test_an_xlsx_upload_is_stored_as_csv(home, xlsx):
    p = churn_core.connect()
    ds = p.upload_dataset("from-excel", xlsx, target="Churn")
    raw = p.store.get_bytes(ds.raw_key)
    assert raw.startswith(b"customerID,gender,") and not is_xlsx(raw)
    assert ds.rows == 300 and len(p.read_dataset("from-excel", "raw")) == 300


def test_an_xlsx_renamed_csv_offers_its_real_header(xlsx):
    assert read_header(xlsx) == list(pd.read_csv(io.BytesIO(CSV), nrows=0).columns)


def test_customers_to_score_may_come_as_a_workbook(home, xlsx):
    frame = churn_core.connect().read_customers(xlsx)
    assert len(frame) == 300 and frame["customerID"].iloc[0] == pd.read_csv(io.BytesIO(CSV))["customerID"][0]


def test_only_the_first_sheet_is_read_and_that_is_said():
    data = workbook(pd.read_csv(io.BytesIO(CSV)).head(60), extra_sheet=True)
    converted, note = as_csv(data)
    assert note == "Read the Excel workbook's first sheet, 'customers' (it has 2 sheets)."
    assert b"ignored" not in converted


def test_a_damaged_workbook_says_what_to_do():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("xl/workbook.xml", "<workbook/>")  # no sheets, no relations: Excel cannot open it either
    with pytest.raises(ValidationError, match=r"Excel workbook \(\.xlsx\), but it could not be read.*export as CSV"):
        validate_csv(buffer.getvalue(), "Churn")


PROSE = {
    "letter": b"Dear team,\n\nThank you for the data. We looked at the churn numbers, and they are worrying.\n"
              b"Please send the full file when you can, including the contract types.\n\nBest regards,\nAnna\n",
    "one sentence": b"This is a single paragraph of prose without commas that goes on about customers who leave\n",
    "notes": b"# Churn notes\n\nCustomers on monthly contracts leave more often, especially in the first year.\n"
             b"- Fibre customers without tech support complain, then leave.\n"
             b"- Electronic checks, oddly, go with churn too.\n",
}


@pytest.mark.parametrize("name", sorted(PROSE))
def test_prose_is_not_a_table(name):
    with pytest.raises(ValidationError, match="looks like text \\(sentences\\), not a table"):
        validate_csv(PROSE[name], "Churn")
    assert read_header(PROSE[name]) == []  # nothing from it is offered as a column name


def test_a_table_with_a_free_text_column_is_still_a_table():
    frame = pd.read_csv(io.BytesIO(CSV), dtype=str, keep_default_na=False)
    frame["comment"] = "Called twice about the bill, then asked about the contract and the fibre speed at home."
    table = validate_csv(frame.to_csv(index=False).encode(), "Churn")
    assert "comment" in table.feature_names or "comment" in table.dropped


# Issue 26, items 2 and 3: workbook bombs. The caps are checked before openpyxl reads anything.

_SST_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"


def rezip(data: bytes, replace: dict[str, bytes], stream: dict | None = None) -> bytes:
    """The workbook with some parts replaced (or added); ``stream`` parts are written in 1 MiB chunks."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for name in src.namelist():
            if name not in replace and name not in (stream or {}):
                dst.writestr(name, src.read(name))
        for name, body in replace.items():
            dst.writestr(name, body)
        for name, (head, block, count, tail) in (stream or {}).items():
            with dst.open(name, "w", force_zip64=True) as fh:
                fh.write(head)
                for _ in range(count):
                    fh.write(block)
                fh.write(tail)
    return out.getvalue()


def small_book(rows: int = 3, columns: int = 3) -> bytes:
    return workbook(pd.DataFrame({f"c{j}": list(range(rows)) for j in range(columns)}))


def sheet_xml(data: bytes) -> str:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        name = next(n for n in archive.namelist() if n.startswith("xl/worksheets/sheet"))
        return name, archive.read(name).decode()


def with_sheet(data: bytes, edit) -> bytes:
    name, xml = sheet_xml(data)
    return rezip(data, {name: edit(xml).encode()})


def dimension_bomb() -> bytes:
    """Issue 26 item 2: <dimension ref="A1:XFD1048576"/> plus one cell at XFD1048576 (openpyxl pads every row)."""
    import re as _re

    def edit(xml: str) -> str:
        xml = _re.sub(r'<dimension ref="[^"]*"\s*/>', '<dimension ref="A1:XFD1048576"/>', xml)
        return xml.replace("</sheetData>", '<row r="1048576"><c r="XFD1048576" t="n"><v>1</v></c></row></sheetData>')

    return with_sheet(small_book(), edit)


def shared_string_bomb(megabytes: int) -> bytes:
    """Issue 26 item 3: one shared string of ``megabytes`` MiB, packed about 1000×, shown in cell A2."""
    base = small_book()
    with zipfile.ZipFile(io.BytesIO(base)) as archive:
        types = archive.read("[Content_Types].xml").decode()
    types = types.replace("</Types>", f'<Override PartName="/xl/sharedStrings.xml" ContentType="{_SST_TYPE}"/></Types>')
    sheet = with_sheet(base, lambda xml: xml.replace('<c r="A2" t="n"><v>0</v></c>', '<c r="A2" t="s"><v>0</v></c>'))
    head = b'<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" count="1" uniqueCount="1"><si><t>'
    return rezip(sheet, {"[Content_Types].xml": types.encode()},
                 stream={"xl/sharedStrings.xml": (head, b"A" * (1 << 20), megabytes, b"</t></si></sst>")})


def _run_bounded(tmp_path, data: bytes, code: str, cpu_seconds: int = 60) -> str:
    """Run ``code`` (which reads the workbook from ``path``) in a child with a CPU budget; its stdout."""
    import resource
    import subprocess
    import sys

    path = tmp_path / "book.xlsx"
    path.write_bytes(data)

    def limit():
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds))

    done = subprocess.run([sys.executable, "-c", f"path = {str(path)!r}\n" + code], capture_output=True, text=True,
                          preexec_fn=limit, timeout=cpu_seconds * 20)
    assert done.returncode == 0, (
        f"the child failed or ran out of its CPU budget: {done.returncode} {done.stderr[-800:]}"
    )
    return done.stdout


def test_a_dimension_bomb_is_read_within_a_cpu_budget(tmp_path):
    data = dimension_bomb()
    assert len(data) < 12_000  # the 9 KB attack file
    out = _run_bounded(tmp_path, data, (
        "from churn_core.data.workbooks import as_csv\n"
        "from churn_core.data.headers import read_header\n"
        "from churn_core.errors import ValidationError\n"
        "data = open(path, 'rb').read()\n"
        "print(read_header(data))\n"
        "try:\n"
        "    csv, _ = as_csv(data, 200 * 1024 * 1024)\n"
        "    print('rows', csv.count(b'\\n'), 'bytes', len(csv))\n"
        "except ValidationError as err:\n"
        "    print('refused', err)\n"
    ))
    first, second = out.splitlines()[:2]
    assert first == "['c0', 'c1', 'c2']"  # the Data page's header read stays bounded
    assert second.startswith(("rows", "refused"))
    if second.startswith("rows"):  # read as the sheet is: every row up to the far cell, nothing padded
        assert int(second.split()[-1]) < 2 * 1048576 + 16384 * 2


def test_a_shared_string_bomb_is_refused_before_it_is_inflated():
    import tracemalloc

    from churn_core.data.workbook_checks import WorkbookRefused
    from churn_core.data.workbooks import xlsx_to_csv

    data = shared_string_bomb(48)  # 48 MiB in one string, packed to about 48 KB (the attack: 1.2 GB in 1.2 MB)
    assert len(data) < 200_000
    tracemalloc.start()
    try:
        with pytest.raises(WorkbookRefused, match=r"sharedStrings\.xml' unpacks to 48 MB .* times its packed size; "
                                                  r"the limit is 100×.*export the sheet as CSV"):
            xlsx_to_csv(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * 1024 * 1024  # nothing near the string's size was ever allocated
    with pytest.raises(ValidationError, match="times its packed size"):
        validate_csv(data, "c0")  # the upload route refuses it the same way
    assert read_header(data) == []  # and the Data page offers nothing from it


def test_a_dimension_that_understates_the_rows_does_not_drop_any():
    frame = pd.DataFrame({f"c{j}": range(80) for j in range(10)})  # A1:J81
    import re as _re

    data = with_sheet(workbook(frame),
                      lambda xml: _re.sub(r'<dimension ref="[^"]*"\s*/>', '<dimension ref="A1:J41"/>', xml))
    assert '<dimension ref="A1:J41"/>' in sheet_xml(data)[1]
    converted, _ = as_csv(data)
    assert pd.read_csv(io.BytesIO(converted)).equals(frame)  # all 80 rows, not 40


def _limited(**caps):
    from churn_core.data.workbook_checks import WorkbookLimits

    return WorkbookLimits(**caps)


@pytest.mark.parametrize("caps, expected", [
    ({"max_members": 5}, r"holds \d+ parts, over the limit of 5"),
    ({"max_sheet_bytes": 500}, r"part 'xl/worksheets/sheet1\.xml' unpacks to .* over the limit"),
    ({"max_part_bytes": 500}, r"part '.*' unpacks to .* over the limit of .* for one part"),
    ({"max_total_bytes": 5000}, r"unpacks to .* in all, over the limit"),
    ({"max_rows": 10}, r"a row numbered 11, beyond the limit of 10 rows"),
    ({"max_columns": 2}, r"a cell in column 3 \(row 1\), beyond the limit of 2 columns"),
    ({"max_cells": 50}, r"spans more than 50 cells"),
    ({"max_output_bytes": 40}, r"converts to more than .* of CSV, over the upload limit"),
])
def test_every_workbook_cap_refuses_with_what_to_do(caps, expected):
    from churn_core.data.workbook_checks import WorkbookRefused
    from churn_core.data.workbooks import xlsx_to_csv

    data = small_book(rows=20, columns=3)
    with pytest.raises(WorkbookRefused, match=expected) as refused:
        xlsx_to_csv(data, limits=_limited(**caps))
    assert any(word in str(refused.value) for word in ("CSV", "Ctrl+End", "fewer rows"))
    assert xlsx_to_csv(data)[0].count(b"\n") == 21  # within the default caps it is read whole


def test_the_output_cap_is_the_upload_limit():
    frame = pd.DataFrame({"Churn": [0, 1] * 100, "calls": [i % 7 for i in range(200)],
                          "note": ["called about the bill " * 10] * 200})
    data = workbook(frame)
    with pytest.raises(ValidationError, match="converts to more than .* of CSV"):
        validate_csv(data, "Churn", max_bytes=len(data) + 10)  # the file fits; the CSV it becomes does not
    assert len(data) + 10 < len(frame.to_csv(index=False)) and validate_csv(data, "Churn").rows == 200


@pytest.mark.parametrize("edit, expected", [
    (lambda xml: xml.replace('r="A2"', 'r="A99999999999"', 1), "cell reference"),
    (lambda xml: xml.replace('<row r="2"', '<row r="5000000"', 1), "a row numbered 5,000,000"),
    (lambda xml: xml.replace('r="B1"', 'r="ZZZ1"', 1), "a cell in column 18,278"),
    (lambda xml: xml.replace("<worksheet", '<!DOCTYPE x [<!ENTITY a "aaaa">]><worksheet', 1), "DTD"),
])
def test_a_sheet_beyond_a_sheets_size_is_refused_before_openpyxl_reads_it(edit, expected):
    from churn_core.data.workbook_checks import WorkbookRefused
    from churn_core.data.workbooks import xlsx_to_csv

    with pytest.raises(WorkbookRefused, match=expected):
        xlsx_to_csv(with_sheet(small_book(), edit))


def test_a_zip_of_countless_empty_parts_is_refused_before_its_directory_is_read():
    """A 200 MB upload of empty ZIP entries would be millions of ZipInfo objects: the end record is read first."""
    import tracemalloc

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("xl/workbook.xml", "<workbook/>")
        for i in range(60_000):
            archive.writestr(f"x/{i}", b"")
    data = buffer.getvalue()
    tracemalloc.start()
    try:
        with pytest.raises(ValidationError, match=r"declares 60,001 parts, over the limit of 10,000"):
            validate_csv(data, "Churn")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * 1024 * 1024  # the directory (60,001 entries) was never built
