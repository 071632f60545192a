"""NetCDF variables a review helper found published wrong: a char array with a ``_FillValue``
(every Argo profile's PLATFORM_NUMBER) and a variable-length string variable with one failed
("Expected str, got bytes / float"); an N-D compound variable's Zarr attributes nested under
"attrs" (no ``units`` for open_zarr); an attribute of 16 MiB copied whole into the index and two
``zarr.json`` (HDF5's are capped at 1 MiB)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr

from .conftest import Published, run_build

netCDF4 = pytest.importorskip("netCDF4")


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Published:
    folder = tmp_path_factory.mktemp("netcdf-review")
    (folder / "data").mkdir()
    with netCDF4.Dataset(folder / "data" / "argo.nc", "w", format="NETCDF3_CLASSIC") as d:
        d.createDimension("N_PROF", 3)
        d.createDimension("STRING8", 8)
        platform = d.createVariable("PLATFORM_NUMBER", "S1", ("N_PROF", "STRING8"), fill_value=b" ")
        platform.set_auto_chartostring(False)
        platform[:] = np.frombuffer(b"6901234 " + b"Caf\xe9    " + b"        ", "S1").reshape(3, 8)  # (a Latin-1 byte)
    with netCDF4.Dataset(folder / "data" / "names.nc", "w", format="NETCDF4") as d:
        d.createDimension("n", 3)
        station = d.createVariable("station", str, ("n",), fill_value="NA")
        station[0], station[2] = "alpha", "gämma"  # (station[1] left at its fill: missing)
    with netCDF4.Dataset(folder / "data" / "wind.nc", "w", format="NETCDF4") as d:
        d.createDimension("y", 3)
        d.createDimension("x", 2)
        wind = d.createVariable("wind", d.createCompoundType(np.dtype([("u", "f4"), ("v", "f4")]), "uv"), ("y", "x"))
        wind.units, wind.long_name = "m s-1", "wind vector"
        wind[:] = np.ones((3, 2), dtype=[("u", "f4"), ("v", "f4")])
        big = d.createVariable("v", "f8", ("x",))
        big[:] = 1
        big.lookup_table = np.arange(2 * 2**20, dtype="f8")  # 16 MiB
        big.units = "K"
    return run_build(folder, {"sources": [{"path": "data", "into": "d"}]})


def _zarr(published: Published, path: str) -> xr.Dataset:
    return xr.open_zarr(published.store.path(published.node(path)["data_url"]))


def test_char_arrays_and_strings_with_a_fill_value_are_published(published: Published) -> None:
    assert not published.report.failures
    assert _zarr(published, "d/argo")["PLATFORM_NUMBER"].values.tolist() == ["6901234 ", "Café    ", "        "]
    assert _zarr(published, "d/names")["station"].values.tolist() == ["alpha", "", "gämma"]  # (missing: "", Zarr's fill for text)


def test_a_compound_variables_zarr_attributes_are_its_own(published: Published) -> None:
    group = zarr.open_group(published.store.path(published.node("d/wind")["data_url"]), mode="r")
    assert dict(group["wind"].attrs) == {"units": "m s-1", "long_name": "wind vector"}


def test_a_big_attribute_is_named_not_copied(published: Published) -> None:
    metadata = published.node("d/wind/v")["metadata"]["attrs"]
    assert metadata["units"] == "K" and metadata["lookup_table"].startswith("<attribute of shape (2097152,) float64 (16.0 MiB)")
    site = Path(published.store.url)
    assert max(p.stat().st_size for p in site.rglob("*.json")) < 2**20
