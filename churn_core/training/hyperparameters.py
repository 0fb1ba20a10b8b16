"""The training form's single source of truth: algorithms, their hyperparameters, defaults, bounds, help.

The Train page builds its widgets from ``ALGORITHMS``; ``clean`` checks a user's values before a job
starts, so a typo fails in the form, not minutes later in a container. ``entry/train.py`` checks again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from churn_core.errors import ValidationError


@dataclass(frozen=True)
class Param:
    name: str
    kind: str  # "int" | "float" | "choice" | "optional_int"
    default: Any
    help: str
    low: float | None = None
    high: float | None = None
    choices: tuple = ()
    label: str = ""  # the form's words; ``name`` is the technical name (scikit-learn's, SageMaker's)
    choice_labels: tuple = ()  # the form's words for ``choices``, in the same order

    def choice_text(self, choice: str) -> str:
        return dict(zip(self.choices, self.choice_labels, strict=False)).get(choice, choice)

    @property
    def title(self) -> str:
        return self.label or self.name

    @property
    def named(self) -> str:
        """Both names, for messages read by analysts and API users alike: ``Number of trees (n_estimators)``."""
        return f"{self.label} ({self.name})" if self.label else self.name

    @property
    def range_text(self) -> str:
        if self.kind == "choice" or self.low is None:
            return ""
        return f"{self.low:g} to {self.high:g}" + (", empty = no limit" if self.kind == "optional_int" else "")


_SEED = Param("random_state", "int", 42, "The same seed gives the same model on the same data.", 0, 2**31 - 1,
              label="Random seed")
_CLASS_WEIGHT = Param(
    "class_weight",
    "choice",
    "none",
    "'balanced' counts each churner as much as the more numerous stayers; finds more churners (recall).",
    choices=("none", "balanced"),
    label="Weight of churners",
    choice_labels=("as in the data (none)", "balanced"),
)

ALGORITHMS: dict[str, dict] = {
    "random_forest": {
        "label": "Random forest",
        "short": "rf",
        "help": "Many decision trees voting; a strong default that needs little tuning.",
        "params": [
            Param("n_estimators", "int", 100, "More trees are steadier but slower.", 1, 2000, label="Number of trees"),
            Param("max_depth", "optional_int", None, "How many questions deep a tree may grow.", 1, 100,
                  label="Maximum tree depth"),
            Param("min_samples_leaf", "int", 1, "Fewest customers a tree's final group may hold; higher smooths the "
                  "model.", 1, 500, label="Fewest customers per leaf"),
            _CLASS_WEIGHT,
            _SEED,
        ],
    },
    "gradient_boosting": {
        "label": "Gradient boosting",
        "short": "gb",
        "help": "Trees added one after another, each fixing the last; often the most accurate.",
        "params": [
            Param("n_estimators", "int", 100, "Trees added one after another.", 1, 2000, label="Boosting rounds"),
            Param("learning_rate", "float", 0.1, "How much each tree corrects; lower needs more rounds.", 0.001, 1.0,
                  label="Learning rate"),
            Param("max_depth", "optional_int", 3, "Depth of each tree (small trees work best).", 1, 20,
                  label="Tree depth"),
            Param("min_samples_leaf", "int", 1, "Fewest customers a tree's final group may hold.", 1, 500,
                  label="Fewest customers per leaf"),
            _SEED,
        ],
    },
    "logistic_regression": {
        "label": "Logistic regression",
        "short": "lr",
        "help": "A linear model with readable coefficients; fast, a good baseline.",
        "params": [
            Param("C", "float", 1.0, "Higher lets the model follow the data more closely, lower keeps it simpler "
                  "(the inverse of the regularisation strength).", 0.0001, 1000.0, label="Flexibility"),
            Param("max_iter", "int", 1000, "Steps the fitting may take before it gives up.", 10, 100000,
                  label="Maximum fitting steps"),
            _CLASS_WEIGHT,
            _SEED,
        ],
    },
}


def defaults(algorithm: str) -> dict:
    return {p.name: p.default for p in params_for(algorithm)}


def params_for(algorithm: str) -> list[Param]:
    if algorithm not in ALGORITHMS:
        raise ValidationError(f"Unknown algorithm {algorithm!r}. Choose one of: {', '.join(ALGORITHMS)}.")
    return ALGORITHMS[algorithm]["params"]


def _coerce(param: Param, value: Any) -> Any:
    if param.kind == "choice":
        text = str(value).strip().lower()
        if text not in param.choices:
            raise ValidationError(f"{param.named} must be one of {', '.join(param.choices)} (got {value!r}).")
        return text
    if param.kind == "optional_int" and (value is None or str(value).strip().lower() in ("", "none", "0")):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValidationError(f"{param.named} must be a number (got {value!r}).") from None
    if number != number or number in (float("inf"), float("-inf")):  # int() would raise, a range check would pass
        raise ValidationError(f"{param.named} must be a finite number (got {value!r}).")
    if param.kind in ("int", "optional_int"):
        if number != int(number):
            raise ValidationError(f"{param.named} must be a whole number (got {value!r}).")
        number = int(number)
    if (param.low is not None and number < param.low) or (param.high is not None and number > param.high):
        raise ValidationError(f"{param.named} must be between {param.low:g} and {param.high:g} (got {value!r}).")
    return number


def clean(hyperparameters: dict) -> dict:
    """Return the full, typed hyperparameters for the chosen algorithm, or raise what is wrong."""
    given = dict(hyperparameters or {})
    if "estimator" in given and "n_estimators" not in given:  # the seed's option name
        given["n_estimators"] = given.pop("estimator")
    algorithm = str(given.pop("algorithm", "random_forest"))
    params = params_for(algorithm)
    known = {p.name for p in params}
    unknown = sorted(set(given) - known - {"target"})
    if unknown:
        raise ValidationError(
            f"Hyperparameter(s) {', '.join(unknown)} do not apply to {algorithm}. Known: {', '.join(sorted(known))}."
        )
    result: dict[str, Any] = {"algorithm": algorithm}
    for param in params:
        result[param.name] = _coerce(param, given.get(param.name, param.default))
    return result


def for_container(hyperparameters: dict) -> dict:
    """What reaches the script: unset values are left out (the script's defaults apply), because the
    SageMaker toolkit turns a JSON null into an empty argument on an unquoted shell line. Nothing
    user-typed is sent this way: the target column travels in the dataset schema file."""
    return {key: value for key, value in hyperparameters.items() if value is not None and key != "target"}


def as_cli(hyperparameters: dict) -> list[str]:
    """``--name value`` pairs, the way SageMaker passes hyperparameters to a script."""
    args: list[str] = []
    for key, value in for_container(hyperparameters).items():
        args += [f"--{key}", str(value)]
    return args


# ---- tuning (issue 19): a sensible search space per algorithm --------------------------------------------------
# The Tune form starts from these; ``churn_core.tuning.ranges`` reads the same shapes from users: {"min", "max",
# "scale"} for numbers (integer for whole-number hyperparameters), a list for categorical values.
DEFAULT_RANGES: dict[str, dict[str, Any]] = {
    "random_forest": {
        "n_estimators": {"min": 20, "max": 300, "scale": "log"},
        "max_depth": {"min": 3, "max": 30},
        "min_samples_leaf": {"min": 1, "max": 50, "scale": "log"},
        "class_weight": ["none", "balanced"],
    },
    "gradient_boosting": {
        "n_estimators": {"min": 30, "max": 400, "scale": "log"},
        "learning_rate": {"min": 0.01, "max": 0.3, "scale": "log"},
        "max_depth": {"min": 2, "max": 6},
        "min_samples_leaf": {"min": 1, "max": 50, "scale": "log"},
    },
    "logistic_regression": {
        "C": {"min": 0.001, "max": 100.0, "scale": "log"},
        "class_weight": ["none", "balanced"],
    },
}


def default_ranges(algorithm: str) -> dict[str, Any]:
    """A copy of the default search space of ``algorithm`` (an empty one for an algorithm without defaults)."""
    import copy

    params_for(algorithm)  # an unknown algorithm says so
    return copy.deepcopy(DEFAULT_RANGES.get(algorithm, {}))


def coerce(param: Param, value: Any) -> Any:
    """One value of ``param`` typed and checked as ``clean`` does it (the tuning ranges check their values so)."""
    return _coerce(param, value)
