"""Invocation requests: decode a body, then check its rows against the model schema.

Two pure steps, so the endpoint and any pre-check decide alike:

* ``parse_body(body, content_type)`` decodes JSON, CSV or a NumPy ``.npy`` array into rows
  (what ``input_fn`` does; it needs no model);
* ``check_rows(parsed, compiled)`` validates every row against the compiled model schema and
  returns one value list per feature, plus the ID columns a named record carried (echoed back).

``validate_request(body, content_type, accept, schema)`` runs both and the Accept check: the
dashboard calls it before sending a request to SageMaker. Every rejection is ``InvalidInput``
with the HTTP status to answer with and a message that says what to send instead.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from typing import Any, Dict, List, Optional, Tuple

from column_checks import check_columns
from frames import check_cell, check_value, columns_to_frame, csv_value
from guesses import cell_warnings, row_warnings, warning_texts
from input_errors import InvalidInput
from input_errors import kind_name as _kind_name
from input_errors import names as _names
from input_errors import noun
from input_errors import short as _short

# Callers ask the parser for the cell rules and the warnings too; they live in the sibling leaf modules.
__all__ = ["MAX_ROWS_PER_REQUEST", "CheckedRows", "InvalidInput", "ParsedRequest", "cell_warnings", "check_cell",
           "check_rows", "choose_accept", "columns_to_frame", "compile_schema", "json_ready", "parse_body",
           "row_warnings", "validate_request", "warning_texts"]

MAX_ROWS_PER_REQUEST = 10000
VECTOR_MIN_ROWS = 32  # from this many CSV rows on, cells are checked column by column (see _csv_columns)
JSON_TYPES = ("application/json", "application/x-json", "text/json")
CSV_TYPES = ("text/csv", "application/csv")
NPY_TYPES = ("application/x-npy", "application/npy")


class ParsedRequest(object):
    """What ``input_fn`` returns: the request's style and rows, not yet checked against a model."""

    __slots__ = ("style", "rows", "named", "explain")

    def __init__(self, style: str, rows: list, named: bool, explain: int = 0) -> None:
        self.style = style  # "seed" | "seed_flat" | "instances" | "rows" | "csv" | "npy"
        self.rows = rows
        self.named = named
        self.explain = explain  # reasons asked per row (0: none)

    def __len__(self) -> int:
        return len(self.rows)


class CheckedRows(object):
    """Rows that passed the model's checks: one value list per feature (``columns``), the ID values
    each named row carried (``ids``), and the DataFrame in training column order (``frame``)."""

    __slots__ = ("style", "columns", "ids", "compiled", "explain", "_frame")

    def __init__(self, style: str, columns: List[list], ids: Optional[List[dict]], compiled: dict,
                 explain: int = 0) -> None:
        self.style = style
        self.columns = columns
        self.ids = ids
        self.compiled = compiled
        self.explain = explain
        self._frame = None

    def __len__(self) -> int:
        return len(self.columns[0]) if self.columns else 0

    @property
    def frame(self):
        if self._frame is None:
            self._frame = columns_to_frame(self.columns, self.compiled)
        return self._frame


def compile_schema(schema: dict) -> dict:
    """Lookup tables of a model schema, built once per loaded model."""
    features = [f["name"] for f in schema["features"]]
    return {
        "features": features,
        "kinds": [f["kind"] for f in schema["features"]],
        "allow_missing": [bool(f.get("missing")) for f in schema["features"]],
        "index": dict((name, i) for i, name in enumerate(features)),
        "order": ", ".join(features),
        "id_columns": list(schema.get("id_columns") or []),
        "accepted": frozenset(schema.get("dropped") or []) | frozenset(schema.get("id_columns") or []),
    }


# --------------------------------------------------------------------------- decoding


def parse_body(body: Any, content_type: Optional[str] = "application/json") -> ParsedRequest:
    """Decode a request body (JSON, CSV or .npy) into rows; raises InvalidInput."""
    media, charset = _media_type(content_type)
    if media in JSON_TYPES:
        return _parse_json(_decode(body, charset))
    if media in CSV_TYPES:
        parsed = _parse_csv(_decode(body, charset))
        parsed.explain = _csv_explain(content_type)
        return parsed
    if media in NPY_TYPES:
        return _parse_npy(body)
    raise InvalidInput(
        "unsupported content type %s; send application/json, text/csv or application/x-npy." % _short(content_type, 80),
        415,
    )


def _media_type(content_type: Optional[str]) -> Tuple[str, str]:
    if not content_type:
        return "application/json", "utf-8"
    parts = [p.strip() for p in str(content_type).split(";")]
    media = parts[0].lower() or "application/json"
    charset = "utf-8"
    for param in parts[1:]:
        if param.lower().startswith("charset="):
            charset = param.split("=", 1)[1].strip().strip("\"'").lower() or "utf-8"
    return media, charset


PYTHON_ONLY_CODECS = frozenset({"unicode-escape", "raw-unicode-escape"})


def _decode(body: Any, charset: str) -> str:
    if body is None:
        body = b""
    if isinstance(body, str):
        text = body
    else:
        if isinstance(body, (bytearray, memoryview)):
            body = bytes(body)
        try:
            info = codecs.lookup(charset)
        except LookupError:
            info = None
        # only real text encodings: base64, rot13, zlib ... are codecs too, but not charsets; nor are Python's own
        # escape codecs (unicode_escape would read a body's backslashes as Python escapes, and warn)
        if info is None or not getattr(info, "_is_text_encoding", True) or info.name in PYTHON_ONLY_CODECS:
            raise InvalidInput("unsupported charset %s; send UTF-8." % _short(charset), 415)
        utf8 = info.name == "utf-8"
        try:
            text = body.decode("utf-8-sig" if utf8 else info.name)
        except UnicodeDecodeError as err:
            raise InvalidInput(
                "request body is not valid %s text (byte 0x%02x at position %d); send UTF-8 encoded data."
                % ("UTF-8" if utf8 else charset, body[err.start], err.start)
            ) from None
        except (UnicodeError, ValueError, TypeError) as err:  # e.g. punycode, undefined
            raise InvalidInput("request body is not valid %s text (%s); send UTF-8 encoded data."
                               % (charset, _short(str(err), 80))) from None
        if not isinstance(text, str):
            raise InvalidInput("unsupported charset %s; send UTF-8." % _short(charset), 415)
    if not text.strip():
        raise InvalidInput(
            'request body is empty; send JSON such as {"Input": [[...one row of feature values...]]}, '
            '{"instances": [{"feature": value, ...}]} or CSV rows.'
        )
    return text


def _parse_json(text: str) -> ParsedRequest:
    try:
        data = json.loads(text)
    except RecursionError:
        raise InvalidInput("JSON is nested too deeply; a request is an object holding a list of rows.") from None
    except ValueError as err:
        msg = getattr(err, "msg", str(err))
        if "digits" in msg and "integer string conversion" in msg:
            msg = "a number has too many digits (more than 4300)"
        line, col = getattr(err, "lineno", None), getattr(err, "colno", None)
        where = " at line %s column %s" % (line, col) if line is not None else ""
        raise InvalidInput("malformed JSON%s: %s." % (where, msg)) from None
    if isinstance(data, list):
        if data and all(isinstance(r, dict) for r in data):
            return _named(data, "request")
        if data and all(not isinstance(r, (list, dict)) for r in data):
            raise InvalidInput('a bare list of values is ambiguous; send {"Input": [[...values in feature order...]]}.')
        return ParsedRequest("rows", _positional_rows(data, "request"), False)
    if not isinstance(data, dict):
        raise InvalidInput(
            'expected a JSON object such as {"Input": [[...]]} or {"instances": [{...}]}, got %s.' % _kind_name(data)
        )
    keys = set(data)
    if "Input" in keys and "instances" in keys:
        raise InvalidInput('send either "Input" (rows of values) or "instances" (named records), not both.')
    if "Input" in keys or "instances" in keys:
        key = "Input" if "Input" in keys else "instances"
        extra = sorted(keys - {key, "explain"})
        if extra:
            raise InvalidInput("unexpected %s %s next to %r; remove %s." % (noun(len(extra), "key"), _names(extra), key,
                                                                         "it" if len(extra) == 1 else "them"))
        parsed = _rows_of(key, data[key])
        parsed.explain = _explain_count(data.get("explain"))
        return parsed
    lower = dict((k.lower(), k) for k in keys)
    hint = ""
    if "input" in lower or "inputs" in lower or "instance" in lower:
        hint = ' (keys are case-sensitive: use "Input" or "instances")'
    raise InvalidInput(
        'expected an object with "Input" (rows of values in feature order) or "instances" (records by feature '
        'name); got %s %s%s.'
        % (noun(len(keys), "key"), _names(sorted(keys)) or "none", hint)
    )


MAX_REASONS = 50


def _explain_count(value: Any, where: str = "'explain'") -> int:
    """How many reasons per row the request asks for: ``"explain": 3`` (``true`` means 3, absent 0)."""
    if value is None or value is False:
        return 0
    if value is True:
        return 3
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_REASONS:
        return value
    raise InvalidInput("%s must be true or a whole number of reasons per customer from 1 to %d, got %s."
                       % (where, MAX_REASONS, _short(value)))


def _explain_word(value: str) -> Any:
    """A content-type parameter as ``_explain_count`` reads it: ``true``, a number written in at most a few ASCII
    digits, or else the text itself (refused there, by name). Never ``int()`` on the client's text: it accepts
    other scripts' digits and refuses long ones with a ValueError of its own."""
    if value == "true":
        return True
    if 0 < len(value) <= 6 and all("0" <= c <= "9" for c in value):
        return int(value)
    return value


def _csv_explain(content_type: Optional[str]) -> int:
    """Reasons for a CSV body are asked in its media type, ``text/csv; explain=3`` (a CSV has no place for
    the flag; SageMaker hands the container the ContentType with its parameters)."""
    for param in str(content_type or "").split(";")[1:]:
        key, _, value = param.partition("=")
        if key.strip().lower() == "explain":
            value = value.strip().strip("\"'").lower()
            return _explain_count(_explain_word(value), "'explain' in the content type")
    return 0


def _rows_of(key: str, value: Any) -> ParsedRequest:
    """The rows under ``Input`` (the seed's positional form) or ``instances`` (records or rows)."""
    if not isinstance(value, list):
        if key == "Input":
            raise InvalidInput(
                "'Input' must be a list of rows (a list of lists of feature values), got %s." % _kind_name(value)
            )
        raise InvalidInput(
            "'instances' must be a list of records ({feature: value} objects), got %s." % _kind_name(value)
        )
    if key == "instances":
        if value and all(isinstance(r, list) for r in value):
            return ParsedRequest("instances", _positional_rows(value, "'instances'"), False)
        return _named(value, "'instances'")
    if not value:
        _check_count(0, "'Input'")
    if all(not isinstance(v, (list, dict)) for v in value):
        return ParsedRequest("seed_flat", [value], False)  # one flat row
    return ParsedRequest("seed", _positional_rows(value, "'Input'"), False)


def _named(records: list, what: str) -> ParsedRequest:
    _check_count(len(records), what)
    for r, rec in enumerate(records, 1):
        if not isinstance(rec, dict):
            raise InvalidInput(
                "%s record %d is %s; each record must be an object {feature: value}." % (what, r, _kind_name(rec))
            )
    return ParsedRequest("instances", records, True)


def _positional_rows(rows: list, what: str) -> list:
    _check_count(len(rows), what)
    for r, row in enumerate(rows, 1):
        if not isinstance(row, list):
            raise InvalidInput(
                "%s row %d is %s; each row must be a list of feature values." % (what, r, _kind_name(row))
            )
        for c, value in enumerate(row, 1):
            if isinstance(value, (list, dict)):
                raise InvalidInput(
                    "%s row %d, value %d is %s; each row must be a flat list of single values (wrong nesting)."
                    % (what, r, c, _kind_name(value))
                )
    return rows


def _parse_csv(text: str) -> ParsedRequest:
    try:
        rows = [row for row in csv.reader(io.StringIO(text)) if row and any(cell.strip() for cell in row)]
    except csv.Error as err:
        raise InvalidInput("malformed CSV: %s." % err) from None
    _check_count(len(rows), "the CSV body")
    return ParsedRequest("csv", rows, False)


def _parse_npy(body: Any) -> ParsedRequest:
    """A NumPy array as ``np.save`` writes it (what the SageMaker SDK's default predictor sends)."""
    import numpy as np

    if isinstance(body, str):
        body = body.encode("latin-1")
    try:
        array = np.load(io.BytesIO(bytes(body or b"")), allow_pickle=False)
    except ValueError as err:
        if "allow_pickle" in str(err):
            raise InvalidInput(
                "the .npy array holds Python objects; send numbers or text (no pickled objects)."
            ) from None
        raise InvalidInput(
            "the body is not a readable .npy array (%s); send np.save output." % _short(str(err), 80)
        ) from None
    except (OSError, EOFError) as err:
        raise InvalidInput(
            "the body is not a readable .npy array (%s); send np.save output." % _short(str(err), 80)
        ) from None
    if not isinstance(array, np.ndarray) or array.ndim not in (1, 2):
        raise InvalidInput(
            "the .npy array must have 1 dimension (one row) or 2 (rows x features), got %s."
            % ("%d" % array.ndim if isinstance(array, np.ndarray) else "an archive")
        )
    rows = [array.tolist()] if array.ndim == 1 else array.tolist()
    _check_count(len(rows), "the .npy array")
    return ParsedRequest("npy", rows, False)


def _check_count(n: int, what: str) -> None:
    if n == 0:
        raise InvalidInput("%s is empty; send at least one row." % what)
    if n > MAX_ROWS_PER_REQUEST:
        raise InvalidInput(
            "too many rows: %d in one request (at most %d); split the data into smaller batches."
            % (n, MAX_ROWS_PER_REQUEST),
            413,
        )


# --------------------------------------------------------------------------- checking against the model


def check_rows(parsed: ParsedRequest, compiled: dict) -> CheckedRows:
    """Validate every row against the compiled model schema; one value list per feature."""
    if parsed.style == "csv":
        fast = _csv_columns(parsed, compiled)
        if fast is not None:
            return fast
        parsed = _csv_with_header_as_records(parsed, compiled)
    if parsed.named:
        columns, ids = _named_columns(parsed.rows, compiled)
        return CheckedRows(parsed.style, columns, ids, compiled, parsed.explain)
    return CheckedRows(parsed.style, _positional_columns(parsed, compiled), None, compiled, parsed.explain)


def validate_request(body: Any, content_type: Optional[str], accept: Optional[str], schema: dict) -> CheckedRows:
    """Everything the endpoint checks before predicting, as a pure function of the request and the
    model schema (the dashboard's pre-check before a SageMaker invocation)."""
    checked = check_rows(parse_body(body, content_type), compile_schema(schema))
    choose_accept(accept)
    return checked


def _csv_with_header_as_records(parsed: ParsedRequest, compiled: dict) -> ParsedRequest:
    """A CSV body whose first line names the features (and maybe ID columns) is read by name."""
    header = [cell.strip() for cell in parsed.rows[0]]
    known = set(compiled["features"]) | compiled["accepted"]
    if not (set(compiled["features"]) <= set(header) and set(header) <= known and len(set(header)) == len(header)):
        return parsed
    rows = parsed.rows[1:]
    _check_count(len(rows), "the CSV body (after its header)")
    records = []
    for r, row in enumerate(rows, 1):
        if len(row) != len(header):
            raise InvalidInput("CSV line %d has %d values but the header names %d." % (r + 1, len(row), len(header)))
        records.append(dict((name, csv_value(cell)) for name, cell in zip(header, row)))
    return ParsedRequest("csv", records, True, parsed.explain)


def _csv_columns(parsed: ParsedRequest, compiled: dict) -> Optional[CheckedRows]:
    """A CSV body of many rows checked column by column, once per distinct text of a column (the same
    rule as cell by cell; table_scoring does it): typed columns when every row passes, None otherwise,
    and the row-by-row path then finds the first problem and says it in its usual words."""
    rows = parsed.rows
    features = compiled["features"]
    header = [cell.strip() for cell in rows[0]]
    known = set(features) | compiled["accepted"]
    if set(features) <= set(header) and set(header) <= known and len(set(header)) == len(header):
        body, width = rows[1:], len(header)
        index = [header.index(name) for name in features]
        id_index = [(name, header.index(name)) for name in compiled["id_columns"] if name in header]
    else:
        body, width = rows, len(features)
        index, id_index = list(range(width)), []
    if len(body) < VECTOR_MIN_ROWS or any(len(row) != width for row in body):
        return None
    checked = check_columns([[row[i] for row in body] for i in index], compiled)
    if checked.bad.any():
        return None
    ids = [dict((name, csv_value(row[i])) for name, i in id_index) for row in body] if id_index else None
    return CheckedRows("csv", checked.columns, ids, compiled, parsed.explain)


def _named_columns(records: list, compiled: dict) -> Tuple[List[list], Optional[List[dict]]]:
    features, kinds, allow = compiled["features"], compiled["kinds"], compiled["allow_missing"]
    known, accepted, id_columns = compiled["index"], compiled["accepted"], compiled["id_columns"]
    columns: List[list] = [[] for _ in features]
    ids: List[dict] = []
    for r, rec in enumerate(records, 1):
        unknown = [k for k in rec if k not in known and k not in accepted]
        missing = [f for f in features if f not in rec]
        if unknown or missing:
            problems = []
            if unknown:
                problems.append("unknown %s %s" % (noun(len(unknown), "feature"), _names(unknown)))
            if missing:
                problems.append("missing %s %s" % (noun(len(missing), "feature"), ", ".join(missing)))
            also = " (ID columns %s are accepted too)" % ", ".join(id_columns) if id_columns else ""
            raise InvalidInput(
                "record %d has %s; the model expects exactly: %s%s."
                % (r, " and ".join(problems), compiled["order"], also)
            )
        for i, name in enumerate(features):
            columns[i].append(check_value(rec[name], r, i, name, kinds, allow))
        ids.append(dict((name, rec[name]) for name in id_columns if name in rec))
    return columns, (ids if any(ids) else None)


def _positional_columns(parsed: ParsedRequest, compiled: dict) -> List[list]:
    features, kinds, allow = compiled["features"], compiled["kinds"], compiled["allow_missing"]
    width = len(features)
    if not any(allow) and all(kind == "numeric" for kind in kinds):
        fast = _plain_numeric_columns(parsed.rows, width)
        if fast is not None:
            return fast
    columns: List[list] = [[] for _ in features]
    csv_style, npy_style = parsed.style == "csv", parsed.style == "npy"
    for r, row in enumerate(parsed.rows, 1):
        if len(row) != width:
            raise InvalidInput(
                "expected %d values per row in this order: %s; got %d in row %d."
                % (width, compiled["order"], len(row), r)
            )
        for i, name in enumerate(features):
            value = row[i]
            if csv_style:
                value = csv_value(value)
            elif npy_style and isinstance(value, float) and value != value:
                value = None  # NaN is how an array says "missing"
            columns[i].append(check_value(value, r, i, name, kinds, allow))
    return columns


def _plain_numeric_columns(rows: list, width: int) -> Optional[List[list]]:
    """Columns of a batch whose every cell is a finite int or float, in one numpy call (~6x faster
    than cell by cell); None when any cell needs the per-cell path (and its precise message)."""
    import numpy as np

    plain = (int, float)
    if not all(type(row) is list and len(row) == width and all(type(v) in plain for v in row) for row in rows):
        return None
    try:
        matrix = np.array(rows, dtype=np.float64)
    except (OverflowError, ValueError):
        return None
    if matrix.shape != (len(rows), width) or not np.isfinite(matrix).all():
        return None
    return matrix.T.tolist()


# --------------------------------------------------------------------------- answers


def choose_accept(accept: Optional[str]) -> str:
    """The response media type for an Accept header (JSON unless CSV or .npy is asked for)."""
    if not accept or not str(accept).strip():
        return "application/json"
    for part in str(accept).split(","):
        media = part.split(";")[0].strip().lower()
        if media in ("application/json", "*/*", "application/*", "text/json", ""):
            return "application/json"
        if media in ("text/csv", "text/*", "application/csv"):
            return "text/csv"
        if media in NPY_TYPES:
            return "application/x-npy"
    raise InvalidInput("unsupported Accept %s; ask for application/json or text/csv." % _short(accept, 80), 406)


def json_ready(values: Dict[str, Any]) -> Dict[str, Any]:
    """ID values as JSON can carry them (a NaN ID becomes null)."""
    return dict((k, None if isinstance(v, float) and v != v else v) for k, v in values.items())
