"""Sparse arrays → one Parquet file per block, Tiled's own sparse storage layout.

``<prefix>/data/<path>/block-<i>.<j>.parquet`` for every block of the grid (empty blocks too),
columns ``dim0``..``dim<n-1>`` (int64) and ``data``, as ``tiled/adapters/sparse_blocks_parquet.py``
writes them, except that coordinates are **global** (Tiled's are block-local): the directory then
reads as one table (``pyarrow.parquet.read_table(dir)``) that is the whole COO matrix, and a row
range filters on ``dim0`` with the row groups' statistics. Each file's schema metadata
``skyshelf`` holds ``shape``, ``chunks`` and its ``block`` (docs/catalog.md).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from ..nodes import SparseNode
from ..sparse_layout import METADATA_KEY, block_grid, block_key
from ..structures import DataType, SparseStructure, regular_chunks
from .base import WriteContext, Written, discard, register

#: Rows per Parquet row group: a slice of a big block reads only the groups its rows fall in.
ROW_GROUP = 131_072


@register("sparse")
class SparseParquetWriter:
    """Every block of the node's grid, read with ``read_coo`` (only the source rows it touches)."""

    def __init__(self, context: WriteContext) -> None:
        self.context = context

    def write(self, node: SparseNode, path: str, zarr_path: str, documents: dict[str, Any]) -> Written:
        import pyarrow as pa
        import pyarrow.parquet as pq

        assert node.read_coo is not None
        shape = tuple(node.shape)
        chunks = node.grid or regular_chunks(shape, node.chunks or tuple(max(n, 1) for n in shape))
        url = f"{self.context.prefix}/data/{path}"
        meta = {"shape": list(shape), "chunks": chunks, "dims": node.dims}
        bytes_in = nnz = most = 0
        written: list[str] = []
        try:
            for index in block_grid(chunks):
                starts = [sum(c[:i]) for c, i in zip(chunks, index)]
                region = tuple(slice(s, s + c[i]) for s, c, i in zip(starts, chunks, index))
                coords, data = node.read_coo(region)
                coords = np.asarray(coords, dtype=np.int64).reshape(len(shape), -1) + np.asarray(starts, np.int64).reshape(-1, 1)
                columns = {f"dim{i}": coords[i] for i in range(len(shape))} | {"data": np.asarray(data)}
                schema_meta = {METADATA_KEY: json.dumps({**meta, "block": list(index)})}
                table = pa.table(columns).replace_schema_metadata(schema_meta)
                sink = self.context.store.open_write(block_key(url, index))
                written.append(block_key(url, index))
                try:
                    pq.write_table(table, sink, compression="zstd", row_group_size=ROW_GROUP)
                finally:
                    sink.close()
                bytes_in += coords.nbytes + np.asarray(data).nbytes
                nnz, most = nnz + table.num_rows, max(most, table.num_rows)
        except BaseException:  # (a failed array's blocks: none left in the release)
            discard(self.context.store, written)
            raise
        # what the server bounds an answer by before reading any block (handlers/sparse.py)
        node.notes.setdefault("sparse", {}).update(nnz=nnz, max_block_nnz=most)
        structure = SparseStructure(DataType.from_numpy(node.dtype), DataType.from_numpy(np.dtype("<i8")), list(shape),
                                    [list(c) for c in chunks], node.dims)
        return Written(structure, url, bytes_in)
