"""The demo builds, and what it publishes is readable by zarr, xarray and pyarrow directly."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
import xarray as xr
import zarr
from click.testing import CliRunner

from publisher.catalog import CATALOG_KEY, Catalog
from publisher.cli import EXIT_FAILED, EXIT_PARTIAL, main
from publisher.index.layout import INDEX_COLUMNS
from publisher.stores import Store

from .conftest import ROOT, Published, run_build, write_pipeline

warnings.filterwarnings("ignore", category=RuntimeWarning, module="xarray")


def demo_config(demo: Path, **extra: object) -> dict:
    """The root pipeline.yml, pointed at a generated demo tree."""
    import yaml

    config = yaml.safe_load((ROOT / "pipeline.yml").read_text())
    for source in config["sources"]:
        source["path"] = source["path"].replace("examples/demo", str(demo))
    config.pop("output")
    return {**config, **extra}


@pytest.fixture(scope="module")
def demo(demo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Published:
    return run_build(tmp_path_factory.mktemp("demo-build"), demo_config(demo_dir))


def test_catalog_entry_point(demo: Published) -> None:
    catalog = json.loads(demo.store.read_bytes(CATALOG_KEY))
    assert catalog["format"] == "skyshelf-catalog"
    assert isinstance(catalog["version"], int)
    assert catalog["index"].startswith(f"releases/{catalog['release']}/")
    assert demo.store.exists(catalog["index"])
    assert not demo.report.failures and not demo.report.skipped


def test_parquet_index_has_one_row_per_node(demo: Published) -> None:
    table = pq.read_table(demo.store.path(demo.catalog.document["index"]))
    assert set(INDEX_COLUMNS) <= set(table.column_names)
    rows = demo.entries()
    paths = [r["path"] for r in rows]
    assert len(paths) == len(set(paths)) == sum(demo.report.nodes.values())
    assert paths[0] == ""
    root = rows[0]
    assert root["family"] == "container" and root["data_url"] is None and root["metadata"]["facility"] == "Demo Light Source"
    for row in rows:
        assert row["family"] in ("array", "table", "container")
        if row["family"] != "container":
            assert row["data_url"] and demo.store.exists(row["data_url"]), row["path"]
    detector = next(r for r in rows if r["path"] == "scans/scan_0001/entry/data/data")
    assert detector["source_path"] == "/entry/data/data"
    assert detector["source_file"].endswith("scan_0001.nxs")
    assert detector["access_tags"] == ["public"]


def test_json_index_answers_nodes_and_pages(demo: Published) -> None:
    node = demo.node("scans/scan_0001/entry/data/data")
    assert node["structure"]["shape"] == [12, 256, 256]
    assert node["structure"]["dims"] == ["th", "dim_1", "dim_2"]
    assert node["structure"]["chunks"][0] == [1] * 12  # the rule's chunk shape
    children = [e.to_json() for e in demo.catalog.entries("scans/scan_0001/entry")]
    assert [c["key"] for c in children] == ["title", "scan_number", "start_time", "sample", "instrument", "counters", "data"]
    assert [e.to_json() for e in demo.catalog.entries("frames", offset=1, limit=1)][0]["key"] == "NaCl_300K_00005"
    digits = demo.catalog.document["index_json"]["shard_digits"]
    assert digits >= 1


def test_nxdata_opens_as_labelled_dataset(demo: Published, demo_dir: Path) -> None:
    import h5py

    ds = xr.open_zarr(demo.url("scans/scan_0001/entry/data"))
    assert ds["data"].dims == ("th", "dim_1", "dim_2")
    with h5py.File(demo_dir / "scans" / "scan_0001.nxs") as f:
        np.testing.assert_array_equal(ds["data"].values, f["entry/instrument/detector/data"][()])
        np.testing.assert_array_equal(ds["th"].values, f["entry/counters/th"][()])
    assert (ds["data"].values[:, 100, :] == 65535).all()  # the sentinel row


def test_hard_links_published_once_with_aliases(demo: Published) -> None:
    data = demo.node("scans/scan_0001/entry/data/data")
    assert "/entry/instrument/detector/data" in data["notes"]["aliases"]
    detector = demo.node("scans/scan_0001/entry/instrument/detector")
    assert detector["notes"]["links"] == {"data": "/entry/data/data"}
    assert [c.key for c in demo.catalog.entries("scans/scan_0001/entry/instrument/detector")] == ["x_pixel_size"]


def test_scalars_copied_into_parent_metadata(demo: Published) -> None:
    entry = demo.node("scans/scan_0001/entry")
    assert entry["metadata"]["title"] == "NaCl powder at 300 K"
    assert entry["metadata"]["scan_number"] == 1
    assert demo.node("scans/scan_0002/entry/sample")["metadata"] == {"NX_class": "NXsample", "name": "KCl", "temperature": 37.0}
    assert demo.node("scans/scan_0001/entry/sample/temperature")["family"] == "array"  # still a node of its own


def test_sidecar_and_source_metadata(demo: Published) -> None:
    scan = demo.node("scans/scan_0001")
    assert scan["metadata"]["proposal"] == "GU-12345"
    assert scan["metadata"]["beamline"] == "28-ID-1"
    assert "proposal" not in demo.node("scans/scan_0002")["metadata"]
    assert "NXroot" in scan["specs"]


def test_group_published_as_table(demo: Published, demo_dir: Path) -> None:
    import h5py

    node = demo.node("scans/scan_0001/entry/counters")
    assert node["family"] == "table"
    table = pq.read_table(demo.url("scans/scan_0001/entry/counters"))
    with h5py.File(demo_dir / "scans" / "scan_0001.nxs") as f:
        assert node["structure"]["columns"] == list(f["entry/counters"]) == table.column_names  # th is a link, still a column
        for name in table.column_names:
            np.testing.assert_array_equal(table[name].to_numpy(), f[f"entry/counters/{name}"][()])
    assert node["metadata"]["columns"]["I0"] == {"units": "counts"}


def test_tiff_frames_stacked_with_metadata_from_names(demo: Published, demo_dir: Path) -> None:
    import tifffile

    keys = [c.key for c in demo.catalog.entries("frames")]
    assert keys == ["KCl_300K_00007", "NaCl_300K_00005", "NaCl_37K_00006"]
    node = demo.node("frames/NaCl_37K_00006")
    assert node["metadata"]["sample"] == "NaCl"
    assert node["metadata"]["temperature"] == 37 and isinstance(node["metadata"]["temperature"], int)
    assert node["metadata"]["scan"] == 6
    assert node["metadata"]["frame_values"] == [0, 1, 2, 3]
    stacked = zarr.open_array(demo.url("frames/NaCl_37K_00006"), mode="r")
    assert stacked.shape == (4, 128, 160)
    for i in range(4):
        np.testing.assert_array_equal(stacked[i], tifffile.imread(demo_dir / "frames" / f"NaCl_37K_00006_{i:03d}.tif"))


def test_csv_table_with_dates_and_missing_values(demo: Published) -> None:
    import pandas as pd

    frame = pd.read_parquet(demo.url("tables/temperature_log"))
    assert list(frame.columns) == ["time", "setpoint", "sample_temperature", "heater_output"]
    assert len(frame) == 240
    assert frame["time"].dtype.kind == "M"
    assert frame["time"].iloc[0] == pd.Timestamp("2026-03-01T10:00:00")
    assert frame["sample_temperature"].isna().sum() == 2


def test_netcdf_equals_source_through_xarray(demo: Published, demo_dir: Path) -> None:
    source = demo_dir / "climate" / "sst.nc"
    xr.testing.assert_identical(xr.open_zarr(demo.url("climate/sst")), xr.open_dataset(source))
    xr.testing.assert_identical(xr.open_zarr(demo.url("climate/sst/calibration")), xr.open_dataset(source, group="calibration"))
    stored = zarr.open_array(demo.url("climate/sst/sst"), mode="r")
    assert stored.dtype == np.float64 and np.isnan(stored[0, 0, 0])  # stored decoded, as xarray gives it: fills are NaN
    assert not {"scale_factor", "add_offset", "_FillValue"} & set(stored.attrs)  # so nothing decodes it twice
    assert demo.node("climate/sst")["specs"] == ["xarray_dataset"]


def test_zarr_v2_output(demo_dir: Path, tmp_path: Path) -> None:
    config = demo_config(demo_dir)
    config["sources"] = [s for s in config["sources"] if "climate" in s["path"] or "scans" in s["path"]]
    published = run_build(tmp_path, {**config, "output": {"store": str(tmp_path / "site"), "zarr_format": 2, "codec": "gzip:5"}})
    source = demo_dir / "climate" / "sst.nc"
    xr.testing.assert_identical(xr.open_zarr(published.url("climate/sst")), xr.open_dataset(source))
    ds = xr.open_zarr(published.url("scans/scan_0002/entry/data"))
    assert ds["data"].dims == ("th", "dim_1", "dim_2") and int(ds["data"].max()) == 65535
    assert zarr.open_array(published.url("climate/sst/sst"), mode="r").metadata.zarr_format == 2


def test_cli_build_and_ls(demo_dir: Path, tmp_path: Path) -> None:
    config = demo_config(demo_dir)
    pipeline = write_pipeline(tmp_path, {**config, "output": {"store": str(tmp_path / "out")}})
    result = CliRunner().invoke(main, ["build", "-c", str(pipeline)])
    assert result.exit_code == 0, result.output
    assert "build summary" in result.output and "published release" in result.output
    listing = CliRunner().invoke(main, ["ls", "-c", str(pipeline), "-l", "scans/scan_0001/entry/data"])
    assert listing.exit_code == 0, listing.output
    assert "u2 [12, 256, 256]" in listing.output
    missing = CliRunner().invoke(main, ["ls", "-c", str(pipeline), "no/such/node"])
    assert missing.exit_code == 1 and "no node at path" in missing.output


def _corrupt_tree(demo_dir: Path, tmp_path: Path) -> Path:
    tree = tmp_path / "tree"
    shutil.copytree(demo_dir / "scans", tree)
    (tree / "broken.nxs").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 64)  # HDF5 magic, truncated
    return tree


def test_on_error_fail_publishes_nothing(demo_dir: Path, tmp_path: Path) -> None:
    tree = _corrupt_tree(demo_dir, tmp_path)
    store = tmp_path / "site"
    pipeline = write_pipeline(tmp_path, {"sources": [{"path": str(tree / "*.nxs"), "into": "scans"}], "output": {"store": str(store)}})
    result = CliRunner().invoke(main, ["build", "-c", str(pipeline)])
    assert result.exit_code == EXIT_FAILED
    assert "broken" in result.output and "not a readable HDF5 file" in result.output
    assert not (store / "catalog.json").exists()
    assert not any((store / "releases").glob("*/*")) if (store / "releases").exists() else True


def test_on_error_fail_keeps_previous_release(demo_dir: Path, tmp_path: Path) -> None:
    store = tmp_path / "site"
    good = write_pipeline(tmp_path, {"sources": [{"path": str(demo_dir / "scans" / "*.nxs"), "into": "scans"}], "output": {"store": str(store)}})
    assert CliRunner().invoke(main, ["build", "-c", str(good)]).exit_code == 0
    before = (store / "catalog.json").read_bytes()
    tree = _corrupt_tree(demo_dir, tmp_path)
    bad = write_pipeline(tmp_path, {"sources": [{"path": str(tree / "*.nxs"), "into": "scans"}], "output": {"store": str(store)}})
    assert CliRunner().invoke(main, ["build", "-c", str(bad)]).exit_code == EXIT_FAILED
    assert (store / "catalog.json").read_bytes() == before


def test_only_a_files_own_errors_are_recorded() -> None:
    """What fails again while the file is unchanged (a corrupt file: its reader's error, h5py's
    errno-less OSError) is recorded; what passes is not, even wrapped by a reader: an I/O error, a
    dropped mount, memory, the cluster (a lost Dask worker or connection), a timeout, a file the
    item refers to that is not there yet (HDF5's external storage), an error of unknown kind."""
    import errno

    from distributed import KilledWorker
    from distributed.comm.core import CommClosedError

    from publisher.build.lasting import lasting
    from publisher.errors import SourceError, StoreError

    def wrapped(inner: BaseException) -> SourceError:  # as ``raise SourceError(...) from inner`` leaves it
        outer = SourceError("x.h5: not a readable HDF5 file")
        outer.__cause__ = inner
        return outer

    own = [SourceError("x.nc: truncated"), ValueError("bad TIFF"), OSError("Unable to synchronously open file (file signature not found)"),
           wrapped(OSError("Unable to synchronously open file (bad superblock version number)")), KeyError("x"), EOFError()]
    passing = [wrapped(OSError(errno.EIO, "Input/output error")), wrapped(MemoryError()), KilledWorker("task", "worker", 3), CommClosedError("gone"),
               TimeoutError(), OSError(errno.ENOTCONN, "not connected"), OSError("Can't synchronously read data (unable to open external file)"),
               FileNotFoundError(errno.ENOENT, "companion.tif"), StoreError("s3 down"), RuntimeError("can't start new thread"), TypeError("?")]
    assert [lasting(e) for e in own] == [True] * len(own)
    assert [lasting(e) for e in passing] == [False] * len(passing)


def test_on_error_skip_publishes_the_rest(demo_dir: Path, tmp_path: Path) -> None:
    tree = _corrupt_tree(demo_dir, tmp_path)
    pipeline = write_pipeline(
        tmp_path, {"sources": [{"path": str(tree / "*.nxs"), "into": "scans"}], "output": {"store": str(tmp_path / "site")}, "on_error": "skip"}
    )
    result = CliRunner().invoke(main, ["build", "-c", str(pipeline)])
    assert result.exit_code == EXIT_PARTIAL
    from publisher.catalog import Catalog
    from publisher.stores import Store

    catalog = Catalog.open(Store(tmp_path / "site"))
    assert [c.key for c in catalog.entries("scans")] == ["scan_0001", "scan_0002"]
    report = json.loads(Store(tmp_path / "site").read_bytes(catalog.document["report"]))
    assert [f["path"] for f in report["failures"]] == ["scans/broken"]


def test_a_corrupt_file_is_reported_again_until_it_changes_not_read_again(demo_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A corrupt file's failure (its own: it fails again unchanged) is recorded: with nothing else
    changed the next build is a no-change build that reports it, and converts it once the file
    changes. A failed item was never recorded, so with ``on_error: skip`` every build of a tree
    holding one broken file converted it again and published a release (200,000 files: 42-49 s
    and 1.9 GB, where a no-change build takes 2%). A passing failure (an I/O error) is not
    recorded: the next build tries again. ``on_error: fail`` still fails on a recorded one."""
    import errno

    from publisher.build import BuildFailed, build, convert
    from publisher.config import load_pipeline

    tree = _corrupt_tree(demo_dir, tmp_path)
    config = {"sources": [{"path": str(tree / "*.nxs"), "into": "scans"}], "output": {"store": str(tmp_path / "site")}, "on_error": "skip"}
    pipeline = load_pipeline(write_pipeline(tmp_path, config))
    write_tree, calls = convert.Converter.write_tree, []

    def flaky(self: convert.Converter, item: Any, *args: Any) -> None:
        calls.append(item.node_path)
        if item.node_path == "scans/scan_0002" and calls.count(item.node_path) == 1:
            raise OSError(errno.EIO, "Input/output error")
        write_tree(self, item, *args)

    monkeypatch.setattr(convert.Converter, "write_tree", flaky)
    first = build(pipeline)
    assert sorted(f.path for f in first.failures) == ["scans/broken", "scans/scan_0002"] and first.converted == 3
    second = build(pipeline)  # the passing one converted again, the corrupt one reported as recorded
    assert (second.converted, second.reused, [f.path for f in second.failures], second.unchanged) == (1, 2, ["scans/broken"], False)
    third = build(pipeline)
    assert (third.unchanged, third.converted, third.release, [f.path for f in third.failures]) == (True, 0, second.release, ["scans/broken"])
    assert "not a readable HDF5 file" in third.failures[0].reason and "(recorded: the file is unchanged" in third.failures[0].reason
    os.utime(tree / "broken.nxs")  # touched: tried again (and recorded again)
    touched = build(pipeline)
    assert (touched.converted, [f.path for f in touched.failures]) == (1, ["scans/broken"]) and "(recorded" not in touched.failures[0].reason
    assert build(pipeline).unchanged
    result = CliRunner().invoke(main, ["build", "-c", str(tmp_path / "pipeline.yml")])
    assert result.exit_code == EXIT_PARTIAL and "scans/broken" in result.output
    with pytest.raises(BuildFailed):
        build(load_pipeline(write_pipeline(tmp_path, {**config, "on_error": "fail"})))
    shutil.copy(tree / "scan_0001.nxs", tree / "broken.nxs")  # mended
    mended = build(load_pipeline(write_pipeline(tmp_path, config)))
    assert (mended.converted, mended.failures) == (1, [])
    assert [c.key for c in Catalog.open(Store(tmp_path / "site")).entries("scans")] == ["broken", "scan_0001", "scan_0002"]


def test_rule_errors_fail_the_node(demo_dir: Path, tmp_path: Path) -> None:
    pipeline = write_pipeline(
        tmp_path,
        {"sources": [{"path": str(demo_dir / "scans" / "scan_0001.nxs")}], "rules": [{"match": "**/detector", "table": True}],
         "output": {"store": str(tmp_path / "site")}},
    )
    result = CliRunner().invoke(main, ["build", "-c", str(pipeline)])
    assert result.exit_code == EXIT_FAILED
    assert "needs a group of equal-length 1-D datasets" in result.output


def test_skip_rule_and_unknown_files(demo_dir: Path, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    shutil.copytree(demo_dir / "tables", tree)
    (tree / "notes.txt").write_text("not data\n")
    hdf4 = tree / "old.hdf"
    hdf4.write_bytes(b"\x0e\x03\x13\x01" + b"\x00" * 200)  # HDF4 magic bytes
    published = run_build(tmp_path, {"sources": [{"path": str(tree), "into": ""}], "rules": [{"match": "temperature_log", "skip": True}]})
    skipped = published.problems("skipped")
    assert "HDF4" in skipped["old"]
    assert "no reader" in skipped["notes"]
    assert skipped["temperature_log"] == "skipped by a rule"
    assert list(published.catalog.entries("")) == []


def test_netcdf4_compound_and_vlen_strings(tmp_path: Path) -> None:
    import netCDF4
    import pandas as pd

    source = tmp_path / "stations.nc"
    with netCDF4.Dataset(source, "w") as ds:
        ds.createDimension("station", 3)
        reading = np.dtype([("pressure", "f8"), ("count", "i4")])
        kind = ds.createCompoundType(reading, "reading")
        obs = ds.createVariable("obs", kind, ("station",))
        obs[:] = np.array([(1013.2, 4), (998.1, 7), (1020.0, 1)], dtype=reading)
        names = ds.createVariable("name", str, ("station",))
        names[:] = np.array(["Zürich", "Oslo", "Lima"], dtype=object)
        group = ds.createGroup("site")
        group.createDimension("n", 2)
        group.createVariable("height", "f4", ("n",))[:] = [1.5, 2.5]
    published = run_build(tmp_path, {"sources": [{"path": "stations.nc"}]})
    table = pd.read_parquet(published.url("stations/obs"))
    assert table.to_dict("list") == {"pressure": [1013.2, 998.1, 1020.0], "count": [4, 7, 1]}
    assert list(zarr.open_array(published.url("stations/name"), mode="r")[...]) == ["Zürich", "Oslo", "Lima"]
    xr.testing.assert_identical(xr.open_zarr(published.url("stations/site")), xr.open_dataset(source, group="site"))


def test_the_summary_says_which_items_published_nothing(tmp_path: Path) -> None:
    """A good CSV, an empty one (fails), a corrupt HDF5 file (fails) and a text file (no reader):
    the summary said "4 converted", the release holding one table. It says how many of those
    published nothing; the JSON report counts them too."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "ok.csv").write_text("a,b\n1,2\n")
    (tmp_path / "data" / "empty.csv").write_text("")
    (tmp_path / "data" / "bad.h5").write_bytes(b"\x89HDF\r\n\x1a\ngarbage")
    (tmp_path / "data" / "notes.txt").write_text("hello")
    config = write_pipeline(tmp_path, {"sources": [{"path": "data"}], "output": {"store": str(tmp_path / "site")}, "on_error": "skip"})
    result = CliRunner().invoke(main, ["build", "-c", str(config)])
    assert result.exit_code == EXIT_PARTIAL, result.output
    assert "4 converted (3 of them published nothing:" in result.output, result.output
    again = CliRunner().invoke(main, ["build", "-c", str(config), "--json-report", "--store", str(tmp_path / "other")])
    report, _ = json.JSONDecoder().raw_decode(again.output, again.output.index("{"))
    assert (report["converted"], report["unpublished"], report["reused"]) == (4, 3, 0)
    bad = CliRunner().invoke(main, ["build", "-c", str(config), "--workers", "0"])
    assert bad.exit_code == 2 and "Invalid value for '--workers'" in bad.output and "Traceback" not in bad.output


def test_progress_shows_node_paths_as_they_are(tmp_path: Path) -> None:
    """In a terminal the bar showed each node path as rich markup: a folder ``x[`` holding
    ``y]1.csv`` (path ``x[/y]1``) raised MarkupError and the build died; ``scan[red]`` was shown
    as ``scan`` in red."""
    import io

    from rich.console import Console

    from publisher.cli.build_cmd import _Progress

    shown = io.StringIO()
    progress = _Progress(Console(file=shown, force_terminal=True, width=200))
    with progress.progress:
        progress("start", {"release": "r", "items": 2})
        for path in ("x[/y]1", "scan[red]"):
            progress("item", {"path": path})
            progress.progress.refresh()
            assert path in shown.getvalue()
            progress("done", {})


def test_ls_escapes_control_characters_in_names(tmp_path: Path) -> None:
    """File names may hold a newline, a tab or an escape: listed raw, one node read as two, and an
    escape sequence drove the terminal. They are published as named, and listed escaped."""
    (tmp_path / "in").mkdir()
    for name in ("a\nb", "tab\tname", "esc\x1b[31m", "plain é"):
        np.save(tmp_path / "in" / f"{name}.npy", np.arange(3))
    site = run_build(tmp_path, {"sources": [{"path": "in", "into": ""}]})
    listing = CliRunner().invoke(main, ["ls", "--store", site.store.url])
    assert listing.exit_code == 0, listing.output
    assert sorted(listing.output.splitlines()) == sorted(["a\\nb", "tab\\tname", "esc\\x1b[31m", "plain é"])
    assert site.node("a\nb")


def test_build_and_validate_escape_names_and_take_store_paths_literally(tmp_path: Path) -> None:
    """``publish build``'s problem lists and ``publish validate --as-*`` printed names raw (an
    escape sequence cleared the screen, a newline made a line of its own, a bidi override reversed
    the rest); a store path with brackets was read as rich markup: ``site[/x]`` raised a
    MarkupError after the release was published (exit 1), ``site[bold]v2`` was shown as ``sitev2``."""
    (tmp_path / "in").mkdir()
    for name in ("nl\nx-fake-line", "esc\x1b[2J", "rlo\u202eevil"):
        (tmp_path / "in" / f"{name}.npy").write_bytes(b"\x93NUMPY damaged")  # skipped each, named in the list
    np.save(tmp_path / "in" / "bell\x07\u202e.npy", np.arange(3))
    for store in ("site[/x]", "site[bold]v2"):
        config = write_pipeline(tmp_path, {"sources": [{"path": "in", "into": ""}], "output": {"store": str(tmp_path / store)},
                                           "on_error": "skip", "rules": [{"match": "**", "access_tags": ["public"]}]})
        done = subprocess.run([sys.executable, "-m", "publisher.cli", "build", "-c", str(config)], capture_output=True, text=True,
                              cwd=tmp_path, check=False)
        out = done.stdout + done.stderr
        assert done.returncode == 0, out  # (published; the damaged files skipped)
        assert "Traceback" not in out and f"to {tmp_path / store}\n" in out, out
        assert "\x1b[2J" not in out and "\u202e" not in out and "x-fake-line" in out, out
        assert "esc\\x1b[2J" in out and "rlo\\u202eevil" in out and "nl\\nx-fake-line" in out, out
    checked = subprocess.run([sys.executable, "-m", "publisher.cli", "validate", "-c", str(config), "--as-anonymous"],
                             capture_output=True, text=True, cwd=tmp_path, check=False)
    assert checked.returncode == 0, checked.stderr
    assert "read    bell\\x07\\u202e" in checked.stdout and "note: nl\\nx-fake-line could not be opened" in checked.stdout, checked.stdout
    assert "\x1b" not in checked.stdout and "\u202e" not in checked.stdout and "\x07" not in checked.stdout


def test_names_keep_the_characters_their_scripts_need() -> None:
    """Only what drives a terminal is escaped: a zero-width (non-)joiner in a Persian or emoji
    name and a no-break space were printed as \\u200c, \\u200d, \\xa0."""
    from publisher.cli.common import shown

    assert shown("می\u200cخواهم \U0001f469\u200d\U0001f52c\xa0x") == "می\u200cخواهم \U0001f469\u200d\U0001f52c\xa0x"
    assert shown("a\x1b[2J\u202eb\u2028c\x9b") == "a\\x1b[2J\\u202eb\\u2028c\\x9b"
