"""A published sparse array: one Parquet file of global COO triplets per block
(``publisher/writers/sparse_parquet.py``), read block by block; pyarrow on first use.

A selection reads only the blocks it overlaps; its answer is Tiled's: the nonzeros inside it,
coordinates relative to the selection (dimensions indexed by an integer dropped), sorted
row-major. A block's answer has block-local coordinates, as Tiled's ``read_block``.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from ..errors import BadRequest
from ..sparse_layout import block_key
from ..stores import Store
from ..structures import SparseStructure


class PublishedSparse:
    def __init__(self, store: Store, url: str, structure: SparseStructure) -> None:
        self.store, self.url, self.structure = store, url.rstrip("/"), structure
        self.shape: tuple[int, ...] = tuple(structure.shape)
        self.chunks: list[list[int]] = structure.chunks
        self.dtype = np.dtype(structure.data_type.to_numpy_str())
        #: Blocks read by this object (what a test checks: a slice reads only the blocks it needs).
        self.blocks_read: list[tuple[int, ...]] = []

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def _offsets(self, dim: int) -> list[int]:
        return [0, *itertools.accumulate(self.chunks[dim])]

    def read_block_file(self, index: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        """``(coords (ndim, nnz) int64, data)`` of one block, global coordinates, as stored."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.blocks_read.append(index)
        table = pq.read_table(pa.BufferReader(self.store.read_bytes(block_key(self.url, index))))
        coords = np.stack([table.column(f"dim{i}").to_numpy() for i in range(self.ndim)]) if self.ndim else np.empty((0, table.num_rows), np.int64)
        return coords.astype(np.int64, copy=False), table.column("data").to_numpy()

    def block(self, index: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
        """One block: block-local coordinates, values, the block's shape."""
        if len(index) != self.ndim or any(not 0 <= i < len(c) for i, c in zip(index, self.chunks)):
            raise BadRequest(f"block {list(index)} is out of range: the grid is {[len(c) for c in self.chunks]} blocks")
        coords, data = self.read_block_file(index)
        starts = np.array([self._offsets(d)[i] for d, i in enumerate(index)], np.int64).reshape(-1, 1)
        return coords - starts, data, tuple(c[i] for c, i in zip(self.chunks, index))

    def _ranges(self, sel: tuple[Any, ...]) -> tuple[tuple[Any, ...], list[range]]:
        full = tuple(sel) + (slice(None),) * (self.ndim - len(sel))
        return full, [range(n)[s] if isinstance(s, slice) else range(n)[s:s + 1 or None] for s, n in zip(full, self.shape)]

    def overlapped(self, sel: tuple[Any, ...]) -> list[tuple[int, ...]]:
        """The blocks ``array[sel]`` touches (by the bounds of each dimension's range)."""
        wanted = []
        for dim, r in enumerate(self._ranges(sel)[1]):
            offsets = self._offsets(dim)
            lo, hi = (min(r), max(r)) if len(r) else (0, -1)
            wanted.append([b for b in range(len(self.chunks[dim])) if offsets[b] <= hi and offsets[b + 1] > lo])
        return list(itertools.product(*wanted))

    def read(self, sel: tuple[Any, ...]) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
        """The nonzeros of ``array[sel]`` (NumPy basic indexing: integers, slices with steps)."""
        full, ranges = self._ranges(sel)
        found_c, found_d = [np.empty((self.ndim, 0), np.int64)], [np.empty(0, self.dtype)]
        for index in self.overlapped(sel):
            coords, data = self.read_block_file(index)
            keep = np.ones(data.shape[0], bool)
            for c, r in zip(coords, ranges):  # every range is non-empty here: an empty one overlaps no block
                keep &= (c >= min(r[0], r[-1])) & (c <= max(r[0], r[-1])) & ((c - r.start) % r.step == 0)
            new = [(c[keep] - r.start) // r.step for c, r in zip(coords, ranges)]
            found_c.append(np.stack(new) if new else np.empty((0, int(keep.sum())), np.int64))
            found_d.append(data[keep])
        coords, data = np.concatenate(found_c, axis=1), np.concatenate(found_d)
        dims = [d for d, s in enumerate(full) if isinstance(s, slice)]
        coords = coords[dims]
        order = np.lexsort(coords[::-1]) if len(dims) else np.arange(data.size)
        return coords[:, order], data[order], tuple(len(r) for r, s in zip(ranges, full) if isinstance(s, slice))

