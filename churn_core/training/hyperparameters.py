"""The training form's rules over the algorithm registry (``entry/algorithms.py``): defaults, checks, ranges.

The Train page builds its widgets from ``ALGORITHMS``; ``clean`` checks a user's values before a job
starts, so a typo fails in the form, not minutes later in a container. ``entry/train.py`` checks again.
"""

from __future__ import annotations

from typing import Any

from churn_core.errors import ValidationError
from churn_core.paths import entry_module
from churn_core.wording import noun

_algorithms = entry_module("algorithms")  # the registry: entry/algorithms.py, also read by the training script
Param = _algorithms.Param

# {name: {"label", "short", "help", "params"}} for the forms, read live from the registry.
ALGORITHMS = _algorithms.View(lambda a: {"label": a.label, "short": a.short, "help": a.help, "params": list(a.params)})


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
            f"{noun(len(unknown), 'Hyperparameter')} {', '.join(unknown)} {noun(len(unknown), 'does', 'do')} "
            f"not apply to {algorithm}. Known: {', '.join(sorted(known))}."
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


# ---- tuning (issue 19): a sensible search space per algorithm, the registry's ``ranges`` -----------------------
# The Tune form starts from these; ``churn_core.tuning.ranges`` reads the same shapes from users: {"min", "max",
# "scale"} for numbers (integer for whole-number hyperparameters), a list for categorical values.
DEFAULT_RANGES = _algorithms.View(_algorithms.default_ranges)


def default_ranges(algorithm: str) -> dict[str, Any]:
    """A copy of the default search space of ``algorithm`` (an empty one for an algorithm without defaults)."""
    params_for(algorithm)  # an unknown algorithm says so
    return _algorithms.default_ranges(_algorithms.get(algorithm))


def coerce(param: Param, value: Any) -> Any:
    """One value of ``param`` typed and checked as ``clean`` does it (the tuning ranges check their values so)."""
    return _coerce(param, value)
