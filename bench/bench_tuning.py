"""Tuning: a local tuning job against the notebook loop it replaces, and Bayesian against random search.

    .venv/bin/python bench/bench_tuning.py [--trials 20] [--parallel 2] [--rounds 2] [--seeds 3] [--quick]

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

import json
import subprocess
import sys
import time
from pathlib import Path

from harness import (ENTRY, PYTHON, Bench, clear_outputs, loadavg, median, prepare_channels, ratio, reference_data,
                     sm_env)

GOAL_RATIO = 0.3
SEED = 7


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
        clear_outputs(base)
        proc = subprocess.run([PYTHON, str(ENTRY), *as_cli({**static, **params})], env=sm_env(base), cwd=str(base),
                              capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            raise RuntimeError(f"bare train.py failed ({proc.returncode}): {proc.stderr[-800:]}")
        objectives.append(json.loads((base / "model" / "metrics.json").read_text())["roc_auc"])
    return {"seconds": round(time.perf_counter() - t0, 3), "objectives": objectives, "best_objective": max(objectives),
            "loadavg1": loadavg()[0], "target": target}


def speed(bench: Bench, p, home: Path) -> dict:
    """(a) The tuning job against the notebook loop, in rounds (tuning, peer / peer, tuning)."""
    from churn_core.training.hyperparameters import default_ranges
    from churn_core.tuning.ranges import parse_ranges
    from churn_core.tuning.search import suggest

    opts = bench.opts
    label, data = reference_data()
    ds = p.upload_dataset("telecom", data)
    prepare_channels(p, ds, home / "bare")
    # The random search's configurations depend on the seed alone: the peer runs exactly these, and every
    # tuning job of the benchmark must record the same ones.
    ranges, static = parse_ranges("random_forest", default_ranges("random_forest"))
    configurations = [suggest(ranges, "random", SEED, "maximize", n, opts.trials) for n in range(opts.trials)]
    rounds = []
    for r in range(opts.rounds):
        got: dict = {}
        for side in (("tuning", "peer") if r % 2 == 0 else ("peer", "tuning")):
            if side == "tuning":
                got["tuning"] = run_tuning(p, "telecom", f"bench-rf-{r + 1}", "random", SEED, opts.trials,
                                           opts.parallel)
                if got["tuning"]["configurations"] != configurations or got["tuning"]["static"] != static:
                    raise RuntimeError("the tuning job ran other configurations than its seed gives")
            else:
                got["peer"] = run_peer(home / "bare", ds.target, static, configurations)
        got["ratio"] = ratio(got["tuning"]["seconds"], got["peer"]["seconds"])
        got["same_best"] = abs(got["tuning"]["best_objective"] - got["peer"]["best_objective"]) < 1e-12
        rounds.append(got)
        print(f"round {r + 1}: tuning {got['tuning']['seconds']:.2f}s, peer {got['peer']['seconds']:.2f}s, "
              f"ratio {got['ratio']}, load {loadavg()[0]}", flush=True)
    tuning_s, peer_s = (median(r[k]["seconds"] for r in rounds) for k in ("tuning", "peer"))
    same = all(r["same_best"] for r in rounds)
    out = {"dataset": label, "rows": ds.rows, "rounds": rounds, "tuning_median_seconds": tuning_s,
           "peer_median_seconds": peer_s, "ratio_of_medians": ratio(tuning_s, peer_s),
           "ratios": [r["ratio"] for r in rounds], "same_best_objective": same,
           "goal_met": ratio(tuning_s, peer_s) <= GOAL_RATIO and same}
    bench.table(f"(a) {opts.trials} random-forest trials on the {label} CSV, {opts.parallel} at once (random search, "
                f"seed {SEED}); ratio of medians {out['ratio_of_medians']} (goal ≤ {GOAL_RATIO}: "
                f"{'met' if out['goal_met'] else '**not met**'})",
                ["round", "tuning job s", "bare train.py loop s (peer)", "ratio", "median trial s",
                 "tuning process CPU s", "best ROC AUC (tuning)", "best ROC AUC (peer)", "equal", "load"],
                [[i + 1, r["tuning"]["seconds"], r["peer"]["seconds"], r["ratio"], r["tuning"]["median_trial_seconds"],
                  r["tuning"]["tuning_process_cpu_seconds"], f'{r["tuning"]["best_objective"]:.6f}',
                  f'{r["peer"]["best_objective"]:.6f}', r["same_best"], r["peer"]["loadavg1"]]
                 for i, r in enumerate(rounds)])
    return out


def quality(bench: Bench, p) -> dict:
    """(b) Bayesian against random search with the same budget, one row per seed."""
    from churn_core.data.sample import make_subscription_sample

    opts = bench.opts
    p.upload_dataset("subscription", make_subscription_sample())
    seeds = []
    for seed in range(opts.seeds):
        row = {"seed": seed}
        for strategy in ("bayesian", "random"):
            run = run_tuning(p, "subscription", f"bench-{strategy[:3]}-{seed}", strategy, seed, opts.trials,
                             opts.parallel, opts.quality_algorithm)
            row.update({strategy: run["best_objective"], f"{strategy}_seconds": run["seconds"],
                        f"{strategy}_objectives": run["objectives"]})
        seeds.append(row)
        print(f"seed {seed}: bayesian {row['bayesian']:.6f}, random {row['random']:.6f}, load {loadavg()[0]}")
    out = {"dataset": "make_subscription_sample()", "algorithm": opts.quality_algorithm, "seeds": seeds,
           "bayesian_mean": round(sum(r["bayesian"] for r in seeds) / len(seeds), 6),
           "random_mean": round(sum(r["random"] for r in seeds) / len(seeds), 6),
           "bayesian_wins": sum(r["bayesian"] > r["random"] for r in seeds)}
    bench.table(f"(b) best ROC AUC after {opts.trials} trials on the subscription sample ({opts.quality_algorithm}, "
                "default ranges)", ["seed", "Bayesian (TPE)", "random", "difference", "Bayesian s", "random s"],
                [[r["seed"], f'{r["bayesian"]:.4f}', f'{r["random"]:.4f}', f'{r["bayesian"] - r["random"]:+.4f}',
                  r["bayesian_seconds"], r["random_seconds"]] for r in seeds]
                + [["mean", f'{out["bayesian_mean"]:.4f}', f'{out["random_mean"]:.4f}',
                    f'{out["bayesian_mean"] - out["random_mean"]:+.4f}', "", ""]])
    return out


def main(argv: list[str] | None = None) -> int:
    bench = Bench("tuning", __doc__, {"trials": 20, "parallel": 2, "rounds": 2, "seeds": 3,
                                      "quality_algorithm": ("random_forest", "the algorithm of part (b)")},
                  {"trials": 6, "rounds": 1, "seeds": 1}, argv)
    p = bench.platform(warm=True)
    bench.cleanup.add("running tuning jobs", lambda: [p.stop_tuning(t.name) for t in p.list_tuning_jobs(limit=1000)
                                                      if t.is_active])
    s = speed(bench, p, bench.home_dir)
    q = quality(bench, p)
    bench.headline(f"tuning: {bench.opts.trials} trials {s['tuning_median_seconds']:.1f}s vs bare loop "
                   f"{s['peer_median_seconds']:.1f}s = {s['ratio_of_medians']}×, same best "
                   f"{'yes' if s['same_best_objective'] else 'NO'}; goal ≤0.3× {'met' if s['goal_met'] else 'NOT met'}"
                   f"; Bayesian {q['bayesian_mean']:.4f} vs random {q['random_mean']:.4f} (mean best ROC AUC)")
    return bench.finish(trials=bench.opts.trials, parallel=bench.opts.parallel, seed=SEED, speed=s, quality=q)


if __name__ == "__main__":
    sys.exit(main())
