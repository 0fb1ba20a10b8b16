"""Run every benchmark, one after the other, and print a one-screen summary.

    .venv/bin/python bench/run_all.py            # full runs (≈ 20–40 min on a busy 2-core machine)
    .venv/bin/python bench/run_all.py --quick    # smoke runs of each (a few minutes)
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

from harness import BENCH, PYTHON, RESULTS, ROOT, kill_group, loadavg

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
    """Each benchmark's own headline lines (harness.Bench.headline), from its JSON."""
    lines = []
    for name in BENCHMARKS:
        path = RESULTS / f"bench_{name}.json"
        lines += json.loads(path.read_text()).get("headline", []) if path.exists() else []
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", "--short", dest="short", action="store_true", help="pass --quick to every benchmark")
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
        cmd = [PYTHON, str(BENCH / f"bench_{name}.py"), *(["--quick"] if opts.short else [])]
        print(
            f"\n=== bench_{name}{' --quick' if opts.short else ''} (limit {limit}s, load {loadavg()}) ===", flush=True
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
