"""Upload validation at scale: time and peak memory against pandas reading the same file, in the same run.

    .venv/bin/python bench/bench_upload.py [--rows 100000 1000000] [--runs 3] [--short]

For each size, ``churn_core.data.sample.make_subscription_sample(rows)`` (20 columns and a Yes/No target: an ID,
Yes/No categories, numbers, blanks) is written to a file under /tmp once. Then, interleaved, each in a fresh
interpreter (so peak memory is its own) that first reads the file's bytes, as the dashboard holds an upload:

* **read_csv** (the peer): ``pandas.read_csv(io.BytesIO(data))``;
* **validate**: ``churn_core.data.validation.validate_csv(data, target="Churn")`` (what the Data page shows);
* **upload**: ``Platform.upload_dataset`` in a fresh CHURN_HOME (validate, split, store raw/train/test, record).

Each first does the same with a 200-row file, untimed (a dashboard has loaded its code after the first
upload). Reported per size: median wall seconds; peak RSS (VmHWM) above the interpreter's own after that
warm-up (so it includes the file's bytes); ratios to read_csv; per row (microseconds, bytes), to show
whether it is flat.
Goal (issue 18): validate ≤ 2× read_csv's time, peak RSS ≤ 3× the file's size, flat per row.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, Cleanup, loadavg, machine, median, print_table, ratio, write_results  # noqa: E402

CHILD = r"""
import io, json, os, sys, time
from pathlib import Path
kind, path = sys.argv[1], Path(sys.argv[2])


def high_water() -> int:
    # VmHWM: this process's peak resident memory (ru_maxrss would carry the parent's over fork and exec)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


import pandas as pd
import churn_core
from churn_core.data.validation import validate_csv
from churn_core.data.sample import make_subscription_sample
small = make_subscription_sample(rows=200, seed=1)  # first use loads code (pyarrow.compute ...): not timed
if kind == "read_csv":
    pd.read_csv(io.BytesIO(small))
elif kind == "validate":
    validate_csv(small, target="Churn")
else:
    churn_core.connect().upload_dataset("warm-up", small, target="Churn")
base = high_water()
data = path.read_bytes()
start = time.perf_counter()
if kind == "read_csv":
    frame = pd.read_csv(io.BytesIO(data))
    rows = len(frame)
elif kind == "validate":
    table = validate_csv(data, target="Churn", max_bytes=None)
    rows = table.rows
else:
    p = churn_core.connect()
    rows = p.upload_dataset("bench", data, target="Churn").rows
seconds = time.perf_counter() - start
peak = high_water()
print(json.dumps({"seconds": seconds, "peak_over_base": peak - base, "peak": peak, "base": base, "rows": rows}))
"""

KINDS = ("read_csv", "validate", "upload")


def run_child(kind: str, path: Path, home: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT), CHURN_HOME=str(home), CHURN_BACKEND="local", CHURN_WARM="0",
               CHURN_MAX_UPLOAD_MB="1024")
    done = subprocess.run([sys.executable, "-c", CHILD, kind, str(path)], env=env, cwd=str(ROOT),
                          capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"{kind} failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--short", action="store_true", help="smoke run: 20,000 and 100,000 rows, 1 run")
    parser.add_argument("--max-seconds", type=float, default=1800.0, help="wall-clock cap for the whole run")
    args = parser.parse_args()
    if args.short:
        args.rows, args.runs = [20_000, 100_000], 1
    cleanup = Cleanup()
    scratch = Path(tempfile.mkdtemp(prefix="churn-bench-upload-"))
    cleanup.add(f"remove {scratch}", lambda: __import__("shutil").rmtree(scratch, ignore_errors=True))
    sys.path.insert(0, str(ROOT))
    from churn_core.data.sample import make_subscription_sample

    started = time.monotonic()
    results = {"machine": machine(), "runs": args.runs, "sizes": []}
    table = []
    for rows in args.rows:
        path = scratch / f"subscription-{rows}.csv"
        path.write_bytes(make_subscription_sample(rows=rows, seed=5))
        size = path.stat().st_size
        measured: dict[str, list[dict]] = {k: [] for k in KINDS}
        load_before = loadavg()
        for run in range(args.runs):
            order = KINDS if run % 2 == 0 else tuple(reversed(KINDS))  # interleaved, alternating order
            for kind in order:
                if time.monotonic() - started > args.max_seconds:
                    raise SystemExit(f"stopped at the {args.max_seconds:.0f} s cap")
                home = scratch / f"home-{rows}-{run}-{kind}"
                measured[kind].append(run_child(kind, path, home))
                __import__("shutil").rmtree(home, ignore_errors=True)
        summary = {"rows": rows, "file_bytes": size, "loadavg_before": load_before, "loadavg_after": loadavg()}
        for kind in KINDS:
            seconds = median(m["seconds"] for m in measured[kind])
            peak = median(m["peak_over_base"] for m in measured[kind])
            summary[kind] = {"seconds": seconds, "peak_over_base_bytes": peak, "runs": measured[kind],
                             "us_per_row": seconds / rows * 1e6, "peak_bytes_per_row": peak / rows,
                             "peak_over_file_size": peak / size}
        for kind in ("validate", "upload"):
            summary[kind]["time_vs_read_csv"] = ratio(summary[kind]["seconds"], summary["read_csv"]["seconds"])
        results["sizes"].append(summary)
        for kind in KINDS:
            s = summary[kind]
            table.append([f"{rows:,}", f"{size / 1e6:.1f} MB", kind, s["seconds"], s.get("time_vs_read_csv"),
                          s["us_per_row"], s["peak_over_base_bytes"] / 1e6, s["peak_over_file_size"],
                          s["peak_bytes_per_row"]])
    print_table("Upload validation vs pandas.read_csv (medians; peak RSS over the interpreter's own)",
                ["rows", "file", "what", "seconds", "× read_csv", "µs/row", "peak MB", "peak / file",
                 "peak B/row"], table)
    write_results("bench_upload", results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
