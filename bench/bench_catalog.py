"""Catalog scale: page run times and live-table refresh with 1,000 jobs and 100 endpoints.

    .venv/bin/python bench/bench_catalog.py [--jobs 1000] [--endpoints 100] [--runs 5] [--quick]

Two fresh state directories, measured in the same run, page by page (interleaved):

* **empty** (the peer): nothing stored at all;
* **one job** (second peer): the state right after the real job below — one dataset, one job;
* **full**: one real dataset (the reference CSV), one real RandomForest job and its real
  artifacts, ``--jobs`` job rows inserted directly with ``churn_core.catalog.database.Catalog`` (Completed with
  metrics_json and pointing at the real job's artifacts, plus some Failed/Stopped, spread over
  30 days; each with its model row and events), ``--endpoints`` endpoint rows with status
  'Failed' (with config + model rows; no process, so the local backend's reconcile leaves them
  alone) and ``--live`` real InService endpoints.

For each page: ``AppTest.from_file("app/main.py")``, ``switch_page("../pages/<page>.py")``, one
warm-up run, then ``--runs`` timed ``run()`` calls (median). Goal ≤ 0.3 s per page run.
Live tables: ``p.list_training_jobs(limit=50)`` and ``p.list_endpoints()`` (median of 20 calls).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sys
import time
from pathlib import Path

from harness import ROOT, Bench, loadavg, median, ratio, reference_data, timeit, train

MAIN = str(ROOT / "app" / "main.py")
PAGES = ["data", "train", "jobs", "endpoints", "predict", "settings"]
TITLES = {"data": "Data", "train": "Train", "jobs": "Jobs", "endpoints": "Endpoints", "predict": "Predict",
          "settings": "Settings"}
GOAL_S = 0.3


def fill(p, jobs: int, endpoints: int, seed: int = 7) -> dict:
    """Insert realistic rows next to one real job; returns counts."""
    from churn_core.catalog.database import dumps

    rng = random.Random(seed)
    real = p.catalog.one("SELECT * FROM jobs WHERE status = 'Completed' LIMIT 1")
    base_metrics = json.loads(real["metrics_json"])
    now = time.time()
    job_rows, model_rows, event_rows = [], [], []
    algorithms = [("random_forest", "rf"), ("gradient_boosting", "gb"), ("logistic_regression", "lr")]
    for i in range(jobs):
        algorithm, short = algorithms[i % 3]
        name = f"{short}-{i:05d}-bench"
        created = now - 30 * 86400 + i * (30 * 86400 / jobs)
        started = created + rng.uniform(0.1, 2.0)
        ended = started + rng.uniform(1.0, 60.0)
        roll = rng.random()
        status = "Completed" if roll < 0.9 else ("Failed" if roll < 0.97 else "Stopped")
        metrics = {k: (min(1.0, max(0.0, v + rng.uniform(-0.05, 0.05))) if isinstance(v, float) else v)
                   for k, v in base_metrics.items()} if status == "Completed" else {}
        hps = {"algorithm": algorithm, "n_estimators": rng.choice([50, 100, 200]), "max_depth": None,
               "min_samples_leaf": 1, "class_weight": "none", "random_state": 42}
        done = status == "Completed"
        job_rows.append((name, "local", real["dataset"], real["dataset_sha256"], algorithm, dumps(hps), status, status,
                         "" if status != "Failed" else
                         "n_estimators must be a whole number >= 1 (got 0). (training script exit code 1)",
                         created, started, ended, None, 0 if done else 1, dumps(metrics),
                         real["model_key"] if done else "", real["model_sha256"] if done else "",
                         real["output_key"] if done else "", real["output_sha256"] if done else "",
                         real["code_sha256"], "local", 1, ""))
        if done:
            model_rows.append((name, name, real["dataset"], real["dataset_sha256"], algorithm, dumps(hps),
                               real["code_sha256"], real["model_key"], real["model_sha256"], dumps(metrics), ended))
        event_rows.append((created, "job", name, f"submitted: {algorithm} on {real['dataset']}"))
        event_rows.append((ended, "job", name, status))
    endpoint_rows, config_rows, deployed_rows = [], [], []
    completed = [r[0] for r in model_rows]
    for i in range(endpoints):
        name = f"bench-ep-{i:04d}"
        model = rng.choice(completed) if completed else real["name"]
        created = now - rng.uniform(0, 30 * 86400)
        deployed_rows.append((f"{name}-model", model, real["model_key"], real["model_sha256"], created))
        config_rows.append((f"{name}-config", f"{name}-model", "ml.m5.large", 1, created))
        endpoint_rows.append((name, "local", f"{name}-config", model, "Failed",
                              "the model server crashed 3 times in 300s; last: exit code 1", "", None, None, None, "",
                              "ml.m5.large", 1, 0, created, created + 5, None, ""))
        event_rows.append((created, "endpoint", name, f"Creating from model {model}"))
        event_rows.append((created + 5, "endpoint", name, "Failed: the model server crashed 3 times"))
    with p.catalog.tx() as conn:
        conn.executemany(
            f"INSERT INTO jobs (name, backend, dataset, dataset_sha256, algorithm, hyperparameters_json, "
            f"status, secondary_status, failure_reason, created_at, started_at, ended_at, pid, exit_code, "
            f"metrics_json, model_key, model_sha256, output_key, output_sha256, code_sha256, "
            f"instance_type, instance_count, arn) VALUES ({', '.join('?' * 23)})",
            job_rows,
        )
        conn.executemany(
            "INSERT INTO models (name, job, dataset, dataset_sha256, algorithm, hyperparameters_json, "
            "code_sha256, artifact_key, artifact_sha256, metrics_json, created_at) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            model_rows,
        )
        conn.executemany(
            "INSERT INTO deployed_models (name, model, artifact_key, artifact_sha256, created_at) VALUES (?,?,?,?,?)",
            deployed_rows,
        )
        conn.executemany(
            "INSERT INTO endpoint_configs (name, deployed_model, instance_type, instance_count, created_at) "
            "VALUES (?,?,?,?,?)",
            config_rows,
        )
        conn.executemany(
            "INSERT INTO endpoints (name, backend, config, model, status, failure_reason, url, port, pid, "
            "server_pid, workdir, instance_type, instance_count, restarts, created_at, updated_at, "
            f"in_service_at, arn) VALUES ({', '.join('?' * 18)})",
            endpoint_rows,
        )
        conn.executemany("INSERT INTO events (at, kind, name, message) VALUES (?,?,?,?)", event_rows)
    return {"jobs": jobs, "models": len(model_rows), "endpoints": endpoints, "events": len(event_rows)}


def page_app(home: Path, page: str):
    """AppTest of app/main.py on ``page`` in the state directory ``home``, after the app's first run."""
    from streamlit.testing.v1 import AppTest

    os.environ["CHURN_HOME"] = str(home)
    at = AppTest.from_file(MAIN, default_timeout=120)
    at.run()
    if at.exception:
        raise RuntimeError(f"app/main.py failed: {at.exception}")
    at.switch_page(f"../pages/{page}.py")
    return at


def run_page(at, page: str) -> float:
    t0 = time.perf_counter()
    at.run()
    if at.exception:
        raise RuntimeError(f"{page} failed: {at.exception}")
    return time.perf_counter() - t0


def page_times(home: Path, page: str, runs: int) -> dict:
    at = page_app(home, page)
    first = run_page(at, page)
    title = at.title[0].value if len(at.title) else None
    if title != TITLES[page]:
        raise RuntimeError(f"expected the {TITLES[page]} page, got title {title!r}")
    times = [run_page(at, page) for _ in range(runs)]
    return {"first_run_s": round(first, 4), "median_s": round(median(times), 4), "runs_s": [round(t, 4) for t in times]}


def profile_page(home: Path, page: str, top: int = 14) -> dict:
    """cProfile one warm run of a page (the script runs in AppTest's ScriptRunner thread: profile that one)."""
    import cProfile
    import pstats

    from streamlit.runtime.scriptrunner import script_runner

    at = page_app(home, page)
    at.run()
    prof, original = cProfile.Profile(), script_runner.ScriptRunner._run_script
    script_runner.ScriptRunner._run_script = lambda self, *a, **kw: prof.runcall(original, self, *a, **kw)
    try:
        seconds = run_page(at, page)
    finally:
        script_runner.ScriptRunner._run_script = original
    stats = pstats.Stats(prof).stats  # {(file, line, func): (cc, nc, tt, ct, callers)}

    def label(key) -> str:
        short = key[0].replace(str(ROOT) + "/", "").replace(f"{sys.prefix}/lib/python3.11/site-packages/", "")
        return f"{short}:{key[1]}({key[2]})"

    skip = (str(ROOT / ".venv") + "/", str(ROOT / "bench") + "/")  # by prefix: a checkout may be named bench
    ours = sorted(((k, v) for k, v in stats.items() if k[0].startswith(str(ROOT) + "/") and not k[0].startswith(skip)),
                  key=lambda kv: -kv[1][3])
    heavy = sorted(stats.items(), key=lambda kv: -kv[1][2])
    return {"profiled_run_s": round(seconds, 4),
            "project_functions_by_cumtime": [f"{v[3] * 1000:8.1f} ms cum  {v[1]:6d} calls  {label(k)}"
                                             for k, v in ours[:top]],
            "all_functions_by_tottime": [f"{v[2] * 1000:8.1f} ms self {v[1]:6d} calls  {label(k)}"
                                         for k, v in heavy[:top]]}


def figure_times(p, job: str, dataset: str, reps: int) -> dict:
    """The plotly builders the Jobs/Data pages call on every run (app/charts.py, whatever they are now),
    build + to_json, next to minimal plotly.graph_objects versions of the same charts (the floor)."""
    import plotly.graph_objects as go

    from app import charts as widgets

    ev = p.evaluation(job)
    frame = p.read_dataset(dataset, "train", typed=True)
    target = p.get_dataset(dataset).target
    feature = next(c for c in frame.columns if c != target)

    def go_confusion(ev: dict) -> go.Figure:
        labels, matrix = ["Stayed (0)", "Churned (1)"], ev["confusion_matrix"]
        fig = go.Figure(go.Heatmap(z=matrix, x=[f"Predicted {lab}" for lab in labels],
                                   y=[f"Actual {lab}" for lab in labels], colorscale="Blues", showscale=False,
                                   text=matrix, texttemplate="%{text}"))
        fig.update_yaxes(autorange="reversed")
        return widgets._layout(fig, "Confusion matrix", 340)

    def go_importance(ev: dict, top: int = 20) -> go.Figure:
        items = ev.get("feature_importance", [])[:top][::-1]
        fig = go.Figure(go.Bar(x=[i["importance"] for i in items], y=[i["feature"] for i in items], orientation="h"))
        return widgets._layout(fig, "Feature importance", max(300, 28 * len(items) + 80))

    def go_distribution(frame, feature: str, target: str) -> go.Figure:
        fig = go.Figure()
        for value, label in ((0, "stayed"), (1, "churned")):
            fig.add_histogram(x=frame.loc[frame[target] == value, feature].to_numpy(), name=label, opacity=0.75,
                              marker_color=widgets.OUTCOME_COLORS[label], nbinsx=40)
        fig.update_layout(barmode="overlay")
        return widgets._layout(fig, f"{feature} by {target}", 340)

    cases = {
        "widgets.roc_figure": lambda: widgets.roc_figure({job: ev}).to_json(),
        "widgets.pr_figure": lambda: widgets.pr_figure({job: ev}).to_json(),
        "widgets.confusion_figure": lambda: widgets.confusion_figure(ev).to_json(),
        "  reference: bare go.Heatmap": lambda: go_confusion(ev).to_json(),
        "widgets.importance_figure": lambda: widgets.importance_figure(ev).to_json(),
        "  reference: bare go.Bar": lambda: go_importance(ev).to_json(),
        "widgets.distribution_figure": lambda: widgets.distribution_figure(frame, feature, target).to_json(),
        "  reference: 2 × bare go.Histogram": lambda: go_distribution(frame, feature, target).to_json(),
    }
    return {k: round(v["median_ms"], 2) for k, v in timeit(cases, reps, warm=1).items()}


def connection_times(home: Path, calls: int) -> dict:
    """What one catalog read costs: Catalog.query opens a connection and sets 3 PRAGMAs every time."""
    import sqlite3

    from churn_core.catalog.database import Catalog

    catalog = Catalog(home / "churn.db")
    kept = sqlite3.connect(home / "churn.db", timeout=30, isolation_level=None)
    kept.execute("PRAGMA busy_timeout=30000")
    cases = {
        "Catalog.query('SELECT 1') (new connection + PRAGMAs)": lambda: catalog.query("SELECT 1"),
        "same query on a kept-open connection": lambda: kept.execute("SELECT 1").fetchall(),
        "Catalog.query(jobs page: 50 newest jobs)": lambda: catalog.query(
            "SELECT * FROM jobs ORDER BY created_at DESC, rowid DESC LIMIT 50"
        ),
        "same on a kept-open connection": lambda: kept.execute(
            "SELECT * FROM jobs ORDER BY created_at DESC, rowid DESC LIMIT 50"
        ).fetchall(),
    }
    got = timeit(cases, calls, warm=0)
    kept.close()
    return {k: round(v["median_ms"], 3) for k, v in got.items()}


def refresh_times(home: Path, calls: int) -> dict:
    """The live tables' calls, each called once and then ``calls`` times in a row: median ms."""
    import churn_core
    from churn_core.config import Settings

    os.environ["CHURN_HOME"] = str(home)
    p = churn_core.connect(Settings.from_env())
    out = {}
    for label, fn in (("list_training_jobs(limit=50)", lambda: p.list_training_jobs(limit=50)),
                      ("list_endpoints()", p.list_endpoints), ("count_training_jobs()", p.count_training_jobs),
                      ("job_names(limit=200, Completed)", lambda: p.job_names(limit=200, status="Completed")),
                      ("list_models()", p.list_models)):
        out[label] = timeit({label: fn}, calls, warm=1)[label]["median_ms"]
    return {k: round(v, 3) for k, v in out.items()}


def compare_pages(bench: Bench, homes: dict) -> dict:
    """Page by page, empty → one job → full, so load drift hits all alike."""
    pages: dict = {}
    for page in PAGES:
        got = {k: page_times(home, page, bench.opts.runs) for k, home in homes.items()}
        pages[page] = {**got, "ratio_full_to_empty": ratio(got["full"]["median_s"], got["empty"]["median_s"], 2),
                       "ratio_full_to_one_job": ratio(got["full"]["median_s"], got["one_job"]["median_s"], 2),
                       "goal_met": got["full"]["median_s"] <= GOAL_S, "loadavg1": loadavg()[0]}
        print("  " + page + ": " + ", ".join(f"{k} {v['median_s']:.3f}s" for k, v in got.items())
              + f", load {loadavg()[0]}", flush=True)
    return pages


def main(argv: list[str] | None = None) -> int:
    bench = Bench("catalog", __doc__, {"jobs": 1000, "endpoints": 100,
                                       "live": (2, "real InService endpoints in the full catalog"), "runs": 5,
                                       "trees": 100, "profile": (False, "profile every page (default: those over "
                                                                        "the goal)")},
                  {"runs": 2, "live": 1}, argv)
    opts, quick = bench.opts, bench.opts.quick
    p = bench.platform(warm=False)
    import churn_core

    homes = {"empty": bench.scratch("empty-", dir=bench.home_dir.parent),
             "one_job": bench.scratch("one-", dir=bench.home_dir.parent), "full": bench.home_dir}
    label, data = reference_data()
    p.upload_dataset(label, data)
    train(p, label, {"algorithm": "random_forest", "n_estimators": opts.trees}, "rf-real-bench", 600)
    shutil.copytree(homes["full"], homes["one_job"], dirs_exist_ok=True)  # second peer: copied before the fill
    t0 = time.perf_counter()
    counts = fill(p, opts.jobs, opts.endpoints)
    insert_s = round(time.perf_counter() - t0, 3)
    for i in range(opts.live):
        train_deploy = p.deploy("rf-real-bench", f"live-{i}", "ml.m5.large", 1, wait=True, timeout=180)
        if train_deploy.status != "InService":
            raise RuntimeError(f"live-{i} is {train_deploy.status}: {train_deploy.failure_reason}")
    print(f"full catalog: {counts} inserted in {insert_s:.2f}s, plus {opts.live} live endpoint(s); load {loadavg()}")
    os.environ["CHURN_HOME"] = str(homes["empty"])  # the empty peer: the catalog file is created on connect
    churn_core.connect()
    pages = compare_pages(bench, homes)
    profiles = {page: profile_page(homes["full"], page) for page, v in pages.items()
                if opts.profile or not v["goal_met"]}  # where the time goes, for every page over the goal
    refresh = {k: refresh_times(homes[k], 5 if quick else 20) for k in ("empty", "full")}
    os.environ["CHURN_HOME"] = str(homes["full"])
    figures = figure_times(p, "rf-real-bench", label, 3 if quick else 10)
    connections = connection_times(homes["full"], 20 if quick else 100)
    report(bench, counts, insert_s, pages, refresh, figures, connections, profiles)
    return bench.finish(counts=counts, insert_seconds=insert_s, pages=pages, refresh_ms=refresh,
                        profiles_full_catalog=profiles, figures_ms=figures, catalog_reads_ms=connections,
                        goal_seconds=GOAL_S)


def report(bench: Bench, counts, insert_s, pages, refresh, figures, connections, profiles) -> None:
    opts = bench.opts
    bench.table(f"Full catalog: {counts['jobs']} jobs ({counts['models']} models), {counts['endpoints']} Failed "
                f"endpoint rows, {counts['events']} events, inserted in {insert_s} s, plus {opts.live} real InService "
                "endpoint(s). Peers: an empty catalog, and the same state with only the one real dataset and job. "
                f"AppTest page run, median of {opts.runs} after a warm-up:",
                ["page", "empty s (peer)", "1 job s (peer)", "full s", "full / empty", "full / 1 job",
                 "first run (full) s", "goal ≤ 0.3 s"],
                [[k, v["empty"]["median_s"], v["one_job"]["median_s"], v["full"]["median_s"], v["ratio_full_to_empty"],
                  v["ratio_full_to_one_job"], v["full"]["first_run_s"], v["goal_met"]] for k, v in pages.items()])
    bench.table("Live-table calls:", ["live-table call", "empty ms", "full ms", "full / empty"],
                [[k, refresh["empty"][k], v, ratio(v, refresh["empty"][k], 2)] for k, v in refresh["full"].items()])
    bench.table("Chart builders from app/widgets.py (build + `to_json`) next to minimal graph_objects versions:",
                ["builder", "median ms"], [[k, v] for k, v in figures.items()])
    bench.table("Catalog reads:", ["catalog read", "median ms"], [[k, v] for k, v in connections.items()])
    for page, prof in profiles.items():
        bench.text(f"Profile of one `{page}` page run on the full catalog ({prof['profiled_run_s']} s under cProfile), "
                   "project functions by cumulative time, then all by self time:\n\n```\n"
                   + "\n".join(prof["project_functions_by_cumtime"][:10] + ["---"]
                               + prof["all_functions_by_tottime"][:8])
                   + "\n```")
    worst = max(pages.items(), key=lambda kv: kv[1]["full"]["median_s"])
    bench.headline(f"catalog: slowest page {worst[0]} {worst[1]['full']['median_s']:.3f}s with {counts['jobs']} jobs "
                   f"(empty {worst[1]['empty']['median_s']:.3f}s); goal ≤0.3s "
                   f"{'met on every page' if all(v['goal_met'] for v in pages.values()) else 'NOT met on every page'}")


if __name__ == "__main__":
    sys.exit(main())
