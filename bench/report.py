"""Render bench/results/*.json as Markdown tables (pasted into docs/benchmarks.md after a run).

    .venv/bin/python bench/report.py > /tmp/tables.md
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, fmt  # noqa: E402


def table(headers: list[str], rows: list[list]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(fmt(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def read(name: str) -> dict | None:
    path = RESULTS / f"bench_{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def yes(flag: bool | None) -> str:
    return "met" if flag else "**not met**"


def training(r: dict) -> list[str]:
    out = [f"### Training (`bench_training.py`, finished {r['finished_at']}, load at start "
           f"{r['machine']['loadavg_at_start']}, at end {r['loadavg_at_end']})", ""]
    rows = []
    for label, d in r["datasets"].items():
        pm, cm, bm = d["platform_median"], d.get("cold_median", {}), d["bare_median"]
        rows.append([f"{label} ({d['rows']} rows)", pm["seconds"], pm["observed_seconds"], cm.get("seconds", "—"),
                     bm["seconds"], d.get("ratio_platform_to_cold", "—"), d["ratio_platform_to_bare"],
                     pm["cpu_seconds"], bm["cpu_seconds"], d["cpu_ratio_platform_to_bare"], yes(d["goal_met"])])
    out.append(table(["dataset", "platform submit→Completed s", "observed by poller s",
                      "platform without warm process s (peer)", "bare script s (peer)", "platform / no warm",
                      "platform / bare", "platform CPU s", "bare CPU s", "CPU platform / bare", "goal ≤ 3 s"], rows))
    out.append("")
    rows = []
    for label, d in r["datasets"].items():
        pm, bm, ip = d["platform_median"], d["bare_median"], d["in_process"]
        rows += [
            [label, "queue + driver start (created_at → started_at)", pm["queue_and_driver_start"], ""],
            [label, "copy channels + fork train.py (before train())", pm["before_train_fn"], ""],
            [label, "train() incl. its lazy numpy/pandas/sklearn imports (`Done in`)", pm["done_in"], ""],
            [
                label,
                "train.py exit + packaging + catalog (last output → Completed)",
                pm["after_outputs_to_completed"],
                "",
            ],
            [label, "bare script: exit after its last output (interpreter teardown)", bm["exit_after_outputs"], ""],
            [label, "in-process, imports warm: fit only", ip["fit_seconds"], ip["fit_cpu_seconds"]],
            [
                label,
                "in-process, imports warm: train() = fit + evaluate + save",
                ip["train_fn_warm_seconds"],
                ip["train_fn_warm_cpu_seconds"],
            ],
            [label, "in-process: packaging (2 × tar.gz + 2 × SHA-256)", ip["packaging_seconds"], ""],
        ]
    st = r["startup"]
    if "warm_process" in r:
        rows += [
            [
                "—",
                "warm process start: interpreter + imports, once per code version",
                r["warm_process"]["seconds_to_ready"],
                "",
            ]
        ]
    rows += [
        ["—", "`python -c pass` (interpreter start)", st["interpreter"], st["interpreter_cpu"]],
        [
            "—",
            "train.py's imports (numpy, pandas, joblib, sklearn.*), net",
            st["train_imports_net"],
            st["train_imports_net_cpu"],
        ],
        [
            "—",
            "job driver's imports (churn_core.backends.local.job_driver …), net",
            st["driver_imports_net"],
            st["driver_imports_net_cpu"],
        ],
    ]
    if "teardown" in r:
        rows += [
            [
                "—",
                "interpreter teardown after the last line (libs loaded, forest fitted)",
                r["teardown"]["normal exit"],
                "",
            ],
            ["—", "  same, ending with `os._exit(0)`", r["teardown"]["os._exit(0)"], ""],
        ]
    out.append(table(["dataset", "part (medians)", "wall s", "CPU s"], rows))
    if r.get("train_profile"):
        out += ["", "cProfile of one in-process `train()` (imports warm), by cumulative time:", "", "```"]
        out += r["train_profile"] + ["```"]
    return out


def endpoint(r: dict) -> list[str]:
    d = r["deploy"]
    out = [
        f"### Endpoint (`bench_endpoint.py`, finished {r['finished_at']}, load at start "
        f"{r['machine']['loadavg_at_start']}, at end {r['loadavg_at_end']})",
        "",
        f"(a) Deploy → InService, median of {len(d['runs'])} (goal ≤ {d['goal_seconds']} s: {yes(d['goal_met'])})",
        "",
    ]
    rows = [
        ["`p.deploy(wait=True)` → InService", d["median_seconds"]],
        ["catalog created_at → in_service_at", d["median_catalog_seconds"]],
    ]
    rows += [[f"  {k}", v] for k, v in d.get("deploy_split_median", {}).items()]
    if "cold_deploy_median" in d:
        rows += [
            ["the same deploy without the warm process, `CHURN_WARM=0` (peer)", d["cold_deploy_median"]],
            ["deploy / deploy without the warm process", d["ratio_deploy_to_cold_deploy"]],
        ]
    if "warm_process" in r:
        rows += [
            ["warm process start: interpreter + imports, once per code version", r["warm_process"]["seconds_to_ready"]]
        ]
    rows += [
        ["bare model server (peer): spawn `python -m churn_core.backends.local.endpoint.server` → /ping 200",
         d["bare_server_start_median"]],
        ["deploy / bare server", d["ratio_deploy_to_bare_server"]],
        ["`delete_endpoint`", d["median_delete_seconds"]],
    ]
    rows += [[f"server start-up phase (fresh interpreter): {k}", v] for k, v in d["startup_phases_median"].items()]
    out.append(table(["what", "seconds"], rows))
    out += [
        "",
        "(b) Single-row requests (seed payload) and 1,000-row batches, ours vs `mlflow models serve`, "
        "same fitted pipeline, same worker count, alternating rounds:",
        "",
    ]
    rows = []
    for cfg in r["serving"]:
        for server in ("ours", "mlflow"):
            s = cfg[server]
            if not s.get("c1"):
                continue
            rows.append(
                [
                    cfg["workers"],
                    server,
                    s["c1"]["p50_ms"],
                    s["c1"]["p99_ms"],
                    s["c1"]["throughput_rps"],
                    s["c8"]["p50_ms"],
                    s["c8"]["p99_ms"],
                    s["c8"]["throughput_rps"],
                    s["c1"]["errors"] + s["c8"]["errors"],
                    s["c1"]["requests_ok"] + s["c8"]["requests_ok"],
                    s["batch_json"]["rows_per_s"],
                    s.get("batch_json_rows", {}).get("rows_per_s", "—"),
                    s["batch_csv"]["rows_per_s"],
                ]
            )
    out.append(
        table(
            [
                "workers",
                "server",
                "c1 p50 ms",
                "c1 p99 ms",
                "c1 req/s",
                "c8 p50 ms",
                "c8 p99 ms",
                "c8 req/s",
                "errors",
                "requests",
                "batch JSON rows/s",
                "batch `Input` rows/s",
                "batch CSV rows/s",
            ],
            rows,
        )
    )
    out += [
        "",
        'Batch JSON: ours = named records `{"instances": [{...}]}`, MLflow = `dataframe_split`; '
        'batch `Input` = ours with positional rows `{"Input": [[...]]}` (the same shape as dataframe_split).',
        "",
    ]
    rows = []
    for cfg in r["serving"]:
        if "c8_throughput_ratio" not in cfg:
            continue
        rows.append(
            [
                cfg["workers"],
                cfg.get("label_agreement"),
                cfg["mlflow"].get("startup_seconds"),
                cfg["c1_throughput_ratio"],
                cfg["c8_throughput_ratio"],
                ", ".join(str(x) for x in cfg.get("c8_round_throughput_ratios", [])),
                cfg["c1_p50_ratio"],
                cfg["c8_p50_ratio"],
                cfg["batch_json_ratio"],
                cfg["batch_json_rows_ratio"],
                cfg["batch_csv_ratio"],
                yes(cfg["goal_throughput_met"]),
                yes(cfg["goal_p50_met"]),
            ]
        )
    if rows:
        out.append(
            table(
                [
                    "workers",
                    "labels agree",
                    "MLflow start s",
                    "c1 req/s ×",
                    "c8 req/s ×",
                    "c8 × per round",
                    "c1 p50 ×",
                    "c8 p50 ×",
                    "batch JSON ×",
                    "batch Input ×",
                    "batch CSV ×",
                    "goal c8 ≥ 3×",
                    "goal c8 p50 ≤ ⅓",
                ],
                rows,
            )
        )
    if r.get("server_variants"):
        v = r["server_variants"]
        out += [
            "",
            f"(d) Our server with other settings, and the previous server ({v['workers']} workers, same model, "
            "alternating rounds):",
            "",
        ]
        out.append(
            table(
                ["variant", "c1 p50 ms", "c1 req/s", "c1 server CPU ms/req", "c8 p50 ms", "c8 p99 ms", "c8 req/s",
             "c8 server CPU ms/req", "errors"],
                [
                    [
                        k,
                        v["c1"][k]["p50_ms"],
                        v["c1"][k]["throughput_rps"],
                        v["c1"][k].get("server_cpu_ms_per_request", "—"),
                        v["c8"][k]["p50_ms"],
                        v["c8"][k]["p99_ms"],
                        v["c8"][k]["throughput_rps"],
                        v["c8"][k].get("server_cpu_ms_per_request", "—"),
                        v["c1"][k]["errors"] + v["c8"][k]["errors"],
                    ]
                    for k in v["c8"]
                ],
            )
        )
    ip = r["in_process"]
    out += ["", f"(c) In-process handler cost (no HTTP; interleaved calls; load {ip.get('loadavg')}):", ""]
    out.append(table(["single row", "median ms"], [[k, v["median_ms"]] for k, v in ip["single_row"].items()]))
    out.append("")
    out.append(table(["1,000 rows", "median ms"], [[k, v["median_ms"]] for k, v in ip["batch"].items()]))
    if "fast_path_max_abs_diff_vs_predict_proba" in ip:
        out += [
            "",
            f"max |probability − pipeline.predict_proba| of the fast path: "
            f"{ip['fast_path_max_abs_diff_vs_predict_proba']}",
        ]
    out += ["", "cProfile of our handler chain (single row), by self time:", "", "```"]
    out += ip["cprofile_handler_top_tottime"] + ["```"]
    return out


def load(r: dict) -> list[str]:
    lr = r["load"]
    out = [
        f"### Sustained load (`bench_load.py`, finished {r['finished_at']}, load at start "
        f"{r['machine']['loadavg_at_start']}, at end {r['loadavg_at_end']})",
        "",
    ]
    rows = [
        ["duration s", lr["seconds"]],
        ["concurrency", lr["concurrency"]],
        ["workers", r["options"]["workers"]],
        ["requests ok", lr["requests_ok"]],
        ["errors (goal 0)", f"{lr['errors']} ({yes(r['goal_errors_met'])})"],
        ["throughput req/s", lr["throughput_rps"]],
        ["p50 ms", lr["p50_ms"]],
        ["p99 ms", lr["p99_ms"]],
        ["max ms", lr["max_ms"]],
        ["first window req/s", r["first_window_rps"]],
        ["last window req/s", r["last_window_rps"]],
        ["last / first (peer: same run)", r["last_to_first_throughput_ratio"]],
        ["serving RSS at start MB (master + workers)", r["rss_start"]["total_mb"]],
        ["serving RSS at end MB", r["rss_end"]["total_mb"]],
        ["RSS growth MB (goal: flat)", f"{r['rss_growth_mb']} ({yes(r['goal_rss_flat_met'])})"],
        ["throughput per 5 s window", ", ".join(str(x) for x in r.get("throughput_series_rps_per_5s", []))],
        [
            "RSS / load1 samples (s: MB, load)",
            ", ".join(f"{s['t']}: {s['rss_mb']}, {s['load1']}" for s in lr.get("samples", [])),
        ],
    ]
    out.append(table(["what", "value"], rows))
    return out


def catalog(r: dict) -> list[str]:
    c = r["counts"]
    out = [
        f"### Catalog scale (`bench_catalog.py`, finished {r['finished_at']}, load at start "
        f"{r['machine']['loadavg_at_start']}, at end {r['loadavg_at_end']})",
        "",
        f"Full catalog: {c['jobs']} jobs ({c['models']} models), {c['endpoints']} Failed endpoint rows, "
        f"{c['events']} events, inserted in {r['insert_seconds']} s, plus {r['options']['live']} real InService "
        "endpoint(s). Peers: an empty catalog, and the same state with only the one real dataset and job. "
        f"AppTest page run, median of {r['options']['runs']} after a warm-up:",
        "",
    ]
    out.append(
        table(
            [
                "page",
                "empty s (peer)",
                "1 job s (peer)",
                "full s",
                "full / empty",
                "full / 1 job",
                "first run (full) s",
                "goal ≤ 0.3 s",
            ],
            [
                [
                    k,
                    v["empty"]["median_s"],
                    v.get("one_job", {}).get("median_s"),
                    v["full"]["median_s"],
                    v["ratio_full_to_empty"],
                    v.get("ratio_full_to_one_job"),
                    v["full"]["first_run_s"],
                    yes(v["goal_met"]),
                ]
                for k, v in r["pages"].items()
            ],
        )
    )
    out.append("")
    out.append(
        table(
            ["live-table call", "empty ms", "full ms", "full / empty"],
            [
                [k, r["refresh_ms"]["empty"][k], v, round(v / r["refresh_ms"]["empty"][k], 2)]
                for k, v in r["refresh_ms"]["full"].items()
            ],
        )
    )
    if r.get("figures_ms"):
        out += [
            "",
            "Chart builders from app/widgets.py (build + `to_json`) next to minimal graph_objects versions:",
            "",
        ]
        out.append(table(["builder", "median ms"], [[k, v] for k, v in r["figures_ms"].items()]))
    if r.get("catalog_reads_ms"):
        out += [""]
        out.append(table(["catalog read", "median ms"], [[k, v] for k, v in r["catalog_reads_ms"].items()]))
    for page, prof in r.get("profiles_full_catalog", {}).items():
        out += [
            "",
            f"Profile of one `{page}` page run on the full catalog ({prof['profiled_run_s']} s under cProfile), "
            "project functions by cumulative time:",
            "",
            "```",
        ]
        out += prof["project_functions_by_cumtime"][:10] + ["```"]
    return out


def serving_features(r: dict) -> list[str]:
    out = [f"### Serving features (`bench_serving_features.py`, finished {r['finished_at']}, load at start "
           f"{r['machine']['loadavg_at_start']}, at end {r['loadavg_at_end']})", ""]
    if r.get("explain"):
        out += ["(a) Explained (`\"explain\": 3`) vs plain single rows on the same endpoint, alternating rounds:", ""]
        rows = []
        for label, e in r["explain"].items():
            rows.append([label, e["method"], e["c1"]["plain"]["p50_ms"], e["c1"]["explained"]["p50_ms"],
                         e["c1"]["explained"]["p99_ms"], e["c1_p50_ratio"], e["c1"]["plain"]["throughput_rps"],
                         e["c1"]["explained"]["throughput_rps"], e["c8"]["plain"]["throughput_rps"],
                         e["c8"]["explained"]["throughput_rps"], e["c8_throughput_ratio"],
                         e["c8"]["plain"].get("server_cpu_ms_per_request", "—"),
                         e["c8"]["explained"].get("server_cpu_ms_per_request", "—"),
                         e["c1"]["plain"]["errors"] + e["c1"]["explained"]["errors"] + e["c8"]["plain"]["errors"]
                         + e["c8"]["explained"]["errors"], e["c1"]["explained"]["loadavg"][0],
                         yes(e["goal_explained_p50_met"])])
        out.append(table(["model", "method", "c1 p50 plain ms", "c1 p50 explained ms", "c1 p99 explained ms",
                          "c1 p50 ×", "c1 req/s plain", "c1 req/s explained", "c8 req/s plain",
                          "c8 req/s explained", "c8 req/s ×", "c8 server CPU ms/req plain",
                          "c8 server CPU ms/req explained", "errors", "load 1-min", "goal p50 < 20 ms"], rows))
        out += ["", "Plain requests afterwards: the endpoint that served explained requests vs a second endpoint of "
                "the same model that never did (alternating rounds of a fixed time), and the serving RSS (MB, "
                "master + worker) of both before → after the explained requests:", ""]
        rows = []
        for label, e in r["explain"].items():
            a = e["plain_after_explained"]
            rows.append([label, a["c1"]["served explained"]["throughput_rps"],
                         a["c1"]["never explained"]["throughput_rps"], a["c1_throughput_ratio"],
                         a["c8"]["served explained"]["throughput_rps"], a["c8"]["never explained"]["throughput_rps"],
                         a["c8_throughput_ratio"],
                         a["c8"]["served explained"].get("server_cpu_ms_per_request", "—"),
                         a["c8"]["never explained"].get("server_cpu_ms_per_request", "—"),
                         ", ".join(str(round(x / y, 2)) for x, y in zip(a["c8"]["served explained"]["rounds_rps"],
                                                                        a["c8"]["never explained"]["rounds_rps"],
                                                                        strict=True)),
                         f"{a['rss_mb_before']['explained endpoint']} → {a['rss_mb_after']['explained endpoint']}",
                         f"{a['rss_mb_before']['never-explained endpoint']} → "
                         f"{a['rss_mb_after']['never-explained endpoint']}", a["c8"]["never explained"]["loadavg"][0]])
        out.append(table(["model", "c1 plain req/s, explained ep", "c1 never-explained ep", "c1 ×",
                          "c8 plain req/s, explained ep", "c8 never-explained ep", "c8 ×",
                          "c8 CPU ms/req explained ep", "c8 CPU ms/req never-explained ep", "c8 × per round",
                          "RSS explained ep", "RSS never-explained ep", "load 1-min"], rows))
        out += ["", "Plain requests (4 clients) while 4 other clients send explained requests to the same endpoint, "
                "vs while the 4 others send plain ones (alternating rounds); on the endpoint as deployed (small "
                "requests scored on the event loop) and on the same server started with every request in its "
                "thread pool (`INLINE_MAX_BYTES = -1` patched in that child only):", ""]
        rows = []
        for label, e in r["explain"].items():
            for server, m in (("as deployed", e["mixed"]), ("all in the pool", e.get("mixed_all_in_pool"))):
                if not m:
                    continue
                peer, mixed = m["plain beside plain (peer)"], m["plain beside explained"]
                rows.append([label, server, peer["plain_p50_ms"], mixed["plain_p50_ms"], m["plain_p50_ratio"],
                             peer["plain_p99_ms"], mixed["plain_p99_ms"], m["plain_p99_ratio"], peer["plain_rps"],
                             mixed["plain_rps"], mixed["other_rps"], peer["errors"] + mixed["errors"],
                             m["loadavg"][0]])
        out.append(table(["model", "server", "plain p50 beside plain ms", "beside explained ms", "p50 ×",
                          "plain p99 beside plain ms", "beside explained ms", "p99 ×", "plain req/s beside plain",
                          "plain req/s beside explained", "explained req/s", "errors", "load 1-min"], rows))
        out += ["", "In-process handler chain (input_fn → predict_fn → output_fn, no HTTP, interleaved):", ""]
        rows = [[label, e["in_process"]["plain"]["median_ms"], e["in_process"]["explained"]["median_ms"],
                 e["in_process"]["explained"]["p90_ms"],
                 e["in_process"]["first explained call (builds + checks the explainer) ms"]]
                for label, e in r["explain"].items()]
        out.append(table(["model", "plain median ms", "explained median ms", "explained p90 ms",
                          "first explained call ms"], rows))
    if r.get("capture"):
        out += ["", "(b) Capture at 100 % vs capture off, same endpoint, concurrency 8, alternating rounds:", ""]
        rows = []
        for label, c in r["capture"].items():
            on, off = c["capture 100 %"], c["capture off"]
            rows.append([label, on["throughput_rps"], off["throughput_rps"], c["throughput_ratio"],
                         ", ".join(str(x) for x in c["round_ratios"]), on.get("server_cpu_ms_per_request", "—"),
                         off.get("server_cpu_ms_per_request", "—"), c.get("cpu_ratio", "—"), on["p50_ms"],
                         off["p50_ms"], on["p99_ms"],
                         off["p99_ms"], on["errors"] + off["errors"], c["requests_answered_with_capture_on"],
                         c["captured_lines"], c["distinct_event_ids"], c["loadavg"][0],
                         yes(c["goal_throughput_met"]), yes(c["goal_count_met"])])
        out.append(table(["model", "on req/s", "off req/s", "on / off", "per round", "on server CPU ms/req",
                          "off server CPU ms/req", "CPU on / off", "on p50 ms", "off p50 ms",
                          "on p99 ms", "off p99 ms", "errors", "answered with capture on", "captured lines",
                          "distinct eventIds", "load 1-min", "goal ≥ 0.85×", "count equal"], rows))
        for label, c in r["capture"].items():
            if c.get("in_process"):
                per = c["in_process"]["per_request_ms"]
                out += ["", f"In-process per request ({label}, batches of 100, interleaved): handler chain "
                        f"{per['handler chain']} ms, capture `put` + its share of the writer's flush "
                        f"{per['capture put + flush']} ms ({c['in_process']['capture_to_handler']}× the handler)."]
    if r.get("rollout"):
        ro = r["rollout"]
        out += ["", f"(c) Changes under load (concurrency 8, {ro['workers']} workers; versions: "
                + ", ".join(f"v{k} = {v}" for k, v in ro["versions"].items())
                + f"). Times relative to the call; peer: `deploy_version` → InService of the same versions, "
                f"median {ro['peer_deploy_median']} s:", ""]
        rows = []
        for c in ro["changes"]:
            rows.append([c["what"], c["duration_s"], round(c["duration_s"] / ro["peer_deploy_median"], 2),
                         f"{c['failed']} / {c['requests']}", c["first_new_answer_s"], c["last_old_answer_s"],
                         c["old_answers_to_requests_sent_after_return"], c["before"]["rps"], c["during"]["rps"],
                         c["after"]["rps"], c["before"]["p99_ms"], c["during"]["p99_ms"], c["during"]["max_ms"],
                         c["loadavg"][0]])
        out.append(table(["change", "call s", "÷ deploy", "failed / requests", "first new answer s",
                          "last old answer s", "old answers after return", "req/s before", "req/s during",
                          "req/s after", "p99 before ms", "p99 during ms", "max during ms", "load 1-min"], rows))
    if r.get("slow"):
        sl = r["slow"]
        out += ["", f"(d) {sl['slow_clients']} slow clients (N + 1, N = {sl['predict_threads']} predict threads) "
                f"trickling one byte per 0.1 s, concurrency 8 plain load, {sl['round_seconds']:g} s rounds "
                "alternating with the same load without them:", ""]
        rows = [[k, v["throughput_rps"], v.get("throughput_ratio", 1.0), ", ".join(str(x) for x in v["rounds_rps"]),
                 v.get("server_cpu_ms_per_request", "—"), v["p50_ms"], v["p99_ms"], v["errors"], v["ping_p50_ms"],
                 v["ping_max_ms"],
                 f"{v['ping_failed']} / {v['pings'] + v['ping_failed']}", v["slow_connections_closed_by_server"],
                 ", ".join(f"{a}: {n}" for a, n in v["slow_connections_answered"].items()) or "—"]
                for k, v in sl["modes"].items()]
        out.append(table(["clients", "req/s", "× without", "per round", "server CPU ms/req", "p50 ms", "p99 ms",
                          "errors",
                          "/ping p50 ms", "/ping max ms", "/ping failed", "slow connections closed by server",
                          "slow connections answered"], rows))
        out += ["", f"Serving after the slow clients: {'yes' if sl['serves_after'] else '**no**'}; "
                f"load at the end {sl['loadavg']}."]
    return out


def main() -> int:
    sections = []
    for name, render in (("training", training), ("endpoint", endpoint), ("load", load), ("catalog", catalog),
                         ("serving_features", serving_features)):
        data = read(name)
        if data is not None:
            sections += render(data) + [""]
    print("\n".join(sections))
    return 0


if __name__ == "__main__":
    sys.exit(main())
