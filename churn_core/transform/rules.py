"""Batch transform jobs: the rules both backends share.

A transform job scores a whole CSV file with a trained model and writes two files to the bucket:

* ``transforms/<job>/output/results.csv``: one line per scored input line, in input order:
  ``line`` (its line number in the input, the header being line 1), the kept columns (by default
  the model's ID columns and every other non-feature column of the input), ``churn_probability``,
  ``predicted_churn`` (1 when the probability is above the model's threshold) and ``warnings``; a kept
  column named like a column the results add (``line``, ``risk``, ...) is kept as ``input_<name>``
  (``scored_rows.kept_names``), so the model's scores are never hidden behind an input's;
* ``transforms/<job>/output/errors.csv``: ``line,problem`` for every line that could not be scored.

Together they account for every non-blank line of the input. This module reads the input's header
and decides the columns, names the objects, reads the results back (whole, summarised or escaped
for a spreadsheet). The scoring itself is ``entry/table_scoring.py``, the model's own code; the columns
of a scored row are ``entry/scored_rows.py``'s.
"""

from __future__ import annotations

import csv
import io
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, NamedTuple

import pandas as pd

from churn_core.data.csv_export import write_download_csv
from churn_core.errors import ValidationError
from churn_core.paths import entry_module
from churn_core.wording import lacks_features, noun

_rows = entry_module("scored_rows")  # the one home of the scored-row format
OUTPUT_COLUMNS = _rows.OUTPUT_COLUMNS
REASON_COLUMN = _rows.TOP_REASON  # last, when the job asked for reasons
ERROR_COLUMNS = _rows.ERROR_COLUMNS
SEPARATORS = (",", ";", "\t", "|")
MAX_LINE_BYTES = 1 << 20  # the longest line a transform reads (the header too): 1 MB; a longer one is a line error
HEAD_BYTES = MAX_LINE_BYTES  # the header line must fit in the first megabyte
INTERACTIVE_MAX_ROWS = 20_000  # the Predict page scores up to this many rows through an endpoint
HISTOGRAM_BINS = 20
READ_CHUNK_ROWS = 200_000


class TransformInputError(ValidationError):
    """The input cannot be scored at all (its columns do not fit the model): the job fails with this."""


@dataclass(frozen=True)
class Header:
    names: list[str]
    sep: str
    size: int  # bytes of the header line, its newline included (where the first data line starts)


def transform_prefix(name: str) -> str:
    """Everything a transform job keeps in the bucket (input, results, errors; SageMaker's parts) is under it."""
    return f"transforms/{name}/"


def input_key(name: str, file_name: str | None) -> str:
    base = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(file_name or "input.csv").name).strip(".-") or "input.csv"
    if base.lower().endswith((".xlsx", ".xlsm")):  # a workbook is stored as the CSV of its first sheet
        base = base.rsplit(".", 1)[0] + ".csv"
    return f"transforms/{name}/input/{base}"


def output_keys(name: str) -> tuple[str, str]:
    return f"transforms/{name}/output/results.csv", f"transforms/{name}/output/errors.csv"


_CR_ONLY = (" Its lines seem to end with a bare carriage return (old Mac style); save the file as CSV with "
            "Windows (CRLF) or Unix (LF) line ends and submit it again.")


def read_header(head: bytes, features: list[str]) -> Header:
    """The header line of a CSV (UTF-8, BOM allowed) and its separator (the one that finds the features)."""
    end = head.find(b"\n")
    if end < 0:
        if len(head) >= HEAD_BYTES:
            raise TransformInputError("The file's first line is over 1 MB long; it must be a CSV header."
                                      + (_CR_ONLY if b"\r" in head else ""))
        end = len(head)
    raw = head[:end]
    try:
        text = raw.decode("utf-8-sig").rstrip("\r")
    except UnicodeDecodeError:
        raise TransformInputError(
            "The file's header is not UTF-8 text. Save the file as CSV UTF-8 and submit it again.") from None
    if "\r" in text:
        raise TransformInputError("The file's first line holds a carriage return (\\r) before its end." + _CR_ONLY)
    if not text.strip():
        raise TransformInputError("The file is empty or its first line is blank; it must start with a header "
                                  "naming the columns.")
    best: list[str] | None = None
    best_sep = ","
    wanted = set(features)
    for sep in SEPARATORS:
        try:
            names = [c.strip() for c in next(csv.reader([text], delimiter=sep))]
        except csv.Error:  # not this separator (one field over the csv module's field limit, a stray quote)
            continue
        if best is None or (wanted <= set(names) and not wanted <= set(best)):
            best, best_sep = names, sep
            if wanted <= set(names):
                break
    return Header(best or [], best_sep, end + 1)


def _listed(names: list[str], limit: int = 20) -> str:
    """Column names for a message: the first ``limit``, and how many more (a header may name 100,000)."""
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit:,} more" if len(names) > limit else "")


def plan_columns(header: Header, schema: dict, keep: list[str] | None) -> list[str]:
    """The columns to keep in the results; TransformInputError naming the columns when the file cannot
    be scored (a feature missing, a column named twice, a kept column that is not there).

    Linear in the number of columns (sets, never ``list.count`` or ``in`` on a list of names): the 1 MB
    header allows about 150,000 columns."""
    features = [f["name"] for f in schema["features"]]
    names = header.names
    present: set[str] = set()
    twice: set[str] = set()
    for n in names:
        (twice if n in present else present).add(n)
    if twice:
        raise TransformInputError(f"The file names the {noun(len(twice), 'column')} {_listed(sorted(twice))} "
                                  "more than once; "
                                  "rename them so each column has one name.")
    missing = [f for f in features if f not in present]
    used = set(features)
    if missing:
        ids = set(schema.get("id_columns") or [])
        extra = [n for n in names if n not in used and n not in ids]
        raise TransformInputError(
            lacks_features("The file", missing) + ". Its columns are: "
            f"{_listed(names) or 'none'}"
            + (f" ({_listed(extra)} not used by the model)" if extra else "")
            + f". The model needs: {', '.join(features)}.")
    if keep is None:
        return [n for n in names if n not in used]
    unknown = [k for k in keep if k not in present]
    if unknown:
        raise TransformInputError(f"The {noun(len(unknown), 'column')} to keep {_listed(unknown)} "
                                  f"{noun(len(unknown), 'is', 'are')} not in the file; "
                                  f"its columns are: {_listed(names)}.")
    return list(dict.fromkeys(keep))


def clean_keep_columns(keep) -> list[str] | None:
    if keep is None:
        return None
    if isinstance(keep, str):
        keep = [keep]
    try:
        names = [str(k).strip() for k in keep]
    except TypeError:
        raise ValidationError("keep_columns must be a list of column names (or None for the default).") from None
    if any(not n for n in names):
        raise ValidationError("keep_columns holds an empty column name.")
    return names


def check_instance_type(instance_type, offered: list[str]) -> str:
    """The instance type a job runs on: ``offered[0]`` when none is asked for, else one of ``offered``."""
    if instance_type is None:
        return offered[0]
    if isinstance(instance_type, str) and instance_type.strip() in offered:
        return instance_type.strip()
    shown = ", ".join(offered[:8]) + (f" and {len(offered) - 8} more (the Batch page lists them)"
                                      if len(offered) > 8 else "")
    raise ValidationError(f"A transform job cannot run on the instance type {instance_type!r}. Pick one of: {shown}; "
                          f"leave it out for the default, {offered[0]}.")


def line_column(keep: list[str]) -> str:
    """The name of the line-number column: ``line``, unless the input has a column of that name."""
    return _rows.line_column(keep)


class LineBlock(NamedTuple):
    """Whole lines of a file: ``data`` from byte ``offset``, its first line numbered ``first``; or one line over
    ``MAX_LINE_BYTES``, never read into memory: ``data`` empty and ``too_long`` its length in bytes."""

    offset: int
    data: bytes
    first: int
    too_long: int = 0


def long_line_problem(length: int, limit: int = MAX_LINE_BYTES) -> str:
    """Why a line over the limit is set aside (errors.csv), in words."""
    return (f"is {length:,} bytes long; a line may be at most {limit:,} bytes ({limit / (1 << 20):g} MB), so it "
            "was not read. If the file's lines end with a bare carriage return (old Mac style), save it with "
            "Windows (CRLF) or Unix (LF) line ends.")


def whole_line_blocks(path: Path, start: int, block_bytes: int,
                      max_line: int = MAX_LINE_BYTES) -> Iterator[LineBlock]:
    """The file after its header (``start`` bytes) as ``LineBlock``s of whole lines of about ``block_bytes``
    (the header is line 1); only the last block may lack a final newline. A line over ``max_line`` bytes is a
    block of its own with ``too_long`` set, skipped without being held: memory stays within ``block_bytes``
    plus ``max_line`` (a 200 MB line without a newline, or a file whose lines end with a bare CR, included)."""
    line, offset = 2, start  # offset: where the bytes not yet yielded start in the file
    carry = b""
    skipped = 0  # bytes of an overlong line passed so far (its newline not yet found)
    with open(path, "rb") as fh:
        fh.seek(start)
        while True:
            block = fh.read(block_bytes)
            if skipped:
                cut = block.find(b"\n")
                if cut < 0:
                    if not block:
                        yield LineBlock(offset, b"", line, skipped)
                        return
                    skipped += len(block)
                    continue
                yield LineBlock(offset, b"", line, skipped + cut)
                offset, line, skipped = offset + skipped + cut + 1, line + 1, 0
                data = block[cut + 1:]
            elif not block:
                if carry:
                    yield from _split_long(carry, offset, line, max_line)
                return
            else:
                data = carry + block
            cut = data.rfind(b"\n")
            whole, carry = data[: cut + 1], data[cut + 1:]
            if whole:
                yield from _split_long(whole, offset, line, max_line)
                line += whole.count(b"\n")
                offset += len(whole)
            if len(carry) > max_line:  # a line longer than allowed, its end not yet read: skip it from here
                skipped, carry = len(carry), b""


def _split_long(data: bytes, offset: int, line: int, max_line: int) -> Iterator[LineBlock]:
    """``data`` (whole lines, or the file's last line) as one block, or around its lines over ``max_line``."""
    if len(data) <= max_line + 1:
        yield LineBlock(offset, data, line)
        return
    import numpy as np

    ends = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 10)
    if not data.endswith(b"\n"):
        ends = np.append(ends, len(data))
    starts = np.concatenate(([0], ends[:-1] + 1))
    lengths = ends - starts
    done = 0
    for k in np.flatnonzero(lengths > max_line).tolist():
        if starts[k] > done:
            yield LineBlock(offset + done, data[done:starts[k]], line + int(np.count_nonzero(ends < done)))
        yield LineBlock(offset + int(starts[k]), b"", line + k, int(lengths[k]))
        done = int(ends[k]) + 1
    if done < len(data):
        yield LineBlock(offset + done, data[done:], line + int(np.count_nonzero(ends < done)))


def result_columns(keep: list[str], reasons: bool = False) -> list[str]:
    return _rows.result_columns(keep, reasons)


def expected_fields(header: Header) -> str:
    return f"the header names {len(header.names)} columns"


# ---- reading the results back ------------------------------------------------------------------------


def _dtypes(columns: list[str]) -> dict:
    return _rows.result_dtypes(columns)


def with_risk(frame: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """``frame`` (results) with each row's ``risk`` band at the job's threshold, after ``predicted_churn``."""
    from churn_core.decisions.campaign import risk_bands

    return _rows.insert_risk(frame, risk_bands(frame[_rows.PROBABILITY].to_numpy(dtype=float), threshold))


def result_names(source) -> list[str]:
    """The names to read results.csv's columns under (``scored_rows.result_names``: scores found by place, a
    kept column sharing an output's name read as ``input_<name>``); ``source`` is rewound for the next read.
    The header is read as values, never by pandas' header logic (which makes a repeated name ``name.1``)."""
    first = pd.read_csv(source, header=None, nrows=1, dtype=str, keep_default_na=False, na_filter=False)
    if hasattr(source, "seek"):
        source.seek(0)
    return _rows.result_names(first.iloc[0].tolist())


def read_results(source, nrows: int | None = None) -> pd.DataFrame:
    """results.csv as a DataFrame: kept columns as the text the input held, numbers as numbers."""
    names = result_names(source)
    return pd.read_csv(source, header=0, names=names, dtype=_dtypes(names), keep_default_na=False,
                       na_filter=False, nrows=nrows)


def read_errors(source) -> pd.DataFrame:
    frame = pd.read_csv(source, dtype={"line": "int64", "problem": str}, keep_default_na=False, na_filter=False)
    return frame


def result_chunks(source, as_text: bool = False) -> Iterator[pd.DataFrame]:
    """results.csv in chunks under ``result_names``: typed, or (``as_text``, for a download) as the text written."""
    names = result_names(source)
    yield from pd.read_csv(source, header=0, names=names, dtype=str if as_text else _dtypes(names),
                           keep_default_na=False, na_filter=False, chunksize=READ_CHUNK_ROWS)


@dataclass
class ResultSummary:
    rows: int
    predicted_churn: int
    with_warnings: int
    histogram: list[int]  # customers per probability bin of width 1 / HISTOGRAM_BINS
    riskiest: pd.DataFrame  # the highest probabilities first (at most ``top`` rows)

    @property
    def bin_edges(self) -> list[float]:
        return [i / HISTOGRAM_BINS for i in range(HISTOGRAM_BINS + 1)]


def summarise(chunks: Iterable[pd.DataFrame], top: int = 1000) -> ResultSummary:
    """Counts, a probability histogram and the ``top`` riskiest rows, reading the results chunk by chunk."""
    import numpy as np

    rows = churn = warned = 0
    counts = np.zeros(HISTOGRAM_BINS, dtype=np.int64)
    best = None
    for chunk in chunks:
        rows += len(chunk)
        churn += int(chunk[_rows.LABEL].sum())
        warned += int((chunk[_rows.WARNINGS] != "").sum())
        bins = np.clip((chunk[_rows.PROBABILITY].to_numpy() * HISTOGRAM_BINS).astype(int), 0, HISTOGRAM_BINS - 1)
        counts += np.bincount(bins, minlength=HISTOGRAM_BINS)
        pick = chunk.nlargest(top, _rows.PROBABILITY, keep="first")
        best = pick if best is None else pd.concat([best, pick]).nlargest(top, _rows.PROBABILITY, keep="first")
    riskiest = best.reset_index(drop=True) if best is not None else pd.DataFrame()
    return ResultSummary(rows, churn, warned, counts.tolist(), riskiest)


# ---- downloads ----------------------------------------------------------------------------------------


def download_csv(chunks: Iterable[pd.DataFrame]) -> bytes:
    """A large CSV read chunk by chunk as one download-safe file (one header; formulas escaped)."""
    out = io.StringIO()
    for i, chunk in enumerate(chunks):
        write_download_csv(chunk, out, header=i == 0)
    return out.getvalue().encode("utf-8")


def csv_chunks(source, chunk_rows: int = READ_CHUNK_ROWS) -> Iterator[pd.DataFrame]:
    """Any CSV as text chunks (errors.csv for the download)."""
    yield from pd.read_csv(source, dtype=str, keep_default_na=False, na_filter=False, chunksize=chunk_rows)


def local_cpu_count() -> int:
    return max(1, os.cpu_count() or 1)
