"""Run every benchmark, one after the other, and print a one-screen summary.

    .venv/bin/python bench/run_all.py            # full runs (≈ 20–40 min on a busy 2-core machine)
    .venv/bin/python bench/run_all.py --short    # smoke runs of each (a few minutes)
    .venv/bin/python bench/run_all.py --only endpoint,load

Each benchmark runs as its own process (``.venv/bin/python bench/<name>.py``) with a time limit;
its JSON lands in bench/results/<name>.json. Benchmarks never run concurrently with each other
(they would measure each other). Results are ratios against peers measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import BENCH, RESULTS, ROOT, VENV_PY, kill_group, loadavg  # noqa: E402

BENCHMARKS = {  # name: (full-run time limit s, short-run time limit s)
    "training": (2400, 900),
    "endpoint": (3000, 1200),
    "load": (900, 600),
    "catalog": (1800, 900),
    "upload": (1800, 600),
    "tuning": (1800, 600),
    "serving_features": (2400, 900),
}


def summary() -> list[str]:
    lines = []

    def read(name: str) -> dict | None:
        path = RESULTS / f"bench_{name}.json"
        return json.loads(path.read_text()) if path.exists() else None

    if (r := read("training")):
        for label, d in r["datasets"].items():
            lines.append(f"training/{label}: submit→Completed {d['platform_median']['seconds']:.2f}s "
                         f"(bare script {d['bare_median']['seconds']:.2f}s, ratio {d['ratio_platform_to_bare']}); "
                         f"goal ≤3s {'met' if d['goal_met'] else 'NOT met'}")
    if (r := read("endpoint")):
        d = r["deploy"]
        lines.append(f"deploy→InService {d['median_seconds']:.2f}s (bare server {d['bare_server_start_median']:.2f}s); "
                     f"goal ≤2s {'met' if d['goal_met'] else 'NOT met'}")
        for cfg in r["serving"]:
            if "c8_throughput_ratio" in cfg:
                lines.append(f"serving w={cfg['workers']}: c8 throughput {cfg['c8_throughput_ratio']}× MLflow "
                             f"(goal ≥3×: {'met' if cfg['goal_throughput_met'] else 'NOT met'}), c8 p50 "
                             f"{cfg['c8_p50_ratio']}× (goal ≤0.33×: {'met' if cfg['goal_p50_met'] else 'NOT met'})")
    if (r := read("load")):
        lines.append(
            f"load {r['options']['seconds']:.0f}s c{r['options']['concurrency']}: errors {r['load']['errors']}, "
            f"{r['load']['throughput_rps']} req/s, p50 {r['load']['p50_ms']} ms, p99 {r['load']['p99_ms']} ms, "
            f"RSS {r['rss_start']['total_mb']}→{r['rss_end']['total_mb']} MB"
        )
    if r := read("catalog"):
        worst = max(r["pages"].items(), key=lambda kv: kv[1]["full"]["median_s"])
        met = all(v["goal_met"] for v in r["pages"].values())
        lines.append(
            f"catalog: slowest page {worst[0]} {worst[1]['full']['median_s']:.3f}s with "
            f"{r['counts']['jobs']} jobs (empty {worst[1]['empty']['median_s']:.3f}s); goal ≤0.3s "
            f"{'met on every page' if met else 'NOT met on every page'}"
        )
    if r := read("upload"):
        for size in r["sizes"]:
            v = size["validate"]
            lines.append(
                f"upload validation {size['rows']:,} rows: {v['time_vs_read_csv']:.2f}× read_csv's time (goal ≤2×), "
                f"peak {v['peak_over_file_size']:.2f}× the file (goal ≤3×)"
            )
    if r := read("tuning"):
        s, q = r["speed"], r["quality"]
        lines.append(f"tuning: {r['trials']} trials {s['tuning_median_seconds']:.1f}s vs bare loop "
                     f"{s['peer_median_seconds']:.1f}s = {s['ratio_of_medians']}×, same best "
                     f"{'yes' if s['same_best_objective'] else 'NO'}; goal ≤0.3× "
                     f"{'met' if s['goal_met'] else 'NOT met'}"
                     f"; Bayesian {q['bayesian_mean']:.4f} vs random {q['random_mean']:.4f} (mean best ROC AUC)")
    if r := read("serving_features"):
        for label, e in r.get("explain", {}).items():
            met = "met" if e["goal_explained_p50_met"] else "NOT met"
            lines.append(f"explain/{label}: {e['method']}, c1 p50 explained {e['c1']['explained']['p50_ms']} ms "
                         f"vs plain {e['c1']['plain']['p50_ms']} ms (goal <20 ms {met}); "
                         f"plain c8 on the explained endpoint / a never-explained one "
                         f"{e['plain_after_explained']['c8_throughput_ratio']}×")
        for label, c in r.get("capture", {}).items():
            lines.append(f"capture/{label}: 100 % / off c8 throughput {c['throughput_ratio']}× (goal ≥0.85 "
                         f"{'met' if c['goal_throughput_met'] else 'NOT met'}); {c['captured_lines']} lines for "
                         f"{c['requests_answered_with_capture_on']} requests")
        if ro := r.get("rollout"):
            lines.append(f"rollout: {len(ro['changes'])} changes under c8 load, {ro['failed_total']} failed requests "
                         f"(goal 0 {'met' if ro['goal_zero_failed_met'] else 'NOT met'}); median change "
                         f"{ro['median_change_seconds']} s vs deploy {ro['peer_deploy_median']} s")
        if sl := r.get("slow"):
            lines.append("slow clients: " + "; ".join(f"{k} {v.get('throughput_ratio', 1.0)}×"
                                                      for k, v in sl["modes"].items()))
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--short", action="store_true", help="pass --short to every benchmark")
    parser.add_argument("--only", default="", help="comma-separated subset of: " + ", ".join(BENCHMARKS))
    opts = parser.parse_args(argv)
    chosen = [b.strip() for b in opts.only.split(",") if b.strip()] or list(BENCHMARKS)
    unknown = set(chosen) - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    failures = []
    for name in chosen:
        full_limit, short_limit = BENCHMARKS[name]
        limit = short_limit if opts.short else full_limit
        cmd = [str(VENV_PY), str(BENCH / f"bench_{name}.py"), *(["--short"] if opts.short else [])]
        print(
            f"\n=== bench_{name}{' --short' if opts.short else ''} (limit {limit}s, load {loadavg()}) ===", flush=True
        )
        started = time.monotonic()
        proc = subprocess.Popen(cmd, cwd=str(ROOT), start_new_session=True)
        try:
            code = proc.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            print(f"bench_{name} exceeded {limit}s; stopping it", flush=True)
            os.kill(proc.pid, 15)  # its own Cleanup stops what it started
            try:
                code = proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                kill_group(proc.pid)
                code = proc.wait()
        except KeyboardInterrupt:
            os.kill(proc.pid, 15)
            proc.wait(timeout=60)
            raise
        print(f"=== bench_{name}: exit {code} after {time.monotonic() - started:.0f}s ===", flush=True)
        if code != 0:
            failures.append(name)
    print("\nSummary (from bench/results/*.json):")
    for line in summary():
        print("  " + line)
    if failures:
        print(f"failed: {', '.join(failures)}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
