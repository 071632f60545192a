"""Builds to S3 (moto's server and SeaweedFS), read back directly by zarr, xarray, pandas, pyarrow, polars."""

from __future__ import annotations

import contextlib
import os
import re
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import xarray as xr
from click.testing import CliRunner

from publisher.build import build
from publisher.catalog import Catalog
from publisher.cli import EXIT_FAILED, main
from publisher.config import load_pipeline
from publisher.stores import Store

from .conftest import write_pipeline
from .servers import S3Server, moto_server, seaweedfs
from .test_build_demo import demo_config

warnings.filterwarnings("ignore", category=RuntimeWarning, module="xarray")


@contextlib.contextmanager
def environ(values: dict[str, str]) -> Iterator[None]:
    """These environment variables while the block runs; the handlers read their settings again."""
    from handlers import settings

    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    settings.reset()
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        settings.reset()


@pytest.fixture(scope="module", params=["moto", "seaweedfs"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    start = moto_server if request.param == "moto" else seaweedfs
    with start(tmp_path_factory.mktemp(request.param)) as s:
        s.create_bucket("skyshelf-test")
        s.make_public("skyshelf-test")  # anonymous reads need an explicit public-read policy, as on AWS
        yield s


@pytest.fixture(scope="module")
def published(server: S3Server, demo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[S3Server, Catalog]:
    folder = tmp_path_factory.mktemp("s3-build")
    url = f"s3://skyshelf-test/{server.name}/demo"
    pipeline = load_pipeline(write_pipeline(folder, {**demo_config(demo_dir), "output": {"store": url}}))
    with environ(server.env()):  # the standard AWS environment, nothing in the pipeline file
        report = build(pipeline, workers=2)
    assert report.published and not report.failures
    return server, Catalog.open(Store(url, **server.storage_options()))


def s3url(catalog: Catalog, path: str) -> str:
    return catalog.store.path(catalog.entry(path).data_url)


def test_direct_reads_with_standard_clients(published: tuple[S3Server, Catalog], demo_dir: Path) -> None:
    import pandas as pd
    import polars as pl
    import pyarrow.parquet as pq
    import s3fs
    import zarr

    server, catalog = published
    options = server.storage_options()
    xr.testing.assert_identical(xr.open_zarr(s3url(catalog, "climate/sst"), storage_options=options), xr.open_dataset(demo_dir / "climate" / "sst.nc"))
    ds = xr.open_zarr(s3url(catalog, "scans/scan_0001/entry/data"), storage_options=options)
    assert ds["data"].dims == ("th", "dim_1", "dim_2") and int(ds["data"][:, 100].min()) == 65535
    group = zarr.open_group(s3url(catalog, "scans/scan_0002"), mode="r", storage_options=options)
    assert group["entry/data/data"].shape == (12, 256, 256)
    table_url = s3url(catalog, "tables/temperature_log")
    frame = pd.read_parquet(table_url, storage_options=options)
    assert len(frame) == 240 and frame["time"].dtype.kind == "M"
    fs = s3fs.S3FileSystem(**options)
    assert pq.read_table(table_url.removeprefix("s3://"), filesystem=fs).num_rows == 240
    polars_options = {"aws_endpoint_url": server.endpoint, "aws_access_key_id": "testing", "aws_secret_access_key": "testing",
                      "aws_region": "us-east-1", "aws_allow_http": "true"}
    assert pl.scan_parquet(table_url, storage_options=polars_options).select(pl.len()).collect().item() == 240


def test_content_types(published: tuple[S3Server, Catalog]) -> None:
    server, catalog = published
    client = server.client()
    prefix = catalog.store.root.removeprefix("s3://skyshelf-test/")

    def ctype(key: str) -> str:
        return client.head_object(Bucket="skyshelf-test", Key=f"{prefix}/{key}")["ContentType"]

    data = catalog.entry("scans/scan_0001/entry/data/data").data_url
    assert ctype("catalog.json") == "application/json"
    assert ctype(f"{data}/zarr.json") == "application/json"
    assert ctype(f"{data}/c/0/0/0") == "application/octet-stream"
    assert ctype(catalog.entry("tables/temperature_log").data_url) == "application/vnd.apache.parquet"
    assert ctype(catalog.document["index"]) == "application/vnd.apache.parquet"


def test_anonymous_http_reads(published: tuple[S3Server, Catalog], demo_dir: Path) -> None:
    import pandas as pd

    server, catalog = published
    http = catalog.store.root.replace("s3://", f"{server.endpoint}/")
    sst = f"{http}/{catalog.entry('climate/sst').data_url}"
    xr.testing.assert_identical(xr.open_zarr(sst), xr.open_dataset(demo_dir / "climate" / "sst.nc"))  # consolidated: no listing
    frame = pd.read_parquet(f"{http}/{catalog.entry('tables/temperature_log').data_url}")
    assert len(frame) == 240


def test_storage_fields_name_environment_variables(server: S3Server, demo_dir: Path, tmp_path: Path) -> None:
    url = f"s3://skyshelf-test/{server.name}/named-env"
    config = {"sources": [{"path": str(demo_dir / "tables" / "*.csv")}],
              "output": {"store": url, "storage": {"endpoint_url_env": "SKYSHELF_TEST_S3", "access_key_id_env": "SKYSHELF_TEST_KEY",
                                                   "secret_access_key_env": "SKYSHELF_TEST_SECRET", "region_env": "SKYSHELF_TEST_REGION"}}}
    pipeline = write_pipeline(tmp_path, config)
    missing = CliRunner().invoke(main, ["build", "-c", str(pipeline)])
    assert missing.exit_code == EXIT_FAILED
    assert "output.storage.endpoint_url_env: environment variable 'SKYSHELF_TEST_S3' is not set" in missing.output
    with environ({"SKYSHELF_TEST_S3": server.endpoint, "SKYSHELF_TEST_KEY": "testing", "SKYSHELF_TEST_SECRET": "testing",
                  "SKYSHELF_TEST_REGION": "us-east-1"}):
        result = CliRunner().invoke(main, ["build", "-c", str(pipeline)])
        assert result.exit_code == 0, result.output
        listing = CliRunner().invoke(main, ["ls", "-c", str(pipeline), "-l", "tables"])
    assert "temperature_log" in listing.output and "240 rows" in listing.output
    assert "testing" not in pipeline.read_text() and server.endpoint not in pipeline.read_text()  # no secrets in the file


def test_serve_from_s3_with_presigned_redirects(published: tuple[S3Server, Catalog], demo_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``publish serve --store s3://...``: the tiled client reads through the handlers, and a body
    past the payload limit is a 307 to a presigned URL of the object store, which the client follows."""

    import h5py
    import httpx
    import numpy as np
    from tiled.client import from_uri

    from handlers.local import LocalServer

    server, catalog = published
    with environ(server.env()):
        srv = LocalServer(catalog.store.url, "127.0.0.1", 0).start()
        try:
            api = f"{srv.url}/api/v1"
            client = from_uri(api)
            with h5py.File(demo_dir / "scans" / "scan_0002.nxs") as f:
                source = f["entry/data/data"][()]
            np.testing.assert_array_equal(client["scans/scan_0002/entry/data/data"][3:5, ::4], source[3:5, ::4])
            monkeypatch.setenv("SKYSHELF_MAX_BODY_BYTES", "10000")
            response = httpx.get(f"{api}/array/full/scans/scan_0002/entry/data/data")
            assert response.status_code == 307 and response.headers["location"].startswith(server.endpoint)
            assert "Signature" in response.headers["location"] or "X-Amz-Signature" in response.headers["location"]
            np.testing.assert_array_equal(client["scans/scan_0002/entry/data/data"].read(), source)  # followed
        finally:
            srv.stop()


@pytest.mark.parametrize("backend", ["s3fs", "boto3", "obstore"])
def test_search_columns_on_s3(server: S3Server, backend: str) -> None:
    """A large container published to S3 is searched from its columns with ranged reads (one per
    column, concurrent ones for a page's rows): the answers of the row-by-row reference, through
    ``publish serve`` on the bucket, with s3fs or with boto3 alone (as a deployed function reads);
    its children list from their rows; an oversized answer is spilled and presigned."""
    import json

    import httpx
    from tiled.queries import Comparison, FullText, Key, Regex

    from handlers.local import LocalServer
    from handlers.settings import environment
    from publisher.index.client import params_for
    from publisher.formats import Entry
    from publisher.index.rows import select
    from publisher.index.write import write_index
    from publisher.queries.registry import filters_from

    n = 1200
    entries = [Entry("", "", "container", [], {}, {"contents": None, "count": n}, None, None, None)]
    entries += [Entry(f"s{i:04d}", f"s{i:04d}", "container", [], {"el": ["Ni", "Fe", "Cu"][i % 3], "t": i % 400, "d": f"scan {i} of foil"},
                      {"contents": None, "count": 0}, None, None, None) for i in range(n)]
    url = f"s3://skyshelf-test/{server.name}/search-{backend}"
    with environ({**server.env(), "SKYSHELF_S3_BACKEND": backend if backend != "s3fs" else ""}):
        store = Store(url, backend=environment().s3_backend)  # SKYSHELF_S3_BACKEND, read into the settings
        assert store.backend == backend
        document = {"format": "skyshelf-catalog", "version": 1, "release": "r", **write_index(store, "releases/r/index", entries)}
        store.write_bytes("catalog.json", json.dumps(document).encode())
        assert [e.key for e in Catalog.open(store).entries("", 1195, 10)] == [f"s{i:04d}" for i in range(1195, n)]
        srv = LocalServer(url, "127.0.0.1", 0).start()
        try:
            for queries, sort in [((Key("el") == "Ni", Comparison("lt", "t", 100)), "-t"), ((FullText("foil 17"),), ""),
                                  ((Regex("el", "^[NC]"),), "t,-el")]:
                params = params_for(*queries)
                expected = [e.key for e in select(entries[1:], filters_from(params), sort)]
                answer = httpx.get(f"{srv.url}/api/v1/search/", params={**params, "sort": sort, "page[limit]": "50"}).json()
                assert answer["meta"]["count"] == len(expected) and [d["id"] for d in answer["data"]] == expected[:50]
            with environ({"SKYSHELF_MAX_BODY_BYTES": "2000"}):
                spilled = httpx.get(f"{srv.url}/api/v1/search/", params={"page[limit]": "20"})
            assert spilled.status_code == 307
            assert httpx.get(spilled.headers["location"]).json()["data"][0]["id"] == "s0000"
        finally:
            srv.stop()


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """SeaweedFS with its IAM on: it refuses a key it does not know."""
    with seaweedfs(tmp_path_factory.mktemp("iam"), iam=True) as server:
        server.create_bucket("guarded")
        yield server


@pytest.mark.parametrize("command", [["build"], ["releases"], ["gc"], ["rollback", "20260101T000000Z-0000"]])
@pytest.mark.parametrize("trouble", ["closed port", "no credentials", "wrong credentials"])
def test_an_unreachable_or_unsigned_store_is_a_clear_error(command: list[str], trouble: str, tmp_path: Path, guarded: S3Server) -> None:
    """A store that cannot be reached, or no or wrong credentials: one line that says what to
    check, exit status 1, never a traceback (the real command line, in a process of its own)."""
    import subprocess
    import sys

    (tmp_path / "a.csv").write_text("x\n1\n")
    store = "s3://guarded/x" if trouble == "wrong credentials" else "s3://nowhere/x"
    pipeline = write_pipeline(tmp_path, {"sources": [{"path": "a.csv"}], "output": {"store": store}})
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_EC2_METADATA_DISABLED="true", AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"), AWS_CONFIG_FILE=str(tmp_path / "none"),
               AWS_ENDPOINT_URL=guarded.endpoint if trouble == "wrong credentials" else "http://127.0.0.1:1", AWS_MAX_ATTEMPTS="1",
               AWS_DEFAULT_REGION="us-east-1")
    if trouble != "no credentials":
        env.update(AWS_ACCESS_KEY_ID="someone", AWS_SECRET_ACCESS_KEY="not-their-secret")
    done = subprocess.run([sys.executable, "-m", "publisher.cli", *command, "-c", str(pipeline)], env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    out = done.stdout + done.stderr
    assert done.returncode == EXIT_FAILED, out
    assert "Traceback" not in out and out.startswith("error: ") and out.count("\n") == 1, out
    expected = {"closed port": "cannot reach the store", "no credentials": "no credentials for the store",
                "wrong credentials": "(access denied|access key ID you provided does not exist)"}[trouble]
    assert re.search(expected, out), out


def test_a_store_that_goes_away_while_serving_answers_503(tmp_path: Path) -> None:
    """The object store stops while ``publish serve`` answers from it: a 503 with Retry-After and a
    JSON detail saying so (not a 500), without the store's endpoint, bucket or keys."""
    import httpx

    from handlers.local import LocalServer

    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "t.csv").write_text("a,b\n1,2\n")
    (tmp_path / "src" / "u.csv").write_text("a,b\n3,4\n")
    (tmp_path / "moto").mkdir()
    with moto_server(tmp_path / "moto") as server:
        server.create_bucket("outage")
        with environ({**server.env(), "AWS_MAX_ATTEMPTS": "2"}):
            build(load_pipeline(write_pipeline(tmp_path, {"sources": [{"path": "src", "into": ""}], "output": {"store": "s3://outage/x"}})))
            srv = LocalServer("s3://outage/x", "127.0.0.1", 0).start()
            try:
                url = f"{srv.url}/api/v1/table/full/t?format=csv"
                assert httpx.get(url, timeout=60).status_code == 200
                server.stop()
                answer = httpx.get(f"{srv.url}/api/v1/table/full/u?format=csv", timeout=120)  # data not read before
                assert answer.status_code == 503, answer.text
                detail = answer.json()["detail"]
                assert answer.headers["retry-after"] == "5" and "the store is unavailable" in detail
                assert "127.0.0.1" not in detail and "outage" not in detail, detail  # (its endpoint and bucket: the log's, not a caller's)
            finally:
                srv.stop()
