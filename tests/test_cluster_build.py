"""Builds on a Dask cluster (publisher/build/cluster.py): a LocalCluster of 2 worker processes
builds the demo into a folder and into S3 (moto's server), and the release is the one a local
build makes, object for object (index, manifest, chunk bytes); ``publish build --scheduler
local:2`` starts its own; a worker killed mid-build has its tasks rerun and the release is still
the same; a scheduler that cannot be reached is a clear error."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dask
import numpy as np
import pytest
from click.testing import CliRunner

from publisher.build import build
from publisher.cli import main
from publisher.config import load_pipeline
from publisher.errors import BuildFailed, ConfigError
from publisher.stores import Store

from .conftest import fetch_real, write_pipeline
from .servers import moto_server
from .test_build_demo import demo_config
from .test_s3 import environ

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, host="127.0.0.1") as c:
        yield c


ROOT = Path(__file__).resolve().parents[1]


def release_objects(store: Store) -> dict[str, bytes]:
    """Every object of the current release (both views), its id replaced, without the build report (timings)."""
    catalog = json.loads(store.read_bytes("private/catalog.json" if store.exists("private/catalog.json") else "catalog.json"))
    release = catalog["release"]
    root = store.root.removeprefix("s3://").rstrip("/")
    paths = [p for p in store.fs.find(root) if release in p.removeprefix(root) and not p.endswith("build-report.json")]
    found = {}
    for path, data in store.fs.cat(paths).items():  # one batch (s3fs fetches them concurrently)
        key = path.removeprefix(root).lstrip("/")
        found[key.replace(release, "<release>")] = _canonical(key, data).replace(release.encode(), b"<release>")
    return found


def _canonical(key: str, data: bytes) -> bytes:
    """An object's content without what only says when it was made: the catalog's ``created``; an
    index Parquet file's rows, not its compressed bytes (the release id in them compresses differently)."""
    import io

    import pyarrow.parquet as pq

    if key.endswith("/catalog.json"):
        return json.dumps({k: v for k, v in json.loads(data).items() if k != "created"}, sort_keys=True).encode()
    if key.endswith(".parquet") and "/index/" in key:
        return json.dumps(pq.read_table(io.BytesIO(data)).to_pylist(), default=str, sort_keys=True).encode()
    return data


def _build(folder: Path, config: dict[str, Any], store: str, scheduler: str | None = None) -> Store:
    folder.mkdir(parents=True, exist_ok=True)
    pipeline = load_pipeline(write_pipeline(folder, {**config, "output": {**config.get("output", {}), "store": store}}))
    build(pipeline, workers=2, scheduler=scheduler)
    return Store(store)


def test_the_demo_on_a_cluster_is_the_local_build(cluster: Any, demo_dir: Path, tmp_path: Path) -> None:
    events: list[tuple[str, dict[str, Any]]] = []
    local = _build(tmp_path / "a", demo_config(demo_dir), str(tmp_path / "local"))
    (tmp_path / "b").mkdir()
    pipeline = load_pipeline(write_pipeline(tmp_path / "b", {**demo_config(demo_dir), "output": {"store": str(tmp_path / "dask")}}))
    report = build(pipeline, workers=2, scheduler=cluster.scheduler_address, progress=lambda e, info: events.append((e, info)))
    assert report.converted >= 7 and not report.failures
    ours, theirs = release_objects(local), release_objects(Store(str(tmp_path / "dask")))
    assert sorted(ours) == sorted(theirs) and len(ours) > 50
    assert [k for k in ours if ours[k] != theirs[k]] == []
    started = next(info for event, info in events if event == "cluster")
    assert started["workers"] == 2
    assert sum(e == "done" for e, _ in events) == report.converted  # the same progress as a local build


def test_a_tagged_catalog_on_a_cluster_on_s3(demo_dir: Path, tmp_path: Path) -> None:
    """Private access classes are written by the workers under their own prefixes, on S3 (the
    build's own LocalCluster, whose workers inherit the store's credentials from the environment)."""
    config = {**demo_config(demo_dir), "rules": [*demo_config(demo_dir).get("rules", []),
                                                {"match": "tables", "access_tags": ["staff"]}, {"match": "climate", "access_tags": ["public"]}]}
    (tmp_path / "moto").mkdir()
    with moto_server(tmp_path / "moto") as server, environ({**server.env(), "AWS_REGION": "us-east-1"}):
        server.create_bucket("cluster")
        local = _build(tmp_path / "a", config, "s3://cluster/local")
        remote = _build(tmp_path / "b", config, "s3://cluster/dask", scheduler="local:2")
        ours, theirs = release_objects(local), release_objects(remote)
    assert any(k.startswith("private/") and "/data/tables/" in k for k in ours)
    assert sorted(ours) == sorted(theirs) and [k for k in ours if ours[k] != theirs[k]] == []


@pytest.mark.realdata
@pytest.mark.parametrize(("name", "folder"), [("pynxtools", "pynxtools/data"), ("scirpy", "scirpy/tests/data"), ("stardist", "stardist/data/images"),
                                              ("xarray", "xarray/tests/data")])
def test_real_data_on_a_cluster_is_the_local_build(cluster: Any, tmp_path: Path, name: str, folder: str) -> None:
    """Real third-party trees (NeXus, AnnData sparse and awkward groups, TIFF, NetCDF): the same release either way."""
    source = {"path": str(fetch_real(name) / folder), "into": "", **({"exclude": ["clonotypes_test_data/*"]} if name == "scirpy" else {})}
    config = {"sources": [source], "on_error": "skip"}
    local = _build(tmp_path / "a", config, str(tmp_path / "local"))
    remote = _build(tmp_path / "b", config, str(tmp_path / "dask"), scheduler=cluster.scheduler_address)
    ours, theirs = release_objects(local), release_objects(remote)
    assert len(ours) > 10 and sorted(ours) == sorted(theirs)
    assert [k for k in ours if ours[k] != theirs[k]] == []


def test_more_items_than_the_window_on_a_cluster(cluster: Any, tmp_path: Path) -> None:
    """600 small files (past the items a build keeps in flight: 4 batches of 32 per worker thread)
    build on the cluster into the release a local build makes, and rebuild unchanged."""
    from .test_many_files import _tree

    _tree(tmp_path / "src", 600, per_folder=150, arrays=True)
    config = {"sources": [{"path": str(tmp_path / "src"), "into": ""}]}
    local = _build(tmp_path / "a", config, str(tmp_path / "local"))
    remote = _build(tmp_path / "b", config, str(tmp_path / "dask"), scheduler=cluster.scheduler_address)
    ours, theirs = release_objects(local), release_objects(remote)
    assert len(ours) > 900 and sorted(ours) == sorted(theirs) and [k for k in ours if ours[k] != theirs[k]] == []
    again = build(load_pipeline(tmp_path / "b" / "pipeline.yml"), workers=2, scheduler=cluster.scheduler_address)
    assert again.unchanged and again.reused == 600


def test_one_big_dataset_spreads_over_the_workers(cluster: Any, tmp_path: Path) -> None:
    """An array past ``spread_bytes`` is written by slab tasks that both workers run (each opens
    the file again and reads its regions); the release equals a local build's."""
    import h5py

    from publisher.settings import BuildSettings

    (tmp_path / "src").mkdir()
    rng = np.random.default_rng(7)
    with h5py.File(tmp_path / "src" / "big.h5", "w") as f:
        f.create_dataset("entry/data", data=rng.integers(0, 5000, size=(160, 512, 512), dtype="<u2"), chunks=(1, 512, 512), compression="gzip")
        f["entry/small"] = np.arange(10)
    config = {"sources": [{"path": str(tmp_path / "src")}], "rules": [{"match": "**/data", "chunks": [2, 512, 512]}]}
    local = _build(tmp_path / "a", config, str(tmp_path / "local"))
    (tmp_path / "b").mkdir()
    pipeline = load_pipeline(write_pipeline(tmp_path / "b", {**config, "output": {"store": str(tmp_path / "dask")}}))
    with distributed.get_task_stream(cluster.get_client()) as stream:
        build(pipeline, workers=2, scheduler=cluster.scheduler_address, settings=BuildSettings(spread_bytes=4 * 2**20))
    slabs = [t for t in stream.data if str(t["key"]).startswith("skyshelf-slabs-")]
    assert len(slabs) >= 5 and len({t["worker"] for t in slabs}) == 2  # 80 MiB in tasks of 16 MiB at most: five or more, so a busy host still spreads them
    ours, theirs = release_objects(local), release_objects(Store(str(tmp_path / "dask")))
    assert sorted(ours) == sorted(theirs) and [k for k in ours if ours[k] != theirs[k]] == []


def test_two_builds_share_a_cluster(tmp_path: Path) -> None:
    """Two clients build two catalogs at once on one worker with two threads: each build keeps its
    own writer threads on the worker (one build's tasks never shut the other's down)."""
    import concurrent.futures

    configs = []
    for name in ("one", "two"):
        (tmp_path / name / "src").mkdir(parents=True)
        rng = np.random.default_rng(len(name))
        for i in range(4):  # two 16 MiB slabs each: the writer hands them to its threads
            np.save(tmp_path / name / "src" / f"a{i}.npy", rng.integers(0, 50, size=(2 * 4096, 2048), dtype="<u2"))
        configs.append((tmp_path / name, {"sources": [{"path": str(tmp_path / name / "src")}]}))
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=True, dashboard_address=None, host="127.0.0.1") as shared:
        with concurrent.futures.ThreadPoolExecutor(2) as clients:
            remote = list(clients.map(lambda c: _build(c[0] / "b", c[1], str(c[0] / "dask"), scheduler=shared.scheduler_address), configs))
    for (folder, config), store in zip(configs, remote, strict=True):
        local = _build(folder / "a", config, str(folder / "local"))
        ours, theirs = release_objects(local), release_objects(store)
        assert sorted(ours) == sorted(theirs) and [k for k in ours if ours[k] != theirs[k]] == []


def test_publish_build_starts_a_local_cluster(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    for i in range(6):
        np.save(tmp_path / "src" / f"a{i}.npy", np.arange(100) * i)
    config = write_pipeline(tmp_path, {"sources": [{"path": "src"}], "output": {"store": str(tmp_path / "site")}})
    result = CliRunner().invoke(main, ["build", "-c", str(config), "--scheduler", "local:2"])
    assert result.exit_code == 0, result.output
    assert "Dask dashboard" in result.output and "2 workers" in result.output and "6 converted" in result.output
    with dask.config.set({"distributed.comm.timeouts.connect": "2s"}):  # (30 s by default: a scheduler may be starting)
        bad = CliRunner().invoke(main, ["build", "-c", str(config), "--scheduler", "tcp://127.0.0.1:9"])
    assert bad.exit_code != 0 and "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in bad.output


def test_a_cluster_build_without_distributed_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI quiets distributed's INFO lines once it is imported; without it installed the build
    says what to install (the CLI's own import made a traceback)."""
    (tmp_path / "src").mkdir()
    np.save(tmp_path / "src" / "a.npy", np.arange(3))
    config = write_pipeline(tmp_path, {"sources": [{"path": "src"}], "output": {"store": str(tmp_path / "site")}})
    monkeypatch.setitem(sys.modules, "distributed", None)  # (as if not installed)
    done = CliRunner().invoke(main, ["build", "-c", str(config), "--scheduler", "local:1"])
    assert done.exit_code == 1 and "needs the distributed package: pip install 'skyshelf[cluster]'" in done.output, done.output


def test_a_dashboard_link_template_dask_cannot_fill(tmp_path: Path) -> None:
    """Dask's ``distributed.dashboard.link`` naming a variable not set (JupyterHub's, outside it)
    only leaves the link out, saying why (the build died of Client.dashboard_link's KeyError); one
    that is no template at all stops a local cluster's start with the setting named, not Dask's
    traceback."""
    (tmp_path / "src").mkdir()
    np.save(tmp_path / "src" / "a.npy", np.arange(10))
    config = write_pipeline(tmp_path, {"sources": [{"path": "src"}], "output": {"store": str(tmp_path / "site")}})
    with dask.config.set({"distributed.dashboard.link": "{SKYSHELF_NOT_SET_HERE}/proxy/{port}/status"}):
        result = CliRunner().invoke(main, ["build", "-c", str(config), "--scheduler", "local:1"])
    assert result.exit_code == 0, result.output
    assert "names {SKYSHELF_NOT_SET_HERE}, which is not set in the environment" in " ".join(result.output.split())
    with dask.config.set({"distributed.dashboard.link": "{port"}):
        bad = CliRunner().invoke(main, ["build", "-c", str(config), "--scheduler", "local:1"])
    assert bad.exit_code != 0 and "Traceback" not in bad.output
    assert "distributed.dashboard.link ('{port') is not a template it can fill" in " ".join(bad.output.split())


@pytest.mark.parametrize("scheduler", ["local:0", "tcp://127.0.0.1", "inproc://foo", "tcp://", "tcp://host:99999", "tcp://host:0", "tcp://[::1",
                                       "tcp://[::1:8786", "tcp://user@host:8786", "local:1025", "local:9999"])
def test_a_wrong_scheduler_in_the_pipeline_names_the_line(tmp_path: Path, scheduler: str) -> None:
    """Addresses no client can use (no port; inproc://, which is another process's memory) are
    refused with the line, not met later as a traceback from distributed."""
    config = write_pipeline(tmp_path, {"sources": [{"path": "src"}], "build": {"scheduler": scheduler}})
    with pytest.raises(ConfigError, match=r"pipeline.yml:\d+: build.scheduler: should be a Dask scheduler's address, tcp://host:8786 .*or local:N"):
        load_pipeline(config)
    with pytest.raises(ConfigError, match=r"pipeline.yml:\d+: build.threads_per_worker: Input should be a valid integer \(got true\)"):
        load_pipeline(write_pipeline(tmp_path, {"sources": [{"path": "src"}], "build": {"threads_per_worker": True}}))


def test_a_scheduler_address_distributed_refuses_is_said_as_such(tmp_path: Path) -> None:
    """tls:// without Dask's TLS settings (distributed raises TypeError): the build says which
    address and why, exit 1, no traceback; and the process ends then
    (the half-made Client outlived the error and, closed at the interpreter's exit, waited twice
    the connect timeout, then printed its own traceback)."""
    (tmp_path / "src").mkdir()
    np.save(tmp_path / "src" / "a.npy", np.arange(10))
    config = write_pipeline(tmp_path, {"sources": [{"path": "src"}], "output": {"store": str(tmp_path / "site")}})
    env = {**os.environ, "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "3s"}
    bad = subprocess.run([sys.executable, "-m", "publisher.cli", "build", "-c", str(config), "--scheduler", "tls://127.0.0.1:18786"], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=120, check=False)
    out = bad.stdout + bad.stderr
    assert bad.returncode == 1 and "use the Dask scheduler at tls://127.0.0.1:18786: TLS expects" in " ".join(out.split()), out
    assert "Traceback" not in out and "Exception ignored" not in out and not (tmp_path / "site" / "catalog.json").exists()


@pytest.mark.parametrize("answer", [b"", b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"], ids=["silent", "http"])
def test_a_port_that_is_no_schedulers_is_said_as_such(tmp_path: Path, answer: bytes) -> None:
    """A port that accepts and never answers (a scheduler's dashboard one digit off, a firewall's
    tarpit) held the build, and the store's lock, for good: distributed waits for the handshake
    without a deadline. One answering with another protocol's bytes made a traceback (3 EiB read
    as a frame's length). Both are said within the connect timeout, exit 1."""
    import socket
    import threading

    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def accept() -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = server.accept()
                held.append(conn)
                if answer:
                    conn.recv(1024)
                    conn.sendall(answer * 4)

    threading.Thread(target=accept, daemon=True).start()
    (tmp_path / "src").mkdir()
    np.save(tmp_path / "src" / "a.npy", np.arange(10))
    config = write_pipeline(tmp_path, {"sources": [{"path": "src"}], "output": {"store": str(tmp_path / "site")}})
    address = f"tcp://127.0.0.1:{server.getsockname()[1]}"
    try:
        done = subprocess.run([sys.executable, "-m", "publisher.cli", "build", "-c", str(config), "--scheduler", address], cwd=tmp_path,
                              env={**os.environ, "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "2s"}, capture_output=True, text=True, timeout=90,
                              check=False)
    finally:
        server.close()
        for conn in held:
            conn.close()
    out = " ".join((done.stdout + done.stderr).split())
    assert done.returncode == 1 and "Traceback" not in out, out
    assert (f"cannot reach the Dask scheduler at {address}: no Dask scheduler answered there within 2 s" in out if not answer else
            f"cannot use the Dask scheduler at {address}: what answers there is no Dask scheduler" in out), out
    assert not (tmp_path / "site" / "catalog.json").exists()


@pytest.mark.parametrize("where", [["--scheduler", "local:2"], []], ids=["local-cluster", "worker-processes"])
def test_ctrl_c_during_a_local_cluster_build(tmp_path: Path, where: list[str]) -> None:
    """Ctrl-C reaches every process of the terminal's group: the build stops ("Aborted!", exit 1,
    nothing published, no process left), without each worker process's KeyboardInterrupt
    traceback (a local cluster's, or the build's own worker processes') or distributed's INFO lines."""
    import signal

    (tmp_path / "src").mkdir()
    rng = np.random.default_rng(0)
    for i in range(40 if where else 16):
        np.save(tmp_path / "src" / f"a{i:02d}.npy", rng.integers(0, 1000, (1024, 1024) if where else (64, 64), dtype="<u2"))
    if not where:  # small files done on the worker processes, then a big one on threads: the workers wait idle for tasks. Its
        # slabs at zstd level 19 take ~70 s on two cores: they went on after Ctrl-C until every one was written (the
        # build's end joins the thread writing it), now those not begun are not, nor the chunks left of those begun
        np.save(tmp_path / "src" / "z_big.npy", rng.integers(0, 1000, (96, 1024, 1024), dtype="<u2"))
    config = write_pipeline(tmp_path, {"sources": [{"path": "src"}], "output": {"store": str(tmp_path / "site"), "codec": {"name": "zstd", "level": 19}}})
    out = tmp_path / "out.txt"
    with out.open("w") as sink:
        build = subprocess.Popen([sys.executable, "-m", "publisher.cli", "build", "-c", str(config), *where], cwd=tmp_path,
                                 stdout=sink, stderr=subprocess.STDOUT, start_new_session=True,
                                 preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # noqa: PLW1509 (as a terminal's foreground job: a suite run in the background ignores SIGINT)
        deadline = time.monotonic() + 120
        while where and "building on a Dask cluster" not in out.read_text() and build.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1.0 if where else 3.0)  # converting
        os.killpg(build.pid, signal.SIGINT)
        code = build.wait(60)
    text = out.read_text()
    assert code == 1 and "Aborted!" in text and "Traceback" not in text and "INFO" not in text, text
    for _ in range(60):  # (the workers end as their nannies close them)
        if not (left := subprocess.run(["pgrep", "-g", str(build.pid)], capture_output=True, check=False).stdout):
            break
        time.sleep(0.5)
    assert not left, left
    assert not (tmp_path / "site" / "catalog.json").exists()


def test_workers_without_skyshelf_are_refused_before_any_task(tmp_path: Path) -> None:
    """A worker that cannot import the build's tasks (an image without Skyshelf: here a worker
    whose preload hides the package) would die at its first task and leave the build waiting
    for workers forever; the build checks the workers first and says which and what to install."""
    hide = tmp_path / "hide_skyshelf.py"
    hide.write_text("import sys\nsys.modules['publisher'] = None  # as if not installed\n")
    raised = _built_on_workers_with(hide, tmp_path, joining_later=False)
    assert re.search(r"the Dask worker tcp://127\.0\.0\.1:\d+ of tcp://.* cannot run the build's tasks \(ModuleNotFoundError: .*publisher.*\): "
                     "install the same Skyshelf", str(raised)), raised


def test_a_worker_of_another_version_that_joins_later_converts_nothing(tmp_path: Path) -> None:
    """The workers are checked when the build connects; one that joins afterwards (an adaptive
    cluster scaling up from an older image) is checked by the build's first task on it, which
    refuses to convert (another version may write other bytes into the same release)."""
    other = tmp_path / "other_version.py"  # what an older installation's metadata answers
    other.write_text("import importlib.metadata as m\nreal = m.__dict__.setdefault('real_version', m.version)  # (run twice a worker)\n"
                     "m.version = lambda name: '0.0.1' if name == 'skyshelf' else real(name)\n")
    raised = _built_on_workers_with(other, tmp_path, joining_later=True)
    assert re.search(r"the Dask worker tcp://127\.0\.0\.1:\d+ has Skyshelf 0\.0\.1, the build's client \S+: install the same version",
                     str(raised)), raised


def test_a_remote_cluster_without_workers_is_waited_for_and_the_wait_said(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A remote cluster may scale to none and back (an HPC queue's workers come when the queue
    starts them): the build waits, tells the data manager once no worker has come for a while,
    and goes on when one does."""
    from publisher.build import cluster as tasks

    monkeypatch.setattr(tasks, "NO_WORKERS_SECONDS", 1.0)
    (tmp_path / "src").mkdir()
    np.save(tmp_path / "src" / "a.npy", np.arange(10))
    pipeline = load_pipeline(write_pipeline(tmp_path, {"sources": [{"path": "src"}], "output": {"store": str(tmp_path / "site")}}))
    events: list[tuple[str, dict[str, Any]]] = []
    said = threading.Event()

    def progress(event: str, info: dict[str, Any]) -> None:
        events.append((event, info))
        if event == "no-workers":
            said.set()

    with distributed.LocalCluster(n_workers=0, threads_per_worker=1, processes=True, dashboard_address=None, host="127.0.0.1") as queue:
        outcome: list[Any] = []
        running = threading.Thread(target=lambda: outcome.append(_raised(build, pipeline, workers=1, scheduler=queue.scheduler_address,
                                                                         progress=progress)), daemon=True)
        running.start()
        assert said.wait(60), events
        assert running.is_alive() and not outcome  # still waiting: not given up
        queue.scale(1)
        running.join(120)
    assert outcome == [None], outcome
    info = dict(events)["no-workers"]
    assert info["scheduler"] == queue.scheduler_address and info["seconds"] == 1.0 and info["version"] == tasks.installed_version()
    assert [e for e, _ in events].count("no-workers") == 1
    assert (tmp_path / "site" / "catalog.json").exists()
    from rich.console import Console

    from publisher.cli.build_cmd import _Progress

    shown = io.StringIO()
    _Progress(Console(file=shown, width=400))("no-workers", info)  # what `publish build` prints of it
    assert f"the Dask cluster {queue.scheduler_address} has had no worker for 1 s; waiting for workers (each needs Skyshelf" in shown.getvalue()


def test_a_worker_that_cannot_write_the_store_is_refused_at_connect(tmp_path: Path) -> None:
    """A worker that sees the store but cannot write it (here a read-only mount of it, in a mount
    namespace of its own; a read-only role on S3) failed every item it converted, blamed on the
    files (with on_error: skip, a release without them). The check at connect writes there too."""
    store = tmp_path / "site"
    store.mkdir()
    (tmp_path / "src").mkdir()
    np.save(tmp_path / "src" / "a.npy", np.arange(10))
    pipeline = load_pipeline(write_pipeline(tmp_path, {"sources": [{"path": "src"}], "output": {"store": str(store)}, "on_error": "skip"}))
    with distributed.LocalCluster(n_workers=0, processes=True, dashboard_address=None, host="127.0.0.1") as cluster:
        readonly = f"mount --bind {store} {store} && mount -o remount,bind,ro {store} && exec {sys.executable} -m distributed.cli.dask_worker " \
                   f"{cluster.scheduler_address} --nworkers 1 --nthreads 1 --no-dashboard --host 127.0.0.1"
        worker = subprocess.Popen(["unshare", "--mount", "--map-root-user", "sh", "-c", readonly], cwd=ROOT, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        try:
            with distributed.Client(cluster.scheduler_address, set_as_default=False) as watching:
                watching.wait_for_workers(1, timeout=60)
            with pytest.raises(ConfigError, match=r"the Dask worker tcp://127\.0\.0\.1:\d+ cannot write to the store .*Read-only file system"):
                build(pipeline, scheduler=cluster.scheduler_address)
        finally:
            worker.terminate()
            worker.wait(30)
    assert not (store / "catalog.json").exists()
    assert not list((store / "releases").iterdir())  # (the folder the build made for the check goes with it)


def test_the_releases_folder_is_the_builds_before_a_worker_checks_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The workers' check at connect writes into the release: on a shared file system the folder
    it made was the worker's user's, and the build's own writes there could be refused. The build's
    process makes it first (workers in this process here, to watch them); no probe is left."""
    import distributed

    from publisher.build import dask_client

    found: list[bool] = []
    real = dask_client.reach

    def watched(pipeline: Any, store_url: str, settings: Any, folders: list[str], every: bool = True, release: str | None = None) -> Any:
        found.append(release is not None and (Path(store_url) / release).is_dir())
        return real(pipeline, store_url, settings, folders, every, release)

    monkeypatch.setattr(dask_client, "reach", watched)
    store = tmp_path / "site"
    (tmp_path / "src").mkdir()
    np.save(tmp_path / "src" / "a.npy", np.arange(10))
    pipeline = load_pipeline(write_pipeline(tmp_path, {"sources": [{"path": "src"}], "output": {"store": str(store)}}))
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, protocol="tcp", dashboard_address=None,
                                  host="127.0.0.1") as c:
        report = build(pipeline, scheduler=c.scheduler_address)
    assert found == [True, True]
    assert not [p for p in store.rglob(".reach-*")]
    assert (store / "releases" / report.release).is_dir()

    # a build that stops at its plan (on_error: fail, a symlink loop) leaves no release folder the
    # check made (empty, no release `publish gc` sees: one was left by each such build)
    (tmp_path / "src" / "loop").symlink_to("loop")
    failing = load_pipeline(write_pipeline(tmp_path, {"sources": [{"path": "src"}], "output": {"store": str(store)}, "on_error": "fail"}))
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, protocol="tcp", dashboard_address=None,
                                  host="127.0.0.1") as c, pytest.raises(BuildFailed, match="symlink loop"):
        build(failing, scheduler=c.scheduler_address)
    assert sorted(p.name for p in (store / "releases").iterdir()) == [report.release]


def _built_on_workers_with(preload: Path, tmp_path: Path, joining_later: bool, output: dict[str, Any] | None = None) -> ConfigError:
    """A one-file build (into ``output``, else a folder) on a cluster whose one worker runs
    ``preload``: there from the start, or joining once the build checked the (no) workers and
    sent its task. The build's ConfigError."""
    (tmp_path / "src").mkdir()
    np.save(tmp_path / "src" / "a.npy", np.arange(10))
    pipeline = load_pipeline(write_pipeline(tmp_path, {"sources": [{"path": "src"}], "output": output or {"store": str(tmp_path / "site")}}))
    with distributed.LocalCluster(n_workers=0 if joining_later else 1, threads_per_worker=1, processes=True, dashboard_address=None,
                                  host="127.0.0.1", preload=[str(preload)]) as cluster:
        outcome: list[BaseException | None] = []
        running = threading.Thread(target=lambda: outcome.append(_raised(build, pipeline, workers=1, scheduler=cluster.scheduler_address)),
                                   daemon=True)
        running.start()
        if joining_later:
            for _ in range(600):
                if cluster.scheduler.tasks or not running.is_alive():
                    break
                threading.Event().wait(0.1)
            assert cluster.scheduler.tasks, outcome
            cluster.scale(1)
        running.join(120)  # (a worker without Skyshelf used to leave it waiting forever)
    assert outcome and isinstance(outcome[0], ConfigError), outcome
    assert not (tmp_path / "site" / "catalog.json").exists()
    return outcome[0]


def _raised(fn: Any, *args: Any, **kwargs: Any) -> BaseException | None:
    try:
        fn(*args, **kwargs)
    except BaseException as exc:  # noqa: BLE001 (what the test looks at)
        return exc
    return None


def test_a_worker_killed_mid_build(cluster: Any, tmp_path: Path) -> None:
    """Kill one worker process once items are running: Dask reruns its tasks on the other (and on
    the restarted one) and the release equals a local build's."""
    (tmp_path / "src").mkdir()
    rng = np.random.default_rng(16)
    for i in range(40):
        np.save(tmp_path / "src" / f"frame_{i:02d}.npy", rng.integers(0, 1000, size=(768, 768), dtype="<u2"))
    config = {"sources": [{"path": str(tmp_path / "src")}], "output": {"codec": {"name": "zstd", "level": 12}}}
    local = _build(tmp_path / "a", config, str(tmp_path / "local"))
    client = cluster.get_client()
    pids = client.run(os.getpid)
    killed: list[int] = []  # tasks the killed worker was running or holding

    def progress(event: str, info: dict[str, Any]) -> None:
        if event == "done" and not killed:
            busy = {ws.address: len(ws.processing) for ws in cluster.scheduler.workers.values()}
            address = max(busy, key=lambda a: busy[a])
            killed.append(busy[address])
            os.kill(pids[address], signal.SIGKILL)

    (tmp_path / "b").mkdir()
    pipeline = load_pipeline(write_pipeline(tmp_path / "b", {**config, "output": {**config["output"], "store": str(tmp_path / "dask")}}))
    report = build(pipeline, workers=2, scheduler=cluster.scheduler_address, progress=progress)
    assert killed and killed[0] >= 1, "the worker was killed with nothing in flight: the test proved nothing"
    assert report.converted == 40 and not report.failures
    ours, theirs = release_objects(local), release_objects(Store(str(tmp_path / "dask")))
    assert sorted(ours) == sorted(theirs) and [k for k in ours if ours[k] != theirs[k]] == []
    client.wait_for_workers(2, timeout=60)  # the nanny restarted it, for the next test


def test_records_reach_the_journal_whichever_side_takes_them_first(cluster: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A task's done-callback (a thread of the Dask client) journals its records; the build taking
    the results released the future first when the callback came late (a busy host), and the
    callback's ``result()`` then failed with a traceback ("Couldn't gather keys") and the batch's
    records never reached the journal. Here the callback is made late on purpose."""
    import time

    from publisher.build import cluster as cluster_module
    from publisher.build.journal import Journal

    on_time = cluster_module.ClusterItems._finished

    def late(self: Any, *args: Any) -> None:
        time.sleep(0.5)
        on_time(self, *args)

    journaled: list[str] = []
    add = Journal.add
    monkeypatch.setattr(cluster_module.ClusterItems, "_finished", late)
    monkeypatch.setattr(Journal, "add", lambda self, record: (journaled.append(record.node_path), add(self, record))[-1])
    (tmp_path / "src").mkdir()
    for i in range(6):
        np.save(tmp_path / "src" / f"frame_{i}.npy", np.full((64, 64), i, "<u2"))
    _build(tmp_path / "b", {"sources": [{"path": str(tmp_path / "src")}]}, str(tmp_path / "site"), cluster.scheduler_address)
    assert sorted(journaled) == [f"src/frame_{i}" for i in range(6)]


def test_a_task_dask_gave_up_on_runs_its_items_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Dask gives up on a task once the workers running it have died ``allowed-failures`` times
    (KilledWorker; here at the first death): its items run again, each a task of its own, and the
    release is whole (a file that kills every worker running it fails alone:
    tests/test_build_processes.py)."""
    import threading
    import time

    import dask

    from publisher.build import cluster as cluster_module

    alone: list[int] = []
    one_by_one = cluster_module.ClusterItems.one_by_one
    monkeypatch.setattr(cluster_module.ClusterItems, "one_by_one", lambda self, batch: (alone.append(len(batch.items)), one_by_one(self, batch))[1])
    (tmp_path / "src").mkdir()
    rng = np.random.default_rng(7)
    for i in range(8):
        np.save(tmp_path / "src" / f"frame_{i}.npy", rng.integers(0, 1000, size=(1024, 1024), dtype="<u2"))
    config = {"sources": [{"path": str(tmp_path / "src")}], "output": {"codec": {"name": "zstd", "level": 19}}}
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}), \
            distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None, host="127.0.0.1") as one:
        pid = next(iter(one.get_client().run(os.getpid).values()))

        def kill_once_running() -> None:
            while not any(w.processing for w in one.scheduler.workers.values()):
                time.sleep(0.01)
            os.kill(pid, signal.SIGKILL)

        (tmp_path / "b").mkdir()
        pipeline = load_pipeline(write_pipeline(tmp_path / "b", {**config, "output": {**config["output"], "store": str(tmp_path / "site")}}))
        threading.Thread(target=kill_once_running, daemon=True).start()
        report = build(pipeline, workers=1, scheduler=one.scheduler_address)
    assert alone, "the worker was not killed while it ran a task"
    assert report.published and not report.failures and report.converted == 8


def test_workers_joining_after_the_build_started_get_work(tmp_path: Path) -> None:
    """dask-jobqueue's workers come as the queue starts their jobs, an adaptive cluster's as it
    scales: the build sized its items in flight from the workers there when it connected (none:
    two batches), and three late workers were never all busy at once. It counts them again."""
    (tmp_path / "src").mkdir()
    rng = np.random.default_rng(3)
    for i in range(400):
        np.save(tmp_path / "src" / f"f{i:03d}.npy", rng.integers(0, 4000, size=(128, 256), dtype="<u2"))
    pipeline = load_pipeline(write_pipeline(tmp_path, {"sources": [{"path": "src"}],
                                                       "output": {"store": str(tmp_path / "site"), "codec": {"name": "zstd", "level": 19}}}))
    with distributed.LocalCluster(n_workers=0, threads_per_worker=1, processes=True, dashboard_address=None, host="127.0.0.1") as cluster:
        outcome: list[Any] = []
        running = threading.Thread(target=lambda: outcome.append(build(pipeline, workers=1, scheduler=cluster.scheduler_address)), daemon=True)
        running.start()
        for _ in range(600):  # connected, its first tasks sent, no worker yet
            if cluster.scheduler.tasks or not running.is_alive():
                break
            threading.Event().wait(0.05)
        cluster.scale(3)
        cluster.wait_for_workers(3, timeout=120)  # (not a client of its own: collected later, it could hang the next cluster's start)
        busy = []  # workers given a task, as the scheduler sees them (not a timing: how much work is out)
        while running.is_alive():
            busy.append(sum(bool(ws.processing) for ws in cluster.scheduler.workers.values()))
            threading.Event().wait(0.02)
        running.join()
    assert outcome and outcome[0].converted == 400
    middle = busy[len(busy) // 10: len(busy) // 2]  # (before the last batches shrink: smaller, more of them)
    assert middle and sum(middle) / len(middle) > 2.5, busy


def test_a_build_with_a_task_running_is_never_idle_on_a_shared_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two builds on one worker: one item of build A converting for longer than IDLE_SECONDS (a
    big image, slow storage) had its writer pool shut down under it by build B's next task (only
    a task's start counted as use: "cannot schedule new futures after shutdown")."""
    from concurrent.futures import ThreadPoolExecutor
    from types import SimpleNamespace

    from publisher.build import worker_state

    monkeypatch.setattr(worker_state, "IDLE_SECONDS", 0.0)
    pools = {name: ThreadPoolExecutor(1) for name in "ab"}

    def start(name: str) -> Any:
        return lambda: (SimpleNamespace(pool=pools[name]), None)

    with worker_state.state("releases/a", start("a")) as (converter, _):
        threading.Event().wait(0.01)
        with worker_state.state("releases/b", start("b")):  # B's task while A's runs
            pass
        assert converter.pool.submit(lambda: 1).result() == 1  # still A's, running
    threading.Event().wait(0.01)
    with worker_state.state("releases/b", start("b")):  # A idle now, no task of it running: let go
        pass
    with pytest.raises(RuntimeError, match="cannot schedule new futures after shutdown"):
        pools["a"].submit(lambda: 1)
    pools["b"].shutdown()


def test_a_worker_that_cannot_reach_the_store_or_the_sources_stops_the_build_naming_it(tmp_path: Path) -> None:
    """Workers started without the variables ``output.storage`` names (set on the client only):
    each item failed blaming pipeline.yml ("variable not set", which it was, here). Now the check
    of the workers names the worker; and one not seeing a source folder, that folder."""
    from publisher.build import cluster as tasks
    from publisher.build.dask_client import _reach
    from publisher.settings import BuildSettings

    (tmp_path / "src").mkdir()
    np.save(tmp_path / "src" / "a.npy", np.arange(10))
    (tmp_path / "moto").mkdir()
    names = {"endpoint_url_env": "SKYSHELF_WORKER_S3", "access_key_id_env": "SKYSHELF_WORKER_KEY",
             "secret_access_key_env": "SKYSHELF_WORKER_SECRET", "region_env": "SKYSHELF_WORKER_REGION"}
    config = {"sources": [{"path": "src"}], "output": {"store": "s3://reach/site", "storage": names}}
    pipeline = load_pipeline(write_pipeline(tmp_path, config))
    with moto_server(tmp_path / "moto") as server, \
            distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None, host="127.0.0.1") as cluster:
        server.create_bucket("reach")
        values = dict(zip(names.values(), [server.endpoint, "testing", "testing", "us-east-1"], strict=True))
        with environ(values), pytest.raises(ConfigError) as caught:  # (the workers started before: without them)
            build(pipeline, workers=1, scheduler=cluster.scheduler_address)
    said = str(caught.value)
    assert re.search(r"the Dask worker tcp://\S+ cannot open the store s3://reach/site \(ConfigError: .*SKYSHELF_WORKER_S3' is not set", said), said
    job = tasks.Job(pipeline, str(tmp_path / "site"), BuildSettings(), "releases/x", 1)
    assert _reach(job, [str(tmp_path / "elsewhere")]) == f"does not see the source folder {tmp_path / 'elsewhere'}"


def test_a_worker_joining_later_without_the_stores_credentials_stops_the_build_naming_it(tmp_path: Path) -> None:
    """The workers are checked for the store when the build connects; one that joins afterwards
    (an adaptive cluster scaling up from a job script that does not export the variables) failed
    its items blaming pipeline.yml ("variable not set"). Its first task names it and what it lacks."""
    (tmp_path / "moto").mkdir()
    names = {"endpoint_url_env": "SKYSHELF_LATE_S3", "access_key_id_env": "SKYSHELF_LATE_KEY",
             "secret_access_key_env": "SKYSHELF_LATE_SECRET", "region_env": "SKYSHELF_LATE_REGION"}
    unset = tmp_path / "no_credentials.py"  # a worker started without the variables (the client has them)
    unset.write_text("import os\nos.environ.pop('SKYSHELF_LATE_S3', None)\n")
    with moto_server(tmp_path / "moto") as server:
        server.create_bucket("late")
        values = dict(zip(names.values(), [server.endpoint, "testing", "testing", "us-east-1"], strict=True))
        with environ(values):
            said = str(_built_on_workers_with(unset, tmp_path, joining_later=True, output={"store": "s3://late/site", "storage": names}))
        assert re.search(r"^the Dask worker tcp://\S+ cannot open the store s3://late/site \(ConfigError: .*SKYSHELF_LATE_S3' is not set.*"
                         r"each worker needs the sources at the client's paths and the store with its credentials", said), said
        assert "site/catalog.json" not in [o["Key"] for o in server.client().list_objects_v2(Bucket="late").get("Contents", [])]


def test_a_late_worker_refused_at_a_slab_task_stops_the_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker of another version joining while a big array's slabs run: its first task, a slab
    task, refused it, and the refusal (a ConfigError, a ValueError) became the item's failure,
    recorded as the file's own: published without the array, and not converted again by the next
    build. It stops the build, naming the worker, as when its first task is an item's, and the
    worker logs no traceback of a failed computation."""
    import h5py

    monkeypatch.setenv("SKYSHELF_SPREAD_BYTES", str(16 * 2**20))  # (read by the build's settings: slabs of 16 MiB as tasks)
    (tmp_path / "src").mkdir()
    with h5py.File(tmp_path / "src" / "big.h5", "w") as f:
        f["a"] = np.random.default_rng(1).integers(0, 4000, size=(48, 1024, 1024), dtype="<u2")
    other = tmp_path / "other_version.py"
    other.write_text("import importlib.metadata as m\nreal = m.__dict__.setdefault('real_version', m.version)\n"
                     "m.version = lambda name: '0.0.1' if name == 'skyshelf' else real(name)\n")
    config = {"sources": [{"path": "src"}], "on_error": "skip",
              "output": {"store": str(tmp_path / "site"), "codec": {"name": "zstd", "level": 19}, "chunk_target_bytes": "1MiB"}}
    pipeline = load_pipeline(write_pipeline(tmp_path, config))
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None, host="127.0.0.1") as cluster:
        outcome: list[Any] = []
        running = threading.Thread(target=lambda: outcome.append(_raised(build, pipeline, workers=1, scheduler=cluster.scheduler_address)),
                                   daemon=True)
        running.start()
        for _ in range(1200):
            if any(str(key).startswith("skyshelf-slabs") for key in cluster.scheduler.tasks) or not running.is_alive():
                break
            threading.Event().wait(0.05)
        log = tmp_path / "late.log"
        with log.open("w") as sink:
            late = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", cluster.scheduler_address, "--nthreads", "1",
                                     "--no-nanny", "--preload", str(other)], stdout=sink, stderr=subprocess.STDOUT)
        try:
            running.join(300)
        finally:
            late.kill()
            late.wait()
    assert outcome and isinstance(outcome[0], ConfigError), outcome
    assert "Traceback" not in log.read_text()  # (the refusal returned by its task, not raised: Dask logs a raised one)
    assert re.search(r"the Dask worker tcp://\S+ has Skyshelf 0\.0\.1, the build's client", str(outcome[0])), outcome[0]
    assert not (tmp_path / "site" / "catalog.json").exists()
    again = build(pipeline, workers=1)  # on this machine: converted, not a failure recorded as the file's
    assert again.published and not again.failures and again.converted == 1


def test_a_source_the_client_does_not_see_either_is_the_plans_error(cluster: Any, tmp_path: Path) -> None:
    """A glob source whose folder does not exist: a local build says pipeline.yml's line ("matches
    no file"); on a cluster, the check of the workers said first that a worker did not see it."""
    (tmp_path / "src").mkdir()
    np.save(tmp_path / "src" / "a.npy", np.arange(3))
    config = {"sources": [{"path": "src"}, {"path": "later/*.npy"}], "output": {"store": str(tmp_path / "site")}}
    pipeline = load_pipeline(write_pipeline(tmp_path, config))
    with pytest.raises(ConfigError, match=r"pipeline.yml:\d+: source path 'later/\*\.npy' matches no file"):
        build(pipeline, workers=1, scheduler=cluster.scheduler_address)


def test_a_worker_on_the_builds_machine_is_not_refused_for_a_source_folder_gone(tmp_path: Path) -> None:
    """A worker process started again (one was killed) after a source folder was moved away: it
    was refused as not seeing the sources (the build stopped, blaming it); it sees what the build
    sees. A cluster worker is refused only when it sees none of the source folders."""
    from publisher.build.cluster import Job
    from publisher.errors import WorkerRefused
    from publisher.settings import BuildSettings
    from publisher.store_lock import LOCK_KEY

    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        np.save(tmp_path / name / "x.npy", np.arange(3))
    pipeline = load_pipeline(write_pipeline(tmp_path, {"sources": [{"path": "a/*.npy"}, {"path": "b/*.npy"}], "output": {"store": str(tmp_path / "site")}}))
    Store(tmp_path / "site").write_bytes(LOCK_KEY, b"{}")  # (the build's lock, as a build holds it)
    (tmp_path / "b").rename(tmp_path / "b-moved")
    for local in (True, False):
        converter, _ = Job(pipeline, str(tmp_path / "site"), BuildSettings(), "releases/x", 1, local=local).open()
        converter.pool.shutdown()
    (tmp_path / "a").rename(tmp_path / "a-moved")
    Job(pipeline, str(tmp_path / "site"), BuildSettings(), "releases/x", 1, local=True).open()[0].pool.shutdown()
    with pytest.raises(WorkerRefused, match=r"does not see the source folder .*/a \(nor any other: moved or deleted since the build started\?\)"):
        Job(pipeline, str(tmp_path / "site"), BuildSettings(), "releases/x", 1).open()


def test_each_tasks_results_are_fetched_once(tmp_path: Path) -> None:
    """A batch's results were fetched twice, by its done-callback (journaling them) and by the
    build taking them, which then released the future while the callback's fetch was under way:
    distributed logged "Couldn't gather keys ... forgotten" and "rescheduling" in most local:2
    builds of the demo. The callback's fetch is the one the build takes."""
    rng = np.random.default_rng(3)
    (tmp_path / "src").mkdir()
    for i in range(48):  # batches of small files, and a few slabbed arrays between them
        shape = (4096, 2048) if i % 12 == 0 else (64, 64)
        np.save(tmp_path / "src" / f"a{i:02d}.npy", rng.integers(0, 50, size=shape, dtype="<u2"))
    outputs = []
    for run in range(3):
        config = write_pipeline(tmp_path, {"sources": [{"path": "src"}], "output": {"store": str(tmp_path / f"site{run}")}})
        done = subprocess.run([sys.executable, "-m", "publisher.cli", "build", "-c", str(config), "--scheduler", "local:2"],
                              capture_output=True, text=True, cwd=tmp_path, timeout=300)
        outputs.append(done.stdout + done.stderr)
        assert done.returncode == 0, outputs[-1]
        assert "48 converted" in outputs[-1]
    assert not [o for o in outputs if "Couldn't gather" in o], outputs
