"""How far data capture may grow: THE home of its defaults and of the checks of ``set_capture``'s bounds.

Per endpoint a byte budget (``max_mb``) and a retention (``retention_days``), plus one free-disk floor for
the state folder's disk. The defaults, and why:

- ``DEFAULT_MAX_MB = 200``: at about 1 KB per single-customer record that is ~200,000 captured requests,
  weeks of a busy endpoint's monitoring windows (a drift report needs a few hundred rows), and the same as
  the upload cap (``CHURN_MAX_UPLOAD_MB``): capture never holds more than one large upload's worth.
- ``DEFAULT_RETENTION_DAYS = 30``: the longest window the Monitor page offers is 7 days; 30 days keep four
  weeks of history for a report while customer rows do not outlive a month.
- ``DEFAULT_MIN_FREE_MB = 512`` (``CHURN_CAPTURE_MIN_FREE_MB``): capture pauses before the disk is full, so
  the catalog (SQLite) and the jobs always have room to write.

Past any bound the local writer pauses capture (it writes nothing more), counts what it dropped (requests
and rows), and deletes files past the retention. On SageMaker the size and age of ``capture/`` are an S3
lifecycle rule on the bucket (docs/aws.md), so these bounds are refused there.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass

from churn_core.errors import ValidationError

DEFAULT_MAX_MB = 200.0
DEFAULT_RETENTION_DAYS = 30.0
DEFAULT_MIN_FREE_MB = 512.0
MIN_FREE_ENV = "CHURN_CAPTURE_MIN_FREE_MB"
MB = 1024 * 1024
DAY_S = 86_400.0


@dataclass(frozen=True)
class CaptureBounds:
    max_mb: float = DEFAULT_MAX_MB
    retention_days: float = DEFAULT_RETENTION_DAYS
    min_free_mb: float = DEFAULT_MIN_FREE_MB

    @property
    def max_bytes(self) -> int:
        return int(self.max_mb * MB)

    @property
    def min_free_bytes(self) -> int:
        return int(self.min_free_mb * MB)

    @property
    def retention_s(self) -> float:
        return self.retention_days * DAY_S

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict | None) -> "CaptureBounds":
        data = data or {}
        return cls(**{k: float(data[k]) for k in ("max_mb", "retention_days", "min_free_mb")
                      if isinstance(data.get(k), (int, float))})


def _positive(value, what: str, unit: str) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not math.isfinite(number) or number <= 0:
        raise ValidationError(f"The capture's {what} must be a positive number of {unit} (got {value!r}); leave it "
                              "empty for the default.")
    return number


def checked(max_mb, retention_days) -> tuple[float | None, float | None]:
    """``set_capture``'s bounds as given (None: the default), or a ValidationError saying what is wrong."""
    return _positive(max_mb, "size budget (max_mb)", "megabytes"), \
        _positive(retention_days, "retention (retention_days)", "days")


def min_free_mb(env: dict | None = None) -> float:
    raw = (os.environ if env is None else env).get(MIN_FREE_ENV)
    if raw in (None, ""):
        return DEFAULT_MIN_FREE_MB
    try:
        value = float(raw)
    except ValueError:
        raise ValidationError(f"{MIN_FREE_ENV}={raw!r} is not a number of megabytes. Set it (0 disables the "
                              "floor) or unset it.") from None
    return max(0.0, value)


def bounds_of(endpoint: dict) -> CaptureBounds:
    """An endpoint record's bounds (its own where set, else the defaults) with the free-disk floor in force."""
    return CaptureBounds(max_mb=float(endpoint.get("capture_max_mb") or DEFAULT_MAX_MB),
                         retention_days=float(endpoint.get("capture_retention_days") or DEFAULT_RETENTION_DAYS),
                         min_free_mb=min_free_mb())
