"""Serving features: explanations, data capture, safe rollout and slow clients, each against a peer
measured in the same run with interleaved rounds.

    .venv/bin/python bench/bench_serving_features.py [--short] [--only explain,capture,rollout,slow]

(a) Explanations. For a random forest on the reference CSV (``make_sample()`` when it is absent), a
    random forest on the categorical subscription sample (``make_subscription_sample(7043)``), and
    gradient boosting and logistic regression on the categorical one: explained single-row requests
    (``"explain": 3``) against plain ones on the *same* endpoint, alternating rounds, at concurrency
    1 and 8 (p50/p99, req/s), and which method answered (``reasons.method``). Goal: an explained
    single row under 20 ms p50 (concurrency 1). Then "explaining must not slow unexplained
    requests": plain requests on that endpoint (it has served explained requests) against a second
    endpoint of the same model that never has, alternating rounds, plus the serving RSS of both; and
    plain requests while explained ones run on the same endpoint (4 + 4 clients) against plain
    requests mixed with plain ones (4 + 4), on the endpoint and on the same server started with every
    request scored in its thread pool (``INLINE_MAX_BYTES = -1`` patched in that child only: what
    taking explained requests off the event loop would change). In-process: the handler chain with
    and without reasons.
(b) Capture overhead: single-row req/s at concurrency 8 with capture at 100 % against the same
    endpoint with capture off, alternating rounds (``Platform.set_capture`` between rounds). Goal
    ≥ 0.85×. The captured line count must equal the requests answered while capture was on (and
    every eventId is distinct).
(c) Update under load: concurrency 8 on a 2-worker endpoint while ``update_endpoint`` moves it from
    one registered version to another (and back, ``--updates`` times), then champion 90 /
    challenger 10 with ``set_variants`` and ``promote_challenger``. Per change: failed requests
    (goal 0), when the answers switched (first new / last old answer, relative to the call), the
    call's duration, req/s and p99 before / during / after. Peer: ``deploy_version`` of the same
    versions (a new endpoint to InService) in the same run.
(d) Slow clients: plain req/s at concurrency 8 while N+1 clients (N = the predict pool's threads)
    trickle their headers or a body one byte at a time, against the same load without them,
    alternating rounds; /ping latency during each.

Everything listens on 127.0.0.1, runs in a fresh CHURN_HOME under /tmp, is bounded (request caps,
wall-clock caps), and every process started is stopped by its PID / process group.
"""

from __future__ import annotations

import argparse
import http.client
import json
import select
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (REFERENCE_CSV, ROOT, SEED_ROW, Cleanup, load, load_rounds, loadavg, machine,  # noqa: E402
                     median, percentile, platform_cleanup, print_table, process_tree_cpu, process_tree_rss, ratio,
                     start_warm_process, temp_home, write_results)

JSON = {"Content-Type": "application/json", "Accept": "application/json"}
EXPLAIN_P50_GOAL_MS = 20.0
CAPTURE_GOAL = 0.85
REASONS = 3
UNCAPPED = 10**9  # throughput comparisons run for a fixed time per round, not a request count
SECTIONS = ("explain", "capture", "rollout", "slow")


# ------------------------------------------------------------------------------ models and endpoints


def train(p, dataset: str, name: str, hyperparameters: dict) -> str:
    p.start_training(dataset, hyperparameters, name=name)
    deadline = time.monotonic() + 900
    while (job := p.describe_training(name)).status in ("InProgress", "Stopping"):
        if time.monotonic() > deadline:
            raise TimeoutError(f"training {name} did not finish in 900 s")
        time.sleep(0.1)
    if job.status != "Completed":
        raise RuntimeError(f"training {name} ended {job.status}: {job.failure_reason}")
    return name


def deploy(p, model: str, name: str, workers: int = 1):
    ep = p.deploy(model, name, "ml.m5.large", workers, wait=True, timeout=180)
    if ep.status != "InService":
        raise RuntimeError(f"{name} is {ep.status}: {ep.failure_reason}")
    return ep


def port_of(ep) -> int:
    return int(ep.url.rsplit(":", 1)[1])


def plain_value(v):
    if hasattr(v, "item"):  # numpy scalar
        v = v.item()
    if v is None or v == "" or (isinstance(v, float) and v != v):
        return None
    return v


def customer_record(p, dataset: str, model: str, index: int = 0) -> dict:
    """One held-out customer as the endpoint's named record (blank cells as null)."""
    frame = p.read_dataset(dataset, "test")
    features = [f["name"] for f in p.model_schema(model)["features"]]
    ids = p.model_schema(model).get("id_columns") or []
    row = frame.iloc[index]
    return {k: plain_value(row[k]) for k in [*ids, *features] if k in frame.columns}


def request_bodies(p, dataset: str, model: str, seed: bool) -> dict:
    """Plain and explained single-row bodies: the seed ``Input`` shape for the reference schema, named
    ``instances`` for the categorical data."""
    if seed:
        plain = {"Input": [SEED_ROW]}
    else:
        plain = {"instances": [customer_record(p, dataset, model)]}
    return {"plain": json.dumps(plain).encode(), "explained": json.dumps(dict(plain, explain=REASONS)).encode()}


def check_plain(_status: int, data: bytes) -> bool:
    return (data.startswith(b'{"Output"') or data.startswith(b'{"predictions"')) and b'easons"' not in data


def check_explained(_status: int, data: bytes) -> bool:
    return b'"Reasons"' in data or b'"reasons"' in data


def post(port: int, body: bytes, headers: dict | None = None) -> tuple[int, dict, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("POST", "/invocations", body=body, headers=headers or JSON)
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, json.loads(data), dict(resp.getheaders())
    finally:
        conn.close()


def reasons_of(answer: dict) -> dict:
    if "Reasons" in answer:
        return answer["Reasons"]
    return answer["predictions"][0]["reasons"]


def probability_of(answer: dict) -> float:
    if "Probability" in answer:
        return answer["Probability"]
    return answer["predictions"][0]["churn_probability"]


def timeit(fns: dict, reps: int, warm: int = 5) -> dict:
    """Interleaved in-process timing (each rep runs every function once): load drift hits all alike."""
    for fn in fns.values():
        for _ in range(warm):
            fn()
    times: dict = {k: [] for k in fns}
    for _ in range(reps):
        for key, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[key].append((time.perf_counter() - t0) * 1000)
    return {k: {"median_ms": round(median(v), 3), "p90_ms": round(percentile(v, 90), 3), "calls": reps}
            for k, v in times.items()}


def load_in_process(p, model: str, work: Path):
    """(entry module, model dict) of a trained model, loaded in this process as the server loads it."""
    from churn_core.storage.artifacts import sha256_file
    from churn_core.backends.local.endpoint.server import load_entry, safe_extract

    row = p.get_model(model)
    artifact = p.store.path(row["artifact_key"])
    if sha256_file(artifact) != row["artifact_sha256"]:
        raise RuntimeError("model.tar.gz does not match the SHA-256 recorded at training; refusing to load it")
    folder = work / f"inproc-{model}"
    if not folder.exists():
        safe_extract(artifact, folder)
    module = load_entry(ROOT / "entry" / "train.py")
    return module, module.model_fn(str(folder))


def in_process_explain(p, model: str, bodies: dict, work: Path, reps: int) -> dict:
    """input_fn → predict_fn → output_fn with and without reasons, in this process (no HTTP)."""
    module, loaded = load_in_process(p, model, work)

    def chain(body: bytes) -> None:
        module.output_fn(module.predict_fn(module.input_fn(body, "application/json"), loaded), "application/json")

    t0 = time.perf_counter()
    chain(bodies["explained"])  # builds the explainer and proves it additive on probe rows
    first = (time.perf_counter() - t0) * 1000
    out = timeit({"plain": lambda: chain(bodies["plain"]), "explained": lambda: chain(bodies["explained"])}, reps)
    out["first explained call (builds + checks the explainer) ms"] = round(first, 1)
    return out


def in_process_capture(p, model: str, body: bytes, work: Path, reps: int) -> dict:
    """Per request, in this process: the handler chain vs the capture work (the request's ``put`` plus its
    share of the writer thread's flush: format the SageMaker line, append it to the hour's file)."""
    from churn_core.backends.local.endpoint.capture_writer import CaptureWriter

    module, loaded = load_in_process(p, model, work)
    answer, answer_type = module.output_fn(module.predict_fn(module.input_fn(body, "application/json"), loaded),
                                           "application/json")
    answer = answer.encode() if isinstance(answer, str) else answer
    writer = CaptureWriter(work / "inproc-capture", "inproc")
    batch = 100

    def chain() -> None:
        for _ in range(batch):
            module.output_fn(module.predict_fn(module.input_fn(body, "application/json"), loaded), "application/json")

    def capture() -> None:
        for _ in range(batch):
            writer.put("AllTraffic", body, "application/json", answer, answer_type)
        writer.flush()

    got = timeit({"handler chain": chain, "capture put + flush": capture}, max(5, reps // 10), warm=1)
    per = {k: round(v["median_ms"] / batch, 4) for k, v in got.items()}
    return {"per_request_ms": per, "capture_to_handler": round(ratio(per["capture put + flush"],
                                                                      per["handler chain"]), 3),
            "written": writer.written}


# ------------------------------------------------------------------------------ (a) explanations


def parallel_load(specs: list[tuple], seconds: float, max_requests: int) -> dict:
    """Several closed-loop loads at once (``specs``: label, port, body, check, concurrency); per label
    the merged result."""
    results: dict = {}

    def run(label, port, body, check, concurrency) -> None:
        results[label] = load("127.0.0.1", port, "/invocations", body, JSON, concurrency, max_requests, seconds,
                              check=check, warmup=0, keep_latencies=True)

    threads = [threading.Thread(target=run, args=spec, daemon=True) for spec in specs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def mixed_rounds(port: int, bodies: dict, rounds: int, seconds: float) -> dict:
    """Plain requests (4 clients) beside 4 clients of explained requests, against plain beside plain,
    alternating rounds: what explained requests scored on the same worker do to plain ones."""
    cases = {
        "plain beside plain (peer)": [("plain", port, bodies["plain"], check_plain, 4),
                                      ("other", port, bodies["plain"], check_plain, 4)],
        "plain beside explained": [("plain", port, bodies["plain"], check_plain, 4),
                                   ("other", port, bodies["explained"], check_explained, 4)],
    }
    merged = {k: {"lat": [], "other_lat": [], "seconds": 0.0, "n": 0, "other_n": 0, "errors": 0} for k in cases}
    names = list(cases)
    for r in range(rounds):
        for name in names if r % 2 == 0 else reversed(names):
            got = parallel_load(cases[name], seconds / rounds, UNCAPPED)
            m = merged[name]
            m["lat"] += got["plain"]["latencies_ms"]
            m["other_lat"] += got["other"]["latencies_ms"]
            m["seconds"] += got["plain"]["seconds"]
            m["n"] += got["plain"]["requests_ok"]
            m["other_n"] += got["other"]["requests_ok"]
            m["errors"] += got["plain"]["errors"] + got["other"]["errors"]
    out = {}
    for name, m in merged.items():
        out[name] = {
            "plain_p50_ms": round(percentile(m["lat"], 50), 3) if m["lat"] else None,
            "plain_p99_ms": round(percentile(m["lat"], 99), 3) if m["lat"] else None,
            "plain_rps": round(m["n"] / m["seconds"], 1) if m["seconds"] else None,
            "other_rps": round(m["other_n"] / m["seconds"], 1) if m["seconds"] else None,
            "other_p50_ms": round(percentile(m["other_lat"], 50), 3) if m["other_lat"] else None,
            "errors": m["errors"],
        }
    peer, mixed = out["plain beside plain (peer)"], out["plain beside explained"]
    out["plain_p50_ratio"] = round(ratio(mixed["plain_p50_ms"], peer["plain_p50_ms"]), 3)
    out["plain_p99_ratio"] = round(ratio(mixed["plain_p99_ms"], peer["plain_p99_ms"]), 3)
    out["loadavg"] = loadavg()
    return out


def mixed_in_pool(p, model: str, bodies: dict, opts, work: Path, cleanup: Cleanup) -> dict:
    """``mixed_rounds`` on our server started outside the platform with every request scored in its
    thread pool (``endpoint_app.INLINE_MAX_BYTES = -1``, patched in that child only): what the mix would
    be if explained requests did not run on the event loop."""
    from bench_endpoint import VARIANT_LAUNCHER, start_variant
    from churn_core.backends.local.endpoint.app import PREDICT_THREADS
    from churn_core.processes.detached import kill_group
    from churn_core.backends.local.endpoint.server import free_port

    row = p.get_model(model)
    port = free_port()
    proc = start_variant(p.store.path(row["artifact_key"]), row["artifact_sha256"], work / f"pool-{model}", port, 1,
                         ["-c", VARIANT_LAUNCHER, str(PREDICT_THREADS), "-1"], cleanup)
    try:
        status, answer, _ = post(port, bodies["explained"])
        if status != 200:
            raise RuntimeError(f"explained request to the all-in-pool server failed: HTTP {status}: {answer}")
        return mixed_rounds(port, bodies, opts.rounds, opts.seconds)
    finally:
        kill_group(proc.pid)


def explain_section(p, datasets: dict, opts, work: Path, cleanup: Cleanup) -> dict:
    """Per model: explained vs plain, endpoint that explained vs one that never did, mixed load."""
    cases = [("rf-reference", datasets["reference"], {"algorithm": "random_forest", "n_estimators": opts.trees}),
             ("rf-categorical", datasets["categorical"], {"algorithm": "random_forest", "n_estimators": opts.trees}),
             ("gb-categorical", datasets["categorical"], {"algorithm": "gradient_boosting"}),
             ("lr-categorical", datasets["categorical"], {"algorithm": "logistic_regression"})]
    if opts.short:
        cases = cases[:2] + cases[3:]
    out: dict = {}
    for label, dataset, params in cases:
        model = f"bench-sf-{label}"
        t0 = time.perf_counter()
        train(p, dataset, model, params)
        print(f"  trained {model} in {time.perf_counter() - t0:.1f}s")
        seed = dataset == datasets["reference"]
        bodies = request_bodies(p, dataset, model, seed)
        explained_ep = deploy(p, model, f"sf-{label}-x")
        fresh_ep = deploy(p, model, f"sf-{label}-plain")
        port_x, port_fresh = port_of(explained_ep), port_of(fresh_ep)
        status, first, _ = post(port_x, bodies["explained"])
        if status != 200:
            raise RuntimeError(f"explained request to {label} failed: HTTP {status}: {first}")
        why = reasons_of(first)
        rss_before = {"explained endpoint": process_tree_rss(explained_ep.server_pid)["total_mb"],
                      "never-explained endpoint": process_tree_rss(fresh_ep.server_pid)["total_mb"]}
        res: dict = {"model": model, "dataset": dataset, "algorithm": params["algorithm"], "method": why["method"],
                     "space": why["space"], "reasons_shown": len(why["reasons"]),
                     "additive_error": abs(why["base"] + sum(r["contribution"] for r in why["reasons"])
                                           + why["other"] - why["output"])}
        for level in (1, 8):
            got = load_rounds({"plain": (port_x, bodies["plain"], JSON, check_plain),
                               "explained": (port_x, bodies["explained"], JSON, check_explained)},
                              level, opts.rounds, opts.requests, opts.seconds,
                              server_pids={"plain": explained_ep.server_pid, "explained": explained_ep.server_pid})
            res[f"c{level}"] = got
            res[f"c{level}_throughput_ratio"] = round(ratio(got["explained"]["throughput_rps"],
                                                            got["plain"]["throughput_rps"]), 3)
            res[f"c{level}_p50_ratio"] = round(ratio(got["explained"]["p50_ms"], got["plain"]["p50_ms"]), 3)
        res["goal_explained_p50_met"] = res["c1"]["explained"]["p50_ms"] < EXPLAIN_P50_GOAL_MS
        after = {}
        for level in (1, 8):
            after[f"c{level}"] = load_rounds({"served explained": (port_x, bodies["plain"], JSON, check_plain),
                                              "never explained": (port_fresh, bodies["plain"], JSON, check_plain)},
                                             level, opts.rounds, UNCAPPED, opts.seconds,
                                             server_pids={"served explained": explained_ep.server_pid,
                                                          "never explained": fresh_ep.server_pid})
            after[f"c{level}_throughput_ratio"] = round(ratio(after[f"c{level}"]["served explained"]["throughput_rps"],
                                                              after[f"c{level}"]["never explained"]["throughput_rps"]),
                                                        3)
        after["rss_mb_before"] = rss_before
        after["rss_mb_after"] = {"explained endpoint": process_tree_rss(explained_ep.server_pid)["total_mb"],
                                 "never-explained endpoint": process_tree_rss(fresh_ep.server_pid)["total_mb"]}
        res["plain_after_explained"] = after
        res["mixed"] = mixed_rounds(port_x, bodies, opts.rounds, opts.seconds)
        if opts.pool_variant:  # the same mix on a server that scores every request in its thread pool
            res["mixed_all_in_pool"] = mixed_in_pool(p, model, bodies, opts, work, cleanup)
        res["in_process"] = in_process_explain(p, model, bodies, work, opts.inproc_reps)
        p.delete_endpoint(explained_ep.name)
        p.delete_endpoint(fresh_ep.name)
        out[label] = res
        c1, c8 = res["c1"], res["c8"]
        print(f"  {label}: method {res['method']}; c1 p50 plain {c1['plain']['p50_ms']} ms, explained "
              f"{c1['explained']['p50_ms']} ms; c8 req/s plain {c8['plain']['throughput_rps']}, explained "
              f"{c8['explained']['throughput_rps']}; plain after explaining / never {after['c8_throughput_ratio']}×; "
              f"plain p99 beside explained / beside plain {res['mixed']['plain_p99_ratio']}×; load {loadavg()[0]}")
    return out


# ------------------------------------------------------------------------------ (b) capture


def captured_lines(p, endpoint: str) -> tuple[int, int]:
    """(lines, distinct eventIds) of everything captured for the endpoint so far."""
    keys = [k for k in p.store.list(f"capture/{endpoint}/") if k.endswith(".jsonl")]
    lines, ids = 0, set()
    for key in keys:
        for line in p.store.get_bytes(key).decode("utf-8").splitlines():
            if line.strip():
                lines += 1
                ids.add(json.loads(line)["eventMetadata"]["eventId"])
    return lines, len(ids)


def capture_section(p, datasets: dict, opts, work: Path) -> dict:
    out = {}
    models = {"rf-reference": (datasets["reference"], True), "rf-categorical": (datasets["categorical"], False)}
    if opts.short:
        models = dict(list(models.items())[:1])
    for label, (dataset, seed) in models.items():
        model = f"bench-sf-{label}"
        bodies = request_bodies(p, dataset, model, seed)
        ep = deploy(p, model, f"sf-{label}-cap")
        port = port_of(ep)
        rounds = {"capture 100 %": {"lat": [], "seconds": 0.0, "n": 0, "errors": 0, "rps": [], "cpu": 0.0},
                  "capture off": {"lat": [], "seconds": 0.0, "n": 0, "errors": 0, "rps": [], "cpu": 0.0}}
        names = list(rounds)
        sent_with_capture = 0
        warmup = 2
        for r in range(opts.rounds * 2):
            for name in names if r % 2 == 0 else reversed(names):
                p.set_capture(ep.name, 100 if name == "capture 100 %" else 0)  # effective when it returns
                cpu0 = process_tree_cpu(ep.server_pid)
                res = load("127.0.0.1", port, "/invocations", bodies["plain"], JSON, 8,
                           UNCAPPED, opts.seconds / opts.rounds, check=check_plain,
                           warmup=warmup, keep_latencies=True)
                time.sleep(0.3)  # the writer thread's flush of this round (every 0.2 s) is this round's CPU
                m = rounds[name]
                m["cpu"] += process_tree_cpu(ep.server_pid) - cpu0
                m["lat"] += res["latencies_ms"]
                m["seconds"] += res["seconds"]
                m["n"] += res["requests_ok"]
                m["errors"] += res["errors"]
                m["rps"].append(res["throughput_rps"])
                if name == "capture 100 %":
                    sent_with_capture += res["requests_ok"] + res["errors"] + warmup
        p.set_capture(ep.name, 0)
        deadline, lines, ids, stable = time.monotonic() + 20, -1, 0, 0
        while time.monotonic() < deadline:  # the writer thread flushes every 0.2 s
            now_lines, ids = captured_lines(p, ep.name)
            stable = stable + 1 if now_lines == lines else 0
            lines = now_lines
            if lines >= sent_with_capture and stable >= 2:
                break
            time.sleep(0.5)
        res = {}
        for name, m in rounds.items():
            res[name] = {"throughput_rps": round(m["n"] / m["seconds"], 1) if m["seconds"] else None,
                         "p50_ms": round(percentile(m["lat"], 50), 3), "p99_ms": round(percentile(m["lat"], 99), 3),
                         "requests_ok": m["n"], "errors": m["errors"], "rounds_rps": m["rps"],
                         "server_cpu_ms_per_request": round(1000 * m["cpu"] / max(1, m["n"] + m["errors"]), 4)}
        on, off = res["capture 100 %"], res["capture off"]
        res["cpu_ratio"] = round(ratio(on["server_cpu_ms_per_request"], off["server_cpu_ms_per_request"]), 3)
        res["throughput_ratio"] = round(ratio(on["throughput_rps"], off["throughput_rps"]), 3)
        res["round_ratios"] = [round(ratio(a, b), 3) for a, b in zip(on["rounds_rps"], off["rounds_rps"], strict=True)]
        res["p50_ratio"] = round(ratio(on["p50_ms"], off["p50_ms"]), 3)
        res["requests_answered_with_capture_on"] = sent_with_capture
        res["captured_lines"] = lines
        res["distinct_event_ids"] = ids
        res["goal_throughput_met"] = res["throughput_ratio"] >= CAPTURE_GOAL
        res["goal_count_met"] = lines == sent_with_capture == ids
        res["loadavg"] = loadavg()
        p.delete_endpoint(ep.name)
        res["in_process"] = in_process_capture(p, model, bodies["plain"], work, opts.inproc_reps)
        out[label] = res
        print(f"  capture {label}: on {on['throughput_rps']} req/s, off {off['throughput_rps']} req/s = "
              f"{res['throughput_ratio']}×; captured {lines} lines ({ids} distinct) for {sent_with_capture} requests; "
              f"load {loadavg()[0]}")
    return out


# ------------------------------------------------------------------------------ (c) rollout under load


class Traffic:
    """Closed-loop clients recording every request: (sent, done, status, variant, probability, error)."""

    def __init__(self, port: int, body: bytes, concurrency: int, max_seconds: float) -> None:
        self.port, self.body, self.concurrency, self.max_seconds = port, body, concurrency, max_seconds
        self.records: list[tuple] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []
        self.t0 = 0.0

    def _worker(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        local = []
        end = self.t0 + self.max_seconds
        while not self.stop.is_set() and time.perf_counter() < end:
            sent = time.perf_counter()
            try:
                conn.request("POST", "/invocations", body=self.body, headers=JSON)
                resp = conn.getresponse()
                data = resp.read()
                done = time.perf_counter()
                variant = resp.getheader("X-Amzn-Invoked-Production-Variant", "")
                if resp.status == 200:
                    local.append((sent, done, 200, variant, probability_of(json.loads(data)), ""))
                else:
                    local.append((sent, done, resp.status, variant, None, data[:200].decode("latin-1")))
            except Exception as exc:  # a dropped connection is a failed request
                local.append((sent, time.perf_counter(), 0, "", None, f"{type(exc).__name__}: {exc}"))
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        conn.close()
        with self.lock:
            self.records.extend(local)

    def __enter__(self) -> "Traffic":
        self.t0 = time.perf_counter()
        self.threads = [threading.Thread(target=self._worker, daemon=True) for _ in range(self.concurrency)]
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *_exc) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=60)


def window(records: list[tuple], start: float, end: float) -> dict:
    """Requests completed in [start, end): req/s, p99 latency, failures."""
    got = [r for r in records if start <= r[1] < end]
    lat = [(r[1] - r[0]) * 1000 for r in got]
    span = end - start
    return {"seconds": round(span, 3), "requests": len(got), "rps": round(len(got) / span, 1) if span > 0 else None,
            "p50_ms": round(percentile(lat, 50), 2) if lat else None,
            "p99_ms": round(percentile(lat, 99), 2) if lat else None,
            "max_ms": round(max(lat), 2) if lat else None, "failed": sum(1 for r in got if r[2] != 200)}


def change_under_load(p, port: int, body: bytes, what: str, action, old: set, new: set, opts) -> dict:
    """Run ``action`` (an update) at ``--settle`` s into a bounded load; how the answers moved."""
    with Traffic(port, body, 8, opts.settle * 2 + 60) as traffic:
        time.sleep(opts.settle)
        t_start = time.perf_counter()
        ep = action()
        t_end = time.perf_counter()
        time.sleep(opts.settle)
    rec = sorted(traffic.records, key=lambda r: r[0])
    failed = [r for r in rec if r[2] != 200]
    rel = lambda t: round(t - t_start, 3)  # noqa: E731
    is_new = lambda r: (r[4], r[3]) in new  # noqa: E731
    is_old = lambda r: (r[4], r[3]) in old  # noqa: E731
    new_done = [r[1] for r in rec if r[2] == 200 and is_new(r)]
    old_done = [r[1] for r in rec if r[2] == 200 and is_old(r)]
    unknown = [r for r in rec if r[2] == 200 and not is_new(r) and not is_old(r)]
    sent_after = [r for r in rec if r[0] > t_end and r[2] == 200]
    result = {
        "what": what,
        "requests": len(rec),
        "failed": len(failed),
        "failed_examples": [r[5] or r[2] for r in failed[:5]],
        "duration_s": round(t_end - t_start, 3),
        "status_after": ep.status,
        "failure_reason": ep.failure_reason,
        "first_new_answer_s": rel(min(new_done)) if new_done else None,
        "last_old_answer_s": rel(max(old_done)) if old_done else None,
        "new_answers_before_call_returned": sum(1 for t in new_done if t < t_end),
        "old_answers_to_requests_sent_after_return": sum(1 for r in sent_after if is_old(r)),
        "answers_neither_old_nor_new": len(unknown),
        "before": window(rec, t_start - opts.settle + 0.5, t_start),
        "during": window(rec, t_start, t_end),
        "after": window(rec, t_end, t_end + opts.settle - 0.5),
        "loadavg": loadavg(),
    }
    result["during_to_before_rps"] = round(ratio(result["during"]["rps"], result["before"]["rps"]) or 0, 3)
    print(f"  {what}: {result['duration_s']}s, {result['failed']} failed of {result['requests']}; first new answer "
          f"at +{result['first_new_answer_s']}s, last old at +{result['last_old_answer_s']}s; req/s before "
          f"{result['before']['rps']}, during {result['during']['rps']}, after {result['after']['rps']}; "
          f"load {loadavg()[0]}")
    return result


def rollout_section(p, datasets: dict, opts) -> dict:
    """Two registered versions of the categorical data (random forest v1, logistic regression v2)."""
    group = "bench-subs"
    dataset = datasets["categorical"]
    v_models = {1: "bench-sf-rf-categorical", 2: "bench-sf-lr-categorical"}  # trained before this section
    versions = {}
    for number, model in v_models.items():
        version = p.register(model, group=group, note="benchmark")
        p.approve(group, version.version, "benchmark")
        versions[number] = version.version
    body = request_bodies(p, dataset, v_models[1], seed=False)["plain"]
    workers = opts.rollout_workers

    # peer: a new endpoint of each version to InService (what an update replaces: deploy + switch traffic)
    deploys = {1: [], 2: []}
    answers = {}
    for i in range(opts.peer_deploys):
        for number in (1, 2):
            t0 = time.perf_counter()
            ep = p.deploy_version(group, versions[number], f"sf-peer-{number}-{i}", instance_count=workers)
            deploys[number].append(round(time.perf_counter() - t0, 3))
            if ep.status != "InService":
                raise RuntimeError(f"deploy_version ended {ep.status}: {ep.failure_reason}")
            status, answer, _ = post(port_of(ep), body)
            answers[number] = probability_of(answer)
            p.delete_endpoint(ep.name)
    if answers[1] == answers[2]:
        raise RuntimeError("both versions give the same probability; the switch could not be seen")
    print(f"  peer deploy_version → InService ({workers} workers): v1 {deploys[1]}, v2 {deploys[2]}; "
          f"answers v1 {answers[1]:.4f}, v2 {answers[2]:.4f}")

    ep = p.deploy_version(group, versions[1], "sf-rollout", instance_count=workers)
    port = port_of(ep)
    out: dict = {"group": group, "versions": {str(k): f"{group} v{v} ({v_models[k]})" for k, v in versions.items()},
                 "workers": workers, "answers": answers, "peer_deploy_seconds": deploys,
                 "peer_deploy_median": round(median(deploys[1] + deploys[2]), 3), "changes": []}
    current = 1
    for _ in range(opts.updates):
        target = 2 if current == 1 else 1
        res = change_under_load(
            p, port, body, f"update_endpoint v{current} → v{target}",
            lambda target=target: p.update_endpoint("sf-rollout", group, versions[target]),
            {(answers[current], "AllTraffic")}, {(answers[target], "AllTraffic")}, opts)
        out["changes"].append(res)
        current = target
    if current != 1:  # champion v1 serving alone before the A/B test
        p.update_endpoint("sf-rollout", group, versions[1])
    p.set_alias(group, versions[1], "champion")
    p.set_alias(group, versions[2], "challenger")
    from churn_core.endpoints.rollout import variant_name

    n1, n2 = variant_name(group, versions[1]), variant_name(group, versions[2])
    res = change_under_load(
        p, port, body, "set_variants champion 90 / challenger 10",
        lambda: p.set_variants("sf-rollout", [(group, "champion", 90), (group, "challenger", 10)]),
        {(answers[1], "AllTraffic")}, {(answers[1], n1), (answers[2], n2)}, opts)
    out["changes"].append(res)
    res = change_under_load(
        p, port, body, "promote_challenger (v2 takes all traffic)", lambda: p.promote_challenger("sf-rollout"),
        {(answers[1], n1), (answers[2], n2)}, {(answers[2], "AllTraffic")}, opts)
    out["changes"].append(res)
    p.delete_endpoint("sf-rollout")
    updates = [c["duration_s"] for c in out["changes"]]
    out["median_change_seconds"] = round(median(updates), 3)
    out["ratio_change_to_deploy"] = round(ratio(median(updates), out["peer_deploy_median"]), 3)
    out["failed_total"] = sum(c["failed"] for c in out["changes"])
    out["goal_zero_failed_met"] = out["failed_total"] == 0
    out["loadavg"] = loadavg()
    return out


# ------------------------------------------------------------------------------ (d) slow clients


HEAD = b"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"


class Tricklers:
    """``n`` clients sending one byte every ``interval`` s: of their headers (``headers``) or of a body
    announced as 4,096 bytes (``body``). A client the server closes (or answers: 408) reconnects."""

    def __init__(self, port: int, n: int, mode: str, interval: float = 0.1) -> None:
        self.port, self.n, self.mode, self.interval = port, n, mode, interval
        self.stop = threading.Event()
        self.closed_by_server = 0
        self.answers: dict[str, int] = {}
        self.bytes_sent = 0
        self.thread: threading.Thread | None = None

    def _open(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        first = HEAD if self.mode == "headers" else HEAD + b"Content-Length: 4096\r\n\r\n"
        sock.sendall(first)
        return sock

    def _run(self) -> None:
        socks = [self._open() for _ in range(self.n)]
        trickle = b"X-Pad: " + b"a" * 4000 if self.mode == "headers" else b" " * 4096
        i = 0
        try:
            while not self.stop.is_set():
                readable, _, _ = select.select(socks, [], [], 0)
                for sock in readable:  # the server closed it, or answered (408): count, reconnect
                    try:
                        data = sock.recv(65536)
                    except OSError:
                        data = b""
                    if data:
                        status = data.split(b" ", 2)[1].decode("latin-1") if data.startswith(b"HTTP/") else "?"
                        self.answers[status] = self.answers.get(status, 0) + 1
                    else:
                        self.closed_by_server += 1
                    sock.close()
                    socks[socks.index(sock)] = self._open()
                for k, sock in enumerate(socks):
                    try:
                        sock.sendall(trickle[(i + k) % len(trickle):(i + k) % len(trickle) + 1])
                        self.bytes_sent += 1
                    except OSError:
                        pass  # seen as readable/closed on the next pass
                i += 1
                self.stop.wait(self.interval)
        finally:
            for sock in socks:
                sock.close()

    def __enter__(self) -> "Tricklers":
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        time.sleep(0.3)  # connected and trickling before the load starts
        return self

    def __exit__(self, *_exc) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(timeout=30)


class Pinger:
    """GET /ping every 0.2 s on a fresh connection; latencies (ms) and failures."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.lat: list[float] = []
        self.failed = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            t0 = time.perf_counter()
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", "/ping")
                ok = conn.getresponse().status == 200
                conn.close()
            except OSError:
                ok = False
            if ok:
                self.lat.append((time.perf_counter() - t0) * 1000)
            else:
                self.failed += 1
            self.stop.wait(0.2)

    def __enter__(self) -> "Pinger":
        self.thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self.stop.set()
        self.thread.join(timeout=10)


def slow_section(p, datasets: dict, opts) -> dict:
    from churn_core.backends.local.endpoint.app import PREDICT_THREADS

    n = PREDICT_THREADS + 1
    model = "bench-sf-rf-reference"
    body = request_bodies(p, datasets["reference"], model, seed=True)["plain"]
    ep = deploy(p, model, "sf-slow")
    port = port_of(ep)
    modes = ["no slow clients (peer)", f"{n} trickling headers", f"{n} trickling a body"]
    merged = {m: {"lat": [], "seconds": 0.0, "n": 0, "errors": 0, "rps": [], "ping": [], "ping_failed": 0,
                  "closed": 0, "answers": {}, "cpu": 0.0} for m in modes}
    for r in range(opts.rounds):
        for mode in modes if r % 2 == 0 else list(reversed(modes)):
            kind = "headers" if "headers" in mode else "body" if "body" in mode else None
            trickle = Tricklers(port, n, kind) if kind else None
            if trickle:
                trickle.__enter__()
            cpu0 = process_tree_cpu(ep.server_pid)
            try:
                with Pinger(port) as pinger:
                    res = load("127.0.0.1", port, "/invocations", body, JSON, 8, UNCAPPED,
                               opts.slow_seconds, check=check_plain, warmup=2, keep_latencies=True)
            finally:
                if trickle:
                    trickle.__exit__()
            m = merged[mode]
            m["cpu"] += process_tree_cpu(ep.server_pid) - cpu0
            m["lat"] += res["latencies_ms"]
            m["seconds"] += res["seconds"]
            m["n"] += res["requests_ok"]
            m["errors"] += res["errors"]
            m["rps"].append(res["throughput_rps"])
            m["ping"] += pinger.lat
            m["ping_failed"] += pinger.failed
            if trickle:
                m["closed"] += trickle.closed_by_server
                for k, v in trickle.answers.items():
                    m["answers"][k] = m["answers"].get(k, 0) + v
    still_alive = post(port, body)[0] == 200
    p.delete_endpoint(ep.name)
    out: dict = {"slow_clients": n, "predict_threads": PREDICT_THREADS, "round_seconds": opts.slow_seconds,
                 "modes": {}}
    for mode, m in merged.items():
        out["modes"][mode] = {
            "throughput_rps": round(m["n"] / m["seconds"], 1) if m["seconds"] else None,
            "rounds_rps": m["rps"], "p50_ms": round(percentile(m["lat"], 50), 3),
            "p99_ms": round(percentile(m["lat"], 99), 3), "errors": m["errors"], "requests_ok": m["n"],
            "ping_p50_ms": round(percentile(m["ping"], 50), 2) if m["ping"] else None,
            "ping_max_ms": round(max(m["ping"]), 2) if m["ping"] else None, "pings": len(m["ping"]),
            "ping_failed": m["ping_failed"], "slow_connections_closed_by_server": m["closed"],
            "slow_connections_answered": m["answers"],
            "server_cpu_ms_per_request": round(1000 * m["cpu"] / max(1, m["n"] + m["errors"]), 4),
        }
    peer = out["modes"][modes[0]]["throughput_rps"]
    for mode in modes[1:]:
        out["modes"][mode]["throughput_ratio"] = round(ratio(out["modes"][mode]["throughput_rps"], peer), 3)
    out["serves_after"] = still_alive
    out["loadavg"] = loadavg()
    for mode, v in out["modes"].items():
        print(f"  {mode}: {v['throughput_rps']} req/s ({v.get('throughput_ratio', 1.0)}×), errors {v['errors']}, "
              f"ping p50 {v['ping_p50_ms']} ms max {v['ping_max_ms']} ms ({v['ping_failed']} failed); "
              f"closed by server {v['slow_connections_closed_by_server']}, answered {v['slow_connections_answered']}")
    return out


# ------------------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="", help="comma-separated subset of: " + ", ".join(SECTIONS))
    parser.add_argument("--trees", type=int, default=100, help="random forest trees")
    parser.add_argument("--rounds", type=int, default=4, help="alternating rounds per comparison")
    parser.add_argument("--requests", type=int, default=2000, help="max requests per target and level")
    parser.add_argument("--seconds", type=float, default=12.0, help="max seconds per target and level (all rounds)")
    parser.add_argument("--inproc-reps", type=int, default=300)
    parser.add_argument("--updates", type=int, default=3, help="update_endpoint calls under load (back and forth)")
    parser.add_argument("--settle", type=float, default=2.5, help="seconds of load before and after each change")
    parser.add_argument("--rollout-workers", type=int, default=2)
    parser.add_argument("--peer-deploys", type=int, default=2)
    parser.add_argument("--no-pool-variant", dest="pool_variant", action="store_false",
                        help="skip the mixed load on a server scoring every request in its thread pool")
    parser.add_argument("--slow-seconds", type=float, default=4.0, help="seconds per slow-client round")
    parser.add_argument("--short", action="store_true", help="smoke run: 2 rounds, fewer requests, 3 models")
    opts = parser.parse_args(argv)
    if opts.short:
        opts.rounds, opts.requests, opts.seconds, opts.inproc_reps = 2, 300, 4.0, 60
        opts.updates, opts.settle, opts.peer_deploys, opts.slow_seconds = 1, 1.5, 1, 2.0
    chosen = [s.strip() for s in opts.only.split(",") if s.strip()] or list(SECTIONS)
    unknown = set(chosen) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s): {', '.join(sorted(unknown))}")

    info = machine()
    print(f"machine: {info['cpu_count']} cores, load average {info['loadavg_at_start']}")
    cleanup = Cleanup()
    home = temp_home(cleanup, "bench-serving-features")
    work = Path(tempfile.mkdtemp(prefix="work-", dir=home))
    import churn_core
    from churn_core.data.sample import make_sample, make_subscription_sample

    warm_start = start_warm_process(cleanup)
    p = churn_core.connect()
    platform_cleanup(cleanup, p)
    reference = "reference" if REFERENCE_CSV.exists() else "sample"
    p.upload_dataset(reference, REFERENCE_CSV.read_bytes() if REFERENCE_CSV.exists() else make_sample())
    p.upload_dataset("subscriptions", make_subscription_sample(7043))
    datasets = {"reference": reference, "categorical": "subscriptions"}
    results: dict = {"machine": info, "options": vars(opts), "datasets": datasets, "warm_process": warm_start}
    print(f"datasets: {reference} ({'reference CSV' if reference == 'reference' else 'make_sample()'}), "
          f"subscriptions (make_subscription_sample(7043))")

    if "explain" in chosen or not {"capture", "slow", "rollout"}.isdisjoint(chosen):
        print("\n(a) explanations" if "explain" in chosen else "\ntraining the models")
    if "explain" in chosen:
        results["explain"] = explain_section(p, datasets, opts, work, cleanup)
    else:  # the other sections need the models
        for label, dataset, params in (
                ("rf-reference", reference, {"algorithm": "random_forest", "n_estimators": opts.trees}),
                ("rf-categorical", "subscriptions", {"algorithm": "random_forest", "n_estimators": opts.trees}),
                ("lr-categorical", "subscriptions", {"algorithm": "logistic_regression"})):
            train(p, dataset, f"bench-sf-{label}", params)
    if "capture" in chosen:
        print("\n(b) capture overhead")
        results["capture"] = capture_section(p, datasets, opts, work)
    if "rollout" in chosen:
        print("\n(c) update under load")
        results["rollout"] = rollout_section(p, datasets, opts)
    if "slow" in chosen:
        print("\n(d) slow clients")
        results["slow"] = slow_section(p, datasets, opts)

    summary(results)
    write_results("bench_serving_features", results)
    cleanup.run()
    return 0


def summary(r: dict) -> None:
    if "explain" in r:
        rows = []
        for label, e in r["explain"].items():
            rows.append([label, e["method"], e["c1"]["plain"]["p50_ms"], e["c1"]["explained"]["p50_ms"],
                         e["c1"]["explained"]["p99_ms"], e["c1_p50_ratio"], e["c8"]["plain"]["throughput_rps"],
                         e["c8"]["explained"]["throughput_rps"], e["c8_throughput_ratio"],
                         e["plain_after_explained"]["c8_throughput_ratio"], e["mixed"]["plain_p99_ratio"],
                         "yes" if e["goal_explained_p50_met"] else "NO"])
        print_table("(a) explained vs plain single rows (same endpoint, alternating rounds)",
                    ["model", "method", "c1 p50 plain", "c1 p50 expl", "c1 p99 expl", "p50 ×", "c8 req/s plain",
                     "c8 req/s expl", "c8 ×", "plain: explained-ep / fresh-ep (c8)", "plain p99 beside expl ×",
                     f"p50 < {EXPLAIN_P50_GOAL_MS:.0f} ms"], rows)
    if "capture" in r:
        print_table("(b) capture 100 % vs off (c8, alternating rounds)",
                    ["model", "on req/s", "off req/s", "ratio", "captured", "answered", "goal ≥ 0.85", "count ok"],
                    [[k, v["capture 100 %"]["throughput_rps"], v["capture off"]["throughput_rps"],
                      v["throughput_ratio"], v["captured_lines"], v["requests_answered_with_capture_on"],
                      "yes" if v["goal_throughput_met"] else "NO", "yes" if v["goal_count_met"] else "NO"]
                     for k, v in r["capture"].items()])
    if "rollout" in r:
        print_table("(c) changes under load (c8)",
                    ["change", "s", "failed", "requests", "first new +s", "last old +s", "rps before", "rps during",
                     "rps after", "p99 during ms"],
                    [[c["what"], c["duration_s"], c["failed"], c["requests"], c["first_new_answer_s"],
                      c["last_old_answer_s"], c["before"]["rps"], c["during"]["rps"], c["after"]["rps"],
                      c["during"]["p99_ms"]] for c in r["rollout"]["changes"]])
        print(f"peer: deploy_version → InService median {r['rollout']['peer_deploy_median']} s; "
              f"change / deploy {r['rollout']['ratio_change_to_deploy']}")
    if "slow" in r:
        print_table("(d) slow clients (c8, alternating rounds)",
                    ["mode", "req/s", "ratio", "errors", "ping p50 ms", "ping max ms", "closed by server"],
                    [[k, v["throughput_rps"], v.get("throughput_ratio", 1.0), v["errors"], v["ping_p50_ms"],
                      v["ping_max_ms"], v["slow_connections_closed_by_server"]] for k, v in r["slow"]["modes"].items()])


if __name__ == "__main__":
    sys.exit(main())
