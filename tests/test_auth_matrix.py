"""Enforcement on every route, end to end through ``publish serve``: one mixed catalog (public
nodes, nodes tagged A, nodes tagged B, an untagged private node; arrays, tables and containers),
the principals Tiled's client can present (anonymous, API keys, a real OIDC token and forged
ones) and every route. Each caller reads exactly what its tags reach; a node it may not read
answers byte for byte as a node that does not exist; bad credentials are a 401 with
WWW-Authenticate; and no private name, metadata value or count appears in any header, body or
link of any answer a caller may not see."""

from __future__ import annotations

import base64
import io
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import h5py
import httpx
import jwt
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from handlers.local import LocalServer
from publisher.auth.keys import create_key, revoke_key
from publisher.catalog import Catalog
from publisher.stores import Store

from .conftest import run_build
from .oidc_server import OIDCProvider, oidc_provider

#: What only the callers who may read each class of node may see: names and metadata values.
MARKERS = {"a": ("sec_alpha", "ALPHA-META"), "b": ("sec_bravo", "BRAVO-META"), "private": ("sec_zulu", "ZULU-META")}
IMAGE = np.arange(48 * 40, dtype="float64").reshape(48, 40)  # 15 KiB: spills past a small max_body_bytes
TAGS = {"public": ["public"], "a": ["tag-a"], "b": ["tag-b"]}

#: Per family, the node of each class, and a path of the same shape that does not exist.
NODES = {
    "array": {"public": "pub/img", "a": "sec_alpha/sec_alpha_img", "b": "sec_bravo/sec_bravo_img",
              "private": "sec_zulu/sec_zulu_img", "none": "nowhere/no_img"},
    "table": {"public": "pub/tab", "a": "sec_alpha/sec_alpha_tab", "b": "sec_bravo/sec_bravo_tab",
              "private": "sec_zulu/sec_zulu_tab", "none": "nowhere/no_tab"},
    "container": {"public": "pub/box", "a": "sec_alpha/sec_alpha_box", "b": "sec_bravo/sec_bravo_box",
                  "private": "sec_zulu/sec_zulu_box", "none": "nowhere/no_box"},
}
#: What each principal reads: None means its credentials are refused (401).
READS: dict[str, set[str] | None] = {
    "anonymous": {"public"},
    "key-a": {"public", "a"},
    "key-a-query": {"public", "a"},
    "key-b": {"public", "b"},
    "key-ab": {"public", "a", "b"},
    "key-expired": None,
    "key-revoked": None,
    "jwt-a": {"public", "a"},
    "jwt-other-key": None,
    "jwt-alg-none": None,
    "jwt-wrong-audience": None,
    "jwt-expired": None,
    "key-malformed": None,
}


def make_sources(folder: Path) -> None:
    """Each class gets an array (with metadata), a table (a private column name) and an HDF5 container."""
    for cls, stem in (("public", "pub"), ("a", "sec_alpha"), ("b", "sec_bravo"), ("private", "sec_zulu")):
        name = "" if cls == "public" else f"{stem}_"
        meta = "open-meta" if cls == "public" else MARKERS[cls][1]
        (folder / stem).mkdir()
        np.save(folder / stem / f"{name}img.npy", IMAGE)
        (folder / stem / f"{name}img.npy.json").write_text(json.dumps({"note": meta, "kind": "image"}))
        column = "value" if cls == "public" else f"{stem}_col"
        (folder / stem / f"{name}tab.csv").write_text(f"x,{column}\n1,{meta}\n2,{meta}-2\n")
        with h5py.File(folder / stem / f"{name}box.h5", "w") as f:
            entry = f.create_group("entry")
            entry.attrs["note"] = meta
            entry.create_dataset("counts", data=np.arange(6))
            if cls == "public":  # a public container with a child tagged A inside
                inner = entry.create_group("sec_alpha_inner")
                inner.attrs["note"] = "ALPHA-META-inner"
                inner.create_dataset("signal", data=np.arange(3.0))


def config(provider: OIDCProvider) -> dict[str, Any]:
    rules = [{"match": "pub", "access_tags": TAGS["public"]}, {"match": "sec_alpha", "access_tags": TAGS["a"]},
             {"match": "sec_bravo", "access_tags": TAGS["b"]},
             {"match": "pub/box/entry/sec_alpha_inner", "access_tags": TAGS["a"]},
             {"match": "sec_alpha/sec_alpha_box/entry/counts", "access_tags": TAGS["public"]}]  # moot: under A
    return {"name": "auth matrix", "sources": [{"path": p} for p in ("pub", "sec_alpha", "sec_bravo", "sec_zulu")],
            "rules": rules, "access": {"groups": {"grp-a": TAGS["a"], "grp-b": TAGS["b"]},
                                       "oidc": {"issuer": provider.issuer, "audience": provider.audience,
                                                "client_id": provider.client_id}}}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forged_tokens(provider: OIDCProvider, real: str) -> dict[str, str]:
    """Tokens a caller may not be let in with. Wrong audience and expired ones are signed with the
    provider's own key (read from its key file), so only the claim is wrong."""
    header = jwt.get_unverified_header(real)
    claims = jwt.decode(real, options={"verify_signature": False})
    private = next(k for k in json.loads((provider.workdir / "keys.json").read_text())["keys"] if k["kid"] == header["kid"])
    own = jwt.PyJWK(private, algorithm="RS256").key
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = int(time.time())
    unsigned = f"{_b64(json.dumps({**header, 'alg': 'none'}).encode())}.{_b64(json.dumps(claims).encode())}."
    return {
        "jwt-other-key": jwt.encode(claims, other, algorithm="RS256", headers={"kid": header["kid"]}),
        "jwt-alg-none": unsigned,
        "jwt-wrong-audience": jwt.encode({**claims, "aud": "https://elsewhere.test/api"}, own, algorithm="RS256",
                                         headers={"kid": header["kid"]}),
        "jwt-expired": jwt.encode({**claims, "iat": now - 7200, "exp": now - 3600}, own, algorithm="RS256",
                                  headers={"kid": header["kid"]}),
    }


@dataclass
class World:
    url: str
    root: Path
    credentials: dict[str, tuple[dict[str, str], dict[str, str]]] = field(default_factory=dict)  # headers, params
    provider: OIDCProvider | None = None

    def get(self, principal: str, path: str, params: dict[str, str] | None = None, **kwargs: Any) -> httpx.Response:
        headers, extra = self.credentials[principal]
        return httpx.get(self.url + path, params={**(params or {}), **extra}, headers=headers, timeout=30, **kwargs)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with oidc_provider(tmp_path_factory.mktemp("matrix-oidc"), {"alice": ["grp-a"], "bob": ["grp-b"]},
                       access_ttl=3600) as provider:
        folder = tmp_path_factory.mktemp("matrix")
        make_sources(folder)
        published = run_build(folder, config(provider))
        store = published.store
        key_a, _ = create_key(store, TAGS["a"])
        key_b, _ = create_key(store, TAGS["b"])
        key_ab, _ = create_key(store, TAGS["a"] + TAGS["b"])
        expired, _ = create_key(store, TAGS["a"], expires=_past())
        revoked, record = create_key(store, TAGS["a"])
        revoke_key(store, record["id"])
        alice = provider.token("alice")
        server = LocalServer(store.url, "127.0.0.1", 0).start()
        apikey = lambda key: ({"Authorization": f"Apikey {key}"}, {})  # noqa: E731
        bearer = lambda token: ({"Authorization": f"Bearer {token}"}, {})  # noqa: E731
        found = World(server.url, Path(store.url), provider=provider)
        found.credentials = {"anonymous": ({}, {}), "key-a": apikey(key_a), "key-a-query": ({}, {"api_key": key_a}),
                             "key-b": apikey(key_b), "key-ab": apikey(key_ab), "key-expired": apikey(expired), "key-revoked": apikey(revoked),
                             "key-malformed": apikey("ssk_nothing"), "jwt-a": bearer(alice),
                             **{name: bearer(token) for name, token in forged_tokens(provider, alice).items()}}
        try:
            yield found
        finally:
            server.stop()


def _past() -> Any:
    from datetime import datetime, timedelta, timezone

    return datetime.now(timezone.utc) - timedelta(days=1)


# -- the routes --------------------------------------------------------------------------------
def column_of(cls: str) -> str:
    return "value" if cls == "public" else f"{MARKERS[cls][0]}_col"


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


def _meta(cls: str) -> str:
    return "open-meta" if cls == "public" else MARKERS[cls][1]


def _table_csv(r: httpx.Response, cls: str) -> None:
    import csv

    assert list(csv.reader(io.StringIO(r.text))) == [["x", column_of(cls)], ["1", _meta(cls)], ["2", f"{_meta(cls)}-2"]]


def _arrow(r: httpx.Response, cls: str) -> None:
    table = pa.ipc.open_file(pa.BufferReader(r.content)).read_all()
    assert table.column_names == ["x", column_of(cls)] and table.column(1).to_pylist() == [_meta(cls), f"{_meta(cls)}-2"]


def _parquet(r: httpx.Response, cls: str) -> None:
    table = pq.read_table(io.BytesIO(r.content))
    assert table.column_names == ["x", column_of(cls)] and table.column(0).to_pylist() == [1, 2]


def _column(r: httpx.Response, cls: str) -> None:
    assert r.json() == [_meta(cls), f"{_meta(cls)}-2"]


def _column_meta(r: httpx.Response, cls: str) -> None:
    assert r.json()["data"]["id"] == column_of(cls)


def _node_meta(r: httpx.Response, cls: str) -> None:
    data = r.json()["data"]
    assert data["attributes"]["ancestors"] == [NODES["array"][cls].split("/")[0]]


def _box_json(r: httpx.Response, cls: str) -> None:
    entry = r.json()["contents"]["entry"]
    assert entry["metadata"]["note"] == _meta(cls) and "counts" in entry["contents"]


def _box_h5(r: httpx.Response, cls: str) -> None:
    with h5py.File(io.BytesIO(r.content), "r") as f:
        np.testing.assert_array_equal(f["entry/counts"][...], np.arange(6))
        assert f["entry"].attrs["note"] == _meta(cls)


def _search(r: httpx.Response, cls: str) -> None:
    body = r.json()
    assert [d["id"] for d in body["data"]] == ["entry"] and body["meta"]["count"] == 1


def _search_deep(r: httpx.Response, cls: str) -> None:
    assert {d["id"] for d in r.json()["data"]} >= {"entry", "counts"}


def _distinct(r: httpx.Response, cls: str) -> None:
    assert r.json()["metadata"]["note"] == [{"value": _meta(cls), "count": 1}]


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
          lambda r, c: [json.loads(line.lstrip("\x1e"))[column_of(c)] for line in r.text.split("\n") if line] == [_meta(c), f"{_meta(c)}-2"]),
    Route("table-xlsx", "table", "/api/v1/table/full/{node}", (("format", "xlsx"),), lambda r, c: r.content[:2] == b"PK"),
    Route("table-html", "table", "/api/v1/table/full/{node}", (("format", "html"),), lambda r, c: _meta(c) in r.text),
    Route("container-arrow", "container", "/api/v1/container/full/{node}/entry", (("format", "arrow"), ("field", "counts")),
          lambda r, c: pa.ipc.open_file(pa.BufferReader(r.content)).read_all().column("counts").to_pylist() == list(range(6))),
    Route("zarr-array", "array", "/api/v1/zarr/v3/{node}/zarr.json", (), lambda r, c: r.json()["shape"] == list(IMAGE.shape)),
    Route("zarr-array-chunk", "array", "/api/v1/zarr/v3/{node}/c/0/0", (), lambda r, c: len(r.content) > 0),
    Route("zarr-group", "container", "/api/v1/zarr/v3/{node}/entry/zarr.json", (),
          lambda r, c: r.json()["attributes"]["note"] == _meta(c)),
    Route("column-full", "table", "/api/v1/column/full/{node}/{column}", (("format", "json"),), _column),
    Route("column-metadata", "table", "/api/v1/column/metadata/{node}/{column}", (), _column_meta),
]
CLASSES = ("public", "a", "b", "private")


def forbidden(reads: set[str] | None) -> list[str]:
    """The markers of every class of node the caller may not read."""
    return [m for cls, words in MARKERS.items() if reads is None or cls not in reads for m in words]


def assert_no_leak(r: httpx.Response, words: list[str], asked: tuple[str, ...] = ()) -> None:
    """Nothing private in any header (Location and links included) or in the body (decoded), but
    for what the caller itself asked for (``asked``: a 404 names the path it was asked about)."""
    seen = b""
    for response in (*r.history, r):
        seen += "\n".join(f"{k}: {v}" for k, v in response.headers.multi_items()).encode() + b"\n" + response.content + b"\n"
    for text in sorted(asked, key=len, reverse=True):
        seen = seen.replace(text.encode(), b"<asked>")
    leaked = [w for w in words if w.encode() in seen]
    assert not leaked, f"{r.request.url} leaks {leaked}: {seen[:400]!r}"


def normalised(r: httpx.Response, node: str) -> tuple[int, bytes, dict[str, str]]:
    """What a 404 says, with the path asked for taken out (a hidden and a missing node differ only there)."""
    headers = {k: v for k, v in r.headers.items() if k not in ("date", "content-length")}
    body = r.content.replace(node.encode(), b"<node>")
    for i, segment in sorted(enumerate(node.split("/")), key=lambda s: -len(s[1])):  # a 404 may name the first missing one
        body = body.replace(f"'{segment}".encode(), f"'<{i}>".encode())
    return r.status_code, body, headers


def assert_refused(r: httpx.Response) -> None:
    """Bad credentials: a 401 that names the schemes it takes and says why, never a 500."""
    assert r.status_code == 401, (r.request.url, r.status_code, r.text[:300])
    assert r.headers["www-authenticate"].startswith("Apikey") and "Bearer" in r.headers["www-authenticate"]
    assert r.headers["content-type"] == "application/json" and r.json()["detail"]


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


# -- listings, counts and searches ----------------------------------------------------------------
SIGNED_IN = [p for p, reads in READS.items() if reads is not None]
TOP = {"public": "pub", "a": "sec_alpha", "b": "sec_bravo", "private": "sec_zulu"}


@pytest.mark.parametrize("principal", SIGNED_IN)
def test_listings_and_counts_hold_only_what_the_caller_reads(world: World, principal: str) -> None:
    reads = READS[principal]
    assert reads is not None
    words = forbidden(reads)
    top = [TOP[c] for c in CLASSES if c in reads]
    inner = ["counts", "sec_alpha_inner"] if "a" in reads else ["counts"]

    def get(path: str, **params: str) -> Any:
        r = world.get(principal, path, params)
        assert r.status_code == 200, (path, r.text[:300])
        assert_no_leak(r, words)
        return r.json()

    assert get("/api/v1/metadata/")["data"]["attributes"]["structure"]["count"] == len(top)
    root = get("/api/v1/search/")
    assert [d["id"] for d in root["data"]] == top and root["meta"]["count"] == len(top)
    page = get("/api/v1/search/", **{"page[limit]": "1"})
    assert page["meta"]["count"] == len(top) and (page["links"]["next"] is None) == (len(top) == 1)
    assert get("/api/v1/metadata/pub/box/entry")["data"]["attributes"]["structure"]["count"] == len(inner)
    assert [d["id"] for d in get("/api/v1/search/pub/box/entry")["data"]] == inner
    notes = get("/api/v1/distinct/pub/box/entry", metadata="note", counts="true", structure_families="true")
    expected = [{"value": None, "count": 1}] + ([{"value": "ALPHA-META-inner", "count": 1}] if "a" in reads else [])
    assert sorted(notes["metadata"]["note"], key=str) == sorted(expected, key=str)
    assert sum(f["count"] for f in notes["structure_families"]) == len(inner)
    deep = get("/api/v1/search-deep/", **{"page[limit]": "300"})
    ancestors = {d["attributes"]["ancestors"][0] if d["attributes"]["ancestors"] else d["id"] for d in deep["data"]}
    assert ancestors == set(top) and deep["meta"]["count"] == len(deep["data"])
    listed = get("/api/v1/container/full/pub/box", format="json")["contents"]["entry"]["contents"]
    assert sorted(listed) == inner
    h5 = world.get(principal, "/api/v1/container/full/pub/box", {"format": "h5"})
    assert_no_leak(h5, words)
    with h5py.File(io.BytesIO(h5.content), "r") as f:
        assert sorted(f["entry"]) == inner


#: Filters that name private things: none may find, count or echo anything the caller may not read.
PROBES = [
    {"filter[lookup][condition][key]": "sec_bravo"},
    {"filter[fulltext][condition][text]": "BRAVO-META"},
    {"filter[eq][condition][key]": "note", "filter[eq][condition][value]": '"BRAVO-META"'},
    {"filter[regex][condition][key]": "note", "filter[regex][condition][pattern]": "BRAVO.*"},
    {"filter[keys_filter][condition][keys]": '["sec_bravo", "sec_zulu"]'},
    {"filter[access_tags_filter][condition][tags]": '["tag-b"]'},  # asking for B's tag does not grant it
    {"filter[access_tags_filter][condition][tags]": "[]"},
    {"filter[structure_family][condition][value]": "table"},
]


@pytest.mark.parametrize("route", ["search", "search-deep", "distinct"])
@pytest.mark.parametrize("probe", range(len(PROBES)))
@pytest.mark.parametrize("principal", ["anonymous", "key-a", "jwt-a"])
def test_searches_naming_private_things_find_nothing_of_them(world: World, principal: str, probe: int, route: str) -> None:
    params = {**PROBES[probe], **({"metadata": "note", "counts": "true", "structure_families": "true"} if route == "distinct" else {})}
    r = world.get(principal, f"/api/v1/{route}/", params)
    assert r.status_code == 200, r.text[:300]
    asked = tuple(v for v in PROBES[probe].values())
    assert_no_leak(r, forbidden(READS[principal]), asked)
    body = r.json()
    if route != "distinct":
        found = {d["id"] for d in body["data"]} | {a for d in body["data"] for a in d["attributes"]["ancestors"]}
        assert not found & {"sec_bravo", "sec_zulu", "sec_bravo_img", "sec_zulu_img"} and body["meta"]["count"] == len(body["data"])


# -- spilled answers and /files/ -------------------------------------------------------------------
def _spill(world: World, principal: str, route: str, node: str, fmt: str) -> tuple[httpx.Response, str]:
    r = world.get(principal, f"/api/v1/{route}/{node}", {"format": fmt})
    assert r.status_code == 307, (principal, node, r.status_code, r.text[:300])
    assert_no_leak(r, forbidden(READS[principal]))
    return r, r.headers["location"]


@pytest.mark.parametrize("principal", ["key-a", "key-a-query", "jwt-a"])
def test_a_signed_in_callers_spill_is_private_signed_and_short_lived(world: World, principal: str,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from publisher.auth.signing import EXPIRES, SIGNATURE

    monkeypatch.setenv("SKYSHELF_MAX_BODY_BYTES", "1000")
    for node in (NODES["array"]["a"], NODES["array"]["public"]):  # even public data: its answer is the caller's
        r, location = _spill(world, principal, "array/full", node, "application/octet-stream")
        assert r.headers["cache-control"].startswith("private") and "api_key" not in location
        url = urlsplit(location)
        assert url.path.startswith("/files/private/") and EXPIRES in url.query and SIGNATURE in url.query
        fetched = httpx.get(location)
        assert fetched.status_code == 200 and fetched.content == IMAGE.tobytes()
        assert fetched.headers["cache-control"] == "private, no-store"
        absent = httpx.get(f"{world.url}/files/private/responses/nothing.bin?{url.query}")
        signature = dict(p.split("=", 1) for p in url.query.split("&"))
        bad_mac = url.query.replace(signature[SIGNATURE], signature[SIGNATURE][::-1])
        later = url.query.replace(f"{EXPIRES}={signature[EXPIRES]}", f"{EXPIRES}={int(signature[EXPIRES]) + 3600}")
        past = url.query.replace(f"{EXPIRES}={signature[EXPIRES]}", f"{EXPIRES}={int(time.time()) - 10}")
        key = url.path.removeprefix("/files/")
        for tampered in (f"{world.url}{url.path}", f"{world.url}{url.path}?{bad_mac}", f"{world.url}{url.path}?{later}",
                         f"{world.url}{url.path}?{past}", f"{world.url}{url.path}?{EXPIRES}={signature[EXPIRES]}"):
            refused = httpx.get(tampered, headers=world.credentials["key-ab"][0])  # credentials do not open /files/
            assert refused.status_code == 404 and refused.content != IMAGE.tobytes()
            assert normalised(refused, key) == normalised(absent, "private/responses/nothing.bin")
        # another key's URL signature does not open this key
        other = httpx.get(f"{world.url}/files/private/responses/other.bin?{url.query}")
        assert other.status_code == 404
    r, location = _spill(world, principal, "container/full", NODES["container"]["a"], "h5")
    with h5py.File(io.BytesIO(httpx.get(location).content), "r") as f:
        assert f["entry"].attrs["note"] == "ALPHA-META"


def test_an_anonymous_spill_of_public_data_stays_public(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    from publisher.auth.signing import SIGNATURE

    monkeypatch.setenv("SKYSHELF_MAX_BODY_BYTES", "1000")
    r, location = _spill(world, "anonymous", "array/full", NODES["array"]["public"], "application/octet-stream")
    assert r.headers["cache-control"].startswith("public")
    assert urlsplit(location).path.startswith("/files/responses/") and SIGNATURE not in location
    assert httpx.get(location).content == IMAGE.tobytes()
    for principal in ("anonymous", "key-b"):  # a hidden node's answer is never made: the 404 comes before any read
        hidden = world.get(principal, f"/api/v1/array/full/{NODES['array']['a']}", {"format": "application/octet-stream"})
        assert hidden.status_code == 404 and "location" not in hidden.headers
    assert not any("sec_" in p.name for p in (world.root / "responses").rglob("*"))


def test_files_serve_public_releases_and_refuse_private_keys(world: World) -> None:
    full = Catalog.open_full(Store(str(world.root)))
    public = full.entry(NODES["array"]["public"]).data_url + "/zarr.json"
    assert public.startswith("releases/")
    r = httpx.get(f"{world.url}/files/{public}")
    assert r.status_code == 200 and r.json()["shape"] == list(IMAGE.shape)
    absent = httpx.get(f"{world.url}/files/private/nothing/zarr.json")
    assert absent.status_code == 404
    private = [full.entry(NODES[f][c]).data_url for f in NODES for c in ("a", "b", "private")]
    keys = ["private/catalog.json", *[u + ("/zarr.json" if u.endswith(".zarr") else "") for u in private],
            *[str(p.relative_to(world.root)) for p in (world.root / "private" / "auth" / "keys").iterdir()]]
    for key in keys:
        assert key.startswith("private/") and (world.root / key).is_file(), key
        for principal in ("anonymous", "key-ab", "jwt-a"):
            refused = httpx.get(f"{world.url}/files/{key}", headers=world.credentials[principal][0])
            assert normalised(refused, key) == normalised(absent, "private/nothing/zarr.json"), key
    assert not any(word in p.as_posix() for p in world.root.rglob("*") if p.is_file()
                   and not p.relative_to(world.root).as_posix().startswith("private/") for word in ("sec_", "META"))


# -- whoami and about -------------------------------------------------------------------------------
@pytest.mark.parametrize("principal", list(READS))
def test_whoami(world: World, principal: str) -> None:
    r = world.get(principal, "/api/v1/auth/whoami")
    if principal == "anonymous" or READS[principal] is None:
        assert_refused(r)
        return
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    (identity,) = r.json()["identities"]
    assert identity == ({"id": "alice", "provider": "oidc"} if principal == "jwt-a" else {"id": identity["id"], "provider": "apikey"})


@pytest.mark.parametrize("principal", SIGNED_IN)
def test_about_advertises_the_provider_and_requires_nothing_of_a_catalog_with_public_nodes(world: World, principal: str) -> None:
    r = world.get(principal, "/api/v1/")
    assert r.status_code == 200 and "tiled_csrf=" in r.headers["set-cookie"]
    assert_no_leak(r, forbidden(READS[principal]))
    from tiled.schemas import About

    About.model_validate(r.json())  # what the tiled client parses first: a null link would stop it connecting
    authentication = r.json()["authentication"]
    assert authentication["required"] is False
    (provider,) = authentication["providers"]
    assert world.provider is not None
    assert provider["links"]["auth_endpoint"] == world.provider.device_authorization_endpoint
    assert provider["links"]["client_id"] == world.provider.client_id
    assert authentication["links"]["whoami"].endswith("/api/v1/auth/whoami")


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


def test_a_caller_reading_every_child_searches_as_on_a_public_container(world: World) -> None:
    """No access filter (which makes a search scan every child) where the caller reads all
    children: its pages come straight from the index, as a public container's do."""
    from publisher.auth.principal import ANONYMOUS, Principal
    from publisher.auth.view import View

    full = Catalog.open_full(Store(str(world.root)))
    team_a = View(full, Principal("apikey", "k", frozenset(TAGS["a"])))
    assert team_a.scoped([], children_of=full.entry("sec_alpha")) == []
    assert team_a.scoped([], children_of=full.entry("pub/box/entry")) == []  # its A child included
    assert team_a.scoped([], children_of=full.entry("")) != []  # B's and the untagged folder are hidden
    assert View(full, ANONYMOUS).scoped([], children_of=full.entry("pub/box/entry")) != []
    children = [e.key for e in full.entries("sec_alpha")]
    for offset in range(len(children)):
        page = world.get("key-a", "/api/v1/search/sec_alpha", {"page[offset]": str(offset), "page[limit]": "1"}).json()
        assert [d["id"] for d in page["data"]] == children[offset : offset + 1] and page["meta"]["count"] == len(children)
    sorted_page = world.get("key-a", "/api/v1/search/", {"sort": "-"}).json()
    assert [d["id"] for d in sorted_page["data"]] == ["sec_alpha", "pub"]


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


def test_cloudfront_passes_credentials_to_the_api() -> None:
    """With CloudFront in front, a GET's Authorization reaches the API only when it is part of the
    cache key (an origin request policy cannot forward it); otherwise every caller is anonymous
    and a signed-in caller is served the anonymous answers CloudFront keeps."""
    from publisher.deploy.template import template

    policy = template()["Resources"]["ApiCachePolicy"]["Properties"]["CachePolicyConfig"]["ParametersInCacheKeyAndForwardedToOrigin"]
    assert "Authorization" in policy["HeadersConfig"]["Headers"]
    assert policy["QueryStringsConfig"]["QueryStringBehavior"] == "all"  # ?api_key= as well


@pytest.fixture(scope="module")
def half_hidden(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A public folder of 40 runs, every third one tagged A: pages must skip them exactly."""
    folder = tmp_path_factory.mktemp("half-hidden")
    (folder / "runs").mkdir()
    for i in range(40):
        np.save(folder / "runs" / f"run{i:02d}.npy", np.arange(3) + i)
    rules = [{"match": "runs", "access_tags": ["public"]}] + [{"match": f"runs/run{i:02d}", "access_tags": ["tag-a"]} for i in range(0, 40, 3)]
    published = run_build(folder, {"sources": [{"path": "runs"}], "rules": rules})
    key, _ = create_key(published.store, ["tag-a"])
    server = LocalServer(published.store.url, "127.0.0.1", 0).start()
    try:
        yield server.url, key
    finally:
        server.stop()


@pytest.mark.parametrize("sort", ["", "-", "_", "-_"])
@pytest.mark.parametrize("signed_in", [False, True])
def test_pages_of_a_partly_hidden_container(half_hidden: tuple[str, str], signed_in: bool, sort: str) -> None:
    url, key = half_hidden
    visible = [f"run{i:02d}" for i in range(40) if signed_in or i % 3]
    if sort in ("-", "-_"):
        visible.reverse()
    headers = {"Authorization": f"Apikey {key}"} if signed_in else {}
    seen = []
    for offset in range(0, 45, 7):
        params = {"page[offset]": str(offset), "page[limit]": "7", **({"sort": sort} if sort else {})}
        page = httpx.get(f"{url}/api/v1/search/runs", params=params, headers=headers).json()
        assert page["meta"]["count"] == len(visible) and (page["links"]["next"] is None) == (offset + 7 >= len(visible))
        seen += [d["id"] for d in page["data"]]
    assert seen == visible
