"""The local endpoint server: one detached process per endpoint, SageMaker container contract.

Started by the endpoint supervisor as::

    python -m churn_core.backends.local.endpoint.server --control <workdir>/control.json --entry entry/train.py \
        --workdir <dir> --host 127.0.0.1 --port <int> --workers <int> --name <endpoint-name>

(or, for one model, ``--artifact model.tar.gz --sha256 <hex>`` instead of ``--control``). The
control file (``endpoint_control.py``) lists the production variants and their weights.

Order of work, before anything listens, for every variant:

1. the artifact is read once into memory and the SHA-256 of those bytes is checked against the
   one recorded (joblib is pickle: an unverified file is never opened as a model) — mismatch:
   exit 3, ``ERROR: ...`` on stderr;
2. the same bytes (never the path again) are extracted into ``<workdir>/models/<sha256>/``,
   refusing absolute paths, ``..``, links and anything over the size caps of ``churn_core.storage.unpack``
   before writing (exit 6: refused for good, like a mismatch; retrying cannot help); a write that fails
   (full disk, quota, read-only, permissions) exits 7 with the disk's message, and the supervisor retries;
3. the entry script is imported by path and its ``model_fn`` loads the model (exit 4 on failure);
4. gunicorn's asyncio worker serves ``endpoint_app.EndpointApp`` with the models preloaded
   (workers fork with them); each worker follows later changes of the control file.

``--probe`` does steps 1–3 for one artifact and one test prediction, then exits 0: an update
runs it before any worker is asked to load a new model, so a model that cannot load never
replaces one that serves. Every variant a control file names, at start, in a probe or in a
worker swapping to a new generation, goes through :func:`prepare_variant`: bytes read once,
verified, and only those bytes unpacked (an unpacked folder is reused only within the
endpoint's own private folder, ``endpoints/<name>.<uid>``, where it was made from verified bytes).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shutil
import socket
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

from churn_core.storage.artifacts import sha256_bytes
from churn_core.processes.child import exit_status, flush_output
from churn_core.backends.local.endpoint.app import MAX_BODY_BYTES  # noqa: F401 - the payload limit, as tests import it
from churn_core.backends.local.endpoint.control import (
    CONTROL_FILE, Control, LiveEndpoint, LoadedVariant, RoutingTable, VariantSpec, models_dir, read_control,
    write_control,
)
from churn_core.backends.local.endpoint.stats import WorkerStats, read_stats  # noqa: F401 - read_stats: the platform's import
from churn_core.paths import ENTRY_DIR
from churn_core.storage.private_files import set_process_umask
from churn_core.errors import DiskError
from churn_core.storage.disk import disk_writes
from churn_core.storage.unpack import ArtifactRefused, extract, read_file_once
from churn_core.processes.warm.requests import entry_allowed
from churn_core.wording import plural

INVOCATION_TIMEOUT_S = 60  # SageMaker real-time invocation time-out
# gunicorn's asyncio worker: slow or stuck clients wait on the event loop instead of holding a thread
# (a gthread worker with 4 threads was starved by 4 clients trickling bytes; measured in docs/benchmarks.md).
WORKER_CLASS = "asgi"
WORKER_CONNECTIONS = 1000
ENTRY_MODULE = "churn_entry"

EXIT_BAD_ARGS = 2
EXIT_SHA_MISMATCH = 3
EXIT_LOAD_FAILED = 4
EXIT_PORT_BUSY = 5
EXIT_ARTIFACT_REFUSED = 6  # unsafe member, over a size cap, or not a .tar.gz: the same bytes fail every time
EXIT_DISK_FULL = 7  # a write failed (full disk, quota, read-only, permissions): restarted, it may work

class ServingError(Exception):
    """A start-up failure; ``code`` is the process exit status."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


# ------------------------------------------------------------------------- helpers


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def verify_artifact(artifact: Path, expected: str) -> bytes:
    """The artifact's bytes, read once, when their SHA-256 is ``expected``: extract these, never the path."""
    if not artifact.is_file():
        raise ServingError(
            f"model artifact {artifact} does not exist; redeploy from a completed training job.", EXIT_LOAD_FAILED
        )
    wanted = (expected or "").strip().lower()
    if not re.fullmatch(r"[0-9a-f]{64}", wanted):
        raise ServingError(
            f"--sha256 must be the 64-hex-digit SHA-256 recorded when the model was trained (got {expected!r}).",
            EXIT_SHA_MISMATCH,
        )
    try:
        data = read_file_once(artifact)
    except ArtifactRefused as err:
        raise ServingError(str(err), EXIT_ARTIFACT_REFUSED) from None
    except OSError as err:
        raise ServingError(f"cannot read the model artifact {artifact} ({err}).", EXIT_LOAD_FAILED) from None
    actual = sha256_bytes(data)
    if actual != wanted:
        raise ServingError(
            f"model artifact SHA-256 mismatch: expected {wanted}, got {actual}; the file was changed after training. "
            "Retrain or redeploy from a verified job.",
            EXIT_SHA_MISMATCH,
        )
    return data


def safe_extract(artifact: bytes | Path, dest: Path) -> list[str]:
    """Extract regular files and folders only; refuse absolute paths, ``..``, links and oversized members.

    ``artifact``: the verified bytes (a path is read once first). Every member is checked before
    anything is written. Returns the extracted file names."""
    try:
        data = bytes(artifact) if isinstance(artifact, (bytes, bytearray)) else read_file_once(Path(artifact))
        return extract(data, dest)
    except ArtifactRefused as err:
        raise ServingError(str(err), EXIT_ARTIFACT_REFUSED) from None
    except DiskError as err:
        raise ServingError(str(err), EXIT_DISK_FULL) from None
    except OSError as err:
        raise ServingError(f"the model artifact could not be extracted ({err}).", EXIT_LOAD_FAILED) from None


@contextmanager
def _disk_writes(doing: str, where: Path) -> Iterator[None]:
    """A write error of the disk ends the start with its own message and exit code (the supervisor retries)."""
    try:
        with disk_writes(doing, where):
            yield
    except DiskError as err:
        raise ServingError(str(err), EXIT_DISK_FULL) from None


def load_entry(entry: Path):
    """Import the training/inference script by path (it imports nothing from the project)."""
    if not entry.is_file():
        raise ServingError(f"entry script {entry} does not exist.", EXIT_LOAD_FAILED)
    spec = importlib.util.spec_from_file_location(ENTRY_MODULE, str(entry))
    if spec is None or spec.loader is None:
        raise ServingError(f"cannot import the entry script {entry}.", EXIT_LOAD_FAILED)
    module = importlib.util.module_from_spec(spec)
    sys.modules[ENTRY_MODULE] = module
    spec.loader.exec_module(module)
    for handler in ("model_fn", "input_fn", "predict_fn", "output_fn"):
        if not callable(getattr(module, handler, None)):
            raise ServingError(f"the entry script {entry} has no {handler}().", EXIT_LOAD_FAILED)
    return module


# ------------------------------------------------------------------------- models


def prepare_variant(spec: VariantSpec, workdir: Path, verified: bytes | None = None) -> Path:
    """Verify the artifact and unpack it into ``<workdir>/models/<sha256>/`` (once per artifact).

    The artifact is read once and its SHA-256 checked on those bytes (``verified``: the bytes
    ``verify_artifact`` already returned for this spec); only these bytes are unpacked, never the path
    again, so a file swapped after the check is never extracted. Unsafe or oversized: exit 6."""
    if verified is None:
        verified = verify_artifact(Path(spec.artifact), spec.sha256)  # first: nothing unpacked or unpickled before
    target = models_dir(workdir) / spec.sha256
    if (target / ".verified").is_file():
        return target
    staging = models_dir(workdir) / f".{spec.sha256}.{os.getpid()}"
    try:
        with _disk_writes(f"unpack the model of variant {spec.name}", workdir):
            models_dir(workdir).mkdir(mode=0o700, parents=True, exist_ok=True)
            safe_extract(verified, staging)
            (staging / ".verified").write_text(spec.sha256)
    except ServingError:
        shutil.rmtree(staging, ignore_errors=True)  # nothing half-unpacked stays
        raise
    if target.exists() and not (target / ".verified").is_file():
        shutil.rmtree(target, ignore_errors=True)  # a half-made folder of a process that died
    try:
        os.replace(staging, target)
    except OSError:  # another worker unpacked the same verified artifact first: use its folder
        shutil.rmtree(staging, ignore_errors=True)
        if not (target / ".verified").is_file():
            raise
    return target


def load_variant(entry, spec: VariantSpec, workdir: Path, verified: bytes | None = None) -> dict:
    """The model dict of a variant, unpacked from verified bytes; its own threshold when it has one.

    A folder ``<workdir>/models/<sha256>/`` marked ``.verified`` was unpacked from bytes that passed the
    check by this endpoint's own processes (the probe, or another worker) in its private folder."""
    model_dir = models_dir(workdir) / spec.sha256
    if verified is not None or not (model_dir / ".verified").is_file():
        model_dir = prepare_variant(spec, workdir, verified)
    try:
        model = entry.model_fn(str(model_dir))
    except Exception as err:
        raise ServingError(f"model_fn could not load the model of variant {spec.name}: {type(err).__name__}: {err}",
                           EXIT_LOAD_FAILED) from None
    if spec.threshold is not None:
        model = dict(model, threshold=float(spec.threshold))
    return dict(model, variant=spec.name)  # as CHURN_VARIANT tells the container on SageMaker


def probe(entry, spec: VariantSpec, workdir: Path) -> None:
    """Verify, unpack, load a variant and score one typical customer: it would serve if swapped in.

    The artifact is verified here every time (read once, hashed); an unpacked folder of an earlier probe is
    reused only after that check, and a new one is unpacked from the very bytes that passed it."""
    model = load_variant(entry, spec, workdir, verify_artifact(Path(spec.artifact), spec.sha256))
    from churn_core.endpoints.forms import example_record

    record = {k: v for k, v in example_record(model["schema"]).items() if v is not None}
    try:
        entry.predict_fn(entry.input_fn(json.dumps({"instances": [record]}), "application/json"), model)
    except Exception as err:
        raise ServingError(f"the model of variant {spec.name} loads but cannot score a typical customer: "
                           f"{type(err).__name__}: {err}", EXIT_LOAD_FAILED) from None


# ------------------------------------------------------------------------- gunicorn


def _server_options(host: str, port: int, workers: int, name: str, stats: WorkerStats, app) -> dict:
    def worker_exit(server, worker) -> None:  # noqa: ARG001 - gunicorn hook signature
        # Runs in the worker's ``finally`` while its SystemExit propagates. Flush, then leave with the
        # same status but without interpreter teardown: tearing down numpy/scipy/scikit-learn takes
        # seconds, so a stop or a worker recycle would otherwise hit graceful_timeout and end in SIGKILL.
        if app.capture is not None:
            app.capture.flush()
        stats.flush()
        exc = sys.exc_info()[1]
        code = exit_status(exc) if isinstance(exc, SystemExit) else (1 if exc is not None else 0)
        flush_output()
        os._exit(code & 0xFF)

    def child_exit(server, worker) -> None:  # noqa: ARG001 - in the arbiter: the library's multiprocess rule
        if app.metrics is not None:
            app.metrics.worker_exit(worker.pid)

    options = {
        "bind": f"{host}:{port}",
        "workers": workers,
        "worker_class": WORKER_CLASS,
        "worker_connections": WORKER_CONNECTIONS,
        "asgi_loop": "asyncio",
        "asgi_lifespan": "on",
        "keepalive": 5,
        "preload_app": True,
        "timeout": INVOCATION_TIMEOUT_S,
        "graceful_timeout": 5,
        "accesslog": None,
        "errorlog": "-",
        "loglevel": "info",
        # ps shows "gunicorn: master [churn_core.backends.local.endpoint.server --name NAME]"
        "proc_name": f"churn_core.backends.local.endpoint.server --name {name}",
        "worker_exit": worker_exit,
        "child_exit": child_exit,
        # gunicorn >= 25: one shared ~/.gunicorn/gunicorn.ctl would clash between endpoints
        "control_socket_disable": True,
        "limit_request_line": 8190,
    }
    if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):
        options["worker_tmp_dir"] = "/dev/shm"  # heartbeat file off disk
    return options


def serve(app, options: dict) -> None:
    from gunicorn.app.base import BaseApplication

    from churn_core.backends.local.endpoint.app import install_json_protocol_errors

    install_json_protocol_errors()

    class _Application(BaseApplication):
        def load_config(self) -> None:
            for key, value in options.items():
                if key in self.cfg.settings:  # older gunicorn lacks some settings
                    self.cfg.set(key, value)

        def load(self):
            return app

    _Application().run()


def _check_port(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as err:
            raise ServingError(f"cannot listen on {host}:{port} ({err.strerror}); choose another port.",
                               EXIT_PORT_BUSY) from None


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"ERROR: bad serving arguments: {message}.\n")
        sys.exit(EXIT_BAD_ARGS)


def _parse_args(argv: Optional[list]) -> argparse.Namespace:
    parser = _Parser(prog="python -m churn_core.backends.local.endpoint.server",
                     description="Serve one endpoint's models.")
    parser.add_argument("--control", type=Path, help="control.json listing the production variants")
    parser.add_argument("--artifact", type=Path, help="model.tar.gz produced by training (one model, no --control)")
    parser.add_argument("--sha256", help="SHA-256 recorded when the artifact was produced")
    parser.add_argument("--entry", required=True, type=Path, help="path to entry/train.py (model_fn, input_fn, ...)")
    parser.add_argument("--workdir", required=True, type=Path, help="folder for the extracted models and stats")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int)
    parser.add_argument("--workers", default=1, type=int)
    parser.add_argument("--name", help="endpoint name (checked in /endpoints/<name>/invocations)")
    parser.add_argument("--probe", action="store_true", help="check that --artifact loads and scores, then exit")
    args = parser.parse_args(argv)
    if args.control is None and (args.artifact is None or args.sha256 is None):
        parser.error("give --control, or --artifact with --sha256")
    if not args.probe:
        if args.port is None or not 1 <= args.port <= 65535:
            parser.error(f"--port must be 1..65535 (got {args.port})")
        if not args.name:
            parser.error("--name is required")
    if not 1 <= args.workers <= 64:
        parser.error(f"--workers must be 1..64 (got {args.workers})")
    if not entry_allowed(args.entry):  # the model's code is the project's entry/ script, never another file
        parser.error(f"--entry must be a script of the project's entry/ folder ({ENTRY_DIR}), got {args.entry}")
    return args


def _control(args: argparse.Namespace, workdir: Path) -> Control:
    if args.control is not None:
        if args.control.name != CONTROL_FILE or not args.control.is_file():
            raise ServingError(f"--control must name an existing {CONTROL_FILE} (got {args.control}).", EXIT_BAD_ARGS)
        return read_control(args.control.parent)
    control = Control(generation=1, endpoint=args.name or "",
                      variants=(VariantSpec("AllTraffic", str(args.artifact), (args.sha256 or "").strip().lower()),))
    write_control(workdir, control)
    return control


def _raise_descriptor_limit() -> None:
    """Connections are descriptors: take the hard limit (laptops start at 256), up to 10,240."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        wanted = min(hard if hard != resource.RLIM_INFINITY else 10240, 10240)
        if soft < wanted:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    except (ImportError, ValueError, OSError):
        pass


def main(argv: Optional[list] = None) -> int:
    args = _parse_args(argv)
    set_process_umask()  # a probe is started by the dashboard itself: what it unpacks is private too
    _raise_descriptor_limit()
    workdir = args.workdir.resolve()
    try:
        with _disk_writes("create the endpoint's folder", workdir.parent):
            workdir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if args.probe:
            spec = VariantSpec("probe", str(args.artifact), (args.sha256 or "").strip().lower())
            probe(load_entry(args.entry.resolve()), spec, workdir)
            return 0
        control = _control(args, workdir)
        # Every artifact is read once and verified before anything listens or loads; only those bytes are unpacked.
        verified = [verify_artifact(Path(spec.artifact), spec.sha256) for spec in control.variants]
        _check_port(args.host, args.port)
        entry = load_entry(args.entry.resolve())
        variants = [LoadedVariant(spec, load_variant(entry, spec, workdir, data))
                    for spec, data in zip(control.variants, verified, strict=True)]
        del verified
    except ServingError as err:
        sys.stderr.write("ERROR: " + " ".join(str(err).split()) + "\n")
        sys.stderr.flush()
        return err.code
    app = build_app(entry, control, variants, args.name, workdir, args.host)
    sys.stderr.write(f"serving endpoint {args.name!r} on http://{args.host}:{args.port} with "
                     f"{plural(args.workers, 'worker')}: {', '.join(f'{v.name} ({v.weight:g})' for v in variants)}\n")
    sys.stderr.flush()
    try:
        serve(app, _server_options(args.host, args.port, args.workers, args.name, app.stats, app))
    except SystemExit as exc:  # gunicorn's arbiter ends with sys.exit(status)
        return exit_status(exc)
    return 0


def build_app(entry, control: Control, variants: list, name: str, workdir: Path, host: str = "127.0.0.1"):
    """The endpoint application with its preloaded table, statistics, metrics and capture writer."""
    from churn_core.backends.local.endpoint.capture_writer import CaptureWriter
    from churn_core.monitoring.capture_bounds import CaptureBounds
    from churn_core.backends.local.endpoint.app import EndpointApp
    from churn_core.backends.local.endpoint.auth import TokenGate

    prometheus_dir = workdir / "prometheus"
    shutil.rmtree(prometheus_dir, ignore_errors=True)
    prometheus_dir.mkdir(parents=True, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(prometheus_dir)  # before prometheus_client is imported
    from churn_core.backends.local.endpoint.stats import PrometheusMetrics

    from churn_core.monitoring.capture import latest_report_key

    metrics = PrometheusMetrics(Path(control.capture_root) / latest_report_key(name) if control.capture_root else None)
    live = LiveEndpoint(workdir, lambda spec: load_variant(entry, spec, workdir),
                        on_swap=lambda table: metrics.serving(list(table.variants.values())))
    live.table = RoutingTable(control.generation, variants, control.capture_percent)
    live.mtime = None
    capture = CaptureWriter(Path(control.capture_root), name, on_write=metrics.captured.inc, workdir=workdir,
                            bounds=CaptureBounds.from_dict(control.extra.get("capture_bounds"))) \
        if control.capture_root else None
    return EndpointApp(entry, live, name, workdir, WorkerStats(workdir / "stats"), metrics, capture,
                       TokenGate(workdir, host))


if __name__ == "__main__":
    status = main()
    flush_output()
    os._exit(status)  # skip interpreter teardown of the scientific stack (seconds); nothing is pending
