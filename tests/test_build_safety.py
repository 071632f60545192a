"""Build safety: gc racing a build, a release checked whole before the switch, symlinks in
source trees, and pipeline files that would expand without bound."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
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
from .servers import S3Server, store_target
from .test_s3 import environ

# -- gc and builds ------------------------------------------------------------------------------

GC_LOOP = """
import pathlib, sys, time
from publisher.releases import gc
from publisher.stores import Store
store, stop = Store(sys.argv[1]), pathlib.Path(sys.argv[2])
while len(store.listdir("releases")) < 2 and not stop.exists():
    time.sleep(0.001)  # until the new release is being written
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
    collecting = subprocess.Popen([sys.executable, "-c", GC_LOOP, store.url, str(stop)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    building = subprocess.Popen([sys.executable, "-m", "publisher.cli", "build", "-c", str(pipeline), "--workers", "2"],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
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


@pytest.fixture(scope="module", params=["local", "moto"])
def target(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str], S3Server | None]]:
    with store_target(request.param, tmp_path_factory, "safety") as found:
        yield found


def test_gc_while_readers_fetch_kept_releases_deletes_nothing_they_read(tmp_path: Path) -> None:
    """Readers fetch every object of the current release and of a kept older one (a pinned
    reader), over and over, while gc deletes the releases before them: no read ever misses, and
    gc did delete. Four releases, each reusing most data of the one before (so kept releases read
    objects that older releases wrote)."""
    import threading

    from publisher.releases import _manifest

    store_url = str(tmp_path / "site")
    ids = []
    for n in range(4):
        _arrays(tmp_path / "src", 40, 0.0)
        np.save(tmp_path / "src" / f"new{n}.npy", np.arange(8) * n)  # each build adds one array
        run_build(tmp_path, {"sources": [{"path": "src", "into": ""}], "output": {"store": store_url}})
        ids.append(json.loads((tmp_path / "site" / "catalog.json").read_text())["release"])
    store = Store(store_url)

    def objects_of(release: str) -> list[str]:
        manifest = _manifest(store, next(r for r in list_releases(store) if r.id == release))
        assert manifest is not None
        keys = [str(p.relative_to(tmp_path / "site")) for prefix in sorted(manifest.data_prefixes())
                for p in (tmp_path / "site" / prefix).rglob("*") if p.is_file()]
        return keys + [f"releases/{release}/catalog.json"]

    wanted = objects_of(ids[-1]) + objects_of(ids[-2])  # keep=2: the current release and the one before
    assert any(not k.startswith(f"releases/{ids[-1]}/") for k in objects_of(ids[-1]))  # the current one reads older data
    misses: list[str] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            for key in wanted:
                try:
                    store.read_bytes(key)
                except Exception as exc:  # noqa: BLE001 (any failure is what the test looks for)
                    misses.append(f"{key}: {exc}")

    readers = [threading.Thread(target=read) for _ in range(3)]
    for t in readers:
        t.start()
    try:
        result = gc(store, keep=2)
    finally:
        stop.set()
        for t in readers:
            t.join()
    assert result["deleted"] and not result["problems"], result
    assert not misses, misses[:5]
    assert all(store.exists(k) for k in wanted)


@pytest.mark.parametrize("processes", [0, 2], ids=["threads", "processes"])
def test_objects_deleted_before_the_switch_fail_the_build(target: tuple[str, dict[str, str], S3Server | None], tmp_path: Path, processes: int) -> None:
    """Objects of the release in progress vanish after they were written: the build refuses to
    switch, says what is missing, and the previous release stays current. On worker processes one
    of them lists the data for the check (while the build's process writes the index)."""
    base, env, server = target
    url = f"{base}/deleted-{tmp_path.name}"
    _arrays(tmp_path / "data", 10, 0)
    pipeline = write_pipeline(tmp_path, {"sources": [{"path": "data"}], "output": {"store": url}, "build": {"processes": processes}})
    store = Store(url, **(server.storage_options() if server else {}))
    with environ(env):
        first = build(load_pipeline(pipeline), workers=2)
    before = store.read_bytes("catalog.json")
    _arrays(tmp_path / "data", 10, 1)
    started: dict[str, Any] = {}

    def progress(event: str, info: dict[str, Any]) -> None:
        if event == "start":
            started["release"] = info["release"]
        if event == "done" and info["path"] == "data/a0009":  # the last item: all data is written
            for name in ("a0002", "a0007"):
                store.delete_prefix(f"releases/{started['release']}/data/data/{name}.zarr")

    with environ(env), pytest.raises(StoreError, match=r"release \S+ is incomplete, so it was not published: objects it references are missing .*data/a0002\.zarr/zarr\.json") as caught:
        build(load_pipeline(pipeline), progress=progress, workers=2)
    assert f"catalog.json still points at {first.release}" in str(caught.value)
    assert store.read_bytes("catalog.json") == before
    assert [r.id for r in list_releases(store)] == [first.release]  # the broken release was removed


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


def _release_with_marker(store: Store, release: str, heartbeat: float, base: str | None = None, stored: float | None = None) -> None:
    """A release in progress whose build's marker says ``heartbeat`` and was last written to the
    store at ``stored`` (by the store's clock; by default the same time: a build no longer beating)."""
    store.write_bytes(f"releases/{release}/data/x.zarr/zarr.json", b"{}")
    store.write_bytes(f"releases/{release}/{BUILDING}", json.dumps({"started": "then", "heartbeat": heartbeat, "base": base}).encode())
    when = heartbeat if stored is None else stored
    os.utime(store.path(f"releases/{release}/{BUILDING}"), (when, when))


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


def test_gc_survives_objects_vanishing_under_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Part of a prefix deleted under a collector by something else (a bucket's lifecycle rule, an
    operator) counts as deleted, never a crash; collectors started together take turns (the gc
    lock: the first deletes, the others, waiting, find nothing left) and none fails."""
    for n in range(6):
        _arrays(tmp_path / "data", 30, n)
        published = run_build(tmp_path, {"sources": [{"path": "data"}]})
    store = published.store
    real, vanished = shutil.rmtree, []

    def vanishing(path: Any, *args: Any, **kwargs: Any) -> None:
        if not vanished:  # the first prefix: half of its files go under the collector, which then finds them missing
            files = sorted(p for p in Path(path).rglob("*") if p.is_file())
            for gone in files[: len(files) // 2]:
                gone.unlink()
            vanished.append(path)
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", str(files[0]))
        real(path, *args, **kwargs)

    monkeypatch.setattr(shutil, "rmtree", vanishing)
    result = gc(store, keep=3)
    monkeypatch.undo()
    assert vanished and result["problems"] == []
    assert not Path(vanished[0]).exists()  # deleted all the same, and counted
    assert len([r for r in list_releases(store) if r.catalog is not None]) == 3

    script = "import sys\nfrom publisher.releases import gc\nfrom publisher.stores import Store\nprint(gc(Store(sys.argv[1]), keep=1, wait=60)['problems'])"
    runs = [subprocess.Popen([sys.executable, "-c", script, store.url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    for run in runs:
        out, err = run.communicate(timeout=120)
        assert run.returncode == 0 and out.strip() == "[]", err
    assert [r.id for r in list_releases(store)] == [published.report.release]
    assert Catalog.open(store).entry("data/a0000").family == "array"


# -- YAML that expands without bound ------------------------------------------------------------


def _alias_bomb(levels: int, indent: str) -> str:
    """The "billion laughs": each level lists the previous one nine times (9**levels values)."""
    names = "abcdefghijkl"
    lines = [f'{indent}{names[0]}: &{names[0]} [' + ", ".join(['"lol"'] * 9) + "]"]
    lines += [f"{indent}{names[i]}: &{names[i]} [" + ", ".join([f"*{names[i - 1]}"] * 9) + "]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def test_a_pipeline_alias_bomb_is_refused_with_file_and_line(tmp_path: Path) -> None:
    """Nine levels (387 million values): refused at once, naming the line where the aliases pass
    the bound. Unbounded, six levels took 28 s; nine would take days."""
    _arrays(tmp_path / "data", 1, 0)
    path = tmp_path / "pipeline.yml"
    path.write_text("metadata:\n" + _alias_bomb(9, "  ") + "sources:\n  - path: data\n")
    run = subprocess.run([sys.executable, "-m", "publisher.cli", "validate", "-c", str(path)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert f"error: {path}:6: aliases expand to more than 10,000 values (an alias bomb?); refused" in run.stderr  # line 6: e, 9 x d

    path.write_text("metadata: &m\n  name: x\n  again: *m\nsources:\n  - path: data\n")
    with pytest.raises(Exception, match=r"pipeline.yml:3: an alias refers to a node that contains it"):
        load_pipeline(path)

    path.write_text("sources:\n  - path: data\nmetadata:\n  notes: '" + "x" * 2**20 + "'\n")
    with pytest.raises(Exception, match=r"pipeline.yml: the pipeline file is larger than 1 MiB"):
        load_pipeline(path)


def test_modest_anchors_aliases_and_merge_keys_still_work(tmp_path: Path) -> None:
    _arrays(tmp_path / "data", 1, 0)
    path = tmp_path / "pipeline.yml"
    path.write_text("metadata: &common {beamline: 28-ID, energy: 3.5}\n"
                    "rules:\n  - &zstd {match: 'a/**', codec: 'zstd:5'}\n  - *zstd\n"
                    "sources:\n  - path: data\n    metadata: *common\n"
                    "  - path: data\n    into: again\n    metadata: {<<: *common, energy: 7}\n")
    pipeline = load_pipeline(path)
    assert [s.metadata for s in pipeline.sources] == [{"beamline": "28-ID", "energy": 3.5}, {"beamline": "28-ID", "energy": 7}]
    assert [r.codec.level for r in pipeline.rules] == [5, 5]  # type: ignore[union-attr]
    assert pipeline.line_of("sources", 1, "metadata") == f"{path}:10"


def test_a_sidecar_alias_bomb_is_ignored_with_a_warning(tmp_path: Path) -> None:
    """Sidecars are YAML too: a bomb there is refused and the file is published without it."""
    _arrays(tmp_path / "data", 1, 0)
    (tmp_path / "data" / "a0000.yaml").write_text(_alias_bomb(6, ""))
    published = run_build(tmp_path, {"sources": [{"path": "data"}]})
    warning = published.problems("warnings")["data/a0000"]
    assert "a0000.yaml: sidecar ignored: line 5: aliases expand to more than 10,000 values" in warning
    assert published.node("data/a0000")["metadata"] == {}


def test_sidecars_are_metadata_as_json_holds_it_and_bounded(tmp_path: Path) -> None:
    """A date in a YAML sidecar or NaN in a JSON one failed the whole build, whatever on_error; a
    50 MB sidecar was copied whole into the index; a JSON sidecar with a byte-order mark (as
    Notepad saves it) was ignored."""
    _arrays(tmp_path / "data", 3, 0)
    (tmp_path / "data" / "a0000.yaml").write_text("when: 2024-01-02\nstamp: 2024-01-02T03:04:05Z\n")
    (tmp_path / "data" / "a0001.json").write_bytes(b"\xef\xbb\xbf" + b'{"x": NaN, "y": Infinity, "z": 1}')
    (tmp_path / "data" / "a0002.json").write_text(json.dumps({"big": "x" * (2**20)}))
    published = run_build(tmp_path, {"sources": [{"path": "data"}], "on_error": "skip"})
    assert published.node("data/a0000")["metadata"] == {"when": "2024-01-02", "stamp": "2024-01-02 03:04:05+00:00"}
    assert published.node("data/a0001")["metadata"] == {"x": None, "y": None, "z": 1}
    assert published.node("data/a0002")["metadata"] == {}
    assert "a0002.json: sidecar ignored: larger than 1 MiB" in published.problems("warnings")["data/a0002"]


# -- symlinks in source trees -------------------------------------------------------------------


def _looping_tree(root: Path) -> Path:
    """data/{a.csv, sub/b.csv} with a link to itself (data/loop) and one to its grandparent (data/sub/up)."""
    (root / "data" / "sub").mkdir(parents=True)
    (root / "data" / "a.csv").write_text("x,y\n1,2\n")
    (root / "data" / "sub" / "b.csv").write_text("x,y\n3,4\n")
    (root / "data" / "loop").symlink_to("loop")
    (root / "data" / "sub" / "up").symlink_to("..")
    return root


@pytest.mark.parametrize("path", ["data", "data/**/*.csv", "data/**"])
def test_symlink_loops_are_their_paths_failures(tmp_path: Path, path: str) -> None:
    """on_error: skip publishes the rest and names each loop; on_error: fail publishes nothing and
    says which paths; never a traceback, never a path walked round a loop."""
    tree = _looping_tree(tmp_path)
    store = tmp_path / "site"
    pipeline = write_pipeline(tree, {"sources": [{"path": path}], "on_error": "skip", "output": {"store": str(store)}})
    runner = CliRunner()
    checked = runner.invoke(main, ["validate", "-c", str(pipeline)])
    assert checked.exit_code == 0, checked.output
    assert "2 items to publish" in checked.output
    assert f"failure: {tree}/data/sub/up: symlink loop: it points to {tree}/data, a folder that contains it" in checked.output
    built = runner.invoke(main, ["build", "-c", str(pipeline), "--json-report"])
    assert built.exit_code == 3, built.output  # published, with failures
    report = json.loads(built.output[: built.output.rindex("}") + 1])
    failures = {p["path"]: p["reason"] for p in report["failures"]}
    assert failures["data/sub/up"].startswith("symlink loop")
    if path != "data/**/*.csv":  # the pattern names only .csv files: a link called "loop" is not one
        assert failures["data/loop"] == "symlink loop: data/loop -> loop never reaches a file or folder"  # (as published: relative)
    catalog = Catalog.open(Store(store))
    assert [e.path for e in catalog.entries("data")] == ["data/a", "data/sub"]
    assert [e.path for e in catalog.entries("data/sub")] == ["data/sub/b"]

    failing = write_pipeline(tree, {"sources": [{"path": path}], "output": {"store": str(tmp_path / "site2")}})
    refused = runner.invoke(main, ["validate", "-c", str(failing)])
    assert refused.exit_code == 1 and f"{tree}/data/sub/up: symlink loop" in refused.output
    failed = runner.invoke(main, ["build", "-c", str(failing)])
    assert failed.exit_code == 1 and "nothing was published" in failed.output and "data/sub/up" in failed.output
    assert not (tmp_path / "site2" / "catalog.json").exists()


def test_a_source_path_that_is_a_loop_is_a_failure_not_a_traceback(tmp_path: Path) -> None:
    tree = _looping_tree(tmp_path)
    pipeline = write_pipeline(tree, {"sources": [{"path": "data/loop"}, {"path": "data/a.csv"}], "on_error": "skip"})
    published = build(load_pipeline(pipeline), workers=2)
    assert list(published.to_json()["failures"][0].values())[:2] == ["data/loop", "symlink loop: data/loop -> loop never reaches a file or folder"]
    assert published.nodes["table"] == 1


def test_a_named_pipe_where_a_sidecar_would_be_is_ignored_with_a_warning(tmp_path: Path) -> None:
    """The walk leaves a FIFO out as data, but the sidecar lookup opened any name it listed: a FIFO
    called ``a0000.json`` blocked the plan forever (nothing writes to it)."""
    _arrays(tmp_path / "data", 2, 0)
    os.mkfifo(tmp_path / "data" / "a0000.json")
    outcome: list[Any] = []
    planning = threading.Thread(target=lambda: outcome.append(run_build(tmp_path, {"sources": [{"path": "data"}]})), daemon=True)
    planning.start()
    planning.join(60)
    assert outcome, "the build still waits on the named pipe"
    published = outcome[0]
    assert published.problems("warnings")["data/a0000"].endswith("a0000.json: sidecar ignored: not a regular file")
    assert published.node("data/a0000")["metadata"] == {} and published.report.converted == 2


def warnings_of(report: Any, path: str) -> list[str]:
    return [p.reason for p in report.warnings if p.path == path]


def test_symlinks_leaving_the_source_folder_warn_or_are_refused(tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "secret.csv").write_text("x\n1\n")
    (outside / "folder").mkdir()
    (outside / "folder" / "c.csv").write_text("x\n2\n")
    tree = tmp_path / "tree"
    (tree / "data").mkdir(parents=True)
    (tree / "data" / "a.csv").write_text("x\n0\n")
    (tree / "data" / "linked.csv").symlink_to(outside / "secret.csv")
    (tree / "data" / "more").symlink_to(outside / "folder")
    (tree / "data" / "inside.csv").symlink_to(tree / "data" / "a.csv")  # stays in the tree: nothing to say
    (outside / "meta.json").write_text('{"owner": "someone else"}')
    (tree / "data" / "a.json").symlink_to(outside / "meta.json")  # a sidecar from outside

    def run(**options: Any) -> Any:
        pipeline = write_pipeline(tree, {"sources": [{"path": "data"}], "output": {"store": str(tmp_path / f"site-{len(options)}-{options}")}, **options})
        return build(load_pipeline(pipeline), workers=2)

    warned = run()
    warnings = {p.path: p.reason for p in warned.warnings if p.path != "data/a"}
    assert warnings == {
        "data/linked.csv": f"symlink to {outside}/secret.csv leaves the source folder data; followed "
                           "(symlinks_outside: refuse skips such links, allow stops this warning)",
        "data/more": f"symlink to {outside}/folder leaves the source folder data; followed "
                     "(symlinks_outside: refuse skips such links, allow stops this warning)",
    }
    assert warned.nodes["table"] == 4  # a, inside, linked, more/c
    assert warnings_of(warned, "data/a") == [f"data/a.json: sidecar read: symlink to {outside}/meta.json leaves the source folder data"]
    assert Catalog.open(Store(warned.store)).entry("data/a").metadata["owner"] == "someone else"

    refused = run(symlinks_outside="refuse")
    assert {p.path: p.reason for p in refused.skipped} == {
        "data/linked.csv": f"symlink to {outside}/secret.csv leaves the source folder data; refused (symlinks_outside: refuse)",
        "data/more": f"symlink to {outside}/folder leaves the source folder data; refused (symlinks_outside: refuse)",
    }
    catalog = Catalog.open(Store(refused.store))
    assert [e.key for e in catalog.entries("data")] == ["a", "inside"]
    assert "owner" not in catalog.entry("data/a").metadata
    assert warnings_of(refused, "data/a") == [f"data/a.json: sidecar ignored: symlink to {outside}/meta.json leaves the source "
                                              "folder data (symlinks_outside: refuse)"]

    allowed = run(symlinks_outside="allow")
    assert allowed.warnings == [] and allowed.nodes["table"] == 4
    assert Catalog.open(Store(allowed.store)).entry("data/a").metadata["owner"] == "someone else"

    wrong = write_pipeline(tree, {"sources": [{"path": "data"}], "symlinks_outside": "never"})
    with pytest.raises(Exception, match=r"pipeline.yml:\d+: symlinks_outside: Input should be 'warn', 'refuse' or 'allow'"):
        load_pipeline(wrong)


def test_schema_offers_the_symlink_option(tmp_path: Path) -> None:
    import jsonschema

    schema = json.loads(CliRunner().invoke(main, ["schema"]).output)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["properties"]["symlinks_outside"]["enum"] == ["warn", "refuse", "allow"]
    jsonschema.validate({"sources": [{"path": "data"}], "symlinks_outside": "refuse"}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"sources": [{"path": "data"}], "symlinks_outside": "sometimes"}, schema)


def test_collections_nested_past_the_stack_are_refused(tmp_path: Path) -> None:
    """5,000 nested lists exhausted the parser's stack (a RecursionError traceback)."""
    path = tmp_path / "pipeline.yml"
    path.write_text("sources: [{path: data}]\nmetadata: {x: " + "[" * 5000 + "]" * 5000 + "}\n")
    with pytest.raises(Exception, match=r"pipeline.yml:2: collections nested deeper than 100 levels; refused"):
        load_pipeline(path)
    path.write_text("sources: [{path: data}]\nmetadata: {x: " + "[" * 50 + "]" * 50 + "}\n")
    value, depth = load_pipeline(path).metadata["x"], 1
    while value:
        value, depth = value[0], depth + 1
    assert depth == 50


def test_a_check_that_fails_unexpectedly_keeps_the_items_for_the_next_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The store fails while the release is being checked (after its index was written): nothing
    is published, and the items it converted are in its journal for the next build to resume."""
    publish_module = sys.modules["publisher.build.publish"]
    _arrays(tmp_path / "data", 10, 0)
    pipeline = write_pipeline(tmp_path, {"sources": [{"path": "data"}], "output": {"store": str(tmp_path / "site")}})

    def failing(*args: Any, **kwargs: Any) -> list[str]:
        raise StoreError("the store went away while the release was checked")

    with monkeypatch.context() as patched:
        patched.setattr(publish_module, "missing_objects", failing)
        with pytest.raises(StoreError, match="went away"):
            build(load_pipeline(pipeline), workers=2)
    assert not (tmp_path / "site" / "catalog.json").exists()
    report = build(load_pipeline(pipeline), workers=2)
    assert report.published and report.resumed == 10 and report.converted == 0


def test_the_checks_listing_skips_only_a_file_gone_midway(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file deleted between its folder's listing and its stat is left out, and nothing else of
    its folder (the check then names what is missing, and only that)."""
    import os

    check = sys.modules["publisher.build.check"]
    store = Store(str(tmp_path / "site"))
    for name in ("a", "b", "c"):
        store.write_bytes(f"releases/r/data/{name}", b"xx")
    real = os.scandir

    class Gone:
        def __init__(self, entry: os.DirEntry[str]) -> None:
            self.entry, self.name, self.path = entry, entry.name, entry.path

        def is_dir(self, follow_symlinks: bool = True) -> bool:
            return self.entry.is_dir(follow_symlinks=follow_symlinks)

        def stat(self, follow_symlinks: bool = True) -> os.stat_result:
            if self.name == "b":
                raise FileNotFoundError(self.path)
            return self.entry.stat(follow_symlinks=follow_symlinks)

    class Listing:
        def __init__(self, path: str) -> None:
            self.inner = real(path)

        def __enter__(self) -> list[Gone]:
            return [Gone(e) for e in self.inner]

        def __exit__(self, *args: object) -> None:
            self.inner.close()

    monkeypatch.setattr(check.os, "scandir", Listing)
    assert sorted(check._listing(store, "releases/r")) == [("releases/r/data/a", 2), ("releases/r/data/c", 2)]


def test_a_file_that_grows_while_it_is_converted_is_converted_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A big file is hashed beside its conversion. One appended to meanwhile (a detector still
    writing) was recorded with the stat and hash the hashing saw after the append, so the next
    build reused the rows read before it, for good. Now it is recorded as it was before the
    conversion, with no hash, the build warns, and the next build converts it again."""
    from publisher.build import convert, plan

    monkeypatch.setattr(plan.Planner, "HASH_INLINE_BYTES", 0)  # every file hashed beside its conversion
    appended, original = threading.Event(), convert.Converter.convert
    record = plan.file_record

    def convert_then_append(self: convert.Converter, item: Any) -> Any:
        out = original(self, item)
        if item.paths[0].name == "log.csv" and not appended.is_set():
            with open(item.paths[0], "a") as f:
                f.write("3,30\n")
            appended.set()
        return out

    def hashed_late(path: Path, shown: str, previous: Any = None) -> Any:
        if path.name == "log.csv":
            appended.wait(10)  # the hashing comes after the append, as it may on a busy host
        return record(path, shown, previous)

    monkeypatch.setattr(convert.Converter, "convert", convert_then_append)
    monkeypatch.setattr(plan, "file_record", hashed_late)
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "log.csv").write_text("t,v\n1,10\n2,20\n")
    (tmp_path / "src" / "other.csv").write_text("t,v\n1,1\n")
    pipeline = load_pipeline(write_pipeline(tmp_path, {"sources": [{"path": "src", "into": ""}], "output": {"store": str(tmp_path / "site")}}))
    first = build(pipeline, workers=1)
    said = "src/log.csv changed while it was read (its size or times moved): published as it was read; the next build converts it again"
    assert first.converted == 2 and [w.reason for w in first.warnings] == [said]
    assert Catalog.open(Store(tmp_path / "site")).entry("log").to_json()["structure"]["row_count"] == 2
    second = build(pipeline, workers=1)
    assert (second.converted, second.reused, second.warnings) == (1, 1, [])
    assert Catalog.open(Store(tmp_path / "site")).entry("log").to_json()["structure"]["row_count"] == 3
    assert build(pipeline, workers=1).unchanged


def test_a_small_file_rewritten_while_it_is_converted_is_said_and_converted_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A small file is hashed before its conversion; rewritten meanwhile, its record kept the hash
    of before and the build said nothing (the next build converted it again, as its times had
    moved). It is said, as for a big file hashed beside its conversion, and recorded with no hash."""
    from publisher.build import convert

    original, rewritten = convert.Converter.convert, threading.Event()

    def convert_then_rewrite(self: convert.Converter, item: Any) -> Any:
        out = original(self, item)
        if item.paths[0].name == "log.csv" and not rewritten.is_set():
            (item.paths[0]).write_text("t,v\n1,11\n2,22\n")  # the same size, other values
            rewritten.set()
        return out

    monkeypatch.setattr(convert.Converter, "convert", convert_then_rewrite)
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "log.csv").write_text("t,v\n1,10\n2,20\n")
    pipeline = load_pipeline(write_pipeline(tmp_path, {"sources": [{"path": "src", "into": ""}], "output": {"store": str(tmp_path / "site")},
                                                       "build": {"processes": 0}}))
    first = build(pipeline, workers=1)
    said = "src/log.csv changed while it was read (its size or times moved): published as it was read; the next build converts it again"
    assert [w.reason for w in first.warnings] == [said]
    second = build(pipeline, workers=1)
    assert (second.converted, second.warnings) == (1, [])
    assert build(pipeline, workers=1).unchanged


@pytest.mark.parametrize("swapped", ["file", "folder"])
def test_a_file_swapped_for_an_outside_link_after_the_plan_is_not_read(tmp_path: Path, swapped: str) -> None:
    """With ``symlinks_outside: refuse`` the plan refuses links leaving the source folder, but a
    build of millions of files plans hours before it converts the last one: a file (or a folder
    above it) swapped for such a link meanwhile was read and published. Each file is resolved
    again as it is converted; one outside is a failure, not read, and the next plan refuses it."""
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "b.csv").write_text("leaked_if_read\n4242\n")
    (tmp_path / "src" / "sub").mkdir(parents=True)
    (tmp_path / "src" / "a.csv").write_text("v\n1\n")
    (tmp_path / "src" / "sub" / "b.csv").write_text("v\n2\n")
    config = {"sources": [{"path": "src", "into": ""}], "output": {"store": str(tmp_path / "site")}, "symlinks_outside": "refuse", "on_error": "skip"}
    pipeline = load_pipeline(write_pipeline(tmp_path, config))

    def swap(event: str, info: dict[str, Any]) -> None:
        if event == "start":  # planned: now the swap
            if swapped == "file":
                (tmp_path / "src" / "sub" / "b.csv").unlink()
                (tmp_path / "src" / "sub" / "b.csv").symlink_to(tmp_path / "outside" / "b.csv")
            else:
                shutil.rmtree(tmp_path / "src" / "sub")
                (tmp_path / "src" / "sub").symlink_to(tmp_path / "outside")

    report = build(pipeline, progress=swap, workers=1)
    assert [(f.path, "outside the source folder, since the build planned it" in f.reason) for f in report.failures] == [("sub/b", True)]
    catalog = Catalog.open(Store(tmp_path / "site"))
    assert [e.path for e in catalog.entries("")] == ["a"] and b"leaked_if_read" not in b"".join(p.read_bytes() for p in (tmp_path / "site").rglob("*") if p.is_file())
    again = build(pipeline, workers=1)
    assert not again.failures and [s.path for s in again.skipped] == ["sub/b.csv" if swapped == "file" else "sub"]


def test_gc_keeps_a_build_whose_clock_is_behind(tmp_path: Path) -> None:
    """A build host's clock an hour behind gc's: its heartbeat looked two hours old and gc deleted
    the release it was writing (a review helper's repro). The store's own time of the marker's
    last write says the build is alive."""
    _arrays(tmp_path / "data", 2, 0)
    store = run_build(tmp_path, {"sources": [{"path": "data"}]}).store
    behind = "20000101T000000.000000Z-dddddd"
    _release_with_marker(store, behind, time.time() - 7200, stored=time.time())
    assert {r.id: r.state for r in list_releases(store)}[behind].startswith("in progress")
    gc(store, keep=1)
    assert behind in [r.id for r in list_releases(store)]


def test_a_rule_matching_a_folder_skips_all_below_it_and_gives_it_metadata(tmp_path: Path) -> None:
    """A folder is a container as an HDF5 group is: ``skip: true`` matching ``data/scratch`` left
    everything below it published (only ``data/scratch/**`` skipped it), and ``metadata`` on a
    folder was dropped, both without a word. Also when the rule comes after a build that
    published the folder (its items reused otherwise)."""
    _arrays(tmp_path / "data" / "scratch", 2, 0)
    _arrays(tmp_path / "data" / "keep", 1, 0)
    run_build(tmp_path, {"sources": [{"path": "data"}]})
    rules = [{"match": "data/scratch", "skip": True}, {"match": "data", "metadata": {"proposal": 1234}}]
    published = run_build(tmp_path, {"sources": [{"path": "data"}], "rules": rules})
    paths = {e["path"] for e in published.entries()}
    assert "data/keep/a0000" in paths and not [p for p in paths if p.startswith("data/scratch")], paths
    assert published.problems("skipped") == {"data/scratch/a0000": "skipped by a rule", "data/scratch/a0001": "skipped by a rule"}
    assert published.node("data")["metadata"] == {"proposal": 1234}
