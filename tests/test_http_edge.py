"""The HTTP edge of ``publish serve`` and the deployed stack: odd keys and folders answer a JSON
4xx, never a 500; spilled answers stay bounded and recover when deleted; the docs page reflects
no request header and loads nothing from elsewhere; CORS; slow searches never hold up others."""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from handlers.cors import ALLOW_HEADERS, EXPOSE_HEADERS, Cors
from handlers.local import LocalServer
from publisher.functions import ROUTES
from publisher import spills

from .conftest import Published, run_build
from .servers import moto_server, publish_serve
from .test_build_demo import demo_config

FRAME = "frames/KCl_300K_00007"


@pytest.fixture(scope="module")
def demo(demo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Published:
    published = run_build(tmp_path_factory.mktemp("edge-build"), demo_config(demo_dir))
    root = Path(published.store.url)
    (root / "outside-file").symlink_to("/etc/passwd")
    (root / "outside-folder").symlink_to("/etc")
    (root / "inside-link").symlink_to(root / "catalog.json")
    return published


@pytest.fixture(scope="module")
def server(demo: Published) -> Iterator[str]:
    srv = LocalServer(demo.store.url, "127.0.0.1", 0).start()
    yield srv.url
    srv.stop()


def assert_json_4xx(response: httpx.Response, status: int | None = None) -> None:
    assert 400 <= response.status_code < 500, (response.request.url, response.status_code, response.text[:300])
    assert status is None or response.status_code == status, (response.request.url, response.status_code, response.text[:300])
    assert response.headers["content-type"] == "application/json" and response.json()["detail"]


# -- 1. folders, empty keys, NUL bytes, traversal and links out of the store ---------------------
@pytest.mark.parametrize(("path", "status"), [
    ("/files/", 404), ("/files/releases", 404), ("/files/releases/", 404), ("/files/catalog.json/", 404),
    ("/files/catalog.json/x", 404), ("/files/catalog.json%00.png", 400), ("/files/%00", 400),
    ("/files/%2e%2e/%2e%2e/etc/passwd", 404), ("/files/..%2f..%2fetc%2fpasswd", 404), ("/files/releases/..%2F..%2F..%2Fetc%2Fpasswd", 404),
    ("/files//etc/passwd", 404), ("/files/releases//x", 404), ("/files/%2e/catalog.json", 404),
    ("/files/outside-file", 404), ("/files/outside-folder/passwd", 404), ("/files/%ff", 404),
])
def test_files_answer_only_objects_of_the_store(server: str, path: str, status: int) -> None:
    """Without a request line normalizer in between (raw paths, as a prober sends them)."""
    with httpx.Client() as client:
        request = client.build_request("GET", server + "/")
        request.url = request.url.copy_with(raw_path=path.encode())
        response = client.send(request)
    assert_json_4xx(response, status)
    assert "root:" not in response.text


def test_links_inside_the_store_and_real_files_still_serve(server: str, demo: Published) -> None:
    assert httpx.get(f"{server}/files/inside-link").json()["release"] == demo.catalog.release
    assert httpx.get(f"{server}/files/catalog.json", headers={"Range": "bytes=0-0"}).content == b"{"


#: Node paths that are odd rather than wrong: folders with trailing slashes, empty segments, NUL, dots.
ODD_NODE_PATHS = ["", "/", "//", "/%00", "/%ff", "/scans/", "/scans//scan_0001/", f"/{FRAME}/", "/%2e%2e", "/..%2f..%2fetc",
                  "/tables/temperature_log/", "/tables/temperature_log/setpoint/", "/climate/sst/", "/nope/"]


@pytest.mark.parametrize("route", [r for r in ROUTES if "{path+}" in r.path], ids=lambda r: r.path)
def test_no_route_answers_500_to_odd_paths(server: str, route: object) -> None:
    """Every greedy route, asked for folders, empty keys, trailing slashes, NUL bytes and dots:
    an answer, or a JSON 4xx that says why; never a 500 or a traceback."""
    prefix = route.path.removesuffix("/{path+}")  # type: ignore[attr-defined]
    with httpx.Client() as client:
        for odd in ODD_NODE_PATHS:
            request = client.build_request("GET", server + "/")
            request.url = request.url.copy_with(raw_path=(prefix + odd).encode())
            response = client.send(request)
            assert response.status_code < 500, (prefix + odd, response.status_code, response.text[:300])
            if response.status_code >= 400:
                assert_json_4xx(response)
    for tail in ("/healthz/", "/api/v1/docs/", "/api/v1/openapi.json/", '/api/v1/no"where'):
        assert_json_4xx(httpx.get(server + tail), 404)


@pytest.mark.parametrize("route", [r for r in ROUTES if "{path+}" in r.path], ids=lambda r: r.path)
def test_very_long_urls_are_a_json_414_on_every_route(server: str, route: object) -> None:
    """Past API Gateway's 10,240 bytes of request line and headers: a 414 that says how to ask for
    less, locally as deployed; a long URL within the quota gets its ordinary answer (never a 5xx)."""
    prefix = route.path.removesuffix("/{path+}")  # type: ignore[attr-defined]
    for url in (f"{server}{prefix}/" + "a/" * 6000, f"{server}{prefix}/scans?slice=" + "1," * 6000,
                f"{server}{prefix}/?filter[eq][condition][key]=" + "k" * 12000 + "&filter[eq][condition][value]=1"):
        answer = httpx.get(url)
        assert_json_4xx(answer, 414)
        assert "API Gateway takes at most 10240" in answer.json()["detail"]
    within = httpx.get(f"{server}{prefix}/" + "a/" * 3000)
    assert within.status_code < 500 and (within.status_code < 400 or within.json()["detail"])


# -- 3. the docs page: nothing reflected, nothing from elsewhere ----------------------------------
def test_docs_page_reflects_no_header_and_loads_only_its_own_assets(server: str) -> None:
    hostile = '"</script><script>alert(1)</script>'
    page = httpx.get(f"{server}/api/v1/docs", headers={"X-Forwarded-Proto": hostile})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "alert" not in page.text and "default-src 'self'" in policy and "script-src" not in policy  # no inline script runs
    references = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert references and not [r for r in references if "//" in r or r.startswith("/")], references  # all relative: no host, no CDN
    media = {}
    for ref in references:
        asset = httpx.get(f"{server}/api/v1/{ref}")
        assert asset.status_code == 200 and asset.content, ref
        media[ref.rpartition("/")[2]] = asset.headers["content-type"]
    assert media["swagger-ui-bundle.js"].startswith("text/javascript") and media["swagger-ui.css"].startswith("text/css")
    init = httpx.get(f"{server}/api/v1/docs/assets/init.js").text
    assert 'data-openapi="openapi.json"' in page.text and "openapi" in init and "://" not in init  # relative to the page
    assert_json_4xx(httpx.get(f"{server}/api/v1/docs/assets/index.html"), 404)
    assert_json_4xx(httpx.get(f"{server}/api/v1/docs/assets/..%2F..%2Fopenapi.json"), 404)


def test_hosts_that_are_not_host_names_are_refused(server: str) -> None:
    """Links are built from Host and X-Forwarded-Proto: a Host that is not a host name is a 400,
    a scheme other than http(s) is not copied (https)."""
    assert_json_4xx(httpx.get(f"{server}/api/v1/", headers={"Host": 'evil"><script>x</script>'}), 400)
    links = httpx.get(f"{server}/api/v1/", headers={"X-Forwarded-Proto": "javascript:alert(1)//"}).json()["links"]
    assert links["self"].startswith("https://") and "javascript" not in json.dumps(links)
    about = httpx.get(f"{server}/api/v1/", headers={"Host": "data.example.org:8443", "X-Forwarded-Proto": "https, http"}).json()
    assert about["links"]["self"] == "https://data.example.org:8443/api/v1"


def test_the_metadata_package_ships_the_docs_assets(tmp_path: Path) -> None:
    """The deployed function answers the asset routes from its own zip (no CDN, no site packages)."""
    from handlers.local import event_for
    from publisher.deploy.package import build_package, smoke_test

    from .test_deploy import RUNTIME

    package = build_package("metadata", RUNTIME, "x86_64", tmp_path)
    for name, media in [("swagger-ui-bundle.js", "text/javascript"), ("swagger-ui.css", "text/css"), ("init.js", "text/javascript")]:
        answer = smoke_test(package, event_for("GET", f"/api/v1/docs/assets/{name}", "", {"host": "example.org"}, "127.0.0.1"),
                            {"SKYSHELF_STORE": str(tmp_path)})
        assert answer is not None and answer["statusCode"] == 200 and answer["headers"]["Content-Type"].startswith(media), (name, answer)


# -- 4. CORS -----------------------------------------------------------------------------------------
def test_cors_preflight_and_cross_origin_reads(server: str, demo: Published) -> None:
    origin = {"Origin": "https://viewer.example"}
    preflight = httpx.options(f"{server}/files/catalog.json", headers={**origin, "Access-Control-Request-Method": "GET",
                                                                       "Access-Control-Request-Headers": "range"})
    assert preflight.status_code == 204 and preflight.headers["access-control-allow-origin"] == "*"
    assert "GET" in preflight.headers["access-control-allow-methods"]
    assert "range" in preflight.headers["access-control-allow-headers"].lower()
    # each path offers the methods it takes (every path offered POST, which only awkward/buffers takes: then a 405)
    for path, offered in [("/files/catalog.json", "GET, HEAD, OPTIONS"), ("/healthz", "GET, HEAD, OPTIONS"),
                          ("/api/v1/awkward/buffers/x", "GET, HEAD, POST, OPTIONS"), ("/nowhere", "OPTIONS")]:
        answer = httpx.options(f"{server}{path}", headers={**origin, "Access-Control-Request-Method": "GET"})
        assert answer.headers["allow"] == answer.headers["access-control-allow-methods"] == offered, path
    for url, headers in [(f"{server}/files/catalog.json", {"Range": "bytes=0-9"}),
                         (f"{server}/api/v1/metadata/{FRAME}", {}),
                         (f"{server}/api/v1/array/full/{FRAME}?format=npy&filename=f.npy", {})]:
        response = httpx.get(url, headers={**origin, **headers})
        assert response.status_code in (200, 206) and response.headers["access-control-allow-origin"] == "*", url
        exposed = {h.strip().lower() for h in response.headers["access-control-expose-headers"].split(",")}
        assert {"content-disposition", "content-range", "etag", "content-length", "location"} <= exposed
    assert_json_4xx(httpx.get(f"{server}/files/", headers=origin), 404)  # errors carry them too (a browser may read the detail)
    assert httpx.get(f"{server}/files/", headers=origin).headers["access-control-allow-origin"] == "*"


def test_cors_origins_are_configurable_on_the_command_line(demo: Published, tmp_path: Path) -> None:
    """``publish serve --cors-origin``: only the named origin may read; ``none`` turns CORS off."""
    for setting, allowed, refused in [("https://a.example", "https://a.example", "https://b.example"), ("none", None, "https://a.example")]:
        with publish_serve(demo.store.url, "--cors-origin", setting, cwd=tmp_path) as url:
            if allowed:
                ok = httpx.get(f"{url}/api/v1/", headers={"Origin": allowed})
                assert ok.headers["access-control-allow-origin"] == allowed and "Origin" in ok.headers["vary"]
                assert httpx.options(f"{url}/api/v1/", headers={"Origin": allowed}).headers["access-control-allow-origin"] == allowed
            assert "access-control-allow-origin" not in httpx.get(f"{url}/api/v1/", headers={"Origin": refused}).headers
            assert "access-control-allow-origin" not in httpx.options(f"{url}/api/v1/", headers={"Origin": refused}).headers


def test_the_deployed_api_and_bucket_have_the_same_cors() -> None:
    from publisher.deploy.template import template

    resources = template()["Resources"]
    api = resources["HttpApi"]["Properties"]["CorsConfiguration"]
    assert {h.lower() for h in EXPOSE_HEADERS} <= set(api["ExposeHeaders"]) and "range" in api["AllowHeaders"]
    assert {"GET", "OPTIONS"} <= set(api["AllowMethods"]) and api["AllowOrigins"] == [{"Ref": "CorsAllowOrigin"}]
    rule = resources["DataBucket"]["Properties"]["CorsConfiguration"]["CorsRules"][0]
    assert set(EXPOSE_HEADERS) <= set(rule["ExposedHeaders"]) and rule["AllowedHeaders"] == ["*"]
    assert "Range" in ALLOW_HEADERS and Cors.parse("none").headers("https://x.example") == {}
    cache_key = resources["ApiCachePolicy"]["Properties"]["CachePolicyConfig"]["ParametersInCacheKeyAndForwardedToOrigin"]
    assert "Origin" in cache_key["HeadersConfig"]["Headers"]  # else CloudFront may serve a browser an answer without them


# -- 5. slow work never holds up other requests ---------------------------------------------------
@pytest.fixture
def copy(demo: Published, tmp_path: Path) -> Path:
    """A copy of the demo store that a test may change."""
    return Path(shutil.copytree(demo.store.url, tmp_path / "site", symlinks=True))


def test_healthz_answers_while_a_search_is_in_flight(copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The root's children page is swapped for a FIFO: a search that reads it waits, really in
    flight, until the test writes the page; meanwhile /healthz must answer (it would time out
    if the search ran on the event loop)."""
    from publisher.catalog import Catalog
    from publisher.index.layout import children_page_key
    from publisher.stores import Store

    catalog = Catalog.open(Store(copy))
    page = copy / children_page_key(catalog.document["index"].rpartition("/")[0], "", 0)
    data = page.read_bytes()
    monkeypatch.setenv("SKYSHELF_STORE", str(copy))  # restored after: the module's server reads it too
    srv = LocalServer(str(copy), "127.0.0.1", 0).start()
    answers: list[httpx.Response] = []
    try:
        assert httpx.get(f"{srv.url}/healthz").status_code == 200
        page.unlink()
        os.mkfifo(page)
        search = threading.Thread(target=lambda: answers.append(httpx.get(
            f"{srv.url}/api/v1/search/", params={"filter[structure_family][condition][value]": "container"}, timeout=60)))
        search.start()
        writer = None
        for _ in range(3000):  # until the search opens the page for reading: it is in flight
            try:
                writer = os.open(page, os.O_WRONLY | os.O_NONBLOCK)
                break
            except OSError:
                time.sleep(0.01)
        assert writer is not None, "the search never read the children page"
        try:
            health = httpx.get(f"{srv.url}/healthz", timeout=10)
            assert health.status_code == 200 and health.json()["status"] == "ok"
            assert not answers  # the search is still waiting for its page
        finally:
            os.set_blocking(writer, True)
            os.write(writer, data)
            os.close(writer)
        search.join(60)
        assert answers and answers[0].status_code == 200 and answers[0].json()["meta"]["count"] == 4
    finally:
        srv.stop()


# -- 2. spilled answers: bounded, and recovered when deleted -------------------------------------
def spill_url(server: str, i: int = 0) -> str:
    return f"{server}/api/v1/array/full/{FRAME}?format=application/octet-stream&filename=f{i}.bin"


def test_spilled_answers_are_made_again_when_deleted_or_old(server: str, demo: Published, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SKYSHELF_MAX_BODY_BYTES", "1000")
    first = httpx.get(spill_url(server), follow_redirects=True)
    assert first.history and first.history[0].status_code == 307 and len(first.content) == 4 * 128 * 160 * 2
    assert first.headers["content-disposition"] == 'attachment; filename="f0.bin"'  # the name survives the 307
    forged = first.history[0].headers["location"].partition("?")[0] + "?response-content-disposition=x%0d%0aSet-Cookie:%20a=b"
    assert "content-disposition" not in httpx.get(forged).headers  # no header injection through it
    spilled = Path(demo.store.url, spills.PREFIX)
    shutil.rmtree(spilled)  # by hand, or by gc, under the running server
    again = httpx.get(spill_url(server), follow_redirects=True)
    assert again.status_code == 200 and again.content == first.content
    (answer,) = spilled.iterdir()
    os.utime(answer, (time.time() - 2 * spills.MAX_AGE, time.time() - 2 * spills.MAX_AGE))
    assert httpx.get(spill_url(server), follow_redirects=True).content == first.content
    assert time.time() - answer.stat().st_mtime < spills.MAX_AGE  # written again: no redirect to an expiring object


def test_local_spilled_answers_stay_under_their_cap(server: str, demo: Published, monkeypatch: pytest.MonkeyPatch) -> None:
    size = 4 * 128 * 160 * 2
    monkeypatch.setattr(spills, "YOUNG", 0.0)  # (answers just spilled are spared the bound a minute: tests/test_http_review.py)
    monkeypatch.setenv("SKYSHELF_MAX_BODY_BYTES", "1000")
    monkeypatch.setenv("SKYSHELF_SPILL_MAX_BYTES", str(int(2.5 * size)))
    spilled = Path(demo.store.url, spills.PREFIX)
    shutil.rmtree(spilled, ignore_errors=True)
    for i in range(1, 6):
        answer = httpx.get(spill_url(server, i), follow_redirects=True)
        assert answer.history and answer.status_code == 200 and len(answer.content) == size  # each one readable when made
        held = sorted(spilled.iterdir(), key=lambda p: p.stat().st_mtime)
        assert sum(p.stat().st_size for p in held) <= 2.5 * size
    assert len(held) == 2
    assert httpx.get(spill_url(server, 1), follow_redirects=True).status_code == 200  # collected, then made again


def test_gc_deletes_old_spilled_answers(copy: Path) -> None:
    from click.testing import CliRunner

    from publisher.cli import main

    folder = copy / spills.PREFIX
    folder.mkdir(exist_ok=True)
    old, new = folder / "old.bin", folder / "new.bin"
    old.write_bytes(b"x" * 10)
    new.write_bytes(b"y" * 10)
    then = time.time() - 2 * spills.MAX_AGE
    os.utime(old, (then, then))
    result = CliRunner().invoke(main, ["gc", "--store", str(copy)])
    assert result.exit_code == 0, result.output
    assert not old.exists() and new.exists() and "1 spilled answers" in result.output


def test_spilled_answers_on_s3_are_made_again_when_deleted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On S3 (moto's server) a lifecycle rule expires them; one deleted under a running server
    is written again, not redirected to (S3 would answer 404 to the presigned URL)."""
    import numpy as np

    from publisher.build import build
    from publisher.config import load_pipeline
    from publisher.deploy.template import template

    from .conftest import write_pipeline

    rule = template()["Resources"]["DataBucket"]["Properties"]["LifecycleConfiguration"]["Rules"][0]
    assert rule["ExpirationInDays"] == spills.EXPIRY_DAYS and spills.EXPIRY_DAYS * 86400 > spills.MAX_AGE
    with moto_server(tmp_path) as s3:
        bucket = s3.create_bucket("edge")
        for name, value in s3.env().items():
            monkeypatch.setenv(name, value)
        (tmp_path / "data").mkdir()
        image = np.arange(64 * 64, dtype="uint16").reshape(64, 64)
        np.save(tmp_path / "data" / "img.npy", image)
        url = f"s3://{bucket}/site"
        build(load_pipeline(write_pipeline(tmp_path, {"sources": [{"path": "data", "into": ""}], "output": {"store": url}})), workers=1)
        monkeypatch.setenv("SKYSHELF_STORE", url)
        monkeypatch.setenv("SKYSHELF_MAX_BODY_BYTES", "1000")
        srv = LocalServer(url, "127.0.0.1", 0).start()
        try:
            for odd in ("", "releases", "releases/", "catalog.json/x", "catalog.json%00"):  # folders are prefixes on S3
                assert_json_4xx(httpx.get(f"{srv.url}/files/{odd}"))
            array = f"{srv.url}/api/v1/array/full/img?format=application/octet-stream"
            for _ in range(2):
                answer = httpx.get(array, follow_redirects=True)
                assert answer.history and answer.history[0].headers["location"].startswith(s3.endpoint)
                assert answer.status_code == 200 and answer.content == image.tobytes()
                assert answer.headers["content-disposition"].endswith('filename="img.bin"')  # S3 answers with the name
                for item in s3.client().list_objects_v2(Bucket=bucket, Prefix=f"site/{spills.PREFIX}/")["Contents"]:
                    s3.client().delete_object(Bucket=bucket, Key=item["Key"])
            assert httpx.get(array, follow_redirects=True).content == image.tobytes()
        finally:
            srv.stop()
        from publisher.stores import Store

        store = Store(url)
        (held,) = store.objects(spills.PREFIX)
        assert spills.collect(store, older_than=3600) == [] and spills.collect(store, older_than=0) == [held[0]]  # what publish gc does
        assert store.objects(spills.PREFIX) == []


def test_big_files_are_never_held_whole(server: str, demo: Published) -> None:
    """A byte range reads only that range and a whole big object is sent piece by piece: the
    server's Python allocations stay far below the object's size (it runs in this process)."""
    import tracemalloc

    big = Path(demo.store.url, "big.bin")
    size = 96 * 2**20
    with big.open("wb") as f:  # sparse: no disk used, a real file nonetheless
        f.truncate(size)
        f.seek(size - 4)
        f.write(b"tail")
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        part = httpx.get(f"{server}/files/big.bin", headers={"Range": "bytes=-4"})
        assert part.status_code == 206 and part.content == b"tail" and part.headers["content-range"] == f"bytes {size - 4}-{size - 1}/{size}"
        received = 0
        with httpx.stream("GET", f"{server}/files/big.bin") as whole:
            assert whole.status_code == 200 and int(whole.headers["content-length"]) == size
            for piece in whole.iter_raw():
                received += len(piece)
                last = piece
        assert received == size and last.endswith(b"tail")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        big.unlink()
    assert peak < size / 4, f"{peak / 2**20:.0f} MiB allocated to serve {size / 2**20:.0f} MiB"
    assert httpx.get(f"{server}/files/catalog.json", headers={"Range": "bytes=999999999-"}).status_code == 416


@pytest.mark.parametrize(("method", "path", "allow"), [
    ("DELETE", "/api/v1/metadata/frames", "GET, HEAD"), ("PUT", "/api/v1/", "GET, HEAD"), ("PATCH", "/api/v1/search/", "GET, HEAD"),
    ("POST", "/api/v1/array/full/" + FRAME, "GET, HEAD"), ("DELETE", "/api/v1/awkward/buffers/x", "GET, HEAD, POST"),
    ("POST", "/files/catalog.json", "GET, HEAD"), ("PUT", "/", "GET, HEAD"),
])
def test_a_method_a_route_does_not_take_answers_405(server: str, demo: Published, monkeypatch: pytest.MonkeyPatch,
                                                    method: str, path: str, allow: str) -> None:
    """A path some route has, asked with another method: 405 with ``Allow`` and a JSON detail,
    from ``publish serve`` and from the deployed function alike; a path no route has stays 404."""
    answer = httpx.request(method, server + path)
    assert_json_4xx(answer, 405)
    assert answer.headers["allow"] == allow and f"does not take {method}" in answer.json()["detail"]
    if not path.startswith("/files/"):
        import handlers.metadata
        from handlers.local import event_for

        monkeypatch.setenv("SKYSHELF_STORE", demo.store.url)
        result = handlers.metadata.lambda_handler(event_for(method, path, "", {"host": "example.org"}, "1.2.3.4"), None)
        assert result["statusCode"] == 405 and result["headers"]["Allow"] == allow, result
    assert_json_4xx(httpx.request(method, server + "/api/v2/nothing"), 404)


@pytest.mark.parametrize("route", ["search/", "search/frames", "search-deep/"])
def test_a_page_of_no_items_gives_the_count_and_no_next_page(server: str, route: str) -> None:
    """``page[limit]=0`` (the tiled client's ``len()``): the count, no items, and no ``next`` link
    (it would be the same page again, and a client following links would never stop)."""
    empty = httpx.get(f"{server}/api/v1/{route}", params={"page[limit]": "0"}).json()
    assert empty["data"] == [] and empty["meta"]["count"] > 2 and empty["links"]["next"] is None
    two = httpx.get(f"{server}/api/v1/{route}", params={"page[limit]": "2"}).json()
    assert len(two["data"]) == 2 and "page[offset]=2&page[limit]=2" in two["links"]["next"]


@pytest.mark.parametrize(("route", "flag"), [("metadata/frames", "omit_links"), ("search/", "include_data_sources"), ("distinct/", "counts")])
def test_a_flag_is_true_or_false(server: str, route: str, flag: str) -> None:
    """A flag that is neither true nor false (1 or 0) is a 400 naming it, not silently false."""
    assert httpx.get(f"{server}/api/v1/{route}", params={flag: "true"}).status_code == 200
    answer = httpx.get(f"{server}/api/v1/{route}", params={flag: "yes"})
    assert_json_4xx(answer, 400)
    assert f"{flag} must be true or false, got 'yes'" in answer.json()["detail"]


def test_a_method_a_path_takes_is_never_405(demo: Published, monkeypatch: pytest.MonkeyPatch) -> None:
    """Requests API Gateway hands to the default function (a trailing slash, HEAD) whose method
    the path does take: a 404 as before (no route for it there), never a 405 that contradicts its
    own Allow."""
    import handlers.metadata
    from handlers.local import event_for

    monkeypatch.setenv("SKYSHELF_STORE", demo.store.url)
    for method, path in [("GET", "/api/v1/container/full/"), ("GET", "/api/v1/array/full/"), ("HEAD", "/api/v1/metadata/")]:
        result = handlers.metadata.lambda_handler(event_for(method, path, "", {"host": "example.org"}, "1.2.3.4"), None)
        assert result["statusCode"] != 405, (method, path, result)


def test_spill_cleanups_racing_each_other_answer_every_request(server: str, demo: Published, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every spilled answer past the cap of 1 byte deletes the others, in eight requests at once:
    two cleanups deleted the same answer, and the one that found it gone answered 500."""
    from concurrent.futures import ThreadPoolExecutor

    monkeypatch.setattr(spills, "YOUNG", 0.0)
    monkeypatch.setenv("SKYSHELF_MAX_BODY_BYTES", "1000")
    monkeypatch.setenv("SKYSHELF_SPILL_MAX_BYTES", "1")
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda i: httpx.get(spill_url(server, i % 16), timeout=60), range(160)))
    assert [a.status_code for a in answers] == [307] * 160, {a.status_code: a.text for a in answers if a.status_code != 307}


def test_a_spill_whose_cleanup_fails_is_still_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    """The old answers cannot be deleted (a store that refuses deletes): the new one is written and
    its request answered, the failure logged; it failed the request it was written for."""
    from publisher.errors import StoreError
    from publisher.stores import Store

    store = Store(str(tmp_path))
    store.write_bytes(spills.key_for('"old"', ".bin"), b"x" * 100)
    then = time.time() - 2 * spills.MAX_AGE
    os.utime(tmp_path / spills.key_for('"old"', ".bin"), (then, then))

    def refuse(prefix: str) -> None:
        raise StoreError(f"cannot delete {prefix!r}: read-only")

    monkeypatch.setattr(store, "delete_prefix", refuse)
    with caplog.at_level("WARNING", logger="publisher.spills"):
        spills.write(store, spills.key_for('"new"', ".bin"), b"y" * 100, max_bytes=1)
    assert store.read_bytes(spills.key_for('"new"', ".bin")) == b"y" * 100
    assert "could not delete old spilled answers" in caplog.text and "read-only" in caplog.text

