"""Every shared fixture, defined once: state directories, platforms (local, or SageMaker on moto for tests
marked ``aws``), data, trained models and the stand-ins moto lacks. Helpers that are not fixtures live in
tests/support/."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support.data import REFERENCE_CSV  # noqa: E402  (after the root is importable)


def pytest_configure(config):
    """One warm process for the whole run (all xdist workers), in a folder of its own, stopped at the end.
    And entry/'s modules, imported by their bare names, join pyproject's own-code DeprecationWarning errors."""
    names = "|".join(sorted(path.stem for path in (ROOT / "entry").glob("*.py")))
    config.addinivalue_line("filterwarnings", f"error::DeprecationWarning:({names})$")
    if not hasattr(config, "workerinput") and "CHURN_WARM_DIR" not in os.environ:
        os.environ["CHURN_WARM_DIR"] = tempfile.mkdtemp(prefix="churn-warm-tests-")
        config.stash[WARM_OWNER] = True


def pytest_unconfigure(config):
    if config.stash.get(WARM_OWNER, False):
        import shutil
        import time

        import psutil

        from churn_core.processes.warm import client as warm

        stopped = warm.stop_all()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(psutil.pid_exists(pid) for pid in stopped):
            time.sleep(0.05)
        shutil.rmtree(warm.run_dir(), ignore_errors=True)


WARM_OWNER = pytest.StashKey[bool]()


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """A fresh CHURN_HOME on the local backend for each test."""
    state = tmp_path / "state"
    monkeypatch.setenv("CHURN_HOME", str(state))
    monkeypatch.setenv("CHURN_BACKEND", "local")
    for key in ("CHURN_S3_BUCKET", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(key, raising=False)
    return state


@pytest.fixture(scope="session")
def sample_csv() -> bytes:
    from churn_core.data.sample import make_sample

    return make_sample()


@pytest.fixture(scope="session")
def reference_csv() -> Path:
    if not REFERENCE_CSV.exists():
        pytest.skip(f"reference dataset not present at {REFERENCE_CSV}")
    return REFERENCE_CSV


@pytest.fixture(scope="session")
def small_csv() -> bytes:
    """A small synthetic telecom sample (the SageMaker tests check calls, not models)."""
    from churn_core.data.sample import make_sample

    return make_sample(rows=500)


@pytest.fixture
def model_tarballs() -> dict:
    """model.tar.gz and output.tar.gz as SageMaker would pack them, made by running entry/train.py locally."""
    from tests.support.aws import trained_tarballs

    return trained_tarballs()


@pytest.fixture(autouse=True)
def aws_request_check(monkeypatch):
    """Every request the SageMaker backend sends must pass the service model and the shipped IAM policies."""
    from tests.service_model_check import RequestCheck

    check = RequestCheck()
    check.install(monkeypatch)
    yield check
    if check.problems:
        pytest.fail("Requests the real AWS would refuse:\n" + "\n".join(check.problems), pytrace=False)


@pytest.fixture
def aws(monkeypatch, tmp_path):
    """moto's AWS account with the test bucket, the sagemaker backend's environment pointing at it."""
    from tests.support.aws import moto_account

    with moto_account(monkeypatch, tmp_path):
        yield


@pytest.fixture
def moto_stand_ins(monkeypatch):
    """The SageMaker actions moto lacks (UpdateEndpoint, StopTransformJob, StopHyperParameterTuningJob),
    answered for this test only and removed after it."""
    pytest.importorskip("moto")
    from tests.support.moto_stand_ins import install

    install(monkeypatch)


@pytest.fixture
def platform(request):
    """``churn_core.connect()`` on a fresh state directory: the local backend, or for a test marked ``aws``
    the sagemaker backend on moto (the ``aws`` fixture)."""
    import churn_core

    request.getfixturevalue("aws" if request.node.get_closest_marker("aws") else "home")
    return churn_core.connect()


@pytest.fixture
def sample_dataset(platform, sample_csv):
    """The sample uploaded as dataset 'sample' on this test's platform (use it as ``usefixtures``)."""
    return platform.upload_dataset("sample", sample_csv)


@pytest.fixture
def small_dataset(platform, small_csv):
    """The small sample uploaded as dataset 'ds' (target Churn) on this test's platform (as ``usefixtures``)."""
    return platform.upload_dataset("ds", small_csv, target="Churn")


@pytest.fixture
def train(platform):
    """Train on this test's platform: ``train(dataset, data, name, **hyperparameters)`` uploads ``data``,
    trains ``name`` and waits until it is Completed; returns the platform. Endpoints go after the test."""
    from tests.support.helpers import wait_for_job

    def run(dataset: str, data: bytes, name: str, **hyperparameters):
        platform.upload_dataset(dataset, data)
        platform.start_training(dataset, hyperparameters, name=name)
        job = wait_for_job(platform, name)
        assert job.status == "Completed", job.failure_reason
        return platform

    yield run
    platform.cleanup()


@pytest.fixture
def subs_rf(train):
    """A fresh local state with dataset 'subs' (the subscription sample) and its random forest 'subs-rf'."""
    from churn_core.data.sample import make_subscription_sample

    return train("subs", make_subscription_sample(800, seed=4), "subs-rf", algorithm="random_forest", n_estimators=15)


@pytest.fixture
def page_model(train, sample_csv):
    """A fresh local state with dataset 'sample' and its model 'page-model'."""
    return train("sample", sample_csv, "page-model", n_estimators=15)


@pytest.fixture(scope="module")
def trained(request, tmp_path_factory, sample_csv):
    """The sample and a Completed 10-tree model 'model-a' in this module's own state directory (a copy of
    the state trained once per session, see tests/support/trained.py)."""
    from tests.support.trained import platform_on_trained_state

    with platform_on_trained_state(tmp_path_factory, sample_csv, request.module.__name__.rsplit(".", 1)[-1]) as p:
        yield p


@pytest.fixture(scope="module")
def registry_with_two_versions(request, tmp_path_factory):
    """Three trained models on the subscription sample (subs-rf, subs-lr, subs-bad), each registered and
    approved as subs v1, v2, v3, in this module's own state directory."""
    import churn_core
    from churn_core.data.sample import make_subscription_sample
    from tests.support.helpers import wait_for_job

    mp = pytest.MonkeyPatch()
    mp.setenv("CHURN_HOME", str(tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1]) / "state"))
    mp.setenv("CHURN_BACKEND", "local")
    p = churn_core.connect()
    try:
        p.upload_dataset("subs", make_subscription_sample(800, seed=12))
        for name, params in (("subs-rf", {"algorithm": "random_forest", "n_estimators": 15}),
                             ("subs-lr", {"algorithm": "logistic_regression"}),
                             ("subs-bad", {"algorithm": "random_forest", "n_estimators": 3})):
            p.start_training("subs", params, name=name)
        for name in ("subs-rf", "subs-lr", "subs-bad"):
            assert wait_for_job(p, name).status == "Completed"
            version = p.register(name, group="subs")
            p.approve("subs", version.version, "test")
        yield p
    finally:
        p.cleanup()
        mp.undo()


@pytest.fixture
def artifact(trained):
    """model-a's model.tar.gz, restored (file and recorded SHA-256) after the test."""
    model = trained.get_model("model-a")
    path = trained.store.path(model["artifact_key"])
    original = path.read_bytes()
    yield path
    path.write_bytes(original)
    trained.catalog.update("models", "model-a", artifact_sha256=model["artifact_sha256"])


@pytest.fixture(scope="module")
def own_model(tmp_path_factory):
    """An analyst's own data, a model trained on it and a live endpoint, once per module (tests/support/own_data.py)."""
    from tests.support.own_data import own_model_state

    with own_model_state(tmp_path_factory) as model:
        yield model


@pytest.fixture(scope="module")
def drift_model(request, tmp_path_factory):
    """6,000 subscription customers, a model 'subs-rf' and its live endpoint 'subs-ep', once per module
    (tests/support/monitoring.py); the platform."""
    from tests.support.monitoring import drift_model_state

    with drift_model_state(tmp_path_factory, request.module.__name__.rsplit(".", 1)[-1]) as p:
        yield p


@pytest.fixture
def webhook():
    """A real webhook receiver on 127.0.0.1 (tests/support/monitoring.Webhook), stopped after the test."""
    from tests.support.monitoring import Webhook

    hook = Webhook()
    yield hook
    hook.close()


@pytest.fixture(scope="module")
def honest_models(tmp_path_factory):
    """{(dataset, algorithm, class weight): (model dir, CSV bytes)}: every algorithm with and without
    class_weight=balanced on the sample and a categorical dataset, trained by train.py in this process."""
    from tests.support.honest import ALGORITHMS, WEIGHTINGS, datasets, train_into

    out = {}
    for name, data in datasets().items():
        base = tmp_path_factory.mktemp(f"honest-{name}")
        for algorithm in ALGORITHMS:
            for weighting in WEIGHTINGS:
                out[(name, algorithm, weighting)] = (train_into(base, data, "--algorithm", algorithm,
                                                                "--class_weight", weighting), data)  # defaults
    return out


@pytest.fixture
def immutable(tmp_path):
    """``chattr +i`` a folder (undone at teardown); skipped when chattr cannot be used here."""
    import shutil
    import subprocess

    marked: list[Path] = []
    if not shutil.which("chattr"):
        pytest.skip("chattr is not installed")

    def mark(folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(["chattr", "+i", str(folder)], capture_output=True, check=False)
        if done.returncode != 0:
            pytest.skip(f"chattr +i is not allowed here: {done.stderr.decode(errors='replace').strip()}")
        marked.append(folder)

    yield mark
    for folder in marked:
        subprocess.run(["chattr", "-i", str(folder)], capture_output=True, check=False)
