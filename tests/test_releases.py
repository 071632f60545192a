"""Releases: atomic switch, incremental rebuilds, rollback, gc, and a build killed midway,
on a local folder and on S3 (moto's server and SeaweedFS)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from publisher.build import BuildReport, build
from publisher.catalog import Catalog
from publisher.cli import main
from publisher.config import load_pipeline
from publisher.errors import NotFound
from publisher.releases import gc, list_releases, rollback
from publisher.stores import Store

from .conftest import write_pipeline
from .servers import S3Server, store_target
from .test_s3 import environ


@pytest.fixture(scope="module", params=["local", "moto", "seaweedfs"])
def target(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str], S3Server | None]]:
    with store_target(request.param, tmp_path_factory, "releases") as found:
        yield found


def _store(url: str, server: S3Server | None) -> Store:
    return Store(url, **(server.storage_options() if server else {}))


def _tree(src: Path, dst: Path) -> Path:
    shutil.copytree(src / "scans", dst / "scans")
    shutil.copytree(src / "tables", dst / "tables")
    shutil.copytree(src / "climate", dst / "climate")
    return dst


def _build(folder: Path, url: str, env: dict[str, str]) -> BuildReport:
    config = {"sources": [{"path": "scans/*.nxs", "into": "scans"}, {"path": "tables"}, {"path": "climate"}], "output": {"store": url}}
    with environ(env):
        return build(load_pipeline(write_pipeline(folder, config)), workers=2)


def test_incremental_rollback_and_gc(target: tuple[str, dict[str, str], S3Server | None], demo_dir: Path, tmp_path: Path) -> None:
    base, env, server = target
    url = f"{base}/incremental-{tmp_path.name}"
    tree = _tree(demo_dir, tmp_path / "tree")
    store = _store(url, server)

    first = _build(tree, url, env)
    assert (first.converted, first.reused) == (4, 0)
    catalog_bytes = store.read_bytes("catalog.json")

    again = _build(tree, url, env)  # no change: nothing written, the same release stands
    assert again.unchanged and (again.converted, again.reused) == (0, 4) and again.release == first.release
    assert store.read_bytes("catalog.json") == catalog_bytes and len(list_releases(store)) == 1

    os.utime(tree / "tables" / "temperature_log.csv", (time.time() + 60, time.time() + 60))  # touched, same bytes
    touched = _build(tree, url, env)  # nothing converted; a release records the new time once
    assert (touched.converted, touched.reused, touched.unchanged) == (0, 4, False)
    assert _build(tree, url, env).unchanged

    log = tree / "tables" / "temperature_log.csv"
    log.write_text(log.read_text() + "2026-03-01T14:00:00,240.00,239.9,21.0\n")
    changed = _build(tree, url, env)
    assert (changed.converted, changed.reused) == (1, 3) and changed.release != first.release
    catalog = Catalog.open(store)
    scan = catalog.entry("scans/scan_0001/entry/data/data").to_json()
    assert scan["data_url"].startswith(f"releases/{first.release}/")  # unchanged data keeps its keys
    assert catalog.entry("tables/temperature_log").data_url.startswith(f"releases/{changed.release}/")
    with environ(env):
        assert len(pd.read_parquet(store.path(catalog.entry("tables/temperature_log").data_url),
                                   storage_options=server.storage_options() if server else None)) == 241

    rollback(store, first.release)
    assert Catalog.open(store).release == first.release
    assert Catalog.open(store).entry("tables/temperature_log").to_json()["structure"]["row_count"] == 240
    rollback(store, changed.release)

    result = gc(store, keep=1)
    assert result["kept"] == [changed.release]
    old_log = f"releases/{first.release}/data/tables/temperature_log.parquet"
    assert not store.exists(old_log)  # only the superseded data went
    for entry in (e.to_json() for e in Catalog.open(store).entries("scans/scan_0001/entry/data")):
        assert store.exists(entry["data_url"])  # the reused data stayed
    states = {r.id: r for r in list_releases(store)}
    assert states[first.release].retired and states[changed.release].current
    with pytest.raises(Exception, match="no complete release"):
        rollback(store, first.release)
    assert gc(store, keep=1)["deleted"] == []  # idempotent


def test_gc_and_rollback_exclude_each_other(target: tuple[str, dict[str, str], S3Server | None], demo_dir: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A rollback to a release that a running gc is deleting would leave the catalog pointing at
    deleted data: it fails at once (or waits) while the gc holds the gc lock, and a gc fails while
    a rollback switches. Either way the catalog's release stays whole."""
    import publisher.releases as releases_module
    from publisher.store_lock import StoreBusy

    base, env, server = target
    url = f"{base}/gc-lock-{tmp_path.name}"
    tree = _tree(demo_dir, tmp_path / "tree")
    store = _store(url, server)
    first = _build(tree, url, env)
    log = tree / "tables" / "temperature_log.csv"
    log.write_text(log.read_text() + "2026-03-01T14:00:00,240.00,239.9,21.0\n")
    second = _build(tree, url, env)

    deleting, go = threading.Event(), threading.Event()
    real_delete, real_switch = releases_module._delete, releases_module.switch

    def slow_delete(*args: Any) -> bool:
        deleting.set()
        go.wait(60)
        return real_delete(*args)

    monkeypatch.setattr(releases_module, "_delete", slow_delete)
    results: list[Any] = []
    with environ(env):
        running = threading.Thread(target=lambda: results.append(gc(store, keep=1)))
        running.start()
        assert deleting.wait(60)  # the gc decided: the first release goes
        with pytest.raises(StoreBusy, match="publish gc"):
            rollback(store, first.release)
        waited: list[BaseException] = []

        def patient() -> None:
            try:
                rollback(store, first.release, wait=60)
            except BaseException as exc:  # noqa: BLE001 (what the rollback ended with, asserted below)
                waited.append(exc)

        patient_rollback = threading.Thread(target=patient)
        patient_rollback.start()
        time.sleep(0.5)  # it waits for the gc, holding nothing a build needs:
        from publisher.store_lock import exclusive

        with exclusive(store, "publish build"):
            pass
        go.set()
        running.join(60)
        patient_rollback.join(60)
        assert results and f"releases/{first.release}" in " ".join(results[0]["deleted"])
        assert len(waited) == 1 and isinstance(waited[0], NotFound) and "no complete release" in str(waited[0])  # not switched to it
        assert Catalog.open(store).release == second.release

        switching, go_on = threading.Event(), threading.Event()

        def slow_switch(*args: Any) -> None:
            switching.set()
            go_on.wait(60)
            real_switch(*args)

        monkeypatch.setattr(releases_module, "switch", slow_switch)
        rolled_back: list[Any] = []
        rolled = threading.Thread(target=lambda: rolled_back.append(rollback(store, second.release)))
        rolled.start()
        assert switching.wait(60)
        with pytest.raises(StoreBusy, match="rollback"):
            gc(store, keep=1)
        go_on.set()
        rolled.join(60)
        assert len(rolled_back) == 1 and rolled_back[0].release == second.release  # (the rollback itself succeeded)
        catalog = Catalog.open(store)
        assert catalog.release == second.release
        for entry in catalog.entries("tables"):
            assert store.exists(entry.data_url)  # whole


def _newest(store: Store) -> str:
    return max((r.id for r in list_releases(store)), default="none")


KILL_SCRIPT = """
import sys
from publisher.build import build
from publisher.config import load_pipeline
build(load_pipeline(sys.argv[1]), workers=2)
"""


def test_build_killed_midway_leaves_previous_release(target: tuple[str, dict[str, str], S3Server | None], demo_dir: Path, tmp_path: Path) -> None:
    import h5py
    import xarray as xr

    base, env, server = target
    url = f"{base}/killed-{tmp_path.name}"
    tree = _tree(demo_dir, tmp_path / "tree")
    first = _build(tree, url, env)
    store = _store(url, server)
    before = store.read_bytes("catalog.json")

    with h5py.File(tree / "scans" / "big.nxs", "w") as f:  # ~200 MB to convert: the kill lands mid-write
        ds = f.create_dataset("entry/data", shape=(200, 512, 512), dtype="f4", chunks=(1, 512, 512))
        for i in range(200):
            ds[i] = np.random.default_rng(i).random((512, 512), dtype="f4")
    config = {"sources": [{"path": "scans/*.nxs", "into": "scans"}, {"path": "tables"}, {"path": "climate"}], "output": {"store": url}}
    pipeline = write_pipeline(tree, config)
    process = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(pipeline)], env={**os.environ, **env})
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not store.exists(f"releases/{_newest(store)}/data/scans/big.zarr"):
        time.sleep(0.01)  # until the new release is being written
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL

    assert store.read_bytes("catalog.json") == before  # the entry point never moved
    catalog = Catalog.open(store)
    assert catalog.release == first.release
    options = server.storage_options() if server else {}
    ds = xr.open_zarr(store.path(catalog.entry("climate/sst").data_url), storage_options=options or None)
    assert ds["sst"].shape == (6, 18, 36)
    unfinished = [r for r in list_releases(store) if r.catalog is None]
    assert unfinished, "the killed build had started a release"
    gc(store, keep=1)  # newer than the current release, so it may still be written: gc leaves it
    assert [r.id for r in list_releases(store)] == [first.release, unfinished[0].id]


# A build that dies at one step of its end (the durable flush, or the completeness check after it).
DIE_AT_SCRIPT = """
import os, signal, sys
from publisher.build import build
from publisher.config import load_pipeline
from publisher.stores.local import LocalStore
def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)
if sys.argv[2] == "flush":
    LocalStore.flush = die
else:
    sys.modules["publisher.build.publish"].missing_objects = die  # (the package's `publish` is the function)
build(load_pipeline(sys.argv[1]), workers=2)
"""


@pytest.mark.parametrize("step", ["flush", "check"])
def test_a_release_killed_in_its_final_sync_is_not_complete(demo_dir: Path, tmp_path: Path, step: str) -> None:
    """Killed in the durable flush before the switch (or in the check after it), a release is
    listed unfinished, and rollback refuses it: only a checked release gets its entry point."""
    tree = _tree(demo_dir, tmp_path / "tree")
    url = str(tmp_path / "site")
    first = _build(tree, url, {})
    (tree / "tables" / "more.csv").write_text("a,b\n1,2\n")
    config = {"sources": [{"path": "scans/*.nxs", "into": "scans"}, {"path": "tables"}, {"path": "climate"}], "output": {"store": url}}
    done = subprocess.run([sys.executable, "-c", DIE_AT_SCRIPT, str(write_pipeline(tree, config)), step], env=os.environ.copy())
    assert done.returncode == -signal.SIGKILL
    store = Store(url)
    releases = list_releases(store)
    assert [r.id for r in releases if r.catalog is not None] == [first.release]
    killed = [r for r in releases if r.id != first.release]
    assert len(killed) == 1 and killed[0].catalog is None and "complete" not in killed[0].state.replace("incomplete", "")
    assert Catalog.open(store).release == first.release
    with pytest.raises(NotFound, match="no complete release"):
        rollback(store, killed[0].id)


def test_a_release_with_only_its_private_entry_point_is_not_complete(demo_dir: Path, tmp_path: Path) -> None:
    """A build of a catalog with private nodes writes its release's private entry point, then the
    public one (what rollback switches to): killed between the two, the release is unfinished."""
    tree = _tree(demo_dir, tmp_path / "tree")
    url = str(tmp_path / "site")
    first = _build(tree, url, {})
    (tree / "tables" / "more.csv").write_text("a,b\n1,2\n")
    second = _build(tree, url, {})
    store = Store(url)
    copy = store.read_bytes(f"releases/{second.release}/catalog.json")
    store.write_bytes(f"private/releases/{second.release}/catalog.json", copy)  # as the kill left it
    store.delete_prefix(f"releases/{second.release}/catalog.json")
    by_id = {r.id: r for r in list_releases(store)}
    assert by_id[first.release].catalog is not None and by_id[second.release].catalog is None


def test_cli_releases_rollback_gc(demo_dir: Path, tmp_path: Path) -> None:
    tree = _tree(demo_dir, tmp_path / "tree")
    pipeline = write_pipeline(tree, {"sources": [{"path": "tables"}], "output": {"store": str(tmp_path / "site")}})
    runner = CliRunner()
    assert runner.invoke(main, ["build", "-c", str(pipeline)]).exit_code == 0
    second = runner.invoke(main, ["build", "-c", str(pipeline)])
    assert second.exit_code == 0 and "nothing changed" in second.output
    (tree / "tables" / "more.csv").write_text("a,b\n1,2\n")
    third = runner.invoke(main, ["build", "-c", str(pipeline)])
    assert "1 converted, 1 unchanged" in third.output
    listing = runner.invoke(main, ["releases", "-c", str(pipeline)])
    lines = listing.output.strip().splitlines()
    assert len(lines) == 2 and lines[1].startswith("*")
    first_id = lines[0].split()[0]
    assert runner.invoke(main, ["rollback", first_id, "-c", str(pipeline)]).exit_code == 0
    assert runner.invoke(main, ["ls", "-c", str(pipeline), "tables"]).output.split() == ["temperature_log"]
    bad = runner.invoke(main, ["rollback", "nope", "-c", str(pipeline)])
    assert bad.exit_code == 1 and "no complete release 'nope'" in bad.output
    assert runner.invoke(main, ["gc", "--keep", "0", "-c", str(pipeline)]).exit_code == 2  # click: out of range
    collected = runner.invoke(main, ["gc", "--keep", "1", "--wait", "5", "-c", str(pipeline)])
    assert collected.exit_code == 0 and "kept 2 releases" in collected.output  # (the current one, and the newer one)
    assert not (tmp_path / "site" / "private" / ".gc.lock").exists()  # released


def test_adding_one_file_to_a_thousand_converts_one(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    for i in range(1000):
        np.save(tree / f"frame_{i:04d}.npy", np.full((4, 4), i, dtype="u2"))
    pipeline = load_pipeline(write_pipeline(tmp_path, {"sources": [{"path": "tree"}], "output": {"store": str(tmp_path / "site")}}))
    first = build(pipeline, workers=2)
    assert first.converted == 1000
    np.save(tree / "frame_1000.npy", np.zeros((4, 4), dtype="u2"))
    second = build(pipeline, workers=2)
    assert (second.converted, second.reused) == (1, 1000)
    assert json.loads(Store(tmp_path / "site").read_bytes("catalog.json"))["node_count"] == 1003


def test_a_changed_exclude_converts_nothing_it_did_not_add(tmp_path: Path) -> None:
    """``exclude`` only selects files: excluding one of a source's files removes its node and
    converts nothing; excluding it no more converts that one. It used to convert every file of
    the source again (the pattern was part of the settings each item's record compares)."""
    tree = tmp_path / "tree"
    tree.mkdir()
    for i in range(5):
        np.save(tree / f"frame_{i}.npy", np.full((4, 4), i, dtype="u2"))
    config = {"sources": [{"path": "tree"}], "output": {"store": str(tmp_path / "site")}}
    assert build(load_pipeline(write_pipeline(tmp_path, config)), workers=2).converted == 5
    excluded = build(load_pipeline(write_pipeline(tmp_path, {**config, "sources": [{"path": "tree", "exclude": ["frame_3.npy"]}]})), workers=2)
    assert (excluded.converted, excluded.reused, excluded.published) == (0, 4, True)
    assert [e.path for e in Catalog.open(Store(tmp_path / "site")).entries("tree")] == [f"tree/frame_{i}" for i in (0, 1, 2, 4)]
    back = build(load_pipeline(write_pipeline(tmp_path, config)), workers=2)
    assert (back.converted, back.reused) == (1, 4)


def test_exclude_leaves_out_folders_and_crosses_them_with_double_stars(tmp_path: Path) -> None:
    """An exclude pattern that names a folder leaves out everything below it, and ``**`` crosses
    folders as in source paths. Only the files' own paths were matched, from the right, with
    Python 3.11's ``**`` a single ``*``: ``scratch/**`` left ``scratch/deep/b.csv`` published,
    ``scratch`` nothing, ``**/scratch/**`` kept ``scratch/a.csv``."""
    tree = tmp_path / "tree"
    for rel in ("keep.csv", "scratch/a.csv", "scratch/deep/b.csv", "scratch/deep/er/c.csv", "x/scratch/d.csv", "x/e.csv", "x/f.csv"):
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        (tree / rel).write_text("v\n1\n")
    published = {}
    for patterns in (["scratch/**"], ["scratch"], ["**/scratch/**"], ["e.csv"], ["x/scratch/*"]):
        config = {"sources": [{"path": "tree", "into": "", "exclude": patterns}], "output": {"store": str(tmp_path / "site")}}
        build(load_pipeline(write_pipeline(tmp_path, config)), workers=1)
        nodes = pd.read_parquet(tmp_path / "site" / json.loads((tmp_path / "site" / "catalog.json").read_text())["index"])
        published[patterns[0]] = sorted(p for p, family in zip(nodes["path"], nodes["family"], strict=True) if family == "table")
    assert published == {"scratch/**": ["keep", "x/e", "x/f"], "scratch": ["keep", "x/e", "x/f"], "**/scratch/**": ["keep", "x/e", "x/f"],
                         "e.csv": ["keep", "scratch/a", "scratch/deep/b", "scratch/deep/er/c", "x/f", "x/scratch/d"],
                         "x/scratch/*": ["keep", "scratch/a", "scratch/deep/b", "scratch/deep/er/c", "x/e", "x/f"]}


def test_a_source_of_only_hidden_or_excluded_folders_plans_nothing(tmp_path: Path) -> None:
    """As before the walk left such folders out: no "matches no file" error for the source (its
    files were found, then dropped), the other sources published."""
    from publisher.sources import iter_plan

    for rel in ("raw/scratch/a.csv", "raw/.snapshot/b.csv", "g/s1/.processed/c.csv", "data/d.csv"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("v\n1\n")
    sources = [{"path": "raw", "exclude": ["scratch"]}, {"path": "g/*/.processed/*.csv", "into": "g"}, {"path": "data"}]
    pipeline = load_pipeline(write_pipeline(tmp_path, {"sources": sources}))
    assert [item.node_path for item in iter_plan(pipeline)] == ["data/d"]


def test_the_walk_does_not_enter_hidden_or_excluded_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Hidden and excluded folders publish nothing, so the plan does not list them: a NetApp
    ``.snapshot`` holds the whole tree again per snapshot, an excluded ``scratch`` may hold
    millions of files. (Both were walked to the last file, which was then dropped.)"""
    from publisher import source_walk
    from publisher.sources import iter_plan

    tree = tmp_path / "tree"
    for rel in ("keep.csv", "x/f.csv", "scratch/a.csv", "scratch/deep/b.csv", ".snapshot/hourly.0/keep.csv", "x/tmp.old/c.csv"):
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        (tree / rel).write_text("v\n1\n")
    listed: list[str] = []
    scandir = os.scandir

    def spy(path: str) -> object:
        listed.append(os.path.relpath(path, tree))
        return scandir(path)

    monkeypatch.setattr(source_walk.os, "scandir", spy)
    pipeline = load_pipeline(write_pipeline(tmp_path, {"sources": [{"path": "tree", "into": "", "exclude": ["scratch", "*.old"]}]}))
    assert sorted(item.node_path for item in iter_plan(pipeline)) == ["keep", "x/f"]
    assert sorted(listed) == [".", ".", "x"]  # (the source folder opened once more, not read: can it be listed at all?)


def test_files_swapped_with_the_same_size_and_mtime_are_converted_again(tmp_path: Path) -> None:
    """Two frames of one size written in the same clock tick, their names then swapped: their
    sizes and mtimes are as recorded, but each is the other's content. The inode's change time
    (moved by the rename, and by nothing a user sets) tells; they were reused, each published
    under the other's name. A ``chmod`` moves it too: the content is hashed, nothing converted."""
    import zarr

    tree = tmp_path / "tree"
    tree.mkdir()
    for name, value in (("a", 1), ("b", 2), ("c", 3)):
        np.save(tree / f"{name}.npy", np.full((4, 4), value, dtype="u2"))
        os.utime(tree / f"{name}.npy", ns=(1_700_000_000_000_000_000, 1_700_000_000_000_000_000))
    pipeline = load_pipeline(write_pipeline(tmp_path, {"sources": [{"path": "tree", "into": ""}], "output": {"store": str(tmp_path / "site")}}))
    assert build(pipeline, workers=1).converted == 3
    os.rename(tree / "a.npy", tree / "t.npy")
    os.rename(tree / "b.npy", tree / "a.npy")
    os.rename(tree / "t.npy", tree / "b.npy")
    (tree / "c.npy").chmod(0o444)
    again = build(pipeline, workers=1)
    assert (again.converted, again.reused) == (2, 1)
    catalog = Catalog.open(Store(tmp_path / "site"))
    for key, value in (("a", 2), ("b", 1), ("c", 3)):
        url = catalog.entry(key).to_json()["data_url"]
        assert int(zarr.open_array(str(tmp_path / "site" / url), mode="r")[0, 0]) == value, key
    assert build(pipeline, workers=1).unchanged


@pytest.mark.parametrize("big", [False, True])
def test_a_renamed_or_copied_folder_reuses_its_items_where_rules_allow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, big: bool) -> None:
    """Renaming a folder converted everything below it again. A file at a new node path whose
    settings, name, size and content hash are a record's at another path is that record moved:
    its entries re-pathed, its data where it was written (kept by gc while the release is). Not
    where a rule or access tags would treat the new path otherwise, nor a changed file. (``big``:
    files hashed beside their conversion, looked for only with the record's mtime.)"""
    import zarr

    from publisher.build.plan import Planner
    from publisher.releases import gc

    if big:
        monkeypatch.setattr(Planner, "HASH_INLINE_BYTES", 0)

    tree = tmp_path / "tree"
    (tree / "run1").mkdir(parents=True)
    np.save(tree / "run1" / "frame.npy", np.arange(12, dtype="u2").reshape(3, 4))
    (tree / "run1" / "log.csv").write_text("t,v\n1,10\n2,20\n")
    config = {"sources": [{"path": "tree", "into": ""}], "output": {"store": str(tmp_path / "site")},
              "rules": [{"match": "special/**", "metadata": {"flagged": True}}]}
    pipeline = load_pipeline(write_pipeline(tmp_path, config))
    first = build(pipeline, workers=1)
    assert first.converted == 2
    (tree / "run1").rename(tree / "run2")
    shutil.copytree(tree / "run2", tree / "special")  # a rule matches here: converted
    shutil.copytree(tree / "run2", tree / "copy")
    (tree / "copy" / "log.csv").write_text("t,v\n1,10\n2,21\n")  # the same size, not the same bytes: converted
    second = build(pipeline, workers=1)
    assert (second.converted, second.reused) == (3, 3)
    store = Store(tmp_path / "site")
    catalog = Catalog.open(store)
    assert sorted(e.path for e in catalog.entries("run2")) == ["run2/frame", "run2/log"]
    frame = catalog.entry("run2/frame").to_json()
    assert frame["parent"] == "run2" and frame["source_file"] == "tree/run2/frame.npy" and frame["data_url"].startswith(f"releases/{first.release}/")
    assert catalog.entry("special/frame").to_json()["metadata"]["flagged"] is True
    assert catalog.entry("copy/frame").to_json()["data_url"] == frame["data_url"]  # copied: the same data, once
    assert not catalog.entry("copy/log").to_json()["data_url"].startswith(f"releases/{first.release}/")
    gc(store, keep=1)
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "site" / frame["data_url"]), mode="r")[:], np.arange(12).reshape(3, 4))
    assert build(pipeline, workers=1).unchanged


def test_a_renamed_folder_of_many_files_of_one_name_size_and_mtime_is_reused(tmp_path: Path) -> None:
    """40 runs each with an image.npy of one size and one mtime (as an archive unpacks them), the
    folder above renamed: the 16 records compared for a name, size and mtime were the same 16 for
    every file, and 24 were converted again. Records in a folder of the same name come first."""
    import zarr

    tree = tmp_path / "tree" / "beamtime"
    for i in range(40):
        (tree / f"run{i:03d}").mkdir(parents=True)
        np.save(tree / f"run{i:03d}" / "image.npy", np.full((8, 8), i, np.uint16))
        os.utime(tree / f"run{i:03d}" / "image.npy", (1_700_000_000, 1_700_000_000))
    pipeline = load_pipeline(write_pipeline(tmp_path, {"sources": [{"path": "tree", "into": ""}], "output": {"store": str(tmp_path / "site")}}))
    assert build(pipeline, workers=1).converted == 40
    tree.rename(tmp_path / "tree" / "beamtime-2024")
    again = build(pipeline, workers=1)
    assert (again.converted, again.reused) == (0, 40)
    catalog = Catalog.open(Store(tmp_path / "site"))
    for i in range(40):
        url = catalog.entry(f"beamtime-2024/run{i:03d}/image").to_json()["data_url"]
        assert int(zarr.open_array(str(tmp_path / "site" / url), mode="r")[0, 0]) == i


def test_a_moved_hdf5_file_that_refers_to_others_is_converted_again(tmp_path: Path) -> None:
    """A detector's master file (a virtual dataset over a frames file, an external link to it)
    publishes what the file beside it holds: moved or copied, it is converted again (its record
    says it did not read its file alone), while a file that refers to none is reused."""
    import h5py

    run = tmp_path / "tree" / "run1"
    _detector(run, "frames.h5")
    with h5py.File(run / "plain.h5", "w") as f:
        f["x"] = np.ones(3)
    pipeline = load_pipeline(write_pipeline(tmp_path, {"sources": [{"path": "tree", "into": ""}], "output": {"store": str(tmp_path / "site")}}))
    assert build(pipeline, workers=1).converted == 3
    run.rename(tmp_path / "tree" / "run2")
    with h5py.File(tmp_path / "tree" / "run2" / "frames.h5", "r+") as f:  # the frames beside it now differ
        f["data"][:] = np.arange(8, dtype="u2") * 100
    moved = build(pipeline, workers=1)
    assert (moved.converted, moved.reused) == (2, 1)  # frames.h5 (changed) and master.h5; plain.h5 reused
    catalog = Catalog.open(Store(tmp_path / "site"))
    import zarr

    vds = catalog.entry("run2/master/vds").to_json()["data_url"]
    assert zarr.open_array(str(tmp_path / "site" / vds), mode="r")[3] == 300


def _detector(folder: Path, linked: str) -> None:
    """A detector's files in ``folder``: frames.h5 (0..7), and master.h5 whose ``vds`` is a virtual
    dataset over the frames and whose ``ext`` or ``later`` is an external link to ``linked``."""
    import h5py

    folder.mkdir(parents=True)
    with h5py.File(folder / "frames.h5", "w") as f:
        f["data"] = np.arange(8, dtype="u2")
    with h5py.File(folder / "master.h5", "w") as f:
        layout = h5py.VirtualLayout(shape=(8,), dtype="u2")
        layout[:] = h5py.VirtualSource("frames.h5", "data", shape=(8,))
        f.create_virtual_dataset("vds", layout)
        f["ext" if linked == "frames.h5" else "later"] = h5py.ExternalLink(linked, "/data" if linked == "frames.h5" else "/x")


def test_a_file_is_converted_again_when_a_file_it_refers_to_changes(tmp_path: Path) -> None:
    """A detector's master file is a virtual dataset over its frames file: reprocessed frames left
    the master reused, publishing the old values, for its own file had not changed. The files an
    item referred to (virtual and external sources, external links: also one not there yet) are
    recorded by stat; one that changes, appears or goes has the item converted again."""
    import h5py
    import zarr

    tree = tmp_path / "tree"
    _detector(tree, "later.h5")
    config = {"sources": [{"path": "tree", "into": "", "exclude": ["frames.h5", "later.h5"]}], "output": {"store": str(tmp_path / "site")}}
    pipeline = load_pipeline(write_pipeline(tmp_path, config))

    def published() -> list[int]:
        url = Catalog.open(Store(tmp_path / "site")).entry("master/vds").to_json()["data_url"]
        return zarr.open_array(str(tmp_path / "site" / url), mode="r")[:3].tolist()

    assert build(pipeline, workers=1).converted == 1 and published() == [0, 1, 2]
    assert build(pipeline, workers=1).unchanged
    with h5py.File(tree / "frames.h5", "r+") as f:  # reprocessed
        f["data"][:] = np.arange(8, dtype="u2") * 10
    assert build(pipeline, workers=1).converted == 1 and published() == [0, 10, 20]
    assert build(pipeline, workers=1).unchanged
    with h5py.File(tree / "later.h5", "w") as f:  # the external link's file, there now
        f["x"] = np.ones(2)
    assert build(pipeline, workers=1).converted == 1
    assert sorted(e.path for e in Catalog.open(Store(tmp_path / "site")).entries("master")) == ["master/later", "master/vds"]
    assert build(pipeline, workers=1).unchanged


def test_a_multi_file_ome_tiff_is_converted_again_when_a_companion_arrives(tmp_path: Path) -> None:
    """An OME-TIFF whose OME-XML names a companion file that is not there yet publishes zeros for
    its planes; the companion arriving beside it has it converted again (it was reused)."""
    import tifffile
    import zarr

    def ome(own: str) -> str:
        data = "".join(f'<TiffData FirstZ="{z}" IFD="0" PlaneCount="1"><UUID FileName="{name}">urn:uuid:{uuid}</UUID></TiffData>'
                       for z, (name, uuid) in enumerate([("a.ome.tif", "0000000a"), ("b.ome.tif", "0000000b")]))
        return ('<?xml version="1.0" encoding="UTF-8"?><OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06" '
                f'UUID="urn:uuid:{own}"><Image ID="Image:0" Name="img"><Pixels ID="Pixels:0" DimensionOrder="XYZCT" Type="uint8" '
                f'SizeX="4" SizeY="3" SizeZ="2" SizeC="1" SizeT="1"><Channel ID="Channel:0:0" SamplesPerPixel="1"/>{data}</Pixels></Image></OME>')

    (tmp_path / "tree").mkdir()
    tifffile.imwrite(tmp_path / "tree" / "a.ome.tif", np.full((3, 4), 7, np.uint8), description=ome("0000000a"), metadata=None)
    config = {"sources": [{"path": "tree", "into": ""}], "output": {"store": str(tmp_path / "site")}}
    pipeline = load_pipeline(write_pipeline(tmp_path, config))

    def planes() -> list[int]:
        url = Catalog.open(Store(tmp_path / "site")).entry("a.ome").to_json()["data_url"]
        return zarr.open_array(str(tmp_path / "site" / url), mode="r")[:, 0, 0].tolist()

    build(pipeline, workers=1)
    assert planes() == [7, 0] and build(pipeline, workers=1).unchanged
    tifffile.imwrite(tmp_path / "tree" / "b.ome.tif", np.full((3, 4), 42, np.uint8), description=ome("0000000b"), metadata=None)
    again = build(pipeline, workers=1)
    assert again.converted == 2 and planes() == [7, 42]


def test_readers_say_when_a_file_refers_to_others(tmp_path: Path) -> None:
    """What a moved record may be taken for rests on its reader saying it read the file alone: an
    OME-TIFF (its companions, or zeros for a missing one) does not, nor an AnnData awkward group
    whose buffers are virtual datasets over another file (read by its own interpreter, not the
    walker's datasets), nor a plug-in subclassing a built-in reader (it may read more)."""
    import awkward as ak
    import h5py
    import tifffile

    from publisher.readers.hdf5 import HDF5Reader
    from publisher.readers.npy import NpyReader
    from publisher.readers.tiff import TiffReader

    def others(reader: Any, path: Path) -> bool:
        with reader.open(path, path.stem, reader.Options()) as root:
            assert root is not None
        return not reader.read_alone()

    tifffile.imwrite(tmp_path / "plain.tif", np.zeros((2, 4, 4), "u2"))
    tifffile.imwrite(tmp_path / "a.ome.tif", np.zeros((2, 4, 4), "u2"), ome=True)
    form, length, buffers = ak.to_buffers(ak.Array([[1, 2], [3]]))
    with h5py.File(tmp_path / "frames.h5", "w") as f:
        for name, buffer in buffers.items():
            f[name] = np.asarray(buffer)
    with h5py.File(tmp_path / "master.h5", "w") as f:
        group = f.create_group("ragged")
        group.attrs.update({"encoding-type": "awkward-array", "encoding-version": "0.1.0", "form": form.to_json(), "length": length})
        for name, buffer in buffers.items():
            layout = h5py.VirtualLayout(shape=np.asarray(buffer).shape, dtype=np.asarray(buffer).dtype)
            layout[:] = h5py.VirtualSource("frames.h5", name, shape=np.asarray(buffer).shape)
            group.create_virtual_dataset(name, layout)
    np.save(tmp_path / "x.npy", np.zeros(3))

    class Calibrated(NpyReader):  # a plug-in's: reads a calibration file beside its own
        name = "calibrated-npy"

    assert [others(TiffReader(), tmp_path / "plain.tif"), others(TiffReader(), tmp_path / "a.ome.tif")] == [False, True]
    assert [others(HDF5Reader(), tmp_path / "frames.h5"), others(HDF5Reader(), tmp_path / "master.h5")] == [False, True]
    assert [others(NpyReader(), tmp_path / "x.npy"), others(Calibrated(), tmp_path / "x.npy")] == [False, True]

    class Bare(NpyReader):  # a plug-in whose __init__ does not call the base's: read as ever, not trusted
        name = "bare-npy"

        def __init__(self) -> None:
            pass

    bare = Bare()
    assert others(bare, tmp_path / "x.npy") and list(bare.referred) == []


def test_a_moved_record_is_reused_only_where_its_path_changes_nothing(tmp_path: Path) -> None:
    """Access tags along the path (a folder's rule covers what is below it), rules matching a node
    inside the file, links (their targets are node paths) and failures keep a record from being
    taken at another path."""
    from publisher.auth.tags import AccessRules
    from publisher.build.moved import moved_to, portable
    from publisher.formats import FileRecord, ManifestItem, Problem

    rules = [{"match": "**", "access_tags": ["public"]}, {"match": "secret", "access_tags": ["staff"]},
             {"match": "*/x/entry/data", "chunks": [1, 8]}]
    pipeline = load_pipeline(write_pipeline(tmp_path, {"sources": [{"path": "."}], "rules": rules}))
    access = AccessRules(pipeline.rules, pipeline.access.default)
    entries = [{"path": "open/x", "parent": "open", "key": "x", "source_file": "d/open/x.h5", "notes": {}},
               {"path": "open/x/entry", "parent": "open/x", "key": "entry", "source_file": "d/open/x.h5", "notes": {}}]
    old = ManifestItem("open/x", "s", "", [FileRecord("d/open/x.h5", 10, 1, "h")], entries, ["releases/r/data/open/x.zarr"],
                       skipped=[Problem("open/x/entry/data", "d/open/x.h5: no reader", "d/open/x.h5")], alone=True)
    assert portable(pipeline, access, old, "open2/x") and not portable(pipeline, access, old, "secret/x")
    assert not portable(pipeline, access, replace(old, alone=False), "open2/x")  # it read other files (a virtual dataset's)
    assert not portable(pipeline, access, old, "open2/y")  # another key
    named = [entries[0], {**entries[1], "notes": {"skipped": {"v": {"file": f"{tmp_path}/d/open/x.h5"}}}}]
    assert not portable(pipeline, access, replace(old, entries=named), "open2/x")  # a note names the file where it was
    quoted = replace(old, files=[FileRecord('d/open "1"/x.h5', 10, 1, "h")],
                     entries=[entries[0], {**entries[1], "notes": {"v": {"file": 'd/open "1"/x.h5'}}}])
    assert not portable(pipeline, access, quoted, "open2/x")  # (found as JSON writes it)
    skipping = load_pipeline(write_pipeline(tmp_path, {"sources": [{"path": "."}], "rules": [*rules, {"match": "open/**/secret", "skip": True}]}))
    assert not portable(skipping, access, old, "open2/x")  # a node it may have dropped inside the file is in no record
    assert portable(skipping, access, moved_to(old, "other/x", "d/other/x.h5"), "other2/x")  # the rule cannot match there
    assert not portable(pipeline, access, old, "open/y")  # the chunks rule matches open/x/entry/data, not open/y/entry/data
    assert not portable(pipeline, access, replace(old, failures=[Problem("open/x", "bad", "d/open/x.h5")]), "open2/x")
    linked = [entries[0], {**entries[1], "notes": {"links": {"l": "open/x/entry"}}}]
    assert not portable(pipeline, access, replace(old, entries=linked), "open2/x")
    moved = moved_to(old, "open2/x", "d/open2/x.h5")
    assert [(e["path"], e["parent"], e["key"], e["source_file"]) for e in moved.entries] == [
        ("open2/x", "open2", "x", "d/open2/x.h5"), ("open2/x/entry", "open2/x", "entry", "d/open2/x.h5")]
    assert moved.skipped == [Problem("open2/x/entry/data", "d/open2/x.h5: no reader", "d/open2/x.h5")]
    assert moved.data_prefixes == old.data_prefixes and moved.files[0].path == "d/open2/x.h5" and moved.seq == -1


def test_items_with_plan_warnings_are_reused_where_they_moved(tmp_path: Path) -> None:
    """A plan's warnings (a name not matching name_pattern, a sidecar that cannot be read) named
    the files by their absolute paths in the item's fingerprint: moving the project converted them
    again, and a renamed folder's files were never found moved. Their reused warnings name the
    files where they are now (the sidecar's folder too)."""
    project = tmp_path / "project"
    run = project / "data" / "run1"
    run.mkdir(parents=True)
    np.save(run / "odd-1.npy", np.arange(3))  # no match: a warning
    np.save(run / "s_scan1.npy", np.arange(4))
    (run / "s_scan1.json").write_text("{broken")  # a sidecar that cannot be read: a warning
    config = {"sources": [{"path": "data", "name_pattern": "{sample}_scan{scan:d}.npy", "sidecars": ["{stem}.json"]}],
              "output": {"store": "site"}, "on_error": "skip"}
    first = build(load_pipeline(write_pipeline(project, config)))
    assert first.converted == 2 and len(first.warnings) == 2
    project.rename(tmp_path / "moved")  # every file keeps its inode, size and times
    project = tmp_path / "moved"
    pipeline = load_pipeline(project / "pipeline.yml")
    assert build(pipeline).unchanged
    (project / "data" / "run1").rename(project / "data" / "run2")
    again = build(pipeline)
    assert (again.converted, again.reused) == (0, 2) and again.published
    said = " ".join(f"{w.path} {w.source} {w.reason}" for w in again.warnings)
    assert "run1" not in said and "data/run2/odd-1.npy: file name does not match" in said and "data/run2/s_scan1.json: sidecar ignored" in said
    from publisher.build.moved import moved_to
    from publisher.formats import FileRecord, ManifestItem, Problem

    old = ManifestItem("data/x", "s", "", [FileRecord("data/x.h5", 10, 1, "h")], [], [], alone=True,
                       warnings=[Problem("data/x", "attribute 'metadata/units' of /entry/data/signal: too big", "data/x.h5")])
    assert moved_to(old, "renamed/x", "renamed/x.h5").warnings[0].reason == old.warnings[0].reason  # (a folder's name inside other words: kept)


def test_a_rollback_leaves_no_journal_of_the_release_it_leaves(tmp_path: Path) -> None:
    """A build whose store would not delete its journal after the switch leaves it in the release
    it published; rolled back from, that release is newer than the current one, and the next build
    resumed its records (the rolled-back conversion reused). The rollback deletes that journal."""
    from publisher.build.journal import journal_prefix

    (tmp_path / "src").mkdir()
    np.save(tmp_path / "src" / "a.npy", np.arange(3))
    pipeline = load_pipeline(write_pipeline(tmp_path, {"sources": [{"path": "src"}], "output": {"store": str(tmp_path / "site")}}))
    first = build(pipeline)
    np.save(tmp_path / "src" / "a.npy", np.arange(4))
    second = build(pipeline)
    store = Store(tmp_path / "site")
    record = json.loads(store.read_bytes(json.loads(store.read_bytes("catalog.json"))["manifest"]).split(b"\n", 1)[1].split(b"\n")[0])
    store.write_bytes(f"{journal_prefix(second.release, False)}/left.json", json.dumps([record]).encode())  # (as a failed removal leaves it)
    rollback(store, first.release)
    assert not store.exists(f"{journal_prefix(second.release, False)}/left.json")
    again = build(pipeline)
    assert again.resumed == 0 and again.converted == 1


def test_a_changed_sidecar_republishes_its_node_only(tmp_path: Path) -> None:
    """Sidecar metadata is part of an item's fingerprint: editing one sidecar (the data file
    untouched) publishes a release with that node's new metadata, reusing every other node."""
    from publisher.catalog import Catalog

    tree = tmp_path / "tree"
    tree.mkdir()
    for i in range(5):
        np.save(tree / f"f{i}.npy", np.full(3, i))
        (tree / f"f{i}.npy.json").write_text(json.dumps({"sample": f"s{i}"}))
    pipeline = load_pipeline(write_pipeline(tmp_path, {"sources": [{"path": "tree"}], "output": {"store": str(tmp_path / "site")}}))
    first = build(pipeline, workers=2)
    assert build(pipeline, workers=2).unchanged
    (tree / "f3.npy.json").write_text(json.dumps({"sample": "corrected"}))
    second = build(pipeline, workers=2)
    assert (second.converted, second.reused, second.unchanged) == (1, 4, False) and second.release != first.release
    catalog = Catalog.open(Store(tmp_path / "site"))
    assert catalog.entry("tree/f3").metadata["sample"] == "corrected" and catalog.entry("tree/f2").metadata["sample"] == "s2"
    (tree / "f3.npy.json").unlink()  # a removed sidecar is a change too
    third = build(pipeline, workers=2)
    assert third.converted == 1 and "sample" not in Catalog.open(Store(tmp_path / "site")).entry("tree/f3").metadata


def test_hash_taken_alongside_conversion_still_detects_a_touch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A surely-changed item is hashed while it converts (for big files); the recorded hash is the
    file's, so a later touch with identical content is still no change, and an edit is one."""
    from publisher.build.plan import Planner
    from publisher.fingerprint import content_hash

    monkeypatch.setattr(Planner, "HASH_INLINE_BYTES", 0)  # every file takes the concurrent path
    np.save(tmp_path / "a.npy", np.arange(50_000, dtype="f8"))
    pipeline = load_pipeline(write_pipeline(tmp_path, {"sources": [{"path": "a.npy"}], "output": {"store": str(tmp_path / "site")}}))
    first = build(pipeline, workers=2)
    store = Store(tmp_path / "site")
    manifest = json.loads(store.read_bytes(json.loads(store.read_bytes("catalog.json"))["manifest"]))
    assert manifest["items"][0]["files"][0]["hash"] == content_hash(tmp_path / "a.npy")
    os.utime(tmp_path / "a.npy", ns=(time.time_ns(), time.time_ns() + 10**9))
    touched = build(pipeline, workers=2)
    assert (touched.converted, touched.reused, touched.unchanged) == (0, 1, False) and touched.release != first.release
    manifest = json.loads(store.read_bytes(json.loads(store.read_bytes("catalog.json"))["manifest"]))
    assert manifest["items"][0]["files"][0]["mtime_ns"] == os.stat(tmp_path / "a.npy").st_mtime_ns  # the touch, recorded once
    assert Catalog.open(store).entry("a").data_url.startswith(f"releases/{first.release}/")  # the data as it was
    hashed: list[Path] = []
    monkeypatch.setattr("publisher.build.plan.file_record", lambda path, *args: hashed.append(path))  # (any hash would be a call)
    again = build(pipeline, workers=2)
    assert again.unchanged and again.release == touched.release and hashed == []  # not hashed again, build after build
    monkeypatch.undo()
    np.save(tmp_path / "a.npy", np.arange(50_000, dtype="f8") + 1)
    assert build(pipeline, workers=2).converted == 1


def test_local_store_size_writeback_and_numpy_state(tmp_path: Path) -> None:
    """size() walks a local folder itself (same answer as fsspec's find); the background writeback
    runs once enough bytes were written and flush() waits for it; a build leaves numpy's
    hugepage setting as it found it."""
    store = Store(tmp_path / "s")
    store._writeback.every = 100  # type: ignore[union-attr]
    for key, size in (("a/b/c.bin", 70), ("a/d.bin", 50), ("e.bin", 3)):
        store.write_bytes(key, b"x" * size)
    thread = store._writeback.thread  # type: ignore[union-attr]
    assert thread is not None  # 120 bytes passed the 100-byte mark
    store.flush()
    assert not thread.is_alive()
    assert store.size("a") == 120 == sum(i["size"] for i in store.fs.find(store.path("a"), detail=True).values())
    assert (store.size(""), store.size("a/d.bin"), store.size("missing")) == (123, 50, 0)

    setter = np._core.multiarray._set_madvise_hugepage
    before = setter(True)
    try:
        np.save(tmp_path / "x.npy", np.zeros(3))
        build(load_pipeline(write_pipeline(tmp_path, {"sources": [{"path": "x.npy"}], "output": {"store": str(tmp_path / "site")}})))
        assert setter(True) is True  # restored to what it was
    finally:
        setter(before)


def test_direct_writes_round_trip_and_fall_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Big objects written with O_DIRECT (padded to the block size, truncated back) read back
    byte for byte at every size; a file system that refuses O_DIRECT gets ordinary writes."""
    import errno
    import os

    from publisher import stores

    rng = np.random.default_rng(0)
    sizes = [0, 1, 4095, 4097, stores.DIRECT_BYTES - 1, stores.DIRECT_BYTES, stores.DIRECT_BYTES + 1, 5 * 2**20 + 3]
    store = Store(tmp_path / "direct")
    for n in sizes:
        data = rng.integers(0, 256, n, dtype="u1").tobytes()
        store.write_bytes(f"a/{n}", data)
        assert store.read_bytes(f"a/{n}") == data and os.path.getsize(store.path(f"a/{n}")) == n
    store.write_bytes("a/overwritten", b"x" * (3 * 2**20))
    store.write_bytes("a/overwritten", b"y" * (stores.DIRECT_BYTES + 5))
    assert store.read_bytes("a/overwritten") == b"y" * (stores.DIRECT_BYTES + 5)

    real_open = os.open

    def refuse_direct(path: str, flags: int, *args: object) -> int:
        if flags & getattr(os, "O_DIRECT", 0):
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_open(path, flags, *args)

    monkeypatch.setattr(stores.os, "open", refuse_direct)
    fallback = Store(tmp_path / "fallback")
    data = rng.integers(0, 256, 2 * stores.DIRECT_BYTES, dtype="u1").tobytes()
    fallback.write_bytes("b", data)
    assert fallback.read_bytes("b") == data and not fallback._direct.enabled


def test_published_files_name_no_path_of_the_build_host(tmp_path: Path) -> None:
    """Source files, the store and problems' messages appear relative to pipeline.yml's folder in
    everything a release publishes (index, manifest, build report), whatever went wrong."""
    import tifffile

    tree = tmp_path / "beamline-host-only"
    (tree / "scans").mkdir(parents=True)
    tifffile.imwrite(tree / "scans" / "a.tif", np.zeros((4, 4), "u2"))
    (tree / "scans" / "broken.tif").write_bytes(b"II*\x00 not really a tiff")
    (tree / "scans" / "b_7.tif").write_bytes((tree / "scans" / "a.tif").read_bytes())
    (tree / "t.csv").write_text("a,b\n1,2\n")
    import h5py

    with h5py.File(tree / "v.h5", "w") as f:  # a virtual dataset whose source is missing: noted by its file's (absolute) name
        layout = h5py.VirtualLayout(shape=(4,), dtype="i4")
        layout[:] = h5py.VirtualSource(".", "nowhere", shape=(4,))
        f.create_virtual_dataset("vds", layout)
    config = {"sources": [{"path": "scans", "name_pattern": "{name}_{n:d}.tif"}, {"path": "t.csv"}, {"path": "v.h5"}],
              "output": {"store": "site"}, "on_error": "skip"}
    pipeline = load_pipeline(write_pipeline(tree, config))
    report = build(pipeline)
    assert report.failures and report.warnings  # the broken TIFF, the names that do not match
    for _ in range(2):  # and a rebuild reuses every item by those paths
        site = tree / "site"
        leaks = [str(p.relative_to(site)) for p in site.rglob("*") if p.is_file() and str(tmp_path).encode() in p.read_bytes()]
        assert leaks == []
        store = Store(str(site))
        entry = Catalog.open(store).entry("scans/b_7")
        assert entry.source_file == "scans/b_7.tif"
        again = build(pipeline)
        # (the broken file's failure is recorded, relative too, and reported again unread)
        assert (again.converted, again.reused, [(f.path, f.source) for f in again.failures]) == (0, 5, [(f.path, f.source) for f in report.failures])


def test_records_of_an_older_release_are_made_relative(tmp_path: Path) -> None:
    """A release built before source paths were relative (absolute paths in its manifest's file
    records and its index): the next build that writes reuses those items and publishes them
    relative; none of them is converted again."""
    tree = tmp_path / "tree"
    tree.mkdir()
    for i in range(3):
        (tree / f"t{i}.csv").write_text(f"a,b\n{i},2\n")
    pipeline = load_pipeline(write_pipeline(tree, {"sources": [{"path": "*.csv"}], "output": {"store": "site"}}))
    first = build(pipeline)
    site = tree / "site"
    manifest = site / "releases" / first.release / "manifest.json"
    old = re.sub(r'"path":"(t\d\.csv)","size"', rf'"path":"{tree}/\1","size"', manifest.read_text())
    old = old.replace('"source_file":"t', f'"source_file":"{tree}/t')
    assert old.count(str(tree)) == 6
    manifest.write_text(old)  # as a build before 2026-12-05 wrote it
    (tree / "t3.csv").write_text("a,b\n3,2\n")
    second = build(pipeline)
    assert second.converted == 1 and second.reused == 3
    leaks = [str(p.relative_to(site)) for p in (site / "releases" / second.release).rglob("*") if p.is_file() and str(tree).encode() in p.read_bytes()]
    assert leaks == []
    third = build(pipeline)
    assert third.unchanged and third.reused == 4


def test_gc_keeps_reused_data_inside_a_superseded_prefix(tmp_path: Path) -> None:
    """A folder of sources named like another node's data (``a.zarr/c.csv`` beside ``a.h5``) puts
    its data inside that node's prefix. When ``a.h5`` changes, the next release reuses ``c`` from
    the old one; gc of the old one deletes its ``a.zarr`` data but not what the kept one reads."""
    import h5py
    import zarr

    src = tmp_path / "src"
    (src / "a.zarr").mkdir(parents=True)
    with h5py.File(src / "a.h5", "w") as f:
        f["v"] = np.arange(3)
    (src / "a.zarr" / "c.csv").write_text("x\n3\n")
    pipeline = load_pipeline(write_pipeline(tmp_path, {"sources": [{"path": "src"}], "output": {"store": str(tmp_path / "site")}}))
    assert build(pipeline).converted == 2
    store = Store(tmp_path / "site")
    old = Catalog.open(store)
    with h5py.File(src / "a.h5", "r+") as f:
        f["v"][0] = 99
    second = build(pipeline)
    assert (second.converted, second.reused) == (1, 1)
    table = Catalog.open(store).entry("src/a.zarr/c")
    assert table.data_url is not None and table.data_url.startswith(old.entry("src/a").data_url + "/")  # inside the old a.zarr
    result = gc(store, keep=1)
    assert any("data still in use kept" in d for d in result["deleted"]) and not result["problems"], result
    assert not store.exists(f"{old.entry('src/a').data_url}/zarr.json")  # the superseded array went
    assert pd.read_parquet(store.path(table.data_url))["x"].tolist() == [3]
    array = Catalog.open(store).entry("src/a/v")
    assert zarr.open_array(store.path(array.data_url), mode="r")[:].tolist() == [99, 1, 2]


def test_gc_deletes_a_retired_releases_data_once_no_kept_release_uses_it(target: tuple[str, dict[str, str], S3Server | None],
                                                                         tmp_path: Path) -> None:
    """R1 holds a, b, c; R2 changes a and reuses b and c; gc --keep 1 retires R1 and keeps its b
    and c. Then b is deleted and R3 built: R1's b is used by no kept release, but a retired
    release has no manifest left and every later gc passed it by, so it stayed for good. It goes;
    R1's c, still used, stays; the tables read as published."""
    base, env, server = target
    url = f"{base}/retired-{tmp_path.name}"
    store = _store(url, server)
    (tmp_path / "src").mkdir()
    for name, value in (("a", 1), ("b", 2), ("c", 3)):
        (tmp_path / "src" / f"{name}.csv").write_text(f"x\n{value}\n")
    config = {"sources": [{"path": "src", "into": ""}], "output": {"store": url}}

    def built() -> BuildReport:
        with environ(env):
            return build(load_pipeline(write_pipeline(tmp_path, config)), workers=1)

    first = built()
    (tmp_path / "src" / "a.csv").write_text("x\n10\n")
    built()
    with environ(env):
        gc(store, keep=1)
    b_old = f"releases/{first.release}/data/b.parquet"
    assert store.exists(b_old)  # reused by the kept release
    (tmp_path / "src" / "b.csv").unlink()
    built()
    with environ(env):
        result = gc(store, keep=1)
    assert not result["problems"] and not store.exists(b_old), result
    catalog = Catalog.open(store)
    assert store.exists(catalog.entry("c").data_url) and catalog.entry("c").data_url.startswith(f"releases/{first.release}/")
    with environ(env):
        again = gc(store, keep=1)
    assert again["deleted"] == [] and store.exists(catalog.entry("c").data_url), again
    assert [e.key for e in catalog.entries("")] == ["a", "c"]
