"""Search a published catalog with no server: the same answers as the search handler, from the
Parquet index (and, for a large container, its search columns)."""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

from ..queries.registry import filters_from


def params_for(*queries: Any) -> dict[str, list[str]]:
    """Query parameters for ``tiled.queries`` objects, encoded as Tiled's client encodes them."""
    from tiled.query_registration import default_query_registry

    params: dict[str, list[str]] = defaultdict(list)
    for q in queries:
        name = default_query_registry.query_type_to_name[type(q)]
        for field, value in q.encode().items():
            if value is not None:
                params[f"filter[{name}][condition][{field}]"].append(value if isinstance(value, str) else json.dumps(value))
    return dict(params)


def search_index(store: str, path: str = "", *queries: Any, sort: str = "", **storage_options: Any) -> Any:
    """Search a published catalog with no server: the children of ``path`` that match every query
    (``tiled.queries`` objects, e.g. ``Key("sample.element") == "Ni"``), in the handler's order, as
    a polars DataFrame of index rows (``metadata`` and the other JSON columns as JSON text:
    ``df["metadata"].str.json_decode()``). The same answers as the search handler.

    ``store`` is the store's root: a folder, ``s3://bucket/prefix`` (``storage_options`` as for
    s3fs) or the ``http(s)://`` URL of its files. Only the index's row groups that can hold
    ``path``'s children are read; a large container's matches come from its search columns
    (numpy), a small one's row by row.
    """
    import polars as pl
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ..stores import Store
    from .layout import JSON_COLUMNS, search_prefix

    root = Store(store, **storage_options)
    catalog = json.loads(root.read_bytes("catalog.json"))
    table = pq.read_table(root.path(catalog["index"]), filesystem=None if root.is_local else root.fs, filters=[("parent", "=", path)])
    settings = catalog.get("index_json", {})
    if table.num_rows >= settings.get("search_min_children", float("inf")) and table.num_rows:
        from .columns_read import SearchColumns
        from .engine import ordered

        # a large container: its search columns, whose rows are its Parquet rows in the same order
        columns = SearchColumns.open(root, search_prefix(catalog["index"].rpartition("/")[0], path))
        return pl.from_arrow(table.take(pa.array(ordered(columns, filters_from(params_for(*queries)), sort), type=pa.int64())))
    from ..formats import Entry
    from .rows import select

    rows = table.to_pylist()
    for row in rows:
        for name in JSON_COLUMNS:
            row[name] = json.loads(row[name]) if row[name] is not None else None
    entries = [Entry.from_json(row) for row in rows]
    position = {id(e): i for i, e in enumerate(entries)}
    chosen = select(entries, filters_from(params_for(*queries)), sort)
    return pl.from_arrow(table.take(pa.array([position[id(e)] for e in chosen], type=pa.int64())))
