"""Tables, their columns and whole containers (one Lambda): ``table/full``, ``table/partition``,
``column/metadata`` and ``column/full`` (a table's column as an array child, as Tiled serves
it), ``container/full`` (HDF5 or Tiled's JSON outline).

Every whole answer is estimated from the structure and the format before any data is read,
and refused past ``SKYSHELF_MAX_ANSWER_BYTES`` with advice (``publisher.limits``).
pyarrow, numpy and h5py are imported on first use.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from aws_lambda_powertools.event_handler import Response

from publisher import limits, serializers
from publisher.access.tables import PublishedTable
from publisher.errors import BadRequest, NotFound
from publisher.formats import Entry
from publisher.structures import TableStructure

from . import awkward, common, http, posted, settings, sparse
from .columns import table_column
from .data import answer, check, download_headers
from .grammar import expected_shape, ints

ARROW = "application/vnd.apache.arrow.file"
#: ``text/html`` shows this many rows (``publisher/serializers/table.py``): only they are converted.
HTML_ROWS = 1000


def _table(path: str) -> tuple[Any, PublishedTable]:
    catalog = common.catalog()
    entry = catalog.entry(path)
    if not isinstance(entry.structure, TableStructure):
        raise BadRequest(f"{path!r} is a {entry.family}, not a table")
    return catalog, PublishedTable(common.store(), entry.data_url, entry.structure)


def _columns(params: dict[str, list[str]], table: PublishedTable) -> list[str] | None:
    """``column=`` values; an empty one is dropped, unless the table has a column named ""."""
    return [c for c in params.get("column", []) if c or c in table.columns] or None


def _media_type(family: str, params: dict[str, list[str]], default: str) -> str:
    return serializers.choose(family, common.one(params, "format"), common.header(app, "accept"), default).media_type


def _rows(params: dict[str, list[str]]) -> slice | None:
    from .arrays import rows

    return rows(params, "a table")


def _bounded(table: PublishedTable, path: str, params: dict[str, list[str]], columns: list[str] | None,
             partition: int | None, rows: slice | None) -> Any:
    """Check the estimate before reading, then the decoded table's real size before it is
    serialized (variable-width columns are only guessed at first)."""
    media_type = _media_type("table", params, ARROW)
    total = table.rows(partition)
    selected = len(range(*rows.indices(total))) if rows is not None else total
    html = media_type == "text/html"
    what = f"table {path!r}" + (f" partition {partition}" if partition is not None else "")
    advice = ("ask for fewer columns (column=NAME, repeated), fewer rows (slice=start:stop), one partition at a time "
              "(table/partition/...?partition=N), or a binary format (format=arrow or format=parquet)")
    shown = min(selected, HTML_ROWS) if html else selected
    check(int(table.nbytes(columns, partition) * (shown / total if total else 1.0)), media_type, what, advice)

    def produce() -> Any:
        if rows is not None:
            data = table.read_rows(rows, columns, partition)
        else:
            data = table.read(columns) if partition is None else table.partition(partition, columns)
        check(int(data.nbytes * (min(1.0, HTML_ROWS / data.num_rows) if html and data.num_rows else 1.0)), media_type, what, advice)
        return data

    return produce


def full() -> Response:
    path = common.node_path(app, f"{common.API}/table/full")
    params = common.query(app)
    catalog, table = _table(path)
    columns = _columns(params, table)
    table._check_columns(columns)
    produce = _bounded(table, path, params, columns, None, _rows(params))
    return answer(app, "table", ARROW, catalog.release, path, params, produce)


def partition() -> Response:
    path = common.node_path(app, f"{common.API}/table/partition")
    params = posted.query_with_posted(app, "column", "table/partition (its columns)")
    catalog, table = _table(path)
    if "partition" not in params:
        raise BadRequest("partition=N is required")
    index = common.integer(params, "partition", 0, 0)
    columns = _columns(params, table)
    if not 0 <= index < table.npartitions:
        raise BadRequest(f"partition {index} is out of range: the table has {table.npartitions}")
    table._check_columns(columns)
    produce = _bounded(table, path, params, columns, index, _rows(params))
    return answer(app, "table", ARROW, catalog.release, path, params, produce)


# -- a table's columns as array children (what the tiled client's table[column] asks for) -------
def _column(route: str) -> tuple[Any, Entry, PublishedTable, str, str]:
    """(catalog, the table's entry, the table, its path, the column) of ``<table path>/<column>``."""
    path = common.node_path(app, f"{common.API}/{route}")
    catalog = common.catalog()
    found = table_column(catalog, path)
    if found is None:
        raise NotFound(f"no node at path {path!r}")
    entry, parent, column = found
    return catalog, entry, PublishedTable(common.store(), entry.data_url, entry.structure), parent, column


def column_metadata() -> Response:
    """Tiled's resource for a table column: an array of the column's values, one chunk per partition."""
    import json

    from publisher.access.tables import column_values
    from publisher.structures import DataType

    catalog, entry, table, parent, column = _column("column/metadata")
    params = common.query(app)
    base = common.base_url(app)
    url_path = quote(parent, safe="/") + "/" + quote(column, safe="")  # ('a/b' as a%2Fb: one name)
    etag = http.etag_for("column-metadata", catalog.release, parent, column, sorted(params.items()), base)
    cached = http.not_modified(app, etag)
    if cached is not None:
        return cached
    check(table.nbytes([column]), "application/octet-stream", f"column {column!r} of {parent!r}",
          "this column is too large to describe: read the table by partitions (table/partition/...?partition=N&column=NAME)")
    values = column_values(table, column)
    chunks = [table.rows(i) for i in range(table.npartitions)] if table.structure.partition_rows else [len(values)]
    structure = {"data_type": DataType.from_numpy(values.dtype).to_json(), "chunks": [chunks], "shape": [len(values)],
                 "dims": None, "resizable": False}
    resource = {
        "id": column,
        "attributes": {"ancestors": parent.split("/"), "structure_family": "array", "specs": [], "metadata": {},
                       "structure": structure, "access_tags": entry.access_tags, "sorting": None, "data_sources": None},
        "links": {"self": f"{base}/metadata/{url_path}", "full": f"{base}/column/full/{url_path}",
                  "block": f"{base}/column/full/{url_path}?block={{0}}"},
        "meta": None,
    }
    body = json.dumps({"data": resource, "error": None, "links": None, "meta": {}}, separators=(",", ":")).encode()
    return http.respond(app, body, "application/json", etag)


def column_full() -> Response:
    """A column's values as an array answer: ``slice=`` as ``array/full``, ``block=i`` for partition i."""
    catalog, _, table, parent, column = _column("column/full")
    params = common.query(app)
    block = ints(common.one(params, "block"), "block")
    if block and (len(block) != 1 or not 0 <= block[0] < table.npartitions):
        raise BadRequest(f"block must be one index below {table.npartitions} (the table's partitions), got {common.one(params, 'block')}")
    from .arrays import checked, parse_slice

    media_type = _media_type("array", params, "application/octet-stream")
    partition = block[0] if block else None
    sel = parse_slice(common.one(params, "slice"))
    rows = sel[0] if not block and len(sel) == 1 and isinstance(sel[0], slice) else None  # only these rows are converted
    total = table.rows(partition)
    share = len(range(*rows.indices(total))) / total if rows is not None and total else 1.0
    check(int(table.nbytes([column], partition) * share), media_type, f"column {column!r} of {parent!r}",
          "ask for a slice (slice=start:stop), one block (block=i, a partition) or the raw bytes (format=application/octet-stream)")

    def produce() -> Any:
        from publisher.access.tables import column_values

        if rows is not None:
            data = column_values(table, column, rows=rows)
        else:
            values = column_values(table, column, partition)
            data = values[checked(sel, values.shape, f" of column {column!r}")] if sel else values
            if values.dtype.kind == "U":  # (one value of a text column: at the column's width, as its metadata says)
                import numpy as np

                data = np.asarray(data, dtype=values.dtype)
        expected = expected_shape(common.one(params, "expected_shape"))
        if expected is not None and expected != data.shape:
            raise BadRequest(f"expected_shape {common.one(params, 'expected_shape')} does not match the shape {','.join(map(str, data.shape))}")
        return data

    return answer(app, "array", "application/octet-stream", catalog.release, f"{parent}/{column}", params, produce)


# -- containers ---------------------------------------------------------------------------------
def container_full() -> Response:
    """A container's subtree in a container format (HDF5, or Tiled's JSON outline), ``field=``
    choosing some of its children, as Tiled's ``container/full``."""
    from publisher.access.containers import TooManyNodes, subtree

    path = common.node_path(app, f"{common.API}/container/full")
    params = posted.query_with_posted(app, "field", "container/full (its fields)")
    catalog = common.catalog()
    entry = catalog.entry(path)
    if entry.family != "container":
        raise BadRequest(f"{path!r} is a {entry.family}, not a container")
    chosen = serializers.choose("container", common.one(params, "format"), common.header(app, "accept"), "application/json")
    fields = [f for f in params.get("field", []) if f]
    etag = http.etag_for("container", catalog.release, path, sorted(params.items()), chosen.media_type, common.header(app, "accept-encoding"))
    headers = download_headers(chosen, path, params)
    cached = http.not_modified(app, etag) or http.spilled(etag, chosen.extension, app, headers.get("Content-Disposition"))
    if cached is not None:
        return cached
    advice = ("export a smaller container (one of its children), or read its arrays and tables one by one "
              "(array/full with slice=, array/block, table/partition)")
    limit = settings.current().max_container_nodes
    try:
        tree, data_bytes = subtree(catalog, common.store(), entry, fields or None, limit, chosen.media_type != "application/json")
    except TooManyNodes:
        raise limits.AnswerTooLarge(f"container {path!r} holds more than {limit} nodes, this server's limit "
                                    f"for one container/full answer (SKYSHELF_MAX_CONTAINER_NODES); {advice}") from None
    check(data_bytes, chosen.media_type, f"container {path!r}", advice)
    body = serializers.serialize(chosen, tree)
    return http.respond(app, body, chosen.media_type, etag, headers=headers, redirect_ext=chosen.extension)


app = common.make_app("tables", {
    "/api/v1/table/full/{path+}": full, "/api/v1/table/partition/{path+}": partition, "/api/v1/container/full/{path+}": container_full,
    "/api/v1/column/metadata/{path+}": column_metadata, "/api/v1/column/full/{path+}": column_full,
    **{route: (lambda f=f: f(app)) for route, f in {**awkward.ROUTES, **sparse.ROUTES}.items()},  # type: ignore[misc]
})


lambda_handler = common.entry_point(app)
