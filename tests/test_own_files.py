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

CSV = make_subscription_sample(rows=300, seed=3)


def workbook(frame: pd.DataFrame, extra_sheet: bool = False) -> bytes:
    buffer = io.BytesIO()
    with pd.ExcelWriter(buffer, engine="openpyxl") as writer:
        frame.to_excel(writer, sheet_name="customers", index=False)
        if extra_sheet:
            pd.DataFrame({"note": ["ignored"]}).to_excel(writer, sheet_name="notes", index=False)
    return buffer.getvalue()


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
