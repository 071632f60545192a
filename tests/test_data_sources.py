"""``include_data_sources=true`` (Tiled's parameter): each node names its published object —
the real tiled client reads the data sources, and xarray / zarr / pandas opening their
``data_uri`` directly read the values the API answers. A deploy's public URL
(``SKYSHELF_DIRECT_URL``) starts the addresses; a private node's says it is private."""

from __future__ import annotations

import httpx
import numpy as np
import pandas as pd
import pytest
import xarray as xr
import zarr
from tiled.client import from_uri

from .browser import Served, served_demo, served_private  # noqa: F401
from .conftest import ROOT
from .servers import publish_serve

DATASET = "scans/scan_0001/entry/data"  # an NXdata group: th (12) and data (12 × 256 × 256 uint16)
ARRAY = "scans/scan_0001/entry/data/data"
TABLE = "tables/temperature_log"


def test_tiled_client_reads_data_sources_and_xarray_opens_them(served_demo: Served) -> None:  # noqa: F811
    client = from_uri(f"{served_demo.url}/api/v1", include_data_sources=True)
    (source,) = client[DATASET].data_sources()
    assert source.mimetype == "application/x-zarr" and source.management == "external"
    assert source.parameters == {"source_file": served_demo.published.node(DATASET)["source_file"], "source_path": "/entry/data"}
    (asset,) = source.assets
    assert asset.is_directory and asset.data_uri.startswith(f"{served_demo.url}/files/")
    direct = xr.open_zarr(asset.data_uri)
    through_api = client[DATASET].read()
    np.testing.assert_array_equal(direct["data"].values, through_api["data"].values)
    np.testing.assert_array_equal(direct["th"].values, through_api["th"].values)

    (array_source,) = client[ARRAY].data_sources()
    np.testing.assert_array_equal(zarr.open_array(array_source.assets[0].data_uri, mode="r")[:], client[ARRAY].read())

    (table_source,) = client[TABLE].data_sources()
    assert table_source.mimetype == "application/x-parquet" and not table_source.assets[0].is_directory
    pd.testing.assert_frame_equal(pd.read_parquet(table_source.assets[0].data_uri), client[TABLE].read(), check_dtype=False)


def test_data_sources_only_when_asked(served_demo: Served) -> None:  # noqa: F811
    url = f"{served_demo.url}/api/v1/metadata/{DATASET}"
    assert httpx.get(url).json()["data"]["attributes"]["data_sources"] is None
    asked = httpx.get(url, params={"include_data_sources": "true"}).json()["data"]["attributes"]["data_sources"]
    assert len(asked) == 1
    # a search page carries them too (the tiled client walks a container with the parameter)
    page = httpx.get(f"{served_demo.url}/api/v1/search/tables", params={"include_data_sources": "true"}).json()
    assert page["data"][0]["attributes"]["data_sources"][0]["assets"][0]["data_uri"].endswith(".parquet")
    document = httpx.get(f"{served_demo.url}/api/v1/openapi.json").json()
    shared = document.get("components", {}).get("parameters", {})

    def named(parameter: dict) -> str:  # a parameter, or a $ref to one the routes share
        ref = parameter.get("$ref")
        return str(shared[ref.rsplit("/", 1)[-1]]["name"] if ref else parameter["name"])

    for route in ("metadata", "search", "search-deep"):
        assert "include_data_sources" in [named(p) for p in document["paths"][f"/api/v1/{route}/{{path}}"]["get"]["parameters"]]
    # a folder without an object of its own has none
    root = httpx.get(f"{served_demo.url}/api/v1/metadata/scans", params={"include_data_sources": "true"}).json()
    assert root["data"]["attributes"]["data_sources"] == []


def test_direct_url_setting(served_demo: Served, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    monkeypatch.setenv("SKYSHELF_DIRECT_URL", "https://bucket.s3.example.org/site/")
    with publish_serve(served_demo.store.url, cwd=ROOT) as url:
        answer = httpx.get(f"{url}/api/v1/metadata/{ARRAY}", params={"include_data_sources": "true"}).json()
    uri = answer["data"]["attributes"]["data_sources"][0]["assets"][0]["data_uri"]
    assert uri == f"https://bucket.s3.example.org/site/{served_demo.published.node(ARRAY)['data_url']}"


def test_private_node_says_so(served_private: Served) -> None:  # noqa: F811
    headers = {"Authorization": f"Apikey {served_private.keys['a']}"}
    node = next(e["path"] for e in served_private.published.entries()
                if (e["data_url"] or "").startswith("private/") and e["family"] in ("array", "table"))
    anonymous = httpx.get(f"{served_private.url}/api/v1/metadata/{node}", params={"include_data_sources": "true"})
    assert anonymous.status_code == 404 and "private/" not in anonymous.text  # invisible, as the node is
    answer = httpx.get(f"{served_private.url}/api/v1/metadata/{node}", params={"include_data_sources": "true"}, headers=headers)
    if answer.status_code == 404:  # key a cannot read this one: take a key that reads everything
        headers = {"Authorization": f"Apikey {served_private.keys['ab']}"}
        answer = httpx.get(f"{served_private.url}/api/v1/metadata/{node}", params={"include_data_sources": "true"}, headers=headers)
    (source,) = answer.json()["data"]["attributes"]["data_sources"]
    assert "private" in source["properties"]["access"]
    uri = source["assets"][0]["data_uri"]
    assert "/files/private/" in uri
    target = f"{uri}/zarr.json" if source["mimetype"] == "application/x-zarr" else uri
    assert httpx.get(target).status_code in (401, 403, 404)  # the bare address does not read it


def test_the_private_note_names_a_route_the_server_takes() -> None:
    """The note on a private node's data source told clients to POST /api/v1/auth/credentials,
    which answers 405: the method and route it names are one of the route table's."""
    import re

    from handlers.data_sources import PRIVATE_NOTE
    from publisher.functions import allowed_methods

    method, route = re.search(r"\b(GET|POST|PUT|DELETE) (/api/v1/\S+)", PRIVATE_NOTE).groups()  # type: ignore[union-attr]
    assert method in allowed_methods(route), (method, route, allowed_methods(route))
