"""Run inside bench/.mlflow-venv: save our fitted scikit-learn pipeline as an MLflow model.

    bench/.mlflow-venv/bin/python bench/mlflow_export.py <extracted model dir> <mlflow model path> [predict_proba]

The model directory is the extracted model.tar.gz of a completed job whose SHA-256 the caller
(bench_endpoint.py) has already checked against the catalog: model.joblib holds
{"pipeline": Pipeline(ColumnTransformer, RandomForestClassifier), "schema": ..., "format_version": 1}
(see entry/train.py, train() and model_fn()). MLflow then serves exactly that fitted pipeline.
"""

from __future__ import annotations

import json
import os
import sys


def main() -> int:
    model_dir, target = sys.argv[1], sys.argv[2]
    predict_fn = sys.argv[3] if len(sys.argv) > 3 else None  # "predict_proba": pyfunc answers probabilities
    import joblib
    import mlflow.sklearn
    import sklearn

    loaded = joblib.load(os.path.join(model_dir, "model.joblib"))
    pipeline = loaded["pipeline"] if isinstance(loaded, dict) else loaded
    final = pipeline.steps[-1][1]
    if hasattr(final, "n_jobs"):
        final.n_jobs = 1  # as our server does (model_fn): no thread-pool dispatch per request
    # MLflow 3 saves with skops by default and asks which non-standard types to trust; these are
    # the ones a RandomForest pipeline holds. We produced the file ourselves (and checked its SHA-256).
    trusted = ["numpy.dtype", "sklearn.tree._tree.Tree"]
    try:
        mlflow.sklearn.save_model(pipeline, target, skops_trusted_types=trusted,
                                  **({"pyfunc_predict_fn": predict_fn} if predict_fn else {}))
        fmt = "skops"
    except Exception as err:  # older/newer MLflow: fall back to cloudpickle
        import shutil

        shutil.rmtree(target, ignore_errors=True)
        sys.stderr.write(f"skops save failed ({type(err).__name__}); using cloudpickle\n")
        mlflow.sklearn.save_model(pipeline, target, serialization_format="cloudpickle",
                                  **({"pyfunc_predict_fn": predict_fn} if predict_fn else {}))
        fmt = "cloudpickle"
    print(json.dumps({"saved": target, "format": fmt, "sklearn": sklearn.__version__, "mlflow": mlflow.__version__,
                      "steps": [name for name, _ in pipeline.steps], "n_jobs": getattr(final, "n_jobs", None)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
