"""Batch transform: a million customers scored from the bucket, against the plain script and MLflow.

    .venv/bin/python bench/bench_transform.py [--rows 1000000] [--small-rows 100000] [--rounds 3]
                                              [--batch-rows 20000] [--short] [--skip-mlflow]
                                              [--mlflow-venv bench/.mlflow-venv]

Data: ``make_subscription_sample`` (IBM-Telco-like: a customerID, 16 text categories, 3 numbers with
blanks), 7,043 rows to train a random forest with the form's defaults (100 trees, unlimited depth), and
a separate file of ``--rows`` customers to score (another seed, no target column). The generator writes a
blank TotalCharges as a space; the scoring file writes it as an empty cell, which pandas' default reader
(what both peers use) reads as missing. The file sits in the local bucket; the job reads it in place.

Runs, interleaved round by round (A B C D, then D C B A, ...) so the machine's changing load hits each
alike, each a cold process where it is one:

* ``transform``: ``p.start_transform(model, key)`` → Completed (polled every 50 ms), default workers (one
  per core), with the warm process running; peak RSS and PSS of the job's processes (driver + workers),
  sampled every 50 ms (PSS every 250 ms);
* ``plain``: bench/transform_peers.py plain: ``python`` + joblib.load → pd.read_csv → pipeline.predict_proba
  → to_csv, one process (the script a data scientist writes);
* ``mlflow-cli``: ``mlflow models predict -m <model> -i <file> -t csv -o <out> --env-manager local`` on
  the same fitted pipeline (saved with mlflow.sklearn, pyfunc predict_fn = predict_proba);
* ``mlflow-pyfunc``: bench/transform_peers.py pyfunc: mlflow.pyfunc.load_model → pd.read_csv → predict.

Plus, once: the transform on ``--small-rows`` (memory must be flat from it to ``--rows``), the answers
compared (our probabilities against the plain script's, row by row), and interactive scoring through a
local endpoint: ``Platform.score_batch`` on ``--batch-rows`` customers now, and the same client as it was
before this change (churn_core/scoring.py at BEFORE_COMMIT, read from git) against the same endpoint;
``pipeline.predict_proba`` in-process on the same frame is the ceiling.

Goals: transform wall ≤ 0.7× the plain script; ≥ 5× faster than MLflow; peak RSS ≤ 1 GB and flat.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (BENCH, MLFLOW_VENV, ROOT, VENV_PY, Cleanup, loadavg, machine, median, platform_cleanup,  # noqa: E402
                     print_table, ratio, start_warm_process, temp_home, write_results)

BEFORE_COMMIT = "73d7833"  # main before batch transform: score_batch's client as it was
TRAIN_ROWS = 7043
GOALS = {"plain": 0.7, "mlflow": 5.0, "rss_mb": 1000.0}


class PeakMemory(threading.Thread):
    """Peak of the summed RSS (and PSS) of a process and its descendants, sampled until stopped; and the
    CPU seconds (user + system) each of them had used when last seen (a lower bound for short-lived ones)."""

    def __init__(self, pid: int, interval: float = 0.05):
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.peak_rss = self.peak_pss = 0.0
        self.most_processes = 0
        self.cpu: dict[int, float] = {}
        self.halt = threading.Event()

    def run(self) -> None:
        import psutil

        tick = 0
        while not self.halt.is_set():
            try:
                root = psutil.Process(self.pid)
                procs = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                procs = []
            rss = pss = 0.0
            for proc in procs:
                try:
                    rss += proc.memory_info().rss
                    times = proc.cpu_times()
                    self.cpu[proc.pid] = max(self.cpu.get(proc.pid, 0.0), times.user + times.system)
                    if tick % 5 == 0:
                        pss += proc.memory_full_info().pss
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
            self.peak_rss = max(self.peak_rss, rss / 1e6)
            if tick % 5 == 0:
                self.peak_pss = max(self.peak_pss, pss / 1e6)
            self.most_processes = max(self.most_processes, len(procs))
            tick += 1
            self.halt.wait(self.interval)

    def stop(self) -> dict:
        self.halt.set()
        self.join(5)
        return {"peak_rss_mb": round(self.peak_rss, 1), "peak_pss_mb": round(self.peak_pss, 1),
                "processes": self.most_processes, "cpu_seconds": round(sum(self.cpu.values()), 2)}


def scoring_file(rows: int, seed: int) -> bytes:
    """Customers to score: the subscription sample without its target, a blank TotalCharges as an empty cell."""
    import numpy as np
    import pandas as pd

    from churn_core.data.sample import make_subscription_sample

    frame = pd.read_csv(io.BytesIO(make_subscription_sample(rows, seed=seed)), dtype=str, keep_default_na=False)
    frame = frame.drop(columns=["Churn"])
    frame["TotalCharges"] = np.where(frame["TotalCharges"].str.strip() == "", "", frame["TotalCharges"])
    out = io.StringIO()
    frame.to_csv(out, index=False)
    return out.getvalue().encode()


def run_transform(p, model: str, key: str, reasons: bool = False) -> dict:
    started = time.perf_counter()
    job = p.start_transform(model, key, reasons=reasons)
    sampler = PeakMemory(job.pid)
    sampler.start()
    while True:
        job = p.describe_transform(job.name)
        if not job.is_active:
            break
        time.sleep(0.05)
    seconds = time.perf_counter() - started
    memory = sampler.stop()
    if job.status != "Completed":
        raise RuntimeError(f"transform {job.name} {job.status}: {job.failure_reason}")
    return {"seconds": round(seconds, 3), "catalog_seconds": round(job.ended_at - job.created_at, 3),
            "rows_scored": job.rows_scored, "name": job.name, "workers": job.instance_count, **memory,
            "loadavg": loadavg()}


def run_process(cmd: list[str], env: dict | None = None) -> dict:
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    sampler = PeakMemory(proc.pid)
    sampler.start()
    out, err = proc.communicate(timeout=3600)
    seconds = time.perf_counter() - started
    memory = sampler.stop()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])} failed ({proc.returncode}): {err[-1500:]}")
    last = out.strip().splitlines()[-1] if out.strip() else "{}"
    try:
        inner = json.loads(last)
    except ValueError:
        inner = {}
    return {"seconds": round(seconds, 3), **inner, **memory, "loadavg": loadavg()}


def old_score_frame():
    """churn_core/scoring.py as it was before this change, from git (its score_frame: JSON records, 500 a request)."""
    source = subprocess.run(["git", "-C", str(ROOT), "show", f"{BEFORE_COMMIT}:churn_core/scoring.py"],
                            capture_output=True, text=True)
    if source.returncode != 0:
        return None
    folder = Path(tempfile.mkdtemp(prefix="old-scoring-"))
    (folder / "old_scoring.py").write_text(source.stdout.replace("from .errors import", "from churn_core.errors import")
                                           .replace("from .validation import",
                                                    "from churn_core.data.csv_readers import"))
    spec = importlib.util.spec_from_file_location("old_scoring", folder / "old_scoring.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["old_scoring"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module.score_frame


def interactive(p, model: str, data: bytes, rows: int) -> dict:
    """score_batch through a local endpoint, before and after, and predict_proba in-process (the ceiling)."""
    from churn_core.paths import entry_module

    head = data.split(b"\n", rows + 1)
    frame = p.read_customers(b"\n".join(head[: rows + 1]) + b"\n")
    ep = p.deploy(model, "bench-transform-ep")
    if ep.status != "InService":
        raise RuntimeError(f"endpoint {ep.status}: {ep.failure_reason}")
    out = {"rows": len(frame), "endpoint_workers": ep.instance_count}
    try:
        started = time.perf_counter()
        after = p.score_batch(ep.name, frame, reasons=False)  # like for like with the client before
        seconds = time.perf_counter() - started
        out["after"] = {"seconds": round(seconds, 3), "rows_per_s": round(len(frame) / seconds, 1),
                        "scored": len(after.scored), "refused": len(after.errors)}
        started = time.perf_counter()
        explained = p.score_batch(ep.name, frame)  # the default: each row's risk band and top reason too
        seconds = time.perf_counter() - started
        out["after_with_top_reasons"] = {"seconds": round(seconds, 3), "rows_per_s": round(len(frame) / seconds, 1),
                                         "scored": len(explained.scored), "with_reason": int(
                                             (explained.scored.get("top_reason", "") != "").sum())}
        before_fn = old_score_frame()
        if before_fn is not None:
            schema = p.model_schema(model)
            started = time.perf_counter()
            before = before_fn(lambda payload: p.invoke(ep.name, payload), frame, schema, 500)
            seconds = time.perf_counter() - started
            out["before"] = {"seconds": round(seconds, 3), "rows_per_s": round(len(frame) / seconds, 1),
                             "scored": len(before.scored), "refused": len(before.errors),
                             "client": f"churn_core/scoring.py at {BEFORE_COMMIT}"}
            out["after_over_before"] = round(out["after"]["rows_per_s"] / out["before"]["rows_per_s"], 2)
    finally:
        p.delete_endpoint(ep.name)
    model_dir = Path(tempfile.mkdtemp(prefix="bench-model-"))
    loaded = load_model(p, model, model_dir)
    dataset_schema = entry_module("dataset_schema")
    started = time.perf_counter()
    typed = dataset_schema.typed_features(frame, loaded["schema"], "bench")
    loaded["pipeline"].predict_proba(typed)
    seconds = time.perf_counter() - started
    out["predict_proba_in_process"] = {"rows_per_s": round(len(frame) / seconds, 1)}
    shutil.rmtree(model_dir, ignore_errors=True)
    return out


def load_model(p, model: str, folder: Path) -> dict:
    """The job's model.tar.gz, SHA-256 checked against the catalog, extracted and loaded by its model_fn."""
    from churn_core.storage.artifacts import sha256_file
    from churn_core.paths import entry_module
    from churn_core.backends.local.endpoint.server import safe_extract

    row = p.get_model(model)
    artifact = p.store.path(row["artifact_key"])
    if sha256_file(artifact) != row["artifact_sha256"]:
        raise RuntimeError("model.tar.gz does not match the SHA-256 recorded at training; refusing to load it")
    safe_extract(artifact, folder)
    return entry_module("train").model_fn(str(folder))


def compare(ours: Path, plain: Path) -> dict:
    import numpy as np
    import pandas as pd

    a = pd.read_csv(ours, usecols=["customerID", "churn_probability", "predicted_churn"], dtype={"customerID": str})
    b = pd.read_csv(plain, dtype={"customerID": str})
    same_ids = bool((a["customerID"].to_numpy() == b["customerID"].to_numpy()).all())
    diff = float(np.abs(a["churn_probability"].to_numpy() - b["churn_probability"].to_numpy()).max())
    agree = int((a["predicted_churn"].to_numpy() == b["predicted_churn"].to_numpy()).sum())
    return {"rows": len(a), "same_ids_in_order": same_ids, "max_probability_difference": diff,
            "labels_agree": agree}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--small-rows", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-rows", type=int, default=20_000)
    parser.add_argument("--short", action="store_true", help="100,000 and 20,000 rows, one round")
    parser.add_argument("--skip-mlflow", action="store_true")
    parser.add_argument("--mlflow-venv", type=Path, default=MLFLOW_VENV)
    opts = parser.parse_args(argv)
    if opts.short:
        opts.rows, opts.small_rows, opts.rounds, opts.batch_rows = 100_000, 20_000, 1, 5_000
    mlflow_python = opts.mlflow_venv / "bin" / "python"
    use_mlflow = not opts.skip_mlflow and (opts.mlflow_venv / "bin" / "mlflow").exists()
    if not use_mlflow and not opts.skip_mlflow:
        print(f"{opts.mlflow_venv} is missing: create it as docs/benchmarks.md says; skipping the MLflow peers")

    cleanup = Cleanup()
    temp_home(cleanup, "bench-transform")
    work = Path(tempfile.mkdtemp(prefix="bench-transform-work-"))
    cleanup.add(f"remove {work}", lambda: shutil.rmtree(work, ignore_errors=True))
    info = {"machine": machine(), "options": {k: str(v) for k, v in vars(opts).items()}}
    info["warm_process"] = start_warm_process(cleanup)
    import churn_core
    from churn_core.data.sample import make_subscription_sample

    p = churn_core.connect()
    platform_cleanup(cleanup, p)
    print(f"training a random forest (form defaults) on {TRAIN_ROWS:,} subscription rows ...")
    p.upload_dataset("subs", make_subscription_sample(TRAIN_ROWS, seed=11))
    p.start_training("subs", {"algorithm": "random_forest"}, name="subs-rf")
    while p.describe_training("subs-rf").is_active:
        time.sleep(0.1)
    assert p.describe_training("subs-rf").status == "Completed"
    threshold = p.model_threshold("subs-rf")
    model_dir = work / "model"
    load_model(p, "subs-rf", model_dir)
    mlflow_model = None
    if use_mlflow:
        out = subprocess.run([str(mlflow_python), str(BENCH / "mlflow_export.py"), str(model_dir),
                              str(work / "mlflow-model"), "predict_proba"], capture_output=True, text=True,
                             timeout=900, cwd=str(work))
        if out.returncode != 0:
            raise RuntimeError(f"MLflow export failed: {out.stderr[-1500:]}")
        mlflow_model = work / "mlflow-model"
        print(f"  MLflow model: {out.stdout.strip().splitlines()[-1]}")
    files = {}
    for label, rows, seed in (("small", opts.small_rows, 31), ("large", opts.rows, 32)):
        print(f"generating {rows:,} customers to score ...")
        key = f"scoring/{label}/customers.csv"
        p.store.put_bytes(key, scoring_file(rows, seed))
        files[label] = {"rows": rows, "key": key, "path": p.store.path(key),
                        "mb": round(p.store.path(key).stat().st_size / 1e6, 1)}
    info["files"] = {k: {"rows": v["rows"], "mb": v["mb"]} for k, v in files.items()}
    path = str(files["large"]["path"])
    mlflow_env = {**os.environ, "PATH": f"{opts.mlflow_venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
                  "MLFLOW_TRACKING_URI": (work / "mlruns").as_uri()}
    mlflow_env.pop("PYTHONPATH", None)
    python = str(VENV_PY if VENV_PY.exists() else sys.executable)
    runners = {
        "transform": lambda: run_transform(p, "subs-rf", files["large"]["key"]),
        "plain": lambda: run_process([python, str(BENCH / "transform_peers.py"), "plain", str(model_dir), path,
                                      str(work / "plain.csv"), repr(threshold)]),
    }
    if mlflow_model is not None:
        runners["mlflow-cli"] = lambda: run_process(
            [str(opts.mlflow_venv / "bin" / "mlflow"), "models", "predict", "-m", str(mlflow_model), "-i", path,
             "-t", "csv", "-o", str(work / "mlflow.json"), "--env-manager", "local"], env=mlflow_env)
        runners["mlflow-pyfunc"] = lambda: run_process(
            [str(mlflow_python), str(BENCH / "transform_peers.py"), "pyfunc", str(mlflow_model), path,
             str(work / "pyfunc.csv"), repr(threshold)], env=mlflow_env)
    runs: dict[str, list[dict]] = {name: [] for name in runners}
    names = list(runners)
    for r in range(opts.rounds):
        for name in names if r % 2 == 0 else list(reversed(names)):
            print(f"round {r + 1}/{opts.rounds}: {name} on {opts.rows:,} rows ...", flush=True)
            result = runners[name]()
            runs[name].append(result)
            print(f"  {result['seconds']:.2f} s, peak RSS {result['peak_rss_mb']:.0f} MB, load {result['loadavg']}")
    last = runs["transform"][-1]
    info["agreement_with_plain"] = compare(p.store.path(p.describe_transform(last["name"]).output_key),
                                           work / "plain.csv")
    print(f"transform on {opts.small_rows:,} rows (memory from small to large) ...")
    small = run_transform(p, "subs-rf", files["small"]["key"])
    print(f"transform with each line's top reason on {opts.small_rows:,} rows (its cost) ...")
    explained = run_transform(p, "subs-rf", files["small"]["key"], reasons=True)
    explained["over_plain"] = round(explained["seconds"] / small["seconds"], 2)
    info["small_with_top_reasons"] = explained
    print(f"score_batch through a local endpoint on {opts.batch_rows:,} rows, after and before ...")
    info["interactive"] = interactive(p, "subs-rf", files["large"]["path"].read_bytes(), opts.batch_rows)

    med = {name: median(r["seconds"] for r in results) for name, results in runs.items()}
    ours = med["transform"]
    summary = {
        "median_seconds": med,
        "rows_per_s": {name: round(opts.rows / s, 1) for name, s in med.items()},
        "ratio_to_plain": round(ratio(ours, med["plain"]), 3),
        "per_round_ratio_to_plain": [round(a["seconds"] / b["seconds"], 3)
                                     for a, b in zip(runs["transform"], runs["plain"], strict=True)],
        "memory": {"small": {"rows": opts.small_rows, "peak_rss_mb": small["peak_rss_mb"],
                             "peak_pss_mb": small["peak_pss_mb"]},
                   "large": {"rows": opts.rows, "peak_rss_mb": max(r["peak_rss_mb"] for r in runs["transform"]),
                             "peak_pss_mb": max(r["peak_pss_mb"] for r in runs["transform"])}},
    }
    if mlflow_model is not None:
        summary["mlflow_over_ours"] = {k: round(med[k] / ours, 2) for k in ("mlflow-cli", "mlflow-pyfunc")}
    summary["goals"] = {
        "transform ≤ 0.7× plain": summary["ratio_to_plain"] <= GOALS["plain"],
        "≥ 5× MLflow (CLI)": bool(mlflow_model) and summary["mlflow_over_ours"]["mlflow-cli"] >= GOALS["mlflow"],
        "peak RSS ≤ 1 GB": summary["memory"]["large"]["peak_rss_mb"] <= GOALS["rss_mb"],
    }
    rows = [[name, med[name], summary["rows_per_s"][name], ratio(med[name], ours),
             max(r["peak_rss_mb"] for r in runs[name])] for name in runners]
    print_table(f"{opts.rows:,} rows, median of {opts.rounds} (load now {loadavg()})",
                ["run", "seconds", "rows/s", "÷ transform", "peak RSS MB"], rows)
    print_table("memory of the transform job (driver + workers)", ["rows", "peak RSS MB", "peak PSS MB"],
                [[opts.small_rows, small["peak_rss_mb"], small["peak_pss_mb"]],
                 [opts.rows, summary["memory"]["large"]["peak_rss_mb"], summary["memory"]["large"]["peak_pss_mb"]]])
    inter = info["interactive"]
    print_table(f"score_batch through a local endpoint, {inter['rows']:,} rows",
                ["client", "rows/s", "scored", "refused"],
                [[k, inter[k]["rows_per_s"], inter[k]["scored"], inter[k]["refused"]] for k in ("before", "after")
                 if k in inter]
                + [["predict_proba in-process", inter["predict_proba_in_process"]["rows_per_s"], "", ""]])
    print(f"\nagreement with the plain script: {info['agreement_with_plain']}")
    print(f"goals: {summary['goals']}")
    write_results("bench_transform", {**info, "runs": runs, "small": small, "summary": summary})
    cleanup.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
