"""The peers of bench_transform.py: scoring a whole CSV the way a data scientist would, one process.

    python bench/transform_peers.py plain  <model dir> <input.csv> <output.csv> <threshold>
        (the app's venv) joblib.load → pd.read_csv → pipeline.predict_proba → to_csv
    bench/.mlflow-venv/bin/python bench/transform_peers.py pyfunc <mlflow model> <input.csv> <output.csv> <threshold>
        (MLflow's venv) mlflow.pyfunc.load_model → pd.read_csv → model.predict (predict_proba) → to_csv

``<model dir>`` is the extracted model.tar.gz of the job (its SHA-256 checked by the caller); the MLflow
model is the same fitted pipeline saved with mlflow.sklearn (bench/mlflow_export.py). Both read the file
with pandas' defaults (an empty cell is missing) and write ``customerID,churn_probability,predicted_churn``.
The last line printed is JSON: seconds spent in the script after its imports, peak RSS.
"""

from __future__ import annotations

import json
import resource
import sys
import time


def main() -> int:
    mode, model, source, target, threshold = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5])
    import pandas as pd

    if mode == "plain":
        import joblib
    elif mode == "pyfunc":
        import mlflow.pyfunc
    else:
        raise SystemExit(f"unknown mode {mode}")
    imported = time.perf_counter()
    if mode == "plain":
        loaded = joblib.load(f"{model}/model.joblib")
        features = [f["name"] for f in loaded["schema"]["features"]]
        frame = pd.read_csv(source)
        proba = loaded["pipeline"].predict_proba(frame[features])[:, 1]
    else:
        loaded = mlflow.pyfunc.load_model(model)
        frame = pd.read_csv(source)
        proba = loaded.predict(frame)[:, 1]  # saved with pyfunc_predict_fn="predict_proba"
    out = pd.DataFrame({"customerID": frame["customerID"], "churn_probability": proba,
                        "predicted_churn": (proba > threshold).astype(int)})
    out.to_csv(target, index=False)
    print(json.dumps({"seconds_after_imports": round(time.perf_counter() - imported, 3),
                      "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
