"""Sparse serializers (a :class:`COO` in): the COO triplet table ``dim0``..``dim<n-1>``, ``data``
as Tiled sends it (Arrow IPC file: what the tiled client reads; Parquet; JSON), and, Skyshelf's
own, the selection made dense as CSV or PNG (the handler refuses a dense answer past the
server's limit before reading; Tiled 0.2.20 offers no dense format and fails on its CSV).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from . import array, png
from .base import register


class COO(NamedTuple):
    """The nonzeros of a selection: coordinates ``(ndim, nnz)``, values, the selection's shape."""

    coords: np.ndarray
    data: np.ndarray
    shape: tuple[int, ...]

    def dense(self) -> np.ndarray:
        if not self.shape:  # one element (every index an integer): np.add.at cannot index a 0-d array (a 500)
            return np.asarray(self.data.sum(), dtype=self.data.dtype)
        out = np.zeros(self.shape, dtype=self.data.dtype)
        np.add.at(out, tuple(self.coords), self.data)  # repeated coordinates add up, as in sparse.COO
        return out


def triplets(coo: COO) -> Any:
    """The Arrow table: int64 coordinates named ``dim<i>``, then ``data``."""
    import pyarrow as pa

    return pa.table({**{f"dim{i}": np.asarray(c, np.int64) for i, c in enumerate(coo.coords)}, "data": coo.data})


@register("sparse", "application/vnd.apache.arrow.file", ("arrow", "feather"), ".arrow")
def to_arrow(coo: COO, **_: Any) -> bytes:
    from .table import to_arrow as table_arrow

    return table_arrow(triplets(coo))


@register("sparse", "application/x-parquet", ("parquet",), ".parquet")
def to_parquet(coo: COO, **_: Any) -> bytes:
    from .table import to_parquet as table_parquet

    return table_parquet(triplets(coo))


@register("sparse", "application/json", ("json",), ".json")
def to_json(coo: COO, **_: Any) -> bytes:
    """``{"dim0": [...], ..., "data": [...]}``, as Tiled's JSON for sparse (NaN as null)."""
    columns = [*(np.asarray(c, np.int64) for c in coo.coords), coo.data]
    names = [f"dim{i}" for i in range(len(coo.coords))] + ["data"]
    return b"{" + b",".join(b'"%s":%s' % (n.encode(), array.to_json(c)) for n, c in zip(names, columns)) + b"}"


@register("sparse", "text/csv", ("csv",), ".csv")
def to_csv(coo: COO, **options: Any) -> bytes:
    """The selection dense (at most 2-D, as an array's CSV)."""
    return array.to_csv(coo.dense(), **options)


@register("sparse", "image/png", ("png",), ".png")
def to_png(coo: COO, **options: Any) -> bytes:
    """The selection dense, drawn as an array's PNG (same options)."""
    return png.to_png(coo.dense(), **options)
