"""NetCDF-4 files holding what netCDF-C does not read (HDF5 types NetCDF-4 lacks, attributes it
cannot map, strings that are no UTF-8): each said and the rest published, where a 16-bit float
killed the whole build (SIGSEGV in netCDF-C), other types vanished without a word, and one such
attribute or string failed the whole file (a review helper's repros)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import zarr

from publisher.catalog import Catalog
from publisher.stores import Store

from .conftest import write_pipeline

netCDF4 = pytest.importorskip("netCDF4")
h5netcdf = pytest.importorskip("h5netcdf")
pytestmark = pytest.mark.filterwarnings("ignore:You are writing invalid netcdf features")


def _build(tmp: Path) -> dict[str, Any]:
    """``publish build --json-report`` in a process of its own (a crash of netCDF-C ends only it)."""
    config = write_pipeline(tmp, {"sources": [{"path": "in", "into": ""}], "output": {"store": str(tmp / "site")}, "on_error": "skip"})
    done = subprocess.run([sys.executable, "-m", "publisher.cli", "build", "-c", str(config), "--json-report"],
                          capture_output=True, text=True, cwd=tmp, timeout=300)
    assert done.returncode in (0, 3), f"the build died ({done.returncode}): {done.stderr[-2000:]}"
    return json.loads(done.stdout[done.stdout.index("{"):])


def _values(tmp: Path, path: str) -> list[Any]:
    url = Catalog.open(Store(tmp / "site")).entry(path).to_json()["data_url"]
    return np.asarray(zarr.open_array(str(tmp / "site" / url), mode="r")).tolist()


def test_types_netcdf_c_does_not_read_are_skipped_saying_so(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    with h5netcdf.File(tmp_path / "in" / "half.nc", "w", invalid_netcdf=True) as f:  # netCDF-C shows it as a string; reading it crashed
        f.dimensions = {"x": 3}
        f.create_variable("h", ("x",), "f2")[...] = np.array([1.5, -2, 65504], "f2")
        t = f.create_variable("t", ("x",), "f4")
        t[...] = [1, 2, 3]
        t.attrs["units"] = "K"
    path = tmp_path / "in" / "types.nc"
    with netCDF4.Dataset(path, "w") as d:
        d.createDimension("n", 3)
        d.createVariable("ok", "i4", ("n",))[:] = [1, 2, 3]
    with h5py.File(path, "a") as f:  # netCDF-C leaves these out of its variables
        f.create_dataset("opaque", data=np.array([b"ab\x00c", b"xyz\x01", b"\xff\xfe\x00\x00"], dtype="V4"))
        f.create_dataset("refs", data=np.array([f["ok"].ref] * 3, dtype=h5py.ref_dtype))
        bits = h5py.h5d.create(f.id, b"bits", h5py.h5t.STD_B8LE.copy(), h5py.h5s.create_simple((3,)))
        bits.write(h5py.h5s.ALL, h5py.h5s.ALL, np.array([1, 2, 255], "u1"), mtype=h5py.h5t.STD_B8LE)
    report = _build(tmp_path)
    assert not report["failures"], report
    skipped = {s["path"]: s["reason"] for s in report["skipped"]}
    assert skipped == {
        "half/h": "HDF5 16-bit float dataset, a type netCDF-C does not read (not a NetCDF-4 type)",
        "types/opaque": "HDF5 opaque dataset, a type netCDF-C does not read (not a NetCDF-4 type)",
        "types/refs": "HDF5 reference dataset, a type netCDF-C does not read (not a NetCDF-4 type)",
        "types/bits": "HDF5 bitfield dataset, a type netCDF-C does not read (not a NetCDF-4 type)",
    }
    assert _values(tmp_path, "half/t") == [1, 2, 3] and _values(tmp_path, "types/ok") == [1, 2, 3]
    t = Catalog.open(Store(tmp_path / "site")).entry("half/t").to_json()
    assert "xarray_data_var" in [s if isinstance(s, str) else s["name"] for s in t["specs"]]  # (the group still opened by xarray, decoded)


def test_what_netcdf4_python_cannot_decode_fails_no_file(tmp_path: Path) -> None:
    """An attribute of a variable-length type, an attribute of two dimensions (netCDF-C does not
    open such a file at all), a plain HDF5 file named .nc with one, a string that is no UTF-8."""
    (tmp_path / "in").mkdir()
    with netCDF4.Dataset(tmp_path / "in" / "vlen_attr.nc", "w") as d:
        d.createDimension("x", 3)
        d.createVariable("v", "f4", ("x",))[:] = [1, 2, 3]
        d.createVLType("i4", "ragged")
    with h5py.File(tmp_path / "in" / "vlen_attr.nc", "a") as f:
        ragged = np.empty(1, object)
        ragged[0] = np.arange(3, dtype="i4")
        f["v"].attrs.create("a", ragged, dtype=f["ragged"].dtype)
    with h5netcdf.File(tmp_path / "in" / "matrix_attr.nc", "w", invalid_netcdf=True) as f:
        f.dimensions = {"x": 3}
        v = f.create_variable("v", ("x",), "f4")
        v[...] = [4, 5, 6]
        v.attrs["matrix"] = np.eye(2)
    with h5py.File(tmp_path / "in" / "plain.nc", "w") as f:
        f["v"] = np.arange(3.0)
        f["v"].attrs["matrix"] = np.eye(2)
    with netCDF4.Dataset(tmp_path / "in" / "names.nc", "w") as d:
        d.createDimension("n", 2)
        d.createVariable("station", str, ("n",))[:] = np.array(["alpha", "beta"], object)
    with h5py.File(tmp_path / "in" / "names.nc", "a") as f:
        f["station"][1] = b"caf\xe9"  # Latin-1 in a string NetCDF-4 declares UTF-8
    report = _build(tmp_path)
    assert not report["failures"] and not report["skipped"], report
    warned = {(w["path"], w["reason"]) for w in report["warnings"]}
    assert ("vlen_attr", "/v: attribute 'a' not read (KeyError: \"attribute b'a' has unsupported datatype\")") in warned
    as_hdf5 = "netCDF-C cannot open it (RuntimeError: NetCDF: Can't open HDF5 attribute): published as HDF5"
    assert {p for p, r in warned if r.startswith(as_hdf5)} == {"matrix_attr", "plain"}
    assert _values(tmp_path, "vlen_attr/v") == [1, 2, 3]
    assert _values(tmp_path, "matrix_attr/v") == [4, 5, 6] and _values(tmp_path, "plain/v") == [0, 1, 2]
    assert Catalog.open(Store(tmp_path / "site")).entry("plain/v").to_json()["metadata"]["matrix"] == [[1, 0], [0, 1]]
    assert _values(tmp_path, "names/station") == ["alpha", "café"]  # UTF-8, else Latin-1, as the HDF5 reader reads it


def test_an_enum_variable_keeps_its_names(tmp_path: Path) -> None:
    """Published as bare integers, its names nowhere (the HDF5 reader keeps them as ``enum``)."""
    (tmp_path / "in").mkdir()
    with netCDF4.Dataset(tmp_path / "in" / "clouds.nc", "w") as d:
        kind = d.createEnumType("u1", "cloud_t", {"clear": 0, "cumulus": 1, "stratus": 2})
        d.createDimension("n", 3)
        d.createVariable("cloud", kind, ("n",))[:] = [0, 1, 2]
    report = _build(tmp_path)
    assert not report["failures"] and not report["skipped"], report
    entry = Catalog.open(Store(tmp_path / "site")).entry("clouds/cloud").to_json()
    assert entry["metadata"]["enum"] == {"clear": 0, "cumulus": 1, "stratus": 2}
    assert _values(tmp_path, "clouds/cloud") == [0, 1, 2]


def test_strings_not_utf8_are_read_from_the_variable_itself(tmp_path: Path) -> None:
    """A string variable beside a dimension of its name is stored as ``_nc4_non_coord_<name>``:
    the UTF-8-else-Latin-1 read took the dimension's own dataset (fill values: "0.0"); a character
    array whose text is not UTF-8 fails naming it (it failed as "reader returned shape (2, 4)")."""
    (tmp_path / "in").mkdir()
    with netCDF4.Dataset(tmp_path / "in" / "noncoord.nc", "w") as d:
        d.createDimension("station", 3)
        d.createDimension("obs", 2)
        d.createVariable("station", str, ("obs",))[:] = np.array(["alpha", "beta"], object)
    with h5py.File(tmp_path / "in" / "noncoord.nc", "a") as f:
        f["_nc4_non_coord_station"][1] = b"caf\xe9"
    with netCDF4.Dataset(tmp_path / "in" / "chars.nc", "w") as d:
        d.createDimension("n", 2)
        d.createDimension("len", 4)
        v = d.createVariable("name", "S1", ("n", "len"))
        v.set_auto_chartostring(False)
        v[:] = np.array([list(b"abcd"), list(b"caf\xe9")], "u1").view("S1")
        v._Encoding = "utf-8"
    report = _build(tmp_path)
    assert _values(tmp_path, "noncoord/station") == ["alpha", "café"]
    assert [(f["path"], f["reason"]) for f in report["failures"]] == [
        ("chars", "SourceError: /name: a character array whose text is not UTF-8, as its _Encoding says: not read")]
