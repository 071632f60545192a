"""Generate the demo beamline tree deterministically (fixed seeds, no timestamps in HDF5 objects).

examples/demo/
  scans/scan_0001.nxs, scan_0002.nxs   NeXus: detector image stack, motor and counter columns, attrs
  scans/scan_0001.json                  a sidecar with proposal metadata
  frames/{sample}_{T}K_{scan:05d}_{frame:03d}.tif   TIFF frames whose names carry metadata
  tables/temperature_log.csv            comment lines, ISO timestamps, missing values
  climate/sst.nc                        NetCDF-4: packed int16 with scale/offset/_FillValue, a group

Run: python examples/demo/make_demo.py [--out DIR] [--force]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def _scan(path: Path, number: int, sample: str, temperature: float, rng: np.random.Generator) -> None:
    import h5py

    frames, ny, nx = 12, 256, 256
    th = np.linspace(10.0, 12.2, frames)
    yy, xx = np.mgrid[0:ny, 0:nx]
    images = np.empty((frames, ny, nx), dtype=np.uint16)
    for i in range(frames):
        cx, cy = 128 + 30 * np.cos(i / 3), 128 + 30 * np.sin(i / 3)
        peak = 4000 * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * 12.0**2))
        images[i] = rng.poisson(peak + 50).astype(np.uint16)
    images[:, 100, :] = 65535  # a dead row: a sentinel value that must survive bit-exact
    kw = {"track_times": False}
    with h5py.File(path, "w", track_order=True) as f:
        f.attrs.update({"NX_class": "NXroot", "file_name": path.name, "creator": "skyshelf demo", "HDF5_Version": h5py.version.hdf5_version})
        entry = f.create_group("entry", track_order=True)
        entry.attrs["NX_class"] = "NXentry"
        entry.attrs["default"] = "data"
        entry.create_dataset("title", data=f"{sample} powder at {temperature:g} K", **kw)
        entry.create_dataset("scan_number", data=number, **kw)
        entry.create_dataset("start_time", data=f"2026-03-0{number}T10:00:00Z", **kw)
        sample_group = entry.create_group("sample")
        sample_group.attrs["NX_class"] = "NXsample"
        sample_group.create_dataset("name", data=sample, **kw)
        t = sample_group.create_dataset("temperature", data=temperature, **kw)
        t.attrs["units"] = "K"
        instrument = entry.create_group("instrument")
        instrument.attrs["NX_class"] = "NXinstrument"
        detector = instrument.create_group("detector")
        detector.attrs["NX_class"] = "NXdetector"
        data = detector.create_dataset("data", data=images, chunks=(1, ny, nx), compression="gzip", compression_opts=4, **kw)
        data.attrs.update({"units": "counts", "long_name": "area detector"})
        detector.create_dataset("x_pixel_size", data=0.172, **kw).attrs["units"] = "mm"
        counters = entry.create_group("counters")
        counters.attrs["NX_class"] = "NXcollection"
        for name, values, units in (
            ("th", th, "deg"),
            ("I0", rng.normal(1e5, 300, frames), "counts"),
            ("It", rng.normal(6e4, 200, frames), "counts"),
            ("seconds", np.full(frames, 0.5), "s"),
        ):
            counters.create_dataset(name, data=values, **kw).attrs["units"] = units
        nxdata = entry.create_group("data")
        nxdata.attrs.update({"NX_class": "NXdata", "signal": "data", "axes": ["th", ".", "."], "th_indices": 0})
        nxdata["data"] = data  # NeXus links the detector data into NXdata (a hard link)
        nxdata["th"] = counters["th"]


def _frames(folder: Path, rng: np.random.Generator) -> None:
    import tifffile

    folder.mkdir(parents=True, exist_ok=True)
    for sample, temperature, scan in (("NaCl", 300, 5), ("NaCl", 37, 6), ("KCl", 300, 7)):
        for frame in range(4):
            image = rng.integers(0, 4096, size=(128, 160), dtype=np.uint16)
            tifffile.imwrite(folder / f"{sample}_{temperature}K_{scan:05d}_{frame:03d}.tif", image, compression="zlib",
                             metadata=None, software="skyshelf demo", datetime="2026:03:01 10:00:00")


def _table(path: Path, rng: np.random.Generator) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["# temperature controller log, Lakeshore 336", "# columns: time, setpoint (K), sample (K), heater (%)",
             "time,setpoint,sample_temperature,heater_output"]
    for i in range(240):
        stamp = f"2026-03-01T{10 + i // 60:02d}:{i % 60:02d}:00"
        sample_t = "" if i in (17, 130) else f"{300 - i * 0.25 + rng.normal(0, 0.05):.3f}"
        lines.append(f"{stamp},{300 - i * 0.25:.2f},{sample_t},{rng.uniform(20, 60):.1f}")
    path.write_text("\n".join(lines) + "\n")


def _netcdf(path: Path, rng: np.random.Generator) -> None:
    import netCDF4

    path.parent.mkdir(parents=True, exist_ok=True)
    with netCDF4.Dataset(path, "w", format="NETCDF4") as ds:
        ds.setncatts({"title": "Demo sea surface temperature", "Conventions": "CF-1.8", "institution": "skyshelf demo"})
        ds.createDimension("time", None)
        ds.createDimension("lat", 18)
        ds.createDimension("lon", 36)
        time = ds.createVariable("time", "f8", ("time",))
        time.setncatts({"units": "days since 2026-01-01", "calendar": "standard", "standard_name": "time"})
        time[:] = np.arange(6)
        lat = ds.createVariable("lat", "f4", ("lat",))
        lat.setncatts({"units": "degrees_north", "standard_name": "latitude"})
        lat[:] = np.linspace(-85, 85, 18)
        lon = ds.createVariable("lon", "f4", ("lon",))
        lon.setncatts({"units": "degrees_east", "standard_name": "longitude"})
        lon[:] = np.linspace(-175, 175, 36)
        sst = ds.createVariable("sst", "i2", ("time", "lat", "lon"), fill_value=np.int16(-32767), zlib=True, chunksizes=(1, 18, 36))
        sst.setncatts({"scale_factor": 0.01, "add_offset": 0.0, "units": "degC", "standard_name": "sea_surface_temperature"})
        sst.set_auto_maskandscale(False)
        values = np.round((20 + 10 * np.cos(np.deg2rad(lat[:]))[None, :, None] + rng.normal(0, 0.3, (6, 18, 36))) / 0.01).astype("i2")
        values[:, :2, :] = -32767  # land/ice mask
        sst[:] = values
        cal = ds.createGroup("calibration")
        cal.setncattr("sensor", "AVHRR demo")
        cal.createDimension("coefficient", 3)
        c = cal.createVariable("coefficients", "f8", ("coefficient",))
        c[:] = [0.1, 1.002, -3e-4]


def make_demo(out: Path = HERE, force: bool = False) -> Path:
    """Write the demo tree under ``out`` (skipped when it exists, unless ``force``)."""
    marker = out / ".generated"
    if marker.exists() and not force:
        return out
    rng = np.random.default_rng(20260301)
    (out / "scans").mkdir(parents=True, exist_ok=True)
    _scan(out / "scans" / "scan_0001.nxs", 1, "NaCl", 300.0, rng)
    _scan(out / "scans" / "scan_0002.nxs", 2, "KCl", 37.0, rng)
    (out / "scans" / "scan_0001.json").write_text(json.dumps({"proposal": "GU-12345", "pi": "A. Scientist"}, indent=1) + "\n")
    _frames(out / "frames", rng)
    _table(out / "tables" / "temperature_log.csv", rng)
    _netcdf(out / "climate" / "sst.nc", rng)
    marker.write_text("generated by make_demo.py\n")
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=HERE)
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args()
    print(f"demo tree in {make_demo(args.out, args.force)}")
