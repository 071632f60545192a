"""What a caller sees beyond one node (the world: tests/auth_world.py): listings, counts, distinct
values, deep search and container exports hold only readable children; filters naming private
things find nothing; spilled answers of signed-in callers are private and signed; ``/files/``
refuses every private key; whoami and about; paging a partly hidden container."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import h5py
import httpx
import numpy as np
import pytest

from handlers.local import LocalServer
from publisher.auth.keys import create_key
from publisher.catalog import Catalog
from publisher.stores import Store

from .auth_world import (CLASSES, IMAGE, NODES, READS, SIGNED_IN, TAGS, World, assert_no_leak, assert_refused, forbidden,
                         normalised, serve_world)
from .conftest import run_build

world = pytest.fixture(scope="module", name="world")(serve_world)


# -- listings, counts and searches ----------------------------------------------------------------
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


def test_publish_ls_lists_every_node_marking_the_private_ones(world: World) -> None:
    """``publish ls`` read catalog.json, what anyone reads: a data manager listing their own store
    saw nothing of its private nodes (an all-private catalog listed nothing, exit 0). It lists the
    full view, each node not public marked with its tags; ``--public`` lists the anonymous view."""
    from click.testing import CliRunner

    from publisher.cli import main

    full = CliRunner().invoke(main, ["ls", "--store", str(world.root)])
    assert full.exit_code == 0, full.output
    lines = dict(line.split(None, 1) if " " in line.strip() else (line.strip(), "") for line in full.output.splitlines())
    assert lines["pub/"] == "" and lines["sec_alpha/"] == f"[private: {', '.join(TAGS['a'])}]", full.output
    assert "sec_zulu/" in lines and lines["sec_zulu/"].startswith("[private:")
    public = CliRunner().invoke(main, ["ls", "--store", str(world.root), "--public"])
    assert public.exit_code == 0 and public.output.split() == ["pub/"], public.output


def test_publish_ls_of_a_leaf_lists_the_leaf(world: World) -> None:
    """``publish ls pub/img`` (an array) printed nothing, exit 0: it lists the node, as ls of a file does."""
    from click.testing import CliRunner

    from publisher.cli import main

    done = CliRunner().invoke(main, ["ls", "-l", "--store", str(world.root), NODES["array"]["public"]])
    assert done.exit_code == 0 and done.output.split()[:2] == [NODES["array"]["public"].rpartition("/")[2], "array"], done.output


def test_the_csrf_cookie_is_set_once_and_its_answer_kept_private(world: World) -> None:
    """A new ``tiled_csrf`` was set on every about answer, public-cacheable ones and 304s among them
    (a shared cache would hand one caller's cookie to everyone). Set only to a caller without one
    (as Tiled does), on an answer no shared cache keeps; a caller with it gets the cacheable answer."""
    first = httpx.get(f"{world.url}/api/v1/")
    assert "tiled_csrf=" in first.headers["set-cookie"] and "no-store" in first.headers["cache-control"]
    token = first.headers["set-cookie"].split(";")[0]
    again = httpx.get(f"{world.url}/api/v1/", headers={"Cookie": f"other=1; {token}"})
    assert again.status_code == 200 and "set-cookie" not in again.headers and "public" in again.headers["cache-control"], again.headers
