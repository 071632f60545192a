"""``/api/v1/zarr/v3/{path}``: xarray and zarr read a private node with an API key through
``publish serve``; every key is a 307 to a short-lived signed URL, keys outside the node's
hierarchy are a 404 from the route itself, hidden nodes answer as missing ones, and the clients
drop the Authorization header when they follow the redirect to another origin."""

from __future__ import annotations

import contextlib
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import numpy as np
import pytest
import requests
import xarray as xr
import zarr

from handlers import local
from handlers.local import LocalServer
from publisher.auth.keys import create_key

from .conftest import Published, run_build
from .test_access_layout import config, make_sources
from .test_s3 import environ

SCAN, SIGNAL, FILE = "proposals/p1/embargoed_scan", "shared/mixed/entry/classified_group", "shared/mixed"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Published:
    folder = tmp_path_factory.mktemp("zarr-route")
    make_sources(folder)
    return run_build(folder, config())


@pytest.fixture(scope="module")
def keys(built: Published) -> dict[str, dict[str, str]]:
    return {tag: {"Authorization": f"Apikey {create_key(built.store, [tag])[0]}"} for tag in ("p1", "staff")}


@pytest.fixture(scope="module")
def files_seen() -> Iterator[list[tuple[str, str | None]]]:
    """Every request for ``/files/`` (its path and the Authorization it carried), on any server."""
    seen: list[tuple[str, str | None]] = []
    answer = local.App.answer

    async def recording(self: local.App, method: str, path: str, query: str, headers: dict[str, str], client: str,
                        request: bytes = b"") -> Any:
        if path.startswith(local.FILES + "/"):
            seen.append((path, headers.get("authorization")))
        return await answer(self, method, path, query, headers, client, request)

    local.App.answer = recording  # type: ignore[method-assign]
    yield seen
    local.App.answer = answer  # type: ignore[method-assign]


@pytest.fixture(scope="module")
def servers(built: Published, files_seen: list) -> Iterator[tuple[str, str]]:
    """(the API, another origin serving the store's files): the API's redirects lead there."""
    files = LocalServer(built.store.url, port=0).start()
    with environ({"SKYSHELF_FILES_URL": f"{files.url}/files"}):
        api = LocalServer(built.store.url, port=0).start()
        try:
            yield f"{api.url}/api/v1/zarr/v3", files.url
        finally:
            api.stop()
            files.stop()


def test_xarray_and_zarr_read_private_nodes_with_a_key(servers: tuple[str, str], keys: dict[str, dict[str, str]],
                                                        files_seen: list) -> None:
    api, files = servers
    files_seen.clear()
    dataset = xr.open_zarr(f"{api}/{SIGNAL}", storage_options={"headers": keys["staff"]}, consolidated=True)
    np.testing.assert_array_equal(dataset["signal"].values, np.arange(5.0))
    assert dataset.attrs["note"] == "CLASSIFIED-VALUE"
    array = zarr.open_array(f"{api}/{SCAN}", mode="r", storage_options={"headers": keys["p1"]})
    np.testing.assert_array_equal(array[...], np.ones((3, 3)))
    group = zarr.open_group(f"{api}/{FILE}", mode="r", storage_options={"headers": keys["p1"]})
    np.testing.assert_array_equal(group["entry/counts"][...], np.arange(10))
    assert sorted(group["entry"].keys()) == ["counts"]  # the file's hierarchy holds no private group
    # every object came from the other origin, and the clients left the Authorization header behind
    assert files_seen and all(auth is None for _, auth in files_seen), files_seen
    assert any("/private/" in path for path, _ in files_seen)


def test_each_key_is_a_short_lived_signed_redirect(servers: tuple[str, str], keys: dict[str, dict[str, str]]) -> None:
    api, files = servers
    answer = httpx.get(f"{api}/{SCAN}/c/0/0", headers=keys["p1"])
    assert answer.status_code == 307 and answer.headers["cache-control"] == "private, no-store"
    location = answer.headers["location"]
    assert location.startswith(f"{files}/files/private/") and "X-Skyshelf-Signature=" in location
    assert httpx.get(location).status_code == 200  # the signed URL needs no credentials
    assert httpx.get(location.split("?")[0]).status_code == 404  # and the key without it is not readable
    bare = httpx.get(f"{api}/{SCAN}", headers=keys["p1"])
    assert bare.status_code == 307 and bare.headers["location"].split("?")[0].endswith("embargoed_scan.zarr/zarr.json")
    for client in (lambda u, h: httpx.get(u, headers=h, follow_redirects=True).status_code,
                   lambda u, h: requests.get(u, headers=h, timeout=10).status_code):
        assert client(f"{api}/{SCAN}/zarr.json", keys["p1"]) == 200


def test_the_standard_library_keeps_the_header_across_the_redirect(servers: tuple[str, str], keys: dict[str, dict[str, str]],
                                                                    files_seen: list) -> None:
    """urllib.request forwards Authorization to the other origin (docs/auth.md says so)."""
    api, _ = servers
    files_seen.clear()
    with urllib.request.urlopen(urllib.request.Request(f"{api}/{SCAN}/zarr.json", headers=keys["p1"]), timeout=10) as got:
        assert got.status == 200
    assert files_seen and files_seen[-1][1] == keys["p1"]["Authorization"]


def test_keys_outside_the_hierarchy_are_404_from_the_route(servers: tuple[str, str], keys: dict[str, dict[str, str]]) -> None:
    api, _ = servers
    for key in ("c/1/0", "c/0", "c/0/0/0", ".zmetadata", ".zarray", "nope/zarr.json", "c/x/0"):
        answer = httpx.get(f"{api}/{SCAN}/{key}", headers=keys["p1"])
        assert answer.status_code == 404 and "location" not in answer.headers, key
        assert key in answer.json()["detail"]
    assert httpx.get(f"{api}/{FILE}/entry/counts/c/0", headers=keys["p1"]).status_code == 307
    assert httpx.get(f"{api}/{FILE}/entry/zarr.json").status_code == 307  # anyone reads the public file


def test_hidden_nodes_answer_as_missing_ones(servers: tuple[str, str], keys: dict[str, dict[str, str]]) -> None:
    api, _ = servers
    for headers in ({}, keys["staff"]):  # anonymous and another tag's key
        for key in ("zarr.json", "c/0/0", ""):
            hidden = httpx.get(f"{api}/{SCAN}/{key}".rstrip("/"), headers=headers)
            missing = httpx.get(f"{api}/proposals/p9/embargoed_scan/{key}".rstrip("/"), headers=headers)
            assert hidden.status_code == missing.status_code == 404
            assert hidden.json()["detail"].replace("p1", "p9") == missing.json()["detail"]
            assert "embargoed" not in hidden.text or "embargoed" in f"{SCAN}/{key}"
    # a private group inside a public file is not in the file's hierarchy
    assert httpx.get(f"{api}/{FILE}/entry/classified_group/zarr.json").status_code == 404
    assert httpx.get(f"{api}/{FILE}/entry/classified_group/zarr.json", headers=keys["staff"]).status_code == 307


def test_tables_and_folders_are_not_served(servers: tuple[str, str], built: Published) -> None:
    api, _ = servers
    key = {"Authorization": f"Apikey {create_key(built.store, ['anything'])[0]}"}
    folder = httpx.get(f"{api}/shared/zarr.json")
    assert folder.status_code == 404 and "only Zarr nodes" in folder.json()["detail"] and "container/full" in folder.json()["detail"]
    root = httpx.get(api)
    assert root.status_code == 404 and "only Zarr nodes" in root.json()["detail"]
    # the untagged table is private: to a key that reads nothing it is missing, not a table
    table = httpx.get(f"{api}/misc/untagged_notes/zarr.json", headers=key)
    assert table.status_code == 404 and "table" not in table.json()["detail"]


@contextlib.contextmanager
def serving(store_url: str) -> Iterator[str]:
    """``publish serve`` of a store with its own ``/files/`` (the module's servers set another)."""
    with environ({"SKYSHELF_FILES_URL": ""}):
        server = LocalServer(store_url, port=0).start()
        try:
            yield server.url
        finally:
            server.stop()


def test_a_readable_table_is_refused_with_a_reason(tmp_path: Path) -> None:
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "rows.csv").write_text("a,b\n1,2\n")
    published = run_build(tmp_path, {"sources": [{"path": "t"}]})
    with serving(published.store.url) as url:
        answer = httpx.get(f"{url}/api/v1/zarr/v3/t/rows/zarr.json")
        assert answer.status_code == 404 and "is a table: only Zarr nodes" in answer.json()["detail"]
        assert "table/full/t/rows" in answer.json()["detail"]


def test_without_credentials_a_private_catalog_is_401(tmp_path: Path) -> None:
    (tmp_path / "p").mkdir()
    np.save(tmp_path / "p" / "x.npy", np.arange(4))
    published = run_build(tmp_path, {"sources": [{"path": "p"}], "rules": [{"match": "p", "access_tags": ["t"]}]})
    with serving(published.store.url) as url:
        assert httpx.get(f"{url}/api/v1/zarr/v3/p/x/zarr.json").status_code == 401
        key = {"Authorization": f"Apikey {create_key(published.store, ['t'])[0]}"}
        np.testing.assert_array_equal(zarr.open_array(f"{url}/api/v1/zarr/v3/p/x", mode="r",
                                                      storage_options={"headers": key})[...], np.arange(4))


def test_nodes_named_with_url_characters_redirect_to_their_objects(tmp_path: Path) -> None:
    """A node's redirect and data_sources address its objects percent-encoded: 'scan #1' sent the
    client to /files/.../scan (the '#' began a fragment), 'rate 100%41' to 'rate 100A': 404s."""
    (tmp_path / "p").mkdir()
    names = ["plain", "scan #1", "rate 100%41", "q?x", "ü ok"]
    for i, name in enumerate(names):
        np.save(tmp_path / "p" / f"{name}.npy", np.arange(4) + i)
    published = run_build(tmp_path, {"sources": [{"path": "p"}]})
    with serving(published.store.url) as url:
        for i, name in enumerate(names):
            node = f"{url}/api/v1/zarr/v3/p/{quote(name)}"
            np.testing.assert_array_equal(zarr.open_array(node, mode="r")[...], np.arange(4) + i)
            meta = httpx.get(f"{url}/api/v1/metadata/p/{quote(name)}", params={"include_data_sources": "true"}).json()
            uri = meta["data"]["attributes"]["data_sources"][0]["assets"][0]["data_uri"]
            assert httpx.get(f"{uri}/zarr.json").status_code == 200, uri
