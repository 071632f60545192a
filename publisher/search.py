"""Tiled's queries evaluated on a container's search columns (:mod:`publisher.columns`) with numpy:
the same answers as the row-by-row :func:`publisher.query.matches`, which stays the reference
(``tests/test_search_columns.py`` checks the two agree on random catalogs and queries).

Equality, comparison and ``in`` are binary searches in the sorted distinct values, then one
vectorised test of the codes; ``fulltext`` intersects posting lists; ``regex``, ``contains`` and
``like`` run one RE2 pass over the distinct texts joined by newlines (UTF-8, read in place), when
the pattern cannot match across one (else text by text); sorting takes the page it needs by
partial selection.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np

from .columns import Column, SearchColumns, Texts
from .errors import BadRequest
from .query import Query, _json_param, _sql, _text, distinct_values, like_of, regex_of, specs_value, tokens
from .regex import TextTest


# -- evaluation ------------------------------------------------------------------------------
def _text_rows(column: Column, test: TextTest, strings_only: bool) -> np.ndarray:
    chosen = np.zeros(column.size + 1, dtype=bool)
    nn = len(column.numbers)
    hit = column.texts.matching(test)
    if strings_only:
        hit &= ~column.text_json
    chosen[nn : column.size] = hit
    if not strings_only:  # numbers are matched by their text (SQL LIKE on a number)
        chosen[:nn] = [test.test(_text(column.value(i))) for i in range(nn)]  # type: ignore[arg-type]
    return column.rows_where(chosen)


def _per_value(column: Column, test: Callable[[Any], bool]) -> np.ndarray:
    """Rows whose decoded value passes ``test`` (for the entry fields: few distinct values)."""
    chosen = np.zeros(column.size + 1, dtype=bool)
    chosen[: column.size] = [test(column.decoded(i)) for i in range(column.size)]
    chosen[-1] = test(None)
    return column.rows_where(chosen)


def evaluate(cols: SearchColumns, q: Query) -> np.ndarray:
    """The rows matching one query, as a boolean mask."""
    f, n = q.fields, cols.n
    none = np.zeros(n, dtype=bool)
    if q.name == "fulltext":
        terms = tokens(str(f.get("text", "")))
        if not terms:
            return none
        lists = sorted((cols.postings(t) for t in set(terms)), key=len)
        rows = lists[0]
        for other in lists[1:]:
            rows = np.intersect1d(rows, other, assume_unique=True)
        none[rows] = True
        return none
    if q.name in ("lookup", "keys_filter", "structure_family"):
        column = cols.column("family" if q.name == "structure_family" else "key", "fields")
        wanted = _json_param(q, "keys", list, "a JSON list of keys") if q.name == "keys_filter" else [f.get("key" if q.name == "lookup" else "value")]
        return _per_value(column, lambda v: v in wanted) if column is not None else none
    if q.name == "specs":
        include, exclude = set(_json_param(q, "include", list, "a JSON list")), set(_json_param(q, "exclude", list, "a JSON list"))
        column = cols.column("specs", "fields")
        return _per_value(column, lambda v: include <= set(v or ()) and not (exclude & set(v or ()))) if column is not None else none
    if q.name == "access_tags_filter":
        tags = set(_json_param(q, "tags", list, "a JSON list of tags"))
        column = cols.column("access_tags", "fields")
        return _per_value(column, lambda v: bool(set(v or ()) & tags)) if column is not None else none
    if q.name in ("in", "notin"):
        options = _json_param(q, "value", list, "a JSON list")
        if not options:
            return ~none if q.name == "notin" else none
    column = cols.column(f.get("key", ""))
    if q.name == "keypresent":
        exists = bool(f.get("exists", True))
        present = column.present() if column is not None else none
        return present if exists else ~present
    if column is None:
        return none
    if q.name == "regex":
        return _text_rows(column, regex_of(q), strings_only=True)
    if q.name in ("contains", "like"):
        return _text_rows(column, like_of(q), strings_only=False)
    if q.name in ("eq", "noteq", "comparison"):
        value = _sql(f.get("value"))
        if value is None:
            return none  # NULL compares to nothing
        lo, hi = column.equal_range(value)
        op = f.get("operator") if q.name == "comparison" else q.name
        if op == "eq":
            return column.rows_in(lo, hi)
        if op == "noteq":
            return column.rows_in(lo, hi, exclude=True)
        bounds = {"lt": (0, lo), "le": (0, hi), "gt": (hi, column.size), "ge": (lo, column.size)}
        if op not in bounds:
            raise BadRequest(f"comparison operator must be lt, le, gt or ge, got {op!r}")
        return column.rows_in(*bounds[op])
    if q.name in ("in", "notin"):
        chosen = np.zeros(column.size + 1, dtype=bool)
        for option in options:
            value = _sql(option)
            if value is not None:
                lo, hi = column.equal_range(value)
                chosen[lo:hi] = True
        if q.name == "notin":
            chosen[: column.size] = ~chosen[: column.size]
        return column.rows_where(chosen)
    raise BadRequest(f"unknown query {q.name!r}")


def _sort_keys(sort: str) -> list[tuple[str, bool]]:
    keys = [k.strip() for k in sort.split(",") if k.strip()]
    out = []
    for key in keys:
        name = key.lstrip("-")
        if not re.fullmatch(r"[\w.]+", name):
            raise BadRequest(f"cannot sort by {key!r}: sort keys are metadata keys, e.g. sort=temperature,-scan")
        out.append((name, key.startswith("-")))
    return out


def _order(cols: SearchColumns, rows: np.ndarray, sort: str, stop: int) -> np.ndarray:
    """The first ``stop`` of ``rows`` (ascending row numbers) in ``sort`` order: by each key's
    value rank (missing last either way), then by row, so ties keep index order."""
    keys = _sort_keys(sort)
    if stop == 0:
        return rows[:0]
    composite = np.zeros(len(rows), dtype=np.int64)
    scale = 1
    parts: list[tuple[np.ndarray, int]] = []
    for name, descending in keys:
        column = cols.column(name)
        if column is None:
            continue  # every row lacks it: it orders nothing
        ranks = column.ranks()[rows]
        if descending:  # larger first, but rows without a value stay last
            ranks = np.where(ranks == column.size, column.size, column.size - 1 - ranks)
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
        hit = evaluate(cols, q)
        mask = hit if mask is None else (mask & hit)
    return np.flatnonzero(mask).astype(np.int64) if mask is not None else np.arange(cols.n, dtype=np.int64)


def ordered(cols: SearchColumns, queries: list[Query], sort: str, offset: int = 0, limit: int | None = None) -> np.ndarray:
    """Row numbers of the children matching every query, in index or ``sort`` order, from
    ``offset``, at most ``limit`` (only those are put in order)."""
    return _ordered(cols, matching(cols, queries), sort, offset, limit)


def _ordered(cols: SearchColumns, rows: np.ndarray, sort: str, offset: int, limit: int | None) -> np.ndarray:
    stop = len(rows) if limit is None else min(offset + limit, len(rows))
    if [k.strip() for k in sort.split(",") if k.strip()] == ["-"]:
        return rows[::-1][offset:stop]
    if sort.strip(" ,"):
        return _order(cols, rows, sort, stop)[offset:]
    return rows[offset:stop]


def search(cols: SearchColumns, queries: list[Query], sort: str, offset: int, limit: int) -> tuple[int, list[dict[str, Any]]]:
    """(count, page of entries) of the children matching every query, in index or ``sort`` order."""
    rows = matching(cols, queries)
    chosen = _ordered(cols, rows, sort, offset, limit)
    return len(rows), cols.rows(chosen.tolist()) if len(chosen) else []


def distinct(cols: SearchColumns, queries: list[Query], keys: list[str], structure_families: bool, specs: bool, counts: bool) -> dict[str, Any]:
    """:func:`publisher.query.distinct` from the columns: each distinct value counted once."""
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


__all__ = ["Column", "SearchColumns", "Texts", "distinct", "evaluate", "matching", "ordered", "search"]
