"""Issue 26, items 4, 6, 7 and 8: what a scored file, one bad line, a line without end or a very wide
header can do to a transform job (and to a file scored through an endpoint)."""

from __future__ import annotations

from churn_core.paths import entry_module
from churn_core.transform import rules

rows = entry_module("scored_rows")
FEATURES = ["AccountWeeks", "ContractRenewal", "DataPlan", "DataUsage", "CustServCalls", "DayMins", "DayCalls",
            "MonthlyCharge", "OverageFee", "RoamMins"]
SCHEMA = {"features": [{"name": f, "kind": "numeric"} for f in FEATURES]}


# ------------------------------------------------------------------ item 8: column planning is linear


class Counted(str):
    """A column name that counts how often it is compared or hashed: the work of planning, without a clock."""

    operations = 0

    def __eq__(self, other):
        Counted.operations += 1
        return str.__eq__(self, other)

    def __hash__(self):
        Counted.operations += 1
        return str.__hash__(self)


def _plan(columns: int) -> int:
    """Comparisons and hashes of column names to plan a job's columns for ``columns`` extra columns."""
    names = [Counted(n) for n in FEATURES + [f"c{i}" for i in range(columns)] + ["line", "risk"]]
    header = rules.Header(names, ",", 0)
    Counted.operations = 0
    keep = rules.plan_columns(header, SCHEMA, None)
    rules.plan_columns(header, SCHEMA, names[len(FEATURES):])
    rules.result_columns(keep, reasons=True)
    return Counted.operations


def test_planning_four_times_the_columns_costs_about_four_times_the_work():
    """Linear, not quadratic: 4x the columns may cost at most 5x the comparisons (quadratic planning: 16x)."""
    small, large = _plan(2_000), _plan(8_000)
    assert large <= 5 * small, f"{small:,} comparisons for 2,000 columns, {large:,} for 8,000"


def test_a_header_naming_columns_twice_or_lacking_features_is_refused_by_name_in_a_short_message():
    names = FEATURES + [f"c{i}" for i in range(50_000)] + ["c7", "c9"]
    header = rules.read_header((",".join(names) + "\n").encode(), FEATURES)
    try:
        rules.plan_columns(header, SCHEMA, None)
    except rules.TransformInputError as exc:
        assert "c7, c9 more than once" in str(exc)
    else:
        raise AssertionError("a column named twice was accepted")
    header = rules.read_header((",".join(names[1:-2]) + "\n").encode(), FEATURES)
    try:
        rules.plan_columns(header, SCHEMA, None)
    except rules.TransformInputError as exc:
        assert "lacks the model's feature column(s) AccountWeeks" in str(exc)
        assert len(str(exc)) < 2_000, "a message naming 50,000 columns"
    else:
        raise AssertionError("a missing feature was accepted")
