"""A published table: one Parquet file, or ``part-NNNNN.parquet`` partitions under a prefix."""

from __future__ import annotations

import io
from typing import Any

from ..errors import BadRequest
from ..stores import Store
from ..structures import TableStructure
from ..table_layout import partition_key
from .cache import DECODED

#: Bytes per value assumed for variable-width columns (strings, binary, lists) before any data is
#: read: the structure does not say how long they are. The decoded table is measured again
#: before it is serialized (:meth:`PublishedTable.nbytes` is the first check, not the only one).
VARIABLE_WIDTH_GUESS = 16


class PublishedTable:
    def __init__(self, store: Store, url: str, structure: TableStructure) -> None:
        self.store, self.url = store, url
        self.structure = structure
        self.npartitions = structure.npartitions
        self.columns: list[str] = list(structure.columns)

    def schema(self) -> Any:
        """The Arrow schema the structure advertises (Tiled's data URI of the IPC bytes)."""
        import base64

        import pyarrow as pa

        return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(self.structure.arrow_schema.partition(",")[2])))

    def rows(self, partition: int | None = None) -> int:
        """Rows in the whole table or one partition, from the structure (no read)."""
        counts = self.structure.partition_rows
        if partition is None:
            return self.structure.row_count
        return int(counts[partition]) if partition < len(counts) else 0

    def nbytes(self, columns: list[str] | None = None, partition: int | None = None) -> int:
        """Decoded bytes of these columns (all when None), estimated from the structure alone:
        fixed-width types exactly (values and validity bits), variable-width ones at
        :data:`VARIABLE_WIDTH_GUESS` bytes a value plus their offsets."""
        schema = self.schema()
        width = 0.0
        for name in columns or self.columns:
            field = schema.field(name)
            try:
                bits = field.type.bit_width
            except ValueError:  # variable width: no bit_width
                bits = 8 * (VARIABLE_WIDTH_GUESS + 4)
            width += bits / 8 + 1 / 8
        return int(width * self.rows(partition))

    def partition_key(self, i: int) -> str:
        return self.url if self.url.endswith(".parquet") else partition_key(self.url, i)

    def _check_columns(self, columns: list[str] | None) -> None:
        unknown = [c for c in columns or [] if c not in self.columns]
        if unknown:
            raise BadRequest(f"no column(s) {unknown} in this table; columns are {self.columns}")

    def partition(self, i: int, columns: list[str] | None = None) -> Any:
        import pyarrow.parquet as pq

        if not 0 <= i < self.npartitions:
            raise BadRequest(f"partition {i} is out of range: the table has {self.npartitions}")
        self._check_columns(columns)
        whole = (self.store.url, self.partition_key(i))
        table = DECODED.get(whole)
        if table is not None:
            return table.select(columns) if columns else table
        key = (whole[0], whole[1] + ("?" + ",".join(columns) if columns else ""))  # only these columns are read
        table = DECODED.get(key)
        if table is None:
            table = pq.read_table(io.BytesIO(self.store.read_bytes(whole[1])), columns=columns or None)
            DECODED.put(key, table)
        return table

    def read(self, columns: list[str] | None = None) -> Any:
        import pyarrow as pa

        self._check_columns(columns)
        parts = [self.partition(i, columns) for i in range(self.npartitions)]
        return pa.concat_tables(parts) if len(parts) > 1 else parts[0]


    def partition_sizes(self) -> list[int]:
        """Rows in each partition (the structure's; a one-file table without them: its row count)."""
        counts = [int(n) for n in self.structure.partition_rows]
        if len(counts) == self.npartitions:
            return counts
        if self.npartitions == 1:
            return [self.structure.row_count]
        return [self.partition(i).num_rows for i in range(self.npartitions)]

    def read_rows(self, rows: slice, columns: list[str] | None = None, partition: int | None = None) -> Any:
        """Rows ``rows`` (a Python slice, any step) of the table or of one partition, reading only
        the partitions they fall in, one at a time (a first-rows preview reads one file)."""
        import pyarrow as pa

        self._check_columns(columns)
        sizes = self.partition_sizes()
        parts = [partition] if partition is not None else list(range(self.npartitions))
        wanted = range(*rows.indices(sum(sizes[i] for i in parts)))
        ascending = wanted if wanted.step > 0 else wanted[::-1]
        pieces, start = [], 0
        for i in parts:
            end = start + sizes[i]
            first = max(0, -(-(start - ascending.start) // ascending.step))  # first wanted index >= start
            last = max(first, -(-(end - ascending.start) // ascending.step))  # ... and < end
            inside = ascending[first:last]
            if inside:
                data = self.partition(i, columns)
                local = range(inside.start - start, inside.stop - start, inside.step)
                pieces.append(data.slice(local.start, len(local)) if local.step == 1 else data.take(pa.array(local, type=pa.int64())))
            start = end
        if not pieces:
            schema = self.schema()
            return schema.empty_table().select(columns) if columns else schema.empty_table()
        out = pa.concat_tables(pieces) if len(pieces) > 1 else pieces[0]
        return out if wanted.step > 0 else out.take(pa.array(range(out.num_rows - 1, -1, -1), type=pa.int64()))


def column_values(table: PublishedTable, name: str, partition: int | None = None, rows: slice | None = None) -> Any:
    """One column as the numpy array Tiled serves for a table column (``table[column]``), in the
    dtype of the whole column whatever part is asked for (its metadata advertises that one, and
    the client reads the bytes as it): strings as fixed-width unicode as wide as the column's
    longest value, nulls as ``""`` (categories and booleans with nulls as their text, as Tiled
    serves them); integers with a null anywhere as floats with NaN (as in pandas); other numbers,
    dates, timestamps and durations as numpy gives them; anything else (decimal,
    time of day, binary, nested, null, extension types) as text too, as Tiled serves pandas'
    object columns (its ``str`` of each value) and as the table's CSV gives them: numpy's object
    dtype has no form the tiled client takes (it was advertised as kind 'T', which it refuses),
    and its values were a 500 as JSON or, for time64[ns], at all. ``rows`` converts only those
    rows (of the whole column: a preview's first rows). A part converted alone had its own dtype:
    a slice of a nullable integer column without a null went out as int64 bytes read as float64,
    one without a long category too narrow."""
    import numpy as np
    import pyarrow as pa

    from ..serializers.arrow_text import as_text

    if rows is not None:
        data = table.read_rows(rows, [name]).column(name)
    else:
        data = (table.read([name]) if partition is None else table.partition(partition, [name])).column(name)
    partial = partition is not None or rows is not None
    kind = data.type.value_type if pa.types.is_dictionary(data.type) else data.type
    textual = pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_dictionary(data.type)
    if not (textual or pa.types.is_boolean(kind) or pa.types.is_integer(kind)):
        if (values := _as_numpy(data)) is not None:
            return values
        data, whole = as_text(data), as_text(table.read([name]).column(name)) if partial else None
        return np.array(["" if v is None else v for v in data.to_pylist()], dtype=f"<U{_text_width(data if whole is None else whole)}")
    whole = table.read([name]).column(name) if partial else data
    if pa.types.is_dictionary(data.type):
        data, whole = data.cast(kind), whole.cast(kind)
    if textual or (pa.types.is_boolean(kind) and whole.null_count):  # (booleans with nulls: text, as Tiled serves them)
        return np.array(["" if v is None else str(v) for v in data.to_pylist()], dtype=f"<U{_text_width(whole)}")
    values = data.to_numpy(zero_copy_only=False)
    return values.astype("float64") if whole.null_count and values.dtype.kind in "iu" else values


def _as_numpy(data: Any) -> Any:
    """The column as numpy gives it when that is a dtype of its own (numbers, times, dates, an
    extension type stored as numbers: a bool8 column was served as its int8s and stays so); None
    when numpy would hold objects, or cannot (time64[ns]: "non-zero nanoseconds")."""
    import pyarrow as pa

    try:
        values = data.to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, TypeError, ValueError):
        return None
    return None if values.dtype.kind == "O" else values


def _text_width(column: Any) -> int:
    """The width of a column's values as text (at least 1)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    text = column if pa.types.is_string(column.type) or pa.types.is_large_string(column.type) else pc.cast(column, pa.string())
    longest = pc.max(pc.utf8_length(text)).as_py() if len(text) else 0
    return max(longest or 0, 1)
