"""Shared table helpers: numpy structured arrays (HDF5 compound, NetCDF compound) → Arrow."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import UnsupportedError
from ..jsonable import decode_bytes


def as_text(value: Any) -> Any:
    """A cell as text (None for a missing one): for columns Arrow cannot take as they are."""
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def unique_names(names: list[str]) -> list[str]:
    """Column names made distinct as pandas makes repeated headers (``x``, ``x.1``). A table's
    columns are found by name: an Excel number cell ``1`` and text cell ``"1"`` (two pandas labels,
    one name as text) failed the sheet, a Parquet file with two columns ``a`` published and then
    failed every read of it ("Column a does not exist in schema")."""
    seen, out, taken, tried = set(names), [], set(), {}  # (sets and each name's last number: a
    # header of a million columns took hours searching a list)
    for name in names:
        if name in taken:
            n = tried.get(name, 1)
            while f"{name}.{n}" in seen:
                n += 1
            tried[name] = n + 1
            name = f"{name}.{n}"
            seen.add(name)
        taken.add(name)
        out.append(name)
    return out


def not_arrow(pa: Any, column: Any) -> bool:
    """Whether Arrow cannot take ``column`` as it is (Python integers past 64 bits: OverflowError),
    or takes it for what it is not: dates and numbers in one column made times, each number read
    as microseconds since 1970 (an Excel column of dates, then counts, published 5 as
    1970-01-01 00:00:00.000005)."""
    import numbers

    try:
        found = pa.array(column, from_pandas=True)
    except (OverflowError, pa.ArrowInvalid, pa.ArrowTypeError):
        return True
    if pa.types.is_temporal(found.type):
        return any(isinstance(v, numbers.Number) and not (isinstance(v, float) and math.isnan(v)) for v in column)  # (NaN: missing)
    return False


def same_kind(old: Any, new: Any) -> bool:
    """Whether a later chunk's Arrow type ``new`` may be cast to the first chunk's ``old`` without
    its values changing kind: numbers to numbers (a cast that would lose digits fails, naming the
    column), text to text, text to numbers or dates (Arrow parses them, or fails), all missing to
    anything. Numbers or booleans to text, and booleans to or from numbers, are not (``2`` would
    be published as ``True``, ``00042`` as ``"42"``)."""
    import pyarrow.types as t

    def kind(dtype: Any) -> str:
        if t.is_null(dtype):
            return "null"
        if t.is_boolean(dtype):
            return "bool"
        if t.is_integer(dtype) or t.is_floating(dtype) or t.is_decimal(dtype):
            return "number"
        if t.is_string(dtype) or t.is_large_string(dtype):
            return "text"
        if t.is_timestamp(dtype):  # (any unit: a chunk of blank dates is seconds, others microseconds; any
            return f"timestamp {dtype.tz is not None}"  # zone of instants: +01:00 rows, then a summer time's in UTC)
        return str(dtype)

    was, now = kind(old), kind(new)
    return was == now or now == "null" or (now == "text" and was not in ("text", "bool"))


def fit(table: Any, schema: Any, misfit: Callable[[str, object], Exception]) -> Any:
    """A later chunk's table cast to the first chunk's ``schema`` where its values keep their kind
    (a column all blank in the chunk takes any type: blanks under booleans were read as floats and
    failed the file); else ``misfit(what, why)`` is raised, naming the columns (a source read in chunks)."""
    import pyarrow as pa

    if table.schema == schema:
        return table
    for i, f in enumerate(table.schema):  # a column with no value in this chunk (all blank): any type
        column = table.column(i)
        if f.name in schema.names and column.null_count == len(column) and f.type != schema.field(f.name).type:
            table = table.set_column(i, f.name, pa.nulls(len(column), schema.field(f.name).type))
    if table.schema == schema:
        return table
    changed = [(f.name, schema.field(f.name).type, f.type) for f in table.schema
               if f.name in schema.names and schema.field(f.name).type != f.type]
    kinds = [f"{name!r} ({old} -> {new})" for name, old, new in changed if not same_kind(old, new)]
    if kinds:
        raise misfit(f"column {', '.join(kinds)}", "its values would change kind")
    try:
        return table.cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError) as exc:
        raise misfit(f"column {', '.join(f'{n!r} ({o} -> {w})' for n, o, w in changed) or '?'}", exc) from exc


def one_batch(table: Any) -> Any:
    """A table as one record batch (an empty one keeps its schema)."""
    import pyarrow as pa

    return table.combine_chunks().to_batches()[0] if table.num_rows else pa.RecordBatch.from_pylist([], schema=table.schema)


def _column(values: np.ndarray, name: str) -> Any:
    import pyarrow as pa

    dtype = values.dtype
    if dtype.subdtype is not None or values.ndim > 1:
        flat = values.reshape(len(values), -1)
        inner = _column(flat.reshape(-1), name)
        return pa.FixedSizeListArray.from_arrays(inner, flat.shape[1])
    if dtype.kind == "S":
        return pa.array([decode_bytes(bytes(v)) for v in values], type=pa.string())
    if dtype.kind == "O":  # variable-length strings, or variable-length sequences
        items = [decode_bytes(v) if isinstance(v, bytes) else v.tolist() if isinstance(v, np.ndarray) else v for v in values]
        try:
            return pa.array(items)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise UnsupportedError(f"column {name!r}: variable-length values have no common Arrow type ({exc})") from None
    if dtype.kind == "c":
        raise UnsupportedError(f"column {name!r}: complex numbers have no Arrow type")
    if dtype.kind == "V":
        raise UnsupportedError(f"column {name!r}: opaque datatype {dtype} has no Arrow type")
    if dtype.kind == "f" and dtype.itemsize > 8:
        raise UnsupportedError(f"column {name!r}: {dtype} has no Arrow type")
    return pa.array(np.asarray(values, dtype=dtype.newbyteorder("="), order="C"))


def _flatten(values: np.ndarray, prefix: str, out: list[tuple[str, Any]]) -> None:
    for field in values.dtype.names or ():
        sub = values[field]
        name = f"{prefix}{field}"
        if sub.dtype.names:  # nested compound: flattened to dotted column names
            _flatten(sub, name + ".", out)
        else:
            out.append((name, _column(sub, name)))


def _content_bytes(value: Any) -> int:
    """The bytes a variable-length value holds (a str of other than ASCII: up to 4 a character)."""
    if isinstance(value, bytes):
        return len(value)
    if isinstance(value, str):
        return len(value) if value.isascii() else 4 * len(value)
    if isinstance(value, np.ndarray):
        return sum(_content_bytes(v) for v in value.ravel()) if value.dtype.hasobject else value.nbytes
    if isinstance(value, np.void) and value.dtype.names:
        return sum(_content_bytes(value[name]) for name in value.dtype.names)
    return 8


def sampled_row_bytes(read: Callable[[int, int], np.ndarray], n: int, dtype: np.dtype, rows: int = 64) -> int:
    """A table row's bytes, to size its batches: the fixed part, plus for variable-length fields
    (strings, sequences) the most a row of a few runs held (start, thirds, end). By the fixed part
    alone, rows of 64 KiB strings were counted 16 bytes and a batch of 65,536 of them was the
    whole 4 GB file. ``read(start, stop)`` reads rows."""
    if not dtype.hasobject or n == 0:
        return dtype.itemsize
    most = 0
    for start in sorted({0, n // 3, 2 * n // 3, max(0, n - rows)}):
        block = np.asarray(read(start, min(n, start + rows))).reshape(-1)
        for row in block:
            most = max(most, sum(_content_bytes(row[name]) for name in dtype.names if dtype[name].hasobject))
    return dtype.itemsize + most


def structured_to_batch(values: np.ndarray) -> Any:
    """A RecordBatch with one column per field; nested fields become ``outer.inner`` columns."""
    import pyarrow as pa

    columns: list[tuple[str, Any]] = []
    _flatten(values.reshape(-1), "", columns)
    # (a field named "in.a" beside a compound "in" of a field "a": the second overwrote the first)
    return pa.RecordBatch.from_arrays([c for _, c in columns], names=unique_names([n for n, _ in columns]))
