"""Search columns, written: a large container's children as typed columns, written at publish time, so a
query over a million children is a few numpy operations on the columns it names rather than a
million dictionary lookups, and a page of results reads only its own rows.

For a container with many children (``min_children`` of :func:`.write.write_index`), under
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
document (FTS5's unicode61 rules, :func:`publisher.queries.sqlite.tokens`) to the rows holding it.

:mod:`.columns_read` reads them back (a column at a time, by ranges), for :mod:`.engine`.
"""

from __future__ import annotations

import json
from array import array
from collections import defaultdict
from collections.abc import Iterable
from typing import IO, Any

import numpy as np

from ..queries.sqlite import tokens
from ..stores import Store

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
    """Arrays appended to one object as they are made (``sink``); the manifest records each one's
    offset, dtype and length."""

    def __init__(self, sink: IO[bytes]) -> None:
        self.sink = sink
        self.size = 0

    def add(self, array: np.ndarray) -> list[Any]:
        data = np.ascontiguousarray(array).tobytes()
        place = [self.size, array.dtype.str, len(array)]
        self.sink.write(data)
        self.size += len(data)
        pad = -self.size % 8  # every array 8-byte aligned, so views need no copy
        if pad:
            self.sink.write(b"\0" * pad)
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


#: A value as a column sorts it: a number (exact; -0.0 apart from 0.0 by its text) or a text (or
#: an object or array as its compact JSON, flagged).
_Number = tuple[float | int, bool, str]
_Text = tuple[str, bool]


class _Gathered:
    """One key's column as the rows come: the rows that have it, and per row its value's number in
    the order first seen (-1 for JSON null), made the sorted order's at the end (:meth:`write`).
    Compact arrays, not a Python object per row: a folder of a million children is one column."""

    __slots__ = ("codes", "present", "seen")

    def __init__(self) -> None:
        self.present, self.codes = array("i"), array("i")
        self.seen: dict[tuple[int, _Number | _Text], int] = {}

    def add(self, row: int, value: Any) -> None:
        self.present.append(row)
        if value is None:
            self.codes.append(-1)
            return
        if isinstance(value, (int, float)):  # booleans too: SQLite has them as 1 and 0
            key: tuple[int, _Number | _Text] = (0, (value, True, repr(value)) if isinstance(value, float) else (int(value), False, ""))
        else:
            key = (1, (value, False) if isinstance(value, str) else (_dumps(value), True))
        code = self.seen.get(key)
        if code is None:
            code = self.seen[key] = len(self.seen)
        self.codes.append(code)

    def write(self, writer: _Writer, n: int) -> dict[str, Any]:
        number_order: list[_Number] = sorted(k for kind, k in self.seen if kind == 0)  # type: ignore[misc]
        text_order: list[_Text] = sorted(k for kind, k in self.seen if kind == 1)  # type: ignore[misc]
        final = np.empty(len(self.seen) + 1, dtype="<i4")  # by first-seen number; the last: null's -1
        final[-1] = -1
        for i, key in enumerate(number_order):
            final[self.seen[(0, key)]] = i
        for i, text in enumerate(text_order, len(number_order)):
            final[self.seen[(1, text)]] = i
        column: dict[str, Any] = {
            "codes": writer.add(final[np.frombuffer(self.codes, dtype=np.int32)]),
            "numbers": writer.add(np.array([float(k[0]) for k in number_order], dtype="<f8")),
            "number_float": writer.add(np.array([k[1] for k in number_order], dtype=bool)),
            "text_json": writer.add(np.array([k[1] for k in text_order], dtype=bool)),
            **_texts(writer, [k[0] for k in text_order]),
        }
        if any(not k[1] and abs(k[0]) > 2**53 for k in number_order):  # past float64's integers: keep them exact as text
            exact = _texts(writer, [json.dumps(k[0]) for k in number_order])
            column.update({"number_" + name: place for name, place in exact.items()})
        if len(self.present) != n:
            column["rows"] = writer.add(np.frombuffer(self.present, dtype=np.int32).astype("<i4"))
        return column


class _Postings:
    """The fulltext index as the rows come: every token of a row's metadata, the rows holding it."""

    def __init__(self) -> None:
        self.rows: dict[str, array[int]] = {}

    def add(self, row: int, metadata: dict[str, Any]) -> None:
        for token in set(tokens(_dumps(metadata))):
            held = self.rows.get(token)
            if held is None:
                held = self.rows[token] = array("i")
            held.append(row)

    def write(self, writer: _Writer) -> dict[str, Any]:
        vocabulary = sorted(self.rows)
        offsets = np.zeros(len(vocabulary) + 1, dtype="<i8")
        np.cumsum([len(self.rows[t]) for t in vocabulary], out=offsets[1:])
        flat = np.frombuffer(b"".join(self.rows[t].tobytes() for t in vocabulary), dtype=np.int32).astype("<i4")
        return {**_texts(writer, vocabulary), "posting_offsets": writer.add(offsets), "postings": writer.add(flat)}


#: Bytes of rows.jsonl gathered before each write to the store's stream.
_WRITE_BYTES = 2**20


def write_search(store: Store, prefix: str, rows: Iterable[tuple[dict[str, Any], str | None]]) -> dict[str, Any]:
    """Write one container's rows and columns under ``prefix``; return its ``columns.json``. ``rows``:
    (entry, its JSON text when the caller has it: the node table stores them), read once, in
    order, as they come: rows.jsonl is streamed and the columns gathered as compact arrays, so
    memory follows the distinct values, not the rows (a flat folder of 50,000 children took
    ~6 KB a child with every row held as a dictionary)."""
    offsets, lines, pending = array("q", [0]), [], 0
    columns: dict[str, _Gathered] = defaultdict(_Gathered)
    fields = {name: _Gathered() for name in FIELDS}
    postings = _Postings()
    n = 0
    with store.open_write(f"{prefix}/rows.jsonl") as sink:
        for n, (row, text) in enumerate(rows, 1):
            line = (_dumps(row) if text is None else text).encode("utf-8") + b"\n"
            offsets.append(offsets[-1] + len(line))
            lines.append(line)
            pending += len(line)
            if pending >= _WRITE_BYTES:
                sink.write(b"".join(lines))
                lines, pending = [], 0
            i = n - 1
            flat: dict[str, Any] = {}
            _flatten(row["metadata"], flat)
            for key, value in flat.items():
                columns[key].add(i, value)
            for name, gathered in fields.items():
                gathered.add(i, row.get(name))
            postings.add(i, row["metadata"])
        sink.write(b"".join(lines))
    store.write_bytes(f"{prefix}/rows.offsets", np.frombuffer(offsets, dtype=np.int64).astype("<i8").tobytes())
    with store.open_write(f"{prefix}/columns.bin") as sink:
        writer = _Writer(sink)
        manifest = {
            "format": "skyshelf-search", "version": 1, "count": n,
            "columns": {key: columns[key].write(writer, n) for key in sorted(columns)},
            "fields": {name: gathered.write(writer, n) for name, gathered in fields.items()},
            "fulltext": postings.write(writer),
        }
    store.write_bytes(f"{prefix}/columns.json", _dumps(manifest).encode("utf-8"))
    return manifest
