"""Small files converted in worker processes of the build's machine (publisher/build/processes.py):
the release is the one a build on threads makes, object for object; a worker process killed
midway fails the build clearly, the previous release stands and the next build resumes; a build
process killed outright leaves no worker process behind."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest
import tifffile

from publisher.build import BuildSettings, build
from publisher.cli.common import EXIT_PARTIAL
from publisher.config import load_pipeline
from publisher.errors import ConfigError, StoreError
from publisher.stores import Store

from .conftest import write_pipeline
from .test_cluster_build import release_objects
from .test_resume import _frames, previous_release

ROOT = Path(__file__).resolve().parents[1]


def _small_files(src: Path) -> None:
    """40 small TIFFs, 10 CSV tables and one 9 MiB array (bigger than a small file: on threads)."""
    rng = np.random.default_rng(7)
    (src / "tiles").mkdir(parents=True)
    for i in range(40):
        tifffile.imwrite(src / "tiles" / f"tile_{i:02d}.tif", rng.integers(0, 4000, size=(64, 96), dtype="<u2"))
    for i in range(10):
        rows = "\n".join(f"{j},{rng.normal():.6f},{'ab'[j % 2]}" for j in range(50))
        (src / f"table_{i}.csv").write_text(f"n,value,label\n{rows}\n")
    np.save(src / "big.npy", rng.integers(0, 60000, size=(1536, 3072), dtype="<u2"))


def _csvs(src: Path, count: int) -> Path:
    """``count`` one-row CSV files in a new folder ``src``."""
    src.mkdir()
    for i in range(count):
        (src / f"t{i:02d}.csv").write_text(f"a,b\n{i},2\n")
    return src


def _children(before: set[int] | frozenset[int] = frozenset(), recursive: bool = False) -> list[psutil.Process]:
    """This process's children (or all its descendants) but those in ``before`` (servers the suite started)."""
    return [p for p in psutil.Process().children(recursive=recursive) if p.pid not in before]


def _cpu(processes: Iterable[psutil.Process]) -> float:
    """User and system seconds of those ``processes`` still there."""
    total = 0.0
    for p in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += sum(p.cpu_times()[:2])
    return total


@pytest.mark.parametrize("threaded", [False, True], ids=["forked", "from-a-fork-server"])
def test_small_files_convert_in_worker_processes_as_on_threads(tmp_path: Path, threaded: bool) -> None:
    """``threaded``: the calling process has another thread (a notebook's, an S3 store's), so the
    workers start from a fork server instead of being forked from it (the fork itself: here when
    this test runs first in its process, and always in test_a_killed_build_leaves_no_worker_process)."""
    src = tmp_path / "src"
    _small_files(src)
    stores, written = {}, {}
    other = threading.Event()
    if threaded:
        threading.Thread(target=other.wait, daemon=True).start()
    for name, processes in [("processes", None), ("threads", 0)]:
        store = tmp_path / name
        config = {"sources": [{"path": str(src)}], "output": {"store": str(store)}, "build": {} if processes is None else {"processes": processes}}
        events: list[tuple[str, dict[str, Any]]] = []
        busy: list[float] = []
        parents: list[int] = []
        before = {p.pid for p in _children(recursive=True)}

        def progress(event: str, info: dict[str, Any], events: list[tuple[str, dict[str, Any]]] = events, busy: list[float] = busy,
                     before: set[int] = before, parents: list[int] = parents) -> None:
            events.append((event, info))
            if event == "processes":  # whose children the workers are
                parents.extend(p.ppid() for p in _children(before, recursive=True) if p.ppid() != os.getpid())
            if event == "done":  # the worker processes' CPU time so far (not the fork server's imports)
                busy.append(_cpu(p for p in _children(before, recursive=True) if not threaded or p.ppid() != os.getpid()))

        (tmp_path / name).mkdir()
        alone = threading.active_count() == 1  # (a test before may have left a thread: then a fork server too)
        report = build(load_pipeline(write_pipeline(tmp_path / name, config)), workers=2, progress=progress)
        assert report.converted == 51 and not report.failures and report.published
        started = [info for event, info in events if event == "processes"]
        if processes is None:
            assert started == [{"workers": 2}] and max(busy) > 0  # two workers started, and they converted
            assert len(parents) == (0 if alone else 2)  # forked from this process, else from the fork server
        else:
            assert started == [] and max(busy) == 0
        stores[name] = release_objects(Store(str(store)))
        release = store / "releases" / report.release
        written[name] = (report.bytes_out, sum(f.stat().st_size for part in ("data", "index") for f in (release / part).rglob("*") if f.is_file()))
    other.set()
    assert len(stores["processes"]) > 100
    assert stores["processes"] == stores["threads"]
    # the release's bytes: its data as a worker process listed them for the check, as the build's own walk sums them
    assert written["processes"][0] == written["processes"][1] and written["threads"][0] == written["threads"][1] > 10**7


def test_a_tagged_catalog_on_worker_processes(tmp_path: Path) -> None:
    """Nodes only some may read are written by the workers under their access class's prefix, as
    on threads, object for object (and the release's check and gc see those prefixes)."""
    src = tmp_path / "src"
    _small_files(src)
    stores = {}
    for name, processes in [("processes", 2), ("threads", 0)]:
        (tmp_path / name).mkdir()
        config = {"sources": [{"path": str(src)}], "output": {"store": str(tmp_path / name / "site")}, "build": {"processes": processes},
                  "rules": [{"match": "src/tiles", "access_tags": ["staff"]}, {"match": "src", "access_tags": ["public"]}]}
        report = build(load_pipeline(write_pipeline(tmp_path / name, config)), workers=2)
        assert report.converted == 51 and not report.failures and report.published
        stores[name] = release_objects(Store(str(tmp_path / name / "site")))
    assert sum(k.startswith("private/") and "/data/src/tiles/" in k for k in stores["processes"]) >= 80  # 40 arrays' metadata and chunks
    assert stores["processes"] == stores["threads"]


def test_a_worker_process_killed_mid_build(tmp_path: Path) -> None:
    """A worker process killed (by the OOM killer, an operator) breaks the pool: the build starts
    its workers again, runs the lost tasks' items one by one and publishes every item, its release
    the one of a build nobody disturbed, object for object."""
    config, store, _ = previous_release(tmp_path, 2)
    workers: list[psutil.Process] = []
    others = {p.pid for p in _children()}

    def progress(event: str, info: dict[str, Any]) -> None:
        if event == "processes":  # forked from this process, or the children of a fork server
            workers.extend(p for p in _children(others, recursive=True) if not p.children())
        elif event == "done" and workers and workers[0].is_running():
            workers[0].kill()  # once the first items are merged

    report = build(load_pipeline(config), workers=2, progress=progress)
    assert len(workers) == 2 and not workers[0].is_running()
    assert report.published and not report.failures and report.converted == 38
    helpers = ("forkserver", "resource_tracker")  # multiprocessing's own, kept for the next pool
    started_again = [p for p in _children(others, recursive=True) if not any(h in " ".join(p.cmdline()) for h in helpers)]
    assert not psutil.wait_procs(started_again, timeout=10)[1]  # the workers started again are gone too
    calm = tmp_path / "calm"
    calm.mkdir()
    undisturbed = build(load_pipeline(previous_release(calm, 2)[0]), workers=2)
    assert undisturbed.converted == 38
    assert _data_objects(store, report.release) == _data_objects(calm / "site", undisturbed.release)


def _data_objects(store: Path, release: str) -> dict[str, bytes]:
    """A release's data objects by key below its prefix (the items it converted itself)."""
    data = store / "releases" / release / "data"
    return {str(p.relative_to(data)): p.read_bytes() for p in sorted(data.rglob("*")) if p.is_file()}


CRASHING_READER = """
import os
import signal

from publisher.readers import Reader


class CrashingReader(Reader):
    \"\"\"Kills its own process, as a C library does on a file it cannot take (a segfault).\"\"\"

    name = "crashing"
    extensions = (".crash",)

    def open(self, path, key, options):
        os.kill(os.getpid(), signal.SIGKILL)
"""


def crashing_plugin(folder: Path) -> Path:
    """A reader plug-in, found by its entry point, that kills the process reading a ``.crash`` file."""
    folder.mkdir()
    (folder / "skyshelf_crashing.py").write_text(CRASHING_READER)
    info = folder / "skyshelf_crashing-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: skyshelf-crashing\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[skyshelf.readers]\ncrashing = skyshelf_crashing:CrashingReader\n")
    return folder


@pytest.mark.parametrize("scheduler", [None, "local:2"], ids=["processes", "cluster"])
def test_a_file_that_kills_its_worker_fails_alone(tmp_path: Path, scheduler: str | None) -> None:
    """A file whose reader kills the worker converting it (a segfault in a C library, memory
    beyond the worker's), tried alone: on worker processes (twice, nothing else running) it is a
    failure of its own item, and ``on_error: skip`` publishes every other file; on Dask, where
    other tasks ran beside it, the build stops naming it as the probable cause. It used to fail
    every build as a dead worker, naming no file."""
    pytest.importorskip("distributed")
    src = _csvs(tmp_path / "src", 30)
    (src / "t13.crash").write_text("whatever\n")
    config = write_pipeline(tmp_path, {"sources": [{"path": "src"}], "output": {"store": str(tmp_path / "site")}, "on_error": "skip",
                                       "build": {"processes": 2}})
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(crashing_plugin(tmp_path / "plugin")), str(ROOT)]),
           "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "0"}
    command = [sys.executable, "-m", "publisher.cli", "build", "-c", str(config), "--json-report", *(["--scheduler", scheduler] if scheduler else [])]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=False)
    if scheduler:
        assert done.returncode == 1 and "Traceback" not in done.stdout + done.stderr, done.stdout + done.stderr
        assert "error: the workers converting src/t13.crash died, also when it ran as a task of its own (KilledWorker)" in done.stdout + done.stderr
        assert not (tmp_path / "site" / "catalog.json").exists()
        return
    assert done.returncode == EXIT_PARTIAL, done.stdout + done.stderr  # published, with failures
    report = json.JSONDecoder().raw_decode(done.stdout[done.stdout.index("{"):])[0]
    assert [(f["path"], f["source"]) for f in report["failures"]] == [("src/t13.crash", "src/t13.crash")], report["failures"]
    assert "worker process converting it died" in report["failures"][0]["reason"]
    assert report["published"] and report["nodes"]["table"] == 30


def test_workers_from_a_fork_server_have_the_environment_of_now(monkeypatch: pytest.MonkeyPatch) -> None:
    """A process with threads starts its workers from a fork server, which lives on between
    builds: each build's workers still have the environment of that build (credentials a notebook
    set since the first build), not the one of the fork server's start."""
    from publisher.build import processes

    other = threading.Event()
    threading.Thread(target=other.wait, daemon=True).start()  # so: a fork server
    try:
        for value in ("first", "second"):
            monkeypatch.setenv("SKYSHELF_TEST_PROBE", value)
            pool = processes.start(2)
            try:
                assert [pool.submit(os.getenv, "SKYSHELF_TEST_PROBE").result() for _ in range(4)] == [value] * 4
            finally:
                pool.shutdown()
    finally:
        other.set()


@pytest.mark.parametrize(("kill", "delete"), [(False, True), (True, False), (True, True)], ids=["chunk-deleted", "workers-gone", "both"])
def test_the_check_on_worker_processes(tmp_path: Path, kill: bool, delete: bool) -> None:
    """At the build's end a worker process lists and checks the release's data while the build's
    process writes the index: a chunk deleted after the last item was written fails the build,
    naming it. When the worker processes died after the last item was merged, the build's process
    checks it all itself: it publishes, or finds the deleted chunk just the same."""
    src = tmp_path / "src"
    _small_files(src)
    store = tmp_path / "site"
    config = write_pipeline(tmp_path, {"sources": [{"path": str(src)}], "output": {"store": str(store)}, "build": {"processes": 2}})
    others = {p.pid for p in _children(recursive=True)}
    workers: list[psutil.Process] = []
    started: dict[str, Any] = {}

    def progress(event: str, info: dict[str, Any]) -> None:
        if event == "start":
            started["release"] = info["release"]
        if event == "processes":
            workers.extend(p for p in _children(others, recursive=True) if not p.children())
        if event == "done" and info["path"] == "src/tiles/tile_39":  # the last item
            if kill:
                for worker in workers:
                    worker.kill()
                psutil.wait_procs(workers, timeout=10)
            if delete:
                (store / "releases" / started["release"] / "data/src/tiles/tile_07.zarr/c/0/0").unlink()

    if delete:
        with pytest.raises(StoreError, match=r"is incomplete.*data/src/tiles/tile_07\.zarr: 1 of 1 chunks"):
            build(load_pipeline(config), workers=2, progress=progress)
        assert not (store / "catalog.json").exists()
        return
    report = build(load_pipeline(config), workers=2, progress=progress)
    assert len(workers) == 2 and report.published and report.converted == 51 and report.bytes_out > 0


@pytest.mark.parametrize("failure", ["worker-lost", "sqlite-locked"])
def test_a_check_lost_after_its_listing_is_made_again_from_scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: str) -> None:
    """The worker checking the release wrote its whole listing into the check's table, then was
    lost (or SQLite refused it the node table): the build's process checks it afresh (its chunks
    are not counted twice, which would hide a chunk deleted meanwhile)."""
    import sqlite3
    from concurrent.futures.process import BrokenProcessPool

    import publisher.build as build_module
    from publisher.build import check

    src = tmp_path / "src"
    _small_files(src)
    store = tmp_path / "site"
    config = write_pipeline(tmp_path, {"sources": [{"path": str(src)}], "output": {"store": str(store), "chunk_target_bytes": 4096},
                                       "build": {"processes": 2}})  # a tile: several chunks, one of which goes
    started: dict[str, Any] = {}
    lost: list[str] = []

    def early(self: Any) -> Any:
        def listing(path: str, nodes: str, written: list[str]) -> Any:
            check.check_data(path, nodes, Store(str(store)), written, 3)  # what the worker did before it died
            lost.append(path)
            failed: Any = build_module.Future()
            failed.set_exception(BrokenProcessPool("a child process terminated abruptly") if failure == "worker-lost"
                                 else sqlite3.OperationalError("database is locked"))
            return failed
        return listing

    def progress(event: str, info: dict[str, Any]) -> None:
        if event == "start":
            started["release"] = info["release"]
        if event == "done" and info["path"] == "src/tiles/tile_39":
            (store / "releases" / started["release"] / "data/src/tiles/tile_07.zarr/c/0/0").unlink()

    monkeypatch.setattr(build_module._Build, "early", early)
    with pytest.raises(StoreError, match=r"is incomplete.*data/src/tiles/tile_07\.zarr: 1 of [2-9] chunks"):
        build(load_pipeline(config), workers=2, progress=progress)
    assert lost and not (store / "catalog.json").exists()


def test_workers_forked_after_the_node_table_spilled_read_it(tmp_path: Path) -> None:
    """A rebuild whose first item to convert comes after ~10 MB of reused items' index rows (a
    renamed folder, last in plan order): the node table's transaction had spilled to its file
    (SQLite's exclusive lock) when the build forked its workers, and the worker's check of the
    release was told "database is locked": a traceback, every rebuild. The table is committed
    before the fork."""
    src = tmp_path / "src"
    for j in range(25):
        (src / f"f{j:02d}").mkdir(parents=True)
        for i in range(100):
            np.save(src / f"f{j:02d}" / f"a{i:03d}.npy", np.arange(4) + i)
    config = write_pipeline(tmp_path, {"sources": [{"path": "src", "metadata": {"note": "x" * 4000}}],  # ~4 KB a row
                                       "output": {"store": str(tmp_path / "site")}, "build": {"processes": 2}})
    command = [sys.executable, "-m", "publisher.cli", "build", "-c", str(config)]  # (a process of one thread: the workers are forked)
    first = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert first.returncode == 0, first.stdout + first.stderr
    (src / "f00").rename(src / "z00")  # its 100 files moved to the plan's end: 2,400 reused items' rows before them
    again = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    out = again.stdout + again.stderr
    assert again.returncode == 0 and "Traceback" not in out and "locked" not in out, out
    assert re.search(r"0 converted, 2500 unchanged", " ".join(out.split())), out


_WITH_A_THREAD = """
import sys, threading, time
from publisher.build import build
from publisher.config import load_pipeline
if __name__ == "__main__":
    threading.Thread(target=time.sleep, args=(3600,), daemon=True).start()  # (as a notebook's, an S3 store's loop)
    build(load_pipeline(sys.argv[1]), workers=2)
"""


@pytest.mark.parametrize("start", ["forked", "fork-server"])
def test_a_killed_build_leaves_no_worker_process(tmp_path: Path, start: str) -> None:
    """Forked, or (the build's process having a thread) from a fork server, whose children they
    are: those watched their parent, the server, and outlived the build with it."""
    src = tmp_path / "src"
    src.mkdir()
    _frames(src, 0, 40)
    config = write_pipeline(tmp_path, {"sources": [{"path": "src"}], "output": {"store": str(tmp_path / "site"), "codec": {"name": "zstd", "level": 19}},
                                       "build": {"processes": 2}})
    (tmp_path / "run.py").write_text(_WITH_A_THREAD)
    command = ["-m", "publisher.cli", "build", "-c", str(config), "--workers", "2"] if start == "forked" else [str(tmp_path / "run.py"), str(config)]
    client = subprocess.Popen([sys.executable, *command], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def workers() -> list[psutil.Process]:
        found = parent.children() if start == "forked" else [p for p in parent.children(recursive=True) if p.ppid() != client.pid]
        return [p for p in found if "resource_tracker" not in " ".join(p.cmdline())]

    try:
        parent = psutil.Process(client.pid)
        deadline = time.monotonic() + 60
        while len(workers()) < 2 and client.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        running = workers()
        assert len(running) == 2, "the build ended (or never started its workers) before it could be killed"
        left = parent.children(recursive=True)  # (the fork server and resource tracker too)
        os.kill(client.pid, signal.SIGKILL)  # the build alone, not its process group
        client.wait(30)
        _, alive = psutil.wait_procs(left, timeout=10)
        assert not alive, f"processes outlived the build: {[_where(p) for p in alive]}"
    finally:
        if client.poll() is None:
            client.kill()


def _where(process: psutil.Process) -> tuple[int, str, list[str]]:
    """A process's id, state and where each of its threads waits in the kernel (what kept it)."""
    waits = []
    with contextlib.suppress(OSError, psutil.Error):
        for task in sorted(Path(f"/proc/{process.pid}/task").iterdir()):
            waits.append(f"{task.name}:{(task / 'wchan').read_text() or '-'}")
    with contextlib.suppress(psutil.Error):
        return process.pid, process.status(), waits
    return process.pid, "gone", waits


def test_more_threads_than_cores_start_a_worker_process_per_core(tmp_path: Path) -> None:
    """``--workers 60`` (threads) forked 60 worker processes on two cores; the processes are one
    per core at most, and a count no machine has is a usage error."""
    from click.testing import CliRunner

    from publisher.cli import main

    src = tmp_path / "src"
    _csvs(src, 20)
    config = write_pipeline(tmp_path, {"sources": [{"path": str(src)}], "output": {"store": str(tmp_path / "site")}})
    started: list[int] = []
    report = build(load_pipeline(config), workers=8, progress=lambda event, info: started.append(info["workers"]) if event == "processes" else None)
    assert report.published and started == [min(8, os.cpu_count() or 1)] if (os.cpu_count() or 1) > 1 else started == []
    bad = CliRunner().invoke(main, ["build", "-c", str(config), "--workers", "5000"])
    assert bad.exit_code == 2 and "5000 is not in the range 1<=x<=1024" in bad.output, bad.output


def test_a_wrong_processes_count_names_the_line(tmp_path: Path) -> None:
    config = write_pipeline(tmp_path, {"sources": [{"path": "src"}], "build": {"processes": -1}})
    with pytest.raises(ConfigError, match=r"pipeline\.yml:\d+: build\.processes: Input should be greater than or equal to 0"):
        load_pipeline(config)


@pytest.mark.parametrize(("processes", "scheduler"), [(0, None), (2, None), (0, "local:2")], ids=["threads", "processes", "cluster"])
def test_files_deleted_after_the_plan_are_failures_of_their_items(tmp_path: Path, processes: int, scheduler: str | None) -> None:
    """Two of 20 files vanish between the plan and their conversion: each is a failure naming the
    file and the reason (not a crash of the build); ``on_error: skip`` publishes the other 18."""
    src = _csvs(tmp_path / "src", 20)
    config = write_pipeline(tmp_path, {"sources": [{"path": "src"}], "output": {"store": str(tmp_path / "site")}, "on_error": "skip",
                                       "build": {"processes": processes}})

    def progress(event: str, info: dict[str, Any]) -> None:
        if event == "start":  # planned, nothing converted yet
            (src / "t05.csv").unlink()
            (src / "t17.csv").unlink()

    report = build(load_pipeline(config), workers=2, progress=progress, scheduler=scheduler)
    assert sorted((f.path, f.reason) for f in report.failures) == [
        (f"src/t{i}", f"cannot read src/t{i}.csv: No such file or directory (deleted since the build planned it?)") for i in ("05", "17")]
    assert report.published and report.nodes["table"] == 18


DELETE_AFTER_FINGERPRINT = """
import json, sys
from publisher.build import build
from publisher.build.plan import Planner
from publisher.config import load_pipeline

fingerprint = Planner.fingerprint_against

def then_delete(self, item, *args):
    found = fingerprint(self, item, *args)
    if item.paths[0].name == "t05.csv":
        item.paths[0].unlink()
    return found

Planner.fingerprint_against = then_delete  # (its worker processes, forked from here, have it too)
report = build(load_pipeline(sys.argv[1]), workers=2)
print(json.dumps({"failures": [[f.path, f.reason] for f in report.failures], "published": report.published, "tables": report.nodes["table"]}))
"""


@pytest.mark.parametrize("processes", [0, 2], ids=["threads", "processes"])
def test_a_file_deleted_after_its_fingerprint_is_a_failure_of_its_item(tmp_path: Path, processes: int) -> None:
    """A file that goes between its hash and its reader's detection (which opens it) fails its
    item alone; it used to end the build with a traceback (threads) or as a dead worker process.
    (In a new process: one with threads, as this one may have, starts workers from a fork server,
    which would not have the hook.)"""
    _csvs(tmp_path / "src", 20)
    config = write_pipeline(tmp_path, {"sources": [{"path": "src"}], "output": {"store": str(tmp_path / "site")}, "on_error": "skip",
                                       "build": {"processes": processes}})
    done = subprocess.run([sys.executable, "-c", DELETE_AFTER_FINGERPRINT, str(config)], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["failures"] == [["src/t05", "cannot read src/t05.csv: No such file or directory (deleted since the build planned it?)"]]
    assert report["published"] and report["tables"] == 19


def test_the_last_batches_shrink_so_the_workers_end_together(tmp_path: Path) -> None:
    """Small items go to the workers in batches of up to 32; told how many items are to come and
    how many tasks run at once, the batches shrink towards the plan's end, down to one item, so
    one worker is not left with a full batch while the others wait."""
    from concurrent.futures import Future

    from publisher.build.cluster import ClusterItems, Job
    from publisher.sources import iter_plan

    src = tmp_path / "src"
    src.mkdir()
    (src / "a.csv").write_text("x\n1\n")
    pipeline = load_pipeline(write_pipeline(tmp_path, {"sources": [{"path": str(src)}], "output": {"store": str(tmp_path / "s")}}))
    item = next(iter_plan(pipeline))

    def sizes(expect: tuple[int, int] | None) -> list[int]:
        batches: list[int] = []

        def submit(fn: Any, job: Any, batch: list[Any], flush: bool, key: str) -> Future[Any]:
            batches.append(len(batch))
            return Future()

        remote = ClusterItems(submit, Job(pipeline, str(tmp_path / "s"), BuildSettings(), "releases/x", 1), None, lambda e: e)  # type: ignore[arg-type]
        if expect:
            remote.expect(*expect)
        for _ in range(1000):
            remote.submit(item, None, 10)
        remote.flush()
        return batches

    assert sizes(None) == [32] * 31 + [8]
    shrinking = sizes((2, 1000))
    assert sum(shrinking) == 1000 and shrinking[:15] == [32] * 15 and shrinking[-4:] == [1] * 4
    assert shrinking == sorted(shrinking, reverse=True) and len(shrinking) < 100


UNGUARDED = """
import sys, threading
from publisher.build import build
from publisher.config import load_pipeline
never = threading.Event()
threading.Thread(target=never.wait, daemon=True).start()  # a thread: the workers come from a fork server
build(load_pipeline(sys.argv[1]))
"""


def test_workers_that_cannot_start_say_why(tmp_path: Path) -> None:
    """A script with threads, its code not under ``if __name__ == '__main__':``: each worker from
    the fork server runs it again and dies. The build says so and what to do (it was a bare
    BrokenProcessPool from the pool's start)."""
    _csvs(tmp_path / "src", 20)
    config = write_pipeline(tmp_path, {"sources": [{"path": "src"}], "output": {"store": str(tmp_path / "site")}, "build": {"processes": 2}})
    script = tmp_path / "script.py"
    script.write_text(UNGUARDED)
    done = subprocess.run([sys.executable, str(script), str(config)], cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode != 0
    assert "ClusterLost: the build's worker processes could not start" in done.stderr, done.stderr[-3000:]
    assert "guard its code with `if __name__ == '__main__':`" in done.stderr
    assert not (tmp_path / "site" / "catalog.json").exists()


def test_workers_from_a_fork_server_are_as_many_as_asked() -> None:
    """From a process with threads the workers start from a fork server, each when a task finds
    none idle: a worker fast to start answered two of the start's tasks, and the build ran on
    fewer processes than asked (2 of 3, in 3 of 8 starts)."""
    from publisher.build import processes

    stop = threading.Event()
    waiting = threading.Thread(target=stop.wait, daemon=True)  # (a thread: the fork server is used)
    waiting.start()
    try:
        for _ in range(6):
            pool = processes.start(3)
            try:
                assert len(pool._processes) == 3  # type: ignore[attr-defined]
            finally:
                pool.shutdown()
    finally:
        stop.set()
