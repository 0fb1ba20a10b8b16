"""A trained model loaded in this process, to score known customers without an endpoint.

The campaign planner scores the held-out test split, and ``evaluate`` scores a new labelled file;
neither should need a live endpoint (nothing bills, nothing to deploy). The artifact is read once,
its SHA-256 checked on those bytes, and only then unpacked into a private folder and loaded with
the model's own ``model_fn`` (joblib is pickle: nothing unverified is ever loaded).
"""

from __future__ import annotations

import io
import tempfile
from collections import OrderedDict
from pathlib import Path
from threading import Lock

import numpy as np
import pandas as pd

from churn_core.errors import ValidationError
from churn_core.paths import entry_module
from churn_core.wording import lacks_features

_CACHE: OrderedDict[str, dict] = OrderedDict()  # artifact SHA-256 → the loaded model
_CACHE_SIZE = 4
_LOCK = Lock()


def load_model(store, artifact_key: str, artifact_sha256: str) -> dict:
    """``model_fn``'s model dict for a verified artifact (cached per SHA-256)."""
    with _LOCK:
        if artifact_sha256 in _CACHE:
            _CACHE.move_to_end(artifact_sha256)
            return _CACHE[artifact_sha256]
    from churn_core.storage.unpack import extract, load_verified

    data = load_verified(store, artifact_key, artifact_sha256)  # one read within the cap, hashed
    with tempfile.TemporaryDirectory(prefix="churn-model-") as private:  # 0700: nobody else can swap it
        extract(data, Path(private) / "model")  # the very bytes verified, within the size caps
        del data
        model = entry_module("train").model_fn(str(Path(private) / "model"))
    with _LOCK:
        _CACHE[artifact_sha256] = model
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return model


def labelled_scores(model: dict, text: pd.DataFrame, what: str) -> tuple[np.ndarray, np.ndarray]:
    """(true labels 0/1, churn probabilities) of a table of customers with known outcomes, read as text
    and typed by the model's own schema the way training typed its data."""
    rules = entry_module("dataset_schema")
    schema = model["schema"]
    target = schema["target"]
    if target not in text.columns:
        raise ValidationError(
            f"{what} has no column {target!r}, so there is nothing to compare the predictions with. Evaluation "
            f"needs customers whose outcome is known: add the {target!r} column (what each customer did)."
        )
    missing = [f["name"] for f in schema["features"] if f["name"] not in text.columns]
    if missing:
        raise ValidationError(lacks_features(what, missing) + "; its header must "
                              "include every feature the model was trained with.")
    try:
        y, _ = rules.encode_target(text[target], target, what)
    except rules.SchemaError as exc:
        raise ValidationError(f"The target column of {what} cannot be read as churned/stayed: {exc} Use the "
                              "labels the model was trained with (0/1, yes/no or true/false).") from None
    features = rules.typed_features(text, {"features": schema["features"]}, what)
    proba = model["pipeline"].predict_proba(features)[:, 1]
    return np.asarray(y, dtype=int), np.asarray(proba, dtype=float)


def read_text(data: bytes) -> pd.DataFrame:
    """A stored split (written by the platform: comma, UTF-8) as text cells."""
    return entry_module("dataset_schema").read_text_table(io.BytesIO(data))
