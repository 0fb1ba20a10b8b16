"""The one-customer form and example requests, generated from a model's schema.

Every field's widget, bounds, precision and default come from what training saw: a yes/no
switch for a 0/1 column, whole numbers for integer columns, the data's own decimals for the
rest, the median and the most common category as defaults. Nothing here knows a dataset's
columns; a page or a snippet only renders what this module returns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

UNKNOWN = "(unknown)"  # the explicit choice "not known": offered where training saw missing values


@dataclass(frozen=True)
class FormField:
    name: str
    widget: str  # "yes_no" | "integer" | "number" | "choice"
    default: Any
    low: float | None = None
    high: float | None = None
    decimals: int = 0
    options: tuple = field(default_factory=tuple)
    help: str = ""
    allow_missing: bool = False  # training saw blanks here: "not known" is a value the model handles

    @property
    def step(self) -> float:
        return 1.0 if self.widget == "integer" else 10.0 ** -max(self.decimals, 0) if self.decimals else 0.01

    def problem(self, value: Any) -> str | None:
        """Why a form value cannot be scored (a blank where training saw none), or None."""
        if value is None and self.widget in ("integer", "number") and not self.allow_missing:
            return f"Enter a number: {self.name} had no blanks in training, so the model needs a value."
        return None

    def in_range(self, value: Any) -> str | None:
        """What is wrong with a typed value for this field, or None."""
        if self.widget not in ("integer", "number") or value is None:
            return None
        if self.low is not None and value < self.low or self.high is not None and value > self.high:
            return (f"{value:g} is outside the training range {self.low:g} – {self.high:g}; the model has not seen "
                    "such customers, so the score is an extrapolation.")
        return None


def _round(value: float | None, decimals: int) -> float | None:
    if value is None:
        return None
    return round(float(value), decimals) if decimals else float(round(float(value)))


def _decimals(feat: dict) -> int:
    if "decimals" in feat:
        return int(feat["decimals"])
    values = [feat.get(k) for k in ("min", "max", "median")]
    return 0 if all(v is not None and float(v).is_integer() for v in values) else 2


def number_text(value: float | None, decimals: int) -> str:
    """A number at the precision the data is written with (``70.57499999999999`` → ``70.57``)."""
    if value is None:
        return "—"
    return f"{float(value):,.{decimals}f}" if decimals > 0 else f"{round(float(value)):,}"


def form_fields(schema: dict) -> list[FormField]:
    """One field per model feature, in the model's order."""
    fields = []
    for feat in schema.get("features", []):
        name = feat["name"]
        allow = bool(feat.get("missing"))
        if feat["kind"] == "numeric":
            decimals = _decimals(feat)
            low, high = feat.get("min"), feat.get("max")
            median = _round(feat.get("median"), decimals)
            help_text = (f"Training range {number_text(low, decimals)} – {number_text(high, decimals)}, "
                         f"median {number_text(median, decimals)}." if low is not None else "")
            if allow:
                help_text += " Leave it empty if not known (training had blanks here; the median is used)."
            if decimals == 0 and (low, high) == (0, 1):
                options = (0, 1, UNKNOWN) if allow else (0, 1)
                fields.append(FormField(name, "yes_no", int(median or 0), 0, 1, 0, options, help_text, allow))
            else:
                widget = "integer" if decimals == 0 else "number"
                fields.append(FormField(name, widget, median, low, high, decimals, (), help_text, allow))
        else:
            categories = list(feat.get("categories") or [])
            mode = feat.get("mode") if feat.get("mode") in categories else (categories[0] if categories else UNKNOWN)
            options = tuple(categories) + ((UNKNOWN,) if allow or not categories else ())
            unknown_help = f" {UNKNOWN}: not known (training had blanks here; they count as the most common)." \
                if allow else ""
            fields.append(FormField(name, "choice", mode, options=options, allow_missing=allow,
                                    help=f"{len(categories)} categories seen in training; most common: {mode}."
                                         + unknown_help))
    return fields


def record_from_form(fields: list[FormField], values: dict) -> dict:
    """The named record a form's values stand for (``UNKNOWN`` becomes a missing value)."""
    record = {}
    for f in fields:
        value = values.get(f.name)
        record[f.name] = None if value == UNKNOWN else value
    return record


def example_record(schema: dict) -> dict:
    """A typical customer of the training data: the median of each number, the most common category."""
    record = {}
    for f in form_fields(schema):
        whole = f.widget in ("integer", "yes_no") and f.default is not None and f.default != UNKNOWN
        record[f.name] = None if f.default == UNKNOWN else int(f.default) if whole else f.default
    return record


def example_row(schema: dict) -> list:
    """The same customer as a positional row in the model's feature order (the seed's ``Input`` form)."""
    return list(example_record(schema).values())
