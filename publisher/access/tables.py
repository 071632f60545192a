"""A published table: one Parquet file, or ``part-NNNNN.parquet`` partitions under a prefix."""

from __future__ import annotations

import io
from typing import Any

from ..errors import BadRequest
from ..stores import Store
from .cache import DECODED


class PublishedTable:
    def __init__(self, store: Store, url: str, structure: dict[str, Any]) -> None:
        self.store, self.url = store, url
        self.npartitions = int(structure.get("npartitions", 1))
        self.columns: list[str] = list(structure.get("columns", []))

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
