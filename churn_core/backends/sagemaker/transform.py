"""A transform job on SageMaker: the input as SageMaker must see it, the request, the output read back.

SageMaker batch transform splits the input into lines (``SplitType: Line``) and sends them, without
a header, in mini-batches (``BatchStrategy: MultiRecord``) to the model container. So:

* ``prepare_input`` rewrites the user's CSV (any column order, a header) as headerless lines
  ``line, kept columns..., features in schema order`` (a line that cannot be split into the
  header's columns is set aside here, with its number and reason);
* the request filters the model's input to the features (``InputFilter "$[1+K:]"``), joins the
  model's answer to the input line (``JoinSource: Input``) and keeps the line number, the kept
  columns and the answer (``OutputFilter``); the job's ``Environment`` asks the container to answer
  every line (``scored_rows.answer_fields``: ``probability,label,warnings,problem``, with ``top_reason``
  before ``problem`` when the job asks for reasons) at the model's threshold (which the model's
  environment carries, ``CHURN_THRESHOLD``, as for an endpoint);
* batch transform hands whole S3 objects to its instances (one object is never shared), so the lines
  are written as one object per instance (consecutive whole lines, shares of about equal size; no
  header, as the container reads them) and ``InstanceCount`` is the number of objects: an instance
  with no object would only bill. A file with no line to send is not submitted at all;
* ``read_output`` turns the ``.out`` objects, joined in input order, into ``results.csv`` and
  ``errors.csv``, the format of the local backend.
"""

from __future__ import annotations

import csv
import heapq
import itertools
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from churn_core.paths import entry_module
from churn_core.transform.rules import (
    HEAD_BYTES, expected_fields, line_column, long_line_problem, plan_columns, read_header, result_columns,
    whole_line_blocks,
)

MAX_PAYLOAD_MB = 6  # SageMaker's default; MaxConcurrentTransforms x MaxPayloadInMB must stay <= 100
MAX_CONCURRENT_TRANSFORMS = 2
_rows = entry_module("scored_rows")  # the one home of the scored-row format, the container's answer too
ANSWER_FIELDS = _rows.answer_fields(reasons=False)
REASON_FIELDS = _rows.answer_fields(reasons=True)
FILTER_MAX_CHARS = 63
READ_BYTES = 4 << 20
ENVIRONMENT_BATCH = entry_module("table_scoring").TRANSFORM_ENV  # the container answers every line of a batch
ENVIRONMENT_REASONS = entry_module("table_scoring").REASONS_ENV  # and adds each line's top reason


@dataclass
class Prepared:
    keep: list[str]
    features: list[str]
    line_column: str
    lines: int  # data lines read (blank lines not counted)
    uploaded: int  # lines sent to SageMaker
    set_aside: int  # lines that could not be split into the header's columns
    reasons: bool = False  # the container adds each line's top reason
    parts: list[str] | None = None  # the input objects' names, in input order: one per instance (None: older plans)

    @property
    def answer_fields(self) -> tuple[str, ...]:
        return REASON_FIELDS if self.reasons else ANSWER_FIELDS

    def to_json(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    @classmethod
    def from_json(cls, data: bytes) -> "Prepared":
        return cls(**json.loads(data))


def part_names(stem: str, instances: int) -> list[str]:
    """The input objects' names for ``instances`` instances (one object keeps the plain name)."""
    return [f"{stem}.csv"] if instances <= 1 else [f"{stem}-part{i + 1:04d}.csv" for i in range(instances)]


def count_lines(path: Path, start: int) -> int:
    """Lines after the header (``start`` bytes), counted at C speed: how the lines are shared out."""
    lines, last = 0, b"\n"
    with open(path, "rb") as fh:
        fh.seek(start)
        for block in iter(lambda: fh.read(READ_BYTES), b""):
            lines += block.count(b"\n")
            last = block[-1:]
    return lines + (last != b"\n")


def prepare_input(source: Path, schema: dict, keep: list[str] | None, folder: Path, set_aside: Path,
                  reasons: bool = False, instances: int = 1, stem: str = "input") -> Prepared:
    """Write the input objects into ``folder`` (headerless lines for SageMaker: consecutive whole lines, one
    object per instance, about equal shares; an instance whose share is empty gets none) and ``set_aside``
    (``line,problem``) from ``source``; TransformInputError naming the columns when the file cannot be scored
    at all. ``Prepared.parts`` names the objects written, in input order (none when no line can be sent)."""
    table_scoring = entry_module("table_scoring")
    features = [f["name"] for f in schema["features"]]
    with open(source, "rb") as fh:
        header = read_header(fh.read(HEAD_BYTES), features)
    kept = plan_columns(header, schema, keep)
    use = list(dict.fromkeys([*kept, *features]))
    names = part_names(stem, instances)
    total = max(1, count_lines(source, header.size))
    written: list[str] = []
    out = writer = None
    uploaded = aside = 0
    try:
        with open(set_aside, "w", encoding="utf-8", newline="") as bad:
            problems = csv.writer(bad, lineterminator="\n")
            for _, data, first, too_long in whole_line_blocks(source, header.size, READ_BYTES):
                if too_long:  # a line over MAX_LINE_BYTES, never read: set aside here, never sent
                    problems.writerow((first, long_line_problem(too_long)))
                    aside += 1
                    continue
                split = table_scoring.split_lines(data, len(header.names), first, header.sep,
                                                  expected=expected_fields(header))
                frame = table_scoring.parse(split, header.names, use, (), header.sep)
                numbers = split.numbers.tolist()
                rows = zip(numbers, *(frame[c].tolist() for c in [*kept, *features]), strict=True)
                share = (min(len(names) - 1, (n - 2) * len(names) // total) for n in numbers)
                for part, group in itertools.groupby(zip(share, rows, strict=True), key=lambda pair: pair[0]):
                    if not written or written[-1] != names[part]:
                        if out is not None:
                            out.close()
                        written.append(names[part])
                        out = open(folder / names[part], "w", encoding="utf-8", newline="")
                        writer = csv.writer(out, lineterminator="\n")
                    writer.writerows(row for _, row in group)
                problems.writerows(split.problems)
                uploaded += len(frame)
                aside += len(split.problems)
    finally:
        if out is not None:
            out.close()
    return Prepared(kept, features, line_column(kept), uploaded + aside, uploaded, aside, reasons, written)


def first_problems(set_aside: Path, count: int = 3) -> str:
    """The first lines set aside and why, for a failure reason."""
    with open(set_aside, encoding="utf-8", newline="") as fh:
        return "; ".join(f"line {n}: {p}" for n, p in itertools.islice(csv.reader(fh), count))


def input_filter(prepared: Prepared) -> str:
    """The model gets the features only: every field after the line number and the kept columns."""
    return f"$[{1 + len(prepared.keep)}:]"


def output_filter(prepared: Prepared) -> str:
    """The line number, the kept columns and the model's answer; the whole joined line if that is too long."""
    answer = len(prepared.answer_fields)
    picks = [str(i) for i in range(1 + len(prepared.keep))] + [str(-i) for i in range(answer, 0, -1)]
    path = f"$[{','.join(picks)}]"
    return path if len(path) <= FILTER_MAX_CHARS else "$"


def read_output(out: Path, set_aside: Path, prepared: Prepared, results: Path, errors: Path) -> tuple[int, int]:
    """``.out`` (the joined lines SageMaker wrote) plus the lines set aside → results.csv and errors.csv in
    the local format, in line order; (scored, failed)."""
    kept, fields = prepared.keep, prepared.answer_fields
    width = 1 + len(kept) + len(fields)
    whole = 1 + len(kept) + len(prepared.features) + len(fields)
    names = [f"f{i}" for i in range(width if output_filter(prepared) != "$" else whole)]
    scored = failed = 0
    container_problems = errors.with_suffix(".container")
    with open(results, "w", encoding="utf-8", newline="") as res, \
            open(container_problems, "w", encoding="utf-8", newline="") as probs:
        writer, problem_writer = csv.writer(res, lineterminator="\n"), csv.writer(probs, lineterminator="\n")
        writer.writerow(result_columns(kept, prepared.reasons))
        if out.stat().st_size:
            for chunk in pd.read_csv(out, header=None, names=names, dtype=str, keep_default_na=False,
                                     na_filter=False, chunksize=200_000):
                if len(names) == whole:  # the whole joined line came back: drop the features
                    chunk = chunk[names[: 1 + len(kept)] + names[-len(fields):]]
                chunk.columns = [_rows.LINE, *[f"k{i}" for i in range(len(kept))], *fields]
                bad = chunk[_rows.PROBLEM] != ""
                good = chunk[~bad]
                writer.writerows(zip(*(good[c].tolist() for c in chunk.columns[:-1]), strict=True))
                problem_writer.writerows(zip(chunk[_rows.LINE][bad].tolist(), chunk[_rows.PROBLEM][bad].tolist(),
                                             strict=True))
                scored += len(good)
                failed += int(bad.sum())
    with open(errors, "w", encoding="utf-8", newline="") as err, open(set_aside, encoding="utf-8", newline="") as a, \
            open(container_problems, encoding="utf-8", newline="") as c:
        writer = csv.writer(err, lineterminator="\n")
        writer.writerow(_rows.ERROR_COLUMNS)
        rows = heapq.merge(((int(n), p) for n, p in csv.reader(a)), ((int(n), p) for n, p in csv.reader(c)))
        writer.writerows(rows)
    container_problems.unlink(missing_ok=True)
    return scored, failed + prepared.set_aside
