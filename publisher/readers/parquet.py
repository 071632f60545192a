"""Parquet → a table, streamed by record batches of about ``BATCH_BYTES`` each.

pyarrow's defaults would read a whole file ahead (``pre_buffer``: 800 MB of Parquet took a build
~1 GB of memory) and give batches of 65,536 rows whatever their width; a build reads the file a
column chunk's pages at a time instead (``buffer_size``), in batches sized by the rows' bytes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import SourceError
from ..jsonable import decode_bytes
from ..nodes import Node, TableNode
from .base import Reader, register_reader

#: About this many bytes (uncompressed, as the file's row groups say) a record batch.
BATCH_BYTES = 32 * 2**20
#: Bytes read at once from a column chunk (the stream's buffer; pyarrow's default reads it whole).
STREAM_BUFFER = 2**20


@register_reader
class ParquetReader(Reader):
    name = "parquet"
    extensions = (".parquet", ".pq")
    magic = (b"PAR1",)

    @contextlib.contextmanager
    def open(self, path: Path, key: str, options: Any) -> Iterator[Node]:
        import pyarrow.parquet as pq

        try:
            pf = pq.ParquetFile(path, pre_buffer=False, buffer_size=STREAM_BUFFER)
        except Exception as exc:
            raise SourceError(f"{path}: not a readable Parquet file: {exc}") from exc
        try:
            schema_meta = pf.schema_arrow.metadata or {}
            metadata = {decode_bytes(k): decode_bytes(v)[:2000] for k, v in schema_meta.items() if k != b"pandas"}
            rows = pf.metadata.num_rows
            size = sum(pf.metadata.row_group(i).total_byte_size for i in range(pf.num_row_groups))
            batch = max(1, min(262_144, BATCH_BYTES * rows // size)) if rows and size else 262_144
            yield TableNode(key=key, metadata=metadata, schema=pf.schema_arrow, batches=lambda: pf.iter_batches(batch_size=batch),
                            num_rows=rows)
        finally:
            pf.close()
