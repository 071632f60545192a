"""Search columns give exactly the answers of the row-by-row reference (`publisher.index.rows.select`),
which tests/test_search_vs_tiled.py holds to Tiled's: random catalogs (mixed types, nulls,
missing keys, objects and arrays, newlines, non-ASCII), random queries, sorts and pages."""

from __future__ import annotations

import json
import re
import tempfile
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from publisher.errors import BadRequest
from publisher.formats import Entry
from publisher.index.columns_read import SearchColumns
from publisher.index.columns_write import write_search
from publisher.index.engine import distinct as distinct_columns
from publisher.index.engine import search
from publisher.index.rows import distinct, select
from publisher.index.table import dumps
from publisher.queries.regex import regex
from publisher.queries.registry import filters_from, names
from publisher.stores import Store

TEXT = st.text(alphabet="aAbB é\n_%1.[]x", max_size=6)
#: numbers include -0.0 (equal to 0.0, but printed apart) and integers past float64's 2**53
SCALAR = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.sampled_from([-2.5, -0.0, 0.0, 1.0, 1.5, 3.0, 2**60, 2**60 + 1]), TEXT)
VALUE = st.recursive(SCALAR, lambda inner: st.one_of(st.lists(inner, max_size=2), st.dictionaries(st.sampled_from("ab"), inner, max_size=2)), max_leaves=4)
KEYS = ["a", "b", "a.b", "a.a", "c", "n", "a.x", "x.y"]
METADATA = st.dictionaries(st.sampled_from(["a", "b", "c", "n", "a.b"]), VALUE, max_size=4)
PATTERNS = ["a", "^a", "a$", "\\ba", ".", "a.*b", "[ab]", "[^a]", "\\s", "\\W", "(?s:.)", "\\Aa", "a\\Z", "(?=a)b",
            "(?<!a)b", "é", "a|^b", "x*", "\\d+", "\\n", "(a)\\1", "(?i:B)", "b\\B", "[\\s\\S]", "(?m:^b)",
            "(?-m:^b)", "\\B", "a$\\n?", "(?a:\\w)", "[^\\Wa]", "[\\d_]", "\\S"]
#: What RE2 cannot run (a 400 naming it): backreferences, lookaround, ``\\B``, ``$`` (not multiline) with more after it.
REFUSED = re.compile(r"\\1|\(\?<?[=!]|\$(?!$)|\\B")


def python_search(pattern: str, text: str, flags: int) -> bool:
    """Python's ``re.search`` with the one documented difference: ``\\b`` sees ASCII word characters."""
    return re.search(pattern.replace("\\b", "(?a:\\b)"), text, flags) is not None


@st.composite
def catalogs(draw: Any) -> list[dict[str, Any]]:
    n = draw(st.integers(1, 40))
    return [{
        "path": f"c/k{i}", "key": f"k{i}", "parent": "c", "family": draw(st.sampled_from(["array", "container", "table"])),
        "specs": draw(st.lists(st.sampled_from(["s1", "s2"]), unique=True)), "metadata": draw(METADATA), "structure": {},
        "data_url": None, "source_file": None, "source_path": None,
        "access_tags": draw(st.one_of(st.none(), st.lists(st.sampled_from(["t1", "t2"]), unique=True))), "notes": {},
    } for i in range(n)]



def _keyed(**fields: Any) -> Any:
    """Fields of a query on one metadata key: a key, and ``fields`` drawn."""
    return st.fixed_dictionaries({"key": st.sampled_from(KEYS), **fields})


#: For every registered query, random fields as a client would send them (JSON text where Tiled
#: encodes JSON): the registry's conformance cases. A newly registered query needs its entry here.
CASES: dict[str, Any] = {
    "eq": _keyed(value=VALUE.map(json.dumps)),
    "noteq": _keyed(value=VALUE.map(json.dumps)),
    "contains": _keyed(value=VALUE.map(json.dumps)),
    "comparison": _keyed(value=SCALAR.map(json.dumps), operator=st.sampled_from(["lt", "le", "gt", "ge"])),
    "in": _keyed(value=st.lists(SCALAR, max_size=3).map(json.dumps)),
    "notin": _keyed(value=st.lists(SCALAR, max_size=3).map(json.dumps)),
    "like": _keyed(pattern=st.text(alphabet="aAé_%1 \n", max_size=4).map(json.dumps)),
    "regex": _keyed(pattern=st.lists(st.sampled_from(PATTERNS), min_size=1, max_size=2).map("".join),
                    case_sensitive=st.sampled_from(["true", "false"])),
    "keypresent": _keyed(exists=st.sampled_from(["true", "false"])),
    "fulltext": st.fixed_dictionaries({"text": st.sampled_from(["a", "A b", "é", "1", "1.5", "null", "true", "", "zz"])}),
    "specs": st.fixed_dictionaries({"include": st.lists(st.sampled_from(["s1", "s2"])).map(json.dumps),
                                    "exclude": st.lists(st.sampled_from(["s1", "s2"])).map(json.dumps)}),
    "structure_family": st.fixed_dictionaries({"value": st.sampled_from(["array", "container", "table"])}),
    "keys_filter": st.fixed_dictionaries({"keys": st.lists(st.sampled_from(["k0", "k1", "k5", "zz"])).map(json.dumps)}),
    "lookup": st.fixed_dictionaries({"key": st.sampled_from(["k0", "k3", "zz"])}),
    "access_tags_filter": st.fixed_dictionaries({"tags": st.lists(st.sampled_from(["t1", "t2", "t3"])).map(json.dumps)}),
}


@pytest.mark.parametrize("name", names())
def test_every_registered_query_has_cases(name: str) -> None:
    """The registry's conformance suite covers every query class registered (the random cases
    here; the Tiled comparison in test_search_vs_tiled.py): adding one means adding its cases."""
    assert name in CASES, f"query {name!r} is registered but has no cases in CASES"


@st.composite
def queries(draw: Any) -> dict[str, list[str]]:
    name = draw(st.sampled_from(names()))
    fields = draw(CASES[name])
    return {f"filter[{name}][condition][{f}]": [v] for f, v in fields.items()}


def _columns(rows: list[dict[str, Any]], folder: str) -> SearchColumns:
    """Written as a build writes them: each row's text as the node table stores it (ASCII-escaped)."""
    store = Store(folder)
    write_search(store, "s", [(row, dumps(row)) for row in rows])
    return SearchColumns.open(store, "s")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(catalogs(), st.lists(queries(), max_size=2), st.sampled_from(["", "a", "-a", "b,-a", "-", "-,", ",", "a.b", "-c,n", "zz"]),
       st.integers(0, 5), st.integers(0, 50))
def test_columns_answer_as_rows_do(rows: list[dict[str, Any]], params: list[dict[str, list[str]]], sort: str, offset: int, limit: int) -> None:
    merged: dict[str, list[str]] = {}
    for p in params:
        for k, v in p.items():
            merged.setdefault(k, []).extend(v)
    try:
        queries = filters_from(merged)
    except BadRequest:
        assert any(REFUSED.search(p) for p in merged.get("filter[regex][condition][pattern]", [])), merged
        return
    entries = [Entry.from_json(row) for row in rows]
    expected = [e.key for e in select(entries, queries, sort)]
    with tempfile.TemporaryDirectory() as folder:
        cols = _columns(rows, folder)
        count, page = search(cols, queries, sort, offset, limit)
        grouped = distinct_columns(cols, queries, ["a", "a.b", "zz"], True, True, offset % 2 == 0)
    assert count == len(expected)
    assert [e.key for e in page] == expected[offset : offset + limit]
    assert grouped == distinct(select(entries, queries), ["a", "a.b", "zz"], True, True, offset % 2 == 0)


@given(st.lists(TEXT, max_size=30), st.lists(st.sampled_from(PATTERNS), min_size=1, max_size=3), st.booleans())
@settings(max_examples=300, deadline=None)
def test_regex_in_one_pass_finds_what_each_text_finds(texts: list[str], pieces: list[str], ignore_case: bool) -> None:
    """Where the one-pass scan is chosen, it finds exactly the texts ``re.search`` finds one by one."""
    pattern, flags = "".join(pieces), re.IGNORECASE if ignore_case else 0
    if REFUSED.search(pattern):
        with pytest.raises(BadRequest, match="cannot be used"):
            regex(pattern, not ignore_case)
        return
    rows = [{"path": f"c/{i}", "key": str(i), "family": "array", "specs": [], "metadata": {"t": t}, "access_tags": None}
            for i, t in enumerate(texts)]
    params = {"filter[regex][condition][key]": ["t"], "filter[regex][condition][pattern]": [pattern],
              "filter[regex][condition][case_sensitive]": ["false" if ignore_case else "true"]}
    expected = [str(i) for i, t in enumerate(texts) if python_search(pattern, t, flags)]
    if not texts:
        return
    with tempfile.TemporaryDirectory() as folder:
        _, page = search(_columns(rows, folder), filters_from(params), "", 0, 1000)
    assert [e.key for e in page] == expected


def test_which_patterns_scan_in_one_pass() -> None:
    assert regex(r"Ni\d+").blob and regex(r"^Ni.*O$").blob and regex(r"\bfoil\b", False).blob and regex(r"[^\W]").blob
    for unsafe in (r"a\sb", r"[^x]", r"(?s:.)", r"\Aa", r"a\Z", r"\W"):
        assert regex(unsafe).blob is None, unsafe


def test_most_texts_matching_switch_to_one_by_one(tmp_path: Any) -> None:
    """A pattern that matches nearly every text (one search call per hit would be slow) still
    gives every match once the scan hands over to the per-text pass."""
    rows = [{"path": f"c/{i}", "key": str(i), "family": "array", "specs": [], "metadata": {"t": f"v{i}" if i % 50 else "none"},
             "access_tags": None} for i in range(2000)]
    params = {"filter[regex][condition][key]": ["t"], "filter[regex][condition][pattern]": [r"v\d"]}
    count, page = search(_columns(rows, str(tmp_path)), filters_from(params), "-t", 0, 3)
    assert count == 1960
    assert [e.key for e in page] == ["999", "998", "997"]  # text order: "v999" > "v998" > ... > "v1998"


def test_like_with_a_newline_does_not_join_two_texts(tmp_path: Any) -> None:
    rows = [{"path": f"c/{i}", "key": str(i), "family": "array", "specs": [], "metadata": {"t": t}, "access_tags": None}
            for i, t in enumerate(["xa", "by", "a\nb"])]
    params = {"filter[like][condition][key]": ["t"], "filter[like][condition][pattern]": [json.dumps("%a\nb%")]}
    assert [e.key for e in search(_columns(rows, str(tmp_path)), filters_from(params), "", 0, 10)[1]] == ["2"]


def test_nan_and_infinity_are_not_json_values() -> None:
    for raw in ("NaN", "Infinity", "-Infinity"):
        with pytest.raises(BadRequest, match="must be JSON"):
            filters_from({"filter[comparison][condition][key]": ["x"], "filter[comparison][condition][operator]": ["lt"],
                          "filter[comparison][condition][value]": [raw]})


def test_bad_queries_are_400s_on_columns_too(tmp_path: Any) -> None:
    rows = [{"path": "c/a", "key": "a", "family": "array", "specs": [], "metadata": {"x": 1}, "access_tags": None}]
    cols = _columns(rows, str(tmp_path))
    for params in ({"filter[in][condition][key]": ["x"], "filter[in][condition][value]": ["1"]},
                   {"filter[specs][condition][include]": ["\"s\""], "filter[specs][condition][exclude]": ["[]"]}):
        with pytest.raises(BadRequest):
            search(cols, filters_from(params), "", 0, 10)
    with pytest.raises(BadRequest, match="cannot sort"):
        search(cols, [], "x;drop", 0, 10)


def test_search_index_gives_the_same_rows_with_or_without_columns(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The server-free helper answers from the columns of a large container and row by row for a
    small one: the same rows in the same order."""
    from tiled.queries import Comparison, FullText, Key, Regex

    from publisher.formats import Entry
    from publisher.index.write import write_index
    from publisher.index.client import search_index

    entries = [Entry("", "", "container", [], {}, {"count": 60}, None, None, None)]
    entries += [Entry(f"n{i}", f"n{i}", "array", [], {"t": [5, 10.5, "room", None][i % 4], "s": {"el": ["Ni", "Fe", "ni"][i % 3]},
                                                         "d": f"scan {i} of {['Ni', 'Fe'][i % 2]} foil"}, {}, None, None, None)
                for i in range(60)]
    answers = []
    for minimum in ("1", "1000"):
        store = Store(tmp_path / minimum)
        document = {"format": "skyshelf-catalog", "release": "r", **write_index(store, "r/index", entries, int(minimum))}
        store.write_bytes("catalog.json", json.dumps(document).encode())
        assert store.exists("r/index/search") == (minimum == "1")
        answers.append([search_index(store.url, "", *qs, sort=sort)["key"].to_list() for qs, sort in [
            ((Key("s.el") == "Ni",), ""), ((Comparison("ge", "t", 6),), "-t"), ((FullText("fe foil"),), "s.el,-t"),
            ((Regex("s.el", "^n", case_sensitive=False), Key("t") != "room"), "-"), ((), "t")]])
    assert answers[0] == answers[1]
    assert all(answers[0])
