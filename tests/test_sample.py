"""The synthetic sample: deterministic, reference schema and ranges, a learnable churn signal."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from churn_core.data import sample
from churn_core.errors import ValidationError
from churn_core.data.sample import SAMPLE_DESCRIPTION, make_sample

COLUMNS = [
    "Churn",
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
# min / max of the reference table in shared/data/README.md
REFERENCE_RANGES = {
    "Churn": (0, 1),
    "AccountWeeks": (1, 243),
    "ContractRenewal": (0, 1),
    "DataPlan": (0, 1),
    "DataUsage": (0, 5.40),
    "CustServCalls": (0, 9),
    "DayMins": (0, 350.8),
    "DayCalls": (0, 165),
    "MonthlyCharge": (14, 111.3),
    "OverageFee": (0, 18.19),
    "RoamMins": (0, 20),
}
INT_COLUMNS = ["Churn", "AccountWeeks", "ContractRenewal", "DataPlan", "CustServCalls", "DayCalls"]


@pytest.fixture(scope="module")
def frame(sample_csv) -> pd.DataFrame:
    return pd.read_csv(io.BytesIO(sample_csv))


def test_deterministic_for_a_seed():
    assert make_sample() == make_sample()
    assert make_sample(rows=300, seed=11) == make_sample(rows=300, seed=11)
    assert make_sample(rows=300, seed=11) != make_sample(rows=300, seed=12)


def test_default_is_2000_rows_utf8_with_lf(sample_csv):
    text = sample_csv.decode("utf-8")
    assert "\r" not in text
    assert text.endswith("\n")
    lines = text.splitlines()
    assert lines[0] == ",".join(COLUMNS)
    assert len(lines) == 2001


def test_rows_argument():
    assert len(make_sample(rows=120).decode().splitlines()) == 121


def test_schema_and_column_order(frame):
    assert list(frame.columns) == COLUMNS
    for name in INT_COLUMNS:
        assert frame[name].dtype == np.int64, name
    for name in ["DataUsage", "DayMins", "MonthlyCharge", "OverageFee", "RoamMins"]:
        assert frame[name].dtype == np.float64, name
    assert frame.notna().all().all()


def test_binary_columns(frame):
    for name in ["Churn", "ContractRenewal", "DataPlan"]:
        assert set(frame[name].unique()) == {0, 1}


def test_churn_rate(frame):
    assert 0.12 <= frame["Churn"].mean() <= 0.17


def test_values_inside_reference_ranges(frame):
    for name, (low, high) in REFERENCE_RANGES.items():
        assert frame[name].min() >= low, name
        assert frame[name].max() <= high, name


def test_floats_have_at_most_two_decimals(sample_csv):
    lines = sample_csv.decode().splitlines()[1:]
    for line in lines[:500]:
        for value in line.split(","):
            if "." in value:
                assert len(value.split(".")[1]) <= 2, line


def test_marginals_close_to_the_reference(frame):
    means = frame.mean()
    assert means["AccountWeeks"] == pytest.approx(101.06, rel=0.05)
    assert means["ContractRenewal"] == pytest.approx(0.903, abs=0.03)
    assert means["DataPlan"] == pytest.approx(0.277, abs=0.04)
    assert means["CustServCalls"] == pytest.approx(1.563, rel=0.1)
    assert means["DayMins"] == pytest.approx(179.8, rel=0.03)
    assert means["MonthlyCharge"] == pytest.approx(56.31, rel=0.05)
    assert means["OverageFee"] == pytest.approx(10.05, rel=0.05)
    assert means["RoamMins"] == pytest.approx(10.24, rel=0.05)
    no_plan = frame[frame["DataPlan"] == 0]["DataUsage"]
    assert (no_plan == 0).mean() > 0.6  # most customers without a data plan use no data
    with_plan = frame[frame["DataPlan"] == 1]["DataUsage"]
    assert with_plan.mean() == pytest.approx(2.76, rel=0.1)
    # the bill follows the usage
    assert frame["MonthlyCharge"].corr(frame["DayMins"]) > 0.4
    assert frame["MonthlyCharge"].corr(frame["DataUsage"]) > 0.5


def test_churn_signal_in_the_expected_direction(frame):
    by_calls = frame.groupby(frame["CustServCalls"] >= 4)["Churn"].mean()
    assert by_calls[True] > 2 * by_calls[False]
    by_renewal = frame.groupby("ContractRenewal")["Churn"].mean()
    assert by_renewal[0] > 2 * by_renewal[1]
    assert frame[frame["Churn"] == 1]["DayMins"].mean() > frame[frame["Churn"] == 0]["DayMins"].mean() + 15


def test_random_forest_learns_it(frame):
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import train_test_split

    X = frame.drop(columns="Churn")
    y = frame["Churn"]
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, stratify=y, random_state=42)
    model = RandomForestClassifier(n_estimators=100, random_state=0, n_jobs=1).fit(X_train, y_train)
    auc = roc_auc_score(y_test, model.predict_proba(X_test)[:, 1])
    assert auc > 0.8


def test_description_and_docstring_say_synthetic():
    assert "synthetic" in SAMPLE_DESCRIPTION.lower()
    assert "generated" in SAMPLE_DESCRIPTION.lower()
    assert "schema" in SAMPLE_DESCRIPTION.lower()
    assert "synthetic" in make_sample.__doc__.lower()
    assert "synthetic" in sample.__doc__.lower()


@pytest.mark.parametrize("rows", [0, -5, 2.5, "100", 2_000_000])
def test_rejects_bad_row_counts(rows):
    with pytest.raises(ValidationError, match="sample size"):
        make_sample(rows=rows)
