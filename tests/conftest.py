"""Shared fixtures: the generated demo tree, real sample files, and a helper to build pipelines."""

from __future__ import annotations

import contextlib
import gc
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from publisher.build import BuildReport, build
from publisher.catalog import Catalog
from publisher.config import load_pipeline
from publisher.errors import BuildFailed
from publisher.readers.netcdf import import_netcdf4
from publisher.stores import Store

from . import realdata

ROOT = Path(__file__).resolve().parents[1]
#: Test modules import netCDF4 themselves: imported here first, the way the reader does, so its
#: plugin path does not reach h5py (tests that write Blosc or Zstd HDF5 in the same worker).
import_netcdf4()


def _one_tls_context() -> None:
    """``httpx.get`` makes a client per call, and each client loads the CA bundle into a new TLS
    context (35-50 ms here: the auth matrix alone makes ~3,500 requests, most tests a few dozen).
    The tests' clients share one verifying context per process instead; the product makes none
    (its one outgoing request, the JWKS fetch, uses urllib). Without httpx's internals as they
    are (0.28-0.29) the tests are only slower."""
    import functools

    try:
        from httpx import _config
        from httpx._transports import default
    except ImportError:
        return
    made = getattr(default, "create_ssl_context", None)
    if made is None or getattr(made, "shared", False):
        return
    shared = functools.lru_cache(maxsize=4)(lambda trust_env: made(verify=True, trust_env=trust_env))

    def create_ssl_context(verify: Any = True, cert: Any = None, trust_env: bool = True) -> Any:
        return shared(trust_env) if verify is True and cert is None else made(verify=verify, cert=cert, trust_env=trust_env)

    create_ssl_context.shared = True  # type: ignore[attr-defined]
    default.create_ssl_context = create_ssl_context
    _config.create_ssl_context = create_ssl_context


_one_tls_context()


#: Modules whose tests start Dask clusters and clients in the test process.
_DASK_MODULES = {"test_cluster_build", "test_build_processes", "test_plugins", "test_resume"}


@pytest.fixture(autouse=True)
def _dask_clients_collected(request: pytest.FixtureRequest) -> Iterator[None]:
    """A Dask client a test left behind (``cluster.get_client()``, a connection that failed) closes
    itself when collected; collected inside a later LocalCluster's start, distributed's LoopRunner
    waited on a lock that start held and the test process hung (a fresh-clone run did). Collected
    here, between tests, where nothing of Dask is starting."""
    yield
    if request.module.__name__.rpartition(".")[2] in _DASK_MODULES:
        gc.collect()


@pytest.fixture(autouse=True)
def _settings_follow_the_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The handlers read their settings once per process (as a Lambda does); a test that changes
    the environment with ``monkeypatch`` has them read again, then again after it."""
    from handlers import settings

    for name in ("setenv", "delenv"):
        original = getattr(pytest.MonkeyPatch, name)

        def changed(self: pytest.MonkeyPatch, *args: Any, _original: Any = original, **kwargs: Any) -> None:
            _original(self, *args, **kwargs)
            settings.reset()

        monkeypatch.setattr(pytest.MonkeyPatch, name, changed)
    settings.reset()
    yield
    monkeypatch.undo()  # the environment as it was, then read again
    settings.reset()


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo tree, generated fresh for the test session."""
    import sys

    sys.path.insert(0, str(ROOT / "examples" / "demo"))
    from make_demo import make_demo

    return make_demo(tmp_path_factory.mktemp("demo"), force=True)


def fetch_real(name: str) -> Path:
    """A real sample package; skipped only when the registry cannot be reached outside CI."""
    try:
        return realdata.fetch(name)
    except realdata.FetchError as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"real data {name} unavailable: {exc}")


class Published:
    """A finished build: its report, store, catalog and handy readers."""

    def __init__(self, report: BuildReport, store: Store) -> None:
        self.report = report
        self.store = store
        self.base_dir: Path | None = None  # pipeline.yml's folder
        self.catalog = Catalog.open_full(store)  # every node (a catalog with private nodes: its full view)

    def node(self, path: str) -> dict[str, Any]:
        """The node's index row, as published (:meth:`Entry.to_json`)."""
        return self.catalog.entry(path).to_json()

    def url(self, path: str) -> str:
        return self.store.path(self.node(path)["data_url"])

    def source(self, published: str) -> Path:
        """The source file a published ``source_file`` (relative to pipeline.yml's folder) names."""
        assert self.base_dir is not None
        return Path(os.path.normpath(self.base_dir / published))

    def entries(self) -> list[dict[str, Any]]:
        import pyarrow.parquet as pq

        rows = pq.read_table(self.store.path(self.catalog.document["index"])).to_pylist()
        for row in rows:
            for key in ("specs", "metadata", "structure", "notes", "access_tags"):
                row[key] = json.loads(row[key]) if row[key] is not None else None
        return rows

    def problems(self, kind: str) -> dict[str, str]:
        return {p.path: p.reason for p in getattr(self.report, kind)}


def write_pipeline(folder: Path, config: dict[str, Any]) -> Path:
    path = folder / "pipeline.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def run_build(folder: Path, config: dict[str, Any]) -> Published:
    """Write pipeline.yml into ``folder`` and build it into ``folder/site``."""
    config = {"output": {"store": str(folder / "site")}, **config}
    pipeline = load_pipeline(write_pipeline(folder, config))
    try:
        report = build(pipeline, workers=2)
    except BuildFailed as exc:
        report = exc.args[0]
        raise AssertionError(f"build failed: {[str(p) for p in report.failures]}") from None
    return _published(report, config["output"]["store"], pipeline.base_dir)


def _published(report: BuildReport, store: str, base_dir: Path) -> Published:
    published = Published(report, Store(store))
    published.base_dir = base_dir  # what the published source paths are relative to
    return published


def shared_build(key: str, config: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Published:
    """:func:`run_build`, once for the whole run: under pytest-xdist the first worker to ask builds
    (the others wait on a lock) and the rest open its store, so two modules on two workers that
    read one real package's build do not both make it (sasdata: ~15 s)."""
    import fcntl

    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker is None:  # one process: its own base folder (the parent is shared with earlier runs)
        return run_build(tmp_path_factory.mktemp(key), config)
    folder = tmp_path_factory.getbasetemp().parent / f"shared-{key}"  # the run's folder, above each worker's
    folder.mkdir(exist_ok=True)
    with (folder / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = folder / "report.json"
        if not done.exists():
            published = run_build(folder, config)
            done.write_text(json.dumps(published.report.to_json()))
            return published
    return _published(BuildReport.from_json(json.loads(done.read_text())), str(folder / "site"), folder)  # (pipeline.yml's folder)


@contextlib.contextmanager
def served(store_url: str) -> Iterator[str]:
    """``publish serve``'s handlers for ``store_url`` on a free local port, while the context lasts: its base URL."""
    from handlers.local import LocalServer

    server = LocalServer(store_url, "127.0.0.1", 0).start()
    try:
        yield server.url
    finally:
        server.stop()


#: Seconds the slowest modules took (the README's test command on 2 cores, 2026-12-06: 9 min 48 s in
#: all, of 1,127 s of tests). They run first, so the two xdist workers end together: xdist's loadfile hands modules out in collection
#: order (scripts/test.sh passes --no-loadscope-reorder; its own order, by number of tests, left
#: minute-long modules for last, one worker running them while the other had finished). Only the
#: order depends on these numbers: a stale one costs some balance, never a result.
SLOW_MODULES = {"test_realdata": 138, "test_cluster_build": 66, "test_deploy": 57, "test_s3": 55, "test_store_faults": 47,
                "test_releases": 44, "test_store_lock": 41, "test_resume": 38, "test_build_processes": 34,
                "test_streaming": 31, "test_stores": 31, "test_browse_array": 27, "test_many_files": 23,
                "test_browse_auth": 21, "test_sparse": 21, "test_fuzz_api": 20, "test_search_columns": 20,
                "test_awkward_realdata": 20, "test_search_vs_tiled": 20, "test_xarray_datasets": 20}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: -SLOW_MODULES.get(item.path.stem, 0))  # (stable: each module's tests keep their order)


def remove_deep(top: bytes | str | Path) -> None:
    """``shutil.rmtree`` without its recursion: every folder listed, then removed deepest first."""
    if not os.path.isdir(top) or os.path.islink(top):
        os.unlink(top)
        return
    folders, todo = [], [top]
    while todo:
        folder = todo.pop()
        folders.append(folder)
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    todo.append(entry.path)
                else:
                    os.unlink(entry.path)
    for folder in reversed(folders):
        os.rmdir(folder)
