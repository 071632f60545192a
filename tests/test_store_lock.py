"""One writer of a store's releases at a time (publisher/store_lock.py), with real concurrent
processes on a folder, moto's server and SeaweedFS: a second build fails at once naming the
first, or waits for it with --wait; a lock whose holder died is taken over (at once on its host,
after it went stale elsewhere, by exactly one of the builds that found it stale); and a build
whose lock was taken over never switches the catalog."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from publisher import store_lock
from publisher.build import build
from publisher.config import load_pipeline
from publisher.releases import list_releases, rollback
from publisher.store_lock import LOCK_KEY, StoreBusy, exclusive
from publisher.stores import Store

from .conftest import write_pipeline
from .servers import S3Server, moto_server, seaweedfs
from .test_s3 import environ


def _tree(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "a.csv").write_text("x,y\n1,2\n")
    return folder


def _publish(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "publisher.cli", *args], env={**os.environ, **env},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _until(process: subprocess.Popen[str], text: str) -> str:
    """What ``process`` printed up to the line that says ``text`` (everything, should it end first)."""
    assert process.stdout is not None
    seen = ""
    while text not in seen:
        line = process.stdout.readline()
        if not line:
            break
        seen += line
    return seen


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], S3Server]]:
    """moto's server or SeaweedFS ("moto", "seaweedfs"), each started once for the module when a test
    first asks, with the bucket ``locks`` (each test's stores are under a prefix of its own)."""
    with contextlib.ExitStack() as stack:
        started: dict[str, S3Server] = {}

        def server(kind: str) -> S3Server:
            if kind not in started:
                started[kind] = stack.enter_context((moto_server if kind == "moto" else seaweedfs)(tmp_path_factory.mktemp(kind)))
                started[kind].create_bucket("locks")
            return started[kind]

        yield server


@pytest.fixture(scope="module", params=["local", "moto", "seaweedfs"])
def target(request: pytest.FixtureRequest, servers: Callable[[str], S3Server],
           tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, str], S3Server | None]:
    if request.param == "local":
        return str(tmp_path_factory.mktemp("stores")), {}, None
    server = servers(request.param)
    return "s3://locks", server.env(), server


def _store(url: str, server: S3Server | None) -> Store:
    return Store(url, **(server.storage_options() if server else {}))


def _held(store: Store) -> bool:
    if store.is_local:
        path = Path(store.path(LOCK_KEY))
        return path.exists() and path.stat().st_size > 0
    return store.exists(LOCK_KEY)


def test_two_builds_at_once(target: tuple[str, dict[str, str], S3Server | None], tmp_path: Path) -> None:
    """A build (this process's: started at once, its modules imported) holds the lock once it
    converted its item, until told to go on; two ``publish build`` processes meanwhile: one fails
    at once naming it, the other waits for it and then finds nothing changed."""
    base, env, server = target
    url = f"{base}/two-{tmp_path.name}"
    tree = _tree(tmp_path / "tree")
    pipeline = write_pipeline(tree, {"sources": [{"path": "a.csv"}], "output": {"store": url}})
    store = _store(url, server)
    go, outcome = threading.Event(), []

    def hold(event: str, info: dict[str, object]) -> None:
        if event == "done":
            go.wait(120)

    def first_build() -> None:
        try:
            outcome.append(build(load_pipeline(pipeline), progress=hold))
        except BaseException as exc:  # noqa: BLE001 (said by the assertion below)
            outcome.append(exc)

    with environ(env):
        first = threading.Thread(target=first_build, name="first build")
        first.start()
        try:
            deadline = time.monotonic() + 60
            while not _held(store) and first.is_alive() and time.monotonic() < deadline:
                time.sleep(0.01)
            assert _held(store), f"the first build never took the lock: {outcome}"
            second = _publish("build", "-c", str(pipeline), env=env)
            waiting = _publish("build", "-c", str(pipeline), "--wait", "300", env=env)
            out = second.communicate(timeout=120)[0]
            assert first.is_alive()
            assert second.returncode == 1, out
            assert "is busy: publish build (pid" in out and f"pid {os.getpid()} on" in out and "stopped before writing anything" in out, out
            assert "Traceback" not in out
            waited = _until(waiting, "waiting up to 300 s for it")  # the waiting build has started and found the lock held
            assert waiting.poll() is None, waited
        finally:
            go.set()
            first.join(300)
    assert not first.is_alive() and len(outcome) == 1 and getattr(outcome[0], "published", False), outcome
    assert waiting.stdout is not None
    waited += waiting.stdout.read()
    assert waiting.wait(timeout=300) == 0, waited
    assert "nothing changed" in waited, waited  # it planned after the first build's switch
    assert waited.count("waiting up to 300 s for it") == 1, waited  # it said, once, why it sat there
    releases = list_releases(store)
    assert len(releases) == 1 and releases[0].current and releases[0].catalog is not None  # nothing of the others
    assert json.loads(store.read_bytes("catalog.json"))["release"] == releases[0].id == outcome[0].release
    assert not _held(store)


def test_rollback_waits_for_a_build(target: tuple[str, dict[str, str], S3Server | None], tmp_path: Path) -> None:
    base, env, server = target
    url = f"{base}/roll-{tmp_path.name}"
    store = _store(url, server)
    with environ(env), exclusive(store, "publish build"):
        with pytest.raises(StoreBusy, match="is busy: publish build"):
            rollback(store, "20260101T000000Z-0000")
        with pytest.raises(StoreBusy, match="still busy after"):
            rollback(store, "20260101T000000Z-0000", wait=0.3)


@pytest.mark.parametrize("kind", ["moto", "seaweedfs", "memory"])
def test_a_stale_lock_is_taken_over_by_one(kind: str, servers: Callable[[str], S3Server], tmp_path: Path) -> None:
    """A holder that stopped refreshing is taken over after ``stale_after``, by exactly one of the
    processes that find it stale; the old holder's confirm then fails, and its release leaves the
    new holder's lock alone."""
    with contextlib.ExitStack() as stack:
        if kind == "memory":
            store = Store(f"memory://locks-{tmp_path.name}")
        else:
            server = servers(kind)
            store = Store(f"s3://locks/stale-{tmp_path.name}", **server.storage_options())
        old = stack.enter_context(exclusive(store, "old build", stale_after=3, every=3600))
        with pytest.raises(StoreBusy, match="is busy: old build"):  # (its own threshold: a slow server's requests
            stack.enter_context(exclusive(store, "too soon", stale_after=60))  # had let 3 s pass, on a busy host)
        time.sleep(3.1)
        won: list[str] = []
        lost: list[str] = []
        barrier = threading.Barrier(4)

        def take(name: str) -> None:
            barrier.wait()
            try:
                with exclusive(store, name, stale_after=3, every=3600):
                    won.append(name)
                    time.sleep(0.3)  # held while the others try
            except StoreBusy:
                lost.append(name)

        threads = [threading.Thread(target=take, args=(f"taker {i}",)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if kind != "memory":  # (fsspec's other file systems have no conditional writes: checked, then written)
            assert len(won) == 1 and len(lost) == 3, (won, lost)
        with pytest.raises(StoreBusy, match="taken over"):
            old.confirm()
        assert not store.exists(LOCK_KEY)  # the winner released it; the old holder deletes nothing of anyone's


@pytest.mark.parametrize("kind", ["local", "moto"])
def test_a_dead_holder_here_frees_the_lock_at_once(kind: str, servers: Callable[[str], S3Server], tmp_path: Path) -> None:
    with contextlib.ExitStack() as stack:
        if kind == "local":
            store = Store(str(tmp_path / "site"))
        else:
            server = servers("moto")
            store = Store(f"s3://locks/dead-{tmp_path.name}", **server.storage_options())
            stack.enter_context(environ(server.env()))
        code = ("import sys, time; from publisher.stores import Store; from publisher.store_lock import exclusive\n"
                f"store = Store({store.url!r}, **{server.storage_options() if kind != 'local' else {}!r})\n"
                "with exclusive(store, 'killed build'):\n    print('held', flush=True); time.sleep(600)\n")
        holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(StoreBusy, match=f"killed build \\(pid {holder.pid} on"):
            stack.enter_context(exclusive(store, "next build"))
        holder.kill()
        holder.wait()
        with exclusive(store, "next build"):  # at once, though not stale (30 minutes)
            pass


def test_a_live_holder_in_another_pid_namespace_keeps_the_lock(servers: Callable[[str], S3Server], tmp_path: Path) -> None:
    """A build in a container sharing the host's name (docker --network host, Kubernetes
    hostNetwork: its own PID namespace) found the holder's pid not running there, took it for a
    build killed on this host and took the live build's lock at once: two builds held it."""
    import shutil

    server = servers("moto")
    store = Store(f"s3://locks/pidns-{tmp_path.name}", **server.storage_options())
    code = ("import sys; from publisher.stores import Store; from publisher.store_lock import exclusive, StoreBusy\n"
            f"store = Store({store.url!r}, **{server.storage_options()!r})\n"
            "try:\n    exclusive(store, 'contained build').__enter__()\n    print('took it')\n"
            "except StoreBusy as exc:\n    print('busy:', exc)\n")
    unshare = ["unshare", "--user", "--map-root-user", "--pid", "--fork", "--mount-proc"]
    if shutil.which("unshare") is None or subprocess.run([*unshare, "true"], capture_output=True, check=False).returncode != 0:
        pytest.skip("no unshare(1), or this machine does not let it make a PID namespace")
    with exclusive(store, "live build"):
        done = subprocess.run([*unshare, sys.executable, "-c", code], capture_output=True, text=True, check=False, cwd=os.getcwd(),
                              env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
        assert done.stdout.startswith("busy: ") and "live build (pid" in done.stdout, done.stdout + done.stderr
    with exclusive(store, "next build"):
        pass


@pytest.mark.parametrize("heartbeat", ["2026-12-07T04:00:00Z", None, [1], "Infinity", 10**400])
def test_a_lock_or_marker_whose_heartbeat_is_not_a_number_is_stale(servers: Callable[[str], S3Server], tmp_path: Path, heartbeat: object) -> None:
    """A damaged lock object (its heartbeat a date, null): every build failed with a TypeError's
    traceback until someone deleted it; ``publish releases`` and gc too, for such a marker."""
    from publisher.releases import Release

    server = servers("moto")
    store = Store(f"s3://locks/beat-{tmp_path.name}", **server.storage_options())
    store.write_bytes(LOCK_KEY, json.dumps({"what": "old build", "host": "elsewhere", "pid": 1, "heartbeat": heartbeat}).encode())
    with exclusive(store, "next build"):  # taken over as stale
        assert json.loads(store.read_bytes(LOCK_KEY))["what"] == "next build"
    assert not Release("20260101T000000Z-aaaaaa", False, None, building={"heartbeat": heartbeat, "host": "elsewhere", "pid": 1}).alive()


def test_a_build_whose_lock_was_taken_over_does_not_switch(servers: Callable[[str], S3Server], tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The lock goes stale while a build converts (its refreshes stopped) and another process takes
    it: the build's confirm before the switch fails, and the catalog stays as it was."""
    server = servers("moto")  # (the module's)
    url = f"s3://locks/over-{tmp_path.name}"
    tree = _tree(tmp_path / "tree")
    pipeline = load_pipeline(write_pipeline(tree, {"sources": [{"path": "*.csv"}], "output": {"store": url}}))
    store = Store(url, **server.storage_options())
    with environ(server.env()):
        first = build(pipeline)
        (tree / "b.csv").write_text("x,y\n3,4\n")
        monkeypatch.setattr(store_lock, "STALE_AFTER", 0.5)
        monkeypatch.setattr(store_lock, "REFRESH_SECONDS", 3600)
        taken: list[contextlib.ExitStack] = []

        def progress(event: str, info: dict[str, object]) -> None:
            if event == "done" and not taken:
                time.sleep(0.6)
                stack = contextlib.ExitStack()
                stack.enter_context(exclusive(store, "another build"))
                taken.append(stack)

        with pytest.raises(StoreBusy, match="taken over by another build"):
            build(pipeline, progress=progress)
        assert taken, "the build never reported an item"
        taken[0].close()
    assert json.loads(store.read_bytes("catalog.json"))["release"] == first.release
    assert [r.id for r in list_releases(store) if r.catalog is not None] == [first.release]


#: Forks PROCESSES processes (once the store's client is imported: one start-up, not one each, and
#: they set off together) that each increment a counter in a file (read, then write: not atomic)
#: under the store's lock, ROUNDS times, and print how often they found it held.
COUNTING = """
import os, sys, time, traceback
from pathlib import Path
from publisher.stores import Store
from publisher.store_lock import exclusive
url, counter, options, rounds, processes = sys.argv[1], Path(sys.argv[2]), eval(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
if url.startswith("s3://"):
    import s3fs
def count():
    store, busy = Store(url, **options), []
    for _ in range(rounds):
        with exclusive(store, "counter", wait=120, sleep=lambda s: (busy.append(s), time.sleep(0.002))):
            n = int(counter.read_text())
            time.sleep(0.001)
            counter.write_text(str(n + 1))
    print("busy", len(busy), flush=True)
children = []
for _ in range(processes):
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            count()
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    children.append(pid)
sys.exit(sum(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) != 0 for pid in children))
"""


def test_the_lock_excludes_under_contention(target: tuple[str, dict[str, str], S3Server | None], tmp_path: Path) -> None:
    """Six processes take the lock over and over, each incrementing a counter that only mutual
    exclusion keeps exact (a local lock file is deleted by each holder as it leaves, while others
    wait on it: they must not lock the deleted one), and they did contend: each found it held."""
    base, _, server = target
    rounds = 100 if server is None else 8
    url, options = f"{base}/count-{tmp_path.name}", server.storage_options() if server else {}
    counter = tmp_path / "counter"
    counter.write_text("0")
    done = subprocess.run([sys.executable, "-c", COUNTING, url, str(counter), repr(options), str(rounds), "6"],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert int(counter.read_text()) == 6 * rounds
    busy = [int(line.split()[1]) for line in done.stdout.splitlines() if line.startswith("busy ")]
    assert len(busy) == 6 and sum(busy) >= 6, done.stdout  # (a wait each time one found the lock held)
    assert not Store(url, **options).exists(LOCK_KEY)


@pytest.mark.parametrize("kind", ["moto", "seaweedfs"])
def test_a_missing_bucket_is_named_not_taken_for_a_busy_store(kind: str, servers: Callable[[str], S3Server], tmp_path: Path) -> None:
    """s3fs says FileNotFoundError for a bucket that is not there; the lock took it for "the
    object is gone", and a build, gc or rollback of ``s3://no-such-bucket/...`` said "busy: another
    process is publishing to it" (with --wait, after spinning the whole wait)."""
    from publisher.errors import StoreError

    server = servers(kind)
    store = Store(f"s3://no-such-bucket-{tmp_path.name.replace('_', '-')[-20:].strip('-')}/site", **server.storage_options())
    with pytest.raises(StoreError) as caught, exclusive(store, "publish build", wait=3):
        pass
    assert not isinstance(caught.value, StoreBusy) and "no-such-bucket" in str(caught.value) and "busy" not in str(caught.value), caught.value
    assert "bucket" in str(caught.value).lower().split("no-such-bucket", 1)[1], caught.value


def test_a_lock_folder_removed_while_it_is_made_is_made_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The last holder removes the lock's folder as it leaves: makedirs that found the folder
    there, then (looking again) not a folder, raises FileExistsError, and the build failed to
    "lock": File exists (1 run of the contention test in ~20). Here makedirs meets that once."""
    real, met = os.makedirs, []

    def racing(name: str, mode: int = 0o777, exist_ok: bool = False) -> None:
        if not met:
            met.append(name)
            raise FileExistsError(17, "File exists", name)  # (as makedirs raises it when the folder went between its two looks)
        real(name, mode, exist_ok)

    store = Store(str(tmp_path / "store"))
    monkeypatch.setattr(os, "makedirs", racing)
    with exclusive(store, "racing build"):
        assert (tmp_path / "store" / LOCK_KEY).exists()
    assert met
