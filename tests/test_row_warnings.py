"""What a score rests on: ``request_parser.row_warnings`` (pure), and batch scoring that flags instead of
guessing silently, with an analyst's own data (categoricals, an ID column, blanks) on a live endpoint."""

from __future__ import annotations

import ast

import pytest

from churn_core.errors import ValidationError
from churn_core.paths import ENTRY_DIR, entry_module
from tests.support.own_data import ENDPOINT, MODEL

parser = entry_module("request_parser")

SCHEMA = {
    "features": [
        {"name": "tenure", "kind": "numeric", "min": 0.0, "max": 72.0, "median": 20.0, "decimals": 0, "missing": 0},
        {"name": "charges", "kind": "numeric", "min": 18.25, "max": 118.75, "median": 70.57499999999999,
         "decimals": 2, "missing": 3},
        {"name": "contract", "kind": "categorical", "categories": ["Month-to-month", "One year", "Two year"],
         "mode": "Month-to-month", "missing": 2},
    ],
    "id_columns": ["customerID"],
}


def warnings_for(records: list[dict]) -> list[list[str]]:
    checked = parser.check_rows(parser.ParsedRequest("instances", records, True), parser.compile_schema(SCHEMA))
    return parser.row_warnings(checked, SCHEMA)


def test_a_typical_customer_has_no_warning():
    assert warnings_for([{"tenure": 12, "charges": 50.5, "contract": "One year", "customerID": "A-1"}]) == [[]]


def test_each_guess_is_named_with_the_datas_precision():
    rows = warnings_for([
        {"tenure": 100, "charges": 50.5, "contract": "Three year"},
        {"tenure": 12, "charges": None, "contract": None},
        {"tenure": -1.5, "charges": "", "contract": ""},
    ])
    assert rows[0] == ["tenure = 100 is outside the training range 0 to 72 (the score is an extrapolation)",
                       "contract = 'Three year' was never seen in training (scored as none of the known values)"]
    assert rows[1] == ["charges is missing: the training median 70.57 was used",  # not 70.57499999999999
                       "contract is missing: the most common value 'Month-to-month' was used"]
    assert rows[2][0] == "tenure = -1.5 is outside the training range 0 to 72 (the score is an extrapolation)"
    assert len(rows[2]) == 3


def test_row_warnings_is_python39_and_pure():
    source = (ENTRY_DIR / "request_parser.py").read_text()
    ast.parse(source, feature_version=(3, 9))
    records = [{"tenure": 100, "charges": 50.5, "contract": "One year"}]
    assert warnings_for(records) == warnings_for(records)  # no state between calls


def test_batch_scores_blanks_unseen_categories_and_outliers_and_flags_them(own_model):
    p = own_model.platform
    frame = own_model.customers(40)
    frame.loc[0, "Contract"] = "Three year"  # never seen in training
    frame.loc[1, "tenure"] = "100"  # beyond the training range
    frame.loc[2, "TotalCharges"] = ""  # training had blanks here: filled in, not refused
    frame.loc[3, "MonthlyCharges"] = "lots"  # not a number: refused, by line
    frame.loc[4, "PaymentMethod"] = ""  # training had no blank here: refused
    result = p.score_batch(ENDPOINT, frame)
    assert result.total == 40 and len(result.scored) == 38
    assert [line for line, _ in result.errors] == [5, 6]
    assert result.errors[0][1].startswith("MonthlyCharges: 'lots' is not a number")
    assert "PaymentMethod" in result.errors[1][1] and "missing" in result.errors[1][1]
    notes = dict(zip(result.scored["customerID"], result.scored["warnings"], strict=True))
    assert "Contract = 'Three year' was never seen in training" in notes[frame.loc[0, "customerID"]]
    assert "tenure = 100 is outside the training range" in notes[frame.loc[1, "customerID"]]
    assert "TotalCharges is missing: the training median" in notes[frame.loc[2, "customerID"]]
    assert result.flagged == sum(1 for n in notes.values() if n) >= 3


def test_batch_labels_use_the_models_threshold(own_model):
    p = own_model.platform
    result = p.score_batch(ENDPOINT, own_model.customers(60))
    threshold = p.model_threshold(MODEL)
    expected = [int(prob > threshold) for prob in result.scored["churn_probability"]]
    assert list(result.scored["predicted_churn"]) == expected


def test_one_customer_notes_come_from_the_same_rule(own_model):
    p = own_model.platform
    record = {f["name"]: (f["median"] if f["kind"] == "numeric" else f["mode"]) for f in own_model.schema["features"]}
    assert p.row_warnings(MODEL, [record]) == [[]]
    record.update(tenure=100, TotalCharges=None)
    notes = p.field_warnings(MODEL, record)
    assert set(notes) == {"tenure", "TotalCharges"}
    assert p.row_warnings(MODEL, [record]) == [list(notes.values())]
    with pytest.raises(ValidationError, match="PaymentMethod"):
        p.row_warnings(MODEL, [{**record, "PaymentMethod": None}])


def test_scoring_reports_a_missing_feature_column(own_model):
    frame = own_model.customers(5).drop(columns=["TechSupport"])
    with pytest.raises(ValidationError, match="lacks the model's feature column.*TechSupport"):
        own_model.platform.score_batch(ENDPOINT, frame)

