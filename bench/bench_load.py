"""Sustained load: one endpoint at concurrency 8 for 60 s — errors, latency, throughput, memory.

    .venv/bin/python bench/bench_load.py [--seconds 60] [--concurrency 8] [--workers 1] [--quick]

Trains a RandomForest (100 trees) on the reference CSV (the sample if it is absent), deploys one
local endpoint with ``--workers`` worker processes, warms it up, then runs a closed loop of
``--concurrency`` keep-alive clients sending the seed's single-row request for ``--seconds``
(hard stop). Reports the error count (goal 0), p50/p99, throughput and the RSS of the serving
processes (master + workers, via psutil) at start, every 5 s, and at the end (goal: flat).

Peer, in the same run: the first 10 s window vs the last 10 s window of the same load
(throughput and p50 ratios), so drift shows up independent of the machine's load.
"""

from __future__ import annotations

import json
import sys
import threading
import time

from harness import (JSON, SEED_ROW, Bench, deploy, load, loadavg, port_of, process_tree_rss, ratio, reference_data,
                     train)


def main(argv: list[str] | None = None) -> int:
    bench = Bench("load", __doc__, {"seconds": 60.0, "concurrency": 8,
                                    "workers": (1, "endpoint instance count (= server workers)"), "trees": 100},
                  {"seconds": 10.0}, argv)
    opts = bench.opts
    p = bench.platform(warm=False)
    label, data = reference_data()
    p.upload_dataset(label, data)
    train(p, label, {"algorithm": "random_forest", "n_estimators": opts.trees}, "bench-load-model", 600)
    ep = deploy(p, "bench-load-model", "bench-load", opts.workers)
    port, pid = port_of(ep), p.describe_endpoint("bench-load").server_pid
    body = json.dumps({"Input": [SEED_ROW]}).encode()
    load(port, body, JSON, opts.concurrency, 200, 10.0, warmup=20)  # lazy imports, first-touch allocations
    rss_start = process_tree_rss(pid)
    print(f"endpoint up on {ep.url} ({opts.workers} worker(s)); serving RSS at start {rss_start['total_mb']} MB; "
          f"running {opts.seconds:.0f} s at concurrency {opts.concurrency}…", flush=True)
    stamps: list[float] = []  # completion times, for the window comparison
    lock = threading.Lock()

    def check(_status: int, data: bytes) -> bool:
        with lock:
            stamps.append(time.perf_counter())
        return data.startswith(b'{"Output"')

    started = time.perf_counter()
    res = load(port, body, JSON, opts.concurrency, 10**9, opts.seconds, check=check, warmup=0, sample_every=5.0,
               sampler=lambda: {"rss_mb": process_tree_rss(pid)["total_mb"], "load1": loadavg()[0]})
    rss_end = process_tree_rss(pid)
    window = min(10.0, opts.seconds / 3)
    first = sum(1 for t in stamps if t - started <= window)
    last = sum(1 for t in stamps if t - started >= res["seconds"] - window)
    series = [0] * max(1, int(res["seconds"] // 5.0))
    for t in stamps:
        if (i := int((t - started) // 5.0)) < len(series):
            series[i] += 1
    growth = round((rss_end["total_mb"] or 0) - (rss_start["total_mb"] or 0), 1)
    r = {"dataset": label, "load": res, "rss_start": rss_start, "rss_end": rss_end, "rss_growth_mb": growth,
         "rss_growth_pct": round(100 * growth / rss_start["total_mb"], 2) if rss_start["total_mb"] else None,
         "first_window_rps": round(first / window, 1), "last_window_rps": round(last / window, 1),
         "last_to_first_throughput_ratio": ratio(last, first),
         "throughput_series_rps_per_5s": [round(c / 5.0, 1) for c in series],
         "server_side_stats": p.describe_endpoint("bench-load").stats, "goal_errors_met": res["errors"] == 0,
         "goal_rss_flat_met": abs(growth) <= max(5.0, 0.05 * (rss_start["total_mb"] or 0))}
    bench.table(f"Sustained load: concurrency {opts.concurrency}, {opts.workers} worker(s), {opts.seconds:.0f} s",
                ["what", "value"],
                [["requests ok", res["requests_ok"]],
                 ["errors (goal 0)", f"{res['errors']} ({'met' if r['goal_errors_met'] else '**not met**'})"],
                 ["throughput req/s", res["throughput_rps"]], ["p50 ms", res["p50_ms"]], ["p99 ms", res["p99_ms"]],
                 ["max ms", res["max_ms"]], [f"first {window:.0f} s req/s", r["first_window_rps"]],
                 [f"last {window:.0f} s req/s", r["last_window_rps"]],
                 ["last / first (peer: same run)", r["last_to_first_throughput_ratio"]],
                 ["serving RSS at start MB (master + workers)", rss_start["total_mb"]],
                 ["serving RSS at end MB", rss_end["total_mb"]],
                 ["RSS growth MB (goal: flat)", f"{growth} ({'met' if r['goal_rss_flat_met'] else '**not met**'})"],
                 ["server-side p50 ms (last 500/worker)", r["server_side_stats"].get("p50_latency_ms")],
                 ["throughput per 5 s window", ", ".join(str(x) for x in r["throughput_series_rps_per_5s"])],
                 ["RSS / load1 samples (s: MB, load)",
                  ", ".join(f"{s['t']}: {s['rss_mb']}, {s['load1']}" for s in res.get("samples", []))]])
    if res["error_examples"]:
        print("error examples:", res["error_examples"])
    bench.headline(f"load {opts.seconds:.0f}s c{opts.concurrency}: errors {res['errors']}, {res['throughput_rps']} "
                   f"req/s, p50 {res['p50_ms']} ms, p99 {res['p99_ms']} ms, RSS {rss_start['total_mb']}→"
                   f"{rss_end['total_mb']} MB")
    return bench.finish(**r)


if __name__ == "__main__":
    sys.exit(main())
