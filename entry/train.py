"""Churn model training script and inference handlers (SageMaker script mode).

The whole of ``entry/`` is the model code of the project and the source directory shipped to
SageMaker; it imports nothing from the project and runs unchanged in two places: the SageMaker
SKLearn 1.2-1 container (Python 3.9, scikit-learn 1.2, an older pandas) and the local backend
(a forked child with the same SM_* environment, and the local model server).

This file is the contract. Training:  ``python train.py --algorithm random_forest ...`` reads
every *.csv in SM_CHANNEL_TRAIN (and SM_CHANNEL_TEST), types it with the dataset schema the
upload stored in the train channel (``dataset-schema.json``; inferred for a channel without
one), fits the pipeline and writes model.joblib, schema.json, metrics.json and evaluation.json
into SM_MODEL_DIR (metrics and evaluation also into SM_OUTPUT_DATA_DIR), printing metrics as
``name=value`` lines. A bad hyperparameter or unusable data exits 1 with one ``ERROR:`` line.

Serving: ``model_fn``, ``input_fn``, ``predict_fn``, ``output_fn``; a bad request raises
``InvalidInput`` (a ValueError with ``status_code``). Parsing lives in ``request_parser``, typing
in ``dataset_schema``, the pipeline in ``model_pipeline``, the fast path in ``fast_forest``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from typing import Any, List, Optional, Tuple

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:  # the sibling modules, however this file was loaded (script, by path, container)
    sys.path.insert(0, _HERE)

from container_env import THRESHOLD_ENV, VARIANT_ENV  # noqa: E402
import algorithms  # noqa: E402
import dataset_schema  # noqa: E402
import table_scoring  # noqa: E402
from dataset_schema import SchemaError  # noqa: E402
from request_parser import (MAX_ROWS_PER_REQUEST, CheckedRows, InvalidInput, ParsedRequest,  # noqa: E402,F401
                            check_rows, choose_accept, compile_schema, json_ready, parse_body)

THRESHOLD = 0.5
MODEL_FILE = "model.joblib"
SCHEMA_FILE = "schema.json"
FORMAT_VERSION = 1


class TrainingError(Exception):
    """A problem the user can fix (a hyperparameter, the data). Printed as ``ERROR: <message>``."""


def _log(message: str) -> None:
    print(message, flush=True)


# --------------------------------------------------------------------------- hyperparameters


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise TrainingError("bad command line: %s." % message.rstrip("."))


def _unquote(value: Any) -> str:
    text = "" if value is None else str(value).strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1].strip()
    return text


def _whole(name: str, raw: Any, minimum: int) -> int:
    text = _unquote(raw)
    try:
        number = float(text)
    except ValueError:
        number = float("nan")
    if not math.isfinite(number) or number != int(number) or int(number) < minimum:
        raise TrainingError("%s must be a whole number >= %d (got %s)." % (name, minimum, text or "nothing"))
    return int(number)


def _positive_float(name: str, raw: Any) -> float:
    text = _unquote(raw)
    try:
        number = float(text)
    except ValueError:
        number = float("nan")
    if not math.isfinite(number) or number <= 0:
        raise TrainingError("%s must be a number > 0 (got %s)." % (name, text or "nothing"))
    return number


def _option(spec: "algorithms.Option", raw: Any) -> Any:
    """One option's value by its rule in the registry (``algorithms.OPTIONS``)."""
    text = _unquote(raw)
    if spec.rule == "whole":
        number = _whole(spec.name, raw, spec.minimum)
        if spec.maximum is not None and number > spec.maximum:
            raise TrainingError("%s must be at most %d (got %d)." % (spec.name, spec.maximum, number))
        return number
    if spec.rule == "optional_whole":
        return None if text.lower() in ("", "none", "null") else _whole(spec.name, text, spec.minimum)
    if spec.rule == "positive":
        return _positive_float(spec.name, raw)
    if spec.rule == "choice":
        if text.lower() not in ("", "none", "null") + spec.choices:
            raise TrainingError("%s must be %s (got %s)." % (spec.name, " or ".join(("none",) + spec.choices), text))
        return text.lower() if text.lower() in spec.choices else None
    if raw is not None and not text:  # "column": the target, when the command line names it
        raise TrainingError("%s must name the column to predict (got nothing)." % spec.name)
    return None if raw is None else text


def parse_hyperparameters(argv: Optional[List[str]] = None) -> Tuple[argparse.Namespace, List[str]]:
    """Parse and validate the command line; raises TrainingError with a readable message.

    An option given without a value (what the SageMaker toolkit makes of a JSON null) means "unset".
    """
    env = os.environ.get
    parser = _Parser(description="Train a churn model (SageMaker script mode).", add_help=True)

    def option(*names: str, default: Any) -> None:
        parser.add_argument(*names, dest=names[0][2:].replace("-", "_"), default=default, nargs="?", const="")

    option("--algorithm", default="random_forest")
    for spec in algorithms.OPTIONS:
        option(*spec.flags, default=spec.default)
    parser.add_argument("--model-dir", "--model_dir", dest="model_dir", default=env("SM_MODEL_DIR", "model"))
    parser.add_argument("--train", dest="train", default=env("SM_CHANNEL_TRAIN", ""))
    parser.add_argument("--test", dest="test", default=env("SM_CHANNEL_TEST", ""))
    parser.add_argument("--output-data-dir", "--output_data_dir", dest="output_data_dir",
                        default=env("SM_OUTPUT_DATA_DIR", ""))
    args, unknown = parser.parse_known_args(argv)

    algorithm = _unquote(args.algorithm).lower().replace("-", "_").replace(" ", "_") or "random_forest"
    if algorithms.get(algorithm) is None:
        raise TrainingError("algorithm must be one of %s (got %s)."
                            % (", ".join(algorithms.names()), _unquote(args.algorithm)))
    args.algorithm = algorithm
    for spec in algorithms.OPTIONS:
        setattr(args, spec.name, _option(spec, getattr(args, spec.name)))
    return args, unknown


# --------------------------------------------------------------------------- training


def _dataset_schema(args: argparse.Namespace, train_df) -> dict:
    """The upload's schema from the train channel; for a channel without one, the same rules inferred."""
    schema = dataset_schema.load_schema_file(args.train)
    if schema is not None:
        if args.target and args.target != schema["target"]:
            raise TrainingError("--target %s disagrees with the dataset schema, whose target is %s; drop --target."
                                % (args.target, schema["target"]))
        if schema["target"] not in train_df.columns:
            raise TrainingError("the target column %s is not in the train data." % schema["target"])
        return schema
    target = args.target or "Churn"
    if target not in train_df.columns:
        raise TrainingError("the target column %s is not in the train data; its columns are: %s."
                            % (target, ", ".join(map(str, train_df.columns))))
    schema = dataset_schema.infer_schema(train_df, target)
    if schema["dropped"]:
        _log("Ignoring %s with no values: %s"
             % ("a column" if len(schema["dropped"]) == 1 else "columns", ", ".join(schema["dropped"])))
    return schema


def train(args: argparse.Namespace) -> dict:
    started = time.time()
    import numpy as np

    import explanations
    import fitting
    import model_evaluation
    import model_pipeline

    _log("Loading data...")
    train_df = dataset_schema.read_channel(args.train, "train")
    if train_df is None:
        raise TrainingError("no train channel: set SM_CHANNEL_TRAIN or pass --train <folder with .csv files>.")
    schema = _dataset_schema(args, train_df)
    target, features = schema["target"], [f["name"] for f in schema["features"]]
    if not features:
        raise TrainingError("the train data has no feature columns besides the target %s." % target)
    y_train, positive_label = dataset_schema.encode_target(train_df[target], target, "train")
    x_train = dataset_schema.typed_features(train_df, schema, "train")
    for name in features:  # e.g. a column of blanks only once stripped
        if x_train[name].isna().all():
            raise TrainingError("the feature column %s has no usable values; drop it or fill it." % name)
    test_df = dataset_schema.read_channel(args.test, "test")
    if test_df is None:
        from sklearn.model_selection import train_test_split

        _log("No test channel: holding out 25% of the train data for evaluation.")
        stratify = y_train if np.bincount(y_train, minlength=2).min() >= 2 else None
        idx_train, idx_test = train_test_split(np.arange(len(x_train)), test_size=0.25,
                                               random_state=args.random_state, stratify=stratify)
        x_test, y_test = x_train.iloc[idx_test], y_train[idx_test]
        x_train, y_train = x_train.iloc[idx_train], y_train[idx_train]
    else:
        if target not in test_df.columns:
            raise TrainingError("the target column %s is not in the test data." % target)
        y_test, _ = dataset_schema.encode_target(test_df[target], target, "test")
        x_test = dataset_schema.typed_features(test_df, schema, "test")
    if len(np.unique(y_train)) < 2:
        raise TrainingError("the train data has only one class in %s; a churn model needs both churned and "
                            "retained customers." % target)
    numeric = [f["name"] for f in schema["features"] if f["kind"] == "numeric"]
    categorical = [f["name"] for f in schema["features"] if f["kind"] == "categorical"]
    _log("Rows: train=%d test=%d; features=%d (%d numeric, %d categorical)"
         % (len(x_train), len(x_test), len(features), len(numeric), len(categorical)))

    _log("Training %s..." % args.algorithm)  # class weights undone after the fit (fitting.py, calibration.py)
    pipeline, correction = fitting.fit(args, numeric, categorical, x_train, y_train)
    oof = fitting.out_of_fold(args, numeric, categorical, x_train, y_train) if args.cv_folds else None
    if hasattr(pipeline.named_steps["model"], "n_jobs"):
        pipeline.named_steps["model"].n_jobs = 1  # single-row predictions: no thread pool dispatch
    _log("Evaluating...")
    proba = pipeline.predict_proba(x_test)[:, 1]
    metrics, curves = model_evaluation.evaluate(np.asarray(y_test), proba, np.asarray(y_train), THRESHOLD)
    metrics.update(fitting.cv_metrics(y_train, oof) if oof is not None else {})
    for name, value in metrics.items():
        if value is None:
            _log("%s is undefined for this test data (it needs both classes)" % name)
        else:
            _log("%s=%.6f" % (name, value))

    decimals = dataset_schema.numeric_decimals(train_df, schema)
    served_schema = model_pipeline.model_schema(schema, positive_label, x_train, pipeline, decimals, THRESHOLD)
    names = ["algorithm"] + [spec.name for spec in algorithms.OPTIONS if spec.name != "target"]
    hyper = dict((k, getattr(args, k)) for k in names)
    hyper.update(class_weight=args.class_weight or "none", target=target)
    evaluation = {
        "metrics": metrics, "roc": curves["roc"], "pr": curves["pr"], "confusion_matrix": curves["confusion_matrix"],
        "feature_importance": model_pipeline.feature_importance(pipeline, numeric, categorical, features, x_train),
        "feature_effects": explanations.held_out_effects(pipeline, schema, x_train, x_test),
        "reliability": curves["reliability"], "prior_correction": correction,
        "threshold": THRESHOLD, "n_train": int(len(x_train)), "n_test": int(len(x_test)),
        "algorithm": args.algorithm, "hyperparameters": hyper,
    }
    _log("Saving model...")
    import joblib

    os.makedirs(args.model_dir, exist_ok=True)
    joblib.dump({"pipeline": pipeline, "schema": served_schema, "format_version": FORMAT_VERSION, "oof":
                 fitting.oof_record(y_train, oof), "background": explanations.background_mean(pipeline, x_train)},
                os.path.join(args.model_dir, MODEL_FILE))
    _write_json(os.path.join(args.model_dir, SCHEMA_FILE), served_schema)
    folders = [args.model_dir] + ([args.output_data_dir] if args.output_data_dir else [])
    for folder in folders:
        os.makedirs(folder, exist_ok=True)
        _write_json(os.path.join(folder, "metrics.json"), metrics)
        _write_json(os.path.join(folder, "evaluation.json"), evaluation)
    import baseline  # the training data's baseline in Model Monitor's shapes, for drift reports

    statistics = baseline.statistics(x_train, schema["features"], proba)
    _write_json(os.path.join(args.model_dir, "statistics.json"), statistics)
    _write_json(os.path.join(args.model_dir, "constraints.json"), baseline.constraints(statistics))
    _log("Done in %.2fs; model written to %s" % (time.time() - started, args.model_dir))
    return evaluation


def _write_json(path: str, payload: Any) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(payload, fh, indent=1, allow_nan=False)
        fh.write("\n")


def _fail(message: str, code: int = 1) -> None:
    line = "ERROR: " + " ".join(str(message).split())
    sys.stderr.write(line + "\n")
    sys.stderr.flush()
    path = os.environ.get("SM_OUTPUT_FAILURE")
    if path:
        try:
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(line[len("ERROR: "):] + "\n")
        except OSError:
            pass
    sys.exit(code)


def main(argv: Optional[List[str]] = None) -> None:
    try:
        args, unknown = parse_hyperparameters(argv)
        if unknown:
            _log("Ignoring unknown arguments: %s" % " ".join(unknown))
        train(args)
    except (TrainingError, SchemaError) as err:
        _fail(str(err))
    except MemoryError:
        _fail("out of memory while training; use a larger instance or fewer rows/trees.")
    except Exception as err:  # an unexpected bug: keep the traceback, end with one readable line
        import traceback

        traceback.print_exc()
        _fail("training failed unexpectedly: %s: %s" % (type(err).__name__, err))


# =========================================================================== inference


def model_fn(model_dir: str) -> dict:
    """Load model.joblib (+ schema.json if the joblib holds a bare pipeline).

    Returns {"pipeline", "schema", "compiled" (lookup tables), "threshold", "fast" (a verified
    fast-path plan or None)}.
    """
    import joblib

    import fast_forest

    loaded = joblib.load(os.path.join(model_dir, MODEL_FILE))
    pipeline, schema = (loaded["pipeline"], loaded.get("schema")) if isinstance(loaded, dict) else (loaded, None)
    background = loaded.get("background") if isinstance(loaded, dict) else None
    if schema is None:
        with open(os.path.join(model_dir, SCHEMA_FILE), encoding="utf-8") as fh:
            schema = json.load(fh)
    final = pipeline.steps[-1][1] if hasattr(pipeline, "steps") else pipeline
    if hasattr(final, "n_jobs"):
        final.n_jobs = 1
    compiled = compile_schema(schema)
    # The threshold chosen for the model (campaign planner) comes in the model's environment, on
    # SageMaker as locally; without one, the schema's (0.5).
    threshold = float(os.environ.get(THRESHOLD_ENV) or schema.get("threshold", THRESHOLD))
    return {"pipeline": pipeline, "schema": schema, "compiled": compiled, "threshold": threshold,
            "fast": fast_forest.enable(pipeline, schema, compiled), "background": background,
            "explainer": {}, "variant": os.environ.get(VARIANT_ENV, ""),  # explainer: built on first use
            "oof": loaded.get("oof") if isinstance(loaded, dict) else None}


def input_fn(request_body: Any, request_content_type: Optional[str] = "application/json") -> Any:
    """Decode a request (application/json, text/csv or application/x-npy); raises InvalidInput. In a batch
    transform job (CHURN_BATCH_TRANSFORM=1) a text/csv mini-batch stays whole: every line gets an answer."""
    lines = table_scoring.transform_lines(request_body, request_content_type)
    return lines if lines is not None else parse_body(request_body, request_content_type)


def predict_fn(input_data: Any, model: dict) -> Any:
    """Check the rows against the model schema and score them: {"labels", "probabilities", "ids", "style"}."""
    import fast_forest

    if isinstance(input_data, table_scoring.TransformLines):  # a transform mini-batch: one answer per line
        return table_scoring.transform_answer(input_data, model)
    if isinstance(input_data, ParsedRequest):
        checked = check_rows(input_data, model["compiled"])
    elif isinstance(input_data, CheckedRows):
        checked = input_data
    elif hasattr(input_data, "to_dict"):  # a DataFrame, as a notebook might pass
        checked = check_rows(ParsedRequest("instances", input_data.to_dict("records"), True), model["compiled"])
    else:
        raise InvalidInput("predict_fn needs the output of input_fn, got %s." % type(input_data).__name__)
    if model.get("fast") is not None:
        proba = fast_forest.proba(checked.columns, model["fast"])
    else:
        proba = model["pipeline"].predict_proba(checked.frame)[:, 1]
    probabilities = [float(p) for p in proba]
    labels = [1 if p > model["threshold"] else 0 for p in probabilities]  # predict()'s tie rule
    prediction = {"labels": labels, "probabilities": probabilities, "ids": checked.ids, "style": checked.style,
                  "variant": model.get("variant") or ""}  # named in each named-record answer
    if checked.explain:  # each row's top pushes, exactly additive (explanations.py)
        import explanations

        prediction["reasons"] = explanations.reasons_for(model, checked)
    return prediction


def output_fn(prediction: dict, accept: Optional[str] = "application/json") -> Tuple[Any, str]:
    """Serialise predict_fn's result; returns (body, content_type)."""
    if isinstance(prediction, table_scoring.TransformAnswer):
        return prediction.text, "text/csv"
    media = choose_accept(accept)
    labels, probabilities = prediction["labels"], prediction["probabilities"]
    if media == "text/csv":
        return "".join("%d,%r\n" % (lab, p) for lab, p in zip(labels, probabilities)), "text/csv"
    if media == "application/x-npy":
        import io

        import numpy as np

        buffer = io.BytesIO()
        np.save(buffer, np.column_stack([np.asarray(labels, dtype=float), np.asarray(probabilities)]))
        return buffer.getvalue(), "application/x-npy"
    reasons = prediction.get("reasons")
    if prediction.get("style") in ("seed", "seed_flat"):
        one = len(labels) == 1
        body: dict = {"Output": labels[0] if one else labels, "Probability": probabilities[0] if one else probabilities}
        if reasons is not None:
            body["Reasons"] = reasons[0] if one else reasons
    else:
        ids = prediction.get("ids") or [{}] * len(labels)
        named = {"variant": prediction["variant"]} if prediction.get("variant") else {}
        body = {"predictions": [dict({"label": lab, "churn_probability": p, **named}, **json_ready(i))
                                for lab, p, i in zip(labels, probabilities, ids)]}
        for item, why in zip(body["predictions"], reasons or []):
            item["reasons"] = why
    return json.dumps(body), "application/json"


if __name__ == "__main__":
    main()
    # Outputs are written and flushed; skip the interpreter's slow teardown of scipy/scikit-learn
    # (about a second on a busy 2-core machine), which only delays "Completed".
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
