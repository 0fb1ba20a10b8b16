"""entry/train.py: SageMaker script-mode training as a real child process, and its four handlers."""

from __future__ import annotations

import ast
import importlib.util
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.support.data import REFERENCE_CSV, SEED_ROW
from tests.support.frames import synthetic_frame

ROOT = Path(__file__).resolve().parents[1]
TRAIN_PY = ROOT / "entry" / "train.py"
FEATURES = [
    "AccountWeeks", "ContractRenewal", "DataPlan", "DataUsage", "CustServCalls",
    "DayMins", "DayCalls", "MonthlyCharge", "OverageFee", "RoamMins",
]
METRICS = [
    "accuracy",
    "precision",
    "recall",
    "f1",
    "roc_auc",
    "pr_auc",
    "log_loss",
    "train_churn_rate",
    "test_churn_rate",
]
SEED_BODY = b'{"Input": [[128,1,1,2.70,1,265.1,110,89.0,9.87,10.0]]}'


# ----------------------------------------------------------------------------- helpers


def categorical_frame(n: int = 300, seed: int = 1) -> pd.DataFrame:
    """A Telco-style file: text categories with blanks, a numeric column stored as text, yes/no target."""
    rng = np.random.default_rng(seed)
    contract = rng.choice(["Month-to-month", "One year", "Two year"], n, p=[0.55, 0.25, 0.2])
    tenure = rng.integers(1, 72, n).astype(float)
    charges = np.round(rng.normal(65, 30, n).clip(18, 120), 2)
    logit = -1.0 + 1.8 * (contract == "Month-to-month") - 0.03 * tenure + 0.01 * (charges - 65)
    churn = np.where(rng.random(n) < 1 / (1 + np.exp(-logit)), "Yes", "No")
    payment = rng.choice(["Electronic check", "Mailed check", "Credit card"], n).astype(object)
    payment[rng.random(n) < 0.1] = ""  # blanks
    tenure[rng.random(n) < 0.05] = np.nan
    total = np.array([f"{t:.2f}" for t in charges * 12], dtype=object)
    total[:3] = " "  # Telco's TotalCharges: numbers as text, blanks as a space
    return pd.DataFrame(
        {
            "customerType": rng.choice(["Residential", "Business"], n),
            "tenure": tenure,
            "Contract": contract,
            "PaymentMethod": payment,
            "MonthlyCharges": charges,
            "TotalCharges": total,
            "Senior": rng.random(n) < 0.2,
            "Churn": churn,
        }
    )


def write_channels(base: Path, train: pd.DataFrame, test: pd.DataFrame | None) -> dict:
    dirs = {k: base / k for k in ("train", "test", "model", "output")}
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    train.to_csv(dirs["train"] / "train.csv", index=False)
    if test is not None:
        test.to_csv(dirs["test"] / "test.csv", index=False)
    return dirs


def _env(dirs: dict, failure_file: Path | None = None) -> dict:
    env = dict(os.environ)
    env.update(
        SM_MODEL_DIR=str(dirs["model"]),
        SM_OUTPUT_DATA_DIR=str(dirs["output"]),
        SM_CHANNEL_TRAIN=str(dirs["train"]),
        SM_CHANNEL_TEST=str(dirs["test"]),
        PYTHONDONTWRITEBYTECODE="1",
    )
    env.pop("SM_OUTPUT_FAILURE", None)
    if failure_file is not None:
        env["SM_OUTPUT_FAILURE"] = str(failure_file)
    return env


class Job:
    """train.py running as a child process (started at once, awaited by the test that needs it)."""

    def __init__(self, dirs: dict, args: list, failure_file: Path | None = None) -> None:
        self.dirs = dirs
        self.failure_file = failure_file
        base = dirs["model"].parent
        self._out, self._err = open(base / "stdout.txt", "w+"), open(base / "stderr.txt", "w+")
        self.proc = subprocess.Popen(
            [sys.executable, str(TRAIN_PY), *args],
            env=_env(dirs, failure_file),
            cwd=str(base),
            stdout=self._out,
            stderr=self._err,
            text=True,
        )

    def wait(self) -> subprocess.CompletedProcess:
        rc = self.proc.wait(timeout=180)
        self._out.seek(0)
        self._err.seek(0)
        return subprocess.CompletedProcess(self.proc.args, rc, self._out.read(), self._err.read())

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._out.close()
        self._err.close()


def load_entry(name: str = "churn_entry_under_test"):
    spec = importlib.util.spec_from_file_location(name, str(TRAIN_PY))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def invoke(entry, model, body, content_type="application/json", accept="application/json"):
    parsed = entry.input_fn(body, content_type)
    return entry.output_fn(entry.predict_fn(parsed, model), accept)


def checked_frame(entry, parsed, model):
    """The rows of a parsed request as the pipeline sees them (checked against the model schema)."""
    return entry.check_rows(parsed, model["compiled"]).frame


def printed_metrics(stdout: str) -> dict:
    out = {}
    for line in stdout.splitlines():
        m = re.fullmatch(r"([a-z_0-9]+)=([0-9.]+)", line.strip())
        if m:
            out[m.group(1)] = float(m.group(2))
    return out


@pytest.fixture(scope="module")
def entry():
    return load_entry()


INVALID = [
    (["--n_estimators", "0"], "ERROR: n_estimators must be a whole number >= 1 (got 0)."),
    (["--estimator", "-3"], "ERROR: n_estimators must be a whole number >= 1 (got -3)."),
    (
        ["--algorithm", "xgboost"],
        "ERROR: algorithm must be one of random_forest, gradient_boosting, logistic_regression (got xgboost).",
    ),
    (["--learning_rate", "0"], "ERROR: learning_rate must be a number > 0 (got 0)."),
    (["--max_depth", "deep"], "ERROR: max_depth must be a whole number >= 1 (got deep)."),
    (["--class_weight", "heavy"], "ERROR: class_weight must be none or balanced (got heavy)."),
    (["--target", "Gone"], "ERROR: the target column Gone is not in the train data"),
]
ALGORITHMS = {
    "gradient_boosting": ["--algorithm", "gradient_boosting", "--estimator", "7", "--max_depth", "2"],
    "logistic_regression": ["--algorithm", "logistic_regression", "--C", "0.5", "--max_iter", "200"],
}


@pytest.fixture(scope="module")
def jobs(tmp_path_factory):
    """Every training run of this module, started together (they are mostly import time and I/O)."""
    started: dict = {}
    frames: dict = {}

    def start(key, train, test, args, failure=False):
        base = tmp_path_factory.mktemp(key.replace(":", "_"))
        dirs = write_channels(base, train, test)
        started[key] = Job(dirs, args, base / "failure" if failure else None)

    frame = synthetic_frame(500)
    frames["synthetic"] = frame
    start("synthetic", frame.iloc[:350], frame.iloc[350:], ["--n_estimators", "20", "--sagemaker_extra", "ignored"])
    if REFERENCE_CSV.exists():
        from sklearn.model_selection import train_test_split

        data = pd.read_csv(REFERENCE_CSV)
        train, test = train_test_split(data, test_size=0.3, stratify=data["Churn"], random_state=7)
        frames["reference"] = (train, test)
        start("reference", train, test, [])  # all defaults: random_forest, 100 trees, random_state 42
    cat = categorical_frame(300)
    frames["categorical"] = cat
    start("categorical", cat.iloc[:220], cat.iloc[220:], ["--n_estimators", "15", "--class_weight", "balanced"])
    frames["small"] = synthetic_frame(300, seed=3)
    for i, (args, _) in enumerate(INVALID):
        start(f"invalid:{i}", synthetic_frame(60), synthetic_frame(30, seed=2), args, failure=True)
    bad = synthetic_frame(60)
    bad["Churn"] = bad["Churn"].astype(object)
    bad.loc[3, "Churn"] = "maybe"
    start("bad_target", bad, synthetic_frame(30, seed=2), ["--n_estimators", "5"])
    started["frames"] = frames
    yield started
    for job in started.values():
        if isinstance(job, Job):
            job.kill()


@pytest.fixture(scope="module")
def synthetic_run(jobs):
    job = jobs["synthetic"]
    proc = job.wait()
    assert proc.returncode == 0, proc.stderr
    return job.dirs, proc, jobs["frames"]["synthetic"]


@pytest.fixture(scope="module")
def synthetic_model(entry, synthetic_run):
    dirs, _, _ = synthetic_run
    return entry.model_fn(str(dirs["model"]))


# ----------------------------------------------------------------------------- the script itself


def test_parses_as_python_39_and_imports_nothing_from_the_project():
    src = TRAIN_PY.read_text()
    tree = ast.parse(src, feature_version=(3, 9))
    assert not [n for n in ast.walk(tree) if type(n).__name__ == "Match"], "no match statements (Python 3.9)"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "no relative imports"
            names = [node.module or ""]
        else:
            continue
        assert not any(n.split(".")[0] in ("churn_core", "app", "pages", "entry") for n in names), names
    assert "from __future__ import annotations" in src


def test_synthetic_training_writes_model_metrics_and_evaluation(synthetic_run):
    dirs, proc, frame = synthetic_run
    out = proc.stdout
    for marker in ("Loading data...", "Training random_forest...", "Evaluating..."):
        assert marker in out
    assert "Ignoring unknown arguments: --sagemaker_extra ignored" in out
    printed = printed_metrics(out)
    for name in ("accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc", "log_loss"):
        assert name in printed
        assert re.search(rf"^{name}=([0-9.]+)$", out, re.M), "SageMaker MetricDefinitions regex must match"

    for name in ("model.joblib", "schema.json", "metrics.json", "evaluation.json"):
        assert (dirs["model"] / name).is_file(), name
    for name in ("metrics.json", "evaluation.json"):
        assert (dirs["output"] / name).is_file(), name

    metrics = json.loads((dirs["model"] / "metrics.json").read_text())
    assert set(METRICS) <= set(metrics)
    assert metrics["roc_auc"] > 0.7
    assert abs(metrics["roc_auc"] - printed["roc_auc"]) < 1e-6
    assert metrics["train_churn_rate"] == pytest.approx(frame.Churn.iloc[:350].mean())

    schema = json.loads((dirs["model"] / "schema.json").read_text())
    assert schema["target"] == "Churn" and schema["positive_label"] == 1
    assert [f["name"] for f in schema["features"]] == FEATURES
    for f in schema["features"]:
        assert f["kind"] == "numeric" and f["missing"] == 0 and f["categories"] == []
        assert f["min"] <= f["median"] <= f["max"] and f["min"] <= f["mean"] <= f["max"]

    text = (dirs["output"] / "evaluation.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    ev = json.loads(text)
    assert ev["metrics"] == metrics
    assert ev["n_train"] == 350 and ev["n_test"] == 150 and ev["threshold"] == 0.5
    roc = ev["roc"]
    assert 2 <= len(roc["fpr"]) == len(roc["tpr"]) == len(roc["thresholds"]) <= 200
    assert all(math.isfinite(x) for x in roc["thresholds"])
    assert roc["fpr"][0] == 0.0 and roc["fpr"][-1] == 1.0 and roc["tpr"][-1] == 1.0
    assert 2 <= len(ev["pr"]["precision"]) == len(ev["pr"]["recall"]) <= 200
    (tn, fp), (fn, tp) = ev["confusion_matrix"]
    assert tn + fp + fn + tp == 150 and fn + tp == int(frame.Churn.iloc[350:].sum())
    importance = ev["feature_importance"]
    assert sorted(i["feature"] for i in importance) == sorted(FEATURES)
    values = [i["importance"] for i in importance]
    assert values == sorted(values, reverse=True) and sum(values) == pytest.approx(1.0, abs=1e-4)
    assert importance[0]["feature"] in ("CustServCalls", "DayMins")


def test_reference_data_defaults_reproduce_the_seed_model(reference_csv, jobs, entry):
    from sklearn.ensemble import RandomForestClassifier

    train, test = jobs["frames"]["reference"]
    job = jobs["reference"]
    proc = job.wait()
    dirs = job.dirs
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((dirs["model"] / "metrics.json").read_text())
    assert metrics["roc_auc"] > 0.8 and printed_metrics(proc.stdout)["roc_auc"] > 0.8
    assert metrics["accuracy"] > 0.85

    model = entry.model_fn(str(dirs["model"]))
    body, ctype = invoke(entry, model, SEED_BODY)
    out = json.loads(body)
    assert ctype == "application/json" and type(out["Output"]) is int and out["Output"] in (0, 1)
    assert 0.0 <= out["Probability"] <= 1.0

    # the seed's model: RandomForestClassifier(n_estimators=100, random_state=42) on the same rows
    seed = RandomForestClassifier(n_estimators=100, random_state=42).fit(train[FEATURES], train["Churn"])
    expected = seed.predict_proba(test[FEATURES])[:, 1]
    records = test[FEATURES].to_dict("records")
    got = entry.predict_fn(entry.input_fn(json.dumps({"instances": records}), "application/json"), model)
    assert np.allclose(got["probabilities"], expected, atol=1e-12)
    assert got["labels"] == [int(x) for x in seed.predict(test[FEATURES])]


# ----------------------------------------------------------------------------- handlers


def test_seed_payload_returns_int_output(entry, synthetic_model):
    body, ctype = invoke(entry, synthetic_model, SEED_BODY)
    out = json.loads(body)
    assert ctype == "application/json"
    assert type(out["Output"]) is int and isinstance(out["Probability"], float)
    flat, _ = invoke(entry, synthetic_model, json.dumps({"Input": SEED_ROW}))
    assert json.loads(flat) == out
    for content_type in ("application/json; charset=utf-8", "Application/JSON", None):
        assert json.loads(invoke(entry, synthetic_model, SEED_BODY, content_type)[0]) == out
    for accept in ("*/*", "", None, "application/json, text/csv"):
        assert json.loads(invoke(entry, synthetic_model, SEED_BODY.decode(), accept=accept)[0]) == out


def test_multi_row_named_and_csv_requests_agree(entry, synthetic_model, synthetic_run):
    _, _, frame = synthetic_run
    rows = frame[FEATURES].iloc[:5]
    seed_style = json.loads(invoke(entry, synthetic_model, json.dumps({"Input": rows.values.tolist()}))[0])
    assert all(type(x) is int for x in seed_style["Output"]) and len(seed_style["Probability"]) == 5

    named = json.loads(invoke(entry, synthetic_model, json.dumps({"instances": rows.to_dict("records")}))[0])
    preds = named["predictions"]
    assert [p["label"] for p in preds] == seed_style["Output"]
    assert [p["churn_probability"] for p in preds] == seed_style["Probability"]

    csv_body = rows.to_csv(index=False, header=False)
    csv_out, ctype = invoke(entry, synthetic_model, csv_body.encode(), "text/csv", "text/csv")
    assert ctype == "text/csv"
    lines = csv_out.strip().splitlines()
    assert [int(line.split(",")[0]) for line in lines] == seed_style["Output"]
    assert [float(line.split(",")[1]) for line in lines] == seed_style["Probability"]
    with_header = rows.to_csv(index=False)  # a header equal to the feature names is tolerated
    assert invoke(entry, synthetic_model, with_header, "text/csv", "text/csv")[0] == csv_out
    json_from_csv = json.loads(invoke(entry, synthetic_model, csv_body, "text/csv")[0])
    assert [p["label"] for p in json_from_csv["predictions"]] == seed_style["Output"]


def test_fast_path_matches_the_pipeline(entry, synthetic_model, synthetic_run):
    _, _, frame = synthetic_run
    assert synthetic_model["fast"] is not None
    parsed = entry.input_fn(json.dumps({"Input": frame[FEATURES].values.tolist()}), "application/json")
    fast = entry.predict_fn(parsed, synthetic_model)
    expected = synthetic_model["pipeline"].predict_proba(checked_frame(entry, parsed, synthetic_model))[:, 1]
    assert np.allclose(fast["probabilities"], expected, atol=1e-12)
    assert fast["labels"] == [
        int(x) for x in synthetic_model["pipeline"].predict(checked_frame(entry, parsed, synthetic_model))
    ]
    # Small requests walk the whole forest at once (another code path): row by row, and in pairs.
    rows = frame[FEATURES].values.tolist()[:60]
    for chunk in [rows[i : i + 1] for i in range(40)] + [rows[i : i + 2] for i in range(40, 60, 2)]:
        small = entry.input_fn(json.dumps({"Input": chunk}), "application/json")
        got = entry.predict_fn(small, synthetic_model)["probabilities"]
        assert np.allclose(
            got,
            synthetic_model["pipeline"].predict_proba(checked_frame(entry, small, synthetic_model))[:, 1],
            rtol=0,
            atol=1e-12,
        )


@pytest.mark.parametrize(
    "body, content_type, status, fragment",
    [
        (b"{bad json", "application/json", 400, "malformed JSON"),
        (b"", "application/json", 400, "empty"),
        (b'{"Input": 5}', "application/json", 400, "'Input' must be a list"),
        (b'{"Input": [[[1]]]}', "application/json", 400, "nesting"),
        (b'{"Input": []}', "application/json", 400, "empty"),
        (
            b'{"Input": [[128,1,1,2.7,1,265.1,110,89.0,9.87]]}',
            "application/json",
            400,
            "expected 10 values per row in this order: AccountWeeks, ContractRenewal",
        ),
        (
            b'{"Input": [[128,1,1,2.7,1,"abc",110,89.0,9.87,10.0]]}',
            "application/json",
            400,
            "row 1, feature DayMins: 'abc' is not a number",
        ),
        (b'{"Input": [[128,1,1,2.7,1,NaN,110,89.0,9.87,10.0]]}', "application/json", 400, "NaN is not a finite number"),
        (b'{"Input": [[128,1,1,2.7,1,Infinity,110,89.0,9.87,10.0]]}', "application/json", 400, "Infinity"),
        (b'{"Input": [[128,1,1,2.7,1,null,110,89.0,9.87,10.0]]}', "application/json", 400, "missing (null)"),
        (b'{"Input": [[128,true,1,2.7,1,265.1,110,89.0,9.87,10.0]]}', "application/json", 400, "boolean"),
        (b'{"instances": [{"AccountWeeks": 1, "Bogus": 2}]}', "application/json", 400, "unknown feature 'Bogus'"),
        (b'{"instances": [{"AccountWeeks": 1}]}', "application/json", 400, "missing features ContractRenewal"),
        (b'{"rows": []}', "application/json", 400, '"Input"'),
        (b"\xff\xfe\x00", "application/json", 400, "not valid UTF-8"),
        (b"1,2,3", "text/csv", 400, "expected 10 values per row"),
        (b"a=1", "application/x-www-form-urlencoded", 415, "unsupported content type"),
        (b"[" * 100_000 + b"]" * 100_000, "application/json", 400, "nested too deeply"),
        (
            b'{"Input": [[1' + b"0" * 400 + b",1,1,2.7,1,265.1,110,89.0,9.87,10.0]]}",
            "application/json",
            400,
            "feature AccountWeeks: the integer 100000000000\u2026 (401 digits) is too large",
        ),
        (SEED_BODY, "application/json; charset=base64", 415, "unsupported charset 'base64'"),
        (SEED_BODY, "application/json; charset=klingon", 415, "unsupported charset 'klingon'"),
        (b"\\\x00", "application/json; charset=unicode_escape", 415, "unsupported charset 'unicode_escape'"),
        (SEED_BODY, "text/csv; charset=raw_unicode_escape", 415, "unsupported charset 'raw_unicode_escape'"),
        (SEED_BODY, "application/json; charset=punycode", 400, "not valid punycode text"),
        (SEED_BODY.decode().encode("utf-16"), "application/json; charset=utf-16", None, None),
    ],
)
def test_invalid_input_is_rejected_with_a_precise_message(entry, synthetic_model, body, content_type, status, fragment):
    if status is None:  # a control: the same request in another declared charset is fine
        assert type(json.loads(invoke(entry, synthetic_model, body, content_type)[0])["Output"]) is int
        return
    with pytest.raises(entry.InvalidInput) as info:
        invoke(entry, synthetic_model, body, content_type)
    assert isinstance(info.value, ValueError)
    assert info.value.status_code == status
    assert fragment in str(info.value)


def test_error_messages_never_echo_huge_values(entry, synthetic_model):
    row = list(SEED_ROW)
    row[5] = "x" * 1_000_000
    with pytest.raises(entry.InvalidInput) as info:
        invoke(entry, synthetic_model, json.dumps({"Input": [row]}))
    assert "feature DayMins: 'xxx" in str(info.value) and "(1000000 characters) is not a number" in str(info.value)
    assert len(str(info.value)) < 200
    record = dict(zip(FEATURES, SEED_ROW, strict=True), **{"k%d" % i * 50: 1 for i in range(100)})
    with pytest.raises(entry.InvalidInput, match="and 95 more") as info:
        invoke(entry, synthetic_model, json.dumps({"instances": [record]}))
    assert len(str(info.value)) < 1000


def test_row_cap_and_unsupported_accept(entry, synthetic_model):
    too_many = json.dumps({"Input": [SEED_ROW] * (entry.MAX_ROWS_PER_REQUEST + 1)})
    with pytest.raises(entry.InvalidInput, match="too many rows") as info:
        invoke(entry, synthetic_model, too_many)
    assert info.value.status_code == 413
    with pytest.raises(entry.InvalidInput, match="unsupported Accept") as info:
        invoke(entry, synthetic_model, SEED_BODY, accept="application/xml")
    assert info.value.status_code == 406


# ----------------------------------------------------------------------------- other data and algorithms


def test_categorical_dataset_with_blanks_and_yes_no_target(jobs, entry):
    frame = jobs["frames"]["categorical"]
    job = jobs["categorical"]
    proc, dirs = job.wait(), job.dirs
    assert proc.returncode == 0, proc.stderr
    schema = json.loads((dirs["model"] / "schema.json").read_text())
    kinds = {f["name"]: f["kind"] for f in schema["features"]}
    assert kinds == {
        "customerType": "categorical",
        "tenure": "numeric",
        "Contract": "categorical",
        "PaymentMethod": "categorical",
        "MonthlyCharges": "numeric",
        "TotalCharges": "numeric",
        "Senior": "categorical",
    }
    assert schema["positive_label"] == "Yes"
    spec = {f["name"]: f for f in schema["features"]}
    assert spec["Contract"]["categories"] == ["Month-to-month", "One year", "Two year"]
    assert spec["Senior"]["categories"] == ["False", "True"]
    assert spec["PaymentMethod"]["missing"] > 0 and spec["TotalCharges"]["missing"] == 3
    ev = json.loads((dirs["output"] / "evaluation.json").read_text())
    assert {i["feature"] for i in ev["feature_importance"]} == set(kinds)

    model = entry.model_fn(str(dirs["model"]))
    assert model["fast"] is not None
    record = {
        "customerType": "Business",
        "tenure": None,
        "Contract": "Month-to-month",
        "PaymentMethod": "Bitcoin",
        "MonthlyCharges": 99.5,
        "TotalCharges": "1200.5",
        "Senior": True,
    }
    out = json.loads(invoke(entry, model, json.dumps({"instances": [record, dict(record, Contract="Two year")]}))[0])
    assert len(out["predictions"]) == 2 and all(type(p["label"]) is int for p in out["predictions"])
    csv_row = "Residential,12,One year,,70.0,840,False\n"  # blank PaymentMethod had blanks in training: imputed
    assert invoke(entry, model, csv_row, "text/csv", "text/csv")[0].count(",") == 1
    with pytest.raises(entry.InvalidInput, match="feature MonthlyCharges: value is missing"):
        invoke(entry, model, json.dumps({"instances": [dict(record, MonthlyCharges=None)]}))

    parsed = entry.input_fn(frame.drop(columns="Churn").to_csv(index=False, header=False), "text/csv")
    fast = entry.predict_fn(parsed, model)["probabilities"]
    assert np.allclose(fast, model["pipeline"].predict_proba(checked_frame(entry, parsed, model))[:, 1], atol=1e-12)


@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
def test_other_algorithms_and_the_estimator_alias(jobs, entry, algorithm, tmp_path, capsys):
    # in-process main() with explicit --train/--test/--model-dir/--output-data-dir options (the
    # child-process path and the SM_* environment are covered by the other runs of this module)
    frame = jobs["frames"]["small"]
    dirs = write_channels(tmp_path, frame.iloc[:200], frame.iloc[200:])
    entry.main(
        [
            *ALGORITHMS[algorithm],
            "--train",
            str(dirs["train"]),
            "--test",
            str(dirs["test"]),
            "--model-dir",
            str(dirs["model"]),
            "--output-data-dir",
            str(dirs["output"]),
        ]
    )
    proc = subprocess.CompletedProcess([], 0, capsys.readouterr().out, "")
    assert f"Training {algorithm}..." in proc.stdout
    ev = json.loads((dirs["model"] / "evaluation.json").read_text())
    assert ev["algorithm"] == algorithm and len(ev["feature_importance"]) == 10
    model = entry.model_fn(str(dirs["model"]))
    final = model["pipeline"].steps[-1][1]
    if algorithm == "gradient_boosting":
        assert ev["hyperparameters"]["n_estimators"] == 7 and final.n_estimators == 7 and final.max_depth == 2
    else:
        assert final.C == 0.5
    out = json.loads(invoke(entry, model, SEED_BODY)[0])
    assert type(out["Output"]) is int
    parsed = entry.input_fn(json.dumps({"Input": frame[FEATURES].values.tolist()}), "application/json")
    fast = entry.predict_fn(parsed, model)["probabilities"]
    assert np.allclose(fast, model["pipeline"].predict_proba(checked_frame(entry, parsed, model))[:, 1], atol=1e-9)


@pytest.mark.parametrize("index", range(len(INVALID)), ids=[" ".join(a) for a, _ in INVALID])
def test_invalid_hyperparameters_fail_with_one_readable_line(jobs, index):
    _, fragment = INVALID[index]
    job = jobs[f"invalid:{index}"]
    proc, dirs, failure = job.wait(), job.dirs, job.failure_file
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(fragment), proc.stderr
    assert "Traceback" not in proc.stderr
    assert failure.read_text().strip() == last[len("ERROR: ") :]
    assert not (dirs["model"] / "model.joblib").exists()


def test_bad_target_values_are_reported(jobs):
    proc = jobs["bad_target"].wait()
    assert proc.returncode == 1
    assert (
        "ERROR: the target column Churn must hold 0/1, yes/no or true/false; the train data also has 'maybe'."
        in proc.stderr
    )
