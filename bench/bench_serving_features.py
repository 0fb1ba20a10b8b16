"""Serving features: explanations, data capture, safe rollout and slow clients, each against a peer
measured in the same run with interleaved rounds.

    .venv/bin/python bench/bench_serving_features.py [--quick] [--only explain,capture,rollout,slow]

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

import http.client
import json
import select
import socket
import sys
import threading
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path

from harness import (JSON, ROUNDS_HEADERS, SEED_ROW, UNCAPPED, Bench, deploy, in_background, interleave, latency_stats,
                     load, load_in_process, load_rounds, loadavg, median, percentile, port_of, post, process_tree_rss,
                     ratio, reference_data, round_ratios, rounds_rows, timeit, train)

EXPLAIN_P50_GOAL_MS = 20.0
CAPTURE_GOAL = 0.85
REASONS = 3
SECTIONS = ("explain", "capture", "rollout", "slow")


# ------------------------------------------------------------------------------ requests


def plain_value(v):
    if hasattr(v, "item"):  # numpy scalar
        v = v.item()
    return None if v is None or v == "" or (isinstance(v, float) and v != v) else v


def customer_record(p, dataset: str, model: str, index: int = 0) -> dict:
    """One held-out customer as the endpoint's named record (blank cells as null)."""
    frame = p.read_dataset(dataset, "test")
    schema = p.model_schema(model)
    row = frame.iloc[index]
    names = [*(schema.get("id_columns") or []), *(f["name"] for f in schema["features"])]
    return {k: plain_value(row[k]) for k in names if k in frame.columns}


def request_bodies(p, dataset: str, model: str, seed: bool) -> dict:
    """Plain and explained single-row bodies: the seed ``Input`` shape for the reference schema, named
    ``instances`` for the categorical data."""
    plain = {"Input": [SEED_ROW]} if seed else {"instances": [customer_record(p, dataset, model)]}
    return {"plain": json.dumps(plain).encode(), "explained": json.dumps(dict(plain, explain=REASONS)).encode()}


def check_plain(_status: int, data: bytes) -> bool:
    return (data.startswith(b'{"Output"') or data.startswith(b'{"predictions"')) and b'easons"' not in data


def check_explained(_status: int, data: bytes) -> bool:
    return b'"Reasons"' in data or b'"reasons"' in data


def reasons_of(answer: dict) -> dict:
    return answer["Reasons"] if "Reasons" in answer else answer["predictions"][0]["reasons"]


def probability_of(answer: dict) -> float:
    return answer["Probability"] if "Probability" in answer else answer["predictions"][0]["churn_probability"]


def chain(module, loaded, body: bytes):
    return module.output_fn(module.predict_fn(module.input_fn(body, "application/json"), loaded), "application/json")


# ------------------------------------------------------------------------------ (a) explanations


def parallel_load(specs: list[tuple], seconds: float) -> dict:
    """Several closed-loop loads at once (``specs``: label, port, body, check, concurrency)."""
    results: dict = {}

    def run(label, port, body, check, concurrency) -> None:
        results[label] = load(port, body, JSON, concurrency, UNCAPPED, seconds, check=check, warmup=0,
                              keep_latencies=True)

    threads = [threading.Thread(target=run, args=spec, daemon=True) for spec in specs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def mixed_rounds(port: int, bodies: dict, rounds: int, seconds: float) -> dict:
    """Plain requests (4 clients) beside 4 clients of explained requests, against plain beside plain,
    alternating rounds: what explained requests scored on the same worker do to plain ones."""
    plain = ("plain", port, bodies["plain"], check_plain, 4)
    cases = {"plain beside plain (peer)": [plain, ("other", port, bodies["plain"], check_plain, 4)],
             "plain beside explained": [plain, ("other", port, bodies["explained"], check_explained, 4)]}
    got = interleave({k: (lambda r, specs=specs: parallel_load(specs, seconds / rounds)) for k, specs in cases.items()},
                     rounds)
    out: dict = {}
    for name, runs in got.items():
        lat = [x for g in runs for x in g["plain"]["latencies_ms"]]
        other = [x for g in runs for x in g["other"]["latencies_ms"]]
        secs = sum(g["plain"]["seconds"] for g in runs)
        out[name] = {"plain_p50_ms": latency_stats(lat)["p50_ms"], "plain_p99_ms": latency_stats(lat)["p99_ms"],
                     "plain_rps": round(len(lat) / secs, 1) if secs else None,
                     "other_rps": round(len(other) / secs, 1) if secs else None,
                     "other_p50_ms": latency_stats(other)["p50_ms"],
                     "errors": sum(g[k]["errors"] for g in runs for k in ("plain", "other"))}
    peer, mixed = out["plain beside plain (peer)"], out["plain beside explained"]
    out["plain_p50_ratio"] = ratio(mixed["plain_p50_ms"], peer["plain_p50_ms"])
    out["plain_p99_ratio"] = ratio(mixed["plain_p99_ms"], peer["plain_p99_ms"])
    out["loadavg"] = loadavg()
    return out


def mixed_in_pool(bench: Bench, p, model: str, bodies: dict, work: Path) -> dict:
    """``mixed_rounds`` on our server started outside the platform with every request scored in its
    thread pool (``INLINE_MAX_BYTES = -1``, patched in that child only): what the mix would be if
    explained requests did not run on the event loop."""
    from bench_endpoint import VARIANT_LAUNCHER, start_server
    from churn_core.backends.local.endpoint.app import PREDICT_THREADS
    from churn_core.backends.local.endpoint.server import free_port
    from churn_core.processes.detached import kill_group

    row, port = p.get_model(model), free_port()
    proc = start_server(bench, p.store.path(row["artifact_key"]), row["artifact_sha256"], work / f"pool-{model}", port,
                        1, ("-c", VARIANT_LAUNCHER, str(PREDICT_THREADS), "-1"), name="variant")
    try:
        status, answer, _ = post(port, bodies["explained"])
        if status != 200:
            raise RuntimeError(f"explained request to the all-in-pool server failed: HTTP {status}: {answer}")
        return mixed_rounds(port, bodies, bench.opts.rounds, bench.opts.seconds)
    finally:
        kill_group(proc.pid)


def explain_model(bench: Bench, p, label: str, dataset: str, seed: bool, algorithm: str, work: Path) -> dict:
    """One model: explained vs plain, endpoint that explained vs one that never did, mixed load, in-process."""
    opts, model = bench.opts, f"bench-sf-{label}"
    bodies = request_bodies(p, dataset, model, seed)
    x_ep, fresh_ep = deploy(p, model, f"sf-{label}-x"), deploy(p, model, f"sf-{label}-plain")
    port_x, port_fresh = port_of(x_ep), port_of(fresh_ep)
    status, first, _ = post(port_x, bodies["explained"])
    if status != 200:
        raise RuntimeError(f"explained request to {label} failed: HTTP {status}: {first}")
    why = reasons_of(first)

    def rss() -> dict:
        return {"explained endpoint": process_tree_rss(x_ep.server_pid)["total_mb"],
                "never-explained endpoint": process_tree_rss(fresh_ep.server_pid)["total_mb"]}

    rss_before = rss()
    res: dict = {"model": model, "dataset": dataset, "algorithm": algorithm, "method": why["method"],
                 "space": why["space"], "reasons_shown": len(why["reasons"]),
                 "additive_error": abs(why["base"] + sum(r["contribution"] for r in why["reasons"]) + why["other"]
                                       - why["output"])}
    after: dict = {}
    for level in (1, 8):
        got = res[f"c{level}"] = load_rounds(
            {"plain": (port_x, bodies["plain"], JSON, check_plain),
             "explained": (port_x, bodies["explained"], JSON, check_explained)}, level, opts.rounds, opts.requests,
            opts.seconds, server_pids={"plain": x_ep.server_pid, "explained": x_ep.server_pid})
        res[f"c{level}_throughput_ratio"] = ratio(got["explained"]["throughput_rps"], got["plain"]["throughput_rps"])
        res[f"c{level}_p50_ratio"] = ratio(got["explained"]["p50_ms"], got["plain"]["p50_ms"])
    res["goal_explained_p50_met"] = res["c1"]["explained"]["p50_ms"] < EXPLAIN_P50_GOAL_MS
    for level in (1, 8):
        got = after[f"c{level}"] = load_rounds(
            {"served explained": (port_x, bodies["plain"], JSON, check_plain),
             "never explained": (port_fresh, bodies["plain"], JSON, check_plain)}, level, opts.rounds, UNCAPPED,
            opts.seconds, server_pids={"served explained": x_ep.server_pid, "never explained": fresh_ep.server_pid})
        after[f"c{level}_throughput_ratio"] = ratio(got["served explained"]["throughput_rps"],
                                                    got["never explained"]["throughput_rps"])
    res["plain_after_explained"] = {**after, "rss_mb_before": rss_before, "rss_mb_after": rss()}
    res["mixed"] = mixed_rounds(port_x, bodies, opts.rounds, opts.seconds)
    if opts.pool_variant:  # the same mix on a server that scores every request in its thread pool
        res["mixed_all_in_pool"] = mixed_in_pool(bench, p, model, bodies, work)
    module, loaded = load_in_process(p, model, work / f"inproc-{model}")
    t0 = time.perf_counter()
    chain(module, loaded, bodies["explained"])  # builds the explainer and proves it additive on probe rows
    first_ms = round((time.perf_counter() - t0) * 1000, 1)
    res["in_process"] = timeit({k: (lambda b=bodies[k]: chain(module, loaded, b)) for k in ("plain", "explained")},
                               opts.inproc_reps)
    res["in_process"]["first explained call (builds + checks the explainer) ms"] = first_ms
    p.delete_endpoint(x_ep.name)
    p.delete_endpoint(fresh_ep.name)
    print(f"  {label}: method {res['method']}; c1 p50 plain {res['c1']['plain']['p50_ms']} ms, explained "
          f"{res['c1']['explained']['p50_ms']} ms; plain after explaining / never {after['c8_throughput_ratio']}×; "
          f"load {loadavg()[0]}", flush=True)
    return res


def explain_tables(bench: Bench, ex: dict) -> None:
    bench.table("(a) Explained (`\"explain\": 3`) vs plain single rows on the same endpoint (c1, c8), then plain "
                "requests on that endpoint vs a second endpoint of the same model that never explained (alternating "
                "rounds of a fixed time):", ROUNDS_HEADERS,
                [row for k, e in ex.items() for c in ("c1", "c8") for row in rounds_rows(f"{k} {c}", e[c], "plain")
                 + rounds_rows(f"{k} {c} afterwards", e["plain_after_explained"][c], "never explained")])
    bench.table("Per model: the method that answered, the goal, the serving RSS (MB, master + worker) before → after "
                "the explained requests, and the handler chain in-process (input_fn → predict_fn → output_fn, no "
                "HTTP, interleaved):",
                ["model", "method", "c1 p50 explained ms", "goal p50 < 20 ms", "RSS explained ep",
                 "RSS never-explained ep", "in-process plain ms", "explained ms", "explained p90 ms",
                 "first explained call ms"],
                [[k, e["method"], e["c1"]["explained"]["p50_ms"], e["goal_explained_p50_met"],
                  *(f"{e['plain_after_explained']['rss_mb_before'][ep]} → "
                    f"{e['plain_after_explained']['rss_mb_after'][ep]}" for ep in ("explained endpoint",
                                                                                    "never-explained endpoint")),
                  e["in_process"]["plain"]["median_ms"], e["in_process"]["explained"]["median_ms"],
                  e["in_process"]["explained"]["p90_ms"],
                  e["in_process"]["first explained call (builds + checks the explainer) ms"]] for k, e in ex.items()])
    rows = []
    for k, e in ex.items():
        for server, m in (("as deployed", e["mixed"]), ("all in the pool", e.get("mixed_all_in_pool"))):
            if m:
                peer, mixed = m["plain beside plain (peer)"], m["plain beside explained"]
                rows.append([k, server, peer["plain_p50_ms"], mixed["plain_p50_ms"], m["plain_p50_ratio"],
                             peer["plain_p99_ms"], mixed["plain_p99_ms"], m["plain_p99_ratio"], peer["plain_rps"],
                             mixed["plain_rps"], mixed["other_rps"], peer["errors"] + mixed["errors"], m["loadavg"][0]])
    bench.table("Plain requests (4 clients) while 4 other clients send explained requests to the same endpoint, vs "
                "while the 4 others send plain ones (alternating rounds); on the endpoint as deployed (small requests "
                "scored on the event loop) and on the same server started with every request in its thread pool "
                "(`INLINE_MAX_BYTES = -1` patched in that child only):",
                ["model", "server", "plain p50 beside plain ms", "beside explained ms", "p50 ×",
                 "plain p99 beside plain ms", "beside explained ms", "p99 ×", "plain req/s beside plain",
                 "plain req/s beside explained", "explained req/s", "errors", "load 1-min"], rows)
    for k, e in ex.items():
        bench.headline(f"explain/{k}: {e['method']}, c1 p50 explained {e['c1']['explained']['p50_ms']} ms vs plain "
                       f"{e['c1']['plain']['p50_ms']} ms (goal <20 ms "
                       f"{'met' if e['goal_explained_p50_met'] else 'NOT met'}); plain c8 on the explained "
                       f"endpoint / a never-explained one {e['plain_after_explained']['c8_throughput_ratio']}×")


# ------------------------------------------------------------------------------ (b) capture


def captured_lines(p, endpoint: str) -> tuple[int, int]:
    """(lines, distinct eventIds) of everything captured for the endpoint so far."""
    lines, ids = 0, set()
    for key in (k for k in p.store.list(f"capture/{endpoint}/") if k.endswith(".jsonl")):
        for line in p.store.get_bytes(key).decode("utf-8").splitlines():
            if line.strip():
                lines += 1
                ids.add(json.loads(line)["eventMetadata"]["eventId"])
    return lines, len(ids)


def in_process_capture(p, model: str, body: bytes, work: Path, reps: int) -> dict:
    """Per request, in this process: the handler chain vs the capture work (the request's ``put`` plus its
    share of the writer thread's flush: format the SageMaker line, append it to the hour's file)."""
    from churn_core.backends.local.endpoint.capture_writer import CaptureWriter

    module, loaded = load_in_process(p, model, work / f"inproc-{model}")
    answer, answer_type = chain(module, loaded, body)
    answer = answer.encode() if isinstance(answer, str) else answer
    writer, batch = CaptureWriter(work / "inproc-capture", "inproc"), 100

    def capture() -> None:
        for _ in range(batch):
            writer.put("AllTraffic", body, "application/json", answer, answer_type)
        writer.flush()

    got = timeit({"handler chain": lambda: [chain(module, loaded, body) for _ in range(batch)],
                  "capture put + flush": capture}, max(5, reps // 10), warm=1)
    per = {k: round(v["median_ms"] / batch, 4) for k, v in got.items()}
    return {"per_request_ms": per, "capture_to_handler": ratio(per["capture put + flush"], per["handler chain"]),
            "written": writer.written}


def capture_model(bench: Bench, p, label: str, dataset: str, seed: bool, work: Path) -> dict:
    """Capture at 100 % vs off on one endpoint, c8, alternating rounds; every answered request captured once."""
    opts, model = bench.opts, f"bench-sf-{label}"
    body = request_bodies(p, dataset, model, seed)["plain"]
    ep = deploy(p, model, f"sf-{label}-cap")
    on, off = "capture 100 %", "capture off"

    @contextmanager
    def capture_set(name: str):
        p.set_capture(ep.name, 100 if name == on else 0)  # effective when it returns
        yield

    target = (port_of(ep), body, JSON, check_plain)
    # twice the rounds, each of seconds / rounds; the writer thread flushes every 0.2 s: 0.3 s settle keeps
    # that flush in its round's server CPU
    res = load_rounds({on: target, off: target}, 8, opts.rounds * 2, UNCAPPED, opts.seconds * 2, warmup=2,
                      server_pids={on: ep.server_pid, off: ep.server_pid}, around=capture_set, settle=0.3)
    p.set_capture(ep.name, 0)
    sent = res[on]["requests_sent"]
    deadline, lines, ids, stable = time.monotonic() + 20, -1, 0, 0
    while time.monotonic() < deadline:
        now_lines, ids = captured_lines(p, ep.name)
        stable, lines = (stable + 1 if now_lines == lines else 0), now_lines
        if lines >= sent and stable >= 2:
            break
        time.sleep(0.5)
    res.update(cpu_ratio=ratio(res[on]["server_cpu_ms_per_request"], res[off]["server_cpu_ms_per_request"]),
               throughput_ratio=ratio(res[on]["throughput_rps"], res[off]["throughput_rps"]),
               round_ratios=round_ratios(res[on], res[off], 3), p50_ratio=ratio(res[on]["p50_ms"], res[off]["p50_ms"]),
               requests_answered_with_capture_on=sent, captured_lines=lines, distinct_event_ids=ids,
               loadavg=loadavg())
    res.update(goal_throughput_met=res["throughput_ratio"] >= CAPTURE_GOAL, goal_count_met=lines == sent == ids)
    p.delete_endpoint(ep.name)
    res["in_process"] = in_process_capture(p, model, body, work, opts.inproc_reps)
    print(f"  capture {label}: on / off {res['throughput_ratio']}×; captured {lines} lines ({ids} distinct) for "
          f"{sent} requests; load {loadavg()[0]}", flush=True)
    return res


def capture_tables(bench: Bench, cap: dict) -> None:
    sides = ("capture 100 %", "capture off")
    bench.table("(b) Capture at 100 % vs capture off, same endpoint, concurrency 8, alternating rounds:",
                ROUNDS_HEADERS,
                [row for k, c in cap.items() for row in rounds_rows(k, {s: c[s] for s in sides}, "capture off")])
    bench.table("Every answered request captured once; per request in-process (batches of 100, interleaved):",
                ["model", "answered with capture on", "captured lines", "distinct eventIds", "goal ≥ 0.85×",
                 "count equal", "handler chain ms", "capture put + flush ms", "capture ÷ handler"],
                [[k, c["requests_answered_with_capture_on"], c["captured_lines"], c["distinct_event_ids"],
                  c["goal_throughput_met"], c["goal_count_met"], *c["in_process"]["per_request_ms"].values(),
                  c["in_process"]["capture_to_handler"]] for k, c in cap.items()])
    for k, c in cap.items():
        bench.headline(f"capture/{k}: 100 % / off c8 throughput {c['throughput_ratio']}× (goal ≥0.85 "
                       f"{'met' if c['goal_throughput_met'] else 'NOT met'}); {c['captured_lines']} lines for "
                       f"{c['requests_answered_with_capture_on']} requests")


# ------------------------------------------------------------------------------ (c) rollout under load


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
    records: list[tuple] = []  # (sent, done, status, variant, probability, error), list.append is atomic

    def record(sent: float, done: float, status: int, variant: str, data: bytes) -> None:
        answer = probability_of(json.loads(data)) if status == 200 else None
        records.append((sent, done, status, variant, answer, "" if status == 200 else data[:200].decode("latin-1")))

    with in_background(lambda stop: load(port, body, JSON, 8, UNCAPPED, opts.settle * 2 + 60, warmup=0, stop=stop,
                                          record=record)):
        time.sleep(opts.settle)
        t_start = time.perf_counter()
        ep = action()
        t_end = time.perf_counter()
        time.sleep(opts.settle)
    rec = sorted(records, key=lambda r: r[0])
    failed = [r for r in rec if r[2] != 200]
    rel = lambda t: round(t - t_start, 3)  # noqa: E731
    is_new = lambda r: (r[4], r[3]) in new  # noqa: E731
    is_old = lambda r: (r[4], r[3]) in old  # noqa: E731
    new_done = [r[1] for r in rec if r[2] == 200 and is_new(r)]
    old_done = [r[1] for r in rec if r[2] == 200 and is_old(r)]
    unknown = [r for r in rec if r[2] == 200 and not is_new(r) and not is_old(r)]
    sent_after = [r for r in rec if r[0] > t_end and r[2] == 200]
    result = {"what": what, "requests": len(rec), "failed": len(failed),
              "failed_examples": [r[5] or r[2] for r in failed[:5]], "duration_s": round(t_end - t_start, 3),
              "status_after": ep.status, "failure_reason": ep.failure_reason,
              "first_new_answer_s": rel(min(new_done)) if new_done else None,
              "last_old_answer_s": rel(max(old_done)) if old_done else None,
              "new_answers_before_call_returned": sum(1 for t in new_done if t < t_end),
              "old_answers_to_requests_sent_after_return": sum(1 for r in sent_after if is_old(r)),
              "answers_neither_old_nor_new": len(unknown), "before": window(rec, t_start - opts.settle + 0.5, t_start),
              "during": window(rec, t_start, t_end), "after": window(rec, t_end, t_end + opts.settle - 0.5),
              "loadavg": loadavg()}
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
    out["ratio_change_to_deploy"] = ratio(median(updates), out["peer_deploy_median"])
    out["failed_total"] = sum(c["failed"] for c in out["changes"])
    out["goal_zero_failed_met"] = out["failed_total"] == 0
    out["loadavg"] = loadavg()
    return out


# ------------------------------------------------------------------------------ (d) slow clients


HEAD = b"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"


def trickle(port: int, n: int, mode: str, seen: dict, interval: float = 0.1):
    """``n`` clients sending one byte every ``interval`` s: of their headers (``headers``) or of a body
    announced as 4,096 bytes (``body``). A client the server closes (or answers: 408) reconnects."""

    def connect() -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.sendall(HEAD if mode == "headers" else HEAD + b"Content-Length: 4096\r\n\r\n")
        return sock

    def loop(stop: threading.Event) -> None:
        socks = [connect() for _ in range(n)]
        pad = b"X-Pad: " + b"a" * 4000 if mode == "headers" else b" " * 4096
        i = 0
        try:
            while not stop.is_set():
                for sock in select.select(socks, [], [], 0)[0]:  # closed by the server, or answered: reconnect
                    try:
                        data = sock.recv(65536)
                    except OSError:
                        data = b""
                    if data:
                        status = data.split(b" ", 2)[1].decode("latin-1") if data.startswith(b"HTTP/") else "?"
                        seen["answers"][status] = seen["answers"].get(status, 0) + 1
                    else:
                        seen["closed"] += 1
                    sock.close()
                    socks[socks.index(sock)] = connect()
                for k, sock in enumerate(socks):
                    try:
                        sock.sendall(pad[(i + k) % len(pad):(i + k) % len(pad) + 1])
                    except OSError:
                        pass  # seen as readable/closed on the next pass
                i += 1
                stop.wait(interval)
        finally:
            for sock in socks:
                sock.close()

    return in_background(loop, settle=0.3)  # connected and trickling before the load starts


def ping(port: int, seen: dict):
    """GET /ping every 0.2 s on a fresh connection; latencies (ms) and failures into ``seen``."""

    def loop(stop: threading.Event) -> None:
        while not stop.is_set():
            t0 = time.perf_counter()
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("GET", "/ping")
                ok = conn.getresponse().status == 200
                conn.close()
            except OSError:
                ok = False
            if ok:
                seen["ping"].append((time.perf_counter() - t0) * 1000)
            else:
                seen["ping_failed"] += 1
            stop.wait(0.2)

    return in_background(loop)


def slow_section(bench: Bench, p, datasets: dict) -> dict:
    """Plain load at c8 while N+1 clients trickle headers or a body, against the same load without them."""
    from churn_core.backends.local.endpoint.app import PREDICT_THREADS

    opts, n = bench.opts, PREDICT_THREADS + 1
    body = request_bodies(p, datasets["reference"], "bench-sf-rf-reference", seed=True)["plain"]
    ep = deploy(p, "bench-sf-rf-reference", "sf-slow")
    port = port_of(ep)
    modes = ["no slow clients (peer)", f"{n} trickling headers", f"{n} trickling a body"]
    seen = {m: {"ping": [], "ping_failed": 0, "closed": 0, "answers": {}} for m in modes}

    @contextmanager
    def slow_clients(mode: str):
        kind = "headers" if "headers" in mode else "body" if "body" in mode else None
        with trickle(port, n, kind, seen[mode]) if kind else nullcontext(), ping(port, seen[mode]):
            yield

    got = load_rounds({m: (port, body, JSON, check_plain) for m in modes}, 8, opts.rounds, UNCAPPED,
                      opts.slow_seconds * opts.rounds, warmup=2, server_pids={m: ep.server_pid for m in modes},
                      around=slow_clients)
    still_alive = post(port, body)[0] == 200
    p.delete_endpoint(ep.name)
    for mode, v in got.items():
        s = seen[mode]
        v.update(ping_p50_ms=round(percentile(s["ping"], 50), 2) if s["ping"] else None,
                 ping_max_ms=round(max(s["ping"]), 2) if s["ping"] else None, pings=len(s["ping"]),
                 ping_failed=s["ping_failed"], slow_connections_closed_by_server=s["closed"],
                 slow_connections_answered=s["answers"])
        if mode != modes[0]:
            v["throughput_ratio"] = ratio(v["throughput_rps"], got[modes[0]]["throughput_rps"])
    out = {"slow_clients": n, "predict_threads": PREDICT_THREADS, "round_seconds": opts.slow_seconds, "modes": got,
           "serves_after": still_alive, "loadavg": loadavg()}
    bench.table(f"(d) {n} slow clients (N + 1, N = {PREDICT_THREADS} predict threads) trickling one byte per 0.1 s, "
                f"concurrency 8 plain load, {opts.slow_seconds:g} s rounds alternating with the same load without "
                f"them (serving after the slow clients: {still_alive}; load at the end {out['loadavg']}):",
                ROUNDS_HEADERS, rounds_rows("c8", got, modes[0]))
    bench.table("/ping every 0.2 s during those rounds, and what became of the slow connections:",
                ["clients", "/ping p50 ms", "/ping max ms", "/ping failed", "slow connections closed by server",
                 "slow connections answered"],
                [[k, v["ping_p50_ms"], v["ping_max_ms"], f"{v['ping_failed']} / {v['pings'] + v['ping_failed']}",
                  v["slow_connections_closed_by_server"],
                  ", ".join(f"{a}: {c}" for a, c in v["slow_connections_answered"].items()) or "—"]
                 for k, v in got.items()])
    bench.headline("slow clients: " + "; ".join(f"{k} {v.get('throughput_ratio', 1.0)}×" for k, v in got.items()))
    return out


def rollout_tables(bench: Bench, ro: dict) -> None:
    bench.table(f"(c) Changes under load (concurrency 8, {ro['workers']} workers; versions: "
                + ", ".join(f"v{k} = {v}" for k, v in ro["versions"].items())
                + f"). Times relative to the call; peer: `deploy_version` → InService of the same versions, "
                f"median {ro['peer_deploy_median']} s:",
                ["change", "call s", "÷ deploy", "failed / requests", "first new answer s", "last old answer s",
                 "old answers after return", "req/s before", "req/s during", "req/s after", "p99 before ms",
                 "p99 during ms", "max during ms", "load 1-min"],
                [[c["what"], c["duration_s"], ratio(c["duration_s"], ro["peer_deploy_median"], 2),
                  f"{c['failed']} / {c['requests']}", c["first_new_answer_s"], c["last_old_answer_s"],
                  c["old_answers_to_requests_sent_after_return"], c["before"]["rps"], c["during"]["rps"],
                  c["after"]["rps"], c["before"]["p99_ms"], c["during"]["p99_ms"], c["during"]["max_ms"],
                  c["loadavg"][0]] for c in ro["changes"]])
    bench.headline(f"rollout: {len(ro['changes'])} changes under c8 load, {ro['failed_total']} failed requests (goal 0 "
                   f"{'met' if ro['goal_zero_failed_met'] else 'NOT met'}); median change {ro['median_change_seconds']}"
                   f" s vs deploy {ro['peer_deploy_median']} s")


# ------------------------------------------------------------------------------ main

MODELS = (("rf-reference", "reference", "random_forest"), ("rf-categorical", "categorical", "random_forest"),
          ("gb-categorical", "categorical", "gradient_boosting"), ("lr-categorical", "categorical",
                                                                  "logistic_regression"))


def main(argv: list[str] | None = None) -> int:
    bench = Bench("serving_features", __doc__, {
        "only": ("", "comma-separated subset of: " + ", ".join(SECTIONS)), "trees": (100, "random forest trees"),
        "rounds": (4, "alternating rounds per comparison"), "requests": (2000, "max requests per target and level"),
        "seconds": (12.0, "max seconds per target and level (all rounds)"), "inproc_reps": 300,
        "updates": (3, "update_endpoint calls under load (back and forth)"),
        "settle": (2.5, "seconds of load before and after each change"), "rollout_workers": 2, "peer_deploys": 2,
        "pool_variant": (True, "the mixed load on a server scoring every request in its thread pool"),
        "slow_seconds": (4.0, "seconds per slow-client round")},
        {"rounds": 2, "requests": 300, "seconds": 4.0, "inproc_reps": 60, "updates": 1, "settle": 1.5,
         "peer_deploys": 1, "slow_seconds": 2.0}, argv)
    opts = bench.opts
    chosen = [s.strip() for s in opts.only.split(",") if s.strip()] or list(SECTIONS)
    if set(chosen) - set(SECTIONS):
        bench.parser.error(f"unknown section(s): {', '.join(sorted(set(chosen) - set(SECTIONS)))}")
    p = bench.platform(warm=True)
    work = bench.scratch("work-", dir=bench.home_dir)
    from churn_core.data.sample import make_subscription_sample

    label, data = reference_data()
    p.upload_dataset(label, data)
    p.upload_dataset("subscriptions", make_subscription_sample(7043))
    datasets = {"reference": label, "categorical": "subscriptions"}
    # explanations cover all four (three in a quick run); the other sections need the other three
    models = [m for m in MODELS if m[0] != "gb-categorical" or ("explain" in chosen and not opts.quick)]
    results: dict = {"datasets": datasets, "explain": {}}
    for name, data_key, algorithm in models:
        t0 = time.perf_counter()
        train(p, datasets[data_key], {"algorithm": algorithm, **({"n_estimators": opts.trees}
                                                                 if algorithm == "random_forest" else {})},
              f"bench-sf-{name}")
        print(f"  trained bench-sf-{name} in {time.perf_counter() - t0:.1f}s", flush=True)
        if "explain" in chosen:
            results["explain"][name] = explain_model(bench, p, name, datasets[data_key], data_key == "reference",
                                                     algorithm, work)
    if results["explain"]:
        explain_tables(bench, results["explain"])
    if "capture" in chosen:
        results["capture"] = {k: capture_model(bench, p, k, datasets[d], d == "reference", work)
                              for k, d in (("rf-reference", "reference"), ("rf-categorical", "categorical"))[
                                  :1 if opts.quick else 2]}
        capture_tables(bench, results["capture"])
    if "rollout" in chosen:
        results["rollout"] = rollout_section(p, datasets, opts)
        rollout_tables(bench, results["rollout"])
    if "slow" in chosen:
        results["slow"] = slow_section(bench, p, datasets)
    return bench.finish(**results)


if __name__ == "__main__":
    sys.exit(main())
