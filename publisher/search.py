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

import bisect
import json
import re
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .errors import BadRequest
from .query import Query, _json_param, _sql, _text, distinct_values, like_of, regex_of, specs_value, tokens
from .regex import TextTest
from .stores import Store


class Texts(Sequence[str]):
    """Sorted distinct texts in one blob (each followed by ``\\n``): indexable and bisectable
    without making a Python string of each."""

    def __init__(self, offsets: np.ndarray, blob: np.ndarray, newline: np.ndarray) -> None:
        self.offsets, self.blob, self.newline = offsets, blob, newline
        self._scan: bytes | None = None
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        return self.blob[self.offsets[i] : self.offsets[i + 1] - 1].tobytes().decode("utf-8")

    def range_of(self, text: str) -> tuple[int, int]:
        """Indexes ``[lo, hi)`` of the entries equal to ``text`` (code-point order is UTF-8 byte order)."""
        return bisect.bisect_left(self, text), bisect.bisect_right(self, text)

    def raw(self, i: int) -> bytes:
        """Text ``i`` as UTF-8."""
        return self.blob[self.offsets[i] : self.offsets[i + 1] - 1].tobytes()

    def scan_bytes(self) -> bytes:
        """The blob as one bytes object, made once (RE2 reads it in place, by byte offsets)."""
        with self._lock:
            if self._scan is None:
                self._scan = self.blob.tobytes()
            return self._scan

    def matching(self, test: TextTest) -> np.ndarray:
        """Which texts ``test`` accepts: by its blob pattern over the joined texts when it has one
        (one search per hit), falling back to one test per text once most texts turn out to match."""
        out = np.zeros(len(self), dtype=bool)
        n = len(self)
        if n == 0:
            return out
        starts = self.offsets.tolist()
        if test.blob is None:
            blob = self.scan_bytes()
            return np.fromiter((test.test(blob[a : b - 1]) for a, b in zip(starts[:-1], starts[1:])), dtype=bool, count=n)
        blob = self.scan_bytes()
        search, pos, found, budget = test.blob.search, 0, 0, max(64, n // 8)
        while True:
            m = search(blob, pos)
            if m is None:
                break
            i = int(np.searchsorted(self.offsets, m.start(), "right")) - 1
            if i >= n:
                break
            out[i] = True
            pos = starts[i + 1]
            found += 1
            if found > budget:  # most texts match: a per-text pass beats one search call per hit
                rest = i + 1
                out[rest:] = np.fromiter((test.test(blob[a : b - 1]) for a, b in zip(starts[rest:-1], starts[rest + 1 :])),
                                         dtype=bool, count=n - rest)
                break
        for i in self.newline.tolist():  # texts holding a newline: the blob pass could not judge them
            out[i] = test.test(self.raw(i))
        return out


class Column:
    """One key's dictionary-encoded column (see :mod:`publisher.columns`)."""

    def __init__(self, n: int, arrays: dict[str, np.ndarray]) -> None:
        self.n = n
        self.codes = arrays["codes"]
        self.rows = arrays.get("rows")
        self.numbers = arrays["numbers"]
        self.number_float = arrays["number_float"]
        self.text_json = arrays["text_json"]
        self.texts = Texts(arrays["text_offsets"], arrays["text_blob"], arrays["text_newline"])
        #: integers past 2**53 are kept as text too: then numbers are compared exactly, in Python
        self.exact = Texts(arrays["number_text_offsets"], arrays["number_text_blob"], arrays["number_text_newline"]) \
            if "number_text_offsets" in arrays else None
        self.size = len(self.numbers) + len(self.texts)
        self._ranks: np.ndarray | None = None

    def value(self, i: int) -> Any:
        """Distinct value ``i`` as ``json_extract`` gives it (objects and arrays as JSON text)."""
        if i < len(self.numbers):
            if self.exact is not None:
                return json.loads(self.exact[i])
            x = float(self.numbers[i])
            return x if self.number_float[i] else int(x)
        return self.texts[i - len(self.numbers)]

    def decoded(self, i: int) -> Any:
        """Distinct value ``i`` as the metadata holds it (objects and arrays parsed)."""
        j = i - len(self.numbers)
        return json.loads(self.texts[j]) if j >= 0 and self.text_json[j] else self.value(i)

    def equal_range(self, value: Any) -> tuple[int, int]:
        """Distinct indexes ``[lo, hi)`` whose value SQLite holds equal to ``value`` (a ``_sql`` value)."""
        if isinstance(value, (int, float)):
            if self.exact is not None:
                span = range(len(self.numbers))
                return bisect.bisect_left(span, value, key=self.value), bisect.bisect_right(span, value, key=self.value)
            x = float(value)
            return int(np.searchsorted(self.numbers, x, "left")), int(np.searchsorted(self.numbers, x, "right"))
        lo, hi = self.texts.range_of(str(value))
        return len(self.numbers) + lo, len(self.numbers) + hi

    def rows_where(self, chosen: np.ndarray) -> np.ndarray:
        """Row mask from per-code truth (``chosen[-1]``, the last slot, stands for JSON null)."""
        mask = chosen[self.codes]
        if self.rows is None:
            return mask
        out = np.zeros(self.n, dtype=bool)
        out[self.rows[mask]] = True
        return out

    def rows_in(self, lo: int, hi: int, exclude: bool = False) -> np.ndarray:
        """Rows whose code is in ``[lo, hi)`` (or, with ``exclude``, rows with a non-null value outside it)."""
        chosen = np.zeros(self.size + 1, dtype=bool)
        if exclude:
            chosen[: self.size] = True
            chosen[lo:hi] = False
        else:
            chosen[lo:hi] = True
        return self.rows_where(chosen)

    def present(self) -> np.ndarray:
        if self.rows is None:
            return np.ones(self.n, dtype=bool)
        out = np.zeros(self.n, dtype=bool)
        out[self.rows] = True
        return out

    def ranks(self) -> np.ndarray:
        """Per row, the rank of its value in SQLite's order (equal values share one); rows
        without a value (missing or null) get ``size``, past every value."""
        if self._ranks is None:
            tie = np.arange(self.size, dtype=np.int64)
            if len(self.numbers) and self.exact is None:
                tie[: len(self.numbers)] = np.searchsorted(self.numbers, self.numbers, "left")
            for i in range(1, len(self.numbers) if self.exact is not None else 0):
                if self.value(i) == self.value(i - 1):
                    tie[i] = tie[i - 1]
            nn = len(self.numbers)  # the same text twice (a string, and an array's JSON text) is one value
            for j in np.flatnonzero(self.text_json[1:] & ~self.text_json[:-1]).tolist():
                if self.texts[j + 1] == self.texts[j]:
                    tie[nn + j + 1] = tie[nn + j]
            per_code = np.concatenate([tie, [self.size]])  # code -1 (null) → the last slot
            ranks = np.full(self.n, self.size, dtype=np.int64)
            if self.rows is None:
                ranks[:] = per_code[self.codes]
            else:
                ranks[self.rows] = per_code[self.codes]
            self._ranks = ranks
        return self._ranks


#: On S3, rows of one page closer than this are fetched in one ranged read (fewer billed requests).
COALESCE_BYTES = 256 * 2**10


class SearchColumns:
    """A container's search columns, loaded a column at a time as queries name them and kept."""

    def __init__(self, store: Store, prefix: str, manifest: dict[str, Any]) -> None:
        self.store, self.prefix, self.manifest = store, prefix, manifest
        self.n: int = manifest["count"]
        self._columns: dict[tuple[str, str], Column | None] = {}
        self._fulltext: dict[str, Any] | None = None
        self._offsets: np.ndarray | None = None
        self._lock = threading.Lock()

    @classmethod
    def open(cls, store: Store, prefix: str) -> SearchColumns:
        return cls(store, prefix, json.loads(store.read_bytes(f"{prefix}/columns.json")))

    def _arrays(self, places: dict[str, list[Any]], names: Sequence[str]) -> dict[str, np.ndarray]:
        """Arrays from ``columns.bin``: one ranged read spanning those asked for."""
        chosen = [(name, places[name]) for name in names if name in places]
        start = min(p[0] for _, p in chosen)
        end = max(p[0] + np.dtype(p[1]).itemsize * p[2] for _, p in chosen)
        data = self.store.read_range(f"{self.prefix}/columns.bin", start, end)
        return {name: np.frombuffer(data, dtype=p[1], count=p[2], offset=p[0] - start) for name, p in chosen}

    def column(self, key: str, section: str = "columns") -> Column | None:
        """The column of a dotted metadata key (or, with ``section="fields"``, of an entry field
        such as ``family``); None when no row has the key."""
        with self._lock:
            if (section, key) not in self._columns:
                places = self.manifest[section].get(key)
                self._columns[section, key] = Column(self.n, self._arrays(places, list(places))) if places else None
            return self._columns[section, key]

    def postings(self, term: str) -> np.ndarray:
        """The rows whose metadata holds the token ``term``, ascending."""
        with self._lock:
            if self._fulltext is None:
                places = self.manifest["fulltext"]
                arrays = self._arrays(places, ["text_offsets", "text_blob", "text_newline", "posting_offsets"])
                self._fulltext = {"vocabulary": Texts(arrays["text_offsets"], arrays["text_blob"], arrays["text_newline"]),
                                  "offsets": arrays["posting_offsets"], "place": places["postings"]}
            ft = self._fulltext
        lo, hi = ft["vocabulary"].range_of(term)
        if lo == hi:
            return np.zeros(0, dtype=np.int32)
        a, b = int(ft["offsets"][lo]), int(ft["offsets"][lo + 1])
        start, dtype = ft["place"][0], np.dtype(ft["place"][1])
        data = self.store.read_range(f"{self.prefix}/columns.bin", start + a * dtype.itemsize, start + b * dtype.itemsize)
        return np.frombuffer(data, dtype=dtype)

    def rows(self, ids: Sequence[int]) -> list[dict[str, Any]]:
        """Index entries of the given rows (any order), reading only their bytes. Locally each
        row's offsets are read as needed; on S3, where every read is a billed request, the
        offsets are read once and kept, and rows close together are fetched in one read."""
        if self.store.is_local:
            bounds = self.store.read_ranges(f"{self.prefix}/rows.offsets", [(8 * i, 8 * i + 16) for i in ids])
            spans = [tuple(np.frombuffer(b, dtype="<i8").tolist()) for b in bounds]
            return [json.loads(b) for b in self.store.read_ranges(f"{self.prefix}/rows.jsonl", spans)]  # type: ignore[arg-type]
        with self._lock:
            if self._offsets is None:
                self._offsets = np.frombuffer(self.store.read_bytes(f"{self.prefix}/rows.offsets"), dtype="<i8")
            offsets = self._offsets
        wanted = sorted(set(ids))
        groups: list[list[int]] = []
        for i in wanted:  # one read for rows less than COALESCE_BYTES apart
            if groups and offsets[i] - offsets[groups[-1][-1] + 1] < COALESCE_BYTES:
                groups[-1].append(i)
            else:
                groups.append([i])
        blobs = self.store.read_ranges(f"{self.prefix}/rows.jsonl", [(int(offsets[g[0]]), int(offsets[g[-1] + 1])) for g in groups])
        found = {}
        for group, blob in zip(groups, blobs):
            base = int(offsets[group[0]])
            for i in group:
                found[i] = json.loads(blob[int(offsets[i]) - base : int(offsets[i + 1]) - base])
        return [found[i] for i in ids]


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
