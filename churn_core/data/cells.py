"""A column of an upload held compactly: its distinct stripped values plus a code per row.

Validation, typing and the stored splits all read columns through these two classes, so a million-row
upload never holds a Python object per cell.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from churn_core.paths import entry_module

_rules = entry_module("dataset_schema")  # the cell rules training applies: one source of truth

_NA_ALWAYS = _rules.MISSING_ALWAYS
_NA_IN_NUMERIC = _rules.MISSING_IN_NUMBERS

# Python's str.strip() whitespace, as an RE2 class (Arrow's regex engine): a distinct value touching one of these
# needs stripping.
_PY_SPACE = r"[\t\n\x0b\x0c\r\x1c-\x1f \x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}]"
_EDGE_SPACE = f"^{_PY_SPACE}|{_PY_SPACE}$"
_STRIP = f"^{_PY_SPACE}+|{_PY_SPACE}+$"


class Cells:
    """One column as its distinct stripped values plus a code per row (all row-wise work stays in C).

    From the exact reader it is built from the raw cells; from Arrow (``csv_arrow``) from codes and the
    distinct values as an Arrow array (``arrow``), which keeps work per distinct value vectorised too: a
    column of a million IDs never becomes a million Python strings unless something asks for them."""

    __slots__ = ("codes", "_uniques", "_lowered", "arrow", "_counts", "_missing")

    def __init__(self, raw: np.ndarray | None = None, codes: np.ndarray | None = None, dictionary=None):
        self.arrow = None
        self._lowered = None
        self._counts = None
        self._missing = None
        if dictionary is not None:
            self._from_arrow(codes, dictionary)
            return
        if len(raw):
            codes, uniques = pd.factorize(raw, use_na_sentinel=False)
            stripped = np.empty(len(uniques), dtype=object)
            stripped[:] = [(u if isinstance(u, str) else str(u)).strip() for u in uniques]
            codes2, uniques2 = pd.factorize(stripped, use_na_sentinel=False)
            self.codes = np.asarray(codes2, dtype=np.intp)[codes]
            self._uniques = [str(u) for u in uniques2]
        else:
            self.codes = np.empty(0, dtype=np.intp)
            self._uniques = []

    def _from_arrow(self, codes: np.ndarray, dictionary) -> None:
        import pyarrow.compute as pc

        self._uniques = None
        self._counts = None
        if len(dictionary) and pc.any(pc.match_substring_regex(dictionary, _EDGE_SPACE)).as_py():
            # str.strip(), in Arrow: the same whitespace, then values that became equal share one code
            stripped = pc.dictionary_encode(pc.replace_substring_regex(dictionary, _STRIP, ""))
            self.codes = stripped.indices.to_numpy(zero_copy_only=False)[codes]
            self.arrow = stripped.dictionary
        else:
            self.codes = codes
            self.arrow = dictionary

    @property
    def uniques(self) -> list[str]:
        if self._uniques is None:
            self._uniques = self.arrow.to_pylist()
        return self._uniques

    @property
    def lowered(self) -> list[str]:
        if self._lowered is None:
            self._lowered = [u.lower() for u in self.uniques]
        return self._lowered

    def n_uniques(self) -> int:
        return len(self.arrow) if self._uniques is None else len(self._uniques)

    def __len__(self) -> int:
        return len(self.codes)

    def flags(self, per_unique) -> np.ndarray:
        """Spread one boolean (or number) per distinct value over the rows."""
        return np.asarray(per_unique)[self.codes] if self.n_uniques() else np.zeros(0, dtype=bool)

    def counts(self) -> np.ndarray:
        if self._counts is None:
            self._counts = np.bincount(self.codes, minlength=self.n_uniques())
        return self._counts

    def _in_lowered(self, values: frozenset) -> np.ndarray:
        if self.arrow is not None and self._lowered is None:
            import pyarrow as pa
            import pyarrow.compute as pc

            found = pc.is_in(pc.utf8_lower(self.arrow), value_set=pa.array(sorted(values), type=pa.string()))
            return found.to_numpy(zero_copy_only=False).astype(bool)
        return np.array([v in values for v in self.lowered], dtype=bool)

    def missing_per_unique(self) -> np.ndarray:
        if self._missing is None:
            self._missing = self._in_lowered(_NA_ALWAYS)
        return self._missing

    def soft_missing_per_unique(self) -> np.ndarray:
        return self._in_lowered(_NA_IN_NUMERIC)

    def blank_per_unique(self) -> np.ndarray:
        if self.arrow is not None:
            import pyarrow.compute as pc

            return pc.equal(pc.binary_length(self.arrow), 0).to_numpy(zero_copy_only=False).astype(bool)
        return np.array([v == "" for v in self.uniques], dtype=bool)

    def blank_rows(self) -> np.ndarray | None:
        """Whether each row's cell is blank; None when no cell of the column is."""
        blank_u = self.blank_per_unique()
        return self.flags(blank_u) if blank_u.any() else None

    def all_missing(self) -> bool:
        return not len(self) or not bool(self.counts()[~self.missing_per_unique()].any())

    def coded(self) -> "Cells":
        return self

    def keep(self, mask: np.ndarray) -> None:
        self.codes = self.codes[mask]
        self._counts = None

    def value(self, row: int) -> str:
        code = int(self.codes[row])
        return self.arrow[code].as_py() if self._uniques is None else self._uniques[code]

    def texts(self) -> np.ndarray:
        """Object array of every row's stripped text."""
        return self.objects(np.zeros(self.n_uniques(), dtype=bool))

    def objects(self, missing_per_unique: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """Object array of str, NaN where missing (of ``rows`` only, when given)."""
        table = np.empty(self.n_uniques(), dtype=object)
        table[:] = self.uniques
        table[missing_per_unique] = np.nan
        codes = self.codes if rows is None else self.codes[rows]
        return table[codes] if self.n_uniques() else np.empty(0, dtype=object)

    def dictionary_array(self, rows: np.ndarray | None = None):
        """The column (or ``rows`` of it) as an Arrow dictionary array of its stripped text."""
        import pyarrow as pa

        values = self.arrow if self.arrow is not None else pa.array(self.uniques, type=pa.string())
        codes = self.codes if rows is None else self.codes[rows]
        return pa.DictionaryArray.from_arrays(pa.array(np.asarray(codes, dtype=np.int32)), values)


class TextColumn:
    """A column left as Arrow text, never coded unless asked: what validation computes nothing from (a column
    named like an identifier is dropped by its name; only its text is stored with the splits)."""

    __slots__ = ("column", "_coded")

    def __init__(self, column):
        self.column = column
        self._coded: Cells | None = None

    def __len__(self) -> int:
        return len(self.column)

    def coded(self) -> Cells:
        if self._coded is None:
            import pyarrow as pa
            import pyarrow.compute as pc

            chunks = pc.dictionary_encode(self.column).chunks  # one memo table: the last chunk has every value
            if chunks:
                codes = np.concatenate([c.indices.to_numpy(zero_copy_only=False) for c in chunks])
                self._coded = Cells(codes=codes, dictionary=chunks[-1].dictionary)
            else:
                self._coded = Cells(codes=np.zeros(0, dtype=np.int32), dictionary=pa.array([], type=pa.string()))
        return self._coded

    def _stripped(self):
        import pyarrow.compute as pc

        if pc.any(pc.match_substring_regex(self.column, _EDGE_SPACE)).as_py():
            return pc.replace_substring_regex(self.column, _STRIP, "")
        return self.column

    def blank_rows(self) -> np.ndarray | None:
        import pyarrow.compute as pc

        blank = pc.equal(pc.binary_length(self._stripped()), 0)
        return blank.to_numpy().astype(bool) if pc.any(blank).as_py() else None

    def all_missing(self) -> bool:
        if len(self.column) and str(self.column[0].as_py()).strip().lower() not in _NA_ALWAYS:
            return False  # one value is enough to know it is not empty
        return self.coded().all_missing()

    def keep(self, mask: np.ndarray) -> None:
        import pyarrow as pa

        self.column = self.column.filter(pa.array(mask))
        self._coded = None

    def texts(self) -> np.ndarray:
        return np.asarray(self._stripped().to_numpy(zero_copy_only=False), dtype=object)

    def dictionary_array(self, rows: np.ndarray | None = None):
        import pyarrow as pa

        stripped = self._stripped()
        return stripped if rows is None else stripped.take(pa.array(rows))
