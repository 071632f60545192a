"""``publish serve``: the Lambda handlers behind a local HTTP server, driven by the real tiled
client and by plain HTTP (formats, caching, errors, redirects, lean imports)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import h5py
import httpx
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from .conftest import ROOT, Published, run_build, served
from .test_build_demo import demo_config


@pytest.fixture(scope="module")
def demo(demo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Published:
    return run_build(tmp_path_factory.mktemp("serve-build"), demo_config(demo_dir))


@pytest.fixture(scope="module")
def server(demo: Published) -> Iterator[str]:
    with served(demo.store.url) as url:
        yield url


@pytest.fixture(scope="module")
def client(server: str):  # noqa: ANN201
    from tiled.client import from_uri

    return from_uri(f"{server}/api/v1")


def test_tiled_client_browses_and_reads_values_equal_to_sources(client, demo_dir: Path) -> None:  # noqa: ANN001
    assert list(client) == ["scans", "frames", "tables", "climate"] and len(client) == 4
    scans = client["scans"]
    assert list(scans) == ["scan_0001", "scan_0002"]
    assert [k for k, _ in scans.items()] == list(scans)
    assert client["scans"]["scan_0001"]["entry"]["data"]["data"].shape == client["scans/scan_0001/entry/data/data"].shape
    array = client["scans/scan_0001/entry/data/data"]
    with h5py.File(demo_dir / "scans" / "scan_0001.nxs") as f:
        source = f["entry/data/data"][()]
    assert array.dtype == source.dtype and array.shape == source.shape
    np.testing.assert_array_equal(array[2, 10:20, 5:8], source[2, 10:20, 5:8])
    np.testing.assert_array_equal(array[::3, -5:, ::7], source[::3, -5:, ::7])
    np.testing.assert_array_equal(array.read(), source)
    np.testing.assert_array_equal(array.read_block((4, 0, 0)), source[4:5])
    table = client["tables/temperature_log"]
    expected = pd.read_csv(demo_dir / "tables" / "temperature_log.csv", comment="#")
    got = table.read()
    assert list(got.columns) == list(expected.columns)
    np.testing.assert_allclose(got["sample_temperature"], expected["sample_temperature"])
    assert list(table.read(columns=["setpoint"]).columns) == ["setpoint"]


def test_tiled_client_search_and_export(client, tmp_path: Path) -> None:  # noqa: ANN001
    from tiled.queries import FullText, Key

    assert list(client["scans"].search(Key("beamline") == "28-ID-1")) == ["scan_0001", "scan_0002"]
    assert list(client["scans"].search(Key("beamline") == "nope")) == []
    assert list(client["scans"].search(FullText("scan_0002.nxs"))) == ["scan_0002"]
    assert list(client["scans/scan_0001"].search(FullText("nacl powder"))) == ["entry"]
    frame = client["frames/KCl_300K_00007"]
    frame.export(tmp_path / "f.csv", slice=(0,))
    np.testing.assert_array_equal(np.loadtxt(tmp_path / "f.csv", delimiter=","), frame[0])
    frame.export(tmp_path / "f.png", slice=(0,))
    assert Image.open(tmp_path / "f.png").size == (frame.shape[2], frame.shape[1])
    client["tables/temperature_log"].export(tmp_path / "t.parquet")
    assert pq.read_table(tmp_path / "t.parquet").num_rows == client["tables/temperature_log"].read().shape[0]


def test_tiled_smoke_read_strict(client) -> None:  # noqa: ANN001
    from tiled.client.smoke import read

    read(client, strict=True)


def test_formats_by_alias_accept_and_filename(server: str) -> None:
    api = f"{server}/api/v1"
    path = "frames/KCl_300K_00007"
    raw = httpx.get(f"{api}/array/full/{path}?slice=1", headers={"Accept": "application/octet-stream"})
    frame = np.frombuffer(raw.content, dtype="<u2").reshape(128, 160)
    assert json.loads(httpx.get(f"{api}/array/full/{path}?slice=1,0:2,0:3&format=json").content) == frame[:2, :3].tolist()
    assert np.array_equal(np.load(io.BytesIO(httpx.get(f"{api}/array/full/{path}?slice=1&format=npy").content)), frame)
    import tifffile

    assert np.array_equal(tifffile.imread(io.BytesIO(httpx.get(f"{api}/array/full/{path}?slice=1", headers={"Accept": "image/tiff"}).content)), frame)
    png = httpx.get(f"{api}/array/full/{path}?slice=1&format=png&colormap=viridis&rescale=0,5000&max_size=64&filename=frame.png")
    assert png.headers["content-type"] == "image/png" and png.headers["content-disposition"] == 'attachment; filename="frame.png"'
    image = Image.open(io.BytesIO(png.content))
    assert image.mode == "RGB" and max(image.size) <= 64
    assert httpx.get(f"{api}/array/full/{path}?slice=1&format=html").text.startswith("<!doctype html>")
    table = f"{api}/table/partition/tables/temperature_log?partition=0&column=setpoint&column=heater_output"
    arrow = pa.ipc.open_file(httpx.get(table).content).read_all()
    assert arrow.column_names == ["setpoint", "heater_output"]
    assert pq.read_table(io.BytesIO(httpx.get(table + "&format=parquet").content)).equals(arrow)
    assert httpx.get(table + "&format=csv").text.splitlines()[0] == '"setpoint","heater_output"'
    seq = httpx.get(table + "&format=json-seq").content.split(b"\x1e")[1:]
    assert len(seq) == arrow.num_rows and json.loads(seq[0])["setpoint"] == arrow["setpoint"][0].as_py()
    xlsx = httpx.get(f"{api}/table/full/tables/temperature_log?format=xlsx")
    assert pd.read_excel(io.BytesIO(xlsx.content)).shape[0] == arrow.num_rows


def test_caching_headers_etag_and_compression(server: str) -> None:
    url = f"{server}/api/v1/metadata/scans/scan_0001"
    first = httpx.get(url)
    assert first.status_code == 200 and first.headers["etag"] and "max-age" in first.headers["cache-control"]
    assert "Accept" in first.headers["vary"]
    again = httpx.get(url, headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    big = httpx.get(f"{server}/api/v1/array/full/frames/KCl_300K_00007?format=json", headers={"Accept-Encoding": "gzip"})
    assert big.headers.get("content-encoding") == "gzip" and len(json.loads(big.content)) == 4


@pytest.mark.parametrize(("path", "status"), [
    ("/api/v1/metadata/no/such/node", 404),
    ("/api/v1/array/full/frames/KCl_300K_00007?slice=0,abc", 400),
    ("/api/v1/array/full/frames/KCl_300K_00007?slice=0,0,0,0", 400),
    ("/api/v1/array/full/frames/KCl_300K_00007?slice=99", 400),
    ("/api/v1/array/block/frames/KCl_300K_00007?block=9,0,0", 400),
    ("/api/v1/array/block/frames/KCl_300K_00007?block=x", 400),
    ("/api/v1/array/full/frames/KCl_300K_00007?format=video/mp4", 406),
    ("/api/v1/array/full/frames/KCl_300K_00007?format=csv", 400),
    ("/api/v1/array/full/frames/KCl_300K_00007?expected_shape=1,2", 400),
    ("/api/v1/search/?filter[bogus][condition][x]=1", 400),
    ("/api/v1/search/?filter[eq][condition][key]=a&filter[eq][condition][value]=not-json", 400),
    ("/api/v1/search/?page[limit]=1000", 400),
    ("/api/v1/search/?sort=bad!key", 400),
    ("/api/v1/search/frames/KCl_300K_00007", 400),
    ("/api/v1/metadata/%2e%2e/%2e%2e/etc/passwd", 404),
    ("/files/%2e%2e/%2e%2e/etc/passwd", 404),
    ("/api/v1/table/partition/tables/temperature_log?partition=7", 400),
    ("/api/v1/table/partition/tables/temperature_log?partition=0&column=nope", 400),
    ("/api/v1/table/full/frames/KCl_300K_00007", 400),
    ("/api/v1/nowhere", 404),
])
def test_client_mistakes_are_4xx_with_detail(server: str, path: str, status: int) -> None:
    response = httpx.get(server + path)
    assert response.status_code == status, response.text
    assert "detail" in response.json() and "Traceback" not in response.text


def test_oversized_response_redirects_to_the_bytes(server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SKYSHELF_MAX_BODY_BYTES", "1000")
    url = f"{server}/api/v1/array/full/frames/KCl_300K_00007"
    response = httpx.get(url)
    assert response.status_code == 307 and "/files/responses/" in response.headers["location"]
    followed = httpx.get(url, follow_redirects=True)
    assert followed.status_code == 200 and len(followed.content) == 4 * 128 * 160 * 2
    # the spilled object carries the format's media type from the serializer registry (as S3 would)
    npy = httpx.get(url + "?format=npy", follow_redirects=True)
    assert npy.history and npy.headers["content-type"] == "application/x-npy"
    assert np.load(io.BytesIO(npy.content)).shape == (4, 128, 160)
    table = httpx.get(f"{server}/api/v1/table/full/tables/temperature_log?format=xlsx", follow_redirects=True)
    assert table.history and table.headers["content-type"] == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def test_store_files_read_directly_over_http(server: str, demo: Published) -> None:
    import xarray as xr

    sst = demo.node("climate/sst")["data_url"]
    ds = xr.open_zarr(f"{server}/files/{sst}")
    assert ds["sst"].shape == (6, 18, 36)
    part = httpx.get(f"{server}/files/{sst}/zarr.json", headers={"Range": "bytes=0-9"})
    assert part.status_code == 206 and len(part.content) == 10


#: Third-party packages each handler may import at import time: Powertools and what it brings
#: (botocore, which Lambda's runtime has), and numpy for arrays. Anything else (h5py, pandas,
#: xarray, zarr, pyarrow, s3fs) would be a heavy import on every cold start.
POWERTOOLS = {"aws_lambda_powertools", "botocore", "certifi", "jmespath", "typing_extensions", "dateutil", "six", "urllib3"}
LEAN = {"handlers.metadata": POWERTOOLS, "handlers.arrays": POWERTOOLS | {"numpy"}, "handlers.tables": POWERTOOLS}


@pytest.mark.parametrize("module", sorted(LEAN))
def test_handler_imports_are_lean(module: str) -> None:
    """What a cold import of a handler loads, beyond the standard library and our own code (a
    count of packages, not a time: the same on a busy host)."""
    code = (f"import sys, {module}; std = set(sys.stdlib_module_names)\n"
            "print(','.join(sorted({n.split('.')[0] for n in sys.modules} - std - {'handlers', 'publisher'})))")
    done = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    loaded = {m for m in done.stdout.strip().split(",") if m and m != "__main__" and not m.startswith(("__editable__", "_distutils_hack", "sitecustomize"))}
    assert loaded <= LEAN[module], f"{module} imports {sorted(loaded - LEAN[module])} at import"


def test_about_health_openapi_and_docs(server: str) -> None:
    from publisher.functions import ROUTES

    about = httpx.get(f"{server}/api/v1/").json()
    assert about["authentication"] == {"required": False, "providers": [], "links": None}
    assert "image/png" in about["formats"]["array"] and "csv" in about["aliases"]["table"]["text/csv"]
    assert httpx.get(f"{server}/healthz").json()["status"] == "ok"
    spec = httpx.get(f"{server}/api/v1/openapi.json").json()
    assert {r.path.replace("{path+}", "{path}") for r in ROUTES} == set(spec["paths"])
    docs = httpx.get(about["links"]["documentation"])
    assert docs.status_code == 200 and "openapi.json" in docs.text


def test_lambda_wire_format_is_base64_for_bodies(demo: Published, monkeypatch: pytest.MonkeyPatch) -> None:
    """Called as Lambda calls it (no local server): binary and JSON bodies go out base64-encoded
    with ``isBase64Encoded``, and decode to what the local server sends."""
    import base64

    import handlers.arrays
    import handlers.metadata
    from handlers.local import event_for

    monkeypatch.setenv("SKYSHELF_STORE", demo.store.url)
    headers = {"host": "example.org", "accept": "application/octet-stream"}
    result = handlers.arrays.lambda_handler(event_for("GET", "/api/v1/array/full/frames/KCl_300K_00007", "slice=1", headers, "1.2.3.4"), None)
    assert result["statusCode"] == 200 and result["isBase64Encoded"] is True
    frame = np.frombuffer(base64.b64decode(result["body"]), dtype="<u2").reshape(128, 160)
    assert frame.sum() > 0
    meta = handlers.metadata.lambda_handler(event_for("GET", "/api/v1/metadata/frames", "", {"host": "example.org"}, "1.2.3.4"), None)
    body = json.loads(base64.b64decode(meta["body"]))
    assert body["data"]["links"]["self"] == "http://example.org/api/v1/metadata/frames"
    missing = handlers.metadata.lambda_handler(event_for("GET", "/api/v1/metadata/nope", "", {"host": "example.org"}, "1.2.3.4"), None)
    assert missing["statusCode"] == 404 and "no node" in json.loads(missing["body"])["detail"]


@pytest.mark.parametrize("encoding", ["zstd", "gzip", "identity"])
def test_array_blocks_over_http_in_any_encoding(server: str, client, encoding: str) -> None:  # noqa: ANN001
    """An interior block goes out as its stored zstd chunk when zstd is accepted (nothing decoded
    or re-encoded), otherwise encoded for the client; the values are the same either way."""
    node = client["scans/scan_0001/entry/data/data"]
    url = f"{server}/api/v1/array/block/scans/scan_0001/entry/data/data?block=4,0,0"
    response = httpx.get(url, headers={"Accept-Encoding": encoding, "Accept": "application/octet-stream"})
    assert response.status_code == 200
    assert response.headers.get("content-encoding", "identity") == encoding
    got = np.frombuffer(response.content, dtype=node.dtype.newbyteorder("<")).reshape(1, *node.shape[1:])
    np.testing.assert_array_equal(got, node[4:5])
    shape = ",".join(map(str, got.shape))
    assert httpx.get(f"{url}&expected_shape={shape}", headers={"Accept-Encoding": encoding}).status_code == 200
    wrong = httpx.get(f"{url}&expected_shape=2,{shape}", headers={"Accept-Encoding": encoding})
    assert wrong.status_code == 400 and "expected_shape" in wrong.json()["detail"]


def test_a_release_switch_shows_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A warm handler on a local store answers from the new release on the first request after
    the switch: it checks catalog.json's identity on every request, not after a time-out. Search
    columns it had loaded (here for a container of one) belong to the old release's catalog and
    are not used again."""
    import json as _json

    from handlers.local import LocalServer

    monkeypatch.setenv("SKYSHELF_SEARCH_MIN_CHILDREN", "1")
    query = "/api/v1/search/?filter[eq][condition][key]=state&filter[eq][condition][value]=%22new%22"

    (tmp_path / "data").mkdir()
    np.save(tmp_path / "data" / "a.npy", np.zeros(3))
    (tmp_path / "data" / "a.npy.json").write_text(_json.dumps({"state": "old"}))
    config = {"sources": [{"path": "data", "into": ""}]}
    published = run_build(tmp_path, config)
    server = LocalServer(published.store.url, "127.0.0.1", 0).start()
    try:
        url = f"{server.url}/api/v1/metadata/a"
        assert httpx.get(url).json()["data"]["attributes"]["metadata"]["state"] == "old"
        assert httpx.get(server.url + query).json()["meta"]["count"] == 0
        (tmp_path / "data" / "a.npy.json").write_text(_json.dumps({"state": "new"}))
        run_build(tmp_path, config)
        assert all(published.store.listdir(f"releases/{r}/index/search") for r in published.store.listdir("releases"))
        assert httpx.get(url).json()["data"]["attributes"]["metadata"]["state"] == "new"
        search = httpx.get(server.url + query).json()
        assert [d["id"] for d in search["data"]] == ["a"] and search["meta"]["count"] == 1
    finally:
        server.stop()
