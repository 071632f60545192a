"""NetCDF 3 and 4 (CF): variables → arrays with their dims and raw CF attributes, groups → containers.

Values are stored packed, as on disk, with ``scale_factor``/``add_offset``/``_FillValue`` kept, so
``xarray.open_zarr`` decodes them exactly as ``xarray.open_dataset`` decodes the source. Two
cases are stored decoded instead, because JSON attributes would change xarray's result:
float32 packing (JSON turns the float32 scale into a float64 one, and xarray picks the decoded
dtype from it) and character arrays (stored as the strings xarray makes of them).
Compound variables become tables.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SourceError
from ..jsonable import to_json
from ..nodes import ArrayNode, ContainerNode, Node, SkippedNode, TableNode
from . import register_reader
from .base import Reader
from .hdf5 import HDF5_MAGIC

NC_EXTENSIONS = (".nc", ".nc4", ".cdf", ".netcdf", ".nc3")
#: The netCDF-C library is not thread-safe: every call into it, for any file, holds this lock.
NETCDF_LOCK = threading.RLock()
_PACKING = ("scale_factor", "add_offset", "_FillValue", "missing_value")


def _is_netcdf4(path: Path) -> bool:
    try:
        import h5py

        with h5py.File(path, "r", locking=False) as f:
            return "_NCProperties" in f.attrs
    except Exception:
        return False


def _decoded_float(raw_dtype: np.dtype, attrs: dict[str, Any]) -> Any:
    from xarray.coding.variables import _choose_float_dtype

    return np.dtype(_choose_float_dtype(raw_dtype, attrs))


def _needs_decoding(raw_dtype: np.dtype, attrs: dict[str, Any]) -> bool:
    """True when xarray would decode the JSON form of the attributes to another dtype."""
    if "scale_factor" not in attrs and "add_offset" not in attrs:
        return False
    as_json = {k: (float(v) if isinstance(v, (np.floating, float)) else v) for k, v in attrs.items() if k in _PACKING}
    typed = {k: v for k, v in attrs.items() if k in _PACKING}
    return _decoded_float(raw_dtype, typed) != _decoded_float(raw_dtype, as_json)


class _NetCDF:
    def __init__(self, ds: Any) -> None:
        self.ds = ds
        self.lock = NETCDF_LOCK

    def group(self, g: Any, key: str, path: str) -> ContainerNode:
        node = ContainerNode(key=key, metadata=self.attrs(g), source_path=path, in_file=True, specs=["xarray_dataset"])
        for name, var in g.variables.items():
            node.children.append(self.variable(var, name, f"{path}/{name}"))
        for name, sub in g.groups.items():
            node.children.append(self.group(sub, name, f"{path}/{name}"))
        return node

    @staticmethod
    def raw_attrs(obj: Any) -> dict[str, Any]:
        return {k: obj.getncattr(k) for k in obj.ncattrs()}

    def attrs(self, obj: Any) -> dict[str, Any]:
        return {k: to_json(v) for k, v in self.raw_attrs(obj).items()}

    def variable(self, var: Any, name: str, path: str) -> Node:
        import netCDF4

        var.set_auto_maskandscale(False)
        var.set_auto_chartostring(False)
        raw_attrs = self.raw_attrs(var)
        attrs = {k: to_json(v) for k, v in raw_attrs.items()}
        zarr_attrs = dict(attrs)
        if np.ndim(raw_attrs.get("_FillValue")) == 0 and "_FillValue" in raw_attrs:
            zarr_attrs["_FillValue"] = np.asarray(raw_attrs["_FillValue"]).item()  # NaN kept; the writer encodes it
        kind = type(var.datatype).__name__
        lock = self.lock
        dims = list(var.dimensions)
        shape = tuple(var.shape)
        if isinstance(var.datatype, netCDF4.CompoundType):
            return self.compound(var, name, path, attrs)
        if isinstance(var.datatype, netCDF4.VLType) and var.dtype is not str:
            return SkippedNode(key=name, source_path=path, reason=f"variable-length (ragged) type {var.datatype.name!r} is not supported")
        if isinstance(var.datatype, netCDF4.EnumType):
            attrs.setdefault("flag_values", [int(v) for v in var.datatype.enum_dict.values()])
            attrs.setdefault("flag_meanings", " ".join(var.datatype.enum_dict))

        def raw(sel: tuple[slice, ...]) -> np.ndarray:
            with lock:
                return np.asarray(var[sel] if sel else var.getValue())

        chunking = var.chunking() if hasattr(var, "chunking") else None
        source_chunks = tuple(chunking) if isinstance(chunking, list) else None
        if var.dtype is str or kind == "VLType":
            return ArrayNode(key=name, metadata=attrs, source_path=path, dtype=np.dtype(object), shape=shape,
                             read=lambda sel: raw(sel).astype(object), dims=dims, attrs=attrs)
        dtype = np.dtype(var.dtype)
        if dtype.kind == "S" and dtype.itemsize == 1 and dims:
            return self.chars(var, name, path, attrs, raw_attrs, raw, dims, shape)
        if _needs_decoding(dtype, raw_attrs):
            return self.decoded(name, path, raw_attrs, raw, dims, shape, dtype, source_chunks)
        native = dtype.newbyteorder("=") if dtype.byteorder == ">" else dtype
        return ArrayNode(key=name, metadata=attrs, source_path=path, dtype=native, shape=shape,
                         read=lambda sel: np.asarray(raw(sel), dtype=native, order="C"),
                         dims=dims, attrs=zarr_attrs, source_chunks=source_chunks)

    def decoded(self, name: str, path: str, raw_attrs: dict[str, Any], raw: Any, dims: list[str], shape: tuple[int, ...],
                dtype: np.dtype, source_chunks: tuple[int, ...] | None) -> ArrayNode:
        import xarray as xr

        def decode(block: np.ndarray, block_dims: list[str]) -> Any:
            return xr.conventions.decode_cf_variable(name, xr.Variable(block_dims, block, raw_attrs), decode_times=False, decode_timedelta=False)

        sample = decode(np.zeros((1,) * len(shape), dtype=dtype), dims)
        attrs = {k: to_json(v) for k, v in sample.attrs.items()}
        packing = {k: to_json(v) for k, v in raw_attrs.items() if k in _PACKING}
        node = ArrayNode(key=name, metadata={**attrs, **packing}, source_path=path, dtype=sample.dtype, shape=shape,
                         read=lambda sel: np.asarray(decode(raw(sel), dims).values, order="C"), dims=dims, attrs=attrs,
                         source_chunks=source_chunks)
        node.notes["cf_decoded"] = {"packed_dtype": str(dtype), **packing}
        return node

    def chars(self, var: Any, name: str, path: str, attrs: dict[str, Any], raw_attrs: dict[str, Any], raw: Any,
              dims: list[str], shape: tuple[int, ...]) -> ArrayNode:
        """Character arrays as xarray makes them: fixed-width bytes, or str where ``_Encoding`` says so."""
        import xarray as xr

        def decode(block: np.ndarray) -> Any:
            return xr.conventions.decode_cf_variable(name, xr.Variable(dims, block, raw_attrs), decode_times=False, mask_and_scale=False)

        sample = decode(np.zeros((1,) * len(shape), dtype="S1"))
        out_attrs = {k: to_json(v) for k, v in sample.attrs.items()}
        as_bytes = sample.dtype.kind == "S"
        dtype = np.dtype(f"S{shape[-1]}") if as_bytes else np.dtype(object)

        def read(sel: tuple[slice, ...]) -> np.ndarray:
            values = np.asarray(decode(raw(sel + (slice(0, shape[-1]),))).values)
            return values.astype(dtype)

        node = ArrayNode(key=name, metadata=out_attrs, source_path=path, dtype=dtype, shape=shape[:-1], read=read,
                         dims=dims[:-1], attrs=out_attrs)
        node.notes["cf_decoded"] = {"char_dimension": dims[-1]}
        return node

    def compound(self, var: Any, name: str, path: str, attrs: dict[str, Any]) -> Node:
        from .tables import structured_to_batch

        if var.ndim > 1:
            return SkippedNode(key=name, source_path=path, reason=f"compound variable of rank {var.ndim} (only 1-d becomes a table)")
        dtype = var.datatype.dtype
        schema = structured_to_batch(np.zeros(1, dtype=dtype)).schema
        n = int(var.shape[0]) if var.ndim else 1
        lock = self.lock

        def batches(rows: int = 65536) -> Iterator[Any]:
            for start in range(0, n, rows):
                with lock:
                    block = np.asarray(var[start : start + rows] if var.ndim else var.getValue()).reshape(-1)
                yield structured_to_batch(block.astype(dtype))

        return TableNode(key=name, metadata=attrs, source_path=path, schema=schema, batches=batches, num_rows=n)


@register_reader
class NetCDFReader(Reader):
    name = "netcdf"
    extensions = NC_EXTENSIONS
    magic = (b"CDF\x01", b"CDF\x02", b"CDF\x05", HDF5_MAGIC)
    priority = 10

    @classmethod
    def claims(cls, path: Path, head: bytes) -> bool:
        return head.startswith(b"CDF") or path.suffix.lower() in NC_EXTENSIONS or _is_netcdf4(path)

    @contextlib.contextmanager
    def open(self, path: Path, key: str, options: Any) -> Iterator[Node]:
        import netCDF4

        with NETCDF_LOCK:
            try:
                ds = netCDF4.Dataset(path, "r")
            except OSError as exc:
                raise SourceError(f"{path}: not a readable NetCDF file: {exc}") from exc
        try:
            with NETCDF_LOCK:
                root = _NetCDF(ds).group(ds, key, "")
                root.notes["netcdf_format"] = ds.file_format
            yield root
        finally:
            with NETCDF_LOCK:
                ds.close()
