"""Batch transform: a million customers scored from the bucket, against the plain script and MLflow.

    .venv/bin/python bench/bench_transform.py [--rows 1000000] [--small-rows 100000] [--rounds 3]
                                              [--batch-rows 20000] [--quick] [--skip-mlflow]

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

import importlib.util
import io
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from harness import (BENCH, MLFLOW_VENV, PYTHON, ROOT, Bench, deploy, export_mlflow, extract_model, interleave,
                     load_in_process, loadavg, median, mlflow_env, mlflow_ready, ratio, spread, train)

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
    while (job := p.describe_transform(job.name)).is_active:
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
    try:
        inner = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
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


def timed_rows(fn, rows: int) -> tuple:
    started = time.perf_counter()
    got = fn()
    seconds = time.perf_counter() - started
    return got, {"seconds": round(seconds, 3), "rows_per_s": round(rows / seconds, 1)}


def interactive(p, model: str, data: bytes, rows: int, work: Path) -> dict:
    """score_batch through a local endpoint, before and after, and predict_proba in-process (the ceiling)."""
    from churn_core.paths import entry_module

    frame = p.read_customers(b"\n".join(data.split(b"\n", rows + 1)[: rows + 1]) + b"\n")
    ep = deploy(p, model, "bench-transform-ep")
    out: dict = {"rows": len(frame), "endpoint_workers": ep.instance_count}
    try:
        after, out["after"] = timed_rows(lambda: p.score_batch(ep.name, frame, reasons=False), len(frame))
        out["after"].update(scored=len(after.scored), refused=len(after.errors))  # like for like with before
        explained, out["after_with_top_reasons"] = timed_rows(lambda: p.score_batch(ep.name, frame), len(frame))
        out["after_with_top_reasons"].update(scored=len(explained.scored), with_reason=int(
            (explained.scored.get("top_reason", "") != "").sum()))  # the default: risk band and top reason too
        before_fn = old_score_frame()
        if before_fn is not None:
            schema = p.model_schema(model)
            before, out["before"] = timed_rows(lambda: before_fn(lambda payload: p.invoke(ep.name, payload), frame,
                                                                 schema, 500), len(frame))
            out["before"].update(scored=len(before.scored), refused=len(before.errors),
                                 client=f"churn_core/scoring.py at {BEFORE_COMMIT}")
            out["after_over_before"] = round(out["after"]["rows_per_s"] / out["before"]["rows_per_s"], 2)
    finally:
        p.delete_endpoint(ep.name)
    _, loaded = load_in_process(p, model, work / "inproc-model")
    typed = entry_module("dataset_schema").typed_features
    _, out["predict_proba_in_process"] = timed_rows(
        lambda: loaded["pipeline"].predict_proba(typed(frame, loaded["schema"], "bench")), len(frame))
    return out


def compare(ours: Path, plain: Path) -> dict:
    import numpy as np
    import pandas as pd

    a = pd.read_csv(ours, usecols=["customerID", "churn_probability", "predicted_churn"], dtype={"customerID": str})
    b = pd.read_csv(plain, dtype={"customerID": str})
    return {"rows": len(a), "same_ids_in_order": bool((a["customerID"].to_numpy() == b["customerID"].to_numpy()).all()),
            "max_probability_difference": float(np.abs(a["churn_probability"].to_numpy()
                                                       - b["churn_probability"].to_numpy()).max()),
            "labels_agree": int((a["predicted_churn"].to_numpy() == b["predicted_churn"].to_numpy()).sum())}


def runners(p, opts, work: Path, files: dict, threshold: float, mlflow_model: Path | None) -> dict:
    """The four ways to score the large file, each one callable per round."""
    path, model_dir, peers = str(files["large"]["path"]), str(work / "model"), str(BENCH / "transform_peers.py")
    out = {"transform": lambda r: run_transform(p, "subs-rf", files["large"]["key"]),
           "plain": lambda r: run_process([PYTHON, peers, "plain", model_dir, path, str(work / "plain.csv"),
                                           repr(threshold)])}
    if mlflow_model is not None:
        env = mlflow_env(work)
        out["mlflow-cli"] = lambda r: run_process(
            [str(MLFLOW_VENV / "bin" / "mlflow"), "models", "predict", "-m", str(mlflow_model), "-i", path,
             "-t", "csv", "-o", str(work / "mlflow.json"), "--env-manager", "local"], env=env)
        out["mlflow-pyfunc"] = lambda r: run_process(
            [str(MLFLOW_VENV / "bin" / "python"), peers, "pyfunc", str(mlflow_model), path, str(work / "pyfunc.csv"),
             repr(threshold)], env=env)
    return {name: (lambda r, name=name, run=run: announce(name, r, opts, run(r))) for name, run in out.items()}


def announce(name: str, r: int, opts, result: dict) -> dict:
    print(f"round {r + 1}/{opts.rounds}: {name} on {opts.rows:,} rows: {result['seconds']:.2f} s, peak RSS "
          f"{result['peak_rss_mb']:.0f} MB, load {result['loadavg']}", flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    bench = Bench("transform", __doc__, {"rows": 1_000_000, "small_rows": 100_000, "rounds": 3, "batch_rows": 20_000,
                                         "skip_mlflow": False},
                  {"rows": 100_000, "small_rows": 20_000, "rounds": 1, "batch_rows": 5_000}, argv)
    opts = bench.opts
    use_mlflow = mlflow_ready(opts)
    p = bench.platform(warm=True)
    work = bench.scratch("bench-transform-work-")
    from churn_core.data.sample import make_subscription_sample

    print(f"training a random forest (form defaults) on {TRAIN_ROWS:,} subscription rows ...")
    p.upload_dataset("subs", make_subscription_sample(TRAIN_ROWS, seed=11))
    train(p, "subs", {"algorithm": "random_forest"}, "subs-rf")
    threshold = p.model_threshold("subs-rf")
    extract_model(p, "subs-rf", work / "model")
    mlflow_model = export_mlflow(work / "model", work / "mlflow-model", "predict_proba") if use_mlflow else None
    files = {}
    for label, rows, seed in (("small", opts.small_rows, 31), ("large", opts.rows, 32)):
        print(f"generating {rows:,} customers to score ...")
        key = f"scoring/{label}/customers.csv"
        p.store.put_bytes(key, scoring_file(rows, seed))
        files[label] = {"rows": rows, "key": key, "path": p.store.path(key),
                        "mb": round(p.store.path(key).stat().st_size / 1e6, 1)}
    runs = interleave(runners(p, opts, work, files, threshold, mlflow_model), opts.rounds)
    agreement = compare(p.store.path(p.describe_transform(runs["transform"][-1]["name"]).output_key),
                        work / "plain.csv")
    print(f"transform on {opts.small_rows:,} rows (memory from small to large), then with each line's top reason ...")
    small = run_transform(p, "subs-rf", files["small"]["key"])
    explained = run_transform(p, "subs-rf", files["small"]["key"], reasons=True)
    explained["over_plain"] = round(explained["seconds"] / small["seconds"], 2)
    print(f"score_batch through a local endpoint on {opts.batch_rows:,} rows, after and before ...")
    inter = interactive(p, "subs-rf", files["large"]["path"].read_bytes(), opts.batch_rows, work)
    summary = summarize(bench, runs, small, opts, mlflow_model is not None)
    bench.table(f"score_batch through a local endpoint, {inter['rows']:,} rows", ["client", "rows/s", "scored",
                                                                                 "refused"],
                [[k, inter[k]["rows_per_s"], inter[k]["scored"], inter[k].get("refused")]
                 for k in ("before", "after", "after_with_top_reasons") if k in inter]
                + [["predict_proba in-process (the ceiling)", inter["predict_proba_in_process"]["rows_per_s"], "", ""]])
    bench.text(f"Top reasons on {opts.small_rows:,} rows: {explained['seconds']} s, {explained['over_plain']}× the "
               f"transform without them. Agreement with the plain script: {agreement}")
    return bench.finish(files={k: {"rows": v["rows"], "mb": v["mb"]} for k, v in files.items()},
                        agreement_with_plain=agreement, small_with_top_reasons=explained, interactive=inter, runs=runs,
                        small=small, summary=summary)


def summarize(bench: Bench, runs: dict, small: dict, opts, mlflow: bool) -> dict:
    med = {name: median(r["seconds"] for r in results) for name, results in runs.items()}
    ours = med["transform"]
    large = {"rows": opts.rows, "peak_rss_mb": max(r["peak_rss_mb"] for r in runs["transform"]),
             "peak_pss_mb": max(r["peak_pss_mb"] for r in runs["transform"])}
    s = {"median_seconds": med, "spread_seconds": {k: spread(r["seconds"] for r in v) for k, v in runs.items()},
         "rows_per_s": {name: round(opts.rows / v, 1) for name, v in med.items()},
         "ratio_to_plain": ratio(ours, med["plain"]),
         "per_round_ratio_to_plain": [ratio(a["seconds"], b["seconds"])
                                      for a, b in zip(runs["transform"], runs["plain"], strict=True)],
         "memory": {"small": {"rows": opts.small_rows, "peak_rss_mb": small["peak_rss_mb"],
                              "peak_pss_mb": small["peak_pss_mb"]}, "large": large}}
    if mlflow:
        s["mlflow_over_ours"] = {k: round(med[k] / ours, 2) for k in ("mlflow-cli", "mlflow-pyfunc")}
    s["goals"] = {"transform ≤ 0.7× plain": s["ratio_to_plain"] <= GOALS["plain"],
                  "≥ 5× MLflow (CLI)": mlflow and s["mlflow_over_ours"]["mlflow-cli"] >= GOALS["mlflow"],
                  "peak RSS ≤ 1 GB": large["peak_rss_mb"] <= GOALS["rss_mb"]}
    bench.table(f"{opts.rows:,} rows, median of {opts.rounds} (load now {loadavg()})",
                ["run", "seconds", "min s", "max s", "rows/s", "÷ transform", "peak RSS MB"],
                [[k, med[k], s["spread_seconds"][k]["min"], s["spread_seconds"][k]["max"], s["rows_per_s"][k],
                  ratio(med[k], ours, 2), max(r["peak_rss_mb"] for r in runs[k])] for k in runs])
    bench.table("Memory of the transform job (driver + workers)", ["rows", "peak RSS MB", "peak PSS MB"],
                [[opts.small_rows, small["peak_rss_mb"], small["peak_pss_mb"]],
                 [opts.rows, large["peak_rss_mb"], large["peak_pss_mb"]]])
    bench.headline(f"transform {opts.rows:,} rows: {ours:.2f}s, {s['ratio_to_plain']}× the plain script"
                   + (f", MLflow CLI {s['mlflow_over_ours']['mlflow-cli']}× ours" if mlflow else "")
                   + f"; goals {s['goals']}")
    return s


if __name__ == "__main__":
    sys.exit(main())
