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
from collections import defaultdict
from typing import Any

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


def write_search(store: Store, prefix: str, rows: list[dict[str, Any]], texts: list[str] | None = None) -> dict[str, Any]:
    """Write one container's rows and columns under ``prefix``; return its ``columns.json``.
    ``texts``: the rows' JSON texts when the caller has them (the node table stores them)."""
    lines = [text.encode("utf-8") + b"\n" for text in (map(_dumps, rows) if texts is None else texts)]
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
