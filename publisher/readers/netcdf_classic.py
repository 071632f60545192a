"""How many bytes a classic NetCDF file (CDF-1, CDF-2, CDF-5) needs, from its header; files shorter refused.

netCDF-C reads past a classic file's end as fill values: a file cut short by an interrupted copy
publishes zeros where its last values were, with no error. Summing the variables' sizes catches
a file missing more than its header's length, not one missing its last few kilobytes. The exact
end of each variable is in the header (its ``begin`` offset), which neither netCDF4-python nor
xarray exposes (scipy's reader would, but supports neither CDF-5 nor lazy opening cheaply, and is
not a dependency): this reads that header, as the format's specification gives it
(https://docs.unidata.ucar.edu/netcdf-c/current/file_format_specifications.html), and nothing else.
"""

from __future__ import annotations

import math
import os
import struct
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from ..errors import SourceError

#: Bytes of one value of each external type (NC_BYTE ... NC_UINT64).
_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 4, 6: 8, 7: 1, 8: 2, 9: 4, 10: 8, 11: 8}


class HeaderError(ValueError):
    """The header is not one the specification describes."""


class HeaderCut(HeaderError):
    """The file ends inside its header: cut short (netCDF-C opens it as a file of no variables)."""


class _Header:
    def __init__(self, file: BinaryIO) -> None:
        self.file = file
        self.size = os.fstat(file.fileno()).st_size
        magic = self._read(4)
        if magic[:3] != b"CDF" or magic[3] not in (1, 2, 5):
            raise HeaderError("not a classic NetCDF file")
        self.version = magic[3]

    def _read(self, size: int) -> bytes:
        if self.file.tell() + size > self.size:  # (before reading: an attribute may declare gigabytes in a 76-byte file)
            raise HeaderCut("the header ends early")
        data = self.file.read(size)
        if len(data) != size:
            raise HeaderCut("the header ends early")
        return data

    def int32(self) -> int:
        return struct.unpack(">I", self._read(4))[0]

    def count(self) -> int:
        """A NON_NEG: 64 bits in CDF-5, else 32."""
        return struct.unpack(">Q", self._read(8))[0] if self.version == 5 else self.int32()

    def offset(self) -> int:
        return struct.unpack(">Q", self._read(8))[0] if self.version in (2, 5) else self.int32()

    def skip_padded(self, size: int) -> None:
        padded = -(-size // 4) * 4
        if self.file.tell() + padded > self.size:
            raise HeaderCut("the header ends early")
        self.file.seek(padded, os.SEEK_CUR)

    def skip_name(self) -> None:
        self.skip_padded(self.count())

    def list_length(self, tag: int) -> int:
        """A list's element count: ABSENT (ZERO ZERO) is none."""
        found, length = self.int32(), self.count()
        if found not in (0, tag) or (found == 0 and length != 0):
            raise HeaderError(f"expected list tag {tag:#x}, found {found:#x}")
        return length

    def skip_attributes(self) -> None:
        for _ in range(self.list_length(0x0C)):
            self.skip_name()
            kind = self.int32()
            if kind not in _SIZES:
                raise HeaderError(f"attribute of unknown type {kind}")
            self.skip_padded(self.count() * _SIZES[kind])


def needed_size(file: BinaryIO) -> int:
    """The least length the file must have to hold every variable's values. A record count of
    "streaming" (all ones in CDF-1 and CDF-2: a file still being written) is taken as netCDF-C
    takes it, 4,294,967,295 records: a 160-byte file of that count published 17 TB of fill values."""
    header = _Header(file)
    records = header.count()
    lengths = []
    for _ in range(header.list_length(0x0A)):
        header.skip_name()
        lengths.append(header.count())
    header.skip_attributes()
    fixed_end = 0
    record_vars: list[tuple[int, int, int]] = []  # (begin, bytes per record, vsize)
    for _ in range(header.list_length(0x0B)):
        header.skip_name()
        dims = [header.count() for _ in range(header.count())]
        header.skip_attributes()
        kind = header.int32()
        if kind not in _SIZES or any(d >= len(lengths) for d in dims):
            raise HeaderError(f"a variable of unknown type {kind} or dimension")
        vsize, begin = header.count(), header.offset()
        shape = [lengths[d] for d in dims]
        if dims and lengths[dims[0]] == 0:  # the unlimited (record) dimension has length 0 here
            record_vars.append((begin, math.prod(shape[1:]) * _SIZES[kind], vsize))
        else:
            fixed_end = max(fixed_end, begin + math.prod(shape) * _SIZES[kind])
    if not record_vars or records == 0:
        return fixed_end
    # One record variable's records are not padded; several are, each to its vsize.
    record_size = record_vars[0][1] if len(record_vars) == 1 else sum(v for _, _, v in record_vars)
    return max(fixed_end, *(begin + (records - 1) * record_size + size for begin, size, _ in record_vars))


def check_classic_header(path: Path) -> bool:
    """A classic (NetCDF 3) file shorter than its header says it is: netCDF-C reads past its end
    as fill values (a file cut short by a copy published zeros for its last values; a dimension
    patched from 10 to 1,000 published 10 values and 990 zeros), so it is refused here, before
    netCDF-C opens it (which allocates what the header declares: an attribute of 6 GiB in a
    76-byte file took 6.4 GB). The header gives where each variable ends
    (:func:`needed_size`). False when that reading failed where netCDF-C's may not: then
    :func:`check_classic_size` bounds it by the variables' sizes, once open."""
    size = path.stat().st_size
    try:
        with open(path, "rb") as file:
            if file.read(3) != b"CDF":
                return True  # (NetCDF-4 is HDF5, which refuses to read past a file's end itself)
            file.seek(0)
            needed = needed_size(file)
    except HeaderCut:  # (else published as an empty dataset: no variables, no error)
        raise SourceError(f"{path}: truncated: the file ends inside its header ({size} bytes)") from None
    except (HeaderError, OSError):
        return False
    _refuse_short(path, needed, size)
    return True


def check_classic_size(ds: Any, path: Path) -> None:
    """:func:`check_classic_header`'s bound when the header could not be read: the variables' sizes summed."""
    if ds.data_model.startswith("NETCDF3"):
        needed = sum(math.prod(v.shape) * np.dtype(v.dtype).itemsize for v in ds.variables.values() if v.dtype is not str)
        _refuse_short(path, needed, path.stat().st_size)


def _refuse_short(path: Path, needed: int, size: int) -> None:
    if needed > size:
        raise SourceError(f"{path}: its variables need {needed} bytes but the file holds {size}: truncated, or its dimensions are wrong")
