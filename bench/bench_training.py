"""Training: submit → Completed on the local backend, and where the time goes.

    .venv/bin/python bench/bench_training.py [--runs 5] [--trees 100] [--quick]

For the synthetic sample (make_sample(), 2,000 rows) and the reference telecom CSV (3,333 rows,
read from ../shared/data, never copied into the repository), RandomForest with 100 trees:

* platform: ``p.start_training`` → status Completed, ``--runs`` times (median), with the warm
  process running (the job driver and train.py are forked with numpy, pandas and scikit-learn
  already imported). The duration is the catalog's ``ended_at - created_at`` (what the Jobs page
  shows); the client-observed time (polling every 50 ms) is reported too;
* peers, interleaved with the platform runs so load drift hits all alike:
  - the bare script: ``entry/train.py`` run directly in a new interpreter with the same SM_*
    environment and command line the job driver uses (what a job costs without the platform);
  - the platform without the warm process (``CHURN_WARM=0``: new interpreters, as before it);
* where the time goes: per job from the catalog timestamps, the script's ``Done in X.XXs`` line
  and the output files' mtimes; plus separately measured interpreter start (``python -c pass``),
  imports (the modules train.py imports), the warm process's own start, fit and train()
  in-process with warm imports, and packaging (tar.gz + SHA-256) in-process.

Goal: submit → Completed ≤ 3 s on a 2-core machine.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import tempfile
import time
from contextlib import redirect_stdout
from pathlib import Path

from harness import (ENTRY, PYTHON, ROOT, Bench, clear_outputs, loadavg, median, medians, prepare_channels,
                     ratio, reference_data, run_timed, sm_env, spread, wait_child_cpu, without_warm_process)

GOAL_SECONDS = 3.0
TRAIN_IMPORTS = ("import numpy, pandas, joblib, sklearn.compose, sklearn.impute, sklearn.pipeline, "
                 "sklearn.preprocessing, sklearn.ensemble, sklearn.metrics")
DRIVER_IMPORTS = ("import churn_core.backends.local.job_driver, churn_core.backends.local.backend, "
                  "churn_core.training.hyperparameters")
DONE_RE = re.compile(r"Done in ([0-9.]+)s")


def done_in(text: str) -> float | None:
    match = DONE_RE.search(text or "")
    return float(match.group(1)) if match else None


def last_output_mtime(folder: Path) -> float | None:
    """When train.py wrote its last output file (metrics/evaluation json, model.joblib)."""
    times = [f.stat().st_mtime for sub in ("model", "output/data") for f in (folder / sub).glob("*") if f.is_file()]
    return max(times) if times else None


def run_bare(base: Path, cli: list[str]) -> dict:
    clear_outputs(base)
    wall0 = time.time()
    seconds, proc = run_timed([PYTHON, str(ENTRY), *cli], env=sm_env(base), cwd=str(base))
    if proc.returncode != 0:
        raise RuntimeError(f"bare train.py failed ({proc.returncode}): {proc.stderr[-800:]}")
    outputs = last_output_mtime(base)
    return {"seconds": round(seconds, 3), "cpu_seconds": round(proc.cpu_seconds, 3), "done_in": done_in(proc.stdout),
            "start_to_outputs": round(outputs - wall0, 3) if outputs else None,
            "exit_after_outputs": round(wall0 + seconds - outputs, 3) if outputs else None, "loadavg1": loadavg()[0]}


def run_platform(p, dataset: str, hps: dict, name: str) -> dict:
    t0 = time.perf_counter()
    p.start_training(dataset, hps, name=name)
    submit_call = time.perf_counter() - t0
    deadline = time.monotonic() + 300
    while (job := p.describe_training(name)).status in ("InProgress", "Stopping"):
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {name} still {job.status} after 300 s")
        time.sleep(0.05)
    observed = time.perf_counter() - t0
    if job.status != "Completed":
        raise RuntimeError(f"job {name} ended {job.status}: {job.failure_reason}")
    cpu = wait_child_cpu(job.pid)  # a cold driver is our child; its rusage includes train.py's
    if cpu is None:
        cpu = warm_child_cpu(job.pid)  # a forked driver is the warm process's child: it records the same
    outputs = last_output_mtime(Path(p.backend.job_folder(name)))
    script_done = done_in(p.training_log(name, 200))
    to_outputs = outputs - job.started_at if outputs else None
    return {"seconds": round(job.ended_at - job.created_at, 3), "observed_seconds": round(observed, 3),
            "cpu_seconds": round(cpu, 3) if cpu is not None else None, "submit_call": round(submit_call, 3),
            "queue_and_driver_start": round(job.started_at - job.created_at, 3),
            "script_to_outputs": round(to_outputs, 3) if to_outputs is not None else None, "done_in": script_done,
            "before_train_fn": round(to_outputs - script_done, 3) if to_outputs and script_done else None,
            "after_outputs_to_completed": round(job.ended_at - outputs, 3) if outputs else None,
            "loadavg1": loadavg()[0]}


def warm_child_cpu(pid: int) -> float | None:
    from churn_core.processes.warm import client as warm

    deadline = time.monotonic() + 5
    while (cpu := warm.exit_cpu_seconds(pid)) is None and time.monotonic() < deadline:
        time.sleep(0.02)
    return cpu


def load_entry():
    spec = importlib.util.spec_from_file_location("churn_entry_bench", ENTRY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def in_process(base: Path, cli: list[str], runs: int) -> dict:
    """Fit, train() and packaging inside this process (imports already warm); the first run is a warm-up."""
    from churn_core.storage.artifacts import make_tarball, sha256_file

    mod = load_entry()
    import dataset_schema  # entry/'s sibling modules (train.py put its folder on sys.path)
    import model_pipeline

    args, _ = mod.parse_hyperparameters([*cli, "--train", str(base / "input/data/train"),
                                         "--test", str(base / "input/data/test")])
    train_df = dataset_schema.read_channel(args.train, "train")
    schema = mod._dataset_schema(args, train_df)  # as train() decides it: the upload's typed schema
    y, _ = dataset_schema.encode_target(train_df[schema["target"]], schema["target"], "train")
    x = dataset_schema.typed_features(train_df, schema, "train")
    kinds = {k: [f["name"] for f in schema["features"] if f["kind"] == k] for k in ("numeric", "categorical")}
    scratch = Path(tempfile.mkdtemp(prefix="inproc-", dir=base))
    runs_ = []
    for i in range(runs + 1):
        pipeline = model_pipeline.build_pipeline(args, kinds["numeric"], kinds["categorical"])
        c0, t0 = time.process_time(), time.perf_counter()
        pipeline.fit(x, y)
        run = {"fit": time.perf_counter() - t0, "fit_cpu": time.process_time() - c0}
        args.model_dir, args.output_data_dir = str(scratch / f"model{i}"), str(scratch / f"out{i}")
        with open(os.devnull, "w") as quiet, redirect_stdout(quiet):
            c0, t0 = time.process_time(), time.perf_counter()
            mod.train(args)
            run.update(train=time.perf_counter() - t0, train_cpu=time.process_time() - c0)
        t0 = time.perf_counter()
        for folder, tarball in ((args.model_dir, f"model{i}.tar.gz"), (args.output_data_dir, f"output{i}.tar.gz")):
            make_tarball(Path(folder), scratch / tarball)
            sha256_file(scratch / tarball)
        run["pack"] = time.perf_counter() - t0
        runs_ += [run] if i else []
    m = medians(runs_)
    return {"fit_seconds": round(m["fit"], 3), "fit_cpu_seconds": round(m["fit_cpu"], 3),
            "train_fn_warm_cpu_seconds": round(m["train_cpu"], 3), "train_fn_warm_seconds": round(m["train"], 3),
            "evaluate_and_save_seconds": round(m["train"] - m["fit"], 3), "packaging_seconds": round(m["pack"], 3),
            "model_joblib_bytes": (Path(args.model_dir) / "model.joblib").stat().st_size,
            "model_tar_gz_bytes": (scratch / f"model{runs}.tar.gz").stat().st_size,
            "all_fit_seconds": [round(r["fit"], 3) for r in runs_]}


def startup_costs(runs: int) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = {}
    for label, code in (("interpreter", "pass"), ("train_imports", TRAIN_IMPORTS), ("driver_imports", DRIVER_IMPORTS)):
        procs = [run_timed([PYTHON, "-c", code], env=env) for _ in range(runs + 1)][1:]
        if any(proc.returncode for _, proc in procs):
            raise RuntimeError(f"{code!r} failed: {procs[-1][1].stderr[-500:]}")
        out[label] = round(median(s for s, _ in procs), 3)
        out[label + "_cpu"] = round(median(proc.cpu_seconds for _, proc in procs), 3)
    for label in ("train_imports", "driver_imports"):
        out[label + "_net"] = round(out[label] - out["interpreter"], 3)
        out[label + "_net_cpu"] = round(out[label + "_cpu"] - out["interpreter_cpu"], 3)
    return {**out, "loadavg": loadavg()}


def teardown_costs(runs: int) -> dict:
    """Seconds from the script's last line to the process being gone: normal exit vs os._exit(0),
    with train.py's libraries loaded and a forest fitted (what every training job pays at the end)."""
    body = (TRAIN_IMPORTS + "; import time; from sklearn.ensemble import RandomForestClassifier as R; "
            "import numpy as np; X = np.random.rand(2000, 10); y = (X[:, 0] > .5).astype(int); "
            "R(100, n_jobs=-1).fit(X, y); print(time.time(), flush=True)")
    out = {}
    for label, code in (("normal exit", body), ("os._exit(0)", body + "; import os; os._exit(0)")):
        times = []
        for _ in range(runs):
            proc = subprocess.Popen([PYTHON, "-c", code], stdout=subprocess.PIPE, text=True)
            line = proc.stdout.readline()
            proc.wait()
            times.append(time.time() - float(line))
        out[label] = round(median(times), 3)
    return out


def profile_train(base: Path, cli: list[str], top: int = 14) -> list[str]:
    """cProfile of one in-process train() (imports warm): where the non-import time goes."""
    import cProfile
    import pstats

    mod = load_entry()
    scratch = Path(tempfile.mkdtemp(prefix="prof-", dir=base))
    args, _ = mod.parse_hyperparameters([*cli, "--train", str(base / "input/data/train"), "--test",
                                         str(base / "input/data/test"), "--model-dir", str(scratch / "m"),
                                         "--output-data-dir", str(scratch / "o")])
    prof = cProfile.Profile()
    with open(os.devnull, "w") as quiet, redirect_stdout(quiet):
        mod.train(args)  # warm-up
        prof.runcall(mod.train, args)
    stats = pstats.Stats(prof).stats
    rows = sorted(((k, v) for k, v in stats.items()
                   if str(ENTRY.parent) in k[0] or "sklearn" in k[0] or "joblib" in k[0]), key=lambda kv: -kv[1][3])
    return [f"{v[3]:7.3f} s cum {v[1]:6d} calls  {Path(k[0]).name}:{k[1]}({k[2]})" for k, v in rows[:top]]


def measure(bench: Bench, p, label: str, data: bytes, hps: dict, cli_hps: dict, home: Path) -> dict:
    from churn_core.training import hyperparameters as hp

    runs = bench.opts.runs
    ds = p.upload_dataset(label, data)
    cli = hp.as_cli({**cli_hps, "target": ds.target})
    base = home / "bare" / label
    prepare_channels(p, ds, base)
    run_bare(base, cli)  # warm-up: page cache for the libraries, not counted
    sides = {"platform": lambda i: run_platform(p, label, hps, f"bench-{label}-{i}"),
             "cold": lambda i: cold_run(p, label, hps, f"bench-{label}-cold-{i}"),
             "bare": lambda i: run_bare(base, cli)}
    got = {side: [] for side in sides}
    for i in range(runs):  # in this order every time, as measured before
        for side, run in sides.items():
            got[side].append(run(i))
        print(f"  {label} run {i + 1}/{runs}: " + ", ".join(f"{k} {v[-1]['seconds']:.2f}s" for k, v in got.items())
              + f", load {loadavg()[0]}", flush=True)
    plat, cold, bare = (medians(got[k]) for k in sides)
    return {"rows": ds.rows, "n_train": ds.n_train, "n_test": ds.n_test, "platform_median": plat,
            "cold_median": cold, "bare_median": bare, "spread_seconds": {k: spread(r["seconds"] for r in v)
                                                                         for k, v in got.items()},
            "in_process": in_process(base, cli, runs), "platform_runs": got["platform"], "cold_runs": got["cold"],
            "bare_runs": got["bare"], "ratio_platform_to_bare": ratio(plat["seconds"], bare["seconds"]),
            "ratio_platform_to_cold": ratio(plat["seconds"], cold["seconds"]),
            "cpu_ratio_platform_to_bare": ratio(plat["cpu_seconds"], bare["cpu_seconds"]),
            "platform_overhead_seconds": round(plat["seconds"] - bare["seconds"], 3),
            "goal_met": plat["seconds"] <= GOAL_SECONDS}


def cold_run(p, label: str, hps: dict, name: str) -> dict:
    with without_warm_process():
        return run_platform(p, label, hps, name)


def main(argv: list[str] | None = None) -> int:
    bench = Bench("training", __doc__, {"runs": 5, "trees": 100}, {"runs": 2}, argv)
    opts = bench.opts
    p = bench.platform(warm=True)
    from churn_core.data.sample import make_sample
    from churn_core.training import hyperparameters as hp

    sources = {"sample": make_sample()}
    label, data = reference_data()
    if label == "reference":
        sources[label] = data
    hps = {"algorithm": "random_forest", "n_estimators": opts.trees}
    home = bench.home_dir
    datasets = {k: measure(bench, p, k, v, hps, hp.clean(hps), home) for k, v in sources.items()}
    st, td = startup_costs(opts.runs), teardown_costs(opts.runs)
    profile = profile_train(home / "bare" / label, hp.as_cli({**hp.clean(hps), "target": "Churn"}))
    bench.table(f"Submit → Completed, RandomForest {opts.trees} trees, median of {opts.runs} "
                f"(goal ≤ {GOAL_SECONDS:.0f} s)",
                ["dataset", "platform s", "observed s", "no warm process s (peer)", "bare script s (peer)",
                 "÷ no warm", "÷ bare", "platform CPU s", "bare CPU s", "CPU ÷ bare", "goal met"],
                [[f"{k} ({d['rows']} rows)", d["platform_median"]["seconds"], d["platform_median"]["observed_seconds"],
                  d["cold_median"]["seconds"], d["bare_median"]["seconds"], d["ratio_platform_to_cold"],
                  d["ratio_platform_to_bare"], d["platform_median"]["cpu_seconds"], d["bare_median"]["cpu_seconds"],
                  d["cpu_ratio_platform_to_bare"], d["goal_met"]] for k, d in datasets.items()])
    rows = []
    for k, d in datasets.items():
        pm, bm, ip = d["platform_median"], d["bare_median"], d["in_process"]
        rows += [[k, "queue + driver start (created_at → started_at)", pm["queue_and_driver_start"], ""],
                 [k, "copy channels + fork train.py (before train())", pm["before_train_fn"], ""],
                 [k, "train() incl. its lazy numpy/pandas/sklearn imports (`Done in`)", pm["done_in"], ""],
                 [k, "train.py exit + packaging + catalog (last output → Completed)",
                  pm["after_outputs_to_completed"], ""],
                 [k, "bare script: exit after its last output (interpreter teardown)", bm["exit_after_outputs"], ""],
                 [k, "in-process, imports warm: fit only", ip["fit_seconds"], ip["fit_cpu_seconds"]],
                 [k, "in-process, imports warm: train() = fit + evaluate + save", ip["train_fn_warm_seconds"],
                  ip["train_fn_warm_cpu_seconds"]],
                 [k, "in-process: packaging (2 × tar.gz + 2 × SHA-256)", ip["packaging_seconds"], ""]]
    rows += [["—", "warm process start: interpreter + imports, once per code version",
              bench.results["warm_process"]["seconds_to_ready"], ""],
             ["—", "`python -c pass` (interpreter start)", st["interpreter"], st["interpreter_cpu"]],
             ["—", "train.py's imports (numpy, pandas, joblib, sklearn.*), net", st["train_imports_net"],
              st["train_imports_net_cpu"]],
             ["—", "job driver's imports (churn_core.backends.local.job_driver …), net", st["driver_imports_net"],
              st["driver_imports_net_cpu"]],
             ["—", "interpreter teardown after the last line (libs loaded, forest fitted)", td["normal exit"], ""],
             ["—", "  same, ending with `os._exit(0)`", td["os._exit(0)"], ""]]
    bench.table("Where the time goes (medians)", ["dataset", "part", "wall s", "CPU s"], rows)
    bench.text("cProfile of one in-process `train()` (imports warm), by cumulative time:\n\n```\n"
               + "\n".join(profile) + "\n```")
    for k, d in datasets.items():
        bench.headline(f"training/{k}: submit→Completed {d['platform_median']['seconds']:.2f}s (bare script "
                       f"{d['bare_median']['seconds']:.2f}s, ratio {d['ratio_platform_to_bare']}); goal ≤3s "
                       f"{'met' if d['goal_met'] else 'NOT met'}")
    return bench.finish(runs=opts.runs, trees=opts.trees, goal_seconds=GOAL_SECONDS, datasets=datasets,
                        startup=st, teardown=td, train_profile=profile)


if __name__ == "__main__":
    sys.exit(main())
