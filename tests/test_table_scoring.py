"""entry/table_scoring.py, the batch transform's engine: the same probabilities as the pipeline, the same
cell rules and words as an endpoint, every line accounted for, warnings from one place."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest

import churn_core
from churn_core.paths import entry_module
from tests.support.helpers import wait_for_job
from tests.support.transforms import customers, load_model

table_scoring = entry_module("table_scoring")
request_parser = entry_module("request_parser")
dataset_schema = entry_module("dataset_schema")
fast_forest = entry_module("fast_forest")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Each algorithm on the subscription sample (categorical, an ID column, blanks) and a random forest on
    the numeric reference sample, trained once on the local backend and loaded as a server loads them."""
    from churn_core.data.sample import make_sample, make_subscription_sample

    mp = pytest.MonkeyPatch()
    mp.setenv("CHURN_HOME", str(tmp_path_factory.mktemp("scoring") / "state"))
    mp.setenv("CHURN_BACKEND", "local")
    p = churn_core.connect()
    try:
        p.upload_dataset("subs", make_subscription_sample(1500, seed=3))
        p.upload_dataset("numeric", make_sample(rows=800))
        jobs = {"rf": ("subs", "random_forest"), "gb": ("subs", "gradient_boosting"),
                "lr": ("subs", "logistic_regression"), "numeric": ("numeric", "random_forest")}
        for name, (dataset, algorithm) in jobs.items():
            extra = {} if algorithm == "logistic_regression" else {"n_estimators": 30}
            p.start_training(dataset, {"algorithm": algorithm, **extra}, name=name)
        loaded = {}
        for name in jobs:
            assert wait_for_job(p, name).status == "Completed"
            loaded[name] = load_model(p, name)
        yield loaded
    finally:
        mp.undo()


def split(data: bytes) -> tuple[list[str], bytes]:
    header, rest = data.split(b"\n", 1)
    return header.decode().split(","), rest


def pipeline_proba(model: dict, data: bytes) -> np.ndarray:
    """What training's own reading and typing of the file gives the fitted pipeline."""
    frame = dataset_schema.read_text_table(io.BytesIO(data))
    return model["pipeline"].predict_proba(dataset_schema.typed_features(frame, model["schema"], "test"))[:, 1]


@pytest.mark.parametrize("name", ["rf", "gb", "lr", "numeric"])
def test_probabilities_equal_the_pipelines_on_the_trainings_typing(models, name):
    model = models[name]
    data = customers(3000, seed=8, numeric=name == "numeric")
    names, body = split(data)
    scored = table_scoring.score_lines(body, names, model, 0.5, keep=[], first_line=2)
    assert scored.problems == [] and list(scored.numbers[:3]) == [2, 3, 4] and len(scored) == 3000
    np.testing.assert_allclose(scored.probabilities, pipeline_proba(model, data), rtol=0, atol=1e-12)
    assert (scored.labels == (scored.probabilities > 0.5)).all()


def test_a_line_is_refused_exactly_when_an_endpoint_refuses_it_in_the_same_words(models):
    model = models["rf"]
    compiled = model["compiled"]
    names, body = split(customers(40, seed=4))
    frame = pd.read_csv(io.BytesIO(b",".join(n.encode() for n in names) + b"\n" + body), dtype=str,
                        keep_default_na=False)
    tricky = {"tenure": ["", " ", "nan", "NA", "none", "-", "abc", "inf", "1_000", " 7 ", "+3", "1e1", "0x10"],
              "Contract": ["", "Three year", " One year ", "nan", "None", "?"],
              "TotalCharges": ["", "n/a", "12,5", "-1e400"], "SeniorCitizen": ["true", "2"]}
    cases = [(feature, text) for feature, texts in tricky.items() for text in texts]
    rows = []
    for k, (feature, text) in enumerate(cases):
        row = frame.iloc[k % len(frame)].copy()
        row[feature] = text
        rows.append(row)
    lines = pd.DataFrame(rows).to_csv(index=False, header=False).encode()
    scored = table_scoring.score_lines(lines, names, model, 0.5, keep=["customerID"], first_line=1)
    refused = dict(scored.problems)
    for number, row in enumerate(rows, 1):
        record = {k: v for k, v in row.items()}
        body = pd.DataFrame([record]).to_csv(index=False).encode()  # the endpoint's CSV-with-header request
        try:
            checked = request_parser.check_rows(request_parser.parse_body(body, "text/csv"), compiled)
        except request_parser.InvalidInput as err:
            assert number in refused, f"{cases[number - 1]}: the endpoint refuses it ({err.message})"
            assert err.message == "row 1, feature " + refused[number], cases[number - 1]
            continue
        assert number not in refused, f"{cases[number - 1]}: the endpoint accepts it, the batch refused: " \
            f"{refused.get(number)}"
        at = list(scored.numbers).index(number)
        expected = model["pipeline"].predict_proba(checked.frame)[0, 1]
        assert scored.probabilities[at] == pytest.approx(expected, abs=1e-12), cases[number - 1]


def test_unscorable_lines_are_set_aside_with_their_line_number_and_the_rest_scored(models):
    model = models["rf"]
    names, body = split(customers(30, seed=5))
    lines = body.decode().splitlines()
    lines[3] = lines[3] + ",extra"  # line 5 of the file: one value too many
    lines[6] = ",".join(lines[6].split(",")[:5])  # line 8: too few
    lines[9] = ""  # line 11: blank, skipped
    lines[12] = " , ,"  # line 14: separators and spaces only: skipped too
    lines[15] = lines[15].replace("No", '"No', 1)  # line 17: an unbalanced quote
    lines[18] = '"' + lines[18].split(",")[0] + '",' + ",".join(lines[18].split(",")[1:])  # quoted: fine
    data = ("\r\n".join(lines) + "\r\n").encode()  # Windows line ends
    data = data.replace(lines[21].encode(), lines[21].encode().replace(b"Yes", b"Y\xe9s", 1))  # line 23: not UTF-8
    scored = table_scoring.score_lines(data, names, model, 0.5, keep=["customerID"], first_line=2,
                                       expected="the header names 20 columns")
    problems = dict(scored.problems)
    assert sorted(problems) == [5, 8, 17, 23]
    assert problems[5] == "has 21 values but the header names 20 columns."
    assert problems[8] == "has 5 values but the header names 20 columns."
    assert "unbalanced quote" in problems[17] and "not UTF-8" in problems[23]
    assert len(scored) == 30 - 6 and 11 not in scored.numbers and 14 not in scored.numbers
    assert list(scored.numbers) == sorted(scored.numbers)
    assert list(scored.kept["customerID"])[:2] == [lines[0].split(",")[0], lines[1].split(",")[0]]
    out = io.StringIO()
    scored.to_csv(out)
    first = out.getvalue().splitlines()[0].split(",")
    assert first[:2] == ["2", lines[0].split(",")[0]] and first[3] in ("0", "1") and first[4] == ""


def test_numbers_parsed_fast_equal_numbers_parsed_as_text(models):
    """Plain numbers go straight to float64 in pandas' reader; a chunk holding "inf" is read as text. Both
    give the same values (and the refused line its own words)."""
    model = models["numeric"]
    names, body = split(customers(500, seed=6, numeric=True))
    fast = table_scoring.score_lines(body, names, model, 0.5)
    lines = body.decode().splitlines()
    lines.append(lines[0].replace(lines[0].split(",")[0], "inf", 1))
    slow = table_scoring.score_lines(("\n".join(lines) + "\n").encode(), names, model, 0.5)
    np.testing.assert_array_equal(fast.probabilities, slow.probabilities[:500])
    assert slow.problems == [(501, "AccountWeeks: 'inf' is not a finite number; send a real number.")]


def test_the_typed_fast_path_is_the_list_path_and_bounded_for_many_categories(models):
    model = models["rf"]
    compiled, fast = model["compiled"], model["fast"]
    assert fast is not None, "verified against the pipeline when the model loaded"
    names, body = split(customers(300, seed=9))
    frame = table_scoring.parse(table_scoring.split_lines(body, len(names), 2), names, compiled["features"], [])
    checked = table_scoring.check_frame(frame, compiled)
    as_lists = [list(np.asarray(c, dtype=object)) if k == "categorical" else list(c)
                for c, k in zip(checked.columns, compiled["kinds"], strict=True)]
    np.testing.assert_array_equal(fast_forest.encoded_matrix_typed(checked.columns, fast),
                                  fast_forest.encoded_matrix(as_lists, fast))
    blocked = dict(fast)
    small = fast_forest.MATRIX_BYTES
    try:
        fast_forest.MATRIX_BYTES = 8 * fast_forest.encoded_width(fast) * 256  # 256 rows a block
        np.testing.assert_array_equal(fast_forest.proba_typed(checked.columns, blocked),
                                      fast_forest.proba(as_lists, fast))
    finally:
        fast_forest.MATRIX_BYTES = small


def test_warnings_come_from_the_one_rule_an_endpoint_and_the_dashboard_use(models):
    """request_parser.row_warnings decides what the model had to guess; the batch engine joins its notes
    with "; " as batch scoring does, for the same rows the same words."""
    model = models["rf"]
    schema = model["schema"]
    spec = {f["name"]: f for f in schema["features"]}
    names, body = split(customers(5, seed=2))
    frame = pd.read_csv(io.BytesIO(",".join(names).encode() + b"\n" + body), dtype=str, keep_default_na=False)
    frame.loc[0, "Contract"] = "Three year"
    frame.loc[1, "tenure"] = str(int(spec["tenure"]["max"]) + 12)
    frame.loc[1, "PaymentMethod"] = "Bitcoin"
    frame.loc[2, "TotalCharges"] = ""
    lines = frame.to_csv(index=False, header=False).encode()
    scored = table_scoring.score_lines(lines, names, model, 0.5, first_line=2)
    assert scored.warnings[0] == ("Contract = 'Three year' was never seen in training (scored as none of the known "
                                  "values)")
    top = int(spec["tenure"]["max"])
    assert scored.warnings[1] == (f"tenure = {top + 12} is outside the training range 0 to {top} (the score is an "
                                  "extrapolation); PaymentMethod = 'Bitcoin' was never seen in training (scored as "
                                  "none of the known values)")
    assert scored.warnings[2].startswith("TotalCharges is missing: the training median ")
    assert scored.warnings[3:] == ["", ""]
    records = frame.head(3).to_dict("records")
    checked = request_parser.check_rows(request_parser.parse_body(json.dumps({"instances": records}),
                                                                  "application/json"), model["compiled"])
    assert ["; ".join(n) for n in request_parser.row_warnings(checked, schema)] == scored.warnings[:3]


def test_a_transform_mini_batch_gets_one_answer_line_per_line_in_order(models, monkeypatch):
    """Headerless lines of the features in schema order, as SageMaker sends a MultiRecord mini-batch: each
    line is answered (probability,label,warnings,problem), a bad one with its reason, no field holds a comma."""
    model = models["rf"]
    train = entry_module("train")
    features = model["compiled"]["features"]
    frame = pd.read_csv(io.BytesIO(customers(6, seed=3)), dtype=str, keep_default_na=False)[features]
    frame.loc[2, "tenure"] = "lots"
    frame.loc[4, "TotalCharges"] = ""  # a blank number: the model was trained with blanks there
    lines = frame.to_csv(index=False, header=False).splitlines()
    lines.insert(3, "too,few")
    body = "\n".join(lines) + "\n"
    monkeypatch.setenv(table_scoring.TRANSFORM_ENV, "1")
    answer, ctype = train.output_fn(train.predict_fn(train.input_fn(body, "text/csv"), model), "text/csv")
    rows = answer.splitlines()
    assert ctype == "text/csv" and len(rows) == 7 and all(len(r.split(",")) == 4 for r in rows)
    assert rows[2] == ",,,tenure: 'lots' is not a number."
    assert rows[3].startswith(",,,has 2 values but the model expects 19 features in this order: gender ")
    scored = [r.split(",") for i, r in enumerate(rows) if i not in (2, 3)]
    assert all(0 <= float(p) <= 1 and label == str(int(float(p) > model["threshold"])) and not problem
               for p, label, _, problem in scored)
    monkeypatch.delenv(table_scoring.TRANSFORM_ENV)  # without the job's setting: the real-time contract (a 400)
    with pytest.raises(request_parser.InvalidInput, match="row 3, feature tenure"):
        train.predict_fn(train.input_fn(body, "text/csv"), model)


def test_a_many_row_csv_request_is_checked_column_by_column_with_the_same_result_and_words(models):
    """From VECTOR_MIN_ROWS CSV rows on, an endpoint checks cells once per distinct text: the same values as
    row by row, and a body with a bad row still gets the row-by-row path's message."""
    model = models["rf"]
    train = entry_module("train")
    frame = pd.read_csv(io.BytesIO(customers(120, seed=11)), dtype=str, keep_default_na=False)
    frame.loc[7, "TotalCharges"] = ""  # blank, trained with blanks: fine
    body = frame.to_csv(index=False)
    fast = request_parser.check_rows(request_parser.parse_body(body, "text/csv"), model["compiled"])
    assert not isinstance(fast.columns[0], list), "the column-by-column path"
    records = json.dumps({"instances": frame.to_dict("records")})
    slow = request_parser.check_rows(request_parser.parse_body(records, "application/json"), model["compiled"])
    assert isinstance(slow.columns[0], list)
    answer = json.loads(train.output_fn(train.predict_fn(fast, model), "application/json")[0])
    expected = json.loads(train.output_fn(train.predict_fn(slow, model), "application/json")[0])
    assert answer == expected and answer["predictions"][0]["customerID"] == frame["customerID"][0]
    headerless = frame.drop(columns=["customerID"]).to_csv(index=False, header=False)
    positional = request_parser.check_rows(request_parser.parse_body(headerless, "text/csv"), model["compiled"])
    np.testing.assert_array_equal(train.predict_fn(positional, model)["probabilities"],
                                  [p["churn_probability"] for p in expected["predictions"]])
    frame.loc[60, "tenure"] = "soon"
    with pytest.raises(request_parser.InvalidInput, match=r"^row 61, feature tenure: 'soon' is not a number\.$"):
        request_parser.check_rows(request_parser.parse_body(frame.to_csv(index=False), "text/csv"), model["compiled"])


def test_headerless_csv_lines_in_schema_order_take_blanks_and_categories_as_the_file_has_them(models):
    """What a transform sends when it runs without our environment (and any client of text/csv): features only,
    in schema order, no header. A blank number the model was trained with is fine; a blank category it never
    saw missing is refused by name; categories keep their spaces ("Fiber optic", "Month-to-month")."""
    model = models["rf"]
    train = entry_module("train")
    features = model["compiled"]["features"]
    frame = pd.read_csv(io.BytesIO(customers(3, seed=12)), dtype=str, keep_default_na=False)[features]
    frame.loc[0, "TotalCharges"] = ""
    frame.loc[1, "InternetService"] = "Fiber optic"
    line = frame.head(2).to_csv(index=False, header=False)
    answer = train.output_fn(train.predict_fn(train.input_fn(line, "text/csv"), model), "text/csv")[0]
    assert len(answer.splitlines()) == 2
    frame.loc[2, "Contract"] = ""
    with pytest.raises(request_parser.InvalidInput, match=r"row 1, feature Contract: value is missing \(empty\)"):
        train.predict_fn(train.input_fn(frame.tail(1).to_csv(index=False, header=False), "text/csv"), model)
