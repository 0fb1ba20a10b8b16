"""Replay what the SageMaker SKLearn 1.2-1 container does with the requests our SageMaker backend sends.

moto accepts any ``CreateTrainingJob`` and runs nothing, so it cannot tell whether the container would
actually train. This harness runs the container's own training step locally instead:

* a cached Python 3.9 virtual environment with the container's pinned packages and the training
  toolkit it uses (``sagemaker-training``), installed from PyPI (``container_venv``);
* a ``SAGEMAKER_BASE_DIR`` laid out as SageMaker lays out ``/opt/ml`` for that request (config files,
  channel data exactly as the S3 objects under each channel prefix), the code tarball served from a
  local S3 (moto on 127.0.0.1) at the very ``s3://`` URI the request names, and the toolkit's
  ``trainer.train()`` calling our ~10-line equivalent of the container's training main, which hands
  the job to ``sagemaker_training.entry_point.run`` (``replay_training``);
* the model it wrote, packed and unpacked as SageMaker does, served through the handler chain the
  way the container's serving stack calls it (``replay_serving``).

What runs inside Python 3.9 lives in ``container_replay_py39.py`` (3.9-compatible, no project imports).
The facts behind each choice (file paths and lines in the container and toolkit sources) are in the
docstrings there and in the report that came with this harness.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
PY39_SCRIPT = HERE / "container_replay_py39.py"
PYTHON_VERSION = "3.9"

# The container's pins: aws/sagemaker-scikit-learn-container, branch 1.2-1 (commit b440c40, the
# source of the 1.2-1 image SageMaker serves), requirements.txt, limited to what the training step
# and the handler chain import: the science stack, sagemaker-training and the packages of its own
# dependency tree that the container pins. Left out: the HTTP serving stack (Flask, gunicorn,
# multi-model-server, model-archiver, sagemaker-containers, sagemaker-inference, jinja2, MarkupSafe,
# itsdangerous), which container_replay_py39.serve stands in for. joblib, threadpoolctl, paramiko,
# cryptography and the like are unpinned in the container too: pip resolves them, and the venv
# records what it got in pip-freeze.txt.
CONTAINER_PINS = """\
numpy==1.24.1
pandas==1.1.3
scikit-learn==1.2.1
scipy==1.8.0
sagemaker-training==4.8.0
boto3==1.28.57
botocore>=1.31.57,<1.32.0
protobuf==3.20.2
psutil==5.7.2
python-dateutil==2.8.1
retrying==1.3.3
six==1.15.0
urllib3==1.26.17
Werkzeug==2.0.3
gevent==23.9.1
"""

# What SageMaker and the image set in the training container's environment (the image's ENV lines in
# docker/1.2-1/base/Dockerfile.cpu and final/Dockerfile.cpu; TRAINING_JOB_NAME/ARN by the platform).
IMAGE_ENV = {
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONUNBUFFERED": "1",
    "PYTHONIOENCODING": "UTF-8",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "PIP_ROOT_USER_ACTION": "ignore",
}
# Kept from this machine: older OpenBLAS builds (numpy 1.24's) crash or miscompute on some processors
# here without these (see the environment notes of this workplace).
PASS_THROUGH_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "TMPDIR")

INVOCATION_RE = re.compile(r"Invoking script with the following command:\n\n(.*?)\n\n", re.S)


class ReplayEnvironmentError(RuntimeError):
    """The Python 3.9 environment cannot be had here; the message says what to install."""


# ---------------------------------------------------------------------------------------------
# The cached Python 3.9 environment


def find_python39() -> str:
    """The Python 3.9 to build the venv from: pyenv's 3.9.18, then ``pyenv which``, then PATH."""
    candidates = [str(Path.home() / ".pyenv" / "versions" / "3.9.18" / "bin" / "python")]
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        found = subprocess.run(["pyenv", "which", "python3.9"], capture_output=True, text=True, timeout=30)
        if found.returncode == 0 and found.stdout.strip():
            candidates.append(found.stdout.strip())
    if shutil.which("python3.9"):
        candidates.append(shutil.which("python3.9"))
    for candidate in candidates:
        if not os.access(candidate, os.X_OK):
            continue
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            version = subprocess.run([candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                                     capture_output=True, text=True, timeout=30).stdout.strip()
            if version == PYTHON_VERSION:
                return candidate
    raise ReplayEnvironmentError(
        "The container replay needs Python 3.9 (the SKLearn 1.2-1 container's Python) and found none: "
        f"tried {', '.join(candidates)} and python3.9 on PATH. Install it, e.g. `pyenv install 3.9.18`."
    )


def cache_root() -> Path:
    base = os.environ.get("CHURN_REPLAY_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache"), "churn-control-plane")
    return Path(base)


def venv_key(python: str) -> str:
    """Keyed by the pins, the exact interpreter version and the recipe, so a change builds a new venv."""
    version = subprocess.run([python, "-c", "import sys; print(sys.version)"], capture_output=True,
                             text=True, check=True).stdout.strip()
    recipe = json.dumps({"pins": CONTAINER_PINS, "python": version, "recipe": 1}, sort_keys=True)
    return hashlib.sha256(recipe.encode()).hexdigest()[:16]


@dataclass
class ContainerVenv:
    path: Path
    python: Path
    created: bool  # built by this call (False: found in the cache)
    seconds: float  # how long the build took (0 when cached)
    freeze: str  # `pip freeze` of the venv


def container_venv(log=print) -> ContainerVenv:
    """The Python 3.9 venv with the container's pins, built once per pin set and reused.

    Built in a temporary folder beside its final place, then renamed into place, under an exclusive
    file lock: two pytest-xdist workers (or two test runs) asking at once build it once; a build that
    dies leaves only a temporary folder, never a half-built venv under the final name. Only
    ``bin/python`` is used afterwards (console scripts keep the temporary path in their shebang line).
    """
    python = find_python39()
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"container-py39-{venv_key(python)}"
    marker = final / "pip-freeze.txt"
    with open(root / f"{final.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.is_file():
            return ContainerVenv(final, final / "bin" / "python", False, 0.0, marker.read_text())
        started = time.monotonic()
        temp = root / f".building-{final.name}-{os.getpid()}"
        shutil.rmtree(temp, ignore_errors=True)
        for stale in root.glob(f".building-{final.name}-*"):
            shutil.rmtree(stale, ignore_errors=True)  # left by a build that died (we hold the lock)
        log(f"container replay: building the Python 3.9 venv {final} (first run only) ...")
        try:
            made = subprocess.run([python, "-m", "venv", str(temp)], capture_output=True, text=True)
            if made.returncode != 0:
                raise ReplayEnvironmentError(f"{python} -m venv failed: {made.stderr.strip()[-2000:]}")
            (temp / "container-requirements.txt").write_text(CONTAINER_PINS)
            install = subprocess.run(
                [str(temp / "bin" / "python"), "-m", "pip", "install", "--no-input", "--progress-bar", "off",
                 "-r", str(temp / "container-requirements.txt")],
                capture_output=True, text=True, timeout=3000)
            (temp / "pip-install.log").write_text(install.stdout + install.stderr)
            if install.returncode != 0:
                failed_log = root / f"{final.name}-pip-install-failed.log"
                failed_log.write_text(install.stdout + install.stderr)
                raise ReplayEnvironmentError(
                    f"pip could not install the container's packages (exit {install.returncode}); "
                    f"full log in {failed_log}:\n" + (install.stdout + install.stderr)[-4000:])
            freeze = subprocess.run([str(temp / "bin" / "python"), "-m", "pip", "freeze"], check=True,
                                    capture_output=True, text=True).stdout
            (temp / "pip-freeze.txt").write_text(freeze)  # written last: its presence means complete
            shutil.rmtree(final, ignore_errors=True)  # only a folder someone left without the marker
            os.rename(temp, final)
        except BaseException:
            shutil.rmtree(temp, ignore_errors=True)
            raise
        seconds = time.monotonic() - started
        log(f"container replay: venv built in {seconds:.0f}s")
        return ContainerVenv(final, final / "bin" / "python", True, seconds, freeze)


# ---------------------------------------------------------------------------------------------
# Training


@dataclass
class TrainingReplay:
    exit_code: int
    command_line: str  # as the toolkit logged it ("Invoking script with the following command")
    args: list  # the argument list the toolkit handed to the runner after the program name
    stdout: str
    stderr: str
    failure_reason: str  # /opt/ml/output/failure: what DescribeTrainingJob would report
    base_dir: Path
    model_dir: Path
    output_data_dir: Path
    sourcedir: bytes  # the code tarball the job named (the endpoint loads the same one)
    files: list = field(default_factory=list)  # what the job left in the model directory

    @property
    def succeeded(self) -> bool:
        return self.exit_code == 0 and (self.base_dir / "output" / "success").exists()

    def model_tarball(self) -> bytes:
        """model.tar.gz as SageMaker uploads it: the model directory's contents at the top level."""
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
            for item in sorted(self.model_dir.iterdir()):
                tar.add(item, arcname=item.name)
        return buffer.getvalue()


def _split_s3(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise ValueError(f"not an s3:// URI: {uri}")
    bucket, _, key = uri[len("s3://"):].partition("/")
    return bucket, key


@contextlib.contextmanager
def local_s3(objects: dict[str, bytes]):
    """A moto S3 server on 127.0.0.1 (a free port) holding ``objects`` ({s3 uri: bytes}); yields its URL.

    The toolkit downloads ``sagemaker_submit_directory`` with boto3 at ``S3_ENDPOINT_URL`` when set
    (sagemaker_training/files.py s3_download), so it fetches the tarball the request names, itself.
    Must not run inside ``mock_aws`` (it would intercept the uploads below).
    """
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        url = f"http://{host}:{port}"
        s3 = boto3.client("s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id="testing",
                          aws_secret_access_key="testing")
        for bucket in sorted({_split_s3(uri)[0] for uri in objects}):
            s3.create_bucket(Bucket=bucket)
        for uri, body in objects.items():
            bucket, key = _split_s3(uri)
            s3.put_object(Bucket=bucket, Key=key, Body=body)
        yield url
    finally:
        server.stop()


def _write_json(path: Path, payload) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1))


def layout_base_dir(request: dict, s3_objects: dict[str, bytes], base: Path) -> None:
    """``/opt/ml`` as SageMaker prepares it for a File-mode job, under ``base``.

    input/config/hyperparameters.json holds HyperParameters as sent (string values);
    inputdataconfig.json one entry per channel; resourceconfig.json a single host algo-1;
    input/data/<channel>/ every object under the channel's S3Prefix, at its path below the prefix.
    """
    config = base / "input" / "config"
    _write_json(config / "hyperparameters.json", request.get("HyperParameters", {}))
    channels = {}
    for channel in request.get("InputDataConfig", []):
        name = channel["ChannelName"]
        source = channel["DataSource"]["S3DataSource"]
        entry = {"TrainingInputMode": request["AlgorithmSpecification"].get("TrainingInputMode", "File"),
                 "S3DistributionType": source.get("S3DataDistributionType", "FullyReplicated"),
                 "RecordWrapperType": channel.get("RecordWrapperType", "None")}
        if channel.get("ContentType"):
            entry["ContentType"] = channel["ContentType"]
        channels[name] = entry
        if source["S3DataType"] != "S3Prefix":
            raise NotImplementedError(f"channel {name}: only S3Prefix channels are replayed")
        prefix = source["S3Uri"]
        folder = base / "input" / "data" / name
        folder.mkdir(parents=True, exist_ok=True)
        for uri, body in s3_objects.items():
            if uri.startswith(prefix) and not uri.endswith("/"):
                target = folder / uri[len(prefix):].lstrip("/")
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(body)
    _write_json(config / "inputdataconfig.json", channels)
    resources = request.get("ResourceConfig", {})
    hosts = [f"algo-{i + 1}" for i in range(int(resources.get("InstanceCount", 1)))]
    instance_type = resources.get("InstanceType", "ml.m5.large")
    _write_json(config / "resourceconfig.json", {
        "current_host": hosts[0], "current_instance_type": instance_type,
        "current_group_name": "homogeneousCluster", "hosts": hosts,
        "instance_groups": [{"instance_group_name": "homogeneousCluster", "instance_type": instance_type,
                             "hosts": hosts}],
        "network_interface_name": "eth0"})
    for folder in (base / "model", base / "output" / "data"):
        folder.mkdir(parents=True, exist_ok=True)


def _base_env(venv: ContainerVenv, base: Path) -> dict[str, str]:
    """A clean environment (nothing of the test process leaks in), as the container would have it."""
    empty = base.parent / "empty-aws-config"
    empty.write_text("")
    env = {
        "PATH": f"{venv.path / 'bin'}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": str(base.parent),
        "SAGEMAKER_BASE_DIR": str(base),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_CONFIG_FILE": str(empty),
        "AWS_SHARED_CREDENTIALS_FILE": str(empty),
        "AWS_EC2_METADATA_DISABLED": "true",
        **IMAGE_ENV,
    }
    for key in PASS_THROUGH_ENV:
        if os.environ.get(key):
            env[key] = os.environ[key]
    return env


def _shim(workdir: Path) -> Path:
    """A copy of container_replay_py39.py in a folder of its own: the toolkit passes its own sys.path to
    the training script as PYTHONPATH (environment.write_env_vars), so the folder it runs from must
    hold nothing else (in the image that folder is the one of the ``train`` command)."""
    folder = workdir / "replay-shim"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / PY39_SCRIPT.name
    shutil.copyfile(PY39_SCRIPT, target)
    return target


def replay_training(request: dict, s3_objects: dict[str, bytes], workdir: Path, venv: ContainerVenv,
                    timeout: float = 600, capture_error: bool = False) -> TrainingReplay:
    """Run the container's training step on ``request`` (a CreateTrainingJob's parameters).

    ``s3_objects`` is the bucket as the backend left it ({"s3://bucket/key": bytes}): the channel data
    and the code tarball named by ``sagemaker_submit_directory``.

    ``capture_error=True`` is a diagnostic, not the container: the SKLearn container calls
    ``entry_point.run`` without it, so the toolkit starts the script with ``subprocess.Popen`` on an
    argument list; with it, the toolkit joins the command with spaces and runs it through ``/bin/sh``
    (sagemaker_training/process.py ``check_error``/``run_async``), where an empty argument vanishes and
    a value with a space splits in two.
    """
    workdir = Path(workdir)
    base = workdir / "opt" / "ml"
    layout_base_dir(request, s3_objects, base)
    hyper = request.get("HyperParameters", {})
    submit = json.loads(hyper.get("sagemaker_submit_directory", '""'))
    region = json.loads(hyper.get("sagemaker_region", '"us-east-1"'))
    args_file = workdir / "replay-args.json"
    with local_s3(s3_objects) as s3_url:
        env = {
            **_base_env(venv, base),
            "SAGEMAKER_TRAINING_MODULE": "container_replay_py39:training_main",
            "S3_ENDPOINT_URL": s3_url,
            "AWS_REGION": region,
            "AWS_DEFAULT_REGION": region,
            "TRAINING_JOB_NAME": request["TrainingJobName"],
            "TRAINING_JOB_ARN": f"arn:aws:sagemaker:{region}:123456789012:training-job/{request['TrainingJobName']}",
            # The toolkit waits (up to 15 min) until every host of resourceconfig.json resolves; algo-1
            # resolves inside SageMaker's network only. This switch skips that wait and nothing else
            # (sagemaker_training/entry_point.py, run()).
            "SM_STUDIO_LOCAL_MODE": "true",
            "REPLAY_ARGS_FILE": str(args_file),
        }
        if capture_error:
            env["REPLAY_CAPTURE_ERROR"] = "1"
        done = subprocess.run([str(venv.python), str(_shim(workdir)), "train"], env=env, cwd=str(workdir),
                              capture_output=True, text=True, timeout=timeout)
    found = INVOCATION_RE.search(done.stderr) or INVOCATION_RE.search(done.stdout)
    failure = base / "output" / "failure"
    model_dir = base / "model"
    sourcedir = s3_objects.get(submit, b"")
    return TrainingReplay(
        exit_code=done.returncode,
        command_line=found.group(1).strip() if found else "",
        args=json.loads(args_file.read_text()) if args_file.exists() else [],
        stdout=done.stdout,
        stderr=done.stderr,
        failure_reason=failure.read_text() if failure.exists() else "",
        base_dir=base,
        model_dir=model_dir,
        output_data_dir=base / "output" / "data",
        sourcedir=sourcedir,
        files=sorted(p.name for p in model_dir.iterdir()),
    )


# ---------------------------------------------------------------------------------------------
# Serving


@dataclass
class Invocation:
    body: bytes
    content_type: str | None  # None: the request has no Content-Type header
    accept: str | None = None  # None: no Accept header
    name: str = ""


@dataclass
class InvocationResult:
    name: str
    status: int
    body: bytes
    content_type: str
    error: str  # the exception the handler chain raised (the container answers 500 for it)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


def replay_serving(model_tarball: bytes, sourcedir: bytes, invocations: list[Invocation], workdir: Path,
                   venv: ContainerVenv, program: str = "train.py", timeout: float = 300,
                   environment: dict | None = None) -> list[InvocationResult]:
    """Serve ``model_tarball`` with the code in ``sourcedir`` the way an SKLearn 1.2-1 endpoint does.

    ``environment``: more variables of the container, e.g. a transform job's ``Environment`` (SageMaker
    adds them to the model's for the job's containers).

    model.tar.gz is unpacked into /opt/ml/model (SageMaker does this before the container starts), the
    code tarball is unpacked by the toolkit's download_and_extract, and each invocation goes through
    model_fn (once) → input_fn → predict_fn → output_fn as container_replay_py39.serve describes.
    """
    workdir = Path(workdir)
    base = workdir / "opt" / "ml"
    model_dir = base / "model"
    model_dir.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(model_tarball), mode="r:gz") as tar:
        tar.extractall(model_dir)
    code_tarball = workdir / "sourcedir.tar.gz"
    code_tarball.write_bytes(sourcedir)
    spec = workdir / "invocations.json"
    answers = workdir / "responses.json"
    spec.write_text(json.dumps([{"name": i.name, "content_type": i.content_type, "accept": i.accept,
                                 "body": base64.b64encode(i.body).decode()} for i in invocations]))
    env = {**_base_env(venv, base), "SAGEMAKER_PROGRAM": program,
           "SAGEMAKER_SUBMIT_DIRECTORY": str(code_tarball), "AWS_DEFAULT_REGION": "us-east-1",
           **(environment or {})}  # the model's Environment, as CreateModel sets it (e.g. CHURN_THRESHOLD)
    done = subprocess.run([str(venv.python), str(_shim(workdir)), "serve", str(spec), str(answers)], env=env,
                          cwd=str(workdir), capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0 or not answers.exists():
        raise AssertionError(f"the serving replay itself crashed (exit {done.returncode}):\n"
                             f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return [InvocationResult(r["name"], r["status"], base64.b64decode(r["body"]), r["content_type"], r["error"])
            for r in json.loads(answers.read_text())]
