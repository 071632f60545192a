"""Search semantics against the real thing: the same metadata published by Skyshelf and held by
a real Tiled server's SQL catalog on SQLite (``tiled serve catalog --temp``'s tree), the same
queries sent by the tiled client to both, the same keys back. Regex, which SQLite's catalog does
not support, is compared with Tiled's in-memory tree (``tiled serve pyobject``'s), mounted beside
it in the same ``tiled serve config`` process."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from publisher.queries.registry import names

from .conftest import run_build
from .servers import tiled_servers

#: Metadata of the nodes both catalogs hold: nested keys, numbers and strings, lists, missing keys,
#: a key whose type varies, timestamps, free text.
CORPUS: dict[str, dict[str, Any]] = {}
_rng = np.random.default_rng(7)
_ELEMENTS = ["Ni", "Fe", "Cu", "NaCl", "KCl"]
_WORDS = ["powder", "single crystal", "thin film", "calibration run", "beam dump", "Nickel foil"]
for _i in range(40):
    md: dict[str, Any] = {
        "scan": _i,
        "sample": {"element": _ELEMENTS[_i % 5], "mass_mg": round(float(_rng.uniform(0.5, 20)), 3)},
        "temperature": int(_rng.choice([10, 77, 150, 295, 300, 450])),
        "motors": {"theta": round(float(_rng.uniform(-5, 5)), 2), "chi": int(_rng.integers(0, 90))},
        "timestamp": f"2026-0{1 + _i % 9}-1{_i % 10}T0{_i % 10}:00:00",
        "description": f"{_WORDS[_i % 6]} of {_ELEMENTS[_i % 5]} at {(_i * 7) % 400} K",
        "tags": [["good"], ["good", "fast"], [], ["bad"]][_i % 4],
    }
    if _i % 7 == 0:
        del md["temperature"]  # missing key
    if _i % 11 == 0:
        md["operator"] = "alice" if _i % 2 else "bob"
    if _i % 13 == 0:
        md["temperature"] = "room"  # a string where others have numbers
    CORPUS[f"n{_i:02d}"] = md
#: One level down, in a container ``sub``: for deep search.
NESTED = {f"d{i}": {**CORPUS[f"n{i:02d}"], "scan": 100 + i} for i in range(6)}


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Any, Any]]:
    """(Skyshelf, Tiled's SQL catalog, Tiled's in-memory tree), as tiled clients; Skyshelf's
    client carries the store's folder and its files' URL as ``store`` and ``files``."""
    from tiled.client import from_uri

    from handlers.local import LocalServer

    folder = tmp_path_factory.mktemp("search-vs-tiled")
    data = folder / "data"
    data.mkdir()
    for key, md in CORPUS.items():
        np.save(data / f"{key}.npy", np.zeros(2))
        (data / f"{key}.npy.json").write_text(json.dumps(md))
    (data / "sub").mkdir()
    for key, md in NESTED.items():
        np.save(data / "sub" / f"{key}.npy", np.zeros(2))
        (data / "sub" / f"{key}.npy.json").write_text(json.dumps(md))
    (folder / "corpus.json").write_text(json.dumps(CORPUS))
    (folder / "memory_tree.py").write_text(
        "import json, pathlib\nimport numpy as np\n"
        "from tiled.adapters.array import ArrayAdapter\nfrom tiled.adapters.mapping import MapAdapter\n"
        "corpus = json.loads((pathlib.Path(__file__).parent / 'corpus.json').read_text())\n"
        "tree = MapAdapter({k: ArrayAdapter.from_array(np.zeros(2), metadata=md) for k, md in corpus.items()})\n"
        "tree = MapAdapter({**tree, 'sub': MapAdapter({})})\n")  # the same top level as the others
    # every container gets search columns, so the handler answers from them (the row-by-row
    # path is checked against them in test_search_columns.py)
    os.environ["SKYSHELF_SEARCH_MIN_CHILDREN"] = "1"
    try:
        published = run_build(folder, {"sources": [{"path": "data", "into": ""}]})
    finally:
        del os.environ["SKYSHELF_SEARCH_MIN_CHILDREN"]
    assert published.store.listdir(f"releases/{published.report.release}/index/search")
    ours = LocalServer(published.store.url, "127.0.0.1", 0).start()
    try:
        with tiled_servers(folder, (["config", str(_tiled_config(folder))], folder)) as (url,):
            sql = from_uri(f"{url}/api/v1/metadata/sql", api_key="secret")
            sub = sql.create_container("sub")
            with ThreadPoolExecutor(4) as pool:  # ~0.2 s a write, mostly the server's: 7 s one by one
                writes = [pool.submit(parent.write_array, np.zeros(2), key=key, metadata=md)
                          for parent, corpus in ((sql, CORPUS), (sub, NESTED)) for key, md in corpus.items()]
                for write in writes:
                    write.result()
            client = from_uri(f"{ours.url}/api/v1")
            client.store, client.files = published.store.url, f"{ours.url}/files"
            yield client, sql, from_uri(f"{url}/api/v1/metadata/memory")
    finally:
        ours.stop()


#: ``tiled serve catalog --temp -w DATA``'s tree, made by its steps (tiled/commandline/_serve.py)
#: in the server that mounts it: the catalog's own ``init_if_not_exists`` runs ``tiled catalog
#: init`` in a new interpreter (~7 s of imports) where ``--temp`` initializes in process.
SQL_CATALOG = """
import asyncio
from pathlib import Path


def sql_catalog(directory):
    from sqlalchemy.ext.asyncio import create_async_engine
    from tiled.alembic_utils import stamp_head
    from tiled.catalog import from_uri
    from tiled.catalog.alembic_constants import ALEMBIC_DIR, ALEMBIC_INI_TEMPLATE_PATH
    from tiled.catalog.core import initialize_database
    from tiled.config import StreamingCacheConfig
    from tiled.utils import ensure_specified_sql_driver

    database = ensure_specified_sql_driver(f"sqlite:///{Path(directory) / 'catalog.db'}")
    asyncio.run(initialize_database(create_async_engine(database)))
    stamp_head(ALEMBIC_INI_TEMPLATE_PATH, ALEMBIC_DIR, database)
    (Path(directory) / "data").mkdir()
    return from_uri(database, writable_storage=[str(Path(directory) / "data")],
                    cache_config=StreamingCacheConfig(uri="memory").model_dump())
"""


def _tiled_config(folder: Path) -> Path:
    """One ``tiled serve config`` process holding both references (each Tiled server's start is
    ~10 s of imports): Tiled's SQL catalog on SQLite (``tiled serve catalog --temp``'s tree) at
    ``/sql``, written with the API key, and the in-memory tree (``tiled serve pyobject``'s) at
    ``/memory``; reads need no key."""
    (folder / "tiled").mkdir()
    (folder / "sql_catalog.py").write_text(SQL_CATALOG)
    config = {
        "authentication": {"single_user_api_key": "secret", "allow_anonymous_access": True},
        "trees": [{"path": "/sql", "tree": "sql_catalog:sql_catalog", "args": {"directory": str(folder / "tiled")}},
                  {"path": "/memory", "tree": "memory_tree:tree"}],
    }
    (folder / "tiled.yml").write_text(json.dumps(config))  # (JSON is YAML)
    return folder / "tiled.yml"


def _queries() -> list[Any]:
    from tiled.queries import (
        Comparison,
        Contains,
        Eq,
        FullText,
        In,
        Key,
        KeyPresent,
        KeysFilter,
        Like,
        NotEq,
        NotIn,
        SpecsQuery,
        StructureFamilyQuery,
    )

    return [
        Key("sample.element") == "Ni",
        Key("sample.element") != "Ni",
        Eq("temperature", 300),
        Eq("temperature", 300.0),
        Eq("temperature", "300"),
        NotEq("temperature", 300),
        Key("temperature") < 200,
        Key("temperature") >= 295,
        Comparison("gt", "sample.mass_mg", 10.0),
        Comparison("le", "motors.chi", 45),
        Comparison("lt", "temperature", "s"),
        Key("timestamp") > "2026-05-01",
        Key("timestamp") <= "2026-03-11T01:00:00",
        Contains("tags", "good"),
        Contains("description", "POWDER"),
        Contains("description", "of_Ni"),
        Contains("motors.chi", 5),
        In("sample.element", ["Ni", "Cu"]),
        NotIn("sample.element", ["Ni", "Cu"]),
        In("temperature", [77, "room"]),
        In("temperature", []),
        NotIn("temperature", []),
        Like("description", "%of Ni%"),
        Like("description", "thin%"),
        Like("sample.element", "n_"),
        KeyPresent("operator", True),
        KeyPresent("operator", False),
        KeyPresent("sample.element", True),
        KeysFilter(["n01", "n02", "n39", "nope"]),
        FullText("powder"),
        FullText("single crystal"),
        FullText("CRYSTAL"),
        FullText("300"),
        FullText("element"),
        FullText("nope"),
        Eq("operator", "alice"),
        SpecsQuery(include=["x"], exclude=[]),
        SpecsQuery(include=[], exclude=["x"]),
        StructureFamilyQuery("array"),
        StructureFamilyQuery("table"),
    ]


def _regex_queries() -> list[Any]:
    from tiled.queries import Regex

    return [Regex("description", "^thin"), Regex("description", "nickel", case_sensitive=False),
            Regex("description", "nickel", case_sensitive=True), Regex("temperature", "^r"), Regex("tags", "good"),
            # run by RE2 on our side, by Python's re in Tiled's: the same answers
            Regex("description", r"\bof\b"), Regex("description", r"\d+ K$"), Regex("sample.element", "^(Ni|Fe)$"),
            Regex("description", "(?i)NICKEL|crystal"), Regex("description", r"[^\W\d]+ foil"), Regex("timestamp", r"T0[1-3]:\d\d"),
            Regex("sample.element", "^[a-z]+$", case_sensitive=False)]


#: Registered queries neither Tiled server answers as a search filter, and why; the random
#: comparison with the row-by-row reference (test_search_columns.py) covers them.
NOT_SEARCHED_BY_TILED = {
    "lookup": "Tiled's client sends it for item access (client[key]), not as a search filter",
    "access_tags_filter": "Tiled's catalog applies it through an access policy, not as a client's filter",
}


@pytest.mark.parametrize("name", names())
def test_every_registered_query_is_compared_with_tiled(name: str) -> None:
    """The differential cases are the registry's conformance suite: a newly registered query
    class must be sent to Tiled here too (or be listed above with the reason it cannot)."""
    from tiled.query_registration import default_query_registry

    sent = {default_query_registry.query_type_to_name[type(q)] for q in _queries() + _regex_queries()}
    assert name in sent or name in NOT_SEARCHED_BY_TILED, f"query {name!r} has no differential case against Tiled"


@pytest.mark.parametrize("index", range(len(_queries())))
def test_query_gives_the_sql_catalogs_keys(both: tuple[Any, Any, Any], index: int) -> None:
    ours, sql, _ = both
    query = _queries()[index]
    assert sorted(ours.search(query)) == sorted(sql.search(query)), repr(query)


@pytest.mark.parametrize("index", range(len(_regex_queries())))
def test_regex_gives_the_in_memory_trees_keys(both: tuple[Any, Any, Any], index: int) -> None:
    ours, _, memory = both
    query = _regex_queries()[index]
    assert sorted(ours.search(query)) == sorted(memory.search(query)), repr(query)


def test_server_free_helper_gives_the_handlers_answers(both: tuple[Any, Any, Any]) -> None:
    """``publisher.index.client.search_index`` over the published Parquet index (a folder, and the same
    files over HTTP) answers every query as the search handler does, sorted too."""
    from tiled.queries import Key

    from publisher.index.client import search_index

    ours, _, _ = both
    for query in _queries() + _regex_queries():
        expected = list(ours.search(query))
        assert search_index(ours.store, "", query)["key"].to_list() == expected, repr(query)
    chained = (Key("sample.element") == "NaCl", Key("motors.chi") < 60)
    assert search_index(ours.files, "", *chained)["key"].to_list() == list(ours.search(chained[0]).search(chained[1]))
    by_scan = search_index(ours.store, "", Key("sample.element") == "Ni", sort="-scan")
    assert by_scan["key"].to_list() == list(ours.search(Key("sample.element") == "Ni").sort(("scan", -1)))
    assert [json.loads(m)["scan"] for m in by_scan["metadata"]] == sorted((md["scan"] for md in CORPUS.values() if md["sample"]["element"] == "Ni"), reverse=True)


@pytest.mark.parametrize("keys", [("sample.element",), ("temperature", "operator"), ("tags",), ("motors",)])
def test_distinct_gives_the_sql_catalogs_values(both: tuple[Any, Any, Any], keys: tuple[str, ...]) -> None:
    from tiled.queries import Key

    ours, sql, _ = both
    for counts in (True, False):
        got = ours.distinct(*keys, structure_families=True, specs=True, counts=counts)
        assert got == sql.distinct(*keys, structure_families=True, specs=True, counts=counts)
    narrowed = Key("sample.element") == "Fe"
    assert ours.search(narrowed).distinct(*keys, counts=True) == sql.search(narrowed).distinct(*keys, counts=True)


@pytest.mark.parametrize("max_depth", [None, 1])
def test_deep_search_gives_the_sql_catalogs_paths(both: tuple[Any, Any, Any], max_depth: int | None) -> None:
    from tiled.queries import Comparison, FullText, Key

    ours, sql, _ = both
    for query in (Key("sample.element") == "Ni", FullText("powder"), Comparison("gt", "scan", 38), Key("nope") == 1):
        expected = sorted(sql.search_deep(query, max_depth=max_depth))
        assert sorted(ours.search_deep(query, max_depth=max_depth)) == expected, (query, max_depth)
    assert sorted(ours.search_deep(Key("sample.element") == "Ni")) == [("n00",), ("n05",), ("n10",), ("n15",), ("n20",), ("n25",),
                                                                       ("n30",), ("n35",), ("sub", "d0"), ("sub", "d5")]


@pytest.mark.parametrize("expression", ["sample.element", "{t: temperature, e: sample.element}", "tags[0]", "motors.*"])
def test_select_metadata_gives_the_sql_catalogs_selection(both: tuple[Any, Any, Any], expression: str) -> None:
    """A JMESPath expression applied to every result's metadata, as ``{"selected": ...}``."""
    ours, sql, _ = both

    def selected(client: Any) -> dict[str, Any]:
        url = client.item["links"]["search"]  # (the node's own: Tiled's trees are mounted below its root)
        body = client.context.http_client.get(url, params={"select_metadata": expression, "page[limit]": 100, "fields": "metadata"}).json()
        return {item["id"]: item["attributes"]["metadata"] for item in body["data"]}

    assert selected(ours) == selected(sql)


def test_chained_queries_and_counts(both: tuple[Any, Any, Any]) -> None:
    from tiled.queries import FullText, Key

    ours, sql, _ = both
    q1, q2, q3 = Key("sample.element") == "NaCl", Key("motors.chi") < 60, FullText("powder")
    assert sorted(ours.search(q1).search(q2)) == sorted(sql.search(q1).search(q2))
    assert sorted(ours.search(q3).search(q1)) == sorted(sql.search(q3).search(q1))
    assert len(ours.search(q1)) == len(sql.search(q1))


@pytest.mark.parametrize("url", [
    "/api/v1/search/?filter[like][condition][key]=a",  # a field missing
    "/api/v1/search/?filter[keys_filter][condition][keys]=notjson",
    "/api/v1/search/?filter[in][condition][key]=a&filter[in][condition][value]=3",
    "/api/v1/search/?filter[regex][condition][key]=a&filter[regex][condition][pattern]=(",
    "/api/v1/search/?filter[comparison][condition][operator]=eq&filter[comparison][condition][key]=a&filter[comparison][condition][value]=1",
    "/api/v1/search/?filter[nosuch][condition][key]=a",
    "/api/v1/distinct/?metadata=scan&counts=maybe",
    "/api/v1/distinct/n01?metadata=scan",  # an array: nothing below it
    "/api/v1/search/?select_metadata=[[",
    "/api/v1/search/?select_metadata=",  # (Tiled: cannot be empty)
    "/api/v1/metadata/n01?select_metadata=[[",  # (ignored on a node's own metadata)
    "/api/v1/search/?sort=scan&sort=-scan",  # (Tiled: Duplicate sorting key)
    "/api/v1/search/?filter[fulltext][condition][text]=powder%20OR%20foil",  # (FTS5 syntax: it answered nothing)
    "/api/v1/search/?filter[fulltext][condition][text]=pow*",
    "/api/v1/search-deep/?sort=scan",
    "/api/v1/search-deep/?max_depth=0",
])
def test_malformed_queries_are_400(both: tuple[Any, Any, Any], url: str) -> None:
    ours, _, _ = both
    import httpx

    base = str(ours.context.api_uri).rstrip("/").removesuffix("/api/v1")
    response = httpx.get(base + url)
    assert response.status_code == 400 and response.json()["detail"], response.text


@pytest.mark.parametrize("sorting", [(("id", -1),), (("metadata.sample.element", 1), ("id", -1)), (("sample.element", -1), ("id", 1)),
                                     (("operator", -1), ("id", -1))])
def test_sort_gives_the_sql_catalogs_order(both: tuple[Any, Any, Any], sorting: tuple[tuple[str, int], ...]) -> None:
    """``id`` is the node's key and ``metadata.`` a metadata key's prefix, as in Tiled (both
    were taken for metadata keys no node had: the order silently unchanged). (Keys of values of
    one type: Tiled's SQLite catalog orders JSON text, so 77 after 450 and text before numbers,
    where this orders numbers by value; missing values come after every value in both.)"""
    ours, sql, _ = both
    assert list(ours.sort(*sorting)) == list(sql.sort(*sorting))


@pytest.mark.parametrize("direction", [1, -1])
def test_a_sorted_listing_read_backwards_is_the_forward_one_reversed(both: tuple[Any, Any, Any], direction: int) -> None:
    """The tiled client reads a listing backwards (``keys()[-1]``, ``[-n::-1]``) by the opposite
    sort: missing values last either way (the container ``sub`` has no scan) made it another
    order than the forward one reversed."""
    ours, _, _ = both
    forward = list(ours.sort(("scan", direction)))
    assert list(ours.sort(("scan", direction)).keys()[-1::-1]) == forward[::-1] and ours.sort(("scan", direction)).keys()[-1] == forward[-1]


def test_sort_orders_values_with_missing_last(both: tuple[Any, Any, Any]) -> None:
    """``sort`` by metadata keys: numbers by value then text, missing after every value."""
    ours, _, _ = both

    def rank(key: str) -> Any:
        value = CORPUS[key].get("temperature")
        return (0, value) if isinstance(value, int) else (1, value)

    with_value = [k for k in CORPUS if "temperature" in CORPUS[k]]
    without = [k for k in CORPUS if "temperature" not in CORPUS[k]]
    ascending = sorted(with_value, key=lambda k: (rank(k), -CORPUS[k]["scan"]))
    # (those without a temperature by scan, descending: sub, which has none, first)
    assert list(ours.sort(("temperature", 1), ("scan", -1))) == ascending + ["sub"] + sorted(without, reverse=True)
    descending = list(ours.sort(("temperature", -1)))
    assert set(descending[: len(without) + 1]) == set(without) | {"sub"}  # (missing first: the ascending order reversed)
    assert [rank(k) for k in descending[len(without) + 1:]] == sorted(map(rank, with_value), reverse=True)


def test_a_containers_family_is_given_whatever_the_fields(both: tuple[Any, Any, Any]) -> None:
    """As Tiled: a listing of ``fields=metadata`` still tells containers from leaves (it was
    null for every node), and a node's own metadata takes ``select_metadata`` (ignored)."""
    ours, sql, _ = both

    def families(client: Any) -> dict[str, Any]:
        body = client.context.http_client.get(client.item["links"]["search"], params={"fields": "metadata", "page[limit]": 100}).json()
        return {item["id"]: item["attributes"]["structure_family"] for item in body["data"]}

    assert families(ours)["sub"] == "container" and families(ours) == families(sql)
    selected = ours.context.http_client.get(ours["n03"].item["links"]["self"], params={"select_metadata": "sample.element"}).json()
    assert selected["data"]["attributes"]["metadata"] == {"selected": CORPUS["n03"]["sample"]["element"]}


def test_fulltext_folds_words_as_fts5_does() -> None:
    """Lower case and diacritics only, as FTS5's unicode61 tokenizer (casefold and compatibility
    forms matched "straße" to "STRASSE", "ﬁlm" to "film", "m²" to "m2": Tiled's catalog does not)."""
    from publisher.queries.sqlite import tokens

    assert tokens("Café NAÏVE Ångström") == ["cafe", "naive", "angstrom"]
    assert tokens("Hauptstraße") != tokens("HAUPTSTRASSE") and tokens("ﬁlm") != ["film"] and tokens("m²") != ["m2"]
