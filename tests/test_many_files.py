"""Trees of many files: a build's memory does not grow with the tree (its plan, node tree, index
rows and manifests are on disk, publisher/build/items.py, publisher/index/table.py,
publisher/build/manifests.py), the walk lists one folder at a time, and what it publishes is what
the in-memory path published: the index, the manifest (streamed a record per line), incremental
rebuilds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from publisher.build import build
from publisher.catalog import Catalog
from publisher.config import load_pipeline
from publisher.errors import ConfigError
from publisher.formats import Manifest
from publisher.sources import iter_plan
from publisher.stores import Store

from .conftest import write_pipeline

ROOT = Path(__file__).resolve().parents[1]


def _tree(root: Path, files: int, per_folder: int = 100, arrays: bool = False) -> None:
    """Small CSV files (tables); ``arrays``: every other one a small .npy array instead."""
    for i in range(files):
        folder = root / f"run{i // per_folder:04d}"
        folder.mkdir(parents=True, exist_ok=True)
        if arrays and i % 2:
            np.save(folder / f"frame_{i:06d}.npy", np.full((4, 4), i, dtype="<u2"))
        else:
            (folder / f"scan_{i:06d}.csv").write_text(f"x,y\n{i},{2 * i}\n")


_PEAK = """
import json, os, sys, tracemalloc
from pathlib import Path
import publisher.index.table as index_table
import publisher.index.write as index_write
import publisher.stores.local as local_store
from publisher.build import build
from publisher.config import load_pipeline
index_write.ROW_GROUP = 200  # bounded, and small, so a tree of 2,000 shows the rest
local_store.FOLDERS_KEPT = 500  # likewise
index_table.CACHE_ROWS = 200  # likewise (the rows a small view keeps parsed)
pipeline = load_pipeline(sys.argv[1])
build(load_pipeline(sys.argv[2]))  # imports and first-use caches, before measuring
os.register_at_fork(after_in_child=tracemalloc.stop)  # the worker processes untraced: this process is measured (9 -> 3.5 s)
tracemalloc.start()
report = build(pipeline)
print(json.dumps({"peak": tracemalloc.get_traced_memory()[1], "converted": report.converted}))
"""


def _peak(tmp_path: Path, files: int) -> int:
    src, warm = tmp_path / f"src{files}", tmp_path / f"warm{files}"
    _tree(src, files, arrays=True)
    _tree(warm, 20, arrays=True)
    for name in (f"p{files}", f"w{files}"):
        (tmp_path / name).mkdir()
    pipeline = write_pipeline(tmp_path / f"p{files}", {"sources": [{"path": str(src), "into": ""}], "output": {"store": str(tmp_path / f"store{files}")}})
    warm_pipeline = write_pipeline(tmp_path / f"w{files}", {"sources": [{"path": str(warm)}], "output": {"store": str(tmp_path / f"wstore{files}")}})
    env = {**os.environ, "SKYSHELF_JOURNAL_SECONDS": "0.2", "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", _PEAK, str(pipeline), str(warm_pipeline)], capture_output=True, text=True, env=env, check=True, timeout=600)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["converted"] == files
    return int(result["peak"])


def test_memory_does_not_grow_with_the_number_of_files(tmp_path: Path) -> None:
    """Python's peak allocation while building 2,000 files (tables and arrays) is within 1 KB a
    file of building 500 (holding every item, entry and record as objects cost ~12 KB a file)."""
    small, large = _peak(tmp_path, 500), _peak(tmp_path, 2000)
    assert large - small < 1500 * 1024, (small, large)


def test_the_walk_lists_one_folder_at_a_time(tmp_path: Path) -> None:
    """The plan yields the first folder's items before later folders are listed: a file added to
    a later folder meanwhile is planned (a walk that listed the tree first would miss it)."""
    _tree(tmp_path / "src", 30, per_folder=10)
    pipeline = load_pipeline(write_pipeline(tmp_path, {"sources": [{"path": str(tmp_path / "src"), "into": ""}]}))
    items = iter_plan(pipeline)
    first = next(items)
    assert first.node_path == "run0000/scan_000000"
    (tmp_path / "src" / "run0002" / "scan_late.csv").write_text("x\n1\n")
    rest = [i.node_path for i in items]
    assert "run0002/scan_late" in rest and len(rest) == 30


_STACK_PEAK = """
import json, sys, tracemalloc
from pathlib import Path
from publisher.config import load_pipeline
from publisher.sources import iter_plan
pipeline = load_pipeline(sys.argv[1])
# a pass first: imports, first-use caches, and the names pathlib interns (the interning table's
# growth, one allocation of 1 to 9 MB as it doubles, is the process's, not the plan's)
list(iter_plan(pipeline))
sys.intern(Path(sys.argv[2]).name)
items = iter_plan(pipeline)
first = next(items)
Path(sys.argv[2]).write_bytes(b"")  # a frame arriving in a folder not walked yet: planned
tracemalloc.start()
rest = list(items)
print(json.dumps({"peak": tracemalloc.get_traced_memory()[1], "first": [first.node_path, len(first.paths)],
                  "rest": len(rest), "last": len(rest[-1].paths)}))
"""


def test_stacks_are_planned_as_the_walk_leaves_their_folder(tmp_path: Path) -> None:
    """A source's stacks were held, every frame's path, until its walk ended: 770 B a frame, a
    source of a million frames 770 MB. A stack's frames are files of one folder: it is planned once
    the walk leaves it, and the plan holds one folder's frames at a time. Measured in a process of
    its own: in the suite's, the interning table of pathlib's names once doubled inside the
    measurement (+8 MB), depending on what other tests had interned."""
    for run in range(400):
        folder = tmp_path / "src" / f"run{run:04d}"
        folder.mkdir(parents=True)
        for z in range(10):
            (folder / f"f_{z:03d}.npy").write_bytes(b"")
    config = {"sources": [{"path": str(tmp_path / "src"), "into": "", "name_pattern": "f_{z:d}.npy", "stack": "z"}]}
    pipeline = write_pipeline(tmp_path, config)
    done = subprocess.run([sys.executable, "-c", _STACK_PEAK, str(pipeline), str(tmp_path / "src" / "run0399" / "f_010.npy")],
                          capture_output=True, text=True, check=True, cwd=ROOT)
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["first"] == ["run0000/f", 10] and found["rest"] == 399 and found["last"] == 11, found
    assert found["peak"] < 1_000_000 + 400 * 2_000, found  # (the items themselves, a list here; 4,000 frames held were ~3 MB more)


def test_a_clash_among_many_items_names_both(tmp_path: Path) -> None:
    """Two items at one node path, past the item table's first batch: the plan's error, naming both
    files, and nothing written."""
    _tree(tmp_path / "a", 1500, per_folder=1500)
    (tmp_path / "b" / "run0000").mkdir(parents=True)
    (tmp_path / "b" / "run0000" / "scan_001234.csv").write_text("x\n1\n")
    store = tmp_path / "store"
    pipeline = load_pipeline(write_pipeline(tmp_path, {"sources": [{"path": str(tmp_path / "a"), "into": ""}, {"path": str(tmp_path / "b"), "into": ""}],
                                                       "output": {"store": str(store)}}))
    with pytest.raises(ConfigError, match=r"yml:\d+: b/run0000/scan_001234.csv and a/run0000/scan_001234.csv would both be published at 'run0000/scan_001234'"):
        build(pipeline)  # (both relative to pipeline.yml's folder, as every message names files)
    assert not store.exists() or not any(store.rglob("*.json"))


def test_a_clash_with_an_unchanged_item_names_both(tmp_path: Path) -> None:
    """The previous release's items, unchanged and in order, are counted and not written to the
    plan's table; a later item at one of their node paths is still a clash, naming both files,
    and nothing is published."""
    _tree(tmp_path / "a", 1500, per_folder=1500)
    store = tmp_path / "store"
    config = {"sources": [{"path": str(tmp_path / "a"), "into": ""}], "output": {"store": str(store)}}
    build(load_pipeline(write_pipeline(tmp_path, config)))
    before = (store / "catalog.json").read_bytes()
    (tmp_path / "b" / "run0000").mkdir(parents=True)
    (tmp_path / "b" / "run0000" / "scan_001234.csv").write_text("x\n1\n")
    config["sources"].append({"path": str(tmp_path / "b"), "into": ""})
    with pytest.raises(ConfigError, match=r"yml:\d+: b/run0000/scan_001234.csv and a/run0000/scan_001234.csv would both be published at 'run0000/scan_001234'"):
        build(load_pipeline(write_pipeline(tmp_path, config)))
    assert (store / "catalog.json").read_bytes() == before


def test_rebuilds_reuse_and_replay_in_order(tmp_path: Path) -> None:
    """A no-change rebuild publishes nothing; a change after 300 unchanged items replays them into
    the index, which equals a build from scratch; the manifest is one record a line and still JSON."""
    src = tmp_path / "src"
    _tree(src, 600)
    config = {"sources": [{"path": str(src), "into": ""}], "output": {"store": str(tmp_path / "store")}}
    pipeline = load_pipeline(write_pipeline(tmp_path, config))
    first = build(pipeline)
    again = build(pipeline)
    assert again.unchanged and again.release == first.release and again.reused == 600 and again.nodes == first.nodes
    (src / "run0003" / "scan_000350.csv").write_text("x,y\n-1,-2\n")
    changed = build(pipeline)
    assert changed.converted == 1 and changed.reused == 599 and not changed.unchanged
    (tmp_path / "fresh").mkdir()
    fresh = build(load_pipeline(write_pipeline(tmp_path / "fresh", {**config, "output": {"store": str(tmp_path / "fresh" / "store")}})))
    ours, theirs = Catalog.open(Store(str(tmp_path / "store"))), Catalog.open(Store(str(tmp_path / "fresh" / "store")))
    assert [e.path for e in ours.entries("run0003")] == [e.path for e in theirs.entries("run0003")]
    assert ours.entry("run0003/scan_000350").metadata == theirs.entry("run0003/scan_000350").metadata
    store = Store(str(tmp_path / "store"))
    catalog = json.loads(store.read_bytes("catalog.json"))
    assert catalog["node_count"] == 1 + 6 + 600 == fresh.nodes["container"] + fresh.nodes["table"]
    text = store.read_bytes(catalog["manifest"]).decode()
    assert text.count("\n") == 601 and [i.node_path for i in Manifest.from_json(json.loads(text)).items][:2] == ["run0000/scan_000000", "run0000/scan_000001"]


def test_manifests_are_read_a_record_at_a_time_and_old_ones_whole() -> None:
    """A manifest written a record per line reads back line by line (node paths without parsing the
    records); one written by an earlier version, on one line, is parsed whole; both are JSON."""
    import io

    from publisher.build.manifests import copy_manifest, node_path, record_lines, write_manifest
    from publisher.formats import FileRecord, ManifestItem

    records = [ManifestItem(f"a/b{i}", "s", "", [FileRecord(f"/src/b{i}.csv", 10, 1)], [{"path": f"a/b{i}"}], [f"releases/r/data/a/b{i}"])
               for i in range(3)]
    records[1].node_path = 'a/"quoted"\\path'
    sink = io.BytesIO()
    write_manifest(sink, "r", "cs", (json.dumps(r.to_json(), separators=(",", ":")).encode() for r in records))
    assert Manifest.from_json(json.loads(sink.getvalue())).items == records
    old = json.dumps(Manifest("r", "cs", records).to_json()).encode()  # one line, spaces after separators
    for manifest, head in ((sink.getvalue(), {"release": "r", "catalog_settings": "cs"}), (old, None)):  # copied, then read a record a line
        copy = io.BytesIO()
        fields, count = copy_manifest(io.BytesIO(manifest), copy)
        found = list(record_lines(copy.getvalue().decode().splitlines(keepends=True)))
        assert (head is None or fields == head) and fields["release"] == "r" and count == len(records)
        assert [node_path(t) for t in found] == [r.node_path for r in records]
        assert [ManifestItem.from_json(json.loads(t)) for t in found] == records


def test_a_no_change_rebuild_reports_what_the_full_build_did(demo_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A no-change rebuild reports every node the build published (an HDF5 file's groups as well as
    the folders) and the items' warnings. It compares the previous records as text (stacks of
    frames too), parsing only those with problems to report; a manifest written before its head
    counted the nodes is compared record by record, to the same report."""
    from publisher.formats import ManifestItem

    from .test_build_demo import demo_config

    tables = tmp_path / "tables"
    tables.mkdir()
    for name in ("a", "b"):
        (tables / f"{name}.csv").write_text("x,y\n1,2\n")
    (tables / "b.json").write_text("{not json")  # a sidecar that cannot be read: a warning of item b
    config = demo_config(demo_dir)
    config["sources"].append({"path": str(tables), "into": "more"})
    config["output"] = {"store": str(tmp_path / "store")}
    pipeline = load_pipeline(write_pipeline(tmp_path, config))
    first = build(pipeline)
    assert first.nodes["container"] > 1 + 4 and [str(w) for w in first.warnings] and first.converted >= 6

    parsed: list[str] = []
    from_json = ManifestItem.from_json.__func__  # type: ignore[attr-defined]
    monkeypatch.setattr(ManifestItem, "from_json", classmethod(lambda cls, data: parsed.append(data["node_path"]) or from_json(cls, data)))
    again = build(pipeline)
    assert again.unchanged and again.release == first.release and again.reused == first.converted
    assert again.nodes == first.nodes and [str(w) for w in again.warnings] == [str(w) for w in first.warnings]
    assert parsed == ["more/b"]  # the one record with a warning; every other (stacks of frames too) compared as text

    store = Store(str(tmp_path / "store"))
    key = json.loads(store.read_bytes("catalog.json"))["manifest"]
    head, rest = store.read_bytes(key).split(b"\n", 1)
    older = json.loads(head.decode()[: -len('"items":[')].rstrip(",") + "}")
    assert older.pop("nodes") == {k: v for k, v in first.nodes.items() if v} | {"container": first.nodes["container"] - 6}  # (the root and 5 folders not items)
    store.write_bytes(key, (json.dumps(older, separators=(",", ":"))[:-1] + ',"items":[\n').encode() + rest)  # as an earlier version wrote it
    parsed.clear()
    old_head = build(pipeline)
    assert old_head.unchanged and old_head.nodes == first.nodes and len(parsed) == first.converted
    store.write_bytes(key, (json.dumps({**older, "nodes": {"array": "many"}})[:-1] + ',"items":[\n').encode() + rest)  # a head not as written
    assert build(pipeline).nodes == first.nodes


def test_a_no_change_rebuild_of_items_that_all_failed_counts_the_root(tmp_path: Path) -> None:
    """With on_error: skip and every file failing, the release holds the root alone; a no-change
    rebuild reports that root as the build did (it reported no node at all)."""
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.tif").write_bytes(b"II*\0garbage")
    (src / "sub" / "b.tif").write_bytes(b"II*\0junk")
    pipeline = load_pipeline(write_pipeline(tmp_path, {"sources": [{"path": str(src)}], "on_error": "skip",
                                                       "output": {"store": str(tmp_path / "store")}}))
    first = build(pipeline)
    assert first.published and len(first.failures) == 2 and {k: v for k, v in first.nodes.items() if v} == {"container": 1}
    again = build(pipeline)
    assert again.unchanged and len(again.failures) == 2 and again.nodes == first.nodes


def test_a_record_matches_as_text_only_when_its_fields_are_the_items(tmp_path: Path) -> None:
    """:func:`unchanged_text` finds where a record's index rows start when it begins as the item's
    unchanged record would (any hash, or none), and -1 for any field that differs, a file more or
    less, or a record written otherwise (which is then parsed, not taken as changed)."""
    from dataclasses import replace

    from publisher.build.plan import Planner
    from publisher.build.reuse import unchanged_text
    from publisher.formats import FileRecord, ManifestItem
    from publisher.index.table import dumps

    src = tmp_path / "src"
    _tree(src, 2, per_folder=2)
    pipeline = load_pipeline(write_pipeline(tmp_path, {"sources": [{"path": str(src), "into": "x"}], "output": {"store": str(tmp_path / "s")}}))
    planner = Planner(pipeline, None)
    item = next(iter_plan(pipeline))
    item.paths.append(item.paths[0].with_name("scan_000001.csv"))  # two files, as a stack has
    st = [p.stat() for p in item.paths]
    files = [FileRecord(pipeline.shown(p), s.st_size, s.st_mtime_ns, h, s.st_ctime_ns) for p, s, h in zip(item.paths, st, ("xxh3-128:0a1b", None), strict=True)]
    record = ManifestItem(item.node_path, planner.settings(item), planner.item_metadata(item), files, [{"path": item.node_path, "family": "table"}], [])
    text = dumps(record.to_json())
    at = unchanged_text(planner, item, text)
    assert at > 0 and text[at:].startswith('{"path":')
    changed = [replace(record, files=[replace(files[0], size=files[0].size + 1), files[1]]), replace(record, files=files[:1]),
               replace(record, files=[*files, files[1]]), replace(record, node_path="x/other"), replace(record, settings="0"),
               replace(record, metadata="1"), replace(record, files=[replace(files[0], mtime_ns=1), files[1]]),
               replace(record, files=[files[0], replace(files[1], ctime_ns=1)]), replace(record, files=[files[0], replace(files[1], ctime_ns=None)])]
    assert [unchanged_text(planner, item, dumps(r.to_json())) for r in changed] == [-1] * len(changed)
    assert unchanged_text(planner, item, json.dumps(record.to_json())) == -1  # spaces after separators: parsed instead
    assert planner.stat_matches(item, ManifestItem.from_json(json.loads(json.dumps(record.to_json()))))


def test_a_wide_folder_is_indexed_without_holding_its_children(monkeypatch: pytest.MonkeyPatch) -> None:
    """A folder of many children gets search columns; they are gathered as compact arrays while
    its rows stream from the node table to rows.jsonl: the index's peak allocation does not follow
    the children (every row held as a dictionary took ~3.8 KB a child; 1.85 GB for a flat
    folder of 200,000 files)."""
    import tracemalloc

    from publisher.index import write as index_write
    from publisher.index.table import NodeTable

    monkeypatch.setattr(index_write, "ROW_GROUP", 200)  # the Parquet form's batches, bounded apart

    def rows(n: int) -> Iterator[dict[str, Any]]:
        yield {"path": "c", "key": "c", "parent": "", "family": "container", "specs": [], "metadata": {}, "structure": {},
               "data_url": None, "source_file": None, "source_path": None, "access_tags": None, "notes": {}}
        for i in range(n):
            yield {"path": f"c/scan_{i:07d}", "key": f"scan_{i:07d}", "parent": "c", "family": "table", "specs": [],
                   "metadata": {"sample": "NaCl", "temperature": 37 + i % 5, "run": {"id": i // 100}}, "structure": {"npartitions": 1},
                   "data_url": f"data/c/scan_{i:07d}", "source_file": f"/data/scan_{i:07d}.csv", "source_path": None, "access_tags": None, "notes": {}}

    peaks = {}
    for n in (100, 2000, 8000):  # (the first: imports and first-use caches)
        table = NodeTable.of(rows(n))
        with tempfile.TemporaryDirectory() as folder:
            tracemalloc.start()
            try:
                index_write.write_index(Store(folder), "index", table.view(depth_first=False), min_children=1000)
                peaks[n] = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
            searched = Path(folder, "index", "search")
            assert [json.loads((f / "columns.json").read_text())["count"] for f in searched.iterdir()] == [n] if n >= 1000 else not searched.exists()
        table.close()
    assert peaks[8000] - peaks[2000] < 6000 * 1000, peaks


def test_a_small_view_writes_the_index_a_big_one_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The index written from a view that keeps its parsed rows (a small catalog) and from one read
    in pieces is the same, byte for byte: node shards and child pages joined from the rows' own
    JSON text are what dumps() writes (non-ASCII keys and values, containers' counts filled in)."""
    import publisher.index.table as index_table
    from publisher.index.table import NodeTable
    from publisher.index.write import write_index

    rows = [{"path": "", "key": "", "parent": None, "family": "container", "structure": {"count": 0}, "metadata": {"é": "ü\u2028"}}]
    for folder in ("a", "b/ç"):
        parent = ""
        for part in folder.split("/"):
            path = f"{parent}/{part}".lstrip("/")
            rows.append({"path": path, "key": part, "parent": parent, "family": "container", "structure": {"count": 0}, "metadata": {}})
            parent = path
        rows += [{"path": f"{parent}/x{i}", "key": f"x{i}", "parent": parent, "family": "array", "metadata": {"v": 0.1 * i, "s": "☃"},
                  "structure": {"shape": [i]}, "data_url": f"releases/r/data/{parent}/x{i}.zarr"} for i in range(7)]

    blank = {"specs": [], "data_url": None, "source_file": None, "source_path": None, "access_tags": None, "notes": {}}

    def written(cache_rows: int) -> dict[str, bytes]:
        monkeypatch.setattr(index_table, "CACHE_ROWS", cache_rows)
        table = NodeTable()
        for row in rows:
            table.add({**blank, **row}, folder=row["family"] == "container")
        out = tmp_path / f"cache{cache_rows}"
        view = table.view(False, lambda row, folder, n, by_tags: {**row, "structure": {"count": n}})
        assert (view._cache is not None) == bool(cache_rows)
        write_index(Store(str(out)), "index", view, min_children=5)
        table.close()
        return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}

    kept, pieces = written(1000), written(0)
    assert kept == pieces and any(k.startswith("index/search/") for k in kept) and any(k.startswith("index/children/") for k in kept)
    shards = [json.loads(v) for k, v in kept.items() if k.startswith("index/nodes/")]
    (folder,) = [shard["b/ç"] for shard in shards if "b/ç" in shard]
    assert folder["structure"] == {"count": 7} and folder["metadata"] == {} and sum(map(len, shards)) == len(rows)


LIMITED = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # (else the kernel kills the process at the limit)
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[1]), int(sys.argv[1])))
from publisher.cli import main
main(["build", "-c", sys.argv[2]])
"""


@pytest.mark.parametrize("limit", [100_000, 400_000], ids=["sqlite", "file"])
def test_a_build_that_cannot_write_its_files_says_so(tmp_path: Path, limit: int) -> None:
    """A build whose temporary files cannot grow (a file size limit, as batch systems set; a
    full TMPDIR): one line naming the folder, the reason and what to do, exit 1, nothing
    published, where it was a traceback from SQLite or from the manifest's spill file."""
    src = tmp_path / "src"
    src.mkdir()
    for i in range(3000):
        (src / f"t{i}.csv").write_text(f"a,b\n{i},2\n")
    config = write_pipeline(tmp_path, {"sources": [{"path": "src"}], "output": {"store": str(tmp_path / "site")}})
    done = subprocess.run([sys.executable, "-c", LIMITED, str(limit), str(config)], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    out = done.stdout + done.stderr
    assert done.returncode == 1 and "Traceback" not in out, out[-3000:]
    assert "error: a file size limit met in the build's temporary folder" in out and f"(files of at most {limit} bytes: ulimit -f)" in out, out
    assert not (tmp_path / "site" / "catalog.json").exists()


def test_a_full_sqlite_file_is_said_as_no_room(tmp_path: Path) -> None:
    """SQLite's own "database or disk is full" (here its page limit: a full disk says the same)
    names the temporary folder."""
    import errno
    import sqlite3

    from publisher.scratch import out_of_room

    db = sqlite3.connect(tmp_path / "x.sqlite")
    db.execute("CREATE TABLE t(x BLOB)")
    db.execute("PRAGMA max_page_count=4")
    with pytest.raises(sqlite3.OperationalError) as full:
        for _ in range(100):
            db.execute("INSERT INTO t VALUES (randomblob(4096))")
    error = out_of_room(full.value, str(tmp_path / "site"))
    assert error is not None and str(error).startswith("no room left in the build's temporary folder") and "point TMPDIR at a disk" in str(error)
    assert out_of_room(sqlite3.OperationalError("no such table: t"), None) is None
    quota = out_of_room(OSError(errno.EDQUOT, "Disk quota exceeded"), str(tmp_path))  # both disks with room: a quota, on either
    assert quota is not None and "temporary folder" in str(quota) and f"or the store {tmp_path}" in str(quota) and "(a quota?)" in str(quota)
