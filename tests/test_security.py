"""Security: loopback-only servers, names and keys that cannot leave the state directory, the upload
limit, and model artifacts that are never unpickled unless their recorded SHA-256 matches."""

from __future__ import annotations

import io
import json
import pickle
import subprocess
import sys
import tarfile
import tomllib
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest

import churn_core
from churn_core.config import Settings
from churn_core.errors import ConflictError, NotFoundError, ValidationError
from churn_core.storage.objects import LocalObjectStore, _check_key
from tests.support.artifacts import Plant

ROOT = Path(__file__).resolve().parents[1]


def tree(root: Path) -> set[str]:
    """Every path under root but SQLite's -wal/-shm files, which come and go with connections (another
    test's platform closed by the garbage collector), not with names."""
    return {str(p.relative_to(root)) for p in root.rglob("*") if not p.name.endswith(("-wal", "-shm"))}


# --------------------------------------------------------------------------- loopback only


def test_endpoint_server_listens_on_127_0_0_1_only(trained):
    p = trained
    ep = p.deploy("model-a", "sec-loopback")
    try:
        assert ep.status == "InService" and ep.url.startswith("http://127.0.0.1:")
        server = psutil.Process(ep.server_pid)
        family = [server, *server.children(recursive=True)]
        listening = {(c.laddr.ip, c.laddr.port) for proc in family for c in proc.net_connections("inet")
                     if c.status == psutil.CONN_LISTEN}
        assert listening == {("127.0.0.1", ep.port)}
        supervisor = psutil.Process(ep.pid)
        assert not [c for c in supervisor.net_connections("inet") if c.status == psutil.CONN_LISTEN]
    finally:
        p.delete_endpoint("sec-loopback")


def test_dashboard_and_local_endpoints_default_to_loopback(monkeypatch):
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["address"] == "127.0.0.1"
    assert config["browser"]["serverAddress"] == "127.0.0.1"
    assert "--server.address 127.0.0.1" in (ROOT / "Makefile").read_text()
    monkeypatch.delenv("CHURN_BIND_HOST", raising=False)
    assert Settings.from_env().bind_host == "127.0.0.1"
    assert Settings().bind_host == "127.0.0.1"


# --------------------------------------------------------------------------- names cannot escape

BAD_NAMES = [
    "../x", "/etc/passwd", "a/../../b", "..", ".", "a/b", "a\\b", "~root", "%2e%2e", "naïve", "ｆｕｌｌ",
    "evil\u202etxt.exe", "a\x00b", "a" * 64, "", " ", "-leading", "trailing-", "a b", "C:evil", "x\ny",
]
NAME_PARAMS = [pytest.param(n, id=repr(n)[1:-1][:20] or "empty") for n in BAD_NAMES] + [
    pytest.param("abc\n", id="trailing-newline"),  # re.match with "$" once let this through
]


@contextmanager
def nothing_created(p):
    """Nothing may appear, inside the state directory or next to it, and /etc/passwd stays untouched."""
    root = p.settings.home.parent
    passwd = Path("/etc/passwd")
    mtime = passwd.stat().st_mtime_ns if passwd.exists() else None
    before = tree(root)
    yield
    assert tree(root) == before
    assert (passwd.stat().st_mtime_ns if passwd.exists() else None) == mtime


@pytest.mark.parametrize("name", NAME_PARAMS)
def test_bad_dataset_name_is_rejected(trained, sample_csv, name):
    try:
        with nothing_created(trained), pytest.raises(ValidationError, match="naming rule"):
            trained.upload_dataset(name, sample_csv)
    finally:
        if name in [d.name for d in trained.list_datasets()]:  # a bad name got through: undo it
            trained.delete_dataset(name)


@pytest.mark.parametrize("name", [n for n in NAME_PARAMS if n.values[0] != ""])  # "" asks for a default name
def test_bad_job_name_is_rejected(trained, name):
    try:
        with nothing_created(trained), pytest.raises(ValidationError, match="naming rule"):
            trained.start_training("sample", {"n_estimators": 1}, name=name)
    finally:
        if name in trained.job_names() and trained.describe_training(name).is_active:  # a bad name got through: undo it
            trained.stop_training(name)


@pytest.mark.parametrize("name", NAME_PARAMS)
def test_bad_endpoint_name_is_rejected(trained, name):
    with nothing_created(trained), pytest.raises(ValidationError, match="naming rule"):
        trained.deploy("no-such-model", name)  # the name is checked before anything is looked up


def test_names_cannot_reach_other_objects(trained, sample_csv):
    p = trained
    with pytest.raises(NotFoundError):
        p.get_dataset("../sample")
    with pytest.raises(NotFoundError):
        p.describe_training("../model-a")
    with pytest.raises(ConflictError):
        p.upload_dataset("sample", sample_csv)  # taken names stay taken


# --------------------------------------------------------------------------- storage keys

BAD_KEYS = ["../x", "a/../b", "a/../../churn.db", "..", ".", "/etc/passwd", "", "a//b", "a/./b", "a/", "datasets/.."]


@pytest.mark.parametrize("key", BAD_KEYS)
def test_storage_keys_that_could_escape_are_rejected(tmp_path, key):
    store = LocalObjectStore(tmp_path / "state", "bucket")
    with pytest.raises(ValidationError, match="not a safe relative path"):
        _check_key(key)
    with pytest.raises(ValidationError):
        store.put_bytes(key, b"x")
    with pytest.raises(ValidationError):
        store.get_bytes(key)
    if key != "a/":  # a prefix may end in "/": delete_prefix("a/") means folder "a"
        with pytest.raises(ValidationError):
            store.delete_prefix(key)
    assert tree(tmp_path) == set()


def test_safe_keys_stay_inside_the_bucket(tmp_path):
    store = LocalObjectStore(tmp_path / "state", "bucket")
    store.put_bytes("datasets/a/raw/a.csv", b"x")
    assert store.path("datasets/a/raw/a.csv").resolve().is_relative_to((tmp_path / "state" / "buckets").resolve())
    assert store.list("datasets/") == ["datasets/a/raw/a.csv"]


# --------------------------------------------------------------------------- upload limit


def _csv_of_size(sample: bytes, size: int) -> bytes:
    header, *rows = sample.splitlines(keepends=True)
    out, i = bytearray(header), 0
    while len(out) + len(rows[i % len(rows)]) <= size:
        out += rows[i % len(rows)]
        i += 1
    return bytes(out)


def test_upload_size_limit_is_enforced(home, monkeypatch, sample_csv):
    monkeypatch.setenv("CHURN_MAX_UPLOAD_MB", "1")
    p = churn_core.connect()
    limit = 1024 * 1024
    at_limit = _csv_of_size(sample_csv, limit)
    assert len(at_limit) <= limit and p.validate_dataset(at_limit).rows > 2000
    over = at_limit + b"0" * (limit + 1 - len(at_limit))
    for attempt in (p.validate_dataset, lambda data: p.upload_dataset("big", data)):
        with pytest.raises(ValidationError, match=r"too large.*upload limit of 1 MB.*CHURN_MAX_UPLOAD_MB"):
            attempt(over)
    assert p.list_datasets() == [] and not (home / "buckets").exists()
    monkeypatch.setenv("CHURN_MAX_UPLOAD_MB", "many")
    with pytest.raises(ValidationError, match="CHURN_MAX_UPLOAD_MB='many' is not a whole number"):
        churn_core.connect()


def test_dashboard_upload_limit_matches_the_service_default():
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["maxUploadSize"] == Settings().max_upload_mb == 200


def test_the_size_message_shows_by_how_much(home, monkeypatch):
    monkeypatch.setenv("CHURN_MAX_UPLOAD_MB", "1")
    with pytest.raises(ValidationError) as err:
        churn_core.connect().validate_dataset(b"a" * (1024 * 1024 + 1))
    message = str(err.value)
    size, limit = message.split("too large: ", 1)[1].split(", over the upload limit of ", 1)
    assert size != limit.split(".")[0], message


# --------------------------------------------------------------------------- tampered artifacts


def _tarball(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_the_planted_pickle_would_run_if_loaded(tmp_path):
    """Proves the payload below is live: joblib.load of it creates the marker file."""
    marker = tmp_path / "loaded-by-joblib"
    (tmp_path / "model.joblib").write_bytes(pickle.dumps(Plant(marker)))
    subprocess.run([sys.executable, "-c", "import joblib, sys; joblib.load(sys.argv[1])",
                    str(tmp_path / "model.joblib")], check=True, cwd=ROOT)
    assert marker.exists()


def test_a_tampered_artifact_is_never_unpickled(trained, artifact, tmp_path):
    p = trained
    marker = tmp_path / "pwned"
    schema = json.dumps(p.model_schema("model-a")).encode()
    artifact.write_bytes(_tarball({"model.joblib": pickle.dumps(Plant(marker)), "schema.json": schema}))
    fresh = churn_core.connect()  # nothing cached
    with pytest.raises(ValidationError, match="integrity check"):
        fresh.model_schema("model-a")
    ep = fresh.deploy("model-a", "sec-tampered")
    try:
        assert ep.status == "Failed"
        assert "SHA-256 mismatch" in ep.failure_reason
        assert not marker.exists(), "the tampered model was unpickled"
        assert not (Path(ep.workdir) / "models").exists(), "the tampered tarball was not even unpacked"
    finally:
        fresh.delete_endpoint("sec-tampered")
    assert not marker.exists()


@pytest.mark.parametrize("member", ["../escaped.txt", "/tmp/churn-absolute-escape.txt", "link"])
def test_an_artifact_that_escapes_its_folder_is_not_extracted(trained, artifact, member):
    """Even an artifact whose SHA-256 was recorded is unpacked safely: no '..', absolute paths or links."""
    p = trained
    outside = p.settings.home / "endpoints" / "escaped.txt"
    if member == "link":
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            info = tarfile.TarInfo("model.joblib")
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
            tar.addfile(info)
        data = buf.getvalue()
    else:
        data = _tarball({member: b"escaped", "schema.json": b"{}"})
    artifact.write_bytes(data)
    from churn_core.storage.artifacts import sha256_bytes

    p.catalog.update("models", "model-a", artifact_sha256=sha256_bytes(data))
    ep = p.deploy("model-a", "sec-escape")
    try:
        assert ep.status == "Failed", (ep.status, ep.failure_reason)
        assert "unsafe path" in ep.failure_reason or "link" in ep.failure_reason, ep.failure_reason
        assert not outside.exists() and not Path("/tmp/churn-absolute-escape.txt").exists()
    finally:
        p.delete_endpoint("sec-escape")
