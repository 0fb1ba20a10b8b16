"""Model artifacts: the bytes checked are the bytes used (no check-then-use race), members are unpacked
within stated size caps, and an unsafe or oversized artifact fails a deploy at once with its reason."""

from __future__ import annotations

import io
import json
import os
import pickle
import tarfile
import threading
import time
import zlib
from pathlib import Path

import pytest

import churn_core
from churn_core.backends.local.endpoint import server as serving
from churn_core.storage.artifacts import sha256_bytes
from churn_core.backends.local.endpoint.control import VariantSpec
from churn_core.paths import ENTRY
from churn_core.storage.unpack import ArtifactLimits, ArtifactRefused, extract, members_of, read_json_member
from tests.support.data import SEED_ROW
from tests.support.artifacts import Plant

MB = 1024 * 1024


def tarball(members: dict[str, bytes], level: int = 6) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=level) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def zeros_tarball(name: str, size: int, extra: dict[str, bytes] | None = None) -> bytes:
    """A .tar.gz with one member of ``size`` zero bytes, made as a stream (never ``size`` bytes in memory)."""
    raw = io.BytesIO()
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)

    def put(data: bytes) -> None:
        raw.write(packer.compress(data))

    for member, data in (extra or {}).items():
        info = tarfile.TarInfo(member)
        info.size = len(data)
        put(info.tobuf(format=tarfile.GNU_FORMAT) + data + b"\0" * (-len(data) % 512))
    info = tarfile.TarInfo(name)
    info.size = size
    put(info.tobuf(format=tarfile.GNU_FORMAT))
    block = b"\0" * MB
    for _ in range(size // MB):
        put(block)
    put(b"\0" * (size % MB) + b"\0" * (-size % 512) + b"\0" * 1024)
    raw.write(packer.flush())
    return raw.getvalue()


def deploy_refused(p, artifact: Path, data: bytes, name: str):
    artifact.write_bytes(data)
    p.catalog.update("models", "model-a", artifact_sha256=sha256_bytes(data))  # a hash that matches: only caps stop it
    ep = p.deploy("model-a", name)
    try:
        return ep, p.events("endpoint", name)
    finally:
        p.delete_endpoint(name)


# --------------------------------------------------------------------------- finding 1: check-then-use


def test_an_artifact_swapped_between_check_and_use_is_never_loaded(trained, tmp_path):
    """A thread swaps model.tar.gz between a good and a planted version while the model server prepares a
    variant (verify, unpack into models/<sha256>/, load); whatever it reads, what it loads is what it verified
    (old code: verify by path, extract the path again)."""
    good_model = trained.store.path(trained.get_model("model-a")["artifact_key"]).read_bytes()
    marker = tmp_path / "pwned"
    padding = os.urandom(6 * MB)  # makes hashing take a while: a wide window between check and use
    with tarfile.open(fileobj=io.BytesIO(good_model), mode="r:gz") as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
    good = tarball({**members, "padding.bin": padding}, level=1)
    bad = tarball({**members, "model.joblib": pickle.dumps(Plant(marker)), "padding.bin": padding}, level=1)
    artifact = tmp_path / "model.tar.gz"
    good_copy, bad_copy = tmp_path / "good.tar.gz", tmp_path / "bad.tar.gz"
    good_copy.write_bytes(good)
    bad_copy.write_bytes(bad)
    artifact.write_bytes(good)
    spec = VariantSpec("AllTraffic", str(artifact), sha256_bytes(good))
    entry = serving.load_entry(ENTRY)
    stop = threading.Event()

    def swap() -> None:
        while not stop.is_set():
            for source in (bad_copy, good_copy):
                staged = tmp_path / f".staged-{source.name}"
                os.link(source, staged)
                os.replace(staged, artifact)
                time.sleep(0.002)

    swapper = threading.Thread(target=swap, daemon=True)
    swapper.start()
    outcomes = {"served": 0, "refused": 0}
    try:
        for attempt in range(40):
            try:  # a fresh folder each time: an unpacked models/<sha256>/ is reused, never unpacked again
                serving.load_variant(entry, spec, tmp_path / f"work-{attempt}")
                outcomes["served"] += 1
            except serving.ServingError as err:
                assert err.code == serving.EXIT_SHA_MISMATCH, err
                outcomes["refused"] += 1
            assert not marker.exists(), f"the planted model was unpickled after {outcomes}"
    finally:
        stop.set()
        swapper.join(5)
    assert sum(outcomes.values()) == 40


def _planted_pair(trained, tmp_path: Path) -> tuple[bytes, bytes, Path]:
    """(good, planted) tarballs of model-a, padded so that hashing takes a while, and the planted pickle's marker."""
    good_model = trained.store.path(trained.get_model("model-a")["artifact_key"]).read_bytes()
    marker = tmp_path / "pwned"
    padding = os.urandom(6 * MB)
    with tarfile.open(fileobj=io.BytesIO(good_model), mode="r:gz") as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
    good = tarball({**members, "padding.bin": padding}, level=1)
    bad = tarball({**members, "model.joblib": pickle.dumps(Plant(marker)), "padding.bin": padding}, level=1)
    return good, bad, marker


class _Swapper:
    """Swaps ``artifact`` between the good and the planted bytes every few milliseconds, atomically."""

    def __init__(self, artifact: Path, good: bytes, bad: bytes, folder: Path) -> None:
        self.artifact, self.stop = artifact, threading.Event()
        self.copies = [folder / "bad.tar.gz", folder / "good.tar.gz"]
        self.copies[0].write_bytes(bad)
        self.copies[1].write_bytes(good)
        artifact.write_bytes(good)
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        while not self.stop.is_set():
            for source in self.copies:
                staged = source.with_name(f".staged-{source.name}")
                os.link(source, staged)
                os.replace(staged, self.artifact)
                time.sleep(0.002)

    def __enter__(self) -> "_Swapper":
        self.thread.start()
        return self

    def __exit__(self, *_) -> None:
        self.stop.set()
        self.thread.join(5)


def test_a_variant_swapped_in_by_an_update_is_loaded_from_the_bytes_it_verified(trained, tmp_path):
    """The two places an endpoint update loads a model, with the artifact swapped between a good and a planted
    version all along: the probe process an update runs first (``serving.probe``) and a worker following a new
    control-file generation (``LiveEndpoint.refresh`` → ``load_variant``). Each verifies the bytes it read once
    and unpacks those very bytes, so the planted pickle never runs; a read of the planted file is a mismatch."""
    from churn_core.backends.local.endpoint.control import Control, LiveEndpoint, write_control

    good, bad, marker = _planted_pair(trained, tmp_path)
    artifact = tmp_path / "model.tar.gz"
    spec = VariantSpec("subs-v2", str(artifact), sha256_bytes(good), weight=1.0, model="model-a")
    entry = serving.load_entry(ENTRY)
    outcomes = {"probe": [], "swap": []}
    with _Swapper(artifact, good, bad, tmp_path):
        for attempt in range(20):
            try:  # the probe: verify, unpack into models/<sha256>/ of a fresh folder, load, score one customer
                serving.probe(entry, spec, tmp_path / f"probe-{attempt}")
                outcomes["probe"].append("loaded")
            except serving.ServingError as err:
                assert err.code == serving.EXIT_SHA_MISMATCH, err
                outcomes["probe"].append("refused")
            assert not marker.exists(), f"the planted model was unpickled by the probe: {outcomes}"
            workdir = tmp_path / f"worker-{attempt}"
            workdir.mkdir()
            live = LiveEndpoint(workdir, lambda s, w=workdir: serving.load_variant(entry, s, w))
            write_control(workdir, Control(generation=2, variants=(spec,), endpoint="plant-ep"))
            live.refresh()  # what each worker's watcher does when the control file changes
            report = (workdir / "generations" / str(os.getpid())).read_text()
            if live.table is not None:
                assert report == "2" and live.table.variants["subs-v2"].model["pipeline"] is not None
                outcomes["swap"].append("loaded")
            else:
                assert report.startswith("error 2:") and "SHA-256 mismatch" in report, report
                outcomes["swap"].append("refused")
            assert not marker.exists(), f"the planted model was unpickled by a worker: {outcomes}"
    assert len(outcomes["probe"]) == len(outcomes["swap"]) == 20


def test_an_endpoint_update_never_loads_an_artifact_swapped_after_its_check(trained, tmp_path):
    """End to end: a live endpoint updated (Platform.update_endpoint: probe process, new control generation,
    workers swap) to a registered version whose model.tar.gz is being swapped with a planted one. Each update
    either serves the verified model or is refused with the mismatch and rolled back; the planted pickle never
    runs, and the endpoint keeps serving throughout."""
    p = trained
    good, bad, marker = _planted_pair(trained, tmp_path)
    key = "models/model-pad/model.tar.gz"
    artifact = p.store.path(key)
    artifact.parent.mkdir(parents=True, exist_ok=True)
    artifact.write_bytes(good)
    row = dict(p.get_model("model-a"), name="model-pad", artifact_key=key, artifact_sha256=sha256_bytes(good))
    with p.catalog.tx() as conn:
        conn.execute(f"INSERT INTO models ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", list(row.values()))
    for model in ("model-a", "model-pad"):
        p.approve("plant", p.register(model, group="plant").version, "test")
    ep = p.deploy_version("plant", 1, "plant-ep")
    assert ep.status == "InService", ep.failure_reason
    outcomes = []
    try:
        with _Swapper(artifact, good, bad, tmp_path):
            for _ in range(4):
                try:
                    updated = p.update_endpoint("plant-ep", "plant", 2)
                    assert [v["version"] for v in updated.variants] == ["plant v2"]
                    outcomes.append("updated")
                    p.update_endpoint("plant-ep", "plant", 1)  # back, for the next round
                except churn_core.BackendError as err:
                    assert "SHA-256 mismatch" in str(err) and "keeps serving plant v1" in str(err), err
                    outcomes.append("refused")
                assert not marker.exists(), f"the planted model was unpickled: {outcomes}"
                now = p.describe_endpoint("plant-ep")
                assert now.status == "InService" and now.pid == ep.pid and now.server_pid == ep.server_pid
                assert "Output" in p.invoke("plant-ep", {"Input": [SEED_ROW]}), "it keeps serving"
    finally:
        p.delete_endpoint("plant-ep")
    assert len(outcomes) == 4 and not marker.exists()


def test_schema_and_evaluation_reads_parse_the_bytes_they_verified(trained, artifact, monkeypatch):
    """model_schema hashes and parses one read of the artifact: a store that would answer differently on a
    second read cannot slip an unverified schema in."""
    p = churn_core.connect()
    reads: list[str] = []
    original = type(p.store).get_bytes

    def counting(store, key, max_bytes=None):
        reads.append(key)
        return original(store, key, max_bytes=max_bytes)

    monkeypatch.setattr(type(p.store), "get_bytes", counting)
    model = p.get_model("model-a")
    assert p.model_schema("model-a")["features"]
    assert reads == [model["artifact_key"]], "one read, hashed and parsed"
    reads.clear()
    assert p.evaluation("model-a")["at_threshold"]["metrics"]
    job = p.describe_training("model-a")
    assert reads.count(job.output_key) == 1, "the evaluation archive: one read, hashed and parsed"
    assert reads.count(model["artifact_key"]) <= 1, "the figures at the threshold score with one verified load"


# --------------------------------------------------------------------------- finding 9: size caps


def test_a_decompression_bomb_is_refused_before_anything_is_written(trained, artifact):
    members = {"schema.json": json.dumps(trained.model_schema("model-a")).encode()}
    bomb = zeros_tarball("model.joblib", 200 * MB, members)
    assert len(bomb) < 2 * MB
    ep, events = deploy_refused(trained, artifact, bomb, "cap-bomb")
    assert ep.status == "Failed", (ep.status, ep.failure_reason)
    assert "unpacks to more than" in ep.failure_reason and "CHURN_MAX_MODEL_MB" in ep.failure_reason
    assert "crashed" not in ep.failure_reason and ep.restarts == 0, "refused at once, not retried"
    assert not any((Path(ep.workdir) / "models").glob("*/*")), "nothing was written"


def test_an_oversized_json_member_is_refused_unread(trained, artifact):
    huge_schema = b"{" + b" " * (80 * MB) + b"}"  # over the 64 MiB JSON cap, packs to ~80 KB
    data = tarball({"schema.json": huge_schema, "metrics.json": b"{}"}, level=9)
    artifact.write_bytes(data)
    trained.catalog.update("models", "model-a", artifact_sha256=sha256_bytes(data))
    fresh = churn_core.connect()
    with pytest.raises(ArtifactRefused, match=r"'schema.json' in the model artifact is 80 MiB, over the cap of 64 MiB"):
        fresh.model_schema("model-a")


def test_the_caps_are_settings(monkeypatch):
    monkeypatch.setenv("CHURN_MAX_MODEL_MB", "10")
    monkeypatch.setenv("CHURN_MAX_UNPACK_RATIO", "2")
    monkeypatch.setenv("CHURN_MAX_JSON_MB", "1")
    monkeypatch.setenv("CHURN_MAX_MODEL_MEMBERS", "3")
    limits = ArtifactLimits.from_env()
    assert (limits.max_model_bytes, limits.max_ratio, limits.max_json_bytes, limits.max_members) == (
        10 * MB, 2, 1 * MB, 3)
    assert limits.unpacked_cap(1 * MB) == 10 * MB  # never below the 64 MiB floor, never above the model cap
    with pytest.raises(ArtifactRefused, match="more than 3 files"):
        members_of(tarball({f"f{i}": b"x" for i in range(4)}))
    with pytest.raises(ArtifactRefused, match="over the cap of 1 MiB for a JSON file"):
        read_json_member(tarball({"schema.json": b" " * (MB + 1)}), "schema.json")
    with pytest.raises(ArtifactRefused, match="over the cap of 10 MiB for one file"):
        members_of(zeros_tarball("model.joblib", 11 * MB))
    monkeypatch.setenv("CHURN_MAX_MODEL_MB", "lots")
    with pytest.raises(churn_core.ValidationError, match="CHURN_MAX_MODEL_MB='lots' is not a whole number"):
        ArtifactLimits.from_env()


def test_the_ratio_cap_refuses_what_no_model_packs_to(tmp_path):
    limits = ArtifactLimits(max_model_bytes=4096 * MB, max_ratio=50)
    ok = tarball({"model.joblib": os.urandom(MB), "schema.json": b"{}"})
    assert extract(ok, tmp_path / "ok", limits) == ["model.joblib", "schema.json"]
    bomb = zeros_tarball("model.joblib", 100 * MB)  # ~100 KB packed: 1000× its size
    with pytest.raises(ArtifactRefused, match="unpacks to more than 64 MiB"):
        extract(bomb, tmp_path / "bomb", limits)
    assert not (tmp_path / "bomb").exists()


# --------------------------------------------------------------------------- unsafe artifacts fail at once


@pytest.mark.parametrize("member", ["../escaped.txt", "/tmp/churn-absolute-escape.txt", "link"])
def test_an_unsafe_artifact_fails_at_once_with_the_true_reason(trained, artifact, member):
    if member == "link":
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            info = tarfile.TarInfo("model.joblib")
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
            tar.addfile(info)
        data = buf.getvalue()
    else:
        data = tarball({member: b"escaped", "schema.json": b"{}"})
    ep, events = deploy_refused(trained, artifact, data, "unsafe-once")
    assert ep.status == "Failed", (ep.status, ep.failure_reason)
    assert "unsafe path" in ep.failure_reason or "link" in ep.failure_reason, ep.failure_reason
    assert "crashed" not in ep.failure_reason and ep.restarts == 0, ep.failure_reason
    assert not any("restarting" in e["message"] for e in events), events


# ---- issue 26, item 9: a write that fails (full disk, quota, read-only, permissions) is a disk error, never a
# corrupt model; nothing half-written is kept and the message says what to do (free space / check permissions)

from churn_core.errors import DiskError  # noqa: E402
from churn_core.storage.objects import LocalObjectStore  # noqa: E402
from tests.support.disk_faults import ADVICE, WRITE_ERRORS, refuse_writes  # noqa: E402


@pytest.mark.parametrize("code", list(WRITE_ERRORS))
def test_a_failed_write_while_unpacking_is_a_disk_error_never_a_corrupt_model(tmp_path, monkeypatch, code):
    data = tarball({"model.joblib": b"x" * 5000, "schema.json": b"{}"})
    refused = refuse_writes(monkeypatch, tmp_path / "dest", WRITE_ERRORS[code])
    with pytest.raises(DiskError) as err:
        extract(data, tmp_path / "dest")
    message = str(err.value)
    assert refused and not isinstance(err.value, ArtifactRefused)
    assert "retrain" not in message.lower() and "not a readable" not in message
    assert ADVICE[code] in message.lower() and str(tmp_path) in message
    monkeypatch.undo()
    assert extract(data, tmp_path / "dest") == ["model.joblib", "schema.json"]  # the same bytes, once there is room


def test_the_model_server_reports_a_full_disk_as_one_and_its_supervisor_retries(tmp_path, monkeypatch):
    from churn_core.backends.local.endpoint import supervisor

    data = tarball({"model.joblib": b"x" * 5000})
    spec = VariantSpec("v1", str(tmp_path / "model.tar.gz"), sha256_bytes(data))
    refuse_writes(monkeypatch, tmp_path / "workdir" / "models")
    with pytest.raises(serving.ServingError) as err:
        serving.prepare_variant(spec, tmp_path / "workdir", data)
    assert err.value.code == serving.EXIT_DISK_FULL and err.value.code not in supervisor.REFUSED_EXIT_CODES
    assert "free some disk space" in str(err.value).lower() and "retrain" not in str(err.value).lower()


@pytest.mark.parametrize("code", ["ENOSPC", "EROFS"])
def test_the_local_store_reports_a_failed_write_as_a_disk_error_and_keeps_nothing_half_written(tmp_path, monkeypatch,
                                                                                               code):
    store = LocalObjectStore(tmp_path / "home", "bucket")
    store.put_bytes("a/old.csv", b"kept")
    (tmp_path / "source.csv").write_bytes(b"x,y\n1,2\n")
    refuse_writes(monkeypatch, tmp_path / "home", WRITE_ERRORS[code])
    for write in (lambda: store.put_bytes("a/b.csv", b"data"),
                  lambda: store.put_file("a/c.csv", tmp_path / "source.csv"),
                  lambda: store.put_file("new/c.csv", tmp_path / "source.csv"),
                  lambda: store.download("a/old.csv", tmp_path / "home" / "copy.csv")):
        with pytest.raises(DiskError, match="(?i)" + ADVICE[code]):
            write()
    monkeypatch.undo()
    assert store.list("a") == ["a/old.csv"] and store.get_bytes("a/old.csv") == b"kept"
    assert not list((tmp_path / "home").rglob(".part-*"))


def test_an_endpoint_control_file_that_cannot_be_written_is_a_disk_error_and_the_old_one_stays(tmp_path, monkeypatch):
    from churn_core.backends.local.endpoint.control import Control, read_control, write_control

    old = Control(1, (VariantSpec("v1", "/a/model.tar.gz", "a" * 64),))
    write_control(tmp_path, old)
    refuse_writes(monkeypatch, tmp_path, WRITE_ERRORS["ENOSPC"])
    with pytest.raises(DiskError, match="Free some disk space"):
        write_control(tmp_path, Control(2, (VariantSpec("v2", "/b/model.tar.gz", "b" * 64),)))
    monkeypatch.undo()
    assert read_control(tmp_path) == old and [p.name for p in tmp_path.iterdir()] == ["control.json"]
