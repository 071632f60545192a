"""Which path a search takes, so a route only parses, calls and serializes: a large container's
search columns (numpy, imported only then), its children row by row, or, with no query and no
sort, only the index pages the answer needs. Deep search walks the containers below, row by row.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Protocol

from ..formats import Entry
from ..queries.base import Query
from .rows import distinct, select


class Listing(Protocol):
    """What a search reads of a published catalog (:class:`publisher.catalog.Catalog`)."""

    def entries(self, path: str, offset: int = 0, limit: int | None = None) -> Iterable[Entry]: ...

    def search_columns(self, path: str, count: int) -> Any: ...


def search_children(listing: Listing, path: str, count: int, queries: list[Query], sort: str, offset: int,
                    limit: int) -> tuple[int, list[Entry]]:
    """(count, page) of the children of the container at ``path`` (``count`` children) that match
    every query, in index order or ``sort`` order (``-`` alone: reversed)."""
    searching = bool(queries) or bool(sort.strip("-"))
    columns = listing.search_columns(path, count) if searching else None
    if columns is not None:  # a large container: its search columns
        from .engine import search

        return search(columns, queries, sort, offset, limit)
    if searching:
        matched = select(listing.entries(path), queries, sort)
        return len(matched), matched[offset : offset + limit]
    if sort == "-":  # the index's own order, reversed: read only the pages this page needs
        start = max(count - offset - limit, 0)
        return count, list(listing.entries(path, start, max(count - offset - start, 0)))[::-1]
    return count, list(listing.entries(path, offset, limit))


def distinct_children(listing: Listing, path: str, count: int, queries: list[Query], keys: list[str],
                      structure_families: bool, specs: bool, counts: bool, max_depth: int | None = None) -> dict[str, Any]:
    """Distinct metadata values, structure families and specs of the matching children (Tiled's
    ``/distinct``) or, with ``max_depth``, of the matching descendants at most that many levels
    down: the nodes :func:`search_deep` finds, so a deep search's facets count what it lists."""
    if max_depth is not None:
        return distinct(select(descendants(listing, path, max_depth), queries), keys, structure_families, specs, counts)
    columns = listing.search_columns(path, count)
    if columns is not None:
        from .engine import distinct as distinct_columns

        return distinct_columns(columns, queries, keys, structure_families, specs, counts)
    return distinct(select(listing.entries(path), queries), keys, structure_families, specs, counts)


def descendants(listing: Listing, path: str, max_depth: int | None) -> Iterator[Entry]:
    """Every node below ``path`` (depth first, in index order), at most ``max_depth`` levels down."""
    stack: list[tuple[str, int]] = [(path, 0)]
    while stack:
        here, depth = stack.pop()
        below = list(listing.entries(here))
        yield from below
        if max_depth is None or depth + 1 < max_depth:
            stack.extend((c.path, depth + 1) for c in reversed(below)  # an empty container has nothing to list
                         if c.family == "container" and (c.structure_json() or {}).get("count", 1) != 0)


def search_deep(listing: Listing, path: str, queries: list[Query], max_depth: int | None, offset: int,
                limit: int) -> tuple[int, list[Entry]]:
    """(count, page) of the descendants of ``path`` that match every query, in walk order."""
    matched = select(descendants(listing, path, max_depth), queries)
    return len(matched), matched[offset : offset + limit]
