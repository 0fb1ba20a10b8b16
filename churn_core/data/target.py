"""The target column: which column it probably is, reading it as 0/1 by training's own rule, and enough
rows of each class for a stratified split."""

from __future__ import annotations

import re

import numpy as np

from churn_core.errors import ValidationError
from churn_core.paths import entry_module
from churn_core.data.cells import Cells
from churn_core.wording import MAX_LISTED, noun, plural, show

_rules = entry_module("dataset_schema")  # the cell rules training applies: one source of truth

MIN_PER_CLASS = 5  # a stratified split needs each class in both train and test

_TARGET_NAMES = ("churn", "churned", "churnflag", "exited", "attrition", "left", "cancelled", "canceled")


def guess_target(columns: list[str]) -> str | None:
    """The column that most likely says whether a customer left, or None when no name says so."""
    normalized = {re.sub(r"[^a-z0-9]", "", c.lower()): c for c in columns}
    for name in _TARGET_NAMES:
        if name in normalized:
            return normalized[name]
    return next((c for c in columns if "churn" in c.lower()), None)


def parse_target(name: str, cells: Cells, row_numbers: np.ndarray) -> tuple[np.ndarray, str]:
    counts = cells.counts()
    missing_u = cells.missing_per_unique()
    codes = [_rules.label_of(v) for v in cells.uniques]  # training reads the target by the same rule
    code_u = np.array(
        [-1 if missing_u[i] or c is None else (-2 if c == -1 else c) for i, c in enumerate(codes)], dtype=np.int64
    )
    present = counts > 0
    invalid = [(cells.uniques[i], int(counts[i])) for i in np.flatnonzero(present & (code_u == -2))]
    if invalid:
        invalid.sort(key=lambda item: (-item[1], item[0]))
        shown = ", ".join(f"{show(v)} ({plural(n, 'row')})" for v, n in invalid[:MAX_LISTED])
        more = f" and {len(invalid) - MAX_LISTED} more" if len(invalid) > MAX_LISTED else ""
        raise ValidationError(
            f"The target column {show(name)} is not binary: it must hold two values, one meaning the customer "
            f"left and one meaning they stayed (0/1, yes/no, true/false or y/n, any case). It also has other "
            f"values: {shown}{more}. Choose another target column or recode those values."
        )
    target = cells.flags(code_u) if len(cells) else np.zeros(0, dtype=np.int64)
    blank = np.flatnonzero(target == -1)
    if len(blank):
        rows = row_numbers[blank[:MAX_LISTED]]
        shown = ", ".join(f"{r:,}" for r in rows) + (", …" if len(blank) > MAX_LISTED else "")
        raise ValidationError(
            f"{plural(len(blank), 'row')} {noun(len(blank), 'has', 'have')} no value in the target column "
            f"{show(name)} (rows {shown}; the header is row 1). Fill in the target for those rows or delete them."
        )
    return target.astype(np.int64), str(_rules.positive_label_of(cells.uniques, counts.tolist()))


def check_classes(name: str, target: np.ndarray, cells: Cells) -> None:
    n_pos = int(target.sum())
    n_neg = int(len(target) - n_pos)
    if n_pos == 0 or n_neg == 0:
        meaning = "churned" if n_neg == 0 else "stayed"
        raise ValidationError(
            f"Only one class: every row has {show(name)} = {show(cells.value(0))}, i.e. every customer {meaning}. "
            "A churn model needs both customers who left and customers who stayed; add rows of the other "
            "class or choose another target column."
        )
    for count, label in ((n_pos, "churned (positive)"), (n_neg, "stayed (negative)")):
        if count < MIN_PER_CLASS:
            raise ValidationError(
                f"Too few rows of one class: only {count} {'row is' if count == 1 else 'rows are'} {label} in "
                f"{show(name)}; at least {MIN_PER_CLASS} of each class are needed so that both the training and "
                "the test split contain some. Add more rows of that class."
            )
