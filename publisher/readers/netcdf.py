"""NetCDF 3 and 4 (CF): each group through xarray, as ``xarray.open_dataset(file, group=...)`` gives it.

Values are published decoded by xarray's own CF decoding (``scale_factor``/``add_offset``
applied, ``_FillValue``/``missing_value`` as NaN, CF times as ``datetime64``, character arrays
as strings), so the API, the exports and a direct ``xarray.open_zarr`` of the store all give
what an xarray user gets from the source. The encoding attributes are not written again (a
direct read would decode twice). Times xarray can only give as ``cftime`` objects (non-standard
calendars) stay numbers with their ``units``/``calendar``, which ``open_zarr`` decodes.

A group is labelled ``xarray_dataset`` when it follows Tiled's rules for that spec: metadata
``{"attrs": ...}``, every variable an array labelled ``xarray_coord`` or ``xarray_data_var``
with its dims. Subgroups stay children (their own datasets, listed in ``notes["xarray_groups"]``
so the server can inline the variables, as Tiled does). A group xarray cannot open is
published as stored, unlabelled, with a warning. Complex numbers stored as compounds (h5netcdf,
netCDF4 ``auto_complex``) or with nc-complex's ``_pfnc_complex`` dimension are read as complex
arrays; other compound variables become tables (1-D) or structured arrays (N-D).
"""

from __future__ import annotations

import contextlib
import inspect
import math
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from ..errors import SourceError
from ..jsonable import capped_json, to_json
from ..nodes import ArrayNode, ContainerNode, Node, SkippedNode, TableNode, batch_rows
from ..structures import XARRAY_COORD, XARRAY_DATA_VAR, XARRAY_DATASET
from .base import Reader, register_reader, sampled_string_width
from .compound import packed, repacked
from .hdf5 import HDF5_MAGIC, HDF5Reader
from .netcdf_classic import check_classic_header, check_classic_size
from .netcdf_hdf5 import H5Strings, Scan, scan
from .whole_chunks import DecodedChunks, decoded_once

NC_EXTENSIONS = (".nc", ".nc4", ".cdf", ".netcdf", ".nc3")
#: xarray's ``open_dataset`` option (2025.07 on) not to build the dimension coordinates' indexes:
#: each is loaded whole (a 100 MiB ``time`` coordinate grew memory by ~290 MiB on opening).
_LAZY_INDEXES = "create_default_indexes"
#: The netCDF-C library is not thread-safe: every call into it, for any file, holds this lock.
NETCDF_LOCK = threading.RLock()


def import_netcdf4() -> ModuleType:
    """``netCDF4``, without the mark its import leaves on the process.

    Unless ``HDF5_PLUGIN_PATH`` is set, importing netCDF4 sets it to its own filter plugins,
    built against its own copy of HDF5. Left set, h5py's HDF5 (loaded later in this process, and
    in every child: the build's worker processes, Dask workers) loads those plugins instead of
    hdf5plugin's, and writing a Blosc or Zstd dataset fails ("error during user callback").
    netCDF4's HDF5 reads the variable once, as it loads, so it is taken back right after.
    """
    import netCDF4

    own = os.path.join(netCDF4.__path__[0], "plugins")
    if os.environ.get("HDF5_PLUGIN_PATH") == own:
        del os.environ["HDF5_PLUGIN_PATH"]
    return netCDF4


def _no_chunk_cache(netCDF4: ModuleType) -> None:
    """No chunk cache for the variables of files opened from now on. netCDF-C gives each variable
    its own (64 MiB by default), kept until the file closes: a file of 800 variables of 1 MiB,
    each read once, ended in memory whole. A build reads whole source chunks (the writer's chunks
    follow them; big chunks it cuts are decoded once: readers/whole_chunks.py), so there is
    nothing for a cache to serve."""
    netCDF4.set_chunk_cache(0, 0, 0.75)


def _is_netcdf4(path: Path) -> bool:
    try:
        import h5py

        with h5py.File(path, "r", locking=False) as f:
            return "_NCProperties" in f.attrs
    except Exception:
        return False


def _attrs(attrs: dict[str, Any]) -> dict[str, Any]:
    return {str(k): capped_json(v) for k, v in attrs.items()}


def _text(values: np.ndarray) -> np.ndarray:
    """Text values as Zarr's strings hold them: xarray leaves a char array with a ``_FillValue``
    (Argo's ``PLATFORM_NUMBER``) as bytes, decoded here (UTF-8, else Latin-1: each byte one
    character), and makes a missing string (a variable-length one at its ``_FillValue``) NaN,
    here "" (Zarr's fill for strings). Both failed the variable ("Expected str, got bytes")."""
    if all(isinstance(v, str) for v in values.flat):
        return values
    out = np.empty(values.shape, dtype=object)
    for at, v in np.ndenumerate(values):
        if isinstance(v, bytes):
            try:
                v = v.decode("utf-8")
            except UnicodeDecodeError:
                v = v.decode("latin-1")
        out[at] = v if isinstance(v, str) else "" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)
    return out


def _is_cftime(var: Any) -> bool:
    """True when xarray decodes this variable to ``cftime`` objects (which Zarr cannot hold)."""
    return var.dtype.kind == "O" and "units" in var.encoding and "since" in str(var.encoding["units"])


class _NetCDF:
    def __init__(self, path: Path, found: Scan | None = None) -> None:
        self.path = path
        #: What h5py sees that netCDF-C does not read (readers/netcdf_hdf5.py); None for NetCDF 3.
        self.found = found or Scan()
        self.strings = H5Strings(path)
        #: What was left out of the file, said as its warnings (attributes netCDF4-python cannot read).
        self.problems: list[str] = []
        self.lock = NETCDF_LOCK
        #: Big chunks decoded once for the reads that cut them (readers/whole_chunks.py).
        self.chunks_decoded = DecodedChunks()
        #: The xarray datasets opened, closed with the file.
        self.opened: list[Any] = []

    def close(self) -> None:
        for xds in self.opened:
            xds.close()
        self.strings.close()

    def open_group(self, path: str, **options: Any) -> Any:
        """The group as xarray opens it (lazily), or the reason it cannot."""
        import xarray as xr

        if _LAZY_INDEXES in inspect.signature(xr.open_dataset).parameters:
            options.setdefault(_LAZY_INDEXES, False)  # else xarray loads each dimension coordinate whole, as a pandas index
        if unread := [where.rpartition("/")[2] for where in self.found.unread if where.rpartition("/")[0] == path]:
            options["drop_variables"] = unread  # (a 16-bit float: xarray's look at it crashes netCDF-C)
        try:
            xds = xr.open_dataset(self.path, group=path or "/", engine="netcdf4", cache=False, auto_complex=True, **options)
        except Exception as exc:  # xarray's own limits (e.g. a type it does not map): published as stored
            return f"{type(exc).__name__}: {exc}"
        self.opened.append(xds)
        return xds

    def group(self, g: Any, key: str, path: str) -> ContainerNode:
        xds = self.open_group(path)
        if isinstance(xds, str):
            attrs = self.attrs(g, path)
            node = ContainerNode(key=key, metadata={"attrs": attrs}, source_path=path, in_file=True, attrs=attrs)
            node.warn(f"xarray cannot open this group ({xds}): its variables are published as stored, undecoded")
            xds = None
        else:
            attrs = _attrs(xds.attrs)
            node = ContainerNode(key=key, metadata={"attrs": attrs}, source_path=path, in_file=True, attrs=attrs)
        raw_xds = None
        for name, var in g.variables.items():
            xvar = xds.variables.get(name) if xds is not None else None
            if xvar is not None and _is_cftime(xvar):
                raw_xds = raw_xds if raw_xds is not None else self.open_group(path, decode_times=False)
                xvar = raw_xds.variables.get(name) if not isinstance(raw_xds, str) else None
            child = self.variable(var, name, f"{path}/{name}", xvar, xds is not None and name in xds.coords)
            node.children.append(child)
        for name, why in self.found.foreign.get(path, {}).items():
            if name not in g.variables:  # (left out by netCDF-C: said, not dropped without a word)
                node.children.append(SkippedNode(key=name, source_path=f"{path}/{name}", reason=why))
        groups = []
        for name, sub in g.groups.items():
            node.children.append(self.group(sub, name, f"{path}/{name}"))
            groups.append(name)
        if xds is not None and self.follows_tiled_rules(node):
            node.specs.append(XARRAY_DATASET)
            if groups:
                node.notes["xarray_groups"] = groups
        return node

    @staticmethod
    def follows_tiled_rules(node: ContainerNode) -> bool:
        """Every published variable an array with its spec; the tiled client reads a dataset of
        only 0-d variables through a table, which cannot give 0-d values, so that is left out."""
        arrays = [c for c in node.children if isinstance(c, ArrayNode)]
        if any(isinstance(c, TableNode) for c in node.children):
            return False
        labelled = all({XARRAY_COORD, XARRAY_DATA_VAR} & set(a.specs) for a in arrays)
        return labelled and (not arrays or any(a.shape for a in arrays))

    def attrs(self, obj: Any, where: str) -> dict[str, Any]:
        """The attributes netCDF4-python reads; one it cannot (a variable-length type's, which it
        does not map) is left out and said (:attr:`problems`): it failed the whole file."""
        out = {}
        for k in obj.ncattrs():
            try:
                out[k] = obj.getncattr(k)
            except (KeyError, ValueError, RuntimeError, UnicodeDecodeError) as exc:
                self.problems.append(f"{where or '/'}: attribute {k!r} not read ({type(exc).__name__}: {exc})")
        return _attrs(out)

    def variable(self, var: Any, name: str, path: str, xvar: Any, is_coord: bool) -> Node:
        netCDF4 = import_netcdf4()

        if path in self.found.unread:
            return SkippedNode(key=name, source_path=path, reason=self.found.unread[path])

        if isinstance(var.datatype, netCDF4.CompoundType) and var.dtype.kind != "c":  # complex: a number (auto_complex)
            return self.compound(var, name, path, {"attrs": self.attrs(var, path)})
        if isinstance(var.datatype, netCDF4.VLType) and var.dtype is not str:
            return SkippedNode(key=name, source_path=path, reason=f"variable-length (ragged) type {var.datatype.name!r} is not supported")
        chunking = var.chunking() if hasattr(var, "chunking") else None
        source_chunks = tuple(chunking) if isinstance(chunking, list) else None
        node = self.stored(var, name, path, source_chunks) if xvar is None else self.decoded(xvar, name, path, is_coord, source_chunks)
        if isinstance(var.datatype, netCDF4.EnumType):  # its names, as the HDF5 reader keeps them (the values alone meant nothing)
            node.metadata["enum"] = {str(k): int(v) for k, v in var.datatype.enum_dict.items()}
        return node

    def decoded(self, xvar: Any, name: str, path: str, is_coord: bool, source_chunks: tuple[int, ...] | None) -> ArrayNode:
        """A variable as xarray decodes it, read block by block through xarray's lazy indexing."""
        lock = self.lock
        attrs = _attrs(xvar.attrs)
        zarr_attrs = dict(attrs)
        if "coordinates" in xvar.encoding:  # xarray keeps it in the encoding; open_zarr needs it to find the coords
            zarr_attrs["coordinates"] = to_json(xvar.encoding["coordinates"])
        dtype = np.dtype(xvar.dtype)
        dtype = dtype.newbyteorder("=") if dtype.byteorder == ">" else dtype

        def read(sel: tuple[slice, ...]) -> np.ndarray:
            try:
                with lock:
                    values = np.asarray(xvar[sel].values if sel else xvar.values)
            except UnicodeDecodeError:  # (netCDF4-python decodes strings as UTF-8, strictly)
                return self.strings.read(path, sel, shape)
            return np.asarray(values, dtype=dtype, order="C") if dtype.kind != "O" else _text(values)

        if len(source_chunks or ()) != xvar.ndim:
            source_chunks = None  # a character dimension, decoded away
        shape = tuple(xvar.shape)
        if dtype.kind != "O" and dtype.itemsize <= np.dtype(xvar.encoding.get("dtype", dtype)).itemsize:
            # not where decoding widens the values (int16 scaled to float32): xarray decodes a whole
            # chunk at ~5x its stored size, more than the re-decoding it saves is worth in memory
            read = decoded_once(read, shape, source_chunks, dtype.itemsize, self.chunks_decoded, path)
        return ArrayNode(key=name, metadata={"attrs": attrs}, specs=[XARRAY_COORD if is_coord else XARRAY_DATA_VAR], source_path=path,
                         dtype=dtype, shape=shape, read=read, dims=list(xvar.dims), attrs=zarr_attrs,
                         source_chunks=source_chunks, string_width=sampled_string_width(read, shape) if dtype.kind == "O" else None)

    def stored(self, var: Any, name: str, path: str, source_chunks: tuple[int, ...] | None) -> ArrayNode:
        """A variable of a group xarray cannot open: its values as stored, its attributes as they are."""
        var.set_auto_maskandscale(False)
        var.set_auto_chartostring(False)
        attrs = self.attrs(var, path)
        lock = self.lock
        dtype = np.dtype(object) if var.dtype is str else np.dtype(var.dtype)
        native = dtype.newbyteorder("=") if dtype.byteorder == ">" else dtype

        def read(sel: tuple[slice, ...]) -> np.ndarray:
            try:
                with lock:
                    values = np.asarray(var[sel] if sel else var.getValue())
            except UnicodeDecodeError:  # (as in :meth:`decoded`)
                return self.strings.read(path, sel, shape)
            return values.astype(object) if native.kind == "O" else np.asarray(values, dtype=native, order="C")

        shape = tuple(var.shape)
        if native.kind != "O":
            read = decoded_once(read, shape, source_chunks, native.itemsize, self.chunks_decoded, path)
        return ArrayNode(key=name, metadata={"attrs": attrs}, source_path=path, dtype=native, shape=shape,
                         read=read, dims=list(var.dimensions), attrs=attrs, source_chunks=source_chunks,
                         string_width=sampled_string_width(read, shape) if native.kind == "O" else None)

    def structured(self, var: Any, name: str, path: str, attrs: dict[str, Any]) -> Node:
        """An N-D compound variable as a structured array, packed and little-endian (readers/compound.py)."""
        try:
            dtype = packed(var.datatype.dtype)
        except ValueError as exc:
            return SkippedNode(key=name, source_path=path, reason=f"compound variable of rank {var.ndim} with a {exc}")
        lock = self.lock

        def read(sel: tuple[slice, ...]) -> np.ndarray:
            with lock:
                return repacked(np.asarray(var[sel] if sel else var[...]), dtype)

        chunking = var.chunking()
        chunks = tuple(chunking) if isinstance(chunking, list) else None
        shape = tuple(var.shape)
        return ArrayNode(key=name, metadata=attrs, specs=[XARRAY_DATA_VAR], source_path=path, dtype=dtype, shape=shape,
                         read=decoded_once(read, shape, chunks, dtype.itemsize, self.chunks_decoded, path),
                         dims=list(var.dimensions), source_chunks=chunks, attrs=attrs.get("attrs", {}),  # (its Zarr attributes: units, not {"attrs": ...})
                         fill_value=np.zeros((), dtype)[()])

    def compound(self, var: Any, name: str, path: str, attrs: dict[str, Any]) -> Node:
        from .tables import sampled_row_bytes, structured_to_batch

        if var.ndim > 1:
            return self.structured(var, name, path, attrs)
        dtype = var.datatype.dtype
        schema = structured_to_batch(np.zeros(1, dtype=dtype)).schema
        n = int(var.shape[0]) if var.ndim else 1
        lock = self.lock

        with lock:
            rows = batch_rows(sampled_row_bytes(lambda a, b: var[a:b], n, dtype) if var.ndim else dtype.itemsize)

        def batches() -> Iterator[Any]:
            for start in range(0, n, rows):
                with lock:
                    block = np.asarray(var[start : start + rows] if var.ndim else var.getValue()).reshape(-1)
                yield structured_to_batch(block.astype(dtype))

        return TableNode(key=name, metadata=attrs, source_path=path, schema=schema, batches=batches, num_rows=n)


@register_reader
class NetCDFReader(Reader):
    name = "netcdf"
    requires = ("netCDF4",)
    extensions = NC_EXTENSIONS
    magic = (b"CDF\x01", b"CDF\x02", b"CDF\x05", HDF5_MAGIC)
    priority = 10

    @classmethod
    def claims(cls, path: Path, head: bytes) -> bool:
        return head.startswith(b"CDF") or path.suffix.lower() in NC_EXTENSIONS or _is_netcdf4(path)

    def _scan(self, path: Path) -> Scan:
        """The NetCDF-4 file through h5py (readers/netcdf_hdf5.py); the files its variables take
        values from (HDF5 virtual datasets, external raw storage: netCDF-C reads them as HDF5 does)
        recorded: converted again when one changes (none were: a reprocessed frame file left the
        release as it was)."""
        found = scan(path)
        if found.referred:
            self.others = True
            self.referred = {*self.referred, *found.referred}
        return found

    @contextlib.contextmanager
    def _as_hdf5(self, path: Path, key: str, refused: BaseException) -> Iterator[Node]:
        """An HDF5 file netCDF-C does not open (an attribute of two dimensions, which NetCDF-4
        lacks; a plain HDF5 file named .nc): published as the HDF5 reader publishes it, saying so.
        It failed as "NetCDF: Can't open HDF5 attribute", nothing of it published."""
        from .hdf5 import HDF5Options

        hdf5 = HDF5Reader()
        stack = contextlib.ExitStack()
        try:
            root = stack.enter_context(hdf5.open(path, key, HDF5Options()))
        except SourceError:  # (no HDF5 file either: damaged)
            raise SourceError(f"{path}: not a readable NetCDF file: {refused}") from refused
        with stack:
            self.others, self.referred = hdf5.others, hdf5.referred
            root.warn(f"netCDF-C cannot open it ({type(refused).__name__}: {refused}): published as HDF5, its variables as stored "
                      "(not decoded as CF)")
            yield root

    @contextlib.contextmanager
    def open(self, path: Path, key: str, options: Any) -> Iterator[Node]:
        netCDF4 = import_netcdf4()

        header_read = check_classic_header(path)
        with NETCDF_LOCK:
            _no_chunk_cache(netCDF4)
            try:  # auto_complex: complex numbers stored as compounds or a trailing _pfnc_complex dimension (nc-complex)
                ds = netCDF4.Dataset(path, "r", auto_complex=True)
            except (OSError, RuntimeError) as exc:
                refused = exc
            else:
                refused = None
        if refused is not None:
            with open(path, "rb") as file:
                head = file.read(4096)
            if not HDF5Reader.magic_matches(head):
                raise SourceError(f"{path}: not a readable NetCDF file: {refused}") from refused
            with self._as_hdf5(path, key, refused) as root:
                yield root
            return
        with NETCDF_LOCK:
            try:
                if not header_read:
                    check_classic_size(ds, path)
            except SourceError:
                ds.close()
                raise
        reader = _NetCDF(path, self._scan(path) if not ds.data_model.startswith("NETCDF3") else None)
        try:
            with NETCDF_LOCK:
                root = reader.group(ds, key, "")
                root.notes["netcdf_format"] = ds.file_format
            for problem in reader.problems:
                root.warn(problem)
            yield root
        finally:
            with NETCDF_LOCK:
                reader.close()
                ds.close()
