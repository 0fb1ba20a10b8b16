"""Formula injection: every CSV offered for download escapes cells a spreadsheet would evaluate,
and keeps numbers numbers (churn_core.data.csv_export, the Predict page's scored CSV)."""

from __future__ import annotations

import csv
import io

import pandas as pd
import pytest
import streamlit

from churn_core.data.csv_export import escape_cell, to_download_csv
from tests.support.pages import button, open_page

PAYLOADS = ["=cmd|' /C calc'!A0", "+HYPERLINK(\"http://evil\",\"x\")", "-2+3", "@SUM(A1:A9)", "\t=1+1", "\r=1+1",
            "=1+1,\"x\""]


def cells(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))


@pytest.mark.parametrize("payload", PAYLOADS)
def test_a_cell_a_spreadsheet_would_evaluate_is_escaped(payload):
    assert escape_cell(payload) == "'" + payload
    frame = pd.DataFrame({"customer": [payload, "safe"], "score": [0.5, -2.5]})
    rows = cells(to_download_csv(frame))
    assert rows[1][0] == "'" + payload and rows[2][0] == "safe"


def test_numbers_stay_numbers():
    frame = pd.DataFrame({"as_number": [-2.5, 3.0], "as_text": ["-2.5", "+3"], "exp": ["-1e-4", "1E5"],
                          "count": [-1, 2]})
    data = to_download_csv(frame)
    assert cells(data)[1] == ["-2.5", "-2.5", "-1e-4", "-1"]
    back = pd.read_csv(io.BytesIO(data))
    assert back["as_number"].tolist() == [-2.5, 3.0] and back["as_text"].tolist() == [-2.5, 3.0]
    assert back["count"].dtype.kind == "i" and back["exp"].dtype.kind == "f"


def test_column_names_and_the_index_are_escaped_too():
    frame = pd.DataFrame({"=evil": ["x"], "fine": [1]}, index=pd.Index(["@job"], name="+name"))
    rows = cells(to_download_csv(frame, index=True))
    assert rows[0] == ["'+name", "'=evil", "fine"] and rows[1][0] == "'@job"


def test_the_predict_pages_scored_csv_is_escaped(page_model, monkeypatch, sample_csv):
    page_model.deploy("page-model", "csv-ep")
    frame = pd.read_csv(io.BytesIO(sample_csv)).drop(columns=["Churn"]).head(len(PAYLOADS) + 3)
    frame.insert(0, "customer", PAYLOADS + ["-7", "c1", "c2"])
    offered: list[bytes] = []
    original = streamlit.download_button

    def record(label, data, *args, **kwargs):
        offered.append(data if isinstance(data, bytes) else str(data).encode())
        return original(label, data, *args, **kwargs)

    monkeypatch.setattr(streamlit, "download_button", record)
    at = open_page("predict")
    at.get("file_uploader")[0].set_value(("customers.csv", frame.to_csv(index=False).encode(), "text/csv")).run()
    button(at, f"Score {len(frame)} customers").click().run()
    assert not at.exception, at.exception
    assert offered, "the scored CSV is offered"
    rows = cells(offered[-1])
    column = rows[0].index("customer")
    written = {row[column] for row in rows[1:]}
    assert written == {"'" + p.strip() for p in PAYLOADS} | {"-7", "c1", "c2"}  # uploads are read stripped
    dangerous = [row for row in rows[1:] for cell in row if cell[:1] in ("=", "+", "@", "\t", "\r")]
    assert not dangerous, dangerous
    probability = rows[0].index("churn_probability")
    assert all(0.0 <= float(row[probability]) <= 1.0 for row in rows[1:])
