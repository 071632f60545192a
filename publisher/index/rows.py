"""Queries answered row by row on index entries: the reference every other path is held to
(``tests/test_search_vs_tiled.py`` holds it to Tiled's SQL catalog), used for small containers,
deep search and the server-free client."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from ..errors import BadRequest
from ..formats import Entry
from ..queries.base import Query
from ..queries.sqlite import distinct_values, lookup, rank, specs_value, sql

#: One key of ``sort=`` as Tiled's ``SortField`` takes it: ``+`` or ``-`` (descending), then a
#: dotted metadata key of ASCII letters, digits, ``_`` and ``.``; keys are comma-separated (or the
#: parameter repeated). ``-`` alone is ours: the index order, reversed. :data:`SORT_PATTERN` is
#: exactly what a request may send (:func:`checked_sort`; the OpenAPI document's pattern).
SORT_KEY = re.compile(r"[+-]?[A-Za-z0-9_.]+")
SORT_PATTERN = r"^(?:-|[+-]?[A-Za-z0-9_.]+(?:,[+-]?[A-Za-z0-9_.]+)*)?$"
_SORT = re.compile(SORT_PATTERN)


def _refused(key: str) -> BadRequest:
    shown = repr(key if len(key) <= 80 else key[:80] + "...")
    return BadRequest(f"sort cannot sort by {shown}: sort keys are metadata keys (ASCII letters, digits, _ and .), "
                      "each with an optional - for descending, comma-separated, e.g. sort=temperature,-scan")


def checked_sort(sort: str) -> str:
    """A request's ``sort=``, refused (400) unless it is exactly :data:`SORT_PATTERN` (no empty key,
    no space, one sign), whether or not the search will read its keys."""
    if not _SORT.fullmatch(sort):
        bad = next((k for k in sort.split(",") if not SORT_KEY.fullmatch(k)), sort)
        raise _refused(bad if sort != "-" else sort)
    names = [name for name, _ in sort_keys(sort)] if sort != "-" else []
    if twice := next((name for i, name in enumerate(names) if name in names[:i]), None):
        raise BadRequest(f"sort names {twice!r} twice (Duplicate sorting key)")
    return sort


#: The sort key Tiled reads as the node's own key, not a metadata key (``_STANDARD_SORT_KEYS``).
KEY_SORT = "id"


def sort_keys(sort: str) -> list[tuple[str, bool]]:
    """``sort=a,-b`` as (metadata key, descending) pairs, as Tiled reads them: ``id`` is the
    node's key (:data:`KEY_SORT`), ``metadata.a`` is ``a`` (both were taken for metadata keys of
    those names, which no node had: the order silently unchanged); anything but dotted keys is a
    400 (a request's whole text is held to :data:`SORT_PATTERN` first, and a key given twice
    refused, as Tiled's "Duplicate sorting key": :func:`checked_sort`)."""
    out: list[tuple[str, bool]] = []
    for key in (k.strip() for k in sort.split(",") if k.strip()):
        if not SORT_KEY.fullmatch(key):
            raise _refused(key)
        name = key.lstrip("+-")
        out.append((name.removeprefix("metadata.") if name.startswith("metadata.") and len(name) > 9 else name, key.startswith("-")))
    return out


def sort_value(entry: Entry, name: str) -> Any:
    """An entry's value for sort key ``name`` (its key for :data:`KEY_SORT`), as comparisons take it."""
    return entry.key if name == KEY_SORT else sql(lookup(entry.metadata, name))


def reverses(sort: str) -> bool:
    """``sort=-`` alone: the index order, reversed."""
    return [k.strip() for k in sort.split(",") if k.strip()] == ["-"]


def sort_entries(entries: list[Entry], sort: str) -> list[Entry]:
    """``sort=a,-b``: metadata keys, ``-`` for descending, values ordered as in comparisons (numbers
    by value, then text); entries missing a key (or holding null) after every value, as Tiled's
    catalog orders them: last ascending, first descending (the tiled client reads a listing
    backwards by the opposite sort: missing last either way made ``keys()[-1]`` another node than
    the forward listing's last). Ties keep index order. ``-`` alone reverses."""
    if reverses(sort):
        return entries[::-1]
    for name, descending in reversed(sort_keys(sort)):
        values = [sort_value(e, name) for e in entries]
        present = [(rank(v), e) for v, e in zip(values, entries) if v is not None]
        present.sort(key=lambda pair: pair[0], reverse=descending)  # stable: ties keep the later keys' order
        missing = [e for v, e in zip(values, entries) if v is None]
        entries = missing + [e for _, e in present] if descending else [e for _, e in present] + missing
    return entries


def select(entries: Iterable[Entry], queries: list[Query], sort: str = "") -> list[Entry]:
    """The entries matching every query (AND), in index order or sorted by ``sort``."""
    matched = [e for e in entries if all(q.on_row(e) for q in queries)]
    return sort_entries(matched, sort) if sort.strip() else matched


def distinct(entries: Iterable[Entry], keys: list[str], structure_families: bool, specs: bool, counts: bool) -> dict[str, Any]:
    """Distinct metadata values (per dotted key), structure families and specs of ``entries``."""
    rows = list(entries)
    return {  # Tiled's response model: what was not asked for is null
        "metadata": {key: distinct_values(((lookup(e.metadata, key), 1) for e in rows), counts) for key in keys} if keys else None,
        "structure_families": distinct_values(((e.family, 1) for e in rows), counts) if structure_families else None,
        "specs": distinct_values(((specs_value(e.specs), 1) for e in rows), counts) if specs else None,
    }
