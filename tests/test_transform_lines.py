"""Issue 26, items 4, 6, 7 and 8: what a scored file, one bad line, a line without end or a very wide
header can do to a transform job (and to a file scored through an endpoint)."""

from __future__ import annotations

import csv
import io

import pandas as pd
import pytest

import churn_core
from churn_core.data.sample import make_sample
from churn_core.paths import entry_module
from churn_core.transform import rules
from tests.support.helpers import wait_for_job, wait_until
from tests.support.transforms import customers

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
        assert "lacks the model's feature column AccountWeeks" in str(exc)
        assert len(str(exc)) < 2_000, "a message naming 50,000 columns"
    else:
        raise AssertionError("a missing feature was accepted")


# ------------------------------------------------------------------ item 4: output columns never collide


def test_kept_columns_named_like_an_output_column_are_renamed_by_one_rule():
    keep = ["customerID", "line", "churn_probability", "predicted_churn", "risk", "warnings", "top_reason",
            "input_risk"]
    named = rows.kept_names(keep)
    assert named == [
        "customerID", "input_line", "input_churn_probability", "input_predicted_churn", "input_input_risk",
        "input_warnings", "input_top_reason", "input_risk"]
    columns = rows.result_columns(keep, reasons=True)
    assert len(set(columns)) == len(columns) and not set(named) & set(rows.OUTPUT_NAMES)
    assert rows.kept_names(named) == named, "the rule is idempotent: results read back keep their names"
    # results.csv written before this rule (the input's column and the output's under one name) read back right
    old = ["_line", "line", "churn_probability", "risk", "churn_probability", "predicted_churn", "warnings",
           "top_reason"]
    assert rows.result_names(old) == ["line", "input_line", "input_churn_probability", "input_risk",
                                      "churn_probability", "predicted_churn", "warnings", "top_reason"]
    assert rows.result_names(["line", "top_reason", "churn_probability", "predicted_churn", "warnings"]) == [
        "line", "input_top_reason", "churn_probability", "predicted_churn", "warnings"]


@pytest.fixture(scope="module")
def rf_platform(tmp_path_factory):
    """A random forest on the reference sample, trained once."""
    mp = pytest.MonkeyPatch()
    mp.setenv("CHURN_HOME", str(tmp_path_factory.mktemp("lines") / "state"))
    mp.setenv("CHURN_BACKEND", "local")
    p = churn_core.connect()
    try:
        p.upload_dataset("numeric", make_sample(rows=600))
        p.start_training("numeric", {"algorithm": "random_forest", "n_estimators": 15}, name="rf")
        assert wait_for_job(p, "rf").status == "Completed"
        yield p
    finally:
        p.cleanup()
        mp.undo()


def transformed(p, data: bytes, name: str, **options):
    p.start_transform("rf", data, name=name, **options)
    return wait_until(lambda: (j := p.describe_transform(name)).status not in ("InProgress", "Stopping") and j,
                      120, what=f"transform {name} to finish")


def test_scoring_last_months_scored_file_shows_this_models_scores_everywhere(rf_platform):
    """Last month's download (line, churn_probability, predicted_churn, risk, warnings, top_reason) scored again:
    the output, the summary, the download and a batch through an endpoint show the model's new scores under
    the output names, and last month's under input_<name>."""
    p = rf_platform
    first = transformed(p, customers(200, seed=5, numeric=True), "month-1", reasons=True, keep_columns=FEATURES)
    assert first.status == "Completed", first.failure_reason
    fresh = p.transform_output("month-1")
    scored = pd.read_csv(io.BytesIO(p.transform_download("month-1")), dtype=str, keep_default_na=False)
    assert {"line", "churn_probability", "risk", "top_reason"} <= set(scored.columns)
    scored["churn_probability"] = "0.5"  # last month's values, recognisably not this model's
    scored["predicted_churn"] = "7"
    scored["risk"] = "stale"
    scored["warnings"] = "old note"
    data = scored.to_csv(index=False).encode()

    second = transformed(p, data, "month-2", reasons=True)
    assert second.status == "Completed" and second.rows_scored == 200, second.failure_reason
    out = p.transform_output("month-2")
    assert len(set(out.columns)) == len(out.columns) and not any(c.endswith(".1") for c in out.columns)
    assert list(out["churn_probability"]) == list(fresh["churn_probability"])
    assert list(out["risk"]) == list(fresh["risk"]) and list(out["line"]) == list(range(2, 202))
    assert set(out["input_churn_probability"]) == {"0.5"} and set(out["input_risk"]) == {"stale"}
    assert list(out["input_line"]) == [str(n) for n in fresh["line"]]
    assert list(out["top_reason"]) == list(fresh["top_reason"])

    summary = p.transform_summary("month-2", top=10)
    assert summary.predicted_churn == int(fresh["predicted_churn"].sum())
    assert summary.with_warnings == int((fresh["warnings"] != "").sum())
    assert list(summary.riskiest["churn_probability"]) == sorted(fresh["churn_probability"], reverse=True)[:10]
    assert "stale" not in set(summary.riskiest["risk"])

    header, *lines = list(csv.reader(io.StringIO(p.transform_download("month-2").decode("utf-8"))))
    assert len(set(header)) == len(header), header
    download = pd.DataFrame(lines, columns=header)
    assert [float(v) for v in download["churn_probability"]] == list(fresh["churn_probability"])
    assert set(download["risk"]) <= set(fresh["risk"]) and set(download["input_risk"]) == {"stale"}

    p.deploy("rf", "lines-ep")
    try:
        batch = p.score_batch("lines-ep", p.read_customers(data)).scored.sort_values("line")
    finally:
        p.delete_endpoint("lines-ep")
    assert len(set(batch.columns)) == len(batch.columns), list(batch.columns)
    assert list(batch["line"]) == list(range(2, 202))
    assert list(batch["churn_probability"]) == pytest.approx(list(fresh["churn_probability"]))
    assert set(batch["input_risk"]) == {"stale"} and set(batch["input_churn_probability"]) == {"0.5"}
    assert list(batch["risk"]) == list(fresh["risk"])


# ------------------------------------------------------------------ item 6: one bad line costs that line only

table_scoring = entry_module("table_scoring")
GOOD = b"128,1,1,2.70,1,265.1,110,89.0,9.87,10.0"
# what one line can hold that pandas' C reader and the csv module read differently from a plain split on "\n"
LINE_PIECES = [GOOD, b"\r", b'"', b",", b";", b"\x00", b" ", b"\t", b"x", b"1e400", b"-", b"\xe9", b'"a\rb"',
               b"\r\r", b"1,2,3", b'""', b"\\", b"#", b"nan", b"\x0b", b"\x0c", b"\x1c", b"\x85", b"\xe2\x80\xa8"]


@pytest.fixture(scope="module")
def model(rf_platform):
    from tests.support.transforms import load_model

    return load_model(rf_platform, "rf")


def accounted(data: bytes, scored, first: int = 1) -> None:
    """Every non-blank line of ``data`` (the first numbered ``first``) is scored or set aside, once, by its number."""
    numbers = sorted(scored.numbers.tolist() + [n for n, _ in scored.problems])
    assert len(numbers) == len(set(numbers)), numbers
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    blank = {first + i for i, line in enumerate(lines) if not line.strip(b" \t\r,")}
    assert set(numbers) | blank == set(range(first, first + len(lines))), (data, scored.problems)


@pytest.mark.parametrize("bad", [b"128,1,1,2.70,1,26\r5.1,110,89.0,9.87,10.0", b"128,1,1\r,2.70,1,265.1,110,89.0",
                                 b"\r128,1,1,2.70,1,265.1,110,89.0,9.87,10.0", b'128,1,1,2.70,1,"26\r5.1",110,89,9,1',
                                 b"128,1,1,2.70,1,265.1,110,89.0,9.87,10.0\r\r", b'"', b'1,"2\r',
                                 b'128,1,1,2.70,1,265.1,110,89.0,9.87,"' + b"9" * 200_000 + b'"'])
def test_a_line_with_a_bare_carriage_return_or_a_stray_quote_is_set_aside_alone(model, bad):
    data = b"\n".join([GOOD, GOOD, bad, GOOD, GOOD]) + b"\n"
    scored = table_scoring.score_lines(data, FEATURES, model, 0.5, first_line=2)
    accounted(data, scored, first=2)
    assert scored.numbers.tolist() == [2, 3, 5, 6], scored.problems
    [(number, problem)] = scored.problems
    assert number == 4 and problem
    if b"\r" in bad and bad.count(b'"') % 2 == 0:
        assert "carriage return" in problem, problem
    assert "has 0 values" not in problem, problem  # a value over the csv module's field limit says so


def test_a_block_pandas_cannot_read_is_read_line_by_line_and_loses_nothing(model, monkeypatch):
    """Whatever pandas' reader refuses (a ParserError) or miscounts, the lines are read one by one: the same
    scores, and a line the csv module cannot take alone is set aside with its reason."""
    import pandas as pd

    data = b"\n".join([GOOD, GOOD.replace(b"2.70", b"3.5"), b'1,2,"3"x",4,5,6,7,8,9,10', GOOD]) + b"\n"
    expected = table_scoring.score_lines(data, FEATURES, model, 0.5, first_line=2)
    real = table_scoring._read

    def refuses(block, *args):
        if block.count(b"\n") > 1:
            raise pd.errors.ParserError("Error tokenizing data. C error: Expected 10 fields in line 3, saw 11")
        return real(block, *args)

    monkeypatch.setattr(table_scoring, "_read", refuses)
    again = table_scoring.score_lines(data, FEATURES, model, 0.5, first_line=2)
    assert again.numbers.tolist() == expected.numbers.tolist() == [2, 3, 5]
    assert again.probabilities.tolist() == expected.probabilities.tolist()
    assert [n for n, _ in again.problems] == [n for n, _ in expected.problems] == [4]
    monkeypatch.setattr(table_scoring, "_read", lambda block, *args: real(block, *args).iloc[:1])  # miscounts
    assert table_scoring.score_lines(data, FEATURES, model, 0.5, first_line=2).numbers.tolist() == [2, 3, 5]


def test_any_mix_of_odd_bytes_in_lines_is_scored_or_set_aside_never_raised(model):
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    lines = st.lists(st.lists(st.sampled_from(LINE_PIECES), max_size=6).map(b"".join), min_size=1, max_size=12)

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
    @given(lines=lines)
    def check(lines):
        data = b"\n".join(lines) + b"\n"
        scored = table_scoring.score_lines(data, FEATURES, model, 0.5, first_line=1)
        accounted(data, scored)
        answer = table_scoring.transform_answer(table_scoring.TransformLines(data), model)
        assert answer.count <= len(lines)

    check()


def test_a_bare_carriage_return_in_one_line_of_20000_costs_that_line_only(rf_platform):
    p = rf_platform
    data = bytearray(customers(20_000, seed=8, numeric=True))
    lines = data.split(b"\n")
    lines[12_345] = lines[12_345].replace(b",", b"\r,", 1)  # line 12,346 of the file
    job = transformed(p, b"\n".join(lines), "one-bad-line", instance_count=2)
    assert job.status == "Completed", job.failure_reason
    assert (job.rows_scored, job.rows_failed) == (19_999, 1)
    [(number, problem)] = list(p.transform_errors("one-bad-line").itertuples(index=False, name=None))
    assert number == 12_346 and "carriage return" in problem, problem


def test_a_workers_exception_fails_the_job_as_itself_never_as_a_death(rf_platform, monkeypatch, capfd):
    """A chunk whose scoring raises ends the job at once naming the exception (type and message), with the
    traceback in the log: not "a worker process died twice ... check the machine's free memory"."""
    from churn_core.backends.local.transform_driver import Driver

    p = rf_platform
    monkeypatch.setattr(type(p.backend), "start_transform", lambda self, job, model, schema: {})  # no process
    p.start_transform("rf", customers(50, seed=9, numeric=True), name="raises")

    def boom(data, *args, **kwargs):
        raise KeyError("a bug, not a death")

    monkeypatch.setattr(entry_module("table_scoring"), "score_lines", boom)
    assert Driver(p.settings.home, p.settings.bucket, "raises").run() == 1  # its workers fork from this process
    job = p.describe_transform("raises")
    assert job.status == "Failed"
    assert "raised KeyError: 'a bug, not a death'" in job.failure_reason, job.failure_reason
    assert "died" not in job.failure_reason and "memory" not in job.failure_reason
    assert "Traceback" in capfd.readouterr().err


# ------------------------------------------------------------------ item 7: a line without end is never read whole


def _long_line_file(path, long_line: bytes) -> tuple[int, int]:
    """30 customers, then ``long_line``: (the file's size, the long line's number)."""
    header, body = customers(60, seed=4, numeric=True).split(b"\n", 1)
    head = header + b"\n" + b"\n".join(body.split(b"\n")[:30]) + b"\n"
    path.write_bytes(head + long_line)
    return path.stat().st_size, head.count(b"\n") + 1


@pytest.mark.parametrize("ending", [b"", b"\r"], ids=["one-line-without-newline", "cr-only-lines"])
def test_reading_a_file_with_a_40_mb_line_holds_a_small_part_of_it(tmp_path, ending):
    """Peak memory of planning a file whose last 40 MB are one line (no newline, or lines ending with a bare CR):
    a small fraction of the file, and the line is a line error, never read whole."""
    import tracemalloc

    row = b"128,1,1,2.70,1,265.1,110,89.0,9.87,10.0" + (ending or b",")
    size, number = _long_line_file(tmp_path / "long.csv", row * (40_000_000 // len(row)))
    header = rules.read_header((tmp_path / "long.csv").read_bytes()[:rules.HEAD_BYTES], FEATURES)
    tracemalloc.start()
    try:
        blocks = [(b[0], len(b[1]), b[2], b[3] if len(b) > 3 else 0)  # (old code: 3-tuples)
                  for b in rules.whole_line_blocks(tmp_path / "long.csv", header.size, 256 << 10)]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < size / 8, f"peak {peak:,} bytes reading a {size:,}-byte file"
    *lines, (offset, length, first, too_long) = blocks
    assert length == 0 and too_long > rules.MAX_LINE_BYTES and first == number == 32
    assert offset + too_long == size and not any(t for *_, t in lines)
    assert "at most 1,048,576 bytes (1 MB)" in rules.long_line_problem(too_long)


def test_lines_over_the_limit_anywhere_are_set_aside_and_the_rest_scored_by_their_numbers(tmp_path):
    """Short and long lines mixed, the limit lowered: every line accounted for, by its number, in order."""
    lines = [b"a" * n for n in (5, 300, 10, 99, 100, 101, 0, 1000, 7)]
    data = b"h\n" + b"\n".join(lines)
    (tmp_path / "mixed.csv").write_bytes(data)
    for block in (16, 64, 150, 4096):
        seen = {}
        for b in rules.whole_line_blocks(tmp_path / "mixed.csv", 2, block, max_line=100):
            if b.too_long:
                assert not b.data and data[b.offset:b.offset + b.too_long] == b"a" * b.too_long
                seen[b.first] = "long"
            else:
                assert data[b.offset:b.offset + len(b.data)] == b.data
                for k, text in enumerate(b.data.split(b"\n")[: b.data.count(b"\n") + (0 if b.data.endswith(b"\n")
                                                                                       else 1)]):
                    seen[b.first + k] = len(text)
        assert seen == {2: 5, 3: "long", 4: 10, 5: 99, 6: 100, 7: "long", 8: 0, 9: "long", 10: 7}, (block, seen)


def test_a_transform_sets_aside_a_3_mb_line_and_a_cr_only_tail_and_scores_the_rest(rf_platform):
    p = rf_platform
    good = customers(100, seed=6, numeric=True)
    header, body = good.split(b"\n", 1)
    rows_ = body.split(b"\n")
    data = (header + b"\n" + b"\n".join(rows_[:50]) + b"\n" + b"9" * 3_000_000 + b"\n" + b"\n".join(rows_[50:100])
            + b"\n" + b"\r".join(rows_[:60] * 600))  # 36,000 customers joined by bare CRs: one 2 MB line
    job = transformed(p, data, "long-lines", instance_count=2)
    assert job.status == "Completed", job.failure_reason
    assert (job.rows_scored, job.rows_failed) == (100, 2)
    errors = list(p.transform_errors("long-lines").itertuples(index=False, name=None))
    assert [n for n, _ in errors] == [52, 103]
    assert all("a line may be at most 1,048,576 bytes" in problem for _, problem in errors)
    assert list(p.transform_output("long-lines")["line"]) == list(range(2, 52)) + list(range(53, 103))


def test_sagemakers_input_preparation_sets_the_long_line_aside_too(tmp_path):
    from churn_core.backends.sagemaker.transform import prepare_input

    good = customers(10, seed=6, numeric=True)
    source = tmp_path / "in.csv"
    source.write_bytes(good + b"1" * (rules.MAX_LINE_BYTES + 1) + b"\n" + good.split(b"\n", 1)[1])
    (tmp_path / "out").mkdir()
    prepared = prepare_input(source, SCHEMA, None, tmp_path / "out", tmp_path / "aside.csv")
    assert (prepared.uploaded, prepared.set_aside) == (20, 1)
    assert b"1" * 1000 not in b"".join((tmp_path / "out" / part).read_bytes() for part in prepared.parts)
    [(number, problem)] = list(csv.reader(open(tmp_path / "aside.csv", encoding="utf-8")))
    assert number == "12" and "at most 1,048,576 bytes" in problem


def test_a_transform_of_a_file_with_20000_extra_columns_completes_and_keeps_them(rf_platform):
    """The whole job, not only the plan, with a wide header (each extra column kept, as by default)."""
    p = rf_platform
    header, body = customers(20, seed=3, numeric=True).split(b"\n", 1)
    extra = [f"x{i}" for i in range(20_000)]
    lines = [header + b"," + ",".join(extra).encode()] + [
        line + b"," + b",".join(b"%d" % (i % 7) for i in range(20_000)) for line in body.split(b"\n") if line]
    job = transformed(p, b"\n".join(lines) + b"\n", "wide")
    assert job.status == "Completed" and job.rows_scored == 20, job.failure_reason
    out = p.transform_output("wide")
    assert list(out.columns[1:20_001]) == extra and list(out["x19999"]) == [str(19_999 % 7)] * 20
