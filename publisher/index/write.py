"""Write the index (:mod:`.layout`): the Parquet table of every entry, the node shards, and per
container its child pages or, for a large one, its search columns (:mod:`.columns_write`)."""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any, Protocol

from ..stores import Store
from .layout import INDEX_COLUMNS, JSON_COLUMNS, PAGE_SIZE, SEARCH_MIN_CHILDREN, children_page_key, node_shard_key, search_prefix, shard_digits_for


class Row(Protocol):
    """An index entry as the build hands it over (:class:`publisher.formats.Entry`)."""

    def to_json(self) -> dict[str, Any]: ...


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


def write_index(store: Store, prefix: str, entries: list[Row], min_children: int = SEARCH_MIN_CHILDREN) -> dict[str, Any]:
    """Write the Parquet and JSON forms under ``prefix``, search columns for containers of at least
    ``min_children`` children; return the catalog's ``index`` fields."""
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
    for parent, kids in children.items():
        if len(kids) >= min_children:  # its rows serve listing too: no pages
            from .columns_write import write_search

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
