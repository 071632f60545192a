"""NetCDF builds hold neither netCDF-C's per-variable chunk caches nor xarray's eager indexes
(found by an audit: a file of 800 one-MiB variables grew a build by ~1 GB, a 800 MiB time
series by 2.3 GB)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from publisher.readers.netcdf import import_netcdf4

from .conftest import write_pipeline
from .memory import build_growth


def _grown(folder: Path) -> int:
    pipeline = write_pipeline(folder, {"sources": [{"path": "in", "into": "t"}], "output": {"store": str(folder / "site")}})
    grown, report = build_growth(pipeline)
    assert not report["failures"]
    return grown // 2**20


def test_variables_read_once_are_not_kept(tmp_path: Path) -> None:
    """netCDF-C gives each variable a 64 MiB chunk cache until the file closes: 200 variables of
    1 MiB, each read once, grew a build by ~310 MiB (the file, whole); without caches ~70 MiB."""
    (tmp_path / "in").mkdir()
    with import_netcdf4().Dataset(tmp_path / "in" / "many.nc", "w") as f:
        f.createDimension("record", None)
        f.createDimension("y", 512)
        data = np.arange(512 * 512, dtype="f4").reshape(512, 512)
        for i in range(200):
            f.createVariable(f"v{i}", "f4", ("record", "y"))[0:512] = data + i
    assert _grown(tmp_path) < 160


def test_a_long_time_coordinate_is_not_loaded_whole(tmp_path: Path) -> None:
    """xarray builds a pandas index from each dimension coordinate as it opens a file: a 100 MiB
    time coordinate (CF-decoded to datetimes) grew a build by ~660 MiB; streamed, ~420 MiB,
    which no longer grows with it (slabs in flight)."""
    (tmp_path / "in").mkdir()
    n = 100 * 2**20 // 8
    with import_netcdf4().Dataset(tmp_path / "in" / "series.nc", "w") as f:
        f.createDimension("time", None)
        time = f.createVariable("time", "f8", ("time",))
        time.units = "seconds since 2000-01-01"
        value = f.createVariable("value", "f8", ("time",))
        for start in range(0, n, 2**22):
            stop = min(n, start + 2**22)
            time[start:stop] = np.arange(start, stop, dtype="f8")
            value[start:stop] = np.arange(stop - start, dtype="f8")
    assert _grown(tmp_path) < 540
