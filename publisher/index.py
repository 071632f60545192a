"""The metadata index: one entry per node, written as Parquet (for DuckDB/pandas) and as JSON shards.

JSON layout (designed for a million nodes; no file grows with the catalog):

* ``index/nodes/{shard}.json``: ``{path: entry}`` for the nodes whose ``sha1(path)`` starts
  with ``shard`` (``shard_digits`` hex digits, chosen so a shard holds ~``NODES_PER_SHARD``).
* ``index/children/{sha1(path)[:16]}/{page:05d}.json``: one page of a container's children,
  in order, as full entries, ``page_size`` per page.
* ``index/search/{sha1(path)[:16]}/``: for a container with many children, instead of pages:
  its children as JSON lines with their offsets, and its search columns (:mod:`publisher.columns`).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from .stores import Store

NODES_PER_SHARD = 256
PAGE_SIZE = 500
INDEX_COLUMNS = (
    "path", "key", "parent", "family", "specs", "metadata", "structure", "data_url",
    "source_file", "source_path", "access_tags", "notes",
)
#: Index columns holding JSON text in the Parquet form.
JSON_COLUMNS = ("specs", "metadata", "structure", "access_tags", "notes")


def path_hash(path: str) -> str:
    return hashlib.sha1(path.encode("utf-8")).hexdigest()


def shard_digits_for(count: int) -> int:
    """Hex digits of the node shard names, so a shard holds about NODES_PER_SHARD entries."""
    return max(1, math.ceil(math.log(max(count, 1) / NODES_PER_SHARD, 16))) if count > NODES_PER_SHARD else 1


def node_shard_key(prefix: str, path: str, digits: int) -> str:
    return f"{prefix}/nodes/{path_hash(path)[:digits]}.json"


def children_page_key(prefix: str, path: str, page: int) -> str:
    return f"{prefix}/children/{path_hash(path)[:16]}/{page:05d}.json"


def search_prefix(prefix: str, path: str) -> str:
    """Where a large container's search columns are (:mod:`publisher.columns`)."""
    return f"{prefix}/search/{path_hash(path)[:16]}"


def search_min_children() -> int:
    """Containers with at least this many children get search columns (``SKYSHELF_SEARCH_MIN_CHILDREN``)."""
    return int(os.environ.get("SKYSHELF_SEARCH_MIN_CHILDREN", "1000"))


@dataclass
class Entry:
    path: str
    key: str
    family: str
    specs: list[str]
    metadata: dict[str, Any]
    structure: dict[str, Any]
    data_url: str | None
    source_file: str | None
    source_path: str | None
    access_tags: list[str] | None = None
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def parent(self) -> str | None:
        if self.path == "":
            return None
        return self.path.rpartition("/")[0]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Entry:
        """The inverse of :meth:`to_json` (``parent`` is derived from ``path``)."""
        return cls(**{k: v for k, v in data.items() if k != "parent"})

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path, "key": self.key, "parent": self.parent, "family": self.family,
            "specs": self.specs, "metadata": self.metadata, "structure": self.structure,
            "data_url": self.data_url, "source_file": self.source_file, "source_path": self.source_path,
            "access_tags": self.access_tags, "notes": self.notes,
        }


def warm_up() -> None:
    """Import pyarrow and its Parquet writer (~0.1 s). A build calls this on a side thread at its
    start, so the cost overlaps conversion."""
    import pyarrow.parquet  # noqa: F401


def string_array(values: list[str | None]) -> Any:
    """An Arrow string column built from its buffers. ``pa.array`` would import pandas on first use
    (~0.2 s of CPU taken from the codecs in every build) to check for pandas objects."""
    import numpy as np
    import pyarrow as pa

    encoded = [b"" if v is None else v.encode("utf-8") for v in values]
    offsets = np.zeros(len(values) + 1, dtype=np.int64)
    np.cumsum([len(b) for b in encoded], out=offsets[1:])
    if offsets[-1] >= 2**31:  # past 32-bit offsets: let pyarrow chunk it
        return pa.chunked_array([pa.array(values, type=pa.string())])
    valid = np.fromiter((v is not None for v in values), dtype=bool, count=len(values))
    nulls = len(values) - int(valid.sum())
    bitmap = pa.py_buffer(np.packbits(valid, bitorder="little")) if nulls else None
    return pa.StringArray.from_buffers(len(values), pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(b"".join(encoded)), bitmap, nulls)


def write_index(store: Store, prefix: str, entries: list[Entry]) -> dict[str, Any]:
    """Write the Parquet and JSON forms under ``prefix``; return the catalog's ``index`` fields."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [e.to_json() for e in entries]
    dumps = lambda v: json.dumps(v, separators=(",", ":"), allow_nan=False)  # noqa: E731
    columns = {name: [r[name] for r in rows] for name in INDEX_COLUMNS}
    for name in JSON_COLUMNS:
        columns[name] = [None if v is None else dumps(v) for v in columns[name]]
    table = pa.Table.from_arrays([string_array(columns[name]) for name in INDEX_COLUMNS], names=list(INDEX_COLUMNS))
    parquet_key = f"{prefix}/nodes.parquet"
    with store.open_write(parquet_key) as sink:
        pq.write_table(table, sink, compression="zstd", row_group_size=100_000)

    digits = shard_digits_for(len(rows))
    shards: dict[str, dict[str, Any]] = defaultdict(dict)
    children: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        shards[node_shard_key(prefix, row["path"], digits)][row["path"]] = row
        if row["parent"] is not None:
            children[row["parent"]].append(row)
    for key, shard in shards.items():
        store.write_bytes(key, dumps(shard).encode())
    min_children = search_min_children()
    for parent, kids in children.items():
        if len(kids) >= min_children:  # its rows serve listing too: no pages
            from .columns import write_search

            write_search(store, search_prefix(prefix, parent), kids)
            continue
        for page in range(0, len(kids), PAGE_SIZE):
            body = {"path": parent, "offset": page, "count": len(kids), "entries": kids[page : page + PAGE_SIZE]}
            store.write_bytes(children_page_key(prefix, parent, page // PAGE_SIZE), dumps(body).encode())
    return {
        "index": parquet_key,
        "index_json": {
            "nodes": f"{prefix}/nodes/{{shard}}.json",
            "shard_digits": digits,
            "children": f"{prefix}/children/{{hash16}}/{{page:05d}}.json",
            "page_size": PAGE_SIZE,
            "hash": "sha1",
            "search": f"{prefix}/search/{{hash16}}",
            "search_min_children": min_children,
        },
        "node_count": len(rows),
    }
