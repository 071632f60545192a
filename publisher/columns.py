"""Search columns: a large container's children as typed columns, written at publish time, so a
query over a million children is a few numpy operations on the columns it names rather than a
million dictionary lookups, and a page of results reads only its own rows.

For a container with many children (:func:`publisher.index.search_min_children`), under
``{prefix}/search/{hash16}/``:

* ``rows.jsonl``: the children's index entries, one compact JSON line each, in index order;
  ``rows.offsets``: their ``n + 1`` byte offsets (little-endian int64), so any row is one
  range read (the standard library's ``array`` reads them: listing needs no numpy).
* ``columns.bin`` and ``columns.json``: for every dotted metadata key (and the entries' own
  ``key``, ``family``, ``specs`` and ``access_tags``) a dictionary-encoded column, and the
  fulltext index; ``columns.json`` gives each array's place in ``columns.bin``, which is read
  by ranges, one column at a time, when a query first names it.

A column holds the key's distinct values in SQLite's order (numbers by value, then text by
code point; objects and arrays as their compact JSON text, as ``json_extract`` gives them), and
per row the index of its value (``codes``; -1 for JSON null), only for the rows that have the
key (``rows``, left out when all do). The fulltext index maps every token of a row's metadata
document (FTS5's unicode61 rules, :func:`publisher.query.tokens`) to the rows holding it.

:class:`SearchColumns` reads them back (a column at a time, by ranges), for :mod:`publisher.search`.
"""

from __future__ import annotations

import bisect
import json
import threading
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from .query import tokens
from .regex import TextTest
from .stores import Store

#: The entry fields (besides metadata) that queries look at, each a column of its own.
FIELDS = ("key", "family", "specs", "access_tags")


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _flatten(metadata: dict[str, Any], out: dict[str, Any], prefix: str = "") -> None:
    """Every dotted path of nested objects (what ``Key("a.b")`` can reach) with its value. Keys with
    a ``.`` in their name cannot be named by a dotted key, so they get no column."""
    for key, value in metadata.items():
        if "." in key:
            continue
        path = prefix + key
        out[path] = value
        if isinstance(value, dict):
            _flatten(value, out, path + ".")


class _Writer:
    """Arrays appended to one blob; the manifest records each one's offset, dtype and length."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.size = 0

    def add(self, array: np.ndarray) -> list[Any]:
        data = np.ascontiguousarray(array).tobytes()
        place = [self.size, array.dtype.str, len(array)]
        self.parts.append(data)
        self.size += len(data)
        pad = -self.size % 8  # every array 8-byte aligned, so views need no copy
        if pad:
            self.parts.append(b"\0" * pad)
            self.size += pad
        return place


def _texts(writer: _Writer, texts: list[str]) -> dict[str, Any]:
    """Sorted texts, each followed by a newline: the blob decodes to one string that a regex can
    scan in one pass (texts holding a newline themselves are listed, to be checked one by one)."""
    encoded = [t.encode("utf-8") + b"\n" for t in texts]
    offsets = np.zeros(len(texts) + 1, dtype="<i8")
    np.cumsum([len(b) for b in encoded], out=offsets[1:])
    newline = np.array([i for i, t in enumerate(texts) if "\n" in t], dtype="<i4")
    return {"text_offsets": writer.add(offsets), "text_blob": writer.add(np.frombuffer(b"".join(encoded), dtype=np.uint8)),
            "text_newline": writer.add(newline)}


def _column(writer: _Writer, n: int, present: list[int], values: list[Any]) -> dict[str, Any]:
    """One key's column from the rows that have it and their values."""
    numbers: dict[tuple[float | int, bool, str], int] = {}
    texts: dict[tuple[str, bool], int] = {}
    raw = []
    for v in values:
        if v is None:
            raw.append(None)
        elif isinstance(v, (int, float)):  # booleans too: SQLite has them as 1 and 0
            # exact values (Python compares int and float exactly); -0.0 apart from 0.0 by its text
            key = (v, True, repr(v)) if isinstance(v, float) else (int(v), False, "")
            numbers.setdefault(key, 0)
            raw.append((0, key))
        else:
            key = (v, False) if isinstance(v, str) else (_dumps(v), True)
            texts.setdefault(key, 0)
            raw.append((1, key))
    number_order = sorted(numbers)
    text_order = sorted(texts)
    for i, key in enumerate(number_order):
        numbers[key] = i
    for i, key in enumerate(text_order):
        texts[key] = len(number_order) + i
    codes = np.array([-1 if r is None else (numbers[r[1]] if r[0] == 0 else texts[r[1]]) for r in raw], dtype="<i4")
    column: dict[str, Any] = {
        "codes": writer.add(codes),
        "numbers": writer.add(np.array([float(k[0]) for k in number_order], dtype="<f8")),
        "number_float": writer.add(np.array([k[1] for k in number_order], dtype=bool)),
        "text_json": writer.add(np.array([k[1] for k in text_order], dtype=bool)),
        **_texts(writer, [k[0] for k in text_order]),
    }
    if any(not k[1] and abs(k[0]) > 2**53 for k in number_order):  # past float64's integers: keep them exact as text
        exact = _texts(writer, [json.dumps(k[0]) for k in number_order])
        column.update({"number_" + name: place for name, place in exact.items()})
    if len(present) != n:
        column["rows"] = writer.add(np.array(present, dtype="<i4"))
    return column


def _fulltext(writer: _Writer, metadata: list[dict[str, Any]]) -> dict[str, Any]:
    postings: dict[str, list[int]] = defaultdict(list)
    for row, md in enumerate(metadata):
        for token in set(tokens(_dumps(md))):
            postings[token].append(row)
    vocabulary = sorted(postings)
    counts = np.array([len(postings[t]) for t in vocabulary], dtype="<i8")
    offsets = np.zeros(len(vocabulary) + 1, dtype="<i8")
    np.cumsum(counts, out=offsets[1:])
    flat = np.fromiter((r for t in vocabulary for r in postings[t]), dtype="<i4", count=int(offsets[-1]))
    return {**_texts(writer, vocabulary), "posting_offsets": writer.add(offsets), "postings": writer.add(flat)}


def write_search(store: Store, prefix: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Write one container's rows and columns under ``prefix``; return its ``columns.json``."""
    lines = [_dumps(r).encode("utf-8") + b"\n" for r in rows]
    offsets = np.zeros(len(rows) + 1, dtype="<i8")
    np.cumsum([len(line) for line in lines], out=offsets[1:])
    store.write_bytes(f"{prefix}/rows.jsonl", b"".join(lines))
    store.write_bytes(f"{prefix}/rows.offsets", offsets.tobytes())

    n = len(rows)
    by_key: dict[str, tuple[list[int], list[Any]]] = defaultdict(lambda: ([], []))
    for i, row in enumerate(rows):
        flat: dict[str, Any] = {}
        _flatten(row["metadata"], flat)
        for key, value in flat.items():
            present, values = by_key[key]
            present.append(i)
            values.append(value)
    writer = _Writer()
    everyone = list(range(n))
    manifest = {
        "format": "skyshelf-search", "version": 1, "count": n,
        "columns": {key: _column(writer, n, present, values) for key, (present, values) in sorted(by_key.items())},
        "fields": {name: _column(writer, n, everyone, [r.get(name) for r in rows]) for name in FIELDS},
        "fulltext": _fulltext(writer, [r["metadata"] for r in rows]),
    }
    store.write_bytes(f"{prefix}/columns.bin", b"".join(writer.parts))
    store.write_bytes(f"{prefix}/columns.json", _dumps(manifest).encode("utf-8"))
    return manifest


# -- reading (the search handler: publisher.search evaluates queries on these) --------------------
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
    """One key's dictionary-encoded column (as described above)."""

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
