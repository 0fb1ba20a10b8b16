"""Endpoint: deploy → InService, and single-row / batch serving speed against MLflow's server.

    .venv/bin/python bench/bench_endpoint.py [--workers 1,2] [--requests 2000] [--seconds 20] [--quick]

(a) Deploy → InService (``p.deploy(..., wait=True)``), median of ``--deploys`` (goal ≤ 2 s), with
    the warm process running (it forks the supervisor and the server with the libraries imported).
    Peers, interleaved: the same deploy without the warm process (``CHURN_WARM=0``), and the bare
    model server started directly in a new interpreter
    (``python -m churn_core.backends.local.endpoint.server``, spawn → /ping 200); where the time
    goes: its start-up phases timed in a fresh interpreter (imports, SHA-256, extract, import entry
    script, model_fn).
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
"""

from __future__ import annotations

import cProfile
import csv
import io
import json
import os
import pstats
import subprocess
import sys
import time
from pathlib import Path

from harness import (CSV, ENTRY, FEATURES, JSON, MLFLOW_VENV, PYTHON, REFERENCE_CSV, ROOT, ROUNDS_HEADERS, SEED_ROW,
                     Bench, deploy, export_mlflow, extract_model, kill_group, load_in_process, load_rounds, loadavg,
                     median, mlflow_env, mlflow_ready, post, ratio, reference_data, round_ratios, rounds_rows, timeit,
                     train, wait_http, without_warm_process)

DEPLOY_GOAL_S = 2.0
THROUGHPUT_GOAL = 3.0  # ours / MLflow at concurrency 8
P50_GOAL = 1 / 3  # ours / MLflow
PREVIOUS_SERVER_COMMIT = "73f304e"  # the last commit serving with gunicorn gthread (1 worker x 4 threads per worker)
VARIANT_LAUNCHER = (
    "import sys, churn_core.backends.local.endpoint.server as s, churn_core.backends.local.endpoint.app as a; "
    "a.PREDICT_THREADS = int(sys.argv[1]); "
    "a.INLINE_MAX_BYTES = int(sys.argv[2]); sys.exit(s.main(sys.argv[3:]))"
)
PHASES = r"""
import json, sys, time
t = {}
t0 = time.perf_counter()
from pathlib import Path
from churn_core.backends.local.endpoint import server as serving
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


def ours_ok(_status: int, data: bytes) -> bool:
    return data.startswith(b'{"Output"')


def mlflow_ok(_status: int, data: bytes) -> bool:
    return data.startswith(b'{"predictions"')


# ------------------------------------------------------------------------------ (a) deploy


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
    ep = deploy(p, model, name, workers)
    seconds = time.perf_counter() - t0
    row = p.catalog.one("SELECT * FROM endpoints WHERE name = ?", (name,))
    out = {"seconds": round(seconds, 3), "catalog_seconds": round(row["in_service_at"] - row["created_at"], 3),
           "url": ep.url, "loadavg1": loadavg()[0]}
    try:
        offset = create_time_offset()
        supervisor = psutil.Process(row["pid"]).create_time() - offset
        server = psutil.Process(row["server_pid"]).create_time() - offset
        out.update({"deploy call → catalog rows": round(row["created_at"] - wall0, 3),
                    "catalog rows → supervisor spawned": round(supervisor - row["created_at"], 3),
                    "supervisor start → server spawned": round(server - supervisor, 3),
                    "server start → /ping ok → InService": round(row["in_service_at"] - server, 3),
                    "InService → wait() returns": round(wall0 + seconds - row["in_service_at"], 3)})
    except (psutil.Error, TypeError):
        pass
    return out


def start_server(bench: Bench, artifact: Path, sha: str, workdir: Path, port: int, workers: int = 1,
                 launcher: tuple = ("-m", "churn_core.backends.local.endpoint.server"), root: Path = ROOT,
                 name: str = "bare") -> subprocess.Popen:
    """Our model server started directly (no supervisor, no catalog), or one with module constants patched
    in the child only (``launcher``), or the previous server's code from ``root``: up when /ping is 200."""
    workdir.mkdir(parents=True, exist_ok=True)
    proc = bench.spawn([PYTHON, *launcher, "--artifact", str(artifact), "--sha256", sha, "--entry",
                        str(root / "entry" / "train.py"), "--workdir", str(workdir), "--host", "127.0.0.1",
                        "--port", str(port), "--workers", str(workers), "--name", name],
                       workdir / "server.log", env=dict(os.environ, PYTHONPATH=str(root)), cwd=root)
    wait_http(f"http://127.0.0.1:{port}/ping", timeout=180, proc=proc)
    return proc


def bare_server_start(bench: Bench, artifact: Path, sha: str, workdir: Path) -> float:
    from churn_core.backends.local.endpoint.server import free_port

    t0 = time.perf_counter()
    proc = start_server(bench, artifact, sha, workdir, free_port())
    seconds = time.perf_counter() - t0
    kill_group(proc.pid)
    return seconds


def start_phases(artifact: Path, sha: str, workdir: Path) -> dict:
    workdir.mkdir(parents=True)  # the server extracts into a new folder inside it, as in its endpoint folder
    out = subprocess.run([PYTHON, "-c", PHASES, str(artifact), sha, str(workdir), str(ENTRY)],
                         env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-800:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def deploy_section(bench: Bench, p, model: str, artifact: Path, sha: str, work: Path) -> dict:
    n = bench.opts.deploys
    deploys, cold, bare = [], [], []
    for i in range(n):  # interleaved with the peers so load drift hits all alike
        deploys.append(deploy_timed(p, model, f"bench-deploy-{i}", 1))
        t0 = time.perf_counter()
        p.delete_endpoint(f"bench-deploy-{i}")
        deploys[-1]["delete_seconds"] = round(time.perf_counter() - t0, 3)
        with without_warm_process():
            cold.append(deploy_timed(p, model, f"bench-deploy-{i}-cold", 1)["seconds"])
            p.delete_endpoint(f"bench-deploy-{i}-cold")
        bare.append(round(bare_server_start(bench, artifact, sha, work / f"bare-{i}"), 3))
        print(f"  deploy {i + 1}/{n}: {deploys[-1]['seconds']:.2f}s (delete {deploys[-1]['delete_seconds']:.2f}s); "
              f"without the warm process {cold[-1]:.2f}s; bare server {bare[-1]:.2f}s; load {loadavg()[0]}")
    split = {k: round(median(d.get(k) for d in deploys), 3) for k in deploys[0] if "→" in k}
    phases = [start_phases(artifact, sha, work / f"phases-{i}") for i in range(max(2, min(n, 3)))]
    d = {"runs": deploys, "median_seconds": round(median(r["seconds"] for r in deploys), 3),
         "median_catalog_seconds": round(median(r["catalog_seconds"] for r in deploys), 3),
         "median_delete_seconds": round(median(r["delete_seconds"] for r in deploys), 3),
         "cold_deploy_seconds": cold, "cold_deploy_median": round(median(cold), 3),
         "bare_server_start_seconds": bare, "bare_server_start_median": round(median(bare), 3),
         "startup_phases_median": {k: round(median(ph[k] for ph in phases), 3) for k in phases[0]},
         "deploy_split_median": split, "goal_seconds": DEPLOY_GOAL_S, "loadavg": loadavg()}
    d.update(ratio_deploy_to_cold_deploy=ratio(d["median_seconds"], d["cold_deploy_median"]),
             ratio_deploy_to_bare_server=ratio(d["median_seconds"], d["bare_server_start_median"]),
             goal_met=d["median_seconds"] <= DEPLOY_GOAL_S)
    bench.table(f"(a) Deploy → InService, median of {n} (goal ≤ {DEPLOY_GOAL_S:.0f} s: "
                f"{'met' if d['goal_met'] else '**not met**'})", ["what", "seconds"],
                [["`p.deploy(wait=True)` → InService", d["median_seconds"]],
                 ["catalog created_at → in_service_at", d["median_catalog_seconds"]],
                 *[[f"  {k}", v] for k, v in split.items()],
                 ["the same deploy without the warm process, `CHURN_WARM=0` (peer)", d["cold_deploy_median"]],
                 ["deploy / deploy without the warm process", d["ratio_deploy_to_cold_deploy"]],
                 ["warm process start: interpreter + imports, once per code version",
                  bench.results["warm_process"]["seconds_to_ready"]],
                 ["bare model server (peer): spawn `python -m churn_core.backends.local.endpoint.server` → /ping 200",
                  d["bare_server_start_median"]],
                 ["deploy / bare server", d["ratio_deploy_to_bare_server"]],
                 ["`delete_endpoint`", d["median_delete_seconds"]],
                 *[[f"server start-up phase (fresh interpreter): {k}", v]
                   for k, v in d["startup_phases_median"].items()]])
    bench.headline(f"deploy→InService {d['median_seconds']:.2f}s (bare server {d['bare_server_start_median']:.2f}s); "
                   f"goal ≤2s {'met' if d['goal_met'] else 'NOT met'}")
    return d


# ------------------------------------------------------------------------------ (b) serving against MLflow


def reference_rows(n: int) -> list[list[float]]:
    rows = []
    if REFERENCE_CSV.exists():
        with open(REFERENCE_CSV, newline="") as fh:
            rows = [[float(rec[f]) for f in FEATURES] for rec, _ in zip(csv.DictReader(fh), range(n), strict=False)]
    rows = rows or [list(map(float, SEED_ROW))]
    while len(rows) < n:  # the sample-only fallback: repeat
        rows.extend(rows[: n - len(rows)])
    return rows


def bodies(rows: list[list[float]]) -> dict:
    csv_plain = "\n".join(",".join(repr(v) for v in r) for r in rows).encode()
    return {"seed_ours": json.dumps({"Input": [SEED_ROW]}).encode(),
            "seed_mlflow": json.dumps({"dataframe_split": {"columns": FEATURES, "data": [SEED_ROW]}}).encode(),
            "batch_ours_json": json.dumps({"instances": [dict(zip(FEATURES, r, strict=True)) for r in rows]}).encode(),
            "batch_ours_rows": json.dumps({"Input": rows}).encode(), "batch_ours_csv": csv_plain,
            "batch_mlflow_json": json.dumps({"dataframe_split": {"columns": FEATURES, "data": rows}}).encode(),
            "batch_mlflow_csv": (",".join(FEATURES) + "\n").encode() + csv_plain}


def start_mlflow(bench: Bench, model_path: Path, port: int, workers: int, work: Path) -> tuple:
    t0 = time.perf_counter()
    proc = bench.spawn([str(MLFLOW_VENV / "bin" / "mlflow"), "models", "serve", "-m", str(model_path), "-h",
                        "127.0.0.1", "-p", str(port), "--env-manager", "local", "-w", str(workers)],
                       work / f"mlflow-{port}.log", env=mlflow_env(work), cwd=work)
    wait_http(f"http://127.0.0.1:{port}/ping", timeout=300, proc=proc)
    return proc, time.perf_counter() - t0


def serve_config(bench: Bench, p, model: str, workers: int, body: dict, n_rows: int, mlflow_model, work) -> dict:
    """One worker count: ours (and MLflow with as many workers) at c1 and c8 and with batches, in rounds."""
    from churn_core.backends.local.endpoint.server import free_port

    opts = bench.opts
    dep = deploy_timed(p, model, f"bench-serve-w{workers}", workers)
    port = int(dep["url"].rsplit(":", 1)[1])
    config: dict = {"workers": workers, "ours": {"deploy_seconds": dep["seconds"]}, "mlflow": {}}
    ml_port = free_port() if mlflow_model else None
    if mlflow_model:
        proc, startup = start_mlflow(bench, mlflow_model, ml_port, workers, work)
        config["mlflow"]["startup_seconds"] = round(startup, 3)
        ours = [r["label"] for r in post(port, body["batch_ours_json"])[1]["predictions"]]
        theirs = post(ml_port, body["batch_mlflow_json"])[1]["predictions"]
        config["label_agreement"] = f"{sum(a == b for a, b in zip(ours, theirs, strict=True))}/{n_rows}"
        print(f"  workers={workers}: MLflow ready in {startup:.1f}s; labels agree on {config['label_agreement']} rows")
    for level in (1, 8):
        targets = {"ours": (port, body["seed_ours"], JSON, ours_ok)}
        if mlflow_model:
            targets["mlflow"] = (ml_port, body["seed_mlflow"], JSON, mlflow_ok)
        got = load_rounds(targets, level, opts.rounds, opts.requests, opts.seconds)
        for server, res in got.items():
            config[server][f"c{level}"] = res
        if mlflow_model:
            config[f"c{level}_round_throughput_ratios"] = round_ratios(got["ours"], got["mlflow"])
        print(f"  workers={workers} c{level}: " + ", ".join(f"{k} {v['throughput_rps']} req/s" for k, v in got.items()))
    for kind, ours_body, headers, theirs in (("json", "batch_ours_json", JSON, "batch_mlflow_json"),
                                             ("json_rows", "batch_ours_rows", JSON, None),
                                             ("csv", "batch_ours_csv", CSV, "batch_mlflow_csv")):
        targets = {"ours": (port, body[ours_body], headers, None)}
        if mlflow_model and theirs:
            targets["mlflow"] = (ml_port, body[theirs], headers, None)
        for server, res in load_rounds(targets, 1, opts.rounds, opts.batch_requests, opts.batch_seconds,
                                       warmup=2).items():
            res["rows_per_s"] = round(res["throughput_rps"] * n_rows, 1) if res["throughput_rps"] else None
            config[server][f"batch_{kind}"] = res
    if mlflow_model:
        kill_group(proc.pid)
        o, m = config["ours"], config["mlflow"]
        for level in ("c1", "c8"):
            config[f"{level}_throughput_ratio"] = ratio(o[level]["throughput_rps"], m[level]["throughput_rps"], 2)
            config[f"{level}_p50_ratio"] = ratio(o[level]["p50_ms"], m[level]["p50_ms"])
            config[f"{level}_p99_ratio"] = ratio(o[level]["p99_ms"], m[level]["p99_ms"])
        for kind, theirs in (("json", "json"), ("json_rows", "json"), ("csv", "csv")):
            config[f"batch_{kind}_ratio"] = ratio(o[f"batch_{kind}"]["rows_per_s"], m[f"batch_{theirs}"]["rows_per_s"],
                                                  2)
        config["goal_throughput_met"] = config["c8_throughput_ratio"] >= THROUGHPUT_GOAL
        config["goal_p50_met"] = config["c8_p50_ratio"] <= P50_GOAL
    p.delete_endpoint(f"bench-serve-w{workers}")
    return config


def serving_tables(bench: Bench, serving: list[dict], n_rows: int) -> None:
    bench.table(f"(b) Single-row requests (seed payload) and {n_rows:,}-row batches, ours vs `mlflow models serve`, "
                "same fitted pipeline, same worker count, alternating rounds. Batch JSON: ours = named records "
                '`{"instances": [{...}]}`, MLflow = `dataframe_split`; batch `Input` = ours with positional rows '
                '`{"Input": [[...]]}` (the same shape as dataframe_split):',
                ["workers", "server", "c1 p50 ms", "c1 p99 ms", "c1 req/s", "c8 p50 ms", "c8 p99 ms", "c8 req/s",
                 "errors", "requests", "batch JSON rows/s", "batch `Input` rows/s", "batch CSV rows/s"],
                [[c["workers"], k, s["c1"]["p50_ms"], s["c1"]["p99_ms"], s["c1"]["throughput_rps"], s["c8"]["p50_ms"],
                  s["c8"]["p99_ms"], s["c8"]["throughput_rps"], s["c1"]["errors"] + s["c8"]["errors"],
                  s["c1"]["requests_ok"] + s["c8"]["requests_ok"], s["batch_json"]["rows_per_s"],
                  s.get("batch_json_rows", {}).get("rows_per_s"), s["batch_csv"]["rows_per_s"]]
                 for c in serving for k, s in (("ours", c["ours"]), ("mlflow", c["mlflow"])) if s.get("c1")])
    rows = [[c["workers"], c.get("label_agreement"), c["mlflow"].get("startup_seconds"), c["c1_throughput_ratio"],
             c["c8_throughput_ratio"], ", ".join(str(x) for x in c["c8_round_throughput_ratios"]), c["c1_p50_ratio"],
             c["c8_p50_ratio"], c["batch_json_ratio"], c["batch_json_rows_ratio"], c["batch_csv_ratio"],
             c["goal_throughput_met"], c["goal_p50_met"]] for c in serving if "c8_throughput_ratio" in c]
    if rows:
        bench.table("Ours / MLflow, same run:", ["workers", "labels agree", "MLflow start s", "c1 req/s ×",
                                                 "c8 req/s ×", "c8 × per round", "c1 p50 ×", "c8 p50 ×",
                                                 "batch JSON ×", "batch Input ×", "batch CSV ×", "goal c8 ≥ 3×",
                                                 "goal c8 p50 ≤ ⅓"], rows)
    for c in serving:
        if "c8_throughput_ratio" in c:
            bench.headline(f"serving w={c['workers']}: c8 throughput {c['c8_throughput_ratio']}× MLflow (goal ≥3×: "
                           f"{'met' if c['goal_throughput_met'] else 'NOT met'}), c8 p50 {c['c8_p50_ratio']}× "
                           f"(goal ≤0.33×: {'met' if c['goal_p50_met'] else 'NOT met'})")


# ------------------------------------------------------------------------------ (d) other server settings


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


def variants_section(bench: Bench, artifact: Path, sha: str, work: Path, seed_body: bytes) -> dict:
    from churn_core.backends.local.endpoint.app import INLINE_MAX_BYTES, PREDICT_THREADS
    from churn_core.backends.local.endpoint.server import WORKER_CLASS, free_port

    opts = bench.opts
    launch = ("-c", VARIANT_LAUNCHER, str(PREDICT_THREADS))
    variants = {f"{WORKER_CLASS}, {PREDICT_THREADS}-thread pool, ≤ {INLINE_MAX_BYTES // 1024} KB on the loop "
                "(current)": ((*launch, str(INLINE_MAX_BYTES)), ROOT),
                f"{WORKER_CLASS}, every request in the {PREDICT_THREADS}-thread pool": ((*launch, "-1"), ROOT)}
    old_root = previous_tree(opts.previous_commit, work / f"previous-{opts.previous_commit}")
    if old_root is not None:  # that commit's server module was churn_core/serving.py
        variants[f"previous server: gthread × 4 threads ({opts.previous_commit})"] = (("-m", "churn_core.serving"),
                                                                                      old_root)
    targets, pids = {}, {}
    for i, (label, (launcher, root)) in enumerate(variants.items()):
        port = free_port()
        try:
            proc = start_server(bench, artifact, sha, work / f"variant-{i}", port, opts.variant_workers, launcher,
                                root, "variant")
        except (RuntimeError, TimeoutError) as exc:
            print(f"  variant {label!r} did not start ({exc}); see {work / f'variant-{i}' / 'server.log'}")
            continue
        targets[label], pids[label] = (port, seed_body, JSON, ours_ok), proc.pid
    got = {f"c{level}": load_rounds(targets, level, opts.rounds, opts.requests, opts.seconds, server_pids=pids)
           for level in (1, 8)}
    for pid in pids.values():
        kill_group(pid)
    bench.table(f"(d) Our server with other settings, and the previous server ({opts.variant_workers} workers, same "
                "model, alternating rounds, single row):", ROUNDS_HEADERS,
                [row for level in ("c1", "c8") for row in rounds_rows(level, got[level], next(iter(targets)))])
    return {"workers": opts.variant_workers, **got}


# ------------------------------------------------------------------------------ (c) in process


def in_process_handlers(bench: Bench, p, model: str, work: Path, calls: int, rows: list) -> dict:
    """Our handler chain vs the bare pipeline, single row and 1,000 rows, in this process (no HTTP)."""
    import numpy as np
    import pandas as pd

    module, loaded = load_in_process(p, model, work / "inproc-model")
    import fast_forest  # entry/'s fast path (load_entry put entry/ on sys.path)

    plan, pipeline = loaded.get("fast"), loaded["pipeline"]
    b = bodies(rows)
    seed, frame1 = b["seed_ours"], pd.DataFrame([SEED_ROW], columns=FEATURES)
    parsed_seed = module.input_fn(seed, "application/json")
    predicted_seed = module.predict_fn(parsed_seed, loaded)

    def handler(body=seed, ctype="application/json") -> None:
        module.output_fn(module.predict_fn(module.input_fn(body, ctype), loaded), "application/json")

    def mlflow_like(body=b["seed_mlflow"]) -> None:  # dataframe_split JSON → DataFrame → pipeline.predict → JSON
        data = json.loads(body)["dataframe_split"]
        json.dumps({"predictions": pipeline.predict(pd.DataFrame(data["data"], columns=data["columns"])).tolist()})

    single = {"our handler chain (input_fn+predict_fn+output_fn)": handler,
              "  input_fn": lambda: module.input_fn(seed, "application/json"),
              "  predict_fn": lambda: module.predict_fn(parsed_seed, loaded),
              "  output_fn": lambda: module.output_fn(predicted_seed, "application/json"),
              "pipeline.predict_proba(1-row DataFrame)": lambda: pipeline.predict_proba(frame1),
              "MLflow-like: JSON→DataFrame→pipeline.predict→JSON": mlflow_like}
    n, frame_n = len(rows), pd.DataFrame(rows, columns=FEATURES)
    batch = {f"handler, {n} rows, JSON instances (named)": lambda: handler(b["batch_ours_json"]),
             f"handler, {n} rows, JSON Input (positional)": lambda: handler(b["batch_ours_rows"]),
             f"handler, {n} rows, CSV": lambda: handler(b["batch_ours_csv"], "text/csv"),
             f"  input_fn, {n} rows, JSON instances": lambda: module.input_fn(b["batch_ours_json"], "application/json"),
             f"  input_fn, {n} rows, JSON Input": lambda: module.input_fn(b["batch_ours_rows"], "application/json"),
             f"  input_fn, {n} rows, CSV": lambda: module.input_fn(b["batch_ours_csv"], "text/csv"),
             f"pipeline.predict({n}-row DataFrame)": lambda: pipeline.predict(frame_n),
             f"MLflow-like, {n} rows": lambda: mlflow_like(b["batch_mlflow_json"])}
    out: dict = {"fast_path_enabled": plan is not None}
    if plan is not None and plan.get("forest"):
        columns_n, columns_1 = [list(col) for col in zip(*rows, strict=True)], [[v] for v in SEED_ROW]
        single["    fast_forest.proba: numpy forest walk (1 row)"] = lambda: fast_forest.proba(columns_1, plan)
        batch[f"    fast_forest.proba: tree.apply + leaf probabilities ({n} rows)"] = lambda: fast_forest.proba(
            columns_n, plan)
        expected = pipeline.predict_proba(frame_n)[:, 1]
        out["fast_path_max_abs_diff_vs_predict_proba"] = {
            f"{n} rows": float(np.abs(fast_forest.proba(columns_n, plan) - expected).max()),
            "row by row (first 200)": float(max(abs(fast_forest.proba([[v] for v in row], plan)[0] - e)
                                                for row, e in zip(rows[:200], expected[:200], strict=True)))}
    out["single_row"] = timeit(single, calls)
    out["batch"] = timeit(batch, max(5, calls // 100), warm=1)
    out["loadavg"] = loadavg()
    prof = cProfile.Profile()
    prof.runcall(lambda: [handler() for _ in range(calls)])
    text = io.StringIO()
    pstats.Stats(prof, stream=text).sort_stats("tottime").print_stats(12)
    out["cprofile_handler_top_tottime"] = text.getvalue().strip().splitlines()[-16:]
    bench.table(f"(c) In-process handler cost (no HTTP; interleaved calls; load {out['loadavg']}):",
                ["single row", "median ms", "min ms", "max ms"],
                [[k, v["median_ms"], v["min_ms"], v["max_ms"]] for k, v in out["single_row"].items()])
    bench.table(f"{n:,} rows:", ["batch", "median ms", "min ms", "max ms"],
                [[k, v["median_ms"], v["min_ms"], v["max_ms"]] for k, v in out["batch"].items()])
    bench.text(f"max |probability − pipeline.predict_proba| of the fast path: "
               f"{out.get('fast_path_max_abs_diff_vs_predict_proba')}\n\ncProfile of our handler chain (single row), "
               "by self time:\n\n```\n" + "\n".join(out["cprofile_handler_top_tottime"]) + "\n```")
    return out


def main(argv: list[str] | None = None) -> int:
    bench = Bench("endpoint", __doc__, {
        "deploys": 5, "workers": ("1,2", "comma-separated worker counts (ours and MLflow alike)"),
        "requests": (2000, "max single-row requests per level"), "seconds": (20.0, "max seconds per level"),
        "batch_rows": 1000, "batch_requests": 20, "batch_seconds": 10.0,
        "rounds": (4, "alternating ours/MLflow rounds per level"), "trees": 100, "skip_mlflow": False,
        "variants": (True, "(d): our server with other settings, and the previous (gthread) server"),
        "variant_workers": 2,
        "previous_commit": (PREVIOUS_SERVER_COMMIT, "git commit of the previous model server, run beside ours in (d)"),
    }, {"deploys": 2, "workers": "1", "requests": 300, "seconds": 5.0, "batch_requests": 4, "batch_seconds": 5.0,
        "rounds": 2, "variants": False}, argv)
    opts = bench.opts
    use_mlflow = mlflow_ready(opts)
    p = bench.platform(warm=True)
    work = bench.scratch("work-", dir=bench.home_dir)
    label, data = reference_data()
    p.upload_dataset(label, data)
    print(f"training RandomForest {opts.trees} trees on the {label} data…")
    model = train(p, label, {"algorithm": "random_forest", "n_estimators": opts.trees}, f"bench-endpoint-{label}")
    row = p.get_model(model)
    artifact, sha = p.store.path(row["artifact_key"]), row["artifact_sha256"]
    deploy_result = deploy_section(bench, p, model, artifact, sha, work)
    rows = reference_rows(opts.batch_rows)
    body = bodies(rows)
    mlflow_model = None
    if use_mlflow:
        mlflow_model = export_mlflow(extract_model(p, model, work / "extracted"), work / "mlflow-model")
    serving = [serve_config(bench, p, model, int(w), body, len(rows), mlflow_model, work)
               for w in opts.workers.split(",") if w.strip()]
    serving_tables(bench, serving, len(rows))
    variants = variants_section(bench, artifact, sha, work, body["seed_ours"]) if opts.variants else None
    inproc = in_process_handlers(bench, p, model, work, 300 if opts.quick else 2000, rows)
    return bench.finish(dataset=label, model=model, deploy=deploy_result, serving=serving,
                        **({"server_variants": variants} if variants else {}), in_process=inproc)


if __name__ == "__main__":
    sys.exit(main())
