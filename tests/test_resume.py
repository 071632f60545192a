"""A build killed midway (the client process, with its LocalCluster's workers, or a local build) leaves
the previous release standing, and the next build reuses every item it had finished (its journal,
publisher/build/journal.py) instead of converting it again; what it publishes reads back equal to
the sources, and ``publish gc`` keeps the resumed items' data."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import zarr
from click.testing import CliRunner

from publisher.build import build
from publisher.catalog import Catalog
from publisher.cli import main
from publisher.config import load_pipeline
from publisher.scratch import HOST, sweep
from publisher.stores import Store

from .conftest import write_pipeline

ROOT = Path(__file__).resolve().parents[1]


@functools.cache
def _namespaces() -> bool:
    """Whether this host lets a process take a mount namespace of its own (unprivileged: a user
    namespace mapping this user to root in it)."""
    try:
        return subprocess.run(["unshare", "--mount", "--map-root-user", "true"], capture_output=True, timeout=30, check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _own_dev_shm(command: list[str]) -> list[str]:
    """``command`` with a /dev/shm of its own (a tmpfs in a mount namespace, gone with its last
    process): its processes, killed with their process group and multiprocessing's resource tracker,
    left their locks' named semaphores in the host's /dev/shm, 12 a test, each run of the suite."""
    if not _namespaces():
        return command
    return ["unshare", "--mount", "--map-root-user", "sh", "-c", 'mount -t tmpfs -o size=64m tmpfs /dev/shm && exec "$@"', "sh", *command]


def _frames(folder: Path, first: int, last: int) -> None:
    rng = np.random.default_rng(first)
    for i in range(first, last):
        np.save(folder / f"frame_{i:02d}.npy", rng.integers(0, 4000, size=(1024, 1024), dtype="<u2"))


def _journaled(store: Path) -> int:
    return sum(len(json.loads(p.read_text())) for p in store.glob("releases/*/progress/*.json"))


def previous_release(tmp_path: Path, first: int) -> tuple[Path, Path, bytes]:
    """A release of ``first`` frames, then frames up to 40 added: (pipeline.yml, store, catalog.json's bytes)."""
    src, store = tmp_path / "src", tmp_path / "site"
    src.mkdir()
    _frames(src, 0, first)
    config = write_pipeline(tmp_path, {"sources": [{"path": "src"}], "output": {"store": str(store), "codec": {"name": "zstd", "level": 15}}})
    build(load_pipeline(config), workers=1)  # a previous release
    before = (store / "catalog.json").read_bytes()
    _frames(src, first, 40)
    return config, store, before


@pytest.mark.parametrize("scheduler", [None, "local:2"], ids=["local", "cluster"])
def test_a_killed_build_is_resumed(tmp_path: Path, scheduler: str | None) -> None:
    pytest.importorskip("distributed")
    config, store, before = previous_release(tmp_path, 3)

    command = [sys.executable, "-m", "publisher.cli", "build", "-c", str(config), "--workers", "1", *(["--scheduler", scheduler] if scheduler else [])]
    scratch = tmp_path / "tmp"  # where the killed build keeps its plan, node table and manifests
    scratch.mkdir()
    env = {**os.environ, "SKYSHELF_JOURNAL_SECONDS": "0.1", "TMPDIR": str(scratch)}  # the journal written often: a kill finds it soon
    client = subprocess.Popen(_own_dev_shm(command), cwd=ROOT, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while _journaled(store) < 3 and client.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert client.poll() is None, "the build ended before it could be killed: make the items slower"
        os.killpg(client.pid, signal.SIGKILL)  # the client and, with local:N, its scheduler and workers
        client.wait(30)
    finally:
        if client.poll() is None:
            os.killpg(client.pid, signal.SIGKILL)
    assert (store / "catalog.json").read_bytes() == before  # the previous release stands
    finished = _journaled(store)
    assert 3 <= finished < 37
    left = sorted(p.name for p in scratch.glob(f"skyshelf-*-{HOST}-{client.pid}-*"))
    assert [n.split("-")[1] for n in left] == ["items", "nodes", "previous"]
    alien = scratch / f"skyshelf-nodes-elsewhere-{client.pid}-abc123"  # another machine's build with the same process id
    live = scratch / f"skyshelf-items-{HOST}-{os.getpid()}-live01"  # a running build's (this process)
    alien.mkdir()
    live.mkdir()
    assert sorted(Path(p).name for p in sweep(str(scratch))) == left
    assert sorted(p.name for p in scratch.glob("skyshelf-*")) == sorted([alien.name, live.name])
    report = build(load_pipeline(config), workers=2)
    assert report.resumed == finished and report.converted == 37 - finished and report.reused == 3 + finished
    assert not report.failures and report.published

    assert CliRunner().invoke(main, ["gc", "-c", str(config), "--keep", "1"]).exit_code == 0
    catalog = Catalog.open_full(Store(str(store)))
    assert catalog.release == report.release and not list(store.glob(f"releases/{report.release}/progress"))
    for i in range(40):
        entry = catalog.entry(f"src/frame_{i:02d}")
        stored = zarr.open_array(str(store / entry.data_url), mode="r")[...]
        np.testing.assert_array_equal(stored, np.load(tmp_path / "src" / f"frame_{i:02d}.npy"))


def test_a_lost_scheduler_fails_clearly_and_is_resumed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real ``dask scheduler`` and ``dask worker`` processes; the scheduler killed mid-build: the
    build fails with a message that says what to do, the previous release stands, and the next
    build resumes what the workers had finished."""
    pytest.importorskip("distributed")
    config, store, before = previous_release(tmp_path, 2)
    dask = Path(sys.executable).parent / "dask"
    scheduler = subprocess.Popen([str(dask), "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                                  "--scheduler-file", str(tmp_path / "scheduler.json")], stderr=subprocess.DEVNULL, start_new_session=True)
    workers = None
    try:
        deadline = time.monotonic() + 60
        address = None
        while address is None and time.monotonic() < deadline:  # (the file appears before its JSON is written)
            with contextlib.suppress(OSError, ValueError, KeyError):
                address = json.loads((tmp_path / "scheduler.json").read_text())["address"]
            time.sleep(0.1)
        assert address, "the dask scheduler never wrote its address"
        workers = subprocess.Popen(_own_dev_shm([str(dask), "worker", address, "--nthreads", "1", "--nworkers", "2", "--no-dashboard"]),
                                   stderr=subprocess.DEVNULL, start_new_session=True)
        monkeypatch.setenv("SKYSHELF_JOURNAL_SECONDS", "0.1")

        def kill_scheduler_once_items_finish() -> None:
            while _journaled(store) < 3 and scheduler.poll() is None:
                time.sleep(0.05)
            scheduler.kill()

        threading.Thread(target=kill_scheduler_once_items_finish, daemon=True).start()
        result = CliRunner().invoke(main, ["build", "-c", str(config), "--scheduler", address, "--workers", "1"])
        assert result.exit_code == 1, result.output
        assert f"lost the Dask scheduler {address}" in result.output and "run the build again to resume" in result.output
        assert "Traceback" not in result.output
    finally:
        for process in (scheduler, workers):
            if process is not None and process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
    assert (store / "catalog.json").read_bytes() == before
    finished = _journaled(store)
    assert finished >= 3
    report = build(load_pipeline(config), workers=2)
    assert report.resumed == finished and report.converted == 38 - finished and report.published


def test_a_tagged_catalog_whose_nodes_end_public_keeps_no_private_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The journal of a catalog with access rules goes under private/ (records name nodes); once the
    release is published it is gone, and so are its folders when nothing private was published."""
    monkeypatch.setenv("SKYSHELF_JOURNAL_SECONDS", "0")  # written at every item
    src, store = tmp_path / "src", tmp_path / "site"
    src.mkdir()
    _frames(src, 0, 3)
    config = write_pipeline(tmp_path, {"sources": [{"path": "src"}], "output": {"store": str(store)},
                                       "rules": [{"match": "src", "access_tags": ["public"]}]})
    from publisher.settings import BuildSettings

    report = build(load_pipeline(config), workers=1, settings=BuildSettings.from_env())
    assert report.published and report.converted == 3
    assert not (store / "private").exists(), sorted(p.relative_to(store).as_posix() for p in (store / "private").rglob("*"))


KILL_AT = """
import os, re, signal, sys
from publisher.stores import local

method, pattern, nth = sys.argv[1], re.compile(sys.argv[2]), int(sys.argv[3])
original, seen = getattr(local.LocalStore, method), []

def hooked(self, key, *args, **kwargs):
    done = original(self, key, *args, **kwargs)
    if pattern.search(key):
        seen.append(key)
        if len(seen) == nth:  # killed right after this call, as a crash or SIGKILL would cut it
            os.kill(os.getpid(), signal.SIGKILL)
    return done

setattr(local.LocalStore, method, hooked)
from publisher.cli import main
main(sys.argv[4:])
"""


def _killed_after(config: Path, key: str, command: str = "build", method: str = "write_bytes", nth: int = 1) -> None:
    """``publish <command>`` in a new process, SIGKILLed right after its ``nth`` store call
    ``method`` on a key matching ``key`` (a regex)."""
    args = [method, key, str(nth), command, "-c", str(config), *(["--workers", "1"] if command == "build" else ["--keep", "1"])]
    done = subprocess.run([sys.executable, "-c", KILL_AT, *args], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == -signal.SIGKILL, f"publish {command} was not killed at {key}: {done.stderr[-2000:]}"


def _release(store: Path, key: str) -> str:
    return str(json.loads((store / key).read_text())["release"])


def test_a_switch_cut_short_is_finished_by_the_next_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The switch writes the full view (what the handlers read) and then catalog.json: a build
    killed between them left the two naming different releases, and every later build said
    "nothing changed" (it compared with the full view) while direct readers kept the old release.
    The next build finishes the switch; ``publish gc`` meanwhile keeps both releases."""
    src, store = tmp_path / "src", tmp_path / "site"
    (src / "staff").mkdir(parents=True)
    _frames(src, 0, 2)
    _frames(src / "staff", 2, 3)
    config = write_pipeline(tmp_path, {"sources": [{"path": "src"}], "output": {"store": str(store)}, "access": {"default": "public"},
                                       "rules": [{"match": "src/staff", "access_tags": ["staff"]}]})
    first = build(load_pipeline(config), workers=1).release
    _frames(src, 3, 5)
    monkeypatch.setenv("SKYSHELF_JOURNAL_SECONDS", "0")  # (the killed build's journal, written at every item)
    _killed_after(config, r"^private/catalog\.json$")
    second = _release(store, "private/catalog.json")
    assert list((store / "private" / "releases" / second).glob("progress/*.json"))
    assert second != first and _release(store, "catalog.json") == first
    assert CliRunner().invoke(main, ["gc", "-c", str(config), "--keep", "1"]).exit_code == 0
    assert (store / "releases" / first / "catalog.json").exists() and (store / "releases" / second / "catalog.json").exists()

    report = build(load_pipeline(config), workers=1)
    assert report.release == second and report.converted == 0  # (nothing changed since the killed build's release)
    assert _release(store, "catalog.json") == _release(store, "private/catalog.json") == second
    # published: its build's journal and in-progress marker go, as that build would have removed them
    assert not list(store.glob(f"*releases/{second}/progress")) and not (store / "releases" / second / "building.json").exists()
    public = Catalog.open(Store(str(store)))
    assert {e.key for e in public.entries("src")} == {"frame_00", "frame_01", "frame_03", "frame_04"}  # (staff is private)

    # a catalog without private nodes: its switch's first write (the public view) is deleted last
    config = write_pipeline(tmp_path, {"sources": [{"path": "src"}], "output": {"store": str(tmp_path / "plain")}})
    build(load_pipeline(config), workers=1)
    _frames(src, 5, 6)
    _killed_after(config, r"^catalog\.json$")
    plain = tmp_path / "plain"
    left = _release(plain, "private/catalog.json")
    assert _release(plain, "catalog.json") == left
    assert build(load_pipeline(config), workers=1).release == left
    assert not (plain / "private" / "catalog.json").exists()


def test_a_build_killed_before_its_switch_is_resumed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Killed after writing its release's own entry point, before the switch: the release is listed
    complete but was never current, and the next build converted every item again (the journal of a
    complete release was not read). Now it resumes them."""
    config, store, before = previous_release(tmp_path, 3)
    monkeypatch.setenv("SKYSHELF_JOURNAL_SECONDS", "0")  # (the killed build's: written at every item)
    _killed_after(config, r"^releases/[^/]+/catalog\.json$")
    assert (store / "catalog.json").read_bytes() == before
    assert _journaled(store) == 37
    report = build(load_pipeline(config), workers=1)
    assert report.resumed == 37 and report.converted == 0 and report.reused == 40 and report.published


def test_a_gc_killed_while_retiring_a_release_never_leaves_it_listed_complete(tmp_path: Path) -> None:
    """gc retires a release whose data a newer one uses: it deleted the index, report and manifest
    first and the entry point last, so a gc killed midway left the release listed complete and a
    rollback to it switched to a broken catalog. Now the entry point goes first; the next gc
    finishes the rest."""
    from publisher.releases import list_releases

    config, store, _ = previous_release(tmp_path, 3)
    old = _release(store, "catalog.json")
    build(load_pipeline(config), workers=1)  # uses the old release's three frames
    _killed_after(config, rf"^releases/{old}/index$", command="gc", method="delete_prefix")
    listed = {r.id: r for r in list_releases(Store(str(store)))}
    assert listed[old].catalog is None
    refused = CliRunner().invoke(main, ["rollback", old, "-c", str(config)])
    assert refused.exit_code != 0 and f"no complete release {old!r}" in refused.output
    assert CliRunner().invoke(main, ["gc", "-c", str(config), "--keep", "1"]).exit_code == 0
    assert sorted(p.name for p in (store / "releases" / old).iterdir()) == ["data", "retired.json"]
    catalog = Catalog.open_full(Store(str(store)))
    for i in range(40):  # the frames of the retired release still read
        np.testing.assert_array_equal(zarr.open_array(str(store / catalog.entry(f"src/frame_{i:02d}").data_url), mode="r")[...],
                                      np.load(tmp_path / "src" / f"frame_{i:02d}.npy"))


def test_a_gc_killed_while_deleting_a_release_is_finished_by_the_next(tmp_path: Path) -> None:
    """A release nothing uses is deleted folder by folder: its public folder went first, and a gc
    killed then left its private folders (full index, private data) listed nowhere, for good."""
    src, store = tmp_path / "src", tmp_path / "site"
    (src / "staff").mkdir(parents=True)
    config = write_pipeline(tmp_path, {"sources": [{"path": "src"}], "output": {"store": str(store)}, "access": {"default": "public"},
                                       "rules": [{"match": "src/staff", "access_tags": ["staff"]}]})
    _frames(src, 0, 2)
    _frames(src / "staff", 2, 3)
    old = build(load_pipeline(config), workers=1).release
    _frames(src, 10, 12)  # new content for every file: nothing of the old release is used
    for f in src.glob("frame_0*.npy"):
        f.unlink()
    (src / "staff" / "frame_02.npy").unlink()
    _frames(src / "staff", 12, 13)
    build(load_pipeline(config), workers=1)
    held = [p for p in store.rglob(f"*{old}*") if p.is_dir()]
    assert len(held) >= 3, held  # public, private and the staff class's folders
    _killed_after(config, rf"releases/{old}$", command="gc", method="delete_prefix", nth=2)
    assert CliRunner().invoke(main, ["gc", "-c", str(config), "--keep", "1"]).exit_code == 0
    assert not list(store.rglob(f"*{old}*"))


def test_a_release_whose_build_died_on_this_host_is_not_in_progress(tmp_path: Path) -> None:
    """A build killed here left its release "in progress" for 30 minutes (its marker's heartbeat),
    kept by gc, though its process was gone (the store's lock was taken over at once)."""
    from publisher.releases import list_releases

    config, store, _ = previous_release(tmp_path, 3)
    _killed_after(config, r"^releases/[^/]+/building\.json$")
    killed = next(r for r in list_releases(Store(str(store))) if r.building)
    assert not killed.alive() and killed.state == "incomplete (never published)"
    build(load_pipeline(config), workers=1)
    assert CliRunner().invoke(main, ["gc", "-c", str(config), "--keep", "1"]).exit_code == 0
    assert not (store / "releases" / killed.id).exists()


def test_journal_records_follow_a_flush_of_their_objects(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch of the journal is written only after the store made what came before durable: a
    machine that crashes must not leave records of chunks that were still in its page cache (the
    next build would reuse them, fail its check, and do so at every build)."""
    from publisher.build import BuildSettings
    from publisher.stores.local import LocalStore as Local

    events: list[tuple[str, str]] = []
    flush, write_bytes = Local.flush, Local.write_bytes

    def flushing(self: Local) -> None:
        flush(self)
        events.append((threading.current_thread().name, "flush"))

    def writing(self: Local, key: str, *args: object, **kwargs: object) -> None:
        write_bytes(self, key, *args, **kwargs)  # type: ignore[arg-type]
        if "/progress/" in key:
            events.append((threading.current_thread().name, "journal"))

    monkeypatch.setattr(Local, "flush", flushing)
    monkeypatch.setattr(Local, "write_bytes", writing)
    src = tmp_path / "src"
    src.mkdir()
    _frames(src, 0, 12)
    config = write_pipeline(tmp_path, {"sources": [{"path": "src"}], "output": {"store": str(tmp_path / "site"), "codec": {"name": "zstd", "level": 15}},
                                       "build": {"processes": 0}})
    assert build(load_pipeline(config), workers=1, settings=BuildSettings(journal_seconds=0.05)).published
    journaled = [i for i, (_, what) in enumerate(events) if what == "journal"]
    assert journaled, "the build wrote no journal batch"
    for i in journaled:
        thread = events[i][0]
        before = [what for name, what in events[:i] if name == thread]
        assert before and before[-1] == "flush", events


def test_resumed_items_whose_data_is_gone_are_converted_again_next_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An interrupted build's journaled item whose chunk is gone (a crash that lost it; here
    deleted): the resuming build's check finds it missing and refuses to publish, as for any
    missing object, and drops that journal, so the build after converts the item again. It used
    to resume the same record, and fail the same way, at every build."""
    from publisher.errors import StoreError

    config, store, before = previous_release(tmp_path, 3)
    monkeypatch.setenv("SKYSHELF_JOURNAL_SECONDS", "0")  # (the killed build's: written as items finish)
    _killed_after(config, r"/progress/", nth=3)
    record = json.loads(next(iter(sorted((store / "releases").glob("*/progress/*.json")))).read_text())[0]
    chunk = next((store / record["data_prefixes"][0]).rglob("c/0/0"))
    chunk.unlink()
    with pytest.raises(StoreError, match=r"is incomplete.*an interrupted build \(\S+\) had finished \(lost in a crash\?\): its journal is dropped"):
        build(load_pipeline(config), workers=1)
    assert (store / "catalog.json").read_bytes() == before
    report = build(load_pipeline(config), workers=1)
    assert report.published and report.resumed == 0 and report.converted == 37
    node = record["node_path"]
    entry = Catalog.open_full(Store(str(store))).entry(node)
    assert entry.data_url is not None and report.release in entry.data_url
    np.testing.assert_array_equal(zarr.open_array(str(store / entry.data_url), mode="r")[...], np.load(tmp_path / f"{node}.npy"))


def test_the_sweep_leaves_a_folder_whose_build_holds_its_lock(tmp_path: Path) -> None:
    """A container sharing this machine's name and /tmp runs builds whose process ids mean
    nothing here: a folder named with a dead id here, but whose lock a live process holds, is
    not swept (the sweep removed a live build's plan and node table); once let go, it is."""
    import fcntl

    from publisher.scratch import Scratch

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    pid = int(dead.stdout)  # (an id no process has now)
    (tmp_path / "own").mkdir()
    mine = Scratch("nodes", str(tmp_path / "own"))  # a build's: it holds its lock file
    assert sweep(str(tmp_path / "own")) == [] and (Path(mine.folder) / "lock").exists()
    other = tmp_path / "shared" / f"skyshelf-nodes-{HOST}-{pid}-abc123"
    other.mkdir(parents=True)
    (other / "lock").write_bytes(b"")
    hold = "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_WRONLY); fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); time.sleep(60)"
    holder = subprocess.Popen([sys.executable, "-c", hold, str(other / "lock")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        assert sweep(str(tmp_path / "shared")) == [] and other.exists()
    finally:
        holder.kill()
        holder.wait()
    with open(other / "lock", "rb") as f:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)  # let go by the process's end
    from publisher import scratch

    scratch._swept.discard(str(tmp_path / "shared"))  # (once per process, per folder)
    assert sweep(str(tmp_path / "shared")) == [str(other)] and not other.exists()
    mine.close()


def test_a_published_release_missing_data_is_not_taken_for_an_interrupted_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Objects of the published release gone (deleted by hand), while an interrupted build's
    journal is resumed: the error says they were deleted, and the interrupted build's journal,
    whose data is whole, stays."""
    from publisher.errors import StoreError

    config, store, _ = previous_release(tmp_path, 3)
    published = _release(store, "catalog.json")  # frames 0-2, which the next release reuses where they are
    assert build(load_pipeline(config), workers=1).converted == 37
    _frames(tmp_path / "src", 40, 48)
    monkeypatch.setenv("SKYSHELF_JOURNAL_SECONDS", "0")
    _killed_after(config, r"/progress/", nth=3)
    journals = sorted(store.glob("releases/*/progress/*.json"))
    next((store / "releases" / published / "data" / "src" / "frame_00.zarr").rglob("c/0/0")).unlink()
    with pytest.raises(StoreError, match=rf"is incomplete.*releases/{published}/data/src/frame_00\.zarr.*Were they deleted while the build ran\?") as failed:
        build(load_pipeline(config), workers=1)
    assert "interrupted build" not in str(failed.value)
    assert sorted(store.glob("releases/*/progress/*.json")) == journals
