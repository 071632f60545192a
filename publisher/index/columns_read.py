"""Search columns, read back (their layout: :mod:`.columns_write`): a column at a time, by ranged
reads, when a query first names it, and kept; rows of a page read by their own byte ranges. Query
classes evaluate on these (:meth:`publisher.queries.base.Query.on_columns`)."""

from __future__ import annotations

import bisect
import json
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..formats import Entry
from ..stores import Store

if TYPE_CHECKING:
    from ..queries.regex import TextTest


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

    def rows(self, ids: Sequence[int]) -> list[Entry]:
        """Index entries of the given rows (any order), reading only their bytes. Locally each
        row's offsets are read as needed; on S3, where every read is a billed request, the
        offsets are read once and kept, and rows close together are fetched in one read."""
        if self.store.is_local:
            bounds = self.store.read_ranges(f"{self.prefix}/rows.offsets", [(8 * i, 8 * i + 16) for i in ids])
            spans = [tuple(np.frombuffer(b, dtype="<i8").tolist()) for b in bounds]
            return [Entry.from_json(json.loads(b)) for b in self.store.read_ranges(f"{self.prefix}/rows.jsonl", spans)]  # type: ignore[arg-type]
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
                found[i] = Entry.from_json(json.loads(blob[int(offsets[i]) - base : int(offsets[i + 1]) - base]))
        return [found[i] for i in ids]
