"""Validate an uploaded churn CSV entirely in memory, before anything is stored.

``validate_csv(data, target)`` takes the raw bytes of an upload and either returns a
:class:`ValidatedTable` (the parsed, typed table plus a profile of every feature) or
raises :class:`~churn_core.errors.ValidationError` whose message says what is wrong
and what to do about it. Nothing here touches the disk.

The checks run from the outside in: size and emptiness, other file formats (Excel,
Parquet, gzip, JSON, …), binary content, text encoding, CSV structure (header, column
names, ragged rows), the target column, row and class counts, and finally each
feature column (empty, numeric with stray text, constant, ID-like).

Each step has its module: ``decoding`` (bytes → text), ``csv_readers`` (text → cells), ``cells``,
``headers``, ``target``, ``column_types``; this one runs them in order and keeps the result.

Conventions used in messages:

* *line* numbers count physical lines of the file, the header being line 1;
* *row* numbers count rows as a spreadsheet shows them: the header is row 1, the
  first data row is row 2.

Missing values: a blank cell, or one of ``NA``, ``N/A``, ``NaN``, ``null``, ``#N/A``,
``<NA>`` (any case), is missing in every column. In a column that is otherwise numeric,
``None``, ``-`` and ``?`` also count as missing; in a text column they stay categories.
"""

from __future__ import annotations

import difflib
import io
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from churn_core.errors import ValidationError
from churn_core.paths import entry_module
from churn_core.data.cells import Cells, TextColumn
from churn_core.data.column_types import (
    Column, FeatureProfile, StrayText, categorical, id_like_by_values, raise_stray, type_column,
)
from churn_core.data.csv_readers import raise_ragged, read_fast_source, read_table
from churn_core.data.decoding import file_text
from churn_core.data.headers import check_header, is_id_name, is_row_counter
from churn_core.data.target import check_classes, parse_target
from churn_core.wording import MAX_LISTED, column_letter, list_names, noun, plural, show

_rules = entry_module("dataset_schema")  # the cell rules training applies: one source of truth

MIN_ROWS = 50  # fewest data rows a file needs to be split and trained on
HIGH_CARDINALITY = 50  # categorical columns with more distinct values get a warning


@dataclass(eq=False)
class ValidatedTable:
    """A CSV that passed every check, with what was learned about it.

    Every column is kept compactly (a code per row and its distinct values), so a million-row upload
    holds no Python object per cell. ``frame`` (typed: target 0/1, numbers as numbers, ID columns kept)
    and ``text`` (every named column as the file wrote it, stripped: what the stored splits hold) are
    built when first asked for; ``preview`` builds a few rows, ``write_csv`` writes rows of the text
    straight to CSV bytes, and :meth:`schema` is the one decision about what each column is.
    """

    target: str
    positive_label: str
    features: list[FeatureProfile]
    dropped: dict[str, str]
    warnings: list[str]
    encoding: str
    columns: list[str] = field(default_factory=list)  # every named column, in file order
    target_values: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64), repr=False)
    _cells: dict = field(default_factory=dict, repr=False)  # name -> Cells (stripped text)
    _typing: dict = field(default_factory=dict, repr=False)  # name -> Column (how it is typed)
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def rows(self) -> int:
        return int(len(self.target_values))

    @property
    def churn_rate(self) -> float:
        return float(self.target_values.mean()) if len(self.target_values) else 0.0

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def id_columns(self) -> list[str]:
        return [name for name, reason in self.dropped.items() if reason.startswith("ID-like")]

    def _typed(self, name: str, rows: np.ndarray | None = None) -> pd.Series:
        if name == self.target:
            values = self.target_values if rows is None else self.target_values[rows]
            return pd.Series(values, name=name)
        typing, cells = self._typing[name], self._cells[name]
        if typing.kind == "deferred":  # an identifier column left as text at upload: typed now
            coded = cells.coded()
            try:
                typing = type_column(name, coded, np.arange(2, len(coded) + 2), want_categories=False)
            except StrayText:
                typing = categorical(name, coded, coded.missing_per_unique(), want_categories=False)
            self._typing[name] = typing
        return typing.series(cells.coded(), rows)

    def _typed_frame(self, rows: np.ndarray | None = None) -> pd.DataFrame:
        names = [n for n in self.columns if n == self.target or n in self._typing]
        return pd.DataFrame({n: self._typed(n, rows) for n in names}, columns=names)

    @property
    def frame(self) -> pd.DataFrame:
        """Typed: target 0/1, numbers as numbers, text with NaN where missing (built on first use)."""
        if "frame" not in self._cache:
            self._cache["frame"] = self._typed_frame()
        return self._cache["frame"]

    @property
    def text(self) -> pd.DataFrame:
        """Every named column as the file wrote it, stripped (built on first use)."""
        if "text" not in self._cache:
            self._cache["text"] = pd.DataFrame({n: self._cells[n].texts() for n in self.columns}, columns=self.columns)
        return self._cache["text"]

    def preview(self, rows: int = 20) -> pd.DataFrame:
        """The first ``rows`` rows, typed as ``frame`` (without building all of it)."""
        return self._typed_frame(np.arange(min(rows, self.rows)))

    def text_preview(self, rows: int = 20) -> pd.DataFrame:
        """The first ``rows`` rows as ``text`` has them (as the file wrote them), without building all of it."""
        picked = np.arange(min(rows, self.rows))
        return pd.DataFrame({n: self._cells[n].dictionary_array(picked).to_pylist() for n in self.columns},
                            columns=self.columns, dtype=object)

    def write_csv(self, rows: np.ndarray | None = None) -> bytes:
        """These rows (all when None) of the text, as CSV bytes with a header (every value quoted)."""
        import pyarrow as pa
        import pyarrow.csv as pacsv

        table = pa.table({n: self._cells[n].dictionary_array(rows) for n in self.columns})
        buffer = io.BytesIO()
        pacsv.write_csv(table, buffer)
        return buffer.getvalue()

    def schema(self) -> dict:
        """The dataset schema training applies (``entry/dataset_schema.py`` reads it)."""
        return {
            "format": _rules.SCHEMA_FORMAT,
            "target": self.target,
            "positive_label": self.positive_label,
            "features": [f.to_dict() for f in self.features],
            "dropped": dict(self.dropped),
            "id_columns": self.id_columns,
        }

    def training_frame(self) -> pd.DataFrame:
        """The target and the features, typed: what a model learns from."""
        return self.frame[[self.target, *self.feature_names]].copy()


def validate_csv(data: bytes, target: str = "Churn", max_bytes: int | None = None) -> ValidatedTable:
    """Check an uploaded CSV in memory and return it parsed, or raise ``ValidationError``.

    ``data`` is the file's bytes; ``target`` names the column that says whether the customer left;
    ``max_bytes`` is the upload limit (``None``: no limit).
    """
    fast = read_fast_source(data, max_bytes)
    if fast is not None:  # a well-formed UTF-8 file: Arrow, no Python object per cell
        table, encoding, warnings = fast
        del data
    else:  # anything else (other encodings, blank lines, ragged rows ...): the text route explains it
        text, encoding, delimiter, warnings = file_text(data, max_bytes)
        del data
        table = read_table(text, delimiter)
        del text
    header = [h.strip() for h in table.header]
    check_header(header)
    if table.cells is None and table.columns is None:
        raise_ragged(table)
    cells = table.cells if table.cells is not None else [Cells(column) for column in table.columns]
    table.columns = table.cells = None  # the raw cells are no longer needed
    row_numbers = table.row_numbers

    # Rows whose every cell is blank (",,,") are no customers.
    blank_rows = []
    # coded columns first: one without a blank cell settles it before any text column is looked at
    for c in sorted(cells, key=lambda c: isinstance(c, TextColumn)) if len(row_numbers) else []:
        rows_blank = c.blank_rows()
        if rows_blank is None:  # this column has no blank cell: no row is blank everywhere
            blank_rows = []
            break
        blank_rows.append(rows_blank)
    if blank_rows:
        blank = np.logical_and.reduce(blank_rows)
        if blank.any():
            for c in cells:
                c.keep(~blank)
            row_numbers = row_numbers[~blank]
    n_rows = len(row_numbers)
    inner_blank = int(row_numbers[-1] - table.header_row - n_rows) if n_rows else 0
    if inner_blank:
        warnings.append(f"Skipped {plural(inner_blank, 'empty row')} between data rows.")

    # Columns without a name: a trailing separator (all blank) or a saved pandas index are harmless.
    keep: list[int] = []
    unnamed_errors: list[int] = []
    for i, name in enumerate(header):
        if name:
            keep.append(i)
        elif cells[i].all_missing():
            warnings.append(f"Ignored column {column_letter(i)}: it has no name and no values.")
        elif is_row_counter(cells[i].coded()):
            warnings.append(f"Ignored column {column_letter(i)}: it has no name and only counts rows (a saved index).")
        else:
            unnamed_errors.append(i)
    if unnamed_errors:
        cols = ", ".join(f"column {i + 1} ({column_letter(i)})" for i in unnamed_errors[:MAX_LISTED])
        raise ValidationError(
            f"Blank column name: {cols} {noun(len(unnamed_errors), 'has', 'have')} no name in the header row "
            f"but {'holds' if len(unnamed_errors) == 1 else 'hold'} values. Give every column a name and upload again."
        )
    names = [header[i] for i in keep]
    cells = [cells[i] for i in keep]

    if not isinstance(target, str) or not target.strip():  # after the file's own problems: those come first
        raise ValidationError(
            "Choose the target column: the column that says whether the customer left (e.g. 'Churn')."
        )
    target = target.strip()
    if target not in names:
        by_lower = {n.lower(): n for n in names}
        guess = by_lower.get(target.lower())
        if guess is None:
            close = difflib.get_close_matches(target.lower(), list(by_lower), n=1, cutoff=0.6)
            guess = by_lower[close[0]] if close else None
        hint = f" Did you mean {show(guess)}?" if guess else ""
        raise ValidationError(
            f"The target column {show(target)} is missing: the file has no column with that name.{hint} "
            f"Columns found: {list_names(names)}. Choose the column that says whether the customer left."
        )

    if n_rows < MIN_ROWS:
        raise ValidationError(
            f"Too few rows: the file has {plural(n_rows, 'data row')}; at least {MIN_ROWS} are needed to train a "
            "model and test it on rows it has not seen. Upload a file with more customers."
        )

    cells[names.index(target)] = target_cells = cells[names.index(target)].coded()
    target_codes, positive_label = parse_target(target, target_cells, row_numbers)
    check_classes(target, target_codes, target_cells)

    empty = [n for n, c in zip(names, cells, strict=True) if n != target and c.all_missing()]
    if empty:
        raise ValidationError(
            f"Column {list_names(empty)} {noun(len(empty), 'is', 'are')} entirely empty (no value in any row). "
            "Delete the empty column or fill it in, then upload again."
        )

    typed: dict[str, Column] = {}
    features: list[FeatureProfile] = []
    dropped: dict[str, str] = {}
    stray: list[StrayText] = []
    for name, column_cells in zip(names, cells, strict=True):
        if name == target:
            continue
        id_name = is_id_name(name)
        if isinstance(column_cells, TextColumn):  # dropped by its name: typed only if the frame is asked for
            typed[name] = Column(name, "deferred", FeatureProfile(name=name, kind="categorical"), np.zeros(0))
            dropped[name] = "ID-like: the column name says it identifies customers"
            continue
        try:
            column = type_column(name, column_cells, row_numbers, want_categories=not id_name)
        except StrayText as exc:
            if not id_name:
                stray.append(exc)
                continue
            column = categorical(name, column_cells, column_cells.missing_per_unique(), want_categories=False)
        typed[name] = column
        p = column.profile
        if id_name:
            dropped[name] = "ID-like: the column name says it identifies customers"
        elif p.unique == 1 and p.missing == 0:
            value = p.categories[0] if p.kind == "categorical" else f"{p.min:g}"
            dropped[name] = f"constant: every row has {show(value)}"
        else:
            reason = id_like_by_values(column, n_rows)
            if reason:
                dropped[name] = reason
            else:
                features.append(p)
    if stray:
        raise_stray(stray)

    if not features:
        why = f" (dropped: {'; '.join(f'{show(n)}, {r}' for n, r in dropped.items())})" if dropped else ""
        raise ValidationError(
            f"No feature columns left: besides the target {show(target)} the file has no column a model can learn "
            f"from{why}. Add columns that describe the customers (usage, contract, calls, …)."
        )

    # Warnings, most actionable first.
    with_missing = [p for p in features if p.missing]
    if with_missing:
        parts = ", ".join(f"{show(p.name)} ({p.missing:,} of {n_rows:,} rows)" for p in with_missing)
        warnings.append(
            f"Missing values in {plural(len(with_missing), 'column')}: {parts}. "
            "Those cells are blank; training has to fill them in."
        )
    constant = [n for n, r in dropped.items() if r.startswith("constant")]
    if constant:
        warnings.append(
            f"Dropped constant {'column' if len(constant) == 1 else 'columns'} {list_names(constant)}: the same value "
            "in every row cannot help a model."
        )
    id_like = [n for n, r in dropped.items() if r.startswith("ID-like")]
    if id_like:
        warnings.append(
            f"Dropped ID-like {'column' if len(id_like) == 1 else 'columns'} {list_names(id_like)}: "
            "identifiers name customers rather than describe them, so a model cannot learn from them."
        )
    wide = [p for p in features if p.kind == "categorical" and p.unique > HIGH_CARDINALITY]
    if wide:
        warnings.append(
            "Many distinct values in "
            + ", ".join(f"{show(p.name)} ({p.unique:,})" for p in wide)
            + ": a model learns little from a category that few customers share."
        )

    return ValidatedTable(
        target=target,
        positive_label=positive_label,
        features=features,
        dropped=dropped,
        warnings=warnings,
        encoding=encoding,
        columns=list(names),
        target_values=target_codes,
        _cells=dict(zip(names, cells, strict=True)),
        _typing=typed,
    )


__all__ = [
    "MIN_ROWS",
    "ValidatedTable",
    "validate_csv",
]
