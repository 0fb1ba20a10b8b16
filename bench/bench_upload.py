"""Upload validation at scale: time and peak memory against pandas reading the same file, in the same run.

    .venv/bin/python bench/bench_upload.py [--rows 100000 1000000] [--runs 3] [--quick]

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

import json
import os
import shutil
import subprocess
import sys
import time

from harness import ROOT, Bench, interleave, loadavg, median, ratio

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


def run_child(kind: str, path, home) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT), CHURN_HOME=str(home), CHURN_BACKEND="local", CHURN_WARM="0",
               CHURN_MAX_UPLOAD_MB="1024")
    done = subprocess.run([sys.executable, "-c", CHILD, kind, str(path)], env=env, cwd=str(ROOT),
                          capture_output=True, text=True, timeout=900)
    shutil.rmtree(home, ignore_errors=True)
    if done.returncode != 0:
        raise RuntimeError(f"{kind} failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(bench: Bench, rows: int, started: float) -> dict:
    from churn_core.data.sample import make_subscription_sample

    path = bench.scratch("churn-bench-upload-") / f"subscription-{rows}.csv"
    path.write_bytes(make_subscription_sample(rows=rows, seed=5))
    size = path.stat().st_size

    def runner(kind: str):
        def run(r: int) -> dict:
            if time.monotonic() - started > bench.opts.max_seconds:
                raise SystemExit(f"stopped at the {bench.opts.max_seconds:.0f} s cap")
            return run_child(kind, path, path.parent / f"home-{r}-{kind}")
        return run

    load_before = loadavg()
    measured = interleave({kind: runner(kind) for kind in KINDS}, bench.opts.runs)  # alternating order
    out = {"rows": rows, "file_bytes": size, "loadavg_before": load_before, "loadavg_after": loadavg()}
    for kind in KINDS:
        seconds = median(m["seconds"] for m in measured[kind])
        peak = median(m["peak_over_base"] for m in measured[kind])
        out[kind] = {"seconds": seconds, "peak_over_base_bytes": peak, "runs": measured[kind],
                     "min_seconds": min(m["seconds"] for m in measured[kind]),
                     "max_seconds": max(m["seconds"] for m in measured[kind]), "us_per_row": seconds / rows * 1e6,
                     "peak_bytes_per_row": peak / rows, "peak_over_file_size": peak / size}
    for kind in ("validate", "upload"):
        out[kind]["time_vs_read_csv"] = ratio(out[kind]["seconds"], out["read_csv"]["seconds"])
    v = out["validate"]
    bench.headline(f"upload validation {rows:,} rows: {v['time_vs_read_csv']:.2f}× read_csv's time (goal ≤2×), "
                   f"peak {v['peak_over_file_size']:.2f}× the file (goal ≤3×)")
    return out


def main(argv: list[str] | None = None) -> int:
    bench = Bench("upload", __doc__, {"rows": [100_000, 1_000_000], "runs": 3,
                                      "max_seconds": (1800.0, "wall-clock cap for the whole run")},
                  {"rows": [20_000, 100_000], "runs": 1}, argv)
    started = time.monotonic()
    sizes = [measure(bench, rows, started) for rows in bench.opts.rows]
    bench.table("Upload validation vs pandas.read_csv (medians; peak RSS over the interpreter's own)",
                ["rows", "file", "what", "seconds", "min s", "max s", "× read_csv", "µs/row", "peak MB",
                 "peak / file", "peak B/row"],
                [[f"{s['rows']:,}", f"{s['file_bytes'] / 1e6:.1f} MB", kind, s[kind]["seconds"],
                  s[kind]["min_seconds"], s[kind]["max_seconds"], s[kind].get("time_vs_read_csv"),
                  s[kind]["us_per_row"], s[kind]["peak_over_base_bytes"] / 1e6, s[kind]["peak_over_file_size"],
                  s[kind]["peak_bytes_per_row"]] for s in sizes for kind in KINDS])
    return bench.finish(runs=bench.opts.runs, sizes=sizes)


if __name__ == "__main__":
    sys.exit(main())
