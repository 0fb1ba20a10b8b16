"""Training: submit → Completed on the local backend, and where the time goes.

    .venv/bin/python bench/bench_training.py [--runs 5] [--trees 100] [--short]

For the synthetic sample (make_sample(), 2,000 rows) and the reference telecom CSV (3,333 rows,
read from ../shared/data, never copied into the repository), RandomForest with 100 trees:

* platform: ``p.start_training`` → status Completed, ``--runs`` times (median), with the warm
  process running (churn_core/warm.py: the job driver and train.py are forked with numpy, pandas
  and scikit-learn already imported). The duration is the catalog's ``ended_at - created_at``
  (what the Jobs page shows); the client-observed time (polling every 50 ms) is reported too;
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

import argparse
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (REFERENCE_CSV, ROOT, VENV_PY, Cleanup, loadavg, machine, median, platform_cleanup,  # noqa: E402
                     print_table, ratio, run_timed, start_warm_process, temp_home, wait_child_cpu,
                     without_warm_process, write_results)

ENTRY = ROOT / "entry" / "train.py"
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


def sm_env(base: Path, target_env: dict | None = None) -> dict:
    env = dict(os.environ if target_env is None else target_env)
    env.update(
        SM_MODEL_DIR=str(base / "model"),
        SM_OUTPUT_DATA_DIR=str(base / "output" / "data"),
        SM_OUTPUT_FAILURE=str(base / "output" / "failure"),
        SM_CHANNEL_TRAIN=str(base / "input" / "data" / "train"),
        SM_CHANNEL_TEST=str(base / "input" / "data" / "test"),
        SM_CHANNELS=json.dumps(["test", "train"]),
        SM_CURRENT_HOST="algo-1",
        SM_HOSTS=json.dumps(["algo-1"]),
        SM_NUM_CPUS=str(os.cpu_count() or 1),
        PYTHONUNBUFFERED="1",
    )
    return env


def prepare_bare(store, dataset, base: Path) -> None:
    """Every object of the train and test prefixes (the data and the typed dataset schema decided at
    upload), as the job driver copies them, so the bare script trains on exactly the same channels."""
    for channel, key in (("train", dataset.train_key), ("test", dataset.test_key)):
        folder = base / "input" / "data" / channel
        folder.mkdir(parents=True, exist_ok=True)
        prefix = key.rsplit("/", 1)[0] + "/"
        for item in store.list(prefix):
            store.download(item, folder / item[len(prefix):])


def run_bare(base: Path, cli: list[str]) -> dict:
    for sub in ("model", "output"):
        shutil.rmtree(base / sub, ignore_errors=True)
    (base / "model").mkdir(parents=True)
    (base / "output" / "data").mkdir(parents=True)
    wall0 = time.time()
    seconds, proc = run_timed([str(VENV_PY), str(ENTRY), *cli], env=sm_env(base), cwd=str(base))
    if proc.returncode != 0:
        raise RuntimeError(f"bare train.py failed ({proc.returncode}): {proc.stderr[-800:]}")
    outputs = last_output_mtime(base)
    return {
        "seconds": round(seconds, 3),
        "cpu_seconds": round(proc.cpu_seconds, 3),
        "done_in": done_in(proc.stdout),
        "start_to_outputs": round(outputs - wall0, 3) if outputs else None,
        "exit_after_outputs": round(wall0 + seconds - outputs, 3) if outputs else None,
        "loadavg1": loadavg()[0],
    }


def run_platform(p, dataset: str, hps: dict, name: str) -> dict:
    t0 = time.perf_counter()
    p.start_training(dataset, hps, name=name)
    submit_call = time.perf_counter() - t0
    deadline = time.monotonic() + 300
    while True:
        job = p.describe_training(name)
        if job.status not in ("InProgress", "Stopping"):
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {name} still {job.status} after 300 s")
        time.sleep(0.05)
    observed = time.perf_counter() - t0
    if job.status != "Completed":
        raise RuntimeError(f"job {name} ended {job.status}: {job.failure_reason}")
    cpu = wait_child_cpu(job.pid)  # a cold driver is our child; its rusage includes train.py's
    if cpu is None:
        cpu = _warm_child_cpu(job.pid)  # a forked driver is the warm process's child: it records the same
    folder = Path(p.backend.job_folder(name))
    outputs = last_output_mtime(folder)
    log = p.training_log(name, 200)
    script_done = done_in(log)
    queue = job.started_at - job.created_at
    script_to_outputs = outputs - job.started_at if outputs else None
    return {
        "seconds": round(job.ended_at - job.created_at, 3),
        "observed_seconds": round(observed, 3),
        "cpu_seconds": round(cpu, 3) if cpu is not None else None,
        "submit_call": round(submit_call, 3),
        "queue_and_driver_start": round(queue, 3),
        "script_to_outputs": round(script_to_outputs, 3) if script_to_outputs is not None else None,
        "done_in": script_done,
        "before_train_fn": round(script_to_outputs - script_done, 3) if script_to_outputs and script_done else None,
        "after_outputs_to_completed": round(job.ended_at - outputs, 3) if outputs else None,
        "loadavg1": loadavg()[0],
    }


def _warm_child_cpu(pid: int) -> float | None:
    from churn_core.processes.warm import client as warm

    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        cpu = warm.exit_cpu_seconds(pid)
        if cpu is not None:
            return cpu
        time.sleep(0.02)
    return None


def load_entry():
    spec = importlib.util.spec_from_file_location("churn_entry_bench", ENTRY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def in_process(base: Path, cli: list[str], runs: int) -> dict:
    """Fit, train() and packaging inside this process (imports already warm)."""
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
    numeric = [f["name"] for f in schema["features"] if f["kind"] == "numeric"]
    categorical = [f["name"] for f in schema["features"] if f["kind"] == "categorical"]
    fits, trains, packs, fit_cpus, train_cpus = [], [], [], [], []
    scratch = Path(tempfile.mkdtemp(prefix="inproc-", dir=base))
    for i in range(runs + 1):  # first one is a warm-up
        pipeline = model_pipeline.build_pipeline(args, numeric, categorical)
        c0, t0 = time.process_time(), time.perf_counter()
        pipeline.fit(x, y)
        fit, fit_cpu = time.perf_counter() - t0, time.process_time() - c0
        args.model_dir = str(scratch / f"model{i}")
        args.output_data_dir = str(scratch / f"out{i}")
        with open(os.devnull, "w") as quiet:
            stdout, sys.stdout = sys.stdout, quiet
            try:
                c0, t0 = time.process_time(), time.perf_counter()
                mod.train(args)
                whole, whole_cpu = time.perf_counter() - t0, time.process_time() - c0
            finally:
                sys.stdout = stdout
        t0 = time.perf_counter()
        make_tarball(Path(args.model_dir), scratch / f"model{i}.tar.gz")
        make_tarball(Path(args.output_data_dir), scratch / f"output{i}.tar.gz")
        sha256_file(scratch / f"model{i}.tar.gz")
        sha256_file(scratch / f"output{i}.tar.gz")
        pack = time.perf_counter() - t0
        if i:
            fits.append(fit)
            trains.append(whole)
            packs.append(pack)
            fit_cpus.append(fit_cpu)
            train_cpus.append(whole_cpu)
    model_size = (Path(args.model_dir) / "model.joblib").stat().st_size
    tar_size = (scratch / f"model{runs}.tar.gz").stat().st_size
    shutil.rmtree(scratch, ignore_errors=True)
    return {
        "fit_seconds": round(median(fits), 3),
        "fit_cpu_seconds": round(median(fit_cpus), 3),
        "train_fn_warm_cpu_seconds": round(median(train_cpus), 3),
        "train_fn_warm_seconds": round(median(trains), 3),
        "evaluate_and_save_seconds": round(median(trains) - median(fits), 3),
        "packaging_seconds": round(median(packs), 3),
        "model_joblib_bytes": model_size,
        "model_tar_gz_bytes": tar_size,
        "all_fit_seconds": [round(v, 3) for v in fits],
    }


def startup_costs(runs: int) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    results = {}
    for label, code in (("interpreter", "pass"), ("train_imports", TRAIN_IMPORTS), ("driver_imports", DRIVER_IMPORTS)):
        times, cpus = [], []
        for _ in range(runs + 1):
            seconds, proc = run_timed([str(VENV_PY), "-c", code], env=env)
            if proc.returncode != 0:
                raise RuntimeError(f"{code!r} failed: {proc.stderr[-500:]}")
            times.append(seconds)
            cpus.append(proc.cpu_seconds)
        results[label] = round(median(times[1:]), 3)
        results[label + "_cpu"] = round(median(cpus[1:]), 3)
    for label in ("train_imports", "driver_imports"):
        results[label + "_net"] = round(results[label] - results["interpreter"], 3)
        results[label + "_net_cpu"] = round(results[label + "_cpu"] - results["interpreter_cpu"], 3)
    results["loadavg"] = loadavg()
    return results


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
            proc = subprocess.Popen([str(VENV_PY), "-c", code], stdout=subprocess.PIPE, text=True)
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
    with open(os.devnull, "w") as quiet:
        stdout, sys.stdout = sys.stdout, quiet
        try:
            mod.train(args)  # warm-up
            prof = cProfile.Profile()
            prof.enable()
            mod.train(args)
            prof.disable()
        finally:
            sys.stdout = stdout
    shutil.rmtree(scratch, ignore_errors=True)
    stats = pstats.Stats(prof).stats
    rows = sorted(
        ((k, v) for k, v in stats.items()
         if str(ENTRY.parent) in k[0] or "sklearn" in k[0] or "joblib" in k[0]),
        key=lambda kv: -kv[1][3],
    )
    return [f"{v[3]:7.3f} s cum {v[1]:6d} calls  {Path(k[0]).name}:{k[1]}({k[2]})" for k, v in rows[:top]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--trees", type=int, default=100)
    parser.add_argument("--short", action="store_true", help="2 runs each (smoke run)")
    opts = parser.parse_args(argv)
    runs = 2 if opts.short else max(1, opts.runs)

    info = machine()
    print(f"machine: {info['cpu_count']} cores, load average {info['loadavg_at_start']}")
    cleanup = Cleanup()
    home = temp_home(cleanup, "bench-training")
    import churn_core
    from churn_core.training import hyperparameters as hp
    from churn_core.data.sample import make_sample

    warm_start = start_warm_process(cleanup)
    print(f"warm process ready in {warm_start['seconds_to_ready']:.2f}s (once per code version)")
    p = churn_core.connect()
    platform_cleanup(cleanup, p)
    sources = {"sample": make_sample()}
    if REFERENCE_CSV.exists():
        sources["reference"] = REFERENCE_CSV.read_bytes()
    else:
        print(f"reference CSV missing at {REFERENCE_CSV}; measuring the sample only")
    hps = {"algorithm": "random_forest", "n_estimators": opts.trees}
    cli_hps = hp.clean(hps)
    results: dict = {
        "machine": info,
        "runs": runs,
        "trees": opts.trees,
        "goal_seconds": GOAL_SECONDS,
        "warm_process": warm_start,
        "datasets": {},
    }

    for label, data in sources.items():
        ds = p.upload_dataset(label, data)
        cli = hp.as_cli({**cli_hps, "target": ds.target})
        base = home / "bare" / label
        prepare_bare(p.store, ds, base)
        run_bare(base, cli)  # warm-up: page cache for the libraries, not counted
        platform_runs, cold_runs, bare_runs = [], [], []
        for i in range(runs):  # interleaved so load drift hits every side alike
            platform_runs.append(run_platform(p, label, hps, f"bench-{label}-{i}"))
            with without_warm_process():
                cold_runs.append(run_platform(p, label, hps, f"bench-{label}-cold-{i}"))
            bare_runs.append(run_bare(base, cli))
            print(
                f"  {label} run {i + 1}/{runs}: platform {platform_runs[-1]['seconds']:.2f}s, "
                f"without the warm process {cold_runs[-1]['seconds']:.2f}s, "
                f"bare script {bare_runs[-1]['seconds']:.2f}s, load {loadavg()[0]}"
            )
        plat = {k: median(r[k] for r in platform_runs) for k in platform_runs[0]}
        cold = {k: median(r[k] for r in cold_runs) for k in cold_runs[0]}
        bare = {k: median(r[k] for r in bare_runs) for k in bare_runs[0]}
        inproc = in_process(base, cli, runs)
        results["datasets"][label] = {
            "rows": ds.rows,
            "n_train": ds.n_train,
            "n_test": ds.n_test,
            "platform_median": plat,
            "cold_median": cold,
            "bare_median": bare,
            "in_process": inproc,
            "platform_runs": platform_runs,
            "cold_runs": cold_runs,
            "bare_runs": bare_runs,
            "ratio_platform_to_bare": round(ratio(plat["seconds"], bare["seconds"]), 3),
            "ratio_platform_to_cold": round(ratio(plat["seconds"], cold["seconds"]), 3),
            "cpu_ratio_platform_to_bare": round(ratio(plat["cpu_seconds"], bare["cpu_seconds"]), 3)
            if plat["cpu_seconds"]
            else None,
            "platform_overhead_seconds": round(plat["seconds"] - bare["seconds"], 3),
            "goal_met": plat["seconds"] <= GOAL_SECONDS,
        }

    startup = startup_costs(runs)
    results["startup"] = startup
    results["teardown"] = teardown_costs(runs)
    results["train_profile"] = profile_train(
        home / "bare" / "reference" if "reference" in sources else home / "bare" / "sample",
        hp.as_cli({**cli_hps, "target": "Churn"}),
    )

    rows = []
    for label, r in results["datasets"].items():
        pm, cm, bm = r["platform_median"], r["cold_median"], r["bare_median"]
        rows.append(
            [
                label,
                r["rows"],
                pm["seconds"],
                pm["observed_seconds"],
                cm["seconds"],
                bm["seconds"],
                r["ratio_platform_to_cold"],
                r["ratio_platform_to_bare"],
                pm["cpu_seconds"],
                bm["cpu_seconds"],
                r["cpu_ratio_platform_to_bare"],
                "yes" if r["goal_met"] else "NO",
            ]
        )
    print_table(
        f"Submit → Completed, RandomForest {opts.trees} trees, median of {runs} (goal ≤ {GOAL_SECONDS:.0f} s)",
        [
            "dataset",
            "rows",
            "platform s",
            "observed s",
            "no warm s",
            "bare s",
            "÷ no warm",
            "÷ bare",
            "platform CPU s",
            "bare CPU s",
            "CPU ratio",
            "goal met",
        ],
        rows,
    )
    rows = []
    for label, r in results["datasets"].items():
        pm, bm, ip = r["platform_median"], r["bare_median"], r["in_process"]
        rows += [
            [label, "TOTAL platform submit→Completed", pm["seconds"], pm["cpu_seconds"]],
            [
                label,
                "TOTAL platform without the warm process (CHURN_WARM=0)",
                r["cold_median"]["seconds"],
                r["cold_median"]["cpu_seconds"],
            ],
            [label, "TOTAL bare script", bm["seconds"], bm["cpu_seconds"]],
            [label, "queue + driver start (created→started)", pm["queue_and_driver_start"]],
            [label, "  copy channels + fork train.py (before train())", pm["before_train_fn"]],
            [label, "  train() incl. lazy pandas/sklearn imports ('Done in')", pm["done_in"]],
            [label, "  train.py exit + packaging + catalog (outputs→Completed)", pm["after_outputs_to_completed"]],
            [label, "bare script: exit after last output (interpreter teardown)", bm["exit_after_outputs"]],
            [label, "in-process: fit only (warm imports)", ip["fit_seconds"], ip["fit_cpu_seconds"]],
            [
                label,
                "in-process: train() (fit + evaluate + save)",
                ip["train_fn_warm_seconds"],
                ip["train_fn_warm_cpu_seconds"],
            ],
            [label, "in-process: packaging (2 tar.gz + 2 SHA-256)", ip["packaging_seconds"]],
        ]
    rows = [r + [""] if len(r) == 3 else r for r in rows]
    rows += [
        [
            "—",
            "warm process start: interpreter + imports (once per code version)",
            results["warm_process"]["seconds_to_ready"],
            "",
        ]
    ]
    rows += [
        ["—", "python -c pass (interpreter start)", startup["interpreter"], startup["interpreter_cpu"]],
        [
            "—",
            "train.py's imports (net of interpreter)",
            startup["train_imports_net"],
            startup["train_imports_net_cpu"],
        ],
        [
            "—",
            "job driver's imports (net of interpreter)",
            startup["driver_imports_net"],
            startup["driver_imports_net_cpu"],
        ],
    ]
    rows += [
        ["—", "interpreter teardown after the last line: normal exit", results["teardown"]["normal exit"], ""],
        ["—", "  the same ending with os._exit(0)", results["teardown"]["os._exit(0)"], ""],
    ]
    print_table("Where the time goes (medians)", ["dataset", "part", "wall s", "CPU s"], rows)
    print("\ncProfile of one in-process train() (warm imports), by cumulative time:")
    print("\n".join("  " + line for line in results["train_profile"]))
    print(f"load average now {loadavg()}")
    write_results("bench_training", results)
    cleanup.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
