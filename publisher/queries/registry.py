"""The query registry, filled once: the built-in query classes, then those of installed plug-ins
(entry-point group ``skyshelf.queries``; a broken plug-in is a warning, never a broken search),
and :func:`filters_from`, which turns a request's ``filter[...]`` parameters into queries."""

from __future__ import annotations

import functools
import re
import warnings
from collections import defaultdict

from ..errors import BadRequest
from . import compare, fields, text  # noqa: F401  (the built-ins register themselves)
from .base import REGISTRY, Query

ENTRY_POINT_GROUP = "skyshelf.queries"
#: Tiled's own order of its query names (the about document lists them so); plug-ins follow.
TILED_ORDER = ("fulltext", "lookup", "regex", "eq", "noteq", "comparison", "contains", "in", "notin", "keypresent",
               "specs", "structure_family", "like", "keys_filter", "access_tags_filter")
_PARAM = re.compile(r"^filter\[(\w+)\]\[condition\]\[(\w+)\]$")


@functools.cache
def registry() -> dict[str, type[Query]]:
    """Every query class by name; plug-ins are loaded on first use (not at a handler's cold start)."""
    from importlib.metadata import entry_points

    for point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            point.load()  # its module registers its classes (``@register``)
        except Exception as exc:  # a broken plug-in: the others still work
            warnings.warn(f"query plug-in {point.name!r} ({point.value}) cannot be loaded: {exc!r}", RuntimeWarning, stacklevel=2)
    order = {name: i for i, name in enumerate(TILED_ORDER)}
    return dict(sorted(REGISTRY.items(), key=lambda item: order.get(item[0], len(order))))


def names() -> list[str]:
    """The query names a search accepts, for the about document."""
    return list(registry())


def filters_from(params: dict[str, list[str]]) -> list[Query]:
    """Group ``filter[...]`` parameters into queries; repeated parameters give repeated queries.
    Every query is parsed and checked here, before any entry is read."""
    known = registry()
    grouped: dict[str, dict[str, list[str]]] = defaultdict(dict)
    for key, values in params.items():
        if not key.startswith("filter["):
            continue
        m = _PARAM.match(key)
        if not m:
            raise BadRequest(f"malformed filter parameter {key!r}; expected filter[NAME][condition][FIELD]")
        name, field = m.groups()
        if name not in known:
            raise BadRequest(f"unknown query {name!r}; supported: {sorted(known)}")
        if field not in known[name].field_names():
            raise BadRequest(f"query {name!r} has no field {field!r}; its fields are {list(known[name].field_names())}")
        grouped[name][field] = values
    out = []
    for name, given in grouped.items():
        cls = known[name]
        for i in range(max(len(v) for v in given.values())):
            decoded = {field: cls.decode(field, values[i] if i < len(values) else values[-1]) for field, values in given.items()}
            missing = [f for f in cls.required() if f not in decoded]
            if missing:
                raise BadRequest(f"query {name!r} needs filter[{name}][condition][{missing[0]}]")
            query = cls(**decoded)
            query.validate()
            out.append(query)
    return out
