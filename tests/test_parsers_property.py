"""Property tests of the request parsers (Hypothesis): ``slice``, ``block`` and ``expected_shape``,
table rows, ``sort`` and the ``filter[...]`` query language. What holds for any input:

- a valid text parses to exactly the selection it spells, and NumPy indexes with it as with the
  selection built from the same integers (``narrowed`` too: a window of a selection);
- any other text is a ``BadRequest`` (a 400 naming the parameter), never another exception;
- a parser accepts exactly what its OpenAPI pattern says (the document's ``pattern``s are these);
- every query, with any JSON value, parses or is a 400, and answers on any metadata without error;
  its answer is the one SQLite's ``json_extract`` gives over the same metadata (the engine Tiled's
  catalog runs), and the sort order is the one a direct comparison gives;
- over HTTP, on a published demo: no parameter text gets a 5xx, a 4xx is a JSON ``detail`` naming
  the parameter, and an array's answer for a slice is NumPy's selection of the whole array.

Bounded (``max_examples``) so the file runs in seconds.
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from handlers.arrays import narrowed, rows, selected_shape
from handlers.grammar import BLOCK_PATTERN, SHAPE_PATTERN, SLICE_PATTERN, expected_shape, ints, parse_slice
from publisher.errors import BadRequest
from publisher.formats import Entry
from publisher.index.rows import SORT_PATTERN, checked_sort, sort_entries, sort_keys
from publisher.queries.registry import filters_from, registry
from publisher.queries.sqlite import rank, sql

from .conftest import Published, run_build, served
from .test_build_demo import demo_config

#: Examples per property (``SKYSHELF_PROPERTY_EXAMPLES`` asks for more); those over HTTP take a quarter.
EXAMPLES = int(os.environ.get("SKYSHELF_PROPERTY_EXAMPLES", "150"))
FAST = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
FEW = settings(max_examples=max(EXAMPLES // 4, 10), deadline=None, suppress_health_check=list(HealthCheck), database=None)

#: Texts near the grammars: digits (other scripts' too), signs, colons, commas, spaces, NUL, huge numbers.
NEAR = st.lists(st.sampled_from(["0", "1", "7", "-", "+", ":", "::", ",", " ", "\x00", "\n", "١", "٣", "_", "e",
                                 "10" * 16, "9" * 40, ".", "..."]), max_size=12).map("".join)
ANY_TEXT = st.one_of(st.text(max_size=30), NEAR, st.just("9" * 5000), st.just("9" * 3999), st.just("0," * 100 + "0"),
                     st.just("0," * 63 + "0"), st.just("0::00"), st.just("1:2:-0"))


def _text(x: int | None) -> str:
    return "" if x is None else str(x)


@st.composite
def selections(draw: Any) -> tuple[tuple[int, ...], tuple[Any, ...], str]:
    """(shape, the selection, its ``slice=`` text): indices inside the shape, slices with any
    bounds (past the ends, negative, huge) and any non-zero step, each spelt one of the ways
    Tiled's client and people write them (``1:``, ``1::``, ``:5:``, ``::-1``)."""
    shape = tuple(draw(st.lists(st.integers(0, 5), min_size=1, max_size=4)))
    ndim = draw(st.integers(0, len(shape)))
    bound = st.one_of(st.none(), st.integers(-8, 8), st.sampled_from([10**30, -(10**30)]))
    out, texts = [], []
    for n in shape[:ndim]:
        if n and draw(st.booleans()):
            i = draw(st.integers(-n, n - 1))
            out.append(i)
            texts.append(str(i))
            continue
        start, stop = draw(bound), draw(bound)
        step = draw(st.one_of(st.none(), st.integers(-4, 4).filter(bool), st.just(10**30)))
        out.append(slice(start, stop, step))
        tail = f":{step}" if step is not None else draw(st.sampled_from(["", ":"]))
        texts.append(f"{_text(start)}:{_text(stop)}{tail}")
    return shape, tuple(out), ",".join(texts)


# -- slice= ------------------------------------------------------------------------------------
@FAST
@given(selections())
def test_a_valid_slice_is_numpys_selection(case: tuple[tuple[int, ...], tuple[Any, ...], str]) -> None:
    shape, expected, text = case
    parsed = parse_slice(text)
    assert parsed == expected
    assert re.fullmatch(SLICE_PATTERN, text)
    array = np.arange(math.prod(shape)).reshape(shape)
    assert np.array_equal(array[parsed], array[expected])
    assert selected_shape(parsed, shape) == array[expected].shape


@FAST
@given(selections(), st.lists(st.tuples(st.one_of(st.none(), st.integers(-6, 6)), st.one_of(st.none(), st.integers(-6, 6)),
                                        st.one_of(st.none(), st.integers(-3, 3).filter(bool))), max_size=4))
def test_a_window_of_a_selection_is_read_as_one_selection(case: Any, window: list[tuple[Any, Any, Any]]) -> None:
    """``narrowed``: what an HTML answer reads (only its window) is the window of the selection.
    Found: a descending slice past the start (``slice=-10::-1`` of 5) is empty, and the empty
    range's start, -1, was read as the last index: the whole dimension, reversed."""
    shape, sel, _ = case
    array = np.arange(math.prod(shape)).reshape(shape)
    picked = array[sel]
    win = tuple(slice(*w) for w in window[: picked.ndim])
    assert np.array_equal(array[narrowed(sel, shape, win)], picked[win])


@FAST
@given(ANY_TEXT)
def test_any_other_slice_text_is_a_400_naming_slice(text: str) -> None:
    """Only BadRequest (never IndexError, ValueError, OverflowError...), and exactly the document's
    pattern is accepted (and 4000 characters at most: the document's ``maxLength``)."""
    try:
        parsed = parse_slice(text)
    except BadRequest as exc:
        assert "slice" in str(exc) and len(str(exc)) < 400, str(exc)[:500]
        assert not re.fullmatch(SLICE_PATTERN, text) or len(text) > 4000, text
        return
    assert re.fullmatch(SLICE_PATTERN, text), text
    assert all(isinstance(s, (int, slice)) for s in parsed)


@pytest.mark.parametrize("text", ["١", "1_0", " 1", "1 ", "+1", "0:5:0", "1:2:3:4", ",", "0,,1", "\x00", "1\n", "9" * 5000,
                                  "0," * 64 + "0", "1.5", "0:1:-0", "-"])
def test_near_valid_slices_are_400(text: str) -> None:
    """Found: ``int()`` took other scripts' digits, ``_`` separators, signs and spaces (``slice=١``
    was index 1, which the document's pattern and Tiled refuse); a 5000-digit slice was echoed whole."""
    with pytest.raises(BadRequest, match="slice") as info:
        parse_slice(text)
    assert len(str(info.value)) < 400


@FAST
@given(st.one_of(ANY_TEXT, selections().map(lambda c: c[2])))
def test_rows_are_one_slice_or_a_400(text: str) -> None:
    try:
        got = rows({"slice": [text]}, "a table")
    except BadRequest as exc:
        assert "slice" in str(exc)
        return
    assert got is None or isinstance(got, slice)
    if got is not None:
        values = list(range(7))
        assert values[got] == list(np.arange(7)[got])


# -- block= and expected_shape= ----------------------------------------------------------------
@FAST
@given(st.lists(st.integers(0, 10**30), max_size=6))
def test_a_valid_block_parses_to_its_integers(index: list[int]) -> None:
    text = ",".join(map(str, index))
    assert ints(text, "block") == tuple(index)
    assert re.fullmatch(BLOCK_PATTERN, text)
    assert text == "" or re.fullmatch(SHAPE_PATTERN, text)


@FAST
@given(ANY_TEXT, st.sampled_from(["block", "expected_shape"]))
def test_any_other_block_text_is_a_400_naming_it(text: str, name: str) -> None:
    """Found: ``block=-1``, ``block=+1``, ``block= 1``, ``block=١`` were taken as integers."""
    try:
        ints(text, name)
    except BadRequest as exc:
        assert name in str(exc) and len(str(exc)) < 400
        assert not re.fullmatch(BLOCK_PATTERN, text) or len(text) > 4000
        return
    assert re.fullmatch(BLOCK_PATTERN, text), text


# -- sort= -------------------------------------------------------------------------------------
KEY = st.text(alphabet="abc_.09", min_size=1, max_size=5)


@FAST
@given(st.lists(st.tuples(st.sampled_from(["", "+", "-"]), KEY), min_size=1, max_size=4, unique_by=lambda k: k[1]))
def test_valid_sort_keys_parse(keys: list[tuple[str, str]]) -> None:
    text = ",".join(sign + key for sign, key in keys)
    assert sort_keys(checked_sort(text)) == [(key, sign == "-") for sign, key in keys]
    assert re.fullmatch(SORT_PATTERN, text)


@FAST
@given(st.one_of(ANY_TEXT, st.lists(st.sampled_from(["a", "-", "+", ",", ".", "é", "b c", "--a", "a!", ""]), max_size=5).map("".join)))
def test_any_other_sort_is_a_400_naming_sort(text: str) -> None:
    """Found: ``sort=a,,b`` and ``sort= a`` were taken (empty keys skipped, spaces stripped) and
    ``sort=--a`` sorted by ``a`` descending, all outside Tiled's ``SortField``; ``sort=--`` was
    silently ignored by the handler (tested over HTTP below). The library's own ``sort_keys``
    stays lenient about empty keys and spaces (the server-free client passes its text on)."""
    try:
        checked_sort(text)
    except BadRequest as exc:
        assert "sort" in str(exc) and len(str(exc)) < 400
        names = [k.lstrip("+-") for k in text.split(",")]
        assert not re.fullmatch(SORT_PATTERN, text) or len(set(names)) < len(names), text  # (or a key twice: Tiled's 400 too)
        return
    assert re.fullmatch(SORT_PATTERN, text), text
    assert all(re.fullmatch(r"[A-Za-z0-9_.]+", k) for k, _ in (sort_keys(text) if text != "-" else []))  # "-": reversed


SCALAR = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.sampled_from([-2.5, 0.0, 1.0, 1.5, 2**53, 2**53 + 1, 2.0**53]),
                   st.text(alphabet="aAbé1 %_'\"\n", max_size=4))
NESTED = st.recursive(SCALAR.filter(lambda v: not isinstance(v, float)),
                      lambda inner: st.one_of(st.lists(inner, max_size=2), st.dictionaries(st.sampled_from("ab"), inner, max_size=2)),
                      max_leaves=4)
METADATA = st.dictionaries(st.sampled_from(["a", "b", "c"]), st.one_of(SCALAR, NESTED), max_size=3).map(
    lambda d: {**d, "n": {"a": d.get("a")}} if "a" in d else d)


def _entry(i: int, metadata: dict[str, Any], family: str = "array", specs: list[str] | None = None,
           tags: list[str] | None = None) -> Entry:
    return Entry.from_json({"path": f"c/k{i}", "key": f"k{i}", "parent": "c", "family": family, "specs": specs or [],
                            "metadata": metadata, "structure": {}, "data_url": None, "source_file": None, "source_path": None,
                            "access_tags": tags, "notes": {}})


@FAST
@given(st.lists(METADATA, max_size=8), st.lists(st.tuples(st.sampled_from(["a", "b", "n.a", "zz"]), st.booleans()), min_size=1, max_size=3,
                                                 unique_by=lambda k: k[0]))
def test_sort_orders_as_a_direct_comparison(metadatas: list[dict[str, Any]], keys: list[tuple[str, bool]]) -> None:
    """Key by key: values as SQLite orders them (numbers, then text), descending when asked,
    entries without the value after every value (last ascending, first descending, as Tiled's
    catalog); ties in index order."""
    entries = [_entry(i, m) for i, m in enumerate(metadatas)]
    text = ",".join(("-" if down else "") + key for key, down in keys)

    def value(e: Entry, key: str) -> Any:
        v: Any = e.metadata
        for part in key.split("."):
            v = v.get(part) if isinstance(v, dict) else None
        return sql(v)

    def cmp(x: tuple[int, Entry], y: tuple[int, Entry]) -> int:
        for key, down in keys:
            a, b = value(x[1], key), value(y[1], key)
            if (a is None) != (b is None):
                return (1 if a is None else -1) * (-1 if down else 1)
            if a is not None and rank(a) != rank(b):
                return (1 if rank(a) > rank(b) else -1) * (-1 if down else 1)
        return x[0] - y[0]

    expected = [e.key for _, e in sorted(enumerate(entries), key=functools.cmp_to_key(cmp))]
    assert [e.key for e in sort_entries(entries, text)] == expected


# -- filter[...] -------------------------------------------------------------------------------
JSON_VALUE = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.integers(-(10**40), 10**40), st.floats(allow_nan=False, allow_infinity=False),
              st.text(max_size=8), st.sampled_from(['"', "'", "\\", "%", "_", "\x00", "a\"b"])),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=3), inner, max_size=3)),
    max_leaves=6)
RAW = st.one_of(JSON_VALUE.map(json.dumps), st.text(max_size=12), NEAR,
                st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "-1e999", "[" * 5000 + "]" * 5000, "{", "", "true",
                                 "1" * 5000, '"\\ud800"', "[NaN]", "(", "(?P<a>x)(?P=a)", "a{1001}", "(a*)*b", "\\B", "$a"]))


PATTERN = st.one_of(st.sampled_from(["a", "^a", "a$", "[ab]", "(?i)A", "\\d+", ".", "é", "a|b", "(a)\\1", "(?=a)", "\\B", "a{1001}",
                                      "(", "*", "[z-a]", "(?P<n>a)", "\\", "$a"]), st.text(max_size=5))


@st.composite
def filter_params(draw: Any) -> dict[str, list[str]]:
    """Every registered query with its fields, mostly well formed (all required fields, JSON where
    JSON is due) with any values, sometimes not (a field left out, an unknown name or field,
    text that is not JSON, a malformed parameter name)."""
    import dataclasses

    from publisher.queries.base import _FLAGS

    queries = registry()
    params: dict[str, list[str]] = {}
    for _ in range(draw(st.integers(1, 2))):
        name = draw(st.one_of(st.sampled_from(sorted(queries)), st.sampled_from(["nope", "eq ", "EQ", "é", ""]))
                    if draw(st.integers(0, 9)) == 0 else st.sampled_from(sorted(queries)))
        fields = list(dataclasses.fields(queries[name])) if name in queries else []
        chosen = [f for f in fields if draw(st.integers(0, 19))]  # a field left out, one time in 20
        chosen = [f for f in chosen if f.default is dataclasses.MISSING or draw(st.booleans())]
        names = [f.name for f in chosen] + (["bogus"] if draw(st.integers(0, 19)) == 0 or not fields else [])
        for field in names:
            kind = next((f.metadata.get("kind") for f in fields if f.name == field), None)
            if field == "key":
                value = draw(st.one_of(st.sampled_from(["a", "b", "n.a", "a.b", "", ".", "a..b", "k0"]), st.text(max_size=4)))
            elif field == "operator":
                value = draw(st.one_of(st.sampled_from(["lt", "le", "gt", "ge"]), st.text(max_size=3)))
            elif kind == "flag":
                value = draw(st.one_of(st.sampled_from(sorted(_FLAGS)), st.text(max_size=3)))
            elif kind == "json":
                value = draw([JSON_VALUE.map(json.dumps), st.lists(st.one_of(st.text(max_size=3), JSON_VALUE), max_size=3).map(json.dumps),
                              RAW][draw(st.sampled_from([0, 0, 0, 1, 1, 1, 1, 2]))])
            elif field == "pattern":
                value = draw(PATTERN)
            else:
                value = draw(st.one_of(st.sampled_from(["array", "table", "container", "a", "A b", "k1"]), st.text(max_size=6)))
            params.setdefault(f"filter[{name}][condition][{field}]", []).append(value)
    if draw(st.integers(0, 9)) == 0:
        params[draw(st.sampled_from(["filter[eq]", "filter[eq][condition][key]\n", "filter[][condition][key]", "filter[eq][x][key]"]))] = ["1"]
    return params


@FAST
@given(filter_params(), st.lists(METADATA, max_size=5))
def test_any_filter_is_queries_or_a_400_and_answers_on_any_metadata(params: dict[str, list[str]], metadatas: list[dict[str, Any]]) -> None:
    try:
        queries = filters_from(params)
    except BadRequest as exc:
        assert "filter" in str(exc), str(exc)  # the parameter, by name
        assert len(str(exc)) < 1000, str(exc)[:300]
        return
    entries = [_entry(i, m, family=["array", "table", "container"][i % 3], specs=["s1"] if i % 2 else [], tags=["t1"] if i % 2 else None)
               for i, m in enumerate(metadatas)]
    for q in queries:
        for e in entries:
            assert q.on_row(e) in (True, False)


#: SQLite's own comparison of ``json_extract(metadata, '$.key')`` with a bound value: the engine
#: Tiled's catalog runs, asked directly (an oracle independent of publisher.queries.sqlite).
SQL_OPS = {"eq": "=", "noteq": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}
ORACLE_SCALAR = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.sampled_from([-2.5, 0.0, 1.0, 1.5, 2**53 + 1, 2.0**53]),
                          st.text(alphabet="aAbé1 %_'\"", max_size=3))


@st.composite
def oracle_queries(draw: Any) -> tuple[dict[str, list[str]], str, list[Any]]:
    """(filter parameters, the SQL condition, its bound values) of one query."""
    key = draw(st.sampled_from(["a", "b", "n.a"]))
    path = "$." + key
    name = draw(st.sampled_from(["eq", "noteq", "comparison", "in", "notin", "keypresent", "like", "contains"]))
    p = f"filter[{name}][condition]"
    if name in ("eq", "noteq", "comparison"):
        value = draw(st.one_of(ORACLE_SCALAR, NESTED.filter(lambda v: isinstance(v, (list, dict)))))
        op = draw(st.sampled_from(["lt", "le", "gt", "ge"])) if name == "comparison" else name
        params = {f"{p}[key]": [key], f"{p}[value]": [json.dumps(value)], **({f"{p}[operator]": [op]} if name == "comparison" else {})}
        return params, f"json_extract(m, ?) {SQL_OPS[op]} ?", [path, sql(value)]
    if name in ("in", "notin"):
        values = draw(st.lists(ORACLE_SCALAR.filter(lambda v: v is not None), max_size=3))
        marks = ",".join("?" * len(values))
        where = ("0" if name == "in" else "1") if not values else f"json_extract(m, ?) {'NOT ' if name == 'notin' else ''}IN ({marks})"
        return {f"{p}[key]": [key], f"{p}[value]": [json.dumps(values)]}, where, ([path] + [sql(v) for v in values]) if values else []
    if name == "keypresent":
        exists = draw(st.booleans())
        return ({f"{p}[key]": [key], f"{p}[exists]": [str(exists).lower()]},
                f"json_type(m, ?) IS {'NOT ' if exists else ''}NULL", [path])
    if name == "like":
        pattern = draw(st.text(alphabet="aAé1_% ", max_size=4))
        return {f"{p}[key]": [key], f"{p}[pattern]": [json.dumps(pattern)]}, "json_extract(m, ?) LIKE ?", [path, pattern]
    value = draw(st.one_of(st.text(alphabet="aAé1 ", max_size=3), st.integers(-2, 2)))
    return {f"{p}[key]": [key], f"{p}[value]": [json.dumps(value)]}, "json_extract(m, ?) LIKE ?", [path, f"%{value}%"]


@FAST
@given(st.lists(METADATA, min_size=1, max_size=8), oracle_queries())
def test_queries_answer_as_sqlite_json_extract(metadatas: list[dict[str, Any]], query: tuple[dict[str, list[str]], str, list[Any]]) -> None:
    params, where, args = query
    assume(all(not isinstance(v, float) or v.is_integer() is False or abs(v) < 2**53 for v in args[1:]))
    (q,) = filters_from(params)
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE t (i INTEGER, m TEXT)")
    db.executemany("INSERT INTO t VALUES (?, ?)", [(i, json.dumps(m)) for i, m in enumerate(metadatas)])
    expected = [i for (i,) in db.execute(f"SELECT i FROM t WHERE {where} ORDER BY i", args)]
    assert [i for i, m in enumerate(metadatas) if q.on_row(_entry(i, m))] == expected, (params, metadatas)


# -- over HTTP, on the published demo ---------------------------------------------------------
FRAME = "scans/scan_0001/entry/data/data"  # 12 x 256 x 256 uint16, one chunk a frame
TABLE = "tables/temperature_log"


@pytest.fixture(scope="module")
def demo(demo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Published:
    return run_build(tmp_path_factory.mktemp("parsers"), demo_config(demo_dir))


@pytest.fixture(scope="module")
def api(demo: Published) -> Iterator[str]:
    with served(demo.store.url) as url:
        yield f"{url}/api/v1"


@pytest.fixture(scope="module")
def frame(api: str) -> np.ndarray:
    import io

    return np.load(io.BytesIO(httpx.get(f"{api}/array/full/{FRAME}?format=npy", timeout=60).content))


def _no_5xx(response: httpx.Response, name: str, without: int = 200) -> None:
    """No 5xx; a 4xx is a JSON ``detail``, which names ``name`` when the request without that
    parameter answered ``without`` (a 2xx: the parameter is what was refused)."""
    assert response.status_code < 500, (str(response.request.url)[:300], response.status_code, response.text[:300])
    if response.status_code >= 400:
        assert response.headers["content-type"] == "application/json" and response.json()["detail"], response.text[:200]
        if without < 300 and response.status_code not in (404, 406, 414):
            assert name in response.json()["detail"], (str(response.request.url)[:200], response.json())


@FEW
@given(st.integers(0, 11), selections())
def test_an_array_answer_is_numpys_selection_of_the_array(frame: np.ndarray, api: str, first: int, case: Any) -> None:
    """The chunk reader (one frame a chunk) gives for any slice what NumPy gives for the whole array."""
    import io

    _, sel, text = case
    sel = (sel[:2] + (slice(None),) * 2)[:2]
    text = ",".join([str(first), *text.split(",")[:2]]) if text else str(first)
    response = httpx.get(f"{api}/array/full/{FRAME}", params={"slice": text, "format": "npy"}, timeout=60)
    expected_sel = parse_slice(text)
    try:
        expected = frame[expected_sel]
    except IndexError:
        assert response.status_code == 400 and "out of range" in response.json()["detail"]
        return
    assert response.status_code == 200, response.text[:300]
    assert np.array_equal(np.load(io.BytesIO(response.content)), expected)


ROUTES = [("array/full/" + FRAME, "slice"), ("array/block/" + FRAME, "block"), ("array/block/" + FRAME, "expected_shape"),
          ("array/full/" + FRAME, "expected_shape"), ("table/full/" + TABLE, "slice"), ("table/partition/" + TABLE, "partition"),
          ("table/partition/" + TABLE, "slice"), ("column/full/" + TABLE + "/time", "slice"), ("column/full/" + TABLE + "/time", "block"),
          ("search/", "sort"), ("search/scans", "sort"), ("table/full/" + TABLE, "column"), ("container/full/scans", "field"),
          ("search/scans", "select_metadata"), ("search/", "fields"), ("search/", "page[offset]"), ("search-deep/", "max_depth"),
          ("distinct/scans", "metadata"), ("search/", "page[limit]")]


@FEW
@given(st.sampled_from(ROUTES), st.one_of(ANY_TEXT.filter(lambda t: len(t) < 2000), selections().map(lambda c: c[2])),
       st.sampled_from(["json", "html", "png", "csv"]))
def test_no_parameter_text_gets_a_5xx(api: str, route: tuple[str, str], text: str, format: str) -> None:
    """(HTML answers read only their window: ``narrowed``; PNGs of a selection with a pyramid level...)"""
    path, name = route
    query = {name: text, **({"format": format} if "full" in path or "block" in path or "partition" in path else {})}
    if name != "block" and path.startswith("array/block"):
        query["block"] = "0,0,0"
    if path.startswith("table/partition") and name != "partition":
        query["partition"] = "0"
    without = _status(f"{api}/{path}", tuple((k, v) for k, v in query.items() if k != name))
    _no_5xx(httpx.get(f"{api}/{path}", params=query, timeout=60), name, without)


@functools.lru_cache(maxsize=256)
def _status(url: str, query: tuple[tuple[str, str], ...]) -> int:
    return httpx.get(url, params=list(query), timeout=60).status_code


@FEW
@given(filter_params(), st.sampled_from(["", "-", "a", "-scan", "--", "+a", "a,,b"]))
def test_no_filter_gets_a_5xx(api: str, params: dict[str, list[str]], sort: str) -> None:
    response = httpx.get(f"{api}/search/scans", params=[*((k, v) for k, vs in params.items() for v in vs), ("sort", sort)], timeout=60)
    _no_5xx(response, "")
    if response.status_code == 200:
        assert set(response.json()) >= {"data", "links", "meta"}


@pytest.mark.parametrize("sort", ["--", "a,,b", " a", "+", "é"])
def test_malformed_sorts_are_400_even_when_nothing_is_sorted(api: str, sort: str) -> None:
    """Found: ``sort=--`` (no key) answered a plain page; the document's pattern refuses it."""
    response = httpx.get(f"{api}/search/", params={"sort": sort})
    assert response.status_code == 400 and "sort" in response.json()["detail"], response.text


@FAST
@given(st.one_of(ANY_TEXT, st.integers().map(str)))
def test_an_integer_parameter_is_ascii_digits_or_a_400(text: str) -> None:
    """``page[offset]``, ``partition``, ``max_depth``... Found: ``partition=١`` was partition 1, and
    ``page[limit]= 5``, ``+5`` and ``5_0`` were taken (the document says integer)."""
    from handlers.common import integer

    try:
        value = integer({"partition": [text]}, "partition", -1, -(10**200))
    except BadRequest as exc:
        assert "partition" in str(exc) and len(str(exc)) < 300
        assert not re.fullmatch(r"-?[0-9]{1,100}", text) or len(text) > 100
        return
    assert text == "" or (re.fullmatch(r"-?[0-9]{1,100}", text) and value == int(text))


@FAST
@given(st.one_of(ANY_TEXT, st.just("scalar"), st.just("")))
def test_expected_shape_is_a_shape_scalar_or_a_400(text: str) -> None:
    """Found: ``expected_shape=`` (empty) was the shape ``()`` on array/full and ignored on column/full."""
    try:
        got = expected_shape(text)
    except BadRequest as exc:
        assert "expected_shape" in str(exc)
        assert not re.fullmatch(SHAPE_PATTERN, text) or len(text) > 4000
        return
    assert re.fullmatch(SHAPE_PATTERN, text) and got == (() if text == "scalar" else tuple(map(int, text.split(","))))


def test_the_openapi_document_carries_the_parsers_patterns() -> None:
    """The patterns the fuzzer generates from are the ones the parsers are held to above."""
    from openapi_spec_validator import validate

    from handlers.openapi import document

    doc = document("http://x/api/v1")
    validate(doc)  # an OpenAPI 3.0 document (Swagger UI and schemathesis read it)
    params = {p["name"]: p for p in doc["paths"]["/api/v1/array/full/{path}"]["get"]["parameters"]}
    assert params["slice"]["schema"]["pattern"] == SLICE_PATTERN
    assert params["expected_shape"]["schema"]["pattern"] == SHAPE_PATTERN
    assert "npy" in params["format"]["schema"]["enum"] and "parquet" not in params["format"]["schema"]["enum"]
    block = {p["name"]: p for p in doc["paths"]["/api/v1/array/block/{path}"]["get"]["parameters"]}["block"]
    assert block["schema"]["pattern"] == BLOCK_PATTERN
    shared = doc["components"]["parameters"]
    search = {p["name"]: p for p in (shared[p["$ref"].rpartition("/")[2]] if "$ref" in p else p
                                     for p in doc["paths"]["/api/v1/search/{path}"]["get"]["parameters"])}
    assert search["sort"]["schema"]["pattern"] == SORT_PATTERN
    assert "content" in search["filter[eq][condition][value]"] and search["filter[comparison][condition][operator]"]["schema"]["enum"]
    for operation in (op for item in doc["paths"].values() for op in item.values()):
        assert operation["responses"]["404"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
    assert doc["components"]["schemas"]["Error"]["required"] == ["detail"]


@FAST
@given(st.lists(st.integers(0, 4), min_size=1, max_size=4), st.one_of(st.none(), st.integers(-12, 12)),
       st.one_of(st.none(), st.integers(-12, 12)), st.one_of(st.none(), st.integers(-4, 4).filter(bool)), st.booleans())
def test_table_rows_are_pythons_slice_of_the_rows(sizes: list[int], start: Any, stop: Any, step: Any, one: bool) -> None:
    """``table/full?slice=`` and ``table/partition?slice=`` read only the partitions the rows fall in
    (``PublishedTable.read_rows``): the rows are Python's slice of all rows (or of one partition's)."""
    import pyarrow as pa

    from publisher.access.tables import PublishedTable

    offsets = np.cumsum([0, *sizes])
    table = object.__new__(PublishedTable)
    table.partition_sizes = lambda: sizes  # type: ignore[method-assign]
    table.partition = lambda i, columns=None: pa.table({"x": np.arange(offsets[i], offsets[i + 1])})  # type: ignore[method-assign]
    table.schema = lambda: pa.schema([("x", pa.int64())])  # type: ignore[method-assign]
    table._check_columns = lambda columns: None  # type: ignore[method-assign]
    table.npartitions = len(sizes)  # type: ignore[misc]
    rows_ = slice(start, stop, step)
    if one:
        i = len(sizes) // 2
        expected = list(range(offsets[i], offsets[i + 1]))[rows_]
        got = table.read_rows(rows_, None, i)
    else:
        expected, got = list(range(offsets[-1]))[rows_], table.read_rows(rows_)
    assert got.column("x").to_pylist() == expected


#: Metadata as sources give it: huge integers (past int64 and float64's 2**53), floats, quotes,
#: nesting; the search columns must hold them as the row-by-row reference does.
WIDE_METADATA = st.dictionaries(st.sampled_from(["a", "b", "c"]), JSON_VALUE.filter(lambda v: not isinstance(v, float) or math.isfinite(v)),
                                max_size=3)


@FAST
@given(filter_params(), st.lists(WIDE_METADATA, min_size=1, max_size=6), st.sampled_from(["", "a", "-a,b", "-"]))
def test_search_columns_answer_any_filter_as_rows_do(params: dict[str, list[str]], metadatas: list[dict[str, Any]], sort: str) -> None:
    """A large container's search columns (numpy) and the row-by-row reference agree for any
    query and any metadata, or the query is a 400 before either runs."""
    import tempfile

    from publisher.index.columns_read import SearchColumns
    from publisher.index.columns_write import write_search
    from publisher.index.engine import search
    from publisher.index.rows import select
    from publisher.stores import Store

    try:
        queries = filters_from(params)
    except BadRequest:
        return
    rows = [{**_entry(i, m).to_json(), "metadata": m} for i, m in enumerate(metadatas)]
    entries = [Entry.from_json(row) for row in rows]
    expected = [e.key for e in select(entries, queries, sort)]
    with tempfile.TemporaryDirectory() as folder:
        store = Store(folder)
        write_search(store, "s", [(row, None) for row in rows])
        count, page = search(SearchColumns.open(store, "s"), queries, sort, 0, 100)
    assert (count, [e.key for e in page]) == (len(expected), expected), (params, metadatas)
