"""A corpus of bad CSV uploads, each pushed through the service and through the Data page.

For every file: a clear message that names the problem, nothing stored (no dataset record, no file
under ``<home>/buckets``), and the app keeps working (a good upload afterwards succeeds).

The page path shares one browser session (one AppTest) across the whole corpus on purpose: the same
session has to survive every bad file in a row, and each good file after a bad one must still validate.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import churn_core
from churn_core.errors import ValidationError
from churn_core.data.sample import make_sample

MAIN = str(Path(__file__).resolve().parents[1] / "app" / "main.py")
SAMPLE = make_sample()  # 2,000 rows, the reference telecom schema (Churn first)
LINES = SAMPLE.decode("utf-8").splitlines()
HEADER = LINES[0].split(",")


# --------------------------------------------------------------------------- corpus builders


def _rows() -> list[list[str]]:
    return [line.split(",") for line in LINES[1:]]


def _join(header: list[str], rows: list[list[str]]) -> bytes:
    return ("\n".join(",".join(r) for r in [header, *rows]) + "\n").encode("utf-8")


def _with_column(name: str, value_for_row) -> bytes:
    return _join([*HEADER, name], [[*r, value_for_row(i)] for i, r in enumerate(_rows())])


def _set_column(col: str, value_for_row) -> bytes:
    idx = HEADER.index(col)
    rows = _rows()
    for i, r in enumerate(rows):
        new = value_for_row(i, r[idx])
        if new is not None:
            r[idx] = new
    return _join(HEADER, rows)


def _xlsx() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("[Content_Types].xml", '<?xml version="1.0"?><Types/>')
        z.writestr("xl/workbook.xml", "<workbook/>")
        z.writestr("xl/worksheets/sheet1.xml", "<worksheet/>")
    return buf.getvalue()


def _json_records() -> bytes:
    reader = csv.DictReader(io.StringIO(SAMPLE.decode()))
    return json.dumps([row for _, row in zip(range(100), reader, strict=False)]).encode()


def _accented() -> bytes:
    """The sample plus a categorical 'Plan' column with accented values, as UTF-8."""
    return _with_column("Plan", lambda i: "Básico" if i % 2 else "Prémium")


def _cut_mid_multibyte() -> bytes:
    data = _accented()
    return data[: data.rindex("é".encode()) + 1]  # ends after the first byte of the last 'é'


def _cut_mid_row() -> bytes:
    return SAMPLE[: SAMPLE.rindex(b",", 0, len(SAMPLE) - 5)]  # the last row loses its last field


def _oversized() -> bytes:
    body = b"\n".join(SAMPLE.splitlines()[1:])
    out = SAMPLE
    while len(out) <= 1024 * 1024:
        out += body + b"\n"
    return out


def _unclosed_quote() -> bytes:
    rows = _rows()
    rows[1000][3] = '"' + rows[1000][3]
    return _join(HEADER, rows)


def _blank_header_name() -> bytes:
    header = list(HEADER)
    header[3] = ""
    return _join(header, _rows())


def _few_churners() -> bytes:
    rows = _rows()
    seen = 0
    for r in rows:
        if r[0] == "1":
            seen += 1
            if seen > 3:
                r[0] = "0"
    return _join(HEADER, rows)


@dataclass
class Case:
    id: str
    data: bytes
    match: str  # what the service says (target "Churn")
    page_match: str | None = None  # what the Data page says, when its default target differs
    env: dict = field(default_factory=dict)


CASES = [
    Case("empty", b"", r"The file is empty \(0 bytes\)"),
    Case("whitespace-only", b"  \n\t\n \r\n", r"The file is empty \(only whitespace\)"),
    Case("binary", bytes(range(256)) * 16, r"This file is not text: it looks binary \(it contains NUL bytes\)"),
    Case("utf16-without-bom", SAMPLE.decode().encode("utf-16-le"), r"This file is not text"),
    Case("json", _json_records(), r"This file looks like JSON, not CSV"),
    Case("xlsx-bytes", _xlsx(), r"This file looks like an Excel workbook \(\.xlsx\), but it could not be read"),
    Case("gzip", gzip.compress(SAMPLE), r"gzip-compressed file"),
    Case("pdf", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n", r"This file looks like a PDF document"),
    Case("html", b"<!DOCTYPE html>\n<html><body><table><tr><td>1</td></tr></table></body></html>\n",
         r"looks like a web page or XML, not CSV"),
    Case("no-header", "\n".join(LINES[1:]).encode(), r"The first row looks like data, not column names"),
    Case("duplicate-columns", _join([*HEADER[:6], "AccountWeeks", *HEADER[7:]], _rows()),
         r"Duplicate column names: 'AccountWeeks' \(columns B, G\)"),
    Case("blank-column-name", _blank_header_name(), r"Blank column name: column 4 \(D\) has no name"),
    # The page picks the target from the header (a churn-like name, else the first column), so there the
    # file without a Churn column fails on the first column instead: it is not a 0/1 column.
    Case("missing-target", _join(HEADER[1:], [r[1:] for r in _rows()]),
         r"The target column 'Churn' is missing: the file has no column with that name",
         page_match=r"Choose the target column"),  # no column is named like a churn flag: the page asks
    Case("non-binary-target", _set_column("Churn", lambda i, v: "2" if i % 10 == 0 else None),
         r"The target column 'Churn' is not binary.*'2' \(200 rows\)"),
    Case("one-class", _set_column("Churn", lambda i, v: "0"), r"Only one class: every row has 'Churn' = '0'"),
    Case("too-few-of-one-class", _few_churners(), r"Too few rows of one class: only 3 rows are churned"),
    Case("too-few-rows", "\n".join(LINES[:11]).encode(), r"Too few rows: the file has 10 data rows; at least 50"),
    Case("header-only", (LINES[0] + "\n").encode(), r"Too few rows: the file has 0 data rows"),
    Case("blank-target-cells", _set_column("Churn", lambda i, v: "" if i in (4, 9) else None),
         r"2 rows have no value in the target column 'Churn' \(rows 6, 11"),
    Case("empty-column", _with_column("Notes", lambda i: ""), r"Column 'Notes' is entirely empty"),
    Case("stray-text-in-numeric", _set_column("DayMins", lambda i, v: "abc" if i in (1, 2, 3) else None),
         r"Column 'DayMins' looks numeric .* but has text in 3 rows: 'abc' \(row 3\)"),
    Case("ragged-rows", _set_column("RoamMins", lambda i, v: v + ",7" if i in (10, 20) else None),
         r"Some rows have a different number of fields than the header, which has 11: line 12 has 12"),
    Case("unclosed-quote", _unclosed_quote(), r"different number of fields|could not be read as CSV"),
    Case("undecodable-encoding", _set_column("DayMins", lambda i, v: v + "\x81" if i == 5 else None)
         .replace("\x81".encode(), b"\x81\x8d"),
         r"The file's text encoding could not be read \(the first byte that is not UTF-8 is 0x81"),
    Case("truncated-mid-row", _cut_mid_row(),
         r"different number of fields than the header, which has 11: line 2,001 has 10"),
    Case("truncated-mid-multibyte", _cut_mid_multibyte(),
         r"The file looks truncated: it is UTF-8 text that stops in the middle of a character"),
    Case("no-feature-columns", _join(["Churn", "CustomerID"], [[r[0], f"C{i:05d}"] for i, r in enumerate(_rows())]),
         r"No feature columns left.*'CustomerID', ID-like"),
    Case("oversized", _oversized(), r"The file is too large: [\d.,]+ (MB|bytes), over the upload limit of 1 MB",
         env={"CHURN_MAX_UPLOAD_MB": "1"}),
]
BAD_CSV_COUNT = len(CASES)
PARAMS = [pytest.param(c, id=c.id) for c in CASES]


def stored_files(home: Path) -> list[Path]:
    buckets = home / "buckets"
    return [p for p in buckets.rglob("*") if p.is_file()] if buckets.exists() else []


def test_the_corpus_is_what_the_issue_asks_for():
    assert BAD_CSV_COUNT >= 15
    assert len({c.id for c in CASES}) == BAD_CSV_COUNT
    assert len({c.data for c in CASES}) == BAD_CSV_COUNT, "every case is a different file"


# --------------------------------------------------------------------------- the service


@pytest.mark.parametrize("case", PARAMS)
def test_service_rejects_bad_csv_and_stores_nothing(case: Case, home: Path, monkeypatch):
    for key, value in case.env.items():
        monkeypatch.setenv(key, value)
    p = churn_core.connect()
    with pytest.raises(ValidationError, match=case.match) as preview:
        p.validate_dataset(case.data, "Churn")
    with pytest.raises(ValidationError, match=case.match) as stored:
        p.upload_dataset("bad", case.data, target="Churn")
    assert str(stored.value) == str(preview.value)
    assert "Traceback" not in str(stored.value) and len(str(stored.value)) < 1200
    assert p.list_datasets() == []
    assert stored_files(home) == []
    assert p.events("dataset") == []
    # the app still works afterwards
    good = p.upload_dataset("good", SAMPLE, target="Churn")
    assert good.rows == 2000 and [d.name for d in p.list_datasets()] == ["good"]


# --------------------------------------------------------------------------- the browser path (Data page)


def _texts(at: AppTest, kind: str) -> str:
    return " ".join(str(e.value) for e in at.get(kind))


def _store_button(at: AppTest):
    return next(b for b in at.button if b.label == "Validate and store")


def _open_data_page() -> AppTest:
    at = AppTest.from_file(MAIN, default_timeout=60).run()
    assert not at.exception, at.exception
    at.switch_page("../pages/data.py").run()
    assert not at.exception, at.exception
    return at


@pytest.fixture(scope="module")
def data_page(tmp_path_factory):
    """One Data page session shared by the whole corpus (and one state directory)."""
    home = tmp_path_factory.mktemp("bad-csv-page") / "state"
    mp = pytest.MonkeyPatch()
    mp.setenv("CHURN_HOME", str(home))
    mp.setenv("CHURN_BACKEND", "local")
    mp.delenv("CHURN_MAX_UPLOAD_MB", raising=False)
    yield _open_data_page(), home
    mp.undo()


def _push_bad_then_good(at: AppTest, home: Path, case: Case) -> None:
    datasets, files = [d.name for d in churn_core.connect().list_datasets()], stored_files(home)
    at.get("file_uploader")[0].set_value((f"{case.id}.csv", case.data, "text/csv")).run()
    assert not at.exception, at.exception
    errors = _texts(at, "error")
    assert f"{case.id}.csv cannot be used." in errors
    assert re.search(case.page_match or case.match, errors), errors
    assert "is valid" not in _texts(at, "success")
    store = [b for b in at.button if b.label == "Validate and store"]
    if store:  # a table with a problem: pressing "Validate and store" anyway stores nothing
        store[0].click().run()
        assert not at.exception, at.exception
        assert "Stored" not in _texts(at, "success")
    else:  # not a table at all: nothing from it is offered (no target to pick, no button to press)
        assert not [s for s in at.selectbox if s.label.startswith("Target")]
    # nothing was added (the session is shared: in any order, the last test's good file may be there already)
    assert [d.name for d in churn_core.connect().list_datasets()] == datasets
    assert stored_files(home) == files
    # the same session still works: a good file validates right after the bad one
    at.get("file_uploader")[0].set_value(("good.csv", SAMPLE, "text/csv")).run()
    assert not at.exception, at.exception
    assert "good.csv** is valid: 2,000 customers" in _texts(at, "success")


@pytest.mark.parametrize("case", [p for p in PARAMS if not p.values[0].env])
def test_data_page_rejects_bad_csv_and_stores_nothing(case: Case, data_page):
    at, home = data_page
    _push_bad_then_good(at, home, case)


@pytest.mark.parametrize("case", [p for p in PARAMS if p.values[0].env])
def test_data_page_rejects_bad_csv_with_its_own_settings(case: Case, home: Path, monkeypatch):
    for key, value in case.env.items():
        monkeypatch.setenv(key, value)
    _push_bad_then_good(_open_data_page(), home, case)


def test_data_page_still_stores_a_good_file_after_the_whole_corpus(data_page):
    at, home = data_page
    at.get("file_uploader")[0].set_value(("after the corpus.csv", SAMPLE, "text/csv")).run()
    _store_button(at).click().run()
    assert not at.exception, at.exception
    assert "Stored **after-the-corpus**" in _texts(at, "success")
    assert [d.name for d in churn_core.connect().list_datasets()] == ["after-the-corpus"]
    assert len(stored_files(home)) == 4  # raw, train, test and the dataset schema beside train
