"""SageMaker's own limits on the values the product sends (from botocore's service model, ``service-2.json``),
checked before any call, and the text the product composes made to fit them.

moto accepts almost anything and botocore checks only types and required members, so without these a
request the real service refuses would be found only on AWS. ``tests/service_model_check.py`` checks every
request of the test suite against the whole service model.
"""

from __future__ import annotations

import math
import re
import unicodedata

from churn_core.errors import ValidationError

# HyperParameterTuningJobConfig (CreateHyperParameterTuningJob)
MAX_CATEGORICAL_VALUES = 30          # ParameterValues: 1..30 values per categorical range
MAX_RANGES_PER_KIND = 30             # Integer/Continuous/CategoricalParameterRanges: at most 30 each
MAX_PARAMETER_VALUE_CHARS = 256      # ParameterValue: one value (JSON-encoded) or bound, 0..256 characters
MIN_TUNING_SECONDS = 120             # ResourceLimits.MaxRuntimeInSeconds: 120..15,768,000 (182.5 days)
MAX_TUNING_SECONDS = 15_768_000
MAX_HYPERPARAMETERS = 100            # HyperParameters / StaticHyperParameters: at most 100 entries
MAX_HYPERPARAMETER_VALUE_CHARS = 2500
# EntityDescription (ModelPackageDescription, ModelPackageGroupDescription): letters, marks, separators,
# symbols, numbers and punctuation only (no control characters: no newline, tab or NUL), up to 1024.
# ApprovalDescription: Java's ".*", so no line terminators, up to 1024.
MAX_DESCRIPTION_CHARS = 1024
# CustomerMetadataProperties: 1..50 entries; keys 1..128 and values 1..256 characters of
# letters, separators, numbers and _ . : / = + - @.
MAX_METADATA_ENTRIES = 50
MAX_METADATA_VALUE_CHARS = 256
_METADATA_PUNCTUATION = set("_.:/=+-@")
_LINE_TERMINATORS = re.compile("[\r\n\u0085\u2028\u2029]+")


def description(text: str) -> str:
    """``text`` as a valid EntityDescription: every run of characters the pattern refuses (control and
    format characters: newlines, tabs, NUL, escape sequences...) becomes one space; at most 1024 characters."""
    out: list[str] = []
    for char in str(text or ""):
        if unicodedata.category(char)[0] in "LMZSNP":
            out.append(char)
        elif out and out[-1] != " ":
            out.append(" ")
    return "".join(out).strip()[:MAX_DESCRIPTION_CHARS]


def one_line(text: str) -> str:
    """``text`` for a field whose pattern is ``.*`` (Java: no line terminators): each run of line breaks
    becomes one space, other control characters go; at most 1024 characters."""
    flat = _LINE_TERMINATORS.sub(" ", str(text or ""))
    flat = "".join(c if unicodedata.category(c) != "Cc" else " " for c in flat)
    return re.sub(" {2,}", " ", flat).strip()[:MAX_DESCRIPTION_CHARS]


def metadata(values: dict) -> dict:
    """CustomerMetadataProperties from ``values``: empty values are left out (the service refuses them:
    e.g. the dataset SHA-256 of a tuning trial read after its dataset was deleted); characters the pattern
    refuses become ``-``; values cut at 256 characters."""
    result = {}
    for key, value in values.items():
        text = "".join(c if unicodedata.category(c)[0] in "LZN" or c in _METADATA_PUNCTUATION else "-"
                       for c in str(value if value is not None else ""))[:MAX_METADATA_VALUE_CHARS]
        if text.strip():
            result[key] = text
        if len(result) == MAX_METADATA_ENTRIES:
            break
    return result


def check_tuning(ranges: list, max_seconds, static: dict | None = None) -> None:
    """Refuse, before anything is recorded or sent, a tuning job SageMaker would refuse; the message names the
    limit and what to do."""
    kinds: dict[str, int] = {}
    for r in ranges:
        kinds[r.kind] = kinds.get(r.kind, 0) + 1
        if r.kind == "categorical":
            if len(r.values) > MAX_CATEGORICAL_VALUES:
                raise ValidationError(
                    f"The range of {r.name} lists {len(r.values)} values; a SageMaker tuning job takes at most "
                    f"{MAX_CATEGORICAL_VALUES} values per categorical range. Keep at most "
                    f"{MAX_CATEGORICAL_VALUES} of them "
                    "(for a number, give a min and a max instead of a list)."
                )
            for value in r.values:
                if len(str(value)) + 2 > MAX_PARAMETER_VALUE_CHARS:
                    raise ValidationError(
                        f"A value in the range of {r.name} is {len(str(value))} characters long; SageMaker takes "
                        f"at most {MAX_PARAMETER_VALUE_CHARS - 2}. Use a shorter value."
                    )
    for kind, count in kinds.items():
        if count > MAX_RANGES_PER_KIND:
            raise ValidationError(f"{count} {kind} ranges: a SageMaker tuning job takes at most "
                                  f"{MAX_RANGES_PER_KIND} of each kind. Tune fewer hyperparameters at once.")
    if static is not None and len(static) > MAX_HYPERPARAMETERS:
        raise ValidationError(f"{len(static)} fixed hyperparameters: SageMaker takes at most {MAX_HYPERPARAMETERS}.")
    if max_seconds is None or max_seconds == "":
        return
    try:
        seconds = float(max_seconds)
    except (TypeError, ValueError):
        raise ValidationError(f"max_seconds must be a number of seconds (got {max_seconds!r}).") from None
    if not math.isfinite(seconds) or not MIN_TUNING_SECONDS <= round(seconds) <= MAX_TUNING_SECONDS:
        raise ValidationError(
            f"A SageMaker tuning job's time limit must be at least {MIN_TUNING_SECONDS} seconds and at most "
            f"{MAX_TUNING_SECONDS} seconds (182.5 days; got {max_seconds!r}). Pick a limit in that range, or leave "
            "it empty for none."
        )
