"""Arrays → Zarr (v3 by default, v2 selectable), streamed slab by slab over a thread pool.

Memory stays bounded: at most ``workers * 2`` slabs of ``slab_bytes`` are in flight,
whatever the array's size. Every chunk is written, even one equal to the fill value,
so values (including NaN payloads and sentinels) read back bit-exact.
"""

from __future__ import annotations

import base64
import struct
import warnings
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..config.models import Codec
from ..nodes import ArrayNode
from .chunking import auto_chunks, slabs
from .codecs import zarr_compressors


@dataclass
class ArrayWritten:
    chunks: tuple[int, ...]
    bytes_in: int


def _xarray_fill_attr(value: Any, dtype: np.dtype) -> Any:
    """``_FillValue`` as xarray's Zarr v3 backend stores it (floats as base64 of a little-endian double)."""
    if dtype.kind == "f" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return base64.standard_b64encode(struct.pack("<d", float(value))).decode()
    return value


def _default_fill(dtype: np.dtype) -> Any:
    if dtype.kind == "O":
        return ""
    if dtype.kind == "b":
        return False
    return 0


class ZarrWriter:
    def __init__(self, zstore: Any, zarr_format: int, codec: Codec, target_bytes: int, pool: ThreadPoolExecutor, slab_bytes: int = 16 * 2**20) -> None:
        self.zstore = zstore
        self.zarr_format = zarr_format
        self.codec = codec
        self.target_bytes = target_bytes
        self.pool = pool
        self.slab_bytes = max(slab_bytes, target_bytes)

    def group(self, path: str, attrs: dict[str, Any]) -> None:
        import zarr

        zarr.create_group(self.zstore, path=path, zarr_format=self.zarr_format, attributes=attrs, overwrite=True)

    def consolidate(self, path: str) -> None:
        """Consolidated metadata in every group, so clients open any group without listing."""
        import zarr

        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Consolidated metadata is currently not part", category=UserWarning)
            zarr.consolidate_metadata(self.zstore, path=path or None, zarr_format=self.zarr_format)

    def _attrs_and_fill(self, node: ArrayNode, dims: list[str]) -> tuple[dict[str, Any], Any]:
        attrs = dict(node.attrs if node.attrs is not None else node.metadata)
        if self.zarr_format == 2:
            attrs["_ARRAY_DIMENSIONS"] = dims
            # xarray reads a v2 array's fill_value as _FillValue (a mask), so only a CF fill may go there.
            return attrs, attrs.pop("_FillValue", None)
        if "_FillValue" in attrs:
            attrs["_FillValue"] = _xarray_fill_attr(attrs["_FillValue"], node.dtype)
        fill = node.fill_value if node.fill_value is not None else _default_fill(node.dtype)
        return attrs, fill

    def array(self, path: str, node: ArrayNode, codec: Codec | None = None) -> ArrayWritten:
        import zarr

        assert node.read is not None
        chunks = auto_chunks(node.shape, node.dtype.itemsize or 64, self.target_bytes, node.source_chunks, node.chunks)
        dims = node.dims if node.dims is not None else [f"dim_{i}" for i in range(len(node.shape))]
        attrs, fill = self._attrs_and_fill(node, dims)
        dtype: Any = str if node.dtype.kind == "O" else node.dtype
        arr = zarr.create_array(
            self.zstore,
            name=path,
            shape=node.shape,
            chunks=chunks if node.shape else (),
            dtype=dtype,
            compressors=zarr_compressors(codec or self.codec, self.zarr_format, node.dtype.itemsize),
            fill_value=fill,
            attributes=attrs,
            dimension_names=dims if self.zarr_format == 3 else None,
            zarr_format=self.zarr_format,
            overwrite=True,
            config={"write_empty_chunks": True},
        )
        bytes_in = 0

        def write(sel: tuple[slice, ...]) -> int:
            block = node.read(sel)
            expected = tuple(s.stop - s.start for s in sel)
            if block.shape != expected:
                raise ValueError(f"reader returned shape {block.shape} for region {expected}")
            arr[sel] = block
            return block.nbytes if block.dtype.kind != "O" else sum(len(str(v)) for v in block.flat)

        if not node.shape:
            return ArrayWritten((), write(()))
        in_flight: deque[Future[int]] = deque()
        limit = max(2, 2 * (self.pool._max_workers or 1))  # type: ignore[attr-defined]
        try:
            for sel in slabs(node.shape, chunks, self.slab_bytes, node.dtype.itemsize or 64):
                in_flight.append(self.pool.submit(write, sel))
                if len(in_flight) >= limit:
                    bytes_in += in_flight.popleft().result()
            while in_flight:
                bytes_in += in_flight.popleft().result()
        finally:
            for f in in_flight:
                f.cancel()
        return ArrayWritten(chunks, bytes_in)
