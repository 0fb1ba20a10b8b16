"""Tuning: a local tuning job against the notebook loop it replaces, and Bayesian against random search.

    .venv/bin/python bench/bench_tuning.py [--trials 20] [--parallel 2] [--rounds 2] [--seeds 3] [--short]

(a) Speed, on the reference telecom CSV (read from ../shared/data, never copied): a random-forest tuning
    job of ``--trials`` trials over the default ranges, ``--parallel`` at once, random strategy with a
    fixed seed, from ``start_tuning`` to Completed (client-observed, polling every 50 ms). Peer: the
    same configurations (read back from the tuning job's trials) run one after the other as bare
    ``python entry/train.py`` processes with the SM_* environment and the same channels, which is what
    a notebook loop costs. Rounds alternate (tuning, peer / peer, tuning) so load drift hits both.
    Goal: tuning wall time ≤ 0.3× the peer's, and the same best ROC AUC as the best of the peer's runs.
(b) Search quality, on the categorical subscription sample (make_subscription_sample): Bayesian (Optuna
    TPE) and random search with the same budget, best ROC AUC for each of ``--seeds`` seeds.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (REFERENCE_CSV, ROOT, VENV_PY, Cleanup, loadavg, machine, median, platform_cleanup,  # noqa: E402
                     print_table, ratio, start_warm_process, temp_home, write_results)

ENTRY = ROOT / "entry" / "train.py"
PYTHON = str(VENV_PY if VENV_PY.exists() else Path(sys.executable))
GOAL_RATIO = 0.3
SEED = 7


def sm_env(base: Path) -> dict:
    env = dict(os.environ)
    env.update(SM_MODEL_DIR=str(base / "model"), SM_OUTPUT_DATA_DIR=str(base / "output" / "data"),
               SM_OUTPUT_FAILURE=str(base / "output" / "failure"), SM_CHANNEL_TRAIN=str(base / "input" / "data" /
                                                                                         "train"),
               SM_CHANNEL_TEST=str(base / "input" / "data" / "test"), SM_CHANNELS=json.dumps(["test", "train"]),
               SM_CURRENT_HOST="algo-1", SM_HOSTS=json.dumps(["algo-1"]), SM_NUM_CPUS=str(os.cpu_count() or 1),
               PYTHONUNBUFFERED="1")
    return env


def prepare_channels(p, dataset, base: Path) -> None:
    """Every object of the train and test prefixes (data and the dataset schema), as the job driver copies them."""
    for channel, prefix in (("train", dataset.train_prefix), ("test", dataset.test_prefix)):
        folder = base / "input" / "data" / channel
        folder.mkdir(parents=True, exist_ok=True)
        for key in p.store.list(prefix):
            p.store.download(key, folder / key[len(prefix):])


def run_tuning(p, dataset: str, name: str, strategy: str, seed: int, trials: int, parallel: int,
               algorithm: str = "random_forest") -> dict:
    from churn_core.training.hyperparameters import default_ranges

    t0 = time.perf_counter()
    p.start_tuning(dataset, default_ranges(algorithm), objective="roc_auc", max_trials=trials, algorithm=algorithm,
                   max_parallel=parallel, strategy=strategy, seed=seed, name=name)
    deadline = time.monotonic() + 1800
    while (t := p.describe_tuning(name)).is_active:
        if time.monotonic() > deadline:
            raise RuntimeError(f"tuning job {name} still {t.status} after 30 min")
        time.sleep(0.05)
    seconds = time.perf_counter() - t0
    if t.status != "Completed" or t.trials_completed != trials:
        raise RuntimeError(f"tuning job {name} ended {t.status} with {t.trials_completed}/{trials} trials: "
                           f"{t.failure_reason}\n{p.tuning_log(name, 40)}")
    rows = p.tuning_trials(name)
    trial_seconds = [s for s in rows["seconds"] if s is not None]
    from churn_core.processes.warm import client as warm

    deadline = time.monotonic() + 10
    while (driver_cpu := warm.exit_cpu_seconds(t.pid)) is None and time.monotonic() < deadline:
        time.sleep(0.05)  # the tuning process records its ending a moment after it exits
    return {"seconds": round(seconds, 3), "catalog_seconds": round(t.ended_at - t.created_at, 3),
            "tuning_process_cpu_seconds": driver_cpu,
            "best_job": t.best_job, "best_objective": t.best_objective, "static": t.static,
            "configurations": list(rows["hyperparameters"]), "objectives": list(rows["objective"]),
            "median_trial_seconds": round(median(trial_seconds), 3), "loadavg1": loadavg()[0]}


def run_peer(base: Path, target: str, static: dict, configurations: list[dict]) -> dict:
    """The same configurations one after the other, each a new ``python entry/train.py`` process."""
    from churn_core.training.hyperparameters import as_cli

    objectives = []
    t0 = time.perf_counter()
    for params in configurations:
        for sub in ("model", "output"):
            shutil.rmtree(base / sub, ignore_errors=True)
        (base / "model").mkdir(parents=True)
        (base / "output" / "data").mkdir(parents=True)
        cli = as_cli({**static, **params})
        proc = subprocess.run([PYTHON, str(ENTRY), *cli], env=sm_env(base), cwd=str(base), capture_output=True,
                              text=True, timeout=600)
        if proc.returncode != 0:
            raise RuntimeError(f"bare train.py failed ({proc.returncode}): {proc.stderr[-800:]}")
        objectives.append(json.loads((base / "model" / "metrics.json").read_text())["roc_auc"])
    seconds = time.perf_counter() - t0
    return {"seconds": round(seconds, 3), "objectives": objectives, "best_objective": max(objectives),
            "loadavg1": loadavg()[0], "target": target}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--quality-algorithm", default="random_forest", help="the algorithm of part (b)")
    parser.add_argument("--short", action="store_true", help="6 trials, 1 round, 1 seed (smoke run)")
    opts = parser.parse_args(argv)
    trials, rounds, seeds = (6, 1, 1) if opts.short else (opts.trials, max(1, opts.rounds), max(1, opts.seeds))

    info = machine()
    print(f"machine: {info['cpu_count']} cores, load average {info['loadavg_at_start']}")
    cleanup = Cleanup()
    home = temp_home(cleanup, "bench-tuning")
    import churn_core
    from churn_core.training.hyperparameters import default_ranges
    from churn_core.data.sample import make_sample, make_subscription_sample
    from churn_core.tuning.ranges import parse_ranges
    from churn_core.tuning.search import suggest

    warm_start = start_warm_process(cleanup)
    print(f"warm process ready in {warm_start['seconds_to_ready']:.2f}s (once per code version)")
    p = churn_core.connect()
    platform_cleanup(cleanup, p)

    def stop_tuning_jobs() -> None:
        for t in p.list_tuning_jobs(limit=1000):
            if t.is_active:
                p.stop_tuning(t.name)

    cleanup.add("running tuning jobs", stop_tuning_jobs)
    results: dict = {"machine": info, "trials": trials, "parallel": opts.parallel, "seed": SEED,
                     "warm_process": warm_start}

    # (a) speed against the notebook loop -------------------------------------------------------------------
    if REFERENCE_CSV.exists():
        data, label = REFERENCE_CSV.read_bytes(), "reference"
    else:
        print(f"reference CSV missing at {REFERENCE_CSV}; using the synthetic sample")
        data, label = make_sample(), "sample"
    ds = p.upload_dataset("telecom", data)
    base = home / "bare"
    prepare_channels(p, ds, base)
    # The random search's configurations depend on the seed alone: the peer runs exactly these, and every
    # tuning job of the benchmark must record the same ones.
    ranges, static = parse_ranges("random_forest", default_ranges("random_forest"))
    configurations = [suggest(ranges, "random", SEED, "maximize", n, trials) for n in range(trials)]
    speed_rounds = []
    for r in range(rounds):
        got: dict = {}
        for side in (("tuning", "peer") if r % 2 == 0 else ("peer", "tuning")):
            if side == "tuning":
                got["tuning"] = run_tuning(p, "telecom", f"bench-rf-{r + 1}", "random", SEED, trials, opts.parallel)
                if got["tuning"]["configurations"] != configurations or got["tuning"]["static"] != static:
                    raise RuntimeError("the tuning job ran other configurations than its seed gives")
            else:
                got["peer"] = run_peer(base, ds.target, static, configurations)
        got["ratio"] = round(ratio(got["tuning"]["seconds"], got["peer"]["seconds"]), 3)
        got["same_best"] = abs(got["tuning"]["best_objective"] - got["peer"]["best_objective"]) < 1e-12
        speed_rounds.append(got)
        print(f"round {r + 1}: tuning {got['tuning']['seconds']:.2f}s, peer {got['peer']['seconds']:.2f}s, "
              f"ratio {got['ratio']}, best {got['tuning']['best_objective']:.6f} vs "
              f"{got['peer']['best_objective']:.6f}, load {loadavg()[0]}")
    tuning_s = median(r["tuning"]["seconds"] for r in speed_rounds)
    peer_s = median(r["peer"]["seconds"] for r in speed_rounds)
    results["speed"] = {
        "dataset": label, "rows": ds.rows, "rounds": speed_rounds,
        "tuning_median_seconds": tuning_s, "peer_median_seconds": peer_s,
        "ratio_of_medians": round(ratio(tuning_s, peer_s), 3),
        "ratios": [r["ratio"] for r in speed_rounds],
        "same_best_objective": all(r["same_best"] for r in speed_rounds),
        "goal_met": ratio(tuning_s, peer_s) <= GOAL_RATIO and all(r["same_best"] for r in speed_rounds),
    }
    print_table(
        f"(a) {trials} random-forest trials on the {label} CSV, {opts.parallel} at once (random search, seed {SEED})",
        ["round", "tuning job s", "bare train.py loop s", "ratio", "median trial s", "tuning process CPU s",
         "best ROC AUC (tuning)", "best ROC AUC (peer)", "equal", "load"],
        [[i + 1, r["tuning"]["seconds"], r["peer"]["seconds"], r["ratio"], r["tuning"]["median_trial_seconds"],
          r["tuning"]["tuning_process_cpu_seconds"],
          f'{r["tuning"]["best_objective"]:.6f}', f'{r["peer"]["best_objective"]:.6f}',
          "yes" if r["same_best"] else "NO", r["peer"]["loadavg1"]] for i, r in enumerate(speed_rounds)],
    )
    print(f"ratio of medians {results['speed']['ratio_of_medians']} (goal ≤ {GOAL_RATIO}): "
          f"{'met' if results['speed']['goal_met'] else 'NOT met'}")

    # (b) Bayesian vs random, same budget ------------------------------------------------------------------------
    p.upload_dataset("subscription", make_subscription_sample())
    quality = []
    for seed in range(seeds):
        row = {"seed": seed}
        for strategy in ("bayesian", "random"):
            run = run_tuning(p, "subscription", f"bench-{strategy[:3]}-{seed}", strategy, seed, trials, opts.parallel,
                             opts.quality_algorithm)
            row[strategy] = run["best_objective"]
            row[f"{strategy}_seconds"] = run["seconds"]
            row[f"{strategy}_objectives"] = run["objectives"]
        quality.append(row)
        print(f"seed {seed}: bayesian {row['bayesian']:.6f}, random {row['random']:.6f}, load {loadavg()[0]}")
    results["quality"] = {
        "dataset": "make_subscription_sample()", "algorithm": opts.quality_algorithm, "seeds": quality,
        "bayesian_mean": round(sum(r["bayesian"] for r in quality) / len(quality), 6),
        "random_mean": round(sum(r["random"] for r in quality) / len(quality), 6),
        "bayesian_wins": sum(r["bayesian"] > r["random"] for r in quality),
    }
    print_table(
        f"(b) best ROC AUC after {trials} trials on the subscription sample ({opts.quality_algorithm}, default ranges)",
        ["seed", "Bayesian (TPE)", "random", "difference", "Bayesian s", "random s"],
        [[r["seed"], f'{r["bayesian"]:.4f}', f'{r["random"]:.4f}', f'{r["bayesian"] - r["random"]:+.4f}',
          r["bayesian_seconds"], r["random_seconds"]] for r in quality]
        + [["mean", f'{results["quality"]["bayesian_mean"]:.4f}', f'{results["quality"]["random_mean"]:.4f}',
            f'{results["quality"]["bayesian_mean"] - results["quality"]["random_mean"]:+.4f}', "", ""]],
    )
    print(f"load average now {loadavg()}")
    write_results("bench_tuning", results)
    cleanup.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
