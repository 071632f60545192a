"""The query registry (:data:`.base.QUERIES`: the built-in query classes, then those of installed
plug-ins, entry-point group ``skyshelf.queries``; a broken plug-in is a warning, never a broken
search), and :func:`filters_from`, which turns a request's ``filter[...]`` parameters into queries."""

from __future__ import annotations

import re
from collections import defaultdict

from ..errors import BadRequest
from .base import QUERIES, Query

#: Tiled's own order of its query names (the about document lists them so); plug-ins follow.
TILED_ORDER = ("fulltext", "lookup", "regex", "eq", "noteq", "comparison", "contains", "in", "notin", "keypresent",
               "specs", "structure_family", "like", "keys_filter", "access_tags_filter")
_PARAM = re.compile(r"filter\[([A-Za-z0-9_]+)\]\[condition\]\[([A-Za-z0-9_]+)\]")


def registry() -> dict[str, type[Query]]:
    """Every query class by name (plug-ins included), Tiled's names first in Tiled's order."""
    order = {name: i for i, name in enumerate(TILED_ORDER)}
    return dict(sorted(QUERIES.items().items(), key=lambda item: order.get(item[0], len(order))))


def names() -> list[str]:
    """The query names a search accepts, for the about document."""
    return list(registry())


def filters_from(params: dict[str, list[str]]) -> list[Query]:
    """Group ``filter[...]`` parameters into queries; repeated parameters give repeated queries.
    Every query is parsed and checked here, before any entry is read."""
    grouped: dict[str, dict[str, list[str]]] = defaultdict(dict)
    for key, values in params.items():
        if not key.startswith("filter["):
            continue
        m = _PARAM.fullmatch(key)
        if not m:
            raise BadRequest(f"malformed filter parameter {key[:80]!r}; expected filter[NAME][condition][FIELD]")
        name, field = m.groups()
        if name not in QUERIES:  # a plug-in's name: the entry points are scanned only then
            raise BadRequest(f"{key}: unknown query {name!r}; supported: {sorted(registry())}")
        fields = QUERIES.get(name).field_names()
        if field not in fields:
            raise BadRequest(f"{key}: query {name!r} has no field {field!r}; its fields are {list(fields)}")
        grouped[name][field] = values
    out = []
    for name, given in grouped.items():
        cls = QUERIES.get(name)
        for i in range(max(len(v) for v in given.values())):
            decoded = {field: cls.decode(field, values[i] if i < len(values) else values[-1]) for field, values in given.items()}
            missing = [f for f in cls.required() if f not in decoded]
            if missing:
                raise BadRequest(f"query {name!r} needs filter[{name}][condition][{missing[0]}]")
            query = cls(**decoded)
            query.validate()
            out.append(query)
    return out
