"""Build safety: gc racing a build, a release checked whole before the switch, symlinks in
source trees, and pipeline files that would expand without bound."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from publisher.build import build
from publisher.catalog import Catalog
from publisher.cli import main
from publisher.config import load_pipeline
from publisher.errors import StoreError
from publisher.releases import BUILDING, gc, list_releases
from publisher.stores import Store

from .conftest import run_build, write_pipeline

# -- gc and builds ------------------------------------------------------------------------------

GC_LOOP = """
import pathlib, sys
from publisher.releases import gc
from publisher.stores import Store
store, stop = Store(sys.argv[1]), pathlib.Path(sys.argv[2])
runs = 0
while not stop.exists() or runs == 0:
    gc(store, keep=1)
    runs += 1
print(runs)
"""


def _arrays(folder: Path, count: int, offset: float) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        np.save(folder / f"a{i:04d}.npy", np.arange(64, dtype="f8") + i + offset)


def test_gc_racing_a_build_deletes_nothing_it_publishes(tmp_path: Path) -> None:
    """A build of many small arrays in one process, gc over and over in another: the build
    publishes, gc never crashes, and every node of the published catalog answers (tiled client)."""
    from tiled.client import from_uri

    from handlers.local import LocalServer

    _arrays(tmp_path / "data", 200, 0)
    config = {"sources": [{"path": "data"}], "output": {"store": str(tmp_path / "site")}}
    pipeline = write_pipeline(tmp_path, config)
    first = run_build(tmp_path, config)  # a current release: the racing build is newer than it
    _arrays(tmp_path / "data", 200, 0.5)  # every item changes: the new release is written in full
    store = Store(tmp_path / "site")
    stop = tmp_path / "stop"
    building = subprocess.Popen([sys.executable, "-m", "publisher.cli", "build", "-c", str(pipeline), "--workers", "2"],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    while len(store.listdir("releases")) < 2 and building.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)  # until the new release is being written
    collecting = subprocess.Popen([sys.executable, "-c", GC_LOOP, store.url, str(stop)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    built, _ = building.communicate(timeout=300)
    stop.touch()
    runs, errors = collecting.communicate(timeout=300)
    assert collecting.returncode == 0, errors
    assert int(runs) >= 1 and "Traceback" not in errors
    assert building.returncode == 0, built

    catalog = Catalog.open(store)
    assert catalog.release != first.report.release
    server = LocalServer(store.url, "127.0.0.1", 0).start()
    try:
        client = from_uri(f"{server.url}/api/v1")["data"]
        assert len(client) == 200
        for i in range(200):
            np.testing.assert_array_equal(client[f"a{i:04d}"].read(), np.arange(64, dtype="f8") + i + 0.5)
    finally:
        server.stop()
    gc(store, keep=1)  # and once the build is done, the old release goes
    assert [r.id for r in list_releases(store)] == [catalog.release]


def test_objects_deleted_before_the_switch_fail_the_build(tmp_path: Path) -> None:
    """Objects of the release in progress vanish after they were written: the build refuses to
    switch, says what is missing, and the previous release stays current."""
    _arrays(tmp_path / "data", 10, 0)
    config = {"sources": [{"path": "data"}], "output": {"store": str(tmp_path / "site")}}
    first = run_build(tmp_path, config)
    store = first.store
    before = store.read_bytes("catalog.json")
    _arrays(tmp_path / "data", 10, 1)
    started: dict[str, Any] = {}

    def progress(event: str, info: dict[str, Any]) -> None:
        if event == "start":
            started["release"] = info["release"]
        if event == "done" and info["path"] == "data/a0009":  # the last item: all data is written
            for name in ("a0002", "a0007"):
                store.delete_prefix(f"releases/{started['release']}/data/data/{name}.zarr")

    with pytest.raises(StoreError, match=r"release \S+ is incomplete, so it was not published: objects it references are missing .*data/a0002\.zarr/zarr\.json") as caught:
        build(load_pipeline(tmp_path / "pipeline.yml"), progress=progress, workers=2)
    assert f"catalog.json still points at {first.report.release}" in str(caught.value)
    assert store.read_bytes("catalog.json") == before
    assert [r.id for r in list_releases(store)] == [first.report.release]  # the broken release was removed


def test_missing_chunks_are_found_too(tmp_path: Path) -> None:
    """A chunk deleted from an array (its metadata still there) also stops the switch."""
    folder = tmp_path / "data"
    folder.mkdir()
    np.save(folder / "big.npy", np.arange(4 * 2**20 // 8 * 3, dtype="f8"))  # 12 MiB: several chunks at 4 MiB
    config = {"sources": [{"path": "data"}], "output": {"store": str(tmp_path / "site"), "chunk_target_bytes": "4MiB"}}
    pipeline = load_pipeline(write_pipeline(tmp_path, config))
    store = Store(tmp_path / "site")
    started: dict[str, Any] = {}

    def progress(event: str, info: dict[str, Any]) -> None:
        if event == "start":
            started["release"] = info["release"]
        if event == "done":
            store.delete_prefix(f"releases/{started['release']}/data/data/big.zarr/c/1")

    with pytest.raises(StoreError, match=r"data/big\.zarr: 1 of \d+ chunks"):
        build(pipeline, progress=progress, workers=2)
    assert not store.exists("catalog.json")


def _release_with_marker(store: Store, release: str, heartbeat: float, base: str | None = None) -> None:
    store.write_bytes(f"releases/{release}/data/x.zarr/zarr.json", b"{}")
    store.write_bytes(f"releases/{release}/{BUILDING}", json.dumps({"started": "then", "heartbeat": heartbeat, "base": base}).encode())


def test_gc_keeps_releases_in_progress_and_newer_ones(tmp_path: Path) -> None:
    for n in range(3):
        _arrays(tmp_path / "data", 2, n)
        published = run_build(tmp_path, {"sources": [{"path": "data"}]})
    store = published.store
    first, second, current = [r.id for r in list_releases(store)]
    # a live build that started before the current release and reuses the first release's data,
    # an abandoned one, and a build newer than the current release whose marker is stale
    live, abandoned, newer = "20000101T000000.000000Z-aaaaaa", "20000101T000000.000001Z-bbbbbb", "29990101T000000.000000Z-cccccc"
    _release_with_marker(store, live, time.time(), base=first)
    _release_with_marker(store, abandoned, time.time() - 7200)
    _release_with_marker(store, newer, time.time() - 7200)
    states = {r.id: r.state for r in list_releases(store)}
    assert states[live].startswith("in progress") and states[abandoned] == "incomplete (never published)"

    result = gc(store, keep=1)
    assert result["kept"] == sorted([live, first, current, newer]) and result["problems"] == []
    assert sorted(r.id for r in list_releases(store)) == sorted([live, first, current, newer])
    assert f"releases/{second}" in result["deleted"] and f"releases/{abandoned}" in result["deleted"]

    store.delete_prefix(f"releases/{live}/{BUILDING}")  # that build ended (without publishing)
    gc(store, keep=1)
    assert sorted(r.id for r in list_releases(store)) == sorted([current, newer])
    cli = CliRunner().invoke(main, ["releases", "--store", store.url])
    assert f"  {newer}  incomplete (never published)" in cli.output


def test_gc_survives_objects_vanishing_under_it(tmp_path: Path) -> None:
    """Two collectors at once: each deletes what the other already deleted, neither crashes."""
    for n in range(6):
        _arrays(tmp_path / "data", 30, n)
        published = run_build(tmp_path, {"sources": [{"path": "data"}]})
    store = published.store
    script = "import sys\nfrom publisher.releases import gc\nfrom publisher.stores import Store\nprint(gc(Store(sys.argv[1]), keep=1)['problems'])"
    runs = [subprocess.Popen([sys.executable, "-c", script, store.url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    for run in runs:
        out, err = run.communicate(timeout=120)
        assert run.returncode == 0, err
    assert [r.id for r in list_releases(store)] == [published.report.release]
    assert Catalog.open(store).node("data/a0000")["family"] == "array"
