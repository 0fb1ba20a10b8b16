"""The local endpoint server (churn_core.backends.local.endpoint.server): a real gunicorn process on 127.0.0.1,
real HTTP, boto3."""

from __future__ import annotations

import hashlib
import http.client
import importlib.util
import io
import json
import os
import pickle
import signal
import socket
import subprocess
import sys
import tarfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from churn_core.backends.local.endpoint.app import PREDICT_THREADS
from churn_core.backends.local.endpoint.server import MAX_BODY_BYTES, free_port, read_stats
from tests.support.data import SEED_ROW
from tests.support.frames import synthetic_frame

ROOT = Path(__file__).resolve().parents[1]
TRAIN_PY = ROOT / "entry" / "train.py"
FEATURES = [
    "AccountWeeks", "ContractRenewal", "DataPlan", "DataUsage", "CustServCalls",
    "DayMins", "DayCalls", "MonthlyCharge", "OverageFee", "RoamMins",
]
SEED_BODY = b'{"Input": [[128,1,1,2.70,1,265.1,110,89.0,9.87,10.0]]}'
NAME = "churn-test-endpoint"
JSON = {"Content-Type": "application/json"}




def make_tar(target: Path, files: dict) -> str:
    """files: arcname -> bytes. Returns the SHA-256 of the tarball."""
    with tarfile.open(target, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return hashlib.sha256(target.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def packed_model(tmp_path_factory):
    """train.py run once (20 trees, in this process) and packed the way SageMaker packs model.tar.gz."""
    base = tmp_path_factory.mktemp("trained")
    dirs = {k: base / k for k in ("train", "test", "model", "output")}
    for d in dirs.values():
        d.mkdir()
    frame = synthetic_frame(300)
    frame.iloc[:200].to_csv(dirs["train"] / "train.csv", index=False)
    frame.iloc[200:].to_csv(dirs["test"] / "test.csv", index=False)
    spec = importlib.util.spec_from_file_location("churn_entry_for_serving_tests", str(TRAIN_PY))
    entry = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(entry)
    entry.main(["--n_estimators", "20", "--train", str(dirs["train"]), "--test", str(dirs["test"]),
                "--model-dir", str(dirs["model"]), "--output-data-dir", str(dirs["output"])])
    files = {p.name: p.read_bytes() for p in sorted(dirs["model"].iterdir())}
    tar_path = base / "model.tar.gz"
    sha = make_tar(tar_path, files)
    return tar_path, sha, files


def start_server(
    artifact: Path, sha: str, workdir: Path, port: int, workers: int = 1, name: str = NAME
) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "churn_core.backends.local.endpoint.server",
            "--artifact",
            str(artifact),
            "--sha256",
            sha,
            "--entry",
            str(TRAIN_PY),
            "--workdir",
            str(workdir),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--name",
            name,
        ],
        cwd=str(ROOT),
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        except ProcessLookupError:
            pass
    for stream in (proc.stdout, proc.stderr):
        if stream:
            stream.close()


@pytest.fixture(scope="module")
def server(packed_model, tmp_path_factory):
    tar_path, sha, _ = packed_model
    workdir = tmp_path_factory.mktemp("endpoint")
    port = free_port()
    proc = start_server(tar_path, sha, workdir, port, workers=2)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"server exited with {proc.returncode}: {proc.stderr.read()}")
            try:
                if requests.get(url + "/ping", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if time.time() > deadline:
                pytest.fail("server did not answer /ping within 60 s")
            time.sleep(0.1)
        yield {"url": url, "workdir": workdir, "proc": proc, "port": port, "sha": sha}
    finally:
        stop(proc)


def post(server, body, headers=JSON, path="/invocations"):
    return requests.post(server["url"] + path, data=body, headers=headers, timeout=30)


# ----------------------------------------------------------------------------- happy paths


def test_ping(server):
    r = requests.get(server["url"] + "/ping", timeout=5)
    assert r.status_code == 200 and r.json() == {"status": "ok", "endpoint": NAME}
    models = list((server["workdir"] / "models").glob("*/model.joblib"))
    assert [m.parent.name for m in models] == [server["sha"]], "unpacked under models/<its sha256>"


def test_seed_payload_by_raw_http(server):
    r = post(server, SEED_BODY)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == "application/json"
    out = r.json()
    assert type(out["Output"]) is int and out["Output"] in (0, 1) and 0 <= out["Probability"] <= 1
    via_endpoint_path = post(server, SEED_BODY, path=f"/endpoints/{NAME}/invocations")
    assert via_endpoint_path.status_code == 200 and via_endpoint_path.json() == out


def test_boto3_sagemaker_runtime_client(server):
    import boto3
    from botocore.exceptions import ClientError

    client = boto3.client(
        "sagemaker-runtime",
        endpoint_url=server["url"],
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    response = client.invoke_endpoint(
        EndpointName=NAME, ContentType="application/json", Accept="application/json", Body=SEED_BODY
    )
    out = json.loads(response["Body"].read())
    assert type(out["Output"]) is int
    assert response["ContentType"] == "application/json"
    with pytest.raises(ClientError) as info:
        client.invoke_endpoint(EndpointName=NAME, ContentType="application/json", Body=b'{"Input": [[1, 2]]}')
    assert "expected 10 values per row" in str(info.value)
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_named_instances_csv_and_several_rows(server):
    rows = synthetic_frame(6, seed=9)[FEATURES]
    seed_style = post(server, json.dumps({"Input": rows.values.tolist()})).json()
    assert len(seed_style["Output"]) == 6 and all(type(x) is int for x in seed_style["Output"])

    named = post(server, json.dumps({"instances": rows.to_dict("records")}))
    assert named.status_code == 200
    preds = named.json()["predictions"]
    assert [p["label"] for p in preds] == seed_style["Output"]
    assert [p["churn_probability"] for p in preds] == seed_style["Probability"]

    csv_body = rows.to_csv(index=False, header=False)
    r = post(server, csv_body, headers={"Content-Type": "text/csv", "Accept": "text/csv"})
    assert r.status_code == 200 and r.headers["Content-Type"] == "text/csv"
    assert [int(line.split(",")[0]) for line in r.text.strip().splitlines()] == seed_style["Output"]


def test_concurrent_requests(server):
    with requests.Session() as session, ThreadPoolExecutor(8) as pool:

        def call(i):
            row = list(SEED_ROW)
            row[0] = i
            return session.post(server["url"] + "/invocations", json={"Input": [row]}, timeout=30)

        results = list(pool.map(call, range(64)))
    assert all(r.status_code == 200 and type(r.json()["Output"]) is int for r in results)


# ----------------------------------------------------------------------------- bad requests

NUMBERS = "128,1,1,2.70,1,{},110,89.0,9.87,10.0"
BAD_REQUESTS = [
    # (id, method, path, headers, body, status, fragment in the error)
    ("malformed-json", "POST", "/invocations", JSON, b'{"Input": [[128,1,', 400, "malformed JSON"),
    (
        "wrong-content-type",
        "POST",
        "/invocations",
        {"Content-Type": "text/plain"},
        SEED_BODY,
        415,
        "unsupported content type 'text/plain'",
    ),
    (
        "wrong-feature-count",
        "POST",
        "/invocations",
        JSON,
        b'{"Input": [[128,1,1,2.70]]}',
        400,
        "expected 10 values per row in this order: AccountWeeks, ContractRenewal, DataPlan",
    ),
    (
        "unknown-feature",
        "POST",
        "/invocations",
        JSON,
        json.dumps({"instances": [dict(zip(FEATURES, SEED_ROW, strict=True), Plan="gold")]}).encode(),
        400,
        "unknown feature 'Plan'",
    ),
    (
        "missing-features",
        "POST",
        "/invocations",
        JSON,
        json.dumps({"instances": [dict(list(zip(FEATURES, SEED_ROW, strict=True))[:8])]}).encode(),
        400,
        "missing features OverageFee, RoamMins",
    ),
    (
        "string-for-number",
        "POST",
        "/invocations",
        JSON,
        ('{"Input": [[%s]]}' % NUMBERS.format('"abc"')).encode(),
        400,
        "row 1, feature DayMins: 'abc' is not a number",
    ),
    (
        "nan",
        "POST",
        "/invocations",
        JSON,
        ('{"Input": [[%s]]}' % NUMBERS.format("NaN")).encode(),
        400,
        "NaN is not a finite number",
    ),
    (
        "infinity",
        "POST",
        "/invocations",
        JSON,
        ('{"Input": [[%s]]}' % NUMBERS.format("-Infinity")).encode(),
        400,
        "-Infinity is not a finite number",
    ),
    (
        "null",
        "POST",
        "/invocations",
        JSON,
        ('{"Input": [[%s]]}' % NUMBERS.format("null")).encode(),
        400,
        "feature DayMins: value is missing (null)",
    ),
    (
        "boolean",
        "POST",
        "/invocations",
        JSON,
        ('{"Input": [[%s]]}' % NUMBERS.format("true")).encode(),
        400,
        "true is a boolean, not a number",
    ),
    ("empty-list", "POST", "/invocations", JSON, b'{"Input": []}', 400, "'Input' is empty"),
    ("empty-instances", "POST", "/invocations", JSON, b'{"instances": []}', 400, "'instances' is empty"),
    ("empty-body", "POST", "/invocations", JSON, b"", 400, "request body is empty"),
    ("wrong-nesting", "POST", "/invocations", JSON, b'{"Input": [[[128,1,1]]]}', 400, "wrong nesting"),
    ("input-not-a-list", "POST", "/invocations", JSON, b'{"Input": 5}', 400, "'Input' must be a list of rows"),
    ("wrong-key", "POST", "/invocations", JSON, b'{"inputs": [[1]]}', 400, "got key 'inputs'"),
    ("non-utf8", "POST", "/invocations", JSON, b'{"Input": [[\xff\xfe]]}', 400, "not valid UTF-8"),
    (
        "wrong-accept",
        "POST",
        "/invocations",
        dict(JSON, Accept="application/xml"),
        SEED_BODY,
        406,
        "unsupported Accept 'application/xml'",
    ),
    (
        "csv-text-in-number",
        "POST",
        "/invocations",
        {"Content-Type": "text/csv"},
        NUMBERS.format("lots").encode(),
        400,
        "feature DayMins: 'lots' is not a number",
    ),
    ("oversized", "POST", "/invocations", JSON, b" " * (MAX_BODY_BYTES + 1), 413, "6 MB"),
    (
        "too-many-rows",
        "POST",
        "/invocations",
        JSON,
        json.dumps({"Input": [SEED_ROW] * 10001}).encode(),
        413,
        "too many rows: 10001",
    ),
    ("get-on-invocations", "GET", "/invocations", {}, None, 405, "GET is not allowed on /invocations"),
    ("post-on-ping", "POST", "/ping", JSON, b"{}", 405, "POST is not allowed on /ping"),
    ("unknown-path", "GET", "/predict", {}, None, 404, "no route '/predict'"),
    (
        "wrong-endpoint-name",
        "POST",
        "/endpoints/someone-else/invocations",
        JSON,
        SEED_BODY,
        404,
        "'someone-else' is not served here",
    ),
]


@pytest.mark.parametrize("case", BAD_REQUESTS, ids=[c[0] for c in BAD_REQUESTS])
def test_bad_requests_get_a_precise_json_error(server, case):
    _, method, path, headers, body, status, fragment = case
    r = requests.request(method, server["url"] + path, data=body, headers=headers, timeout=30)
    assert r.status_code == status, r.text
    assert r.headers["Content-Type"] == "application/json"
    error = r.json()["error"]
    assert fragment in error, error
    if status == 405:
        assert r.headers.get("Allow")


def test_post_without_content_length_is_411(server):
    conn = http.client.HTTPConnection("127.0.0.1", server["port"], timeout=10)
    try:
        conn.putrequest("POST", "/invocations")
        conn.putheader("Content-Type", "application/json")
        conn.endheaders()
        response = conn.getresponse()
        assert response.status == 411
        assert "Content-Length" in json.loads(response.read())["error"]
    finally:
        conn.close()


def test_malformed_http_gets_a_json_error_too(server):
    """gunicorn answers a broken request itself (here a negative Content-Length): still JSON."""
    import socket

    with socket.create_connection(("127.0.0.1", server["port"]), timeout=10) as sock:
        sock.sendall(
            b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: -5\r\nConnection: close\r\n\r\n{}"
        )
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), head
    assert b"Content-Type: application/json" in head
    assert "CONTENT-LENGTH" in json.loads(body)["error"].upper()


def test_server_survives_the_bad_requests_and_counts_them(server):
    for case in BAD_REQUESTS[:5]:
        requests.request(case[1], server["url"] + case[2], data=case[4], headers=case[3], timeout=30)
    assert requests.get(server["url"] + "/ping", timeout=5).status_code == 200
    assert post(server, SEED_BODY).status_code == 200
    assert server["proc"].poll() is None


def test_stats_files_and_read_stats(server):
    before = read_stats(server["workdir"])
    for _ in range(5):
        assert post(server, SEED_BODY).status_code == 200
    assert post(server, b'{"Input": 5}').status_code == 400
    deadline = time.time() + 20  # flushed every STATS_INTERVAL_S; a loaded machine is slower
    stats = read_stats(server["workdir"])
    # counters are flushed to the file from time to time: a flush may fall between a request's count and its error's
    while (stats["invocations"] < before["invocations"] + 6 or stats["errors"] < before["errors"] + 1) \
            and time.time() < deadline:
        time.sleep(0.1)
        stats = read_stats(server["workdir"])
    assert stats["invocations"] >= before["invocations"] + 6
    assert stats["errors"] >= before["errors"] + 1
    assert stats["avg_latency_ms"] > 0 and 0 < stats["p50_latency_ms"] <= stats["p99_latency_ms"]
    assert stats["last_invoked_at"] > time.time() - 60
    files = list((server["workdir"] / "stats").glob("*.json"))
    assert files and all(f.stem.isdigit() for f in files)
    assert requests.get(server["url"] + "/stats", timeout=5).json()["invocations"] >= stats["invocations"]


def test_read_stats_of_an_empty_workdir(tmp_path):
    assert read_stats(tmp_path) == {
        "invocations": 0,
        "errors": 0,
        "avg_latency_ms": None,
        "p50_latency_ms": None,
        "p99_latency_ms": None,
        "last_invoked_at": None,
        "variants": {},
    }


# ----------------------------------------------------------------------------- refusing to start


class _Marker:
    """Unpickling this creates the marker file (what a malicious model.joblib could do)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_tampered_artifact_is_never_unpickled(packed_model, tmp_path):
    _, sha, files = packed_model
    marker = tmp_path / "unpickled.marker"
    evil = dict(files, **{"model.joblib": pickle.dumps(_Marker(str(marker)))})
    tampered = tmp_path / "model.tar.gz"
    make_tar(tampered, evil)
    workdir = tmp_path / "work"
    proc = start_server(tampered, sha, workdir, free_port())
    try:
        out, err = proc.communicate(timeout=60)
    finally:
        stop(proc)
    assert proc.returncode == 3
    assert err.startswith("ERROR: model artifact SHA-256 mismatch: expected " + sha), err
    assert "Retrain or redeploy from a verified job." in err
    assert not marker.exists()
    assert not (workdir / "models").exists()  # not even extracted


@pytest.mark.parametrize("kind", ["parent", "absolute", "symlink"])
def test_unsafe_tar_members_are_refused(packed_model, tmp_path, kind):
    _, _, files = packed_model
    tar_path = tmp_path / "model.tar.gz"
    with tarfile.open(tar_path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        if kind == "symlink":
            info = tarfile.TarInfo("link")
            info.type = tarfile.SYMTYPE
            info.linkname = "/etc/passwd"
            tar.addfile(info)
        else:
            info = tarfile.TarInfo("../escaped.txt" if kind == "parent" else str(tmp_path / "absolute.txt"))
            info.size = 2
            tar.addfile(info, io.BytesIO(b"hi"))
    sha = hashlib.sha256(tar_path.read_bytes()).hexdigest()
    workdir = tmp_path / "work"
    proc = start_server(tar_path, sha, workdir, free_port())
    try:
        _, err = proc.communicate(timeout=60)
    finally:
        stop(proc)
    assert proc.returncode == 6, err  # serving.EXIT_ARTIFACT_REFUSED: refused for good, not a crash to retry
    assert err.startswith("ERROR: ") and ("unsafe path" in err or "contains a link" in err), err
    assert not (workdir / "escaped.txt").exists() and not (tmp_path / "absolute.txt").exists()
    assert not list(workdir.rglob("model.joblib"))  # every member is checked before any is written


# ----------------------------------------------------------------------------- slow or stuck clients (issue 18.3)
# N+1 clients trickling their headers or body (N = the request threads), clients that send nothing, and
# "Connection: close" clients that never close: /ping keeps answering in under a second, requests are served.

SLOW_HEAD = b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"


def slow_probe(url: str) -> list[tuple[str, float, int]]:
    out = []
    started = time.monotonic()
    status = requests.get(url + "/ping", timeout=3).status_code
    out.append(("ping", time.monotonic() - started, status))
    started = time.monotonic()
    status = requests.post(url + "/invocations", data=SEED_BODY, headers={"Content-Type": "application/json"},
                           timeout=5).status_code
    out.append(("invoke", time.monotonic() - started, status))
    return out


def slow_connect(url: str, first: bytes, n: int) -> list[socket.socket]:
    port = int(url.rsplit(":", 1)[1])
    socks = []
    for _ in range(n):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        if first:
            sock.sendall(first)
        socks.append(sock)
    return socks


@pytest.mark.parametrize("where", ["headers", "body", "nothing"])
def test_slow_clients_do_not_starve_the_endpoint(server, where):
    url = server["url"]
    first = {"headers": SLOW_HEAD, "nothing": b"",
             "body": SLOW_HEAD + f"Content-Length: {len(SEED_BODY)}\r\n\r\n".encode()}
    trickle = {"headers": b"X-Pad: aaaaaaaaaaaaaaaaaaaaaaaaa", "body": SEED_BODY, "nothing": b""}[where]
    socks = slow_connect(url, first[where], PREDICT_THREADS + 1)
    results = []
    try:
        for i in range(6):  # 3 s of one byte per client every half second
            for sock in socks:
                if trickle:
                    try:
                        sock.sendall(trickle[i % len(trickle):i % len(trickle) + 1])
                    except OSError:
                        pass
            results += slow_probe(url)
            time.sleep(0.5)
    finally:
        for sock in socks:
            sock.close()
    assert all(status == 200 and seconds < 1.0 for _, seconds, status in results), results


def test_connection_close_clients_that_never_close(server):
    url = server["url"]
    request = SLOW_HEAD + f"Content-Length: {len(SEED_BODY)}\r\nConnection: close\r\n\r\n".encode() + SEED_BODY
    held = slow_connect(url, request, PREDICT_THREADS)
    try:
        for sock in held:
            sock.recv(65536)  # the answer is read, the socket is kept open
        results = [r for _ in range(4) for r in slow_probe(url)]
    finally:
        for sock in held:
            sock.close()
    assert all(status == 200 and seconds < 1.0 for _, seconds, status in results), results


def test_a_connection_that_never_sends_a_request_is_closed(server):
    url = server["url"]
    (sock,) = slow_connect(url, b"", 1)
    sock.settimeout(15)
    try:
        assert sock.recv(1) == b"", "the server closes an idle new connection after its keep-alive time"
    finally:
        sock.close()


def test_a_body_that_never_finishes_gets_408(server):
    url = server["url"]
    (sock,) = slow_connect(url, SLOW_HEAD + b"Content-Length: 1000\r\n\r\n{", 1)
    sock.settimeout(30)
    try:
        answer = sock.recv(65536)
    finally:
        sock.close()
    assert answer.startswith(b"HTTP/1.1 408") and b"did not arrive within" in answer

