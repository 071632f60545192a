"""Tiled's query parameters (``filter[NAME][condition][FIELD]=...``) evaluated on index entries.

A first cut over a container's children (the full language, indexed, is its own piece of work).
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from publisher.errors import BadRequest

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
}
_JSON_FIELDS = {"value", "include", "exclude"}


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
            decoded: dict[str, Any] = {}
            for field, values in fields.items():
                raw = values[i] if i < len(values) else values[-1]
                if field in _JSON_FIELDS and name != "structure_family":
                    try:
                        decoded[field] = json.loads(raw)
                    except ValueError:
                        raise BadRequest(f"filter[{name}][condition][{field}] must be JSON, got {raw!r}") from None
                else:
                    decoded[field] = raw
            out.append(Query(name, decoded))
    return out


_MISSING = object()


def lookup(metadata: dict[str, Any], dotted: str) -> Any:
    value: Any = metadata
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return _MISSING
        value = value[part]
    return value


def _texts(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [t for v in value.values() for t in _texts(v)]
    if isinstance(value, list):
        return [t for v in value for t in _texts(v)]
    return [str(value)] if isinstance(value, str) else []


def matches(q: Query, entry: dict[str, Any]) -> bool:
    f, md = q.fields, entry["metadata"]
    if q.name == "fulltext":
        words = str(f.get("text", "")).lower().split()
        text = " ".join(_texts(md)).lower()
        return all(w in text for w in words)
    if q.name == "lookup":
        return entry["key"] == f.get("key")
    if q.name == "structure_family":
        return entry["family"] == f.get("value")
    if q.name == "specs":
        specs = set(entry["specs"])
        return set(f.get("include") or []) <= specs and not (set(f.get("exclude") or []) & specs)
    value = lookup(md, f.get("key", ""))
    if q.name == "keypresent":
        return (value is not _MISSING) == (str(f.get("exists", "true")).lower() == "true")
    if value is _MISSING:
        return q.name in ("noteq", "notin")
    target = f.get("value")
    if q.name == "eq":
        return value == target
    if q.name == "noteq":
        return value != target
    if q.name == "contains":
        return isinstance(value, (list, str)) and target in value
    if q.name == "in":
        return isinstance(target, list) and value in target
    if q.name == "notin":
        return not (isinstance(target, list) and value in target)
    if q.name == "regex":
        flags = 0 if str(f.get("case_sensitive", "true")).lower() == "true" else re.IGNORECASE
        try:
            return isinstance(value, str) and re.search(f.get("pattern", ""), value, flags) is not None
        except re.error as exc:
            raise BadRequest(f"bad regex pattern: {exc}") from None
    if q.name == "comparison":
        op = f.get("operator")
        if op not in ("lt", "le", "gt", "ge"):
            raise BadRequest(f"comparison operator must be lt, le, gt or ge, got {op!r}")
        try:
            return {"lt": value < target, "le": value <= target, "gt": value > target, "ge": value >= target}[op]
        except TypeError:
            return False
    raise BadRequest(f"unknown query {q.name!r}")


def sort_entries(entries: list[dict[str, Any]], sort: str) -> list[dict[str, Any]]:
    """``sort=a,-b``: metadata keys, ``-`` for descending; entries missing a key sort last. ``-`` alone reverses."""
    keys = [k.strip() for k in sort.split(",") if k.strip()]
    if keys == ["-"]:
        return entries[::-1]
    for key in reversed(keys):
        descending = key.startswith("-")
        name = key.lstrip("-")
        if not re.fullmatch(r"[\w.]+", name):
            raise BadRequest(f"cannot sort by {key!r}: sort keys are metadata keys, e.g. sort=temperature,-scan")
        present = [e for e in entries if lookup(e["metadata"], name) is not _MISSING]
        missing = [e for e in entries if lookup(e["metadata"], name) is _MISSING]
        try:
            present.sort(key=lambda e: lookup(e["metadata"], name), reverse=descending)
        except TypeError:
            present.sort(key=lambda e: str(lookup(e["metadata"], name)), reverse=descending)
        entries = present + missing
    return entries
