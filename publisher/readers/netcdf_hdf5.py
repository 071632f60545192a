"""What netCDF-C cannot read of a NetCDF-4 file, found through h5py (a NetCDF-4 file is HDF5).

netCDF-C shows only the HDF5 types NetCDF-4 has: a dataset of another type (opaque without a
named type, references, bitfields, a compound of an enum or bool field) is left out of its
variables, with no word, so the build published nothing of it and said nothing; a 16-bit float
(h5netcdf's ``invalid_netcdf=True`` writes them) is shown as a string variable whose read crashes
the process inside netCDF-C (SIGSEGV: the whole build died, no report). Such datasets are skipped
naming the type; strings that are no UTF-8 (netCDF4-python decodes strictly) are read here,
UTF-8 else Latin-1 as the HDF5 reader reads them. Also found in the same walk: the files the
file takes values from (virtual datasets, external raw storage) and external storage not read.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SourceError
from ..jsonable import decode_bytes
from .hdf5_sources import external_problem, in_other_files, other_files

#: netCDF-C's mark on the dimension scales that are no variable (a dimension without a coordinate).
_DIMENSION_ONLY = b"This is a netCDF dimension but not a netCDF variable"
#: The prefix netCDF-C gives a variable stored beside a dimension scale of its name.
_NON_COORD = "_nc4_non_coord_"


@dataclass
class Scan:
    """A NetCDF-4 file as h5py sees it, for the NetCDF reader."""

    #: Files its datasets take values from.
    referred: list[Path] = field(default_factory=list)
    #: Why variables (by path, "/group/name") are not read: external storage missing or short, a
    #: 16-bit float (which netCDF-C shows as a string and crashes reading).
    unread: dict[str, str] = field(default_factory=dict)
    #: Datasets of types NetCDF-4 lacks (group path -> name -> why): those netCDF-C leaves out of a
    #: group's variables are published as skipped, saying why.
    foreign: dict[str, dict[str, str]] = field(default_factory=dict)


def scan(path: Path) -> Scan:
    """Walk the file's datasets once (their types and storage, not their values)."""
    import h5py

    found = Scan()

    def visit(name: str, obj: Any) -> None:
        if not isinstance(obj, h5py.Dataset):
            return
        where = f"/{name}"
        if in_other_files(obj):
            found.referred.extend(other_files(obj))
            if problem := external_problem(obj):
                found.unread[where] = problem
        kind = _h5_kind(h5py, obj.id.get_type())
        if kind is not None and not _dimension_only(obj):
            why = f"HDF5 {kind} dataset, a type netCDF-C does not read (not a NetCDF-4 type)"
            group, _, key = where.rpartition("/")
            found.foreign.setdefault(group, {})[key.removeprefix(_NON_COORD)] = why
            if "16-bit float" in kind:
                found.unread[where.replace(f"/{_NON_COORD}", "/")] = why

    with h5py.File(path, "r", locking=False) as f:
        f.visititems(visit)
    return found


def _dimension_only(ds: Any) -> bool:
    name = ds.attrs.get("NAME") if "NAME" in ds.attrs else None
    return isinstance(name, bytes) and name.startswith(_DIMENSION_ONLY)


def _h5_kind(h5py: Any, tid: Any) -> str | None:
    """The HDF5 type class NetCDF-4 lacks, searched into compounds and arrays."""
    cls = tid.get_class()
    if cls == h5py.h5t.FLOAT and tid.get_size() == 2:
        return "16-bit float"
    names = {h5py.h5t.OPAQUE: "opaque", h5py.h5t.REFERENCE: "reference", h5py.h5t.BITFIELD: "bitfield", h5py.h5t.TIME: "time"}
    if cls in names:
        return names[cls]
    if cls == h5py.h5t.COMPOUND:
        for i in range(tid.get_nmembers()):
            member = tid.get_member_type(i)
            if member.get_class() == h5py.h5t.ENUM:
                return "compound with an enum field"
            if (inner := _h5_kind(h5py, member)) is not None:
                return f"compound with a {inner} field"
    if cls in (h5py.h5t.ARRAY, h5py.h5t.VLEN) and hasattr(tid, "get_super"):
        inner = _h5_kind(h5py, tid.get_super())
        return None if inner is None else f"{'array' if cls == h5py.h5t.ARRAY else 'variable-length'} of {inner}"
    return None


class H5Strings:
    """A NetCDF-4 file's string variables read through h5py, opened once at the first need (a
    variable whose strings netCDF4-python cannot decode as UTF-8)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.Lock()
        self._file: Any = None

    def read(self, where: str, sel: tuple[slice, ...], shape: tuple[int, ...]) -> np.ndarray:
        """The strings at ``sel`` of the variable at ``where`` (``shape``: the variable's, as published)."""
        import h5py

        with self.lock:
            if self._file is None:
                self._file = h5py.File(self.path, "r", locking=False)
            group, _, name = where.rpartition("/")
            # (a variable beside a dimension of its name is stored under another: the dimension's own is fill values)
            ds = self._file.get(f"{group}/{_NON_COORD}{name}") or self._file[where]
            if ds.dtype.kind != "O" or tuple(ds.shape) != shape:  # (a char array, its strings joined by xarray: not read here)
                raise SourceError(f"{where}: a character array whose text is not UTF-8, as its _Encoding says: not read")
            values = np.asarray(ds[sel] if sel else ds[()], dtype=object)
        out = np.empty(values.shape, dtype=object)
        for at, v in np.ndenumerate(values):
            out[at] = decode_bytes(v) if isinstance(v, bytes) else "" if v is None else str(v)
        return out

    def close(self) -> None:
        with self.lock:
            if self._file is not None:
                self._file.close()
                self._file = None
