"""The column engine: queries answered on a container's search columns (:mod:`.columns_read`)
with numpy, each by its :meth:`~publisher.queries.base.Query.on_columns`: the same answers as
row by row (:mod:`.rows`, the reference; ``tests/test_search_columns.py`` checks the two agree on
random catalogs and queries). Queries AND their masks; sorting takes the page it needs by partial
selection; ``distinct`` counts each distinct value once.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..formats import Entry
from ..queries.base import Query
from ..queries.sqlite import distinct_values, specs_value
from .columns_read import Column, SearchColumns
from .rows import KEY_SORT, reverses, sort_keys


def _order(cols: SearchColumns, rows: np.ndarray, sort: str, stop: int) -> np.ndarray:
    """The first ``stop`` of ``rows`` (ascending row numbers) in ``sort`` order: by each key's
    value rank (missing after every value: last ascending, first descending), then by row, so
    ties keep index order."""
    keys = sort_keys(sort)
    if stop == 0:
        return rows[:0]
    composite = np.zeros(len(rows), dtype=np.int64)
    scale = 1
    parts: list[tuple[np.ndarray, int]] = []
    for name, descending in keys:
        column = cols.column("key", "fields") if name == KEY_SORT else cols.column(name)
        if column is None:
            continue  # every row lacks it: it orders nothing
        ranks = column.ranks()[rows]
        if descending:  # larger first (rows without a value, ranked past every value, first)
            ranks = column.size - ranks
        parts.append((ranks, column.size + 1))
    for ranks, size in reversed(parts):
        if scale * size * max(cols.n, 1) >= 2**62:  # too many keys for one integer: sort fully
            order = np.lexsort([rows] + [r for r, _ in reversed(parts)])
            return rows[order[:stop]]
        composite += ranks * scale
        scale *= size
    composite = composite * max(cols.n, 1) + rows
    if stop < len(rows):
        top = np.argpartition(composite, stop - 1)[:stop]
        return rows[top[np.argsort(composite[top])]]
    return rows[np.argsort(composite)]


def matching(cols: SearchColumns, queries: list[Query]) -> np.ndarray:
    """Row numbers (ascending) of the children matching every query."""
    mask: np.ndarray | None = None
    for q in queries:
        hit = q.on_columns(cols)
        mask = hit if mask is None else (mask & hit)
    return np.flatnonzero(mask).astype(np.int64) if mask is not None else np.arange(cols.n, dtype=np.int64)


def ordered(cols: SearchColumns, queries: list[Query], sort: str, offset: int = 0, limit: int | None = None) -> np.ndarray:
    """Row numbers of the children matching every query, in index or ``sort`` order, from
    ``offset``, at most ``limit`` (only those are put in order)."""
    return _ordered(cols, matching(cols, queries), sort, offset, limit)


def _ordered(cols: SearchColumns, rows: np.ndarray, sort: str, offset: int, limit: int | None) -> np.ndarray:
    stop = len(rows) if limit is None else min(offset + limit, len(rows))
    if reverses(sort):
        return rows[::-1][offset:stop]
    if sort.strip(" ,"):
        return _order(cols, rows, sort, stop)[offset:]
    return rows[offset:stop]


def search(cols: SearchColumns, queries: list[Query], sort: str, offset: int, limit: int) -> tuple[int, list[Entry]]:
    """(count, page of entries) of the children matching every query, in index or ``sort`` order."""
    rows = matching(cols, queries)
    chosen = _ordered(cols, rows, sort, offset, limit)
    return len(rows), cols.rows(chosen.tolist()) if len(chosen) else []


def distinct(cols: SearchColumns, queries: list[Query], keys: list[str], structure_families: bool, specs: bool, counts: bool) -> dict[str, Any]:
    """:func:`.rows.distinct` from the columns: each distinct value counted once."""
    rows = matching(cols, queries)

    def tallies(column: Column | None) -> list[tuple[Any, int]]:
        if column is None:
            return [(None, len(rows))] if len(rows) else []
        ranks = np.full(cols.n, -2, dtype=np.int64)  # -2: no value at all (a missing key)
        ranks[np.arange(cols.n) if column.rows is None else column.rows] = column.codes
        tally = np.bincount(ranks[rows] + 2, minlength=column.size + 2)
        nonzero = np.flatnonzero(tally).tolist()
        return [(None if i < 2 else column.decoded(i - 2), int(tally[i])) for i in nonzero]

    return {
        "metadata": {key: distinct_values(tallies(cols.column(key)), counts) for key in keys} if keys else None,
        "structure_families": distinct_values(tallies(cols.column("family", "fields")), counts) if structure_families else None,
        "specs": distinct_values(((None if v is None else specs_value(v), n) for v, n in tallies(cols.column("specs", "fields"))), counts)
        if specs else None,
    }

