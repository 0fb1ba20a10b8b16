"""Score a block of CSV lines by the model's own rules, vectorised: the engine of batch transform.

``score_lines(data, names, model, threshold, keep)`` takes whole CSV lines (bytes, no header; the
caller knows the column names) and returns, in line order, each scorable line's kept columns,
churn probability, label and warnings, and each unscorable line's number and reason. It never
raises for a bad line: one line's problem costs that line only. The local transform job runs it on
chunks of a file; the SageMaker container runs it on each mini-batch a transform job sends.

Each step applies a rule that exists once, elsewhere:

1. *lines*: split on newlines; a line whose field count differs from the columns', with an
   unbalanced quote or not UTF-8 is set aside with its reason (CSV fields may not hold newlines,
   as in SageMaker's ``SplitType: Line``); blank lines are skipped (or reported, where every line
   must be answered);
2. *parse*: pandas' C reader on the good lines, numeric features straight to float64 when every
   cell is a plain number or blank, otherwise as text;
3. *check*: every distinct text of a feature column goes once through ``frames.check_cell``,
   the rule an endpoint applies to a CSV cell, so a line is refused here exactly when an endpoint
   would refuse it, in the same words;
4. *predict*: ``fast_forest.proba_typed`` (proved equal to the pipeline when the model loaded) or the
   pipeline itself; the label is ``probability > threshold``, as ``predict_fn`` decides it;
5. *warnings*: ``guesses.warning_texts`` (``row_warnings`` joined), the one rule for what the model had to guess.

Python 3.9 and pandas 1.1 compatible (it runs in the SageMaker SKLearn container too).
"""

from __future__ import annotations

import csv
import io
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from container_env import REASONS_ENV, TRANSFORM_ENV
import explanations
import fast_forest
import scored_rows
from column_checks import Checked, check_columns, check_frame  # noqa: F401  (3. check; callers ask this module)
from frames import columns_to_frame
from guesses import warning_texts
from request_parser import CheckedRows

NEWLINE, QUOTE, CR, SPACE, TAB = 10, 34, 13, 32, 9
OUTPUT_COLUMNS = scored_rows.OUTPUT_COLUMNS
REASON_BLOCK = 4096  # rows explained at a time (the contributions matrix stays small)


class Lines(object):
    """The good lines of a block (bytes) with their line numbers, and the others with a reason."""

    __slots__ = ("data", "numbers", "problems")

    def __init__(self, data: bytes, numbers: np.ndarray, problems: List[Tuple[int, str]]) -> None:
        self.data = data
        self.numbers = numbers
        self.problems = problems


class Scored(object):
    """What ``score_lines`` found, in line order: the scored lines (numbers, kept columns,
    probabilities, labels, warnings) and the unscorable ones (number, reason)."""

    __slots__ = ("numbers", "kept", "probabilities", "labels", "warnings", "problems", "top_reasons")

    def __init__(self, numbers, kept, probabilities, labels, warnings, problems, top_reasons=None) -> None:
        self.numbers = numbers
        self.kept = kept
        self.probabilities = probabilities
        self.labels = labels
        self.warnings = warnings
        self.problems = problems
        self.top_reasons = top_reasons  # each scored line's strongest push in words, when asked

    def __len__(self) -> int:
        return len(self.numbers)

    def to_csv(self, handle) -> None:
        """The scored lines as result CSV rows (no header), in ``scored_rows``' format."""
        kept = [self.kept[c].tolist() for c in self.kept.columns] if self.kept is not None else []
        scored_rows.write_rows(handle, self.numbers.tolist(), kept, self.probabilities.tolist(), self.labels.tolist(),
                               self.warnings, self.top_reasons)


# --------------------------------------------------------------------------- 1. lines


def _per_line(mask: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """How many True values of ``mask`` each line [start, end) holds (fast when they are sparse)."""
    positions = np.flatnonzero(mask)
    return np.searchsorted(positions, ends) - np.searchsorted(positions, starts)


def split_lines(data: bytes, width: int, first_line: int, sep: str = ",", skip_blank: bool = True,
                expected: str = "") -> Lines:
    """Set aside the lines that cannot be parsed as ``width`` fields; the rest, as one bytes block.

    ``first_line`` is the number of the block's first line (in its file); ``expected`` says in a
    problem what a line should hold (e.g. "the header names 21 columns")."""
    if not data:
        return Lines(b"", np.zeros(0, dtype=np.int64), [])
    buf = np.frombuffer(data, dtype=np.uint8)
    ends = np.flatnonzero(buf == NEWLINE)
    if data[-1:] != b"\n":
        ends = np.append(ends, len(data))
    starts = np.empty_like(ends)
    starts[0] = 0
    starts[1:] = ends[:-1] + 1
    sep_byte = ord(sep)
    fields = _per_line(buf == sep_byte, starts, ends) + 1
    filler = fields - 1 + _per_line(buf == SPACE, starts, ends)
    for byte in (TAB, CR):
        if bytes([byte]) in data:
            filler += _per_line(buf == byte, starts, ends)
    blank = filler == ends - starts  # nothing but separators and white space
    numbers = np.arange(first_line, first_line + len(ends), dtype=np.int64)
    problems: List[Tuple[int, str]] = []
    bad = np.zeros(len(ends), dtype=bool)
    quoted = np.flatnonzero(_per_line(buf == QUOTE, starts, ends) > 0) if b'"' in data else []
    for k in quoted:  # a quoted field may hold the separator: count its fields as CSV does
        raw = data[starts[k]:ends[k]]
        if raw.count(b'"') % 2:
            bad[k] = True
            problems.append((int(numbers[k]), "has an unbalanced quote (\"); a field cannot span lines."))
            continue
        try:
            fields[k] = len(next(csv.reader([raw.decode("utf-8", "replace")], delimiter=sep)))
        except StopIteration:
            fields[k] = 0
        except csv.Error as err:  # e.g. a quoted value over the csv module's 128 KB field limit
            if b"\r" not in raw:  # (a carriage return gets its own reason below)
                bad[k] = True
                problems.append((int(numbers[k]), "cannot be read as a CSV line (%s)." % err))
    if b"\r" in data:  # a carriage return is a line break to pandas, spreadsheets and the csv module alike
        returns = _per_line(buf == CR, starts, ends)
        crlf = (ends > starts) & (buf[np.maximum(ends - 1, 0)] == CR)  # "\r\n": the Windows line end, fine
        for k in np.flatnonzero((returns - crlf > 0) & ~bad & ~blank).tolist():
            bad[k] = True
            problems.append((int(numbers[k]), "holds a carriage return (\\r) inside the line, which CSV readers "
                             "take for a line break; remove it or save the file with Windows (CRLF) or Unix (LF) "
                             "line ends."))
    wrong = np.flatnonzero((fields != width) & ~blank & ~bad)
    for k in wrong.tolist():
        bad[k] = True
        problems.append((int(numbers[k]), "has %d values but %s." % (fields[k], expected or "%d are expected" % width)))
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        for k in np.flatnonzero(~bad & ~blank).tolist():
            raw = data[starts[k]:ends[k]]
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as err:
                bad[k] = True
                problems.append((int(numbers[k]), "is not UTF-8 text (byte 0x%02x at position %d); save the file "
                                 "as UTF-8." % (raw[err.start], err.start + 1)))
    if not skip_blank:
        for k in np.flatnonzero(blank & ~bad).tolist():
            bad[k] = True
            problems.append((int(numbers[k]), "is blank; every line must hold one customer."))
    drop = bad | blank
    if not drop.any():
        return Lines(data if data[-1:] == b"\n" else data + b"\n", numbers, problems)
    keep = np.flatnonzero(~drop)
    pieces = []
    run_start = None
    previous = -2
    for k in keep.tolist():  # consecutive good lines are copied as one slice
        if k != previous + 1:
            if run_start is not None:
                pieces.append(data[starts[run_start]:ends[previous]] + b"\n")
            run_start = k
        previous = k
    if run_start is not None:
        pieces.append(data[starts[run_start]:ends[previous]] + b"\n")
    problems.sort()
    return Lines(b"".join(pieces), numbers[keep], problems)


# --------------------------------------------------------------------------- 2. parse


def _read(data: bytes, names: Sequence[str], use: Sequence[str], numbers: Sequence[str], sep: str):
    import pandas as pd

    dtype = dict((n, ("float64" if n in numbers else object)) for n in use)
    return pd.read_csv(io.BytesIO(data), header=None, names=list(names), usecols=list(use), dtype=dtype, sep=sep,
                       keep_default_na=False, na_values=dict((n, [""]) for n in numbers), skipinitialspace=True,
                       engine="c", encoding="utf-8", skip_blank_lines=True, quotechar='"', low_memory=False)


def parse(lines: Lines, names: Sequence[str], use: Sequence[str], numeric: Sequence[str], sep: str = ","):
    """The good lines as a DataFrame of the ``use`` columns: ``numeric`` ones as float64 when every cell
    is a plain number or blank, all others (and those, otherwise) as text. Never raises for a line: when
    pandas cannot read the block as ``lines`` says (a ParserError, or another number of rows), the lines are
    read one by one and a line no reader takes is moved from ``lines`` to ``lines.problems`` with its reason."""
    import pandas as pd

    count = len(lines.numbers)
    if count == 0:
        return pd.DataFrame(dict((n, pd.Series([], dtype=object)) for n in use))
    frame = None
    if numeric:
        try:
            frame = _read(lines.data, names, use, numeric, sep)
            values = frame[list(numeric)].to_numpy(dtype=np.float64)
            if np.isinf(values).any() or len(frame) != count:
                frame = None  # "inf" is refused with its own text: read it as text
        except ValueError:  # a cell that is not a plain number (or a ParserError): read the block as text
            frame = None
    if frame is None:
        try:
            frame = _read(lines.data, names, use, (), sep)
        except ValueError:  # pandas' ParserError: which line, it cannot say reliably; read them one by one
            frame = None
    if frame is None or len(frame) != count:
        frame = _one_by_one(lines, names, use, sep)
    return frame


def _one_by_one(lines: Lines, names: Sequence[str], use: Sequence[str], sep: str):
    """``parse``'s way out: each line read alone by the csv module, as text; a line it refuses or splits into
    another number of values is moved to ``lines.problems`` (``lines`` keeps the others)."""
    import pandas as pd

    where = dict((n, i) for i, n in enumerate(names))  # linear in the columns, however many
    positions = [where[n] for n in use]
    rows, kept, pieces = [], [], []
    for number, raw in zip(lines.numbers.tolist(), lines.data.split(b"\n")):
        try:
            fields = next(csv.reader([raw.decode("utf-8")], delimiter=sep, skipinitialspace=True), [])
        except (csv.Error, UnicodeDecodeError) as err:
            lines.problems.append((number, "cannot be read as a CSV line (%s)." % err))
            continue
        if len(fields) != len(names):
            lines.problems.append((number, "has %d values but %d are expected." % (len(fields), len(names))))
            continue
        rows.append([fields[p] for p in positions])
        kept.append(number)
        pieces.append(raw + b"\n")
    lines.problems.sort()
    lines.numbers = np.array(kept, dtype=np.int64)
    lines.data = b"".join(pieces)
    return pd.DataFrame(rows, columns=list(use), dtype=object)


# --------------------------------------------------------------------------- 3. check: column_checks.check_frame


# --------------------------------------------------------------------------- 4. and 5. predict, warn


def predict(columns: list, model: dict) -> np.ndarray:
    """Churn probabilities of typed feature columns (fast path when the model has one)."""
    if not len(columns) or not len(columns[0]):
        return np.zeros(0, dtype=np.float64)
    if model.get("fast") is not None:
        return fast_forest.proba_typed(columns, model["fast"])
    return model["pipeline"].predict_proba(columns_to_frame(columns, model["compiled"]))[:, 1]


def top_reasons(columns: list, model: dict) -> List[str]:
    """Each row's top reason in words (``explanations.top_reason_texts``), in blocks of bounded memory;
    InvalidInput when the model cannot explain."""
    explainer = explanations.explainer_for(model)
    n = len(columns[0]) if columns else 0
    out: List[str] = []
    for s in range(0, n, REASON_BLOCK):
        part = [c[s:s + REASON_BLOCK] for c in columns]
        if model.get("fast") is not None:
            encoded = fast_forest.encoded_matrix_typed(part, model["fast"])
        else:
            encoded = fast_forest.preprocess(model["pipeline"], columns_to_frame(part, model["compiled"]))
        out.extend(explanations.top_reason_texts(explainer, encoded, part))
    return out


def score_lines(data: bytes, names: Sequence[str], model: dict, threshold: float, keep: Sequence[str] = (),
                first_line: int = 1, sep: str = ",", skip_blank: bool = True, expected: str = "",
                reasons: bool = False) -> Scored:
    """Score whole CSV lines whose columns are ``names`` (see the module text); never raises for a line.
    With ``reasons`` each scored line gets its top reason (InvalidInput if the model cannot explain)."""
    compiled = model["compiled"]
    features = compiled["features"]
    lines = split_lines(data, len(names), first_line, sep, skip_blank, expected)
    keeping, featured = set(keep), set(features)  # sets: a header may name 100,000 columns
    use = list(features) + [k for k in keep if k not in featured]
    numeric = [f for f, kind in zip(features, compiled["kinds"]) if kind == "numeric" and f not in keeping]
    frame = parse(lines, list(names), use, numeric, sep)
    checked = check_frame(frame, compiled)
    good = ~checked.bad
    columns = [col[good] for col in checked.columns]
    probabilities = predict(columns, model)
    labels = (probabilities > threshold).astype(np.int8)  # predict()'s tie rule, as predict_fn decides
    warnings = warning_texts(CheckedRows("csv", columns, None, compiled), model["schema"]) if len(probabilities) else []
    kept = frame[list(keep)][good].reset_index(drop=True) if keep else None
    problems = list(lines.problems)
    numbers = lines.numbers
    problems.extend((int(numbers[r]), message) for r, message in checked.problems.items())
    problems.sort()
    why = top_reasons(columns, model) if reasons else None
    return Scored(numbers[good], kept, probabilities, labels, warnings, problems, why)


# --------------------------------------------------------------------------- the container's transform answer




class TransformLines(object):
    """``input_fn``'s result for a batch transform mini-batch: the body, scored once the model is known."""

    __slots__ = ("body",)

    def __init__(self, body: Any) -> None:
        self.body = body.encode("utf-8") if isinstance(body, str) else bytes(body or b"")


def transform_lines(body: Any, content_type: Optional[str]) -> Optional[TransformLines]:
    """The mini-batch kept whole when this container serves a transform job (CHURN_BATCH_TRANSFORM=1) and
    the body is CSV; None otherwise (the request is decoded as any other)."""
    import os

    media = str(content_type or "").split(";")[0].strip().lower()
    return TransformLines(body) if os.environ.get(TRANSFORM_ENV) == "1" and media == "text/csv" else None


class TransformAnswer(object):
    """One answer line per line of the mini-batch, in order (``scored_rows.answer_fields``)."""

    __slots__ = ("text", "count")

    def __init__(self, text: str, count: int) -> None:
        self.text = text
        self.count = count


def transform_answer(request: TransformLines, model: dict) -> TransformAnswer:
    """Score a transform mini-batch (headerless lines of the features in schema order) and answer every
    line, scorable or not, so SageMaker can join each answer to its input line."""
    compiled = model["compiled"]
    threshold = model["threshold"]  # the schema's, or the one the model's environment carries (CHURN_THRESHOLD)
    expected = "the model expects %d features in this order: %s" % (len(compiled["features"]),
                                                                      " ".join(compiled["features"]))
    reasons = os.environ.get(REASONS_ENV) == "1"
    scored = score_lines(request.body, compiled["features"], model, threshold, first_line=1, skip_blank=False,
                         expected=expected, reasons=reasons)
    answers: Dict[int, str] = {}
    why = scored.top_reasons if reasons else [None] * len(scored)
    for number, p, label, note, top in zip(scored.numbers.tolist(), scored.probabilities.tolist(),
                                           scored.labels.tolist(), scored.warnings, why):
        answers[number] = scored_rows.answer_line(p, label, note, top)
    for number, message in scored.problems:
        answers[number] = scored_rows.problem_line(message, reasons)
    count = max(answers) if answers else 0
    missing = scored_rows.problem_line("missing answer", reasons)
    text = "".join(answers.get(k, missing) + "\n" for k in range(1, count + 1))
    return TransformAnswer(text, count)
