"""Enforcement on every route, end to end through ``publish serve`` (the world: tests/auth_world.py):
each principal × each route and export format × a public, A, B, untagged and missing node. Each
caller reads exactly what its tags reach; a node it may not read answers byte for byte as a node
that does not exist; bad credentials are a 401 with WWW-Authenticate; and no private name, metadata
value or count appears in any header, body or link of an answer it may not see."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Any

import h5py
import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from .auth_world import (CLASSES, IMAGE, NODES, READS, World, assert_no_leak, assert_refused, column_of, meta_of,
                         forbidden, normalised, serve_world)

world = pytest.fixture(scope="module", name="world")(serve_world)


# -- the routes --------------------------------------------------------------------------------
def _array_json(r: httpx.Response, cls: str) -> None:
    np.testing.assert_array_equal(np.array(r.json()), IMAGE)


def _block_json(r: httpx.Response, cls: str) -> None:
    got = np.array(r.json())
    np.testing.assert_array_equal(got, IMAGE[tuple(slice(0, n) for n in got.shape)])


def _csv(r: httpx.Response, cls: str) -> None:
    np.testing.assert_array_equal(np.loadtxt(io.StringIO(r.text), delimiter=","), IMAGE)


def _npy(r: httpx.Response, cls: str) -> None:
    np.testing.assert_array_equal(np.load(io.BytesIO(r.content)), IMAGE)


def _png(r: httpx.Response, cls: str) -> None:
    assert r.content.startswith(b"\x89PNG") and r.headers["content-type"] == "image/png"


def _table_csv(r: httpx.Response, cls: str) -> None:
    import csv

    assert list(csv.reader(io.StringIO(r.text))) == [["x", column_of(cls)], ["1", meta_of(cls)], ["2", f"{meta_of(cls)}-2"]]


def _arrow(r: httpx.Response, cls: str) -> None:
    table = pa.ipc.open_file(pa.BufferReader(r.content)).read_all()
    assert table.column_names == ["x", column_of(cls)] and table.column(1).to_pylist() == [meta_of(cls), f"{meta_of(cls)}-2"]


def _parquet(r: httpx.Response, cls: str) -> None:
    table = pq.read_table(io.BytesIO(r.content))
    assert table.column_names == ["x", column_of(cls)] and table.column(0).to_pylist() == [1, 2]


def _column(r: httpx.Response, cls: str) -> None:
    assert r.json() == [meta_of(cls), f"{meta_of(cls)}-2"]


def _column_meta(r: httpx.Response, cls: str) -> None:
    assert r.json()["data"]["id"] == column_of(cls)


def _node_meta(r: httpx.Response, cls: str) -> None:
    data = r.json()["data"]
    assert data["attributes"]["ancestors"] == [NODES["array"][cls].split("/")[0]]


def _box_json(r: httpx.Response, cls: str) -> None:
    entry = r.json()["contents"]["entry"]
    assert entry["metadata"]["note"] == meta_of(cls) and "counts" in entry["contents"]


def _box_h5(r: httpx.Response, cls: str) -> None:
    with h5py.File(io.BytesIO(r.content), "r") as f:
        np.testing.assert_array_equal(f["entry/counts"][...], np.arange(6))
        assert f["entry"].attrs["note"] == meta_of(cls)


def _search(r: httpx.Response, cls: str) -> None:
    body = r.json()
    assert [d["id"] for d in body["data"]] == ["entry"] and body["meta"]["count"] == 1


def _search_deep(r: httpx.Response, cls: str) -> None:
    assert {d["id"] for d in r.json()["data"]} >= {"entry", "counts"}


def _distinct(r: httpx.Response, cls: str) -> None:
    assert r.json()["metadata"]["note"] == [{"value": meta_of(cls), "count": 1}]


@dataclass(frozen=True)
class Route:
    name: str
    family: str
    template: str  # {node} and {column}
    params: tuple[tuple[str, str], ...]
    check: Any

    def url(self, node: str, cls: str) -> str:
        return self.template.format(node=node, column=column_of(cls))


ROUTES = [
    Route("metadata-array", "array", "/api/v1/metadata/{node}", (), _node_meta),
    Route("metadata-table", "table", "/api/v1/metadata/{node}", (), lambda r, c: r.json()["data"]["attributes"]["structure"]["columns"] == ["x", column_of(c)]),
    Route("metadata-container", "container", "/api/v1/metadata/{node}", (), lambda r, c: r.json()["data"]["attributes"]["structure"]["count"] == 1),
    Route("metadata-table-column", "table", "/api/v1/metadata/{node}/{column}", (), _column_meta),  # a 307 to column/metadata
    Route("search", "container", "/api/v1/search/{node}", (), _search),
    Route("search-deep", "container", "/api/v1/search-deep/{node}", (), _search_deep),
    Route("distinct", "container", "/api/v1/distinct/{node}", (("metadata", "note"), ("counts", "true")), _distinct),
    Route("container-json", "container", "/api/v1/container/full/{node}", (("format", "json"),), _box_json),
    Route("container-hdf5", "container", "/api/v1/container/full/{node}", (("format", "h5"),), _box_h5),
    Route("array-json", "array", "/api/v1/array/full/{node}", (("format", "json"),), _array_json),
    Route("array-csv", "array", "/api/v1/array/full/{node}", (("format", "csv"),), _csv),
    Route("array-npy", "array", "/api/v1/array/full/{node}", (("format", "npy"),), _npy),
    Route("array-png", "array", "/api/v1/array/full/{node}", (("format", "png"),), _png),
    Route("array-slice", "array", "/api/v1/array/full/{node}", (("format", "json"), ("slice", "0:2,0:3")),
          lambda r, c: np.testing.assert_array_equal(np.array(r.json()), IMAGE[:2, :3])),
    Route("array-block", "array", "/api/v1/array/block/{node}", (("format", "json"), ("block", "0,0")), _block_json),
    Route("table-csv", "table", "/api/v1/table/full/{node}", (("format", "csv"),), _table_csv),
    Route("table-arrow", "table", "/api/v1/table/full/{node}", (("format", "arrow"),), _arrow),
    Route("table-parquet", "table", "/api/v1/table/full/{node}", (("format", "parquet"),), _parquet),
    Route("table-partition", "table", "/api/v1/table/partition/{node}", (("format", "csv"), ("partition", "0")), _table_csv),
    Route("array-tiff", "array", "/api/v1/array/full/{node}", (("format", "tiff"),), lambda r, c: r.content[:2] in (b"II", b"MM")),
    Route("array-html", "array", "/api/v1/array/full/{node}", (("format", "html"),), lambda r, c: "<table" in r.text),
    Route("table-jsonl", "table", "/api/v1/table/full/{node}", (("format", "jsonl"),),
          lambda r, c: [json.loads(line.lstrip("\x1e"))[column_of(c)] for line in r.text.split("\n") if line] == [meta_of(c), f"{meta_of(c)}-2"]),
    Route("table-xlsx", "table", "/api/v1/table/full/{node}", (("format", "xlsx"),), lambda r, c: r.content[:2] == b"PK"),
    Route("table-html", "table", "/api/v1/table/full/{node}", (("format", "html"),), lambda r, c: meta_of(c) in r.text),
    Route("container-arrow", "container", "/api/v1/container/full/{node}/entry", (("format", "arrow"), ("field", "counts")),
          lambda r, c: pa.ipc.open_file(pa.BufferReader(r.content)).read_all().column("counts").to_pylist() == list(range(6))),
    Route("zarr-array", "array", "/api/v1/zarr/v3/{node}/zarr.json", (), lambda r, c: r.json()["shape"] == list(IMAGE.shape)),
    Route("zarr-array-chunk", "array", "/api/v1/zarr/v3/{node}/c/0/0", (), lambda r, c: len(r.content) > 0),
    Route("zarr-group", "container", "/api/v1/zarr/v3/{node}/entry/zarr.json", (),
          lambda r, c: r.json()["attributes"]["note"] == meta_of(c)),
    Route("column-full", "table", "/api/v1/column/full/{node}/{column}", (("format", "json"),), _column),
    Route("column-metadata", "table", "/api/v1/column/metadata/{node}/{column}", (), _column_meta),
]


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.name)
@pytest.mark.parametrize("principal", list(READS))
def test_matrix(world: World, principal: str, route: Route) -> None:
    """principal × route: for the node of each class and a missing one, exactly what it may see."""
    reads, params = READS[principal], dict(route.params)
    for cls in CLASSES:
        node = NODES[route.family][cls]
        r = world.get(principal, route.url(node, cls), params, follow_redirects=True)
        assert_no_leak(r, forbidden(reads), (route.url(node, cls).split("/", 4)[-1], node, *node.split("/")))
        if reads is None:
            assert_refused(r)
        elif cls in reads:
            assert r.status_code == 200, (principal, route.name, cls, r.status_code, r.text[:300])
            if route.check is not None:
                assert route.check(r, cls) is not False, (principal, route.name, cls)
        else:  # hidden: the very answer of a node that does not exist
            missing = NODES[route.family]["none"]
            absent = world.get(principal, route.url(missing, cls), params, follow_redirects=True)
            assert absent.status_code == 404 and r.status_code == 404, (principal, route.name, cls, r.text[:300])
            assert normalised(r, node) == normalised(absent, missing), (principal, route.name, cls)
    missing = world.get(principal, route.url(NODES[route.family]["none"], "public"), params)
    assert missing.status_code == (401 if reads is None else 404)


#: Nodes hidden by a tag on the way down: a private group in a public file, and a public rule
#: under a container tagged A (moot: the container above decides).
DEEP = {"pub/box/entry/sec_alpha_inner": "container", "pub/box/entry/sec_alpha_inner/signal": "array",
        "sec_alpha/sec_alpha_box/entry/counts": "array"}


@pytest.mark.parametrize("request_headers", [{}, {"If-None-Match": "*"}, {"Accept-Encoding": "zstd, gzip"}], ids=["plain", "if-none-match", "encoded"])
@pytest.mark.parametrize("principal", ["anonymous", "key-b"])
def test_nodes_hidden_further_down_answer_as_missing_ones(world: World, principal: str, request_headers: dict[str, str]) -> None:
    routes = {"container": ["metadata", "search", "search-deep", "distinct", "container/full"], "array": ["metadata", "array/full", "array/block"]}
    for node, family in DEEP.items():
        missing = node.rsplit("/", 1)[0] + "/no_such_node"
        for route in routes[family]:
            params = {"block": "0"} if route == "array/block" else {}
            got = [httpx.get(f"{world.url}/api/v1/{route}/{path}", params={**params, **world.credentials[principal][1]},
                             headers={**world.credentials[principal][0], **request_headers}) for path in (node, missing)]
            assert got[0].status_code == 404, (route, node, got[0].status_code)
            assert normalised(got[0], node) == normalised(got[1], missing), (route, node)
            assert_no_leak(got[0], forbidden(READS[principal]), (node,))
            if route == "container/full":  # a hidden child named as a field is as unknown as a missing one
                fields = [httpx.get(f"{world.url}/api/v1/container/full/{node.rsplit('/', 1)[0]}", params={"field": name, "format": "json"},
                                    headers=world.credentials[principal][0]) for name in (node.rsplit("/", 1)[1], "no_such_node")]
                assert fields[0].status_code == 400
                assert normalised(fields[0], node.rsplit("/", 1)[1]) == normalised(fields[1], "no_such_node")
            head = httpx.head(f"{world.url}/api/v1/{route}/{node}", params=params, headers={**world.credentials[principal][0], **request_headers})
            assert head.status_code == 404 and head.content == b""


#: Credentials no one was given: each is a 401 (or Tiled's 400 for an unknown scheme), never a 500.
ODD_CREDENTIALS = [
    ({"Authorization": "Bearer a.b"}, {}), ({"Authorization": "Bearer a.b.c"}, {}), ({"Authorization": "Bearer ..."}, {}),
    ({"Authorization": "Bearer eyJhbGciOiJSUzI1NiJ9.e30.c2ln"}, {}), ({"Authorization": "Bearer " + "a" * 20000}, {}),
    ({"Authorization": "Bearer eyJhbGciOiJSUzI1NiIsImtpZCI6WzFdfQ.e30.c2ln"}, {}),  # a kid that is a list
    ({"Authorization": "Bearer e30.e30.e30"}, {}), ({"Authorization": "Bearer bm90IGpzb24.bm90IGpzb24.c2ln"}, {}),
    ({"Authorization": "Apikey " + "ssk_" + "0" * 12 + "_" + "0" * 64}, {}), ({"Authorization": "Apikey ssk_zz_zz"}, {}),
    ({"Authorization": "Apikey " + "k" * 20000}, {}), ({"Authorization": "apikey ssk_0_0"}, {}),
    ({}, {"api_key": "ssk_0_0"}), ({}, {"api_key": "\u00e9\u00e9"}), ({}, {"api_key": "ssk_" + "0" * 12 + "_" + "g" * 64}),
    ({"Authorization": "Basic YTpi"}, {}),
]


@pytest.mark.parametrize("credentials", range(len(ODD_CREDENTIALS)))
@pytest.mark.parametrize("path", ["/api/v1/metadata/pub/img", "/api/v1/search/", "/api/v1/array/full/sec_alpha/sec_alpha_img",
                                  "/api/v1/auth/whoami"])
def test_odd_credentials_are_refused_never_a_500(world: World, path: str, credentials: int) -> None:
    headers, params = ODD_CREDENTIALS[credentials]
    r = httpx.get(world.url + path, headers=headers, params=params)
    assert_no_leak(r, forbidden(None))
    if headers.get("Authorization", "").startswith("Basic"):
        assert r.status_code == 400 and "Apikey SECRET" in r.json()["detail"]
        return
    if len(headers.get("Authorization", "")) > 10240:  # past API Gateway's quota: refused before anyone reads it
        assert r.status_code == 431 and "API Gateway takes at most 10240" in r.json()["detail"], r.text
    else:
        assert_refused(r)
    assert "a" * 100 not in r.text and "k" * 100 not in r.text  # the secret is not echoed


@pytest.mark.parametrize("principal", list(READS))
def test_scoped_credentials_refuse_without_naming_nodes(world: World, principal: str) -> None:
    """``/auth/credentials``: a 401 for anonymous callers and bad credentials; a signed-in caller
    asking about a node it may not read hears what it hears about a missing one (here, on a
    folder store, that there are no S3 credentials at all)."""
    hidden = world.get(principal, "/api/v1/auth/credentials", {"node": NODES["array"]["b"]})
    missing = world.get(principal, "/api/v1/auth/credentials", {"node": NODES["array"]["none"]})
    assert_no_leak(hidden, forbidden(READS[principal]), (NODES["array"]["b"], *NODES["array"]["b"].split("/")))
    if principal == "anonymous" or READS[principal] is None:
        assert_refused(hidden)
        return
    assert 400 <= hidden.status_code < 500 and hidden.status_code != 401
    if "b" not in (READS[principal] or ()):
        assert normalised(hidden, NODES["array"]["b"]) == normalised(missing, NODES["array"]["none"])
