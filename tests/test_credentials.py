"""``/api/v1/auth/credentials``: a signed-in caller gets short-lived S3 credentials whose session
policy grants exactly the private prefixes of the access classes its tags reach, plus the public
view. The policy's content is read back from moto's STS (moto keeps it but does not enforce it);
enforcement is shown on SeaweedFS, whose STS applies session policies: a scoped credential reads
its class's objects with s3fs and zarr and is refused another class's and the private catalog."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import s3fs
import zarr

from handlers.local import LocalServer
from publisher.auth.keys import create_key
from publisher.build import build
from publisher.catalog import Catalog
from publisher.config import load_pipeline
from publisher.stores import Store

from .conftest import write_pipeline
from .servers import READER_ROLE, S3Server, moto_server, seaweedfs
from .test_access_layout import config, make_sources
from .test_s3 import environ

SCAN, SIGNAL = "proposals/p1/embargoed_scan", "shared/mixed/entry/classified_group/signal"
ROOT = "cat"  # the store is a folder of the bucket: every prefix is under it


@contextlib.contextmanager
def published(server: S3Server, workdir: Path, role: str) -> Iterator[tuple[str, Catalog, dict[str, dict[str, str]]]]:
    """The mixed catalog built into ``s3://<bucket>/cat`` and served by ``publish serve`` with the
    credentials endpoint on: (its API, the full catalog, API-key headers by tag set). Each server
    gets its own bucket: the handlers keep a store and its catalog per URL for the process."""
    server.create_bucket(bucket(server))
    url = f"s3://{bucket(server)}/{ROOT}"
    make_sources(workdir)
    (workdir / "proposals" / "p1" / "runs.csv").write_text("run,energy\n1,8.5\n2,9.0\n")  # a p1 table, for pyarrow
    pipeline = load_pipeline(write_pipeline(workdir, {**config(), "output": {"store": url}}))
    settings = {**server.env(), "SKYSHELF_CREDENTIALS_ROLE_ARN": role, "SKYSHELF_STS_ENDPOINT_URL": server.endpoint}
    with environ(settings):
        assert build(pipeline, workers=2).published
        store = Store(url)
        keys = {name: {"Authorization": f"Apikey {create_key(store, tags)[0]}"}
                for name, tags in (("p1", ["p1"]), ("staff", ["staff"]), ("both", ["p1", "staff"]), ("other", ["elsewhere"]))}
        api = LocalServer(url, port=0).start()
        try:
            yield f"{api.url}/api/v1", Catalog.open_full(store), keys
        finally:
            api.stop()


def bucket(server: S3Server) -> str:
    return f"skyshelf-{server.name}"


def private_class(catalog: Catalog, path: str) -> str:
    return catalog.entry(path).data_url.split("/")[1]


# -- the policy's content: moto's STS -------------------------------------------------------------
@pytest.fixture(scope="module")
def on_moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[S3Server, str, Catalog, dict[str, dict[str, str]]]]:
    with moto_server(tmp_path_factory.mktemp("moto-sts")) as server:
        with published(server, tmp_path_factory.mktemp("cred-build"), "arn:aws:iam::123456789012:role/reader") as (api, catalog, keys):
            yield server, api, catalog, keys


def stored_policy(server: S3Server) -> dict[str, Any]:
    """The session policy of moto's latest AssumeRole (moto keeps it verbatim)."""
    roles = httpx.get(f"{server.endpoint}/moto-api/data.json").json()["sts"]["AssumedRole"]
    return json.loads(roles[-1]["policy"])


def test_the_session_policy_grants_exactly_the_readable_classes(on_moto: tuple) -> None:
    server, api, catalog, keys = on_moto
    p1, staff = private_class(catalog, SCAN), private_class(catalog, SIGNAL)
    untagged = private_class(catalog, "misc/untagged_notes")
    public = [f"{ROOT}/releases/", f"{ROOT}/catalog.json"]
    for who, classes in (("p1", [p1]), ("staff", [staff]), ("both", sorted([p1, staff])), ("other", [])):
        answer = httpx.get(f"{api}/auth/credentials", headers=keys[who])
        assert answer.status_code == 200, answer.text
        body = answer.json()
        prefixes = [f"{ROOT}/private/{c}/" for c in classes] + public
        assert body["prefixes"] == prefixes and body["bucket"] == "skyshelf-moto"
        assert {"AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration", "region", "endpoint_url"} <= set(body)
        assert answer.headers["cache-control"] == "no-store"
        policy = stored_policy(server)
        get, listing = policy["Statement"]
        assert get == {"Effect": "Allow", "Action": "s3:GetObject",
                       "Resource": [f"arn:aws:s3:::skyshelf-moto/{ROOT}/private/{c}/*" for c in classes]
                       + [f"arn:aws:s3:::skyshelf-moto/{ROOT}/releases/*", f"arn:aws:s3:::skyshelf-moto/{ROOT}/catalog.json"]}
        assert listing == {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::skyshelf-moto",
                           "Condition": {"StringLike": {"s3:prefix": [f"{ROOT}/private/{c}/*" for c in classes] + [f"{ROOT}/releases/*"]}}}
        text = json.dumps(policy)
        assert untagged not in text and "private/catalog.json" not in text and f"{ROOT}/private/*" not in text
        assert len(json.dumps(policy, separators=(",", ":"))) <= 2048


def test_duration_nodes_and_refusals(on_moto: tuple) -> None:
    server, api, catalog, keys = on_moto
    short = datetime.fromisoformat(httpx.get(f"{api}/auth/credentials", headers=keys["p1"]).json()["Expiration"])
    long = datetime.fromisoformat(httpx.get(f"{api}/auth/credentials?duration=3600", headers=keys["p1"]).json()["Expiration"])
    assert timedelta(minutes=40) < long - short < timedelta(minutes=50)  # 900 s by default, 3600 asked for
    too_short = httpx.get(f"{api}/auth/credentials?duration=60", headers=keys["p1"])
    assert too_short.status_code == 400 and "duration" in too_short.json()["detail"]
    anonymous = httpx.get(f"{api}/auth/credentials")
    assert anonymous.status_code == 401 and "www-authenticate" in anonymous.headers
    assert httpx.get(f"{api}/auth/credentials", headers={"Authorization": "Apikey sk_nope_nope"}).status_code == 401
    hidden = httpx.get(f"{api}/auth/credentials", params={"node": SIGNAL}, headers=keys["p1"])
    missing = httpx.get(f"{api}/auth/credentials", params={"node": SIGNAL + "x"}, headers=keys["p1"])
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json()["detail"].replace(SIGNAL, SIGNAL + "x") == missing.json()["detail"]  # hidden answers as missing
    urls = httpx.get(f"{api}/auth/credentials", params=[("node", SCAN), ("node", "open/frame")], headers=keys["p1"]).json()["urls"]
    assert urls == {SCAN: f"s3://skyshelf-moto/{ROOT}/{catalog.entry(SCAN).data_url}",
                    "open/frame": f"s3://skyshelf-moto/{ROOT}/{catalog.entry('open/frame').data_url}"}
    with environ({"SKYSHELF_CREDENTIALS_ROLE_ARN": ""}):
        off = httpx.get(f"{api}/auth/credentials", headers=keys["p1"])
    assert off.status_code == 404 and "SKYSHELF_CREDENTIALS_ROLE_ARN" in off.json()["detail"]


def test_the_zarr_route_on_s3_redirects_to_presigned_urls(on_moto: tuple) -> None:
    """The same private node through /api/v1/zarr/v3 on an S3 store: presigned URLs of moto's."""
    server, api, _, keys = on_moto
    answer = httpx.get(f"{api}/zarr/v3/{SCAN}/c/0/0", headers=keys["p1"])
    assert answer.status_code == 307 and answer.headers["location"].startswith(server.endpoint)
    assert "Signature=" in answer.headers["location"] and "/private/" in answer.headers["location"]
    array = zarr.open_array(f"{api}/zarr/v3/{SCAN}", mode="r", storage_options={"headers": keys["p1"]})
    np.testing.assert_array_equal(array[...], np.ones((3, 3)))
    assert httpx.get(f"{api}/zarr/v3/{SCAN}/zarr.json", headers=keys["staff"]).status_code == 404


# -- enforcement: SeaweedFS's STS applies the session policy -----------------------------------------
@pytest.fixture(scope="module")
def on_seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[S3Server, str, Catalog, dict[str, dict[str, str]]]]:
    with seaweedfs(tmp_path_factory.mktemp("seaweedfs-iam"), iam=True) as server:
        with published(server, tmp_path_factory.mktemp("cred-build"), READER_ROLE) as (api, catalog, keys):
            yield server, api, catalog, keys


def scoped(api: str, headers: dict[str, str], node: str = SCAN) -> tuple[s3fs.S3FileSystem, dict[str, Any]]:
    granted = httpx.get(f"{api}/auth/credentials", params={"node": node}, headers=headers).json()
    options = {"key": granted["AccessKeyId"], "secret": granted["SecretAccessKey"], "token": granted["SessionToken"],
               "client_kwargs": {"endpoint_url": granted["endpoint_url"], "region_name": granted["region"]}}
    return s3fs.S3FileSystem(skip_instance_cache=True, **options), {**options, "url": granted["urls"][node]}


def pyarrow_reads(api: str, headers: dict[str, str], node: str, url: str | None = None) -> Any:
    """A node's Parquet file read by pyarrow's own S3 client with the credentials granted (``url``:
    another node's, which the credentials may not reach)."""
    import pyarrow.fs as pafs
    import pyarrow.parquet as pq

    granted = httpx.get(f"{api}/auth/credentials", params={} if url else {"node": node}, headers=headers).json()
    url = url or granted["urls"][node]
    s3 = pafs.S3FileSystem(access_key=granted["AccessKeyId"], secret_key=granted["SecretAccessKey"], session_token=granted["SessionToken"],
                           region=granted["region"], endpoint_override=granted["endpoint_url"])
    table = pq.read_table(url.removeprefix("s3://"), filesystem=s3)
    return table.replace_schema_metadata({**(table.schema.metadata or {}), b"url": url.encode()})


def duckdb_reads(api: str, headers: dict[str, str], node: str, url: str | None = None) -> Any:
    """A node's Parquet file read by DuckDB's httpfs with the credentials granted, as docs/auth.md
    shows (a secret with the session token); ``url``: another node's."""
    import duckdb
    import duckdb_extension_httpfs

    granted = httpx.get(f"{api}/auth/credentials", params={} if url else {"node": node}, headers=headers).json()
    url = url or granted["urls"][node]
    db = duckdb.connect()
    # the extension from its PyPI package (tests cannot download it); users run INSTALL httpfs
    db.execute(f"LOAD '{Path(duckdb_extension_httpfs.__file__).parent}/extensions/v{duckdb.__version__}/httpfs.duckdb_extension'")
    endpoint = granted["endpoint_url"].removeprefix("http://")
    db.execute("CREATE SECRET skyshelf (TYPE s3, KEY_ID ?, SECRET ?, SESSION_TOKEN ?, REGION ?, ENDPOINT ?, URL_STYLE 'path', USE_SSL false)",
               [granted["AccessKeyId"], granted["SecretAccessKey"], granted["SessionToken"], granted["region"], endpoint])
    return db.execute("SELECT * FROM read_parquet(?)", [url]).fetchall()


def test_duckdb_reads_with_a_scoped_credential(on_seaweedfs: tuple) -> None:
    _, api, _, keys = on_seaweedfs
    url = httpx.get(f"{api}/auth/credentials", params={"node": "proposals/p1/runs"}, headers=keys["p1"]).json()["urls"]["proposals/p1/runs"]
    assert duckdb_reads(api, keys["p1"], "proposals/p1/runs") == [(1, 8.5), (2, 9.0)]
    import duckdb

    with pytest.raises(duckdb.Error, match="403|AccessDenied|Access Denied"):
        duckdb_reads(api, keys["staff"], "proposals/p1/runs", url=url)  # another class's credential


def test_a_scoped_credential_reads_its_class_and_nothing_private_else(on_seaweedfs: tuple) -> None:
    _, api, catalog, keys = on_seaweedfs
    fs, options = scoped(api, keys["p1"])
    scan = f"skyshelf-seaweedfs/{ROOT}/{catalog.entry(SCAN).data_url}"
    signal = f"skyshelf-seaweedfs/{ROOT}/{catalog.entry(SIGNAL).data_url}"
    assert json.loads(fs.cat(f"{scan}/zarr.json"))["shape"] == [3, 3]
    np.testing.assert_array_equal(zarr.open_array(options.pop("url"), mode="r", storage_options=options)[...], np.ones((3, 3)))
    assert fs.ls(f"skyshelf-seaweedfs/{ROOT}/private/{private_class(catalog, SCAN)}/")  # listing its own prefix
    public = f"skyshelf-seaweedfs/{ROOT}/{catalog.entry('open/frame').data_url}"
    assert json.loads(fs.cat(f"{public}/zarr.json"))["shape"] == [4, 6] and fs.cat(f"skyshelf-seaweedfs/{ROOT}/catalog.json")
    for refused in (f"{signal}/zarr.json", f"skyshelf-seaweedfs/{ROOT}/private/catalog.json",
                    f"skyshelf-seaweedfs/{ROOT}/{catalog.entry('misc/untagged_notes').data_url}"):
        with pytest.raises(PermissionError):
            fs.cat(refused)
    with pytest.raises(PermissionError):
        fs.ls(f"skyshelf-seaweedfs/{ROOT}/private/{private_class(catalog, SIGNAL)}/")
    runs = pyarrow_reads(api, keys["p1"], "proposals/p1/runs")
    assert runs.column("energy").to_pylist() == [8.5, 9.0]
    with pytest.raises(OSError, match="ACCESS_DENIED|AccessDenied|403"):
        pyarrow_reads(api, keys["staff"], "proposals/p1/runs", url=runs.schema.metadata[b"url"].decode())
    staff, _ = scoped(api, keys["staff"], SIGNAL)  # the other class's credential: the other way round
    assert json.loads(staff.cat(f"{signal}/zarr.json"))["shape"] == [5]
    with pytest.raises(PermissionError):
        staff.cat(f"{scan}/zarr.json")


# -- the deployed bucket: only the public view is public; the credentials role ----------------------
def test_the_bucket_policy_makes_only_the_public_view_public() -> None:
    from publisher.deploy.template import template

    resources = template()["Resources"]
    public = resources["DataBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"][1]["Fn::If"][1]
    granted = [r["Fn::Sub"][0] for r in public["Resource"]]
    assert granted == ["arn:${AWS::Partition}:s3:::${BucketName}${StorePath}/catalog.json",
                       "arn:${AWS::Partition}:s3:::${BucketName}${StorePath}/releases/*"]
    assert public["Principal"] == "*" and public["Action"] == "s3:GetObject"
    role = resources["CredentialsRole"]["Properties"]
    assert role["AssumeRolePolicyDocument"]["Statement"] == [
        {"Effect": "Allow", "Principal": {"AWS": {"Fn::GetAtt": ["HandlerRole", "Arn"]}}, "Action": "sts:AssumeRole"}]
    reads = role["Policies"][0]["PolicyDocument"]["Statement"]
    assert [r["Fn::Sub"][0].rpartition("}")[2] for r in reads[0]["Resource"]] == ["/private/*", "/catalog.json", "/releases/*"]
    assert reads[0]["Action"] == "s3:GetObject" and reads[1]["Action"] == "s3:ListBucket" and "Condition" in reads[1]
    assume = resources["HandlerAssumesCredentialsRole"]["Properties"]
    assert assume["Roles"] == [{"Ref": "HandlerRole"}]
    assert assume["PolicyDocument"]["Statement"][0]["Resource"] == {"Fn::GetAtt": ["CredentialsRole", "Arn"]}
    env = resources["MetadataFunction"]["Properties"]["Environment"]["Variables"]
    assert env["SKYSHELF_CREDENTIALS_ROLE_ARN"] == {"Fn::GetAtt": ["CredentialsRole", "Arn"]}
    writes = next(s for s in resources["HandlerRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
                  if s["Sid"] == "WriteSpilledAnswers")
    assert [r["Fn::Sub"][0].rpartition("}")[2] for r in writes["Resource"]] == ["/responses/*", "/private/responses/*"]


def test_a_duration_past_what_sts_allows_is_the_callers_400(on_seaweedfs: tuple) -> None:
    """STS refuses sessions longer than its role's limit (AWS: 1 h for the chained role a Lambda
    assumes; SeaweedFS here: 2 h): that was a 502 whose detail named the role's ARN."""
    _, api, _, keys = on_seaweedfs
    assert httpx.get(f"{api}/auth/credentials", params={"duration": 7200}, headers=keys["p1"]).status_code == 200
    refused = httpx.get(f"{api}/auth/credentials", params={"duration": 10800}, headers=keys["p1"])
    assert refused.status_code == 400, refused.text
    detail = refused.json()["detail"]
    assert "duration=10800" in detail and "7200" in detail and "arn:" not in detail and READER_ROLE not in detail
