"""Search safety (issue 11): user patterns run in linear time (RE2) with Python's meaning, what RE2
cannot run is a 400 naming it, and no query parameter, however malformed, gets a 500.

Served by a real ``publish serve`` process (a frozen server is killed at teardown, not left
spinning in the test's process), queried by the tiled client and by raw HTTP."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from publisher.errors import BadRequest
from publisher.queries.regex import like, regex
from publisher.queries.registry import names, registry

from .conftest import run_build
from .servers import publish_serve

#: A value Python's backtracking engine can never finish ``(.*.*.*)*Z`` on: twelve characters took
#: it 22 s, and each one more multiplies that several times.
LONG = "a" * 20_000
CATASTROPHIC = "(.*.*.*)*Z"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``publish serve`` over a catalog with a container answered from search columns (``big``,
    past SKYSHELF_SEARCH_MIN_CHILDREN) and one answered row by row (``small``)."""
    import os

    folder = tmp_path_factory.mktemp("search-safety")
    for name, count in (("big", 8), ("small", 3)):
        (folder / "data" / name).mkdir(parents=True)
        for i in range(count):
            np.save(folder / "data" / name / f"n{i}.npy", np.zeros(2))
            metadata = {"note": LONG if i == 0 else f"scan {i} of {'Ni' if i % 2 else 'Fe'}", "scan": i, "tags": ["a", "b"][: i % 3], "when": "é" * i}
            (folder / "data" / name / f"n{i}.npy.json").write_text(json.dumps(metadata))
    os.environ["SKYSHELF_SEARCH_MIN_CHILDREN"] = "5"
    try:
        published = run_build(folder, {"sources": [{"path": "data", "into": ""}]})
    finally:
        del os.environ["SKYSHELF_SEARCH_MIN_CHILDREN"]
    with publish_serve(published.store.url, cwd=folder) as url:
        yield url


# -- 1. linear-time patterns -----------------------------------------------------------------
@pytest.mark.parametrize("container", ["big", "small"])
def test_a_catastrophic_regex_answers(served: str, container: str) -> None:
    """``(.*.*.*)*Z`` over a 20,000-character value: Python's ``re`` would never finish (the
    request times out); RE2 answers at once, nothing matching, and the server stays up."""
    from tiled.client import from_uri
    from tiled.queries import Regex

    client = from_uri(f"{served}/api/v1")
    answer = httpx.get(f"{served}/api/v1/search/{container}", params={"filter[regex][condition][key]": "note",
                                                                      "filter[regex][condition][pattern]": CATASTROPHIC}, timeout=60)
    assert answer.status_code == 200 and answer.json()["meta"]["count"] == 0
    assert list(client[container].search(Regex("note", CATASTROPHIC))) == []
    assert list(client[container].search(Regex("note", "a{100}$"))) == ["n0"]  # the long value is searched, to its end
    odd = [f"n{i}" for i in range(1, 8 if container == "big" else 3, 2)]
    assert list(client[container].search(Regex("note", "NI$", case_sensitive=False))) == odd
    assert list(client[container].search(Regex("when", r"^\w{2}$"))) == ["n2"]  # Python's \w: é is a word character
    assert httpx.get(f"{served}/healthz").status_code == 200


@pytest.mark.parametrize("pattern, reason", [
    (r"(a)\1", "backreferences"), (r"(?P<x>a)(?P=x)", "backreferences"), (r"(?=a)b", "lookahead and lookbehind"),
    (r"(?<!a)b", "lookahead and lookbehind"), (r"(?(1)a|b)", "invalid group reference"), (r"(a)(?(1)a|b)", "conditional groups"),
    (r"(?>a*)a", "atomic groups"), (r"a\B", "(not at a word boundary)"), (r"a*+", "possessive"), (r"a{1001}", "above 1000"), (r"a$b", "'$' followed by more"),
    ("(" * 1000 + ")" * 1000, "too deeply nested"), ("(", "missing )"),  # within API Gateway's 10,240 bytes
    ("\\w" * 300, "too many Unicode classes"), (r"(?:\w{30}){30}", "pattern too large"),  # bounded compile work
])
def test_what_re2_cannot_run_is_a_400_naming_it(served: str, pattern: str, reason: str) -> None:
    for container in ("big", "small"):
        answer = httpx.get(f"{served}/api/v1/search/{container}", params={"filter[regex][condition][key]": "note",
                                                                          "filter[regex][condition][pattern]": pattern})
        assert answer.status_code == 400, answer.text
        detail = answer.json()["detail"]
        assert reason in detail and repr(pattern[:80])[1:-1][:20] in detail, detail


def test_the_tiled_client_shows_the_reason(served: str) -> None:
    from tiled.client import from_uri
    from tiled.queries import Regex

    with pytest.raises(Exception, match=r"lookahead and lookbehind assertions are not supported") as raised:
        list(from_uri(f"{served}/api/v1")["small"].search(Regex("note", "(?<=a)b")))
    assert "400" in str(raised.value)


def test_like_and_contains_run_in_linear_time(served: str) -> None:
    """SQL LIKE was a backtracking regex too: ``%a%a%...%b`` over a long value is polynomial of
    high degree there; on RE2 it answers at once, with LIKE's meaning."""
    from tiled.client import from_uri
    from tiled.queries import Contains, Like

    client = from_uri(f"{served}/api/v1")
    for container, odd in (("big", ["n1", "n3", "n5", "n7"]), ("small", ["n1"])):
        assert list(client[container].search(Like("note", "%a" * 30 + "%b"))) == []
        assert list(client[container].search(Like("note", "%A" * 30 + "%"))) == ["n0"]  # ASCII letters in either case
        assert list(client[container].search(Contains("note", "of_n"))) == odd  # _ is one character


#: Characters where Python's and RE2's ideas differ most: case folding orbits (Kelvin sign, long
#: s, sharp s, Greek sigma and iota, dotted I), non-ASCII digits and spaces, newlines.
TRICKY = "aAkKK\u017fsSß\u1e9eσςΣ\u0345ιΙ\u1fbeİıé É_1٣\u00a0\x0b\x1c\u2028\n.-ǄǅǆµΜﬀ\U00010400\U00010428"
PIECES = ["a", "k", "s", "σ", "ß", "é", "İ", ".", "^", "$", "\\A", "\\Z", "\\d", "\\D", "\\w", "\\W", "\\s", "\\S", "[a-z]",
          "[^a-z]", "[\\w.]", "[^\\W_]", "[^\\sa]", "[ks]", "[^K]", "(?i:k)", "(?-i:S)", "(?s:.)", "(?m:^a)", "(?a:\\w)",
          "(?a:[^\\W])", "(?ai:k)", "[İ]", "ǅ", "µ", "[^\\d]", "[\\W\\d]", "[^\\WK]", "\U00010400", "[\u0100-\U00010428]", "a*", "a+?", "(?:a|\\s)", "x{2,3}", "\\b", "\\B", "\\n", "[\\n]", "[^\\n]", "(?x: a )"]


@st.composite
def patterns(draw: Any) -> str:
    pieces = draw(st.lists(st.sampled_from(PIECES), min_size=1, max_size=4))
    out = "".join(pieces)
    if draw(st.booleans()):
        out = f"(?:{out})" + draw(st.sampled_from(["", "*", "?", "{2}", "|a"]))
    return out


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(patterns(), st.lists(st.text(alphabet=TRICKY, max_size=6), min_size=1, max_size=6), st.booleans())
def test_re2_finds_what_python_re_finds(pattern: str, texts: list[str], case_sensitive: bool) -> None:
    """Each pattern RE2 runs gives ``re.search``'s answer on every text (``\\b``/``\\B`` taken in
    their documented ASCII sense); the ones refused hold ``\\B`` or a ``$`` with more after it."""
    flags = 0 if case_sensitive else re.IGNORECASE
    try:
        test = regex(pattern, case_sensitive)
    except BadRequest as exc:
        assert "'$' followed by more" in str(exc) or "(not at a word boundary)" in str(exc), (pattern, str(exc))
        return
    reference = re.compile(pattern.replace("\\b", "(?a:\\b)"), flags)
    for text in texts:
        assert test.test(text) == (reference.search(text) is not None), (pattern, text, case_sensitive)
    if test.blob is not None:  # the one-pass form: each text without a newline is found as itself
        blob = "".join(t + "\n" for t in texts if "\n" not in t).encode()
        found, pos = set(), 0
        while (m := test.blob.search(blob, pos)) is not None and m.start() < len(blob):
            line = blob.rfind(b"\n", 0, m.start()) + 1
            found.add(blob[line : blob.index(b"\n", m.start())].decode())
            pos = blob.index(b"\n", m.start()) + 1
        assert found == {t for t in texts if "\n" not in t and reference.search(t)}, (pattern, texts)


@given(st.text(alphabet="aA%_é\n", max_size=5), st.text(alphabet="aAbé\n", max_size=6))
@settings(max_examples=300, deadline=None)
def test_like_is_sqlite_like(pattern: str, text: str) -> None:
    """SQLite's LIKE: ``%``, ``_``, ASCII letters in either case, non-ASCII exactly."""
    import sqlite3

    with sqlite3.connect(":memory:") as db:
        expected = bool(db.execute("SELECT ? LIKE ?", (text, pattern)).fetchone()[0])
    assert like(pattern).test(text) == expected


# -- 2. no 500 for any query parameter --------------------------------------------------------
def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


ODD_VALUES = ["", "[]", "{}", "null", "true", "1e999", "-1e999", "1" * 5000, "9" * 400, "NaN", "\"\\ud800\"", "[{}]", "[[1]]",
              "{\"a\": [1, {\"b\": null}]}", _nested(1200), "{\"a\":" * 1200 + "1" + "}" * 1200, "%FF%FE", "\x00", "[\"a\"]",
              "\"x\"", "3", "-0", "[1, \"a\", null, true]", "\"\\u0000\"", "(a)\\1", ".*", "a{99999}"]
#: Every registered query name (the registry's conformance suite), and names that are none.
NAMES = [*names(), "nosuch", "EQ", "eq]"]
#: Every field of a registered query, and fields that are none.
FIELDS = [*sorted({f for cls in registry().values() for f in cls.field_names()}), "nope", ""]
OTHER = {"page[offset]": ["0", "-1", "1" * 5000, "1e3", "x", "99999999999999999999"], "page[limit]": ["0", "301", "-5", "", "a"],
         "page[cursor]": ["x", "3"], "sort": ["scan", "-scan", "-", ",", "a;b", "note,-when", "\x00", "é"],
         "fields": ["metadata", "nope", ",", "count"], "select_metadata": ["scan", "[[", "abs(@)", "(" * 1200, "note.x", "length(@)"],
         "metadata": ["scan", "", "a.b.c", "note"], "counts": ["true", "maybe", ""], "specs": ["1", "x"],
         "structure_families": ["0", "nope"], "omit_links": ["true", "x"], "max_depth": ["0", "1", "x", "65"]}


#: Any JSON value: every query's fields get every type.
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=5),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
                    max_leaves=6).map(json.dumps)


@st.composite
def query_strings(draw: Any) -> str:
    parts = []
    for _ in range(draw(st.integers(1, 4))):
        name, field = draw(st.sampled_from(NAMES)), draw(st.sampled_from(FIELDS))
        value = draw(st.one_of(st.sampled_from(ODD_VALUES), st.text(max_size=8), st.integers(-10**30, 10**30).map(str), JSON))
        parts.append(f"filter[{quote(name)}][condition][{quote(field)}]={quote(value, safe='%')}")
    for name in draw(st.lists(st.sampled_from(sorted(OTHER)), max_size=3)):
        parts.append(f"{quote(name)}={quote(draw(st.sampled_from(OTHER[name])), safe='%')}")
    if draw(st.booleans()):
        parts.append(draw(st.sampled_from(["filter[eq]=1", "filter[=1", "filter[eq][condition]=x", "%ZZ=1", "a=%C3%28", "=", "&&"])))
    return "&".join(parts)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.sampled_from(["search/big", "search/small", "distinct/big", "distinct/small", "search-deep/"]), query_strings())
def test_no_query_parameter_gets_a_500(served: str, route: str, query: str) -> None:
    """Any mix of filters (unknown names and fields, deeply nested and huge JSON, wrong types,
    invalid UTF-8, NUL) and paging, sorting, field and distinct parameters: a 200, or a 4xx whose
    JSON ``detail`` says what was wrong; never a 500."""
    answer = httpx.get(f"{served}/api/v1/{route}?{query}", timeout=60)
    assert answer.status_code < 500, (route, query[:300], answer.text[:500])
    if answer.status_code >= 400:
        assert answer.json()["detail"], answer.text


@pytest.mark.parametrize("query", [
    "filter[eq][condition][key]=scan&filter[eq][condition][value]=" + _nested(5000),
    "filter[comparison][condition][key]=scan&filter[comparison][condition][operator]=lt&filter[comparison][condition][value]=1e999",
    "filter[specs][condition][include]=[{}]&filter[specs][condition][exclude]=[]",
    "filter[access_tags_filter][condition][tags]=[[1]]",
    "filter[keys_filter][condition][keys]=[{}]",
    "filter[keypresent][condition][key]=scan&filter[keypresent][condition][exists]=maybe",
    "filter[regex][condition][key]=note&filter[regex][condition][pattern]=a&filter[regex][condition][case_sensitive]=maybe",
])
def test_malformed_values_are_400s(served: str, query: str) -> None:
    """The cases the probe above found, kept by name: each is a 400 naming the parameter."""
    for route in ("search/big", "search/small", "distinct/small?metadata=scan&"):
        answer = httpx.get(f"{served}/api/v1/{route}{'' if route.endswith('&') else '?'}{query}")
        assert answer.status_code == 400, (route, query[:200], answer.text[:300])
        assert "filter[" in answer.json()["detail"], answer.text[:300]
