"""HDF5 and NeXus files a review helper found published wrong: a loop of soft links (the whole
file failed), a variable-length attribute of Latin-1 bytes (published as lone surrogates, which
no UTF-8 writer takes), an NXdata axis soft-linked from the instrument (the group, labelled an
xarray dataset, opened without its coordinate), a NaN or infinite fill value (published as 0),
and attributes with no value (published as Python's repr)."""

from __future__ import annotations

import math
from pathlib import Path

import h5py
import numpy as np
import xarray as xr
import zarr

from publisher.jsonable import to_json

from .conftest import run_build


def _publish(tmp_path: Path, write: object) -> object:
    (tmp_path / "data").mkdir()
    with h5py.File(tmp_path / "data" / "f.h5", "w") as f:
        write(f)  # type: ignore[operator]
    return run_build(tmp_path, {"sources": [{"path": "data", "into": ""}]})


def test_a_loop_of_soft_links_is_two_dangling_links(tmp_path: Path) -> None:
    def write(f: h5py.File) -> None:
        f["data"] = np.arange(5)
        f["a"] = h5py.SoftLink("/b")
        f["b"] = h5py.SoftLink("/a")

    published = _publish(tmp_path, write)
    assert np.array_equal(zarr.open_array(published.url("f/data"), mode="r")[...], np.arange(5))
    assert sorted(published.node("f")["notes"]["dangling_links"]) == ["a", "b"]
    assert sorted(p.reason for p in published.report.warnings) == ["/a: dangling soft link to /b", "/b: dangling soft link to /a"]


def test_latin1_bytes_in_a_variable_length_attribute_read_as_latin1(tmp_path: Path) -> None:
    def write(f: h5py.File) -> None:
        f["t"] = np.arange(3.0)
        f["t"].attrs["units"] = b"\xb0C"  # (h5py stores bytes as a variable-length string)
        f["t"].attrs["note"] = "caf\u00e9"  # (UTF-8: as it is)

    metadata = _publish(tmp_path, write).node("f/t")["metadata"]
    assert metadata["units"] == "\u00b0C" and metadata["note"] == "caf\u00e9"
    assert to_json("\udcb0C") == "\u00b0C"


def test_an_nxdata_axis_soft_linked_from_the_instrument_is_in_its_group(tmp_path: Path) -> None:
    def write(f: h5py.File) -> None:
        entry = f.create_group("entry")
        entry.attrs["NX_class"] = "NXentry"
        detector = entry.create_group("instrument/detector")
        detector.attrs["NX_class"] = "NXdetector"
        detector["x_pixel"] = np.arange(6.0) * 0.1
        data = entry.create_group("data")
        data.attrs.update({"NX_class": "NXdata", "signal": "counts", "axes": ["x_pixel"]})
        data["counts"] = np.arange(6)
        data["x_pixel"] = h5py.SoftLink("/entry/instrument/detector/x_pixel")

    published = _publish(tmp_path, write)
    group = published.node("f/entry/data")
    assert "xarray_dataset" in group["specs"]
    dataset = xr.open_zarr(published.store.path(group["data_url"]), consolidated=False)
    assert np.allclose(dataset["x_pixel"].values, np.arange(6.0) * 0.1) and "x_pixel" in dataset.coords
    assert published.node("f/entry/instrument/detector")["notes"]["links"] == {"x_pixel": "/entry/data/x_pixel"}  # (one copy, linked)
    assert published.node("f/entry/data/x_pixel")["notes"]["aliases"] == ["/entry/instrument/detector/x_pixel"]


def test_a_nan_or_infinite_fill_value_is_kept(tmp_path: Path) -> None:
    def write(f: h5py.File) -> None:
        f.create_dataset("nan", shape=(8, 8), chunks=(4, 4), dtype="f4", fillvalue=np.nan)[:4, :4] = 1
        f.create_dataset("ninf", shape=(8,), chunks=(4,), dtype="f8", fillvalue=-np.inf)[:4] = 2

    published = _publish(tmp_path, write)
    nan, ninf = (zarr.open_array(published.url(f"f/{name}"), mode="r") for name in ("nan", "ninf"))
    assert math.isnan(nan.fill_value) and ninf.fill_value == -np.inf
    assert np.isnan(nan[4:, 4:]).all() and (ninf[4:] == -np.inf).all() and (nan[:4, :4] == 1).all()


def test_attributes_with_no_value_are_null(tmp_path: Path) -> None:
    def write(f: h5py.File) -> None:
        f["d"] = np.arange(2)
        f["d"].attrs["offset"] = h5py.Empty("f4")
        f["d"].attrs["comment"] = h5py.Empty("S1")

    assert _publish(tmp_path, write).node("f/d")["metadata"] == {"offset": None, "comment": None}
