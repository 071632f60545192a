"""Tiled's query language (``filter[NAME][condition][FIELD]=...``) evaluated on index entries:
by the search handler, and with no server at all by :func:`search_index`.

Semantics are those of Tiled's SQL catalog on SQLite (what ``tiled serve catalog`` and
``tiled serve directory`` run), checked against a real server by ``tests/test_search_vs_tiled.py``:
a metadata value is compared as SQLite compares ``json_extract`` results (a missing key is NULL
and matches nothing; numbers sort before text; objects and arrays are their compact JSON text);
``contains`` and ``like`` are SQL ``LIKE`` on that text (``%`` and ``_`` are wildcards, ASCII
case-insensitive); ``fulltext`` matches the words of every query term against the words of the
whole metadata document, keys included, as FTS5's default tokenizer splits them. SQLite has no
regex: ``regex`` follows Tiled's in-memory adapter (``re.search`` on string values). Patterns run on
RE2 (:mod:`publisher.regex`): linear time, whatever a client sends.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .errors import BadRequest
from .regex import like, regex, shown

_PARAM = re.compile(r"^filter\[(\w+)\]\[condition\]\[(\w+)\]$")

#: query name → its fields, as Tiled encodes them
QUERIES: dict[str, tuple[str, ...]] = {
    "fulltext": ("text",),
    "lookup": ("key",),
    "regex": ("key", "pattern", "case_sensitive"),
    "eq": ("key", "value"),
    "noteq": ("key", "value"),
    "comparison": ("operator", "key", "value"),
    "contains": ("key", "value"),
    "in": ("key", "value"),
    "notin": ("key", "value"),
    "keypresent": ("key", "exists"),
    "specs": ("include", "exclude"),
    "structure_family": ("value",),
    "like": ("key", "pattern"),
    "keys_filter": ("keys",),
    "access_tags_filter": ("tags",),
}
_JSON_FIELDS = {"value", "include", "exclude", "keys", "tags", "pattern"}


@dataclass
class Query:
    name: str
    fields: dict[str, Any]


def filters_from(params: dict[str, list[str]]) -> list[Query]:
    """Group ``filter[...]`` parameters into queries; repeated parameters give repeated queries."""
    grouped: dict[str, dict[str, list[str]]] = defaultdict(dict)
    for key, values in params.items():
        if not key.startswith("filter["):
            continue
        m = _PARAM.match(key)
        if not m:
            raise BadRequest(f"malformed filter parameter {key!r}; expected filter[NAME][condition][FIELD]")
        name, field = m.groups()
        if name not in QUERIES:
            raise BadRequest(f"unknown query {name!r}; supported: {sorted(QUERIES)}")
        if field not in QUERIES[name]:
            raise BadRequest(f"query {name!r} has no field {field!r}; its fields are {list(QUERIES[name])}")
        grouped[name][field] = values
    out = []
    for name, fields in grouped.items():
        for i in range(max(len(v) for v in fields.values())):
            decoded = {field: _decode(name, field, values[i] if i < len(values) else values[-1]) for field, values in fields.items()}
            missing = [f for f in QUERIES[name] if f not in decoded and f not in _OPTIONAL.get(name, ())]
            if missing:
                raise BadRequest(f"query {name!r} needs filter[{name}][condition][{missing[0]}]")
            _validate(Query(name, decoded))
            out.append(Query(name, decoded))
    return out


def _not_json(name: str) -> Any:
    """``NaN`` and ``Infinity`` are not JSON (metadata never holds them): refuse them as values."""
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    """A JSON number as a float, refusing those past float's range (``1e999``), which would be infinite."""
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"{text} is out of range")
    return value


#: Booleans as Tiled's server (FastAPI) reads them.
_FLAGS = {"true": True, "1": True, "yes": True, "on": True, "t": True, "y": True,
          "false": False, "0": False, "no": False, "off": False, "f": False, "n": False}


def _decode(name: str, field: str, raw: str) -> Any:
    """One filter field's value: a boolean, JSON, or the text itself, as Tiled encodes the field."""
    label = f"filter[{name}][condition][{field}]"
    if field in ("case_sensitive", "exists"):
        flag = _FLAGS.get(raw.strip().lower())
        if flag is None:
            raise BadRequest(f"{label} must be true or false, got {shown(raw)}")
        return flag
    if field not in _JSON_FIELDS or name in ("structure_family", "regex"):
        return raw
    try:
        return json.loads(raw, parse_constant=_not_json, parse_float=_finite)
    except RecursionError:
        raise BadRequest(f"{label} is JSON nested too deeply") from None
    except ValueError as exc:  # not JSON, NaN, a number out of range, an integer of thousands of digits
        raise BadRequest(f"{label} must be JSON, got {shown(raw)} ({exc})") from None


#: Fields Tiled's client may leave out.
_OPTIONAL = {"regex": ("case_sensitive",), "keypresent": ("exists",)}


#: Fields that must be JSON lists of strings.
_STRING_LISTS = {"specs": ("include", "exclude"), "access_tags_filter": ("tags",), "keys_filter": ("keys",)}


def _validate(q: Query) -> None:
    """Reject what no entry could make valid (a bad pattern, an unknown operator, a value of the
    wrong type) before any entry is read."""
    if q.name == "regex":
        regex_of(q)
    for field in _STRING_LISTS.get(q.name, ()):
        value = q.fields.get(field)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise BadRequest(f"filter[{q.name}][condition][{field}] must be a JSON list of strings, got {shown(json.dumps(value))}")
    if q.name in ("in", "notin"):
        _json_param(q, "value", list, "a JSON list")
    if q.name == "like":
        _json_param(q, "pattern", str, "a JSON string")
    if q.name == "comparison" and q.fields.get("operator") not in ("lt", "le", "gt", "ge"):
        raise BadRequest(f"comparison operator must be lt, le, gt or ge, got {q.fields.get('operator')!r}")


_MISSING = object()


def lookup(metadata: dict[str, Any], dotted: str) -> Any:
    value: Any = metadata
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return _MISSING
        value = value[part]
    return value


def _sql(value: Any) -> Any:
    """A metadata value as SQLite's ``json_extract`` gives it: booleans as 0/1, objects and arrays
    as their compact JSON text, JSON null and missing keys as NULL (None)."""
    if value is _MISSING or value is None:
        return None
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return value


def _rank(value: Any) -> tuple[int, Any]:
    """SQLite's order across storage classes: numbers, then text (by code point)."""
    return (0, value) if isinstance(value, (int, float)) else (1, str(value))


def _compare(op: str, left: Any, right: Any) -> bool:
    if left is None or right is None:
        return False  # NULL compares to nothing
    a, b = _rank(left), _rank(right)
    return {"eq": a == b, "noteq": a != b, "lt": a < b, "le": a <= b, "gt": a > b, "ge": a >= b}[op]


def regex_of(q: Query) -> Any:
    """A ``regex`` query's compiled pattern (:class:`publisher.regex.TextTest`)."""
    return regex(str(q.fields.get("pattern", "")), bool(q.fields.get("case_sensitive", True)))


def like_of(q: Query) -> Any:
    """A ``contains`` or ``like`` query as SQL ``LIKE`` (``contains`` is ``%value%``)."""
    f = q.fields
    return like(f"%{_text(_sql(f.get('value')))}%" if q.name == "contains" else str(f.get("pattern")))


def _text(value: Any) -> str | None:
    """What SQL ``LIKE`` sees of a value: text, or a number written out (``1.0`` as SQLite does)."""
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        return f"{value:.1f}"
    return str(value)


#: FTS5's unicode61 tokenizer: letters, numbers and private-use characters make tokens.
_TOKEN = re.compile(r"[^\W_]+|[\ue000-\uf8ff]+")


def tokens(text: str) -> list[str]:
    import unicodedata

    folded = unicodedata.normalize("NFKD", text.casefold())
    return _TOKEN.findall("".join(c for c in folded if not unicodedata.combining(c)))


def _json_param(q: Query, field: str, kind: type | tuple[type, ...], what: str) -> Any:
    value = q.fields.get(field)
    if not isinstance(value, kind):
        raise BadRequest(f"filter[{q.name}][condition][{field}] must be {what}, got {shown(json.dumps(value))}")
    return value


def matches(q: Query, entry: dict[str, Any]) -> bool:
    f, md = q.fields, entry["metadata"]
    if q.name == "fulltext":
        terms = tokens(str(f.get("text", "")))
        words = set(tokens(json.dumps(md, ensure_ascii=False)))
        return bool(terms) and all(t in words for t in terms)
    if q.name == "lookup":
        return entry["key"] == f.get("key")
    if q.name == "keys_filter":
        return entry["key"] in _json_param(q, "keys", list, "a JSON list of keys")
    if q.name == "structure_family":
        return entry["family"] == f.get("value")
    if q.name == "specs":
        specs = set(entry["specs"])
        include, exclude = _json_param(q, "include", list, "a JSON list"), _json_param(q, "exclude", list, "a JSON list")
        return set(include) <= specs and not (set(exclude) & specs)
    if q.name == "access_tags_filter":
        tags = _json_param(q, "tags", list, "a JSON list of tags")
        return bool(set(entry.get("access_tags") or []) & set(tags))
    raw = lookup(md, f.get("key", ""))
    if q.name == "keypresent":
        return (raw is not _MISSING) == bool(f.get("exists", True))
    if q.name == "regex":
        return isinstance(raw, str) and regex_of(q).test(raw)
    value = _sql(raw)
    if q.name in ("eq", "noteq"):
        return _compare(q.name, value, _sql(f.get("value")))
    if q.name == "comparison":
        op = f.get("operator")
        if op not in ("lt", "le", "gt", "ge"):
            raise BadRequest(f"comparison operator must be lt, le, gt or ge, got {op!r}")
        return _compare(op, value, _sql(f.get("value")))
    if q.name in ("in", "notin"):
        options = _json_param(q, "value", list, "a JSON list")
        if not options:
            return q.name == "notin"  # nothing is in an empty list; everything is not
        if value is None:
            return False
        found = any(_compare("eq", value, _sql(o)) for o in options)
        return found if q.name == "in" else not found
    if q.name in ("contains", "like"):
        text = _text(value)
        return text is not None and like_of(q).test(text)
    raise BadRequest(f"unknown query {q.name!r}")


class Selection:
    """``select_metadata``: a JMESPath expression applied to each result's metadata (as Tiled
    does). A malformed expression, or one that fails on some metadata (``abs(@)`` on an object),
    is the client's mistake: a 400 naming it."""

    def __init__(self, expression: str) -> None:
        import jmespath

        self.expression = expression
        try:
            self.compiled = jmespath.compile(expression)
        except RecursionError:
            raise BadRequest(f"select_metadata {shown(expression)} is nested too deeply") from None
        except Exception as exc:  # JMESPath's parse errors, and what its lexer lets through
            raise BadRequest(f"malformed select_metadata {shown(expression)}: {exc}") from None

    def search(self, metadata: dict[str, Any]) -> Any:
        try:
            return self.compiled.search(metadata)
        except RecursionError:
            raise BadRequest(f"select_metadata {shown(self.expression)} is nested too deeply") from None
        except Exception as exc:  # JMESPath's type and arity errors
            raise BadRequest(f"select_metadata {shown(self.expression)} fails on a result's metadata: {exc}") from None


def sort_entries(entries: list[dict[str, Any]], sort: str) -> list[dict[str, Any]]:
    """``sort=a,-b``: metadata keys, ``-`` for descending, values ordered as in comparisons (numbers
    by value, then text); entries missing a key (or holding null) last either way. ``-`` alone reverses."""
    keys = [k.strip() for k in sort.split(",") if k.strip()]
    if keys == ["-"]:
        return entries[::-1]
    for key in reversed(keys):
        descending = key.startswith("-")
        name = key.lstrip("-")
        if not re.fullmatch(r"[\w.]+", name):
            raise BadRequest(f"cannot sort by {key!r}: sort keys are metadata keys, e.g. sort=temperature,-scan")
        values = [_sql(lookup(e["metadata"], name)) for e in entries]
        present = [(_rank(v), e) for v, e in zip(values, entries) if v is not None]
        present.sort(key=lambda pair: pair[0], reverse=descending)  # stable: ties keep the later keys' order
        entries = [e for _, e in present] + [e for v, e in zip(values, entries) if v is None]
    return entries


def select(entries: Iterable[dict[str, Any]], queries: list[Query], sort: str = "") -> list[dict[str, Any]]:
    """The entries matching every query (AND), in index order or sorted by ``sort``."""
    matched = [e for e in entries if all(matches(q, e) for q in queries)]
    return sort_entries(matched, sort) if sort.strip() else matched


def _sqlite_json_text(value: Any) -> str:
    """The text SQLite groups and sorts a metadata value by in Tiled's catalog
    (``json_quote(json_extract(...))``): compact JSON in the document's key order, numbers as
    SQLite prints them, booleans as 1/0, a missing key or null as ``null``."""
    if value is None or value is _MISSING:
        return "null"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        text = format(value, ".15g")
        return text if any(c in text for c in ".en") else text + ".0"
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def distinct_values(tallies: Iterable[tuple[Any, int]], counts: bool) -> list[dict[str, Any]]:
    """Values with their counts, grouped and ordered as Tiled's SQL catalog does: by their JSON
    text as SQLite prints it (strings, then numbers as text, arrays, ``null`` for a missing key,
    objects); ``count`` is null unless asked for."""
    tally: dict[str, int] = {}
    for value, n in tallies:
        text = _sqlite_json_text(value)
        tally[text] = tally.get(text, 0) + n
    return [{"value": json.loads(text), "count": n if counts else None} for text, n in sorted(tally.items(), key=lambda t: t[0].encode())]


def specs_value(specs: list[str]) -> list[dict[str, Any]]:
    """Specs as Tiled reports them."""
    return [{"name": s, "version": None} for s in specs]


def distinct(entries: Iterable[dict[str, Any]], keys: list[str], structure_families: bool, specs: bool, counts: bool) -> dict[str, Any]:
    """Distinct metadata values (per dotted key), structure families and specs of ``entries``."""
    rows = list(entries)
    return {  # Tiled's response model: what was not asked for is null
        "metadata": {key: distinct_values(((lookup(e["metadata"], key), 1) for e in rows), counts) for key in keys} if keys else None,
        "structure_families": distinct_values(((e["family"], 1) for e in rows), counts) if structure_families else None,
        "specs": distinct_values(((specs_value(e["specs"]), 1) for e in rows), counts) if specs else None,
    }


def params_for(*queries: Any) -> dict[str, list[str]]:
    """Query parameters for ``tiled.queries`` objects, encoded as Tiled's client encodes them."""
    from tiled.query_registration import default_query_registry

    params: dict[str, list[str]] = defaultdict(list)
    for q in queries:
        name = default_query_registry.query_type_to_name[type(q)]
        for field, value in q.encode().items():
            if value is not None:
                params[f"filter[{name}][condition][{field}]"].append(value if isinstance(value, str) else json.dumps(value))
    return dict(params)


def search_index(store: str, path: str = "", *queries: Any, sort: str = "", **storage_options: Any) -> Any:
    """Search a published catalog with no server: the children of ``path`` that match every query
    (``tiled.queries`` objects, e.g. ``Key("sample.element") == "Ni"``), in the handler's order, as
    a polars DataFrame of index rows (``metadata`` and the other JSON columns as JSON text:
    ``df["metadata"].str.json_decode()``). The same answers as the search handler.

    ``store`` is the store's root: a folder, ``s3://bucket/prefix`` (``storage_options`` as for
    s3fs) or the ``http(s)://`` URL of its files. Only the index's row groups that can hold
    ``path``'s children are read; a large container's matches come from its search columns
    (numpy), a small one's row by row.
    """
    import polars as pl
    import pyarrow as pa
    import pyarrow.parquet as pq

    from .index import JSON_COLUMNS
    from .stores import Store

    root = Store(store, **storage_options)
    catalog = json.loads(root.read_bytes("catalog.json"))
    table = pq.read_table(root.path(catalog["index"]), filesystem=None if root.is_local else root.fs, filters=[("parent", "=", path)])
    settings = catalog.get("index_json", {})
    if table.num_rows >= settings.get("search_min_children", float("inf")) and table.num_rows:
        from .index import search_prefix
        from .search import SearchColumns, ordered

        # a large container: its search columns, whose rows are its Parquet rows in the same order
        columns = SearchColumns.open(root, search_prefix(catalog["index"].rpartition("/")[0], path))
        return pl.from_arrow(table.take(pa.array(ordered(columns, filters_from(params_for(*queries)), sort), type=pa.int64())))
    rows = table.to_pylist()
    for i, row in enumerate(rows):
        row["_row"] = i
        for name in JSON_COLUMNS:
            row[name] = json.loads(row[name]) if row[name] is not None else None
    chosen = select(rows, filters_from(params_for(*queries)), sort)
    return pl.from_arrow(table.take(pa.array([r["_row"] for r in chosen], type=pa.int64())))
