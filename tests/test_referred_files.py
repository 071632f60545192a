"""The other files an item's conversion read (HDF5 external links, virtual and external sources,
OME-TIFF companions) are recorded as the reader found them and before their data was read, so a
rebuild converts the item again when one of them changes: each case here was reused with stale
values (a review helper's repros), or read from the wrong file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import tifffile
import zarr

from publisher.build import BuildReport, build, convert
from publisher.catalog import Catalog
from publisher.config import load_pipeline
from publisher.stores import Store

from .conftest import write_pipeline


def _build(tmp: Path, source: str, **extra: Any) -> BuildReport:
    config = {"sources": [{"path": source, "into": "", **extra}], "output": {"store": str(tmp / "site")}, "on_error": "skip"}
    return build(load_pipeline(write_pipeline(tmp, config)), workers=1)


def _values(tmp: Path, path: str) -> list[int]:
    url = Catalog.open(Store(tmp / "site")).entry(path).to_json()["data_url"]
    return np.asarray(zarr.open_array(str(tmp / "site" / url), mode="r")).reshape(-1).tolist()


def test_an_absolute_external_link_read_beside_its_file_is_watched(tmp_path: Path) -> None:
    """A link to the acquisition machine's /gpfs/... path, gone here: HDF5 reads the file of that
    name beside the master, and that file is what the build records."""
    tree = tmp_path / "tree"
    tree.mkdir()
    with h5py.File(tree / "frames.h5", "w") as f:
        f["data"] = np.arange(8, dtype="u2")
    with h5py.File(tree / "master.h5", "w") as f:
        f["entry/data"] = h5py.ExternalLink("/gpfs/beamline/2024/run7/frames.h5", "/data")
    _build(tmp_path, "tree/master.h5")
    assert _values(tmp_path, "master/entry/data") == list(range(8))
    with h5py.File(tree / "frames.h5", "r+") as f:  # frames reprocessed
        f["data"][:] = np.arange(8, dtype="u2") * 10
    assert _build(tmp_path, "tree/master.h5").converted == 1
    assert _values(tmp_path, "master/entry/data") == [10 * i for i in range(8)]


def test_a_linked_files_own_links_are_found_beside_it(tmp_path: Path) -> None:
    """master.h5 -> sub/b.h5:/g -> c.h5:/d: HDF5 reads sub/c.h5 (beside b.h5); the build took
    the link for missing (looking beside the master), or recorded an unrelated tree/c.h5."""
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    with h5py.File(tree / "sub" / "c.h5", "w") as f:
        f["d"] = np.arange(4)
    with h5py.File(tree / "sub" / "b.h5", "w") as f:
        f["g/d"] = h5py.ExternalLink("c.h5", "/d")
    with h5py.File(tree / "master.h5", "w") as f:
        f["g"] = h5py.ExternalLink("sub/b.h5", "/g")
    with h5py.File(tree / "c.h5", "w") as f:  # an unrelated c.h5 beside the master
        f["other"] = np.zeros(1)
    report = _build(tmp_path, "tree/master.h5")
    assert not report.warnings and _values(tmp_path, "master/g/d") == [0, 1, 2, 3]
    with h5py.File(tree / "sub" / "c.h5", "r+") as f:
        f["d"][:] = np.arange(4) * 10
    assert _build(tmp_path, "tree/master.h5").converted == 1
    assert _values(tmp_path, "master/g/d") == [0, 10, 20, 30]


@pytest.mark.parametrize("kind", ["virtual", "link", "external"])
def test_a_virtual_sources_own_sources_are_watched(tmp_path: Path, kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """master.h5:/z is a view of mid.h5:/y, itself a view of, a link to, or stored in a third
    file: only mid.h5 was recorded, and the third file's reprocessed values never reached the
    release (a review helper's repro; chains through links were followed already)."""
    tree = tmp_path / "tree"
    tree.mkdir()
    monkeypatch.chdir(tree)  # (h5py loaded before build() could tell HDF5 to look for raw files beside theirs)

    def leaf(value: int) -> None:
        with h5py.File(tree / "leaf.h5", "w") as f:
            f["x"] = np.full(5, value, "i4")
        np.full(5, value, "i4").tofile(tree / "raw.bin")

    leaf(1)
    with h5py.File(tree / "mid.h5", "w") as f:
        if kind == "virtual":
            layout = h5py.VirtualLayout((5,), "i4")
            layout[:] = h5py.VirtualSource("leaf.h5", "x", shape=(5,))
            f.create_virtual_dataset("y", layout, fillvalue=-1)
        elif kind == "link":
            f["y"] = h5py.ExternalLink("leaf.h5", "/x")
        else:
            f.create_dataset("y", shape=(5,), dtype="i4", external=[("raw.bin", 0, 20)])
    with h5py.File(tree / "master.h5", "w") as f:
        layout = h5py.VirtualLayout((5,), "i4")
        layout[:] = h5py.VirtualSource("mid.h5", "y", shape=(5,))
        f.create_virtual_dataset("z", layout, fillvalue=-1)
    _build(tmp_path, "tree/master.h5")
    assert _values(tmp_path, "master/z") == [1] * 5
    leaf(7)
    assert _build(tmp_path, "tree/master.h5").converted == 1
    assert _values(tmp_path, "master/z") == [7] * 5


@pytest.mark.parametrize("kind", ["virtual", "external"])
def test_a_netcdf4_files_other_files_are_watched(tmp_path: Path, kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A NetCDF-4 file is HDF5: a variable may be a virtual dataset of another file, or stored in
    external raw storage, which netCDF-C reads as HDF5 does. The NetCDF reader recorded none."""
    netCDF4 = pytest.importorskip("netCDF4")
    tree = tmp_path / "tree"
    tree.mkdir()
    monkeypatch.chdir(tree)  # (as above)
    with netCDF4.Dataset(tree / "obs.nc", "w", format="NETCDF4") as d:
        d.createDimension("x", 5)
        d.createVariable("other", "i4", ("x",))[:] = 0
    with h5py.File(tree / "obs.nc", "a") as f:  # a variable netCDF-C reads from another file
        if kind == "virtual":
            layout = h5py.VirtualLayout((5,), "i4")
            layout[:] = h5py.VirtualSource("leaf.h5", "x", shape=(5,))
            f.create_virtual_dataset("z", layout, fillvalue=-1)
        else:
            f.create_dataset("z", shape=(5,), dtype="i4", external=[("raw.bin", 0, 20)])
        f["z"].dims[0].attach_scale(f["x"])

    def leaf(value: int) -> None:
        with h5py.File(tree / "leaf.h5", "w") as f:
            f["x"] = np.full(5, value, "i4")
        np.full(5, value, "i4").tofile(tree / "raw.bin")

    leaf(1)
    _build(tmp_path, "tree/obs.nc")
    assert _values(tmp_path, "obs/z") == [1] * 5
    leaf(7)
    assert _build(tmp_path, "tree/obs.nc").converted == 1
    assert _values(tmp_path, "obs/z") == [7] * 5


def test_a_referred_file_written_while_its_master_converts_is_read_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A detector still writing its frames while the master converts: the frames file's stat
    is recorded before its values are read, so the next build sees it moved (it recorded the stat
    after, with the old values published, and every later build reused them)."""
    tree = tmp_path / "tree"
    tree.mkdir()
    with h5py.File(tree / "frames.h5", "w") as f:
        f.create_dataset("data", data=np.arange(8, dtype="u2"))
    with h5py.File(tree / "master.h5", "w") as f:
        layout = h5py.VirtualLayout(shape=(8,), dtype="u2")
        layout[:] = h5py.VirtualSource("frames.h5", "data", shape=(8,))
        f.create_virtual_dataset("vds", layout)
    original = convert.Converter.convert

    def convert_then_write(self: convert.Converter, item: Any) -> convert.ItemResult:
        out = original(self, item)
        with h5py.File(tree / "frames.h5", "r+") as f:  # the last frames land as the conversion ends
            f["data"][:] = np.arange(8, dtype="u2") * 10
        return out

    monkeypatch.setattr(convert.Converter, "convert", convert_then_write)
    _build(tmp_path, "tree/master.h5")
    monkeypatch.setattr(convert.Converter, "convert", original)
    assert _values(tmp_path, "master/vds") == list(range(8))
    assert _build(tmp_path, "tree/master.h5").converted == 1
    assert _values(tmp_path, "master/vds") == [10 * i for i in range(8)]


def test_a_recorded_failure_keeps_the_files_it_referred_to(tmp_path: Path) -> None:
    """A ``table: true`` group whose column is an external link into a detector file not yet
    complete fails (lengths differ), a failure of the file recorded as lasting; the detector file
    completing has it converted again (the record had no referred files: never retried)."""
    tree = tmp_path / "tree"
    tree.mkdir()
    with h5py.File(tree / "detector.h5", "w") as f:
        f["energy"] = np.arange(3.0)
    with h5py.File(tree / "master.h5", "w") as f:
        f["scan/time"] = np.arange(5.0)
        f["scan/energy"] = h5py.ExternalLink("detector.h5", "/energy")
    config = {"sources": [{"path": "tree/master.h5", "into": ""}], "rules": [{"match": "master/scan", "table": True}],
              "output": {"store": str(tmp_path / "site")}, "on_error": "skip"}
    pipeline = load_pipeline(write_pipeline(tmp_path, config))
    first = build(pipeline, workers=1)
    assert first.failures and "lengths differ" in first.failures[0].reason
    with h5py.File(tree / "detector.h5", "w") as f:  # complete now
        f["energy"] = np.arange(5.0)
    again = build(pipeline, workers=1)
    assert not again.failures and again.converted == 1
    assert Catalog.open(Store(tmp_path / "site")).entry("master/scan").to_json()["family"] == "table"


def _ome(own: str, names: list[str], quote: str = '"') -> str:
    data = "".join(f"<TiffData FirstZ={quote}{z}{quote} IFD={quote}0{quote} PlaneCount={quote}1{quote}>"
                   f"<UUID FileName={quote}{name}{quote}>urn:uuid:{z:08d}</UUID></TiffData>" for z, name in enumerate(names))
    return (f'<?xml version="1.0" encoding="UTF-8"?><OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06" UUID="urn:uuid:{own}">'
            f'<Image ID="Image:0" Name="img"><Pixels ID="Pixels:0" DimensionOrder="XYZCT" Type="uint8" SizeX="4" SizeY="3" '
            f'SizeZ="{len(names)}" SizeC="1" SizeT="1"><Channel ID="Channel:0:0" SamplesPerPixel="1"/>{data}</Pixels></Image></OME>')


@pytest.mark.parametrize("case", ["single-quoted", "through-a-symlink", "half-copied-companion"])
def test_an_ome_tiffs_companions_are_watched(tmp_path: Path, case: str) -> None:
    """The companions its OME-XML names (either quote), beside the file tifffile opened (a
    symlink's target), known before its series is read (a companion half-copied fails it)."""
    real = tmp_path / "tree" / "real"
    real.mkdir(parents=True)
    quote = "'" if case == "single-quoted" else '"'
    tifffile.imwrite(real / "a.ome.tif", np.full((3, 4), 7, np.uint8), description=_ome("0000000a", ["a.ome.tif", "b.ome.tif"], quote),
                     metadata=None)
    companion = real / "b.ome.tif"
    tifffile.imwrite(companion, np.full((3, 4), 42, np.uint8), description=_ome("0000000b", ["b.ome.tif"]), metadata=None)
    node = "real/a.ome"
    if case == "through-a-symlink":
        (tmp_path / "tree" / "current").mkdir()
        (tmp_path / "tree" / "current" / "a.ome.tif").symlink_to(real / "a.ome.tif")
        node = "current/a.ome"
    if case == "half-copied-companion":  # its first page's offset past its end, as a copy still under way
        whole = companion.read_bytes()
        companion.write_bytes(whole[:4] + (10_000).to_bytes(4, "little"))
    source, exclude = "tree", ["real/b.ome.tif"]
    first = _build(tmp_path, source, exclude=exclude)
    if case == "single-quoted":  # named, not there yet (its planes zeros): arriving, it is read
        assert _values(tmp_path, node)[::12] == [7, 42]
        companion.unlink()
        _build(tmp_path, source, exclude=exclude)
        assert _values(tmp_path, node)[::12] == [7, 0]
        tifffile.imwrite(companion, np.full((3, 4), 99, np.uint8), description=_ome("0000000b", ["b.ome.tif"]), metadata=None)
    elif case == "half-copied-companion":
        assert first.failures
        tifffile.imwrite(companion, np.full((3, 4), 42, np.uint8), description=_ome("0000000b", ["b.ome.tif"]), metadata=None)
    else:
        assert _values(tmp_path, node)[::12] == [7, 42]
        tifffile.imwrite(companion, np.full((3, 4), 99, np.uint8), description=_ome("0000000b", ["b.ome.tif"]), metadata=None)
    again = _build(tmp_path, source, exclude=exclude)
    assert not again.failures and again.converted >= 1
    assert _values(tmp_path, node)[::12] == [7, 42 if case == "half-copied-companion" else 99]


def test_external_raw_storage_is_read_beside_its_file_wherever_the_build_runs(tmp_path: Path) -> None:
    """HDF5 looks for external raw storage named relatively in the process's current folder: a
    build started in run1/ published run1's raw.bin for run2's dataset. ``publish build`` loads HDF5
    with the storage looked for beside its file; a process that loaded h5py before publisher
    skips such a dataset, saying why, rather than read another run's bytes."""
    for i, run in enumerate(["run1", "run2"], 1):
        folder = tmp_path / "tree" / run
        folder.mkdir(parents=True)
        (folder / "raw.bin").write_bytes((np.arange(4, dtype="u2") * i).tobytes())
        with h5py.File(folder / "master.h5", "w") as f:
            f.create_dataset("raw", shape=(4,), dtype="u2", external=[("raw.bin", 0, 8)])
    config = {"sources": [{"path": "tree", "into": "", "exclude": ["*.bin"]}], "output": {"store": str(tmp_path / "site")}}
    pipeline = write_pipeline(tmp_path, config)
    env = {k: v for k, v in os.environ.items() if k != "HDF5_EXTFILE_PREFIX"}
    subprocess.run([sys.executable, "-m", "publisher.cli", "build", "-c", str(pipeline)], cwd=tmp_path / "tree" / "run1", env=env,
                   check=True, capture_output=True)
    assert _values(tmp_path, "run1/master/raw") == [0, 1, 2, 3]
    assert _values(tmp_path, "run2/master/raw") == [0, 2, 4, 6]
    code = ("import h5py, json, sys; from publisher.build import build; from publisher.config import load_pipeline; "
            "r = build(load_pipeline(sys.argv[1]), workers=1); print(json.dumps([str(p) for p in r.skipped]))")
    config["output"]["store"] = str(tmp_path / "site2")
    done = subprocess.run([sys.executable, "-c", code, str(write_pipeline(tmp_path, config))], cwd=tmp_path / "tree" / "run1", env=env,
                          check=True, capture_output=True, text=True)
    skipped = done.stdout.strip().splitlines()[-1]
    assert "run2/master/raw" in skipped and "HDF5_EXTFILE_PREFIX" in skipped
    assert "run1/master/raw" not in skipped  # (built from its own folder: read as named, as it always was)
    # build() from Python sets it too, h5py not loaded yet (a script, a notebook's first cell)
    code = ("import json, sys; from publisher.build import build; from publisher.config import load_pipeline; "
            "r = build(load_pipeline(sys.argv[1]), workers=1); print(json.dumps([str(p) for p in r.skipped]))")
    config["output"]["store"] = str(tmp_path / "site3")
    done = subprocess.run([sys.executable, "-c", code, str(write_pipeline(tmp_path, config))], cwd=tmp_path / "tree" / "run1", env=env,
                          check=True, capture_output=True, text=True)
    assert "raw" not in done.stdout.strip().splitlines()[-1]
    # importing publisher leaves the importer's HDF5 as it was (its own files' storage named relative to its folder)
    code = "import os, publisher, publisher.build; print(os.environ.get('HDF5_EXTFILE_PREFIX'))"
    assert subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout.strip() == "None"


def _build_alone(tmp: Path, source: str, **extra: Any) -> dict[str, Any]:
    """:func:`_build` in a new process, where HDF5 loads as ``publish build`` loads it (external
    raw storage looked for beside its file): this one loaded h5py first."""
    config = {"sources": [{"path": source, "into": "", **extra}], "output": {"store": str(tmp / "site")}, "on_error": "skip"}
    code = ("import json, sys; from publisher.build import build; from publisher.config import load_pipeline; "
            "r = build(load_pipeline(sys.argv[1]), workers=1); "
            "print(json.dumps({'skipped': {s.path: s.reason for s in r.skipped}, 'failures': len(r.failures), 'converted': r.converted}))")
    done = subprocess.run([sys.executable, "-c", code, str(write_pipeline(tmp, config))], check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("kind", ["hdf5", "netcdf"])
@pytest.mark.parametrize("case", ["missing", "half-copied"])
def test_external_raw_storage_missing_or_short_is_skipped_naming_the_file(tmp_path: Path, case: str, kind: str) -> None:
    """A raw file of external storage that is not there failed as HDF5's "unable to open external
    raw data file" (netCDF-C's "HDF error"), naming neither file; one shorter than its storage (a
    half-copied run) was published with zeros for its missing bytes, as HDF5 reads them. Both skip
    the dataset naming the file and why, and the next build, the file complete, publishes it."""
    tree = tmp_path / "tree"
    tree.mkdir()
    raw = tree / "raw.bin"
    values = np.arange(10, dtype="<i4")
    name = "master.h5" if kind == "hdf5" else "master.nc"
    if kind == "netcdf":
        netCDF4 = pytest.importorskip("netCDF4")
        with netCDF4.Dataset(tree / name, "w", format="NETCDF4") as d:
            d.createDimension("x", 10)
            d.createDimension("y", 3)
            d.createVariable("here", "i8", ("y",))[:] = np.arange(3)
    with h5py.File(tree / name, "a") as f:
        f.create_dataset("raw", shape=(10,), dtype="<i4", external=[("raw.bin", 8, 40)])
        if kind == "hdf5":
            f.create_dataset("here", data=np.arange(3))
        else:
            f["raw"].dims[0].attach_scale(f["x"])
    if case == "half-copied":
        raw.write_bytes(b"\0" * 8 + values.tobytes()[:20])
    first = _build_alone(tmp_path, "tree", exclude=["*.bin"])
    assert not first["failures"]
    reason = first["skipped"]["master/raw"]
    expected = "raw.bin is missing (looked for in " if case == "missing" else "raw.bin holds 28 bytes, its storage ends at byte 48"
    assert expected in reason and "external raw storage not read" in reason
    assert _values(tmp_path, "master/here") == [0, 1, 2]
    with pytest.raises(KeyError):
        Catalog.open(Store(tmp_path / "site")).entry("master/raw")
    raw.write_bytes(b"\0" * 8 + values.tobytes())
    again = _build_alone(tmp_path, "tree", exclude=["*.bin"])
    assert not again["failures"] and not again["skipped"] and again["converted"] >= 1
    assert _values(tmp_path, "master/raw") == values.tolist()


def test_external_raw_storage_past_the_datasets_bytes_is_not_asked_for(tmp_path: Path) -> None:
    """A segment the dataset's bytes do not reach (room to grow, an empty dataset) need not be
    there: such datasets were skipped as "missing" (HDF5 reads them)."""
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "a.bin").write_bytes(np.array([1, 2], "<i4").tobytes())
    with h5py.File(tree / "ext.h5", "w") as f:
        f.create_dataset("grow", shape=(2,), maxshape=(4,), dtype="<i4", external=[("a.bin", 0, 8), ("b.bin", 0, 8)])
        f.create_dataset("empty", shape=(0,), dtype="<i4", external=[("c.bin", 0, 8)])
    report = _build_alone(tmp_path, "tree", exclude=["*.bin"])
    assert not report["failures"] and not report["skipped"], report
    assert _values(tmp_path, "ext/grow") == [1, 2]
