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


def sort_keys(sort: str) -> list[tuple[str, bool]]:
    """``sort=a,-b`` as (metadata key, descending) pairs; anything but a dotted key is a 400."""
    out = []
    for key in (k.strip() for k in sort.split(",") if k.strip()):
        name = key.lstrip("-")
        if not re.fullmatch(r"[\w.]+", name):
            raise BadRequest(f"cannot sort by {key!r}: sort keys are metadata keys, e.g. sort=temperature,-scan")
        out.append((name, key.startswith("-")))
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
