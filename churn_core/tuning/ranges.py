"""Search ranges of a tuning job: what a user may write, checked against the hyperparameter catalogue.

A range per hyperparameter, in the shapes SageMaker's tuning jobs know:

* **integer** for whole-number hyperparameters and **continuous** for the others:
  ``{"min": 20, "max": 300}`` or ``(20, 300)``, with ``"scale": "log"`` for a logarithmic search
  (``"linear"`` is the default);
* **categorical**: a list of values, ``["none", "balanced"]`` (or ``{"values": [...]}``).

A plain value fixes the hyperparameter for every trial (so does a range of one value); what is not
named keeps its catalogue default (``churn_core.training.hyperparameters``). Every problem raises a
``ValidationError`` that names the hyperparameter and says what to change.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from churn_core.training import hyperparameters as hp
from churn_core.errors import ValidationError
from churn_core.wording import noun

KINDS = ("integer", "continuous", "categorical")
SCALES = ("linear", "log")


@dataclass(frozen=True)
class Range:
    name: str
    kind: str  # "integer" | "continuous" | "categorical"
    low: float | None = None
    high: float | None = None
    scale: str = "linear"
    values: tuple = field(default_factory=tuple)

    def as_dict(self) -> dict:
        if self.kind == "categorical":
            return {"name": self.name, "kind": self.kind, "values": list(self.values)}
        return {"name": self.name, "kind": self.kind, "min": self.low, "max": self.high, "scale": self.scale}

    @classmethod
    def from_dict(cls, data: dict) -> "Range":
        if data["kind"] == "categorical":
            return cls(data["name"], "categorical", values=tuple(data["values"]))
        return cls(data["name"], data["kind"], data["min"], data["max"], data.get("scale", "linear"))

    def describe(self) -> str:
        if self.kind == "categorical":
            return ", ".join("none" if v is None else str(v) for v in self.values)
        return f"{self.low:g} – {self.high:g}" + (" (log)" if self.scale == "log" else "")


def _number(name: str, which: str, value: Any) -> float:
    if isinstance(value, bool):
        value = "true" if value else "false"
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValidationError(f"The {which} of the range of {name} must be a number (got {value!r}).") from None
    if not math.isfinite(number):
        raise ValidationError(f"The {which} of the range of {name} must be a finite number (got {value!r}).")
    return number


def _categorical(param: hp.Param, algorithm: str, values: Any) -> tuple:
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise ValidationError(f"The values of the range of {param.name} must be a list (got {values!r}).")
    values = list(values)
    if not values:
        raise ValidationError(
            f"The range of {param.name} is empty: list at least one value"
            + (f" (one of {', '.join(param.choices)})." if param.choices else ".")
        )
    clean: list = []
    for value in values:
        try:
            coerced = hp.coerce(param, value)
        except ValidationError as exc:
            raise ValidationError(f"In the range of {param.name}: {exc}") from None
        if coerced not in clean:
            clean.append(coerced)
    return tuple(clean)


def _numeric(param: hp.Param, algorithm: str, spec: dict) -> Range:
    name = param.named  # "Number of trees (n_estimators)": the form's words and the API's
    if "min" not in spec or "max" not in spec:
        raise ValidationError(
            f"The range of {name} needs both a min and a max, e.g. {{'min': {param.low:g}, 'max': {param.high:g}}} "
            f"(got {spec!r})."
        )
    low, high = _number(name, "min", spec["min"]), _number(name, "max", spec["max"])
    scale = str(spec.get("scale") or "linear").strip().lower()
    scale = {"logarithmic": "log", "lin": "linear"}.get(scale, scale)
    if scale not in SCALES:
        raise ValidationError(f"The scale of the range of {name} must be 'linear' or 'log' (got {spec['scale']!r}).")
    if low > high:
        raise ValidationError(f"The range of {name} is reversed: min {low:g} is above max {high:g}. Swap them.")
    if scale == "log" and low <= 0:
        raise ValidationError(
            f"The range of {name} uses a log scale, so its min must be above 0 (got {low:g}). "
            "Raise the min or use scale 'linear'."
        )
    whole = param.kind in ("int", "optional_int")
    if whole:
        low, high = float(math.ceil(low)), float(math.floor(high))
        if low > high:
            raise ValidationError(
                f"The range of {name} is empty: no whole number lies between {spec['min']!r} and {spec['max']!r}."
            )
    if (param.low is not None and low < param.low) or (param.high is not None and high > param.high):
        raise ValidationError(
            f"The range of {name} must stay within {param.low:g} – {param.high:g}, what {algorithm} accepts "
            f"(got {low:g} – {high:g})."
        )
    if whole:
        return Range(param.name, "integer", int(low), int(high), scale)
    return Range(param.name, "continuous", low, high, scale)


def parse_ranges(algorithm: str, ranges: Any) -> tuple[list[Range], dict]:
    """(the tuned ranges, the full fixed hyperparameters of every trial including ``algorithm``)."""
    params = {p.name: p for p in hp.params_for(algorithm)}
    if ranges is None:
        ranges = {}
    if not isinstance(ranges, dict):
        raise ValidationError(
            "Ranges must map hyperparameter names to ranges, e.g. {'n_estimators': {'min': 50, 'max': 300}} "
            f"(got {type(ranges).__name__})."
        )
    tuned: list[Range] = []
    fixed: dict[str, Any] = {}
    for name, spec in ranges.items():
        if name in ("algorithm", "target"):
            raise ValidationError(
                f"{name} cannot be tuned: choose the algorithm with algorithm=..., and the target when the dataset "
                "is uploaded."
            )
        param = params.get(name)
        if param is None:
            raise ValidationError(
                f"{algorithm} has no hyperparameter {name!r} to tune. Its hyperparameters are: "
                f"{', '.join(params)}."
            )
        if isinstance(spec, Range):
            spec = spec.as_dict()
        if isinstance(spec, dict) and spec.get("kind") in KINDS:  # a stored range (Range.as_dict)
            spec = spec.get("values") if spec["kind"] == "categorical" else \
                {k: v for k, v in spec.items() if k in ("min", "max", "scale")}
        if isinstance(spec, tuple):
            if len(spec) != 2:
                raise ValidationError(f"The range of {name} as a tuple must be (min, max) (got {spec!r}).")
            spec = {"min": spec[0], "max": spec[1]}
        if isinstance(spec, dict) and "values" in spec:
            spec = spec["values"]
        if isinstance(spec, (list, set, frozenset)):
            values = _categorical(param, algorithm, sorted(spec, key=str) if isinstance(spec, (set, frozenset))
                                  else spec)
            if len(values) == 1:
                fixed[name] = values[0]
            else:
                tuned.append(Range(name, "categorical", values=values))
            continue
        if isinstance(spec, dict):
            if param.kind == "choice":
                raise ValidationError(
                    f"{name} takes one of {', '.join(param.choices)}: give its range as a list of values, "
                    f"e.g. {list(param.choices)!r}."
                )
            unknown = sorted(set(spec) - {"min", "max", "scale", "type"})
            if unknown:
                raise ValidationError(
                    f"The range of {name} has unknown {noun(len(unknown), 'key')} {', '.join(unknown)}; "
                    "use min, max and scale."
                )
            found = _numeric(param, algorithm, spec)
            if found.low == found.high:
                fixed[name] = int(found.low) if found.kind == "integer" else found.low
            else:
                tuned.append(found)
            continue
        fixed[name] = spec  # a plain value: fixed for every trial
    if not tuned:
        example = next(iter(hp.DEFAULT_RANGES.get(algorithm, {}).items()), ("n_estimators", {"min": 50, "max": 300}))
        raise ValidationError(
            f"Nothing to tune: give at least one hyperparameter a range of two or more values, e.g. "
            f"{{{example[0]!r}: {example[1]!r}}}."
        )
    static = hp.clean({"algorithm": algorithm, **fixed})  # checks the fixed values, fills in the defaults
    for r in tuned:
        static.pop(r.name, None)
    return tuned, static


def trial_hyperparameters(static: dict, params: dict) -> dict:
    """The full hyperparameters of one trial: the fixed ones plus the values chosen for it."""
    return {**static, **params}


__all__ = ["Range", "parse_ranges", "trial_hyperparameters", "KINDS", "SCALES"]
