"""Sustained load: one endpoint at concurrency 8 for 60 s — errors, latency, throughput, memory.

    .venv/bin/python bench/bench_load.py [--seconds 60] [--concurrency 8] [--workers 1] [--short]

Trains a RandomForest (100 trees) on the reference CSV (the sample if it is absent), deploys one
local endpoint with ``--workers`` worker processes, warms it up, then runs a closed loop of
``--concurrency`` keep-alive clients sending the seed's single-row request for ``--seconds``
(hard stop). Reports the error count (goal 0), p50/p99, throughput and the RSS of the serving
processes (gunicorn master + workers, via psutil) at start, every 5 s, and at the end (goal: flat).

Peer, in the same run: the first 10 s window vs the last 10 s window of the same load
(throughput and p50 ratios), so drift shows up independent of the machine's load.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (REFERENCE_CSV, SEED_ROW, Cleanup, load, loadavg, machine, platform_cleanup,  # noqa: E402
                     print_table, process_tree_rss, ratio, temp_home, write_results)

JSON = {"Content-Type": "application/json", "Accept": "application/json"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--workers", type=int, default=1, help="endpoint instance count (= gunicorn workers)")
    parser.add_argument("--trees", type=int, default=100)
    parser.add_argument("--short", action="store_true", help="smoke run: 10 s")
    opts = parser.parse_args(argv)
    if opts.short:
        opts.seconds = min(opts.seconds, 10.0)

    info = machine()
    print(f"machine: {info['cpu_count']} cores, load average {info['loadavg_at_start']}")
    cleanup = Cleanup()
    temp_home(cleanup, "bench-load")
    import churn_core
    from churn_core.data.sample import make_sample

    p = churn_core.connect()
    platform_cleanup(cleanup, p)
    label, data = ("reference", REFERENCE_CSV.read_bytes()) if REFERENCE_CSV.exists() else ("sample", make_sample())
    p.upload_dataset(label, data)
    job = "bench-load-model"
    p.start_training(label, {"algorithm": "random_forest", "n_estimators": opts.trees}, name=job)
    deadline = time.monotonic() + 600
    while p.describe_training(job).status in ("InProgress", "Stopping"):
        if time.monotonic() > deadline:
            raise TimeoutError("training did not finish in 600 s")
        time.sleep(0.1)
    ep = p.deploy(job, "bench-load", "ml.m5.large", opts.workers, wait=True, timeout=180)
    if ep.status != "InService":
        raise RuntimeError(f"endpoint is {ep.status}: {ep.failure_reason}")
    port = int(ep.url.rsplit(":", 1)[1])
    server_pid = p.describe_endpoint("bench-load").server_pid
    body = json.dumps({"Input": [SEED_ROW]}).encode()

    # warm-up (lazy imports, first-touch allocations), then the RSS baseline
    load("127.0.0.1", port, "/invocations", body, JSON, opts.concurrency, 200, 10.0, warmup=20)
    rss_start = process_tree_rss(server_pid)
    print(f"endpoint up on {ep.url} ({opts.workers} worker(s)); serving RSS at start {rss_start['total_mb']} MB; "
          f"running {opts.seconds:.0f} s at concurrency {opts.concurrency}…")

    # per-request timestamps for the window comparison: wrap load()'s check to record completion times
    stamps: list[float] = []
    lock = threading.Lock()

    def check(status: int, data: bytes) -> bool:
        with lock:
            stamps.append(time.perf_counter())
        return data.startswith(b'{"Output"')

    started = time.perf_counter()
    result = load("127.0.0.1", port, "/invocations", body, JSON, opts.concurrency, 10**9, opts.seconds, check=check,
                  warmup=0, sample_every=5.0, sampler=lambda: {"rss_mb": process_tree_rss(server_pid)["total_mb"],
                                                                "load1": loadavg()[0]})
    rss_end = process_tree_rss(server_pid)
    window = min(10.0, opts.seconds / 3)
    first = [t for t in stamps if t - started <= window]
    last = [t for t in stamps if t - started >= result["seconds"] - window]
    bin_s = 5.0
    series = [0] * max(1, int(result["seconds"] // bin_s))
    for t in stamps:
        i = int((t - started) // bin_s)
        if i < len(series):
            series[i] += 1
    series_rps = [round(c / bin_s, 1) for c in series]
    stats = p.describe_endpoint("bench-load").stats
    growth = (rss_end["total_mb"] or 0) - (rss_start["total_mb"] or 0)
    results = {
        "machine": info,
        "dataset": label,
        "options": vars(opts),
        "load": result,
        "rss_start": rss_start,
        "rss_end": rss_end,
        "rss_growth_mb": round(growth, 1),
        "rss_growth_pct": round(100 * growth / rss_start["total_mb"], 2) if rss_start["total_mb"] else None,
        "first_window_rps": round(len(first) / window, 1),
        "last_window_rps": round(len(last) / window, 1),
        "last_to_first_throughput_ratio": round(ratio(len(last), len(first)), 3) if first else None,
        "throughput_series_rps_per_5s": series_rps,
        "server_side_stats": stats,
        "goal_errors_met": result["errors"] == 0,
        "goal_rss_flat_met": abs(growth) <= max(5.0, 0.05 * (rss_start["total_mb"] or 0)),
    }
    rows = [["requests ok", result["requests_ok"]], ["errors (goal 0)", result["errors"]],
            ["seconds", result["seconds"]], ["throughput req/s", result["throughput_rps"]],
            ["p50 ms", result["p50_ms"]], ["p99 ms", result["p99_ms"]], ["max ms", result["max_ms"]],
            [f"first {window:.0f} s req/s", results["first_window_rps"]],
            [f"last {window:.0f} s req/s", results["last_window_rps"]],
            ["last / first throughput", results["last_to_first_throughput_ratio"]],
            ["serving RSS start MB (master + workers)", rss_start["total_mb"]],
            ["serving RSS end MB", rss_end["total_mb"]],
            ["RSS growth MB (goal: flat)", results["rss_growth_mb"]],
            ["server-side p50 ms (last 500/worker)", stats.get("p50_latency_ms")],
            ["load average", " ".join(str(x) for x in loadavg())]]
    print_table(
        f"Sustained load: concurrency {opts.concurrency}, {opts.workers} worker(s), {opts.seconds:.0f} s",
        ["what", "value"],
        rows,
    )
    print("throughput per 5 s (req/s): " + ", ".join(str(x) for x in series_rps))
    print(
        "RSS samples (s, MB, load1): "
        + ", ".join(f"{s['t']}:{s['rss_mb']}:{s['load1']}" for s in result.get("samples", []))
    )
    if result["error_examples"]:
        print("error examples:", result["error_examples"])
    write_results("bench_load", results)
    cleanup.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
