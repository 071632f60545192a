"""Tables → Parquet (zstd, row groups), split into partition files when large."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from ..nodes import TableNode
from ..stores import Store
from ..structures import TableStructure
from ..table_layout import partition_key
from .base import WriteContext, Written, discard, register

ARROW_SCHEMA_PREFIX = "data:application/vnd.apache.arrow.file;base64,"
#: A partition ends before its row groups' metadata, which pyarrow's writer keeps until the file
#: closes (~800 bytes a leaf column a row group, measured), passes this: a table of 116,000
#: columns (a CSV of 1 MiB lines) held ~95 MB a row group, 3.5 GB for 800 rows.
FOOTER_BYTES = 64 * 2**20
COLUMN_CHUNK_BYTES = 1024


def _leaves(kind: Any) -> int:
    """Parquet's columns for an Arrow type: one per leaf of its nesting."""
    import pyarrow as pa

    if pa.types.is_struct(kind):
        return sum(_leaves(kind.field(i).type) for i in range(kind.num_fields)) or 1
    if pa.types.is_map(kind):
        return _leaves(kind.key_type) + _leaves(kind.item_type)
    if pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind) or pa.types.is_list_view(kind):
        return _leaves(kind.value_type)
    return 1


def schema_data_uri(schema: Any) -> str:
    """Tiled's encoding of an Arrow schema in ``TableStructure.arrow_schema``."""
    return ARROW_SCHEMA_PREFIX + base64.b64encode(schema.serialize().to_pybytes()).decode()


@dataclass
class TableWritten:
    data_url: str
    partition_rows: list[int]
    schema: Any
    bytes_in: int


def write_table(store: Store, key: str, node: TableNode, row_group_rows: int, partition_rows: int) -> TableWritten:
    """Write ``key + '.parquet'`` (one partition) or ``key/part-NNNNN.parquet`` (several).

    The first partition goes straight to ``key.parquet``; only when a second one is needed is it
    moved to ``key/part-00000.parquet``. Nothing under ``key/`` is ever deleted."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    assert node.batches is not None
    parts: list[int] = []
    schema = node.schema
    writer: Any = None
    sink: Any = None
    bytes_in = 0

    def close() -> None:
        nonlocal writer, sink
        if writer is not None:
            writer.close()
            sink.close()
            writer = sink = None

    groups = 0  # row groups in the open partition
    per_group = 0

    try:
        for batch in node.batches():
            schema = schema if schema is not None else batch.schema
            per_group = per_group or sum(_leaves(f.type) for f in schema) * COLUMN_CHUNK_BYTES
            if batch.num_rows == 0:
                continue
            if batch.schema != schema:
                batch = pa.Table.from_batches([batch]).cast(schema).combine_chunks().to_batches()[0]
            offset = 0
            while offset < batch.num_rows:
                if writer is None or parts[-1] >= partition_rows or (groups and (groups + 1) * per_group > FOOTER_BYTES):
                    close()
                    groups = 0
                    if len(parts) == 1:  # a second partition: the first becomes part-00000
                        store.move(f"{key}.parquet", partition_key(key, 0))
                    sink = store.open_write(f"{key}.parquet" if not parts else partition_key(key, len(parts)))
                    writer = pq.ParquetWriter(sink, schema, compression="zstd", write_statistics=True)
                    parts.append(0)
                take = min(batch.num_rows - offset, partition_rows - parts[-1])
                room = max(1, FOOTER_BYTES // max(per_group, 1) - groups)  # row groups this partition may still take
                take = min(take, room * row_group_rows)
                piece = batch.slice(offset, take)
                writer.write_batch(piece, row_group_size=row_group_rows)
                groups += -(-take // row_group_rows)
                parts[-1] += take
                offset += take
                bytes_in += piece.nbytes
        if writer is None:  # no batches at all: an empty table with the schema
            if schema is None:
                schema = pa.schema([])
            sink = store.open_write(f"{key}.parquet")
            writer = pq.ParquetWriter(sink, schema, compression="zstd")
            parts.append(0)
        close()
    except BaseException:  # (a table cut short at a failing batch was a valid Parquet file of the rows before it)
        close()
        discard(store, [f"{key}.parquet"] + [partition_key(key, i) for i in range(len(parts))])
        raise
    finally:
        close()
    if len(parts) == 1:
        return TableWritten(f"{key}.parquet", parts, schema, bytes_in)
    return TableWritten(key, parts, schema, bytes_in)


@register("table")
class ParquetWriter:
    """Tables as Parquet below ``prefix/data/<path>``, row groups and partitions as configured."""

    def __init__(self, context: WriteContext) -> None:
        self.context = context

    def write(self, node: TableNode, path: str, zarr_path: str, documents: dict[str, Any]) -> Written:
        out, prefix = self.context.output, self.context.prefix
        written = write_table(self.context.store, f"{prefix}/data/{path}", node, out.table_row_group_rows, out.table_partition_rows)
        rows = written.partition_rows
        structure = TableStructure(schema_data_uri(written.schema), list(written.schema.names), len(rows), sum(rows), rows)
        return Written(structure, written.data_url, written.bytes_in)
