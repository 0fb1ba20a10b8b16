"""Issue 25, item 1 (and item 6's malformed records): every answered request is captured with its time, rows,
probabilities and variant whatever its format (a file scored on Predict as CSV bodies with reasons, JSON rows,
named records, CSV without a header, .npy), the time windows count them all, and capture lines that are not
records are skipped and counted, never a crash. On a generated dataset with categories, an ID column, blanks
and a Yes/No target."""

from __future__ import annotations

import base64
import io
import json
import time

import numpy as np
import pytest

from churn_core.monitoring import capture
from tests.support.helpers import wait_until
from tests.support.monitoring import ENDPOINT, MODEL, held_out, write_capture_lines


def next_second() -> float:
    """The start of the next whole second: capture times have whole seconds, so a window from it holds only
    what this test sends after it."""
    time.sleep(1.0 - time.time() % 1.0 + 0.01)
    return float(int(time.time()))


def test_a_file_scored_on_predict_is_captured_with_time_probability_and_variant(drift_model):
    p = drift_model
    p.set_capture(ENDPOINT, 100)
    start = next_second()
    frame = held_out(p, 1500)
    result = p.score_batch(ENDPOINT, frame, chunk_size=500)  # CSV bodies with a header, text/csv; explain=1
    assert len(result.scored) == 1500 and not result.errors
    wait_until(lambda: len(p.captured(ENDPOINT, since=start)) >= 1500, 30,
               what="1,500 captured customers in the last-hour window")
    window = p.captured(ENDPOINT, since=start)
    assert len(window) == 1500, "each customer once, in the window"
    assert window["inference_time"].notna().all() and window["churn_probability"].notna().all()
    assert window["predicted_label"].isin([0.0, 1.0]).all(), "the label the endpoint answered, with each row"
    assert set(window["variant"]) == {"AllTraffic"}
    assert np.allclose(np.sort(window["churn_probability"].to_numpy()),
                       np.sort(result.scored["churn_probability"].to_numpy().astype(float)), atol=1e-9)
    report = p.drift_report(endpoint=ENDPOINT, since=start)
    assert report.attrs["n"] == 1500, "the window's report compares every captured customer"
    assert report.attrs["verdict"] == "no drift", report[report["drifted"]]
    p.set_capture(ENDPOINT, 0)


def test_every_request_format_is_captured_with_its_probabilities(drift_model):
    p = drift_model
    schema = p.model_schema(MODEL)
    features = [f["name"] for f in schema["features"]]
    frame = held_out(p, 12)
    p.set_capture(ENDPOINT, 100)
    start = next_second()
    named = [{k: (None if v == "" else v) for k, v in r.items()} for r in frame.head(3).to_dict("records")]
    answers = [p.invoke(ENDPOINT, {"instances": named})]
    answers.append(p.invoke(ENDPOINT, named[:1]))  # a bare list of named records
    rows = frame[features].iloc[3:6].to_numpy().tolist()
    answers.append(p.invoke(ENDPOINT, {"Input": [[None if v == "" else v for v in r] for r in rows]}))
    body = io.StringIO()
    frame[features].iloc[6:9].to_csv(body, index=False, header=False)
    answers.append(p.invoke(ENDPOINT, body.getvalue(), content_type="text/csv"))  # CSV without a header
    body = io.StringIO()
    frame.iloc[9:12].to_csv(body, index=False)
    answers.append(p.invoke(ENDPOINT, body.getvalue(), content_type="text/csv; explain=2", accept="text/csv"))
    expected = []
    for answer in answers:
        if isinstance(answer, str):
            expected += [float(line.split(",")[1]) for line in answer.strip().splitlines()]
        elif "predictions" in answer:
            expected += [float(x["churn_probability"]) for x in answer["predictions"]]
        else:
            expected += [float(x) for x in answer["Probability"]]
    assert len(expected) == 13
    wait_until(lambda: len(p.captured(ENDPOINT, since=start)) >= 13, 30, what="13 captured customers")
    got = p.captured(ENDPOINT, since=start)
    assert len(got) == 13 and got["inference_time"].notna().all() and got["predicted_label"].notna().all()
    assert np.allclose(np.sort(got["churn_probability"].to_numpy()), np.sort(expected))
    p.set_capture(ENDPOINT, 0)


def test_npy_requests_and_base64_answers_are_read_back():
    """A .npy body is captured BASE64 (as SageMaker does for a type it does not list); an answer captured
    BASE64 (a type not in CaptureContentTypeHeader) is decoded too, not read as NaN."""
    schema = {"features": [{"name": "a", "kind": "numeric", "missing": False},
                           {"name": "b", "kind": "numeric", "missing": False}]}
    buffer = io.BytesIO()
    np.save(buffer, np.array([[1.0, 2.0], [3.0, 4.0]]))
    answer = json.dumps({"predictions": [{"label": 0, "churn_probability": 0.25},
                                         {"label": 1, "churn_probability": 0.75}]}).encode()
    line = capture.capture_line(buffer.getvalue(), "application/x-npy", answer, "application/octet-stream")
    record = json.loads(line)
    assert record["captureData"]["endpointInput"]["encoding"] == "BASE64"
    assert record["captureData"]["endpointOutput"]["encoding"] == "BASE64"
    assert base64.b64decode(record["captureData"]["endpointOutput"]["data"]) == answer
    frame = capture.records_to_frame(capture.parse_lines(line), schema, "AllTraffic")
    assert frame["a"].tolist() == [1.0, 3.0] and frame["churn_probability"].tolist() == [0.25, 0.75]
    assert frame["predicted_label"].tolist() == [0.0, 1.0]
    assert frame["inference_time"].notna().all()
    csv_answer = capture.capture_line(b"1,2\n", "text/csv", b"0,0.125\n", "application/octet-stream")
    assert capture.records_to_frame(capture.parse_lines(csv_answer), schema)["churn_probability"].tolist() == [0.125]


def test_capture_lines_that_are_not_records_are_skipped_and_counted(drift_model):
    p = drift_model
    p.set_capture(ENDPOINT, 0)
    frame = held_out(p, 2)
    body = io.StringIO()
    frame.to_csv(body, index=False)
    answer = p.invoke(ENDPOINT, body.getvalue(), content_type="text/csv")
    start = next_second()
    good = capture.capture_line(body.getvalue().encode(), "text/csv", json.dumps(answer).encode(), "application/json")
    write_capture_lines(p, "subs-ep", ["[]", "garbage {", "5", '{"captureData": []}', '"text"', good])
    got = p.captured(ENDPOINT, since=start)
    assert got.attrs["skipped"] == 5
    assert len(got) == 2 and got["churn_probability"].notna().all()
    report = p.drift_report(endpoint=ENDPOINT, since=start)  # no AttributeError: judged on what is readable
    assert report.attrs["skipped"] == 5 and report.attrs["n"] == len(got) == 2
    assert report.attrs["verdict"] == "not enough data"


def test_an_empty_window_says_its_true_cause(drift_model):
    p = drift_model
    p.set_capture(ENDPOINT, 0)
    with pytest.raises(Exception, match="capture is off for subs-ep"):
        p.drift_report(endpoint=ENDPOINT, since=time.time() + 3600)
    p.set_capture(ENDPOINT, 100)
    with pytest.raises(Exception, match=r"capture is on \(100 % of requests\), but no request was captured"):
        p.drift_report(endpoint=ENDPOINT, since=time.time() + 3600)
    p.set_capture(ENDPOINT, 0)
