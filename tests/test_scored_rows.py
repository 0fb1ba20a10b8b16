"""The scored-row format has one home, entry/scored_rows.py: the writers of scored rows ask it."""

from __future__ import annotations

import ast
import io
from pathlib import Path

import pandas as pd

from churn_core.paths import entry_module

ROOT = Path(__file__).resolve().parents[1]
rows = entry_module("scored_rows")
COLUMN_NAMES = {rows.PROBABILITY, rows.LABEL, rows.RISK, rows.TOP_REASON}  # "warnings" is also a plain word
WRITERS = ["entry/table_scoring.py", "churn_core/transform/rules.py", "churn_core/backends/sagemaker/transform.py",
           "churn_core/backends/local/transform_driver.py"]


def test_the_format_in_one_place():
    assert rows.result_columns(["customerID"]) == ["line", "customerID", "churn_probability", "predicted_churn",
                                                   "warnings"]
    assert rows.result_columns(["line"], reasons=True) == ["line", "input_line", "churn_probability",
                                                           "predicted_churn", "warnings", "top_reason"]
    assert rows.answer_fields(False) == ("churn_probability", "predicted_churn", "warnings", "problem")
    assert rows.answer_fields(True) == ("churn_probability", "predicted_churn", "warnings", "top_reason", "problem")
    assert rows.answer_line(0.25, 0, 'a, "b"\n') == "0.25,0,a; 'b' ,"
    assert rows.answer_line(0.75, 1, "", "Calls = 4 (+12.0 pts)") == "0.75,1,,Calls = 4 (+12.0 pts),"
    assert rows.problem_line("has 3 values, but 4", reasons=False) == ",,,has 3 values; but 4"


def test_results_written_and_read_back_keep_the_order():
    out = io.StringIO()
    out.write(",".join(rows.result_columns(["id"], reasons=True)) + "\n")
    rows.write_rows(out, [2, 3], [["a", "b"]], [0.9, 0.1], [1, 0], ["", "note"], ["why", "why not"])
    frame = pd.read_csv(io.StringIO(out.getvalue()), dtype=rows.result_dtypes(rows.result_columns(["id"], True)),
                        keep_default_na=False)
    rows.insert_risk(frame, ["high", "low"])
    assert list(frame.columns) == ["line", "id", "churn_probability", "predicted_churn", "risk", "warnings",
                                   "top_reason"]
    assert frame["line"].tolist() == [2, 3] and frame["id"].tolist() == ["a", "b"]


def test_a_batch_scored_through_an_endpoint_puts_the_scores_after_the_inputs():
    scored = rows.batch_frame(pd.DataFrame({"id": ["x"], "Calls": ["4"]}), [2], [0.6], [1], [""], ["high"], ["why"])
    assert list(scored.columns) == ["line", "id", "Calls", "churn_probability", "predicted_churn", "risk",
                                    "top_reason", "warnings"]


def test_no_writer_spells_a_scored_column_itself():
    for path in WRITERS:
        tree = ast.parse((ROOT / path).read_text())
        spelled = {node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and node.value in
                   COLUMN_NAMES}
        assert not spelled, f"{path} spells {sorted(spelled)}: ask entry/scored_rows.py"
