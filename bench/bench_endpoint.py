"""Endpoint: deploy → InService, and single-row / batch serving speed against MLflow's server.

    .venv/bin/python bench/bench_endpoint.py [--workers 1,2] [--requests 2000] [--seconds 20] [--short]

(a) Deploy → InService (``p.deploy(..., wait=True)``), median of ``--deploys`` (goal ≤ 2 s), with
    the warm process running (churn_core/warm.py forks the supervisor and the server with the
    libraries imported). Peers, interleaved: the same deploy without the warm process
    (``CHURN_WARM=0``), and the bare model server started directly in a new interpreter
    (``python -m churn_core.backends.local.endpoint.server``,
     spawn → /ping 200); where the time goes: its start-up phases
    timed in a fresh interpreter (imports, SHA-256, extract, import entry script, model_fn).
(b) Against ``mlflow models serve`` (bench/.mlflow-venv, same scikit-learn version) serving the
    *same fitted pipeline* from the job's model.tar.gz, with the same number of workers, in the
    same run: single-row latency p50/p99 and throughput at concurrency 1 and 8 (closed loop,
    keep-alive http.client connections, at most ``--requests`` requests or ``--seconds`` per
    level), and batch rows/s with 1,000-row JSON and CSV bodies. Goals: ours ≥ 3× MLflow's
    single-row throughput at concurrency 8, and p50 ≤ 1/3 of MLflow's.
(c) In-process: input_fn/predict_fn/output_fn per call (our handler) vs the fitted pipeline's
    predict_proba on a one-row DataFrame (what MLflow's pyfunc does per request), with a cProfile
    of our handler chain.
(d) Our server with other settings (every request in the predict thread pool instead of small ones
    on the event loop) and the previous model server (gunicorn gthread, commit
    ``--previous-commit``, its churn_core/ and entry/ taken with ``git archive``), same model,
    alternating rounds.

Everything listens on 127.0.0.1; every process started is stopped by its PID/process group.
"""

from __future__ import annotations

import argparse
import cProfile
import csv
import io
import json
import os
import pstats
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (BENCH, FEATURES, MLFLOW_VENV, REFERENCE_CSV, ROOT, SEED_ROW, VENV_PY, Cleanup,  # noqa: E402
                     kill_group, load_rounds, loadavg, machine, median, platform_cleanup, print_table, ratio,
                     start_warm_process, temp_home, wait_http, without_warm_process, write_results)

DEPLOY_GOAL_S = 2.0
THROUGHPUT_GOAL = 3.0  # ours / MLflow at concurrency 8
P50_GOAL = 1 / 3  # ours / MLflow
JSON = {"Content-Type": "application/json", "Accept": "application/json"}
CSV = {"Content-Type": "text/csv", "Accept": "application/json"}

PHASES = r"""
import json, sys, time
t = {}
t0 = time.perf_counter()
from pathlib import Path
from churn_core import serving
import gunicorn.app.base
t["import serving+gunicorn"] = time.perf_counter() - t0
artifact, sha, workdir = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
s = time.perf_counter(); data = serving.verify_artifact(artifact, sha); t["verify sha256"] = time.perf_counter() - s
s = time.perf_counter(); serving.safe_extract(data, workdir / "model"); t["extract"] = time.perf_counter() - s
s = time.perf_counter(); module = serving.load_entry(Path(sys.argv[4])); t["import entry"] = time.perf_counter() - s
s = time.perf_counter(); import numpy, pandas; t["model_fn: numpy+pandas import"] = time.perf_counter() - s
s = time.perf_counter(); import joblib, sklearn.ensemble, sklearn.compose, sklearn.pipeline, sklearn.impute
t["model_fn: sklearn+joblib import"] = time.perf_counter() - s
s = time.perf_counter(); model = module.model_fn(str(workdir / "model"))
t["model_fn: load + fast-path check"] = time.perf_counter() - s
t["total"] = time.perf_counter() - t0
print(json.dumps(t))
"""


# ------------------------------------------------------------------------------ helpers


def train_model(p, label: str, data: bytes, trees: int) -> str:
    p.upload_dataset(label, data)
    name = f"bench-endpoint-{label}"
    p.start_training(label, {"algorithm": "random_forest", "n_estimators": trees}, name=name)
    deadline = time.monotonic() + 600
    while (job := p.describe_training(name)).status in ("InProgress", "Stopping"):
        if time.monotonic() > deadline:
            raise TimeoutError(f"training {name} did not finish in 600 s")
        time.sleep(0.1)
    if job.status != "Completed":
        raise RuntimeError(f"training {name} ended {job.status}: {job.failure_reason}")
    return name


_CLOCK_OFFSET: list[float] = []


def create_time_offset() -> float:
    """psutil's create_time() is boot time (whole seconds, from /proc/stat) + start ticks, so it can be
    off from time.time() by up to ~1 s: measure that offset once by spawning short processes."""
    import psutil

    if not _CLOCK_OFFSET:
        samples = []
        for _ in range(5):
            t0 = time.time()
            proc = subprocess.Popen(["sleep", "0.2"])
            samples.append(psutil.Process(proc.pid).create_time() - t0)
            proc.wait()
        _CLOCK_OFFSET.append(median(samples))
    return _CLOCK_OFFSET[0]


def deploy_timed(p, model: str, name: str, workers: int) -> dict:
    """p.deploy(wait=True) → InService, split with the catalog timestamps and the processes' start times."""
    import psutil

    wall0, t0 = time.time(), time.perf_counter()
    ep = p.deploy(model, name, "ml.m5.large", workers, wait=True, timeout=180)
    seconds = time.perf_counter() - t0
    if ep.status != "InService":
        raise RuntimeError(f"{name} is {ep.status}: {ep.failure_reason}")
    row = p.catalog.one("SELECT * FROM endpoints WHERE name = ?", (name,))
    out = {
        "seconds": round(seconds, 3),
        "catalog_seconds": round(row["in_service_at"] - row["created_at"], 3),
        "url": ep.url,
        "loadavg1": loadavg()[0],
    }
    try:
        offset = create_time_offset()
        supervisor = psutil.Process(row["pid"]).create_time() - offset
        server = psutil.Process(row["server_pid"]).create_time() - offset
        out.update(
            {
                "deploy call → catalog rows": round(row["created_at"] - wall0, 3),
                "catalog rows → supervisor spawned": round(supervisor - row["created_at"], 3),
                "supervisor start → server spawned": round(server - supervisor, 3),
                "server start → /ping ok → InService": round(row["in_service_at"] - server, 3),
                "InService → wait() returns": round(wall0 + seconds - row["in_service_at"], 3),
            }
        )
    except (psutil.Error, TypeError):
        pass
    return out


def bare_server_start(artifact: Path, sha: str, workdir: Path, port: int, cleanup: Cleanup) -> float:
    """Spawn the bare model server (``-m churn_core.backends.local.endpoint.server``) ourselves, with no supervisor
    and no catalog: seconds to /ping 200."""
    log = open(workdir.parent / f"bare-server-{port}.log", "ab")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [
            str(VENV_PY),
            "-m",
            "churn_core.backends.local.endpoint.server",
            "--artifact",
            str(artifact),
            "--sha256",
            sha,
            "--entry",
            str(ROOT / "entry" / "train.py"),
            "--workdir",
            str(workdir),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--name",
            "bare",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
        cwd=str(ROOT),
        start_new_session=True,
    )
    cleanup.add_group(f"bare server {proc.pid}", proc.pid)
    try:
        wait_http(f"http://127.0.0.1:{port}/ping", timeout=180, proc=proc)
        return time.perf_counter() - t0
    finally:
        kill_group(proc.pid)
        log.close()


VARIANT_LAUNCHER = (
    "import sys, churn_core.backends.local.endpoint.server as s, churn_core.backends.local.endpoint.app as a; "
    "a.PREDICT_THREADS = int(sys.argv[1]); "
    "a.INLINE_MAX_BYTES = int(sys.argv[2]); sys.exit(s.main(sys.argv[3:]))"
)
PREVIOUS_SERVER_COMMIT = "73f304e"  # the last commit serving with gunicorn gthread (1 worker x 4 threads per worker)


def previous_tree(commit: str, dest: Path) -> Path | None:
    """churn_core/ and entry/ as of ``commit`` (git archive), to run the previous model server beside ours."""
    dest.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit, "churn_core", "entry"], capture_output=True,
                             timeout=120)
    if archive.returncode != 0:
        print(f"  previous server skipped: git archive {commit} failed: {archive.stderr.decode()[-300:]}")
        return None
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True, timeout=120)
    return dest


def start_variant(
    artifact: Path, sha: str, workdir: Path, port: int, workers: int, launcher: list[str], cleanup: Cleanup,
    root: Path = ROOT,
) -> subprocess.Popen:
    """Our model server with other settings (module constants patched in the child only; churn_core itself
    is unchanged), or the previous server's code from ``root``."""
    workdir.mkdir(parents=True, exist_ok=True)
    log = open(workdir / "server.log", "ab")
    env = dict(os.environ, PYTHONPATH=str(root))
    proc = subprocess.Popen(
        [
            str(VENV_PY),
            *launcher,
            "--artifact",
            str(artifact),
            "--sha256",
            sha,
            "--entry",
            str(root / "entry" / "train.py"),
            "--workdir",
            str(workdir),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--name",
            "variant",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
        cwd=str(root),
        start_new_session=True,
    )
    log.close()
    cleanup.add_group(f"variant server {proc.pid}", proc.pid)
    wait_http(f"http://127.0.0.1:{port}/ping", timeout=180, proc=proc)
    return proc


def start_phases(artifact: Path, sha: str, workdir: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run(
        [str(VENV_PY), "-c", PHASES, str(artifact), sha, str(workdir), str(ROOT / "entry" / "train.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-800:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def export_to_mlflow(p, model: str, work: Path) -> Path:
    """Verify the job's model.tar.gz against the catalog, extract it, save the pipeline as an MLflow model."""
    from churn_core.backends.local.endpoint.server import safe_extract
    from churn_core.storage.unpack import read_verified

    row = p.get_model(model)
    # one read: the bytes extracted are the bytes checked against the SHA-256 recorded at training
    verified = read_verified(p.store.path(row["artifact_key"]), row["artifact_sha256"])
    extracted = work / "extracted"
    safe_extract(verified, extracted)
    target = work / "mlflow-model"
    out = subprocess.run(
        [str(MLFLOW_VENV / "bin" / "python"), str(BENCH / "mlflow_export.py"), str(extracted), str(target)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=str(work),
    )
    if out.returncode != 0:
        raise RuntimeError(f"MLflow export failed: {out.stderr[-1500:]}")
    print(f"  MLflow model: {out.stdout.strip().splitlines()[-1]}")
    return target


def start_mlflow(
    model_path: Path, port: int, workers: int, work: Path, cleanup: Cleanup
) -> tuple[subprocess.Popen, float]:
    env = dict(os.environ)
    env["PATH"] = f"{MLFLOW_VENV / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["MLFLOW_TRACKING_URI"] = (work / "mlruns").as_uri()
    env.pop("PYTHONPATH", None)
    log = open(work / f"mlflow-{port}.log", "ab")
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [
            str(MLFLOW_VENV / "bin" / "mlflow"),
            "models",
            "serve",
            "-m",
            str(model_path),
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "--env-manager",
            "local",
            "-w",
            str(workers),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
        cwd=str(work),
        start_new_session=True,
    )
    cleanup.add_group(f"mlflow server {proc.pid}", proc.pid)
    log.close()
    wait_http(f"http://127.0.0.1:{port}/ping", timeout=300, proc=proc)
    return proc, time.perf_counter() - t0


def reference_rows(n: int) -> list[list[float]]:
    rows = []
    with open(REFERENCE_CSV, newline="") as fh:
        for rec in csv.DictReader(fh):
            rows.append([float(rec[f]) for f in FEATURES])
            if len(rows) >= n:
                break
    while len(rows) < n:  # the sample-only fallback: repeat
        rows.extend(rows[: n - len(rows)])
    return rows


def bodies(rows: list[list[float]]) -> dict:
    seed_ours = json.dumps({"Input": [SEED_ROW]}).encode()
    seed_mlflow = json.dumps({"dataframe_split": {"columns": FEATURES, "data": [SEED_ROW]}}).encode()
    csv_plain = "\n".join(",".join(repr(v) for v in r) for r in rows).encode()
    csv_header = (",".join(FEATURES) + "\n").encode() + csv_plain
    return {
        "seed_ours": seed_ours,
        "seed_mlflow": seed_mlflow,
        "batch_ours_json": json.dumps({"instances": [dict(zip(FEATURES, r, strict=True)) for r in rows]}).encode(),
        "batch_ours_rows": json.dumps({"Input": rows}).encode(),
        "batch_ours_csv": csv_plain,
        "batch_mlflow_json": json.dumps({"dataframe_split": {"columns": FEATURES, "data": rows}}).encode(),
        "batch_mlflow_csv": csv_header,
    }


def post(port: int, body: bytes, headers: dict) -> dict:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("POST", "/invocations", body=body, headers=headers)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    if resp.status != 200:
        raise RuntimeError(f"HTTP {resp.status}: {data[:300]!r}")
    return json.loads(data)


def ours_ok(_status: int, data: bytes) -> bool:
    return data.startswith(b'{"Output"')


def mlflow_ok(_status: int, data: bytes) -> bool:
    return data.startswith(b'{"predictions"')


def _timeit(fns: dict, reps: int, warm: int = 5) -> dict:
    """Interleaved timing (each rep runs every function once), so load drift hits all alike."""
    for fn in fns.values():
        for _ in range(warm):
            fn()
    times: dict = {k: [] for k in fns}
    for _ in range(reps):
        for key, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[key].append((time.perf_counter() - t0) * 1000)
    return {k: {"median_ms": round(median(v), 4), "calls": reps} for k, v in times.items()}


def in_process_handlers(p, model: str, work: Path, calls: int, rows: list) -> dict:
    """Our handler chain vs the bare pipeline, single row and 1,000 rows, in this process (no HTTP)."""
    import numpy as np
    import pandas as pd
    from churn_core.backends.local.endpoint.server import load_entry, safe_extract
    from churn_core.storage.unpack import read_verified

    row = p.get_model(model)
    folder = work / "inproc-model"
    safe_extract(read_verified(p.store.path(row["artifact_key"]), row["artifact_sha256"]), folder)
    module = load_entry(ROOT / "entry" / "train.py")
    import fast_forest  # entry/'s fast path (load_entry put entry/ on sys.path)

    loaded = module.model_fn(str(folder))
    plan = loaded.get("fast")
    pipeline = loaded["pipeline"]
    seed = json.dumps({"Input": [SEED_ROW]}).encode()
    mlflow_seed = json.dumps({"dataframe_split": {"columns": FEATURES, "data": [SEED_ROW]}}).encode()
    frame1 = pd.DataFrame([SEED_ROW], columns=FEATURES)
    parsed_seed = module.input_fn(seed, "application/json")
    predicted_seed = module.predict_fn(parsed_seed, loaded)
    one_row_columns = [[v] for v in SEED_ROW]

    def handler(body=seed, ctype="application/json") -> None:
        module.output_fn(module.predict_fn(module.input_fn(body, ctype), loaded), "application/json")

    def mlflow_like(body=mlflow_seed) -> None:  # dataframe_split JSON → DataFrame → pipeline.predict → JSON
        data = json.loads(body)["dataframe_split"]
        df = pd.DataFrame(data["data"], columns=data["columns"])
        json.dumps({"predictions": pipeline.predict(df).tolist()})

    out: dict = {"fast_path_enabled": plan is not None}
    single = {
        "our handler chain (input_fn+predict_fn+output_fn)": handler,
        "  input_fn": lambda: module.input_fn(seed, "application/json"),
        "  predict_fn": lambda: module.predict_fn(parsed_seed, loaded),
        "  output_fn": lambda: module.output_fn(predicted_seed, "application/json"),
        "pipeline.predict_proba(1-row DataFrame)": lambda: pipeline.predict_proba(frame1),
        "MLflow-like: JSON→DataFrame→pipeline.predict→JSON": mlflow_like,
    }
    if plan is not None and plan.get("forest"):
        single["    fast_forest.proba: numpy forest walk (1 row)"] = lambda: fast_forest.proba(one_row_columns, plan)
    out["single_row"] = _timeit(single, calls)

    n = len(rows)
    batch_instances = json.dumps({"instances": [dict(zip(FEATURES, r, strict=True)) for r in rows]}).encode()
    batch_input = json.dumps({"Input": rows}).encode()
    batch_csv = "\n".join(",".join(repr(v) for v in r) for r in rows).encode()
    frame_n = pd.DataFrame(rows, columns=FEATURES)
    batch = {
        f"handler, {n} rows, JSON instances (named)": lambda: handler(batch_instances),
        f"handler, {n} rows, JSON Input (positional)": lambda: handler(batch_input),
        f"handler, {n} rows, CSV": lambda: handler(batch_csv, "text/csv"),
        f"  input_fn, {n} rows, JSON instances": lambda: module.input_fn(batch_instances, "application/json"),
        f"  input_fn, {n} rows, JSON Input": lambda: module.input_fn(batch_input, "application/json"),
        f"  input_fn, {n} rows, CSV": lambda: module.input_fn(batch_csv, "text/csv"),
        f"pipeline.predict({n}-row DataFrame)": lambda: pipeline.predict(frame_n),
        f"MLflow-like, {n} rows": lambda: mlflow_like(
            json.dumps({"dataframe_split": {"columns": FEATURES, "data": rows}}).encode()
        ),
    }
    if plan is not None and plan.get("forest"):
        columns_n = [list(col) for col in zip(*rows, strict=True)]
        batch[f"    fast_forest.proba: tree.apply + leaf probabilities ({n} rows)"] = lambda: fast_forest.proba(
            columns_n, plan
        )
        expected = pipeline.predict_proba(frame_n)[:, 1]
        out["fast_path_max_abs_diff_vs_predict_proba"] = {
            f"{n} rows": float(np.abs(fast_forest.proba(columns_n, plan) - expected).max()),
            "row by row (first 200)": float(
                max(
                    abs(fast_forest.proba([[v] for v in row], plan)[0] - e)
                    for row, e in zip(rows[:200], expected[:200], strict=True)
                )
            ),
        }
    out["batch"] = _timeit(batch, max(5, calls // 100), warm=1)
    out["loadavg"] = loadavg()

    prof = cProfile.Profile()
    prof.enable()
    for _ in range(calls):
        handler()
    prof.disable()
    text = io.StringIO()
    pstats.Stats(prof, stream=text).sort_stats("tottime").print_stats(12)
    out["cprofile_handler_top_tottime"] = text.getvalue().strip().splitlines()[-16:]
    return out


# ------------------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deploys", type=int, default=5)
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts (ours and MLflow alike)")
    parser.add_argument("--requests", type=int, default=2000, help="max single-row requests per level")
    parser.add_argument("--seconds", type=float, default=20.0, help="max seconds per level")
    parser.add_argument("--batch-rows", type=int, default=1000)
    parser.add_argument("--batch-requests", type=int, default=20)
    parser.add_argument("--batch-seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=4, help="alternating ours/MLflow rounds per level")
    parser.add_argument("--trees", type=int, default=100)
    parser.add_argument("--skip-mlflow", action="store_true")
    parser.add_argument(
        "--no-variants",
        dest="variants",
        action="store_false",
        help="skip (d): our server with other settings, and the previous (gthread) server",
    )
    parser.add_argument("--variant-workers", type=int, default=2)
    parser.add_argument("--previous-commit", default=PREVIOUS_SERVER_COMMIT,
                        help="git commit of the previous model server, run beside ours in (d)")
    parser.add_argument("--short", action="store_true", help="smoke run: 2 deploys, 1 worker, 300 requests/5 s")
    opts = parser.parse_args(argv)
    if opts.short:
        opts.deploys, opts.workers, opts.requests, opts.seconds = 2, "1", 300, 5.0
        opts.batch_requests, opts.batch_seconds, opts.rounds, opts.variants = 4, 5.0, 2, False
    worker_counts = [int(w) for w in opts.workers.split(",") if w.strip()]
    use_mlflow = not opts.skip_mlflow and (MLFLOW_VENV / "bin" / "mlflow").exists()
    if not use_mlflow and not opts.skip_mlflow:
        print(f"{MLFLOW_VENV} is missing: create it as described in docs/benchmarks.md; skipping the MLflow peer")

    info = machine()
    print(f"machine: {info['cpu_count']} cores, load average {info['loadavg_at_start']}")
    cleanup = Cleanup()
    home = temp_home(cleanup, "bench-endpoint")
    work = Path(tempfile.mkdtemp(prefix="work-", dir=home))
    import churn_core
    from churn_core.data.sample import make_sample
    from churn_core.backends.local.endpoint.server import free_port

    warm_start = start_warm_process(cleanup)
    p = churn_core.connect()
    platform_cleanup(cleanup, p)
    if REFERENCE_CSV.exists():
        label, data = "reference", REFERENCE_CSV.read_bytes()
    else:
        label, data = "sample", make_sample()
    print(f"training RandomForest {opts.trees} trees on the {label} data…")
    model = train_model(p, label, data, opts.trees)
    row = p.get_model(model)
    artifact, sha = p.store.path(row["artifact_key"]), row["artifact_sha256"]
    results: dict = {
        "machine": info,
        "dataset": label,
        "model": model,
        "options": vars(opts),
        "warm_process": warm_start,
    }

    # (a) deploy → InService
    deploys, cold, bare = [], [], []
    for i in range(opts.deploys):  # interleaved with the peers so load drift hits all alike
        name = f"bench-deploy-{i}"
        deploys.append(deploy_timed(p, model, name, 1))
        t0 = time.perf_counter()
        p.delete_endpoint(name)
        deploys[-1]["delete_seconds"] = round(time.perf_counter() - t0, 3)
        with without_warm_process():
            cold.append(deploy_timed(p, model, f"{name}-cold", 1)["seconds"])
            p.delete_endpoint(f"{name}-cold")
        bare.append(bare_server_start(artifact, sha, work / f"bare-{i}", free_port(), cleanup))
        print(
            f"  deploy {i + 1}/{opts.deploys}: {deploys[-1]['seconds']:.2f}s to InService "
            f"(delete {deploys[-1]['delete_seconds']:.2f}s); without the warm process {cold[-1]:.2f}s; "
            f"bare server {bare[-1]:.2f}s; load {loadavg()[0]}"
        )
    split_keys = [k for k in deploys[0] if "→" in k]
    deploy_split = {k: round(median(d[k] for d in deploys if k in d), 3) for k in split_keys}
    phases = [start_phases(artifact, sha, work / f"phases-{i}") for i in range(max(2, min(opts.deploys, 3)))]
    phase_median = {k: round(median(ph[k] for ph in phases), 3) for k in phases[0]}
    deploy_median = median(d["seconds"] for d in deploys)
    results["deploy"] = {
        "runs": deploys,
        "median_seconds": round(deploy_median, 3),
        "median_catalog_seconds": round(median(d["catalog_seconds"] for d in deploys), 3),
        "median_delete_seconds": round(median(d["delete_seconds"] for d in deploys), 3),
        "cold_deploy_seconds": cold,
        "cold_deploy_median": round(median(cold), 3),
        "ratio_deploy_to_cold_deploy": round(ratio(deploy_median, median(cold)), 3),
        "bare_server_start_seconds": [round(b, 3) for b in bare],
        "bare_server_start_median": round(median(bare), 3),
        "ratio_deploy_to_bare_server": round(ratio(deploy_median, median(bare)), 3),
        "startup_phases_median": phase_median,
        "deploy_split_median": deploy_split,
        "goal_seconds": DEPLOY_GOAL_S,
        "goal_met": deploy_median <= DEPLOY_GOAL_S,
        "loadavg": loadavg(),
    }
    print_table(
        f"(a) Deploy → InService, median of {opts.deploys} (goal ≤ {DEPLOY_GOAL_S:.0f} s)",
        ["what", "seconds"],
        [
            ["p.deploy(wait=True) → InService", deploy_median],
            ["  catalog created_at → in_service_at", results["deploy"]["median_catalog_seconds"]],
        ]
        + [[f"  {k}", v] for k, v in deploy_split.items()]
        + [
            ["deploy without the warm process, CHURN_WARM=0 (peer)", median(cold)],
            ["ratio deploy / deploy without the warm process", results["deploy"]["ratio_deploy_to_cold_deploy"]],
            ["bare server: spawn serving.py → /ping 200 (peer)", median(bare)],
            ["ratio deploy / bare server", results["deploy"]["ratio_deploy_to_bare_server"]],
            ["delete_endpoint", results["deploy"]["median_delete_seconds"]],
        ]
        + [[f"  start-up phase: {k}", v] for k, v in phase_median.items()],
    )

    # (b) serving speed vs MLflow
    rows = reference_rows(opts.batch_rows)
    body = bodies(rows)
    mlflow_model = export_to_mlflow(p, model, work) if use_mlflow else None
    serving = []
    for workers in worker_counts:
        ep_name = f"bench-serve-w{workers}"
        dep = deploy_timed(p, model, ep_name, workers)
        port = int(dep["url"].rsplit(":", 1)[1])
        config = {"workers": workers, "ours": {"deploy_seconds": dep["seconds"]}, "mlflow": {}}
        mlflow_proc = None
        if mlflow_model is not None:
            mlflow_port = free_port()
            mlflow_proc, startup = start_mlflow(mlflow_model, mlflow_port, workers, work, cleanup)
            config["mlflow"]["startup_seconds"] = round(startup, 3)
            ours_labels = [r["label"] for r in post(port, body["batch_ours_json"], JSON)["predictions"]]
            theirs = post(mlflow_port, body["batch_mlflow_json"], JSON)["predictions"]
            config["label_agreement"] = f"{sum(a == b for a, b in zip(ours_labels, theirs, strict=True))}/{len(rows)}"
            print(
                f"  workers={workers}: MLflow ready in {startup:.1f}s; labels agree on {config['label_agreement']} rows"
            )
        for level in (1, 8):
            targets = {"ours": (port, body["seed_ours"], JSON, ours_ok)}
            if mlflow_proc is not None:
                targets["mlflow"] = (mlflow_port, body["seed_mlflow"], JSON, mlflow_ok)
            got = load_rounds(targets, level, opts.rounds, opts.requests, opts.seconds)
            for server, res in got.items():
                config[server][f"c{level}"] = res
            if mlflow_proc is not None:
                config[f"c{level}_round_throughput_ratios"] = [
                    round(ratio(a, b), 2)
                    for a, b in zip(got["ours"]["rounds_rps"], got["mlflow"]["rounds_rps"], strict=True)
                ]
            print(
                f"  workers={workers} concurrency {level}: ours {got['ours']['throughput_rps']} req/s"
                + (f", MLflow {got['mlflow']['throughput_rps']} req/s" if mlflow_proc else "")
                + f", load {loadavg()[0]}"
            )
        for kind, ours_body, ours_headers, mlflow_body, mlflow_headers in (
            ("json", body["batch_ours_json"], JSON, body["batch_mlflow_json"], JSON),
            ("json_rows", body["batch_ours_rows"], JSON, None, None),
            ("csv", body["batch_ours_csv"], CSV, body["batch_mlflow_csv"], CSV),
        ):
            targets = {"ours": (port, ours_body, ours_headers, None)}
            if mlflow_proc is not None and mlflow_body is not None:
                targets["mlflow"] = (mlflow_port, mlflow_body, mlflow_headers, None)
            got = load_rounds(targets, 1, opts.rounds, opts.batch_requests, opts.batch_seconds, warmup=2)
            for server, res in got.items():
                res["rows_per_s"] = round(res["throughput_rps"] * len(rows), 1) if res["throughput_rps"] else None
                config[server][f"batch_{kind}"] = res
        if mlflow_proc is not None:
            kill_group(mlflow_proc.pid)
            for level in (1, 8):
                o, m = config["ours"][f"c{level}"], config["mlflow"][f"c{level}"]
                config[f"c{level}_throughput_ratio"] = round(ratio(o["throughput_rps"], m["throughput_rps"]), 2)
                config[f"c{level}_p50_ratio"] = round(ratio(o["p50_ms"], m["p50_ms"]), 3)
                config[f"c{level}_p99_ratio"] = round(ratio(o["p99_ms"], m["p99_ms"]), 3)
            for kind, theirs in (("json", "json"), ("json_rows", "json"), ("csv", "csv")):
                config[f"batch_{kind}_ratio"] = round(
                    ratio(
                        config["ours"][f"batch_{kind}"]["rows_per_s"], config["mlflow"][f"batch_{theirs}"]["rows_per_s"]
                    ),
                    2,
                )
            config["goal_throughput_met"] = config["c8_throughput_ratio"] >= THROUGHPUT_GOAL
            config["goal_p50_met"] = config["c8_p50_ratio"] <= P50_GOAL
        p.delete_endpoint(ep_name)
        serving.append(config)
    results["serving"] = serving

    table = []
    for cfg in serving:
        for server in ("ours", "mlflow"):
            if not cfg[server].get("c1"):
                continue
            s = cfg[server]
            table.append(
                [
                    cfg["workers"],
                    server,
                    s["c1"]["p50_ms"],
                    s["c1"]["p99_ms"],
                    s["c1"]["throughput_rps"],
                    s["c8"]["p50_ms"],
                    s["c8"]["p99_ms"],
                    s["c8"]["throughput_rps"],
                    s["c1"]["errors"] + s["c8"]["errors"],
                    s["batch_json"]["rows_per_s"],
                    s.get("batch_json_rows", {}).get("rows_per_s", "n/a"),
                    s["batch_csv"]["rows_per_s"],
                ]
            )
    print_table(
        "(b) Single row: latency (ms) and throughput (req/s); batch of %d rows: rows/s "
        '(ours JSON = named instances, MLflow JSON = dataframe_split; ours rows = {"Input": rows})' % len(rows),
        [
            "workers",
            "server",
            "c1 p50",
            "c1 p99",
            "c1 req/s",
            "c8 p50",
            "c8 p99",
            "c8 req/s",
            "errors",
            "batch JSON rows/s",
            "batch rows JSON rows/s",
            "batch CSV rows/s",
        ],
        table,
    )
    ratios = [
        [
            cfg["workers"],
            cfg.get("c1_throughput_ratio"),
            cfg.get("c8_throughput_ratio"),
            cfg.get("c1_p50_ratio"),
            cfg.get("c8_p50_ratio"),
            cfg.get("batch_json_ratio"),
            cfg.get("batch_json_rows_ratio"),
            cfg.get("batch_csv_ratio"),
            "yes" if cfg.get("goal_throughput_met") else "NO",
            "yes" if cfg.get("goal_p50_met") else "NO",
        ]
        for cfg in serving
        if "c8_throughput_ratio" in cfg
    ]
    if ratios:
        print_table(
            "Ours / MLflow (goals: c8 throughput ≥ 3×, c8 p50 ≤ 0.333×)",
            [
                "workers",
                "c1 thr ×",
                "c8 thr ×",
                "c1 p50 ×",
                "c8 p50 ×",
                "batch JSON ×",
                "batch rows JSON ×",
                "batch CSV ×",
                "thr goal",
                "p50 goal",
            ],
            ratios,
        )

    # (d) our server with other settings, and the previous server (same model, same host)
    if opts.variants:
        from churn_core.backends.local.endpoint.app import INLINE_MAX_BYTES, PREDICT_THREADS
        from churn_core.backends.local.endpoint.server import WORKER_CLASS

        variants: dict = {
            f"{WORKER_CLASS}, {PREDICT_THREADS}-thread pool, ≤ {INLINE_MAX_BYTES // 1024} KB on the loop (current)": (
                ["-c", VARIANT_LAUNCHER, str(PREDICT_THREADS), str(INLINE_MAX_BYTES)], ROOT),
            f"{WORKER_CLASS}, every request in the {PREDICT_THREADS}-thread pool": (
                ["-c", VARIANT_LAUNCHER, str(PREDICT_THREADS), "-1"], ROOT),
        }
        old_root = previous_tree(opts.previous_commit, work / f"previous-{opts.previous_commit}")
        if old_root is not None:
            variants[f"previous server: gthread × 4 threads ({opts.previous_commit})"] = (
                ["-m", "churn_core.backends.local.endpoint.server"], old_root)
        procs, targets, pids = [], {}, {}
        for i, (label_v, (launcher, root)) in enumerate(variants.items()):
            port_v = free_port()
            try:
                procs.append(start_variant(artifact, sha, work / f"variant-{i}", port_v, opts.variant_workers,
                                           launcher, cleanup, root))
            except (RuntimeError, TimeoutError) as exc:
                print(f"  variant {label_v!r} did not start ({exc}); see {work / f'variant-{i}' / 'server.log'}")
                continue
            targets[label_v] = (port_v, body["seed_ours"], JSON, ours_ok)
            pids[label_v] = procs[-1].pid
        variant_results = {}
        for level in (1, 8):
            variant_results[f"c{level}"] = load_rounds(targets, level, opts.rounds, opts.requests, opts.seconds,
                                                       server_pids=pids)
        for proc in procs:
            kill_group(proc.pid)
        results["server_variants"] = {"workers": opts.variant_workers, **variant_results}
        print_table(
            f"(d) Our server with other settings, and the previous server, {opts.variant_workers} worker(s), "
            "single row",
            ["variant", "c1 p50 ms", "c1 req/s", "c1 server CPU ms/req", "c8 p50 ms", "c8 p99 ms", "c8 req/s",
             "c8 server CPU ms/req", "errors"],
            [
                [
                    k,
                    variant_results["c1"][k]["p50_ms"],
                    variant_results["c1"][k]["throughput_rps"],
                    variant_results["c1"][k].get("server_cpu_ms_per_request", "—"),
                    variant_results["c8"][k]["p50_ms"],
                    variant_results["c8"][k]["p99_ms"],
                    variant_results["c8"][k]["throughput_rps"],
                    variant_results["c8"][k].get("server_cpu_ms_per_request", "—"),
                    variant_results["c1"][k]["errors"] + variant_results["c8"][k]["errors"],
                ]
                for k in targets
            ],
        )

    # (c) in-process handler cost
    inproc = in_process_handlers(p, model, work, 300 if opts.short else 2000, rows)
    results["in_process"] = inproc
    print_table(
        "(c) In-process, single row, per call (no HTTP; interleaved)",
        ["path", "median ms"],
        [[k, v["median_ms"]] for k, v in inproc["single_row"].items()],
    )
    print_table(
        "(c) In-process, batch, per call",
        ["path", "median ms"],
        [[k, v["median_ms"]] for k, v in inproc["batch"].items()],
    )
    if "fast_path_max_abs_diff_vs_predict_proba" in inproc:
        print(f"max |proba - pipeline.predict_proba|: {inproc['fast_path_max_abs_diff_vs_predict_proba']}")
    print("\n".join(inproc["cprofile_handler_top_tottime"]))
    print(f"load average now {loadavg()}")
    write_results("bench_endpoint", results)
    cleanup.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
