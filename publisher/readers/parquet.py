"""Parquet → a table, streamed by record batches of about ``nodes.BATCH_BYTES`` each.

pyarrow's defaults would read a whole file ahead (``pre_buffer``: 800 MB of Parquet took a build
~1 GB of memory) and give batches of 65,536 rows whatever their width; a build reads the file a
column chunk's pages at a time instead (``buffer_size``), in batches sized by the rows' bytes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import SourceError, UnsupportedError
from ..jsonable import decode_bytes
from ..nodes import Node, TableNode, batch_rows
from .base import Reader, register_reader
from .tables import unique_names

#: Rows decoded to measure a row's size in memory.
PROBE_ROWS = 64
#: Bytes read at once from a column chunk (the stream's buffer; pyarrow's default reads it whole).
STREAM_BUFFER = 2**20
#: The sidecars Dask, Spark and pyarrow write beside a dataset's files: footers, no rows of their own.
SIDECARS = ("_metadata", "_common_metadata")


def _row_bytes(pf: Any) -> float:
    """A row's bytes once decoded: what the row groups state (uncompressed, but as encoded: a
    dictionary-encoded column of 4 KB strings states ~1.5 bytes a row), or what its first rows
    take in memory, the larger."""
    import pyarrow as pa

    rows = pf.metadata.num_rows
    if not rows:
        return 1.0
    stated = sum(pf.metadata.row_group(i).total_byte_size for i in range(pf.num_row_groups)) / rows
    probe = next(iter(pf.iter_batches(batch_size=PROBE_ROWS, row_groups=[0])), None)
    if probe is None or not probe.num_rows:
        return stated
    # a dictionary-typed column (a pandas Categorical) carries its whole dictionary in every batch:
    # its rows are its indices (counted with the dictionary, 64 rows of 200,000 categories were
    # taken for 84 KB a row: batches of 397 rows, 4,476 row groups)
    measured = sum(c.indices.nbytes if pa.types.is_dictionary(c.type) else c.nbytes for c in probe.columns)
    return max(stated, measured / probe.num_rows)


#: The span of times nanoseconds since 1970 hold in 64 bits, in microseconds.
_NS_SPAN_US = (-(2**63) // 1000 + 1, (2**63 - 1) // 1000)


def _int96_unit(pf: Any, reopen: Any) -> str:
    """The unit a file's INT96 timestamps (Spark's, Impala's legacy ones) are read in: nanoseconds,
    as they are stored and pyarrow reads them, unless one lies outside what nanoseconds since 1970
    hold in 64 bits (1677-2262): those wrapped round to other dates (9999-12-31, a common sentinel,
    was published as 1816-03-29), so such a file is read in microseconds. Only a file with INT96
    columns is opened again (``reopen(unit)``) and those columns read, row group by row group."""
    import pyarrow.compute as pc

    schema = pf.schema
    int96 = sorted({schema.column(i).path.split(".")[0] for i in range(len(schema)) if schema.column(i).physical_type == "INT96"})
    if not int96:
        return "ns"
    as_us = reopen("us")
    try:
        for group in range(as_us.num_row_groups):
            for column in as_us.read_row_group(group, columns=int96).columns:
                if column.type.num_fields or column.null_count == len(column):
                    continue  # (nested: read as stored)
                low, high = pc.min_max(column.cast("int64")).values()
                if low.as_py() < _NS_SPAN_US[0] or high.as_py() > _NS_SPAN_US[1]:
                    return "us"
    finally:
        as_us.close()
    return "ns"


@register_reader
class ParquetReader(Reader):
    name = "parquet"
    alone = True  # (one file, nothing it refers to)
    extensions = (".parquet", ".pq")
    magic = (b"PAR1",)

    @contextlib.contextmanager
    def open(self, path: Path, key: str, options: Any) -> Iterator[Node]:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if path.name in SIDECARS:  # (``_metadata`` failed as "Couldn't deserialize thrift", the build with it)
            raise UnsupportedError(f"{path}: a Parquet dataset's {path.name} sidecar (its files' footers, no rows of its own): "
                                   "not published; the dataset's files are")
        try:
            # pages' CRCs checked where the writer stored them (a flipped bit was published as a value)
            def opened(unit: str = "ns") -> Any:
                return pq.ParquetFile(path, pre_buffer=False, buffer_size=STREAM_BUFFER, page_checksum_verification=True,
                                      coerce_int96_timestamp_unit=unit)

            pf = opened()
            if (unit := _int96_unit(pf, opened)) != "ns":
                pf.close()
                pf = opened(unit)
        except Exception as exc:
            raise SourceError(f"{path}: not a readable Parquet file: {exc}") from exc
        try:
            schema_meta = pf.schema_arrow.metadata or {}
            metadata = {decode_bytes(k): decode_bytes(v)[:2000] for k, v in schema_meta.items() if k != b"pandas"}
            rows = pf.metadata.num_rows
            batch = batch_rows(_row_bytes(pf), most=262_144)
            stored, names = pf.schema_arrow, unique_names(pf.schema_arrow.names)
            renamed = names != stored.names

            def batches() -> Iterator[Any]:
                for found in pf.iter_batches(batch_size=batch):
                    yield found.rename_columns(names) if renamed else found

            schema = pa.schema([f.with_name(n) for f, n in zip(stored, names, strict=True)], stored.metadata) if renamed else stored
            node = TableNode(key=key, metadata=metadata, schema=schema, batches=batches, num_rows=rows)
            if renamed:
                changes = [f"{a!r} -> {b!r}" for a, b in zip(stored.names, names, strict=True) if a != b]
                node.warn(f"repeated column names made distinct: {', '.join(changes)}")
            yield node
        finally:
            pf.close()
