"""The browse page served by the handlers: published into every release, answered at ``/`` and
``/ui/<file>`` from the current release (the package's copy for a release built before the page),
with its security headers; ``nosniff`` and a data policy on API and ``/files/`` answers; and
answers pinned to a release with ``release=<id>`` (through the API and the real tiled client)."""

from __future__ import annotations

import http.client
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import httpx
import numpy as np
import pytest

from publisher import browse
from publisher.stores import Store

from .conftest import Published, run_build
from .servers import local_server

ASSETS = browse.files()
TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}


def _write_sources(folder: Path, version: int) -> None:
    """An array and a table whose values say which build made them."""
    (folder / "data").mkdir(parents=True, exist_ok=True)
    with h5py.File(folder / "data" / "frame.h5", "w") as f:
        f.create_dataset("counts", data=np.full((4, 5), version, dtype="i4")).attrs["version"] = version
    (folder / "data" / "runs.csv").write_text("run,version\n" + "".join(f"{i},{version}\n" for i in range(3)))


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> tuple[Published, str, str]:
    """Two releases of one catalog: the first with version 1 values, the current one with version 2."""
    folder = tmp_path_factory.mktemp("browse-serving")
    config = {"name": "serving", "sources": [{"path": "data"}]}
    _write_sources(folder, 1)
    first = run_build(folder, config).report.release
    _write_sources(folder, 2)
    published = run_build(folder, config)
    assert published.report.release != first
    return published, first, published.report.release


@pytest.fixture(scope="module")
def served(site: tuple[Published, str, str]) -> Iterator[str]:
    with local_server(site[0].store.url) as url:
        yield url


def _raw_get(base: str, path: str) -> tuple[int, dict[str, str], bytes]:
    """A GET with the path sent exactly as given (httpx would normalise '..' away)."""
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.putrequest("GET", path, skip_accept_encoding=True)
        conn.endheaders()
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


# -- 1. publishing ------------------------------------------------------------------------------
def test_every_release_holds_the_page(site: tuple[Published, str, str]) -> None:
    published, first, current = site
    assert {"index.html", "app.js", "app.css"} <= set(ASSETS)
    for release in (first, current):
        for name in ASSETS:
            assert published.store.read_bytes(f"releases/{release}/browse/{name}") == (browse.STATIC / name).read_bytes(), (release, name)


def test_gc_deletes_the_page_of_a_release_it_retires(site: tuple[Published, str, str], tmp_path: Path) -> None:
    """A release gc drops goes with its page (here: everything of it, its data unused by the kept one)."""
    from publisher.releases import gc

    copy = Store(str(shutil.copytree(site[0].store.path(""), tmp_path / "site")))
    first = site[1]
    assert copy.exists(f"releases/{first}/browse/index.html")
    gc(copy, keep=1)
    assert not copy.exists(f"releases/{first}/browse/index.html")
    assert copy.exists(f"releases/{site[2]}/browse/index.html")


# -- 2. serving ---------------------------------------------------------------------------------
def test_root_answers_the_page_with_its_headers(served: str, site: tuple[Published, str, str]) -> None:
    r = httpx.get(served + "/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert r.content == site[0].store.read_bytes(f"releases/{site[2]}/browse/index.html")
    assert r.headers["cache-control"] == "no-cache"
    assert r.headers["x-content-type-options"] == "nosniff" and r.headers["referrer-policy"] == "no-referrer"
    policy = _policy(r.headers["content-security-policy"])
    assert policy["default-src"] == ["'self'"] and policy["script-src"] == ["'self'"] and policy["style-src"] == ["'self'"]
    assert policy["img-src"] == ["'self'", "data:", "blob:", "https:"]
    assert policy["connect-src"] == ["'self'", "https:"]  # no identity provider in this catalog
    assert policy["frame-ancestors"] == ["'none'"] and policy["base-uri"] == ["'none'"] and policy["form-action"] == ["'self'"]
    again = httpx.get(served + "/", headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["content-security-policy"] == r.headers["content-security-policy"]


def _policy(header: str) -> dict[str, list[str]]:
    return {d.split()[0]: d.split()[1:] for d in (p.strip() for p in header.split(";")) if d}


@pytest.mark.parametrize("name", [n for n in ASSETS if n != "index.html"])
def test_assets(served: str, name: str) -> None:
    r = httpx.get(f"{served}/ui/{name}", headers={"Accept-Encoding": "gzip"})
    assert r.status_code == 200, r.text
    assert r.content == (browse.STATIC / name).read_bytes()
    assert r.headers["content-type"].split(";")[0] == TYPES[Path(name).suffix]
    assert r.headers["cache-control"].startswith("public, max-age=") and "etag" in r.headers
    assert r.headers["x-content-type-options"] == "nosniff" and "script-src 'self'" in r.headers["content-security-policy"]
    assert httpx.get(f"{served}/ui/{name}", headers={"If-None-Match": r.headers["etag"]}).status_code == 304


def test_index_links_only_assets_that_are_served(served: str) -> None:
    """Every /ui/ file index.html names is there (the lead writes them as /ui/<file>)."""
    import re

    html = httpx.get(served + "/").text
    linked = set(re.findall(r'(?:href|src)="/ui/([^"]+)"', html))
    assert linked and linked <= set(ASSETS)
    assert all(httpx.get(f"{served}/ui/{n}").status_code == 200 for n in linked)


@pytest.mark.parametrize("path", ["/ui/no_such.js", "/ui/../catalog.json", "/ui/%2e%2e/catalog.json", "/ui/..%2fcatalog.json",
                                  "/ui/%2e%2e%2f%2e%2e%2fpyproject.toml", "/ui/sub/app.js", "/ui/.hidden", "/ui/app.js%00.css",
                                  "/ui/", "/ui", "/ui/__init__.py", "/ui/index.html/.."])
def test_unknown_or_escaping_asset_is_a_json_404(served: str, path: str) -> None:
    status, headers, body = _raw_get(served, path)
    assert status in (400, 404), (path, status, body[:200])
    assert headers["content-type"] == "application/json" and "detail" in json.loads(body)
    assert b'"release"' not in body and b"[project]" not in body and b"import" not in body


def test_a_release_is_served_its_own_copy(site: tuple[Published, str, str], tmp_path: Path) -> None:
    """The page comes from the current release's browse/ (read through the store); a release
    built before the page (no browse/) gets the package's copy, and a rollback brings its page back."""
    from publisher.releases import rollback

    copy = Store(str(shutil.copytree(site[0].store.path(""), tmp_path / "site")))
    first, current = site[1], site[2]
    copy.write_bytes(f"releases/{current}/browse/app.css", b"/* the current release's own */\n")
    copy.write_bytes(f"releases/{current}/browse/extra.js", b"export const release = 2;\n")
    copy.delete_prefix(f"releases/{first}/browse")  # as if built before the page existed
    with local_server(copy.url) as url:
        assert httpx.get(url + "/ui/app.css").content == b"/* the current release's own */\n"
        assert httpx.get(url + "/ui/extra.js").content == b"export const release = 2;\n"
        # a pin in the page's own address does not bring back another release's page
        assert httpx.get(url + "/ui/app.css", params={"release": first}).content == b"/* the current release's own */\n"
        rollback(copy, first)
        assert httpx.get(url + "/ui/app.css").content == (browse.STATIC / "app.css").read_bytes()
        assert httpx.get(url + "/").content == (browse.STATIC / "index.html").read_bytes()
        assert httpx.get(url + "/ui/extra.js").status_code == 404  # not the package's, not the other release's


def test_nothing_published_yet_serves_the_package_page(tmp_path: Path) -> None:

    with local_server(str(tmp_path)) as url:
        r = httpx.get(url + "/")
        assert r.status_code == 200 and r.content == (browse.STATIC / "index.html").read_bytes()


def test_the_metadata_package_ships_the_page() -> None:
    """The Lambda zip holds the package's copy (served for releases built before the page)."""
    from publisher.deploy.package import our_modules

    shipped = set(our_modules("metadata"))
    assert {f"publisher/browse/static/{n}" for n in ASSETS} <= shipped and "handlers/browse.py" in shipped


# -- 3. security headers --------------------------------------------------------------------------
ISSUER = "http://127.0.0.1:9/realms/skyshelf"  # nothing listens: the page never asks the provider


@pytest.fixture(scope="module")
def private_site(tmp_path_factory: pytest.TempPathFactory) -> tuple[Published, str, str]:
    """A catalog with a private node and an identity provider, in two releases (the second adds a node)."""
    folder = tmp_path_factory.mktemp("browse-serving-private")
    config: dict[str, Any] = {"name": "private serving", "sources": [{"path": "data"}],
                              "rules": [{"match": "data/runs", "access_tags": ["grp-a"]}],
                              "access": {"default": "public", "groups": {"grp-a": ["grp-a"]},
                                         "oidc": {"issuer": ISSUER, "audience": "https://skyshelf.test/api", "client_id": "skyshelf-cli"}}}
    _write_sources(folder, 1)
    first = run_build(folder, config).report.release
    _write_sources(folder, 2)
    (folder / "data" / "later.csv").write_text("a\n1\n")
    published = run_build(folder, config)
    return published, first, published.report.release


@pytest.fixture(scope="module")
def private_served(private_site: tuple[Published, str, str]) -> Iterator[str]:
    with local_server(private_site[0].store.url) as url:
        yield url


def test_the_page_may_reach_the_identity_provider(private_served: str) -> None:
    """connect-src and form-action name the catalog's OIDC issuer (token requests, login form)."""
    policy = _policy(httpx.get(private_served + "/").headers["content-security-policy"])
    assert policy["connect-src"] == ["'self'", "http://127.0.0.1:9", "https:"]
    assert policy["form-action"] == ["'self'", "http://127.0.0.1:9"]
    assert _policy(httpx.get(private_served + "/ui/app.js").headers["content-security-policy"]) == policy


@pytest.mark.parametrize("path", ["/api/v1/", "/api/v1/metadata/data", "/api/v1/search/data", "/api/v1/metadata/no_such_node", "/healthz",
                                  "/api/v1/array/full/data/frame/counts?format=json", "/api/v1/table/full/data/runs?format=csv",
                                  "/api/v1/openapi.json", "/api/v1/no_such_route", "/no_such_route"])
def test_every_api_answer_is_nosniff(served: str, path: str) -> None:
    r = httpx.get(served + path)
    assert r.headers["x-content-type-options"] == "nosniff", (path, r.status_code)


@pytest.mark.parametrize("path", ["/api/v1/array/full/data/frame/counts?format=text/html", "/api/v1/table/full/data/runs?format=text/html"])
def test_html_made_from_data_runs_nothing(served: str, path: str) -> None:
    """format=html answers carry the data policy: no script, no requests, sandboxed."""
    r = httpx.get(served + path)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html"), r.text[:200]
    assert r.headers["content-security-policy"] == "default-src 'none'; style-src 'unsafe-inline'; sandbox"
    assert r.headers["x-content-type-options"] == "nosniff"


def test_files_answers_are_nosniff_and_sandboxed(served: str, site: tuple[Published, str, str]) -> None:
    for path in (f"/files/releases/{site[2]}/browse/index.html", "/files/catalog.json", "/files/no_such_object"):
        r = httpx.get(served + path)
        assert r.headers["x-content-type-options"] == "nosniff", path
        assert r.headers["content-security-policy"] == "default-src 'none'; style-src 'unsafe-inline'; sandbox", path
    ranged = httpx.get(served + "/files/catalog.json", headers={"Range": "bytes=0-9"})
    assert ranged.status_code == 206 and ranged.headers["x-content-type-options"] == "nosniff"


def test_the_docs_page_keeps_its_own_policy(served: str) -> None:
    r = httpx.get(served + "/api/v1/docs")
    assert "default-src 'self'" in r.headers["content-security-policy"] and r.headers["x-content-type-options"] == "nosniff"


# -- 4. release pinning ---------------------------------------------------------------------------
def test_about_tells_the_release(served: str, site: tuple[Published, str, str]) -> None:
    _, first, current = site
    assert httpx.get(served + "/api/v1/").json()["meta"]["release"] == current
    assert httpx.get(served + "/api/v1/", params={"release": first}).json()["meta"]["release"] == first


def test_pinned_answers_show_the_old_release(served: str, site: tuple[Published, str, str]) -> None:
    _, first, current = site
    array = served + "/api/v1/array/full/data/frame/counts"
    assert np.unique(httpx.get(array, params={"format": "json"}).json()).tolist() == [2]
    assert np.unique(httpx.get(array, params={"format": "json", "release": first}).json()).tolist() == [1]
    assert np.unique(httpx.get(array, params={"format": "json", "release": current}).json()).tolist() == [2]
    table = served + "/api/v1/table/full/data/runs"
    assert httpx.get(table, params={"format": "csv", "release": first}).text.split()[1:] == ["0,1", "1,1", "2,1"]
    assert httpx.get(table, params={"format": "csv"}).text.split()[1] == "0,2"
    meta = served + "/api/v1/metadata/data/frame/counts"
    assert httpx.get(meta, params={"release": first}).json()["data"]["attributes"]["metadata"]["version"] == 1
    assert httpx.get(meta).json()["data"]["attributes"]["metadata"]["version"] == 2


def test_pinned_answers_are_immutable(served: str, site: tuple[Published, str, str]) -> None:
    pinned = httpx.get(served + "/api/v1/metadata/data", params={"release": site[1]})
    assert pinned.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert httpx.get(served + "/api/v1/metadata/data").headers["cache-control"] == "public, max-age=30, must-revalidate"
    assert pinned.headers["etag"] != httpx.get(served + "/api/v1/metadata/data").headers["etag"]


def test_the_pin_follows_the_release_access_rules(private_served: str, private_site: tuple[Published, str, str]) -> None:
    """A pinned release is read through its full view, with the same rules: anonymous callers
    see neither its private node nor anything of it in an error."""
    _, first, current = private_site

    def keys(release: str | None) -> set[str]:
        params = {"release": release} if release else {}
        return {d["id"] for d in httpx.get(private_served + "/api/v1/search/data", params=params).json()["data"]}

    assert keys(first) == {"frame"} and keys(None) == keys(current) == {"frame", "later"}
    hidden = httpx.get(private_served + "/api/v1/metadata/data/runs", params={"release": first})
    assert hidden.status_code == 404 and "version" not in hidden.text


@pytest.mark.parametrize(("release", "status", "says"), [
    ("20200101T000000.000000Z-abcdef", 404, "no release '20200101T000000.000000Z-abcdef'"),
    ("../catalog", 400, "release must be a release id"), ("a/b", 400, "release must be a release id"),
    ("", 400, "release must be a release id"), ("x" * 101, 400, "release must be a release id"),
    ("20200102T000000.000000Z-building", 404, "is incomplete"), ("20200103T000000.000000Z-retired", 404, "was garbage-collected"),
])
def test_a_bad_pin_is_a_json_error(private_served: str, private_site: tuple[Published, str, str], release: str, status: int,
                                   says: str) -> None:
    store = private_site[0].store
    store.write_bytes("releases/20200102T000000.000000Z-building/building.json", b"{}")
    store.write_bytes("releases/20200103T000000.000000Z-retired/retired.json", b'{"retired": true}')
    for route in ("/api/v1/", "/api/v1/metadata/data", "/api/v1/search/data", "/api/v1/array/full/data/frame/counts?format=json",
                  "/api/v1/table/full/data/later?format=csv"):
        r = httpx.get(private_served + route, params={"release": release})
        assert r.status_code == status and says in r.json()["detail"], (route, r.text)
        assert "runs" not in r.text and private_site[1] not in r.text and private_site[2] not in r.text
        assert r.headers["cache-control"] == "no-store"


def test_a_collected_release_stops_answering(site: tuple[Published, str, str], tmp_path: Path) -> None:
    from publisher.releases import gc

    copy = Store(str(shutil.copytree(site[0].store.path(""), tmp_path / "site")))
    with local_server(copy.url) as base:
        url = base + "/api/v1/metadata/data/frame/counts"
        assert httpx.get(url, params={"release": site[1]}).status_code == 200
        gc(copy, keep=1)
        gone = httpx.get(url, params={"release": site[1]})
        assert gone.status_code == 404 and site[1] in gone.json()["detail"]
        assert httpx.get(url, params={"release": site[2]}).status_code == 200


def test_the_tiled_client_reads_a_pinned_release(served: str, site: tuple[Published, str, str]) -> None:
    """The tiled client drops a URI's query, but its httpx client's ``params`` go with every
    request (links included): the documented way to pin it (docs/serve.md)."""
    from tiled.client import from_context
    from tiled.client.context import Context

    context, _ = Context.from_any_uri(served + "/api/v1")
    context.http_client.params = httpx.QueryParams({"release": site[1]})
    old = from_context(context)
    assert np.unique(old["data/frame/counts"].read()).tolist() == [1]
    assert old["data/runs"].read()["version"].tolist() == [1, 1, 1]
    assert old["data/frame/counts"].metadata["version"] == 1
    from tiled.client import from_uri

    assert np.unique(from_uri(served)["data/frame/counts"].read()).tolist() == [2]


def test_openapi_names_the_release_parameter(served: str) -> None:
    document = httpx.get(served + "/api/v1/openapi.json").json()
    paths, shared = document["paths"], document.get("components", {}).get("parameters", {})

    def named(parameter: dict) -> str:  # a parameter, or a $ref to one the routes share
        ref = parameter.get("$ref")
        return str(shared[ref.rsplit("/", 1)[-1]]["name"] if ref else parameter["name"])

    names = {p: [named(x) for x in ops["get"]["parameters"]] for p, ops in paths.items()}
    assert "release" in names["/api/v1/metadata/{path}"] and "release" in names["/api/v1/array/full/{path}"]
    assert "release" not in names["/ui/{path}"] and "/" in paths


def test_a_pinned_redirect_is_not_kept_long(served: str, site: tuple[Published, str, str]) -> None:
    """A redirect points at a URL that may expire (presigned): never immutable, pinned or not."""
    r = httpx.get(served + "/api/v1/zarr/v3/data/frame/counts/zarr.json", params={"release": site[1]})
    assert r.status_code == 307, r.text
    unpinned = httpx.get(served + "/api/v1/zarr/v3/data/frame/counts/zarr.json")
    assert "immutable" not in r.headers["cache-control"]
    assert r.headers["cache-control"] == unpinned.headers["cache-control"]  # as the route sets it (no-store: a short-lived URL)
    assert json.loads(httpx.get(r.headers["location"]).content)["zarr_format"] == 3


def test_the_page_is_never_spilled(site: tuple[Published, str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """A body limit smaller than the page (a misread setting) still shows the page, not a 307 to a
    stored copy that the browser would save as a download."""
    from handlers import settings

    monkeypatch.setenv("SKYSHELF_MAX_BODY_BYTES", "1000")
    settings.reset()
    try:
        with local_server(site[0].store.url) as url:
            for path in ("/", "/ui/app.js"):
                r = httpx.get(url + path, headers={"Accept-Encoding": "identity"})
                assert r.status_code == 200 and len(r.content) > 1000, (path, r.status_code, r.headers.get("location"))
            big = httpx.get(url + "/api/v1/search/", params={"page[limit]": 100, "fields": ["metadata", "structure"]},
                            headers={"Accept-Encoding": "identity"})
            assert big.status_code == 307 or len(big.content) <= 1000  # API answers still spill past the limit
    finally:
        monkeypatch.undo()
        settings.reset()
