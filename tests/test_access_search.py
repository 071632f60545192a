"""Searches in a catalog with private nodes count and return only what the caller may read,
on both search paths: row by row (small containers) and on search columns (large ones)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import httpx
import numpy as np
import pytest

from handlers.local import LocalServer
from publisher.auth.keys import create_key
from publisher.build import build
from publisher.config import load_pipeline
from publisher.settings import BuildSettings
from publisher.stores import Store

from .conftest import write_pipeline


@pytest.fixture(scope="module", params=[3, 1000], ids=["search-columns", "row-by-row"])
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = tmp_path_factory.mktemp("access-search")
    (folder / "runs").mkdir()
    for i in range(8):
        np.save(folder / "runs" / f"run{i}.npy", np.arange(4) + i)
        (folder / "runs" / f"run{i}.npy.json").write_text(json.dumps({"element": ["Ni", "Fe"][i % 2], "secret_marker": f"S{i}" if i >= 5 else None}))
    rules = [{"match": "runs", "access_tags": ["public"]}] + [{"match": f"runs/run{i}", "access_tags": ["team"]} for i in range(5, 8)]
    pipeline = load_pipeline(write_pipeline(folder, {"sources": [{"path": "runs"}], "rules": rules, "output": {"store": str(folder / "site")}}))
    build(pipeline, workers=2, settings=BuildSettings(search_min_children=request.param))
    store = Store(str(folder / "site"))
    key, _ = create_key(store, ["team"])
    server = LocalServer(str(folder / "site"), "127.0.0.1", 0).start()
    yield {"url": f"{server.url}/api/v1", "key": key}
    server.stop()


def _get(served: dict, route: str, key: bool, **params: str) -> httpx.Response:
    headers = {"Authorization": f"Apikey {served['key']}"} if key else {}
    return httpx.get(f"{served['url']}/{route}", params=params, headers=headers)


def test_counts_and_pages_hold_only_readable_children(served: dict) -> None:
    anonymous = _get(served, "search/runs", False).json()
    team = _get(served, "search/runs", True).json()
    assert anonymous["meta"]["count"] == 5 and [d["id"] for d in anonymous["data"]] == [f"run{i}" for i in range(5)]
    assert team["meta"]["count"] == 8
    assert _get(served, "metadata/runs", False).json()["data"]["attributes"]["structure"]["count"] == 5
    assert _get(served, "metadata/runs", True).json()["data"]["attributes"]["structure"]["count"] == 8


def test_filters_sorting_and_distinct_see_only_readable_children(served: dict) -> None:
    eq = {"filter[eq][condition][key]": "element", "filter[eq][condition][value]": '"Fe"'}
    assert [d["id"] for d in _get(served, "search/runs", False, **eq).json()["data"]] == ["run1", "run3"]
    assert [d["id"] for d in _get(served, "search/runs", True, **eq).json()["data"]] == ["run1", "run3", "run5", "run7"]
    assert [d["id"] for d in _get(served, "search/runs", False, sort="-element", **{"page[limit]": "2"}).json()["data"]] == ["run0", "run2"]
    distinct = _get(served, "distinct/runs", False, metadata="secret_marker", counts="true").json()
    assert distinct["metadata"]["secret_marker"] == [{"value": None, "count": 5}]
    probe = _get(served, "search/runs", False, **{"filter[eq][condition][key]": "secret_marker", "filter[eq][condition][value]": '"S6"'})
    assert probe.json()["meta"]["count"] == 0 and probe.json()["data"] == []  # a hidden node's metadata cannot be probed
    assert _get(served, "search/runs", True, **{"filter[eq][condition][key]": "secret_marker",
                                                  "filter[eq][condition][value]": '"S6"'}).json()["meta"]["count"] == 1


def test_hidden_children_answer_as_missing_ones(served: dict) -> None:
    hidden, missing = _get(served, "metadata/runs/run6", False), _get(served, "metadata/runs/run99", False)
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json()["detail"].replace("run6", "X") == missing.json()["detail"].replace("run99", "X")
    assert sorted(hidden.headers.keys()) == sorted(missing.headers.keys())
    assert _get(served, "metadata/runs/run6", True).status_code == 200
    deep = _get(served, "search-deep/", False).json()
    assert deep["meta"]["count"] == 6 and "run6" not in json.dumps(deep)


def test_the_access_log_never_shows_an_api_key(served: dict, caplog: pytest.LogCaptureFixture) -> None:
    from handlers.local import RedactKeys

    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
                               ("127.0.0.1:5", "GET", f"/api/v1/search/runs?page[limit]=2&api_key={served['key']}", "1.1", 200), None)
    assert RedactKeys().filter(record)
    shown = record.getMessage()
    assert served["key"] not in shown and "api_key=***" in shown and "page[limit]=2" in shown
    # the names as the server reads them (percent-decoded): an encoded name was logged in clear
    from handlers.access_log import redact

    for name in ("api%5Fkey", "api%5fkey", "%61pi_key", "API_KEY"):
        assert redact(f"/api/v1/search/runs?page[limit]=2&{name}={served['key']}") == f"/api/v1/search/runs?page[limit]=2&{name}=***"
    assert redact(f"api_key={served['key']}&x=1") == "api_key=***&x=1" and redact("GET") == "GET"
    assert logging.getLogger("uvicorn.access").filters and any(isinstance(f, RedactKeys) for f in logging.getLogger("uvicorn.access").filters)


def test_an_access_section_without_its_private_flag_fails_closed(tmp_path: Path) -> None:
    """A catalog whose access section lacks ``private_nodes`` (an older build, a hand edit) is
    filtered, never served whole."""
    from publisher.auth.principal import ANONYMOUS
    from publisher.auth.view import View
    from publisher.catalog import Catalog

    (tmp_path / "d").mkdir()
    np.save(tmp_path / "d" / "a.npy", np.arange(3))
    pipeline = load_pipeline(write_pipeline(tmp_path, {"sources": [{"path": "d"}], "output": {"store": str(tmp_path / "site")},
                                                       "rules": [{"match": "d", "access_tags": ["team"]}]}))
    build(pipeline, workers=1)
    store = Store(str(tmp_path / "site"))
    document = json.loads(store.read_bytes("private/catalog.json"))
    del document["access"]["private_nodes"]
    store.write_bytes("private/catalog.json", json.dumps(document).encode())
    view = View(Catalog.open_full(store), ANONYMOUS)
    assert view.restricted and list(view.entries("")) == []


def test_a_large_container_is_searched_on_its_columns_whatever_the_caller_sees(tmp_path: Path) -> None:
    from publisher.auth.principal import ANONYMOUS
    from publisher.auth.view import View
    from publisher.catalog import Catalog

    (tmp_path / "d").mkdir()
    for i in range(8):
        np.save(tmp_path / "d" / f"a{i}.npy", np.arange(3))
    rules = [{"match": "d", "access_tags": ["public"]}] + [{"match": f"d/a{i}", "access_tags": ["team"]} for i in range(3)]
    pipeline = load_pipeline(write_pipeline(tmp_path, {"sources": [{"path": "d"}], "output": {"store": str(tmp_path / "site")}, "rules": rules}))
    build(pipeline, workers=1, settings=BuildSettings(search_min_children=6))
    view = View(Catalog.open_full(Store(str(tmp_path / "site"))), ANONYMOUS)
    visible = view.count(view.entry("d"))
    assert visible == 5 and view.search_columns("d", visible) is not None  # 8 children: columns, though 5 < 6 are seen


def test_anonymous_answers_of_a_catalog_with_private_nodes_vary_by_authorization(served: dict, tmp_path: Path) -> None:
    assert _get(served, "metadata/runs", False).headers["vary"].endswith("Authorization")
    assert "private" in _get(served, "metadata/runs", True).headers["cache-control"]
    (tmp_path / "d").mkdir()
    np.save(tmp_path / "d" / "a.npy", np.arange(3))
    build(load_pipeline(write_pipeline(tmp_path, {"sources": [{"path": "d"}], "output": {"store": str(tmp_path / "site")}})), workers=1)
    server = LocalServer(str(tmp_path / "site"), "127.0.0.1", 0).start()
    try:
        assert "Authorization" not in httpx.get(f"{server.url}/api/v1/metadata/d").headers["vary"]  # a public catalog: as before
    finally:
        server.stop()
