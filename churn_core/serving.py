"""The local endpoint server: one detached process per endpoint, SageMaker container contract.

Started by the local backend as::

    python -m churn_core.serving --artifact model.tar.gz --sha256 <hex> --entry entry/train.py \
        --workdir <dir> --host 127.0.0.1 --port <int> --workers <int> --name <endpoint-name>

Order of work, before anything listens:

1. the artifact is read once into memory and the SHA-256 of those bytes is checked against
   ``--sha256`` (joblib is pickle: an unverified file is never opened as a model) — mismatch:
   exit 3, ``ERROR: ...`` on stderr;
2. the same bytes (never the path again) are extracted into ``<workdir>/model/``, refusing
   absolute paths, ``..``, links and anything over the size caps of ``churn_core.unpack`` before
   writing (exit 6: refused for good, like a mismatch; retrying cannot help);
3. the entry script is imported by path and its ``model_fn`` loads the model (exit 4 on failure);
4. gunicorn serves a small WSGI app with the model preloaded (workers fork with it).

Routes: ``GET /ping``, ``POST /invocations``, ``POST /endpoints/<name>/invocations`` (what boto3's
``sagemaker-runtime`` client calls with ``endpoint_url``), ``GET /stats``. Every error body is JSON
``{"error": "..."}`` (plus ``"message"``, the field botocore reads for a ClientError's text).

Each worker keeps invocation counters in memory and writes them to ``<workdir>/stats/<pid>.json``
(atomically, at most every 0.5 s); :func:`read_stats` adds them up for the platform.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import socket
import sys
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

from churn_core.artifacts import sha256_bytes
from churn_core.child import exit_status, flush_output
from churn_core.paths import ENTRY_DIR
from churn_core.unpack import ArtifactRefused, extract, read_file_once
from churn_core.warm_requests import entry_allowed

MAX_BODY_BYTES = 6 * 1024 * 1024  # SageMaker real-time endpoint payload limit
DRAIN_LIMIT_BYTES = 64 * 1024 * 1024  # read (and drop) up to this much of an oversized body so the client sees the 413
INVOCATION_TIMEOUT_S = 60  # SageMaker real-time invocation time-out
STATS_INTERVAL_S = 0.5
LATENCY_RING = 500
# Measured with a keep-alive client at concurrency 8, single-row requests: gthread with 4
# threads served the most requests/s with 1 and with 2 workers; sync closes the connection
# after every response (no keep-alive) and came last.
WORKER_CLASS = "gthread"
THREADS_PER_WORKER = 4
ENTRY_MODULE = "churn_entry"

EXIT_BAD_ARGS = 2
EXIT_SHA_MISMATCH = 3
EXIT_LOAD_FAILED = 4
EXIT_PORT_BUSY = 5
EXIT_ARTIFACT_REFUSED = 6  # unsafe member, over a size cap, or not a .tar.gz: the same bytes fail every time

_ENDPOINT_PATH = re.compile(r"^/endpoints/([^/]+)/invocations/?$")
_JSON = "application/json"


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
    except OSError as err:
        raise ServingError(f"the model artifact could not be extracted ({err}).", EXIT_LOAD_FAILED) from None


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


# ------------------------------------------------------------------------- stats


class WorkerStats:
    """In-memory counters of one worker process, written to ``<folder>/<pid>.json``."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.lock = threading.Lock()
        self.pid: Optional[int] = None
        self._reset()

    def _reset(self) -> None:
        self.pid = os.getpid()
        self.invocations = 0
        self.errors = 0
        self.latency_sum_ms = 0.0
        self.latency_max_ms = 0.0
        self.ring: deque = deque(maxlen=LATENCY_RING)
        self.last_invoked_at: Optional[float] = None
        self.last_write = 0.0
        self.dirty = False
        self.started_at = time.time()
        self._flusher: Optional[threading.Thread] = None
        previous = self.path()
        if previous.exists():  # a dead worker had this pid: carry its counts on
            try:
                data = json.loads(previous.read_text())
                self.invocations = int(data.get("invocations", 0))
                self.errors = int(data.get("errors", 0))
                self.latency_sum_ms = float(data.get("latency_sum_ms", 0.0))
                self.latency_max_ms = float(data.get("latency_max_ms", 0.0))
                self.ring.extend(float(x) for x in data.get("latencies_ms", []))
                self.last_invoked_at = data.get("last_invoked_at")
            except (OSError, ValueError, TypeError):
                pass

    def path(self) -> Path:
        return self.folder / f"{os.getpid()}.json"

    def _ensure_process(self) -> None:
        if self.pid != os.getpid():  # forked: start from this worker's own file
            self._reset()

    def start_flusher(self) -> None:
        """A daemon thread writing pending counts every 0.5 s (so the last request is never lost)."""
        self._ensure_process()
        if self._flusher is not None and self._flusher.is_alive():
            return

        def loop() -> None:
            while True:
                time.sleep(STATS_INTERVAL_S)
                if self.dirty:
                    self.flush()

        self._flusher = threading.Thread(target=loop, name="stats-flusher", daemon=True)
        self._flusher.start()

    def record(self, latency_ms: float, error: bool) -> None:
        with self.lock:
            self._ensure_process()
            self.invocations += 1
            if error:
                self.errors += 1
            self.latency_sum_ms += latency_ms
            if latency_ms > self.latency_max_ms:
                self.latency_max_ms = latency_ms
            self.ring.append(round(latency_ms, 3))
            now = time.time()
            self.last_invoked_at = now
            self.dirty = True
            due = now - self.last_write >= STATS_INTERVAL_S
        if due:
            self.flush()

    def snapshot(self) -> dict:
        return {
            "pid": os.getpid(),
            "invocations": self.invocations,
            "errors": self.errors,
            "latency_sum_ms": round(self.latency_sum_ms, 3),
            "latency_max_ms": round(self.latency_max_ms, 3),
            "latencies_ms": list(self.ring),
            "last_invoked_at": self.last_invoked_at,
            "started_at": self.started_at,
            "written_at": time.time(),
        }

    def flush(self) -> None:
        with self.lock:
            self._ensure_process()
            payload = self.snapshot()
            self.dirty = False
            self.last_write = time.time()
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            target = self.path()
            tmp = target.with_name(f".{target.name}.{threading.get_ident()}.tmp")
            tmp.write_text(json.dumps(payload))
            os.replace(tmp, target)
        except OSError:
            pass  # stats are best effort; never fail a request over them


def _percentile(sorted_values: list, q: float) -> Optional[float]:
    if not sorted_values:
        return None
    rank = max(1, int(-(-q * len(sorted_values) // 100)))  # nearest rank
    return round(float(sorted_values[min(rank, len(sorted_values)) - 1]), 3)


def read_stats(workdir: Path) -> dict:
    """Add up every worker's stats file under ``<workdir>/stats``.

    Returns {"invocations", "errors", "avg_latency_ms", "p50_latency_ms", "p99_latency_ms",
    "last_invoked_at"}; latencies are server-side milliseconds, None where there is no data.
    """
    invocations = errors = 0
    latency_sum = 0.0
    latencies: list = []
    last: Optional[float] = None
    folder = Path(workdir) / "stats"
    files = sorted(folder.glob("*.json")) if folder.is_dir() else []
    for file in files:
        try:
            data = json.loads(file.read_text())
        except (OSError, ValueError):
            continue
        invocations += int(data.get("invocations") or 0)
        errors += int(data.get("errors") or 0)
        latency_sum += float(data.get("latency_sum_ms") or 0.0)
        latencies.extend(float(x) for x in data.get("latencies_ms") or [])
        when = data.get("last_invoked_at")
        if when is not None and (last is None or when > last):
            last = float(when)
    latencies.sort()
    return {
        "invocations": invocations,
        "errors": errors,
        "avg_latency_ms": round(latency_sum / invocations, 3) if invocations else None,
        "p50_latency_ms": _percentile(latencies, 50),
        "p99_latency_ms": _percentile(latencies, 99),
        "last_invoked_at": last,
    }


# ------------------------------------------------------------------------- WSGI app

_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    411: "Length Required",
    413: "Payload Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Entity",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def _status(code: int) -> str:
    return f"{code} {_REASONS.get(code, 'Error')}"


class _HttpError(Exception):
    def __init__(self, status: int, message: str, headers: Optional[list] = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or []


def _json_response(
    start_response: Callable, status: int, payload: Any, headers: Optional[list] = None
) -> Iterable[bytes]:
    body = json.dumps(payload).encode("utf-8")
    start_response(_status(status), [("Content-Type", _JSON), ("Content-Length", str(len(body)))] + (headers or []))
    return [body]


def _error(start_response: Callable, status: int, message: str, headers: Optional[list] = None) -> Iterable[bytes]:
    return _json_response(start_response, status, {"error": message, "message": message}, headers)


def _read_body(environ: dict) -> bytes:
    stream = environ["wsgi.input"]
    raw_length = (environ.get("CONTENT_LENGTH") or "").strip()
    if not raw_length:
        if "chunked" in (environ.get("HTTP_TRANSFER_ENCODING") or "").lower():
            data = stream.read(MAX_BODY_BYTES + 1)
            if len(data) > MAX_BODY_BYTES:
                raise _HttpError(
                    413,
                    f"request body is larger than the {MAX_BODY_BYTES // (1024 * 1024)} MB limit of a real-time "
                    "endpoint; split it into smaller requests or use batch scoring.",
                )
            return data
        raise _HttpError(411, "a Content-Length header is required on POST; send the body with its length.")
    try:
        length = int(raw_length)
        if length < 0:
            raise ValueError
    except ValueError:
        raise _HttpError(400, f"invalid Content-Length {raw_length!r}; it must be a whole number of bytes.") from None
    if length > MAX_BODY_BYTES:
        if length <= DRAIN_LIMIT_BYTES:  # consume it so the client can read our answer
            left = length
            while left > 0:
                chunk = stream.read(min(left, 1 << 20))
                if not chunk:
                    break
                left -= len(chunk)
        raise _HttpError(
            413,
            f"request body is {length} bytes, over the {MAX_BODY_BYTES} byte (6 MB) limit of a real-time endpoint; "
            "split it into smaller requests or use batch scoring.",
        )
    parts = []
    left = length
    while left > 0:
        chunk = stream.read(left)
        if not chunk:
            break
        parts.append(chunk)
        left -= len(chunk)
    if left:
        raise _HttpError(
            400, f"the request body ended after {length - left} of {length} bytes announced by Content-Length."
        )
    return b"".join(parts)


def make_app(module, model: Any, name: str, workdir: Path, stats: Optional[WorkerStats] = None) -> Callable:
    """The WSGI application serving one loaded model through the entry script's handlers."""
    input_fn, predict_fn, output_fn = module.input_fn, module.predict_fn, module.output_fn
    stats = stats if stats is not None else WorkerStats(Path(workdir) / "stats")
    ping_body = json.dumps({"status": "ok", "endpoint": name}).encode("utf-8")
    ping_headers = [("Content-Type", _JSON), ("Content-Length", str(len(ping_body)))]

    def invoke(environ: dict, start_response: Callable) -> Iterable[bytes]:
        started = time.perf_counter()
        status = 500
        try:
            body = _read_body(environ)
            parsed = input_fn(body, environ.get("CONTENT_TYPE") or "application/json")
            prediction = predict_fn(parsed, model)
            result = output_fn(prediction, environ.get("HTTP_ACCEPT") or "application/json")
            if isinstance(result, tuple):
                payload, content_type = result[0], result[1]
            else:
                payload, content_type = result, _JSON
            if isinstance(payload, str):
                payload = payload.encode("utf-8")
            elif not isinstance(payload, (bytes, bytearray)):
                payload = json.dumps(payload).encode("utf-8")
            status = 200
            start_response(
                "200 OK",
                [
                    ("Content-Type", content_type or _JSON),
                    ("Content-Length", str(len(payload))),
                    ("X-Amzn-Invoked-Production-Variant", "AllTraffic"),
                ],
            )
            return [bytes(payload)]
        except _HttpError as err:
            status = err.status
            return _error(start_response, err.status, err.message, err.headers)
        except Exception as err:  # InvalidInput (status_code) or a bug in a handler
            code = getattr(err, "status_code", None)
            if isinstance(code, int) and 400 <= code <= 599:
                status = code
                return _error(start_response, code, str(err))
            status = 500
            sys.stderr.write(f"invocation failed: {type(err).__name__}: {err}\n")
            return _error(start_response, 500, f"the model failed to score this request: {type(err).__name__}: {err}")
        finally:
            stats.record((time.perf_counter() - started) * 1000.0, status >= 400)

    def app(environ: dict, start_response: Callable) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET").upper()
        path = environ.get("PATH_INFO") or "/"
        try:
            if path == "/ping":
                if method not in ("GET", "HEAD"):
                    return _error(
                        start_response, 405, f"{method} is not allowed on /ping; use GET.", [("Allow", "GET, HEAD")]
                    )
                start_response("200 OK", list(ping_headers))
                return [b""] if method == "HEAD" else [ping_body]
            match = _ENDPOINT_PATH.match(path)
            if path in ("/invocations", "/invocations/") or match:
                if match and match.group(1) != name:
                    return _error(
                        start_response,
                        404,
                        f"endpoint {match.group(1)!r} is not served here; this server serves {name!r}.",
                    )
                if method != "POST":
                    return _error(
                        start_response,
                        405,
                        f"{method} is not allowed on {path}; use POST with the request in the body.",
                        [("Allow", "POST")],
                    )
                return invoke(environ, start_response)
            if path == "/stats":
                if method != "GET":
                    return _error(
                        start_response, 405, f"{method} is not allowed on /stats; use GET.", [("Allow", "GET")]
                    )
                return _json_response(start_response, 200, dict(read_stats(workdir), endpoint=name))
            return _error(
                start_response,
                404,
                f"no route {path!r}; use POST /invocations (or /endpoints/{name}/invocations) or GET /ping.",
            )
        except Exception as err:  # never let a request take the worker down
            return _error(start_response, 500, f"internal error: {type(err).__name__}: {err}")

    app.stats = stats  # type: ignore[attr-defined]
    return app


# ------------------------------------------------------------------------- gunicorn


def _server_options(host: str, port: int, workers: int, name: str, stats: WorkerStats) -> dict:
    def post_fork(server, worker) -> None:  # noqa: ARG001 - gunicorn hook signature
        stats.start_flusher()

    def worker_exit(server, worker) -> None:  # noqa: ARG001
        # Runs in the worker's ``finally`` while its SystemExit propagates. Flush the stats, then
        # leave with the same status but without interpreter teardown: tearing down numpy/scipy/
        # scikit-learn module state takes seconds, so a stop or a worker recycle would otherwise
        # hit graceful_timeout and end in SIGKILL (as multiprocessing does for its children).
        stats.flush()
        exc = sys.exc_info()[1]
        if isinstance(exc, SystemExit):
            code = exit_status(exc)
        else:
            code = 1 if exc is not None else 0
        flush_output()
        os._exit(code & 0xFF)

    options = {
        "bind": f"{host}:{port}",
        "workers": workers,
        "worker_class": WORKER_CLASS,
        "threads": THREADS_PER_WORKER,
        "keepalive": 5,
        "preload_app": True,
        "timeout": INVOCATION_TIMEOUT_S,
        "graceful_timeout": 5,
        "accesslog": None,
        "errorlog": "-",
        "loglevel": "info",
        # ps shows "gunicorn: master [churn_core.serving --name NAME]"
        "proc_name": f"churn_core.serving --name {name}",
        "post_fork": post_fork,
        "worker_exit": worker_exit,
        # gunicorn >= 25: one shared ~/.gunicorn/gunicorn.ctl would clash between endpoints
        "control_socket_disable": True,
        "limit_request_line": 8190,
    }
    if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):
        options["worker_tmp_dir"] = "/dev/shm"  # heartbeat file off disk
    return options


def _install_json_protocol_errors() -> None:
    """Make gunicorn's own answers to malformed HTTP (bad request line, negative Content-Length,
    oversized headers ...) JSON like every other error of the endpoint, instead of an HTML page.

    gunicorn's worker calls ``gunicorn.util.write_error`` for these; this process serves one
    endpoint only, so replacing it here affects nothing else.
    """
    from gunicorn import util

    def write_error(sock, status_int, reason, mesg) -> None:
        message = f"malformed HTTP request ({reason}): {mesg}; fix the request line and headers."
        body = json.dumps({"error": message, "message": message}).encode("utf-8")
        head = (
            f"HTTP/1.1 {int(status_int)} {reason}\r\nConnection: close\r\nContent-Type: {_JSON}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode("latin-1", "replace")
        util.write_nonblock(sock, head + body)

    util.write_error = write_error


def serve(app: Callable, options: dict) -> None:
    from gunicorn.app.base import BaseApplication

    _install_json_protocol_errors()

    class _Application(BaseApplication):
        def __init__(self) -> None:
            super().__init__()

        def load_config(self) -> None:
            for key, value in options.items():
                if key in self.cfg.settings:  # older gunicorn lacks some settings
                    self.cfg.set(key, value)

        def load(self) -> Callable:
            return app

    _Application().run()


def _check_port(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as err:
            raise ServingError(
                f"cannot listen on {host}:{port} ({err.strerror}); choose another port.", EXIT_PORT_BUSY
            ) from None


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"ERROR: bad serving arguments: {message}.\n")
        sys.exit(EXIT_BAD_ARGS)


def _parse_args(argv: Optional[list]) -> argparse.Namespace:
    parser = _Parser(prog="python -m churn_core.serving", description="Serve one model as a local endpoint.")
    parser.add_argument("--artifact", required=True, type=Path, help="model.tar.gz produced by training")
    parser.add_argument("--sha256", required=True, help="SHA-256 recorded when the artifact was produced")
    parser.add_argument("--entry", required=True, type=Path, help="path to entry/train.py (model_fn, input_fn, ...)")
    parser.add_argument("--workdir", required=True, type=Path, help="folder for the extracted model and stats")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", required=True, type=int)
    parser.add_argument("--workers", default=1, type=int)
    parser.add_argument("--name", required=True, help="endpoint name (checked in /endpoints/<name>/invocations)")
    args = parser.parse_args(argv)
    if not 1 <= args.port <= 65535:
        parser.error(f"--port must be 1..65535 (got {args.port})")
    if not 1 <= args.workers <= 64:
        parser.error(f"--workers must be 1..64 (got {args.workers})")
    if not entry_allowed(args.entry):  # the model's code is the project's entry/ script, never another file
        parser.error(f"--entry must be a script of the project's entry/ folder ({ENTRY_DIR}), got {args.entry}")
    return args


def prepare(args: argparse.Namespace, verified: bytes | None = None):
    """Verify, extract, import and load. Returns (module, model). Raises ServingError.

    ``verified``: the artifact's bytes as ``verify_artifact`` returned them (read and checked here if None);
    only these bytes are extracted."""
    if verified is None:
        verified = verify_artifact(args.artifact, args.sha256)  # first: nothing is unpacked or unpickled before
    workdir = args.workdir.resolve()
    workdir.mkdir(mode=0o700, parents=True, exist_ok=True)
    model_dir = workdir / "model"
    safe_extract(verified, model_dir)
    module = load_entry(args.entry.resolve())
    try:
        model = module.model_fn(str(model_dir))
    except Exception as err:
        raise ServingError(
            f"model_fn could not load the model: {type(err).__name__}: {err}", EXIT_LOAD_FAILED
        ) from None
    return module, model


def main(argv: Optional[list] = None) -> int:
    args = _parse_args(argv)
    try:
        verified = verify_artifact(args.artifact, args.sha256)  # before anything else
        _check_port(args.host, args.port)
        module, model = prepare(args, verified)
        del verified
    except ServingError as err:
        sys.stderr.write("ERROR: " + " ".join(str(err).split()) + "\n")
        sys.stderr.flush()
        return err.code
    workdir = args.workdir.resolve()
    stats = WorkerStats(workdir / "stats")
    app = make_app(module, model, args.name, workdir, stats)
    sys.stderr.write(
        f"serving endpoint {args.name!r} on http://{args.host}:{args.port} with {args.workers} worker(s)\n"
    )
    sys.stderr.flush()
    try:
        serve(app, _server_options(args.host, args.port, args.workers, args.name, stats))
    except SystemExit as exc:  # gunicorn's arbiter ends with sys.exit(status)
        return exit_status(exc)
    return 0


if __name__ == "__main__":
    status = main()
    flush_output()
    os._exit(status)  # skip interpreter teardown of the scientific stack (seconds); nothing is pending
