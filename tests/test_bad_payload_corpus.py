"""A corpus of bad invocation requests sent over raw HTTP to a live, platform-deployed local endpoint.

Each must get a 4xx with a JSON body ``{"error": "..."}`` that says what is wrong; afterwards the
server still answers ``/ping`` and still scores a good request. (tests/test_serving.py covers a bare
server; these go through the endpoint the platform deployed and supervises.)
"""

from __future__ import annotations

import json
import re
import socket
from dataclasses import dataclass
from urllib.parse import urlparse

import pytest
import requests

import churn_core
from tests.support.data import SEED_ROW

ENDPOINT = "payload-corpus"
SEED = json.dumps({"Input": [SEED_ROW]}).encode()
FEATURES = ["AccountWeeks", "ContractRenewal", "DataPlan", "DataUsage", "CustServCalls", "DayMins", "DayCalls",
            "MonthlyCharge", "OverageFee", "RoamMins"]
JSON = "application/json"


@pytest.fixture(scope="module")
def live(trained):
    """The sample and a small trained model (conftest's trained), deployed; cleaned up with it."""
    ep = trained.deploy("model-a", ENDPOINT)
    assert ep.status == "InService", ep.failure_reason
    return trained, ep.url


def row(**changes) -> list:
    values = dict(zip(FEATURES, SEED_ROW, strict=True))
    values.update(changes)
    return list(values.values())


def record(**changes) -> dict:
    return dict(zip(FEATURES, row(**changes), strict=True))


def dumps(obj) -> bytes:
    return json.dumps(obj).encode()


def raw_seed(first: str) -> bytes:
    """The seed request with its first value written verbatim (for what json.dumps cannot write)."""
    return ('{"Input": [[' + ", ".join([first, *map(str, SEED_ROW[1:])]) + "]]}").encode()


@dataclass
class Bad:
    id: str
    body: bytes
    match: str  # regex the JSON "error" must match
    content_type: str | None = JSON
    status: int = 400
    accept: str | None = None
    method: str = "POST"
    path: str = "/invocations"
    raw: bytes | None = None  # a hand-written HTTP request (for what requests refuses to send)
    half_close: bool = False  # with raw: stop sending (shutdown SHUT_WR) after the request
    marks: tuple = ()


def raw_request(head: str, body: bytes = b"") -> bytes:
    return head.replace("\n", "\r\n").encode() + b"\r\n" + body


def csv_explain_request(value: bytes) -> bytes:
    """A CSV request whose ``explain`` parameter is the raw bytes ``value`` (HTTP headers are bytes: latin-1)."""
    body = b"128,1,1,2.7,1,265.1,110,89.0,9.87,10.0\n"
    return (b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv; explain=" + value
            + b"\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)


CASES = [
    Bad("empty-body", b"", r"request body is empty"),
    Bad("whitespace-body", b"  \n\t ", r"request body is empty"),
    Bad("malformed-json", b'{"Input": [[128, 1,', r"malformed JSON at line 1 column \d+"),
    Bad("json-null", b"null", r'expected a JSON object such as \{"Input"'),
    Bad("json-string", b'"128,1,1"', r"expected a JSON object .* got a string"),
    Bad("bare-list-of-values", b"[1, 2]", r"a bare list of values is ambiguous"),
    Bad("instances-empty", dumps({"instances": []}), r"'instances' is empty; send at least one row"),
    Bad("instances-of-numbers", dumps({"instances": [1, 2]}), r"'instances' record 1 is a number"),
    Bad("input-is-a-string", dumps({"Input": "abc"}), r"'Input' must be a list of rows .* got a string"),
    Bad("input-empty", dumps({"Input": []}), r"'Input' is empty"),
    Bad("lowercase-key", dumps({"input": [SEED_ROW]}), r"keys are case-sensitive"),
    Bad("both-keys", dumps({"Input": [SEED_ROW], "instances": [record()]}), r"not both"),
    Bad("extra-key", dumps({"Input": [SEED_ROW], "debug": True}), r"unexpected key 'debug'"),
    Bad("too-few-values", dumps({"Input": [[1, 2, 3]]}), r"expected 10 values per row .* got 3 in row 1"),
    Bad("too-many-values", dumps({"Input": [SEED_ROW + [1]]}), r"expected 10 values per row .* got 11"),
    Bad(
        "mixed-types-in-a-row",
        dumps({"Input": [row(ContractRenewal="one")]}),
        r"row 1, feature ContractRenewal: 'one' is not a number",
    ),
    Bad("boolean-value", dumps({"Input": [row(DataPlan=True)]}), r"feature DataPlan: true is a boolean"),
    Bad("null-value", dumps({"Input": [row(DayMins=None)]}), r"feature DayMins: value is missing \(null\)"),
    Bad("nested-row", dumps({"Input": [[SEED_ROW]]}), r"wrong nesting"),
    Bad("object-as-value", dumps({"Input": [row(DayCalls={"v": 1})]}), r"row 1, value 7 is an object"),
    Bad("huge-float-1e400", raw_seed("1e400"), r"feature AccountWeeks: Infinity is not a finite number"),
    Bad("nan-literal", raw_seed("NaN"), r"feature AccountWeeks: NaN is not a finite number"),
    Bad("unknown-feature", dumps({"instances": [dict(record(), Gender="f")]}), r"unknown feature 'Gender'"),
    Bad(
        "missing-feature",
        dumps({"instances": [{k: v for k, v in record().items() if k != "RoamMins"}]}),
        r"missing feature RoamMins",
    ),
    Bad("huge-row-count", dumps({"Input": [SEED_ROW] * 10001}), r"too many rows: 10001 in one request", status=413),
    Bad(
        "over-6-mb",
        b'{"Input": [' + b" " * (6 * 1024 * 1024) + b"]}",
        r"over the 6291456 byte \(6 MB\) limit",
        status=413,
    ),
    Bad("invalid-utf8", b'{"Input": [[\xff\xfe\xfa, 1]]}', r"request body is not valid UTF-8 text \(byte 0xff"),
    Bad(
        "unicode-garbage-in-a-number",
        dumps({"Input": [row(DayMins="\u202e\U0001f4a9\u0000\ud800")]}),
        r"feature DayMins: .* is not a number",
    ),
    Bad(
        "unknown-charset",
        SEED,
        r"unsupported charset 'klingon'",
        content_type="application/json; charset=klingon",
        status=415,
    ),
    Bad(
        "wrong-charset",
        SEED + b" " * (len(SEED) % 2 == 0),
        r"request body is not valid utf-16 text",
        content_type="application/json; charset=utf-16",
    ),
    Bad(
        "form-urlencoded",
        b"Input=128,1,1",
        r"unsupported content type 'application/x-www-form-urlencoded'",
        content_type="application/x-www-form-urlencoded",
        status=415,
    ),
    Bad("text-plain", b"128,1,1", r"unsupported content type 'text/plain'", content_type="text/plain", status=415),
    Bad("unsupported-accept", SEED, r"unsupported Accept 'image/png'", accept="image/png", status=406),
    Bad("csv-wrong-width", b"1,2,3\n", r"expected 10 values per row", content_type="text/csv"),
    Bad(
        "csv-text-in-number",
        b"128,1,1,2.7,1,lots,110,89.0,9.87,10.0\n",
        r"feature DayMins: 'lots' is not a number",
        content_type="text/csv",
    ),
    Bad(
        "huge-string-value",
        dumps({"Input": [row(RoamMins="x" * 1_000_000)]}),
        r"feature RoamMins: 'x+.* is not a number",
    ),
    Bad("get-instead-of-post", b"", r"GET is not allowed on /invocations; use POST", method="GET", status=405),
    Bad(
        "other-endpoint-name",
        SEED,
        r"endpoint 'someone-else' is not served here",
        path="/endpoints/someone-else/invocations",
        status=404,
    ),
    Bad(
        "no-content-length",
        b"",
        r"a Content-Length header is required",
        raw=raw_request("POST /invocations HTTP/1.1\nHost: x\nContent-Type: application/json\nConnection: close\n"),
        status=411,
    ),
    Bad(
        "body-shorter-than-content-length",
        b"",
        r"the request body ended after 2 of 100 bytes",
        raw=raw_request(
            "POST /invocations HTTP/1.1\nHost: x\nContent-Type: application/json\nContent-Length: 100\n"
            "Connection: close\n",
            b"{}",
        ),
        half_close=True,
    ),
    Bad(
        "negative-content-length",
        b"",
        r"(?i)malformed HTTP request \(Bad Request\): .*content-length",
        raw=raw_request(
            "POST /invocations HTTP/1.1\nHost: x\nContent-Type: application/json\nContent-Length: -5\n"
            "Connection: close\n",
            b"{}",
        ),
    ),
    Bad(
        "garbage-request-line",
        b"",
        r"malformed HTTP request \(Bad Request\)",
        raw=raw_request("\x16\x03\x01 nonsense\nHost: x\n"),
    ),
    Bad("deeply-nested-json", b"[" * 100_000 + b"]" * 100_000, r"JSON is nested too deeply"),
    Bad("huge-integer", raw_seed("1" + "0" * 400), r"feature AccountWeeks: the integer 100000000000.* is too large"),
    Bad("too-many-digits", raw_seed("1" * 5000), r"a number has too many digits"),
    Bad(
        "non-text-charset-base64",
        SEED,
        r"unsupported charset .*base64",
        content_type="application/json; charset=base64",
        status=415,
    ),
    # issue 26, item 10: the explain parameter of a CSV content type is the client's, so its faults are 4xx
    *(Bad(f"csv-explain-{name}", b"", r"'explain' in the content type must be true or a whole number of reasons "
          r"per customer from 1 to 50, got .*", raw=csv_explain_request(value))
      for name, value in (("latin1-superscript", b"\xb2"), ("latin1-byte", b"3\xe9"), ("5000-digits", b"9" * 5000),
                          ("utf8-arabic-digit", "\u0663".encode()), ("zero", b"0"), ("sign", b"+3"))),
    Bad(
        "non-text-charset-punycode",
        SEED,
        r"request body is not valid punycode text",
        content_type="application/json; charset=punycode",
    ),
]
BAD_PAYLOAD_COUNT = len(CASES)


def send(url: str, case: Bad) -> tuple[int, str, bytes]:
    """(status, content type, body) of one bad request."""
    if case.raw is not None:
        return send_raw(url, case.raw, case.half_close)
    headers = {}
    if case.content_type is not None:
        headers["Content-Type"] = case.content_type
    if case.accept is not None:
        headers["Accept"] = case.accept
    resp = requests.request(case.method, url + case.path, data=case.body, headers=headers, timeout=60)
    return resp.status_code, resp.headers.get("Content-Type", ""), resp.content


def send_raw(url: str, request: bytes, half_close: bool = False) -> tuple[int, str, bytes]:
    where = urlparse(url)
    with socket.create_connection((where.hostname, where.port), timeout=30) as sock:
        sock.sendall(request)
        if half_close:
            sock.shutdown(socket.SHUT_WR)  # the client stops sending early
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {name.lower(): value for name, value in (line.split(": ", 1) for line in lines[1:] if ": " in line)}
    return status, headers.get("content-type", ""), body  # header names are case-insensitive (RFC 9110)


def test_the_corpus_is_what_the_issue_asks_for():
    assert BAD_PAYLOAD_COUNT >= 15
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id, marks=c.marks) for c in CASES])
def test_bad_payload_gets_a_4xx_json_error_and_the_endpoint_stays_up(case: Bad, live):
    p, url = live
    status, content_type, body = send(url, case)
    assert 400 <= status < 500, (status, body[:300])
    assert status == case.status, (status, body[:300])
    assert content_type.startswith(JSON), (content_type, body[:300])
    error = json.loads(body)["error"]
    assert isinstance(error, str) and re.search(case.match, error), error
    # the endpoint is still up and still scores
    assert requests.get(url + "/ping", timeout=10).status_code == 200
    good = requests.post(url + "/invocations", data=SEED, headers={"Content-Type": JSON}, timeout=30)
    assert good.status_code == 200 and good.json()["Output"] in (0, 1)
    assert p.describe_endpoint(ENDPOINT).status == "InService"


def test_a_huge_bad_value_is_not_echoed_back_in_full(live):
    """The error names the bad value, but a 1 MB string must not come back as a 2 MB error body."""
    _, url = live
    body = dumps({"Input": [row(RoamMins="x" * 1_000_000)]})
    resp = requests.post(url + "/invocations", data=body, headers={"Content-Type": JSON}, timeout=30)
    assert resp.status_code == 400
    assert len(resp.content) <= 4096, f"{len(resp.content):,} byte error body"


def test_the_platform_client_reports_bad_payloads_as_validation_errors(live):
    p, _ = live
    for payload, match in (
        ({"Input": [[1, 2, 3]]}, "expected 10 values"),
        ({"instances": []}, "is empty"),
        ({"Input": [row(DayMins="abc")]}, "'abc' is not a number"),
    ):
        with pytest.raises(churn_core.ValidationError, match=rf"HTTP 400\): .*{match}"):
            p.invoke(ENDPOINT, payload)
    assert p.invoke(ENDPOINT, {"Input": [SEED_ROW]})["Output"] in (0, 1)
