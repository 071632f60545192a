"""Write the index (:mod:`.layout`): the Parquet table of every entry, the node shards, and per
container its child pages or, for a large one, its search columns (:mod:`.columns_write`)."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from json.encoder import encode_basestring_ascii as quoted  # a key as dumps() writes it
from typing import Any, Protocol, TypeVar

from ..stores import Store
from .layout import (
    INDEX_COLUMNS,
    JSON_COLUMNS,
    PAGE_SIZE,
    SEARCH_MIN_CHILDREN,
    children_page_key,
    node_shard_key,
    search_prefix,
    shard_digits_for,
)
from .table import NodeTable, NodeView, dumps

T = TypeVar("T")

#: Rows of nodes.parquet per row group (and in memory at once while it is written).
ROW_GROUP = 10_000


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


def write_index(store: Store, prefix: str, entries: NodeView | Iterable[Row], min_children: int = SEARCH_MIN_CHILDREN) -> dict[str, Any]:
    """Write the Parquet and JSON forms under ``prefix``, search columns for containers of at least
    ``min_children`` children; return the catalog's ``index`` fields. ``entries``: a build's view
    of its node table, read in pieces (a million rows never in memory at once), or rows in order."""
    if isinstance(entries, NodeView):
        return _write(store, prefix, entries, min_children)
    table = NodeTable.of(e.to_json() for e in entries)
    try:
        return _write(store, prefix, table.view(depth_first=False), min_children)
    finally:
        table.close()


def _write(store: Store, prefix: str, view: NodeView, min_children: int) -> dict[str, Any]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    count = len(view)
    parquet_key = f"{prefix}/nodes.parquet"
    schema = pa.schema([(name, pa.string()) for name in INDEX_COLUMNS])
    with store.open_write(parquet_key) as sink, pq.ParquetWriter(sink, schema, compression="zstd") as parquet:
        for rows in _batches(view.ordered(), ROW_GROUP):
            columns = {name: [r[name] for r in rows] for name in INDEX_COLUMNS}
            for name in JSON_COLUMNS:
                columns[name] = [None if v is None else dumps(v) for v in columns[name]]
            parquet.write_table(pa.Table.from_arrays([string_array(columns[name]) for name in INDEX_COLUMNS], schema=schema))
        if not count:
            parquet.write_table(schema.empty_table())

    digits = shard_digits_for(count)
    # the JSON documents joined from the rows' own texts: what dumps() of the documents would write
    for shard in view.shards(digits):
        body = "{" + ",".join(f"{quoted(path)}:{text}" for path, text in shard) + "}"
        store.write_bytes(node_shard_key(prefix, shard[0][0], digits), body.encode())
    for parent, n in view.parents():
        if n >= min_children:  # its rows serve listing too: no pages
            from .columns_write import write_search

            # streamed from the table, with their texts as stored (no second dumps)
            write_search(store, search_prefix(prefix, parent), view.children_with_texts(parent))
            continue
        for page, kids in enumerate(_batches(view.children_texts(parent), PAGE_SIZE)):
            head = dumps({"path": parent, "offset": page * PAGE_SIZE, "count": n})[:-1]
            store.write_bytes(children_page_key(prefix, parent, page), f'{head},"entries":[{",".join(kids)}]}}'.encode())
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
        "node_count": count,
    }


def _batches(rows: Iterator[T], size: int) -> Iterator[list[T]]:
    while batch := list(itertools.islice(rows, size)):
        yield batch
