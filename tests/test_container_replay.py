"""Replay the SageMaker backend's real requests through the SKLearn 1.2-1 container's own training step.

For each case the backend starts a training job under moto (``churn_core.connect()`` with
CHURN_BACKEND=sagemaker, as tests/test_sagemaker_backend.py does); the ``CreateTrainingJob``
parameters are taken as the backend built them and the bucket as it left it. The harness
(container_replay.py) then runs the container's training step on them in Python 3.9 with the
container's pinned packages and ``sagemaker-training`` 4.8.0, and serves the model it wrote through
the container's handler chain with a JSON body, a headerless CSV line and a NumPy body.

Each case prints the command line the toolkit ran (visible with ``-s``). Nothing here is marked
xfail: a failure is what the container would do with today's request or code.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import re

import numpy as np
import pandas as pd
import pytest

# The first test also builds the cached Python 3.9 venv (about 30-40 s here, more on a cold network).
pytestmark = [pytest.mark.slow, pytest.mark.aws, pytest.mark.timeout(900)]

pytest.importorskip("boto3")
pytest.importorskip("moto")
from moto import mock_aws  # noqa: E402

from churn_core.training import hyperparameters as hp  # noqa: E402
from tests.support import container_replay as replay  # noqa: E402
from tests.support.aws import BUCKET, aws_client, aws_env  # noqa: E402

ALGORITHMS = ("random_forest", "gradient_boosting", "logistic_regression")
BODY_KINDS = ("json", "csv", "npy")


# ---------------------------------------------------------------------------------------------
# Data


def telecom_csv(target: str = "Churn") -> bytes:
    """The synthetic telecom sample; ``target`` renames its label column (first in the header)."""
    from churn_core.data.sample import make_sample

    data = make_sample(rows=800).decode()
    header, rest = data.split("\n", 1)
    assert header.split(",")[0] == "Churn"
    return (",".join([target, *header.split(",")[1:]]) + "\n" + rest).encode()


def categorical_csv(rows: int = 800, seed: int = 3) -> bytes:
    """A Telco-like table made here: a customerID column, text categories with blanks, a TotalCharges
    column of numbers with blank cells (as text), and a Yes/No target that depends on the contract,
    tenure and payment method."""
    rng = np.random.default_rng(seed)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["customerID", "gender", "Contract", "PaymentMethod", "InternetService", "tenure",
                     "MonthlyCharges", "TotalCharges", "Churn"])
    contracts = ["Month-to-month", "One year", "Two year"]
    payments = ["Electronic check", "Mailed check", "Bank transfer (automatic)", "Credit card (automatic)"]
    internet = ["DSL", "Fiber optic", "No"]
    for _ in range(rows):
        contract = contracts[rng.choice(3, p=[0.55, 0.25, 0.20])]
        payment = payments[rng.integers(4)]
        tenure = int(rng.integers(0, 72))
        monthly = round(float(rng.uniform(18, 118)), 2)
        total = "" if tenure == 0 else f"{monthly * tenure:.2f}"
        risk = 0.08 + 0.35 * (contract == "Month-to-month") + 0.15 * (payment == "Electronic check") \
            - 0.003 * tenure
        churn = "Yes" if rng.random() < max(0.02, risk) else "No"
        writer.writerow([
            f"{rng.integers(1000, 9999)}-{''.join(rng.choice(list('ABCDEFGHIJKLMNOPQRSTUVWXYZ'), 5))}",
            "Female" if rng.random() < 0.5 else "Male",
            contract,
            "" if rng.random() < 0.05 else payment,  # a blank category now and then
            internet[rng.integers(3)],
            tenure, monthly, total, churn,
        ])
    return out.getvalue().encode()


CASES = {
    **{f"{a}-defaults": {"data": telecom_csv, "target": "Churn", "hyper": {"algorithm": a, **hp.defaults(a)}}
       for a in ALGORITHMS},
    **{f"{a}-cleared": {"data": telecom_csv, "target": "Churn", "hyper": {"algorithm": a}} for a in ALGORITHMS},
    "target-with-space": {"data": lambda: telecom_csv("Churn Flag"), "target": "Churn Flag",
                          "hyper": {"algorithm": "random_forest", **hp.defaults("random_forest")}},
    "categorical-with-id": {"data": categorical_csv, "target": "Churn",
                            "hyper": {"algorithm": "random_forest", **hp.defaults("random_forest")}},
    # issue 24: class weights undone inside the fitted model and cross-validation, on scikit-learn 1.2
    **{f"{a}-balanced-cv": {"data": categorical_csv, "target": "Churn",
                            "hyper": {"algorithm": a, **hp.defaults(a), "class_weight": "balanced", "cv_folds": 3}}
       for a in ALGORITHMS},
}


# ---------------------------------------------------------------------------------------------
# Capture: the backend's request and the bucket, under moto


def capture_case(case: str, tmp_path) -> tuple[dict, dict[str, bytes]]:
    """Start the case's training job through the platform on moto; return (CreateTrainingJob params,
    {s3 uri: bytes} of every object in the bucket). The parameters are recorded from the botocore
    ``before-parameter-build`` event, i.e. exactly what the backend passed to boto3."""
    import churn_core

    spec = CASES[case]
    tmp_path.mkdir(parents=True, exist_ok=True)
    with pytest.MonkeyPatch.context() as mp:
        aws_env(mp, tmp_path)
        with mock_aws():
            aws_client("s3").create_bucket(Bucket=BUCKET)
            platform = churn_core.connect()
            platform.upload_dataset("ds", spec["data"](), target=spec["target"])
            seen: list[dict] = []
            platform.backend.client("sagemaker").meta.events.register(
                "before-parameter-build.sagemaker.CreateTrainingJob",
                lambda params, **_: seen.append(copy.deepcopy(params)),
            )
            platform.start_training("ds", spec["hyper"], name=f"replay-{case}".replace("_", "-"))
            assert len(seen) == 1, "the backend made no (or more than one) CreateTrainingJob call"
            s3 = aws_client("s3")
            objects = {}
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
                for item in page.get("Contents", []):
                    body = s3.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read()
                    objects[f"s3://{BUCKET}/{item['Key']}"] = body
    return seen[0], objects


def channel_objects(request: dict, objects: dict[str, bytes], channel: str) -> dict[str, bytes]:
    prefix = next(
        c["DataSource"]["S3DataSource"]["S3Uri"] for c in request["InputDataConfig"] if c["ChannelName"] == channel
    )
    return {uri[len(prefix) :]: body for uri, body in objects.items() if uri.startswith(prefix)}


def dataset_schema_of(request: dict, objects: dict[str, bytes]) -> dict:
    """The dataset schema the upload stored in the train channel (the target travels there, not in argv)."""
    return json.loads(channel_objects(request, objects, "train")["dataset-schema.json"])


def invocations_for(request: dict, objects: dict[str, bytes]) -> list[replay.Invocation]:
    """Two rows of the job's test channel (rows with a blank cell first, so the categorical case sends a
    missing category): as JSON records with their ID columns (blank → null), as one headerless CSV line
    of the features in schema order (the first row, its cells as the file has them) and as a NumPy
    array (.npy) of the same features."""
    schema = dataset_schema_of(request, objects)
    text = channel_objects(request, objects, "test")["test.csv"].decode()
    header, *rows = list(csv.reader(io.StringIO(text)))
    features = [f["name"] for f in schema["features"]]
    keep = [header.index(name) for name in features]
    ids = [header.index(name) for name in schema["id_columns"]]
    rows = sorted(rows, key=lambda row: all(row[i].strip() for i in keep))  # stable: blanks first
    cells = [[row[i] for i in keep] for row in rows[:2]]
    id_values = [{header[i]: row[i] for i in ids} for row in rows[:2]]

    def value(cell: str):
        try:
            number = float(cell)
        except ValueError:
            return cell if cell.strip() else None
        return int(number) if number.is_integer() and "." not in cell else number

    records = [
        dict(ids, **{name: value(cell) for name, cell in zip(features, row, strict=True)})
        for ids, row in zip(id_values, cells, strict=True)
    ]
    try:
        array = np.array([[float(c) for c in row] for row in cells])
    except ValueError:
        array = np.array(cells)  # text categories: a unicode array (no pickle needed)
    npy = io.BytesIO()
    np.save(npy, array, allow_pickle=False)
    line = io.StringIO()
    csv.writer(line, lineterminator="\n").writerow(cells[0])
    return [
        replay.Invocation(json.dumps({"instances": records}).encode(), "application/json", "application/json", "json"),
        replay.Invocation(line.getvalue().encode(), "text/csv", "text/csv", "csv"),
        replay.Invocation(npy.getvalue(), "application/x-npy", "application/json", "npy"),
    ]


# ---------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="session")
def container_venv() -> replay.ContainerVenv:
    """The Python 3.9 venv with the container's packages (built once, then taken from the cache).
    Missing Python 3.9 or a failed install FAILS the tests that need it, with pip's or our message."""
    try:
        venv = replay.container_venv(log=print)
    except replay.ReplayEnvironmentError as exc:
        pytest.fail(str(exc), pytrace=False)
    print(f"\ncontainer venv: {venv.path} ({'built in %.0fs' % venv.seconds if venv.created else 'cached'})")
    return venv


class Replays:
    """Each case captured, trained and served once per test session, on first use."""

    def __init__(self, venv: replay.ContainerVenv, tmp_path_factory):
        self.venv = venv
        self.tmp = tmp_path_factory
        self.training: dict[str, tuple] = {}
        self.serving: dict[str, list] = {}

    def train(self, case: str):
        if case not in self.training:
            work = self.tmp.mktemp(f"replay-{case}")
            request, objects = capture_case(case, work / "capture")
            result = replay.replay_training(request, objects, work / "train", self.venv)
            print(f"\n[{case}] container command line: {result.command_line}")
            print(f"[{case}] arguments: {json.dumps(result.args)}")
            print(f"[{case}] exit code {result.exit_code}; failure: {result.failure_reason.strip() or '-'}")
            self.training[case] = (request, objects, result)
        return self.training[case]

    def serve(self, case: str):
        if case not in self.serving:
            request, objects, result = self.train(case)
            if not result.succeeded:
                pytest.fail(
                    f"{case}: nothing to serve, the training step failed: "
                    f"{result.failure_reason.strip() or result.stderr[-2000:]}",
                    pytrace=False,
                )
            answers = replay.replay_serving(
                result.model_tarball(),
                result.sourcedir,
                invocations_for(request, objects),
                self.tmp.mktemp(f"serve-{case}"),
                self.venv,
            )
            for a in answers:
                print(f"[{case}] {a.name}: HTTP {a.status} {a.content_type} {a.text[:200]!r} {a.error}")
            self.serving[case] = answers
        return self.serving[case]


@pytest.fixture(scope="module")
def replays(container_venv, tmp_path_factory) -> Replays:
    return Replays(container_venv, tmp_path_factory)


# ---------------------------------------------------------------------------------------------
# Tests


@pytest.mark.parametrize("case", list(CASES))
def test_training_job_succeeds_in_the_container(replays, case):
    request, _, result = replays.train(case)
    assert result.command_line, f"the toolkit logged no command line:\n{result.stderr[-3000:]}"
    assert result.succeeded, (
        f"{case}: the SKLearn 1.2-1 training step failed (exit {result.exit_code}).\n"
        f"command line: {result.command_line}\narguments: {result.args}\n"
        f"failure file: {result.failure_reason.strip()}\nstderr tail:\n{result.stderr[-2500:]}"
    )
    assert {"model.joblib", "schema.json", "metrics.json"} <= set(result.files)
    metrics = json.loads((result.model_dir / "metrics.json").read_text())
    assert metrics["roc_auc"] > 0.5, metrics
    if case.endswith("-balanced-cv"):  # honest probabilities in the container too
        report = json.loads((result.model_dir / "evaluation.json").read_text())
        mean = np.dot(report["reliability"]["predicted"], report["reliability"]["customers"]) / sum(
            report["reliability"]["customers"])
        assert abs(mean - metrics["test_churn_rate"]) <= 0.03, (case, mean, metrics["test_churn_rate"])
        assert report["prior_correction"]["method"] != "none" and metrics["roc_auc_cv"] > 0.5


def test_cleared_form_sends_the_defaults(replays):
    """Only the algorithm given: the platform fills in the defaults, so the request is the defaults'."""
    for algorithm in ALGORITHMS:
        cleared = replays.train(f"{algorithm}-cleared")[0]["HyperParameters"]
        defaults = replays.train(f"{algorithm}-defaults")[0]["HyperParameters"]
        skip = {"sagemaker_submit_directory", "sagemaker_job_name"}
        assert {k: v for k, v in cleared.items() if k not in skip} == {
            k: v for k, v in defaults.items() if k not in skip
        }


@pytest.mark.parametrize("kind", BODY_KINDS)
@pytest.mark.parametrize("case", list(CASES))
def test_model_serves_in_the_container(replays, case, kind):
    answer = next(a for a in replays.serve(case) if a.name == kind)
    assert answer.status == 200, f"{case}/{kind}: HTTP {answer.status}: {answer.error}"
    if answer.content_type.startswith("application/json"):
        body = json.loads(answer.text)
        predictions = body["predictions"]
        assert len(predictions) == 2 and all(0.0 <= p["churn_probability"] <= 1.0 for p in predictions), body
        request, objects, _ = replays.train(case)
        id_columns = dataset_schema_of(request, objects)["id_columns"]
        if kind == "json":  # records carry their ID columns; the container echoes them back
            assert all(set(id_columns) <= set(p) for p in predictions), body
    else:
        label, probability = answer.text.strip().split(",")
        assert label in ("0", "1") and 0.0 <= float(probability) <= 1.0, answer.text


@pytest.mark.parametrize("case", ["random_forest-defaults", "target-with-space"])
def test_the_request_survives_a_shell_launch_too(replays, case, tmp_path):
    """The 1.2-1 container runs the script with Popen on an argument list; with capture_error=True the
    toolkit joins the command with spaces and runs it through /bin/sh instead, where an empty value
    (a JSON null) vanishes and a value with a space splits in two. Nothing the backend sends may depend
    on which: unset hyperparameters are left out and the target travels in the dataset schema file."""
    request, objects, _ = replays.train(case)
    assert all(json.loads(v) is not None for v in request["HyperParameters"].values())
    assert "target" not in request["HyperParameters"]
    result = replay.replay_training(request, objects, tmp_path / "shell", replays.venv, capture_error=True)
    print(f"\n[{case}, shell path] command line: {result.command_line}\n[shell path] exit code {result.exit_code}")
    assert result.succeeded, result.stdout[-2000:] + result.stderr[-2000:]
    assert "  " not in result.command_line.split("train.py", 1)[1], "no empty argument"


def test_missing_python39_fails_with_a_clear_message(monkeypatch, tmp_path):
    monkeypatch.setattr(replay.Path, "home", lambda: tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(replay.ReplayEnvironmentError, match=r"needs Python 3\.9.*pyenv install 3\.9\.18"):
        replay.find_python39()


@pytest.mark.parametrize("case", ["categorical-with-id", "gradient_boosting-defaults", "logistic_regression-defaults"])
def test_threshold_and_reasons_hold_in_the_container(replays, case, tmp_path):
    """What later issues added to the container contract, replayed the same way: the decision threshold
    the model's Environment carries (CHURN_THRESHOLD, as CreateModel sends it) labels every answer, which names
    the variant the Environment gives (CHURN_VARIANT), and a
    request asking for reasons gets exactly additive ones with the container's numpy and scikit-learn."""
    request, objects, result = replays.train(case)
    assert result.succeeded, result.failure_reason
    records = json.loads(invocations_for(request, objects)[0].body)["instances"]
    body = json.dumps({"instances": records, "explain": 3}).encode()
    table = io.StringIO()  # the same customers as a scored file sends them: CSV asking one reason a row
    writer = csv.DictWriter(table, fieldnames=list(records[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: "" if v is None else v for k, v in r.items()} for r in records)
    answers = replay.replay_serving(result.model_tarball(), result.sourcedir,
                                    [replay.Invocation(body, "application/json", "application/json", "explain"),
                                     replay.Invocation(table.getvalue().encode(), "text/csv; explain=1",
                                                       "application/json", "explain-csv")],
                                    tmp_path / "serve", replays.venv,
                                    environment={"CHURN_THRESHOLD": "0.05", "CHURN_VARIANT": "churn-v2"})
    answer, csv_answer = answers
    assert answer.status == 200, answer.error
    assert csv_answer.status == 200, csv_answer.error  # the media type's parameter reached input_fn
    json_predictions = json.loads(answer.text)["predictions"]
    for prediction, same in zip(json.loads(csv_answer.text)["predictions"], json_predictions, strict=True):
        assert len(prediction["reasons"]["reasons"]) == 1
        assert prediction["reasons"]["method"] == same["reasons"]["method"] in ("tree_shap", "linear_shap")
        # one method whatever the body: the CSV's one reason is the JSON answer's first, to the same digits
        assert prediction["reasons"]["reasons"][0] == same["reasons"]["reasons"][0]
    import math

    for prediction in json.loads(answer.text)["predictions"]:
        assert prediction["variant"] == "churn-v2"  # the variant CreateModel names in the model's Environment
        assert prediction["label"] == int(prediction["churn_probability"] > 0.05)
        why = prediction["reasons"]
        p = prediction["churn_probability"]
        output = p if why["space"] == "probability" else math.log(p / (1 - p))
        assert abs(why["base"] + sum(r["contribution"] for r in why["reasons"]) + why["other"] - output) < 1e-6
        assert len(why["reasons"]) == 3


def transform_customers(rows: int = 60) -> bytes:
    """Customers of the categorical case to score: its table without the target, a word for a number on
    line 4 and a blank number (TotalCharges, trained with blanks) on line 6."""
    frame = pd.read_csv(io.BytesIO(categorical_csv(rows, seed=9)), dtype=str, keep_default_na=False)
    frame = frame.drop(columns=["Churn"])
    frame.loc[2, "tenure"] = "soon"
    frame.loc[4, "TotalCharges"] = ""
    return frame.to_csv(index=False).encode()


@pytest.mark.parametrize("reasons", [False, True], ids=["plain", "with-top-reasons"])
def test_a_transform_mini_batch_is_answered_line_by_line_in_the_container(replays, tmp_path, reasons):
    """The backend's CreateTransformJob (under moto) for the model the container trained: its headerless input,
    through the job's InputFilter, as one MultiRecord mini-batch (text/csv, no header, features in schema order),
    through the container's handler chain with the job's Environment. Every line is answered, the bad one with
    its reason; joined to the input as the job's DataProcessing says, the platform reads the results back."""
    import churn_core
    from tests.support.transforms import _select

    _, _, trained = replays.train("categorical-with-id")
    if not trained.succeeded:
        pytest.fail("the categorical case did not train in the container", pytrace=False)
    with pytest.MonkeyPatch.context() as mp:
        aws_env(mp, tmp_path)
        with mock_aws():
            s3, sm = aws_client("s3"), aws_client("sagemaker")
            s3.create_bucket(Bucket=BUCKET)
            p = churn_core.connect()
            p.upload_dataset("ds", categorical_csv(), target="Churn")
            p.start_training("ds", CASES["categorical-with-id"]["hyper"], name="replay-transform")
            uri = sm.describe_training_job(TrainingJobName="replay-transform")["ModelArtifacts"]["S3ModelArtifacts"]
            s3.put_object(Bucket=BUCKET, Key=uri.split(f"s3://{BUCKET}/", 1)[1], Body=trained.model_tarball())
            assert p.describe_training("replay-transform").status == "Completed"
            seen: list[dict] = []
            p.backend.client("sagemaker").meta.events.register(
                "before-parameter-build.sagemaker.CreateTransformJob",
                lambda params, **_: seen.append(copy.deepcopy(params)))
            p.start_transform("replay-transform", transform_customers(), name="replay-tj", reasons=reasons)
            (request,) = seen
            prefix = request["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"].split(f"s3://{BUCKET}/", 1)[1]
            (key,) = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix)["Contents"]]
            records = list(csv.reader(io.StringIO(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode())))
            body = "".join(",".join(_select(r, request["DataProcessing"]["InputFilter"])) + "\n" for r in records)
            (answer,) = replay.replay_serving(trained.model_tarball(), trained.sourcedir,
                                              [replay.Invocation(body.encode(), "text/csv", "text/csv", "transform")],
                                              tmp_path / "serve", replays.venv, environment=request["Environment"])
            print(f"\ntransform mini-batch of {len(records)} lines: HTTP {answer.status} {answer.content_type}\n"
                  f"{answer.text[:300]}")
            assert answer.status == 200, answer.error
            assert answer.content_type.startswith("text/csv")
            lines = answer.text.splitlines()
            assert len(lines) == len(records) == 60
            fields = 5 if reasons else 4  # probability,label,warnings[,top_reason],problem
            assert lines[2] == "," * (fields - 1) + "tenure: 'soon' is not a number."
            assert all(len(line.split(",")) == fields and line.split(",")[-1] == ""
                       and 0 <= float(line.split(",")[0]) <= 1 for i, line in enumerate(lines) if i != 2)
            if reasons:
                assert all(re.match(r"^\w+ = .+ \([+-]\d+\.\d+ (pts|log-odds)\)$", line.split(",")[3])
                           for i, line in enumerate(lines) if i != 2), lines[:3]
            joined = []
            for record, line in zip(records, lines, strict=True):
                out = io.StringIO()
                csv.writer(out, lineterminator="").writerow(
                    _select(record + next(csv.reader([line])), request["DataProcessing"]["OutputFilter"]))
                joined.append(out.getvalue())
            output = request["TransformOutput"]["S3OutputPath"].split(f"s3://{BUCKET}/", 1)[1]
            s3.put_object(Bucket=BUCKET, Key=f"{output}/{key.rsplit('/', 1)[1]}.out",
                          Body=("\n".join(joined) + "\n").encode())
            done = p.describe_transform("replay-tj")
            assert done.status == "Completed", done.failure_reason
            assert (done.rows_scored, done.rows_failed) == (59, 1)
            results = p.transform_output("replay-tj")
            assert list(results.columns) == ["line", "customerID", "churn_probability", "predicted_churn", "risk",
                                          "warnings", *(["top_reason"] if reasons else [])]
            assert list(p.transform_errors("replay-tj")["line"]) == [4]
