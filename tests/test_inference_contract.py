"""The inference contract, small and exact (issue 12): one typing decision, pure request checks that the
SageMaker pre-check shares with the endpoint, ID columns echoed back, the layout of entry/, and the
settings and packaging details that used to break the suite or the dashboard."""

from __future__ import annotations

import ast
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import requests

import churn_core
from churn_core import ValidationError
from churn_core.paths import entry_module
from churn_core.endpoints.request_check import check_request
from churn_core.data.sample import make_subscription_sample
from tests.support.helpers import wait_for_job

ROOT = Path(__file__).resolve().parents[1]
ENTRY_DIR = ROOT / "entry"


def with_referral_column(data: bytes) -> bytes:
    """The subscription sample plus a text column whose most common value is the word "None"."""
    lines = data.decode().splitlines()
    choices = ["None", "None", "Friend", "Advert"]
    out = [lines[0] + ",Referral"] + [f"{line},{choices[i % 4]}" for i, line in enumerate(lines[1:])]
    return ("\n".join(out) + "\n").encode()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A categorical model with an ID column, trained and deployed on the local backend once."""
    mp = pytest.MonkeyPatch()
    mp.setenv("CHURN_HOME", str(tmp_path_factory.mktemp("contract") / "state"))
    mp.setenv("CHURN_BACKEND", "local")
    p = churn_core.connect()
    try:
        ds = p.upload_dataset("subs", with_referral_column(make_subscription_sample(900, seed=5)))
        p.start_training("subs", {"algorithm": "random_forest", "n_estimators": 25}, name="subs-rf")
        job = wait_for_job(p, "subs-rf")
        assert job.status == "Completed", job.failure_reason
        ep = p.deploy("subs-rf", "subs-ep")
        assert ep.status == "InService", ep.failure_reason
        yield p, ds, ep
    finally:
        p.cleanup()
        mp.undo()


# --------------------------------------------------------------------------- finding 1: one typing decision


def test_training_applies_the_typing_decided_at_upload(served):
    p, ds, _ = served
    upload = {f["name"]: f for f in ds.features}
    model = {f["name"]: f for f in p.model_schema("subs-rf")["features"]}
    assert list(model) == list(upload), "the model's features are the upload's, in its order"
    assert {n: f["kind"] for n, f in model.items()} == {n: f["kind"] for n, f in upload.items()}
    # The word "None" is a category at upload, and stays one in training (pandas would read it as NaN).
    assert "None" in upload["Referral"]["categories"] and upload["Referral"]["missing"] == 0
    assert "None" in model["Referral"]["categories"] and model["Referral"]["missing"] == 0
    # Blanks written as a space in a number column are missing in both.
    assert upload["TotalCharges"]["missing"] > 0 and model["TotalCharges"]["missing"] > 0
    assert set(model["Contract"]["categories"]) == set(upload["Contract"]["categories"])
    assert "customerID" not in model and p.model_schema("subs-rf")["id_columns"] == ["customerID"]


def test_the_dataset_schema_travels_in_the_train_channel(served):
    p, ds, _ = served
    stored = json.loads(p.store.get_bytes(ds.train_prefix + "dataset-schema.json"))
    assert stored["format"] == "churn-dataset-schema/1" and stored["target"] == "Churn"
    assert stored["id_columns"] == ["customerID"] and stored["features"] == ds.features
    train = p.read_dataset("subs", "train")  # the file's own text: the ID and the Yes/No target are kept
    assert "customerID" in train.columns and set(train["Churn"]) == {"Yes", "No"}
    typed = p.read_dataset("subs", "train", typed=True)
    assert set(typed["Churn"]) == {0, 1} and typed["tenure"].dtype == np.float64


# --------------------------------------------------------------------------- finding 2: one decision per request


def bodies(schema: dict, frame) -> list[tuple[str, bytes, str, str]]:
    """(what, body, content type, accept) requests the endpoint and the pre-check must judge alike."""
    features = [f["name"] for f in schema["features"]]
    rows = frame.head(3)
    record = {k: (None if v == "" else v) for k, v in rows.iloc[0][["customerID", *features]].items()}
    npy = io.BytesIO()
    np.save(npy, np.array(rows[features].to_numpy(dtype=str)), allow_pickle=False)
    return [
        ("csv with a header", rows[features].to_csv(index=False).encode(), "text/csv", "application/json"),
        ("csv with a header and the ID", rows[["customerID", *features]].to_csv(index=False).encode(), "text/csv",
         "text/csv"),
        ("headerless csv", rows[features].to_csv(index=False, header=False).encode(), "text/csv", "text/csv"),
        ("named record with its ID", json.dumps({"instances": [record]}).encode(), "application/json", "*/*"),
        ("numpy array", npy.getvalue(), "application/x-npy", "application/json"),
        ("an unknown column", json.dumps({"instances": [dict(record, Bogus=1)]}).encode(), "application/json", ""),
        ("a missing feature", json.dumps({"instances": [{"tenure": 3}]}).encode(), "application/json", ""),
        ("text in a number", json.dumps({"instances": [dict(record, tenure="long")]}).encode(), "application/json",
         ""),
        ("csv of the wrong width", b"1,2,3\n", "text/csv", ""),
        ("an unsupported Accept", json.dumps({"instances": [record]}).encode(), "application/json", "image/png"),
        ("an unsupported content type", b"a=1", "application/x-www-form-urlencoded", ""),
    ]


def test_the_pre_check_and_the_endpoint_decide_alike(served):
    p, _, ep = served
    schema = p.model_schema("subs-rf")
    frame = p.read_dataset("subs", "test")
    for what, body, content_type, accept in bodies(schema, frame):
        resp = requests.post(ep.url + "/invocations", data=body, headers={"Content-Type": content_type,
                                                                         "Accept": accept}, timeout=30)
        try:
            check_request(body, content_type, accept, schema)
            verdict = 200
        except ValidationError as exc:
            verdict = str(exc)
        if resp.status_code == 200:
            assert verdict == 200, f"{what}: the endpoint accepts it, the pre-check says {verdict}"
        else:
            message = resp.json()["error"]
            assert verdict == (f"The endpoint rejected the request (HTTP {resp.status_code}): {message} "
                               "(checked before sending; nothing was sent to SageMaker)"), what


def test_the_pre_check_uses_only_public_names_of_entry():
    source = (ROOT / "churn_core" / "endpoints" / "request_check.py").read_text()
    tree = ast.parse(source)
    used = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
    assert not {name for name in used if name.startswith("_")}, "no private helpers of entry/ across modules"
    assert "_CURRENT" not in (ENTRY_DIR / "train.py").read_text() + (ENTRY_DIR / "request_parser.py").read_text()


# --------------------------------------------------------------------------- finding 3: records carry their ID


def test_named_records_carry_their_id_and_get_it_back(served):
    p, _, ep = served
    frame = p.read_dataset("subs", "test")
    features = [f["name"] for f in p.model_schema("subs-rf")["features"]]
    records = [{k: (None if v == "" else v) for k, v in row.items()}
               for row in frame[["customerID", *features]].head(2).to_dict("records")]
    answer = p.invoke("subs-ep", {"instances": records})
    assert [pred["customerID"] for pred in answer["predictions"]] == [r["customerID"] for r in records]
    assert all(list(pred)[:2] == ["label", "churn_probability"] for pred in answer["predictions"])
    without = p.invoke("subs-ep", {"instances": [{k: v for k, v in records[0].items() if k != "customerID"}]})
    assert list(without["predictions"][0]) == ["label", "churn_probability", "variant"]  # it names its variant
    assert without["predictions"][0]["churn_probability"] == answer["predictions"][0]["churn_probability"]
    with pytest.raises(ValidationError, match=r"unknown feature 'Bogus'.*ID columns customerID are accepted"):
        p.invoke("subs-ep", {"instances": [dict(records[0], Bogus=1)]})


def test_the_seed_request_is_unchanged_byte_for_byte():
    """The reference schema's seed request keeps its exact answer shape (no ID columns, no new keys)."""
    entry = entry_module("train")
    schema = {"features": [{"name": f"f{i}", "kind": "numeric", "missing": 0} for i in range(10)]}
    parsed = entry.input_fn(b'{"Input": [[128,1,1,2.70,1,265.1,110,89.0,9.87,10.0]]}', "application/json")
    checked = entry.check_rows(parsed, entry.compile_schema(schema))
    body, ctype = entry.output_fn({"labels": [0], "probabilities": [0.125], "ids": checked.ids,
                                   "style": checked.style}, "application/json")
    assert (body, ctype) == ('{"Output": 0, "Probability": 0.125}', "application/json")


# --------------------------------------------------------------------------- layout of entry/


def test_entry_is_small_modules_that_run_alone_on_python_39():
    modules = sorted(ENTRY_DIR.glob("*.py"))
    assert {m.name for m in modules} >= {"train.py", "request_parser.py", "dataset_schema.py", "fast_forest.py",
                                         "model_pipeline.py", "model_evaluation.py"}
    for module in modules:
        source = module.read_text()
        tree = ast.parse(source, feature_version=(3, 9))
        assert not [n for n in ast.walk(tree) if type(n).__name__ == "Match"], module.name
        assert "from __future__ import annotations" in source, module.name
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not any(n.split(".")[0] in ("churn_core", "app", "pages", "entry") for n in names), module.name
    # under 400 lines for the contract (issue 12), plus the batch transform's three hooks (issue 14)
    assert len((ENTRY_DIR / "train.py").read_text().splitlines()) < 410, "train.py reads as the contract"


# --------------------------------------------------------------------------- finding 4: the AWS extra's `tests`


def test_the_suite_collects_beside_an_installed_package_named_tests(tmp_path):
    """A dependency of sagemaker-core installs a top-level package ``tests`` into site-packages; the
    project's own ``tests`` package must still be the one imported."""
    shadow = tmp_path / "site"
    (shadow / "tests").mkdir(parents=True)
    (shadow / "tests" / "__init__.py").write_text("# someone else's tests package\n")
    env = dict(os.environ, PYTHONPATH=str(shadow))
    proc = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                           "tests/e2e", "tests/test_pages_sagemaker.py", "tests/test_security.py"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "error" not in proc.stdout.lower().splitlines()[-1]


# --------------------------------------------------------------------------- finding 5: the platform cache


def test_the_dashboard_opens_a_new_platform_when_any_setting_changes(home, monkeypatch):
    from app import service

    monkeypatch.setenv("CHURN_BIND_HOST", "127.0.0.1")
    monkeypatch.setenv("CHURN_ENDPOINT_INSTANCE_TYPE", "ml.m5.large")
    first = service.platform()
    assert service.platform() is first, "cached while nothing changes"
    monkeypatch.setenv("CHURN_BIND_HOST", "127.0.0.2")
    second = service.platform()
    assert second.settings.bind_host == "127.0.0.2" and first.settings.bind_host == "127.0.0.1"
    monkeypatch.setenv("CHURN_ENDPOINT_INSTANCE_TYPE", "ml.c5.large")
    assert service.platform().settings.endpoint_instance_type == "ml.c5.large"
