"""Reasons on whole files: a transform WITH each line's top reason against the same transform without.

    .venv/bin/python bench/bench_reasons.py [--rows 100000] [--explain-rows 300] [--budget-s 1500] [--quick]

Data: ``make_subscription_sample`` (a customerID, 16 text categories, 3 numbers with blanks), 7,043 rows to
train two models through the platform: the form's default random forest (100 trees, unlimited depth) and
a depth-limited gradient boosting (100 trees, max_depth 3); a separate file of ``--rows`` customers to
score (bench_transform.py's scoring file). Every explained line gets exact path-dependent TreeSHAP with
one-hot columns grouped per original column -- the one method every path uses (issue 24).

Per model, one after the other on the same file: the transform without reasons, then with them
(``p.start_transform(..., reasons=True)``), default workers, wall seconds to Completed; the ratio is the
headline (goal ≤ 5×; reported either way). When the explained transform is estimated (from the in-process
per-row cost below) to exceed ``--budget-s``, it runs on the first rows that fit the budget instead and
the full-file figure is extrapolated linearly (per-row cost is flat in the number of rows: rows are
explained in bounded blocks); the table says so.

In-process, on ``--explain-rows`` encoded rows: our TreeSHAP's cost per row, and ``shap.TreeExplainer``
(path-dependent, its C++ extension) on the same model and rows when shap is installed (a test-only
dependency); with one-hot columns shap answers per encoded column, so only the time is compared.
"""

from __future__ import annotations

import io
import time

from bench_transform import run_transform, scoring_file
from harness import Bench, load_in_process, ratio, train

TRAIN_ROWS = 7043
GOAL = 5.0
MODELS = {"rf-default": {"algorithm": "random_forest"},
          "gb-depth3": {"algorithm": "gradient_boosting", "max_depth": 3, "n_estimators": 100}}


def encoded_rows(model: dict, data: bytes, rows: int):
    """The first ``rows`` customers of ``data`` as the model sees them (typed, imputed, one-hot)."""
    import numpy as np
    import pandas as pd

    from churn_core.paths import entry_module

    explanations = entry_module("explanations")
    schema_reader = entry_module("dataset_schema")
    features = [f["name"] for f in model["schema"]["features"]]
    table = schema_reader.read_text_table(io.BytesIO(data)).head(rows)[features]
    for f in model["schema"]["features"]:
        if f["kind"] == "numeric":
            table[f["name"]] = pd.to_numeric(table[f["name"]].str.strip().replace("", np.nan))
    return explanations._dense(model["pipeline"].named_steps["pre"].transform(table))


def per_row_cost(model: dict, X) -> dict:
    """Seconds per row: our contributions, and shap.TreeExplainer's when shap is installed."""
    import numpy as np

    from churn_core.paths import entry_module

    explainer = entry_module("explanations").explainer_for(model)
    started = time.perf_counter()
    ours = explainer.contributions(X)
    out = {"rows": len(X), "ours_ms_per_row": round((time.perf_counter() - started) / len(X) * 1e3, 3),
           "method": explainer.method,
           "additivity": float(np.abs(explainer.base + ours.sum(axis=1) - explainer.model_output(X)).max())}
    try:
        import shap
    except ImportError:
        out["shap_ms_per_row"] = None
        return out
    reference = shap.TreeExplainer(model["pipeline"].steps[-1][1], feature_perturbation="tree_path_dependent")
    X32 = X.astype(np.float32).astype(np.float64)
    started = time.perf_counter()
    reference.shap_values(X32, check_additivity=False)
    out["shap_ms_per_row"] = round((time.perf_counter() - started) / len(X) * 1e3, 3)
    out["ours_over_shap"] = ratio(out["ours_ms_per_row"], out["shap_ms_per_row"], 2)
    return out


def main(argv: list[str] | None = None) -> int:
    bench = Bench("reasons", __doc__, {"rows": 100_000, "explain_rows": 300, "budget_s": 1500.0},
                  {"rows": 5_000, "explain_rows": 100, "budget_s": 300.0}, argv)
    opts = bench.opts
    p = bench.platform(warm=True)
    work = bench.scratch("bench-reasons-work-")
    from churn_core.data.sample import make_subscription_sample

    p.upload_dataset("subs", make_subscription_sample(TRAIN_ROWS, seed=11))
    data = scoring_file(opts.rows, 32)
    key = "scoring/reasons/customers.csv"
    p.store.put_bytes(key, data)
    results, rows = {}, []
    for name, hyper in MODELS.items():
        print(f"training {name} {hyper} on {TRAIN_ROWS:,} rows ...", flush=True)
        train(p, "subs", hyper, name)
        _, model = load_in_process(p, name, work / name)
        cost = per_row_cost(model, encoded_rows(model, data, opts.explain_rows))
        print(f"{name}: in-process {cost}", flush=True)
        plain = run_transform(p, name, key)
        estimate = cost["ours_ms_per_row"] / 1e3 * opts.rows / max(1, plain["workers"])
        explained_rows, explained_key = opts.rows, key
        if estimate > opts.budget_s:
            explained_rows = max(1000, int(opts.rows * opts.budget_s / estimate) // 1000 * 1000)
            explained_key = f"scoring/reasons/first-{explained_rows}.csv"
            p.store.put_bytes(explained_key, b"\n".join(data.split(b"\n")[:explained_rows + 1]) + b"\n")
        print(f"{name}: plain {plain['seconds']} s; with reasons on {explained_rows:,} rows "
              f"(estimated {estimate:.0f} s for all) ...", flush=True)
        explained = run_transform(p, name, explained_key, reasons=True)
        full = explained["seconds"] * opts.rows / explained_rows
        over = round(full / plain["seconds"], 2)
        results[name] = {"plain": plain, "explained": explained, "explained_rows": explained_rows,
                         "explained_seconds_for_all_rows": round(full, 1), "ratio": over, "per_row": cost}
        rows.append([name, f"{opts.rows:,}", plain["seconds"],
                     f"{explained['seconds']}" + ("" if explained_rows == opts.rows else
                                                   f" on {explained_rows:,} rows → {full:.0f} extrapolated"),
                     f"**{over}×**", "met" if over <= GOAL else "not met", cost["ours_ms_per_row"],
                     cost.get("shap_ms_per_row"), explained["peak_rss_mb"]])
        bench.headline(f"reasons {name}: {over}× the plain transform ({opts.rows:,} rows; goal ≤ {GOAL}×), "
                       f"{cost['ours_ms_per_row']} ms/row vs shap {cost.get('shap_ms_per_row')} ms/row")
    bench.table(f"Transform of {opts.rows:,} customers with each line's top reason vs without",
                ["model", "rows", "plain s", "with reasons s", "ratio", f"goal ≤ {GOAL}×", "ours ms/row (1 core)",
                 "shap ms/row (1 core)", "peak RSS MB (reasons)"], rows)
    return bench.finish(results=results)


if __name__ == "__main__":
    raise SystemExit(main())
