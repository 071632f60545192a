"""API key scopes, Tiled's: ``read:metadata`` (metadata, search, distinct, a table's column
metadata) and ``read:data`` (everything that returns data: arrays, tables, containers' data,
sparse and awkward routes, the Zarr route, scoped credentials). A route refuses a key without its
scope with Tiled's 401 and message, decided by the route before any node is looked up (so a
refusal says nothing of the node); what the key's tags reach is unchanged. The real tiled client
lists a catalog with a metadata-only key and is refused its data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from click.testing import CliRunner

from publisher.auth.keys import create_key
from publisher.cli import main
from publisher.functions import ROUTES

from .conftest import run_build
from .servers import local_server

DATA_ROUTES = [("array/full/{}/img", {"format": "json"}), ("array/block/{}/img", {"block": "0,0"}), ("table/full/{}/tab", {"format": "csv"}),
               ("table/partition/{}/tab", {"partition": "0"}), ("container/full/{}", {"format": "json"}),
               ("column/full/{}/tab/x", None), ("zarr/v3/{}/img/zarr.json", None)]
METADATA_ROUTES = [("metadata/{}/img", None), ("search/{}", None), ("distinct/{}", {"metadata": "kind"}),
                   ("search-deep/{}", None), ("column/metadata/{}/tab/x", None)]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Any:
    folder: Path = tmp_path_factory.mktemp("key-scopes")
    for name in ("team", "pub"):
        (folder / name).mkdir()
        np.save(folder / name / "img.npy", np.arange(12.0).reshape(3, 4))
        (folder / name / "tab.csv").write_text("x,y\n1,2\n3,4\n")
    published = run_build(folder, {"sources": [{"path": "team"}, {"path": "pub"}],
                                   "rules": [{"match": "team", "access_tags": ["A"]}, {"match": "pub", "access_tags": ["public"]}]})
    keys = {scopes: create_key(published.store, ["A"], scopes=scopes.split(","))[0]
            for scopes in ("read:metadata", "read:data", "read:metadata,read:data")}
    with local_server(published.store.url) as url:
        yield url, keys, published.store.url


def _get(url: str, route: str, params: dict[str, str] | None, key: str | None) -> httpx.Response:
    return httpx.get(f"{url}/api/v1/{route}", params=params, headers={"Authorization": f"Apikey {key}"} if key else {},
                     follow_redirects=True)


def test_every_api_route_names_its_scope() -> None:
    for route in ROUTES:
        if route.path.startswith("/api/v1/") and route.path not in ("/api/v1/", "/api/v1/openapi.json", "/api/v1/auth/whoami") \
                and not route.path.startswith("/api/v1/docs"):
            assert route.scope in ("read:metadata", "read:data"), route


@pytest.mark.parametrize(("route", "params"), DATA_ROUTES, ids=[r for r, _ in DATA_ROUTES])
def test_data_needs_read_data(world: Any, route: str, params: dict[str, str] | None) -> None:
    url, keys, _ = world
    refused = _get(url, route.format("team"), params, keys["read:metadata"])
    assert refused.status_code == 401 and refused.headers["WWW-Authenticate"]
    assert refused.json()["detail"] == "Not enough permissions. Requires scopes ['read:data']. Request had scopes ['read:metadata']"
    # decided by the route alone: a node that does not exist, or a public one, is refused alike
    for other in ("nowhere", "pub"):
        again = _get(url, route.format(other), params, keys["read:metadata"])
        assert (again.status_code, again.json()) == (401, refused.json())
    for scopes in ("read:data", "read:metadata,read:data"):
        assert _get(url, route.format("team"), params, keys[scopes]).status_code == 200, scopes
    assert _get(url, route.format("pub"), params, None).status_code == 200  # anonymous callers keep both read scopes


@pytest.mark.parametrize(("route", "params"), METADATA_ROUTES, ids=[r for r, _ in METADATA_ROUTES])
def test_metadata_needs_read_metadata(world: Any, route: str, params: dict[str, str] | None) -> None:
    url, keys, _ = world
    refused = _get(url, route.format("team"), params, keys["read:data"])
    assert refused.status_code == 401
    assert refused.json()["detail"] == "Not enough permissions. Requires scopes ['read:metadata']. Request had scopes ['read:data']"
    for scopes in ("read:metadata", "read:metadata,read:data"):
        answer = _get(url, route.format("team"), params, keys[scopes])
        assert answer.status_code == 200, (scopes, answer.text[:200])


@pytest.mark.parametrize("stage", ["$default", "prod"])
def test_scopes_hold_under_a_named_stage(world: Any, stage: str) -> None:
    """Behind a named API Gateway stage the event's rawPath starts with it (``/prod/api/v1/...``):
    the scope check looked the route up by rawPath, found none and asked for no scope, while the
    resolver routed the path without the stage: a metadata-only key read data."""
    from handlers import arrays, metadata
    from handlers.local import event_for, invoke
    from handlers.settings import Settings

    _url, keys, store = world
    settings = Settings.from_env({}, store=store)
    headers = {"authorization": f"Apikey {keys['read:metadata']}", "host": "example.execute-api.eu-west-1.amazonaws.com"}
    prefix = "" if stage == "$default" else f"/{stage}"

    def call(handler: Any, path: str, query: str = "") -> int:
        event = event_for("GET", f"{prefix}/api/v1/{path}", query, headers, "192.0.2.1")
        event["requestContext"]["stage"] = stage
        return invoke(handler.lambda_handler, event, settings)[0]

    assert call(arrays, "array/full/team/img", "format=json") == 401
    assert call(arrays, "zarr/v3/team/img/zarr.json") == 401
    assert call(metadata, "metadata/team/img") == 200


def test_routes_without_a_scope_answer_any_key(world: Any) -> None:
    url, keys, _ = world
    for path in ("/api/v1/", "/healthz", "/api/v1/auth/whoami"):
        assert httpx.get(url + path, headers={"Authorization": f"Apikey {keys['read:data']}"}).status_code == 200, path
    credentials = _get(url, "auth/credentials", None, keys["read:metadata"])  # direct S3 reads are data too
    assert credentials.status_code == 401 and "Requires scopes ['read:data']" in credentials.json()["detail"]


def test_the_tiled_client_with_a_metadata_only_key(world: Any) -> None:
    from tiled.client import from_uri
    from tiled.client.utils import ClientError

    url, keys, _ = world
    client = from_uri(f"{url}/api/v1", api_key=keys["read:metadata"])
    assert sorted(client) == ["pub", "team"] and client["team"]["img"].shape == (3, 4)
    with pytest.raises(ClientError, match="401: Not enough permissions. Requires scopes \\['read:data'\\]"):
        client["team"]["img"].read()
    full = from_uri(f"{url}/api/v1", api_key=keys["read:metadata,read:data"])
    assert full["team"]["img"].read().tolist() == np.arange(12.0).reshape(3, 4).tolist()


def test_cli_scopes(tmp_path: Path) -> None:
    store = str(tmp_path / "store")
    made = CliRunner().invoke(main, ["keys", "create", "--tags", "A", "--scopes", "read:metadata", "--store", store])
    assert made.exit_code == 0 and "scopes read:metadata," in made.stderr
    listing = CliRunner().invoke(main, ["keys", "list", "--store", store]).stdout
    assert "read:metadata " in listing and "read:data" not in listing.splitlines()[1]
    for bad, why in (("write:data", "scope 'write:data' is not one of read:data, read:metadata"), (" , ", "needs at least one scope"),
                     ("read:data,admin", "scope 'admin' is not one of")):
        refused = CliRunner().invoke(main, ["keys", "create", "--tags", "A", "--scopes", bad, "--store", store])
        assert refused.exit_code == 1 and why in refused.stderr, bad
