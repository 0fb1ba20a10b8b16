"""The fast way in for a well-formed UTF-8 CSV: Arrow's multi-threaded reader, then each column as a code per
row and its distinct values (what validation works on), never a Python string per cell.

Only files the exact reader would read the same way come here (``validation`` checks first): valid UTF-8,
no lone CR line ends, a header of at least two names. An empty line is read as a row of one field, so, like
any row Arrow does not read with exactly the header's number of fields, it returns None and the caller falls
back to the exact reader, which explains what is wrong (or counts the empty lines in the row numbers).
Time and memory stay close to ``pandas.read_csv``: Arrow codes each column block by block as it parses
(a dictionary per block, merged afterwards), so the file's text is never held a second time, except for
the columns the caller keeps as text; ``bench/bench_upload.py`` measures it.
"""

from __future__ import annotations

import codecs
import csv
import io
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import numpy as np

_CHUNK = 1 << 24
_HEADER_PREFIX = 1 << 16


def valid_utf8(view: memoryview) -> bool:
    """Whether the bytes are UTF-8, checked chunk by chunk (no copy of the whole file as text)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        for start in range(0, len(view), _CHUNK):
            decoder.decode(view[start:start + _CHUNK], final=start + _CHUNK >= len(view))
        if not len(view):
            decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def has_cr(data: bytes, start: int = 0) -> bool:
    return data.find(b"\r", start) >= 0


def lone_cr(data: bytes, start: int = 0) -> bool:
    """A CR that does not end a line as CRLF (old Mac files, or mixed line ends)."""
    return has_cr(data, start) and data.count(b"\r", start) != data.count(b"\r\n", start)


def header_fields(view: memoryview, delimiter: str) -> list[str] | None:
    """The first record, read by Python's csv module (None if it does not end within the first 64 KiB)."""
    prefix = bytes(view[:_HEADER_PREFIX]).decode("utf-8", errors="ignore")
    reader = csv.reader(io.StringIO(prefix, newline=""), delimiter=delimiter)
    try:
        fields = next(reader)
    except (StopIteration, csv.Error):
        return None
    if len(view) > _HEADER_PREFIX and "\n" not in prefix and "\r" not in prefix:
        return None  # the header does not end within the prefix
    return fields


def read_coded(data: bytes, start: int, delimiter: str, as_text: Callable[[str], bool] = lambda name: False
               ) -> tuple[list[str], list[tuple[np.ndarray | None, object]]] | None:
    """(header, [(codes of the data rows, distinct values as an Arrow string array), ...]), or None when
    Arrow does not read every row with exactly the header's number of fields. A column whose header name
    ``as_text`` accepts is left as its Arrow text, data rows only: (None, text)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv

    view = memoryview(data)[start:]
    header = header_fields(view, delimiter)
    if header is None or len(header) < 2:
        return None
    width = len(header)
    quoted = data.find(b'"', start) >= 0
    text = [as_text(name) for name in header]
    # Arrow codes each block's column as it parses it (a dictionary per block): the column's text is never
    # held whole, except for the columns left as text.
    coded_type = pa.dictionary(pa.int32(), pa.string())
    try:
        table = pacsv.read_csv(
            pa.py_buffer(view),
            read_options=pacsv.ReadOptions(autogenerate_column_names=True, use_threads=True, block_size=8 << 20),
            parse_options=pacsv.ParseOptions(delimiter=delimiter, quote_char='"', double_quote=True,
                                             escape_char=False, newlines_in_values=quoted,
                                             ignore_empty_lines=False),
            convert_options=pacsv.ConvertOptions(
                column_types={f"f{i}": pa.string() if text[i] else coded_type for i in range(width)},
                strings_can_be_null=False, quoted_strings_can_be_null=False, null_values=[], check_utf8=True),
        )
    except (pa.ArrowInvalid, pa.ArrowException):
        return None
    if table.num_columns != width or table.num_rows < 1:
        return None
    columns = list(table.columns)
    del table

    def merge(i: int) -> tuple[np.ndarray | None, object]:
        """One code per row against one dictionary for the whole column (the blocks' dictionaries merged)."""
        column, columns[i] = columns[i], None
        if text[i]:
            return None, column
        chunks = column.chunks
        if len(chunks) == 1:
            return chunks[0].indices.to_numpy(zero_copy_only=False), chunks[0].dictionary
        dictionaries = [c.dictionary for c in chunks]
        merged = pc.dictionary_encode(pa.concat_arrays(dictionaries))
        to_merged = merged.indices.to_numpy(zero_copy_only=False)
        offsets = np.cumsum([0] + [len(d) for d in dictionaries])
        codes = np.concatenate([to_merged[offsets[k]:offsets[k + 1]][c.indices.to_numpy(zero_copy_only=False)]
                                for k, c in enumerate(chunks)])
        return codes, merged.dictionary

    with ThreadPoolExecutor(max_workers=max(1, min(width, os.cpu_count() or 1))) as pool:
        coded = list(pool.map(merge, range(width)))
    arrow_header = [values[int(codes[0])].as_py() if codes is not None else values[0].as_py()
                    for codes, values in coded]
    if arrow_header != header:
        return None  # the two readers disagree on the header: the exact reader decides
    return header, [(codes[1:], values) if codes is not None else (None, values.slice(1)) for codes, values in coded]
