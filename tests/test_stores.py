"""The store contract (tests/store_conformance.py) on every implementation: a local folder, an
fsspec memory file system, and S3 on moto's server (each reading client) and on SeaweedFS."""

from __future__ import annotations

import contextlib
import errno
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from publisher.stores import FsspecStore, LocalStore, S3Store, Store, open_store

from .servers import S3Server, moto_server, seaweedfs
from .store_conformance import DATA, StoreTests

BUCKET = "stores-test"


def _types(key: str) -> str:
    return "application/json" if key.endswith(".json") else "application/x-test"


class TestLocalStore(StoreTests):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Store:
        return Store(tmp_path / "store")

    def test_opened_by_path_or_file_url(self, tmp_path: Path) -> None:
        assert type(Store(tmp_path)) is LocalStore and open_store(f"file://{tmp_path}").root == str(tmp_path.resolve())

    def test_links_out_of_the_store_are_not_inside(self, store: Store, tmp_path: Path) -> None:
        (tmp_path / "secret").write_bytes(b"s")
        store.write_bytes("ok", b"1")
        Path(store.root, "link").symlink_to(tmp_path / "secret")
        assert store.inside("ok") and not store.inside("link") and not store.inside("none")


class TestMemoryStore(StoreTests):
    @pytest.fixture
    def store(self) -> Store:
        opened = Store(f"memory://skyshelf-{uuid.uuid4().hex}")
        assert type(opened) is FsspecStore and opened.backend == "fsspec"
        return opened


@pytest.fixture(scope="module", params=["moto", "seaweedfs"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    start = moto_server if request.param == "moto" else seaweedfs
    with start(tmp_path_factory.mktemp(f"stores-{request.param}")) as s:
        s.create_bucket(BUCKET)
        s.make_public(BUCKET)
        yield s


class TestS3Store(StoreTests):
    """Each reading client on both servers; the AWS settings come from the standard environment."""

    @pytest.fixture(params=["obstore", "boto3", "s3fs"])
    def store(self, request: pytest.FixtureRequest, server: S3Server, monkeypatch: pytest.MonkeyPatch) -> Store:
        for name, value in server.env().items():
            monkeypatch.setenv(name, value)
        opened = open_store(f"s3://{BUCKET}/{uuid.uuid4().hex}", backend=request.param, content_type=_types)
        assert opened.is_s3 and opened.backend == request.param
        assert isinstance(opened, S3Store if request.param != "s3fs" else FsspecStore)
        return opened

    def test_content_types_are_the_callers(self, store: Store, server: S3Server) -> None:
        store.write_bytes("t/catalog.json", b"{}")
        store.write_bytes("t/chunk", b"\0")
        with store.open_write("t/streamed.json") as sink:
            sink.write(b"[]")
        prefix = store.root.removeprefix(f"s3://{BUCKET}/")
        head = server.client().head_object
        assert [head(Bucket=BUCKET, Key=f"{prefix}/t/{k}")["ContentType"] for k in ("catalog.json", "chunk", "streamed.json")] == [
            "application/json", "application/x-test", "application/json"]

    def test_presigned_urls(self, store: Store) -> None:
        store.write_bytes("p/answer.bin", DATA)
        assert httpx.get(store.presign("p/answer.bin", 60)).content == DATA
        signed = httpx.get(store.presign("p/answer.bin", 60, 'attachment; filename="x.bin"'))
        assert signed.content == DATA and signed.headers["content-disposition"] == 'attachment; filename="x.bin"'

    def test_storage_options_instead_of_environment(self, server: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
        """obstore takes s3fs's option names (what ``output.storage`` and the tests pass)."""
        for name in server.env():
            monkeypatch.delenv(name, raising=False)
        writer = open_store(f"s3://{BUCKET}/options", **server.storage_options())
        writer.write_bytes("o", b"opt")
        assert open_store(f"s3://{BUCKET}/options", backend="obstore", **server.storage_options()).read_bytes("o") == b"opt"
        anonymous = {"anon": True, "client_kwargs": server.storage_options()["client_kwargs"]}  # SKYSHELF_STORE_ANON
        assert open_store(f"s3://{BUCKET}/options", backend="obstore", **anonymous).read_bytes("o") == b"opt"


def test_default_backend_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """``SKYSHELF_S3_BACKEND`` is read into the settings at the edge and passed to ``open_store``
    (which reads no environment: without ``backend=`` it is s3fs whatever the variable says)."""
    from handlers.settings import environment
    from publisher.settings import BuildSettings

    monkeypatch.delenv("SKYSHELF_S3_BACKEND", raising=False)
    assert open_store("s3://bucket/x", backend=environment().s3_backend).backend == "s3fs"
    monkeypatch.setenv("SKYSHELF_S3_BACKEND", "obstore")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    assert Store("s3://bucket/x", backend=environment().s3_backend).backend == "obstore"
    assert Store("s3://bucket/x", **BuildSettings.from_env().store_options()).backend == "obstore"
    assert Store("gs://bucket/x", backend="obstore").backend == "fsspec" and open_store("s3://bucket/x").backend == "s3fs"


def test_each_function_ships_the_s3_client_it_is_set_to(tmp_path: Path) -> None:
    """The template's ``SKYSHELF_S3_BACKEND`` and the package agree: a function reading with
    obstore carries it, built for the target (obstore's aarch64 wheel is manylinux_2_24)."""
    import zipfile

    from publisher.config.models import Deploy
    from publisher.deploy.package import REQUIREMENTS, build_package
    from publisher.deploy.template import template
    from publisher.functions import FUNCTIONS

    resources = template()["Resources"]
    for function in FUNCTIONS:
        variables = resources[f"{function.name.capitalize()}Function"]["Properties"]["Environment"]["Variables"]
        assert variables["SKYSHELF_S3_BACKEND"] == function.s3_backend
        assert ("obstore" in REQUIREMENTS[function.name]) == (function.s3_backend == "obstore"), function.name
    package = build_package("arrays", Deploy().runtime, "arm64", tmp_path, cache=tmp_path / "wheels")  # pip runs: no cached set
    with zipfile.ZipFile(package.zip_path) as zf:
        library = next(n for n in zf.namelist() if n.startswith("obstore/") and n.endswith(".so"))
        assert int.from_bytes(zf.read(library)[18:20], "little") == 183  # EM_AARCH64


def test_a_local_stores_streamed_write_fails_as_the_store(tmp_path: Path) -> None:
    """A Parquet writer's file on a local store: its failures (here a full device) are the store's
    StoreError, as write_bytes says them, not a raw OSError taken for the source file's (the table
    left out of a release whose last one had it, with on_error: skip)."""
    from publisher.errors import StoreError
    from publisher.stores.faults import refused_name
    from publisher.stores.local import LocalStore

    store = LocalStore(str(tmp_path))
    (tmp_path / "t.parquet").symlink_to("/dev/full")  # (every write: ENOSPC)
    sink = store.open_write("t.parquet")
    with pytest.raises(StoreError, match=r"cannot write 't.parquet' to .*No space left on device"):
        sink.write(b"x" * 2**20)
        sink.close()
    with contextlib.suppress(OSError):
        sink.close()
    assert refused_name(StoreError("x")) is False and refused_name(OSError(errno.ENAMETOOLONG, "File name too long"))
    assert refused_name(OSError(errno.EINVAL, "Invalid argument")) and not refused_name(OSError(errno.EROFS, "Read-only file system"))



def test_a_local_stores_atomic_writes_have_every_files_mode(tmp_path: Path) -> None:
    """Atomic writes (catalog.json, the release's copy of it) went through mkstemp's 0600: a web
    server or another user reading the published folder could read every file but its entry point."""
    import os
    import stat

    store = LocalStore(str(tmp_path))
    store.write_bytes("catalog.json", b"{}", atomic=True)
    store.write_bytes("releases/r/data.bin", b"x")
    modes = {key: stat.S_IMODE(os.stat(tmp_path / key).st_mode) for key in ("catalog.json", "releases/r/data.bin")}
    mask = os.umask(0o022)
    os.umask(mask)
    assert modes == {"catalog.json": 0o666 & ~mask, "releases/r/data.bin": 0o666 & ~mask}, {k: oct(v) for k, v in modes.items()}
