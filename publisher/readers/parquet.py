"""Parquet → a table, streamed by record batches."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import SourceError
from ..jsonable import decode_bytes
from ..nodes import Node, TableNode
from .base import Reader, register_reader


@register_reader
class ParquetReader(Reader):
    name = "parquet"
    extensions = (".parquet", ".pq")
    magic = (b"PAR1",)

    @contextlib.contextmanager
    def open(self, path: Path, key: str, options: Any) -> Iterator[Node]:
        import pyarrow.parquet as pq

        try:
            pf = pq.ParquetFile(path)
        except Exception as exc:
            raise SourceError(f"{path}: not a readable Parquet file: {exc}") from exc
        try:
            schema_meta = pf.schema_arrow.metadata or {}
            metadata = {decode_bytes(k): decode_bytes(v)[:2000] for k, v in schema_meta.items() if k != b"pandas"}
            yield TableNode(key=key, metadata=metadata, schema=pf.schema_arrow, batches=lambda: pf.iter_batches(batch_size=262_144),
                            num_rows=pf.metadata.num_rows)
        finally:
            pf.close()
