"""A published table: one Parquet file, or ``part-NNNNN.parquet`` partitions under a prefix."""

from __future__ import annotations

import io
from typing import Any

from ..errors import BadRequest
from ..stores import Store
from ..structures import TableStructure
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
        return self.url if self.url.endswith(".parquet") else f"{self.url}/part-{i:05d}.parquet"

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


def column_values(table: PublishedTable, name: str, partition: int | None = None) -> Any:
    """One column as the numpy array Tiled serves for a table column (``table[column]``):
    strings as fixed-width unicode as wide as the column's longest value (over the whole
    column, so every partition's block has the dtype the metadata advertises), nulls as ``""``;
    numbers as numpy gives them (integers with nulls become floats with NaN, as in pandas)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    data = (table.read([name]) if partition is None else table.partition(partition, [name])).column(name)
    if pa.types.is_string(data.type) or pa.types.is_large_string(data.type):
        whole = data if partition is None else table.read([name]).column(name)
        longest = pc.max(pc.utf8_length(whole)).as_py() or 0
        return np.array(["" if v is None else v for v in data.to_pylist()], dtype=f"<U{max(longest, 1)}")
    if pa.types.is_dictionary(data.type):
        data = data.cast(data.type.value_type)
        return np.array(["" if v is None else str(v) for v in data.to_pylist()], dtype=f"<U{max([len(str(v or '')) for v in data.to_pylist()] + [1])}")
    return data.to_numpy()
