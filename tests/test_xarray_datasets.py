"""Every ``xarray_dataset`` node reads through the real tiled client as ``xarray.open_dataset``
reads its source, and CF-packed variables give decoded values on every path (API, exports,
direct Zarr reads).

The datasets are served by ``publish serve``'s handlers (:class:`handlers.local.LocalServer`)
and read with ``tiled.client.from_uri``: ``DatasetClient.read()`` fetches the 1-D variables
of one length as one Arrow table (``container/full?field=...``) and the others as arrays.
"""

from __future__ import annotations

import io
import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import xarray as xr
import zarr

from handlers.local import LocalServer

from .conftest import Published, run_build
from .test_build_demo import demo, demo_config  # noqa: F401  (the demo fixture)

warnings.filterwarnings("ignore", category=RuntimeWarning)


@pytest.fixture(scope="module")
def netcdf_demo(demo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Published:
    config = demo_config(demo_dir)
    config["sources"] = [s for s in config["sources"] if "climate" in s["path"]]
    return run_build(tmp_path_factory.mktemp("xr-demo"), config)


def serve(pub: Published) -> Iterator[tuple[str, Any]]:
    from tiled.client import from_uri

    srv = LocalServer(pub.store.url, "127.0.0.1", 0).start()
    try:
        yield srv.url, from_uri(f"{srv.url}/api/v1")
    finally:
        srv.stop()


def datasets(pub: Published) -> list[dict[str, Any]]:
    return [e for e in pub.entries() if "xarray_dataset" in (e["specs"] or [])]


def test_demo_sst_reads_as_open_dataset(netcdf_demo: Published, demo_dir: Path) -> None:
    from tiled.queries import In

    source = demo_dir / "climate" / "sst.nc"
    for _, client in serve(netcdf_demo):
        sst = client["climate/sst"]
        assert list(sst) == ["time", "lat", "lon", "sst"]  # the group is not a variable of the dataset
        xr.testing.assert_identical(sst.read(), xr.open_dataset(source).load())
        calibration = sst["calibration"]  # the NetCDF-4 group: its own dataset, reached by key
        xr.testing.assert_identical(calibration.read(), xr.open_dataset(source, group="calibration").load())
        xr.testing.assert_identical(client["climate/sst/calibration"].read(), calibration.read())
        assert [key for key, _ in client["climate"].items()] == ["sst"]
        for _, node in client["climate"].items():  # a dataset from a listing reads the same
            xr.testing.assert_identical(node.read(), xr.open_dataset(source).load())
        assert sst.read(["sst"])["sst"].attrs == {"units": "degC", "standard_name": "sea_surface_temperature"}
        found = sst.search(In("attrs.units", ["degC", "degrees_north"]))  # sent with Tiled's natural sort, "_"
        assert list(found) == ["lat", "sst"] and found.keys().last() == "sst"


def test_demo_nxdata_reads_as_open_zarr(demo: Published) -> None:
    entries = datasets(demo)
    nxdata = [e for e in entries if "NXdata" in e["specs"]]
    assert {e["path"] for e in nxdata} == {"scans/scan_0001/entry/data", "scans/scan_0002/entry/data"}
    for _, client in serve(demo):
        for entry in entries:
            xr.testing.assert_identical(client[entry["path"]].read(), expected_dataset(demo, entry))
        data = client["scans/scan_0001/entry/data"].read()
        assert data["data"].dims == ("th", "dim_1", "dim_2") and "th" in data.coords


def expected_dataset(pub: Published, entry: dict[str, Any]) -> xr.Dataset:
    """What an xarray user gets: ``open_dataset`` of a NetCDF group's source; for an NXdata
    group (HDF5, which xarray does not label) ``open_zarr`` of the published group, whose
    arrays other tests compare bit-exact with the source."""
    if "NXdata" in entry["specs"]:
        return xr.open_zarr(pub.store.path(entry["data_url"])).load()
    return xr.open_dataset(pub.source(entry["source_file"]), group=entry["source_path"] or "/").load()


#: Packages of REAL_DATA.md with NetCDF files or NXdata groups, and how many datasets each has at least.
REAL = {"xarray": 2, "r-cran-stars": 11, "punx": 43, "pynxtools": 1, "spec2nexus": 12, "sasdata": 248}


@pytest.mark.realdata
@pytest.mark.parametrize("name", sorted(REAL))
def test_every_real_dataset_reads_as_xarray_does(name: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Every node labelled ``xarray_dataset`` in the real files: ``.read()`` through the tiled
    client is identical to what xarray gives (values, dtypes, dims, coords, attributes)."""
    from .test_realdata import published

    _, pub = published(name, tmp_path_factory)
    entries = datasets(pub)
    assert len(entries) >= REAL[name], [e["path"] for e in entries]
    for _, client in serve(pub):
        for entry in entries:
            xr.testing.assert_identical(client[entry["path"]].read(), expected_dataset(pub, entry))


def _packed_file(path: Path) -> np.ndarray:
    """A NetCDF-4 file with CF-packed int16 variables; returns the packed values of ``t``."""
    import netCDF4

    raw = np.array([[-32767, 0, 1250], [2500, -1, -32767]], dtype="i2")
    with netCDF4.Dataset(path, "w") as ds:
        ds.createDimension("y", 2)
        ds.createDimension("x", 3)
        t = ds.createVariable("t", "i2", ("y", "x"), fill_value=np.int16(-32767))
        t.setncatts({"scale_factor": np.float32(0.01), "add_offset": np.float32(20), "units": "degC",
                     "valid_range": np.array([-32000, 32000], dtype="i2")})
        t.set_auto_maskandscale(False)
        t[:] = raw
        m = ds.createVariable("m", "i2", ("x",))
        m.setncatts({"missing_value": np.int16(-1), "scale_factor": 0.5})
        m.set_auto_maskandscale(False)
        m[:] = np.array([4, -1, 8], dtype="i2")
        x = ds.createVariable("x", "f4", ("x",))
        x[:] = [1.5, 2.5, 3.5]
        g = ds.createGroup("profile")  # 1-D variables of one length on two dims: one Arrow table for the client
        g.createDimension("p", 4)
        g.createDimension("q", 4)
        a = g.createVariable("a", "i2", ("p",), fill_value=np.int16(0))
        a.setncatts({"scale_factor": 0.25})
        a.set_auto_maskandscale(False)
        a[:] = np.array([1, 0, 3, 4], dtype="i2")
        g.createVariable("q", "i4", ("q",))[:] = [10, 20, 30, 40]
        g.createVariable("b", "f8", ("q",))[:] = [0.5, 1.5, 2.5, 3.5]
    return raw


def test_packed_variables_decoded_on_every_path(tmp_path: Path) -> None:
    source = tmp_path / "src" / "packed.nc"
    source.parent.mkdir()
    _packed_file(source)
    pub = run_build(tmp_path, {"sources": [{"path": str(source.parent), "into": "p"}], "on_error": "fail"})
    expected = xr.open_dataset(source).load()
    t = expected["t"].values
    assert t.dtype == np.float32 and np.isnan(t[0, 0]) and np.isnan(t[1, 2])  # what an xarray user gets
    # a direct read of the published store: decoded once, not twice
    direct = xr.open_zarr(pub.url("p/packed"))
    xr.testing.assert_identical(direct.load(), expected)
    assert not {"scale_factor", "add_offset", "_FillValue", "missing_value"} & set(zarr.open_array(pub.url("p/packed/t"), mode="r").attrs)
    for url, client in serve(pub):
        xr.testing.assert_identical(client["p/packed"].read(), expected)
        profile = client["p/packed/profile"].read()  # Tiled's own server would give a 4 x 4 product here
        xr.testing.assert_identical(profile, xr.open_dataset(source, group="profile").load())
        assert np.isnan(profile["a"].values[1])
        served = client["p/packed/t"].read()
        assert served.dtype == np.float32
        np.testing.assert_array_equal(served, t)  # NaN at the fills
        assert client["p/packed/t"].metadata["attrs"]["valid_range"] == [-32000, 32000]
        np.testing.assert_array_equal(client["p/packed/m"].read(), expected["m"].values)
        csv = httpx.get(f"{url}/api/v1/array/full/p/packed/t?format=csv", follow_redirects=True)
        assert csv.status_code == 200
        np.testing.assert_array_equal(np.genfromtxt(io.StringIO(csv.text), delimiter=",", dtype="f4"), t)
        answer = httpx.get(f"{url}/api/v1/array/full/p/packed/t?format=json", follow_redirects=True)
        assert answer.status_code == 200
        values = json.loads(answer.text)
        np.testing.assert_array_equal(np.array([[np.nan if v is None else v for v in row] for row in values], dtype="f4"), t)


def test_strings_and_non_standard_calendars(tmp_path: Path) -> None:
    """Strings and character arrays read as xarray gives them; times xarray can only give as
    ``cftime`` objects stay numbers with ``units``/``calendar`` for the tiled client (which
    ``xr.decode_cf`` turns into the source's values), and ``open_zarr`` decodes them itself."""
    import netCDF4

    source = tmp_path / "src" / "odd.nc"
    source.parent.mkdir()
    with netCDF4.Dataset(source, "w") as ds:
        ds.createDimension("t", 3)
        ds.createDimension("s", 2)
        ds.createDimension("n", 5)
        t = ds.createVariable("t", "f8", ("t",))
        t.setncatts({"units": "days since 2000-01-01", "calendar": "noleap"})
        t[:] = [0, 59, 365]
        ds.createVariable("v", "f4", ("t",))[:] = [1, 2, 3]
        name = ds.createVariable("name", str, ("s",))
        name[0], name[1] = "alpha", "βeta"
        chars = ds.createVariable("chars", "S1", ("s", "n"))
        chars._Encoding = "utf-8"
        chars[:] = netCDF4.stringtochar(np.array(["abc", "de"], dtype="S5"))
        ds.createVariable("raw", "S1", ("s", "n"))[:] = netCDF4.stringtochar(np.array(["xyz", "w"], dtype="S5"))
    pub = run_build(tmp_path, {"sources": [{"path": str(source.parent), "into": "o"}], "on_error": "fail"})
    expected = xr.open_dataset(source).load()
    assert expected["t"].dtype == object  # cftime
    xr.testing.assert_identical(xr.open_zarr(pub.url("o/odd")).load(), expected)
    for _, client in serve(pub):
        got = client["o/odd"].read()
        assert got["t"].attrs == {"units": "days since 2000-01-01", "calendar": "noleap"}
        xr.testing.assert_identical(xr.decode_cf(got), expected)


def test_dataset_answers_refuse_what_they_cannot_hold(netcdf_demo: Published) -> None:
    """The Arrow answer holds 1-D variables of one length, else a 400 naming the variable; the
    HDF5 export holds decoded times (as ticks) and NaN fills."""
    import h5py

    for url, _ in serve(netcdf_demo):
        api = f"{url}/api/v1/container/full/climate/sst"
        for query, named in [("", "'sst' has 3 dimensions"), ("&field=calibration", "'calibration' is a container"),
                             ("&field=time&field=lat", "differ in length")]:
            answer = httpx.get(f"{api}?format=arrow{query}", follow_redirects=True)
            assert answer.status_code == 400 and named in answer.json()["detail"], (query, answer.text)
        times = [httpx.get(f"{url}/api/v1/array/full/climate/sst/time?format={f}", follow_redirects=True) for f in ("csv", "json")]
        assert times[0].text.splitlines() == times[1].json() and times[1].json()[1] == "2026-01-02T00:00:00.000000000"
        answer = httpx.get(f"{api}?format=h5", follow_redirects=True)
        assert answer.status_code == 200, answer.text
        with h5py.File(io.BytesIO(answer.content), "r") as f:
            assert f["time"][1] - f["time"][0] == 86_400 * 10**9  # one day in nanoseconds
            assert np.isnan(f["sst"][0, 0, 0]) and f["sst"].dtype == np.float64
            assert f["sst"].attrs["units"] == "degC" and f.attrs["title"] == "Demo sea surface temperature"


def test_only_what_follows_the_rules_is_labelled(tmp_path: Path) -> None:
    """A group of only 0-d variables (the client's table fetch cannot give 0-d values) and a
    group holding a table (a compound variable) are published unlabelled; their arrays still read."""
    import netCDF4

    source = tmp_path / "src" / "rules.nc"
    source.parent.mkdir()
    with netCDF4.Dataset(source, "w") as ds:
        ds.createVariable("scale", "f8", ())[:] = 2.5
        g = ds.createGroup("records")
        g.createDimension("n", 2)
        kind = g.createCompoundType(np.dtype([("a", "i4"), ("b", "f8")]), "pair")
        g.createVariable("pairs", kind, ("n",))[:] = np.array([(1, 0.5), (2, 1.5)], dtype=[("a", "i4"), ("b", "f8")])
        g.createVariable("x", "f4", ("n",))[:] = [1, 2]
    pub = run_build(tmp_path, {"sources": [{"path": str(source.parent), "into": "r"}], "on_error": "fail"})
    assert pub.node("r/rules")["specs"] == [] and pub.node("r/rules/records")["specs"] == []
    assert pub.node("r/rules/records/pairs")["family"] == "table"
    for _, client in serve(pub):
        assert client["r/rules/scale"].read() == 2.5
        assert client["r/rules/records/x"].read().tolist() == [1, 2]
