"""Models trained by ``entry/train.py`` in the test process for the honest-probability tests (issue 24):
every algorithm, with and without class weights, on the sample and on a generated categorical dataset."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

from churn_core.paths import entry_module

ALGORITHMS = ("random_forest", "gradient_boosting", "logistic_regression")
WEIGHTINGS = ("none", "balanced")


def datasets() -> dict:
    from churn_core.data.sample import make_sample, make_subscription_sample

    return {"sample": make_sample(3000, seed=7), "categorical": make_subscription_sample(rows=1500, seed=5)}


def train_into(base: Path, data: bytes, *options: str) -> Path:
    """``train.py --train <base>/train ... --model-dir <base>/<name>`` in this process; returns the model dir
    (its evaluation.json holds the report)."""
    train = entry_module("train")
    (base / "train").mkdir(exist_ok=True)
    (base / "train" / "train.csv").write_bytes(data)
    model_dir = base / "-".join(o.strip("-") for o in options)
    with contextlib.redirect_stdout(io.StringIO()):
        train.train(train.parse_hyperparameters(["--train", str(base / "train"), "--model-dir", str(model_dir),
                                                 *options])[0])
    return model_dir


def evaluation(model_dir: Path) -> dict:
    return json.loads((model_dir / "evaluation.json").read_text())
