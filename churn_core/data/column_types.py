"""Column typing: whether a feature column is numeric or categorical, decided once at upload per distinct
value, and the profile (range, categories, missing) that the model's forms and checks are built from."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from churn_core.errors import ValidationError
from churn_core.paths import entry_module
from churn_core.data.cells import Cells
from churn_core.wording import MAX_LISTED, list_names, plural, show

_rules = entry_module("dataset_schema")  # the cell rules training applies: one source of truth

NUMERIC_SHARE = 0.8  # a column this numeric is a number column with stray text, not a category
ID_UNIQUE_SHARE = 0.95  # a text column with this share of distinct values identifies rows
# A value pandas parses to a finite number always looks like this (ASCII digits); one that does not is text.
_NUMBER_LIKE = r"^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$"


@dataclass
class FeatureProfile:
    """What one feature column looks like; the model's forms and checks are built from this."""

    name: str
    kind: str  # "numeric" | "categorical"
    min: float | None = None
    max: float | None = None
    median: float | None = None
    mean: float | None = None
    categories: list[str] = field(default_factory=list)  # most common first
    missing: int = 0
    unique: int = 0
    decimals: int = 0  # digits after the point the file writes (numbers are shown to that precision)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Column:
    """How one column is typed: per distinct value (so the typed column is built only when asked for)."""

    name: str
    kind: str  # "numeric" | "categorical"
    profile: FeatureProfile
    per_unique: np.ndarray  # numeric: the number of each distinct value (NaN: missing); categorical: missing?
    numeric_integers: bool = False
    all_present: bool = False

    def series(self, cells: "Cells", rows: np.ndarray | None = None) -> pd.Series:
        """The typed column (of ``rows`` only, when given): numbers, or text with NaN where missing."""
        if self.kind == "numeric":
            codes = cells.codes if rows is None else cells.codes[rows]
            numbers = self.per_unique[codes] if len(self.per_unique) else np.zeros(0, dtype=float)
            if self.numeric_integers and self.all_present:
                numbers = numbers.astype(np.int64)
            return pd.Series(numbers, name=self.name)
        return pd.Series(cells.objects(self.per_unique, rows), dtype=object, name=self.name)


_PARSE_SLICE = 65536


def _numeric_parse(cells: "Cells", candidate_u: np.ndarray, counts: np.ndarray,
                   n_candidates: int) -> np.ndarray | None:
    """The number each candidate distinct value parses to (NaN when it is not one), or None as soon as the
    values that are not numbers already hold more than ``1 - NUMERIC_SHARE`` of the rows: then the column is
    text whatever the rest holds (a column of a million IDs is not parsed to the end)."""
    parsed = np.full(cells.n_uniques(), np.nan)
    idx = np.flatnonzero(candidate_u)
    if not len(idx):
        return parsed
    if cells.arrow is not None:
        import pyarrow as pa
        import pyarrow.compute as pc

        values = cells.arrow.take(pa.array(idx))
        looks = pc.match_substring_regex(values, _NUMBER_LIKE).to_numpy(zero_copy_only=False).astype(bool)
        if int(counts[idx][~looks].sum()) > (1 - NUMERIC_SHARE) * n_candidates:
            return None  # text in too many rows to be a number column: no need to parse any of it
        if looks.all():
            try:  # Arrow's parser: every candidate a number, the common case for a numeric column
                parsed[idx] = pc.cast(values, pa.float64()).to_numpy(zero_copy_only=False)
                return parsed
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                pass
    order = idx[np.argsort(-counts[idx], kind="stable")]
    text_rows, limit = 0, (1 - NUMERIC_SHARE) * n_candidates
    for start in range(0, len(order), _PARSE_SLICE):
        part = order[start:start + _PARSE_SLICE]
        if cells.arrow is not None:
            import pyarrow as pa

            values = cells.arrow.take(pa.array(part)).to_pylist()
        else:
            values = [cells.uniques[i] for i in part]
        numbers = np.asarray(pd.to_numeric(pd.Series(values, dtype=object), errors="coerce"), dtype=float)
        parsed[part] = numbers
        text_rows += int(counts[part][~np.isfinite(numbers)].sum())
        if text_rows > limit:
            return None
    return parsed


def _decimals(cells: "Cells", mask: np.ndarray) -> int:
    """Digits after the point the file writes, over the distinct values in ``mask`` (``decimals_of``)."""
    idx = np.flatnonzero(mask)
    if cells.arrow is None or not len(idx):
        return _rules.decimals_of([cells.uniques[i] for i in idx])
    import pyarrow as pa
    import pyarrow.compute as pc

    values = cells.arrow.take(pa.array(idx))
    point = pc.find_substring(values, ".").to_numpy(zero_copy_only=False)
    length = pc.binary_length(values).to_numpy(zero_copy_only=False)
    exponent = pc.match_substring(values, "e", ignore_case=True).to_numpy(zero_copy_only=False)
    digits = np.where((point >= 0) & ~exponent, length - point - 1, 0)
    return int(min(int(digits.max()) if len(digits) else 0, _rules.MAX_DECIMALS))


def _safe_stat(stat, values: np.ndarray) -> float:
    """A mean or median that stays finite even for values near the float limit (scaled down first)."""
    with np.errstate(over="ignore", invalid="ignore"):
        result = float(stat(values))
        if not math.isfinite(result):
            result = float(stat(values / 4.0)) * 4.0
    return result if math.isfinite(result) else float(np.clip(result, values.min(), values.max()))


class StrayText(Exception):
    def __init__(self, name: str, share: float, offenders: list[tuple[int, str]], total: int):
        super().__init__(name)
        self.name, self.share, self.offenders, self.total = name, share, offenders, total


def _looks_like_ids(unique: int, present: int, rows: int) -> bool:
    return present >= max(20, rows // 2) and unique / present >= ID_UNIQUE_SHARE


def _sorted_categories(cells: Cells, idx: np.ndarray, counts: np.ndarray) -> list[str]:
    """Distinct values ``idx``, most common first (ties by value, as Python sorts text)."""
    if cells.arrow is not None and len(idx) > 1000:
        import pyarrow as pa
        import pyarrow.compute as pc

        table = pa.table({"count": pa.array(counts[idx]), "value": cells.arrow.take(pa.array(idx))})
        order = pc.sort_indices(table, sort_keys=[("count", "descending"), ("value", "ascending")])
        return table.column("value").take(order).to_pylist()  # UTF-8 byte order is code point order
    present = [(cells.uniques[i], int(counts[i])) for i in idx]
    return [v for v, _ in sorted(present, key=lambda item: (-item[1], item[0]))]


def categorical(name: str, cells: Cells, missing_u: np.ndarray, want_categories: bool = True) -> Column:
    counts = cells.counts()
    idx = np.flatnonzero((counts > 0) & ~missing_u)
    missing = int(counts[missing_u].sum()) if len(counts) else 0
    rows = len(cells)
    # The categories of a column that will be dropped as identifiers are never shown: not sorted either.
    wanted = want_categories and not _looks_like_ids(len(idx), rows - missing, rows)
    profile = FeatureProfile(
        name=name,
        kind="categorical",
        categories=_sorted_categories(cells, idx, counts) if wanted else [],
        missing=missing,
        unique=len(idx),
    )
    return Column(name, "categorical", profile, missing_u)


def type_column(name: str, cells: Cells, row_numbers: np.ndarray, want_categories: bool = True) -> Column:
    """Decide numeric vs categorical and profile the column."""
    n = len(cells)
    counts = cells.counts()
    missing_u = cells.missing_per_unique()
    soft_u = cells.soft_missing_per_unique()
    candidate_u = ~missing_u & ~soft_u & (counts > 0)
    n_candidates = int(counts[candidate_u].sum())
    parsed_u = _numeric_parse(cells, candidate_u, counts, n_candidates)
    if parsed_u is None:
        return categorical(name, cells, missing_u, want_categories)
    finite_u = np.isfinite(parsed_u)
    n_numeric = int(counts[candidate_u & finite_u].sum())
    if n_candidates and n_numeric == n_candidates:
        value_u = np.where(candidate_u & finite_u, parsed_u, np.nan)
        numbers = cells.flags(value_u).astype(float)
        present = numbers[~np.isnan(numbers)]
        n_missing = int(n - len(present))
        whole = bool(np.all(present == np.round(present))) and bool(np.all(np.abs(present) < 2**53))
        profile = FeatureProfile(
            name=name,
            kind="numeric",
            min=float(present.min()),
            max=float(present.max()),
            median=_safe_stat(np.median, present),
            mean=_safe_stat(np.mean, present),
            missing=n_missing,
            unique=int(len(np.unique(value_u[candidate_u & finite_u]))),
            decimals=_decimals(cells, candidate_u & finite_u),
        )
        return Column(name, "numeric", profile, value_u, numeric_integers=whole, all_present=n_missing == 0)
    if n_candidates and n_numeric / n_candidates >= NUMERIC_SHARE:
        bad_rows = np.flatnonzero(cells.flags(candidate_u & ~finite_u))
        offenders = [(int(row_numbers[i]), cells.value(int(i))) for i in bad_rows[:MAX_LISTED]]
        raise StrayText(name, n_numeric / n_candidates, offenders, len(bad_rows))
    return categorical(name, cells, missing_u, want_categories)


def raise_stray(stray: list[StrayText]) -> None:
    first = stray[0]
    shown = ", ".join(f"{show(v)} (row {r:,})" for r, v in first.offenders)
    more = f" and {first.total - len(first.offenders):,} more" if first.total > len(first.offenders) else ""
    also = f" The same problem is in {list_names(s.name for s in stray[1:])}." if len(stray) > 1 else ""
    raise ValidationError(
        f"Column {show(first.name)} looks numeric ({first.share:.0%} of its values are numbers) but has text "
        f"in {plural(first.total, 'row')}: {shown}{more}. Row numbers are as a spreadsheet shows them "
        f"(the header is row 1, the first data row is row 2).{also} Fix those cells or leave them blank, "
        "then upload again."
    )


def id_like_by_values(column: Column, rows: int) -> str | None:
    p = column.profile
    present = rows - p.missing
    if present < max(20, rows // 2):
        return None
    if p.kind == "categorical" and p.unique / present >= ID_UNIQUE_SHARE:
        return f"ID-like: a different value in {p.unique / present:.0%} of rows; it identifies customers"
    if p.kind == "numeric" and column.numeric_integers and p.missing == 0 and p.unique == rows:
        if p.max - p.min + 1 == rows:
            return "ID-like: consecutive whole numbers, one per row (a row number)"
        if p.min >= 100_000:
            return "ID-like: a different large whole number in every row (an account or phone number)"
    return None
