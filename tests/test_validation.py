"""validate_csv on real bytes: the reference file, the sample, every rejection, warnings, properties."""

from __future__ import annotations

import gzip
import io
import json
import time
import zipfile

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from churn_core.errors import ValidationError
from churn_core.data.column_types import FeatureProfile
from churn_core.data.csv_readers import read_exact, read_fast
from churn_core.data.decoding import sniff_delimiter
from churn_core.data.target import MIN_PER_CLASS
from churn_core.data.validation import MIN_ROWS, ValidatedTable, validate_csv

REFERENCE_FEATURES = [
    "AccountWeeks",
    "ContractRenewal",
    "DataPlan",
    "DataUsage",
    "CustServCalls",
    "DayMins",
    "DayCalls",
    "MonthlyCharge",
    "OverageFee",
    "RoamMins",
]


# --------------------------------------------------------------------------- helpers


def csv_bytes(header, rows, eol="\n", encoding="utf-8") -> bytes:
    lines = [",".join(header)] + [",".join(str(v) for v in row) for row in rows]
    return (eol.join(lines) + eol).encode(encoding)


def numeric_rows(n=60, churn_every=4):
    """Valid rows for the header Churn,Calls,Minutes,Plan: churn in every ``churn_every``-th row."""
    return [[1 if i % churn_every == 0 else 0, i % 7, f"{100 + i * 1.5:.1f}", i % 2] for i in range(n)]


HEADER = ["Churn", "Calls", "Minutes", "Plan"]


def good_csv(n=60, **kw) -> bytes:
    return csv_bytes(HEADER, numeric_rows(n), **kw)


def rejects(data, *keywords, **kwargs) -> str:
    """Assert validate_csv raises ValidationError whose message contains every keyword (case-insensitive)."""
    with pytest.raises(ValidationError) as info:
        validate_csv(data, **kwargs)
    message = str(info.value)
    for word in keywords:
        assert word.lower() in message.lower(), f"{word!r} not in message: {message}"
    return message


# --------------------------------------------------------------------------- files that validate


def test_reference_csv_validates(reference_csv):
    data = reference_csv.read_bytes()
    assert b"\r\n" in data  # the reference uses CRLF
    table = validate_csv(data)
    assert isinstance(table, ValidatedTable)
    assert table.rows == 3333
    assert table.churn_rate == pytest.approx(0.1449, abs=1e-4)
    assert table.target == "Churn"
    assert table.positive_label == "1"
    assert table.encoding == "utf-8"
    assert [f.name for f in table.features] == REFERENCE_FEATURES
    assert all(f.kind == "numeric" for f in table.features)
    assert table.dropped == {}
    assert table.warnings == []
    assert table.frame["Churn"].dtype == np.int64
    assert int(table.frame["Churn"].sum()) == 483
    assert table.frame["AccountWeeks"].dtype == np.int64
    assert table.frame["DataUsage"].dtype == np.float64
    # the seed's example request is the first row's features
    first = table.training_frame().iloc[0].tolist()
    assert first == pytest.approx([0, 128, 1, 1, 2.70, 1, 265.1, 110, 89.0, 9.87, 10.0])
    weeks = table.features[0]
    assert (weeks.min, weeks.max, weeks.median) == (1.0, 243.0, 101.0)
    assert weeks.mean == pytest.approx(101.0648, abs=1e-3)
    assert weeks.missing == 0 and weeks.categories == []


def test_reference_csv_is_fast(reference_csv):
    data = reference_csv.read_bytes()
    validate_csv(data)
    best = min(_timed(lambda: validate_csv(data)) for _ in range(3))
    assert best < 1.0  # typically ~0.05 s; loose so a busy machine does not fail the suite


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def test_sample_validates(sample_csv):
    table = validate_csv(sample_csv)
    assert table.rows == 2000
    assert [f.name for f in table.features] == REFERENCE_FEATURES
    assert 0.12 <= table.churn_rate <= 0.17
    assert table.positive_label == "1"
    assert table.warnings == []


def test_schema_is_json_and_training_frame_puts_target_first(sample_csv):
    table = validate_csv(sample_csv)
    schema = json.loads(json.dumps(table.schema()))
    assert set(schema) == {"format", "target", "positive_label", "features", "dropped", "id_columns"}
    assert schema["format"] == "churn-dataset-schema/1" and schema["id_columns"] == []
    assert schema["features"][0] == table.features[0].to_dict()
    assert set(schema["features"][0]) == {
        "name", "kind", "min", "max", "median", "mean", "categories", "missing", "unique", "decimals",
    }
    frame = table.training_frame()
    assert list(frame.columns) == ["Churn", *REFERENCE_FEATURES]
    assert frame is not table.frame


def test_crlf_trailing_blank_lines_and_bom():
    data = b"\xef\xbb\xbf" + good_csv(eol="\r\n") + b"\r\n\r\n"
    table = validate_csv(data)
    assert table.encoding == "utf-8-sig"
    assert table.rows == 60
    assert [f.name for f in table.features] == ["Calls", "Minutes", "Plan"]
    assert table.warnings == []


def test_yes_no_target_any_case_and_whitespace():
    rows = numeric_rows()
    labels = {1: [" Yes", "yes ", "YES"], 0: ["no", " No ", "NO"]}
    for i, row in enumerate(rows):
        row[0] = labels[row[0]][i % 3]
    table = validate_csv(csv_bytes(HEADER, rows))
    assert table.frame["Churn"].tolist() == [1 if i % 4 == 0 else 0 for i in range(60)]
    assert table.positive_label.lower() == "yes"


@pytest.mark.parametrize(
    "pos,neg", [("1.0", "0.0"), ("True", "False"), ("y", "n"), ("true", "FALSE")]
)
def test_other_binary_spellings(pos, neg):
    rows = numeric_rows()
    for row in rows:
        row[0] = pos if row[0] else neg
    table = validate_csv(csv_bytes(HEADER, rows))
    assert table.positive_label == pos
    assert table.churn_rate == pytest.approx(0.25)


def test_categorical_churn_file():
    header = ["customerID", "Contract", "tenure", "MonthlyCharges", "PaperlessBilling", "Churned"]
    contracts = ["Month-to-month", "One year", "Two year"]
    rows = []
    for i in range(80):
        contract = "" if i % 10 == 3 else contracts[i % 3]
        rows.append(
            [f"{1000 + i:04d}-{chr(65 + i % 26)}{chr(66 + i % 20)}XYZ", contract, i % 72, f"{20 + i * 0.9:.2f}",
             "Yes" if i % 2 else "No", "Yes" if i % 5 == 0 else "No"]
        )
    table = validate_csv(csv_bytes(header, rows), target="Churned")
    assert table.target == "Churned"
    assert table.positive_label == "Yes"
    assert table.churn_rate == pytest.approx(16 / 80)
    kinds = {f.name: f.kind for f in table.features}
    assert kinds == {
        "Contract": "categorical", "tenure": "numeric", "MonthlyCharges": "numeric", "PaperlessBilling": "categorical",
    }
    assert [f.name for f in table.features] == ["Contract", "tenure", "MonthlyCharges", "PaperlessBilling"]
    assert "customerID" in table.dropped and "ID" in table.dropped["customerID"]
    contract = table.features[0]
    assert contract.missing == 8
    assert set(contract.categories) == set(contracts)
    assert contract.min is None and contract.mean is None
    assert table.frame["Contract"].dtype == object
    assert table.frame["Contract"].isna().sum() == 8
    assert table.frame["Churned"].dtype == np.int64
    text = " ".join(table.warnings)
    assert "Contract" in text and "8 of 80" in text
    assert "customerID" in text and "ID-like" in text
    assert list(table.training_frame().columns) == [
        "Churned", "Contract", "tenure", "MonthlyCharges", "PaperlessBilling",
    ]


def test_cp1252_file_with_accents_decodes():
    header = ["Churn", "City", "Calls"]
    rows = [[1 if i % 4 == 0 else 0, ["Montréal", "Zürich", "Café"][i % 3], i % 5] for i in range(60)]
    data = csv_bytes(header, rows, encoding="cp1252")
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")
    table = validate_csv(data)
    assert table.encoding == "cp1252"
    assert set(table.features[0].categories) == {"Montréal", "Zürich", "Café"}
    assert any("cp1252" in w for w in table.warnings)


def test_utf8_accents_stay_utf8():
    header = ["Churn", "Ville", "Calls"]
    rows = [[1 if i % 4 == 0 else 0, ["Montréal", "Zürich"][i % 2], i % 5] for i in range(60)]
    table = validate_csv(csv_bytes(header, rows))
    assert table.encoding == "utf-8"
    assert set(table.features[0].categories) == {"Montréal", "Zürich"}


def test_excel_sep_line_is_honoured():
    data = b"sep=;\r\n" + good_csv(eol="\r\n").replace(b",", b";")
    table = validate_csv(data)
    assert table.rows == 60 and [f.name for f in table.features] == ["Calls", "Minutes", "Plan"]


def test_quoted_fields_with_separators_and_line_breaks():
    header = ["Churn", "Comment", "Calls"]
    rows = [[1 if i % 4 == 0 else 0, '"late, again"' if i % 2 else '"two\nlines"', i % 5] for i in range(60)]
    rows[3][2] = "x"  # stray text: row numbers follow records, not physical lines
    message = rejects(csv_bytes(header, rows), "'Calls' looks numeric", "'x' (row 5)")
    assert "row 5" in message


def test_semicolon_separated_file_is_read():
    data = good_csv().replace(b",", b";")
    table = validate_csv(data)
    assert [f.name for f in table.features] == ["Calls", "Minutes", "Plan"]
    assert any("semicolons" in w for w in table.warnings)


# --------------------------------------------------------------------------- warnings


def test_missing_values_warn_and_stay_numeric():
    rows = numeric_rows()
    for i in (3, 9, 20):
        rows[i][2] = ""
    rows[30][2] = "NA"
    rows[31][1] = "n/a"
    table = validate_csv(csv_bytes(HEADER, rows))
    minutes = next(f for f in table.features if f.name == "Minutes")
    assert minutes.kind == "numeric" and minutes.missing == 4
    assert table.frame["Minutes"].dtype == np.float64
    assert table.frame["Minutes"].isna().sum() == 4
    calls = next(f for f in table.features if f.name == "Calls")
    assert calls.missing == 1 and table.frame["Calls"].dtype == np.float64
    warning = next(w for w in table.warnings if w.startswith("Missing values"))
    assert "'Minutes' (4 of 60 rows)" in warning and "'Calls' (1 of 60 rows)" in warning


def test_none_dash_question_mark_are_missing_only_in_numeric_columns():
    header = HEADER + ["Device"]
    rows = [row + [["None", "Basic", "Premium"][i % 3]] for i, row in enumerate(numeric_rows())]
    rows[5][2] = "?"
    rows[6][2] = "None"
    table = validate_csv(csv_bytes(header, rows))
    kinds = {f.name: f for f in table.features}
    assert kinds["Minutes"].kind == "numeric" and kinds["Minutes"].missing == 2
    assert kinds["Device"].kind == "categorical" and "None" in kinds["Device"].categories


def test_constant_column_is_dropped_with_warning():
    header = HEADER + ["Country"]
    rows = [row + ["US"] for row in numeric_rows()]
    table = validate_csv(csv_bytes(header, rows))
    assert "Country" not in [f.name for f in table.features]
    assert table.dropped["Country"].startswith("constant")
    assert any("constant" in w and "Country" in w for w in table.warnings)


def test_id_like_columns_are_dropped():
    header = ["RowNumber", "Phone", "AccountKey"] + HEADER
    rows = [[i, f"{382 + i}-{4657 + i}", 5_000_000 + 17 * i] + row for i, row in enumerate(numeric_rows())]
    table = validate_csv(csv_bytes(header, rows))
    assert [f.name for f in table.features] == ["Calls", "Minutes", "Plan"]
    assert set(table.dropped) == {"RowNumber", "Phone", "AccountKey"}
    assert all(reason.startswith("ID-like") for reason in table.dropped.values())
    warning = next(w for w in table.warnings if "ID-like" in w)
    assert "Phone" in warning and "RowNumber" in warning
    # dropped columns stay in the frame but not in the training frame
    assert "Phone" in table.frame.columns and "Phone" not in table.training_frame().columns


def test_feature_names_that_contain_phone_are_not_ids():
    header = HEADER + ["PhoneService"]
    rows = [row + ["Yes" if i % 3 else "No"] for i, row in enumerate(numeric_rows())]
    table = validate_csv(csv_bytes(header, rows))
    assert "PhoneService" in [f.name for f in table.features]


def test_saved_pandas_index_and_trailing_separator_are_ignored():
    frame = pd.read_csv(io.BytesIO(good_csv()))
    data = frame.to_csv().encode()  # the first header cell is blank, values 0..n-1
    table = validate_csv(data)
    assert [f.name for f in table.features] == ["Calls", "Minutes", "Plan"]
    assert any("saved index" in w for w in table.warnings)
    trailing = good_csv().replace(b"\n", b",\n")
    table = validate_csv(trailing)
    assert [f.name for f in table.features] == ["Calls", "Minutes", "Plan"]
    assert any("no name and no values" in w for w in table.warnings)


def test_blank_rows_between_data_are_skipped_with_warning():
    lines = good_csv().split(b"\n")
    data = b"\n".join(lines[:10] + [b"", b",,,"] + lines[10:])
    table = validate_csv(data)
    assert table.rows == 60
    assert any("Skipped 2 empty rows" in w for w in table.warnings)


# --------------------------------------------------------------------------- rejections: the file itself


def test_empty_file():
    rejects(b"", "empty", "0 bytes")


def test_whitespace_only_file():
    rejects(b"  \r\n\n\t ", "empty", "whitespace")


def test_too_large():
    rejects(good_csv(), "too large", "limit", "MB", max_bytes=100)
    message = rejects(b"x" * (3 * 1024 * 1024), "too large", max_bytes=2 * 1024 * 1024)
    assert "3 MB" in message and "2 MB" in message


def test_binary_with_nul_bytes():
    rejects(b"Churn,Calls\n0,1\n\x00\x00\x00\x01\x02", "not text", "binary", "export as CSV")


def test_binary_with_many_control_bytes():
    rejects(bytes(range(1, 9)) * 40 + b"Churn,Calls\n", "not text", "control characters")


def test_json_file():
    data = json.dumps([{"Churn": 0, "Calls": 1}] * 60).encode()
    rejects(data, "JSON", "export as CSV")


def test_json_lines_file():
    data = b"\n".join(json.dumps({"Churn": i % 2}).encode() for i in range(60))
    rejects(data, "JSON Lines", "export as CSV")


def test_xlsx_file():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("xl/workbook.xml", "<workbook/>")
    rejects(buffer.getvalue(), "Excel", ".xlsx", "export as CSV")


def test_xls_file():
    data = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 504 + b"Workbook"
    rejects(data, "Excel", ".xls", "export as CSV")


def test_parquet_file():
    rejects(b"PAR1\x15\x04\x15\x10\x15\x14L\x15\x02" + b"\x00" * 20 + b"PAR1", "Parquet", "export as CSV")


def test_gzip_file():
    rejects(gzip.compress(good_csv()), "gzip", "export as CSV")


def test_html_file():
    rejects(b"<!DOCTYPE html>\n<html><body>Churn</body></html>", "web page", "export as CSV")


def test_undecodable_bytes_get_the_encoding_message():
    rng = np.random.default_rng(3)
    garbage = bytes(rng.integers(0x80, 0x100, 400, dtype=np.uint8)) + bytes([0x81, 0x8D, 0x8F, 0x90, 0x9D])
    data = b"Churn,Name\n" + b"\n".join(b"0," + garbage[i : i + 20] for i in range(0, 400, 20))
    message = rejects(data, "encoding", "utf-8", "cp1252", "latin-1", "save the file as UTF-8")
    assert "not text" not in message


def test_utf8_cut_off_inside_a_character_is_truncated():
    header = ["Churn", "Plan", "Calls"]
    rows = [[1 if i % 4 == 0 else 0, "Básico" if i % 2 else "Prémium", i % 5] for i in range(60)]
    data = csv_bytes(header, rows)
    cut = data[: data.rindex("é".encode()) + 1]  # ends after the first byte of the last 'é'
    rejects(cut, "truncated", "upload the complete file")


def test_ascii_file_ending_in_a_cp1252_letter_is_not_called_truncated():
    data = good_csv() + b"0,1,2,caf\xc3"  # plain ASCII, then one high byte at the very end
    message = rejects(data, "'Plan' looks numeric", "'cafÃ' (row 62)")  # read as cp1252
    assert "truncated" not in message


def test_utf16_without_bom_is_binary():
    rejects(good_csv().decode().encode("utf-16-le"), "not text", "UTF-16")


def test_utf16_with_bom_is_read():
    table = validate_csv(good_csv().decode().replace(",", "\t").encode("utf-16"))
    assert table.encoding == "utf-16"
    assert table.rows == 60


# --------------------------------------------------------------------------- rejections: structure


def test_no_header_row():
    data = csv_bytes(["0", "3", "101.5", "1"], numeric_rows())
    rejects(data, "looks like data, not column names", "add a header row")


def test_duplicate_column_names():
    data = csv_bytes(["Churn", "Calls", "Minutes", "Calls"], numeric_rows())
    message = rejects(data, "duplicate column names", "'Calls'")
    assert "columns B, D" in message


def test_blank_column_name():
    data = csv_bytes(["Churn", "Calls", " ", "Plan"], numeric_rows())
    rejects(data, "blank column name", "column 3 (C)", "no name")


def test_ragged_rows_name_line_numbers():
    rows = numeric_rows()
    rows[4] = rows[4] + ["extra"]  # line 6
    rows[9] = rows[9][:2]  # line 11
    message = rejects(csv_bytes(HEADER, rows), "different number of fields", "line 6 has 5", "line 11 has 2")
    assert "header" in message and "4" in message


def test_ragged_rows_list_at_most_five():
    rows = [row + ["x"] for row in numeric_rows()]
    message = rejects(csv_bytes(HEADER, rows), "different number of fields", "60 rows in all")
    assert message.count("line ") <= 6  # five lines plus "line 1" in the convention note


def test_target_missing_with_hint():
    data = csv_bytes(["churn", "Calls", "Minutes", "Plan"], numeric_rows())
    rejects(data, "target column 'Churn' is missing", "did you mean 'churn'?", "'Calls'")


def test_target_missing_without_close_match_lists_columns():
    message = rejects(good_csv(), "'Exited' is missing", "Columns found", "'Minutes'", target="Exited")
    assert "did you mean" not in message.lower()


def test_target_not_binary():
    rows = numeric_rows()
    rows[2][0] = 2
    rows[3][0] = "maybe"
    rows[7][0] = "maybe"
    rejects(csv_bytes(HEADER, rows), "not binary", "'maybe' (2 rows)", "'2' (1 row)", "yes/no")


def test_target_with_blanks():
    rows = numeric_rows()
    for i in (0, 5, 6):
        rows[i][0] = ""
    rows[8][0] = "NA"
    rejects(csv_bytes(HEADER, rows), "4 rows have no value", "rows 2, 7, 8, 10", "header is row 1")


def test_only_one_class():
    rows = [[0] + row[1:] for row in numeric_rows()]
    rejects(csv_bytes(HEADER, rows), "only one class", "every customer stayed")


def test_too_few_rows():
    rejects(good_csv(n=MIN_ROWS - 1), "too few rows", f"{MIN_ROWS - 1} data rows", f"at least {MIN_ROWS}")


def test_header_only():
    rejects(b"Churn,Calls,Minutes\n", "too few rows", "0 data rows")


def test_too_few_of_one_class():
    rows = numeric_rows()
    for i, row in enumerate(rows):
        row[0] = 1 if i < MIN_PER_CLASS - 1 else 0
    rejects(csv_bytes(HEADER, rows), "too few rows of one class", f"only {MIN_PER_CLASS - 1} rows are churned",
            f"at least {MIN_PER_CLASS}")


def test_entirely_empty_column():
    header = HEADER + ["Notes"]
    rows = [row + [""] for row in numeric_rows()]
    rows[3][-1] = "NA"
    rejects(csv_bytes(header, rows), "'Notes'", "entirely empty")


def test_numeric_column_with_stray_text():
    rows = numeric_rows()
    rows[0][2] = "abc"  # row 2 in a spreadsheet
    rows[10][2] = '"12,5"'  # a decimal comma, quoted so it stays one field
    rows[40][2] = "n.a."
    message = rejects(
        csv_bytes(HEADER, rows),
        "'Minutes' looks numeric",
        "'abc' (row 2)",
        "'12,5' (row 12)",
        "'n.a.' (row 42)",
        "header is row 1",
    )
    assert "95%" in message


def test_stray_text_lists_at_most_five_values():
    rows = numeric_rows()
    for i in range(0, 8):
        rows[i][1] = f"x{i}"
    message = rejects(csv_bytes(HEADER, rows), "'Calls' looks numeric", "8 rows", "and 3 more")
    assert "'x5'" not in message


def test_mostly_text_column_is_categorical_not_an_error():
    header = HEADER + ["Mixed"]
    rows = [row + [str(i) if i % 2 else f"code{i % 3}"] for i, row in enumerate(numeric_rows())]
    table = validate_csv(csv_bytes(header, rows))
    assert next(f for f in table.features if f.name == "Mixed").kind == "categorical"


def test_no_feature_columns_left():
    header = ["customerID", "Churn", "Region"]
    rows = [[f"C{i:05d}", 1 if i % 4 == 0 else 0, "North"] for i in range(60)]
    rejects(csv_bytes(header, rows), "no feature columns left", "customerID", "Region")


def test_only_target_column():
    rows = [[1 if i % 4 == 0 else 0] for i in range(60)]
    rejects(csv_bytes(["Churn"], rows), "no feature columns left")


def test_unclosed_quote():
    data = good_csv() + b'1,"2,3\n' + b"0,1,2,3\n" * 5
    rejects(data, "different number of fields")


def test_blank_target_argument():
    rejects(good_csv(), "choose the target column", target="  ")


def test_every_message_is_distinct():
    """Each rejection has its own wording (pages and users tell them apart)."""
    cases = [
        b"",
        good_csv(),  # with max_bytes
        b"a\x00b",
        b"[1, 2]",
        b"PK\x03\x04xl/",
        b"PAR1",
        b"\x1f\x8bxx",
        b"Churn,N\n0," + bytes([0xC3, 0x28, 0x81]) + b"\n",
        csv_bytes(["0", "1"], []),
        csv_bytes(["a", "a"], []),
        csv_bytes(["Churn", "Calls"], [[0, 1, 2]]),
        csv_bytes(["x", "y"], [[0, 1]]),
        good_csv(n=10),
    ]
    messages = set()
    for i, data in enumerate(cases):
        with pytest.raises(ValidationError) as info:
            validate_csv(data, max_bytes=100 if i == 1 else None)
        messages.add(str(info.value)[:40])
    assert len(messages) == len(cases), messages


# --------------------------------------------------------------------------- properties


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=3000))
def test_arbitrary_bytes_validate_or_raise_validation_error(data):
    try:
        table = validate_csv(data, max_bytes=2500)
    except ValidationError as exc:
        assert str(exc)
    else:
        assert table.rows >= MIN_ROWS


_SAFE_CHARS = st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters='",;')
CLEAN_CELLS = st.one_of(
    st.sampled_from(["0", "1", "yes", "No", "TRUE", "", " ", "NA", "none", "?", "-", "1.5", "-2", "1e400",
                     "abc", "x y", "é", "0.0", "1.0", "10", "3", "7.25"]),
    st.text(_SAFE_CHARS, max_size=4),
    st.integers(-1000, 100_000).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
)
DIRTY_CELLS = st.one_of(st.sampled_from(['"a,b"', '"', 'x"y', "a\nb"]), st.text(max_size=4))
CELLS = st.one_of(CLEAN_CELLS, st.just('"a,b"'))  # a quoted separator stays one field
NAMES = st.one_of(
    st.sampled_from(["a", "b", "c", "Churn", "churn", "id", "Phone", "customerID", "1", "x y", "Plan"]),
    st.text(_SAFE_CHARS, min_size=1, max_size=3),
    st.sampled_from(["", ",", '"', "\t"]) | st.text(max_size=3),
)
LABELS = st.sampled_from(
    [("1", "0"), ("yes", "no"), (" True", "false "), ("1.0", "0"), ("Y", "n"), ("2", "0"), ("1", "")]
)


@st.composite
def csvish(draw):
    """CSV-like text: mostly well-formed tables with a binary target, with random damage mixed in."""
    target = draw(st.sampled_from(["Churn"] * 8 + ["churn", "a", "", "id"]))
    header = draw(st.lists(NAMES, min_size=0, max_size=4, unique=draw(st.booleans())))
    if draw(st.integers(0, 9)) < 8:
        header.insert(draw(st.integers(0, len(header))), target)
    if not header:
        header = [target]
    width = len(header)
    exact = st.lists(CELLS, min_size=width, max_size=width)
    ragged = st.lists(st.one_of(CELLS, DIRTY_CELLS), max_size=width + 2)
    n = draw(st.sampled_from([0, 3, MIN_ROWS - 1, MIN_ROWS, MIN_ROWS + 7, 90]))
    templates = draw(st.lists(exact, min_size=1, max_size=6))
    pos, neg = draw(LABELS)
    every = draw(st.sampled_from([2, 3, 5, 7, 30, 1000]))
    t_index = header.index(target) if target in header else None
    rows = []
    for i in range(n):
        cells = list(templates[(i * 7 + i // 3) % len(templates)])
        if t_index is not None and t_index < len(cells):
            cells[t_index] = pos if i % every == 0 else neg
        rows.append(cells)
    for cells in draw(st.lists(ragged, max_size=2)) if draw(st.integers(0, 3)) == 0 else []:
        rows.insert(draw(st.integers(0, len(rows))), cells)
    eol = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    sep = draw(st.sampled_from([",", ",", ",", ";", "\t"]))
    text = eol.join(sep.join(r) for r in [header, *rows]) + draw(st.sampled_from(["", eol, eol * 2]))
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "utf-8-sig", "cp1252", "utf-16"]))
    return text.encode(encoding, errors="replace"), target


@st.composite
def tidy_tables(draw):
    """Well-formed tables with a valid binary target and random feature cells (mostly validate)."""
    names = draw(st.lists(st.text(_SAFE_CHARS, min_size=1, max_size=6).map(str.strip).filter(bool),
                          min_size=1, max_size=5, unique=True).filter(lambda ns: "Churn" not in ns))
    header = list(names)
    header.insert(draw(st.integers(0, len(header))), "Churn")
    t_index = header.index("Churn")
    n = draw(st.integers(MIN_ROWS, 120))
    column_pools = [draw(st.lists(CLEAN_CELLS, min_size=1, max_size=8)) for _ in header]
    pos, neg = draw(LABELS.filter(lambda pair: pair not in (("2", "0"), ("1", ""))))
    every = draw(st.integers(2, 7))
    shift = draw(st.integers(0, 50))
    rows = []
    for i in range(n):
        cells = [pool[(i * (j + 3) + i // 5 + shift) % len(pool)] for j, pool in enumerate(column_pools)]
        cells[t_index] = pos if i % every == 0 else neg
        rows.append(cells)
    eol = draw(st.sampled_from(["\n", "\r\n"]))
    text = eol.join(",".join(r) for r in [header, *rows]) + eol
    return text.encode(draw(st.sampled_from(["utf-8", "cp1252"])), errors="replace"), "Churn"


def _check_outcome(data: bytes, target: str) -> ValidatedTable | None:
    try:
        table = validate_csv(data, target=target)
    except ValidationError as exc:
        assert str(exc)
        return None
    assert table.rows >= MIN_ROWS
    assert set(table.frame[table.target].unique()) == {0, 1}
    counts = table.frame[table.target].value_counts()
    assert counts.min() >= MIN_PER_CLASS
    assert table.features and all(isinstance(f, FeatureProfile) for f in table.features)
    assert list(table.training_frame().columns) == [table.target, *[f.name for f in table.features]]
    json.dumps(table.schema(), allow_nan=False)  # strict JSON: no NaN or Infinity
    for f in table.features:
        assert f.kind in ("numeric", "categorical")
        column = table.frame[f.name]
        if f.kind == "numeric":
            assert column.dtype.kind in "if"
        else:
            assert column.dtype == object
    return table


def _same_reading(data: bytes) -> None:
    """Where the fast reader (pandas' C parser) accepts a file, it must read what the csv module reads."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return
    delimiter, text = sniff_delimiter(text)
    fast = read_fast(text, delimiter)
    if fast is None:
        return
    exact = read_exact(text, delimiter)
    assert fast.header == exact.header
    assert fast.header_row == exact.header_row
    assert exact.columns is not None and not exact.ragged
    # the exact reader already skips all-blank records; the fast one leaves them for later
    kept = np.isin(fast.row_numbers, exact.row_numbers)
    assert list(fast.row_numbers[kept]) == list(exact.row_numbers)
    for f, e in zip(fast.columns, exact.columns, strict=True):
        assert list(f[kept]) == list(e)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=csvish())
def test_fast_and_exact_readers_agree(case):
    _same_reading(case[0])


SOUP = st.text(alphabet=st.sampled_from(list('a,"\n\r ;\t1.é\x0b\x0c\u2028\x85')), max_size=200)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=SOUP)
def test_readers_agree_on_quotes_separators_and_line_breaks(text):
    """Quotes, separators and every kind of line break: found a pandas bug with lone CR line endings."""
    _same_reading(text.encode())
    try:
        validate_csv(text.encode(), target="a")
    except ValidationError:
        pass


@pytest.mark.parametrize("text", ["1;\r\r;1", "1;\n\r;1\"", "a,b\r\r,1\r"])
def test_lone_cr_line_endings_read_exactly(text):
    _same_reading(text.encode())


def test_old_mac_line_endings():
    table = validate_csv(good_csv(eol="\r"))
    assert table.rows == 60


def test_fast_reader_is_used_for_the_reference(reference_csv):
    text = reference_csv.read_bytes().decode()
    fast = read_fast(text, ",")
    assert fast is not None and len(fast.row_numbers) == 3333
    assert fast.row_numbers[0] == 2 and fast.row_numbers[-1] == 3334


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=csvish())
def test_csvish_text_validates_or_raises_validation_error(case):
    _check_outcome(*case)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=tidy_tables())
def test_tidy_tables_validate_or_raise_validation_error(case):
    _check_outcome(*case)


def test_every_count_is_worded_in_its_number_by_one_helper():
    """Pages (count_text) and core messages (plural, lacks_features) word counts the same: no '(s)'."""
    from app.formatting import count_text
    from churn_core.wording import lacks_features, plural

    assert [plural(n, "row") for n in (0, 1, 2, 1200)] == ["0 rows", "1 row", "2 rows", "1,200 rows"]
    assert count_text(1, "customer") == plural(1, "customer") and count_text(3, "fix", "fixes") == "3 fixes"
    assert lacks_features("The file", ["tenure"]) == "The file lacks the model's feature column tenure"
    assert lacks_features("The file", ["a", "b"]).endswith("feature columns a, b")
