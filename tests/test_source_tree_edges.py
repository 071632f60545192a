"""Source trees that are awkward in ways a facility's are (a review helper's repros): the output
store inside a source folder, two items publishing one node path, FIFOs where files should be,
names longer than the file system allows, trees deeper than Python's recursion limit."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import tifffile

from publisher.build import build
from publisher.config import load_pipeline
from publisher.errors import ConfigError
from publisher.index.table import NodeClash, NodeTable

from .conftest import remove_deep, write_pipeline


def test_the_output_store_inside_a_source_folder_is_not_walked(tmp_path: Path) -> None:
    """``path: .`` beside ``store: ./site``: each build published the earlier releases' files
    again as nodes (5, 24, 51, ...), a private table among them as a public one. Reached through
    a symlink (``data/up -> ..``) too."""
    (tmp_path / "secret").mkdir()
    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    (tmp_path / "secret" / "payroll.csv").write_text("password,salary\nhunter2,99999\n")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "y.csv").write_text("c\n3\n")
    (tmp_path / "data" / "up").symlink_to("..")
    config = {"sources": [{"path": ".", "into": "open", "exclude": ["secret", "data"]}, {"path": "secret", "into": "staff"},
                          {"path": "data", "into": "more", "exclude": ["up/secret", "up/data"]}],
              "rules": [{"match": "open", "access_tags": ["public"]}, {"match": "more", "access_tags": ["public"]},
                        {"match": "staff", "access_tags": ["staff"]}],
              "output": {"store": "./site"}, "symlinks_outside": "allow", "on_error": "skip"}
    pipeline = load_pipeline(write_pipeline(tmp_path, config))
    counts = []
    for _ in range(3):
        report = build(pipeline, workers=1)
        counts.append(sum(report.nodes.values()))
        (tmp_path / "x.csv").write_text(f"a,b\n1,{len(counts)}\n")  # (a change, so each build publishes)
    catalog = json.loads((tmp_path / "site" / "catalog.json").read_text())
    paths = pd.read_parquet(tmp_path / "site" / catalog["index"]).path.tolist()
    assert counts[0] == counts[1] == counts[2], counts
    assert not [p for p in paths if "site" in p.split("/")], paths
    assert not [p for p in paths if "payroll" in p]  # (private: not in the public index, nor public elsewhere)
    assert "more/up/x" in paths  # the folder above, through the link: its files, not the store


@pytest.mark.parametrize("case", ["into-a-file", "into-a-table", "stack-beside-its-folder", "one-file-two-sources"])
def test_two_nodes_at_one_path_stop_the_build(tmp_path: Path, case: str) -> None:
    """Clashes the plan cannot see (it compares items' top paths): the second node replaced the
    first in the index (or went inside a table, where no client lists it), its data written but
    out of reach, with no word. Now the build stops, naming both and the lines in pipeline.yml of
    the sources that made them; nothing is published."""
    tree = tmp_path / "tree"
    if case == "into-a-file":  # e/x.h5 into top: top/x/data, an array; f/data.csv into top/x: top/x/data, a table
        (tree / "e").mkdir(parents=True)
        (tree / "f").mkdir()
        with h5py.File(tree / "e" / "x.h5", "w") as f:
            f["data"] = np.arange(10)
        (tree / "f" / "data.csv").write_text("a,b\n1,2\n")
        sources = [{"path": "tree/e", "into": "top"}, {"path": "tree/f", "into": "top/x"}]
        said = "pipeline.yml:2 and line 4: node path 'top/x/data' would be published twice: as the array 'top/x/data' (from tree/e/x.h5) and as the table"
    elif case == "into-a-table":
        (tree / "a").mkdir(parents=True)
        (tree / "c").mkdir()
        (tree / "a" / "x.csv").write_text("a,b\n1,2\n")
        (tree / "c" / "x.csv").write_text("a,b\n3,4\n")
        sources = [{"path": "tree/a", "into": "top"}, {"path": "tree/c", "into": "top/x"}]
        said = "pipeline.yml:2 and line 4: node path 'top/x/x' is inside the table 'top/x' (from tree/a/x.csv)"
    elif case == "one-file-two-sources":  # tree and tree/a both match tree/a/x.csv (it was named twice: "x.csv and x.csv")
        (tree / "a").mkdir(parents=True)
        (tree / "a" / "x.csv").write_text("a,b\n1,2\n")
        sources = [{"path": "tree", "into": ""}, {"path": "tree/a", "into": "a"}]
        said = "pipeline.yml:4: tree/a/x.csv is matched by this source and an earlier one, both publishing it at 'a/x': leave it out of one"
    else:  # img_000..002.tif stacked as data/img, beside the folder data/img
        (tree / "data" / "img").mkdir(parents=True)
        for i in range(3):
            tifffile.imwrite(tree / "data" / f"img_{i:03d}.tif", np.full((4, 4), i, np.uint8))
        (tree / "data" / "img" / "notes.csv").write_text("a\n1\n")
        sources = [{"path": "tree/data", "into": "data", "name_pattern": "{name}_{frame:03d}.tif", "stack": "frame"}]
        said = "pipeline.yml:2: node path 'data/img' would be published twice: as the folder 'data/img' and as the array 'data/img'"
    config = {"sources": sources, "output": {"store": str(tmp_path / "site")}}
    with pytest.raises(ConfigError) as caught:
        build(load_pipeline(write_pipeline(tmp_path, config)), workers=1)
    assert said in str(caught.value)
    assert not (tmp_path / "site" / "catalog.json").exists()


def test_a_clash_found_batches_later_names_the_sources_of_both_nodes() -> None:
    """The node table takes rows in batches (:attr:`NodeTable.BATCH`): a clash comes to light
    when a later item's rows are added, so the item at hand may be neither node's. Each row
    keeps the number of the source that made it, and the clash names those two."""
    def row(path: str, family: str = "array") -> dict[str, object]:
        return {"path": path, "parent": path.rpartition("/")[0], "family": family, "source_file": f"{path}.h5"}

    table = NodeTable()
    try:
        table.add(row("", "container"), folder=True, source=None)
        table.add(row("a"), folder=False, source=3)
        for i in range(NodeTable.BATCH + 10):  # the clash goes in with the first full batch
            table.add(row(f"n{i}"), folder=False, source=7 if i == 5 else 0)
            if i == 5:
                table.add(row("a"), folder=False, source=5)
    except NodeClash as clash:
        assert clash.sources == (3, 5) and clash.path == "a"
        assert str(clash.located(lambda i: f"p.yml:{2 * i}")).startswith("p.yml:6 and line 10: node path 'a' would be published twice")
    else:
        raise AssertionError("no clash")
    finally:
        table.close()


def _without_root_powers() -> list[str]:
    """A command prefix that runs as this user without root's power to read any folder (root
    ignores a folder's mode: the suite's container runs as root)."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv (util-linux) to drop the power to read any folder")
    drop = "-dac_override,-dac_read_search"
    return ["setpriv", f"--bounding-set={drop}", f"--inh-caps={drop}"]


def test_a_source_folder_that_cannot_be_listed_stops_the_build(tmp_path: Path) -> None:
    """The source's own folder unreadable (an NFS export squashing the user): the walk reported
    it as one folder's failure and, with on_error: skip, published an empty release over the
    complete one. Now a configuration error, as a missing source path is; the release stands."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "x.csv").write_text("a,b\n1,2\n")
    config = {"sources": [{"path": "data"}], "output": {"store": str(tmp_path / "site")}, "on_error": "skip"}
    pipeline = write_pipeline(tmp_path, config)
    build(load_pipeline(pipeline), workers=1)
    catalog = (tmp_path / "site" / "catalog.json").read_text()
    (tmp_path / "data").chmod(0)
    try:
        done = subprocess.run([*_without_root_powers(), sys.executable, "-m", "publisher.cli", "build", "-c", str(pipeline)],
                              capture_output=True, text=True, check=False)
    finally:
        (tmp_path / "data").chmod(0o755)
    assert done.returncode != 0 and "source path 'data': cannot list data: Permission denied" in done.stderr + done.stdout
    assert (tmp_path / "site" / "catalog.json").read_text() == catalog



@pytest.mark.parametrize("command", ["validate", "build"])
def test_a_file_that_cannot_be_read_is_its_own_failure_in_validate_and_with_options(tmp_path: Path, command: str) -> None:
    """A file the build's user cannot read: ``publish validate`` died with a PermissionError's
    traceback (it opens each file to tell its type), and so did a build whose source has reader
    options (checked at the plan). Each names the file; the build publishes the rest."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "ok.csv").write_text("a,b\n1,2\n")
    (tmp_path / "data" / "locked.csv").write_text("a,b\n3,4\n")
    config = {"sources": [{"path": "data", "options": {"delimiter": ","}}], "output": {"store": str(tmp_path / "site")}, "on_error": "skip"}
    pipeline = write_pipeline(tmp_path, config)
    (tmp_path / "data" / "locked.csv").chmod(0)
    try:
        done = subprocess.run([*_without_root_powers(), sys.executable, "-m", "publisher.cli", command, "-c", str(pipeline)],
                              capture_output=True, text=True, check=False)
    finally:
        (tmp_path / "data" / "locked.csv").chmod(0o644)
    said = done.stdout + done.stderr
    assert "Traceback" not in said, said
    if command == "validate":
        assert done.returncode == 0 and "failure: data/locked.csv: cannot read: Permission denied; it will be skipped" in said, said
    else:
        assert "cannot read data/locked.csv: Permission denied" in said and (tmp_path / "site" / "catalog.json").exists(), said

_SWAP = """
import os, sys
from publisher.build import plan
original = plan.Planner.fingerprint_against
def swapped(self, item, old, pool):  # the planned file replaced by a FIFO before its conversion opens it
    if not os.path.exists("swapped"):
        open("swapped", "w").close(); os.unlink("data/v.csv"); os.mkfifo("data/v.csv")
    return original(self, item, old, pool)
plan.Planner.fingerprint_against = swapped
from publisher.cli import main
sys.argv = ["publish", "build"]; main()
"""


@pytest.mark.parametrize("case", ["hdf5-link", "ome-companion", "swapped-in", "socket"])
def test_fifos_and_sockets_are_said_and_never_opened(tmp_path: Path, case: str) -> None:
    """Opening a FIFO for reading waits for a writer: the walk left FIFOs out without a word, but
    an HDF5 external link to one, an OME-TIFF companion that is one, or one put in a planned
    file's place was opened, and the build hung for ever. Each is said now; the rest publishes."""
    import socket

    data = tmp_path / "data"
    data.mkdir()
    command = [sys.executable, "-m", "publisher.cli", "build"]
    if case == "hdf5-link":
        with h5py.File(data / "master.h5", "w") as f:
            f["local"] = np.arange(4)
            f["ext"] = h5py.ExternalLink("frames.h5", "/data")
        os.mkfifo(data / "frames.h5")
        said = ["data/frames.h5 (data/frames.h5): a FIFO, not a regular file: not read", "/ext: external link to frames.h5:/data whose file is a FIFO"]
    elif case == "ome-companion":
        xml = ('<?xml version="1.0" encoding="UTF-8"?><OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06" UUID="urn:uuid:1">'
               '<Image ID="Image:0"><Pixels ID="Pixels:0" DimensionOrder="XYZCT" Type="uint8" SizeX="4" SizeY="4" SizeZ="2" SizeC="1" SizeT="1">'
               '<Channel ID="Channel:0:0" SamplesPerPixel="1"/><TiffData FirstZ="0" IFD="0" PlaneCount="1"><UUID FileName="a.ome.tif">urn:uuid:1</UUID>'
               '</TiffData><TiffData FirstZ="1" IFD="0" PlaneCount="1"><UUID FileName="b.ome.tif">urn:uuid:2</UUID></TiffData></Pixels></Image></OME>')
        tifffile.imwrite(data / "a.ome.tif", np.ones((4, 4), np.uint8), description=xml, metadata=None)
        os.mkfifo(data / "b.ome.tif")
        said = ["b.ome.tif, which its OME-XML names, is a FIFO: not read"]
    elif case == "swapped-in":
        (data / "v.csv").write_text("a,b\n1,2\n")
        command = [sys.executable, "-c", _SWAP]
        said = ["cannot read data/v.csv: not a regular file"]
    else:
        (data / "x.csv").write_text("a\n1\n")
        server = socket.socket(socket.AF_UNIX)
        server.bind(str(data / "control.sock"))
        said = ["data/control.sock (data/control.sock): a socket, not a regular file: not read"]
    write_pipeline(tmp_path, {"sources": [{"path": "data"}], "output": {"store": "site"}, "on_error": "skip"})
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False)
    out = done.stdout + done.stderr
    assert all(text in out for text in said), out
    assert (tmp_path / "site" / "catalog.json").exists()


def test_a_group_whose_name_the_store_cannot_hold_is_skipped_alone(tmp_path: Path) -> None:
    """An HDF5 group of a 300-character name (a file name longer than the file system allows):
    its metadata, written last, failed after its entry was made; the check then refused the whole
    release, build after build. It failed its file, and now is skipped by name (build/names.py),
    the rest of its file published."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "good.csv").write_text("a,b\n1,2\n")
    with h5py.File(tmp_path / "data" / "x.h5", "w") as f:
        f["ok"] = np.arange(3)
        f.create_group("g" * 300)["d"] = np.arange(3)
    config = {"sources": [{"path": "data"}], "output": {"store": str(tmp_path / "site")}, "on_error": "skip"}
    pipeline = load_pipeline(write_pipeline(tmp_path, config))
    for _ in range(2):
        report = build(pipeline, workers=1)
        assert report.published and not report.failures
        assert [p.path for p in report.skipped] == [f"data/x/{'g' * 300}"]
        assert report.skipped[0].reason.endswith("more than the 247 a node's name may have (a folder's name in a store)")
        catalog = json.loads((tmp_path / "site" / "catalog.json").read_text())
        paths = pd.read_parquet(tmp_path / "site" / catalog["index"]).path.tolist()
        assert "data/good" in paths and "data/x/ok" in paths and not [p for p in paths if p.startswith("data/x/g")]


@pytest.mark.parametrize("exclude", [[], ["*.tmp"]], ids=["", "exclude"])
def test_a_tree_deeper_than_the_recursion_limit_is_published_and_listed(tmp_path: Path, exclude: list[str]) -> None:
    """A file 1,100 folders down: the local store made its folders by recursion (RecursionError:
    the file failed), and ``publish ls -r`` listed by recursion too; with an ``exclude``, whether
    a folder above was excluded was asked by recursion (RecursionError, the build died)."""
    from click.testing import CliRunner

    from publisher.cli import main

    depth = sys.getrecursionlimit() + 100
    folder = tmp_path / "data"
    parts = ["d"] * depth
    for i in range(depth + 1):  # (os.makedirs recurses too)
        os.mkdir(os.path.join(folder, *parts[:i]))
    with open(os.path.join(folder, *parts, "leaf.csv"), "w") as f:
        f.write("a,b\n1,2\n")
    pipeline = write_pipeline(tmp_path, {"sources": [{"path": "data", "exclude": exclude}], "output": {"store": str(tmp_path / "site")}})
    try:
        report = build(load_pipeline(pipeline), workers=1)
        assert report.published and not report.failures, report.failures
        listed = CliRunner().invoke(main, ["ls", "-r", "-c", str(pipeline)])
        assert listed.exit_code == 0, listed.output
        assert listed.output.splitlines()[-1] == "  " * (depth + 1) + "leaf"
    finally:  # (pytest removes old temporary folders with shutil.rmtree, which recurses: it failed the session's end)
        for child in tmp_path.iterdir():
            remove_deep(child)


def test_a_file_beside_a_folder_named_as_its_data_keeps_its_full_name(tmp_path: Path) -> None:
    """``scan.csv`` beside a pyarrow dataset folder ``scan.parquet/``: node ``scan`` was written
    to data/scan.parquet, the folder's nodes below data/scan.parquet/, and one of them failed (a
    bare IsADirectoryError). The file is keyed by its full name, as beside a folder ``scan/``."""
    (tmp_path / "data" / "scan.parquet").mkdir(parents=True)
    (tmp_path / "data" / "scan.csv").write_text("a,b\n1,2\n")
    pd.DataFrame({"a": [1, 2]}).to_parquet(tmp_path / "data" / "scan.parquet" / "part-0.parquet")
    pipeline = write_pipeline(tmp_path, {"sources": [{"path": "data"}], "output": {"store": str(tmp_path / "site")}})
    report = build(load_pipeline(pipeline), workers=1)
    assert report.published and not report.failures, report.failures
    catalog = json.loads((tmp_path / "site" / "catalog.json").read_text())
    paths = set(pd.read_parquet(tmp_path / "site" / catalog["index"]).path)
    assert {"data/scan.csv", "data/scan.parquet/part-0"} <= paths


def test_a_raw_zarr_folder_beside_a_file_leaves_its_key(tmp_path: Path) -> None:
    """scan.zarr/ (a Zarr store: no reader takes its files) beside scan.h5: the HDF5 file keeps its
    key ``scan`` (a folder named as a table's data, scan.parquet/, is what renames it)."""
    (tmp_path / "data" / "scan.zarr" / "c").mkdir(parents=True)
    (tmp_path / "data" / "scan.zarr" / "zarr.json").write_text("{}")
    with h5py.File(tmp_path / "data" / "scan.h5", "w") as f:
        f["x"] = np.arange(3)
    write_pipeline(tmp_path, {"sources": [{"path": "data", "into": ""}], "output": {"store": "file://" + str(tmp_path / "site")}, "on_error": "skip"})
    from publisher.sources import iter_plan

    pipeline = load_pipeline(tmp_path / "pipeline.yml")
    assert [i.node_path for i in iter_plan(pipeline) if i.reader is not None] == ["scan"]
    build(pipeline, workers=1)
    assert sorted(i.node_path for i in iter_plan(pipeline)) == ["scan", "scan.zarr/zarr"]  # (not the store, spelled file://)


def test_a_source_folder_as_its_items_name_it(tmp_path: Path) -> None:
    """The folder a Dask worker is asked whether it sees: the source's path as the items' paths
    name it (a login node's symlink is a compute node's mount), not its resolved target."""
    from publisher.sources import source_folder

    (tmp_path / "backing").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "backing")
    pipeline = load_pipeline(write_pipeline(tmp_path, {"sources": [{"path": "link"}], "output": {"store": str(tmp_path / "site")}}))
    assert source_folder(pipeline, pipeline.sources[0], resolved=False) == str(tmp_path / "link")
    assert source_folder(pipeline, pipeline.sources[0]) == str(tmp_path / "backing")


@pytest.mark.parametrize("case", ["full-name-is-a-stem", "stack-key-is-a-stem"])
def test_files_of_one_folder_get_keys_of_their_own(tmp_path: Path, case: str) -> None:
    """data.csv beside data.txt took its full name, data.csv, the stem of data.csv.gz beside them:
    the build stopped ("would both be published at 'data.csv'; give one source a different
    'into'", which one source cannot). And s_000..002.tif stacked as ``s`` beside s.tif, the
    same. Each file takes its full name where its key is another's, until none clash."""
    from publisher.sources import iter_plan

    (tmp_path / "tree").mkdir()
    source: dict[str, object] = {"path": "tree", "into": ""}
    if case == "full-name-is-a-stem":
        for name in ("x.npy", "x.tif.npy"):
            np.save(tmp_path / "tree" / name, np.arange(3))
        tifffile.imwrite(tmp_path / "tree" / "x.tif", np.zeros((2, 2), np.uint8))
        expected = ["x.npy", "x.tif", "x.tif.npy"]
    else:
        for i in range(3):
            tifffile.imwrite(tmp_path / "tree" / f"s_{i:03d}.tif", np.full((2, 2), i, np.uint8))
        tifffile.imwrite(tmp_path / "tree" / "s.tif", np.zeros((2, 2), np.uint8))
        source.update(name_pattern="s_{z:d}.tif", stack="z")
        expected = ["s", "s.tif"]
    pipeline = load_pipeline(write_pipeline(tmp_path, {"sources": [source], "output": {"store": str(tmp_path / "site")}, "on_error": "skip"}))
    assert sorted(item.node_path for item in iter_plan(pipeline)) == expected
    report = build(pipeline, workers=1)
    assert report.published and not report.failures, report.failures


def test_a_source_glob_takes_the_folders_it_names_whole(tmp_path: Path) -> None:
    """``path: raw/2024-*`` published raw/2024-03.csv and dropped the folders raw/2024-01/ and
    raw/2024-02/ without a word: a folder the glob names is walked, as a folder path is."""
    for rel, value in (("raw/2024-03.csv", 1), ("raw/2024-01/x.csv", 2), ("raw/2024-02/sub/y.csv", 3), ("raw/other.csv", 4)):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(f"a\n{value}\n")
    config = {"sources": [{"path": "raw/2024-*", "into": ""}], "output": {"store": str(tmp_path / "site")}}
    report = build(load_pipeline(write_pipeline(tmp_path, config)), workers=1)
    catalog = json.loads((tmp_path / "site" / "catalog.json").read_text())
    paths = pd.read_parquet(tmp_path / "site" / catalog["index"]).path.tolist()
    assert not report.failures and {"2024-03", "2024-01/x", "2024-02/sub/y"} <= set(paths) and "other" not in paths, paths


def test_a_source_path_naming_a_file_or_folder_with_glob_characters_is_that_path(tmp_path: Path) -> None:
    """``run[1]`` (an instrument's folder name) was read as a glob of ``run1``: "matches no file",
    and its escaped form only matched with a pattern below it."""
    (tmp_path / "run[1]").mkdir()
    (tmp_path / "run[1]" / "b.csv").write_text("a\n1\n")
    config = {"sources": [{"path": "run[1]"}, {"path": "run[1]/b.csv", "into": "single"}], "output": {"store": str(tmp_path / "site")}}
    report = build(load_pipeline(write_pipeline(tmp_path, config)), workers=1)
    catalog = json.loads((tmp_path / "site" / "catalog.json").read_text())
    paths = pd.read_parquet(tmp_path / "site" / catalog["index"]).path.tolist()
    assert not report.failures and {"run[1]/b", "single/b"} <= set(paths), paths
