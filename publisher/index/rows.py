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
    return sort


def sort_keys(sort: str) -> list[tuple[str, bool]]:
    """``sort=a,-b`` as (metadata key, descending) pairs; anything but dotted keys is a 400 (a
    request's whole text is held to :data:`SORT_PATTERN` first, :func:`checked_sort`)."""
    out = []
    for key in (k.strip() for k in sort.split(",") if k.strip()):
        if not SORT_KEY.fullmatch(key):
            raise _refused(key)
        out.append((key.lstrip("+-"), key.startswith("-")))
    return out


def reverses(sort: str) -> bool:
    """``sort=-`` alone: the index order, reversed."""
    return [k.strip() for k in sort.split(",") if k.strip()] == ["-"]


def sort_entries(entries: list[Entry], sort: str) -> list[Entry]:
    """``sort=a,-b``: metadata keys, ``-`` for descending, values ordered as in comparisons (numbers
    by value, then text); entries missing a key (or holding null) last either way. ``-`` alone reverses."""
    if reverses(sort):
        return entries[::-1]
    for name, descending in reversed(sort_keys(sort)):
        values = [sql(lookup(e.metadata, name)) for e in entries]
        present = [(rank(v), e) for v, e in zip(values, entries) if v is not None]
        present.sort(key=lambda pair: pair[0], reverse=descending)  # stable: ties keep the later keys' order
        entries = [e for _, e in present] + [e for v, e in zip(values, entries) if v is None]
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
