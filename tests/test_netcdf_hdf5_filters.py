"""Reading NetCDF leaves h5py's HDF5 filters alone: importing netCDF4 points ``HDF5_PLUGIN_PATH``
at its own plugins, which in h5py's HDF5 (this process or any child) fail to write Blosc or Zstd
datasets. The reader takes the variable back (``import_netcdf4``)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

from publisher.readers.netcdf import import_netcdf4

ROOT = Path(__file__).resolve().parents[1]

#: A fresh interpreter reads a NetCDF file through the reader before h5py is ever imported (the
#: order that failed), then writes filtered HDF5 itself and in a child process.
SCRIPT = textwrap.dedent("""
    import os, subprocess, sys
    from pathlib import Path
    from publisher.readers.netcdf import NetCDFReader

    folder = Path(sys.argv[1])
    with NetCDFReader().open(folder / "zstd.nc", "zstd", None) as node:
        assert [child.key for child in node.children] == ["v"]
    assert "HDF5_PLUGIN_PATH" not in os.environ, os.environ["HDF5_PLUGIN_PATH"]
    WRITE = '''
    import sys, h5py, hdf5plugin, numpy as np
    with h5py.File(sys.argv[1], "w") as f:
        f.create_dataset("blosc", data=np.arange(5000), chunks=(500,), **hdf5plugin.Blosc())
        f.create_dataset("zstd", data=np.arange(5000), chunks=(500,), **hdf5plugin.Zstd())
    '''
    exec(WRITE.replace("sys.argv[1]", repr(str(folder / "here.h5"))))
    subprocess.run([sys.executable, "-c", WRITE, str(folder / "child.h5")], check=True)
""")


def test_reading_netcdf_keeps_hdf5_filters_writable(tmp_path: Path) -> None:
    netCDF4 = import_netcdf4()
    with netCDF4.Dataset(tmp_path / "zstd.nc", "w") as ds:  # a filter netCDF4 loads from its own plugins
        ds.createDimension("x", 5000)
        ds.createVariable("v", "i4", ("x",), compression="zstd", chunksizes=(500,))[:] = np.arange(5000)
    env = {k: v for k, v in os.environ.items() if k != "HDF5_PLUGIN_PATH"}
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    import h5py
    import hdf5plugin  # noqa: F401  (the filters, to read back)

    for name in ("here.h5", "child.h5"):
        with h5py.File(tmp_path / name) as f:
            assert (f["blosc"][:] == np.arange(5000)).all() and (f["zstd"][:] == np.arange(5000)).all()
    with netCDF4.Dataset(tmp_path / "zstd.nc") as ds:  # netCDF4's own filters still work after
        assert ds["v"].filters()["zstd"] and (ds["v"][:] == np.arange(5000)).all()
